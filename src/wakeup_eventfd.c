/*
 * Wake-ups on Linux: an eventfd, one counter a write raises and a read
 * takes to zero.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"
#include "wakeup.h"

int gn__wakeup_open(void)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    return fd >= 0 ? fd : gn_error_from_errno(errno);
}

/* Only EINTR is worth retrying: EAGAIN means the counter is full, and
 * then it is readable anyway. */
void gn__wakeup_signal(int fd)
{
    static const uint64_t one = 1;

    while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

void gn__wakeup_drain(int fd)
{
    uint64_t count;

    while (read(fd, &count, sizeof(count)) < 0 && errno == EINTR)
        ;
}

void gn__wakeup_close(int fd)
{
    close(fd);
}
