/*
 * Server sockets: listen on every address the text names, accept each
 * client into a new connection, keep the list of live connections, close
 * gracefully.
 *
 * Out of descriptors (EMFILE) a server keeps one spare descriptor open;
 * it closes the spare, accepts the waiting client, closes it and reopens
 * the spare, so clients are refused promptly instead of hanging in the
 * backlog while the listener spins (the trick libev and libuv document).
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"
#include "tls.h"

#define ACCEPT_BUDGET   64
#define ACCEPT_RETRY_MS 100

/* ---- listening ------------------------------------------------------ */

static void on_listener_io(gn_loop *loop, struct gn__io *io, unsigned events);

int gn__open_spare_fd(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static int bind_fd(int fd, const gn_endpoint *ep, const gn_options *opts, struct listener *l,
                   char *why, size_t whylen)
{
    socklen_t len;
    const struct sockaddr *sa = gn_endpoint_sockaddr(ep, &len);

    if (sa->sa_family == AF_UNIX)
        return gn__unix_bind(fd, ep, opts, l, why, whylen);
    if (bind(fd, sa, len) < 0)
        return gn_error_from_errno(errno);
    return 0;
}

static int listen_fd(const gn_endpoint *ep, const gn_options *opts, struct listener *l, int *out,
                     char *why, size_t whylen)
{
    socklen_t len;
    const struct sockaddr *sa = gn_endpoint_sockaddr(ep, &len);
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
    int one = 1, fd, rc;

    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return gn_error_from_errno(errno);
    /* Restarting a server must not wait out TIME_WAIT of old clients. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (sa->sa_family == AF_INET6) {
        /* "[::]" serves IPv4 too (dual stack); a specific IPv6 address
         * only itself, so it can sit beside an IPv4 listener. */
        int v6only = opts->ipv6_only || !IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    }
    rc = bind_fd(fd, ep, opts, l, why, whylen);
    if (rc == 0 && listen(fd, opts->backlog) < 0)
        rc = gn_error_from_errno(errno);
    if (rc < 0) {
        gn__unix_unlink(l);
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

static int add_listener(gn_server *srv, gn_endpoint ep, char *errbuf, size_t errlen)
{
    struct listener *l = &srv->listeners[srv->nlisteners];
    char text[GN_ENDPOINT_STRLEN], why[128] = "";
    int fd = -1, rc;

    /* Port 0 on several addresses: all get the port the first one got. */
    if (srv->nlisteners > 0 && gn_endpoint_port(&ep) == 0)
        gn__endpoint_set_port(&ep, gn_endpoint_port(&srv->listeners[0].ep));
    gn_endpoint_format(&ep, text, sizeof(text));
    *l = (struct listener){.srv = srv, .ep = ep};
    rc = listen_fd(&ep, &srv->opts, l, &fd, why, sizeof(why));
    if (rc < 0)
        return gn__errbuf_input(errbuf, errlen, rc, text, strlen(text), "cannot listen: %s",
                                why[0] ? why : gn_strerror(rc));
    l->io = (struct gn__io){.fd = fd, .cb = on_listener_io};
    rc = gn__socket_endpoints(fd, gn_endpoint_transport(&ep), &l->ep, NULL);
    if (rc == 0 && srv->loop) /* a threaded server polls on its own */
        rc = gn__io_watch(srv->loop, &l->io, GN__READ);
    if (rc < 0) {
        gn__unix_unlink(l);
        close(fd);
        return gn__errbuf_input(errbuf, errlen, rc, text, strlen(text), "cannot listen: %s",
                                gn_strerror(rc));
    }
    srv->nlisteners++;
    return 0;
}

/* A bare port means every address: "[::]" dual stack where the system
 * has IPv6, "0.0.0.0" where it has not. */
static int listen_any(gn_server *srv, const gn_endpoint *any, char *errbuf, size_t errlen)
{
    gn_endpoint ep;
    char text[32];
    int rc;

    snprintf(text, sizeof(text), "[::]:%u", (unsigned)gn_endpoint_port(any));
    gn_endpoint_parse(text, 0, &ep, NULL, 0);
    rc = add_listener(srv, ep, errbuf, errlen);
    if (rc != GN_EFAMILY)
        return rc;
    snprintf(text, sizeof(text), "0.0.0.0:%u", (unsigned)gn_endpoint_port(any));
    gn_endpoint_parse(text, 0, &ep, NULL, 0);
    return add_listener(srv, ep, errbuf, errlen);
}

int gn__server_listen(gn_server *srv, const gn_endpoint *ep, char *errbuf, size_t errlen)
{
    gn_endpoint addrs[MAX_LISTENERS];
    int n, rc;

    if (gn_endpoint_family(ep) == GN_FAMILY_ANY)
        return listen_any(srv, ep, errbuf, errlen);
    n = gn_resolve(ep, addrs, MAX_LISTENERS, errbuf, errlen);
    if (n < 0)
        return n;
    for (int i = 0; i < n && i < MAX_LISTENERS; i++) {
        rc = add_listener(srv, addrs[i], errbuf, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void gn__server_close_listeners(gn_server *srv)
{
    for (size_t i = 0; i < srv->nlisteners; i++) {
        struct listener *l = &srv->listeners[i];
        if (l->io.fd < 0)
            continue;
        if (srv->loop)
            gn__io_watch(srv->loop, &l->io, 0);
        close(l->io.fd);
        l->io.fd = -1;
        gn__unix_unlink(l);
    }
}

static void server_free(gn_loop *loop, struct gn__deferred *d)
{
    gn_server *srv = (gn_server *)((char *)d - offsetof(gn_server, free_later));

    if (srv->prev)
        srv->prev->next = srv->next;
    else
        loop->servers = srv->next;
    if (srv->next)
        srv->next->prev = srv->prev;
    if (srv->spare_fd >= 0)
        close(srv->spare_fd);
    gn__tls_config_free(srv->tls);
    gn__loop_unref(loop);
    free(srv);
}

static int check_listen_args(gn_loop *loop, const char *address, const gn_handlers *handlers,
                             gn_server **out, char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!loop || !address || !handlers || !out)
        return gn__errbuf_input(errbuf, errlen, GN_EINVAL, "", 0, "%s",
                                "loop, address, handlers and out must not be NULL");
    return 0;
}

int gn__server_open(gn_loop *loop, const char *address, const gn_options *opts, gn_server **out,
                    char *errbuf, size_t errlen)
{
    gn_endpoint ep;
    gn_server *srv;
    int rc = gn__parse_stream_address(address, GN_PARSE_LISTEN, &ep, errbuf, errlen);

    if (rc < 0)
        return rc;
    srv = calloc(1, sizeof(*srv));
    if (!srv)
        return GN_ENOMEM;
    srv->loop = loop;
    srv->spare_fd = -1;
    gn__options_resolve(&srv->opts, opts, true);
    srv->user_data = srv->opts.user_data;
    rc = gn__server_tls_setup(srv, &ep, address, errbuf, errlen);
    if (rc == 0)
        rc = gn__server_listen(srv, &ep, errbuf, errlen);
    if (rc < 0) {
        gn__server_close_listeners(srv);
        gn__tls_config_free(srv->tls);
        free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

int gn_listen(gn_loop *loop, const char *address, const gn_handlers *handlers,
              const gn_options *opts, gn_server **out, char *errbuf, size_t errlen)
{
    gn_server *srv;
    int rc = check_listen_args(loop, address, handlers, out, errbuf, errlen);

    if (rc == 0)
        rc = gn__server_open(loop, address, opts, &srv, errbuf, errlen);
    if (rc < 0)
        return rc;
    srv->h = *handlers;
    srv->free_later.fn = server_free;
    srv->spare_fd = gn__open_spare_fd();
    srv->next = loop->servers;
    if (loop->servers)
        loop->servers->prev = srv;
    loop->servers = srv;
    gn__loop_ref(loop);
    *out = srv;
    return 0;
}

/* ---- accepting ------------------------------------------------------ */

static void set_accepting(gn_server *srv, bool on)
{
    for (size_t i = 0; i < srv->nlisteners; i++)
        if (srv->listeners[i].io.fd >= 0)
            gn__io_watch(srv->loop, &srv->listeners[i].io, on ? GN__READ : 0);
}

static void resume_accepting(gn_loop *loop, uint64_t id, void *arg)
{
    gn_server *srv = arg;

    (void)loop;
    (void)id;
    srv->retry_timer = 0;
    srv->accept_paused = false;
    if (!srv->closing)
        set_accepting(srv, true);
}

/* Out of descriptors or memory: refuse the client now if the spare
 * descriptor allows, else stop accepting for a moment (level-triggered
 * readiness would otherwise spin the loop at 100% CPU). */
bool gn__server_refuse_one(gn_server *srv, int listen_fd)
{
    int victim;

    if (srv->spare_fd < 0)
        return false;
    close(srv->spare_fd);
    victim = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (victim >= 0)
        close(victim);
    srv->spare_fd = gn__open_spare_fd();
    gn__log(GN_LOG_WARN, "out of file descriptors: refused a client");
    return true;
}

static void shed_load(gn_server *srv, int fd, int err)
{
    if (err == EMFILE && gn__server_refuse_one(srv, fd))
        return;
    gn__log(GN_LOG_WARN, "accept: %s; pausing accepts for %d ms", strerror(err), ACCEPT_RETRY_MS);
    srv->accept_paused = true;
    set_accepting(srv, false);
    gn_timer_start(srv->loop, ACCEPT_RETRY_MS, 0, resume_accepting, srv, &srv->retry_timer);
}

void gn__server_link(gn_server *srv, gn_conn *conn)
{
    conn->prev = srv->tail;
    conn->next = NULL;
    if (srv->tail)
        srv->tail->next = conn;
    else
        srv->head = conn;
    srv->tail = conn;
    srv->live++;
}

static void adopt_client(gn_server *srv, const struct listener *l, int fd)
{
    gn_conn *conn;
    int rc;

    if (srv->live >= srv->opts.max_conns) {
        gn__log(GN_LOG_WARN, "max_conns (%zu) reached: refused a client", srv->opts.max_conns);
        close(fd);
        return;
    }
    rc = gn__conn_new(srv->loop, srv, fd, &srv->h, &srv->opts, &conn);
    if (rc < 0) {
        close(fd);
        return;
    }
    conn->kind = gn_endpoint_transport(&l->ep);
    gn__server_link(srv, conn);
    if (srv->tls) {
        /* The user meets the connection after the handshake, if ever. */
        conn->h = (gn_handlers){0};
        rc = gn__tls_attach(conn, srv->tls, false);
        if (rc == 0)
            rc = gn__conn_established(conn, fd);
        if (rc == 0)
            rc = gn__conn_start_handshake(conn, gn__tls_handshake_ms(srv->tls));
    } else {
        rc = gn__conn_established(conn, fd);
        if (rc == 0)
            gn__server_conn_ready(conn);
    }
    if (rc < 0) {
        /* e.g. the client reset before getpeername: nothing to report to
         * on_accept, so the connection ends unseen. */
        conn->h = (gn_handlers){0};
        gn__conn_fail(conn, rc, "setup: %s", gn_strerror(rc));
    }
}

void gn__server_conn_ready(gn_conn *conn)
{
    conn->h = conn->server->h;
    if (conn->h.on_accept)
        conn->h.on_accept(conn);
}

int gn__server_tls_setup(gn_server *srv, const gn_endpoint *ep, const char *address, char *errbuf,
                         size_t errlen)
{
    if (gn_endpoint_transport(ep) != GN_TRANSPORT_TLS)
        return 0;
    return gn__tls_config_new(srv->opts.tls, true, NULL, address, &srv->tls, errbuf, errlen);
}

static void on_listener_io(gn_loop *loop, struct gn__io *io, unsigned events)
{
    struct listener *l = (struct listener *)io;
    gn_server *srv = l->srv;

    (void)loop;
    (void)events;
    for (int i = 0; i < ACCEPT_BUDGET && !srv->closing && !srv->accept_paused; i++) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            adopt_client(srv, l, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            shed_load(srv, io->fd, errno);
        return;
    }
}

/* ---- closing -------------------------------------------------------- */

static void abort_remaining(gn_loop *loop, uint64_t id, void *arg)
{
    gn_server *srv = arg;

    (void)loop;
    (void)id;
    srv->grace_timer = 0;
    for (gn_conn *conn = srv->head; conn; conn = conn->next)
        gn_abort(conn);
}

static void maybe_free(gn_server *srv)
{
    if (!srv->closing || srv->head || srv->free_queued)
        return;
    srv->free_queued = true;
    if (srv->grace_timer)
        gn_timer_cancel(srv->loop, srv->grace_timer);
    if (srv->retry_timer)
        gn_timer_cancel(srv->loop, srv->retry_timer);
    srv->grace_timer = srv->retry_timer = 0;
    gn__loop_defer(srv->loop, &srv->free_later);
}

void gn_server_close(gn_server *srv, uint32_t grace_ms)
{
    if (!srv || srv->closing)
        return;
    if (srv->threads) {
        gn__threads_close(srv, grace_ms);
        return;
    }
    srv->closing = true;
    gn__server_close_listeners(srv);
    for (gn_conn *conn = srv->head; conn; conn = conn->next)
        gn_close(conn);
    if (srv->head && grace_ms > 0)
        gn_timer_start(srv->loop, grace_ms, 0, abort_remaining, srv, &srv->grace_timer);
    else if (srv->head)
        abort_remaining(srv->loop, 0, srv);
    maybe_free(srv);
}

void gn__server_abort(gn_server *srv)
{
    gn_server_close(srv, 0);
    abort_remaining(srv->loop, 0, srv);
}

gn_server *gn__server_next(gn_server *srv)
{
    return srv->next;
}

void gn__server_conn_closing(gn_server *srv)
{
    srv->live--;
}

void gn__server_unlink(gn_server *srv, gn_conn *conn)
{
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        srv->head = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    else
        srv->tail = conn->prev;
}

void gn__server_conn_gone(gn_server *srv, gn_conn *conn)
{
    gn__server_unlink(srv, conn);
    maybe_free(srv);
}

/* ---- accessors ------------------------------------------------------ */

size_t gn_server_conn_count(const gn_server *srv)
{
    if (srv && srv->threads)
        return gn__threads_conn_count(srv);
    return srv ? srv->live : 0;
}

int gn_server_foreach(gn_server *srv, void (*fn)(gn_conn *conn, void *arg), void *arg)
{
    int visited = 0;
    gn_conn *conn, *next;

    if (!srv || !fn)
        return GN_EINVAL;
    if (srv->threads)
        return gn__threads_foreach(srv, fn, arg);
    /* Connections are unlinked only after the batch, so next stays valid
     * whatever fn closes. */
    for (conn = srv->head; conn; conn = next) {
        next = conn->next;
        if (conn->state == GN__CLOSED || conn->handshaking)
            continue; /* not yet, or no longer, the user's */
        fn(conn, arg);
        visited++;
    }
    return visited;
}

int gn_server_endpoint(const gn_server *srv, size_t i, gn_endpoint *out)
{
    if (!srv || !out)
        return GN_EINVAL;
    if (i >= srv->nlisteners)
        return GN_ENOTFOUND;
    *out = srv->listeners[i].ep;
    return 0;
}

gn_loop *gn_server_loop(const gn_server *srv)
{
    return srv ? srv->loop : NULL;
}

void *gn_server_user_data(const gn_server *srv)
{
    return srv ? srv->user_data : NULL;
}

void gn_server_set_user_data(gn_server *srv, void *data)
{
    if (srv)
        srv->user_data = data;
}
