/*
 * What connections cost in memory: 2,000 idle connections of an echo
 * server, each after one 64-byte echo, grow the server's anonymous memory
 * by less than 1 MiB (the connection object is all they hold: reads land
 * in the loop's buffer, output and input buffers exist only while bytes
 * wait); input a handler leaves unconsumed is kept, then given back, and
 * never grows past max_input.
 *
 * The clients run in a child process, so the parent's memory is the
 * server's alone.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

#define IDLE_CONNS 2000
#define WARM_CONNS 20

#if defined(__SANITIZE_ADDRESS__)
#define GN_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GN_TEST_ASAN 1
#endif
#endif

static size_t echo_all(gn_conn *conn, const char *data, size_t len)
{
    gn_send(conn, data, len);
    return len;
}

/* Anonymous resident memory of this process, in kB. */
static long rss_anon_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* n connections to port, one 64-byte echo each; the descriptors in fds. */
static int connect_and_echo(const char *addr, int *fds, int n)
{
    char msg[64], back[64];

    memset(msg, 'm', sizeof(msg));
    for (int i = 0; i < n; i++) {
        size_t got = 0;
        fds[i] = gn_test_connect_fd(addr);
        if (fds[i] < 0 || write(fds[i], msg, sizeof(msg)) != (ssize_t)sizeof(msg))
            return -1;
        while (got < sizeof(back)) {
            ssize_t r = read(fds[i], back + got, sizeof(back) - got);
            if (r <= 0)
                return -1;
            got += (size_t)r;
        }
        if (memcmp(msg, back, sizeof(msg)) != 0)
            return -1;
    }
    return 0;
}

static void say(int fd, char c)
{
    if (write(fd, &c, 1) != 1)
        _exit(3);
}

static char hear(int fd)
{
    char c = 0;

    if (read(fd, &c, 1) != 1)
        _exit(3);
    return c;
}

/* The child: warm up the server, then hold IDLE_CONNS open until told. */
static void clients_main(const char *addr, int from_parent, int to_parent)
{
    static int fds[IDLE_CONNS];

    if (connect_and_echo(addr, fds, WARM_CONNS) < 0)
        _exit(1);
    for (int i = 0; i < WARM_CONNS; i++)
        close(fds[i]);
    say(to_parent, 'w');
    hear(from_parent);
    if (connect_and_echo(addr, fds, IDLE_CONNS) < 0)
        _exit(2);
    say(to_parent, 'd');
    hear(from_parent);
    _exit(0);
}

/* Run the loop until the child says something (or 20 s pass). */
static char run_until_heard(gn_loop *loop, int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c = 0;

    for (int i = 0; i < 2000; i++) {
        gn_test_run_loop_for(loop, 10);
        if (poll(&p, 1, 0) == 1) {
            cr_assert_eq(read(fd, &c, 1), 1);
            return c;
        }
    }
    return 0;
}

Test(conn_memory, two_thousand_idle_connections_cost_less_than_1_MiB, .timeout = 60)
{
    const gn_handlers h = {.on_data = echo_all};
    char addr[GN_ENDPOINT_STRLEN];
    int to_child[2], to_parent[2], status;
    long before, after;
    gn_server *srv;
    gn_loop *loop;
    pid_t pid;

#ifdef GN_TEST_ASAN
    cr_skip_test("AddressSanitizer's redzones and quarantine are not the library's memory");
#endif
    if (getenv("GN_TEST_VALGRIND")) /* tests/valgrind.sh */
        cr_skip_test("under Valgrind the resident memory holds its shadow memory too");
    raise_fd_limit();
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &h, NULL, addr, sizeof(addr));
    cr_assert_eq(pipe(to_child), 0);
    cr_assert_eq(pipe(to_parent), 0);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        clients_main(addr, to_child[0], to_parent[1]);
    cr_assert_eq(run_until_heard(loop, to_parent[0]), 'w', "the warm-up clients were served");
    gn_test_run_loop_for(loop, 100); /* their connections are finalized */
    before = rss_anon_kb();
    say(to_child[1], 'g');
    cr_assert_eq(run_until_heard(loop, to_parent[0]), 'd', "every client got its echo");
    gn_test_run_loop_for(loop, 100);
    after = rss_anon_kb();
    cr_expect_eq(gn_server_conn_count(srv), (size_t)IDLE_CONNS);
    cr_log_info("%d idle connections on %s: RssAnon %ld kB -> %ld kB, %ld bytes each", IDLE_CONNS,
                gn_loop_backend(loop), before, after, (after - before) * 1024 / IDLE_CONNS);
    cr_expect_lt(after - before, 1024, "grew by %ld kB for %d connections", after - before,
                 IDLE_CONNS);
    say(to_child[1], 'q');
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "clients: status %d", status);
    gn_server_close(srv, 0);
    gn_test_run_loop_for(loop, 50);
    gn_loop_free(loop);
}

/* ---- unconsumed input ------------------------------------------------ */

struct holder {
    bool hold;
    size_t offered, taken;
    int error;
    gn_conn *conn;
};

static struct holder holder;

static size_t take_when_allowed(gn_conn *conn, const char *data, size_t len)
{
    (void)data;
    holder.conn = conn;
    holder.offered = len;
    if (holder.hold)
        return 0;
    holder.taken += len;
    return len;
}

static void note_error(gn_conn *conn, int code, const char *message)
{
    (void)conn;
    (void)message;
    holder.error = code;
}

static size_t buffered(gn_conn *conn)
{
    gn_conn_stats st;

    cr_assert_eq(gn_conn_get_stats(conn, &st), 0);
    return st.buffered;
}

static void send_bytes(int fd, size_t n)
{
    static char chunk[4096];

    while (n > 0) {
        size_t step = n < sizeof(chunk) ? n : sizeof(chunk);
        ssize_t w = write(fd, chunk, step);
        cr_assert_gt(w, 0);
        n -= (size_t)w;
    }
}

/* A server with max_input 64 KiB whose handler takes nothing yet, and a
 * client connected to it. */
static int start_holding(gn_loop **loop, gn_server **srv)
{
    static const gn_handlers h = {.on_data = take_when_allowed, .on_error = note_error};
    gn_options opts = {.max_input = 64 << 10};
    char addr[GN_ENDPOINT_STRLEN];

    memset(&holder, 0, sizeof(holder));
    holder.hold = true;
    cr_assert_eq(gn_loop_new(loop), 0);
    *srv = gn_test_listen(*loop, "127.0.0.1:0", &h, &opts, addr, sizeof(addr));
    return gn_test_connect_fd(addr);
}

Test(conn_memory, unconsumed_input_is_kept_then_given_back_when_taken)
{
    gn_server *srv;
    gn_loop *loop;
    int fd = start_holding(&loop, &srv);
    send_bytes(fd, 40000);
    gn_test_run_loop_for(loop, 200);
    cr_assert_not_null(holder.conn);
    cr_expect_eq(buffered(holder.conn), 40000u, "every byte kept while the handler takes none");
    cr_expect_eq(holder.offered, 40000u, "and offered again, whole, with what came after");
    holder.hold = false;
    send_bytes(fd, 1);
    gn_test_run_loop_for(loop, 100);
    cr_expect_eq(holder.taken, 40001u);
    cr_expect_eq(buffered(holder.conn), 0u, "nothing left once taken");
    cr_expect_eq(holder.error, 0);
    close(fd);
    gn_server_close(srv, 0);
    gn_test_run_loop_for(loop, 50);
    gn_loop_free(loop);
}

Test(conn_memory, unconsumed_input_past_max_input_ends_the_connection)
{
    gn_server *srv;
    gn_loop *loop;
    int fd = start_holding(&loop, &srv);
    for (int i = 0; i < 20 && holder.error == 0; i++) {
        /* The peer may close under us: a failed write ends the loop. */
        char chunk[8192] = {0};
        if (write(fd, chunk, sizeof(chunk)) < 0)
            break;
        gn_test_run_loop_for(loop, 20);
    }
    gn_test_run_loop_for(loop, 100);
    cr_expect_eq(holder.error, GN_EMSGSIZE, "over max_input: %d", holder.error);
    cr_expect_leq(holder.offered, (size_t)(64 << 10), "never more than max_input held");
    cr_expect_eq(gn_server_conn_count(srv), 0u);
    close(fd);
    gn_server_close(srv, 0);
    gn_test_run_loop_for(loop, 50);
    gn_loop_free(loop);
}

static int ended;

static void note_close(gn_conn *conn, int reason)
{
    (void)conn;
    (void)reason;
    ended++;
}

/* The peer's end reaches a handler that left bytes unconsumed (half a
 * frame): the connection closes, as with nothing left over. */
Test(conn_memory, peer_end_with_input_left_over_still_closes)
{
    static const gn_handlers h = {.on_data = take_when_allowed, .on_close = note_close};
    char addr[GN_ENDPOINT_STRLEN];
    gn_server *srv;
    gn_loop *loop;
    int fd;

    memset(&holder, 0, sizeof(holder));
    holder.hold = true;
    ended = 0;
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &h, NULL, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr);
    send_bytes(fd, 100);
    gn_test_run_loop_for(loop, 100);
    cr_assert_eq(buffered(holder.conn), 100u, "the bytes wait, unconsumed");
    cr_assert_eq(shutdown(fd, SHUT_WR), 0);
    gn_test_run_loop_for(loop, 300);
    cr_expect_eq(ended, 1, "on_close after the peer's end (backend %s)", gn_loop_backend(loop));
    cr_expect_eq(gn_server_conn_count(srv), 0u);
    close(fd);
    gn_server_close(srv, 0);
    gn_test_run_loop_for(loop, 50);
    gn_loop_free(loop);
}

static size_t lines_seen;

static size_t take_lines(gn_conn *conn, const char *data, size_t len)
{
    size_t used = 0, line_len, frame_len;

    (void)conn;
    while (gn_frame_line(data + used, len - used, 200, &line_len, &frame_len) == 1) {
        used += frame_len;
        lines_seen++;
    }
    return used;
}

/* max_input bounds what a handler leaves, not how much arrives at once:
 * 10 KB of 100-byte lines after half a line, with max_input 1 KiB, is
 * offered as a read would offer it and every line arrives. */
Test(conn_memory, max_input_bounds_what_is_left_not_what_arrives)
{
    static const gn_handlers h = {.on_data = take_lines, .on_error = note_error};
    gn_options opts = {.max_input = 1024};
    char addr[GN_ENDPOINT_STRLEN], line[100];
    static char burst[50 + 100 * 100];
    gn_server *srv;
    gn_loop *loop;
    int fd;

    memset(&holder, 0, sizeof(holder));
    lines_seen = 0;
    memset(line, 'x', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\n';
    memcpy(burst, line + 50, 50); /* the rest of the first line, in the same write */
    for (int i = 0; i < 100; i++)
        memcpy(burst + 50 + i * 100, line, 100);
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &h, &opts, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr);
    cr_assert_eq(write(fd, line, 50), 50);
    gn_test_run_loop_for(loop, 100);
    cr_assert_eq(write(fd, burst, sizeof(burst)), (ssize_t)sizeof(burst));
    gn_test_run_loop_for(loop, 300);
    cr_expect_eq(holder.error, 0, "no error: %d", holder.error);
    cr_expect_eq(lines_seen, 101u);
    close(fd);
    gn_server_close(srv, 0);
    gn_test_run_loop_for(loop, 50);
    gn_loop_free(loop);
}
