/*
 * Blocking mode: the same gn_conn driven by calls that wait, for clients
 * (gn_dial, which connects on a private loop and then takes the
 * connection off it) and for the handlers of threaded servers
 * (server_threads.c).
 *
 * The descriptor stays non-blocking and every wait is a poll(2) (or, on
 * a plain socket where the thread has an io_uring, the receive or send
 * itself: blocking_wait_uring.c) against one deadline computed when the
 * call starts, so a timeout bounds the whole call however many reads or
 * writes it takes, and EINTR only recomputes the time left.  A threaded
 * server that closes sets `woken` and shuts the socket down, which ends
 * any wait at once; the calls then report GN_ECLOSED rather than an end
 * of stream.
 */
#define _GNU_SOURCE /* pthread_condattr_setclock is POSIX; SOCK_* flags */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "blocking.h"
#include "inbuf.h"
#include "ratelimit.h"
#include "tls.h"

#define LINE_CHUNK 16384
/* Sleeping for rate tokens, look at deadlines and a closing server this
 * often: another thread may move a deadline meanwhile. */
#define RATE_NAP_MS 50

/* ---- time ----------------------------------------------------------- */

/* When a call starting now must end by itself: at the earlier of its own
 * timeout (none by default) and the idle timeout of the connection (a
 * server's).  The connection's deadline is read at each wait, as another
 * thread may move it. */
static uint64_t call_deadline(const gn_conn *conn, uint32_t timeout_ms)
{
    uint64_t own = gn__deadline_after(gn__timeout_or(timeout_ms, GN_NO_TIMEOUT));

    return gn__deadline_min(own, gn__deadline_after(conn->prof->opts.idle_timeout_ms));
}

/* A deadline that has passed fails every call in its direction at once,
 * buffered input or not, until it is moved (Go's rule): a deadline set
 * to "now" stops a reading loop wherever it is. */
static int check_deadline(const gn_conn *conn, enum gn__direction dir)
{
    uint64_t d = gn__blocking_deadline(conn, dir);

    return d != GN__NO_DEADLINE && gn__clock_ms() >= d ? GN_ETIMEDOUT : 0;
}

/* ---- waiting -------------------------------------------------------- */

static int woken_code(gn_conn *conn, int code)
{
    return atomic_load(&conn->woken) ? GN_ECLOSED : code;
}

/* Wait until the socket is ready for events or the deadline passes; a
 * closing threaded server's shutdown ends the wait with GN_ECLOSED. */
static int wait_fd(gn_conn *conn, short events, uint64_t deadline, enum gn__direction dir)
{
    int rc = gn__blocking_wait(conn, events, deadline, dir);

    return atomic_load(&conn->woken) ? GN_ECLOSED : rc;
}

static int check_blocking(const gn_conn *conn)
{
    if (!conn)
        return GN_EINVAL;
    if (conn->prof->owner->mode != &gn__conn_mode_blocking)
        return GN_EMODE;
    if (conn->state == GN__CLOSED)
        return GN_ECLOSED;
    return 0;
}

/* ---- rate limits ------------------------------------------------------ */

/* How many of want bytes dir's rate limit lets move, after sleeping for
 * tokens if there are none: a count, GN_ETIMEDOUT (the call's deadline
 * or the connection's passed first) or GN_ECLOSED. */
static ssize_t rate_take(gn_conn *conn, enum gn__rate_dir dir, size_t want, uint64_t deadline)
{
    enum gn__direction way = dir == GN__RATE_READ ? GN__READING : GN__WRITING;
    uint64_t ms;

    while ((ms = gn__rate_wait_ms(conn, dir)) > 0) {
        uint64_t now = gn__clock_ms();
        if (atomic_load(&conn->woken))
            return GN_ECLOSED;
        if (now >= deadline || check_deadline(conn, way) < 0)
            return GN_ETIMEDOUT;
        if (ms > RATE_NAP_MS)
            ms = RATE_NAP_MS;
        if (deadline - now < ms)
            ms = deadline - now;
        poll(NULL, 0, (int)ms);
    }
    return (ssize_t)gn__rate_allow(conn, dir, want);
}

/* ---- reading -------------------------------------------------------- */

/* What a read of up to len bytes came back with: the count (counted),
 * 0 at the end of the stream, or a code. */
static ssize_t took(gn_conn *conn, ssize_t n, size_t len)
{
    if (n > 0) {
        conn->bytes_in += (uint64_t)n;
        conn->reads++;
        if (conn->rate_limited)
            gn__rate_used(conn, GN__RATE_READ, (size_t)n);
        conn->read_drained = (size_t)n < len;
        return n;
    }
    if (n == 0)
        conn->peer_ended = true;
    return woken_code(conn, (int)n);
}

/* One read of up to len bytes into buf, waiting for input: a count, 0 at
 * the end of the stream, or a code. */
static ssize_t read_some(gn_conn *conn, void *buf, size_t len, uint64_t deadline)
{
    if (conn->rate_limited) {
        ssize_t allowed = rate_take(conn, GN__RATE_READ, len, deadline);
        if (allowed < 0)
            return allowed;
        len = (size_t)allowed;
    }
    /* Where one system call can wait and receive (an io_uring of the
     * thread's), a message costs that call: reading first unless the
     * last read came back short (then it most likely finds nothing). */
    if (conn->transport == &gn__transport_stream) {
        ssize_t n = gn__blocking_ring_io(conn, GN__READING, buf, len, deadline, conn->read_drained);
        if (n != GN__AGAIN)
            return took(conn, n, len);
    }
    /* A plain socket's read takes all its queue holds up to len, so after
     * one that came back short the next would most likely find nothing:
     * a system call failed for nothing before the wait.  Wait first then
     * (a request-reply protocol pays poll + read per message, not read +
     * poll + read).  Not over TLS, which may hold decrypted input that
     * poll cannot see. */
    if (conn->read_drained && conn->transport == &gn__transport_stream) {
        int rc = wait_fd(conn, POLLIN, deadline, GN__READING);
        if (rc < 0)
            return rc;
    }
    for (;;) {
        ssize_t n = (conn->transport->read)(conn, buf, len);
        if (n != GN__AGAIN)
            return took(conn, n, len);
        n = wait_fd(conn, POLLIN | (gn__conn_transport_pending(conn) ? POLLOUT : 0), deadline,
                    GN__READING);
        if (n < 0)
            return n;
    }
}

/* Hand out buffered input first: what a line read fetched past its line
 * belongs to the next read. */
static size_t take_buffered(gn_conn *conn, void *buf, size_t len)
{
    size_t have = gn__inbuf_len(conn), n = have < len ? have : len;

    if (n == 0)
        return 0; /* the buffer may not exist yet */
    memcpy(buf, conn->in->data + conn->in->start, n);
    gn__inbuf_consume(conn, n);
    return n;
}

ssize_t gn_read(gn_conn *conn, void *buf, size_t len, uint32_t timeout_ms)
{
    int rc = check_blocking(conn);

    if (rc < 0)
        return rc;
    if (!buf && len > 0)
        return GN_EINVAL;
    if (len == 0)
        return 0;
    rc = check_deadline(conn, GN__READING);
    if (rc < 0)
        return rc;
    if (gn__inbuf_len(conn) > 0)
        return (ssize_t)take_buffered(conn, buf, len);
    if (conn->peer_ended)
        return 0;
    return read_some(conn, buf, len, call_deadline(conn, timeout_ms));
}

/* Put back the got bytes a failed gn_read_exact took (the buffer is empty
 * then: they were read past it), so that a call after a timeout reads
 * them again.  Without memory for them they are lost. */
static void give_back(gn_conn *conn, const void *buf, size_t got)
{
    if (got == 0 || gn__inbuf_reserve(conn, got, got) < 0)
        return;
    memcpy(conn->in->data, buf, got);
    conn->in->len = got;
}

int gn_read_exact(gn_conn *conn, void *buf, size_t len, uint32_t timeout_ms)
{
    uint64_t deadline;
    size_t got = 0;
    int rc = check_blocking(conn);

    if (rc < 0)
        return rc;
    if (!buf && len > 0)
        return GN_EINVAL;
    rc = check_deadline(conn, GN__READING);
    if (rc < 0)
        return rc;
    deadline = call_deadline(conn, timeout_ms);
    got = take_buffered(conn, buf, len);
    while (got < len) {
        ssize_t n = conn->peer_ended ? 0 : read_some(conn, (char *)buf + got, len - got, deadline);
        if (n == 0)
            return GN_EEOF;
        if (n == GN_ETIMEDOUT)
            give_back(conn, buf, got);
        if (n < 0)
            return (int)n;
        got += (size_t)n;
    }
    return 0;
}

/* Room after the buffered bytes for a read worth its system call, moving
 * them to the front first; the buffer grows only as far as limit + 1. */
static int make_room(gn_conn *conn, size_t limit)
{
    size_t have = gn__inbuf_len(conn), want = have + LINE_CHUNK;
    int rc;

    if (want > limit + 1)
        want = limit + 1;
    rc = gn__inbuf_reserve(conn, want, limit + 1); /* moves the bytes to the front */
    if (rc < 0)
        return rc == GN_EMSGSIZE ? 0 : rc; /* full at the limit: caller says */
    return 0;
}

/* Copy the first n buffered bytes out as a line, consuming skip bytes. */
static void deliver_line(gn_conn *conn, char *buf, size_t n, size_t skip, size_t *len)
{
    memcpy(buf, conn->in->data + conn->in->start, n);
    buf[n] = '\0';
    *len = n;
    gn__inbuf_consume(conn, skip);
}

int gn_read_line(gn_conn *conn, char *buf, size_t size, size_t *len, uint32_t timeout_ms)
{
    size_t max, scanned = 0;
    uint64_t deadline;
    int rc = check_blocking(conn);

    if (rc < 0)
        return rc;
    if (!buf || size == 0 || !len)
        return GN_EINVAL;
    *len = 0;
    buf[0] = '\0';
    rc = check_deadline(conn, GN__READING);
    if (rc < 0)
        return rc;
    max = size - 1 < conn->prof->opts.max_input ? size - 1 : conn->prof->opts.max_input;
    deadline = call_deadline(conn, timeout_ms);
    for (;;) {
        size_t have = gn__inbuf_len(conn);
        const char *start = have ? conn->in->data + conn->in->start : NULL;
        size_t look = have < max + 1 ? have : max + 1;
        const char *nl = look > scanned ? memchr(start + scanned, '\n', look - scanned) : NULL;
        ssize_t n;

        if (nl) {
            size_t line = (size_t)(nl - start);
            deliver_line(conn, buf, line - (line > 0 && nl[-1] == '\r'), line + 1, len);
            return 1;
        }
        scanned = look;
        if (have > max)
            return GN_EMSGSIZE;
        if (conn->peer_ended) {
            if (have == 0)
                return GN_EEOF;
            deliver_line(conn, buf, have, have, len);
            return 0;
        }
        rc = make_room(conn, max);
        if (rc < 0)
            return rc;
        n = read_some(conn, conn->in->data + conn->in->len, conn->in->cap - conn->in->len,
                      deadline);
        if (n < 0)
            return (int)n;
        conn->in->len += (size_t)n;
    }
}

int gn_wait_readable(gn_conn *conn, uint32_t timeout_ms)
{
    int rc = check_blocking(conn);

    if (rc == 0)
        rc = check_deadline(conn, GN__READING);
    if (rc < 0)
        return rc;
    if (gn__inbuf_len(conn) > 0 || conn->peer_ended || gn__conn_transport_buffered(conn))
        return 0;
    return wait_fd(conn, POLLIN, call_deadline(conn, timeout_ms), GN__READING);
}

/* ---- writing -------------------------------------------------------- */

static int check_writable(const gn_conn *conn)
{
    int rc = check_blocking(conn);

    if (rc == 0 && conn->shutdown_asked)
        rc = GN_ECLOSED;
    if (rc == 0)
        rc = check_deadline(conn, GN__WRITING);
    return rc;
}

/* Bytes the transport holds (TLS records a short send left) go out
 * before a write returns: a close right after would drop them, and the
 * peer would wait for a reply that never comes. */
static int flush_transport(gn_conn *conn, uint64_t deadline)
{
    while (gn__conn_transport_pending(conn)) {
        int rc = conn->transport->flush(conn);
        if (rc < 0 && rc != GN__AGAIN)
            return woken_code(conn, rc);
        if (rc == GN__AGAIN && (rc = wait_fd(conn, POLLOUT, deadline, GN__WRITING)) < 0)
            return rc;
    }
    return 0;
}

int gn_write_all(gn_conn *conn, const void *buf, size_t len, uint32_t timeout_ms)
{
    uint64_t deadline;
    size_t done = 0;
    bool full = false;
    int rc = check_writable(conn);

    if (rc < 0)
        return rc;
    if (!buf && len > 0)
        return GN_EINVAL;
    deadline = call_deadline(conn, timeout_ms);
    while (done < len) {
        struct iovec iov = {.iov_base = (char *)buf + done, .iov_len = len - done};
        ssize_t n = conn->rate_limited ? rate_take(conn, GN__RATE_WRITE, iov.iov_len, deadline)
                                       : (ssize_t)iov.iov_len;
        if (n < 0)
            return (int)n;
        iov.iov_len = (size_t)n;
        /* A plain socket that took less than it was given is full: wait
         * before the next send, in the same system call where there is
         * one (read_some says why). */
        n = full ? GN__AGAIN : (conn->transport->writev)(conn, &iov, 1);
        if (n == GN__AGAIN && conn->transport == &gn__transport_stream)
            n = gn__blocking_ring_io(conn, GN__WRITING, iov.iov_base, iov.iov_len, deadline, true);
        full = false;
        if (n >= 0) {
            if (conn->rate_limited)
                gn__rate_used(conn, GN__RATE_WRITE, (size_t)n);
            done += (size_t)n;
            conn->bytes_out += (uint64_t)n;
            conn->writes++;
            full = (size_t)n < iov.iov_len && conn->transport == &gn__transport_stream;
            continue;
        }
        if (n != GN__AGAIN)
            return woken_code(conn, (int)n);
        rc = wait_fd(conn, POLLOUT, deadline, GN__WRITING);
        if (rc < 0)
            return rc;
    }
    return flush_transport(conn, deadline);
}

static int blocking_send_file(gn_conn *conn, int fd, int64_t offset, uint64_t len)
{
    uint64_t deadline;
    int rc = check_writable(conn);

    if (rc < 0)
        return rc;
    deadline = call_deadline(conn, GN_NO_TIMEOUT);
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : (size_t)len;
        ssize_t n =
            conn->rate_limited ? rate_take(conn, GN__RATE_WRITE, chunk, deadline) : (ssize_t)chunk;
        if (n < 0)
            return (int)n;
        n = (conn->transport->sendfile)(conn, fd, &offset, (size_t)n);
        if (n > 0) {
            if (conn->rate_limited)
                gn__rate_used(conn, GN__RATE_WRITE, (size_t)n);
            len -= (uint64_t)n;
            conn->bytes_out += (uint64_t)n;
            conn->writes++;
            continue;
        }
        if (n == 0)
            return GN_EEOF; /* the file is shorter than len */
        if (n != GN__AGAIN)
            return woken_code(conn, (int)n);
        rc = wait_fd(conn, POLLOUT, deadline, GN__WRITING);
        if (rc < 0)
            return rc;
    }
    return flush_transport(conn, deadline);
}

/* ---- closing -------------------------------------------------------- */

static int blocking_shutdown(gn_conn *conn)
{
    uint64_t deadline = call_deadline(conn, 1000);
    int rc;

    if (conn->state == GN__CLOSED || conn->shutdown_asked)
        return 0;
    conn->shutdown_asked = true;
    /* TLS: close_notify goes out before the FIN; a peer that takes
     * nothing for a second does not get it. */
    while ((rc = (conn->transport->shutdown)(conn)) == GN__AGAIN)
        if (wait_fd(conn, POLLOUT, deadline, GN__WRITING) < 0)
            break;
    return rc == GN__AGAIN ? GN_ETIMEDOUT : rc;
}

/* Drive a transport's handshake (TLS) to its end before the deadline. */
static int handshake_until(gn_conn *conn, uint64_t deadline)
{
    for (;;) {
        int rc = conn->transport->handshake(conn);
        if (rc != GN__AGAIN)
            return rc;
        rc = wait_fd(conn, POLLIN | (gn__conn_transport_pending(conn) ? POLLOUT : 0), deadline,
                     GN__READING);
        if (rc == GN_ETIMEDOUT)
            gn__conn_set_error(conn, "TLS handshake timed out");
        if (rc < 0)
            return rc;
    }
}

int gn__blocking_tls_accept(gn_conn *conn, struct gn__tls_config *cfg)
{
    int rc = gn__tls_attach(conn, cfg, false);

    if (rc < 0)
        return rc;
    return handshake_until(conn, call_deadline(conn, gn__tls_handshake_ms(cfg)));
}

void gn__blocking_conn_free(gn_conn *conn)
{
    gn__tls_detach(conn);
    if (conn->io.fd >= 0)
        close(conn->io.fd);
    gn__inbuf_release(conn);
    gn__conn_ext_free(conn);
    free(conn);
}

static int blocking_close(gn_conn *conn, bool reset)
{
    if (reset && conn->io.fd >= 0 && conn->state != GN__CLOSED)
        gn__socket_reset_on_close(conn->io.fd);
    else if (conn->state != GN__CLOSED)
        gn__tls_goodbye(conn); /* close_notify, if there is room for it */
    if (!conn->prof->owner->is_server) {
        gn__blocking_conn_free(conn);
        return 0;
    }
    /* The server owns the descriptor until the handler returns, so that
     * its close can never shut down a number reused by someone else.  A
     * reset sends nothing now: a FIN first would let the peer take the
     * end for an orderly one; the server's close sends the RST. */
    if (conn->state != GN__CLOSED)
        shutdown(conn->io.fd, reset ? SHUT_RD : SHUT_RDWR);
    conn->state = GN__CLOSED;
    return 0;
}

int gn__blocking_conn_new(int fd, gn_transport kind, void *srv, const struct gn__conn_profile *prof,
                          gn_conn **out)
{
    gn_conn *conn = calloc(1, sizeof(*conn));
    int rc;

    if (!conn)
        return GN_ENOMEM;
    conn->io.fd = fd;
    conn->owner_data = srv;
    gn__list_init(&conn->link);
    gn__list_init(&conn->idle.node);
    conn->transport = &gn__transport_stream;
    conn->kind = kind;
    conn->prof = prof;
    conn->user_data = prof->opts.user_data;
    conn->state = GN__OPEN;
    conn->announced = true;
    atomic_init(&conn->woken, false);
    rc = gn__socket_options(fd, kind, &prof->opts);
    /* Made now, on the accepting thread, so that the reader and the
     * writer of a shared connection can each set a deadline in it. */
    if (rc == 0 && !gn__conn_ext(conn))
        rc = GN_ENOMEM;
    if (rc == 0)
        rc = gn__conn_rate_from_options(conn);
    if (rc < 0) {
        gn__conn_ext_free(conn);
        free(conn);
        return rc;
    }
    *out = conn;
    return 0;
}

/* ---- for the blocking calls of other files --------------------------- */

int gn__blocking_start(gn_conn *conn, uint32_t timeout_ms, uint64_t *deadline)
{
    int rc = check_blocking(conn);

    if (rc == 0)
        rc = check_deadline(conn, GN__READING);
    if (rc == 0)
        *deadline = call_deadline(conn, timeout_ms);
    return rc;
}

ssize_t gn__blocking_read_more(gn_conn *conn, size_t limit, uint64_t deadline)
{
    int rc = make_room(conn, limit);
    ssize_t n;

    if (rc < 0)
        return rc;
    if (conn->in->len == conn->in->cap)
        return GN_EMSGSIZE; /* read_some of 0 bytes would look like the end */
    n = read_some(conn, conn->in->data + conn->in->len, conn->in->cap - conn->in->len, deadline);
    if (n > 0)
        conn->in->len += (size_t)n;
    return n;
}

/* ---- the mode's table ---------------------------------------------- */

/* gn_write_all is the blocking send; reading is never "paused" in a mode
 * whose reads happen only when asked; handlers have nothing to handle. */
static int wrong_mode_send(gn_conn *conn, const void *buf, size_t len)
{
    (void)conn;
    (void)buf;
    (void)len;
    return GN_EMODE;
}

static int wrong_mode_set_reading(gn_conn *conn, bool on)
{
    (void)conn;
    (void)on;
    return GN_EMODE;
}

static int wrong_mode_set_handlers(gn_conn *conn, const gn_handlers *h)
{
    (void)conn;
    (void)h;
    return GN_EMODE;
}

const struct gn__conn_mode gn__conn_mode_blocking = {
    .blocking = true,
    .close = blocking_close,
    .shutdown = blocking_shutdown,
    .send = wrong_mode_send,
    .send_file = blocking_send_file,
    .set_reading = wrong_mode_set_reading,
    .set_handlers = wrong_mode_set_handlers,
};

const struct gn__conn_owner gn__blocking_owner_server = {
    .mode = &gn__conn_mode_blocking,
    .is_server = true,
};

const struct gn__conn_owner gn__blocking_owner_client = {
    .mode = &gn__conn_mode_blocking,
};
