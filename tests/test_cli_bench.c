/*
 * `gnezdo bench` against real echo servers: `gnezdo listen --echo` over
 * TCP, Unix and TLS, in the echo and connection-rate modes, with --json
 * figures that add up; against a server written here that flips one
 * byte of the stream, or closes early, it counts an error and exits 1.
 * Its latency histogram (tools/histogram.c) is checked directly.  No
 * figure is asserted beyond "some messages came back": rates and
 * latencies belong to bench/run.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"
#include "histogram.h"

/* A short run: 0.1 s of warm-up, 0.4 s counted. */
#define SHORT "-t", "0.4", "-w", "0.1"

/* The number called name in one line of JSON; false when missing or null. */
static bool json_num(const char *json, const char *name, double *out)
{
    char key[64];
    const char *p;
    char *end;

    snprintf(key, sizeof(key), "\"%s\":", name);
    p = strstr(json, key);
    if (!p)
        return false;
    *out = strtod(p + strlen(key), &end);
    return end != p + strlen(key);
}

static double must_num(const struct gn_test_run *run, const char *name)
{
    double v = -1;

    cr_assert(json_num(run->out, name, &v), "no number \"%s\" in: %s (stderr: %s)", name, run->out,
              run->err);
    return v;
}

static void start_echo(struct gn_test_proc *s, const char *addr)
{
    char *argv[] = {GN_TEST_CLI, "listen", (char *)addr, "--echo", "--quiet", NULL};

    gn_test_spawn(s, argv, NULL, true);
}

/*
 * An echo server in Python that spoils one byte of all it echoes (the
 * byte at offset AT of the bytes received, over all connections): "flip"
 * echoes it with one bit changed, "close" echoes up to it and closes.
 */
static const char spoiler[] =
    "import socket, sys, threading\n"
    "mode, at = sys.argv[1], int(sys.argv[2])\n"
    "srv = socket.socket()\n"
    "srv.bind(('127.0.0.1', 0))\n"
    "srv.listen(64)\n"
    "print('listening on 127.0.0.1:%d' % srv.getsockname()[1],\n"
    "      file=sys.stderr, flush=True)\n"
    "lock = threading.Lock()\n"
    "seen = [0, False]\n"
    "def serve(c):\n"
    "    while True:\n"
    "        b = c.recv(65536)\n"
    "        if not b:\n"
    "            break\n"
    "        with lock:\n"
    "            start = seen[0]\n"
    "            seen[0] += len(b)\n"
    "            hit = not seen[1] and start <= at < start + len(b)\n"
    "            seen[1] = seen[1] or hit\n"
    "        if hit and mode == 'close':\n"
    "            c.sendall(b[:at - start])\n"
    "            c.shutdown(socket.SHUT_WR)\n"
    "            break\n"
    "        if hit:\n"
    "            b = bytearray(b)\n"
    "            b[at - start] ^= 0x20\n"
    "        c.sendall(bytes(b))\n"
    "    c.close()\n"
    "while True:\n"
    "    c, _ = srv.accept()\n"
    "    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n"
    "    threading.Thread(target=serve, args=(c,), daemon=True).start()\n";

static void start_spoiler(struct gn_test_proc *s, const char *mode)
{
    char *argv[] = {"/usr/bin/python3", "-c", (char *)spoiler, (char *)mode, "5000", NULL};

    gn_test_spawn(s, argv, NULL, true);
}

/* The checks every successful echo run passes: exit 0, no error, and
 * bytes that match the messages (up to what was in flight at the
 * window's edges). */
static void expect_clean_echo(const struct gn_test_run *run, double conns, double size,
                              double depth)
{
    double msgs, bytes, seconds;

    cr_expect_eq(run->status, 0, "stdout: %s stderr: %s", run->out, run->err);
    cr_expect_eq(must_num(run, "errors"), 0);
    cr_expect_eq(must_num(run, "corrupt"), 0);
    cr_expect_eq(must_num(run, "closed_early"), 0);
    msgs = must_num(run, "msgs");
    bytes = must_num(run, "bytes");
    seconds = must_num(run, "seconds");
    cr_expect_gt(msgs, 0);
    cr_expect_leq(fabs(bytes - msgs * size), conns * depth * size, "bytes %.0f, msgs %.0f x %.0f",
                  bytes, msgs, size);
    cr_expect_leq(fabs(must_num(run, "msgs_per_s") - msgs / seconds), 1 + msgs / seconds / 100);
    cr_expect_leq(fabs(must_num(run, "mb_per_s") - bytes / seconds / 1e6),
                  0.01 + bytes / seconds / 1e8);
    cr_expect_leq(must_num(run, "p50_us"), must_num(run, "p99_us"));
    cr_expect_leq(must_num(run, "p99_us"), must_num(run, "p999_us"));
    cr_expect_leq(must_num(run, "p999_us"), must_num(run, "max_us"));
    cr_expect_eq(must_num(run, "conns"), conns);
}

Test(cli_bench, echo_over_tcp_checks_every_byte_and_the_figures_add_up)
{
    struct gn_test_proc s;
    struct gn_test_run run;
    char pid[16];

    start_echo(&s, "127.0.0.1:0");
    snprintf(pid, sizeof(pid), "%d", (int)s.pid);
    cr_assert_eq(gn_test_cli(&run, "bench", s.addr, "-c", "4", "-s", "100", "-d", "3", SHORT,
                             "--pid", pid, "--json", NULL),
                 0);
    expect_clean_echo(&run, 4, 100, 3);
    cr_expect_eq(must_num(&run, "connections"), 4);
    cr_expect_eq(must_num(&run, "size"), 100);
    cr_expect_eq(must_num(&run, "depth"), 3);
    cr_expect_geq(must_num(&run, "cpu_self_pct"), 0);
    cr_expect_geq(must_num(&run, "cpu_server_pct"), 0, "the server's CPU with --pid");
    cr_expect_eq(must_num(&run, "server_pid"), s.pid);
    cr_expect(strstr(run.out, "\"mode\":\"echo\""), "%s", run.out);
    gn_test_run_free(&run);
    cr_expect_eq(gn_test_proc_wait(&s, 2000, true), 0);
}

Test(cli_bench, text_output_names_the_figures)
{
    struct gn_test_proc s;
    struct gn_test_run run;

    start_echo(&s, "127.0.0.1:0");
    cr_assert_eq(gn_test_cli(&run, "bench", s.addr, "-c", "2", "-s", "1k", SHORT, NULL), 0);
    cr_expect_eq(run.status, 0, "%s", run.err);
    cr_expect(strstr(run.out, "2 connections x 1024 B"), "%s", run.out);
    cr_expect(strstr(run.out, " msgs/s "), "%s", run.out);
    cr_expect(strstr(run.out, " MB/s"), "%s", run.out);
    cr_expect(strstr(run.out, "p99.9 "), "%s", run.out);
    cr_expect(strstr(run.out, "errors: 0 "), "%s", run.out);
    cr_expect(!strstr(run.err, "\033[K"), "no progress line in a pipe: %s", run.err);
    gn_test_run_free(&run);
    gn_test_proc_wait(&s, 2000, true);
}

Test(cli_bench, a_flipped_byte_is_an_error_and_exit_status_1)
{
    struct gn_test_proc s;
    struct gn_test_run run;

    start_spoiler(&s, "flip");
    cr_assert_eq(gn_test_cli(&run, "bench", s.addr, "-c", "2", SHORT, "--json", NULL), 0);
    cr_expect_eq(run.status, 1, "stdout: %s stderr: %s", run.out, run.err);
    cr_expect_eq(must_num(&run, "errors"), 1, "one connection saw the byte: %s", run.out);
    cr_expect_eq(must_num(&run, "corrupt"), 1);
    cr_expect(strstr(run.err, "came back as"), "%s", run.err);
    gn_test_run_free(&run);
    gn_test_proc_wait(&s, 2000, true);
}

Test(cli_bench, a_connection_closed_early_is_an_error)
{
    struct gn_test_proc s;
    struct gn_test_run run;

    start_spoiler(&s, "close");
    cr_assert_eq(gn_test_cli(&run, "bench", s.addr, "-c", "2", SHORT, "--json", NULL), 0);
    cr_expect_eq(run.status, 1, "stdout: %s stderr: %s", run.out, run.err);
    cr_expect_eq(must_num(&run, "errors"), 1, "%s", run.out);
    cr_expect_eq(must_num(&run, "closed_early"), 1);
    cr_expect_eq(must_num(&run, "corrupt"), 0);
    gn_test_run_free(&run);
    gn_test_proc_wait(&s, 2000, true);
}

static void expect_clean_rate(const char *addr, const char *mode)
{
    struct gn_test_run run;

    cr_assert_eq(
        gn_test_cli(&run, "bench", addr, "--conn-rate", mode, "-c", "4", SHORT, "--json", NULL), 0);
    cr_expect_eq(run.status, 0, "stdout: %s stderr: %s", run.out, run.err);
    cr_expect_eq(must_num(&run, "errors"), 0, "%s", run.err);
    cr_expect_gt(must_num(&run, "connections"), 0);
    cr_expect_eq(must_num(&run, "connections"), must_num(&run, "msgs"));
    cr_expect_eq(must_num(&run, "bytes"), 64 * must_num(&run, "msgs"));
    cr_expect_gt(must_num(&run, "conns_per_s"), 0);
    gn_test_run_free(&run);
}

Test(cli_bench, connection_rate_with_close_and_with_reset)
{
    struct gn_test_proc s;

    start_echo(&s, "127.0.0.1:0");
    expect_clean_rate(s.addr, "close");
    expect_clean_rate(s.addr, "reset");
    cr_expect_eq(gn_test_proc_wait(&s, 2000, true), 0);
}

Test(cli_bench, unix_addresses)
{
    char path[64], addr[80];
    struct gn_test_proc s;
    struct gn_test_run run;

    snprintf(path, sizeof(path), "/tmp/gn-bench-%d.sock", (int)getpid());
    snprintf(addr, sizeof(addr), "unix:%s", path);
    unlink(path);
    start_echo(&s, addr);
    cr_assert_eq(gn_test_cli(&run, "bench", addr, "-c", "3", "-s", "300", SHORT, "--json", NULL),
                 0);
    expect_clean_echo(&run, 3, 300, 1);
    gn_test_run_free(&run);
    expect_clean_rate(addr, "reset");
    gn_test_proc_wait(&s, 2000, true);
    unlink(path);
}

Test(cli_bench, tls_addresses_and_the_tls_flag)
{
    char cert[512], key[512], ca[512], plain[128];
    struct gn_test_proc s;
    struct gn_test_run run;

    gn_test_cert_path(cert, sizeof(cert), "server.pem");
    gn_test_cert_path(key, sizeof(key), "server.key");
    gn_test_cert_path(ca, sizeof(ca), "ca.pem");
    char *argv[] = {
        GN_TEST_CLI, "listen", "tls://127.0.0.1:0", "--echo", "--quiet", "--cert", cert, "--key",
        key,         NULL};
    gn_test_spawn(&s, argv, NULL, true);
    cr_assert(strncmp(s.addr, "tls://", 6) == 0, "%s", s.addr);
    cr_assert_eq(
        gn_test_cli(&run, "bench", s.addr, "--ca", ca, "-c", "2", "-d", "2", SHORT, "--json", NULL),
        0);
    expect_clean_echo(&run, 2, 64, 2);
    gn_test_run_free(&run);
    /* --tls on a bare HOST:PORT, and --insecure warned about once. */
    snprintf(plain, sizeof(plain), "%s", s.addr + 6);
    cr_assert_eq(gn_test_cli(&run, "bench", plain, "--tls", "--insecure", "--conn-rate", "close",
                             "-c", "2", SHORT, "--json", NULL),
                 0);
    cr_expect_eq(run.status, 0, "stdout: %s stderr: %s", run.out, run.err);
    cr_expect_gt(must_num(&run, "connections"), 0);
    cr_expect_eq(must_num(&run, "errors"), 0);
    cr_expect(strstr(run.out, "\"address\":\"tls://127.0.0.1:"), "%s", run.out);
    cr_expect(strstr(run.err, "insecure"), "%s", run.err);
    gn_test_run_free(&run);
    gn_test_proc_wait(&s, 2000, true);
}

Test(cli_bench, a_refused_connection_is_an_error)
{
    char addr[64];
    struct gn_test_run run;
    int fd = gn_test_raw_listener("", addr, sizeof(addr), 1);

    close(fd); /* nobody listens there now */
    cr_assert_eq(gn_test_cli(&run, "bench", addr, "-c", "2", SHORT, NULL), 0);
    cr_expect_eq(run.status, 1, "%s", run.err);
    cr_expect(strstr(run.err, "refused"), "%s", run.err);
    gn_test_run_free(&run);
}

Test(cli_bench, progress_line_on_a_terminal)
{
    struct gn_test_proc s;
    struct gn_test_run run;
    char cmd[512];

    start_echo(&s, "127.0.0.1:0");
    snprintf(cmd, sizeof(cmd), "%s bench %s -c 2 -t 1.5 -w 0", GN_TEST_CLI, s.addr);
    char *argv[] = {"/usr/bin/script", "-qefc", cmd, "/dev/null", NULL};
    cr_assert_eq(gn_test_run_argv(argv, NULL, 20000, &run), 0);
    cr_expect_eq(run.status, 0, "%s%s", run.out, run.err);
    /* A line a second, the first at 1 s: counting by then, unless the
     * two connections took that long on a busy machine. */
    cr_expect(strstr(run.out, "\r\033[Kmeasuring") || strstr(run.out, "\r\033[Kconnecting"), "%s",
              run.out);
    cr_expect(strstr(run.out, "msgs/s"), "%s", run.out);
    gn_test_run_free(&run);
    gn_test_proc_wait(&s, 2000, true);
}

Test(cli_bench, usage_errors_exit_2)
{
    static const char *const cases[][8] = {
        {"bench", NULL},
        {"bench", "127.0.0.1:9", "-c", "0", NULL},
        {"bench", "127.0.0.1:9", "-s", "big", NULL},
        {"bench", "127.0.0.1:9", "-t", "-1", NULL},
        {"bench", "127.0.0.1:9", "--conn-rate", "sometimes", NULL},
        {"bench", "127.0.0.1:9", "--conn-rate", "close", "-d", "2", NULL},
        {"bench", "udp://127.0.0.1:9", NULL},
        {"bench", "unix:/tmp/x", "--tls", NULL},
        {"bench", "127.0.0.1:9", "--insecure", NULL},
        {"bench", "127.0.0.1:9", "--frobnicate", NULL},
        {"bench", "127.0.0.1:9", "-c", NULL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *const *a = cases[i];
        struct gn_test_run run;

        cr_assert_eq(gn_test_cli(&run, a[0], a[1], a[2], a[3], a[4], a[5], a[6], NULL), 0);
        cr_expect_eq(run.status, 2, "case %zu: %s", i, run.err);
        cr_expect(strstr(run.err, "see 'gnezdo --help'"), "case %zu: %s", i, run.err);
        gn_test_run_free(&run);
    }
}

/* ---- the histogram --------------------------------------------------- */

Test(cli_bench, histogram_buckets_cover_every_value_without_a_gap)
{
    unsigned prev = 0;

    for (uint64_t v = 0; v < (1u << 20); v++) {
        unsigned b = hist_bucket_of(v);

        cr_assert(b == prev || b == prev + 1, "value %llu: bucket %u after %u",
                  (unsigned long long)v, b, prev);
        cr_assert_geq(hist_bucket_top(b), v);
        /* 1/128 of the value at most, above the 256 exact ones */
        cr_assert_leq(hist_bucket_top(b) - v, v / 128, "value %llu", (unsigned long long)v);
        prev = b;
    }
    cr_expect_eq(hist_bucket_of(UINT64_MAX), HIST_BUCKETS - 1);
    cr_expect_geq(hist_bucket_top(HIST_BUCKETS - 1), 60ull * 1000 * 1000, "60 s and more");
}

Test(cli_bench, histogram_quantiles)
{
    static struct histogram h;

    hist_reset(&h);
    cr_expect_eq(hist_quantile(&h, 0.5), 0, "empty");
    for (uint64_t v = 1; v <= 100000; v++)
        hist_record(&h, v);
    cr_expect_eq(h.count, 100000);
    cr_expect_eq(h.max_us, 100000);
    cr_expect_float_eq(hist_mean(&h), 50000.5, 1e-6);
    cr_expect_leq(fabs((double)hist_quantile(&h, 0.5) - 50000), 50000 / 128.0);
    cr_expect_leq(fabs((double)hist_quantile(&h, 0.99) - 99000), 99000 / 128.0);
    cr_expect_leq(fabs((double)hist_quantile(&h, 0.999) - 99900), 99900 / 128.0);
    cr_expect_eq(hist_quantile(&h, 1.0), 100000, "the maximum exactly");
    hist_reset(&h);
    hist_record(&h, 7);
    cr_expect_eq(hist_quantile(&h, 0.001), 7);
    cr_expect_eq(hist_quantile(&h, 0.999), 7, "small values are exact");
}
