/*
 * The CLI's network commands against real peers: socat, nc and a Python
 * client talk to `gnezdo listen --echo`; `gnezdo connect` talks to a socat
 * server, half-closing when its stdin ends; listen logs both endpoints of
 * every connection and exits 0 on SIGTERM.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

/* `gnezdo listen 127.0.0.1:0 MODE` in the background. */
static void start_listen(struct gn_test_proc *s, const char *mode)
{
    char *argv[] = {GN_TEST_CLI, "listen", "127.0.0.1:0", (char *)mode, NULL};

    gn_test_spawn(s, argv, NULL, true);
}

/* SIGTERM, then its exit code. */
static int stop_listen(struct gn_test_proc *s)
{
    return gn_test_proc_wait(s, 2000, true);
}

static const char *port_of(const struct gn_test_proc *s)
{
    return strrchr(s->addr, ':') + 1;
}

Test(cli_net, socat_gets_its_bytes_echoed_by_listen_echo)
{
    struct gn_test_run run;
    struct gn_test_proc s;
    char target[160];

    start_listen(&s, "--echo");
    snprintf(target, sizeof(target), "TCP:%s", s.addr);
    char *argv[] = {"/usr/bin/socat", "-t", "5", "-", target, NULL};
    cr_assert_eq(gn_test_run_argv(argv, "hello from socat\n", 10000, &run), 0);
    cr_expect_eq(run.status, 0, "%s", run.err);
    cr_expect_str_eq(run.out, "hello from socat\n");
    gn_test_run_free(&run);
    gn_test_proc_read(&s, 200);
    cr_expect(strstr(s.log, "connect    127.0.0.1:"), "%s", s.log);
    cr_expect(strstr(s.log, "-> 127.0.0.1:"), "both endpoints logged: %s", s.log);
    cr_expect(strstr(s.log, "disconnect 127.0.0.1:"), "%s", s.log);
    cr_expect_eq(stop_listen(&s), 0, "exit 0 on SIGTERM");
}

Test(cli_net, listen_quiet_echoes_without_a_line_per_client)
{
    char *listen[] = {GN_TEST_CLI, "listen", "127.0.0.1:0", "--echo", "--quiet", NULL};
    struct gn_test_run run;
    struct gn_test_proc s;

    gn_test_spawn(&s, listen, NULL, true);
    for (int i = 0; i < 3; i++) {
        char *argv[] = {"/bin/nc", "-N", "-w", "5", "127.0.0.1", (char *)port_of(&s), NULL};
        cr_assert_eq(gn_test_run_argv(argv, "quiet\n", 10000, &run), 0);
        cr_expect_str_eq(run.out, "quiet\n", "%s", run.err);
        gn_test_run_free(&run);
    }
    gn_test_proc_read(&s, 200);
    cr_expect(!strstr(s.log, "connect"), "no per-client line: %s", s.log);
    cr_expect_eq(stop_listen(&s), 0);
}

Test(cli_net, nc_gets_its_bytes_echoed)
{
    struct gn_test_run run;
    struct gn_test_proc s;

    start_listen(&s, "--echo");
    char *argv[] = {"/bin/nc", "-N", "-w", "5", "127.0.0.1", (char *)port_of(&s), NULL};
    cr_assert_eq(gn_test_run_argv(argv, "hello from nc\n", 10000, &run), 0);
    cr_expect_str_eq(run.out, "hello from nc\n", "%s", run.err);
    gn_test_run_free(&run);
    cr_expect_eq(stop_listen(&s), 0);
}

Test(cli_net, python_client_sends_a_megabyte_through_echo_intact)
{
    struct gn_test_run run;
    struct gn_test_proc s;

    start_listen(&s, "--echo");
    char *argv[] = {"/usr/bin/python3", "-c",
                    "import os,socket,sys\n"
                    "host,port=sys.argv[1].rsplit(':',1)\n"
                    "data=os.urandom(1<<20)\n"
                    "c=socket.create_connection((host,int(port)),timeout=10)\n"
                    "c.sendall(data); c.shutdown(socket.SHUT_WR)\n"
                    "got=bytearray()\n"
                    "while True:\n"
                    "    b=c.recv(65536)\n"
                    "    if not b: break\n"
                    "    got+=b\n"
                    "assert bytes(got)==data, (len(got), len(data))\n"
                    "print('ok', len(got))\n",
                    s.addr, NULL};
    cr_assert_eq(gn_test_run_argv(argv, NULL, 20000, &run), 0);
    cr_expect_eq(run.status, 0, "%s", run.err);
    cr_expect_str_eq(run.out, "ok 1048576\n");
    gn_test_run_free(&run);
    cr_expect_eq(stop_listen(&s), 0);
}

Test(cli_net, chat_relays_a_line_to_the_other_client_with_its_sender)
{
    struct gn_test_run run;
    struct gn_test_proc s;

    start_listen(&s, "--chat");
    char *argv[] = {"/usr/bin/python3", "-c",
                    "import socket,sys,time\n"
                    "host,port=sys.argv[1].rsplit(':',1)\n"
                    "a=socket.create_connection((host,int(port)),timeout=5)\n"
                    "b=socket.create_connection((host,int(port)),timeout=5)\n"
                    "time.sleep(0.2)\n"
                    "a.sendall(b'hi all\\n')\n"
                    "line=b''\n"
                    "while not line.endswith(b'\\n'):\n" /* TCP may cut it anywhere */
                    "    piece=b.recv(1024)\n"
                    "    assert piece, line\n"
                    "    line+=piece\n"
                    "line=line.decode()\n"
                    "me='%s:%d' % a.getsockname()\n"
                    "assert line==me+': hi all\\n', (line, me)\n"
                    "a.settimeout(0.3)\n"
                    "try:\n"
                    "    echo=a.recv(1024)\n"
                    "except socket.timeout:\n"
                    "    echo=b''\n"
                    "assert echo==b'', echo\n"
                    "print('ok')\n",
                    s.addr, NULL};
    cr_assert_eq(gn_test_run_argv(argv, NULL, 20000, &run), 0);
    cr_expect_eq(run.status, 0, "%s", run.err);
    gn_test_run_free(&run);
    cr_expect_eq(stop_listen(&s), 0);
}

Test(cli_net, connect_talks_to_a_socat_server_and_half_closes_at_eof)
{
    struct gn_test_run run;
    char listen_spec[96], target[64];
    int port = gn_test_free_port(), status;
    pid_t socat;

    /* The server upper-cases until EOF: it can only answer after our
     * half-close, and closes after answering, which ends gnezdo connect. */
    snprintf(listen_spec, sizeof(listen_spec), "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr", port);
    socat = fork();
    cr_assert_geq(socat, 0);
    if (socat == 0) {
        execl("/usr/bin/socat", "socat", listen_spec, "SYSTEM:tr a-z A-Z", (char *)NULL);
        _exit(127);
    }
    usleep(300000);
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    char *argv[] = {GN_TEST_CLI, "connect", target, NULL};
    cr_assert_eq(gn_test_run_argv(argv, "hello socat\n", 10000, &run), 0);
    cr_expect_eq(run.status, 0, "%s", run.err);
    cr_expect_str_eq(run.out, "HELLO SOCAT\n", "%s", run.err);
    gn_test_run_free(&run);
    kill(socat, SIGTERM);
    waitpid(socat, &status, 0);
}

Test(cli_net, connect_to_a_refused_port_exits_1_and_bad_addresses_exit_2)
{
    struct gn_test_run run;
    char target[64], want[128];

    snprintf(target, sizeof(target), "127.0.0.1:%d", gn_test_free_port());
    char *argv[] = {GN_TEST_CLI, "connect", target, NULL};
    cr_assert_eq(gn_test_run_argv(argv, NULL, 10000, &run), 0);
    cr_expect_eq(run.status, 1);
    snprintf(want, sizeof(want), "gnezdo: connect to %s: connection refused\n", target);
    cr_expect_str_eq(run.err, want, "the address once");
    gn_test_run_free(&run);
    char *bad[] = {GN_TEST_CLI, "connect", "127.0.0.1:99999", NULL};
    cr_assert_eq(gn_test_run_argv(bad, NULL, 10000, &run), 0);
    cr_expect_eq(run.status, 2);
    gn_test_run_free(&run);
    char *bad_listen[] = {GN_TEST_CLI, "listen", "1.2.3:80", NULL};
    cr_assert_eq(gn_test_run_argv(bad_listen, NULL, 10000, &run), 0);
    cr_expect_eq(run.status, 2);
    cr_expect(strstr(run.err, "'1.2.3:80'"), "%s", run.err);
    gn_test_run_free(&run);
}

/* A chat member that never reads is dropped once 1 MiB of chat waits for
 * it; the server's memory stays bounded and the others carry on. */
Test(cli_net, chat_drops_a_member_that_never_reads, .timeout = 30)
{
    static const char script[] = "import socket, sys, time\n"
                                 "host, port = sys.argv[1].rsplit(':', 1)\n"
                                 "lazy = socket.create_connection((host, int(port)))\n"
                                 "reader = socket.create_connection((host, int(port)))\n"
                                 "talker = socket.create_connection((host, int(port)))\n"
                                 "time.sleep(0.2)\n"
                                 "lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)\n"
                                 "line = b'x' * 1000 + b'\\n'\n"
                                 "got = 0\n"
                                 "reader.setblocking(False)\n"
                                 "for i in range(6000):\n"
                                 "    talker.sendall(line)\n"
                                 "    try:\n"
                                 "        while True:\n"
                                 "            d = reader.recv(1 << 20)\n"
                                 "            if not d: break\n"
                                 "            got += len(d)\n"
                                 "    except BlockingIOError:\n"
                                 "        pass\n"
                                 "talker.close()\n"
                                 "reader.setblocking(True); reader.settimeout(3)\n"
                                 "try:\n"
                                 "    while True:\n"
                                 "        d = reader.recv(1 << 20)\n"
                                 "        if not d: break\n"
                                 "        got += len(d)\n"
                                 "except socket.timeout:\n"
                                 "    pass\n"
                                 "print('reader bytes', got)\n"
                                 "print('reader complete', got >= 6000 * 1001)\n";
    struct gn_test_run run;
    struct gn_test_proc s;
    char status[64];
    long rss_kb = 0;
    FILE *f;

    start_listen(&s, "--chat");
    char *argv[] = {"/usr/bin/python3", "-c", (char *)script, s.addr, NULL};
    cr_assert_eq(gn_test_run_argv(argv, NULL, 25000, &run), 0);
    cr_expect_eq(run.status, 0, "%s", run.err);
    cr_expect(strstr(run.out, "reader complete True"), "the reading member got every line: %s",
              run.out);
    gn_test_run_free(&run);
    snprintf(status, sizeof(status), "/proc/%d/status", (int)s.pid);
    f = fopen(status, "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "VmRSS: %ld", &rss_kb) == 1)
                break;
        fclose(f);
    }
    cr_expect_lt(rss_kb, 64 * 1024, "server memory bounded: %ld kB", rss_kb);
    gn_test_proc_read(&s, 200);
    cr_expect(strstr(s.log, "dropped    127.0.0.1:"), "the lazy member is dropped: %s", s.log);
    cr_expect_eq(stop_listen(&s), 0);
}

/* `listen --chat --loops 2`: the members are spread over two loops and a
 * line reaches each other member, wherever it is served; SIGTERM with
 * every member still connected closes them and exits 0. */
Test(cli_net, chat_on_two_loops_relays_to_members_on_both, .timeout = 30)
{
    char *listen[] = {GN_TEST_CLI, "listen", "127.0.0.1:0", "--chat", "--loops", "2", NULL};
    struct gn_test_proc s;
    struct gn_test_run run;

    gn_test_spawn(&s, listen, NULL, true);
    char *argv[] = {"/usr/bin/python3", "-c",
                    "import socket,sys,time\n"
                    "host,port=sys.argv[1].rsplit(':',1)\n"
                    "m=[socket.create_connection((host,int(port)),timeout=5) for i in range(4)]\n"
                    "time.sleep(0.3)\n"
                    "m[0].sendall(b'hi all\\n')\n"
                    "me='%s:%d' % m[0].getsockname()\n"
                    "for b in m[1:]:\n"
                    "    line=b''\n"
                    "    while not line.endswith(b'\\n'):\n"
                    "        piece=b.recv(1024)\n"
                    "        assert piece, line\n"
                    "        line+=piece\n"
                    "    assert line.decode()==me+': hi all\\n', line\n"
                    "print('ok', flush=True)\n"
                    "sys.stdin.read()\n", /* members stay until stdin ends */
                    s.addr, NULL};
    struct gn_test_proc py;
    char out_path[] = "/tmp/gnezdo-loops-chat-XXXXXX";
    int out_fd = mkstemp(out_path);
    char out[64] = "";

    cr_assert_geq(out_fd, 0);
    gn_test_spawn(&py, argv, out_path, false);
    for (int i = 0; i < 100 && strstr(out, "ok") == NULL; i++) {
        usleep(50000);
        ssize_t n = pread(out_fd, out, sizeof(out) - 1, 0);
        out[n > 0 ? n : 0] = '\0';
    }
    cr_expect(strstr(out, "ok") != NULL, "every member got the line: %s", py.log);
    cr_expect_eq(stop_listen(&s), 0, "SIGTERM with members on both loops: exit 0");
    gn_test_proc_wait(&py, 2000, true);
    close(out_fd);
    unlink(out_path);
    cr_assert_eq(gn_test_cli(&run, "listen", "127.0.0.1:0", "--loops", "0", NULL), 0);
    cr_expect_eq(run.status, 2);
    cr_expect(strstr(run.err, "--loops '0' is not a count from 1 to 256"), "%s", run.err);
    gn_test_run_free(&run);
    cr_assert_eq(gn_test_cli(&run, "listen", "127.0.0.1:0", "--loops", "2", "--threads", "2", NULL),
                 0);
    cr_expect_eq(run.status, 2);
    cr_expect(strstr(run.err, "choose one"), "%s", run.err);
    gn_test_run_free(&run);
}
