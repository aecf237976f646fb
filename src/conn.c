/*
 * The connection core: lifecycle, the close state machine, the output
 * queue and the public calls on a connection.  Reading and writing the
 * socket live in conn_io.c.
 *
 * Life of a connection: CONNECTING (clients) -> OPEN -> CLOSED.  gn_close
 * and gn_shutdown only set flags while OPEN; the connection reaches CLOSED
 * through conn_finish, which closes the descriptor at once and schedules
 * finalize, which runs on_error and on_close after the current batch of
 * events and then frees the object.  So no handler ever runs inside the
 * gn_ call that closed it, and no event of the batch sees freed memory.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "conn_queue.h"
#include "tls.h"

#define DEFAULT_BACKLOG            511
#define DEFAULT_MAX_CONNS          10000
#define DEFAULT_SERVER_IDLE_MS     300000
#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_MAX_INPUT          (1u << 20)
#define DEFAULT_MAX_OUTPUT         (16u << 20)
#define DEFAULT_HIGH_WATERMARK     (1u << 20)
#define DEFAULT_LOW_WATERMARK      (64u << 10)

void gn__options_resolve(gn_options *out, const gn_options *in, bool server)
{
    static const gn_options none;

    *out = in ? *in : none;
    if (out->backlog <= 0)
        out->backlog = DEFAULT_BACKLOG;
    if (!out->max_conns)
        out->max_conns = DEFAULT_MAX_CONNS;
    if (!out->idle_timeout_ms)
        out->idle_timeout_ms = server ? DEFAULT_SERVER_IDLE_MS : GN_NO_TIMEOUT;
    if (!out->connect_timeout_ms)
        out->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (!out->max_input)
        out->max_input = DEFAULT_MAX_INPUT;
    if (!out->max_output)
        out->max_output = DEFAULT_MAX_OUTPUT;
    if (!out->high_watermark)
        out->high_watermark = DEFAULT_HIGH_WATERMARK;
    if (out->high_watermark > out->max_output)
        out->high_watermark = out->max_output;
    if (!out->low_watermark)
        out->low_watermark = DEFAULT_LOW_WATERMARK;
    if (out->low_watermark > out->high_watermark)
        out->low_watermark = out->high_watermark / 2;
}

static void conn_finalize(gn_loop *loop, struct gn__deferred *d);

/* Freed connections are kept for reuse, so a server under churn does not
 * allocate per client; the pool is bounded and emptied with the loop. */
#if defined(__SANITIZE_ADDRESS__)
#define CONN_POOL_MAX 0 /* under ASan, freed means freed: use-after-free shows */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CONN_POOL_MAX 0
#endif
#endif
#ifndef CONN_POOL_MAX
#define CONN_POOL_MAX 256
#endif

static gn_conn *conn_alloc(gn_loop *loop)
{
    gn_conn *conn = loop->conn_pool;

    if (!conn)
        return calloc(1, sizeof(*conn));
    loop->conn_pool = conn->next;
    loop->conn_pool_len--;
    memset(conn, 0, sizeof(*conn));
    return conn;
}

void gn__conn_dispose(gn_loop *loop, gn_conn *conn)
{
    /* A variable, not the macro, so a pool of 0 is not a tautology warning. */
    static const size_t pool_max = CONN_POOL_MAX;

    if (loop->conn_pool_len >= pool_max) {
        free(conn);
        return;
    }
    conn->next = loop->conn_pool;
    loop->conn_pool = conn;
    loop->conn_pool_len++;
}

void gn__conn_pool_free(gn_loop *loop)
{
    gn_conn *conn, *next;

    for (conn = loop->conn_pool; conn; conn = next) {
        next = conn->next;
        free(conn);
    }
    loop->conn_pool = NULL;
    loop->conn_pool_len = 0;
}

int gn__parse_stream_address(const char *address, unsigned flags, gn_endpoint *ep, char *errbuf,
                             size_t errlen)
{
    int rc = gn_endpoint_parse(address, flags, ep, errbuf, errlen);

    if (rc < 0)
        return rc;
    if (gn_endpoint_transport(ep) != GN_TRANSPORT_TCP &&
        gn_endpoint_transport(ep) != GN_TRANSPORT_UNIX &&
        gn_endpoint_transport(ep) != GN_TRANSPORT_TLS)
        return gn__errbuf_input(errbuf, errlen, GN_EFAMILY, address, strlen(address),
                                "a %s address carries datagrams, not a stream: use "
                                "gn_dgram_open (tcp://, unix: and tls:// are streams)",
                                gn_transport_name(gn_endpoint_transport(ep)));
    return 0;
}

int gn__conn_new(gn_loop *loop, gn_server *srv, int fd, const gn_handlers *h,
                 const gn_options *opts, gn_conn **out)
{
    gn_conn *conn = conn_alloc(loop);

    if (!conn)
        return GN_ENOMEM;
    conn->io.fd = fd;
    conn->io.cb = gn__conn_on_io;
    conn->loop = loop;
    conn->server = srv;
    conn->transport = &gn__transport_stream;
    conn->kind = GN_TRANSPORT_TCP;
    conn->h = *h;
    conn->opts = *opts;
    conn->user_data = opts->user_data;
    conn->state = fd < 0 ? GN__CONNECTING : GN__OPEN;
    conn->finalize.fn = conn_finalize;
    conn->last_active_ms = loop->now_ms;
    gn__loop_ref(loop);
    *out = conn;
    return 0;
}

/* ---- idle timeout --------------------------------------------------- */

/* One timer per connection, re-armed only when it fires: I/O just stamps
 * last_active_ms, so the hot path never touches the timer heap. */
static void idle_check(gn_loop *loop, uint64_t id, void *arg)
{
    gn_conn *conn = arg;
    uint64_t idle = loop->now_ms - conn->last_active_ms;

    (void)id;
    conn->idle_timer = 0;
    if (conn->state == GN__CLOSED)
        return;
    if (idle >= conn->opts.idle_timeout_ms) {
        gn__conn_fail(conn, GN_ETIMEDOUT, "idle for %llu ms (idle_timeout_ms %u)",
                      (unsigned long long)idle, (unsigned)conn->opts.idle_timeout_ms);
        return;
    }
    gn_timer_start(loop, conn->opts.idle_timeout_ms - idle, 0, idle_check, conn, &conn->idle_timer);
}

static void idle_arm(gn_conn *conn)
{
    if (conn->opts.idle_timeout_ms == GN_NO_TIMEOUT || conn->idle_timer)
        return;
    /* Without a timer the connection simply never times out: that is the
     * only effect of ENOMEM here, so it is not an error. */
    gn_timer_start(conn->loop, conn->opts.idle_timeout_ms, 0, idle_check, conn, &conn->idle_timer);
}

int gn__conn_established(gn_conn *conn, int fd)
{
    int rc;

    conn->io.fd = fd;
    conn->state = GN__OPEN;
    rc = gn__socket_setup(fd, conn->kind, &conn->opts, &conn->local, &conn->remote);
    if (rc < 0)
        return rc;
    conn->last_active_ms = conn->loop->now_ms;
    idle_arm(conn);
    gn__conn_update_watch(conn);
    return 0;
}

/* ---- closing -------------------------------------------------------- */

static void conn_release(gn_conn *conn)
{
    if (conn->handshake_timer) {
        gn_timer_cancel(conn->loop, conn->handshake_timer);
        conn->handshake_timer = 0;
    }
    gn__tls_detach(conn);
    gn__queue_clear(conn);
    free(conn->in_buf);
    conn->in_buf = NULL;
    conn->in_len = conn->in_cap = conn->in_start = 0;
}

/* Close the descriptor now and schedule on_error/on_close. */
static void conn_finish(gn_conn *conn, int reason)
{
    if (conn->state == GN__CLOSED)
        return;
    conn->state = GN__CLOSED;
    conn->close_reason = reason;
    if (conn->io.fd >= 0) {
        gn__io_watch(conn->loop, &conn->io, 0);
        close(conn->io.fd);
        conn->io.fd = -1;
    }
    if (conn->idle_timer) {
        gn_timer_cancel(conn->loop, conn->idle_timer);
        conn->idle_timer = 0;
    }
    if (conn->client)
        gn__client_free(conn);
    if (conn->server)
        gn__server_conn_closing(conn->server);
    conn_release(conn);
    gn__loop_defer(conn->loop, &conn->finalize);
}

static void conn_finalize(gn_loop *loop, struct gn__deferred *d)
{
    gn_conn *conn = (gn_conn *)((char *)d - offsetof(gn_conn, finalize));

    if (conn->close_reason < 0 && conn->h.on_error)
        conn->h.on_error(conn, conn->close_reason, conn->error);
    if (conn->h.on_close)
        conn->h.on_close(conn, conn->close_reason);
    if (conn->server)
        gn__server_conn_gone(conn->server, conn);
    else
        gn__client_unlink(loop, conn);
    gn__loop_unref(loop);
    gn__conn_dispose(loop, conn);
}

void gn__conn_fail(gn_conn *conn, int code, const char *fmt, ...)
{
    char text[GN_ERRBUF_SIZE - 64];
    char peer[GN_ENDPOINT_STRLEN] = "";
    va_list ap;

    if (conn->state == GN__CLOSED)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (conn->state == GN__OPEN)
        gn_endpoint_format(&conn->remote, peer, sizeof(peer));
    /* Bounded pieces: the peer and the reason always both fit. */
    snprintf(conn->error, sizeof(conn->error), "%.140s%s%.110s", peer, peer[0] ? ": " : "", text);
    gn__log(GN_LOG_DEBUG, "connection %s", conn->error);
    conn_finish(conn, code);
}

/* Called whenever the queue empties or a close flag changes: finish what
 * gn_close and gn_shutdown asked for once nothing is left to send. */
void gn__conn_check_done(gn_conn *conn)
{
    int rc;

    if (conn->state != GN__OPEN || conn->out_head || conn->handshaking)
        return;
    if (conn->closing) {
        /* TLS says goodbye (close_notify) before the socket closes. */
        rc = conn->transport->goodbye_on_close ? conn->transport->shutdown(conn) : 0;
        if (rc == GN__AGAIN) {
            gn__conn_update_watch(conn);
            return;
        }
        conn_finish(conn, 0);
        return;
    }
    if (conn->shutdown_asked && !conn->fin_sent) {
        rc = conn->transport->shutdown(conn);
        if (rc == GN__AGAIN) {
            gn__conn_update_watch(conn); /* close_notify still going out */
            return;
        }
        conn->fin_sent = true;
        if (rc < 0 && rc != GN_EUNREACH) {
            gn__conn_fail(conn, rc, "shutdown: %s", gn_strerror(rc));
            return;
        }
    }
    if (conn->fin_sent && conn->peer_ended)
        conn_finish(conn, 0); /* both directions are done */
}

int gn_close(gn_conn *conn)
{
    if (!conn)
        return GN_EINVAL;
    if (conn->blocking)
        return gn__blocking_close(conn, false);
    if (conn->state == GN__CLOSED || conn->closing)
        return 0;
    conn->closing = true;
    if (conn->state == GN__CONNECTING || conn->handshaking) {
        conn_finish(conn, 0); /* nothing of the user's to flush yet */
        return 0;
    }
    gn__conn_update_watch(conn); /* a closing connection reads no more */
    gn__conn_check_done(conn);
    return 0;
}

int gn_shutdown(gn_conn *conn)
{
    if (!conn)
        return GN_EINVAL;
    if (conn->blocking)
        return gn__blocking_shutdown(conn);
    if (conn->state == GN__CLOSED || conn->shutdown_asked || conn->closing)
        return 0;
    conn->shutdown_asked = true;
    if (conn->state == GN__OPEN)
        gn__conn_check_done(conn);
    return 0;
}

int gn_abort(gn_conn *conn)
{
    if (!conn)
        return GN_EINVAL;
    if (conn->blocking)
        return gn__blocking_close(conn, true);
    if (conn->state == GN__CLOSED)
        return 0;
    if (conn->io.fd >= 0)
        gn__socket_reset_on_close(conn->io.fd);
    conn_finish(conn, 0);
    return 0;
}

void gn__conns_abort_all(gn_loop *loop)
{
    for (gn_server *srv = loop->servers; srv; srv = gn__server_next(srv))
        gn__server_abort(srv);
    for (gn_conn *conn = loop->conns; conn; conn = conn->next)
        gn_abort(conn);
}

/* ---- sending -------------------------------------------------------- */

static int send_check(gn_conn *conn, uint64_t len)
{
    if (conn->state == GN__CLOSED || conn->closing || conn->shutdown_asked)
        return GN_ECLOSED;
    /* All or nothing: a send that would pass the cap queues nothing, so
     * the peer never sees half a message. */
    if (len > conn->opts.max_output - conn->out_queued) {
        conn->above_high = true; /* on_drain tells when to try again */
        return GN_ENOBUFS;
    }
    return 0;
}

int gn_send(gn_conn *conn, const void *buf, size_t len)
{
    int rc;

    if (!conn || (!buf && len > 0))
        return GN_EINVAL;
    if (conn->blocking)
        return GN_EMODE; /* gn_write_all is the blocking send */
    rc = send_check(conn, len);
    if (rc < 0 || len == 0)
        return rc;
    return gn__conn_send(conn, buf, len);
}

int gn_send_file(gn_conn *conn, int fd, int64_t offset, uint64_t len)
{
    int rc;

    if (!conn || fd < 0 || offset < 0)
        return GN_EINVAL;
    if (conn->blocking)
        return gn__blocking_send_file(conn, fd, offset, len);
    /* A file is not copied, so it does not count against max_output. */
    rc = send_check(conn, 0);
    if (rc < 0 || len == 0)
        return rc;
    rc = gn__queue_file(conn, fd, offset, len);
    if (rc < 0)
        return rc;
    if (conn->state == GN__OPEN)
        gn__conn_flush(conn);
    return 0;
}

/* ---- reading control ------------------------------------------------ */

int gn_pause_reading(gn_conn *conn)
{
    if (!conn)
        return GN_EINVAL;
    if (conn->blocking)
        return GN_EMODE;
    conn->paused_by_user = true;
    gn__conn_update_watch(conn);
    return 0;
}

static void redeliver(gn_loop *loop, struct gn__deferred *d)
{
    gn_conn *conn = (gn_conn *)((char *)d - offsetof(gn_conn, redeliver));

    (void)loop;
    conn->redeliver_queued = false;
    gn__conn_deliver_buffered(conn);
    gn__conn_read_transport_buffered(conn);
}

/* Only while OPEN: finalize, queued later by a close, then runs after. */
void gn__conn_schedule_redeliver(gn_conn *conn)
{
    if (conn->redeliver_queued || conn->state != GN__OPEN)
        return;
    conn->redeliver_queued = true;
    conn->redeliver.fn = redeliver;
    gn__loop_defer(conn->loop, &conn->redeliver);
}

int gn_resume_reading(gn_conn *conn)
{
    if (!conn)
        return GN_EINVAL;
    if (conn->blocking)
        return GN_EMODE;
    if (!conn->paused_by_user)
        return 0;
    conn->paused_by_user = false;
    gn__conn_update_watch(conn);
    /* Input that arrived before the pause is offered again soon, not
     * inside this call, and without waiting for more bytes to arrive. */
    if (conn->in_len > 0)
        gn__conn_schedule_redeliver(conn);
    return 0;
}

/* ---- accessors ------------------------------------------------------ */

int gn_conn_set_handlers(gn_conn *conn, const gn_handlers *handlers)
{
    if (!conn || !handlers)
        return GN_EINVAL;
    if (conn->blocking)
        return GN_EMODE;
    conn->h = *handlers;
    return 0;
}

void *gn_conn_user_data(const gn_conn *conn)
{
    return conn ? conn->user_data : NULL;
}

void gn_conn_set_user_data(gn_conn *conn, void *data)
{
    if (conn)
        conn->user_data = data;
}

const gn_endpoint *gn_conn_local(const gn_conn *conn)
{
    return conn && gn_endpoint_is_resolved(&conn->local) ? &conn->local : NULL;
}

const gn_endpoint *gn_conn_remote(const gn_conn *conn)
{
    return conn && gn_endpoint_is_resolved(&conn->remote) ? &conn->remote : NULL;
}

gn_server *gn_conn_server(const gn_conn *conn)
{
    return conn ? conn->server : NULL;
}

gn_loop *gn_conn_loop(const gn_conn *conn)
{
    return conn ? conn->loop : NULL;
}

bool gn_conn_is_blocking(const gn_conn *conn)
{
    return conn && conn->blocking;
}

bool gn_conn_is_open(const gn_conn *conn)
{
    return conn && conn->state == GN__OPEN && !conn->closing && !conn->shutdown_asked;
}

int gn_conn_get_stats(const gn_conn *conn, gn_conn_stats *out)
{
    if (!conn || !out)
        return GN_EINVAL;
    *out = conn->stats;
    out->queued = conn->out_queued;
    out->buffered = conn->in_len;
    return 0;
}
