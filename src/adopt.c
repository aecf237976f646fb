/*
 * Connections made of a descriptor the program already has, driven by a
 * transport of its own (gn_io_ops) or the plain one; and
 * gn_conn_pair, two of them over a socketpair.
 *
 * A user transport plugs into the same vtable as TCP and TLS through a
 * trampoline that passes the descriptor along; sendfile, which a user
 * transport cannot be asked to implement, becomes pread + writev.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "reserved.h"

static ssize_t user_read(gn_conn *conn, void *buf, size_t len)
{
    return (conn->ext->user_ops->read)(conn, conn->io.fd, buf, len);
}

static ssize_t user_writev(gn_conn *conn, const struct iovec *iov, int iovcnt)
{
    return (conn->ext->user_ops->writev)(conn, conn->io.fd, iov, iovcnt);
}

static ssize_t user_sendfile(gn_conn *conn, int fd, int64_t *offset, size_t len)
{
    return gn__sendfile_by_copy(conn, fd, offset, len, user_writev);
}

static int user_shutdown(gn_conn *conn)
{
    if (conn->ext->user_ops->shutdown)
        return (conn->ext->user_ops->shutdown)(conn, conn->io.fd);
    if (shutdown(conn->io.fd, SHUT_WR) < 0 && errno != ENOTCONN)
        return gn_error_from_errno(errno);
    return 0;
}

static const struct gn__transport transport_user = {
    .name = "user",
    .read = user_read,
    .writev = user_writev,
    .sendfile = user_sendfile,
    .shutdown = user_shutdown,
};

static void announce(gn_loop *loop, struct gn__deferred *d)
{
    gn_conn *conn = gn__container_of(d, struct gn__conn_ext, ready)->conn;

    (void)loop;
    if (conn->state == GN__OPEN)
        gn__conn_announce(conn);
}

static void adopted_gone(gn_conn *conn)
{
    (void)conn; /* the core unlinks it from the loop's handles */
}

/* No handshake ever runs on an adopted connection: ready is announce's. */
static const struct gn__conn_owner adopted_owner = {
    .ready = gn__conn_announce,
    .gone = adopted_gone,
    .mode = &gn__conn_mode_async,
};

/* gn_loop_free: a connection still open is aborted. */
static void adopted_close_handle(struct gn__handle *h)
{
    gn_abort(gn__container_of(h, struct gn__conn_ext, handle)->conn);
}

/* Why fd cannot be a connection, or NULL when it can.  A pipe or a file
 * would otherwise be taken and fail only later, at the first socket
 * option, with nothing better than GN_ESYS. */
static const char *unfit_reason(int fd)
{
    struct stat st;
    int type = 0, listening = 0;
    socklen_t len = sizeof(type);

#ifdef _WIN32 /* a SOCKET is no CRT descriptor: only WinSock can tell */
    (void)st;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return "closed, or not a socket";
#else
    if (fstat(fd, &st) < 0)
        return "closed";
    if (S_ISFIFO(st.st_mode))
        return "a pipe";
    if (S_ISREG(st.st_mode))
        return "a regular file";
    if (S_ISDIR(st.st_mode))
        return "a directory";
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
        return "a device";
    if (!S_ISSOCK(st.st_mode))
        return "another kind of file";
#endif
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
        return type == SOCK_DGRAM ? "a datagram socket" : "a socket of another type";
    len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening)
        return "a listening socket (accept its clients, then adopt those)";
    return NULL;
}

static gn_transport kind_of(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_UNIX)
        return GN_TRANSPORT_UNIX;
    return GN_TRANSPORT_TCP;
}

int gn_conn_adopt(gn_loop *loop, gn_socket sock, const gn_io_ops *ops, const gn_handlers *handlers,
                  const gn_options *opts, gn_conn **out)
{
    int fd = (int)sock; /* posix_win.h: a SOCKET fits an int */
    gn_options resolved;
    const char *why;
    gn_conn *conn;
    int rc;

    if (!loop || fd < 0 || !handlers || !out || (ops && (!ops->read || !ops->writev)) ||
        !GN__RESERVED_CLEAR(ops) || !GN__RESERVED_CLEAR(handlers) ||
        gn__options_check(opts, "", NULL, 0) < 0) {
        if (fd >= 0)
            close(fd);
        return GN_EINVAL;
    }
    why = unfit_reason(fd);
    if (why) {
        gn__log(GN_LOG_ERROR, "gn_conn_adopt: descriptor %d is %s, not a connected stream socket",
                fd, why);
        close(fd);
        return GN_EINVAL;
    }
    gn__options_resolve(&resolved, opts, false);
    rc = gn__socket_set_nonblocking(fd);
    if (rc == 0)
        rc = gn__conn_new_own(loop, &adopted_owner, NULL, -1, handlers, &resolved, &conn);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    conn->kind = kind_of(fd);
    if (ops) {
        conn->ext->user_ops = ops;
        conn->transport = &transport_user;
    }
    gn__conn_register(conn, adopted_close_handle); /* has its ext: cannot fail */
    conn->io.fd = fd;
    gn__conn_read_peer(conn); /* unknown for a socket that never connected */
    rc = gn__conn_established(conn, fd);
    if (rc < 0) {
        gn__conn_fail(conn, rc, "adopt: %s", gn_strerror(rc));
        *out = conn; /* on_error and on_close follow from the loop */
        return 0;
    }
    conn->ext->ready.fn = announce;
    gn__loop_defer(loop, &conn->ext->ready);
    *out = conn;
    return 0;
}

int gn_conn_pair(gn_loop *loop, const gn_io_ops *ops, const gn_handlers *a, const gn_handlers *b,
                 const gn_options *opts, gn_conn **out_a, gn_conn **out_b)
{
    int sv[2], rc;

    if (!loop || !a || !b || !out_a || !out_b)
        return GN_EINVAL;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return gn_error_from_errno(errno);
    rc = gn_conn_adopt(loop, sv[0], ops, a, opts, out_a);
    if (rc < 0) {
        close(sv[1]);
        return rc;
    }
    rc = gn_conn_adopt(loop, sv[1], ops, b, opts, out_b);
    if (rc < 0)
        gn_abort(*out_a);
    return rc;
}
