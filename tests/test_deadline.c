/*
 * Time limits over real loopback sockets: the one reading of 0
 * (GN_DEFAULT_TIMEOUT), GN_NO_TIMEOUT and GN_NO_WAIT in the blocking
 * calls, and a connection's read and write deadlines
 * (gn_conn_set_deadline) across several calls, moved, cleared, against
 * a peer that does not read, on a threaded server's connection, and
 * under a hail of signals.  Times are asserted loosely: never before a
 * deadline, and within a generous bound after it.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

/* How late a call may return on a loaded machine and still pass. */
#define SLACK_MS 3000

/* Dial a plain listener and accept its side: conn is ours, *peer the raw
 * socket of the other end. */
static gn_conn *dial_pair(int *lfd, int *peer)
{
    char addr[64], err[GN_ERRBUF_SIZE];
    gn_conn *conn = NULL;

    *lfd = gn_test_raw_listener("", addr, sizeof(addr), 4);
    cr_assert_eq(gn_dial(addr, GN_DEFAULT_TIMEOUT, NULL, &conn, err, sizeof(err)), 0, "%s", err);
    *peer = accept(*lfd, NULL, NULL);
    cr_assert_geq(*peer, 0);
    return conn;
}

static void end_pair(gn_conn *conn, int lfd, int peer)
{
    gn_close(conn);
    close(peer);
    close(lfd);
}

/* Writes `text` to fd after `delay_ms`, on a thread. */
struct later_write {
    int fd;
    unsigned delay_ms;
    const char *text;
    pthread_t tid;
};

static void *later_write_main(void *arg)
{
    struct later_write *w = arg;

    usleep(w->delay_ms * 1000u);
    cr_assert_eq(write(w->fd, w->text, strlen(w->text)), (ssize_t)strlen(w->text));
    return NULL;
}

static void write_later(struct later_write *w, int fd, unsigned delay_ms, const char *text)
{
    *w = (struct later_write){.fd = fd, .delay_ms = delay_ms, .text = text};
    cr_assert_eq(pthread_create(&w->tid, NULL, later_write_main, w), 0);
}

Test(timeouts, the_constants_are_distinct_and_zero_is_the_default)
{
    cr_expect_eq(GN_DEFAULT_TIMEOUT, 0u);
    cr_expect_neq(GN_NO_WAIT, GN_NO_TIMEOUT);
    cr_expect_neq(GN_NO_WAIT, GN_DEFAULT_TIMEOUT);
    cr_expect_eq(GN_NO_DEADLINE, 0u);
}

Test(timeouts, default_and_no_timeout_wait_for_data_no_wait_does_not)
{
    int lfd, peer;
    gn_conn *conn = dial_pair(&lfd, &peer);
    struct later_write w;
    char buf[16];
    uint64_t t0;

    t0 = gn_now_ms();
    cr_expect_eq(gn_read(conn, buf, sizeof(buf), GN_NO_WAIT), GN_ETIMEDOUT);
    cr_expect_eq(gn_wait_readable(conn, GN_NO_WAIT), GN_ETIMEDOUT);
    cr_expect_lt(gn_now_ms() - t0, SLACK_MS);

    /* 0 used to mean "do not wait" for reads: now it waits for data */
    write_later(&w, peer, 150, "a");
    t0 = gn_now_ms();
    cr_expect_eq(gn_read(conn, buf, sizeof(buf), GN_DEFAULT_TIMEOUT), 1);
    cr_expect_geq(gn_now_ms() - t0, 100, "returned before the data was sent");
    pthread_join(w.tid, NULL);

    write_later(&w, peer, 150, "line\n");
    cr_expect_eq(gn_read_line(conn, buf, sizeof(buf), &(size_t){0}, GN_NO_TIMEOUT), 1);
    cr_expect_str_eq(buf, "line");
    pthread_join(w.tid, NULL);

    /* GN_NO_WAIT still takes what has arrived */
    cr_assert_eq(write(peer, "xyz", 3), 3);
    cr_assert_eq(gn_wait_readable(conn, 5000), 0);
    cr_expect_eq(gn_read_exact(conn, buf, 3, GN_NO_WAIT), 0);
    cr_expect_eq(memcmp(buf, "xyz", 3), 0);
    end_pair(conn, lfd, peer);
}

Test(timeouts, datagram_calls_read_the_constants_the_same_way)
{
    char err[GN_ERRBUF_SIZE], addr[GN_ENDPOINT_STRLEN], buf[16];
    gn_dgram *server, *client;

    cr_assert_eq(
        gn_dgram_open_blocking("udp://127.0.0.1:0", GN_DGRAM_BIND, NULL, &server, err, sizeof(err)),
        0, "%s", err);
    gn_endpoint_format(gn_dgram_local(server), addr, sizeof(addr));
    cr_assert_eq(gn_dgram_open_blocking(addr, GN_DGRAM_CONNECT, NULL, &client, err, sizeof(err)), 0,
                 "%s", err);
    cr_expect_eq(gn_dgram_recv(server, buf, sizeof(buf), NULL, GN_NO_WAIT), GN_ETIMEDOUT);
    cr_assert_eq(gn_dgram_send_wait(client, "hi", 2, NULL, GN_DEFAULT_TIMEOUT), 0);
    cr_expect_eq(gn_dgram_recv(server, buf, sizeof(buf), NULL, GN_DEFAULT_TIMEOUT), 2);
    gn_dgram_close(client);
    gn_dgram_close(server);
}

/* A listener whose accept queue is full drops further SYNs: a connect to
 * it can only time out.  Its address into addr; close the listener and
 * the fillers with close_silent_listener. */
static int silent_listener(char *addr, size_t len, int fillers[8])
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof(sin);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert_geq(lfd, 0);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    cr_assert_eq(listen(lfd, 0), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);
    snprintf(addr, len, "127.0.0.1:%d", ntohs(sin.sin_port));
    for (int i = 0; i < 8; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[i], (struct sockaddr *)&sin, sizeof(sin));
    }
    return lfd;
}

static void close_silent_listener(int lfd, int fillers[8])
{
    for (int i = 0; i < 8; i++)
        close(fillers[i]);
    close(lfd);
}

Test(timeouts, dial_and_connect_timeout_ms_read_the_constants_the_same_way)
{
    char addr[64], err[GN_ERRBUF_SIZE];
    int fillers[8], lfd = silent_listener(addr, sizeof(addr), fillers);
    gn_options no_wait = {.connect_timeout_ms = GN_NO_WAIT};
    gn_options forever = {.connect_timeout_ms = GN_NO_TIMEOUT};
    gn_conn *conn = NULL;
    uint64_t t0 = gn_now_ms();

    cr_expect_eq(gn_dial(addr, GN_NO_WAIT, NULL, &conn, err, sizeof(err)), GN_ETIMEDOUT, "%s", err);
    cr_expect_eq(gn_dial(addr, GN_DEFAULT_TIMEOUT, &no_wait, &conn, err, sizeof(err)), GN_ETIMEDOUT,
                 "%s", err);
    cr_expect_lt(gn_now_ms() - t0, SLACK_MS, "GN_NO_WAIT waited");
    /* the call's own timeout wins over the option's */
    t0 = gn_now_ms();
    cr_expect_eq(gn_dial(addr, 200, &forever, &conn, err, sizeof(err)), GN_ETIMEDOUT, "%s", err);
    cr_expect_geq(gn_now_ms() - t0, 195);
    cr_expect_lt(gn_now_ms() - t0, 200 + SLACK_MS);
    cr_expect_null(conn);
    close_silent_listener(lfd, fillers);
}

Test(deadline, bounds_a_series_of_reads_as_a_whole)
{
    int lfd, peer;
    gn_conn *conn = dial_pair(&lfd, &peer);
    uint64_t t0 = gn_now_ms(), deadline = t0 + 400;
    char c;
    int reads = 0;
    ssize_t n;

    cr_assert_eq(write(peer, "abc", 3), 3);
    cr_assert_eq(gn_conn_set_deadline(conn, GN_DEADLINE_READ, deadline), 0);
    /* every call's own timeout is longer: only the deadline ends them (and
     * the calls below could wait forever: their timeouts only end a test
     * that fails) */
    while ((n = gn_read(conn, &c, 1, 10000)) == 1)
        cr_assert_lt(++reads, 4);
    cr_expect_eq(reads, 3);
    cr_expect_eq(n, GN_ETIMEDOUT);
    cr_expect_geq(gn_now_ms(), deadline, "returned before the deadline");
    cr_expect_lt(gn_now_ms() - t0, 400 + SLACK_MS);

    /* a call's own shorter timeout still ends it first */
    cr_assert_eq(gn_conn_set_deadline(conn, GN_DEADLINE_READ, gn_now_ms() + 60000), 0);
    t0 = gn_now_ms();
    cr_expect_eq(gn_read(conn, &c, 1, 100), GN_ETIMEDOUT);
    cr_expect_lt(gn_now_ms() - t0, 100 + SLACK_MS);
    end_pair(conn, lfd, peer);
}

Test(deadline, once_passed_fails_every_call_until_moved_or_cleared)
{
    const gn_framing lines = {.kind = GN_FRAMING_LINE};
    int lfd, peer;
    gn_conn *conn = dial_pair(&lfd, &peer);
    char buf[16];
    size_t len;

    cr_assert_eq(write(peer, "ready\n", 6), 6);
    cr_assert_eq(gn_wait_readable(conn, 5000), 0);
    cr_assert_eq(gn_conn_set_deadline(conn, GN_DEADLINE_READ, gn_now_ms()), 0);
    /* input is waiting, yet the connection's time is up (Go's rule) */
    cr_expect_eq(gn_read(conn, buf, sizeof(buf), GN_NO_WAIT), GN_ETIMEDOUT);
    cr_expect_eq(gn_read_line(conn, buf, sizeof(buf), &len, 1000), GN_ETIMEDOUT);
    cr_expect_eq(gn_read_exact(conn, buf, 1, 1000), GN_ETIMEDOUT);
    cr_expect_eq(gn_read_message(conn, &lines, buf, sizeof(buf), 1000), GN_ETIMEDOUT);
    cr_expect_eq(gn_wait_readable(conn, 1000), GN_ETIMEDOUT);
    /* the other direction is not touched */
    cr_expect_eq(gn_write_all(conn, "w", 1, 1000), 0);
    cr_expect_eq(read(peer, buf, 1), 1);

    cr_assert_eq(gn_conn_set_deadline(conn, GN_DEADLINE_READ, gn_now_ms() + 5000), 0);
    cr_expect_eq(gn_read_message(conn, &lines, buf, sizeof(buf), 1000), 5, "moved: usable again");
    cr_expect_str_eq(buf, "ready");
    cr_assert_eq(gn_conn_set_deadline(conn, GN_DEADLINE_READ, gn_now_ms()), 0);
    cr_assert_eq(gn_conn_set_deadline(conn, GN_DEADLINE_BOTH, GN_NO_DEADLINE), 0);
    cr_assert_eq(write(peer, "x", 1), 1);
    cr_expect_eq(gn_read(conn, buf, sizeof(buf), 5000), 1, "cleared");
    end_pair(conn, lfd, peer);
}

Test(deadline, a_timed_out_read_consumes_nothing)
{
    int lfd, peer;
    gn_conn *conn = dial_pair(&lfd, &peer);
    char buf[16];
    size_t len;

    /* half a line, then the deadline: the half stays buffered */
    cr_assert_eq(write(peer, "par", 3), 3);
    cr_assert_eq(gn_conn_set_deadline(conn, GN_DEADLINE_READ, gn_now_ms() + 150), 0);
    cr_expect_eq(gn_read_line(conn, buf, sizeof(buf), &len, 10000), GN_ETIMEDOUT);
    cr_assert_eq(write(peer, "tial\n", 5), 5);
    cr_assert_eq(gn_conn_set_deadline(conn, GN_DEADLINE_READ, GN_NO_DEADLINE), 0);
    cr_expect_eq(gn_read_line(conn, buf, sizeof(buf), &len, 5000), 1);
    cr_expect_str_eq(buf, "partial");

    /* three of five bytes, then the deadline: a retry reads all five */
    cr_assert_eq(write(peer, "123", 3), 3);
    cr_assert_eq(gn_conn_set_deadline(conn, GN_DEADLINE_READ, gn_now_ms() + 150), 0);
    cr_expect_eq(gn_read_exact(conn, buf, 5, 10000), GN_ETIMEDOUT);
    cr_assert_eq(write(peer, "45", 2), 2);
    cr_assert_eq(gn_conn_set_deadline(conn, GN_DEADLINE_READ, GN_NO_DEADLINE), 0);
    memset(buf, 0, sizeof(buf));
    cr_expect_eq(gn_read_exact(conn, buf, 5, 5000), 0);
    cr_expect_str_eq(buf, "12345");
    end_pair(conn, lfd, peer);
}

Test(deadline, write_deadline_against_a_peer_that_does_not_read)
{
    enum { SIZE = 64 << 20 };
    int lfd, peer;
    gn_conn *conn = dial_pair(&lfd, &peer);
    char *big = calloc(1, SIZE), c;
    uint64_t t0 = gn_now_ms(), deadline = t0 + 300;
    int file;
    gn_conn_stats st;

    cr_assert_not_null(big);
    cr_assert_eq(gn_conn_set_deadline(conn, GN_DEADLINE_WRITE, deadline), 0);
    cr_expect_eq(gn_write_all(conn, big, SIZE, 10000), GN_ETIMEDOUT);
    cr_expect_geq(gn_now_ms(), deadline, "returned before the deadline");
    cr_expect_lt(gn_now_ms() - t0, 300 + SLACK_MS);
    gn_conn_get_stats(conn, &st);
    cr_expect_gt(st.bytes_out, 0);
    cr_expect_lt(st.bytes_out, SIZE);
    cr_expect_eq(gn_write_all(conn, "x", 1, GN_NO_WAIT), GN_ETIMEDOUT, "passed: no more writes");
    cr_assert_geq(file = open("/dev/null", O_RDONLY), 0);
    cr_expect_eq(gn_send_file(conn, file, 0, 1), GN_ETIMEDOUT);
    close(file);
    /* reading is not bound by the write deadline */
    cr_assert_eq(write(peer, "r", 1), 1);
    cr_expect_eq(gn_read(conn, &c, 1, 5000), 1);
    /* the peer goes: with the deadline cleared the writer learns it */
    cr_assert_eq(gn_conn_set_deadline(conn, GN_DEADLINE_WRITE, GN_NO_DEADLINE), 0);
    close(peer);
    cr_expect_neq(gn_write_all(conn, big, SIZE, 10000), GN_ETIMEDOUT);
    free(big);
    gn_close(conn);
    close(lfd);
}

/* ---- from another thread ------------------------------------------- */

/* Moves conn's deadline(s) to `to_ms` from now, after delay_ms. */
struct mover {
    gn_conn *conn;
    unsigned which, delay_ms;
    uint64_t to_ms, moved_at;
    pthread_t tid;
};

static void *mover_main(void *arg)
{
    struct mover *m = arg;

    usleep(m->delay_ms * 1000u);
    m->moved_at = gn_now_ms();
    cr_assert_eq(gn_conn_set_deadline(m->conn, m->which, m->moved_at + m->to_ms), 0);
    return NULL;
}

static void move_later(struct mover *m, gn_conn *conn, unsigned which, unsigned delay_ms,
                       uint64_t to_ms)
{
    *m = (struct mover){.conn = conn, .which = which, .delay_ms = delay_ms, .to_ms = to_ms};
    cr_assert_eq(pthread_create(&m->tid, NULL, mover_main, m), 0);
}

Test(deadline, another_thread_cancels_a_blocked_read_or_write)
{
    enum { SIZE = 64 << 20 };
    int lfd, peer;
    gn_conn *conn = dial_pair(&lfd, &peer);
    char buf[16], *big = calloc(1, SIZE);
    struct mover m;

    cr_assert_not_null(big);
    /* the read would wait 20 s: the other thread ends it now */
    move_later(&m, conn, GN_DEADLINE_READ, 150, 0);
    cr_expect_eq(gn_read(conn, buf, sizeof(buf), 20000), GN_ETIMEDOUT);
    pthread_join(m.tid, NULL);
    cr_expect_geq(gn_now_ms(), m.moved_at);
    cr_expect_lt(gn_now_ms() - m.moved_at, SLACK_MS, "the blocked read did not see the move");

    /* a write to a peer that does not read, likewise */
    move_later(&m, conn, GN_DEADLINE_WRITE, 150, 0);
    cr_expect_eq(gn_write_all(conn, big, SIZE, 20000), GN_ETIMEDOUT);
    pthread_join(m.tid, NULL);
    cr_expect_lt(gn_now_ms() - m.moved_at, SLACK_MS, "the blocked write did not see the move");
    free(big);
    end_pair(conn, lfd, peer);
}

Test(deadline, moved_later_from_another_thread_the_wait_goes_on)
{
    int lfd, peer;
    gn_conn *conn = dial_pair(&lfd, &peer);
    struct mover m;
    char buf[16];

    /* The mover must run before the first deadline: Valgrind starts a
     * thread far more slowly (gn_test_ms). */
    cr_assert_eq(gn_conn_set_deadline(conn, GN_DEADLINE_READ, gn_now_ms() + gn_test_ms(200)), 0);
    move_later(&m, conn, GN_DEADLINE_READ, 50, gn_test_ms(700));
    cr_expect_eq(gn_read(conn, buf, sizeof(buf), 20000), GN_ETIMEDOUT);
    pthread_join(m.tid, NULL);
    cr_expect_geq(gn_now_ms(), m.moved_at + gn_test_ms(700), "ended at the old deadline");
    cr_expect_lt(gn_now_ms() - m.moved_at, gn_test_ms(700) + SLACK_MS);
    end_pair(conn, lfd, peer);
}

/* ---- signals -------------------------------------------------------- */

#ifndef _WIN32 /* Windows has no signals to interrupt a call */
static atomic_int signals_caught;

static void count_signal(int sig)
{
    (void)sig;
    atomic_fetch_add(&signals_caught, 1);
}

struct pester {
    pthread_t target;
    atomic_bool stop;
};

/* Signals the target every 10 ms until stopped. */
static void *pester_main(void *arg)
{
    struct pester *p = arg;

    for (int i = 0; i < 2000 && !atomic_load(&p->stop); i++) {
        pthread_kill(p->target, SIGUSR1);
        usleep(10000);
    }
    return NULL;
}

Test(deadline, signals_neither_shorten_nor_extend_it)
{
    struct sigaction sa = {.sa_handler = count_signal}; /* no SA_RESTART: EINTR */
    struct pester p = {.target = pthread_self()};
    int lfd, peer;
    gn_conn *conn = dial_pair(&lfd, &peer);
    uint64_t t0, deadline;
    pthread_t tid;
    char buf[16];

    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    atomic_store(&signals_caught, 0);
    cr_assert_eq(pthread_create(&tid, NULL, pester_main, &p), 0);
    t0 = gn_now_ms();
    deadline = t0 + 400;
    cr_assert_eq(gn_conn_set_deadline(conn, GN_DEADLINE_BOTH, deadline), 0);
    cr_expect_eq(gn_read(conn, buf, sizeof(buf), 10000), GN_ETIMEDOUT);
    cr_expect_geq(gn_now_ms(), deadline, "a signal ended the wait early");
    cr_expect_lt(gn_now_ms() - t0, 400 + SLACK_MS, "a signal restarted the wait");
    cr_expect_eq(gn_read(conn, buf, sizeof(buf), 10000), GN_ETIMEDOUT, "still passed");
    atomic_store(&p.stop, true);
    pthread_join(tid, NULL);
    cr_expect_gt(atomic_load(&signals_caught), 0, "no signal arrived during the wait");
    signal(SIGUSR1, SIG_DFL);
    end_pair(conn, lfd, peer);
}
#endif

/* ---- a threaded server's connection -------------------------------- */

/* Sets a read deadline, waits out a silent client, tells it the result. */
static void wait_out_silence(gn_conn *conn)
{
    uint64_t deadline = gn_now_ms() + 200;
    char buf[16], reply[32];
    ssize_t n;

    if (gn_conn_set_deadline(conn, GN_DEADLINE_READ, deadline) < 0)
        return;
    n = gn_read(conn, buf, sizeof(buf), 10000);
    snprintf(reply, sizeof(reply), "%s %s\n", n == GN_ETIMEDOUT ? "timedout" : "other",
             gn_now_ms() >= deadline ? "late-enough" : "early");
    gn_write_all(conn, reply, strlen(reply), 5000);
}

Test(deadline, holds_on_a_threaded_servers_connection)
{
    char addr[GN_ENDPOINT_STRLEN], err[GN_ERRBUF_SIZE], line[64];
    gn_server *srv;
    gn_endpoint ep;
    gn_conn *conn;
    size_t len;

    cr_assert_eq(
        gn_serve_threads("127.0.0.1:0", wait_out_silence, NULL, NULL, &srv, err, sizeof(err)), 0,
        "%s", err);
    cr_assert_eq(gn_server_get_endpoint(srv, 0, &ep), 0);
    gn_endpoint_format(&ep, addr, sizeof(addr));
    cr_assert_eq(gn_dial(addr, GN_DEFAULT_TIMEOUT, NULL, &conn, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(gn_read_line(conn, line, sizeof(line), &len, 10000), 1);
    cr_expect_str_eq(line, "timedout late-enough");
    gn_close(conn);
    gn_server_close(srv, GN_NO_TIMEOUT);
}

Test(deadline, wrong_inputs_and_modes_say_so)
{
    int lfd, peer;
    gn_conn *conn = dial_pair(&lfd, &peer), *a, *b;
    const gn_handlers h = {0};
    gn_loop *loop;

    cr_expect_eq(gn_conn_set_deadline(NULL, GN_DEADLINE_READ, 1), GN_EINVAL);
    cr_expect_eq(gn_conn_set_deadline(conn, 0, 1), GN_EINVAL);
    cr_expect_eq(gn_conn_set_deadline(conn, 4, 1), GN_EINVAL);
    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_conn_pair(loop, NULL, &h, &h, NULL, &a, &b), 0);
    cr_expect_eq(gn_conn_set_deadline(a, GN_DEADLINE_READ, gn_now_ms() + 100), GN_EMODE);
    gn_abort(a);
    gn_abort(b);
    gn_loop_run(loop);
    gn_loop_free(loop);
    end_pair(conn, lfd, peer);
}
