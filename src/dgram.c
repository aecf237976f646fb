/*
 * Datagram sockets (UDP and Unix datagram): opening, the asynchronous
 * receive and send paths, the send queue, closing.
 *
 * Receiving passes MSG_TRUNC to recvmsg, so the kernel returns a
 * datagram's real length even when the buffer was smaller: a datagram
 * over max_datagram is reported (GN_EMSGSIZE) and dropped, never handed
 * over cut.  Each readiness event reads at most READ_BUDGET datagrams
 * into the socket's one buffer (no allocation per datagram), so a flood
 * on one socket cannot starve the others.
 *
 * Sending tries sendto at once while the queue is empty; a datagram the
 * socket will not take now is copied into a FIFO queue (with its
 * destination) and sent when the socket is writable.  An unconnected
 * Unix datagram socket is the exception: its writability says nothing
 * about the receiver's queue (Linux unix_dgram_poll checks the peer only
 * for connected sockets), so level-triggered EPOLLOUT would spin while
 * the receiver is full.  Such a socket retries on a short timer instead.
 */
#define _GNU_SOURCE /* MSG_NOSIGNAL, SOCK_NONBLOCK */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dgram.h"
#include "faults.h"
#include "reserved.h"

#define READ_BUDGET          64
#define DEFAULT_MAX_DATAGRAM 65507 /* 65535 - 20 (IPv4 header) - 8 (UDP header) */
#define DEFAULT_MAX_QUEUE    (1u << 20)
#define RETRY_MS             5

/* ---- opening -------------------------------------------------------- */

static int open_error(char *errbuf, size_t errlen, int code, const gn_endpoint *ep,
                      const char *what)
{
    char text[GN_ENDPOINT_STRLEN];
    const char *hint = "";

    gn_endpoint_format(ep, text, sizeof(text));
    if (code == GN_EADDRINUSE && gn_endpoint_family(ep) == GN_FAMILY_UNIX &&
        !gn_endpoint_is_abstract(ep))
        hint = " (a file exists at the path; remove it if it is stale)";
    /* socket() refused the family (win/posix_win.c) */
    if (code == GN_ENOTSUP && gn_endpoint_family(ep) == GN_FAMILY_UNIX)
        hint = " (this system has no Unix datagram sockets: Windows' AF_UNIX has stream sockets "
               "only, Wine 8 none at all)";
    return gn__errbuf_input(errbuf, errlen, code, text, strlen(text), "cannot %s: %s%s", what,
                            gn_strerror(code), hint);
}

static int errno_code(int err)
{
    /* connect(2) to a Unix path with nothing there */
    return err == ENOENT ? GN_ENOTFOUND : gn_error_from_errno(err);
}

static int read_endpoint(int fd, bool peer, gn_transport transport, gn_endpoint *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
                  : getsockname(fd, (struct sockaddr *)&ss, &len);

    if (rc < 0)
        return gn_error_from_errno(errno);
    if (len < (socklen_t)sizeof(sa_family_t)) {
        ss.ss_family = AF_UNIX; /* unnamed */
        len = sizeof(sa_family_t);
    }
    return gn_endpoint_from_sockaddr((struct sockaddr *)&ss, len, transport, out);
}

static int bind_here(gn_dgram *sock, const struct sockaddr *sa, socklen_t len)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

    if (sa->sa_family == AF_INET6) {
        /* "[::]" serves IPv4 too unless asked not to; a specific IPv6
         * address only itself. */
        int v6only = sock->opts.ipv6_only || !IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
        setsockopt(sock->io.fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    }
    /* No SO_REUSEADDR: for UDP on Linux it lets a second socket bind the
     * same port and silently steal half the datagrams. */
    if (bind(sock->io.fd, sa, len) < 0)
        return gn_error_from_errno(errno);
    if (sa->sa_family == AF_UNIX && len > sizeof(sa_family_t) &&
        ((const struct sockaddr_un *)sa)->sun_path[0] != '\0')
        sock->unlink_path = true;
    return 0;
}

static int connect_there(gn_dgram *sock, const struct sockaddr *sa, socklen_t len)
{
    /* A Unix client must have a name of its own or the server cannot
     * answer; Linux autobinds a unique abstract one for a bare family. */
    static const struct sockaddr_un autobind = {.sun_family = AF_UNIX};

    if (sa->sa_family == AF_UNIX &&
        bind(sock->io.fd, (const struct sockaddr *)&autobind, sizeof(sa_family_t)) < 0)
        return gn_error_from_errno(errno);
    while (connect(sock->io.fd, sa, len) < 0)
        if (errno != EINTR)
            return errno_code(errno);
    sock->connected = true;
    return 0;
}

/* The socket for one resolved endpoint, bound or connected. */
static int open_on(gn_dgram *sock, const gn_endpoint *ep, unsigned flags, char *errbuf,
                   size_t errlen)
{
    socklen_t len;
    const struct sockaddr *sa = gn_endpoint_sockaddr(ep, &len);
    int rc;

    sock->io.fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sock->io.fd < 0)
        return open_error(errbuf, errlen, gn_error_from_errno(errno), ep, "open a socket");
    sock->family = sa->sa_family;
    rc = flags & GN_DGRAM_BIND ? bind_here(sock, sa, len) : connect_there(sock, sa, len);
    if (rc == 0)
        rc = read_endpoint(sock->io.fd, false, sock->transport, &sock->local);
    if (rc == 0 && sock->connected)
        rc = read_endpoint(sock->io.fd, true, sock->transport, &sock->remote);
    if (rc < 0) {
        gn__dgram_close_fd(sock);
        return open_error(errbuf, errlen, rc, ep, flags & GN_DGRAM_BIND ? "bind" : "connect");
    }
    return 0;
}

/* A bare port: "[::]" dual stack, or "0.0.0.0" where IPv6 is missing. */
static int open_any(gn_dgram *sock, const gn_endpoint *any, char *errbuf, size_t errlen)
{
    gn_endpoint ep;
    char text[40];
    int rc;

    snprintf(text, sizeof(text), "udp://[::]:%u", (unsigned)gn_endpoint_port(any));
    gn_endpoint_parse(text, 0, &ep, NULL, 0);
    rc = open_on(sock, &ep, GN_DGRAM_BIND, errbuf, errlen);
    if (rc != GN_EFAMILY)
        return rc;
    snprintf(text, sizeof(text), "udp://0.0.0.0:%u", (unsigned)gn_endpoint_port(any));
    gn_endpoint_parse(text, 0, &ep, NULL, 0);
    return open_on(sock, &ep, GN_DGRAM_BIND, errbuf, errlen);
}

static int parse_address(const char *address, unsigned flags, gn_endpoint *ep, char *errbuf,
                         size_t errlen)
{
    gn_transport t;
    int rc;

    if (flags != GN_DGRAM_BIND && flags != GN_DGRAM_CONNECT)
        return gn__errbuf_input(errbuf, errlen, GN_EINVAL, address, strlen(address), "%s",
                                "flags must be GN_DGRAM_BIND or GN_DGRAM_CONNECT");
    rc =
        gn_endpoint_parse(address, flags & GN_DGRAM_BIND ? GN_PARSE_LISTEN : 0, ep, errbuf, errlen);
    if (rc < 0)
        return rc;
    t = gn_endpoint_transport(ep);
    if (t != GN_TRANSPORT_UDP && t != GN_TRANSPORT_UNIXGRAM)
        return gn__errbuf_input(errbuf, errlen, GN_EFAMILY, address, strlen(address),
                                "a %s address is not a datagram address: use udp://HOST:PORT "
                                "or unixgram:PATH",
                                gn_transport_name(t));
    return 0;
}

static void options_resolve(gn_dgram_options *out, const gn_dgram_options *in)
{
    *out = in ? *in : (gn_dgram_options){0};
    if (!out->max_datagram)
        out->max_datagram = DEFAULT_MAX_DATAGRAM;
    if (!out->max_queue)
        out->max_queue = DEFAULT_MAX_QUEUE;
}

int gn__dgram_create(gn_loop *loop, const char *address, unsigned flags,
                     const gn_dgram_options *opts, gn_dgram **out, char *errbuf, size_t errlen)
{
    gn_endpoint ep, addr;
    gn_dgram *sock;
    int rc;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!address || !out)
        return gn__errbuf_input(errbuf, errlen, GN_EINVAL, "", 0, "%s",
                                "loop, address and out must not be NULL");
    if (!GN__RESERVED_CLEAR(opts))
        return gn__reserved_error("gn_dgram_options", errbuf, errlen);
    rc = parse_address(address, flags, &ep, errbuf, errlen);
    if (rc < 0)
        return rc;
    if (gn_endpoint_family(&ep) != GN_FAMILY_ANY) {
        rc = gn_resolve(&ep, &addr, 1, errbuf, errlen); /* the first address */
        if (rc < 0)
            return rc;
    }
    sock = calloc(1, sizeof(*sock));
    if (!sock)
        return GN_ENOMEM;
    sock->io.fd = -1;
    sock->loop = loop;
    gn__list_init(&sock->queue);
    gn__list_init(&sock->handle.node);
    sock->transport = gn_endpoint_transport(&ep);
    options_resolve(&sock->opts, opts);
    sock->user_data = sock->opts.user_data;
    if (gn_endpoint_family(&ep) == GN_FAMILY_ANY)
        rc = open_any(sock, &ep, errbuf, errlen);
    else
        rc = open_on(sock, &addr, flags, errbuf, errlen);
    if (rc < 0) {
        free(sock);
        return rc;
    }
    sock->retry_by_timer = sock->transport == GN_TRANSPORT_UNIXGRAM && !sock->connected;
    *out = sock;
    return 0;
}

void gn__dgram_close_fd(gn_dgram *sock)
{
    char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
    const char *p;
    size_t len;

    if (sock->io.fd < 0)
        return;
    if (sock->loop)
        gn__io_watch(sock->loop, &sock->io, 0);
    close(sock->io.fd);
    sock->io.fd = -1;
    p = gn_endpoint_path(&sock->local, &len);
    if (sock->unlink_path && p && len > 0 && len < sizeof(path)) {
        memcpy(path, p, len);
        path[len] = '\0';
        unlink(path);
    }
    sock->unlink_path = false;
}

static void drop_queue(gn_dgram *sock)
{
    struct gn__list *node;

    while ((node = gn__list_pop_front(&sock->queue)))
        free(gn__container_of(node, struct gn__dgram_msg, node));
    sock->queued = 0;
}

void gn__dgram_release(gn_dgram *sock)
{
    gn__dgram_close_fd(sock);
    drop_queue(sock);
    free(sock->rbuf);
    free(sock);
}

/* ---- sending -------------------------------------------------------- */

/* An IPv4 destination on a dual-stack IPv6 socket goes as ::ffff:a.b.c.d;
 * received IPv4 senders are unmapped, so replies need this. */
static void map_v4(const struct sockaddr_in *sin, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = sin->sin_port};

    sin6.sin6_addr.s6_addr[10] = 0xff;
    sin6.sin6_addr.s6_addr[11] = 0xff;
    memcpy(sin6.sin6_addr.s6_addr + 12, &sin->sin_addr, 4);
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, &sin6, sizeof(sin6));
    *len = sizeof(sin6);
}

int gn__dgram_dest(const gn_dgram *sock, const void *data, size_t len, const gn_endpoint *to,
                   struct sockaddr_storage *ss, socklen_t *sslen)
{
    const struct sockaddr *sa;
    socklen_t n;

    if (!data && len > 0)
        return GN_EINVAL;
    if (sock->closed || sock->io.fd < 0)
        return GN_ECLOSED;
    if (len > sock->opts.max_datagram)
        return GN_EMSGSIZE;
    *sslen = 0;
    if (!to)
        return sock->connected ? 0 : GN_EINVAL;
    if (!gn_endpoint_is_resolved(to))
        return GN_EINVAL;
    sa = gn_endpoint_sockaddr(to, &n);
    if (sa->sa_family == sock->family) {
        memcpy(ss, sa, n);
        *sslen = n;
        return 0;
    }
    if (sock->family == AF_INET6 && sa->sa_family == AF_INET) {
        map_v4((const struct sockaddr_in *)sa, ss, sslen);
        return 0;
    }
    return GN_EFAMILY;
}

int gn__dgram_sendto(int fd, const void *data, size_t len, const struct sockaddr_storage *ss,
                     socklen_t sslen)
{
    const struct sockaddr *sa = sslen ? (const struct sockaddr *)ss : NULL;

    for (;;) {
        if (gn__sendto(fd, data, len, MSG_NOSIGNAL, sa, sslen) >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return GN__DGRAM_AGAIN;
        return errno_code(errno);
    }
}

static void dgram_update_watch(gn_dgram *sock)
{
    bool want_write = !gn__list_empty(&sock->queue) && !sock->retry_by_timer;

    if (sock->io.fd >= 0)
        gn__io_watch(sock->loop, &sock->io, GN__READ | (want_write ? GN__WRITE : 0u));
}

static void dgram_report(gn_dgram *sock, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void dgram_report(gn_dgram *sock, int code, const char *fmt, ...)
{
    char message[GN_ERRBUF_SIZE];
    va_list ap;

    if (!sock->h.on_error)
        return;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    sock->h.on_error(sock, code, message);
}

static void format_dest(const gn_dgram *sock, const struct gn__dgram_msg *m, char *buf, size_t len)
{
    gn_endpoint ep;

    if (!m->tolen) {
        gn_endpoint_format(&sock->remote, buf, len);
        return;
    }
    if (gn_endpoint_from_sockaddr((const struct sockaddr *)&m->to, m->tolen, sock->transport, &ep) <
            0 ||
        gn_endpoint_format(&ep, buf, len) < 0)
        snprintf(buf, len, "?");
}

static void retry_later(gn_loop *loop, uint64_t id, void *arg);

/* Send queued datagrams in order until the socket is full.  Returns
 * false when a handler closed the socket. */
static bool dgram_flush(gn_dgram *sock, bool quiet)
{
    char dest[GN_ENDPOINT_STRLEN];
    bool refused_once = false;
    struct gn__dgram_msg *m;
    int rc;

    while (!gn__list_empty(&sock->queue) && sock->io.fd >= 0) {
        m = gn__container_of(sock->queue.next, struct gn__dgram_msg, node);
        rc = gn__dgram_sendto(sock->io.fd, m->data, m->len, &m->to, m->tolen);
        if (rc == GN__DGRAM_AGAIN)
            break;
        if (rc == GN_ECONNREFUSED && !refused_once) {
            /* The error belongs to an earlier datagram (ICMP port
             * unreachable) and reading it cleared it: try this one again. */
            refused_once = true;
            if (!quiet) {
                format_dest(sock, m, dest, sizeof(dest));
                dgram_report(sock, rc, "%s: connection refused (nothing listens there)", dest);
            }
            if (sock->closed && !quiet)
                return false;
            continue;
        }
        gn__list_remove(&m->node);
        sock->queued -= m->len;
        if (rc < 0 && !quiet) {
            format_dest(sock, m, dest, sizeof(dest));
            dgram_report(sock, rc, "%s: a queued datagram of %zu bytes was dropped: %s", dest,
                         m->len, gn_strerror(rc));
        }
        free(m);
        if (sock->closed && !quiet)
            return false;
    }
    return true;
}

static void after_flush(gn_dgram *sock)
{
    if (sock->closed)
        return;
    dgram_update_watch(sock);
    if (!gn__list_empty(&sock->queue) && sock->retry_by_timer && !sock->retry_timer)
        gn_timer_start(sock->loop, RETRY_MS, 0, retry_later, sock, &sock->retry_timer);
    if (gn__list_empty(&sock->queue) && sock->h.on_drain)
        sock->h.on_drain(sock);
}

static void retry_later(gn_loop *loop, uint64_t id, void *arg)
{
    gn_dgram *sock = arg;

    (void)loop;
    (void)id;
    sock->retry_timer = 0;
    if (dgram_flush(sock, false))
        after_flush(sock);
}

static int dgram_enqueue(gn_dgram *sock, const void *data, size_t len,
                         const struct sockaddr_storage *ss, socklen_t sslen)
{
    struct gn__dgram_msg *m;

    /* All or nothing, so a caller can wait for on_drain and resend. */
    if (len > sock->opts.max_queue - sock->queued)
        return GN_ENOBUFS;
    m = malloc(sizeof(*m) + len);
    if (!m)
        return GN_ENOMEM;
    m->tolen = sslen;
    if (sslen)
        memcpy(&m->to, ss, sslen);
    m->len = len;
    if (len)
        memcpy(m->data, data, len);
    gn__list_push_back(&sock->queue, &m->node);
    sock->queued += len;
    return 0;
}

static int send_async(gn_dgram *sock, const void *data, size_t len, const gn_endpoint *to)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    bool was_empty;
    int rc;

    if (!sock)
        return GN_EINVAL;
    if (sock->blocking)
        return GN_EMODE; /* gn_dgram_send_wait is the blocking send */
    rc = gn__dgram_dest(sock, data, len, to, &ss, &sslen);
    if (rc < 0)
        return rc;
    was_empty = gn__list_empty(&sock->queue);
    if (was_empty) {
        rc = gn__dgram_sendto(sock->io.fd, data, len, &ss, sslen);
        if (rc != GN__DGRAM_AGAIN)
            return rc;
    }
    rc = dgram_enqueue(sock, data, len, &ss, sslen);
    if (rc == 0 && was_empty) {
        dgram_update_watch(sock);
        if (sock->retry_by_timer && !sock->retry_timer)
            gn_timer_start(sock->loop, RETRY_MS, 0, retry_later, sock, &sock->retry_timer);
    }
    return rc;
}

int gn_dgram_send_to(gn_dgram *sock, const void *data, size_t len, const gn_endpoint *to)
{
    if (!to)
        return GN_EINVAL;
    return send_async(sock, data, len, to);
}

int gn_dgram_send(gn_dgram *sock, const void *data, size_t len)
{
    return send_async(sock, data, len, NULL);
}

/* ---- receiving ------------------------------------------------------ */

ssize_t gn__dgram_recvfrom(const gn_dgram *sock, void *buf, size_t size, gn_endpoint *from,
                           bool *cut)
{
    struct sockaddr_storage ss;
    struct iovec iov = {.iov_base = buf, .iov_len = size};
    struct msghdr msg = {
        .msg_name = &ss, .msg_namelen = sizeof(ss), .msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;

    for (;;) {
        /* MSG_TRUNC in flags: the real length, even past size (Linux
         * udp(7), unix(7) since 3.4; win/posix_win.c on Windows). */
        n = gn__recvmsg(sock->io.fd, &msg, MSG_TRUNC);
        if (n >= 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return GN__DGRAM_AGAIN;
        return gn_error_from_errno(errno);
    }
    *cut = (msg.msg_flags & MSG_TRUNC) || (size_t)n > size;
    if (msg.msg_namelen < sizeof(sa_family_t)) {
        ss.ss_family = (sa_family_t)sock->family; /* an unnamed Unix sender */
        msg.msg_namelen = sizeof(sa_family_t);
    }
    if (from && gn_endpoint_from_sockaddr((struct sockaddr *)&ss, msg.msg_namelen, sock->transport,
                                          from) < 0)
        *from = sock->remote;
    return n;
}

static void report_recv_error(gn_dgram *sock, int code)
{
    char peer[GN_ENDPOINT_STRLEN] = "";

    if (sock->connected)
        gn_endpoint_format(&sock->remote, peer, sizeof(peer));
    if (code == GN_ECONNREFUSED)
        dgram_report(sock, code, "%s: connection refused (nothing listens there)", peer);
    else
        dgram_report(sock, code, "%s%sreceive failed: %s", peer, peer[0] ? ": " : "",
                     gn_strerror(code));
}

static void dgram_read_some(gn_dgram *sock)
{
    char sender[GN_ENDPOINT_STRLEN];
    gn_endpoint from;
    bool cut = false;

    for (int i = 0; i < READ_BUDGET && !sock->closed; i++) {
        ssize_t n = gn__dgram_recvfrom(sock, sock->rbuf, sock->opts.max_datagram, &from, &cut);
        if (n == GN__DGRAM_AGAIN)
            return;
        if (n < 0) {
            report_recv_error(sock, (int)n);
            continue;
        }
        if (cut) {
            if (gn_endpoint_format(&from, sender, sizeof(sender)) <= 0)
                snprintf(sender, sizeof(sender), "an unnamed sender");
            dgram_report(sock, GN_EMSGSIZE,
                         "%s: a datagram of %zd bytes is larger than max_datagram (%zu); dropped",
                         sender, n, sock->opts.max_datagram);
            continue;
        }
        if (sock->h.on_datagram)
            sock->h.on_datagram(sock, sock->rbuf, (size_t)n, &from);
    }
}

static void dgram_on_io(gn_loop *loop, struct gn__io *io, unsigned events)
{
    gn_dgram *sock = (gn_dgram *)io;

    (void)loop;
    if (events & (GN__READ | GN__ERROR))
        dgram_read_some(sock);
    if (!sock->closed && (events & GN__WRITE) && dgram_flush(sock, false))
        after_flush(sock);
}

/* ---- opening and closing on a loop ---------------------------------- */

static void dgram_close_handle(struct gn__handle *h);

static void dgram_finalize(gn_loop *loop, struct gn__deferred *d)
{
    gn_dgram *sock = gn__container_of(d, gn_dgram, finalize);

    if (sock->h.on_close)
        sock->h.on_close(sock, 0);
    gn__loop_unref(loop);
    gn__dgram_release(sock);
}

int gn_dgram_open(gn_loop *loop, const char *address, unsigned flags,
                  const gn_dgram_handlers *handlers, const gn_dgram_options *opts, gn_dgram **out,
                  char *errbuf, size_t errlen)
{
    gn_dgram *sock;
    int rc;

    if (!loop || !out)
        return gn__errbuf_input(errbuf, errlen, GN_EINVAL, "", 0, "%s",
                                "loop, address and out must not be NULL");
    if (!GN__RESERVED_CLEAR(handlers))
        return gn__reserved_error("gn_dgram_handlers", errbuf, errlen);
    rc = gn__dgram_create(loop, address, flags, opts, &sock, errbuf, errlen);
    if (rc < 0)
        return rc;
    if (handlers)
        sock->h = *handlers;
    sock->io.cb = dgram_on_io;
    sock->finalize.fn = dgram_finalize;
    sock->rbuf = malloc(sock->opts.max_datagram);
    rc = sock->rbuf ? gn__io_watch(loop, &sock->io, GN__READ) : GN_ENOMEM;
    if (rc < 0) {
        gn__dgram_release(sock);
        return rc;
    }
    sock->handle.close = dgram_close_handle;
    gn__loop_handle_add(loop, &sock->handle, false);
    gn__loop_ref(loop);
    *out = sock;
    return 0;
}

int gn_dgram_close(gn_dgram *sock)
{
    if (!sock)
        return GN_EINVAL;
    if (sock->blocking) {
        gn__dgram_release(sock);
        return 0;
    }
    if (sock->closed)
        return 0;
    sock->closed = true;
    gn__loop_handle_remove(&sock->handle);
    dgram_flush(sock, true); /* one last try, no handlers: the rest is dropped */
    drop_queue(sock);
    if (sock->retry_timer)
        gn_timer_cancel(sock->loop, sock->retry_timer);
    sock->retry_timer = 0;
    gn__dgram_close_fd(sock);
    gn__loop_defer(sock->loop, &sock->finalize);
    return 0;
}

static void dgram_close_handle(struct gn__handle *h)
{
    gn_dgram_close(gn__container_of(h, gn_dgram, handle));
}

/* ---- accessors ------------------------------------------------------ */

const gn_endpoint *gn_dgram_local(const gn_dgram *sock)
{
    return sock ? &sock->local : NULL;
}

const gn_endpoint *gn_dgram_remote(const gn_dgram *sock)
{
    return sock && sock->connected ? &sock->remote : NULL;
}

size_t gn_dgram_queued(const gn_dgram *sock)
{
    return sock ? sock->queued : 0;
}

void *gn_dgram_user_data(const gn_dgram *sock)
{
    return sock ? sock->user_data : NULL;
}

void gn_dgram_set_user_data(gn_dgram *sock, void *data)
{
    if (sock)
        sock->user_data = data;
}
