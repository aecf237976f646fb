/*
 * The CLI's blocking-mode commands against real peers: a 256 MiB file
 * through `gnezdo send` and `gnezdo recv` byte for byte with matching
 * SHA-256, each of them against nc or socat on the other side, the
 * progress bar drawn under a pseudo-terminal (script) and absent in a
 * pipe, `listen --threads` with `connect --sync`, and usage errors.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

#define BIG_SIZE (256u << 20)

struct files {
    char in[64], out[64];
};

/* A file of size pseudo-random bytes (fast xorshift: the content only
 * has to be unlikely to survive a bug unchanged). */
static void make_file(char *path, size_t size)
{
    uint64_t x = 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
    static uint64_t block[1 << 16];
    int fd = mkstemp(path);

    cr_assert_geq(fd, 0);
    for (size_t done = 0; done < size; done += sizeof(block)) {
        for (size_t i = 0; i < sizeof(block) / 8; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            block[i] = x;
        }
        size_t n = size - done < sizeof(block) ? size - done : sizeof(block);
        cr_assert_eq(write(fd, block, n), (ssize_t)n);
    }
    close(fd);
}

static void files_init(struct files *f, size_t size)
{
    snprintf(f->in, sizeof(f->in), "/tmp/gn_cli_sync_in_XXXXXX");
    snprintf(f->out, sizeof(f->out), "/tmp/gn_cli_sync_out_%d", (int)getpid());
    make_file(f->in, size);
}

static void files_free(struct files *f)
{
    unlink(f->in);
    unlink(f->out);
}

static bool same_content(const char *a, const char *b)
{
    int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
    struct stat sa, sb;
    bool same = false;

    if (fa >= 0 && fb >= 0 && fstat(fa, &sa) == 0 && fstat(fb, &sb) == 0 &&
        sa.st_size == sb.st_size) {
        void *ma = mmap(NULL, (size_t)sa.st_size, PROT_READ, MAP_PRIVATE, fa, 0);
        void *mb = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fb, 0);
        same = ma != MAP_FAILED && mb != MAP_FAILED && memcmp(ma, mb, (size_t)sa.st_size) == 0;
        munmap(ma, (size_t)sa.st_size);
        munmap(mb, (size_t)sb.st_size);
    }
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    return same;
}

/* The hex digest after "sha256 " in text, or "" */
static void sha_of_log(const char *text, char *hex)
{
    const char *s = strstr(text, "sha256 ");

    hex[0] = '\0';
    if (s)
        sscanf(s + 7, "%64[0-9a-f]", hex);
}

/* sha256sum's digest of path. */
static void sha_of_file(const char *path, char *hex)
{
    struct gn_test_run run;
    char *argv[] = {"/usr/bin/sha256sum", (char *)path, NULL};

    cr_assert_eq(gn_test_run_argv(argv, NULL, 30000, &run), 0);
    sscanf(run.out, "%64[0-9a-f]", hex);
    gn_test_run_free(&run);
}

static const char *port_of(const char *addr)
{
    return strrchr(addr, ':') + 1;
}

Test(cli_sync, send_and_recv_move_256_mib_with_matching_sha256, .timeout = 120)
{
    char sent_hex[65], recv_hex[65], file_hex[65];
    struct gn_test_run run;
    struct gn_test_proc recv;
    struct files f;

    files_init(&f, BIG_SIZE);
    char *recv_argv[] = {GN_TEST_CLI, "recv", "127.0.0.1:0", f.out, NULL};
    gn_test_spawn(&recv, recv_argv, NULL, true);
    cr_assert_eq(gn_test_cli(&run, "send", f.in, recv.addr, NULL), 0);
    cr_expect_eq(run.status, 0, "%s", run.err);
    cr_expect(strstr(run.err, "sent 268435456 bytes in "), "%s", run.err);
    cr_expect_null(strchr(run.err, '\r'), "no progress bar in a pipe");
    sha_of_log(run.err, sent_hex);
    gn_test_run_free(&run);
    cr_expect_eq(gn_test_proc_wait(&recv, 20000, false), 0, "%s", recv.log);
    cr_expect(strstr(recv.log, "received 268435456 bytes in "), "%s", recv.log);
    sha_of_log(recv.log, recv_hex);
    sha_of_file(f.in, file_hex);
    cr_expect_eq(strlen(file_hex), 64);
    cr_expect_str_eq(sent_hex, file_hex);
    cr_expect_str_eq(recv_hex, file_hex);
    cr_expect(same_content(f.in, f.out), "the received file differs");
    files_free(&f);
}

Test(cli_sync, recv_takes_a_file_from_nc)
{
    char recv_hex[65], file_hex[65];
    struct gn_test_proc recv, nc;
    struct files f;
    int in;

    files_init(&f, 8u << 20);
    char *recv_argv[] = {GN_TEST_CLI, "recv", "127.0.0.1:0", f.out, NULL};
    gn_test_spawn(&recv, recv_argv, NULL, true);
    /* nc reads the file from stdin: -N shuts the socket down at its end */
    char *nc_argv[] = {
        "/bin/sh", "-c", "exec nc -N 127.0.0.1 \"$0\" < \"$1\"", (char *)port_of(recv.addr),
        f.in,      NULL};
    gn_test_spawn(&nc, nc_argv, NULL, false);
    cr_expect_eq(gn_test_proc_wait(&recv, 20000, false), 0, "%s", recv.log);
    cr_expect_eq(gn_test_proc_wait(&nc, 5000, false), 0, "%s", nc.log);
    sha_of_log(recv.log, recv_hex);
    sha_of_file(f.in, file_hex);
    cr_expect_str_eq(recv_hex, file_hex);
    cr_expect(same_content(f.in, f.out));
    in = open(f.out, O_RDONLY);
    cr_expect_geq(in, 0);
    close(in);
    files_free(&f);
}

Test(cli_sync, send_to_a_socat_receiver)
{
    char target[96], create[96];
    struct gn_test_run run;
    struct gn_test_proc lsn, socat;
    struct files f;

    files_init(&f, 8u << 20);
    /* A free port: gnezdo listen finds one and is stopped again. */
    char *lsn_argv[] = {GN_TEST_CLI, "listen", "127.0.0.1:0", "--discard", NULL};
    gn_test_spawn(&lsn, lsn_argv, NULL, true);
    gn_test_proc_wait(&lsn, 5000, true);
    snprintf(target, sizeof(target), "TCP-LISTEN:%s,bind=127.0.0.1,reuseaddr", port_of(lsn.addr));
    snprintf(create, sizeof(create), "CREATE:%s", f.out);
    char *socat_argv[] = {"/usr/bin/socat", "-u", target, create, NULL};
    gn_test_spawn(&socat, socat_argv, NULL, false);
    /* Until socat listens, send is refused (which costs socat nothing). */
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(gn_test_cli(&run, "send", "--quiet", f.in, lsn.addr, NULL), 0);
        if (run.status != 1 || !strstr(run.err, "refused"))
            break;
        gn_test_run_free(&run);
        usleep(20000);
    }
    cr_expect_eq(run.status, 0, "%s", run.err);
    cr_expect_str_eq(run.err, "", "--quiet prints nothing");
    gn_test_run_free(&run);
    cr_expect_eq(gn_test_proc_wait(&socat, 10000, false), 0, "%s", socat.log);
    cr_expect(same_content(f.in, f.out));
    files_free(&f);
}

Test(cli_sync, progress_bar_under_a_terminal)
{
    char cmd[256];
    struct gn_test_run run;
    struct gn_test_proc recv;
    struct files f;

    files_init(&f, 64u << 20);
    char *recv_argv[] = {GN_TEST_CLI, "recv", "127.0.0.1:0", "/dev/null", NULL};
    gn_test_spawn(&recv, recv_argv, NULL, true);
    snprintf(cmd, sizeof(cmd), "%s send %s %s", GN_TEST_CLI, f.in, recv.addr);
    /* script runs the command on a pseudo-terminal: stderr is a tty */
    char *argv[] = {"/usr/bin/script", "-qefc", cmd, "/dev/null", NULL};
    cr_assert_eq(gn_test_run_argv(argv, NULL, 30000, &run), 0);
    cr_expect_eq(run.status, 0, "%s%s", run.out, run.err);
    cr_expect(strstr(run.out, "\rsent ["), "a bar redrawn in place: %s", run.out);
    cr_expect(strstr(run.out, "100%"), "%s", run.out);
    cr_expect(strstr(run.out, "ETA"), "%s", run.out);
    cr_expect(strstr(run.out, "iB/s"), "%s", run.out);
    cr_expect(strstr(run.out, "sha256 "), "%s", run.out);
    gn_test_run_free(&run);
    cr_expect_eq(gn_test_proc_wait(&recv, 10000, false), 0, "%s", recv.log);
    cr_expect_null(strchr(recv.log, '\r'), "recv's stderr is a pipe: no bar");
    files_free(&f);
}

Test(cli_sync, threaded_listen_echoes_to_connect_sync)
{
    struct gn_test_run run;
    struct gn_test_proc srv;

    char *srv_argv[] = {GN_TEST_CLI, "listen", "127.0.0.1:0", "--threads", "4", "--echo", NULL};
    gn_test_spawn(&srv, srv_argv, NULL, true);
    cr_expect(strstr(srv.log, "(4 threads)"), "%s", srv.log);
    char *argv[] = {GN_TEST_CLI, "connect", "--sync", srv.addr, NULL};
    cr_assert_eq(gn_test_run_argv(argv, "one\ntwo\n", 10000, &run), 0);
    cr_expect_eq(run.status, 0, "%s", run.err);
    cr_expect_str_eq(run.out, "one\ntwo\n");
    cr_expect(strstr(run.err, "connected  "), "%s", run.err);
    gn_test_run_free(&run);
    /* nc too, against the threaded server */
    char *nc_argv[] = {"/bin/nc", "-N", "-w", "5", "127.0.0.1", (char *)port_of(srv.addr), NULL};
    cr_assert_eq(gn_test_run_argv(nc_argv, "from nc\n", 10000, &run), 0);
    cr_expect_str_eq(run.out, "from nc\n", "%s", run.err);
    gn_test_run_free(&run);
    cr_expect_eq(gn_test_proc_wait(&srv, 5000, true), 0, "exit 0 on SIGTERM: %s", srv.log);
    cr_expect(strstr(srv.log, "connect    127.0.0.1:"), "%s", srv.log);
    cr_expect(strstr(srv.log, "disconnect 127.0.0.1:"), "%s", srv.log);
}

Test(cli_sync, usage_and_runtime_errors)
{
    static const struct {
        const char *args[5];
        int status;
        const char *says;
    } cases[] = {
        {{"listen", "127.0.0.1:0", "--threads", "0"}, 2, "'0'"},
        {{"listen", "127.0.0.1:0", "--threads", "x"}, 2, "'x'"},
        {{"listen", "127.0.0.1:0", "--threads"}, 2, "--threads"},
        {{"listen", "127.0.0.1:0", "--threads", "2", "--chat"}, 2, "--chat"},
        {{"send", "/nonexistent/file", "127.0.0.1:9"}, 1, "/nonexistent/file"},
        {{"send", "/etc/hostname"}, 2, "FILE and ADDRESS"},
        {{"send", "/etc/hostname", "127.0.0.1:99999"}, 2, "99999"},
        {{"recv"}, 2, "ADDRESS"},
        {{"recv", "1.2.3:80"}, 2, "1.2.3:80"},
        {{"connect", "--sync", "256.1.1.1:80"}, 2, "256.1.1.1"},
        {{"send", "/tmp", "127.0.0.1:9"}, 1, "not a regular file"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gn_test_run run;
        char *argv[8] = {GN_TEST_CLI};
        int n = 1;

        for (int a = 0; a < 5 && cases[i].args[a]; a++)
            argv[n++] = (char *)cases[i].args[a];
        cr_assert_eq(gn_test_run_argv(argv, NULL, 10000, &run), 0);
        cr_expect_eq(run.status, cases[i].status, "%s %s: %d %s", cases[i].args[0],
                     cases[i].args[1], run.status, run.err);
        cr_expect(strstr(run.err, cases[i].says), "%s: %s", cases[i].args[0], run.err);
        gn_test_run_free(&run);
    }
}

Test(cli_sync, send_to_a_refused_port_fails_with_a_reason)
{
    char want[256];
    struct gn_test_run run;
    struct gn_test_proc lsn;
    struct files f;

    files_init(&f, 4096);
    char *lsn_argv[] = {GN_TEST_CLI, "listen", "127.0.0.1:0", NULL};
    gn_test_spawn(&lsn, lsn_argv, NULL, true);
    gn_test_proc_wait(&lsn, 5000, true); /* the port is free again */
    cr_assert_eq(gn_test_cli(&run, "send", f.in, lsn.addr, NULL), 0);
    cr_expect_eq(run.status, 1);
    snprintf(want, sizeof(want), "gnezdo: connect to %s: connection refused\n", lsn.addr);
    cr_expect_str_eq(run.err, want, "the address once");
    gn_test_run_free(&run);
    files_free(&f);
}

Test(cli_sync, no_hash_moves_the_file_and_says_the_digest_was_not_computed)
{
    struct gn_test_run run;
    struct gn_test_proc recv;
    struct files f;

    files_init(&f, 4u << 20);
    char *recv_argv[] = {GN_TEST_CLI, "recv", "127.0.0.1:0", f.out, "--no-hash", NULL};
    gn_test_spawn(&recv, recv_argv, NULL, true);
    cr_assert_eq(gn_test_cli(&run, "send", "--no-hash", f.in, recv.addr, NULL), 0);
    cr_expect_eq(run.status, 0, "%s", run.err);
    cr_expect(strstr(run.err, "sha256 (not computed: --no-hash)"), "%s", run.err);
    gn_test_run_free(&run);
    cr_expect_eq(gn_test_proc_wait(&recv, 10000, false), 0, "%s", recv.log);
    cr_expect(strstr(recv.log, "sha256 (not computed: --no-hash)"), "%s", recv.log);
    cr_expect(same_content(f.in, f.out));
    files_free(&f);
}

Test(cli_sync, recv_says_why_it_cannot_write_and_ignores_an_empty_probe)
{
    struct gn_test_run run;
    struct gn_test_proc recv;
    struct files f;
    int probe;

    files_init(&f, 100000);
    /* /dev/full: the worker's errno, not the main thread's, is reported */
    char *full_argv[] = {GN_TEST_CLI, "recv", "127.0.0.1:0", "/dev/full", NULL};
    gn_test_spawn(&recv, full_argv, NULL, true);
    cr_assert_eq(gn_test_cli(&run, "send", f.in, recv.addr, NULL), 0);
    gn_test_run_free(&run);
    cr_expect_eq(gn_test_proc_wait(&recv, 10000, false), 1, "%s", recv.log);
    cr_expect(strstr(recv.log, "No space left on device"), "%s", recv.log);

    /* a port probe that sends nothing is not the transfer */
    char *argv[] = {GN_TEST_CLI, "recv", "127.0.0.1:0", f.out, NULL};
    gn_test_spawn(&recv, argv, NULL, true);
    probe = gn_test_connect_fd(recv.addr);
    cr_assert_geq(probe, 0);
    close(probe);
    usleep(100000);
    cr_assert_eq(gn_test_cli(&run, "send", f.in, recv.addr, NULL), 0);
    cr_expect_eq(run.status, 0, "%s", run.err);
    gn_test_run_free(&run);
    cr_expect_eq(gn_test_proc_wait(&recv, 10000, false), 0, "%s", recv.log);
    cr_expect(strstr(recv.log, "sent nothing; still waiting for a sender"), "%s", recv.log);
    cr_expect(strstr(recv.log, "received 100000 bytes"), "%s", recv.log);
    cr_expect(same_content(f.in, f.out));
    files_free(&f);
}

Test(cli_sync, a_closed_output_pipe_is_an_error_not_a_silent_death)
{
    struct gn_test_run run;
    struct gn_test_proc recv;
    struct files f;
    char cmd[256];

    files_init(&f, 200000);
    snprintf(cmd, sizeof(cmd),
             "%s recv 127.0.0.1:0 - | head -c 10 >/dev/null; exit ${PIPESTATUS[0]}", GN_TEST_CLI);
    char *argv[] = {"/bin/bash", "-c", cmd, NULL};
    gn_test_spawn(&recv, argv, NULL, true);
    cr_assert_eq(gn_test_cli(&run, "send", f.in, recv.addr, NULL), 0);
    gn_test_run_free(&run);
    cr_expect_eq(gn_test_proc_wait(&recv, 10000, false), 1, "exit 1, not 141: %s", recv.log);
    cr_expect(strstr(recv.log, "Broken pipe"), "%s", recv.log);
    files_free(&f);
}

Test(cli_sync, flags_that_do_not_fit_are_usage_errors)
{
    static const struct {
        const char *args[7];
        const char *says;
    } cases[] = {
        {{"listen", "127.0.0.1:0", "--echo", "--discard"}, "choose one"},
        {{"listen", "127.0.0.1:0", "--threads", " 5"}, "' 5'"},
        {{"listen", "127.0.0.1:0", "--cert", "a.pem", "--key", "a.key"}, "tls://"},
        {{"connect", "127.0.0.1:9", "--insecure"}, "tls://"},
        {{"connect", "--sync", "127.0.0.1:9", "--ca", "x"}, "tls://"},
        {{"listen", "tls://127.0.0.1:0", "--echo"}, "needs --cert FILE and --key FILE"},
        {{"recv", "tls://127.0.0.1:0"}, "needs --cert FILE and --key FILE"},
        {{"listen",
          "unix:/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
         "aaaa"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gn_test_run run;
        char *argv[10] = {GN_TEST_CLI};
        int n = 1;

        for (int a = 0; a < 7 && cases[i].args[a]; a++)
            argv[n++] = (char *)cases[i].args[a];
        cr_assert_eq(gn_test_run_argv(argv, NULL, 10000, &run), 0);
        cr_expect_eq(run.status, 2, "case %zu: %d %s", i, run.status, run.err);
        cr_expect(strstr(run.err, cases[i].says), "case %zu: %s", i, run.err);
        gn_test_run_free(&run);
    }
}

/* Silent clients cannot keep the sender out: several connections are
 * served at once and the first to send data is the transfer; a second
 * sender is reset and says it failed, rather than believing it was heard. */
Test(cli_sync, silent_clients_do_not_block_and_a_second_sender_is_refused, .timeout = 60)
{
    static const char script[] =
        "import socket, subprocess, sys, time\n"
        "cli, addr, path = sys.argv[1:4]\n"
        "host, port = addr.rsplit(':', 1)\n"
        "silent = [socket.create_connection((host, int(port))) for _ in range(6)]\n"
        "first = socket.create_connection((host, int(port)))\n"
        "first.sendall(b'claim')\n"
        "time.sleep(0.3)\n"
        "r = subprocess.run([cli, 'send', '--quiet', path, addr], capture_output=True, text=True)\n"
        "print('second', r.returncode)\n"
        "first.sendall(b' and the rest')\n"
        "first.shutdown(socket.SHUT_WR)\n"
        "first.recv(10)\n"
        "print('first done')\n";
    struct gn_test_run run;
    struct gn_test_proc recv;
    struct files f;
    char got[64] = "";
    FILE *out;

    files_init(&f, 1u << 20);
    char *recv_argv[] = {GN_TEST_CLI, "recv", "127.0.0.1:0", f.out, "--no-hash", NULL};
    gn_test_spawn(&recv, recv_argv, NULL, true);
    char *argv[] = {"/usr/bin/python3", "-c", (char *)script, GN_TEST_CLI, recv.addr, f.in, NULL};
    cr_assert_eq(gn_test_run_argv(argv, NULL, 30000, &run), 0);
    cr_expect_eq(run.status, 0, "%s", run.err);
    cr_expect_str_eq(run.out, "second 1\nfirst done\n", "%s", run.err);
    gn_test_run_free(&run);
    cr_expect_eq(gn_test_proc_wait(&recv, 10000, false), 0, "%s", recv.log);
    cr_expect(strstr(recv.log, "turned away: already receiving from"), "%s", recv.log);
    out = fopen(f.out, "r");
    cr_assert_not_null(out);
    cr_expect_not_null(fgets(got, sizeof(got), out));
    fclose(out);
    cr_expect_str_eq(got, "claim and the rest", "the first sender's bytes, and only them");
    files_free(&f);
}

/* listen --help says what a client beyond --threads N experiences. */
Test(cli_sync, listen_help_says_clients_beyond_the_threads_wait)
{
    struct gn_test_run run;

    cr_assert_eq(gn_test_cli(&run, "listen", "--help", NULL), 0);
    cr_expect_eq(run.status, 0);
    cr_expect(strstr(run.out, "--threads N"), "%s", run.out);
    cr_expect(strstr(run.out, "is not refused: it waits"), "%s", run.out);
    cr_expect(strstr(run.out, "listen backlog"), "%s", run.out);
    gn_test_run_free(&run);
}
