/*
 * Threaded servers over real loopback sockets: 200 concurrent clients
 * served by at most 16 threads that are reused, the rest waiting in the
 * queue and the listen backlog, none refused; 2,000 short connections in
 * a burst; 500 silent clients held by the accepting thread
 * (wait_for_data) while a fresh one is served, then closed at the idle
 * timeout; queue_timeout_ms; max_conns; the idle timeout as a read
 * deadline, close while handlers block in reads, live-connection count
 * and iteration, and no thread or descriptor leaks.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <sys/resource.h>
#endif
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

static atomic_int running, peak, handler_results[4];

static void note_running(int delta)
{
    int now = atomic_fetch_add(&running, delta) + delta, old = atomic_load(&peak);

    while (now > old && !atomic_compare_exchange_weak(&peak, &old, now))
        ;
}

/* Echo lines until the client finishes. */
static void echo_lines(gn_conn *conn)
{
    char line[256];
    size_t len;
    int rc;

    note_running(1);
    while ((rc = gn_read_line(conn, line, sizeof(line) - 1, &len, 5000)) == 1) {
        line[len] = '\n';
        if (gn_write_all(conn, line, len + 1, 5000) < 0)
            break;
    }
    note_running(-1);
}

static gn_server *serve(gn_thread_fn h, const gn_options *opts, const gn_thread_options *topts,
                        char *addr, size_t len)
{
    char err[GN_ERRBUF_SIZE];
    gn_server *srv = NULL;
    gn_endpoint ep;

    cr_assert_eq(gn_serve_threads("127.0.0.1:0", h, opts, topts, &srv, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(gn_server_get_endpoint(srv, 0, &ep), 0);
    gn_endpoint_format(&ep, addr, len);
    cr_assert_null(gn_server_loop(srv));
    return srv;
}

/* Read until "\n" or EOF with a deadline; returns bytes or -1. */
static int read_reply(int fd, char *buf, size_t size, int ms)
{
    size_t got = 0;
    uint64_t end = gn_now_ms() + (uint64_t)ms;

    while (got < size - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(end > gn_now_ms() ? end - gn_now_ms() : 0);
        ssize_t n;

        if (poll(&p, 1, left) <= 0)
            return -1;
        n = read(fd, buf + got, size - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (buf[got - 1] == '\n')
            break;
    }
    buf[got] = '\0';
    return (int)got;
}

/* The soft descriptor limit raised to at least n (within the hard one):
 * hundreds of clients and their server in one process. */
static void want_fds(unsigned long n)
{
#ifdef _WIN32 /* no descriptor limit for sockets */
    (void)n;
#else
    struct rlimit rl;

    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur >= n)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > n ? n : rl.rlim_max;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    cr_assert_geq(rl.rlim_cur, n, "this test needs %lu descriptors", n);
#endif
}

/* 200 clients at once against 16 threads and the default queue of 64:
 * the other 120 wait in the listen backlog (accepting stops) and are
 * served in turn, none refused. */
Test(server_threads, two_hundred_clients_on_sixteen_reused_threads)
{
    enum { CLIENTS = 200 };
    gn_thread_options topts = {.max_threads = 16, .cache = 4};
    size_t most_backlog = 0;
    int fds[CLIENTS], threads_before = gn_test_count_threads(), fds_before = gn_test_count_fds();
    char addr[64], msg[64], reply[64];
    gn_thread_stats st;
    gn_server *srv;

    atomic_store(&peak, 0);
    srv = serve(echo_lines, NULL, &topts, addr, sizeof(addr));
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = gn_test_connect_fd(addr);
        cr_assert_geq(fds[i], 0, "client %d", i);
        snprintf(msg, sizeof(msg), "client %d says hi\n", i);
        cr_assert_eq(write(fds[i], msg, strlen(msg)), (ssize_t)strlen(msg));
    }
    /* 16 running and 64 queued: the rest wait in the kernel's backlog
     * (counted on Linux only, through TCP_INFO: Windows does not tell;
     * the connection count below still says accepting stopped) */
#ifndef _WIN32
    for (uint64_t end = gn_now_ms() + 5000; gn_now_ms() < end && most_backlog == 0; usleep(5000)) {
        gn_server_get_thread_stats(srv, &st);
        most_backlog = st.backlog;
    }
    cr_expect_gt(most_backlog, 0, "accepting stopped while the queue was full");
#else
    (void)most_backlog;
#endif
    cr_expect_leq(gn_server_conn_count(srv), 16 + 64, "only threads + queue accepted");
    for (int i = 0; i < CLIENTS; i++) {
        snprintf(msg, sizeof(msg), "client %d says hi\n", i);
        cr_assert_gt(read_reply(fds[i], reply, sizeof(reply), 10000), 0, "client %d", i);
        cr_expect_str_eq(reply, msg);
        gn_server_get_thread_stats(srv, &st);
        cr_expect_leq(st.threads, 16);
        close(fds[i]); /* frees a thread for the next queued client */
    }
    for (uint64_t end = gn_now_ms() + 5000; gn_now_ms() < end; usleep(10000)) {
        gn_server_get_thread_stats(srv, &st);
        if (st.served == CLIENTS)
            break;
    }
    cr_expect_eq(st.served, CLIENTS);
    cr_expect_leq(atomic_load(&peak), 16);
    /* Reused, not one per client.  Not exactly 16: while the acceptor
     * lags behind a slow machine the queue can run dry, and the workers
     * beyond the cache then end, as they should (53 were seen with the
     * other suites running on both cores). */
    cr_expect_lt(st.created, CLIENTS / 2, "threads are reused: %llu created",
                 (unsigned long long)st.created);
    cr_expect_leq(st.idle, 4, "at most cache idle threads are kept");
    cr_expect_eq(st.refused, 0);
    cr_expect_eq(st.backlog, 0);
    gn_server_close(srv, 1000);
    cr_expect_eq(gn_test_count_threads(), threads_before);
    cr_expect_eq(gn_test_count_fds(), fds_before);
}

Test(server_threads, a_sequence_of_clients_reuses_one_cached_thread)
{
    gn_thread_options topts = {.max_threads = 8, .cache = 2};
    char addr[64], reply[64];
    gn_thread_stats st;
    gn_server *srv = serve(echo_lines, NULL, &topts, addr, sizeof(addr));

    for (int i = 0; i < 30; i++) {
        int fd = gn_test_connect_fd(addr);
        cr_assert_eq(write(fd, "x\n", 2), 2);
        cr_assert_eq(read_reply(fd, reply, sizeof(reply), 5000), 2);
        close(fd);
        /* wait until the handler has returned and its thread is idle */
        for (uint64_t end = gn_now_ms() + 2000; gn_now_ms() < end; usleep(1000)) {
            gn_server_get_thread_stats(srv, &st);
            if (st.served == (uint64_t)i + 1 && st.idle == 1)
                break;
        }
    }
    gn_server_get_thread_stats(srv, &st);
    cr_expect_eq(st.served, 30);
    cr_expect_eq(st.created, 1, "created %llu threads", (unsigned long long)st.created);
    gn_server_close(srv, 0);
}

static atomic_int release_handlers;

/* Holds its client until released, the server closes, or the client
 * goes; records how its read ended. */
static void hold(gn_conn *conn)
{
    char buf[64];
    ssize_t n;

    note_running(1);
    while (!atomic_load(&release_handlers)) {
        n = gn_read(conn, buf, sizeof(buf), GN_NO_TIMEOUT);
        if (n == 0)
            atomic_fetch_add(&handler_results[0], 1);
        else if (n == GN_ECLOSED)
            atomic_fetch_add(&handler_results[1], 1);
        else if (n == GN_ETIMEDOUT)
            atomic_fetch_add(&handler_results[2], 1);
        if (n <= 0)
            break;
    }
    note_running(-1);
}

static void reset_counters(void)
{
    atomic_store(&release_handlers, 0);
    atomic_store(&running, 0);
    for (int i = 0; i < 4; i++)
        atomic_store(&handler_results[i], 0);
}

static bool wait_running(int n)
{
    for (uint64_t end = gn_now_ms() + 3000; gn_now_ms() < end; usleep(2000))
        if (atomic_load(&running) == n)
            return true;
    return false;
}

static bool wait_stats(gn_server *srv, gn_thread_stats *st, bool (*cond)(const gn_thread_stats *st))
{
    for (uint64_t end = gn_now_ms() + 5000; gn_now_ms() < end; usleep(2000)) {
        gn_server_get_thread_stats(srv, st);
        if (cond(st))
            return true;
    }
    return false;
}

static bool one_queued(const gn_thread_stats *st)
{
    return st->queued == 1;
}

#ifndef _WIN32
static bool one_in_backlog(const gn_thread_stats *st)
{
    return st->backlog == 1;
}
#endif

/* No reply and no end within ms: the client is still waiting. */
static bool still_waiting(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, ms) == 0;
}

/* One thread, a queue of one: a third client waits in the backlog, not
 * refused, and each is served in turn as the one before it leaves. */
Test(server_threads, a_full_queue_stops_accepting_and_clients_wait)
{
    gn_thread_options topts = {.max_threads = 1, .cache = 1, .queue = 1};
    char addr[64];
    gn_thread_stats st;
    gn_server *srv;
    int a, b, c;

    reset_counters();
    srv = serve(hold, NULL, &topts, addr, sizeof(addr));
    a = gn_test_connect_fd(addr);
    cr_assert(wait_running(1));
    b = gn_test_connect_fd(addr); /* waits in the queue */
    cr_expect(wait_stats(srv, &st, one_queued));
    c = gn_test_connect_fd(addr); /* finds the queue full: the backlog */
#ifndef _WIN32 /* the backlog is counted through Linux's TCP_INFO: 0 on Windows */
    cr_expect(wait_stats(srv, &st, one_in_backlog), "backlog %zu", st.backlog);
#endif
    cr_expect(still_waiting(c, 300), "not refused");
    cr_expect_eq(gn_server_conn_count(srv), 2, "c not accepted yet");
    close(a); /* b gets the thread, c the queue */
    for (uint64_t end = gn_now_ms() + 5000; gn_now_ms() < end; usleep(2000)) {
        gn_server_get_thread_stats(srv, &st);
        if (st.served == 1 && st.active == 1 && st.queued == 1)
            break;
    }
    cr_expect_eq(st.served, 1);
    cr_expect_eq(st.queued, 1, "c accepted once the queue had room");
    cr_expect_eq(st.backlog, 0);
    close(b);
    for (uint64_t end = gn_now_ms() + 5000; gn_now_ms() < end; usleep(2000)) {
        gn_server_get_thread_stats(srv, &st);
        if (st.served == 2 && st.active == 1)
            break;
    }
    cr_expect_eq(st.active, 1, "c is being served");
    cr_expect_eq(st.refused, 0);
    close(c);
    gn_server_close(srv, 1000);
}

static struct {
    pthread_mutex_t mu;
    char text[2048];
} captured = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void capture_log(gn_log_level level, const char *message, void *arg)
{
    (void)level;
    (void)arg;
    pthread_mutex_lock(&captured.mu);
    strncat(captured.text, message, sizeof(captured.text) - strlen(captured.text) - 2);
    strcat(captured.text, "\n");
    pthread_mutex_unlock(&captured.mu);
}

static bool log_has(const char *what)
{
    bool has;

    pthread_mutex_lock(&captured.mu);
    has = strstr(captured.text, what) != NULL;
    pthread_mutex_unlock(&captured.mu);
    return has;
}

/* queue_timeout_ms: a client that waited that long for a thread is
 * closed, with the reason logged; the one running is not disturbed. */
Test(server_threads, queue_timeout_closes_a_client_that_waited_too_long)
{
    gn_thread_options topts = {.max_threads = 1, .cache = 1, .queue_timeout_ms = 200};
    char addr[64], buf[8];
    gn_thread_stats st;
    gn_server *srv;
    uint64_t t0;
    int a, b;

    captured.text[0] = '\0';
    gn_log_set(capture_log, GN_LOG_WARN, NULL);
    reset_counters();
    srv = serve(hold, NULL, &topts, addr, sizeof(addr));
    a = gn_test_connect_fd(addr);
    cr_assert(wait_running(1));
    t0 = gn_now_ms();
    b = gn_test_connect_fd(addr);
    cr_expect_eq(read_reply(b, buf, sizeof(buf), 10000), 0, "closed after its wait");
    printf("queue_timeout_ms 200: closed after %llu ms\n", (unsigned long long)(gn_now_ms() - t0));
    cr_expect_geq(gn_now_ms() - t0, 200, "not before it waited queue_timeout_ms");
    gn_server_get_thread_stats(srv, &st);
    cr_expect_eq(st.refused, 1);
    cr_expect_eq(st.active, 1, "the running client is still served");
    cr_expect(log_has("queue_timeout_ms"), "log: %s", captured.text);
    close(a);
    close(b);
    gn_server_close(srv, 1000);
    gn_log_set(NULL, GN_LOG_WARN, NULL);
}

Test(server_threads, max_conns_refuses_the_next_client)
{
    gn_options opts = {.max_conns = 2};
    char addr[64], buf[8];
    gn_thread_stats st;
    gn_server *srv;
    int fds[3];

    reset_counters();
    srv = serve(hold, &opts, NULL, addr, sizeof(addr));
    fds[0] = gn_test_connect_fd(addr);
    fds[1] = gn_test_connect_fd(addr);
    cr_assert(wait_running(2));
    cr_expect_eq(gn_server_conn_count(srv), 2);
    fds[2] = gn_test_connect_fd(addr);
    cr_expect_eq(read_reply(fds[2], buf, sizeof(buf), 2000), 0, "refused at once");
    gn_server_get_thread_stats(srv, &st);
    cr_expect_eq(st.refused, 1);
    close(fds[2]);
    close(fds[0]); /* room again: the next client is served */
    cr_expect(wait_running(1));
    fds[2] = gn_test_connect_fd(addr);
    cr_expect(wait_running(2), "served after the refusal");
    gn_server_get_thread_stats(srv, &st);
    cr_expect_eq(st.refused, 1);
    close(fds[1]);
    close(fds[2]);
    gn_server_close(srv, 1000);
    cr_expect_eq(atomic_load(&handler_results[0]), 3, "the held clients ended with EOF");
}

Test(server_threads, idle_timeout_is_a_read_deadline)
{
    gn_options opts = {.idle_timeout_ms = 200};
    char addr[64];
    gn_server *srv;
    uint64_t t0;
    int fd;

    reset_counters();
    srv = serve(hold, &opts, NULL, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr);
    cr_assert(wait_running(1));
    t0 = gn_now_ms();
    cr_assert(wait_running(0));
    cr_expect_eq(atomic_load(&handler_results[2]), 1, "GN_NO_TIMEOUT read ended by idle timeout");
    cr_expect_lt(gn_now_ms() - t0, 1500);
    close(fd);
    gn_server_close(srv, 0);
}

static void collect_remote(gn_conn *conn, void *arg)
{
    int *n = arg;

    cr_expect_not_null(gn_conn_remote(conn));
    cr_expect(gn_conn_is_blocking(conn));
    (*n)++;
}

Test(server_threads, close_wakes_handlers_blocked_in_reads_and_joins_them)
{
    char addr[64];
    int fds[5], visited = 0, threads_before = gn_test_count_threads(), fds_before = gn_test_count_fds();
    gn_server *srv;
    uint64_t t0;

    reset_counters();
    srv = serve(hold, NULL, NULL, addr, sizeof(addr));
    for (int i = 0; i < 5; i++)
        fds[i] = gn_test_connect_fd(addr);
    cr_assert(wait_running(5));
    cr_expect_eq(gn_server_conn_count(srv), 5);
    cr_expect_eq(gn_server_foreach(srv, collect_remote, &visited), 5);
    cr_expect_eq(visited, 5);
    t0 = gn_now_ms();
    gn_server_close(srv, 0);
    cr_expect_lt(gn_now_ms() - t0, 1000);
    cr_expect_eq(atomic_load(&running), 0);
    cr_expect_eq(atomic_load(&handler_results[1]), 5, "every blocked read got GN_ECLOSED");
    cr_expect_eq(gn_test_count_threads(), threads_before);
    for (int i = 0; i < 5; i++)
        close(fds[i]);
    cr_expect_eq(gn_test_count_fds(), fds_before);
}

static void greet_and_finish(gn_conn *conn)
{
    gn_write_all(conn, "bye\n", 4, 1000);
}

Test(server_threads, grace_lets_queued_and_running_handlers_finish)
{
    gn_thread_options topts = {.max_threads = 2};
    char addr[64], reply[16];
    int fds[6];
    gn_server *srv = serve(greet_and_finish, NULL, &topts, addr, sizeof(addr));

    for (int i = 0; i < 6; i++)
        fds[i] = gn_test_connect_fd(addr);
    for (int i = 0; i < 6; i++) {
        cr_expect_eq(read_reply(fds[i], reply, sizeof(reply), 3000), 4);
        close(fds[i]);
    }
    gn_server_close(srv, 2000);
}

Test(server_threads, bad_arguments)
{
    char err[GN_ERRBUF_SIZE];
    gn_server *srv = NULL;
    gn_thread_stats st;

    cr_expect_eq(gn_serve_threads(NULL, echo_lines, NULL, NULL, &srv, err, sizeof(err)), GN_EINVAL);
    cr_expect_eq(gn_serve_threads("127.0.0.1:0", NULL, NULL, NULL, &srv, err, sizeof(err)),
                 GN_EINVAL);
    cr_expect_eq(
        gn_serve_threads("127.0.0.1:99999", echo_lines, NULL, NULL, &srv, err, sizeof(err)),
        GN_EBADADDR);
    cr_expect(strstr(err, "99999"), "%s", err);
    cr_expect_null(srv);
    cr_expect_eq(gn_server_get_thread_stats(NULL, &st), GN_EINVAL);
}

static gn_loop *post_loop;
static atomic_int posted_runs;
static pthread_t loop_thread;

static void count_on_loop(gn_loop *loop, void *arg)
{
    (void)arg;
    cr_expect(pthread_equal(pthread_self(), loop_thread), "runs on the loop's thread");
    if (atomic_fetch_add(&posted_runs, 1) + 1 == 20)
        gn_loop_stop(loop);
}

static void post_to_loop(gn_conn *conn)
{
    (void)conn;
    cr_expect_eq(gn_loop_post(post_loop, count_on_loop, NULL), 0);
}

static void keep_alive(gn_loop *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    (void)arg;
}

Test(server_threads, handlers_hand_work_to_a_loop_with_gn_loop_post)
{
    char addr[64];
    gn_server *srv;
    uint64_t timer;

    cr_assert_eq(gn_loop_new(&post_loop), 0);
    loop_thread = pthread_self();
    /* a repeating timer keeps the loop running until the 20th task stops it */
    gn_timer_start(post_loop, 1000, 1000, keep_alive, NULL, &timer);
    srv = serve(post_to_loop, NULL, NULL, addr, sizeof(addr));
    for (int i = 0; i < 20; i++)
        close(gn_test_connect_fd(addr));
    cr_expect_neq(gn_test_run_loop_for(post_loop, 5000), GN_ETIMEDOUT);
    cr_expect_eq(atomic_load(&posted_runs), 20);
    gn_server_close(srv, 1000);
    gn_loop_free(post_loop);
}

/* Non-blocking connects to 127.0.0.1:port, all at once; each fd or -1. */
static void connect_burst(const char *addr, int *fds, int n)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    const char *colon = strrchr(addr, ':');

    sin.sin_port = htons((uint16_t)atoi(colon + 1));
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        cr_assert_geq(fds[i], 0);
        if (connect(fds[i], (struct sockaddr *)&sin, sizeof(sin)) < 0 && errno != EINPROGRESS)
            cr_assert_fail("connect %d: %s", i, strerror(errno));
    }
}

/* Write all of msg within ms on a non-blocking socket. */
static bool send_within(int fd, const char *msg, int ms)
{
    size_t len = strlen(msg), done = 0;
    uint64_t end = gn_now_ms() + (uint64_t)ms;

    while (done < len) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        ssize_t n;
        if (poll(&p, 1, (int)(end > gn_now_ms() ? end - gn_now_ms() : 0)) <= 0)
            return false;
        n = write(fd, msg + done, len - done);
        if (n < 0 && errno != EAGAIN)
            return false;
        done += n > 0 ? (size_t)n : 0;
    }
    return true;
}

/* 2,000 clients connect in a burst, then each says a line, reads the
 * echo and leaves: every one is served. */
Test(server_threads, two_thousand_short_connections_in_a_burst_all_served, .timeout = 110)
{
    enum { CLIENTS = 2000 };
    static int fds[CLIENTS];
    gn_thread_options topts = {.max_threads = 16};
    int served = 0, threads_before = gn_test_count_threads(), fds_before;
    char addr[64], reply[16];
    gn_thread_stats st;
    gn_server *srv;
    uint64_t t0;

    want_fds(CLIENTS + 1000);
    fds_before = gn_test_count_fds();
    srv = serve(echo_lines, NULL, &topts, addr, sizeof(addr));
    t0 = gn_now_ms();
    connect_burst(addr, fds, CLIENTS);
    for (int i = 0; i < CLIENTS; i++) {
        if (send_within(fds[i], "ping\n", 20000) &&
            read_reply(fds[i], reply, sizeof(reply), 20000) == 5 && strcmp(reply, "ping\n") == 0)
            served++;
        close(fds[i]);
    }
    printf("2000 short connections: %d served in %llu ms\n", served,
           (unsigned long long)(gn_now_ms() - t0));
    cr_expect_eq(served, CLIENTS);
    for (uint64_t end = gn_now_ms() + 5000; gn_now_ms() < end; usleep(5000)) {
        gn_server_get_thread_stats(srv, &st);
        if (st.served == CLIENTS)
            break;
    }
    cr_expect_eq(st.served, CLIENTS);
    cr_expect_eq(st.refused, 0);
    gn_server_close(srv, 1000);
    cr_expect_eq(gn_test_count_threads(), threads_before);
    cr_expect_eq(gn_test_count_fds(), fds_before);
}

static bool all_silent_watched(const gn_thread_stats *st)
{
    return st->watched == 500;
}

/* wait_for_data: 500 clients that say nothing hold no thread; a fresh
 * client that sends is served while they are held, well before their
 * idle timeout, which then closes all 500. */
Test(server_threads, silent_clients_hold_no_thread_with_wait_for_data, .timeout = 60)
{
    enum { SILENT = 500, IDLE_MS = 6000 };
    static int fds[SILENT];
    gn_options opts = {.idle_timeout_ms = IDLE_MS};
    gn_thread_options topts = {.max_threads = 8, .wait_for_data = true};
    int fresh, closed = 0, threads_before = gn_test_count_threads(), fds_before;
    char addr[64], reply[16];
    gn_thread_stats st;
    uint64_t t0, first, held_since, answered;
    gn_server *srv;

    want_fds(2 * SILENT + 200);
    fds_before = gn_test_count_fds();
    srv = serve(echo_lines, &opts, &topts, addr, sizeof(addr));
    first = gn_now_ms();
    for (int i = 0; i < SILENT; i++) {
        fds[i] = gn_test_connect_fd(addr);
        cr_assert_geq(fds[i], 0, "silent client %d", i);
    }
    held_since = gn_now_ms(); /* the last of them was accepted no earlier */
    cr_assert(wait_stats(srv, &st, all_silent_watched), "watched %zu", st.watched);
    cr_expect_eq(st.threads, 0, "no thread for a silent client");
    t0 = gn_now_ms();
    fresh = gn_test_connect_fd(addr);
    cr_assert_eq(write(fresh, "fresh\n", 6), 6);
    cr_expect_eq(read_reply(fresh, reply, sizeof(reply), IDLE_MS), 6, "answered");
    answered = gn_now_ms();
    printf("fresh client answered in %llu ms with %d silent clients held\n",
           (unsigned long long)(answered - t0), SILENT);
    gn_server_get_thread_stats(srv, &st);
    cr_expect_eq(st.watched, SILENT, "the 500 are still held: no idle timeout yet");
    for (int i = 0; i < SILENT; i++)
        cr_expect(still_waiting(fds[i], 0), "silent client %d still open", i);
    close(fresh);
    /* the idle timeout closes them all */
    for (int i = 0; i < SILENT; i++) {
        closed += read_reply(fds[i], reply, sizeof(reply), IDLE_MS + 10000) == 0;
        close(fds[i]);
    }
    printf("silent clients closed %llu ms after they were held\n",
           (unsigned long long)(gn_now_ms() - held_since));
    cr_expect_eq(closed, SILENT);
    cr_expect_geq(gn_now_ms() - first, IDLE_MS, "closed at the idle timeout, not before");
    gn_server_get_thread_stats(srv, &st);
    cr_expect_eq(st.watched, 0);
    cr_expect_eq(st.served, 1);
    gn_server_close(srv, 1000);
    cr_expect_eq(gn_test_count_threads(), threads_before);
    cr_expect_eq(gn_test_count_fds(), fds_before);
}
