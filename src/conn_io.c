/*
 * The engine of an event-driven connection: the close state machine, the
 * idle timer, the transport's handshake, and the data path (reading into
 * the input buffer and offering it to on_data, writing straight through
 * or from the queue, watermarks and back-pressure).
 *
 * Life of a connection: CONNECTING (clients) -> OPEN -> CLOSED.  gn_close
 * and gn_shutdown only set flags while OPEN; the connection reaches CLOSED
 * through gn__conn_finish, which closes the descriptor at once and
 * schedules finalize, which runs on_error and on_close after the current
 * batch of events, tells the owner, and frees the object.  So no handler
 * ever runs inside the gn_ call that closed it, and no event of the batch
 * sees freed memory.
 *
 * Reads go first into the loop's shared read buffer; only bytes the
 * handler leaves unconsumed are copied into the connection's own buffer.
 * An echo or request/response server that consumes what it gets thus
 * needs no per-connection input memory and no allocation per message.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn_queue.h"
#include "faults.h"
#include "frame.h"
#include "inbuf.h"
#include "ratelimit.h"
#include "tls.h"

#define READ_BUF_SIZE (64u << 10)
/* Reads per readiness event before giving other descriptors a turn
 * (libuv does 32 rounds for the same reason: loop starvation). */
#define READ_BUDGET   16
#define WRITE_IOV_MAX 64
#define SENDFILE_STEP (1u << 20)

/* A transport that knows why it failed (TLS: OpenSSL's reason) leaves it
 * in the connection's error; else the code says it. */
static const char *transport_reason(const gn_conn *conn, int code)
{
    const char *error = gn__conn_error(conn);

    return error[0] ? error : gn_strerror(code);
}

static char *shared_read_buf(gn_loop *loop)
{
    if (!loop->read_buf)
        loop->read_buf = malloc(READ_BUF_SIZE);
    return loop->read_buf;
}

static bool wants_read(const gn_conn *conn)
{
    return conn->state == GN__OPEN && !conn->closing && !conn->peer_ended &&
           !conn->paused_by_user && !conn->paused_by_output && !conn->handshaking &&
           !conn->rate_wait_read;
}

bool gn__conn_transport_pending(const gn_conn *conn)
{
    return conn->transport->pending && conn->transport->pending(conn);
}

bool gn__conn_transport_buffered(const gn_conn *conn)
{
    return conn->transport->buffered && conn->transport->buffered(conn);
}

/* A completion backend receives for plain sockets; TLS and user
 * transports read through readiness and their own calls. */
static bool by_completion(const gn_conn *conn)
{
    return conn->loop->backend->recv_pause && conn->transport == &gn__transport_stream;
}

/* Receive while reading is wanted; a pause keeps what is in flight.  A
 * peer's end seen while paused is acted on when reading resumes. */
static int update_receiving(gn_conn *conn)
{
    const struct gn__backend *b = conn->loop->backend;
    bool want = wants_read(conn);
    int rc;

    if (want && !conn->receiving && !conn->eof_pending) {
        rc = b->recv_start(conn->loop, &conn->io);
        if (rc < 0)
            return rc;
        conn->receiving = conn->recv_held = true;
    } else if (!want && conn->receiving) {
        b->recv_pause(conn->loop, &conn->io);
        conn->receiving = false;
    }
    if (want && conn->eof_pending)
        gn__conn_schedule_redeliver(conn); /* the end, after what is buffered */
    return 0;
}

/* Before the descriptor closes: a paused io is still the backend's. */
static void receiving_end(gn_conn *conn)
{
    if (conn->recv_held)
        conn->loop->backend->recv_stop(conn->loop, &conn->io);
    conn->receiving = conn->recv_held = false;
}

void gn__conn_update_watch(gn_conn *conn)
{
    unsigned events = 0;
    int rc;

    if (conn->state == GN__CLOSED || conn->io.fd < 0)
        return;
    if (by_completion(conn)) {
        rc = update_receiving(conn);
        if (rc < 0) {
            gn__conn_fail(conn, rc, "cannot receive: %s", gn_strerror(rc));
            return;
        }
    } else if (wants_read(conn) || (conn->handshaking && conn->state == GN__OPEN)) {
        events |= GN__READ;
    }
    if (conn->state == GN__OPEN && ((conn->out && !conn->handshaking && !conn->rate_wait_write) ||
                                    gn__conn_transport_pending(conn)))
        events |= GN__WRITE;
    rc = gn__io_watch(conn->loop, &conn->io, events);
    if (rc < 0) {
        gn__conn_fail(conn, rc, "cannot watch the socket: %s", gn_strerror(rc));
        return;
    }
    /* Reading (re)enabled while the transport holds input: read it soon. */
    if ((events & GN__READ) && !conn->handshaking && gn__conn_transport_buffered(conn))
        gn__conn_schedule_redeliver(conn);
}

/* ---- input ---------------------------------------------------------- */

static size_t offer_bytes(gn_conn *conn, const char *data, size_t len)
{
    size_t used;

    if (!conn->prof->h.on_data)
        return len; /* nobody listens: discard, as /dev/null would */
    used = conn->prof->h.on_data(conn, data, len);
    return used > len ? len : used;
}

/* Input refused by the framing: what was sent before it still goes out
 * (gn_close's flush), then on_error and on_close carry code. */
static void fail_after_flush(gn_conn *conn, int code, const char *why)
{
    char peer[GN_ENDPOINT_STRLEN];

    gn__conn_format_peer(conn, peer, sizeof(peer));
    gn__conn_set_error(conn, "%.140s: %.110s", peer, why);
    gn__log(GN_LOG_DEBUG, "connection %s", gn__conn_error(conn));
    conn->close_reason = (int16_t)code;
    (conn->prof->owner->mode->close)(conn, false);
}

/* Messages while framed; bytes to on_data once a handler turns framing
 * off, or messages again once on_data turns it on.  Two turns take a
 * byte at least (a message does), so this ends. */
static size_t deliver_framed(gn_conn *conn, const char *data, size_t len)
{
    char why[GN__FRAME_WHY_SIZE];
    size_t used = 0;
    int code = 0;
    bool framed;

    do {
        framed = conn->framed;
        if (framed)
            used += gn__messages_deliver(conn, data + used, len - used, &code, why, sizeof(why));
        else
            used += offer_bytes(conn, data + used, len - used);
    } while (code == 0 && used < len && conn->framed != framed && conn->state == GN__OPEN &&
             !conn->closing);
    if (code < 0 && conn->state == GN__OPEN && !conn->closing)
        fail_after_flush(conn, code, why);
    return used;
}

static size_t call_on_data(gn_conn *conn, const char *data, size_t len)
{
    if (conn->framed)
        return deliver_framed(conn, data, len);
    return offer_bytes(conn, data, len);
}

static void input_over_cap(gn_conn *conn)
{
    gn__conn_fail(conn, GN_EMSGSIZE, "more than max_input (%zu bytes) of input left unconsumed",
                  conn->prof->opts.max_input);
}

static void input_failed(gn_conn *conn, int rc)
{
    if (rc == GN_EMSGSIZE)
        input_over_cap(conn);
    else
        gn__conn_fail(conn, rc, "input buffer: %s", gn_strerror(rc));
}

/* What the handler left of bytes in a loop-owned buffer: into the
 * connection's own.  Apart (and cold) so that the common case, all
 * consumed, stays a few instructions in its caller. */
static __attribute__((noinline, cold)) void keep_unconsumed(gn_conn *conn, const char *data,
                                                            size_t len, size_t used)
{
    int rc;

    /* A closing connection delivers no more: the rest is dropped, as
     * unread bytes are (and cannot fail it over max_input instead). */
    if (conn->state == GN__CLOSED || conn->closing)
        return;
    rc = gn__inbuf_reserve(conn, len - used, conn->prof->opts.max_input);
    if (rc < 0) {
        input_failed(conn, rc);
        return;
    }
    memcpy(conn->in->data, data + used, len - used);
    conn->in->len = len - used;
}

/* Offer bytes read into a loop-owned buffer; keep what is left. */
static inline void deliver_shared(gn_conn *conn, const char *data, size_t len)
{
    size_t used = call_on_data(conn, data, len);

    if (used != len)
        keep_unconsumed(conn, data, len, used);
}

static void deliver_buffered(gn_conn *conn)
{
    size_t used;

    if (conn->state != GN__OPEN || !conn->in || conn->paused_by_user)
        return;
    used = call_on_data(conn, conn->in->data + conn->in->start, conn->in->len);
    if (conn->state == GN__CLOSED || !conn->in)
        return;
    gn__inbuf_consume(conn, used);
}

static void on_peer_end(gn_conn *conn)
{
    conn->peer_ended = true;
    gn__conn_update_watch(conn);
    if (conn->fin_sent) {
        gn__conn_check_done(conn);
        return;
    }
    if (conn->prof->h.on_end && conn->announced)
        conn->prof->h.on_end(conn);
    else
        (conn->prof->owner->mode->close)(conn, false);
}

/* Where the next read goes: the shared buffer when nothing is pending,
 * else after the pending bytes, so frames accumulate in one place; never
 * more than max_input in all. */
static char *read_target(gn_conn *conn, size_t *room)
{
    size_t max = conn->prof->opts.max_input, want;
    struct gn__inbuf *in = conn->in;
    char *buf;
    int rc;

    if (!in) {
        buf = shared_read_buf(conn->loop);
        if (!buf)
            gn__conn_fail(conn, GN_ENOMEM, "read buffer: out of memory");
        *room = READ_BUF_SIZE;
        return buf;
    }
    if (in->len >= max) {
        input_over_cap(conn);
        return NULL;
    }
    if (in->start + in->len == in->cap) {
        want = in->len < 4096 ? 8192 : in->len * 2;
        rc = gn__inbuf_reserve(conn, want < max ? want : max, max);
        if (rc < 0) {
            input_failed(conn, rc);
            return NULL;
        }
        in = conn->in;
    }
    *room = in->cap - in->start - in->len;
    if (*room > max - in->len)
        *room = max - in->len;
    return in->data + in->start + in->len;
}

/* Bytes just read: counted, and offered to the handler. */
static void got_input(gn_conn *conn, const char *buf, size_t n)
{
    conn->bytes_in += (uint64_t)n;
    conn->reads++;
    if (conn->rate_limited && gn__rate_used(conn, GN__RATE_READ, n))
        gn__conn_update_watch(conn); /* out of tokens: stop reading the socket */
    gn__idle_touch(conn->loop, &conn->idle);
    if (!conn->in || buf != conn->in->data + conn->in->start + conn->in->len) {
        deliver_shared(conn, buf, n);
        return;
    }
    conn->in->len += n;
    deliver_buffered(conn);
}

/* One read; returns false when reading should stop for now. */
static bool read_once(gn_conn *conn)
{
    size_t room;
    char *buf = read_target(conn, &room);
    ssize_t n;

    if (!buf)
        return false;
    if (conn->rate_limited && (room = gn__rate_allow(conn, GN__RATE_READ, room)) == 0) {
        gn__conn_update_watch(conn); /* no tokens: the socket waits, not a buffer */
        return false;
    }
    n = (conn->transport->read)(conn, buf, room);
    if (n == GN__AGAIN)
        return false;
    if (n < 0) {
        gn__conn_fail(conn, (int)n, "read: %s", transport_reason(conn, (int)n));
        return false;
    }
    if (n == 0) {
        on_peer_end(conn);
        return false;
    }
    got_input(conn, buf, (size_t)n);
    return (size_t)n == room || gn__conn_transport_buffered(conn);
}

/* Bytes a completion backend received into its buffer: offered at once,
 * or after the bytes already waiting, at most max_input at a time, as a
 * readiness read would take them (a handler that consumes frames never
 * meets the cap by receiving in large pieces).  While reading is paused
 * they are kept, whatever their size: a pause cannot give back what the
 * kernel had received, so at most what was in flight goes past the cap. */
static void got_received(gn_conn *conn, const char *data, size_t n)
{
    size_t max = conn->prof->opts.max_input;

    if (conn->closing)
        return; /* a closing connection reads no more: dropped, as unread */
    conn->bytes_in += (uint64_t)n;
    conn->reads++;
    gn__idle_touch(conn->loop, &conn->idle);
    while (n > 0 && conn->state == GN__OPEN && !conn->closing) {
        size_t have = gn__inbuf_len(conn), step = n;
        bool wanted = wants_read(conn);
        int rc;

        if (have == 0 && wanted) {
            deliver_shared(conn, data, n);
            return;
        }
        if (wanted && have >= max) {
            input_over_cap(conn);
            return;
        }
        if (wanted && step > max - have)
            step = max - have;
        rc = gn__inbuf_reserve(conn, have + step, have + step > max ? have + step : max);
        if (rc < 0) {
            input_failed(conn, rc);
            return;
        }
        memcpy(conn->in->data + conn->in->len, data, step);
        conn->in->len += step;
        data += step;
        n -= step;
        deliver_buffered(conn);
    }
    if (conn->state == GN__OPEN && gn__inbuf_len(conn) >= max && wants_read(conn))
        input_over_cap(conn);
}

/* Bytes a completion backend received already: delivered as ever, then
 * paid for (an overdraft pauses the receiving for longer). */
static void rate_received(gn_conn *conn, size_t n)
{
    if (conn->state != GN__OPEN)
        return; /* closed by a handler: its limits are gone with it */
    if (gn__rate_used(conn, GN__RATE_READ, n))
        gn__conn_update_watch(conn);
}

/* A hostile network (faults.h) cuts what the kernel received into the
 * pieces short reads would have returned. */
static void got_received_in_pieces(gn_conn *conn, const char *data, size_t n)
{
    while (n > 0 && conn->state == GN__OPEN) {
        size_t piece = gn__faults_piece(n);
        got_received(conn, data, piece);
        data += piece;
        n -= piece;
    }
}

static void on_received(gn_conn *conn)
{
    int res = conn->loop->done.res;

    if (res > 0 && gn__faults_on()) {
        got_received_in_pieces(conn, conn->loop->done.data, (size_t)res);
        if (conn->rate_limited)
            rate_received(conn, (size_t)res);
        return;
    }
    if (res > 0) {
        got_received(conn, conn->loop->done.data, (size_t)res);
        if (conn->rate_limited)
            rate_received(conn, (size_t)res);
        return;
    }
    conn->receiving = conn->recv_held = false; /* the backend ended it */
    if (res < 0) {
        gn__conn_fail(conn, res, "read: %s", gn_strerror(res));
        return;
    }
    /* As a read of 0 does on readiness: the end is told at once, whatever
     * the handler left unconsumed; a paused connection hears it on resume. */
    if (wants_read(conn)) {
        on_peer_end(conn);
        return;
    }
    conn->eof_pending = true;
}

/* Inline: its caller on every readiness event is gn__conn_on_io. */
static inline void conn_read(gn_conn *conn)
{
    for (int i = 0; i < READ_BUDGET && wants_read(conn); i++)
        if (!read_once(conn))
            break;
    /* Budget spent with records still in memory: no readiness event will
     * come for them, so come back after the batch. */
    if (wants_read(conn) && gn__conn_transport_buffered(conn))
        gn__conn_schedule_redeliver(conn);
}

static void read_transport_buffered(gn_conn *conn)
{
    if (wants_read(conn) && gn__conn_transport_buffered(conn))
        conn_read(conn);
}

/* ---- idle timeout --------------------------------------------------- */

static void idle_expired(struct gn__idle_entry *entry, uint64_t idle_ms)
{
    gn_conn *conn = gn__container_of(entry, gn_conn, idle);

    gn__conn_fail(conn, GN_ETIMEDOUT, "idle for %llu ms (idle_timeout_ms %u)",
                  (unsigned long long)idle_ms, (unsigned)conn->prof->opts.idle_timeout_ms);
}

int gn__conn_established(gn_conn *conn, int fd)
{
    uint32_t idle_ms = conn->prof->opts.idle_timeout_ms;
    int rc;

    conn->io.fd = fd;
    conn->state = GN__OPEN;
    rc = gn__socket_options(fd, (gn_transport)conn->kind, &conn->prof->opts);
    if (rc < 0)
        return rc;
    /* Without a place in the queue (ENOMEM) the connection simply never
     * times out: not worth failing it for. */
    if (idle_ms != GN_NO_TIMEOUT)
        gn__idle_add(conn->loop, &conn->idle, gn__timer_ms(idle_ms), idle_expired);
    gn__conn_update_watch(conn);
    return 0;
}

/* ---- closing -------------------------------------------------------- */

static void conn_release(gn_conn *conn)
{
    gn__rate_stop(conn);
    if (conn->ext && conn->ext->handshake_timer) {
        gn_timer_cancel(conn->loop, conn->ext->handshake_timer);
        conn->ext->handshake_timer = 0;
    }
    gn__tls_detach(conn);
    gn__queue_clear(conn);
    gn__inbuf_release(conn);
}

void gn__conn_discard(gn_conn *conn)
{
    gn_loop *loop = conn->loop;

    gn__list_remove(&conn->link);
    if (conn->ext)
        gn__loop_handle_remove(&conn->ext->handle);
    gn__conn_ext_free(conn);
    gn__loop_unref(loop);
    gn__pool_put(&loop->conn_pool, conn, GN__CONN_POOL_MAX);
}

static void conn_finalize(gn_loop *loop, struct gn__deferred *d)
{
    gn_conn *conn = gn__container_of(d, gn_conn, later);
    const gn_handlers *h = &conn->prof->h;

    if (conn->announced && conn->close_reason < 0 && h->on_error)
        h->on_error(conn, conn->close_reason, gn__conn_error(conn));
    if (conn->announced && h->on_close)
        h->on_close(conn, conn->close_reason);
    (void)loop;
    conn->prof->owner->gone(conn);
    gn__conn_discard(conn);
}

void gn__conn_finish(gn_conn *conn, int reason, bool reset)
{
    if (conn->state == GN__CLOSED)
        return;
    conn->state = GN__CLOSED;
    conn->close_reason = (int16_t)reason;
    if (conn->io.fd >= 0) {
        if (reset)
            gn__socket_reset_on_close(conn->io.fd);
        receiving_end(conn);
        gn__io_watch(conn->loop, &conn->io, 0);
        close(conn->io.fd);
        conn->io.fd = -1;
    }
    gn__idle_remove(conn->loop, &conn->idle);
    if (conn->prof->owner->closing)
        conn->prof->owner->closing(conn);
    conn_release(conn);
    /* One deferral serves both: a redeliver already queued becomes the
     * finalize, in its place in the queue (still after this batch). */
    conn->later.fn = conn_finalize;
    if (!conn->redeliver_queued)
        gn__loop_defer(conn->loop, &conn->later);
    conn->redeliver_queued = false;
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
        gn__conn_format_peer(conn, peer, sizeof(peer));
    /* Bounded pieces: the peer and the reason always both fit; without
     * a peer the reason has the room (a proxy's route and answer). */
    gn__conn_set_error(conn, "%.140s%s%.*s", peer, peer[0] ? ": " : "", peer[0] ? 110 : 200, text);
    gn__log(GN_LOG_DEBUG, "connection %s", gn__conn_error(conn));
    gn__conn_finish(conn, code, false);
}

/* Called whenever the queue empties or a close flag changes: finish what
 * gn_close and gn_shutdown asked for once nothing is left to send. */
void gn__conn_check_done(gn_conn *conn)
{
    int rc;

    if (conn->state != GN__OPEN || conn->out || conn->handshaking)
        return;
    if (conn->closing) {
        /* TLS says goodbye (close_notify) before the socket closes. */
        rc = conn->transport->goodbye_on_close ? (conn->transport->shutdown)(conn) : 0;
        if (rc == GN__AGAIN) {
            gn__conn_update_watch(conn);
            return;
        }
        gn__conn_finish(conn, conn->close_reason, false); /* 0 unless input was refused */
        return;
    }
    if (conn->shutdown_asked && !conn->fin_sent) {
        rc = (conn->transport->shutdown)(conn);
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
        gn__conn_finish(conn, 0, false); /* both directions are done */
}

int gn__conn_detach(gn_conn *conn)
{
    if (conn->state != GN__OPEN || conn->closing || conn->shutdown_asked || conn->out ||
        conn->handshaking || conn->redeliver_queued)
        return GN_ECLOSED;
    receiving_end(conn);
    gn__io_watch(conn->loop, &conn->io, 0);
    gn__idle_remove(conn->loop, &conn->idle);
    gn__rate_stop(conn); /* its timers are the loop's */
    if (conn->ext)
        gn__loop_handle_remove(&conn->ext->handle);
    gn__loop_unref(conn->loop);
    conn->loop = NULL;
    if (conn->ext)
        conn->ext->own.h = (gn_handlers){0};
    conn->paused_by_user = false;
    return 0;
}

static void redeliver(gn_loop *loop, struct gn__deferred *d)
{
    gn_conn *conn = gn__container_of(d, gn_conn, later);

    (void)loop;
    conn->redeliver_queued = false;
    deliver_buffered(conn);
    read_transport_buffered(conn);
    if (conn->eof_pending && conn->state == GN__OPEN && wants_read(conn)) {
        conn->eof_pending = false;
        on_peer_end(conn);
    }
}

/* Only while OPEN: a close meanwhile turns it into the finalize. */
void gn__conn_schedule_redeliver(gn_conn *conn)
{
    if (conn->redeliver_queued || conn->state != GN__OPEN)
        return;
    conn->redeliver_queued = true;
    conn->later.fn = redeliver;
    gn__loop_defer(conn->loop, &conn->later);
}

void gn__conn_rate_wake(gn_conn *conn, int dir)
{
    if (conn->state != GN__OPEN)
        return;
    if (dir == GN__RATE_WRITE) {
        if (conn->out)
            gn__conn_flush(conn);
        return;
    }
    gn__conn_update_watch(conn); /* reading again; the socket says when */
}

/* ---- output --------------------------------------------------------- */

static void check_watermarks(gn_conn *conn)
{
    if (gn__conn_queued(conn) > conn->prof->opts.high_watermark) {
        conn->above_high = true;
        if (conn->prof->opts.pause_reading_when_full && !conn->paused_by_output) {
            conn->paused_by_output = true;
            gn__conn_update_watch(conn);
        }
        return;
    }
    if (gn__conn_queued(conn) <= conn->prof->opts.low_watermark && conn->paused_by_output) {
        conn->paused_by_output = false;
        gn__conn_update_watch(conn);
        if (conn->framed && conn->in)
            gn__conn_schedule_redeliver(conn); /* messages held back while full */
    }
    if (gn__conn_queued(conn) <= conn->prof->opts.low_watermark && conn->above_high) {
        conn->above_high = false;
        if (conn->prof->h.on_drain && conn->state == GN__OPEN)
            conn->prof->h.on_drain(conn);
    }
}

static int write_file_chunk(gn_conn *conn, struct gn__chunk *c)
{
    size_t step = c->len < SENDFILE_STEP ? c->len : SENDFILE_STEP;
    ssize_t n;

    if (conn->rate_limited && (step = gn__rate_allow(conn, GN__RATE_WRITE, step)) == 0)
        return GN__AGAIN;
    n = (conn->transport->sendfile)(conn, c->file_fd, &c->file_off, step);
    if (n < 0)
        return (int)n;
    if (conn->rate_limited)
        gn__rate_used(conn, GN__RATE_WRITE, (size_t)n);
    if (n == 0) {
        gn__conn_fail(conn, GN_ESYS, "sendfile: the file ended %zu bytes early", c->len);
        return GN_ESYS;
    }
    c->len -= (size_t)n;
    conn->bytes_out += (uint64_t)n;
    conn->writes++;
    if (c->len == 0)
        gn__queue_drop_head(conn);
    return 0;
}

/* Cut iov to the write tokens there are: the count left, 0 for none. */
static int limit_iov(gn_conn *conn, struct iovec *iov, int cnt)
{
    size_t total = 0, allowed;
    int i;

    for (i = 0; i < cnt; i++)
        total += iov[i].iov_len;
    allowed = total ? gn__rate_allow(conn, GN__RATE_WRITE, total) : 0;
    if (allowed == 0)
        return 0;
    for (i = 0; i < cnt && allowed > 0; i++) {
        if (iov[i].iov_len > allowed)
            iov[i].iov_len = allowed;
        allowed -= iov[i].iov_len;
    }
    return i;
}

static int write_data_chunks(gn_conn *conn)
{
    struct iovec iov[WRITE_IOV_MAX];
    int cnt = gn__queue_iov(conn, iov, WRITE_IOV_MAX);
    ssize_t n;

    if (conn->rate_limited && (cnt = limit_iov(conn, iov, cnt)) == 0)
        return GN__AGAIN;
    n = (conn->transport->writev)(conn, iov, cnt);
    if (n < 0)
        return (int)n;
    if (conn->rate_limited)
        gn__rate_used(conn, GN__RATE_WRITE, (size_t)n);
    conn->bytes_out += (uint64_t)n;
    conn->writes++;
    gn__queue_consume(conn, (size_t)n);
    return 0;
}

/* Write from the queue until it is empty or the socket is full. */
void gn__conn_flush(gn_conn *conn)
{
    struct gn__chunk *head;
    int rc = 0;

    if (conn->transport->flush && conn->state == GN__OPEN)
        rc = conn->transport->flush(conn); /* the transport's own bytes first */
    while ((head = gn__queue_head(conn)) && rc == 0 && conn->state == GN__OPEN &&
           !conn->handshaking) {
        if (head->file_fd >= 0)
            rc = write_file_chunk(conn, head);
        else
            rc = write_data_chunks(conn);
    }
    if (conn->state == GN__CLOSED)
        return;
    if (rc < 0 && rc != GN__AGAIN) {
        gn__conn_fail(conn, rc, "write: %s", transport_reason(conn, rc));
        return;
    }
    gn__idle_touch(conn->loop, &conn->idle);
    gn__conn_update_watch(conn);
    check_watermarks(conn);
    gn__conn_check_done(conn);
}

/* What a send could not write at once (n bytes went): queue the rest,
 * or fail the connection on a write error (n < 0).  Cold: the common
 * send writes everything straight through. */
static __attribute__((noinline)) int send_rest(gn_conn *conn, const char *buf, size_t len,
                                               ssize_t n)
{
    int rc;

    if (n == GN__AGAIN) {
        n = 0;
    } else if (n < 0) {
        /* The connection ended in this call: gn_send says so as it does
         * for one already ended; the reason goes to on_error and on_close. */
        gn__conn_fail(conn, (int)n, "write: %s", transport_reason(conn, (int)n));
        return GN_ECLOSED;
    } else if (n > 0) {
        conn->bytes_out += (uint64_t)n;
        conn->writes++;
        gn__idle_touch(conn->loop, &conn->idle);
    }
    rc = gn__queue_data(conn, buf + n, len - (size_t)n);
    if (rc < 0) {
        /* Part went out already: the stream is broken, so end it rather
         * than let the peer see half a message followed by the next. */
        if (n > 0)
            gn__conn_fail(conn, rc, "output queue: out of memory");
        return rc;
    }
    gn__conn_update_watch(conn);
    check_watermarks(conn);
    return 0;
}

/* A send under a write limit: what the tokens allow now, the rest queued. */
static __attribute__((noinline)) int send_limited(gn_conn *conn, const char *buf, size_t len)
{
    size_t allowed = gn__rate_allow(conn, GN__RATE_WRITE, len);
    struct iovec iov = {(void *)buf, allowed};
    ssize_t n = allowed ? (conn->transport->writev)(conn, &iov, 1) : 0;

    if (n > 0)
        gn__rate_used(conn, GN__RATE_WRITE, (size_t)n);
    if (n >= 0 && (size_t)n == len) {
        conn->bytes_out += (uint64_t)n;
        conn->writes++;
        gn__idle_touch(conn->loop, &conn->idle);
        if (gn__conn_transport_pending(conn))
            gn__conn_update_watch(conn);
        return 0;
    }
    return send_rest(conn, buf, len, n);
}

int gn__conn_send(gn_conn *conn, const void *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};
    ssize_t n;

    /* Something queued (or no socket to write yet): behind it. */
    if (conn->state != GN__OPEN || conn->out || conn->handshaking)
        return send_rest(conn, buf, len, 0);
    if (conn->rate_limited)
        return send_limited(conn, buf, len);
    /* The fast path: nothing queued, so write now and copy nothing. */
    n = (conn->transport->writev)(conn, &iov, 1);
    if (n < 0 || (size_t)n != len)
        return send_rest(conn, buf, len, n);
    conn->bytes_out += (uint64_t)n;
    conn->writes++;
    gn__idle_touch(conn->loop, &conn->idle);
    if (gn__conn_transport_pending(conn))
        gn__conn_update_watch(conn); /* ciphertext still to go out */
    return 0;
}

/* ---- events --------------------------------------------------------- */

static void conn_socket_error(gn_conn *conn)
{
    int rc = gn__socket_error(conn->io.fd);

    gn__conn_fail(conn, rc < 0 ? rc : GN_ECONNRESET, "%s",
                  gn_strerror(rc < 0 ? rc : GN_ECONNRESET));
}

/* ---- transport handshake (TLS) ---------------------------------------- */

static void handshake_expired(gn_loop *loop, uint64_t id, void *arg)
{
    gn_conn *conn = arg;

    (void)loop;
    (void)id;
    conn->ext->handshake_timer = 0;
    if (conn->prof->owner->is_server) {
        char peer[GN_ENDPOINT_STRLEN];
        gn__conn_format_peer(conn, peer, sizeof(peer));
        gn__log(GN_LOG_WARN, "%s: TLS handshake timed out: dropped", peer);
    }
    gn__conn_fail(conn, GN_ETIMEDOUT, "TLS handshake timed out");
}

static void handshake_step(gn_conn *conn)
{
    char reason[GN_ERRBUF_SIZE];
    int rc = conn->transport->handshake(conn);

    gn__idle_touch(conn->loop, &conn->idle);
    if (rc == GN__AGAIN) {
        gn__conn_update_watch(conn);
        return;
    }
    if (rc < 0) {
        snprintf(reason, sizeof(reason), "%s", transport_reason(conn, rc));
        if (conn->prof->owner->is_server) {
            char peer[GN_ENDPOINT_STRLEN];
            gn__conn_format_peer(conn, peer, sizeof(peer));
            gn__log(GN_LOG_WARN, "%s: %s: dropped", peer, reason);
        }
        gn__conn_fail(conn, rc, "%s", reason);
        return;
    }
    conn->handshaking = false;
    if (conn->ext->handshake_timer) {
        gn_timer_cancel(conn->loop, conn->ext->handshake_timer);
        conn->ext->handshake_timer = 0;
    }
    if (conn->closing) {
        /* closed while shaking hands (a closing server): never offered */
        gn__conn_check_done(conn);
        return;
    }
    conn->prof->owner->ready(conn);
    if (conn->state != GN__OPEN)
        return;
    gn__conn_flush(conn);
    /* Application data may have come with the handshake's last flight
     * and already sit decrypted in the transport: no readiness will say so. */
    if (conn->state == GN__OPEN)
        conn_read(conn);
}

int gn__conn_start_handshake(gn_conn *conn, uint32_t timeout_ms)
{
    struct gn__conn_ext *ext = gn__conn_ext(conn);
    int rc = ext ? 0 : GN_ENOMEM;

    if (rc == 0 && timeout_ms != GN_NO_TIMEOUT)
        rc = gn_timer_start(conn->loop, gn__timer_ms(timeout_ms), 0, handshake_expired, conn,
                            &ext->handshake_timer);
    if (rc < 0)
        return rc;
    conn->handshaking = true;
    handshake_step(conn); /* a client speaks first */
    return 0;
}

void gn__conn_on_io(gn_loop *loop, struct gn__io *io, unsigned events)
{
    gn_conn *conn = gn__container_of(io, gn_conn, io);

    (void)loop;
    if (events & GN__RECV) {
        on_received(conn);
        return;
    }
    if (conn->handshaking) {
        if ((events & GN__WRITE) && conn->transport->flush)
            conn->transport->flush(conn);
        if (events & (GN__READ | GN__ERROR))
            handshake_step(conn);
        else
            gn__conn_update_watch(conn);
        return;
    }
    if (events & GN__WRITE)
        gn__conn_flush(conn);
    /* A hang-up may come with unread data: read it first, the read then
     * reports EOF or the error itself. */
    if ((events & (GN__READ | GN__ERROR)) && wants_read(conn))
        conn_read(conn);
    else if ((events & GN__ERROR) && conn->state == GN__OPEN && !(events & GN__WRITE))
        conn_socket_error(conn);
}
