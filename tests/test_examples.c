/*
 * The example programs in examples/, each run as a child process on
 * 127.0.0.1:0 and talked to over real sockets: echo_server echoes a
 * megabyte intact, chat_server relays lines to the other clients with
 * their sender's address, http_hello speaks enough HTTP/1.1 for Python,
 * curl, pipelining and split requests, and line_client relays stdin
 * through echo_server.  Every child is killed and reaped by its pid in
 * .fini, whatever the test's outcome; every wait is bounded by a poll.
 */
#define _GNU_SOURCE /* pipe2 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

#define EX(name)   GN_TEST_EXAMPLES_DIR "/" name
#define WAIT_MS    5000
#define MAX_KIDS   2
#define NO_MORE_MS 200 /* how long "nothing more arrives" is watched */

/* ---- child processes ---------------------------------------------------- */

static struct kid {
    pid_t pid;
    int out_fd;
} kids[MAX_KIDS];

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* .fini of every test: runs after a failed assertion too. */
static void kill_kids(void)
{
    for (int i = 0; i < MAX_KIDS; i++) {
        if (kids[i].pid > 0) {
            kill(kids[i].pid, SIGKILL);
            waitpid(kids[i].pid, NULL, 0);
        }
        if (kids[i].out_fd > 0)
            close(kids[i].out_fd);
        kids[i] = (struct kid){0};
    }
}

static void exec_example(const char *path, const char *arg, int out_fd)
{
    sigset_t none;

    prctl(PR_SET_PDEATHSIG, SIGKILL); /* dies with a test killed by its timeout */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    dup2(out_fd, STDOUT_FILENO);
    execl(path, path, arg, (char *)NULL);
    _exit(127);
}

/* Reads the first stdout line of kid into line (NUL-terminated). */
static void read_first_line(struct kid *k, char *line, size_t cap)
{
    struct pollfd p = {.fd = k->out_fd, .events = POLLIN};
    long long deadline = now_ms() + WAIT_MS;
    size_t len = 0;

    while (len + 1 < cap && (len == 0 || line[len - 1] != '\n')) {
        int left = (int)(deadline - now_ms());
        cr_assert_gt(left, 0, "no first line from the example");
        cr_assert_gt(poll(&p, 1, left), 0, "no first line from the example");
        cr_assert_eq(read(k->out_fd, line + len, 1), 1, "example's stdout closed early");
        len++;
    }
    line[len] = '\0';
}

/* Built unless cmake ran with -DGN_BUILD_EXAMPLES=OFF. */
static void need(const char *path)
{
    if (access(path, X_OK) != 0)
        cr_skip("%s is not built", path);
}

/* Starts the example at path on 127.0.0.1:0; its address goes to addr. */
static pid_t start_server(const char *path, char *addr, size_t cap)
{
    struct kid *k = kids[0].pid ? &kids[1] : &kids[0];
    char line[256];
    int out[2];

    need(path);
    cr_assert_eq(k->pid, 0, "too many children");
    cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
    k->pid = fork();
    cr_assert_geq(k->pid, 0);
    if (k->pid == 0)
        exec_example(path, "127.0.0.1:0", out[1]);
    close(out[1]);
    k->out_fd = out[0];
    read_first_line(k, line, sizeof(line));
    cr_assert_eq(strncmp(line, "listening on 127.0.0.1:", 23), 0, "first line: %s", line);
    cr_assert_neq(strcmp(line, "listening on 127.0.0.1:0\n"), 0, "port 0 not resolved");
    line[strcspn(line, "\n")] = '\0';
    cr_assert_lt(strlen(line + 13), cap);
    strcpy(addr, line + 13); /* after "listening on " */
    return k->pid;
}

/* Exit status of pid within ms (128 + signal if killed), -1 if still running. */
static int wait_exit(pid_t pid, int ms)
{
    long long deadline = now_ms() + ms;
    int status;

    do {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            for (int i = 0; i < MAX_KIDS; i++)
                if (kids[i].pid == pid)
                    kids[i].pid = 0; /* reaped: .fini must not kill the pid again */
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        usleep(10000);
    } while (now_ms() < deadline);
    return -1;
}

static bool is_running(pid_t pid)
{
    return waitpid(pid, NULL, WNOHANG) == 0;
}

/* ---- sockets -------------------------------------------------------------- */

static int connect_to(const char *addr)
{
    struct timeval tv = {.tv_sec = WAIT_MS / 1000};
    int one = 1, fd = gn_test_connect_fd(addr);

    cr_assert_geq(fd, 0, "cannot connect to %s", addr);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

static bool send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

static void send_bytewise(int fd, const char *text)
{
    for (size_t i = 0; text[i]; i++) {
        cr_assert(send_all(fd, text + i, 1));
        usleep(1000);
    }
}

/* Reads into buf until want bytes, EOF (or reset) or ms pass; returns the
 * length, NUL-terminated.  *eof tells whether the peer closed. */
static size_t read_for(int fd, char *buf, size_t cap, size_t want, int ms, bool *eof)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    long long deadline = now_ms() + ms;
    size_t len = 0;

    *eof = false;
    while (len < want && len + 1 < cap) {
        int left = (int)(deadline - now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0) {
            *eof = n == 0 || errno == ECONNRESET;
            break;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

/* Reads until the peer closes (within WAIT_MS, else fails). */
static size_t read_to_eof(int fd, char *buf, size_t cap)
{
    bool eof;
    size_t len = read_for(fd, buf, cap, SIZE_MAX, WAIT_MS, &eof);

    cr_assert(eof, "the server did not close; got: %s", buf);
    return len;
}

/* A buffered line reader over a socket. */
struct lines {
    int fd;
    char buf[4096];
    size_t len;
};

/* The next line without "\n" into out; fails the test on timeout or EOF. */
static void next_line(struct lines *r, char *out, size_t cap)
{
    char *nl;
    bool eof;

    while (!(nl = memchr(r->buf, '\n', r->len))) {
        size_t n = read_for(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 1, WAIT_MS, &eof);
        cr_assert_gt(n, 0, "no line from fd %d (eof %d)", r->fd, eof);
        r->len += n;
    }
    size_t len = (size_t)(nl - r->buf);
    cr_assert_lt(len, cap);
    memcpy(out, r->buf, len);
    out[len] = '\0';
    r->len -= len + 1;
    memmove(r->buf, nl + 1, r->len);
}

/* The next chat message ("addr: text"), skipping join and leave notices. */
static void next_message(struct lines *r, char *out, size_t cap)
{
    do
        next_line(r, out, cap);
    while (!strstr(out, ": "));
}

/* Reads notices until "<who> <what>" arrives. */
static void wait_notice(struct lines *r, const char *who, const char *what)
{
    char want[GN_ENDPOINT_STRLEN + 32], line[2048];

    snprintf(want, sizeof(want), "%s %s", who, what);
    do
        next_line(r, line, sizeof(line));
    while (strcmp(line, want) != 0);
}

/* The address a server sees for our socket fd, as gnezdo formats it. */
static void local_name(int fd, char *buf, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    gn_endpoint ep;

    cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    cr_assert_eq(gn_endpoint_from_sockaddr((struct sockaddr *)&ss, len, GN_TRANSPORT_TCP, &ep), 0);
    cr_assert_gt(gn_endpoint_format(&ep, buf, cap), 0);
}

/* ---- echo_server ---------------------------------------------------------- */

/* Writes and reads at once, so neither side's buffers fill and deadlock. */
static void echo_through(int fd, const char *data, char *back, size_t len)
{
    struct pollfd p = {.fd = fd};
    long long deadline = now_ms() + 10000;
    size_t sent = 0, got = 0;

    fcntl(fd, F_SETFL, O_NONBLOCK);
    while (got < len) {
        int left = (int)(deadline - now_ms());
        p.events = POLLIN | (sent < len ? POLLOUT : 0);
        cr_assert(left > 0 && poll(&p, 1, left) > 0, "echo stalled at %zu/%zu", got, len);
        if (p.revents & POLLOUT) {
            ssize_t n = send(fd, data + sent, len - sent, MSG_NOSIGNAL);
            cr_assert(n > 0 || errno == EAGAIN);
            sent += n > 0 ? (size_t)n : 0;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, back + got, len - got, 0);
            cr_assert(n > 0 || (n < 0 && errno == EAGAIN), "echo ended at %zu/%zu", got, len);
            got += n > 0 ? (size_t)n : 0;
        }
    }
}

Test(echo_server, echoes_a_random_mebibyte_byte_for_byte, .fini = kill_kids, .timeout = 30)
{
    const size_t len = 1u << 20;
    char addr[64], *data = malloc(len), *back = malloc(len);
    unsigned seed = 42;

    cr_assert(data && back);
    for (size_t i = 0; i < len; i++)
        data[i] = (char)(rand_r(&seed) & 0xff);
    start_server(EX("echo_server"), addr, sizeof(addr));
    int fd = connect_to(addr);
    echo_through(fd, data, back, len);
    cr_assert_eq(memcmp(data, back, len), 0, "echoed bytes differ");
    close(fd);
    free(data);
    free(back);
}

Test(examples, servers_exit_0_on_sigterm_and_sigint_with_clients_connected, .fini = kill_kids,
     .timeout = 30)
{
    const char *servers[] = {EX("echo_server"), EX("chat_server"), EX("http_hello")};
    char addr[64], line[64];

    for (int i = 0; i < 6; i++) {
        pid_t pid = start_server(servers[i % 3], addr, sizeof(addr));
        int fd = connect_to(addr);
        struct lines r = {.fd = fd};

        cr_assert(send_all(fd, "hi\n", 3));
        if (i % 3 == 0)
            next_line(&r, line, sizeof(line)); /* echoed: the server has the client */
        kill(pid, i < 3 ? SIGTERM : SIGINT);
        int st = wait_exit(pid, WAIT_MS);
        cr_assert_eq(st, 0, "%s on signal %d: status %d", servers[i % 3], i < 3 ? SIGTERM : SIGINT,
                     st);
        close(fd);
        kill_kids();
    }
}

Test(examples, bad_arguments_exit_2_naming_the_input, .fini = kill_kids, .timeout = 30)
{
    const char *progs[] = {EX("echo_server"), EX("chat_server"), EX("http_hello"),
                           EX("line_client")};
    struct gn_test_run run;

    for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
        need(progs[i]);
        char *argv[] = {(char *)progs[i], "127.0.0.1:nosuchservice", NULL};
        cr_assert_eq(gn_test_run_argv(argv, NULL, WAIT_MS, &run), 0);
        cr_expect_eq(run.status, 2, "%s: status %d", progs[i], run.status);
        cr_expect(strstr(run.err, "nosuchservice"), "%s: stderr %s", progs[i], run.err);
        gn_test_run_free(&run);
    }
    char *too_many[] = {(char *)EX("echo_server"), "127.0.0.1:0", "extra", NULL};
    cr_assert_eq(gn_test_run_argv(too_many, NULL, WAIT_MS, &run), 0);
    cr_expect_eq(run.status, 2);
    cr_expect(strstr(run.err, "extra"), "stderr: %s", run.err);
    gn_test_run_free(&run);
    char *none[] = {(char *)EX("line_client"), NULL};
    cr_assert_eq(gn_test_run_argv(none, NULL, WAIT_MS, &run), 0);
    cr_expect_eq(run.status, 2);
    gn_test_run_free(&run);
}

/* ---- chat_server ---------------------------------------------------------- */

struct chatter {
    struct lines r;
    char name[GN_ENDPOINT_STRLEN];
};

/* Connects n clients; the first has seen the others join, so the server
 * has accepted them all before anyone speaks. */
static void join(const char *addr, struct chatter *c, int n)
{
    for (int i = 0; i < n; i++) {
        c[i].r = (struct lines){.fd = connect_to(addr)};
        local_name(c[i].r.fd, c[i].name, sizeof(c[i].name));
    }
    for (int i = 1; i < n; i++)
        wait_notice(&c[0].r, c[i].name, "joined");
}

static void expect_message(struct chatter *to, const struct chatter *from, const char *text)
{
    char line[2048], want[2048];

    snprintf(want, sizeof(want), "%s: %s", from->name, text);
    next_message(&to->r, line, sizeof(line));
    cr_assert_str_eq(line, want);
}

Test(chat_server, a_line_reaches_the_others_prefixed_with_its_sender_but_not_the_sender,
     .fini = kill_kids, .timeout = 30)
{
    struct chatter c[3];
    char addr[64];

    start_server(EX("chat_server"), addr, sizeof(addr));
    join(addr, c, 3);
    cr_assert(send_all(c[0].r.fd, "hello\n", 6));
    expect_message(&c[1], &c[0], "hello");
    expect_message(&c[2], &c[0], "hello");
    /* Had A got its own line, it would come before B's. */
    cr_assert(send_all(c[1].r.fd, "ping\n", 5));
    expect_message(&c[0], &c[1], "ping");
    expect_message(&c[2], &c[1], "ping");
    for (int i = 0; i < 3; i++)
        close(c[i].r.fd);
}

Test(chat_server, a_line_written_byte_by_byte_arrives_whole, .fini = kill_kids, .timeout = 30)
{
    struct chatter c[2];
    char addr[64];

    start_server(EX("chat_server"), addr, sizeof(addr));
    join(addr, c, 2);
    send_bytewise(c[0].r.fd, "split into single bytes\n");
    expect_message(&c[1], &c[0], "split into single bytes");
    close(c[0].r.fd);
    close(c[1].r.fd);
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    cr_assert_not_null(f);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Sends up to 16 MiB without a newline; returns how much went out. */
static size_t flood_without_newline(int fd)
{
    static char chunk[65536];
    size_t sent = 0;

    memset(chunk, 'x', sizeof(chunk));
    while (sent < (16u << 20) && send_all(fd, chunk, sizeof(chunk)))
        sent += sizeof(chunk);
    return sent;
}

Test(chat_server, an_oversized_line_closes_its_sender_and_the_others_carry_on, .fini = kill_kids,
     .timeout = 30)
{
    struct chatter c[3];
    char addr[64], buf[4096];
    pid_t pid = start_server(EX("chat_server"), addr, sizeof(addr));
    long rss_before;

    join(addr, c, 3);
    rss_before = rss_kib(pid);
    size_t sent = flood_without_newline(c[2].r.fd);
    read_to_eof(c[2].r.fd, buf, sizeof(buf));
    cr_assert_lt(sent, 16u << 20, "the server read 16 MiB of one line");
    cr_assert_lt(rss_kib(pid) - rss_before, 16 * 1024, "server grew by %ld KiB",
                 rss_kib(pid) - rss_before);
    wait_notice(&c[0].r, c[2].name, "left");
    cr_assert(send_all(c[0].r.fd, "still here\n", 11));
    expect_message(&c[1], &c[0], "still here");
    cr_assert(is_running(pid));
    for (int i = 0; i < 3; i++)
        close(c[i].r.fd);
}

/* ---- http_hello ----------------------------------------------------------- */

#define OK_HEAD(conn)                                                                              \
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: " conn        \
    "\r\n\r\n"
#define OK_KEEP  OK_HEAD("keep-alive") "hello\n"
#define OK_CLOSE OK_HEAD("close") "hello\n"

/* Sends request on a new connection and returns all the server sends
 * until it closes. */
static void exchange_to_eof(const char *addr, const char *request, char *buf, size_t cap)
{
    int fd = connect_to(addr);

    cr_assert(send_all(fd, request, strlen(request)));
    read_to_eof(fd, buf, cap);
    close(fd);
}

Test(http_hello, python_makes_three_requests_on_one_keep_alive_connection, .fini = kill_kids,
     .timeout = 30)
{
    static const char script[] =
        "import http.client, sys\n"
        "c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=5)\n"
        "ports = set()\n"
        "for path in ('/', '/a', '/b?x=1'):\n"
        "    c.request('GET', path)\n"
        "    r = c.getresponse()\n"
        "    body = r.read().decode()\n"
        "    ports.add(c.sock.getsockname()[1])\n"
        "    print(r.status, r.getheader('Connection'), body, end='')\n"
        "print('connections', len(ports))\n";
    char addr[64], host[64];
    struct gn_test_run run;

    start_server(EX("http_hello"), addr, sizeof(addr));
    snprintf(host, sizeof(host), "%s", addr);
    *strrchr(host, ':') = '\0';
    char *argv[] = {"/usr/bin/env",         "python3", "-c", (char *)script, host,
                    strrchr(addr, ':') + 1, NULL};
    cr_assert_eq(gn_test_run_argv(argv, NULL, 10000, &run), 0);
    cr_assert_eq(run.status, 0, "python: %s", run.err);
    cr_assert_str_eq(run.out, "200 keep-alive hello\n200 keep-alive hello\n"
                              "200 keep-alive hello\nconnections 1\n");
    gn_test_run_free(&run);
}

Test(http_hello, pipelined_requests_in_one_write_are_answered_in_order, .fini = kill_kids,
     .timeout = 30)
{
    /* A GET, a POST whose body must be skipped, a HEAD (no body in its
     * answer) and a GET that closes: each answer is told apart. */
    static const char requests[] = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 27\r\n\r\n"
                                   "GET /not-a-request HTTP/1.1"
                                   "HEAD /3 HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char addr[64], buf[4096];

    start_server(EX("http_hello"), addr, sizeof(addr));
    exchange_to_eof(addr, requests, buf, sizeof(buf));
    cr_assert_str_eq(buf, OK_KEEP OK_KEEP OK_HEAD("keep-alive") OK_CLOSE);
}

Test(http_hello, a_request_in_one_byte_writes_gets_one_response, .fini = kill_kids, .timeout = 30)
{
    char addr[64], buf[4096];
    bool eof;

    start_server(EX("http_hello"), addr, sizeof(addr));
    int fd = connect_to(addr);
    send_bytewise(fd, "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: test\r\n\r\n");
    size_t len = read_for(fd, buf, sizeof(buf), strlen(OK_KEEP), WAIT_MS, &eof);
    cr_assert_str_eq(buf, OK_KEEP);
    len += read_for(fd, buf + len, sizeof(buf) - len, 1, NO_MORE_MS, &eof);
    cr_assert_eq(len, strlen(OK_KEEP), "more than one response: %s", buf);
    cr_assert_not(eof, "a keep-alive connection was closed");
    close(fd);
}

Test(http_hello, http_1_0_closes_unless_keep_alive_is_asked_for, .fini = kill_kids, .timeout = 30)
{
    char addr[64], buf[4096];

    start_server(EX("http_hello"), addr, sizeof(addr));
    exchange_to_eof(addr, "GET / HTTP/1.0\r\n\r\n", buf, sizeof(buf));
    cr_assert_str_eq(buf, OK_CLOSE);
    exchange_to_eof(addr,
                    "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"
                    "GET / HTTP/1.0\r\n\r\n",
                    buf, sizeof(buf));
    cr_assert_str_eq(buf, OK_KEEP OK_CLOSE);
}

Test(http_hello, headers_over_8_kib_get_431_and_a_close, .fini = kill_kids, .timeout = 30)
{
    char addr[64], buf[4096], request[12000];

    start_server(EX("http_hello"), addr, sizeof(addr));
    snprintf(request, sizeof(request), "GET / HTTP/1.1\r\nX-Big: %09000d\r\n\r\n", 0);
    exchange_to_eof(addr, request, buf, sizeof(buf));
    cr_assert_eq(strncmp(buf, "HTTP/1.1 431 Request Header Fields Too Large\r\n", 46), 0, "%s",
                 buf);
}

Test(http_hello, a_malformed_request_gets_400_and_chunked_gets_411, .fini = kill_kids,
     .timeout = 30)
{
    static const char *bad[] = {
        "garbage\r\n\r\n", "GET /\r\n\r\n", "GET / HTTP/1.1 x\r\n\r\n",
        "GET / HTTP/1.1\r\nNo colon\r\n\r\n", "GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
        /* conflicting lengths: request smuggling */
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\n"};
    char addr[64], buf[4096];

    start_server(EX("http_hello"), addr, sizeof(addr));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        exchange_to_eof(addr, bad[i], buf, sizeof(buf));
        cr_assert_eq(strncmp(buf, "HTTP/1.1 400 Bad Request\r\n", 26), 0, "%s -> %s", bad[i], buf);
    }
    exchange_to_eof(addr, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", buf,
                    sizeof(buf));
    cr_assert_eq(strncmp(buf, "HTTP/1.1 411 Length Required\r\n", 30), 0, "%s", buf);
}

static bool in_path(const char *prog)
{
    char *path = strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin"), *save = NULL;
    char file[4096];
    bool found = false;

    for (char *dir = strtok_r(path, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
        snprintf(file, sizeof(file), "%s/%s", dir, prog);
        found = access(file, X_OK) == 0;
    }
    free(path);
    return found;
}

Test(http_hello, curl_gets_hello, .fini = kill_kids, .timeout = 30)
{
    char addr[64], url[128];
    struct gn_test_run run;

    if (!in_path("curl"))
        cr_skip("curl is not installed");
    start_server(EX("http_hello"), addr, sizeof(addr));
    snprintf(url, sizeof(url), "http://%s/", addr);
    char *argv[] = {"/usr/bin/env", "curl", "-s", "-m", "5", url, url, NULL};
    cr_assert_eq(gn_test_run_argv(argv, NULL, 10000, &run), 0);
    cr_assert_eq(run.status, 0, "curl: %s", run.err);
    cr_assert_str_eq(run.out, "hello\nhello\n");
    gn_test_run_free(&run);
}

Test(http_hello, curl_gets_hello_over_tls, .timeout = 30)
{
    char ca[160], cert[160], key[160], out[64], url[128], line[160] = "";
    struct gn_test_proc srv;
    struct gn_test_run run;
    FILE *f = NULL;

    if (!in_path("curl"))
        cr_skip("curl is not installed");
    need(EX("http_hello"));
    gn_test_cert_path(ca, sizeof(ca), "ca.pem");
    gn_test_cert_path(cert, sizeof(cert), "server.pem");
    gn_test_cert_path(key, sizeof(key), "server.key");
    snprintf(out, sizeof(out), "/tmp/gn_http_hello_tls_%d.out", (int)getpid());
    char *argv[] = {EX("http_hello"), "tls://127.0.0.1:0", "--cert", cert, "--key", key, NULL};
    gn_test_spawn(&srv, argv, out, false);
    /* the example prints "listening on ADDR" on stdout */
    for (int i = 0; i < 100 && !strstr(line, "listening on"); i++) {
        usleep(20000);
        f = fopen(out, "r");
        if (f && !fgets(line, sizeof(line), f))
            line[0] = '\0';
        if (f)
            fclose(f);
    }
    cr_assert(strstr(line, "listening on tls://127.0.0.1:"), "%s", line);
    snprintf(url, sizeof(url), "https://localhost:%d/", atoi(strrchr(line, ':') + 1));
    char *curl[] = {"/usr/bin/env", "curl", "-s", "-S", "-m", "5", "--cacert", ca, url, url, NULL};
    cr_assert_eq(gn_test_run_argv(curl, NULL, 10000, &run), 0);
    cr_expect_eq(run.status, 0, "curl: %s", run.err);
    cr_expect_str_eq(run.out, "hello\nhello\n");
    gn_test_run_free(&run);
    /* and without the CA, curl refuses the certificate */
    char *untrusting[] = {"/usr/bin/env", "curl", "-s", "-m", "5", url, NULL};
    cr_assert_eq(gn_test_run_argv(untrusting, NULL, 10000, &run), 0);
    cr_expect_eq(run.status, 60, "curl's 'peer certificate cannot be authenticated'");
    gn_test_run_free(&run);
    cr_expect_eq(gn_test_proc_wait(&srv, 5000, true), 0, "%s", srv.log);
    unlink(out);
}

/* ---- line_client ---------------------------------------------------------- */

Test(line_client, relays_stdin_through_echo_server_and_exits_0, .fini = kill_kids, .timeout = 30)
{
    char addr[64];
    struct gn_test_run run;

    need(EX("line_client"));
    start_server(EX("echo_server"), addr, sizeof(addr));
    char *argv[] = {(char *)EX("line_client"), addr, NULL};
    cr_assert_eq(gn_test_run_argv(argv, "one\ntwo\n", 10000, &run), 0);
    cr_assert_eq(run.status, 0, "line_client: %s", run.err);
    cr_assert_str_eq(run.out, "one\ntwo\n");
    gn_test_run_free(&run);
}

Test(line_client, a_refused_connection_exits_1, .fini = kill_kids, .timeout = 30)
{
    char addr[64];
    struct gn_test_run run;
    pid_t pid;

    need(EX("line_client"));
    pid = start_server(EX("echo_server"), addr, sizeof(addr));
    kill(pid, SIGTERM);
    cr_assert_eq(wait_exit(pid, WAIT_MS), 0);
    char *argv[] = {(char *)EX("line_client"), addr, NULL};
    cr_assert_eq(gn_test_run_argv(argv, "lost\n", 10000, &run), 0);
    cr_assert_eq(run.status, 1, "status %d: %s", run.status, run.err);
    cr_assert(strstr(run.err, "refused"), "stderr: %s", run.err);
    gn_test_run_free(&run);
}
