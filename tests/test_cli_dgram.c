/*
 * The CLI with datagram addresses: `gnezdo listen udp://... --echo`
 * answers a Python UDP client and socat datagram for datagram, logs each
 * sender and size, prints payloads in the default mode, exits 0 on
 * SIGTERM and SIGINT; `gnezdo connect udp://...` sends stdin lines as
 * datagrams and prints the replies; unixgram works the same way; stream
 * options with a datagram address are usage errors.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

/* `gnezdo listen ADDR MODE` in the background; its address in s->addr. */
static void start_listen(struct gn_test_proc *s, const char *addr, const char *mode,
                         const char *out_path)
{
    char *argv[] = {GN_TEST_CLI, "listen", (char *)addr, (char *)mode, NULL};

    gn_test_spawn(s, argv, out_path, true);
}

/* "udp://127.0.0.1:4000" -> "127.0.0.1:4000" */
static const char *host_port(const struct gn_test_proc *s)
{
    const char *p = strstr(s->addr, "://");

    return p ? p + 3 : s->addr;
}

static const char *port_of(const struct gn_test_proc *s)
{
    return strrchr(s->addr, ':') + 1;
}

Test(cli_dgram, python_udp_client_gets_every_datagram_echoed_whole, .timeout = 20)
{
    static const char script[] = "import socket, sys\n"
                                 "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                                 "s.settimeout(5)\n"
                                 "for n in (1, 100, 1472, 1473, 8192, 65507):\n"
                                 "    data = bytes((i * 7 + n) & 255 for i in range(n))\n"
                                 "    s.sendto(data, ('127.0.0.1', int(sys.argv[1])))\n"
                                 "    back, peer = s.recvfrom(70000)\n"
                                 "    assert back == data, (n, len(back))\n"
                                 "print('ok')\n";
    struct gn_test_run run;
    struct gn_test_proc s;

    start_listen(&s, "udp://127.0.0.1:0", "--echo", NULL);
    cr_assert(strncmp(s.addr, "udp://127.0.0.1:", 16) == 0, "%s", s.addr);
    char *argv[] = {"/usr/bin/python3", "-c", (char *)script, (char *)port_of(&s), NULL};
    cr_assert_eq(gn_test_run_argv(argv, NULL, 15000, &run), 0);
    cr_expect_eq(run.status, 0, "%s", run.err);
    cr_expect_str_eq(run.out, "ok\n", "%s", run.err);
    gn_test_run_free(&run);
    gn_test_proc_read(&s, 200);
    cr_expect(strstr(s.log, "datagram from udp://127.0.0.1:"), "%s", s.log);
    cr_expect(strstr(s.log, ": 65507 bytes"), "%s", s.log);
    cr_expect_eq(gn_test_proc_wait(&s, 2000, true), 0, "exit 0 on SIGTERM");
}

Test(cli_dgram, socat_gets_its_datagram_echoed, .timeout = 20)
{
    struct gn_test_run run;
    struct gn_test_proc s;
    char target[160];

    start_listen(&s, "udp://127.0.0.1:0", "--echo", NULL);
    snprintf(target, sizeof(target), "UDP:%s", host_port(&s));
    char *argv[] = {"/usr/bin/socat", "-t", "1", "-", target, NULL};
    cr_assert_eq(gn_test_run_argv(argv, "hello from socat\n", 10000, &run), 0);
    cr_expect_eq(run.status, 0, "%s", run.err);
    cr_expect_str_eq(run.out, "hello from socat\n");
    gn_test_run_free(&run);
    gn_test_proc_read(&s, 200);
    cr_expect(strstr(s.log, ": 17 bytes"), "%s", s.log);
    cr_expect_eq(gn_test_proc_wait(&s, 2000, true), 0);
}

Test(cli_dgram, connect_sends_lines_as_datagrams_and_prints_the_echo, .timeout = 20)
{
    struct gn_test_run run;
    struct gn_test_proc s;

    start_listen(&s, "udp://127.0.0.1:0", "--echo", NULL);
    cr_assert_eq(gn_test_cli(&run, "connect", s.addr, NULL), 0);
    gn_test_run_free(&run); /* stdin empty: nothing sent, still exit 0 */
    char *argv[] = {GN_TEST_CLI, "connect", s.addr, NULL};
    cr_assert_eq(gn_test_run_argv(argv, "one\ntwo\nthree", 10000, &run), 0);
    cr_expect_eq(run.status, 0, "%s", run.err);
    cr_expect_str_eq(run.out, "one\ntwo\nthree", "%s", run.err);
    gn_test_run_free(&run);
    gn_test_proc_read(&s, 200);
    cr_expect(strstr(s.log, ": 4 bytes"), "%s", s.log);
    cr_expect(strstr(s.log, ": 5 bytes"), "the last line, without newline: %s", s.log);
    cr_expect_eq(gn_test_proc_wait(&s, 2000, true), 0);
}

Test(cli_dgram, listen_prints_payloads_and_exits_0_on_sigint, .timeout = 20)
{
    char out_path[64], text[256] = "";
    struct gn_test_run run;
    struct gn_test_proc s;
    FILE *f;

    snprintf(out_path, sizeof(out_path), "/tmp/gn-test-cli-dgram-%d.out", (int)getpid());
    start_listen(&s, "udp://127.0.0.1:0", NULL, out_path);
    char *argv[] = {GN_TEST_CLI, "connect", s.addr, NULL};
    cr_assert_eq(gn_test_run_argv(argv, "alpha\nbeta\n", 10000, &run), 0);
    cr_expect_eq(run.status, 0, "%s", run.err);
    gn_test_run_free(&run);
    gn_test_proc_read(&s, 200);
    kill(s.pid, SIGINT);
    cr_expect_eq(gn_test_proc_wait(&s, 2000, false), 0, "exit 0 on SIGINT: %s", s.log);
    f = fopen(out_path, "r");
    cr_assert_not_null(f);
    text[fread(text, 1, sizeof(text) - 1, f)] = '\0';
    fclose(f);
    unlink(out_path);
    cr_expect_str_eq(text, "alpha\nbeta\n");
}

Test(cli_dgram, unixgram_listen_and_connect_talk, .timeout = 20)
{
    char addr[80];
    struct gn_test_run run;
    struct gn_test_proc s;

    snprintf(addr, sizeof(addr), "unixgram:@gn-test-cli-dgram-%d", (int)getpid());
    start_listen(&s, addr, "--echo", NULL);
    cr_expect_str_eq(s.addr, addr);
    char *argv[] = {GN_TEST_CLI, "connect", addr, NULL};
    cr_assert_eq(gn_test_run_argv(argv, "over unixgram\n", 10000, &run), 0);
    cr_expect_eq(run.status, 0, "%s", run.err);
    cr_expect_str_eq(run.out, "over unixgram\n", "%s", run.err);
    gn_test_run_free(&run);
    cr_expect_eq(gn_test_proc_wait(&s, 2000, true), 0);
}

Test(cli_dgram, stream_options_and_bad_addresses_are_usage_errors, .timeout = 20)
{
    struct gn_test_run run;

    cr_assert_eq(gn_test_cli(&run, "listen", "udp://127.0.0.1:0", "--chat", NULL), 0);
    cr_expect_eq(run.status, 2);
    cr_expect(strstr(run.err, "--chat"), "%s", run.err);
    gn_test_run_free(&run);
    cr_assert_eq(gn_test_cli(&run, "listen", "udp://127.0.0.1:0", "--threads", "2", NULL), 0);
    cr_expect_eq(run.status, 2, "%s", run.err);
    gn_test_run_free(&run);
    cr_assert_eq(gn_test_cli(&run, "connect", "udp://127.0.0.1:99999", NULL), 0);
    cr_expect_eq(run.status, 2, "%s", run.err);
    cr_expect(strstr(run.err, "99999"), "%s", run.err);
    gn_test_run_free(&run);
    cr_assert_eq(gn_test_cli(&run, "connect", "unixgram:/nonexistent/gn.sock", NULL), 0);
    cr_expect_eq(run.status, 1, "a runtime failure: %s", run.err);
    cr_expect(strstr(run.err, "/nonexistent/gn.sock"), "%s", run.err);
    gn_test_run_free(&run);
}

Test(cli_dgram, a_busy_port_fails_with_status_1, .timeout = 20)
{
    struct gn_test_run run;
    struct gn_test_proc s;

    start_listen(&s, "udp://127.0.0.1:0", "--discard", NULL);
    cr_assert_eq(gn_test_cli(&run, "listen", s.addr, NULL), 0);
    cr_expect_eq(run.status, 1);
    cr_expect(strstr(run.err, "address already in use"), "%s", run.err);
    gn_test_run_free(&run);
    cr_expect_eq(gn_test_proc_wait(&s, 2000, true), 0);
}

/* A forged or misdirected source (a service port, or the server's own
 * port) would start an endless echo loop: such datagrams are not echoed,
 * while an ordinary client still is. */
Test(cli_dgram, echo_refuses_service_ports_that_would_loop, .timeout = 20)
{
    static const char script[] = "import socket, sys\n"
                                 "port = int(sys.argv[1])\n"
                                 "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                                 "try:\n"
                                 "    s.bind(('127.0.0.1', 19))\n"
                                 "except PermissionError:\n"
                                 "    print('skip'); sys.exit(0)\n"
                                 "s.settimeout(0.5)\n"
                                 "s.sendto(b'chargen?', ('127.0.0.1', port))\n"
                                 "try:\n"
                                 "    s.recvfrom(100); print('echoed')\n"
                                 "except socket.timeout:\n"
                                 "    print('silent')\n"
                                 "c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                                 "c.settimeout(5)\n"
                                 "c.sendto(b'client', ('127.0.0.1', port))\n"
                                 "print(c.recvfrom(100)[0].decode())\n";
    struct gn_test_run run;
    struct gn_test_proc s;

    start_listen(&s, "udp://127.0.0.1:0", "--echo", NULL);
    char *argv[] = {"/usr/bin/python3", "-c", (char *)script, (char *)port_of(&s), NULL};
    cr_assert_eq(gn_test_run_argv(argv, NULL, 15000, &run), 0);
    cr_expect_eq(run.status, 0, "%s", run.err);
    if (strcmp(run.out, "skip\n") == 0) {
        gn_test_run_free(&run);
        gn_test_proc_wait(&s, 3000, true);
        cr_skip("binding port 19 needs root");
    }
    cr_expect_str_eq(run.out, "silent\nclient\n");
    gn_test_run_free(&run);
    cr_expect_eq(gn_test_proc_wait(&s, 3000, true), 0);
    cr_expect(strstr(s.log, "not echoed to udp://127.0.0.1:19: a service port"), "%s", s.log);
}
