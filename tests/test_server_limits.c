/*
 * Server limits hold: idle connections are closed with GN_ETIMEDOUT,
 * clients past max_conns are accepted and closed at once, running out of
 * descriptors refuses clients promptly and keeps the loop serving, and
 * gn_server_close resets what is still open after the grace period.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <sys/resource.h>
#endif
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

/* Atomic: with GN_TEST_LOOPS=2 the handlers run on two threads. */
static atomic_int closes, last_reason, accepts;

static void count_accept(gn_conn *conn)
{
    (void)conn;
    accepts++;
}

static void count_close(gn_conn *conn, int reason)
{
    (void)conn;
    closes++;
    last_reason = reason;
}

static const gn_handlers counting = {.on_accept = count_accept, .on_close = count_close};

/* Waits for EOF or reset on fd; returns 0 (EOF), -errno, or 1 (timeout). */
static int wait_closed(int fd, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    char buf[64];
    ssize_t n;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        ;
    if (n == 0)
        return 0;
    return errno == EAGAIN ? 1 : -errno;
}

Test(server_limits, idle_connections_close_with_etimedout)
{
    gn_options opts = {.idle_timeout_ms = 150};
    char addr[GN_ENDPOINT_STRLEN];
    gn_loop *loop;
    gn_server *srv;
    int fd;

    closes = accepts = 0;
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &counting, &opts, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr);
    cr_assert_geq(fd, 0);
    gn_test_run_loop_for(loop, 80);
    cr_expect_eq(closes, 0, "not idle long enough yet");
    gn_test_run_loop_for(loop, 400);
    cr_expect_eq(closes, 1);
    cr_expect_eq(last_reason, GN_ETIMEDOUT);
    cr_expect_eq(wait_closed(fd, 1000), 0, "the peer sees the close");
    close(fd);
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
}

Test(server_limits, clients_past_max_conns_are_closed_at_once)
{
    gn_options opts = {.max_conns = 2};
    char addr[GN_ENDPOINT_STRLEN];
    gn_loop *loop;
    gn_server *srv;
    int fds[4];

    closes = accepts = 0;
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &counting, &opts, addr, sizeof(addr));
    for (int i = 0; i < 4; i++) {
        fds[i] = gn_test_connect_fd(addr);
        cr_assert_geq(fds[i], 0);
    }
    gn_test_run_loop_for(loop, 200);
    cr_expect_eq(accepts, 2);
    cr_expect_eq(gn_server_conn_count(srv), 2u);
    cr_expect_eq(wait_closed(fds[2], 1000), 0, "refused promptly, not left hanging");
    cr_expect_eq(wait_closed(fds[3], 1000), 0);
    cr_expect_eq(wait_closed(fds[0], 100), 1, "the first two stay open");
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
}

#ifndef _WIN32 /* Windows has no descriptor limit to run out of */
Test(server_limits, out_of_descriptors_refuses_clients_and_keeps_serving)
{
    char addr[GN_ENDPOINT_STRLEN];
    struct rlimit saved, tight;
    gn_loop *loop;
    gn_server *srv;
    int fds[6], late;

    if (getenv("GN_TEST_VALGRIND")) /* tests/valgrind.sh */
        cr_skip_test("Valgrind keeps the open-file limit to itself: setrlimit never reaches "
                     "the kernel");
    closes = accepts = 0;
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &counting, NULL, addr, sizeof(addr));
    for (int i = 0; i < 6; i++) {
        fds[i] = gn_test_connect_fd(addr);
        cr_assert_geq(fds[i], 0);
    }
    /* Room for two more descriptors only: two clients get in. */
    getrlimit(RLIMIT_NOFILE, &saved);
    tight = saved;
    tight.rlim_cur = (rlim_t)gn_test_count_fds() + 2;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &tight), 0);
    gn_test_run_loop_for(loop, 300);
    cr_expect_eq(accepts, 2);
    for (int i = 2; i < 6; i++)
        cr_expect_leq(wait_closed(fds[i], 1000), 0, "client %d refused, not hanging", i);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
    late = gn_test_connect_fd(addr);
    cr_assert_geq(late, 0);
    gn_test_run_loop_for(loop, 300);
    cr_expect_eq(accepts, 3, "serving again once descriptors are free");
    close(late);
    for (int i = 0; i < 6; i++)
        close(fds[i]);
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
}
#endif

static char flood[4 << 20];

static void stuff(gn_conn *conn)
{
    count_accept(conn);
    gn_send(conn, flood, sizeof(flood));
}

/* More whenever the queue drains, until the kernel's buffers are full
 * too: how much they take depends on how the bytes went in (small writes
 * let Linux grow them), and the grace must find output still waiting. */
static void stuff_more(gn_conn *conn)
{
    gn_send(conn, flood, sizeof(flood));
}

Test(server_limits, server_close_resets_what_is_still_open_after_the_grace)
{
    const gn_handlers h = {.on_accept = stuff, .on_drain = stuff_more, .on_close = count_close};
    char addr[GN_ENDPOINT_STRLEN];
    gn_loop *loop;
    gn_server *srv;
    uint64_t start;
    int fd;

    closes = accepts = 0;
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &h, NULL, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr); /* never reads: the flush cannot finish */
    cr_assert_geq(fd, 0);
    gn_test_run_loop_for(loop, 100);
    cr_assert_eq(accepts, 1);
    start = gn_loop_now(loop);
    gn_server_close(srv, 200);
    cr_expect_eq(gn_test_run_loop_for(loop, 5000), 0, "the loop ends by itself");
    cr_expect_geq(gn_loop_now(loop) - start, 200u);
    cr_expect_eq(closes, 1);
    cr_expect_lt(wait_closed(fd, 1000), 0, "the peer sees a reset");
    close(fd);
    gn_loop_free(loop);
}
