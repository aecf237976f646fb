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

static void server_free(gn_loop *loop, struct gn__deferred *d)
{
    gn_server *srv = gn__container_of(d, gn_server, free_later);

    gn__loop_unref(loop);
    gn__server_free(srv);
}

static const struct gn__server_kind async_kind;
static const struct gn__conn_owner server_owner;
static void async_close(gn_server *srv, uint32_t grace_ms);
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

/* gn_loop_free: the server and its connections end at once. */
static void server_close_handle(struct gn__handle *h)
{
    gn_server *srv = gn__container_of(h, gn_server, handle);

    async_close(srv, 0);
    abort_remaining(srv->loop, 0, srv);
}

int gn_listen(gn_loop *loop, const char *address, const gn_handlers *handlers,
              const gn_options *opts, gn_server **out, char *errbuf, size_t errlen)
{
    gn_server *srv;
    int rc = check_listen_args(loop, address, handlers, out, errbuf, errlen);

    if (rc == 0)
        rc = gn__server_open(loop, &async_kind, address, opts, &srv, errbuf, errlen);
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

static void maybe_free(gn_server *srv);

static void server_conn_ready(gn_conn *conn)
{
    conn->announced = true; /* the user meets it now, and hears its end */
    if (conn->prof->h.on_accept)
        conn->prof->h.on_accept(conn);
}

static void server_conn_closing(gn_conn *conn)
{
    gn_server *srv = conn->owner_data;

    srv->live--;
}

static void server_conn_gone(gn_conn *conn)
{
    gn_server *srv = conn->owner_data;

    gn__server_unlink(srv, conn);
    maybe_free(srv);
}

static const struct gn__conn_owner server_owner = {
    .ready = server_conn_ready,
    .closing = server_conn_closing,
    .gone = server_conn_gone,
    .mode = &gn__conn_mode_async,
    .is_server = true,
};

static void adopt_client(gn_server *srv, const struct listener *l, int fd,
                         const struct sockaddr *peer, socklen_t peer_len)
{
    gn_conn *conn;
    int rc;

    if (srv->live >= srv->prof.opts.max_conns) {
        gn__log(GN_LOG_WARN, "max_conns (%zu) reached: refused a client", srv->prof.opts.max_conns);
        close(fd);
        return;
    }
    rc = gn__conn_new(srv->loop, srv, fd, &srv->prof, &conn);
    if (rc < 0) {
        close(fd);
        return;
    }
    conn->kind = gn_endpoint_transport(&l->ep);
    if (peer)
        gn__conn_set_peer(conn, peer, peer_len);
    else
        gn__conn_read_peer(conn); /* a multishot accept gives no address */
    gn__server_link(srv, conn);
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

static void abort_remaining(gn_loop *loop, uint64_t id, void *arg)
{
    gn_server *srv = arg;
    struct gn__list *node, *next;

    (void)loop;
    (void)id;
    srv->grace_timer = 0;
    /* Connections leave the list only after the batch: next stays valid. */
    gn__list_foreach_safe(node, next, &srv->conns) gn_abort(gn__container_of(node, gn_conn, link));
}

static void maybe_free(gn_server *srv)
{
    if (!srv->closing || !gn__list_empty(&srv->conns) || srv->free_queued)
        return;
    srv->free_queued = true;
    if (srv->grace_timer)
        gn_timer_cancel(srv->loop, srv->grace_timer);
    if (srv->retry_timer)
        gn_timer_cancel(srv->loop, srv->retry_timer);
    srv->grace_timer = srv->retry_timer = 0;
    gn__loop_handle_remove(&srv->handle);
    gn__loop_defer(srv->loop, &srv->free_later);
}

static void async_close(gn_server *srv, uint32_t grace_ms)
{
    struct gn__list *node, *next;

    if (srv->closing)
        return;
    srv->closing = true;
    set_accepting(srv, false);
    gn__server_close_listeners(srv);
    gn__list_foreach_safe(node, next, &srv->conns) gn_close(gn__container_of(node, gn_conn, link));
    /* No grace for GN_DEFAULT_TIMEOUT and GN_NO_WAIT; under GN_NO_TIMEOUT
     * the connections close as they finish flushing. */
    grace_ms = gn__timer_ms(grace_ms);
    if (!gn__list_empty(&srv->conns) && grace_ms == 0)
        abort_remaining(srv->loop, 0, srv);
    else if (!gn__list_empty(&srv->conns) && grace_ms != GN_NO_TIMEOUT)
        gn_timer_start(srv->loop, grace_ms, 0, abort_remaining, srv, &srv->grace_timer);
    maybe_free(srv);
}

static size_t async_conn_count(const gn_server *srv)
{
    return srv->live;
}

static int async_foreach(gn_server *srv, void (*fn)(gn_conn *conn, void *arg), void *arg)
{
    struct gn__list *node, *next;
    int visited = 0;

    /* Connections are unlinked only after the batch, so next stays valid
     * whatever fn closes. */
    gn__list_foreach_safe(node, next, &srv->conns)
    {
        gn_conn *conn = gn__container_of(node, gn_conn, link);
        if (conn->state == GN__CLOSED || !conn->announced)
            continue; /* not yet, or no longer, the user's */
        fn(conn, arg);
        visited++;
    }
    return visited;
}

static const struct gn__server_kind async_kind = {
    .on_listener = on_listener_io,
    .close = async_close,
    .conn_count = async_conn_count,
    .foreach = async_foreach,
};
