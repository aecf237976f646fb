/*
 * What every server has, whichever kind serves its clients (the
 * event-driven one, server.c; the threaded one, server_threads.c): its
 * listening sockets, the list of its connections, the spare descriptor
 * for shedding clients out of EMFILE, and the public calls, which reach
 * the kind through srv->kind.
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

#include "reserved.h"
#include "server.h"
#include "tls.h"

/* ---- listening ------------------------------------------------------ */

static int open_spare_fd(void)
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
    if (fd < 0) {
        rc = gn_error_from_errno(errno);
        if (rc == GN_ENOTSUP && sa->sa_family == AF_UNIX)
            snprintf(why, whylen, "%s", GN__NO_UNIX_SOCKETS);
        return rc;
    }
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
    rc = listen_fd(&ep, &srv->prof.opts, l, &fd, why, sizeof(why));
    if (rc < 0)
        return gn__errbuf_input(errbuf, errlen, rc, text, strlen(text), "cannot listen: %s",
                                why[0] ? why : gn_strerror(rc));
    l->io = (struct gn__io){.fd = fd, .cb = srv->kind->on_listener};
    /* Not watched yet: the kind starts accepting (a threaded server polls
     * on its own). */
    rc = gn__socket_endpoints(fd, gn_endpoint_transport(&ep), &l->ep, NULL);
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

static int server_listen(gn_server *srv, const gn_endpoint *ep, char *errbuf, size_t errlen)
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
        if (srv->kind->on_listener)
            gn__io_watch(srv->loop, &l->io, 0);
        close(l->io.fd);
        l->io.fd = -1;
        gn__unix_unlink(l);
    }
}

static int server_tls_setup(gn_server *srv, const gn_endpoint *ep, const char *address,
                            char *errbuf, size_t errlen)
{
    if (gn_endpoint_transport(ep) != GN_TRANSPORT_TLS)
        return 0;
    return gn__tls_config_new(srv->prof.opts.tls, true, NULL, address, &srv->tls, errbuf, errlen);
}

int gn__server_open(gn_loop *loop, const struct gn__server_kind *kind, const char *address,
                    const gn_options *opts, gn_server **out, char *errbuf, size_t errlen)
{
    gn_endpoint ep;
    gn_server *srv;
    int rc = gn__options_check(opts, address, errbuf, errlen);

    if (rc == 0)
        rc = gn__parse_stream_address(address, GN_PARSE_LISTEN, &ep, errbuf, errlen);
    if (rc < 0)
        return rc;
    srv = calloc(1, sizeof(*srv));
    if (!srv)
        return GN_ENOMEM;
    srv->loop = loop;
    srv->kind = kind;
    srv->spare_fd = -1;
    gn__list_init(&srv->conns);
    gn__list_init(&srv->handle.node);
    gn__options_resolve(&srv->prof.opts, opts, true);
    srv->user_data = srv->prof.opts.user_data;
    rc = server_tls_setup(srv, &ep, address, errbuf, errlen);
    if (rc == 0)
        rc = server_listen(srv, &ep, errbuf, errlen);
    if (rc < 0) {
        gn__server_free(srv);
        return rc;
    }
    srv->spare_fd = open_spare_fd();
    *out = srv;
    return 0;
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
    srv->spare_fd = open_spare_fd();
    gn__log(GN_LOG_WARN, "out of file descriptors: refused a client");
    return true;
}

void gn__server_free(gn_server *srv)
{
    gn__loops_free(srv);
    gn__server_close_listeners(srv);
    if (srv->spare_fd >= 0)
        close(srv->spare_fd);
    gn__tls_config_free(srv->tls);
    free(srv);
}

void gn__server_link(gn_server *srv, gn_conn *conn)
{
    gn__list_push_back(&srv->conns, &conn->link);
    srv->live++;
}

void gn__server_unlink(gn_server *srv, gn_conn *conn)
{
    (void)srv;
    gn__list_remove(&conn->link);
}

/* ---- accessors ------------------------------------------------------ */

void gn_server_close(gn_server *srv, uint32_t grace_ms)
{
    if (srv)
        (srv->kind->close)(srv, grace_ms);
}

size_t gn_server_conn_count(const gn_server *srv)
{
    return srv ? srv->kind->conn_count(srv) : 0;
}

int gn_server_foreach(gn_server *srv, gn_visit_fn fn, void *arg)
{
    if (!srv || !fn)
        return GN_EINVAL;
    return srv->kind->foreach (srv, fn, arg);
}

int gn_server_get_endpoint(const gn_server *srv, size_t i, gn_endpoint *out)
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
