/*
 * Blocking clients over real loopback sockets: dial (refused, bad name,
 * malformed, unanswered SYN), every timeout as a whole-call deadline
 * (signals included), lines across 1-byte writes, exact reads, writes to
 * a peer that never reads, files, wrong-mode calls, no descriptor leaks.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

static uint64_t ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int raw_listener(char *addr, size_t len, int backlog)
{
    return gn_test_raw_listener("", addr, len, backlog);
}

/* Dial addr and accept the server side on lfd. */
static gn_conn *dial_pair(int lfd, const char *addr, int *peer)
{
    char err[GN_ERRBUF_SIZE];
    gn_conn *conn = NULL;

    cr_assert_eq(gn_dial(addr, 2000, NULL, &conn, err, sizeof(err)), 0, "%s", err);
    *peer = accept(lfd, NULL, NULL);
    cr_assert_geq(*peer, 0);
    return conn;
}

Test(blocking, dial_refused_names_the_address_once)
{
    char addr[64], err[GN_ERRBUF_SIZE], want[GN_ERRBUF_SIZE];
    int lfd = raw_listener(addr, sizeof(addr), 1);
    gn_conn *conn = NULL;

    close(lfd); /* nothing listens there now */
    cr_expect_eq(gn_dial(addr, 2000, NULL, &conn, err, sizeof(err)), GN_ECONNREFUSED);
    cr_expect_null(conn);
    /* The address once, the reason once: nothing said twice. */
    snprintf(want, sizeof(want), "connect to %s: connection refused", addr);
    cr_expect_str_eq(err, want);
}

Test(blocking, dial_refused_over_tls_names_the_address_once)
{
#ifdef _WIN32
    cr_skip_test("TLS is not built on Windows (docs/windows.md)");
#endif
    gn_tls_options tls = {.insecure = true};
    gn_options opts = {.tls = &tls};
    char addr[64], err[GN_ERRBUF_SIZE], want[GN_ERRBUF_SIZE];
    int lfd = gn_test_raw_listener("tls://", addr, sizeof(addr), 1);
    gn_conn *conn = NULL;

    close(lfd);
    cr_expect_eq(gn_dial(addr, 2000, &opts, &conn, err, sizeof(err)), GN_ECONNREFUSED);
    snprintf(want, sizeof(want), "connect to %s: connection refused", addr);
    cr_expect_str_eq(err, want);
}

Test(blocking, dial_unknown_name_and_malformed_address)
{
    char err[GN_ERRBUF_SIZE];
    gn_conn *conn = NULL;
    int rc = gn_dial("no-such-host.invalid:80", 5000, NULL, &conn, err, sizeof(err));

    cr_expect(rc == GN_ENONAME || rc == GN_ETEMPNAME, "%s: %s", gn_errname(rc), err);
    cr_expect(strncmp(err, "'no-such-host.invalid': ", 24) == 0, "the host at fault: %s", err);
    cr_expect_null(strstr(err + 24, "no-such-host"), "named once: %s", err);
    cr_expect_eq(gn_dial("1.2.3:80", 1000, NULL, &conn, err, sizeof(err)), GN_EBADADDR);
    cr_expect(strstr(err, "1.2.3:80"), "%s", err);
    cr_expect_eq(gn_dial("127.0.0.1:65536", 1000, NULL, &conn, err, sizeof(err)), GN_EBADADDR);
    cr_expect(strstr(err, "65536"), "%s", err);
    cr_expect_eq(gn_dial(NULL, 1000, NULL, &conn, err, sizeof(err)), GN_EINVAL);
    cr_expect_eq(gn_dial("127.0.0.1:80", 1000, NULL, NULL, err, sizeof(err)), GN_EINVAL);
    cr_expect_null(conn);
}

Test(blocking, dial_to_unanswered_syn_times_out_on_time)
{
    char addr[64], err[GN_ERRBUF_SIZE];
    int lfd = raw_listener(addr, sizeof(addr), 0), fillers[8];
    struct sockaddr_in sin;
    gn_conn *conn = NULL;
    uint64_t t0;
    int rc;

    /* A full accept queue drops further SYNs: the connect can only time out. */
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)atoi(strchr(addr, ':') + 1));
    for (int i = 0; i < 8; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[i], (struct sockaddr *)&sin, sizeof(sin));
    }
    t0 = ms_now();
    rc = gn_dial(addr, 300, NULL, &conn, err, sizeof(err));
    cr_expect_eq(rc, GN_ETIMEDOUT, "%s: %s", gn_errname(rc), err);
    cr_expect_geq(ms_now() - t0, 290);
    cr_expect_lt(ms_now() - t0, 2000);
    for (int i = 0; i < 8; i++)
        close(fillers[i]);
    close(lfd);
}

Test(blocking, read_with_nothing_arriving_returns_after_the_deadline)
{
    char addr[64], buf[16];
    int lfd = raw_listener(addr, sizeof(addr), 4), peer;
    gn_conn *conn = dial_pair(lfd, addr, &peer);
    uint64_t t0 = ms_now();

    cr_expect_eq(gn_read(conn, buf, sizeof(buf), 250), GN_ETIMEDOUT);
    cr_expect_geq(ms_now() - t0, 245);
    cr_expect_lt(ms_now() - t0, 1500);
    t0 = ms_now();
    cr_expect_eq(gn_wait_readable(conn, 100), GN_ETIMEDOUT);
    cr_expect_geq(ms_now() - t0, 95);
    cr_assert_eq(write(peer, "x", 1), 1);
    cr_expect_eq(gn_wait_readable(conn, 1000), 0);
    cr_expect_eq(gn_read(conn, buf, sizeof(buf), 1000), 1);
    close(peer);
    cr_expect_eq(gn_read(conn, buf, sizeof(buf), 1000), 0, "end of stream");
    gn_close(conn);
    close(lfd);
}

#ifndef _WIN32 /* Windows has no signals to interrupt a call */
static void on_usr1(int sig)
{
    (void)sig;
}

struct pester {
    pthread_t target;
    volatile int stop;
};

static void *pester_main(void *arg)
{
    struct pester *p = arg;

    while (!p->stop) {
        pthread_kill(p->target, SIGUSR1);
        usleep(10000);
    }
    return NULL;
}

Test(blocking, signals_neither_end_a_wait_early_nor_extend_it)
{
    struct sigaction sa = {.sa_handler = on_usr1}; /* no SA_RESTART: EINTR */
    struct pester p = {.target = pthread_self()};
    char addr[64], buf[16];
    int lfd = raw_listener(addr, sizeof(addr), 4), peer;
    gn_conn *conn = dial_pair(lfd, addr, &peer);
    pthread_t tid;
    uint64_t t0;

    sigaction(SIGUSR1, &sa, NULL);
    pthread_create(&tid, NULL, pester_main, &p);
    t0 = ms_now();
    cr_expect_eq(gn_read(conn, buf, sizeof(buf), 300), GN_ETIMEDOUT);
    cr_expect_geq(ms_now() - t0, 295);
    cr_expect_lt(ms_now() - t0, 1000, "each EINTR must not restart the full timeout");
    p.stop = 1;
    pthread_join(tid, NULL);
    gn_close(conn);
    close(peer);
    close(lfd);
}
#endif

struct dribble {
    int fd;
    const char *text;
};

static void *dribble_main(void *arg)
{
    struct dribble *d = arg;

    for (const char *c = d->text; *c; c++) {
        if (write(d->fd, c, 1) != 1)
            break;
        usleep(1000);
    }
    close(d->fd);
    return NULL;
}

Test(blocking, lines_across_one_byte_writes_and_a_last_line_without_newline)
{
    char addr[64], line[64];
    int lfd = raw_listener(addr, sizeof(addr), 4), peer;
    gn_conn *conn = dial_pair(lfd, addr, &peer);
    struct dribble d = {.fd = peer, .text = "hello world\r\n  kept spaces \n\nlast"};
    pthread_t tid;
    size_t len;

    pthread_create(&tid, NULL, dribble_main, &d);
    cr_expect_eq(gn_read_line(conn, line, sizeof(line), &len, 2000), 1);
    cr_expect_str_eq(line, "hello world");
    cr_expect_eq(gn_read_line(conn, line, sizeof(line), &len, 2000), 1);
    cr_expect_str_eq(line, "  kept spaces ");
    cr_expect_eq(gn_read_line(conn, line, sizeof(line), &len, 2000), 1);
    cr_expect_eq(len, 0);
    cr_expect_eq(gn_read_line(conn, line, sizeof(line), &len, 2000), 0, "ended without newline");
    cr_expect_str_eq(line, "last");
    cr_expect_eq(gn_read_line(conn, line, sizeof(line), &len, 2000), GN_EEOF);
    pthread_join(tid, NULL);
    gn_close(conn);
    close(lfd);
}

Test(blocking, too_long_line_is_refused_and_nothing_is_lost)
{
    char addr[64], line[8], rest[32];
    int lfd = raw_listener(addr, sizeof(addr), 4), peer;
    gn_conn *conn = dial_pair(lfd, addr, &peer);
    size_t len;

    cr_assert_eq(write(peer, "0123456789\nok\n", 14), 14);
    cr_expect_eq(gn_read_line(conn, line, sizeof(line), &len, 1000), GN_EMSGSIZE);
    cr_expect_eq(gn_read_exact(conn, rest, 11, 1000), 0);
    cr_expect_eq(memcmp(rest, "0123456789\n", 11), 0);
    cr_expect_eq(gn_read_line(conn, line, sizeof(line), &len, 1000), 1);
    cr_expect_str_eq(line, "ok");
    close(peer);
    cr_expect_eq(gn_read_exact(conn, rest, 1, 1000), GN_EEOF);
    gn_close(conn);
    close(lfd);
}

Test(blocking, read_exact_and_write_all_move_a_megabyte_intact)
{
    enum { SIZE = 1 << 20 };
    char addr[64];
    int lfd = raw_listener(addr, sizeof(addr), 4), peer;
    gn_conn *conn = dial_pair(lfd, addr, &peer);
    unsigned char *out = malloc(SIZE), *in = malloc(SIZE);
    gn_conn_stats st;
    size_t got = 0;

    for (size_t i = 0; i < SIZE; i++)
        out[i] = (unsigned char)(i * 7 + i / 251);
    cr_assert_eq(gn_write_all(conn, out, SIZE, 5000), 0); /* loopback buffers hold 1 MiB */
    while (got < SIZE) {
        ssize_t n = read(peer, in + got, SIZE - got);
        cr_assert_gt(n, 0);
        got += (size_t)n;
    }
    cr_expect_eq(memcmp(in, out, SIZE), 0);
    got = 0;
    while (got < SIZE) {
        ssize_t n = write(peer, out + got, SIZE - got > 4096 ? 4096 : SIZE - got);
        cr_assert_gt(n, 0);
        got += (size_t)n;
        if (got % (256 * 1024) == 0)
            cr_assert_eq(gn_read_exact(conn, in + got - 256 * 1024, 256 * 1024, 5000), 0);
    }
    cr_expect_eq(memcmp(in, out, SIZE), 0);
    cr_assert_eq(gn_conn_get_stats(conn, &st), 0);
    cr_expect_eq(st.bytes_out, SIZE);
    cr_expect_eq(st.bytes_in, SIZE);
    free(in);
    free(out);
    gn_close(conn);
    close(peer);
    close(lfd);
}

Test(blocking, write_to_a_peer_that_never_reads_times_out)
{
    enum { SIZE = 64 << 20 };
    char addr[64];
    int lfd = raw_listener(addr, sizeof(addr), 4), peer;
    gn_conn *conn = dial_pair(lfd, addr, &peer);
    char *big = calloc(1, SIZE);
    gn_conn_stats st;
    uint64_t t0 = ms_now();

    cr_expect_eq(gn_write_all(conn, big, SIZE, 300), GN_ETIMEDOUT);
    cr_expect_geq(ms_now() - t0, 295);
    cr_expect_lt(ms_now() - t0, 2000);
    gn_conn_get_stats(conn, &st);
    cr_expect_gt(st.bytes_out, 0);
    cr_expect_lt(st.bytes_out, SIZE);
    close(peer); /* now the writer sees the peer gone */
    cr_expect_neq(gn_write_all(conn, big, SIZE, 2000), 0);
    free(big);
    gn_close(conn);
    close(lfd);
}

Test(blocking, send_file_moves_the_file_and_reports_a_short_one)
{
    enum { SIZE = 3 << 20 };
    char addr[64], path[] = "/tmp/gn_blocking_XXXXXX";
    int lfd = raw_listener(addr, sizeof(addr), 4), peer, fd = mkstemp(path);
    gn_conn *conn = dial_pair(lfd, addr, &peer);
    unsigned char *data = malloc(SIZE), *in = malloc(SIZE);
    size_t got = 0;

    for (size_t i = 0; i < SIZE; i++)
        data[i] = (unsigned char)(i ^ (i >> 9));
    cr_assert_eq(write(fd, data, SIZE), SIZE);
    unlink(path);
    /* The reader drains concurrently from this thread between sends. */
    cr_assert_eq(gn_send_file(conn, fd, 0, 1 << 20), 0);
    while (got < (1 << 20)) {
        ssize_t n = read(peer, in + got, SIZE - got);
        cr_assert_gt(n, 0);
        got += (size_t)n;
    }
    cr_assert_eq(gn_send_file(conn, fd, 1 << 20, 1 << 20), 0);
    while (got < (2 << 20)) {
        ssize_t n = read(peer, in + got, SIZE - got);
        cr_assert_gt(n, 0);
        got += (size_t)n;
    }
    cr_expect_eq(memcmp(in, data, 2 << 20), 0);
    cr_expect_eq(gn_send_file(conn, fd, SIZE - 10, 100), GN_EEOF, "file shorter than asked");
    cr_expect_eq(gn_send_file(conn, -1, 0, 10), GN_EINVAL);
    close(fd);
    free(data);
    free(in);
    gn_close(conn);
    close(peer);
    close(lfd);
}

Test(blocking, calls_of_the_wrong_mode_say_so)
{
    char addr[64], buf[8], err[GN_ERRBUF_SIZE];
    int lfd = raw_listener(addr, sizeof(addr), 4), peer;
    gn_conn *conn = dial_pair(lfd, addr, &peer), *async = NULL;
    const gn_handlers h = {0};
    gn_loop *loop;
    size_t len;

    cr_expect(gn_conn_is_blocking(conn));
    cr_expect_null(gn_conn_loop(conn));
    cr_expect_eq(gn_send(conn, "x", 1), GN_EMODE);
    cr_expect_eq(gn_pause_reading(conn), GN_EMODE);
    cr_expect_eq(gn_resume_reading(conn), GN_EMODE);
    cr_expect_eq(gn_conn_set_handlers(conn, &h), GN_EMODE);
    cr_expect_str_neq(gn_strerror(GN_EMODE), "");

    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_connect(loop, addr, &h, NULL, &async, err, sizeof(err)), 0, "%s", err);
    cr_expect_not(gn_conn_is_blocking(async));
    cr_expect_eq(gn_read(async, buf, sizeof(buf), 10), GN_EMODE);
    cr_expect_eq(gn_read_line(async, buf, sizeof(buf), &len, 10), GN_EMODE);
    cr_expect_eq(gn_write_all(async, "x", 1, 10), GN_EMODE);
    cr_expect_eq(gn_wait_readable(async, 10), GN_EMODE);
    cr_expect_eq(gn_read(NULL, buf, sizeof(buf), 10), GN_EINVAL);
    gn_abort(async);
    gn_test_run_loop_for(loop, 2000);
    gn_loop_free(loop);

    gn_shutdown(conn);
    cr_expect_eq(gn_write_all(conn, "x", 1, 100), GN_ECLOSED, "write after shutdown");
    cr_expect_eq(read(peer, buf, sizeof(buf)), 0, "the peer saw FIN");
    gn_close(conn);
    close(peer);
    close(lfd);
}

Test(blocking, endpoints_and_no_descriptor_leaks)
{
    char addr[64], local[GN_ENDPOINT_STRLEN], remote[GN_ENDPOINT_STRLEN], text[GN_ENDPOINT_STRLEN];
    int lfd = raw_listener(addr, sizeof(addr), 64), before = gn_test_count_fds();

    for (int i = 0; i < 50; i++) {
        int peer;
        gn_conn *conn = dial_pair(lfd, addr, &peer);
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        gn_endpoint ep;

        gn_endpoint_format(gn_conn_remote(conn), remote, sizeof(remote));
        cr_expect_str_eq(remote, addr);
        getpeername(peer, (struct sockaddr *)&ss, &sl);
        gn_endpoint_from_sockaddr((struct sockaddr *)&ss, sl, GN_TRANSPORT_TCP, &ep);
        gn_endpoint_format(&ep, text, sizeof(text));
        gn_endpoint_format(gn_conn_local(conn), local, sizeof(local));
        cr_expect_str_eq(local, text);
        if (i % 2)
            gn_abort(conn);
        else
            gn_close(conn);
        close(peer);
    }
    cr_expect_eq(gn_test_count_fds(), before);
    close(lfd);
}

Test(blocking, a_long_line_grows_the_buffer_up_to_the_limit)
{
    enum { LINE = 100000 };
    char addr[64];
    int lfd = raw_listener(addr, sizeof(addr), 4), peer;
    gn_conn *conn = dial_pair(lfd, addr, &peer);
    static char text[LINE + 1], line[LINE + 16];
    size_t len, sent = 0;

    memset(text, 'x', LINE);
    text[LINE] = '\n';
    while (sent < sizeof(text)) { /* the kernel takes it in pieces */
        ssize_t n = write(peer, text + sent, sizeof(text) - sent);
        cr_assert_gt(n, 0);
        sent += (size_t)n;
    }
    cr_assert_eq(write(peer, "tail\n", 5), 5);
    cr_expect_eq(gn_read_line(conn, line, sizeof(line), &len, 2000), 1);
    cr_expect_eq(len, LINE);
    cr_expect_eq(memcmp(line, text, LINE), 0);
    cr_expect_eq(gn_read_line(conn, line, sizeof(line), &len, 2000), 1);
    cr_expect_str_eq(line, "tail");
    gn_close(conn);
    close(peer);
    close(lfd);
}
