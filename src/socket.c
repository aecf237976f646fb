/*
 * Socket helpers and the plain stream transport (TCP, later Unix stream
 * sockets): the only place their syscalls and errno live.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "faults.h"

static ssize_t stream_read(gn_conn *conn, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = gn__recv(conn->io.fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return GN__AGAIN;
        return gn_error_from_errno(errno);
    }
}

/* Apart, so the one-buffer path does not build a msghdr it never uses. */
static ssize_t sendmsg_iov(int fd, const struct iovec *iov, int iovcnt)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};

    return gn__sendmsg(fd, &msg, MSG_NOSIGNAL);
}

static ssize_t stream_writev(gn_conn *conn, const struct iovec *iov, int iovcnt)
{
    for (;;) {
        /* MSG_NOSIGNAL: a peer that went away is an error code here, never
         * a SIGPIPE that kills the application.  One buffer goes by send,
         * which spares the kernel copying in a msghdr and an iovec (the
         * common case: a reply written straight through). */
        ssize_t n = iovcnt == 1
                        ? gn__send(conn->io.fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
                        : sendmsg_iov(conn->io.fd, iov, iovcnt);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return GN__AGAIN;
        return gn_error_from_errno(errno);
    }
}

/* sendfile(2) has no MSG_NOSIGNAL, so SIGPIPE is blocked around it and a
 * SIGPIPE it raised is taken off the pending set before unblocking, the
 * way curl and OpenSSL users do it. */
#ifdef _WIN32 /* no SIGPIPE */
static ssize_t stream_sendfile(gn_conn *conn, int fd, int64_t *offset, size_t len)
{
    off_t off = (off_t)*offset;
    ssize_t n = gn__sendfile(conn->io.fd, fd, &off, len);

    if (n >= 0) {
        *offset = off;
        return n;
    }
    return errno == EAGAIN ? GN__AGAIN : gn_error_from_errno(errno);
}
#else
static ssize_t stream_sendfile(gn_conn *conn, int fd, int64_t *offset, size_t len)
{
    static const struct timespec no_wait = {0, 0};
    sigset_t pipe_set, old, pending;
    bool was_pending;
    off_t off = (off_t)*offset;
    ssize_t n;
    int err;

    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    was_pending = sigismember(&pending, SIGPIPE);
    do {
        n = gn__sendfile(conn->io.fd, fd, &off, len);
    } while (n < 0 && errno == EINTR);
    err = errno;
    if (n < 0 && err == EPIPE && !was_pending)
        sigtimedwait(&pipe_set, NULL, &no_wait);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (n >= 0) {
        *offset = off;
        return n;
    }
    if (err == EAGAIN || err == EWOULDBLOCK)
        return GN__AGAIN;
    return gn_error_from_errno(err);
}
#endif

static int stream_shutdown(gn_conn *conn)
{
    /* ENOTCONN: the peer is gone already, which the read side reports. */
    if (shutdown(conn->io.fd, SHUT_WR) < 0 && errno != ENOTCONN)
        return gn_error_from_errno(errno);
    return 0;
}

const struct gn__transport gn__transport_stream = {
    .name = "stream",
    .read = stream_read,
    .writev = stream_writev,
    .sendfile = stream_sendfile,
    .shutdown = stream_shutdown,
};

static int set_int_option(int fd, int level, int name, int value)
{
    if (setsockopt(fd, level, name, &value, sizeof(value)) < 0)
        return gn_error_from_errno(errno);
    return 0;
}

int gn__socket_tcp_options(int fd, const gn_options *opts)
{
    int rc = 0;

    /* Request/response traffic suffers from Nagle + delayed ACK (40 ms
     * stalls); bulk senders coalesce in the output queue anyway. */
    if (!opts->nagle)
        rc = set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    if (rc == 0 && opts->keepalive_s) {
        rc = set_int_option(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
        if (rc == 0)
            rc = set_int_option(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)opts->keepalive_s);
        if (rc == 0 && opts->keepalive_interval_s)
            rc = set_int_option(fd, IPPROTO_TCP, TCP_KEEPINTVL, (int)opts->keepalive_interval_s);
        if (rc == 0 && opts->keepalive_count)
            rc = set_int_option(fd, IPPROTO_TCP, TCP_KEEPCNT, (int)opts->keepalive_count);
    }
    return rc;
}

int gn__socket_options(int fd, gn_transport kind, const gn_options *opts)
{
    if (kind == GN_TRANSPORT_TCP || kind == GN_TRANSPORT_TLS)
        return gn__socket_tcp_options(fd, opts);
    return 0;
}

int gn__socket_endpoints(int fd, gn_transport transport, gn_endpoint *local, gn_endpoint *remote)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int rc;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return gn_error_from_errno(errno);
    rc = gn_endpoint_from_sockaddr((struct sockaddr *)&ss, len, transport, local);
    if (rc < 0 || !remote)
        return rc;
    len = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return gn_error_from_errno(errno);
    return gn_endpoint_from_sockaddr((struct sockaddr *)&ss, len, transport, remote);
}

ssize_t gn__sendfile_by_copy(gn_conn *conn, int fd, int64_t *offset, size_t len,
                             ssize_t (*write_fn)(gn_conn *conn, const struct iovec *iov, int iovcnt))
{
    char buf[16384];
    struct iovec iov = {buf, len < sizeof(buf) ? len : sizeof(buf)};
    ssize_t n, sent;

    do {
        n = pread(fd, buf, iov.iov_len, (off_t)*offset);
    } while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n < 0 ? gn_error_from_errno(errno) : 0;
    iov.iov_len = (size_t)n;
    sent = write_fn(conn, &iov, 1);
    if (sent > 0)
        *offset += sent;
    return sent;
}

int gn__socket_set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return gn_error_from_errno(errno);
    return 0;
}

int gn__socket_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return gn_error_from_errno(errno);
    return err ? gn_error_from_errno(err) : 0;
}

void gn__socket_reset_on_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}
