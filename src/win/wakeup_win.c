/*
 * Wake-ups on Windows: WSAPoll waits only for sockets, so a wake-up is a
 * UDP socket on 127.0.0.1 connected to itself; signalling sends it an
 * empty datagram, draining reads every one queued.  A full receive buffer
 * drops a datagram, and then enough are queued to wake the reader.
 */
#include <errno.h>
#include <stdint.h>

#include "internal.h"
#include "wakeup.h"

int gn__wakeup_open(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET};
    socklen_t len = sizeof(addr);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err;

    if (fd < 0)
        return gn_error_from_errno(errno);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0 &&
        connect(fd, (struct sockaddr *)&addr, len) == 0)
        return fd;
    err = errno;
    close(fd);
    return gn_error_from_errno(err);
}

void gn__wakeup_signal(int fd)
{
    char none = 0;

    send(fd, &none, 0, 0);
}

void gn__wakeup_drain(int fd)
{
    char buf[16];

    while (recv(fd, buf, sizeof(buf), 0) >= 0)
        ;
}

void gn__wakeup_close(int fd)
{
    close(fd);
}
