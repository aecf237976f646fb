/*
 * `gnezdo connect` reads standard input on the loop's own thread: while
 * it waits on a pipe it runs one thread (on every backend), what comes
 * on stdin reaches the peer and the peer's bytes reach stdout, the end
 * of stdin half-closes; a file on stdin, which cannot be watched, is
 * sent whole.
 */
#define _GNU_SOURCE /* pipe2 */
#include <arpa/inet.h>
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

struct client {
    pid_t pid;
    int out, err; /* its stdout and stderr */
    char log[4096];
    size_t log_len;
};

/* `gnezdo connect addr` with stdin from stdin_fd, on backend. */
static void start_client(struct client *c, const char *addr, int stdin_fd, const char *backend)
{
    int out[2], err[2];

    memset(c, 0, sizeof(*c));
    cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
    c->pid = fork();
    cr_assert_geq(c->pid, 0);
    if (c->pid == 0) {
        dup2(stdin_fd, 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        setenv("GN_BACKEND", backend, 1);
        execl(GN_TEST_CLI, GN_TEST_CLI, "connect", addr, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    c->out = out[0];
    c->err = err[0];
}

/* Read the client's stderr until it holds text, for up to 5 s. */
static void wait_log(struct client *c, const char *text)
{
    struct pollfd pfd = {.fd = c->err, .events = POLLIN};

    for (int i = 0; i < 50 && !strstr(c->log, text); i++) {
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t n = read(c->err, c->log + c->log_len, sizeof(c->log) - 1 - c->log_len);
        if (n <= 0)
            break;
        c->log_len += (size_t)n;
        c->log[c->log_len] = '\0';
    }
    cr_assert(strstr(c->log, text), "no '%s' from gnezdo connect: %s", text, c->log);
}

/* The "Threads:" figure of /proc/PID/status. */
static int thread_count(pid_t pid)
{
    char path[64], line[256];
    int threads = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    cr_assert_not_null(f);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Threads: %d", &threads) == 1)
            break;
    fclose(f);
    return threads;
}

static int accept_one(int listener)
{
    struct pollfd pfd = {.fd = listener, .events = POLLIN};

    cr_assert_eq(poll(&pfd, 1, 5000), 1, "gnezdo connect never connected");
    int fd = accept(listener, NULL, NULL);
    cr_assert_geq(fd, 0);
    return fd;
}

/* Read exactly len bytes from fd within 5 s. */
static void read_exactly(int fd, char *buf, size_t len)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    size_t got = 0;

    while (got < len) {
        cr_assert_eq(poll(&pfd, 1, 5000), 1, "only %zu of %zu bytes came", got, len);
        ssize_t n = read(fd, buf + got, len - got);
        cr_assert_gt(n, 0, "only %zu of %zu bytes came", got, len);
        got += (size_t)n;
    }
}

static int wait_exit(pid_t pid)
{
    int status;

    for (int i = 0; i < 100; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    cr_assert_fail("gnezdo connect did not exit");
    return -1;
}

static void talk_on_one_thread(const char *backend)
{
    char addr[64], buf[16];
    struct client c;
    int listener = gn_test_raw_listener("", addr, sizeof(addr), 4);
    int in[2], peer;

    cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
    start_client(&c, addr, in[0], backend);
    close(in[0]);
    peer = accept_one(listener);
    wait_log(&c, "connected  ");
    /* Waiting on stdin (and on the socket): one thread, no reader. */
    cr_expect_eq(thread_count(c.pid), 1, "%s: gnezdo connect runs more than one thread", backend);
    cr_assert_eq(write(in[1], "ping\n", 5), 5);
    read_exactly(peer, buf, 5);
    cr_assert_eq(memcmp(buf, "ping\n", 5), 0);
    cr_assert_eq(write(peer, "pong\n", 5), 5);
    read_exactly(c.out, buf, 5);
    cr_assert_eq(memcmp(buf, "pong\n", 5), 0);
    cr_expect_eq(thread_count(c.pid), 1, "%s: a thread started while talking", backend);
    /* The end of stdin half-closes: the peer reads EOF, and can still
     * answer before closing, which ends the client. */
    close(in[1]);
    struct pollfd pfd = {.fd = peer, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 5000), 1);
    cr_assert_eq(read(peer, buf, sizeof(buf)), 0, "no EOF after the end of stdin");
    cr_assert_eq(write(peer, "bye\n", 4), 4);
    close(peer);
    read_exactly(c.out, buf, 4);
    cr_assert_eq(memcmp(buf, "bye\n", 4), 0);
    cr_expect_eq(wait_exit(c.pid), 0, "%s", c.log);
    close(c.out);
    close(c.err);
    close(listener);
}

Test(cli_connect_stdin, one_thread_while_waiting_on_stdin_on_every_backend, .timeout = 60)
{
    talk_on_one_thread("poll");
    talk_on_one_thread("epoll");
    if (GN_TEST_HAVE_URING)
        talk_on_one_thread("uring");
}

/* A terminal on stdin: under script(1), a line typed reaches the peer
 * and ^D at the start of a line is the end of input (a half-close). */
Test(cli_connect_stdin, a_terminal_on_stdin_under_script, .timeout = 60)
{
    char addr[64], command[256], buf[16];
    int listener = gn_test_raw_listener("", addr, sizeof(addr), 4);
    int in[2], out[2], peer;
    pid_t pid;

    if (access("/usr/bin/script", X_OK) != 0)
        cr_skip_test("script(1) is not installed");
    snprintf(command, sizeof(command), "exec %s connect %s", GN_TEST_CLI, addr);
    cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        execl("/usr/bin/script", "script", "-qec", command, "/dev/null", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    peer = accept_one(listener);
    cr_assert_eq(write(in[1], "typed\n", 6), 6);
    read_exactly(peer, buf, 6);
    cr_assert_eq(memcmp(buf, "typed\n", 6), 0);
    cr_assert_eq(write(in[1], "\x04", 1), 1); /* ^D */
    struct pollfd pfd = {.fd = peer, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 5000), 1);
    cr_assert_eq(read(peer, buf, sizeof(buf)), 0, "no EOF after ^D");
    close(peer);
    cr_expect_eq(wait_exit(pid), 0);
    close(in[1]);
    close(out[0]);
    close(listener);
}

/* `gnezdo connect udp://...` too: each stdin line a datagram, one thread. */
Test(cli_connect_stdin, datagrams_one_thread_and_a_datagram_per_line, .timeout = 60)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof(sin);
    char addr[64], buf[64];
    struct client c;
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), in[2];
    struct pollfd pfd = {.fd = udp, .events = POLLIN};

    cr_assert_geq(udp, 0);
    cr_assert_eq(bind(udp, (struct sockaddr *)&sin, sizeof(sin)), 0);
    getsockname(udp, (struct sockaddr *)&sin, &slen);
    snprintf(addr, sizeof(addr), "udp://127.0.0.1:%d", ntohs(sin.sin_port));
    cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
    start_client(&c, addr, in[0], "epoll");
    close(in[0]);
    wait_log(&c, "sending    ");
    cr_expect_eq(thread_count(c.pid), 1, "gnezdo connect udp:// runs more than one thread");
    cr_assert_eq(write(in[1], "one\ntwo\n", 8), 8);
    cr_assert_eq(poll(&pfd, 1, 5000), 1);
    cr_assert_eq(recv(udp, buf, sizeof(buf), 0), 4);
    cr_assert_eq(memcmp(buf, "one\n", 4), 0);
    cr_assert_eq(poll(&pfd, 1, 5000), 1);
    cr_assert_eq(recv(udp, buf, sizeof(buf), 0), 4);
    cr_assert_eq(memcmp(buf, "two\n", 4), 0);
    close(in[1]); /* then a second for late replies, and exit 0 */
    cr_expect_eq(wait_exit(c.pid), 0, "%s", c.log);
    close(c.out);
    close(c.err);
    close(udp);
}

/* 8 MiB from a file, several times the client's 1 MiB output bound, so
 * reading stops and resumes on the way. */
Test(cli_connect_stdin, a_file_on_stdin_is_sent_whole, .timeout = 60)
{
    static char chunk[65536];
    char addr[64], path[] = "/tmp/gn_stdin_XXXXXX";
    size_t total = 8u << 20, got = 0;
    struct client c;
    int listener = gn_test_raw_listener("", addr, sizeof(addr), 4);
    int file = mkstemp(path), peer;
    ssize_t n;

    cr_assert_geq(file, 0);
    unlink(path);
    for (size_t i = 0; i < sizeof(chunk); i++)
        chunk[i] = (char)('a' + i % 26);
    for (size_t i = 0; i < total / sizeof(chunk); i++)
        cr_assert_eq(write(file, chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
    cr_assert_eq(lseek(file, 0, SEEK_SET), 0);
    start_client(&c, addr, file, "epoll");
    close(file);
    peer = accept_one(listener);
    usleep(200000); /* let the client's output fill up first */
    struct pollfd pfd = {.fd = peer, .events = POLLIN};
    while (poll(&pfd, 1, 5000) == 1 && (n = read(peer, chunk, sizeof(chunk))) > 0)
        got += (size_t)n;
    cr_expect_eq(got, total, "%zu of %zu bytes, then EOF", got, total);
    close(peer);
    cr_expect_eq(wait_exit(c.pid), 0);
    close(c.out);
    close(c.err);
    close(listener);
}
