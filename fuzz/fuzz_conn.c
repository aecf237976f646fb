/*
 * libFuzzer target for the connection state machine.  The input is a
 * script: its first byte chooses the setup, every later byte (with a
 * size byte for sends) one action.  Two sides, A and B:
 *  - pair mode: two gn_conns of gn_conn_pair, and every action is a
 *    user's: send (small or large), close, shutdown, abort, pause,
 *    resume, or how much on_data consumes (all, half, none);
 *  - raw mode: A is a gn_conn (gn_conn_adopt) and B a plain socket the
 *    fuzzer drives as a peer would: write, half-close, close (a reset
 *    when A's bytes are left unread), stop and resume reading.
 * An action may also be armed to run inside the side's next callback.
 * After each action the loop runs until quiet (or one iteration, or
 * not at all, as the action byte says), and throughout:
 *  - every byte offered to on_data (or read by the raw peer) is the next
 *    byte the other side sent, the unconsumed rest offered again first:
 *    nothing duplicated, reordered or made up;
 *  - no callback after on_close, no new bytes after on_end (only the
 *    unconsumed ones again, on resume), on_error at most once and only
 *    before on_close;
 *  - the calls return what their documentation lists;
 * and at the end, with reading resumed everywhere and the loop quiet,
 * every byte sent has arrived unless the script allowed a loss (an
 * abort, the receiver closing, an error); then everything is aborted,
 * on_close must have run exactly once on each connection and their
 * descriptors must be closed.  The build's LeakSanitizer checks for
 * leaks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_loop.h"
#include "gnezdo.h"

#define QUIET_STEPS    3   /* iterations without progress that make quiet */
#define MAX_STEPS      256 /* iterations to get quiet */
#define MAX_ACTIONS    256
#define BIG_UNIT       1024
#define PEER_READ_SIZE 65536

enum op {
    OP_SEND,
    OP_SEND_BIG,
    OP_CLOSE,
    OP_SHUTDOWN,
    OP_ABORT,
    OP_PAUSE,
    OP_RESUME,
    OP_CONSUME,
    OP_COUNT
};

enum consume { CONSUME_ALL, CONSUME_HALF, CONSUME_NONE };

struct side {
    const char *name;
    int dir; /* which byte stream this side sends: 0 or 1 */
    gn_conn *conn;
    bool raw; /* the raw peer: fd instead of conn */
    int fd;

    /* What it sent (bytes gn_send or send accepted) and what arrived. */
    uint64_t sent;
    uint64_t consumed;       /* bytes of the other side's stream used */
    uint64_t offered_end;    /* the furthest byte ever offered */
    uint64_t offered_at_end; /* offered_end when on_end ran */
    enum consume consume;

    /* Events seen. */
    int connects, ends, errors, closes, close_reason;
    bool closed;

    /* What the script did to it. */
    bool asked_close, asked_abort, paused;
    bool peer_reading, peer_closed, peer_eof; /* raw peer */

    /* An action to run inside its next callback, and its size byte. */
    int armed;
    uint8_t armed_arg;
};

static struct side sides[2];
static uint64_t events; /* callbacks so far: the loop made progress */

/* ---- the byte streams ---------------------------------------------------- */

/* The bytes of stream dir from position i on: a pseudo-random pattern
 * with a prime period, so that a byte lost, repeated or moved shows as
 * a wrong byte soon after (unless moved by a multiple of the period). */
#define PERIOD 65521

static const uint8_t *stream_at(int dir, uint64_t i)
{
    static uint8_t pattern[2][PERIOD + 256 * BIG_UNIT];
    static bool made;

    if (!made) {
        uint64_t x = 0x9E3779B97F4A7C15ull;
        for (int d = 0; d < 2; d++)
            for (size_t k = 0; k < sizeof(pattern[d]); k++) {
                if (k < PERIOD) {
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                    pattern[d][k] = (uint8_t)(x >> 24);
                } else {
                    pattern[d][k] = pattern[d][k - PERIOD];
                }
            }
        made = true;
    }
    return pattern[dir] + i % PERIOD;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
    va_list ap;

    fputs("fuzz_conn: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* data arrived at s: the other side's bytes from s->consumed on. */
static void check_arrived(struct side *s, const uint8_t *data, size_t len, uint64_t from)
{
    const struct side *other = &sides[!s->dir];

    if (from + len > other->sent)
        fail("%s got bytes up to %llu, %llu were sent", s->name, (unsigned long long)(from + len),
             (unsigned long long)other->sent);
    for (size_t at = 0, n; at < len; at += n) {
        n = len - at < PERIOD ? len - at : PERIOD; /* within the pattern */
        if (memcmp(data + at, stream_at(other->dir, from + at), n) != 0)
            fail("%s: bytes %llu to %llu are not the ones sent", s->name,
                 (unsigned long long)(from + at), (unsigned long long)(from + at + n));
    }
    if (from + len > s->offered_end)
        s->offered_end = from + len;
}

/* ---- actions -------------------------------------------------------------- */

static void expect_rc(const struct side *s, const char *call, int rc, bool ok)
{
    if (!ok)
        fail("%s: %s returned %d", s->name, call, rc);
}

static void conn_send(struct side *s, size_t len)
{
    int rc = gn_send(s->conn, stream_at(s->dir, s->sent), len);

    expect_rc(s, "gn_send", rc, rc == 0 || rc == GN_ECLOSED || rc == GN_ENOBUFS);
    if (rc == 0)
        s->sent += len;
}

static void peer_write(struct side *s, size_t len)
{
    ssize_t n;

    if (s->peer_closed)
        return;
    n = send(s->fd, stream_at(s->dir, s->sent), len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0)
        s->sent += (uint64_t)n;
}

static void peer_close(struct side *s)
{
    if (!s->peer_closed) {
        close(s->fd);
        s->peer_closed = true;
        s->peer_reading = false;
    }
}

static void act_conn(struct side *s, int op, uint8_t arg)
{
    int rc = 0;

    switch (op) {
    case OP_SEND:
        conn_send(s, 1 + (size_t)arg);
        return;
    case OP_SEND_BIG:
        conn_send(s, (1 + (size_t)arg) * BIG_UNIT);
        return;
    case OP_CLOSE:
        s->asked_close = true;
        rc = gn_close(s->conn);
        break;
    case OP_SHUTDOWN:
        rc = gn_shutdown(s->conn);
        break;
    case OP_ABORT:
        s->asked_abort = true;
        rc = gn_abort(s->conn);
        break;
    case OP_PAUSE:
        s->paused = true;
        rc = gn_pause_reading(s->conn);
        break;
    case OP_RESUME:
        s->paused = false;
        rc = gn_resume_reading(s->conn);
        break;
    default:
        s->consume = (enum consume)(arg % 3);
        return;
    }
    expect_rc(s, "a call", rc, rc == 0);
}

static void act_peer(struct side *s, int op, uint8_t arg)
{
    switch (op) {
    case OP_SEND:
        peer_write(s, 1 + (size_t)arg);
        break;
    case OP_SEND_BIG:
        peer_write(s, (1 + (size_t)arg) * BIG_UNIT);
        break;
    case OP_CLOSE:
    case OP_ABORT:
        peer_close(s);
        break;
    case OP_SHUTDOWN:
        if (!s->peer_closed)
            shutdown(s->fd, SHUT_WR);
        break;
    case OP_PAUSE:
        s->peer_reading = false;
        break;
    case OP_RESUME:
        s->peer_reading = !s->peer_closed;
        break;
    default:
        break;
    }
}

static void act(struct side *s, int op, uint8_t arg)
{
    if (s->raw)
        act_peer(s, op, arg);
    else if (!s->closed)
        act_conn(s, op, arg);
}

/* ---- callbacks ---------------------------------------------------------------- */

static struct side *side_of(gn_conn *conn, const char *event)
{
    struct side *s = gn_conn_user_data(conn);

    events++;
    if (s->closed)
        fail("%s: %s after on_close", s->name, event);
    return s;
}

static void run_armed(struct side *s)
{
    int op = s->armed;

    if (op >= 0) {
        s->armed = -1;
        act(s, op, s->armed_arg);
    }
}

static void on_connect(gn_conn *conn)
{
    struct side *s = side_of(conn, "on_connect");

    if (++s->connects > 1)
        fail("%s: on_connect twice", s->name);
}

static size_t on_data(gn_conn *conn, const char *data, size_t len)
{
    struct side *s = side_of(conn, "on_data");
    size_t used;

    /* After on_end only bytes offered before it may come again (a paused
     * and resumed connection offers its unconsumed bytes again), never
     * a byte that came after the peer's end. */
    if (s->ends && s->consumed + len > s->offered_at_end)
        fail("%s: new bytes in on_data after on_end", s->name);
    if (len == 0)
        fail("%s: on_data with no bytes", s->name);
    check_arrived(s, (const uint8_t *)data, len, s->consumed);
    used = s->consume == CONSUME_ALL ? len : s->consume == CONSUME_HALF ? len / 2 : 0;
    s->consumed += used;
    run_armed(s);
    return used;
}

static void on_drain(gn_conn *conn)
{
    run_armed(side_of(conn, "on_drain"));
}

static void on_end(gn_conn *conn)
{
    struct side *s = side_of(conn, "on_end");

    if (++s->ends > 1)
        fail("%s: on_end twice", s->name);
    s->offered_at_end = s->offered_end;
    run_armed(s);
}

static void on_error(gn_conn *conn, int code, const char *message)
{
    struct side *s = side_of(conn, "on_error");

    if (++s->errors > 1 || code >= 0 || !message || !message[0])
        fail("%s: on_error again, or without a code and a message (%d, %d)", s->name, s->errors,
             code);
}

static void on_close(gn_conn *conn, int reason)
{
    struct side *s = side_of(conn, "on_close");

    s->closes++;
    s->closed = true;
    s->close_reason = reason;
}

/* ---- the loop -------------------------------------------------------------------- */

/* The raw peer reads what is there, when it reads at all. */
static void peer_read(struct side *s)
{
    static uint8_t buf[PEER_READ_SIZE];
    ssize_t n;

    while (s->peer_reading && !s->peer_eof) {
        n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            check_arrived(s, buf, (size_t)n, s->consumed);
            s->consumed += (uint64_t)n;
            events++;
        } else if (n == 0) {
            s->peer_eof = true;
            events++;
        } else {
            if (errno != EAGAIN && errno != EINTR)
                s->peer_eof = true; /* reset */
            return;
        }
    }
}

static uint64_t progress(void)
{
    uint64_t p = events;
    gn_conn_stats st;

    for (int i = 0; i < 2; i++)
        if (!sides[i].raw && !sides[i].closed && gn_conn_get_stats(sides[i].conn, &st) == 0)
            p += st.bytes_in + st.bytes_out + st.reads + st.writes + st.queued;
    return p;
}

static void step(gn_loop *loop)
{
    fuzz_loop_step(loop);
    for (int i = 0; i < 2; i++)
        if (sides[i].raw)
            peer_read(&sides[i]);
}

static void run_until_quiet(gn_loop *loop)
{
    uint64_t last = progress();

    for (int i = 0, quiet = 0; i < MAX_STEPS && quiet < QUIET_STEPS; i++) {
        uint64_t now;
        step(loop);
        now = progress();
        quiet = now == last ? quiet + 1 : 0;
        last = now;
    }
}

/* ---- setup, the script, the end -------------------------------------------------- */

static gn_loop *shared_loop(bool poll)
{
    static gn_loop *loops[2];

    if (!loops[poll] && gn_loop_new_backend(&loops[poll], poll ? "poll" : "epoll") < 0) {
        fprintf(stderr, "fuzz_conn: no loop\n");
        abort();
    }
    return loops[poll];
}

static gn_options options_of(uint8_t setup)
{
    static const size_t max_inputs[] = {0, 4096, 65536, 300000};
    gn_options opts = {.pause_reading_when_full = setup & 16,
                       .max_input = max_inputs[(setup >> 5) & 3]};

    if (setup & 128) {
        opts.max_output = 128 * BIG_UNIT;
        opts.high_watermark = 8 * BIG_UNIT;
        opts.low_watermark = BIG_UNIT;
    }
    return opts;
}

/* The two lowest free descriptors: the ones socketpair is about to take. */
static void next_fds(int fds[2])
{
    fds[0] = dup(2);
    fds[1] = dup(2);
    if (fds[0] < 0 || fds[1] < 0)
        abort();
    close(fds[0]);
    close(fds[1]);
}

static void start(gn_loop *loop, uint8_t setup, int fds[2])
{
    const gn_handlers with_end = {.on_connect = on_connect,
                                  .on_data = on_data,
                                  .on_drain = on_drain,
                                  .on_end = on_end,
                                  .on_error = on_error,
                                  .on_close = on_close};
    gn_handlers without_end = with_end;
    gn_options opts = options_of(setup);
    int rc;

    without_end.on_end = NULL; /* the connection closes once the peer's end came */
    memset(sides, 0, sizeof(sides));
    sides[0] = (struct side){.name = "A", .dir = 0, .armed = -1, .fd = -1};
    sides[1] = (struct side){.name = "B", .dir = 1, .armed = -1, .fd = -1};
    opts.user_data = &sides[0];
    next_fds(fds);
    if (setup & 1) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            abort();
        rc = gn_conn_adopt(loop, sv[0], NULL, setup & 4 ? &without_end : &with_end, &opts,
                           &sides[0].conn);
        sides[1].raw = true;
        sides[1].fd = sv[1];
        sides[1].peer_reading = true;
    } else {
        rc = gn_conn_pair(loop, NULL, setup & 4 ? &without_end : &with_end,
                          setup & 8 ? &without_end : &with_end, &opts, &sides[0].conn,
                          &sides[1].conn);
        if (rc == 0)
            gn_conn_set_user_data(sides[1].conn, &sides[1]);
    }
    if (rc != 0) {
        fprintf(stderr, "fuzz_conn: no connections: %s\n", gn_strerror(rc));
        abort();
    }
}

static void run_script(gn_loop *loop, struct fuzz_bytes *in)
{
    for (int n = 0; n < MAX_ACTIONS && fuzz_left(in) > 0; n++) {
        uint8_t b = fuzz_byte(in);
        struct side *s = &sides[(b >> 3) & 1];
        int op = b & 7;
        uint8_t arg = op == OP_SEND || op == OP_SEND_BIG || op == OP_CONSUME ? fuzz_byte(in) : 0;

        if (b & 16) { /* inside the side's next callback */
            s->armed = op;
            s->armed_arg = arg;
        } else {
            act(s, op, arg);
        }
        if (b & 32)
            continue; /* the next action before the loop runs */
        if (b & 64)
            step(loop);
        else
            run_until_quiet(loop);
    }
}

/* Whether every byte from -> to must have arrived by now. */
static bool lossless(const struct side *from, const struct side *to)
{
    if (from->raw || to->raw) {
        const struct side *peer = from->raw ? from : to, *conn = from->raw ? to : from;
        return !peer->peer_closed && !conn->asked_close && !conn->asked_abort && conn->errors == 0;
    }
    return !from->asked_abort && !to->asked_close && !to->asked_abort && from->errors == 0 &&
           to->errors == 0;
}

static void finish(gn_loop *loop, const int fds[2])
{
    for (int i = 0; i < 2; i++) {
        struct side *s = &sides[i];
        s->armed = -1;
        s->consume = CONSUME_ALL;
        if (s->raw)
            s->peer_reading = !s->peer_closed;
        else if (!s->closed && s->paused)
            act_conn(s, OP_RESUME, 0);
    }
    run_until_quiet(loop);
    for (int i = 0; i < 2; i++) {
        const struct side *from = &sides[i], *to = &sides[!i];
        if (lossless(from, to) && to->offered_end != from->sent)
            fail("%s lost bytes: %llu of %llu arrived", to->name,
                 (unsigned long long)to->offered_end, (unsigned long long)from->sent);
    }
    for (int i = 0; i < 2; i++) {
        if (sides[i].raw)
            peer_close(&sides[i]);
        else if (!sides[i].closed)
            gn_abort(sides[i].conn);
    }
    run_until_quiet(loop);
    for (int i = 0; i < 2; i++) {
        if (!sides[i].raw && sides[i].closes != 1)
            fail("%s: on_close ran %d times", sides[i].name, sides[i].closes);
        if (fcntl(fds[i], F_GETFD) != -1)
            fail("%s: descriptor %d is still open", sides[i].name, fds[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_bytes in = {.data = data, .len = size};
    uint8_t setup = fuzz_byte(&in);
    gn_loop *loop = shared_loop(setup & 2);
    int fds[2];

    start(loop, setup, fds);
    run_script(loop, &in);
    finish(loop, fds);
    return 0;
}
