/*
 * Client sockets: resolve on a worker thread, then race connection
 * attempts over the resolved addresses as RFC 8305 ("Happy Eyeballs v2")
 * describes: families interleaved, starting with the resolver's first
 * choice; a new attempt every 250 ms while earlier ones are pending, or at
 * once when one fails; the first to connect wins and the others are
 * closed.  One deadline, connect_timeout_ms, covers it all.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "faults.h"
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
    named = strcmp(text, c->target_text) == 0;
    snprintf(c->errors + used, sizeof(c->errors) - used, "%s%s%s%s", used ? "; " : "",
             named ? "" : text, named ? "" : ": ", gn_strerror(code));
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
    gn__conn_fail(c->conn, c->last_error, "connect to %s: %s", c->target_text, c->errors);
}

static void connected(struct gn__client *c, struct attempt *winner)
{
    gn_conn *conn = c->conn;
    bool tls = gn__conn_tls(conn) != NULL; /* a failed handshake step frees it */
    socklen_t len;
    const struct sockaddr *peer = gn_endpoint_sockaddr(&c->addrs[winner - c->attempts], &len);
    int fd = winner->io.fd, rc;

    gn__conn_set_peer(conn, peer, len);
    gn__io_watch(conn->loop, &winner->io, 0);
    winner->io.fd = -1;
    c->pending--;
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
        gn__conn_fail(conn, rc, "connect to %s: %s", c->target_text, gn_strerror(rc));
        return;
    }
    if (!tls)
        client_ready(conn); /* TLS: when the handshake ends, if ever */
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
        gn__conn_fail(c->conn, rc, "%s", error);
        return;
    }
    c->naddrs = interleave_families(addrs, n < MAX_ATTEMPTS ? n : MAX_ATTEMPTS, c->addrs);
    start_attempt(c);
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
    gn__conn_fail(c->conn, GN_ETIMEDOUT, "connect to %s timed out after %u ms%s%s", c->target_text,
                  (unsigned)gn__timer_ms(c->conn->prof->opts.connect_timeout_ms),
                  c->errors[0] ? ": " : "", c->errors);
}

static void client_release(gn_loop *loop, struct gn__deferred *d)
{
    (void)loop;
    free(gn__container_of(d, struct gn__client, free_later));
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

static int client_start(gn_conn *conn, const gn_endpoint *ep)
{
    struct gn__client *c = calloc(1, sizeof(*c));
    int rc;

    if (!c)
        return GN_ENOMEM;
    for (size_t i = 0; i < MAX_ATTEMPTS; i++)
        c->attempts[i].io.fd = -1;
    c->conn = conn;
    c->target = *ep;
    gn_endpoint_format(ep, c->target_text, sizeof(c->target_text));
    if (gn_endpoint_is_resolved(ep)) {
        c->addrs[0] = *ep;
        c->naddrs = 1;
        rc = 0;
    } else {
        rc = gn__resolve_start(conn->loop, ep, resolved, c, &c->req);
    }
    if (rc == 0 && conn->prof->opts.connect_timeout_ms != GN_NO_TIMEOUT)
        rc = gn_timer_start(conn->loop, gn__timer_ms(conn->prof->opts.connect_timeout_ms), 0,
                            deadline_passed, c, &c->deadline_timer);
    if (rc < 0) {
        gn__resolve_cancel(c->req);
        free(c);
        return rc;
    }
    conn->owner_data = c;
    if (c->naddrs)
        start_attempt(c); /* failures are reported from the loop, never here */
    return 0;
}

static const struct gn__reconnect_hooks reconnect_hooks = {
    .owner = &client_owner,
    .start = client_start,
    .close_handle = client_close_handle,
};

/* A reconnecting client's first connection joins its chain (reconnect.c),
 * which holds the TLS configuration of every attempt. */
static int client_attach(gn_conn *conn, const gn_options *opts, uint32_t user_timeout_ms,
                         const gn_endpoint *ep, const char *address, char *errbuf, size_t errlen)
{
    struct gn__reconnect *r;
    int rc;

    if (!opts->reconnect)
        return conn->kind == GN_TRANSPORT_TLS
                   ? gn__tls_client_attach(conn, opts->tls, ep, address, errbuf, errlen)
                   : 0;
    rc =
        gn__reconnect_new(opts, user_timeout_ms, ep, address, &reconnect_hooks, &r, errbuf, errlen);
    if (rc == 0 && (rc = gn__reconnect_attach(r, conn)) < 0)
        gn__reconnect_free(r);
    if (rc == 0)
        gn__reconnect_started(conn);
    return rc;
}

int gn_connect(gn_loop *loop, const char *address, const gn_handlers *handlers,
               const gn_options *opts, gn_conn **out, char *errbuf, size_t errlen)
{
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
    if (rc < 0)
        return rc;
    gn__options_resolve(&resolved_opts, opts, false);
    rc = gn__conn_new_own(loop, &client_owner, NULL, -1, handlers, &resolved_opts, &conn);
    if (rc < 0)
        return rc;
    conn->kind = gn_endpoint_transport(&ep);
    rc = client_attach(conn, &resolved_opts, opts ? opts->connect_timeout_ms : 0, &ep, address,
                       errbuf, errlen);
    if (rc == 0)
        rc = gn__conn_register(conn, client_close_handle);
    if (rc == 0)
        rc = client_start(conn, &ep);
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
