/*
 * gnezdo bench ADDRESS: a closed-loop load generator for any echo server,
 * on the library's own event loop.
 *
 * Echo mode: -c connections each keep -d messages of -s bytes in flight;
 * every byte that comes back is checked, a message counts when its last
 * byte is back, and its latency runs from its send to that moment.  The
 * connection-rate modes (--conn-rate close|reset): -c slots each run one
 * connection after another: connect, one -s byte exchange, close with a
 * FIN or a reset.  Both warm up for -w seconds first (not counted), then
 * count -t seconds.
 *
 * The payload needs no copy to check: byte i of a connection's stream is
 * pattern[(seed + i) % PATTERN_PERIOD], a fixed pseudo-random table
 * repeated so that any run of up to `span` bytes is one contiguous slice;
 * sending is a gn_send of a slice, checking a memcmp against one.  The
 * period is prime, so no message size lines up with it.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_sys.h"
#include "gnezdo.h"
#include "histogram.h"

#define PATTERN_PERIOD  65521u /* prime */
#define MIN_SPAN        65536u /* the pattern runs on this far at least */
#define MAX_CONNS       100000
#define MAX_SIZE        (16u << 20)
#define MAX_DEPTH       4096
#define MAX_IN_FLIGHT   (64u << 20) /* size x depth */
#define MAX_RATE_ERRORS 100         /* failed connections before a rate run gives up */
#define MESSAGES_SHOWN  5           /* errors and warnings printed before counting */
#define CONNECT_TIMEOUT 30000
#define PROGRESS_MS     1000

enum bench_mode { BENCH_ECHO, BENCH_RATE_CLOSE, BENCH_RATE_RESET };
enum bench_phase { PHASE_CONNECTING, PHASE_WARMUP, PHASE_MEASURING, PHASE_DONE };

struct bench_args {
    char addr[GN_ENDPOINT_STRLEN + 8];
    enum bench_mode mode;
    long conns;
    size_t size;
    unsigned depth;
    double seconds, warmup;
    int pid;
    bool json, progress;
};

/* One connection of the echo mode, or one slot of a rate mode. */
struct bench_conn {
    gn_conn *conn;
    uint32_t seed;     /* where in the pattern its stream starts */
    uint64_t sent;     /* bytes sent, whole messages */
    uint64_t received; /* bytes back and checked */
    uint64_t done;     /* messages back whole */
    uint64_t *sent_ns; /* echo: depth send times, message k in k % depth;
                          rate: [0] is when the connect started */
    bool connected;    /* echo: on_connect came */
    bool open;         /* gn_connect made it and on_close has not come */
    bool failed;       /* counted in errors */
    bool finished;     /* rate: the exchange is done */
};

/* Counters of the measured window (or, for the progress line, of all). */
struct bench_counts {
    uint64_t msgs, bytes;
};

static struct {
    struct bench_args a;
    gn_loop *loop;
    struct bench_conn *conns;
    char *pattern; /* PATTERN_PERIOD + span bytes */
    size_t span;
    enum bench_phase phase;
    long connected, connect_failed, live, started;
    uint64_t errors, corrupt, closed_early, messages_shown, warnings_hidden;
    uint64_t phase_timer, progress_timer, grace_timer;
    struct bench_counts window, all, shown; /* shown: all at the last progress line */
    uint64_t window_start_ns, window_end_ns, phase_end_ns;
    double self_cpu0, self_cpu1, server_cpu0, server_cpu1;
    struct histogram hist, recent; /* recent: since the last progress line */
} B;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the pattern ----------------------------------------------------- */

static int make_pattern(size_t span)
{
    uint64_t x = 0x9E3779B97F4A7C15u;

    B.span = span;
    B.pattern = malloc(PATTERN_PERIOD + span);
    if (!B.pattern)
        return -1;
    for (size_t i = 0; i < PATTERN_PERIOD; i++) { /* splitmix64 */
        uint64_t z = (x += 0x9E3779B97F4A7C15u);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
        B.pattern[i] = (char)(z >> 56);
    }
    for (size_t i = 0; i < span; i++)
        B.pattern[PATTERN_PERIOD + i] = B.pattern[i % PATTERN_PERIOD];
    return 0;
}

static const char *pattern_at(uint64_t offset)
{
    return B.pattern + offset % PATTERN_PERIOD;
}

/* The first of len bytes at stream offset `offset` that differs from the
 * pattern, or len when all match. */
static size_t first_wrong(uint64_t offset, const char *data, size_t len)
{
    for (size_t done = 0; done < len;) {
        size_t take = len - done < B.span ? len - done : B.span;
        const char *want = pattern_at(offset + done);

        if (memcmp(want, data + done, take) != 0)
            for (size_t i = 0; i < take; i++)
                if (want[i] != data[done + i])
                    return done + i;
        done += take;
    }
    return len;
}

/* ---- errors ---------------------------------------------------------- */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;

    if (B.messages_shown++ >= MESSAGES_SHOWN)
        return;
    if (B.a.progress)
        fputs("\r\033[K", stderr);
    fputs("gnezdo: bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* The library's warnings: the first few, each once (--insecure warns
 * for every connection), then a count at the end. */
static void bench_log(gn_log_level level, const char *message, void *arg)
{
    static char last[256];

    (void)arg;
    if (B.messages_shown >= MESSAGES_SHOWN || strncmp(message, last, sizeof(last) - 1) == 0) {
        B.warnings_hidden++;
        return;
    }
    snprintf(last, sizeof(last), "%s", message);
    say("%s: %s", level == GN_LOG_ERROR ? "error" : "warning", message);
}

static long index_of(const struct bench_conn *c)
{
    return (long)(c - B.conns);
}

/* A connection saw a wrong byte: counted once, and closed. */
static void fail_corrupt(struct bench_conn *c)
{
    if (!c->failed) {
        c->failed = true;
        B.errors++;
        B.corrupt++;
    }
    gn_abort(c->conn);
}

/* ---- the window ------------------------------------------------------ */

static void open_window(void)
{
    B.phase = PHASE_MEASURING;
    B.window = (struct bench_counts){0};
    hist_reset(&B.hist);
    B.window_start_ns = now_ns();
    B.self_cpu0 = cli_cpu_self_us();
    B.server_cpu0 = B.a.pid ? cli_cpu_process_us(B.a.pid) : -1;
}

static void close_window(void)
{
    B.window_end_ns = now_ns();
    B.self_cpu1 = cli_cpu_self_us();
    B.server_cpu1 = B.a.pid ? cli_cpu_process_us(B.a.pid) : -1;
}

/* The end of the run: figures taken, connections closed gracefully (in
 * flight messages are no error now), the loop stopped once they are gone. */
static void finish_run(void)
{
    if (B.phase == PHASE_DONE)
        return;
    if (B.phase == PHASE_MEASURING)
        close_window();
    B.phase = PHASE_DONE;
    gn_timer_cancel(B.loop, B.phase_timer);
    gn_timer_cancel(B.loop, B.progress_timer);
    for (long i = 0; i < B.a.conns; i++)
        if (B.conns[i].open)
            gn_close(B.conns[i].conn);
    gn_loop_stop(B.loop);
}

static void phase_over(gn_loop *loop, uint64_t id, void *arg);

static void start_phase_timer(double seconds)
{
    uint64_t ms = (uint64_t)llround(seconds * 1000);

    B.phase_end_ns = now_ns() + ms * 1000000u;
    if (gn_timer_start(B.loop, ms, 0, phase_over, NULL, &B.phase_timer) < 0)
        finish_run();
}

static void phase_over(gn_loop *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    (void)arg;
    if (B.phase == PHASE_WARMUP) {
        open_window();
        start_phase_timer(B.a.seconds);
    } else {
        finish_run();
    }
}

static void start_warmup(void)
{
    if (B.a.warmup > 0) {
        B.phase = PHASE_WARMUP;
        start_phase_timer(B.a.warmup);
    } else {
        open_window();
        start_phase_timer(B.a.seconds);
    }
}

/* A message (echo) or an exchange (rate) done, sent_ns ago. */
static void count_done(uint64_t sent_ns, uint64_t now)
{
    uint64_t us = (now - sent_ns) / 1000u;

    B.all.msgs++;
    if (B.a.progress)
        hist_record(&B.recent, us);
    if (B.phase == PHASE_MEASURING) {
        B.window.msgs++;
        hist_record(&B.hist, us);
    }
}

static void count_bytes(size_t n)
{
    B.all.bytes += n;
    if (B.phase == PHASE_MEASURING)
        B.window.bytes += n;
}

/* Check n bytes that came back on c; false (and c failed) when wrong. */
static bool check_back(struct bench_conn *c, const char *data, size_t n)
{
    size_t bad;

    if (c->received + n > c->sent) {
        say("connection %ld: %llu bytes came back, %llu were sent", index_of(c),
            (unsigned long long)(c->received + n), (unsigned long long)c->sent);
        fail_corrupt(c);
        return false;
    }
    bad = first_wrong(c->seed + c->received, data, n);
    if (bad < n) {
        say("connection %ld: byte %llu of its stream came back as 0x%02x, not 0x%02x", index_of(c),
            (unsigned long long)(c->received + bad), (unsigned char)data[bad],
            (unsigned char)*pattern_at(c->seed + c->received + bad));
        fail_corrupt(c);
        return false;
    }
    c->received += n;
    count_bytes(n);
    return true;
}

/* ---- echo mode ------------------------------------------------------- */

/* Send messages until depth are in flight, all stamped now. */
static void echo_top_up(struct bench_conn *c, uint64_t now)
{
    uint64_t in_flight = c->sent / B.a.size - c->done, count = B.a.depth - in_flight;

    if (B.phase == PHASE_DONE || count == 0)
        return;
    for (uint64_t k = c->sent / B.a.size, n = 0; n < count; k++, n++)
        c->sent_ns[k % B.a.depth] = now;
    /* Consecutive messages are one slice of the pattern: one send. */
    if (gn_send(c->conn, pattern_at(c->seed + c->sent), count * B.a.size) == 0)
        c->sent += count * B.a.size;
}

static void echo_connected(gn_conn *conn)
{
    struct bench_conn *c = gn_conn_user_data(conn);

    c->connected = true;
    B.connected++;
    echo_top_up(c, now_ns());
    if (B.phase == PHASE_CONNECTING && B.connected + B.connect_failed == B.a.conns)
        start_warmup();
}

static size_t echo_data(gn_conn *conn, const char *data, size_t len)
{
    struct bench_conn *c = gn_conn_user_data(conn);
    uint64_t now, size = B.a.size;

    if (c->failed || !check_back(c, data, len))
        return len;
    now = now_ns();
    while (c->received >= (c->done + 1) * size) {
        count_done(c->sent_ns[c->done % B.a.depth], now);
        c->done++;
    }
    echo_top_up(c, now);
    return len;
}

static void conn_error(gn_conn *conn, int code, const char *message)
{
    (void)conn;
    (void)code;
    if (B.phase != PHASE_DONE)
        say("%s", message);
}

/* Closed before the run ended (or never connected): an error, once. */
static void count_closed_early(struct bench_conn *c, int reason)
{
    if (c->failed || B.phase == PHASE_DONE)
        return;
    c->failed = true;
    B.errors++;
    B.closed_early++;
    if (reason == 0)
        say("connection %ld: closed by the server %llu bytes short", index_of(c),
            (unsigned long long)(c->sent - c->received));
}

static void echo_closed(gn_conn *conn, int reason)
{
    struct bench_conn *c = gn_conn_user_data(conn);

    c->open = false;
    B.live--;
    count_closed_early(c, reason);
    if (!c->connected)
        B.connect_failed++;
    if (B.phase == PHASE_CONNECTING && B.connected + B.connect_failed == B.a.conns)
        start_warmup();
    if (B.live == 0)
        finish_run(); /* nobody left to measure */
    if (B.live == 0 && B.phase == PHASE_DONE)
        gn_loop_stop(B.loop); /* the last graceful close is done */
}

/* ---- connection-rate modes ------------------------------------------- */

static void rate_start(struct bench_conn *c);

static void rate_connected(gn_conn *conn)
{
    struct bench_conn *c = gn_conn_user_data(conn);

    if (B.phase == PHASE_DONE)
        return;
    if (gn_send(conn, pattern_at(c->seed), B.a.size) == 0)
        c->sent = B.a.size;
}

static size_t rate_data(gn_conn *conn, const char *data, size_t len)
{
    struct bench_conn *c = gn_conn_user_data(conn);

    if (c->failed || c->finished || !check_back(c, data, len))
        return len;
    if (c->received == B.a.size) {
        c->finished = true;
        count_done(c->sent_ns[0], now_ns());
        if (B.a.mode == BENCH_RATE_RESET)
            gn_abort(conn);
        else
            gn_close(conn);
    }
    return len;
}

static void rate_closed(gn_conn *conn, int reason)
{
    struct bench_conn *c = gn_conn_user_data(conn);

    c->open = false;
    B.live--;
    if (!c->finished)
        count_closed_early(c, reason);
    if (B.phase == PHASE_DONE) {
        if (B.live == 0)
            gn_loop_stop(B.loop); /* the last graceful close is done */
        return;
    }
    if (B.errors >= MAX_RATE_ERRORS) {
        say("%llu connections failed: giving up", (unsigned long long)B.errors);
        finish_run();
        return;
    }
    rate_start(c);
}

static const gn_handlers rate_handlers = {.on_connect = rate_connected,
                                          .on_data = rate_data,
                                          .on_error = conn_error,
                                          .on_close = rate_closed};

/* The slot's next connection: a new seed, the clock started. */
static void rate_start(struct bench_conn *c)
{
    char err[GN_ERRBUF_SIZE];
    gn_options opts = cli_options();
    uint64_t seq = (uint64_t)B.started++;
    int rc;

    *c = (struct bench_conn){.sent_ns = c->sent_ns, .open = true};
    c->seed = (uint32_t)((seq * 2654435761u) % PATTERN_PERIOD);
    c->sent_ns[0] = now_ns();
    opts.user_data = c;
    opts.connect_timeout_ms = CONNECT_TIMEOUT;
    rc = gn_connect(B.loop, B.a.addr, &rate_handlers, &opts, &c->conn, err, sizeof(err));
    if (rc < 0) { /* the address was checked: resources */
        c->open = false;
        say("%s", err);
        B.errors++;
        B.closed_early++;
        finish_run();
        return;
    }
    B.live++;
}

/* ---- the progress line ----------------------------------------------- */

static void show_progress(gn_loop *loop, uint64_t id, void *arg)
{
    uint64_t now = now_ns(), msgs = B.all.msgs - B.shown.msgs, bytes = B.all.bytes - B.shown.bytes;
    double left = B.phase_end_ns > now ? (double)(B.phase_end_ns - now) / 1e9 : 0;
    const char *unit = B.a.mode == BENCH_ECHO ? "msgs/s" : "conns/s";

    (void)loop;
    (void)id;
    (void)arg;
    if (B.phase == PHASE_CONNECTING)
        fprintf(stderr, "\r\033[Kconnecting: %ld of %ld", B.connected, B.a.conns);
    else
        fprintf(stderr,
                "\r\033[K%s %4.1f s left: %.0f %s  %.1f MB/s  p50 %llu us  p99 %llu us  "
                "errors %llu",
                B.phase == PHASE_WARMUP ? "warm-up" : "measuring", left,
                (double)msgs * 1000 / PROGRESS_MS, unit, (double)bytes / 1e6 * 1000 / PROGRESS_MS,
                (unsigned long long)hist_quantile(&B.recent, 0.5),
                (unsigned long long)hist_quantile(&B.recent, 0.99), (unsigned long long)B.errors);
    B.shown = B.all;
    hist_reset(&B.recent);
}

/* ---- the report ------------------------------------------------------ */

static const char *mode_name(enum bench_mode mode)
{
    return mode == BENCH_ECHO ? "echo" : mode == BENCH_RATE_CLOSE ? "close" : "reset";
}

struct bench_result {
    double seconds, msgs_per_s, mb_per_s, self_pct, server_pct, server_us_per_msg;
    uint64_t p50, p99, p999;
};

static struct bench_result result_of(void)
{
    struct bench_result r = {0};

    r.seconds = (double)(B.window_end_ns - B.window_start_ns) / 1e9;
    if (r.seconds <= 0)
        r.seconds = 1e-9;
    r.msgs_per_s = (double)B.window.msgs / r.seconds;
    r.mb_per_s = (double)B.window.bytes / 1e6 / r.seconds;
    r.self_pct =
        B.self_cpu0 >= 0 && B.self_cpu1 >= 0 ? (B.self_cpu1 - B.self_cpu0) / 1e4 / r.seconds : -1;
    r.server_pct = -1;
    r.server_us_per_msg = -1;
    if (B.server_cpu0 >= 0 && B.server_cpu1 >= 0) {
        r.server_pct = (B.server_cpu1 - B.server_cpu0) / 1e4 / r.seconds;
        if (B.window.msgs)
            r.server_us_per_msg = (B.server_cpu1 - B.server_cpu0) / (double)B.window.msgs;
    }
    r.p50 = hist_quantile(&B.hist, 0.5);
    r.p99 = hist_quantile(&B.hist, 0.99);
    r.p999 = hist_quantile(&B.hist, 0.999);
    return r;
}

static void json_number_or_null(const char *name, double v, int decimals)
{
    if (v < 0)
        printf(",\"%s\":null", name);
    else
        printf(",\"%s\":%.*f", name, decimals, v);
}

static void print_json(const struct bench_result *r)
{
    printf("{\"address\":\"");
    for (const char *p = B.a.addr; *p; p++) /* addresses hold no control bytes */
        printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
    printf("\",\"mode\":\"%s\",\"backend\":\"%s\",\"conns\":%ld,\"size\":%zu,\"depth\":%u",
           mode_name(B.a.mode), gn_loop_backend(B.loop), B.a.conns, B.a.size, B.a.depth);
    printf(",\"warmup_s\":%.3f,\"seconds\":%.3f,\"msgs\":%llu,\"bytes\":%llu,\"connections\":%llu",
           B.a.warmup, r->seconds, (unsigned long long)B.window.msgs,
           (unsigned long long)B.window.bytes,
           (unsigned long long)(B.a.mode == BENCH_ECHO ? (uint64_t)B.connected : B.window.msgs));
    printf(",\"msgs_per_s\":%.0f,\"mb_per_s\":%.3f", r->msgs_per_s, r->mb_per_s);
    json_number_or_null("conns_per_s", B.a.mode == BENCH_ECHO ? -1 : r->msgs_per_s, 0);
    printf(",\"p50_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu,\"max_us\":%llu,\"mean_us\":%.1f",
           (unsigned long long)r->p50, (unsigned long long)r->p99, (unsigned long long)r->p999,
           (unsigned long long)B.hist.max_us, hist_mean(&B.hist));
    printf(",\"errors\":%llu,\"corrupt\":%llu,\"closed_early\":%llu", (unsigned long long)B.errors,
           (unsigned long long)B.corrupt, (unsigned long long)B.closed_early);
    json_number_or_null("cpu_self_pct", r->self_pct, 1);
    if (B.a.pid)
        printf(",\"server_pid\":%d", B.a.pid);
    else
        printf(",\"server_pid\":null");
    json_number_or_null("cpu_server_pct", r->server_pct, 1);
    json_number_or_null("server_cpu_us_per_msg", r->server_us_per_msg, 3);
    printf("}\n");
}

static void print_text(const struct bench_result *r)
{
    if (B.a.mode == BENCH_ECHO)
        printf("echo %s: %ld connection%s x %zu B, %u in flight on each; %.2f s after %.2f s "
               "warm-up (%s)\n",
               B.a.addr, B.a.conns, B.a.conns == 1 ? "" : "s", B.a.size, B.a.depth, r->seconds,
               B.a.warmup, gn_loop_backend(B.loop));
    else
        printf("connection rate %s: connect, one %zu B echo, %s; %ld at a time; %.2f s after "
               "%.2f s warm-up (%s)\n",
               B.a.addr, B.a.size, B.a.mode == BENCH_RATE_CLOSE ? "close (FIN)" : "reset (RST)",
               B.a.conns, r->seconds, B.a.warmup, gn_loop_backend(B.loop));
    printf("  %.0f %s  %.2f MB/s  (%llu %s, %llu bytes back)\n", r->msgs_per_s,
           B.a.mode == BENCH_ECHO ? "msgs/s" : "conns/s", r->mb_per_s,
           (unsigned long long)B.window.msgs, B.a.mode == BENCH_ECHO ? "msgs" : "connections",
           (unsigned long long)B.window.bytes);
    printf("  latency: p50 %llu us  p99 %llu us  p99.9 %llu us  max %llu us  mean %.1f us\n",
           (unsigned long long)r->p50, (unsigned long long)r->p99, (unsigned long long)r->p999,
           (unsigned long long)B.hist.max_us, hist_mean(&B.hist));
    printf("  errors: %llu (wrong bytes: %llu, closed early or not connected: %llu)\n",
           (unsigned long long)B.errors, (unsigned long long)B.corrupt,
           (unsigned long long)B.closed_early);
    if (r->self_pct >= 0)
        printf("  cpu: gnezdo bench %.0f%% of a CPU", r->self_pct);
    if (r->server_pct >= 0)
        printf(", server (pid %d) %.0f%% (%.3f us per %s)", B.a.pid, r->server_pct,
               r->server_us_per_msg, B.a.mode == BENCH_ECHO ? "message" : "connection");
    printf("\n");
}

/* ---- arguments ------------------------------------------------------- */

/* A count with an optional k/K (x1024) or m/M (x1048576) suffix. */
static bool parse_count(const char *s, unsigned long long lo, unsigned long long hi,
                        unsigned long long *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (*end == 'k' || *end == 'K')
        v <<= 10, end++;
    else if (*end == 'm' || *end == 'M')
        v <<= 20, end++;
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_seconds(const char *s, double lo, double *out)
{
    char *end;
    double v;

    if ((*s < '0' || *s > '9') && *s != '.')
        return false;
    v = strtod(s, &end);
    if (*end == 's')
        end++;
    if (*end || !(v >= lo) || v > 86400)
        return false;
    *out = v;
    return true;
}

static const char *const bench_usage = "gnezdo bench ADDRESS [-c CONNS] [-s SIZE] [-d DEPTH] "
                                       "[-t SECONDS] [-w SECONDS] [--conn-rate close|reset] "
                                       "[--tls] [--pid PID] [--json]";

/* One option with a value at argv[*i]; 0 or a usage error's code. */
static int parse_value(struct bench_args *a, const char *opt, const char *val)
{
    unsigned long long n;

    if (!strcmp(opt, "-c") || !strcmp(opt, "--conns")) {
        if (!parse_count(val, 1, MAX_CONNS, &n))
            return cli_usage_error("-c '%s' is not a connection count from 1 to %d", val,
                                   MAX_CONNS);
        a->conns = (long)n;
    } else if (!strcmp(opt, "-s") || !strcmp(opt, "--size")) {
        if (!parse_count(val, 1, MAX_SIZE, &n))
            return cli_usage_error("-s '%s' is not a message size from 1 to 16M bytes", val);
        a->size = (size_t)n;
    } else if (!strcmp(opt, "-d") || !strcmp(opt, "--depth")) {
        if (!parse_count(val, 1, MAX_DEPTH, &n))
            return cli_usage_error("-d '%s' is not a count of messages in flight from 1 to %d", val,
                                   MAX_DEPTH);
        a->depth = (unsigned)n;
    } else if (!strcmp(opt, "-t") || !strcmp(opt, "--time")) {
        if (!parse_seconds(val, 0.001, &a->seconds))
            return cli_usage_error("-t '%s' is not a time in seconds (0.001 to 86400)", val);
    } else if (!strcmp(opt, "-w") || !strcmp(opt, "--warmup")) {
        if (!parse_seconds(val, 0, &a->warmup))
            return cli_usage_error("-w '%s' is not a warm-up in seconds (0 to 86400)", val);
    } else if (!strcmp(opt, "--conn-rate")) {
        if (strcmp(val, "close") && strcmp(val, "reset"))
            return cli_usage_error("--conn-rate takes 'close' or 'reset', not '%s'", val);
        a->mode = val[0] == 'c' ? BENCH_RATE_CLOSE : BENCH_RATE_RESET;
    } else if (!strcmp(opt, "--pid")) {
        if (!parse_count(val, 1, 0x7fffffff, &n) || cli_cpu_process_us((int)n) < 0)
            return cli_usage_error("--pid '%s': no process to read the CPU time of", val);
        a->pid = (int)n;
    } else {
        return cli_usage_error("unknown option '%s' for bench (%s)", opt, bench_usage);
    }
    return 0;
}

static bool takes_value(const char *opt)
{
    static const char *const with_value[] = {
        "-c", "--conns", "-s", "--size",   "-d",    "--depth",
        "-t", "--time",  "-w", "--warmup", "--pid", "--conn-rate",
    };

    for (size_t i = 0; i < sizeof(with_value) / sizeof(with_value[0]); i++)
        if (!strcmp(opt, with_value[i]))
            return true;
    return false;
}

/* tls:// in front of an address given with --tls, unless it has it. */
static int add_tls_scheme(struct bench_args *a, const char *addr)
{
    const char *rest = addr;

    if (!strncmp(addr, "tls://", 6))
        rest = addr + 6;
    else if (!strncmp(addr, "tcp://", 6))
        rest = addr + 6;
    else if (strstr(addr, "://") || !strncmp(addr, "unix", 4))
        return cli_usage_error("--tls is for TCP addresses, not '%s'", addr);
    snprintf(a->addr, sizeof(a->addr), "tls://%s", rest);
    return 0;
}

static int parse_bench_args(int argc, char **argv, struct bench_args *a)
{
    const char *addr = NULL;
    bool tls = false;
    int rc;

    *a = (struct bench_args){
        .mode = BENCH_ECHO, .conns = 10, .size = 64, .depth = 1, .seconds = 5, .warmup = 1};
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            a->json = true;
        } else if (!strcmp(argv[i], "--tls")) {
            tls = true;
        } else if (takes_value(argv[i])) {
            if (i + 1 >= argc)
                return cli_usage_error("%s needs a value (%s)", argv[i], bench_usage);
            rc = parse_value(a, argv[i], argv[i + 1]);
            if (rc)
                return rc;
            i++;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return cli_usage_error("unknown option '%s' for bench (%s)", argv[i], bench_usage);
        } else if (addr) {
            return cli_usage_error("bench takes one address, got '%s' and '%s'", addr, argv[i]);
        } else {
            addr = argv[i];
        }
    }
    if (!addr)
        return cli_usage_error("bench needs the address of an echo server, e.g. 'gnezdo bench "
                               "127.0.0.1:7000 -c 50'");
    if (strlen(addr) >= GN_ENDPOINT_STRLEN)
        return cli_usage_error("address '%.40s...' is too long", addr);
    if (a->mode == BENCH_ECHO && (uint64_t)a->size * a->depth > MAX_IN_FLIGHT)
        return cli_usage_error("-s %zu x -d %u is over 64 MiB in flight per connection", a->size,
                               a->depth);
    if (a->mode != BENCH_ECHO && a->depth != 1)
        return cli_usage_error("-d is for the echo mode: --conn-rate makes one exchange");
    snprintf(a->addr, sizeof(a->addr), "%s", addr);
    if (tls && (rc = add_tls_scheme(a, addr)) != 0)
        return rc;
    if (cli_is_dgram_address(a->addr, 0))
        return cli_usage_error("bench is for stream sockets, not '%s'", a->addr);
    return cli_check_tls_flags(a->addr, false);
}

/* ---- the run --------------------------------------------------------- */

static void raise_open_files(long want)
{
    long limit = cli_raise_fd_limit();

    if (limit >= 0 && want + 32 > limit)
        fprintf(stderr, "gnezdo: bench: warning: %ld connections and an open-file limit of %ld\n",
                want, limit);
}

static int start_echo_conns(void)
{
    static const gn_handlers h = {.on_connect = echo_connected,
                                  .on_data = echo_data,
                                  .on_error = conn_error,
                                  .on_close = echo_closed};
    char err[GN_ERRBUF_SIZE];
    gn_options opts = cli_options();
    int rc;

    /* A full depth is sent at once: let it queue. */
    opts.max_output = B.a.size * B.a.depth * 2 > (16u << 20) ? B.a.size * B.a.depth * 2 : 0;
    opts.connect_timeout_ms = CONNECT_TIMEOUT;
    B.phase = PHASE_CONNECTING;
    for (long i = 0; i < B.a.conns; i++) {
        struct bench_conn *c = &B.conns[i];

        c->seed = (uint32_t)(((uint64_t)i * 2654435761u) % PATTERN_PERIOD);
        opts.user_data = c;
        rc = gn_connect(B.loop, B.a.addr, &h, &opts, &c->conn, err, sizeof(err));
        if (rc < 0)
            return i == 0 ? cli_open_error(rc, err) : cli_fail("%s", err);
        c->open = true;
        B.live++;
    }
    return 0;
}

static int start_rate_slots(void)
{
    char err[GN_ERRBUF_SIZE];
    gn_endpoint ep;

    /* The address is checked once here, so that a slot's failure later
     * is a failed connection and not a typo. */
    if (gn_endpoint_parse(B.a.addr, 0, &ep, err, sizeof(err)) < 0)
        return cli_usage_error("%s", err);
    start_warmup();
    for (long i = 0; i < B.a.conns && B.phase != PHASE_DONE; i++)
        rate_start(&B.conns[i]);
    return 0;
}

static int setup(void)
{
    size_t in_flight = B.a.mode == BENCH_ECHO ? B.a.size * B.a.depth : B.a.size;
    size_t stamps = B.a.mode == BENCH_ECHO ? B.a.depth : 1;
    uint64_t *sent_ns;

    B.conns = calloc((size_t)B.a.conns, sizeof(*B.conns));
    sent_ns = calloc((size_t)B.a.conns * stamps, sizeof(*sent_ns));
    if (!B.conns || !sent_ns || make_pattern(in_flight > MIN_SPAN ? in_flight : MIN_SPAN) < 0) {
        free(sent_ns);
        return cli_fail("bench: out of memory for %ld connections", B.a.conns);
    }
    for (long i = 0; i < B.a.conns; i++)
        B.conns[i].sent_ns = sent_ns + (size_t)i * stamps;
    if (gn_loop_new(&B.loop) < 0)
        return cli_fail("cannot create an event loop");
    return 0;
}

static void teardown(void)
{
    B.phase = PHASE_DONE;
    gn_loop_free(B.loop); /* aborts what is left; their on_close find PHASE_DONE */
    if (B.conns)
        free(B.conns[0].sent_ns);
    free(B.conns);
    free(B.pattern);
}

static int report(void)
{
    struct bench_result r;

    if (B.a.progress)
        fputs("\r\033[K", stderr);
    if (B.messages_shown > MESSAGES_SHOWN)
        fprintf(stderr, "gnezdo: bench: %llu more errors not shown\n",
                (unsigned long long)(B.messages_shown - MESSAGES_SHOWN));
    if (B.warnings_hidden)
        fprintf(stderr, "gnezdo: bench: %llu more warnings (or repeats) not shown\n",
                (unsigned long long)B.warnings_hidden);
    if (B.window_start_ns == 0) {
        if (B.errors)
            fprintf(stderr, "gnezdo: bench: %llu connection%s failed before the measured window\n",
                    (unsigned long long)B.errors, B.errors == 1 ? "" : "s");
        else
            fprintf(stderr, "gnezdo: bench: stopped before the measured window began\n");
        return CLI_FAILURE;
    }
    r = result_of();
    if (B.a.json)
        print_json(&r);
    else
        print_text(&r);
    if (r.self_pct >= 90)
        fprintf(stderr,
                "gnezdo: bench: note: it used %.0f%% of a CPU itself, so it may be what limits "
                "these figures\n",
                r.self_pct);
    if (B.window.msgs == 0)
        fprintf(stderr, "gnezdo: bench: nothing came back in the measured window\n");
    return B.errors || B.window.msgs == 0 ? CLI_FAILURE : CLI_OK;
}

static void grace_over(gn_loop *loop, uint64_t id, void *arg)
{
    (void)id;
    (void)arg;
    gn_loop_stop(loop);
}

int cli_bench(int argc, char **argv)
{
    int rc = parse_bench_args(argc, argv, &B.a);

    if (rc)
        return rc;
    B.a.progress = isatty(STDERR_FILENO);
    gn_log_set(bench_log, GN_LOG_WARN, NULL);
    raise_open_files(B.a.conns);
    rc = setup();
    if (rc == 0)
        rc = B.a.mode == BENCH_ECHO ? start_echo_conns() : start_rate_slots();
    if (rc) {
        teardown();
        return rc;
    }
    if (B.a.progress)
        gn_timer_start(B.loop, PROGRESS_MS, PROGRESS_MS, show_progress, NULL, &B.progress_timer);
    cli_catch_signals(B.loop);
    gn_loop_run(B.loop);
    finish_run(); /* after a signal: the window ends now */
    rc = report();
    /* Let the graceful closes go out, for up to a second. */
    if (B.live > 0 && gn_timer_start(B.loop, 1000, 0, grace_over, NULL, &B.grace_timer) == 0)
        gn_loop_run(B.loop);
    teardown();
    return rc;
}
