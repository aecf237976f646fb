/*
 * Rate limits: over a transfer, a limited direction moves at most
 * rate * t + burst bytes (the guarantee; 5% allowed for the completion
 * backend's buffers already received), and not far less (loosely: the
 * machine may be slow).  A throttled reader leaves the bytes in the
 * kernel, so the sender backs up; a group of three holds their total.
 * Bounds are on bytes for the time that passed, so a slow run cannot
 * fail them: slowness only lengthens the time.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "gnezdo.h"
#include "helpers.h"

#define RATE      (4u << 20)  /* bytes per second */
#define BURST     (RATE / 10) /* the default: a tenth of a second */
#define RUN_MS    1000
#define CHUNK     (256u << 10)
#define QUEUE_MAX (4u << 20)
#define MAX_PEERS 3

static char chunk[CHUNK];

static struct {
    gn_loop *loop;
    gn_server *srv;
    gn_rate_group *group;
    gn_conn *accepted[MAX_PEERS], *clients[MAX_PEERS];
    size_t naccepted, nclients;
    uint64_t t0, elapsed;
    uint64_t in_total, out_total, queued_total, buffered_max;
} t;

static size_t s_discard(gn_conn *conn, const char *data, size_t len)
{
    gn_conn_stats st;

    (void)data;
    gn_conn_get_stats(conn, &st);
    if (st.buffered > t.buffered_max)
        t.buffered_max = st.buffered;
    return len;
}

static void s_accept(gn_conn *conn)
{
    if (t.naccepted == 0)
        t.t0 = gn_now_ms();
    if (t.naccepted < MAX_PEERS)
        t.accepted[t.naccepted++] = conn;
    if (t.group)
        cr_assert_eq(gn_conn_join_rate_group(conn, t.group), 0);
}

/* Send as fast as the connection takes it, a few MiB ahead. */
static void pump(gn_conn *conn)
{
    gn_conn_stats st;

    while (gn_conn_get_stats(conn, &st) == 0 && st.queued < QUEUE_MAX)
        if (gn_send(conn, chunk, sizeof(chunk)) < 0)
            return;
}

static void c_connect(gn_conn *conn)
{
    if (t.nclients == 0 && t.naccepted == 0)
        t.t0 = gn_now_ms();
    pump(conn);
}

static void measure(gn_loop *loop, uint64_t id, void *arg)
{
    gn_conn_stats st;

    (void)id;
    (void)arg;
    t.elapsed = gn_now_ms() - t.t0;
    for (size_t i = 0; i < t.naccepted; i++)
        if (gn_conn_get_stats(t.accepted[i], &st) == 0)
            t.in_total += st.bytes_in;
    for (size_t i = 0; i < t.nclients; i++)
        if (gn_conn_get_stats(t.clients[i], &st) == 0) {
            t.out_total += st.bytes_out;
            t.queued_total += st.queued;
        }
    gn_loop_stop(loop);
}

static const gn_handlers server_h = {.on_accept = s_accept, .on_data = s_discard};
static const gn_handlers client_h = {.on_connect = c_connect, .on_drain = pump};

/* Run a server with sopts and n clients with copts for RUN_MS. */
static void transfer(const gn_options *sopts, const gn_options *copts, size_t n)
{
    char addr[64], err[GN_ERRBUF_SIZE];
    uint64_t timer;

    t.srv = gn_test_listen(t.loop, "127.0.0.1:0", &server_h, sopts, addr, sizeof(addr));
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(gn_connect(t.loop, addr, &client_h, copts, &t.clients[i], err, sizeof(err)), 0,
                     "%s", err);
    t.nclients = n;
    cr_assert_eq(gn_timer_start(t.loop, RUN_MS, 0, measure, NULL, &timer), 0);
    cr_assert_eq(gn_test_run_loop_for(t.loop, RUN_MS + 10000), 0);
    cr_assert_gt(t.elapsed, 0, "measured");
}

static void setup(void)
{
    memset(&t, 0, sizeof(t));
    cr_assert_eq(gn_loop_new(&t.loop), 0);
}

static void teardown(void)
{
    gn_loop_free(t.loop);
}

/* At most rate * t + burst, within 5%; at least a third of rate * t. */
static void expect_rate(uint64_t bytes, uint64_t elapsed_ms, uint64_t rate, uint64_t burst,
                        const char *what)
{
    double most = ((double)rate * (double)elapsed_ms / 1000.0 + (double)burst) * 1.05;
    double least = (double)rate * (double)elapsed_ms / 1000.0 / 3.0;

    cr_expect_leq((double)bytes, most, "%s: %llu bytes in %llu ms, at most %.0f", what,
                  (unsigned long long)bytes, (unsigned long long)elapsed_ms, most);
    cr_expect_geq((double)bytes, least, "%s: %llu bytes in %llu ms, at least %.0f", what,
                  (unsigned long long)bytes, (unsigned long long)elapsed_ms, least);
}

TestSuite(rate_limit, .init = setup, .fini = teardown);

Test(rate_limit, writing_holds_the_rate)
{
    gn_options copts = {.write_rate_limit = RATE};

    transfer(NULL, &copts, 1);
    expect_rate(t.out_total, t.elapsed, RATE, BURST, "written");
    cr_expect_gt(t.queued_total, 0, "the rest waits in the queue");
}

Test(rate_limit, reading_holds_the_rate_and_the_sender_backs_up)
{
    gn_options sopts = {.read_rate_limit = RATE, .idle_timeout_ms = GN_NO_TIMEOUT};

    transfer(&sopts, NULL, 1);
    expect_rate(t.in_total, t.elapsed, RATE, BURST, "read");
    /* Not read is not buffered: the bytes wait in the kernel and the
     * sender's queue.  The server's input buffer stays empty, but for
     * what io_uring had received when the receiving paused (a buffer or
     * two of 16 KiB, delivered from there). */
    cr_expect_leq(t.buffered_max, 256u << 10, "buffered %llu", (unsigned long long)t.buffered_max);
    cr_expect_gt(t.out_total + t.queued_total, t.in_total + (1u << 20),
                 "sent %llu + queued %llu, read %llu", (unsigned long long)t.out_total,
                 (unsigned long long)t.queued_total, (unsigned long long)t.in_total);
}

Test(rate_limit, a_group_of_three_holds_its_total)
{
    gn_rate_limit limit = {.read_bytes_per_s = RATE};

    cr_assert_eq(gn_rate_group_new(t.loop, &limit, &t.group), 0);
    transfer(NULL, NULL, MAX_PEERS);
    cr_assert_eq(t.naccepted, MAX_PEERS);
    expect_rate(t.in_total, t.elapsed, RATE, BURST, "read by the group");
}

Test(rate_limit, a_connection_limit_and_a_group_both_hold)
{
    gn_rate_limit limit = {.read_bytes_per_s = RATE};
    gn_options sopts = {.read_rate_limit = RATE / 4};

    /* Each member at a quarter: three quarters in all, under the group's. */
    cr_assert_eq(gn_rate_group_new(t.loop, &limit, &t.group), 0);
    transfer(&sopts, NULL, MAX_PEERS);
    expect_rate(t.in_total, t.elapsed, RATE / 4 * 3, BURST / 4 * 3, "three at a quarter");
}

Test(rate_limit, bad_arguments)
{
    gn_rate_limit bad = {.reserved_ = {1}};
    gn_rate_group *g;

    cr_expect_eq(gn_rate_group_new(NULL, &(gn_rate_limit){0}, &g), GN_EINVAL);
    cr_expect_eq(gn_rate_group_new(t.loop, &bad, &g), GN_EINVAL);
    cr_expect_eq(gn_rate_group_new(t.loop, NULL, &g), GN_EINVAL);
    cr_expect_eq(gn_conn_set_rate_limit(NULL, NULL), GN_EINVAL);
    cr_expect_eq(gn_conn_join_rate_group(NULL, NULL), GN_EINVAL);
    gn_rate_group_free(NULL);
    cr_assert_eq(gn_rate_group_new(t.loop, &(gn_rate_limit){.write_bytes_per_s = 1}, &g), 0);
    gn_rate_group_free(g);
}

/* ---- blocking mode ---------------------------------------------------- */

static struct {
    pthread_mutex_t mu;
    uint64_t bytes, elapsed;
    bool done;
} got = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void read_all(gn_conn *conn)
{
    static char buf[65536];
    uint64_t t0 = gn_now_ms(), n = 0;
    ssize_t r;

    while ((r = gn_read(conn, buf, sizeof(buf), 10000)) > 0)
        n += (uint64_t)r;
    pthread_mutex_lock(&got.mu);
    got.bytes = n;
    got.elapsed = gn_now_ms() - t0;
    got.done = true;
    pthread_mutex_unlock(&got.mu);
}

static void blocking_transfer(const gn_options *sopts, const gn_options *copts, size_t len,
                              uint64_t *write_ms)
{
    static char data[4u << 20];
    char addr[GN_ENDPOINT_STRLEN], err[GN_ERRBUF_SIZE];
    gn_server *srv;
    gn_endpoint ep;
    gn_conn *conn;
    uint64_t t0;

    got.done = false;
    cr_assert_eq(gn_serve_threads("127.0.0.1:0", read_all, sopts, NULL, &srv, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(gn_server_get_endpoint(srv, 0, &ep), 0);
    gn_endpoint_format(&ep, addr, sizeof(addr));
    cr_assert_eq(gn_dial(addr, 5000, copts, &conn, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gn_conn_join_rate_group(conn, NULL), GN_EMODE);
    t0 = gn_now_ms();
    cr_assert_leq(len, sizeof(data));
    cr_assert_eq(gn_write_all(conn, data, len, 20000), 0);
    *write_ms = gn_now_ms() - t0;
    gn_close(conn);
    for (int i = 0; i < 2000; i++) {
        bool done;
        pthread_mutex_lock(&got.mu);
        done = got.done;
        pthread_mutex_unlock(&got.mu);
        if (done)
            break;
        gn_test_run_loop_for(t.loop, 10);
    }
    gn_server_close(srv, 1000);
    cr_assert(got.done, "the reader finished");
    cr_assert_eq(got.bytes, len);
}

Test(rate_limit, blocking_writes_and_reads_hold_the_rate)
{
    gn_options copts = {.write_rate_limit = RATE};
    gn_options sopts = {.read_rate_limit = RATE};
    size_t len = RATE / 2 + BURST;
    uint64_t write_ms;

    blocking_transfer(NULL, &copts, len, &write_ms);
    expect_rate(len, write_ms ? write_ms : 1, RATE, BURST, "gn_write_all");
    blocking_transfer(&sopts, NULL, len, &write_ms);
    expect_rate(got.bytes, got.elapsed ? got.elapsed : 1, RATE, BURST, "gn_read");
}
