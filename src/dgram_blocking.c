/*
 * Blocking datagram sockets: gn_dgram_recv and gn_dgram_send_wait.
 *
 * As in blocking.c, the descriptor stays non-blocking and every wait is
 * a poll(2) against one deadline taken when the call starts, so EINTR
 * only recomputes the time left and a timeout bounds the whole call.
 * Without a timeout of their own (GN_DEFAULT_TIMEOUT) they wait as long
 * as it takes: a datagram socket has no deadline or idle timeout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <time.h>

#include "dgram.h"

/* An unconnected Unix datagram socket polls writable while its receiver
 * is full (see dgram.c), so a send that still cannot go waits this long
 * before trying again instead of spinning. */
#define FULL_RETRY_MS 2

static int check_blocking(const gn_dgram *sock)
{
    if (!sock)
        return GN_EINVAL;
    if (!sock->blocking)
        return GN_EMODE;
    return sock->io.fd < 0 ? GN_ECLOSED : 0;
}

int gn_dgram_open_blocking(const char *address, unsigned flags, const gn_dgram_options *opts,
                           gn_dgram **out, char *errbuf, size_t errlen)
{
    int rc = gn__dgram_create(NULL, address, flags, opts, out, errbuf, errlen);

    if (rc == 0)
        (*out)->blocking = true;
    return rc;
}

ssize_t gn_dgram_recv(gn_dgram *sock, void *buf, size_t size, gn_endpoint *from,
                      uint32_t timeout_ms)
{
    uint64_t deadline;
    bool cut;
    ssize_t n;
    int rc = check_blocking(sock);

    if (rc < 0)
        return rc;
    if (!buf && size > 0)
        return GN_EINVAL;
    deadline = gn__deadline_after(gn__timeout_or(timeout_ms, GN_NO_TIMEOUT));
    for (;;) {
        n = gn__dgram_recvfrom(sock, buf, size, from, &cut);
        if (n >= 0)
            return cut || (size_t)n > sock->opts.max_datagram ? GN_EMSGSIZE : n;
        if (n != GN__DGRAM_AGAIN)
            return n;
        rc = gn__wait_fd(sock->io.fd, POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
}

static void nap(uint64_t deadline)
{
    int left = gn__poll_ms(deadline);
    struct timespec ts = {0, FULL_RETRY_MS * 1000000L};

    if (left >= 0 && left < FULL_RETRY_MS)
        ts.tv_nsec = left * 1000000L;
    nanosleep(&ts, NULL);
}

int gn_dgram_send_wait(gn_dgram *sock, const void *data, size_t len, const gn_endpoint *to,
                       uint32_t timeout_ms)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    uint64_t deadline;
    int rc = check_blocking(sock);

    if (rc < 0)
        return rc;
    rc = gn__dgram_dest(sock, data, len, to, &ss, &sslen);
    if (rc < 0)
        return rc;
    deadline = gn__deadline_after(gn__timeout_or(timeout_ms, GN_NO_TIMEOUT));
    for (bool waited = false;; waited = true) {
        rc = gn__dgram_sendto(sock->io.fd, data, len, &ss, sslen);
        if (rc != GN__DGRAM_AGAIN)
            return rc;
        if (gn__poll_ms(deadline) == 0)
            return GN_ETIMEDOUT;
        if (waited && sock->retry_by_timer)
            nap(deadline);
        else if ((rc = gn__wait_fd(sock->io.fd, POLLOUT, deadline)) < 0)
            return rc;
    }
}
