/*
 * `gnezdo connect --retry` keeps trying a server that is down, says so on
 * stderr, and connects once the server is back on its port; `--limit`
 * holds send, recv and listen to a rate (bytes per second; K, M, G),
 * and is refused where it means nothing.  Rates are checked as bytes
 * for the time that passed, so a slow machine cannot fail them.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

#define RATE  (4u << 20) /* --limit 4M */
#define BURST (RATE / 10)
#define SIZE  (4u << 20)

Test(cli_retry, connect_retry_waits_for_the_server_to_come_back, .timeout = 60)
{
    struct gn_test_proc first, client, server;
    char addr[128];

    /* A port that was just served, then closed: connecting is refused. */
    char *listen0[] = {GN_TEST_CLI, "listen", "127.0.0.1:0", NULL};
    gn_test_spawn(&first, listen0, NULL, true);
    snprintf(addr, sizeof(addr), "%s", first.addr);
    cr_assert_eq(gn_test_proc_wait(&first, 5000, true), 0);

    char *connect_argv[] = {GN_TEST_CLI, "connect", addr, "--retry", NULL};
    gn_test_spawn(&client, connect_argv, NULL, false);
    for (int i = 0; i < 50 && !strstr(client.log, "reconnecting in"); i++)
        gn_test_proc_read(&client, 100);
    cr_assert(strstr(client.log, "connection refused"), "%s", client.log);
    cr_assert(strstr(client.log, "reconnecting in "), "%s", client.log);
    cr_assert(strstr(client.log, "(attempt 1)"), "%s", client.log);

    /* Back on the same port: the next attempt connects; stdin (empty)
     * ends, the client half-closes, the server closes, exit 0. */
    char *listen_again[] = {GN_TEST_CLI, "listen", addr, NULL};
    gn_test_spawn(&server, listen_again, NULL, true);
    cr_expect_eq(gn_test_proc_wait(&client, 10000, false), 0, "%s", client.log);
    cr_expect(strstr(client.log, "connected  "), "%s", client.log);
    cr_expect_eq(gn_test_proc_wait(&server, 5000, true), 0, "%s", server.log);
}

Test(cli_retry, retry_and_limit_are_refused_where_they_mean_nothing)
{
    static const char *const cases[][6] = {
        {"connect", "udp://127.0.0.1:9", "--retry", NULL},
        {"connect", "--sync", "127.0.0.1:9", "--retry", NULL},
        {"send", "/dev/null", "127.0.0.1:9", "--limit", "0", NULL},
        {"send", "/dev/null", "127.0.0.1:9", "--limit", "10X", NULL},
        {"recv", "127.0.0.1:0", "--limit", NULL},
        {"listen", "udp://127.0.0.1:0", "--limit", "1M", NULL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gn_test_run run;
        cr_assert_eq(gn_test_cli(&run, cases[i][0], cases[i][1], cases[i][2], cases[i][3],
                                 cases[i][4], cases[i][5], NULL),
                     0);
        cr_expect_eq(run.status, 2, "%s %s: %s", cases[i][0], cases[i][1], run.err);
        cr_expect(strstr(run.err, "--retry") || strstr(run.err, "--limit") ||
                      strstr(run.err, "--sync"),
                  "%s", run.err);
        gn_test_run_free(&run);
    }
}

static void make_file(char *path, size_t size)
{
    static char block[65536];
    int fd = mkstemp(path);

    cr_assert_geq(fd, 0);
    memset(block, 'x', sizeof(block));
    for (size_t done = 0; done < size; done += sizeof(block))
        cr_assert_eq(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
    close(fd);
}

/* SIZE bytes from `send` (send_limit) to a receiver, in how long. */
static uint64_t timed_send(const char *to, bool send_limit)
{
    char path[] = "/tmp/gn_cli_limit_XXXXXX";
    struct gn_test_run run;
    uint64_t t0;

    make_file(path, SIZE);
    t0 = gn_now_ms();
    if (send_limit)
        cr_assert_eq(gn_test_cli(&run, "send", path, to, "--limit", "4M", "--no-hash", NULL), 0);
    else
        cr_assert_eq(gn_test_cli(&run, "send", path, to, "--no-hash", NULL), 0);
    t0 = gn_now_ms() - t0;
    cr_expect_eq(run.status, 0, "%s", run.err);
    gn_test_run_free(&run);
    unlink(path);
    return t0;
}

/* At most RATE * t + BURST, within 5%. */
static void expect_within_rate(uint64_t ms, const char *what)
{
    double most = ((double)RATE * (double)ms / 1000.0 + BURST) * 1.05;

    cr_expect_leq((double)SIZE, most, "%s: %u bytes in %llu ms", what, SIZE,
                  (unsigned long long)ms);
}

Test(cli_limit, send_limit_holds_the_rate)
{
    struct gn_test_proc recv;
    char *recv_argv[] = {GN_TEST_CLI, "recv", "127.0.0.1:0", "/dev/null", "--no-hash", NULL};

    gn_test_spawn(&recv, recv_argv, NULL, true);
    expect_within_rate(timed_send(recv.addr, true), "send --limit 4M");
    cr_expect_eq(gn_test_proc_wait(&recv, 5000, false), 0, "%s", recv.log);
    cr_expect(strstr(recv.log, "received 4194304 bytes"), "%s", recv.log);
}

/* The sender ends when the receiver has read everything and closed: a
 * limited receiver holds the whole transfer to its rate. */
Test(cli_limit, recv_limit_holds_the_rate)
{
    struct gn_test_proc recv;
    char *recv_argv[] = {GN_TEST_CLI, "recv",    "127.0.0.1:0", "/dev/null",
                         "--no-hash", "--limit", "4M",          NULL};

    gn_test_spawn(&recv, recv_argv, NULL, true);
    expect_within_rate(timed_send(recv.addr, false), "recv --limit 4M");
    cr_expect_eq(gn_test_proc_wait(&recv, 5000, false), 0, "%s", recv.log);
}

Test(cli_limit, listen_limit_holds_each_connection_to_the_rate)
{
    struct gn_test_proc srv;
    char *listen_argv[] = {GN_TEST_CLI, "listen", "127.0.0.1:0", "--discard",
                           "--limit",   "4M",     NULL};

    gn_test_spawn(&srv, listen_argv, NULL, true);
    expect_within_rate(timed_send(srv.addr, false), "listen --limit 4M");
    cr_expect_eq(gn_test_proc_wait(&srv, 5000, true), 0, "%s", srv.log);
}
