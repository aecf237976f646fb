/*
 * Reconnecting clients (gn_options.reconnect): a client whose server goes
 * away retries with pauses that grow as gRPC's backoff says, connects
 * again once the server is back on the same port, stops when closed or
 * after max_attempts, and leaves no descriptor behind over 100 cycles.
 * Bounds are generous: the suite also runs under ASan and injected
 * faults, so only the order of magnitude of each pause is asserted.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "gnezdo.h"
#include "helpers.h"

#define MAX_EVENTS 256

/* ---- the backoff rule alone ------------------------------------------- */

Test(backoff, follows_grpc_defaults_and_rule)
{
    gn_backoff b = {.initial_ms = 100, .max_ms = 1000, .multiplier = 2, .jitter = 0.5};

    cr_assert_eq(gn_backoff_delay_ms(NULL, 0, 0.5), 0);
    cr_assert_eq(gn_backoff_delay_ms(NULL, 1, 0.5), 1000, "INITIAL_BACKOFF 1 s");
    cr_assert_eq(gn_backoff_delay_ms(NULL, 2, 0.5), 1600, "MULTIPLIER 1.6");
    cr_assert_eq(gn_backoff_delay_ms(NULL, 1, 0.0), 800, "JITTER 0.2");
    cr_assert_eq(gn_backoff_delay_ms(NULL, 1, 1.0), 1200);
    cr_assert_eq(gn_backoff_delay_ms(NULL, 100, 0.5), 120000, "MAX_BACKOFF 120 s");
    cr_assert_eq(gn_backoff_delay_ms(&b, 3, 0.5), 400);
    cr_assert_eq(gn_backoff_delay_ms(&b, 3, 0.0), 200);
    cr_assert_eq(gn_backoff_delay_ms(&b, 9, 1.0), 1500, "the cap, then jitter");
    b.jitter = GN_BACKOFF_NO_JITTER;
    cr_assert_eq(gn_backoff_delay_ms(&b, 2, 0.0), 200);
}

Test(backoff, bad_values_are_refused_with_a_message)
{
    gn_backoff b = {.multiplier = 0.5};
    gn_options opts = {.reconnect = &b};
    gn_handlers h = {0};
    char err[GN_ERRBUF_SIZE];
    gn_conn *conn = NULL;
    gn_loop *loop;

    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_connect(loop, "127.0.0.1:9", &h, &opts, &conn, err, sizeof(err)), GN_EINVAL);
    cr_assert(strstr(err, "multiplier"), "%s", err);
    b = (gn_backoff){.jitter = 1.5};
    cr_assert_eq(gn_connect(loop, "127.0.0.1:9", &h, &opts, &conn, err, sizeof(err)), GN_EINVAL);
    cr_assert(strstr(err, "jitter"), "%s", err);
    b = (gn_backoff){.reserved_ = {1}};
    cr_assert_eq(gn_connect(loop, "127.0.0.1:9", &h, &opts, &conn, err, sizeof(err)), GN_EINVAL);
    cr_assert(strstr(err, "gn_backoff"), "%s", err);
    cr_assert_null(conn);
    gn_loop_free(loop);
}

/* ---- a server that goes away and comes back --------------------------- */

struct attempt {
    unsigned number;
    uint32_t delay_ms;
    uint64_t at_ms; /* when on_reconnect ran */
    int last_error;
};

static struct {
    gn_loop *loop;
    gn_server *srv;
    char addr[64];
    gn_options srv_opts;
    gn_handlers srv_h;
    unsigned connects, closes, reconnecting_closes;
    struct attempt attempts[MAX_EVENTS];
    unsigned nattempts;
    unsigned relisten_at;  /* re-listen when this attempt is announced */
    unsigned stop_after;   /* gn_close in the n-th on_reconnect (0: never) */
    unsigned stop_connect; /* gn_close in the n-th on_connect (0: never) */
    uint64_t drop_timer;
    void *user_data_seen;
} t;

static void relisten(void)
{
    char err[GN_ERRBUF_SIZE];

    cr_assert_eq(gn_listen(t.loop, t.addr, &t.srv_h, &t.srv_opts, &t.srv, err, sizeof(err)), 0,
                 "%s", err);
}

static void server_down(gn_loop *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    (void)arg;
    gn_server_close(t.srv, GN_NO_WAIT); /* listener gone, connection reset */
    t.srv = NULL;
}

static void c_connect(gn_conn *conn)
{
    t.connects++;
    t.user_data_seen = gn_conn_user_data(conn);
    if (t.stop_connect && t.connects == t.stop_connect) {
        gn_close(conn);
        if (t.srv)
            gn_server_close(t.srv, GN_NO_WAIT);
        t.srv = NULL;
        return;
    }
    /* The first connection stays up past initial_ms, then the server goes. */
    if (t.connects == 1 && t.relisten_at)
        gn_timer_start(t.loop, 300, 0, server_down, NULL, &t.drop_timer);
}

static void c_close(gn_conn *conn, int reason)
{
    (void)reason;
    t.closes++;
    if (gn_conn_is_reconnecting(conn))
        t.reconnecting_closes++;
}

static void c_reconnect(gn_conn *conn, unsigned attempt, uint32_t delay_ms, int last_error)
{
    struct attempt *a = &t.attempts[t.nattempts < MAX_EVENTS ? t.nattempts++ : MAX_EVENTS - 1];

    *a = (struct attempt){attempt, delay_ms, gn_now_ms(), last_error};
    cr_expect_not_null(conn);
    if (t.relisten_at && attempt == t.relisten_at)
        relisten();
    if (t.stop_after && t.nattempts == t.stop_after)
        gn_close(conn);
}

static const gn_handlers client_h = {
    .on_connect = c_connect, .on_close = c_close, .on_reconnect = c_reconnect};

static void setup(void)
{
    memset(&t, 0, sizeof(t));
    cr_assert_eq(gn_loop_new(&t.loop), 0);
    t.srv_opts.idle_timeout_ms = GN_NO_TIMEOUT;
    t.srv = gn_test_listen(t.loop, "127.0.0.1:0", &t.srv_h, &t.srv_opts, t.addr, sizeof(t.addr));
}

/* Within [base * (1 - jitter) - slack, base * (1 + jitter)]: the pause
 * counts from the attempt's start, a little before on_reconnect. */
static void expect_pause(const struct attempt *a, double base, double jitter)
{
    cr_expect_geq(a->delay_ms, base * (1 - jitter) - 60, "attempt %u: %u ms, base %.0f", a->number,
                  a->delay_ms, base);
    cr_expect_leq(a->delay_ms, base * (1 + jitter) + 1, "attempt %u: %u ms, base %.0f", a->number,
                  a->delay_ms, base);
}

Test(reconnect, across_a_server_closed_and_reopened_on_its_port, .init = setup)
{
    gn_backoff b = {.initial_ms = 100, .max_ms = 900, .multiplier = 3, .jitter = 0.1};
    gn_options opts = {.reconnect = &b, .user_data = &t};
    char err[GN_ERRBUF_SIZE];
    gn_conn *conn;

    t.relisten_at = 4;  /* after three refused attempts */
    t.stop_connect = 2; /* the second connection ends the test */
    cr_assert_eq(gn_connect(t.loop, t.addr, &client_h, &opts, &conn, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(gn_test_run_loop_for(t.loop, 20000), 0, "the loop ends by itself");
    cr_assert_eq(t.connects, 2, "connected, lost, connected again");
    cr_assert_eq(t.nattempts, 4, "one attempt at once, three refused");
    /* The lost connection had been up for 300 ms: retried at once. */
    cr_expect_eq(t.attempts[0].number, 1);
    cr_expect_eq(t.attempts[0].delay_ms, 0);
    cr_expect_neq(t.attempts[1].last_error, 0, "refused");
    cr_expect_eq(t.attempts[1].last_error, GN_ECONNREFUSED);
    expect_pause(&t.attempts[1], 100, 0.1);
    expect_pause(&t.attempts[2], 300, 0.1);
    expect_pause(&t.attempts[3], 900, 0.1);
    for (unsigned i = 1; i < 4; i++) {
        cr_expect_eq(t.attempts[i].number, i + 1);
        if (i > 1)
            cr_expect_gt(t.attempts[i].delay_ms, t.attempts[i - 1].delay_ms, "pauses grow");
        /* The pause was waited: the next announcement came after it. */
        if (i + 1 < t.nattempts)
            cr_expect_geq(t.attempts[i + 1].at_ms - t.attempts[i].at_ms, t.attempts[i].delay_ms);
    }
    cr_expect_eq(t.user_data_seen, &t, "user data carried over");
    cr_expect_eq(t.closes, 5, "each connection closed once");
    cr_expect_eq(t.reconnecting_closes, 4, "the last close is final");
    gn_loop_free(t.loop);
}

Test(reconnect, gn_close_in_on_reconnect_stops_it, .init = setup)
{
    gn_backoff b = {.initial_ms = 20, .max_ms = 40};
    gn_options opts = {.reconnect = &b};
    char err[GN_ERRBUF_SIZE];
    gn_conn *conn;

    gn_server_close(t.srv, GN_NO_WAIT); /* nobody listens: refused */
    t.stop_after = 3;
    cr_assert_eq(gn_connect(t.loop, t.addr, &client_h, &opts, &conn, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(gn_test_run_loop_for(t.loop, 10000), 0);
    cr_expect_eq(t.nattempts, 3);
    cr_expect_eq(t.connects, 0);
    cr_expect_eq(t.closes, 4, "three refused, one closed in its pause");
    cr_expect_eq(t.reconnecting_closes, 3);
    gn_loop_free(t.loop);
}

Test(reconnect, gives_up_after_max_attempts, .init = setup)
{
    gn_backoff b = {.initial_ms = 10, .max_ms = 20, .max_attempts = 3};
    gn_options opts = {.reconnect = &b};
    char err[GN_ERRBUF_SIZE];
    gn_conn *conn;

    gn_server_close(t.srv, GN_NO_WAIT);
    cr_assert_eq(gn_connect(t.loop, t.addr, &client_h, &opts, &conn, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(gn_test_run_loop_for(t.loop, 10000), 0);
    cr_expect_eq(t.closes, 3, "three failed connects");
    cr_expect_eq(t.nattempts, 2, "two of them retries");
    cr_expect_eq(t.reconnecting_closes, 2, "the third close is final");
    gn_loop_free(t.loop);
}

Test(reconnect, gn_loop_free_ends_a_pause)
{
    gn_backoff b = {.initial_ms = 60000};
    gn_options opts = {.reconnect = &b};
    char err[GN_ERRBUF_SIZE];
    gn_conn *conn;

    memset(&t, 0, sizeof(t));
    cr_assert_eq(gn_loop_new(&t.loop), 0);
    cr_assert_eq(gn_connect(t.loop, "127.0.0.1:1", &client_h, &opts, &conn, err, sizeof(err)), 0);
    /* Refused, then a minute's pause: the loop is stopped in it. */
    cr_assert_eq(gn_test_run_loop_for(t.loop, 500), GN_ETIMEDOUT);
    cr_expect_eq(t.nattempts, 1);
    gn_loop_free(t.loop);
    cr_expect_eq(t.closes, 2, "the pausing connection closed too");
}

/* ---- 100 cycles, no descriptor left ----------------------------------- */

static void s_drop(gn_conn *conn)
{
    t.closes++;     /* accepts, here */
    gn_abort(conn); /* every connection is lost at once */
}

static void count_reconnect(gn_conn *conn, unsigned attempt, uint32_t delay_ms, int last_error)
{
    (void)attempt;
    (void)delay_ms;
    (void)last_error;
    if (++t.nattempts == 100) {
        gn_close(conn);
        gn_server_close(t.srv, GN_NO_WAIT);
    }
}

static void count_connect(gn_conn *conn)
{
    (void)conn;
    t.connects++;
}

Test(reconnect, a_hundred_cycles_leave_no_descriptor)
{
    gn_backoff b = {.initial_ms = 1, .max_ms = 2};
    gn_options opts = {.reconnect = &b};
    gn_handlers h = {.on_connect = count_connect, .on_reconnect = count_reconnect};
    char err[GN_ERRBUF_SIZE];
    gn_conn *conn;
    int before = gn_test_count_fds();

    memset(&t, 0, sizeof(t));
    t.srv_h.on_accept = s_drop;
    cr_assert_eq(gn_loop_new(&t.loop), 0);
    t.srv = gn_test_listen(t.loop, "127.0.0.1:0", &t.srv_h, NULL, t.addr, sizeof(t.addr));
    cr_assert_eq(gn_connect(t.loop, t.addr, &h, &opts, &conn, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gn_test_run_loop_for(t.loop, 60000), 0);
    cr_expect_eq(t.nattempts, 100);
    cr_expect_geq(t.closes, 50, "most attempts reached the server (%u)", t.closes);
    gn_loop_free(t.loop);
    cr_expect_eq(gn_test_count_fds(), before, "no descriptor leaked");
}
