/*
 * Closing: gn_close, gn_shutdown and gn_abort, called twice, from inside
 * on_accept, on_data, on_drain and a timer, each end in exactly one
 * on_close; sends afterwards fail with GN_ECLOSED; half-close works both
 * ways; a peer reset mid-transfer is reported once with its code.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

enum place { IN_ACCEPT, IN_DATA, IN_DRAIN, IN_TIMER };
enum action { DO_CLOSE, DO_SHUTDOWN, DO_ABORT };

static const char *const place_names[] = {"on_accept", "on_data", "on_drain", "timer"};
static const char *const action_names[] = {"gn_close", "gn_shutdown", "gn_abort"};

struct scenario {
    enum place place;
    enum action action;
    int closes, reason, send_after;
    bool acted;
};

static struct scenario sc;
static char big[8 << 20];

static void act(gn_conn *conn)
{
    int (*fn[])(gn_conn *) = {gn_close, gn_shutdown, gn_abort};

    if (sc.acted)
        return;
    sc.acted = true;
    GN_TEST_CHECK(fn[sc.action](conn) == 0);
    GN_TEST_CHECK(fn[sc.action](conn) == 0, "a second call is harmless");
    sc.send_after = gn_send(conn, "x", 1);
}

static void act_later(gn_loop *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    act(arg);
}

static void sc_accept(gn_conn *conn)
{
    uint64_t id;

    if (sc.place == IN_DRAIN)
        GN_TEST_CHECK(gn_send(conn, big, sizeof(big)) == 0);
    if (sc.place == IN_TIMER)
        GN_TEST_CHECK(gn_timer_start(gn_conn_loop(conn), 10, 0, act_later, conn, &id) == 0);
    if (sc.place == IN_ACCEPT)
        act(conn);
}

static size_t sc_data(gn_conn *conn, const char *data, size_t len)
{
    (void)data;
    if (sc.place == IN_DATA)
        act(conn);
    return len;
}

static void sc_drain(gn_conn *conn)
{
    if (sc.place == IN_DRAIN)
        act(conn);
}

static void sc_close(gn_conn *conn, int reason)
{
    (void)conn;
    sc.closes++;
    sc.reason = reason;
}

/* The peer: writes a byte, then reads everything until EOF or reset. */
static void run_scenario(enum place place, enum action action)
{
    const gn_handlers h = {
        .on_accept = sc_accept, .on_data = sc_data, .on_drain = sc_drain, .on_close = sc_close};
    gn_options opts = {
        .high_watermark = 64 << 10, .low_watermark = 16 << 10, .max_output = 16 << 20};
    char addr[GN_ENDPOINT_STRLEN], buf[65536];
    int fds = gn_test_count_fds(), fd;
    gn_loop *loop;
    gn_server *srv;
    ssize_t n = 1;

    sc = (struct scenario){.place = place, .action = action};
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &h, &opts, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "x", 1), 1);
    gn_test_run_loop_for(loop, 100);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    for (int i = 0; i < 3000 && n != 0; i++) {
        while ((n = read(fd, buf, sizeof(buf))) > 0)
            ;
        if (n < 0 && errno != EAGAIN)
            break; /* reset by abort */
        if (sc.closes == 1 && action == DO_SHUTDOWN && n < 0)
            break;
        gn_test_run_loop_for(loop, 2);
    }
    close(fd); /* after a shutdown the server waits for this */
    gn_test_run_loop_for(loop, 100);
    cr_expect_eq(sc.closes, 1, "%s in %s: on_close ran %d times", action_names[action],
                 place_names[place], sc.closes);
    cr_expect(sc.acted, "%s in %s: never acted", action_names[action], place_names[place]);
    cr_expect_eq(sc.send_after, GN_ECLOSED, "%s in %s: send afterwards gave %d",
                 action_names[action], place_names[place], sc.send_after);
    gn_server_close(srv, 0);
    cr_expect_eq(gn_loop_run(loop), 0);
    gn_loop_free(loop);
    cr_expect_eq(gn_test_count_fds(), fds);
    gn_test_checks_ok();
}

Test(conn_close, every_close_in_on_accept_ends_in_one_on_close)
{
    for (int a = DO_CLOSE; a <= DO_ABORT; a++)
        run_scenario(IN_ACCEPT, (enum action)a);
}

Test(conn_close, every_close_in_on_data_ends_in_one_on_close)
{
    for (int a = DO_CLOSE; a <= DO_ABORT; a++)
        run_scenario(IN_DATA, (enum action)a);
}

Test(conn_close, every_close_in_on_drain_ends_in_one_on_close, .timeout = 60)
{
    for (int a = DO_CLOSE; a <= DO_ABORT; a++)
        run_scenario(IN_DRAIN, (enum action)a);
}

Test(conn_close, every_close_in_a_timer_ends_in_one_on_close)
{
    for (int a = DO_CLOSE; a <= DO_ABORT; a++)
        run_scenario(IN_TIMER, (enum action)a);
}

/* ---- half-close ----------------------------------------------------- */

struct half {
    int ends, closes, reason;
    char got[64];
    size_t got_len;
};

static struct half half;

static size_t half_data(gn_conn *conn, const char *data, size_t len)
{
    (void)conn;
    if (half.got_len + len < sizeof(half.got)) {
        memcpy(half.got + half.got_len, data, len);
        half.got_len += len;
    }
    return len;
}

static void half_end(gn_conn *conn)
{
    half.ends++;
    GN_TEST_CHECK(gn_send(conn, "bye after your FIN", 18) == 0, "we may still send");
    gn_close(conn);
}

static void half_close(gn_conn *conn, int reason)
{
    (void)conn;
    half.closes++;
    half.reason = reason;
}

static ssize_t read_all(int fd, char *buf, size_t len)
{
    size_t got = 0;
    ssize_t n;

    while (got < len && (n = read(fd, buf + got, len - got)) > 0)
        got += (size_t)n;
    return (ssize_t)got;
}

Test(conn_close, peer_half_close_lets_the_server_answer_then_close)
{
    const gn_handlers h = {.on_data = half_data, .on_end = half_end, .on_close = half_close};
    char addr[GN_ENDPOINT_STRLEN], buf[64] = {0};
    gn_loop *loop;
    gn_server *srv;
    int fd;

    memset(&half, 0, sizeof(half));
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &h, NULL, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "question", 8), 8);
    cr_assert_eq(shutdown(fd, SHUT_WR), 0);
    gn_test_run_loop_for(loop, 200);
    cr_expect_eq(half.ends, 1);
    cr_expect_eq(half.got_len, 8u);
    cr_expect_eq(read_all(fd, buf, sizeof(buf) - 1), 18, "the answer, then EOF");
    cr_expect_str_eq(buf, "bye after your FIN");
    cr_expect_eq(half.closes, 1);
    cr_expect_eq(half.reason, 0);
    close(fd);
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
    gn_test_checks_ok();
}

static void shut_on_accept(gn_conn *conn)
{
    GN_TEST_CHECK(gn_send(conn, "one-way", 7) == 0);
    GN_TEST_CHECK(gn_shutdown(conn) == 0);
    GN_TEST_CHECK(gn_send(conn, "more", 4) == GN_ECLOSED);
}

Test(conn_close, our_half_close_sends_fin_and_keeps_reading)
{
    const gn_handlers h = {
        .on_accept = shut_on_accept, .on_data = half_data, .on_close = half_close};
    char addr[GN_ENDPOINT_STRLEN], buf[64] = {0};
    gn_loop *loop;
    gn_server *srv;
    int fd;

    memset(&half, 0, sizeof(half));
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &h, NULL, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr);
    cr_assert_geq(fd, 0);
    gn_test_run_loop_for(loop, 100);
    cr_expect_eq(read_all(fd, buf, sizeof(buf) - 1), 7, "data then EOF");
    cr_expect_str_eq(buf, "one-way");
    cr_assert_eq(write(fd, "still heard", 11), 11);
    gn_test_run_loop_for(loop, 100);
    cr_expect_eq(half.got_len, 11u, "the server still reads after its FIN");
    cr_expect_eq(half.closes, 0);
    close(fd);
    gn_test_run_loop_for(loop, 100);
    cr_expect_eq(half.closes, 1);
    cr_expect_eq(half.reason, 0);
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
    gn_test_checks_ok();
}

/* ---- reset ---------------------------------------------------------- */

static int reset_errors, reset_closes, reset_reason;

static void send_lots(gn_conn *conn)
{
    gn_send(conn, big, sizeof(big));
}

static void reset_error(gn_conn *conn, int code, const char *message)
{
    (void)conn;
    (void)message;
    GN_TEST_CHECK(code == (reset_reason == 0 ? code : reset_reason));
    reset_errors++;
}

static void reset_close(gn_conn *conn, int reason)
{
    (void)conn;
    reset_closes++;
    reset_reason = reason;
}

Test(conn_close, peer_reset_mid_transfer_is_reported_once)
{
    const gn_handlers h = {
        .on_accept = send_lots, .on_error = reset_error, .on_close = reset_close};
    struct linger lg = {1, 0};
    char addr[GN_ENDPOINT_STRLEN], buf[4096];
    gn_loop *loop;
    gn_server *srv;
    int fd;

    reset_errors = reset_closes = reset_reason = 0;
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &h, NULL, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr);
    cr_assert_geq(fd, 0);
    gn_test_run_loop_for(loop, 100);
    cr_assert_gt(read(fd, buf, sizeof(buf)), 0, "the transfer started");
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd); /* RST */
    gn_test_run_loop_for(loop, 300);
    cr_expect_eq(reset_closes, 1);
    cr_expect_eq(reset_errors, 1);
    cr_expect(reset_reason == GN_ECONNRESET || reset_reason == GN_EPIPE, "reason %s",
              gn_errname(reset_reason));
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
    gn_test_checks_ok();
}

static void count_connect(gn_conn *conn)
{
    (void)conn;
    sc.acted = true; /* the connection is open: gn_send writes at once */
}

/* gn_send documents GN_ECLOSED for a connection that has ended: one that
 * ends inside the call, its write refused by a peer already gone, says
 * the same (it returned GN_EPIPE; found by fuzz_conn).  The reason goes
 * to on_error and on_close, once each. */
Test(conn_close, a_send_that_meets_a_closed_peer_fails_with_gn_eclosed)
{
    const gn_handlers h = {
        .on_connect = count_connect, .on_error = reset_error, .on_close = reset_close};
    uint64_t faults = gn_faults_injected();
    gn_loop *loop;
    gn_conn *conn;
    int sv[2], rc;

    reset_errors = reset_closes = reset_reason = 0;
    sc.acted = false;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_conn_adopt(loop, sv[0], NULL, &h, NULL, &conn), 0);
    for (int i = 0; i < 100 && !sc.acted; i++)
        gn_test_run_loop_for(loop, 10);
    cr_assert(sc.acted, "on_connect ran");
#ifdef _WIN32
    /* The pair is loopback TCP there (no socketpair): after a peer's
     * orderly close TCP accepts one more write, on Linux too; its
     * abortive close is what closing an AF_UNIX peer is, a write refused
     * at once.  The reset is awaited without running the loop: nothing
     * else comes to sv[0], so it is what makes it readable. */
    struct linger lg = {1, 0};
    struct pollfd reset = {.fd = sv[0], .events = POLLIN};

    cr_assert_eq(setsockopt(sv[1], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(sv[1]);
    poll(&reset, 1, 2000);
#else
    close(sv[1]);
#endif
    rc = gn_send(conn, "x", 1);
    if (gn_faults_injected() == faults)
        cr_expect_eq(rc, GN_ECLOSED, "gn_send returned %s", gn_errname(rc));
    else
        cr_expect(rc == GN_ECLOSED || rc == 0, "gn_send returned %s", gn_errname(rc));
    cr_expect_eq(gn_send(conn, "y", 1), GN_ECLOSED, "and so does the next one");
    gn_test_run_loop_for(loop, 300);
    cr_expect_eq(reset_closes, 1);
    cr_expect_eq(reset_errors, 1);
    cr_expect(reset_reason == GN_EPIPE || reset_reason == GN_ECONNRESET, "reason %s",
              gn_errname(reset_reason));
    gn_loop_free(loop);
}
