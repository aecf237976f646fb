/*
 * Event-driven servers: accept each client on the loop into a new
 * connection that this server owns (its hooks below), and close
 * gracefully.  Listening sockets and the public calls every server kind
 * shares live in server_base.c.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faults.h"
#include "reserved.h"
#include "server.h"
#include "tls.h"

#define ACCEPT_BUDGET   64
#define ACCEPT_RETRY_MS 100
#define MAX_LOOPS       256

static void server_free(gn_loop *loop, struct gn__deferred *d)
{
    gn_server *srv = gn__container_of(d, gn_server, free_later);

    gn__loop_unref(loop);
    gn__server_free(srv);
}

static const struct gn__server_kind async_kind;
static const struct gn__conn_owner server_owner;
static void async_close(gn_server *srv, uint32_t grace_ms);
static void abort_shard(gn_loop *loop, uint64_t id, void *arg);
static void maybe_free(gn_server *srv);
static int set_accepting(gn_server *srv, bool on);
static bool shed_load(gn_server *srv, int fd, int code);
static void abort_remaining(gn_loop *loop, uint64_t id, void *arg);

static int check_listen_args(gn_loop *loop, const char *address, const gn_handlers *handlers,
                             gn_server **out, char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!loop || !address || !handlers || !out)
        return gn__errbuf_input(errbuf, errlen, GN_EINVAL, "", 0, "%s",
                                "loop, address, handlers and out must not be NULL");
    if (!GN__RESERVED_CLEAR(handlers))
        return gn__reserved_error("gn_handlers", errbuf, errlen);
    return 0;
}

static int check_loops(const gn_options *opts, const char *address, char *errbuf, size_t errlen)
{
    if (opts && opts->loops > MAX_LOOPS)
        return gn__errbuf_input(errbuf, errlen, GN_EINVAL, address, strlen(address),
                                "loops: %zu is more than %d", opts->loops, MAX_LOOPS);
    return 0;
}

/* gn_loop_free: the server and its connections end at once. */
static void server_close_handle(struct gn__handle *h)
{
    gn_server *srv = gn__container_of(h, gn_server, handle);

    async_close(srv, 0);
    if (!srv->loops) {
        abort_remaining(srv->loop, 0, srv);
        return;
    }
    /* Every loop aborts its connections (async_close told them, with no
     * grace); loop 0 waits for the threads, as it will not run again. */
    abort_shard(srv->loop, 0, &srv->loops->shards[0]);
    gn__loops_wait_exited(srv);
    maybe_free(srv);
}

int gn_listen(gn_loop *loop, const char *address, const gn_handlers *handlers,
              const gn_options *opts, gn_server **out, char *errbuf, size_t errlen)
{
    gn_server *srv;
    int rc = check_listen_args(loop, address, handlers, out, errbuf, errlen);

    if (rc == 0)
        rc = check_loops(opts, address, errbuf, errlen);
    if (rc == 0)
        rc = gn__server_open(loop, &async_kind, address, opts, &srv, errbuf, errlen);
    if (rc == 0 && srv->prof.opts.loops > 1) {
        rc = gn__loops_start(srv, srv->prof.opts.loops, maybe_free, async_close);
        if (rc < 0) {
            gn__server_free(srv);
            return gn__errbuf_input(errbuf, errlen, rc, address, strlen(address),
                                    "cannot start %zu loops: %s", opts->loops, gn_strerror(rc));
        }
    }
    if (rc == 0) {
        rc = set_accepting(srv, true);
        if (rc < 0) {
            gn__server_free(srv);
            return gn__errbuf_input(errbuf, errlen, rc, address, strlen(address),
                                    "cannot accept: %s", gn_strerror(rc));
        }
    }
    if (rc < 0)
        return rc;
    srv->prof.owner = &server_owner;
    srv->prof.h = *handlers;
    srv->free_later.fn = server_free;
    srv->handle.close = server_close_handle;
    gn__loop_handle_add(loop, &srv->handle, false);
    gn__loop_ref(loop);
    *out = srv;
    return 0;
}

/* ---- accepting ------------------------------------------------------ */

/* On a completion backend the backend accepts (multishot); else the
 * listener is watched for readiness and accept4 is called here. */
static int listener_accepting(gn_server *srv, struct listener *l, bool on)
{
    const struct gn__backend *b = srv->loop->backend;
    int rc;

    if (l->io.fd < 0)
        return 0;
    if (!b->accept_start)
        return gn__io_watch(srv->loop, &l->io, on ? GN__READ : 0);
    if (on && !l->accepting) {
        rc = b->accept_start(srv->loop, &l->io);
        if (rc < 0)
            return rc;
        l->accepting = true;
    } else if (!on && l->accepting) {
        b->accept_stop(srv->loop, &l->io);
        l->accepting = false;
    }
    return 0;
}

static int set_accepting(gn_server *srv, bool on)
{
    int rc = 0;

    for (size_t i = 0; i < srv->nlisteners && rc == 0; i++)
        rc = listener_accepting(srv, &srv->listeners[i], on);
    return rc;
}

static void resume_accepting(gn_loop *loop, uint64_t id, void *arg)
{
    gn_server *srv = arg;

    (void)loop;
    (void)id;
    srv->retry_timer = 0;
    srv->accept_paused = false;
    if (!srv->closing && set_accepting(srv, true) < 0)
        shed_load(srv, -1, GN_ENOMEM); /* try again later */
}

/* accept failed with code: refuse the client if out of descriptors and
 * the spare allows (true: accept on), else pause for a moment. */
static bool shed_load(gn_server *srv, int fd, int code)
{
    if (code == GN_EMFILE && gn__server_refuse_one(srv, fd))
        return true;
    gn__log(GN_LOG_WARN, "accept: %s; pausing accepts for %d ms", gn_strerror(code),
            ACCEPT_RETRY_MS);
    srv->accept_paused = true;
    set_accepting(srv, false);
    gn_timer_start(srv->loop, ACCEPT_RETRY_MS, 0, resume_accepting, srv, &srv->retry_timer);
    return false;
}

/* ---- the hooks of the connections it owns ------------------------------ */

static void server_conn_ready(gn_conn *conn)
{
    conn->announced = true; /* the user meets it now, and hears its end */
    if (conn->prof->h.on_accept)
        conn->prof->h.on_accept(conn);
}

/* The shard serving conn, NULL on a server of one loop. */
static struct gn__shard *shard_of(const gn_conn *conn)
{
    gn_server *srv = conn->owner_data;

    return srv->loops ? gn__loops_shard(srv, conn->loop) : NULL;
}

/* A client counts from when loop 0 takes it until it closes. */
static void count_in(gn_server *srv, struct gn__shard *s)
{
    srv->live++;
    if (s)
        s->live++;
}

static void count_out(gn_server *srv, struct gn__shard *s)
{
    srv->live--;
    if (s)
        s->live--;
}

static void server_conn_closing(gn_conn *conn)
{
    count_out(conn->owner_data, shard_of(conn));
}

static void shard_conn_gone(struct gn__shard *s);

static void server_conn_gone(gn_conn *conn)
{
    gn_server *srv = conn->owner_data;
    struct gn__shard *s = shard_of(conn);

    gn__list_remove(&conn->link);
    if (s)
        shard_conn_gone(s);
    else
        maybe_free(srv);
}

static const struct gn__conn_owner server_owner = {
    .ready = server_conn_ready,
    .closing = server_conn_closing,
    .gone = server_conn_gone,
    .mode = &gn__conn_mode_async,
    .is_server = true,
};

/* Serve a client, counted in already, on loop (linked into conns). */
static void serve_client(gn_server *srv, gn_loop *loop, struct gn__list *conns, gn_transport kind,
                         int fd, const struct sockaddr *peer, socklen_t peer_len)
{
    gn_conn *conn;
    int rc = gn__conn_new(loop, srv, fd, &srv->prof, &conn);

    if (rc < 0) {
        close(fd);
        count_out(srv, srv->loops ? gn__loops_shard(srv, loop) : NULL);
        return;
    }
    conn->kind = kind;
    if (peer)
        gn__conn_set_peer(conn, peer, peer_len);
    else
        gn__conn_read_peer(conn); /* a multishot accept gives no address */
    gn__list_push_back(conns, &conn->link);
    if (srv->tls) {
        /* The user meets the connection after the handshake, if ever. */
        rc = gn__tls_attach(conn, srv->tls, false);
        if (rc == 0)
            rc = gn__conn_established(conn, fd);
        if (rc == 0)
            rc = gn__conn_start_handshake(conn, gn__tls_handshake_ms(srv->tls));
    } else {
        rc = gn__conn_established(conn, fd);
        if (rc == 0)
            server_conn_ready(conn);
    }
    if (rc < 0) {
        /* e.g. no memory for TLS: nothing to report to on_accept, so the
         * connection ends unseen (it was never announced). */
        gn__conn_fail(conn, rc, "setup: %s", gn_strerror(rc));
    }
}

/* ---- handing clients to the other loops -------------------------------- */

/* A client on its way from loop 0 to another loop. */
struct handoff {
    struct gn__shard *shard;
    gn_transport kind;
    int fd;
    socklen_t peer_len;
    struct sockaddr_storage peer;
};

static void handoff_arrived(gn_loop *loop, void *arg)
{
    struct handoff *h = arg;
    struct gn__shard *s = h->shard;

    serve_client(s->srv, loop, &s->conns, h->kind, h->fd,
                 h->peer_len ? (const struct sockaddr *)&h->peer : NULL, h->peer_len);
    free(h);
}

/* Loop 0: serve the client on the least loaded loop.  Tasks posted from
 * one thread run in order, so it arrives before the shard's close does. */
static void hand_out(gn_server *srv, gn_transport kind, int fd, const struct sockaddr *peer,
                     socklen_t peer_len)
{
    struct gn__shard *s = gn__loops_pick(srv);
    struct handoff *h;

    count_in(srv, s);
    if (s->index == 0) {
        serve_client(srv, srv->loop, &s->conns, kind, fd, peer, peer_len);
        return;
    }
    h = malloc(sizeof(*h));
    if (h) {
        *h = (struct handoff){.shard = s, .kind = kind, .fd = fd};
        if (peer && peer_len <= sizeof(h->peer)) {
            memcpy(&h->peer, peer, peer_len);
            h->peer_len = peer_len;
        }
        if (gn_loop_post(s->loop, handoff_arrived, h) == 0)
            return;
        free(h);
    }
    close(fd);
    count_out(srv, s);
}

static void adopt_client(gn_server *srv, const struct listener *l, int fd,
                         const struct sockaddr *peer, socklen_t peer_len)
{
    if (srv->live >= srv->prof.opts.max_conns) {
        gn__log(GN_LOG_WARN, "max_conns (%zu) reached: refused a client", srv->prof.opts.max_conns);
        close(fd);
        return;
    }
    if (srv->loops) {
        hand_out(srv, gn_endpoint_transport(&l->ep), fd, peer, peer_len);
        return;
    }
    count_in(srv, NULL);
    serve_client(srv, srv->loop, &srv->conns, gn_endpoint_transport(&l->ep), fd, peer, peer_len);
}

/* A completion backend accepted a client, or stopped accepting. */
static void accepted(gn_server *srv, struct listener *l, int res)
{
    if (res >= 0) {
        if (srv->closing)
            close(res);
        else
            adopt_client(srv, l, res, NULL, 0);
        return;
    }
    l->accepting = false; /* the backend ended it */
    if (srv->closing || srv->accept_paused)
        return;
    /* ECONNABORTED (a client gone before its accept) ends it too. */
    if (res == GN_ECONNRESET || shed_load(srv, l->io.fd, res))
        if (listener_accepting(srv, l, true) < 0)
            shed_load(srv, -1, GN_ENOMEM);
}

static void on_listener_io(gn_loop *loop, struct gn__io *io, unsigned events)
{
    struct listener *l = gn__container_of(io, struct listener, io);
    gn_server *srv = l->srv;

    if (events & GN__ACCEPT) {
        accepted(srv, l, loop->done.res);
        return;
    }
    for (int i = 0; i < ACCEPT_BUDGET && !srv->closing && !srv->accept_paused; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = gn__accept4(io->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            adopt_client(srv, l, fd, (struct sockaddr *)&ss, len);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            shed_load(srv, io->fd, gn_error_from_errno(errno));
        return;
    }
}

/* ---- closing -------------------------------------------------------- */

/* Connections leave a list only after the batch: next stays valid. */
static void abort_all(struct gn__list *conns)
{
    struct gn__list *node, *next;

    gn__list_foreach_safe(node, next, conns) gn_abort(gn__container_of(node, gn_conn, link));
}

static void close_all(struct gn__list *conns)
{
    struct gn__list *node, *next;

    gn__list_foreach_safe(node, next, conns) gn_close(gn__container_of(node, gn_conn, link));
}

/* After gn_close on every connection of conns: abort them after grace_ms
 * (fn on a timer), or at once.  No grace for GN_DEFAULT_TIMEOUT and
 * GN_NO_WAIT; under GN_NO_TIMEOUT they close as they finish flushing. */
static void grace_then_abort(gn_loop *loop, struct gn__list *conns, uint32_t grace_ms,
                             gn_timer_fn fn, void *arg, uint64_t *timer)
{
    grace_ms = gn__timer_ms(grace_ms);
    if (!gn__list_empty(conns) && grace_ms == 0)
        abort_all(conns);
    else if (!gn__list_empty(conns) && grace_ms != GN_NO_TIMEOUT)
        gn_timer_start(loop, grace_ms, 0, fn, arg, timer);
}

static void abort_remaining(gn_loop *loop, uint64_t id, void *arg)
{
    gn_server *srv = arg;

    (void)loop;
    (void)id;
    srv->grace_timer = 0;
    abort_all(&srv->conns);
}

static bool all_gone(gn_server *srv)
{
    if (!srv->loops)
        return gn__list_empty(&srv->conns);
    return gn__list_empty(&srv->loops->shards[0].conns) && gn__loops_done(srv);
}

static void cancel_timer(gn_loop *loop, uint64_t *timer)
{
    if (*timer)
        gn_timer_cancel(loop, *timer);
    *timer = 0;
}

/* Loop 0. */
static void maybe_free(gn_server *srv)
{
    if (!srv->closing || srv->free_queued || !all_gone(srv))
        return;
    srv->free_queued = true;
    cancel_timer(srv->loop, &srv->grace_timer);
    cancel_timer(srv->loop, &srv->retry_timer);
    if (srv->loops)
        cancel_timer(srv->loop, &srv->loops->shards[0].grace_timer);
    gn__loop_handle_remove(&srv->handle);
    gn__loop_defer(srv->loop, &srv->free_later);
}

/* ---- closing a server on several loops, each loop on its thread ------- */

static void abort_shard(gn_loop *loop, uint64_t id, void *arg)
{
    struct gn__shard *s = arg;

    (void)loop;
    (void)id;
    s->grace_timer = 0;
    abort_all(&s->conns);
}

/* Once its connections are gone, a loop other than 0 has nothing left and
 * its thread ends; loop 0 then frees the server. */
static void shard_conn_gone(struct gn__shard *s)
{
    if (!s->closing || !gn__list_empty(&s->conns))
        return;
    cancel_timer(s->loop, &s->grace_timer);
    if (s->index == 0)
        maybe_free(s->srv);
}

static void close_shard(struct gn__shard *s, uint32_t grace_ms)
{
    if (s->closing)
        return;
    s->closing = true;
    close_all(&s->conns);
    grace_then_abort(s->loop, &s->conns, grace_ms, abort_shard, s, &s->grace_timer);
    gn__loops_release(s);
}

static void close_shard_task(gn_loop *loop, void *arg)
{
    struct gn__shard *s = arg;

    (void)loop;
    close_shard(s, s->srv->close_grace_ms); /* written once, before the post */
}

/* gn_loop_free(loop 0) after a graceful close: what is left is aborted. */
static void abort_shard_task(gn_loop *loop, void *arg)
{
    abort_shard(loop, 0, arg);
}

static void tell_loops(gn_server *srv, gn_task_fn fn)
{
    struct gn__loops *L = srv->loops;

    for (size_t i = 1; i < L->n; i++)
        if (gn_loop_post(L->shards[i].loop, fn, &L->shards[i]) < 0)
            gn__log(GN_LOG_ERROR, "out of memory: loop %zu of a closing server not told", i);
}

static void async_close(gn_server *srv, uint32_t grace_ms)
{
    if (srv->loops && gn__loops_current(srv)->index != 0) {
        gn__loops_close_on_loop0(srv, grace_ms); /* a handler on another loop */
        return;
    }
    if (srv->closing) {
        if (srv->loops && gn__timer_ms(grace_ms) == 0)
            tell_loops(srv, abort_shard_task); /* gn_loop_free after a close */
        return;
    }
    srv->closing = true;
    set_accepting(srv, false);
    gn__server_close_listeners(srv);
    if (srv->loops) {
        srv->close_grace_ms = grace_ms;
        tell_loops(srv, close_shard_task);
        close_shard(&srv->loops->shards[0], grace_ms);
    } else {
        close_all(&srv->conns);
        grace_then_abort(srv->loop, &srv->conns, grace_ms, abort_remaining, srv, &srv->grace_timer);
    }
    maybe_free(srv);
}

static size_t async_conn_count(const gn_server *srv)
{
    return srv->live;
}

/* Connections are unlinked only after the batch, so next stays valid
 * whatever fn closes. */
static int visit_list(struct gn__list *conns, void (*fn)(gn_conn *conn, void *arg), void *arg)
{
    struct gn__list *node, *next;
    int visited = 0;

    gn__list_foreach_safe(node, next, conns)
    {
        gn_conn *conn = gn__container_of(node, gn_conn, link);
        if (conn->state == GN__CLOSED || !conn->announced)
            continue; /* not yet, or no longer, the user's */
        fn(conn, arg);
        visited++;
    }
    return visited;
}

/* On several loops: the others wait, parked, while fn runs here. */
static int async_foreach(gn_server *srv, void (*fn)(gn_conn *conn, void *arg), void *arg)
{
    int visited = 0;

    if (!srv->loops)
        return visit_list(&srv->conns, fn, arg);
    gn__loops_stop_world(srv);
    for (size_t i = 0; i < srv->loops->n; i++)
        visited += visit_list(&srv->loops->shards[i].conns, fn, arg);
    gn__loops_resume_world(srv);
    return visited;
}

static const struct gn__server_kind async_kind = {
    .on_listener = on_listener_io,
    .close = async_close,
    .conn_count = async_conn_count,
    .foreach = async_foreach,
};
