/*
 * Client sockets: resolve on a worker thread, then race connection
 * attempts over the resolved addresses as RFC 8305 ("Happy Eyeballs v2")
 * describes: families interleaved, starting with the resolver's first
 * choice; a new attempt every 250 ms while earlier ones are pending, or at
 * once when one fails; the first to connect wins and the others are
 * closed.  One deadline, connect_timeout_ms, covers it all.
 *
 * Through a proxy (gn_options.proxy, proxy.h) the race is to the proxy;
 * the winning socket then carries the tunnel's handshake, and only when
 * the proxy relays does the connection become established (and start
 * its TLS handshake, for the final host's name).  The same deadline
 * covers the tunnel.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "faults.h"
#include "proxy.h"
#include "reconnect.h"
#include "reserved.h"
#include "resolver.h"
#include "tls.h"

#define MAX_ATTEMPTS        32
#define DEFAULT_FALLBACK_MS 250 /* RFC 8305 section 5 recommends 250 ms */

struct attempt {
    struct gn__io io;
    struct gn__client *client;
    uint64_t late_timer; /* an injected connect delay (faults.h) */
    bool held;           /* delayed once already */
};

struct gn__client {
    gn_conn *conn;
    gn_endpoint target;
    char target_text[GN_ENDPOINT_STRLEN];
    /* Through a proxy: the proxy (the address raced to), the target as
     * the proxy is told (resolved here for socks5://), the tunnel and
     * its socket while it runs.  route is " via <proxy>", or "". */
    struct gn__proxy *proxy;
    gn_endpoint via;
    struct gn__tunnel *tunnel;
    int tunnel_fd;
    char dial_text[GN_ENDPOINT_STRLEN]; /* what is raced to: target or proxy */
    char route[GN_ENDPOINT_STRLEN + 24];
    struct gn__resolve_req *req;
    gn_endpoint addrs[MAX_ATTEMPTS];
    struct attempt attempts[MAX_ATTEMPTS];
    size_t naddrs, next, pending;
    uint64_t deadline_timer, delay_timer;
    int last_error;
    char errors[GN_ERRBUF_SIZE]; /* "addr: reason; addr: reason", or "reason" */
    struct gn__deferred free_later;
};

static void start_attempt(struct gn__client *c);
static void client_free(gn_conn *conn);
static void client_ready(gn_conn *conn);

/* RFC 8305's "Connection Attempt Delay", or the user's. */
static uint32_t fallback_delay(const gn_conn *conn)
{
    return conn->prof->opts.fallback_delay_ms ? conn->prof->opts.fallback_delay_ms
                                              : DEFAULT_FALLBACK_MS;
}

/* Each failed address with its reason; an address the target already
 * names (a literal such as 127.0.0.1:9) is not repeated: the message
 * reads "connect to 127.0.0.1:9: connection refused". */
static void note_error(struct gn__client *c, const gn_endpoint *ep, int code)
{
    char text[GN_ENDPOINT_STRLEN];
    size_t used = strlen(c->errors);
    bool named;

    c->last_error = code;
    gn_endpoint_format(ep, text, sizeof(text));
    named = strcmp(text, c->dial_text) == 0;
    snprintf(c->errors + used, sizeof(c->errors) - used, "%s%s%s%s", used ? "; " : "",
             named ? "" : text, named ? "" : ": ",
             code == GN_ENOTSUP && gn_endpoint_transport(ep) == GN_TRANSPORT_UNIX
                 ? GN__NO_UNIX_SOCKETS
                 : gn_strerror(code));
}

static void close_attempt(struct gn__client *c, struct attempt *a)
{
    if (a->io.fd < 0)
        return;
    if (a->late_timer) {
        gn_timer_cancel(c->conn->loop, a->late_timer);
        a->late_timer = 0;
    }
    gn__io_watch(c->conn->loop, &a->io, 0);
    close(a->io.fd);
    a->io.fd = -1;
    c->pending--;
}

static void give_up_if_done(struct gn__client *c)
{
    if (c->pending > 0 || c->next < c->naddrs)
        return;
    gn__conn_fail(c->conn, c->last_error, "connect to %s%s: %s", c->target_text, c->route,
                  c->errors);
}

/* The way to the target is open on fd: the connection is established. */
static void established(struct gn__client *c, int fd)
{
    gn_conn *conn = c->conn;
    bool tls = gn__conn_tls(conn) != NULL; /* a failed handshake step frees it */
    int rc;

    client_free(conn); /* closes the losers, cancels timers */
    rc = gn__conn_established(conn, fd);
    if (rc == 0 && tls)
        rc = gn__conn_start_handshake(conn, gn__tls_conn_handshake_ms(conn));
    if (rc < 0) {
        if (conn->io.fd == fd && conn->state != GN__CLOSED) {
            gn__io_watch(conn->loop, &conn->io, 0);
            close(fd);
            conn->io.fd = -1;
        }
        gn__conn_fail(conn, rc, "connect to %s%s: %s", c->target_text, c->route, gn_strerror(rc));
        return;
    }
    if (!tls)
        client_ready(conn); /* TLS: when the handshake ends, if ever */
}

static void tunnel_done(void *arg, int rc, const char *message)
{
    struct gn__client *c = arg;
    int fd = c->tunnel_fd;

    c->tunnel_fd = -1;
    gn__tunnel_free(c->tunnel);
    c->tunnel = NULL;
    if (rc < 0) {
        close(fd);
        gn__conn_fail(c->conn, rc, "connect to %s%s: %s", c->target_text, c->route, message);
        return;
    }
    established(c, fd);
}

/* Connected to the proxy: the losers go, the deadline stays, the tunnel
 * starts on fd. */
static void start_tunnel(struct gn__client *c, int fd)
{
    int rc;

    for (size_t i = 0; i < c->next; i++)
        close_attempt(c, &c->attempts[i]);
    if (c->delay_timer) {
        gn_timer_cancel(c->conn->loop, c->delay_timer);
        c->delay_timer = 0;
    }
    c->tunnel_fd = fd;
    rc = gn__tunnel_start(c->conn->loop, fd, c->proxy, &c->via, tunnel_done, c, &c->tunnel);
    if (rc < 0) {
        c->tunnel_fd = -1;
        close(fd);
        gn__conn_fail(c->conn, rc, "connect to %s%s: %s", c->target_text, c->route,
                      gn_strerror(rc));
    }
}

static void connected(struct gn__client *c, struct attempt *winner)
{
    socklen_t len;
    const struct sockaddr *peer = gn_endpoint_sockaddr(&c->addrs[winner - c->attempts], &len);
    int fd = winner->io.fd;

    gn__conn_set_peer(c->conn, peer, len);
    gn__io_watch(c->conn->loop, &winner->io, 0);
    winner->io.fd = -1;
    c->pending--;
    if (c->proxy)
        start_tunnel(c, fd);
    else
        established(c, fd);
}

static void attempt_done(struct attempt *a)
{
    struct gn__client *c = a->client;
    int rc = gn__socket_error(a->io.fd);

    if (rc == 0) {
        connected(c, a);
        return;
    }
    note_error(c, &c->addrs[a - c->attempts], rc);
    close_attempt(c, a);
    if (c->next < c->naddrs) {
        start_attempt(c); /* a failure starts the next one at once */
        return;
    }
    give_up_if_done(c);
}

static void attempt_late_over(gn_loop *loop, uint64_t id, void *arg)
{
    struct attempt *a = arg;

    (void)loop;
    (void)id;
    a->late_timer = 0;
    attempt_done(a);
}

/* The connect finished (writable): a hostile network may hold the news
 * back a while, as a slow path would (faults.h). */
static void on_attempt_io(gn_loop *loop, struct gn__io *io, unsigned events)
{
    struct attempt *a = (struct attempt *)io;
    uint32_t late_ms;

    (void)events;
    if (gn__faults_on() && !a->held && (late_ms = gn__faults_connect_delay_ms()) > 0) {
        a->held = true;
        if (gn__io_watch(loop, io, 0) == 0 &&
            gn_timer_start(loop, late_ms, 0, attempt_late_over, a, &a->late_timer) == 0)
            return;
    }
    attempt_done(a);
}

static void attempt_delay_over(gn_loop *loop, uint64_t id, void *arg)
{
    struct gn__client *c = arg;

    (void)loop;
    (void)id;
    c->delay_timer = 0;
    start_attempt(c);
}

static int open_attempt(struct gn__client *c, struct attempt *a, const gn_endpoint *ep)
{
    socklen_t len;
    const struct sockaddr *sa = gn_endpoint_sockaddr(ep, &len);
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), rc;

    if (fd < 0)
        return gn_error_from_errno(errno);
    /* Even on loopback a non-blocking connect may finish at once; writability
     * reports both outcomes, so one path handles them. */
    if (connect(fd, sa, len) < 0 && errno != EINPROGRESS && errno != EINTR) {
        rc = gn_error_from_errno(errno);
        close(fd);
        return rc;
    }
    a->io = (struct gn__io){.fd = fd, .cb = on_attempt_io};
    a->client = c;
    a->late_timer = 0;
    a->held = false;
    rc = gn__io_watch(c->conn->loop, &a->io, GN__WRITE);
    if (rc < 0) {
        close(fd);
        a->io.fd = -1;
        return rc;
    }
    c->pending++;
    return 0;
}

static void start_attempt(struct gn__client *c)
{
    while (c->next < c->naddrs) {
        size_t i = c->next++;
        int rc = open_attempt(c, &c->attempts[i], &c->addrs[i]);
        if (rc == 0)
            break;
        note_error(c, &c->addrs[i], rc);
    }
    if (c->delay_timer) {
        gn_timer_cancel(c->conn->loop, c->delay_timer);
        c->delay_timer = 0;
    }
    if (c->next < c->naddrs && c->pending > 0)
        gn_timer_start(c->conn->loop, fallback_delay(c->conn), 0, attempt_delay_over, c,
                       &c->delay_timer);
    give_up_if_done(c);
}

static size_t interleave_families(const gn_endpoint *in, size_t n, gn_endpoint *out)
{
    gn_family first = n ? gn_endpoint_family(&in[0]) : GN_FAMILY_NONE;
    size_t a = 0, b = 0, o = 0;

    while (o < n) {
        while (a < n && gn_endpoint_family(&in[a]) != first)
            a++;
        if (a < n)
            out[o++] = in[a++];
        while (b < n && gn_endpoint_family(&in[b]) == first)
            b++;
        if (b < n)
            out[o++] = in[b++];
    }
    return o;
}

static void resolved(gn_loop *loop, void *arg, int rc, const gn_endpoint *addrs, size_t n,
                     const char *error)
{
    struct gn__client *c = arg;

    (void)loop;
    c->req = NULL;
    if (rc < 0) {
        gn__conn_fail(c->conn, rc, "%s%s%s", c->proxy ? c->proxy->text : "", c->proxy ? ": " : "",
                      error);
        return;
    }
    c->naddrs = interleave_families(addrs, n < MAX_ATTEMPTS ? n : MAX_ATTEMPTS, c->addrs);
    start_attempt(c);
}

/* Race to what c dials (the target or the proxy): at once when it is an
 * address, else once resolved.  0 or a code; failures later are the
 * connection's. */
static int start_dialling(struct gn__client *c, const gn_endpoint *ep)
{
    if (!gn_endpoint_is_resolved(ep))
        return gn__resolve_start(c->conn->loop, ep, resolved, c, &c->req);
    c->addrs[0] = *ep;
    c->naddrs = 1;
    start_attempt(c); /* failures are reported from the loop, never here */
    return 0;
}

/* socks5://: the target's name is resolved here, its first address is
 * what the proxy is told; then the race to the proxy. */
static void target_resolved(gn_loop *loop, void *arg, int rc, const gn_endpoint *addrs, size_t n,
                            const char *error)
{
    struct gn__client *c = arg;

    (void)loop;
    c->req = NULL;
    if (rc == 0 && n == 0)
        rc = GN_ENONAME;
    if (rc == 0) {
        c->via = addrs[0];
        rc = start_dialling(c, &c->proxy->server);
        error = gn_strerror(rc);
    }
    if (rc < 0)
        gn__conn_fail(c->conn, rc, "%s", error);
}

static void deadline_passed(gn_loop *loop, uint64_t id, void *arg)
{
    struct gn__client *c = arg;

    (void)loop;
    (void)id;
    c->deadline_timer = 0;
    if (c->req) {
        gn__conn_fail(c->conn, GN_ETIMEDOUT, "name resolution of %s timed out after %u ms",
                      c->target_text,
                      (unsigned)gn__timer_ms(c->conn->prof->opts.connect_timeout_ms));
        return;
    }
    gn__conn_fail(c->conn, GN_ETIMEDOUT, "connect to %s%s timed out after %u ms%s%s%s%s",
                  c->target_text, c->route,
                  (unsigned)gn__timer_ms(c->conn->prof->opts.connect_timeout_ms),
                  c->tunnel ? " in the " : "", c->tunnel ? gn__tunnel_stage(c->tunnel) : "",
                  c->errors[0] ? ": " : "", c->errors);
}

static void client_release(gn_loop *loop, struct gn__deferred *d)
{
    struct gn__client *c = gn__container_of(d, struct gn__client, free_later);

    (void)loop;
    free(c->proxy);
    free(c);
}

static void client_free(gn_conn *conn)
{
    struct gn__client *c = conn->owner_data;

    gn__reconnect_closing(conn); /* closed while pausing before an attempt */
    if (!c)
        return;
    for (size_t i = 0; i < c->next; i++)
        close_attempt(c, &c->attempts[i]);
    gn__resolve_cancel(c->req);
    gn__tunnel_free(c->tunnel);
    if (c->tunnel_fd >= 0)
        close(c->tunnel_fd);
    if (c->deadline_timer)
        gn_timer_cancel(conn->loop, c->deadline_timer);
    if (c->delay_timer)
        gn_timer_cancel(conn->loop, c->delay_timer);
    conn->owner_data = NULL;
    /* Attempts may still sit in this batch of events: free after it. */
    c->free_later.fn = client_release;
    gn__loop_defer(conn->loop, &c->free_later);
}

/* After on_close: a reconnecting client's next attempt is made here (the
 * core unlinks the connection from the loop's handles). */
static void client_gone(gn_conn *conn)
{
    gn__reconnect_gone(conn);
}

static void client_ready(gn_conn *conn)
{
    gn__reconnect_connected(conn);
    gn__conn_announce(conn);
}

static const struct gn__conn_owner client_owner = {
    .ready = client_ready,
    .closing = client_free,
    .gone = client_gone,
    .mode = &gn__conn_mode_async,
};

/* gn_loop_free: a connection still open is aborted. */
static void client_close_handle(struct gn__handle *h)
{
    gn_abort(gn__container_of(h, struct gn__conn_ext, handle)->conn);
}

static void client_describe(struct gn__client *c, const gn_endpoint *dial)
{
    gn_endpoint_format(&c->target, c->target_text, sizeof(c->target_text));
    gn_endpoint_format(dial, c->dial_text, sizeof(c->dial_text));
    if (c->proxy)
        snprintf(c->route, sizeof(c->route), " via %s", c->proxy->text);
}

/* Start connecting conn to ep, through proxy when not NULL (then c owns
 * it, even on failure). */
static int client_start(gn_conn *conn, const gn_endpoint *ep, struct gn__proxy *proxy)
{
    struct gn__client *c = calloc(1, sizeof(*c));
    const gn_endpoint *dial = proxy ? &proxy->server : ep;
    int rc = 0;

    if (!c) {
        free(proxy);
        return GN_ENOMEM;
    }
    for (size_t i = 0; i < MAX_ATTEMPTS; i++)
        c->attempts[i].io.fd = -1;
    c->tunnel_fd = -1;
    c->conn = conn;
    c->target = c->via = *ep;
    c->proxy = proxy;
    client_describe(c, dial);
    if (conn->prof->opts.connect_timeout_ms != GN_NO_TIMEOUT)
        rc = gn_timer_start(conn->loop, gn__timer_ms(conn->prof->opts.connect_timeout_ms), 0,
                            deadline_passed, c, &c->deadline_timer);
    if (rc == 0) {
        conn->owner_data = c;
        if (proxy && gn__proxy_resolves_here(proxy) && !gn_endpoint_is_resolved(ep))
            rc = gn__resolve_start(conn->loop, ep, target_resolved, c, &c->req);
        else
            rc = start_dialling(c, dial);
    }
    if (rc < 0) { /* nothing started: no attempt, no request */
        if (c->deadline_timer)
            gn_timer_cancel(conn->loop, c->deadline_timer);
        conn->owner_data = NULL;
        free(c->proxy);
        free(c);
        return rc;
    }
    return 0;
}

/* gn_options.proxy, parsed: NULL in *out for none.  A Unix socket has no
 * host a proxy could connect to. */
static int client_proxy(const char *url, const gn_endpoint *ep, const char *address,
                        struct gn__proxy **out, char *errbuf, size_t errlen)
{
    int rc;

    *out = NULL;
    if (!url)
        return 0;
    if (gn_endpoint_transport(ep) == GN_TRANSPORT_UNIX)
        return gn__errbuf_input(errbuf, errlen, GN_EINVAL, address, strlen(address), "%s",
                                "a Unix socket cannot be reached through a proxy");
    *out = malloc(sizeof(**out));
    if (!*out)
        return GN_ENOMEM;
    rc = gn__proxy_parse(url, *out, errbuf, errlen);
    if (rc < 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* A reconnecting client's next attempt: through the same proxy, if any
 * (its parsed form, kept by the chain). */
static int client_restart(gn_conn *conn, const gn_endpoint *ep, const void *proxy_data)
{
    struct gn__proxy *proxy = NULL;

    if (proxy_data) {
        proxy = malloc(sizeof(*proxy));
        if (!proxy)
            return GN_ENOMEM;
        memcpy(proxy, proxy_data, sizeof(*proxy));
    }
    return client_start(conn, ep, proxy); /* takes proxy */
}

static const struct gn__reconnect_hooks reconnect_hooks = {
    .owner = &client_owner,
    .start = client_restart,
    .close_handle = client_close_handle,
};

/* A reconnecting client's first connection joins its chain (reconnect.c),
 * which holds the TLS configuration of every attempt. */
static int client_attach(gn_conn *conn, const gn_options *opts, uint32_t user_timeout_ms,
                         const gn_endpoint *ep, const char *address, const struct gn__proxy *proxy,
                         char *errbuf, size_t errlen)
{
    struct gn__reconnect *r;
    int rc;

    if (!opts->reconnect)
        return conn->kind == GN_TRANSPORT_TLS
                   ? gn__tls_client_attach(conn, opts->tls, ep, address, errbuf, errlen)
                   : 0;
    rc = gn__reconnect_new(opts, user_timeout_ms, ep, address, proxy, proxy ? sizeof(*proxy) : 0,
                           &reconnect_hooks, &r, errbuf, errlen);
    if (rc == 0 && (rc = gn__reconnect_attach(r, conn)) < 0)
        gn__reconnect_free(r);
    if (rc == 0)
        gn__reconnect_started(conn);
    return rc;
}

int gn_connect(gn_loop *loop, const char *address, const gn_handlers *handlers,
               const gn_options *opts, gn_conn **out, char *errbuf, size_t errlen)
{
    struct gn__proxy *proxy = NULL;
    gn_options resolved_opts;
    gn_endpoint ep;
    gn_conn *conn;
    int rc;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!loop || !address || !handlers || !out)
        return GN_EINVAL;
    if (!GN__RESERVED_CLEAR(handlers))
        return gn__reserved_error("gn_handlers", errbuf, errlen);
    rc = gn__parse_stream_address(address, 0, &ep, errbuf, errlen);
    if (rc == 0)
        rc = gn__options_check(opts, address, errbuf, errlen);
    if (rc == 0)
        rc = client_proxy(opts ? opts->proxy : NULL, &ep, address, &proxy, errbuf, errlen);
    if (rc < 0)
        return rc;
    gn__options_resolve(&resolved_opts, opts, false);
    resolved_opts.proxy = NULL; /* read, not kept */
    rc = gn__conn_new_own(loop, &client_owner, NULL, -1, handlers, &resolved_opts, &conn);
    if (rc < 0) {
        free(proxy);
        return rc;
    }
    conn->kind = gn_endpoint_transport(&ep);
    rc = client_attach(conn, &resolved_opts, opts ? opts->connect_timeout_ms : 0, &ep, address,
                       proxy, errbuf, errlen);
    if (rc == 0)
        rc = gn__conn_register(conn, client_close_handle);
    if (rc == 0) {
        rc = client_start(conn, &ep, proxy); /* takes proxy */
        proxy = NULL;
    }
    free(proxy);
    if (rc < 0) {
        gn__tls_detach(conn);
        if (conn->ext->reconnect)
            gn__reconnect_free(conn->ext->reconnect);
        conn->ext->reconnect = NULL;
        gn__conn_discard(conn);
        return rc;
    }
    *out = conn;
    return 0;
}
