/*
 * Servers on several loops (gn_options.loops): clients are spread over
 * every loop and served on its thread, over TCP, Unix sockets and TLS;
 * counts and gn_server_foreach cover all loops from any of them; closing
 * (gracefully, from a handler on another loop, or by freeing loop 0)
 * with connections open on every loop joins cleanly; bad counts are
 * refused.  Loop 0 runs on a thread of the test, the clients are plain
 * blocking sockets on the test's thread.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

#define MAX_CLIENTS 100

static struct {
    pthread_mutex_t lock;
    pthread_t threads[MAX_CLIENTS]; /* the thread each on_accept ran on */
    gn_loop *loops[MAX_CLIENTS];
    int accepted;
    atomic_int closed;
    atomic_int visited; /* by gn_server_foreach in a handler */
    gn_server *srv;
} seen = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void reset_seen(void)
{
    pthread_mutex_lock(&seen.lock);
    seen.accepted = 0;
    seen.srv = NULL;
    pthread_mutex_unlock(&seen.lock);
    atomic_store(&seen.closed, 0);
    atomic_store(&seen.visited, 0);
}

static void note_accept(gn_conn *conn)
{
    pthread_mutex_lock(&seen.lock);
    if (seen.accepted < MAX_CLIENTS) {
        seen.threads[seen.accepted] = pthread_self();
        seen.loops[seen.accepted] = gn_conn_loop(conn);
    }
    seen.accepted++;
    pthread_mutex_unlock(&seen.lock);
}

static void note_close(gn_conn *conn, int reason)
{
    (void)conn;
    (void)reason;
    atomic_fetch_add(&seen.closed, 1);
}

static size_t echo(gn_conn *conn, const char *data, size_t len)
{
    int rc = gn_send(conn, data, len);

    GN_TEST_CHECK(rc == 0, "gn_send: %s", gn_strerror(rc));
    return len;
}

static const gn_handlers echoing = {
    .on_accept = note_accept, .on_data = echo, .on_close = note_close};

/* Loop 0 on a thread of its own, as a program's main loop would run. */
struct running {
    gn_loop *loop;
    pthread_t tid;
    int rc;
};

static void *run_loop(void *arg)
{
    struct running *r = arg;

    r->rc = gn_loop_run(r->loop);
    return NULL;
}

static void start_loop(struct running *r, gn_loop *loop)
{
    r->loop = loop;
    r->rc = -1;
    cr_assert_eq(pthread_create(&r->tid, NULL, run_loop, r), 0);
}

/* Loop 0 returns by itself once the server is gone. */
static void join_loop(struct running *r)
{
    pthread_join(r->tid, NULL);
    cr_expect_eq(r->rc, 0);
}

static gn_server *listen_loops(gn_loop *loop, const char *addr, size_t loops, const gn_handlers *h,
                               char *text, size_t len)
{
    gn_options opts = {.loops = loops};

    return gn_test_listen(loop, addr, h, &opts, text, len);
}

/* One byte out, the same back: the client's loop serves it. */
static void expect_echo(int fd, char c)
{
    struct timeval tv = {5, 0};
    char back = 0;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    cr_assert_eq(write(fd, &c, 1), 1);
    cr_expect_eq(read(fd, &back, 1), 1);
    cr_expect_eq(back, c);
}

/* Reads until EOF or reset (0), or gives up after 5 s (1). */
static int expect_closed(int fd)
{
    struct timeval tv = {5, 0};
    char buf[256];
    ssize_t n;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        ;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 1 : 0;
}

static void close_task(gn_loop *loop, void *srv)
{
    (void)loop;
    gn_server_close(srv, 2000);
}

/* How many of the first n accepts ran on thread t. */
static int accepts_on(pthread_t t, int n)
{
    int count = 0;

    pthread_mutex_lock(&seen.lock);
    for (int i = 0; i < n && i < MAX_CLIENTS; i++)
        count += pthread_equal(seen.threads[i], t) != 0;
    pthread_mutex_unlock(&seen.lock);
    return count;
}

static int accepted(void)
{
    int n;

    pthread_mutex_lock(&seen.lock);
    n = seen.accepted;
    pthread_mutex_unlock(&seen.lock);
    return n;
}

/* Wait (bounded) until cond() reaches want. */
static int wait_for(int (*cond)(void), int want)
{
    for (int i = 0; i < 500 && cond() < want; i++)
        usleep(10000);
    return cond();
}

static int closed_count(void)
{
    return atomic_load(&seen.closed);
}

Test(server_loops, clients_are_spread_over_both_loops_and_served_there, .timeout = 60)
{
    char addr[GN_ENDPOINT_STRLEN];
    int fds[MAX_CLIENTS], fd_count = gn_test_count_fds();
    struct running r;
    gn_loop *loop;
    gn_server *srv;

    reset_seen();
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = listen_loops(loop, "127.0.0.1:0", 2, &echoing, addr, sizeof(addr));
    start_loop(&r, loop);
    for (int i = 0; i < MAX_CLIENTS; i++) {
        fds[i] = gn_test_connect_fd(addr);
        cr_assert_geq(fds[i], 0);
        expect_echo(fds[i], (char)('a' + i % 26));
    }
    cr_assert_eq(wait_for(accepted, MAX_CLIENTS), MAX_CLIENTS);
    cr_expect_eq(gn_server_conn_count(srv), (size_t)MAX_CLIENTS);
    /* Held open, each client goes to the loop serving fewer: half each. */
    cr_expect_eq(accepts_on(r.tid, MAX_CLIENTS), MAX_CLIENTS / 2, "loop 0's thread");
    cr_expect_eq(accepts_on(pthread_self(), MAX_CLIENTS), 0);
    for (int i = 0; i < MAX_CLIENTS; i++)
        cr_expect_eq(pthread_equal(seen.threads[i], r.tid) != 0, seen.loops[i] == loop,
                     "client %d: its handlers run on its loop's thread", i);
    for (int i = 0; i < MAX_CLIENTS; i++)
        close(fds[i]);
    cr_expect_eq(wait_for(closed_count, MAX_CLIENTS), MAX_CLIENTS);
    gn_loop_post(loop, close_task, srv);
    join_loop(&r);
    gn_loop_free(loop);
    cr_expect_eq(gn_test_count_fds(), fd_count, "the loops and their threads are gone");
    gn_test_checks_ok();
}

/* ---- closing with connections open on every loop ---------------------- */

static void open_clients(const char *addr, int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        fds[i] = gn_test_connect_fd(addr);
        cr_assert_geq(fds[i], 0);
        expect_echo(fds[i], 'x');
    }
}

Test(server_loops, graceful_close_with_clients_on_every_loop_joins_them_all, .timeout = 60)
{
    enum { N = 20 };
    char addr[GN_ENDPOINT_STRLEN];
    int fds[N], fd_count = gn_test_count_fds();
    struct running r;
    gn_loop *loop;
    gn_server *srv;

    reset_seen();
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = listen_loops(loop, "127.0.0.1:0", 3, &echoing, addr, sizeof(addr));
    start_loop(&r, loop);
    open_clients(addr, fds, N);
    cr_assert_eq(wait_for(accepted, N), N);
    cr_expect_gt(accepts_on(r.tid, N), 0, "loop 0 serves some");
    cr_expect_lt(accepts_on(r.tid, N), N, "the other loops serve some");
    gn_loop_post(loop, close_task, srv);
    for (int i = 0; i < N; i++)
        cr_expect_eq(expect_closed(fds[i]), 0, "client %d sees the close", i);
    join_loop(&r);
    cr_expect_eq(closed_count(), N, "on_close ran for every connection");
    for (int i = 0; i < N; i++)
        close(fds[i]);
    gn_loop_free(loop);
    cr_expect_eq(gn_test_count_fds(), fd_count);
    gn_test_checks_ok();
}

Test(server_loops, freeing_loop_0_aborts_every_loops_clients_and_joins, .timeout = 60)
{
    enum { N = 12 };
    char addr[GN_ENDPOINT_STRLEN];
    int fds[N], fd_count = gn_test_count_fds();
    gn_loop *loop;

    reset_seen();
    cr_assert_eq(gn_loop_new(&loop), 0);
    listen_loops(loop, "127.0.0.1:0", 2, &echoing, addr, sizeof(addr));
    for (int i = 0; i < N; i++) {
        fds[i] = gn_test_connect_fd(addr);
        cr_assert_geq(fds[i], 0);
    }
    /* Loop 0 accepts them; the other loop serves its half on its own. */
    for (int i = 0; i < 50 && accepted() < N; i++)
        gn_test_run_loop_for(loop, 20);
    cr_assert_eq(accepted(), N);
    gn_loop_free(loop); /* the server is still open, on both loops */
    cr_expect_eq(closed_count(), N);
    for (int i = 0; i < N; i++) {
        cr_expect_eq(expect_closed(fds[i]), 0, "client %d sees the end", i);
        close(fds[i]);
    }
    cr_expect_eq(gn_test_count_fds(), fd_count);
    gn_test_checks_ok();
}

/* ---- counts and iteration from any loop -------------------------------- */

static void count_one(gn_conn *conn, void *arg)
{
    (void)conn;
    (*(int *)arg)++;
}

/* Every client says "?"; the handler, on whichever loop, counts every
 * loop's connections and answers with the count. */
static size_t census(gn_conn *conn, const char *data, size_t len)
{
    char text[32];
    int n = 0, visited = gn_server_foreach(gn_conn_server(conn), count_one, &n);

    (void)data;
    GN_TEST_CHECK(visited == n, "%d visited, fn ran %d times", visited, n);
    GN_TEST_CHECK(gn_server_conn_count(gn_conn_server(conn)) == (size_t)n);
    snprintf(text, sizeof(text), "%d\n", n);
    atomic_fetch_add(&seen.visited, 1); /* before the client can read */
    gn_send(conn, text, strlen(text));
    return len;
}

Test(server_loops, foreach_in_a_handler_on_any_loop_sees_every_loops_connections, .timeout = 60)
{
    enum { N = 10 };
    const gn_handlers h = {.on_accept = note_accept, .on_data = census, .on_close = note_close};
    char addr[GN_ENDPOINT_STRLEN], buf[32];
    int fds[N];
    struct running r;
    gn_loop *loop;
    gn_server *srv;

    reset_seen();
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = listen_loops(loop, "127.0.0.1:0", 2, &h, addr, sizeof(addr));
    start_loop(&r, loop);
    for (int i = 0; i < N; i++) {
        fds[i] = gn_test_connect_fd(addr);
        cr_assert_geq(fds[i], 0);
    }
    cr_assert_eq(wait_for(accepted, N), N);
    /* All at once, so the loops' foreach calls meet. */
    for (int i = 0; i < N; i++)
        cr_assert_eq(write(fds[i], "?", 1), 1);
    for (int i = 0; i < N; i++) {
        struct timeval tv = {5, 0};
        ssize_t got;
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        got = read(fds[i], buf, sizeof(buf) - 1);
        cr_assert_gt(got, 0);
        buf[got] = '\0';
        cr_expect_str_eq(buf, "10\n", "client %d", i);
    }
    cr_expect_eq(atomic_load(&seen.visited), N);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    gn_loop_post(loop, close_task, srv);
    join_loop(&r);
    gn_loop_free(loop);
    gn_test_checks_ok();
}

/* gn_server_close from a handler on another loop than 0. */
static size_t close_server_on_q(gn_conn *conn, const char *data, size_t len)
{
    if (memchr(data, 'q', len))
        gn_server_close(gn_conn_server(conn), 1000);
    return len;
}

Test(server_loops, a_handler_on_another_loop_may_close_the_server, .timeout = 60)
{
    const gn_handlers h = {
        .on_accept = note_accept, .on_data = close_server_on_q, .on_close = note_close};
    char addr[GN_ENDPOINT_STRLEN];
    struct running r;
    gn_loop *loop;
    int fd;

    reset_seen();
    cr_assert_eq(gn_loop_new(&loop), 0);
    listen_loops(loop, "127.0.0.1:0", 2, &h, addr, sizeof(addr));
    start_loop(&r, loop);
    fd = gn_test_connect_fd(addr); /* the first client goes to loop 1 */
    cr_assert_geq(fd, 0);
    cr_assert_eq(wait_for(accepted, 1), 1);
    cr_expect_eq(accepts_on(r.tid, 1), 0, "served off loop 0");
    cr_assert_eq(write(fd, "q", 1), 1);
    cr_expect_eq(expect_closed(fd), 0);
    join_loop(&r); /* the loop ends: the server is gone */
    close(fd);
    gn_loop_free(loop);
    gn_test_checks_ok();
}

/* ---- Unix sockets and TLS --------------------------------------------- */

Test(server_loops, unix_socket_clients_are_spread_and_echoed, .timeout = 60)
{
    enum { N = 8 };
    char path[64], addr[GN_ENDPOINT_STRLEN + 8];
    int fds[N];
    struct running r;
    gn_loop *loop;
    gn_server *srv;

    reset_seen();
    snprintf(path, sizeof(path), "unix:@gnezdo-loops-%d", (int)getpid());
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = listen_loops(loop, path, 2, &echoing, addr, sizeof(addr));
    start_loop(&r, loop);
    open_clients(addr, fds, N);
    cr_assert_eq(wait_for(accepted, N), N);
    cr_expect_eq(accepts_on(r.tid, N), N / 2);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    gn_loop_post(loop, close_task, srv);
    join_loop(&r);
    gn_loop_free(loop);
    gn_test_checks_ok();
}

/* TLS clients on a loop of the test's own thread (gnezdo clients). */
struct tls_client {
    int replies;
    atomic_int *open;
};

static void thread_echo(gn_conn *conn)
{
    (void)conn;
}

static void tls_connected(gn_conn *conn)
{
    gn_send(conn, "ping", 4);
}

static size_t tls_reply(gn_conn *conn, const char *data, size_t len)
{
    struct tls_client *c = gn_conn_user_data(conn);

    (void)data;
    if (len < 4)
        return 0;
    c->replies++;
    gn_close(conn);
    return len;
}

static void tls_closed(gn_conn *conn, int reason)
{
    struct tls_client *c = gn_conn_user_data(conn);

    (void)reason;
    if (atomic_fetch_sub(c->open, 1) == 1)
        gn_loop_stop(gn_conn_loop(conn));
}

Test(server_loops, tls_clients_complete_their_handshakes_on_both_loops, .timeout = 60)
{
    enum { N = 6 };
    char cert[512], key[512], ca[512], addr[GN_ENDPOINT_STRLEN], err[GN_ERRBUF_SIZE];
    const gn_handlers ch = {
        .on_connect = tls_connected, .on_data = tls_reply, .on_close = tls_closed};
    struct tls_client clients[N] = {0};
    atomic_int open = N;
    struct running r;
    gn_loop *loop, *client_loop;
    gn_endpoint ep;
    gn_server *srv;
    gn_conn *conn;

    reset_seen();
    gn_tls_options stls = {.cert_file = gn_test_cert_path(cert, sizeof(cert), "server.pem"),
                           .key_file = gn_test_cert_path(key, sizeof(key), "server.key")};
    gn_tls_options ctls = {.ca_file = gn_test_cert_path(ca, sizeof(ca), "ca.pem"),
                           .server_name = "localhost"};
    gn_options sopts = {.loops = 2, .tls = &stls};
    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_listen(loop, "tls://127.0.0.1:0", &echoing, &sopts, &srv, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(gn_server_get_endpoint(srv, 0, &ep), 0);
    gn_endpoint_format(&ep, addr, sizeof(addr));
    start_loop(&r, loop);
    cr_assert_eq(gn_loop_new(&client_loop), 0);
    for (int i = 0; i < N; i++) {
        gn_options copts = {.tls = &ctls, .user_data = &clients[i]};
        clients[i].open = &open;
        cr_assert_eq(gn_connect(client_loop, addr, &ch, &copts, &conn, err, sizeof(err)), 0, "%s",
                     err);
    }
    cr_expect_eq(gn_test_run_loop_for(client_loop, 20000), 0);
    gn_loop_free(client_loop);
    for (int i = 0; i < N; i++)
        cr_expect_eq(clients[i].replies, 1, "client %d got its echo over TLS", i);
    cr_expect_eq(accepts_on(r.tid, N), N / 2, "handshakes on both loops");
    gn_loop_post(loop, close_task, srv);
    join_loop(&r);
    gn_loop_free(loop);
    gn_test_checks_ok();
}

/* ---- refused ---------------------------------------------------------- */

Test(server_loops, more_than_256_loops_and_loops_on_a_threaded_server_are_refused)
{
    const gn_handlers h = {.on_data = echo};
    gn_options opts = {.loops = 257};
    char err[GN_ERRBUF_SIZE];
    gn_loop *loop;
    gn_server *srv;

    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_expect_eq(gn_listen(loop, "127.0.0.1:0", &h, &opts, &srv, err, sizeof(err)), GN_EINVAL);
    cr_expect(strstr(err, "loops: 257 is more than 256") != NULL, "%s", err);
    opts.loops = 2;
    cr_expect_eq(gn_serve_threads("127.0.0.1:0", thread_echo, &opts, NULL, &srv, err, sizeof(err)),
                 GN_EINVAL);
    cr_expect(strstr(err, "loops") != NULL, "%s", err);
    gn_loop_free(loop);
}
