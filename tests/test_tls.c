/*
 * TLS against real peers with certificates made at test time by the
 * openssl command: openssl s_client against gnezdo's servers (event loop
 * and threads), gnezdo's clients against openssl s_server; an expired
 * certificate, a wrong host name and a self-signed one each refused with
 * its reason; garbage instead of a ClientHello, a client that never
 * speaks, and an untrusted client certificate each dropped while the
 * server goes on serving others; client certificates, ALPN, insecure.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

static char ca[160], cert[160], key[160];

static void paths(void)
{
    gn_test_cert_path(ca, sizeof(ca), "ca.pem");
    gn_test_cert_path(cert, sizeof(cert), "server.pem");
    gn_test_cert_path(key, sizeof(key), "server.key");
}

/* `gnezdo listen tls://127.0.0.1:0 --echo` with the given certificate. */
static void start_server(struct gn_test_proc *p, const char *cert_file, const char *threads)
{
    char *argv[] = {GN_TEST_CLI,     "listen", "tls://127.0.0.1:0",
                    "--echo",        "--cert", (char *)cert_file,
                    "--key",         key,      threads ? "--threads" : NULL,
                    (char *)threads, NULL};

    gn_test_spawn(p, argv, NULL, true);
}

/* host:port of "tls://host:port" */
static const char *hostport(const char *addr)
{
    return strncmp(addr, "tls://", 6) == 0 ? addr + 6 : addr;
}

static void s_client_echo(const char *addr)
{
    struct gn_test_run run;
    /* s_client quits at the end of its input: keep it open a moment so
     * the echo can come back. */
    char *argv[] = {"/bin/sh",
                    "-c",
                    "(echo 'hello over tls'; sleep 1) | openssl s_client -brief -connect \"$0\" "
                    "-CAfile \"$1\" -verify_return_error -servername localhost",
                    (char *)hostport(addr),
                    ca,
                    NULL};

    cr_assert_eq(gn_test_run_argv(argv, NULL, 10000, &run), 0);
    cr_expect(strstr(run.out, "hello over tls\n"), "out: %s err: %s", run.out, run.err);
    cr_expect(strstr(run.err, "Verification: OK"), "%s", run.err);
    gn_test_run_free(&run);
}

Test(tls, openssl_s_client_against_the_event_loop_and_threaded_servers)
{
    struct gn_test_proc srv;

    paths();
    start_server(&srv, cert, NULL);
    s_client_echo(srv.addr);
    cr_expect_eq(gn_test_proc_wait(&srv, 3000, true), 0, "%s", srv.log);
    start_server(&srv, cert, "2");
    s_client_echo(srv.addr);
    cr_expect_eq(gn_test_proc_wait(&srv, 3000, true), 0, "%s", srv.log);
}

Test(tls, gnezdo_clients_against_openssl_s_server)
{
    char accept_arg[32], addr[64], err[GN_ERRBUF_SIZE], line[64];
    struct gn_test_proc s_server;
    gn_tls_options tls = {.ca_file = ca};
    gn_options opts = {.tls = &tls};
    struct gn_test_run run;
    gn_conn *conn = NULL;
    size_t len;
    int rc = GN_ECONNREFUSED, port;

    paths();
    port = gn_test_free_port();
    snprintf(accept_arg, sizeof(accept_arg), "127.0.0.1:%d", port);
    snprintf(addr, sizeof(addr), "tls://localhost:%d", port);
    /* -rev: s_server answers each line reversed */
    char *argv[] = {
        "/usr/bin/openssl", "s_server", "-accept", accept_arg, "-cert", cert, "-key", key, "-rev",
        "-quiet",           NULL};
    gn_test_spawn(&s_server, argv, NULL, false);
    for (int i = 0; i < 100 && rc == GN_ECONNREFUSED; i++) {
        rc = gn_dial(addr, gn_test_ms(3000), &opts, &conn, err, sizeof(err));
        if (rc == GN_ECONNREFUSED)
            usleep(20000);
    }
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(gn_write_all(conn, "abc\n", 4, gn_test_ms(3000)), 0);
    cr_expect_eq(gn_read_line(conn, line, sizeof(line), &len, gn_test_ms(3000)), 1);
    cr_expect_str_eq(line, "cba");
    gn_close(conn);

    /* the event-loop client through the CLI, same server */
    char *cli[] = {GN_TEST_CLI, "connect", addr, "--ca", ca, NULL};
    cr_assert_eq(gn_test_run_argv(cli, "gnezdo\n", 10000, &run), 0);
    cr_expect(strstr(run.out, "odzeng"), "out: %s err: %s", run.out, run.err);
    gn_test_run_free(&run);
    gn_test_proc_wait(&s_server, 2000, true);
}

/* ---- refusals with a reason ------------------------------------------- */

static void serve_echo(gn_conn *conn)
{
    char buf[256];
    ssize_t n;

    while ((n = gn_read(conn, buf, sizeof(buf), gn_test_ms(5000))) > 0)
        gn_write_all(conn, buf, (size_t)n, gn_test_ms(5000));
}

static gn_server *tls_server(const gn_tls_options *tls, char *addr, size_t len)
{
    gn_options opts = {.tls = tls};
    char err[GN_ERRBUF_SIZE];
    gn_server *srv;
    gn_endpoint ep;

    cr_assert_eq(
        gn_serve_threads("tls://127.0.0.1:0", serve_echo, &opts, NULL, &srv, err, sizeof(err)), 0,
        "%s", err);
    gn_server_get_endpoint(srv, 0, &ep);
    snprintf(addr, len, "tls://localhost:%u", (unsigned)gn_endpoint_port(&ep));
    return srv;
}

static int dial_with(const char *addr, const gn_tls_options *tls, char *err, size_t errlen)
{
    gn_options opts = {.tls = tls};
    gn_conn *conn;
    int rc = gn_dial(addr, gn_test_ms(3000), &opts, &conn, err, errlen);

    if (rc == 0) {
        /* TLS 1.3: a refused client certificate shows at the first read */
        char buf[8];
        ssize_t n;
        gn_write_all(conn, "ping", 4, gn_test_ms(2000));
        n = gn_read(conn, buf, sizeof(buf), gn_test_ms(2000));
        rc = n > 0 ? 0 : n == 0 ? GN_EEOF : (int)n;
        if (rc < 0)
            snprintf(err, errlen, "%s", gn_strerror(rc));
        gn_close(conn);
    }
    return rc;
}

Test(tls, expired_wrong_name_and_self_signed_are_refused_with_their_reason)
{
    static const struct {
        const char *cert, *key, *why;
    } cases[] = {
        {"expired.pem", "server.key", "certificate has expired"},
        {"other.pem", "server.key", "hostname mismatch"},
        {"self.pem", "self.key", "self-signed certificate"},
    };
    char addr[64], err[GN_ERRBUF_SIZE], c[160], k[160];

    paths();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gn_tls_options server = {.cert_file = gn_test_cert_path(c, sizeof(c), cases[i].cert),
                                 .key_file = gn_test_cert_path(k, sizeof(k), cases[i].key)};
        gn_tls_options client = {.ca_file = ca};
        gn_server *srv = tls_server(&server, addr, sizeof(addr));
        int rc = dial_with(addr, i == 2 ? NULL : &client, err, sizeof(err));

        cr_expect_eq(rc, GN_ECERT, "%s: %s: %s", cases[i].cert, gn_errname(rc), err);
        cr_expect(strstr(err, cases[i].why), "%s: %s", cases[i].cert, err);
        cr_expect(strstr(err, addr), "names the address: %s", err);
        gn_server_close(srv, 0);
    }
}

Test(tls, insecure_accepts_what_verification_refuses)
{
    char addr[64], err[GN_ERRBUF_SIZE], c[160], k[160];
    gn_tls_options server = {.cert_file = gn_test_cert_path(c, sizeof(c), "self.pem"),
                             .key_file = gn_test_cert_path(k, sizeof(k), "self.key")};
    gn_tls_options insecure = {.insecure = true};
    gn_server *srv;

    srv = tls_server(&server, addr, sizeof(addr));
    cr_expect_eq(dial_with(addr, &insecure, err, sizeof(err)), 0, "%s", err);
    gn_server_close(srv, 0);
}

/* ---- hostile clients: the server carries on ---------------------------- */

/* Waits up to ms for fd to be closed by the peer; true when it was. */
static bool closed_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char buf[256];

    while (poll(&p, 1, ms) > 0) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            return true;
    }
    return false;
}

Test(tls, garbage_silence_and_untrusted_client_certificates_are_dropped_not_fatal)
{
    char addr[64], numeric[64], err[GN_ERRBUF_SIZE], cc[160], ck[160], rc_[160], rk[160];
    gn_tls_options server = {.cert_file = cert,
                             .key_file = key,
                             .ca_file = ca,
                             .verify_client = true,
                             .handshake_timeout_ms = gn_test_ms(300)};
    gn_tls_options good = {.ca_file = ca,
                           .cert_file = gn_test_cert_path(cc, sizeof(cc), "client.pem"),
                           .key_file = gn_test_cert_path(ck, sizeof(ck), "client.key")};
    gn_tls_options rogue = {.ca_file = ca,
                            .cert_file = gn_test_cert_path(rc_, sizeof(rc_), "rogue.pem"),
                            .key_file = gn_test_cert_path(rk, sizeof(rk), "rogue.key")};
    gn_tls_options none = {.ca_file = ca};
    gn_server *srv;
    int garbage, silent;

    paths();
    server.cert_file = cert;
    server.key_file = key;
    server.ca_file = ca;
    srv = tls_server(&server, addr, sizeof(addr));
    snprintf(numeric, sizeof(numeric), "127.0.0.1:%s", strrchr(addr, ':') + 1);

    garbage = gn_test_connect_fd(numeric);
    silent = gn_test_connect_fd(numeric);
    cr_assert_geq(garbage, 0);
    cr_assert_geq(silent, 0);
    cr_assert_eq(write(garbage, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27), 27);
    cr_expect(closed_within(garbage, gn_test_ms(2000)),
              "garbage instead of a ClientHello: dropped");
    cr_expect_eq(dial_with(addr, &good, err, sizeof(err)), 0, "others still served: %s", err);
    cr_expect(closed_within(silent, gn_test_ms(2000)),
              "a client that never speaks: dropped after 300 ms (6 s under Valgrind)");
    cr_expect_neq(dial_with(addr, &rogue, err, sizeof(err)), 0, "untrusted client certificate");
    cr_expect_neq(dial_with(addr, &none, err, sizeof(err)), 0, "no client certificate");
    cr_expect_eq(dial_with(addr, &good, err, sizeof(err)), 0, "still serving: %s", err);
    close(garbage);
    close(silent);
    gn_server_close(srv, 0);
}

/* ---- what the handshake agreed on -------------------------------------- */

static gn_tls_info server_saw;
static int server_info_rc = 1;

static void note_info(gn_conn *conn)
{
    server_info_rc = gn_conn_get_tls_info(conn, &server_saw);
    serve_echo(conn);
}

Test(tls, alpn_client_certificate_and_session_info)
{
    char addr[64], err[GN_ERRBUF_SIZE], cc[160], ck[160];
    gn_tls_options server = {.ca_file = NULL, .verify_client = false, .alpn = "http/1.1"};
    gn_tls_options client = {.ca_file = ca,
                             .alpn = "h2,http/1.1",
                             .cert_file = gn_test_cert_path(cc, sizeof(cc), "client.pem"),
                             .key_file = gn_test_cert_path(ck, sizeof(ck), "client.key")};
    gn_options sopts = {.tls = &server}, copts = {.tls = &client};
    gn_tls_info info;
    gn_server *srv;
    gn_endpoint ep;
    gn_conn *conn;
    char buf[8];

    paths();
    server.cert_file = cert;
    server.key_file = key;
    server.ca_file = ca;
    server.verify_client = true;
    cr_assert_eq(
        gn_serve_threads("tls://127.0.0.1:0", note_info, &sopts, NULL, &srv, err, sizeof(err)), 0,
        "%s", err);
    gn_server_get_endpoint(srv, 0, &ep);
    snprintf(addr, sizeof(addr), "tls://127.0.0.1:%u", (unsigned)gn_endpoint_port(&ep));
    cr_assert_eq(gn_dial(addr, gn_test_ms(3000), &copts, &conn, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gn_write_all(conn, "x", 1, gn_test_ms(2000)), 0);
    cr_assert_eq(gn_read(conn, buf, sizeof(buf), gn_test_ms(2000)), 1);
    cr_assert_eq(gn_conn_get_tls_info(conn, &info), 0);
    cr_expect_str_eq(info.alpn, "http/1.1");
    cr_expect(strncmp(info.version, "TLSv1.", 6) == 0, "%s", info.version);
    cr_expect(strstr(info.peer, "localhost"), "%s", info.peer);
    cr_expect_eq(server_info_rc, 0);
    cr_expect(strstr(server_saw.peer, "gnezdo test client"), "%s", server_saw.peer);
    cr_expect_str_eq(server_saw.alpn, "http/1.1");
    gn_close(conn);
    gn_server_close(srv, 0);
}

Test(tls, bad_configuration_is_reported_with_the_file)
{
    gn_tls_options missing = {.cert_file = "/nonexistent/cert.pem", .key_file = "/nonexistent/k"};
    gn_tls_options none = {0};
    gn_tls_options alpn = {.alpn = ",,"};
    gn_options opts = {.tls = &missing};
    char err[GN_ERRBUF_SIZE];
    gn_server *srv;
    gn_conn *conn;

    cr_expect_eq(
        gn_serve_threads("tls://127.0.0.1:0", serve_echo, &opts, NULL, &srv, err, sizeof(err)),
        GN_ETLS);
    cr_expect(strstr(err, "/nonexistent/cert.pem"), "%s", err);
    opts.tls = &none;
    cr_expect_eq(
        gn_serve_threads("tls://127.0.0.1:0", serve_echo, &opts, NULL, &srv, err, sizeof(err)),
        GN_EINVAL);
    cr_expect(strstr(err, "certificate and a key"), "%s", err);
    opts.tls = &alpn;
    cr_expect_eq(gn_dial("tls://127.0.0.1:1", 1000, &opts, &conn, err, sizeof(err)), GN_EINVAL);
    cr_expect(strstr(err, "ALPN"), "%s", err);
}

/* A server that reads everything, then answers with the byte count and
 * a simple checksum. */
static void count_and_sum(gn_conn *conn)
{
    static char buf[65536];
    unsigned long long total = 0, sum = 0;
    char text[64];
    ssize_t n;

    while ((n = gn_read(conn, buf, sizeof(buf), gn_test_ms(5000))) > 0) {
        for (ssize_t i = 0; i < n; i++)
            sum = sum * 31 + (unsigned char)buf[i];
        total += (unsigned long long)n;
    }
    snprintf(text, sizeof(text), "%llu %llu\n", total, sum);
    gn_write_all(conn, text, strlen(text), gn_test_ms(5000));
}

#define BIG_REPLY (4u << 20)

static char big_reply[BIG_REPLY];

/* Writes more than the socket buffers hold, then returns: the server
 * closes the connection at once. */
static void reply_big(gn_conn *conn)
{
    gn_write_all(conn, big_reply, sizeof(big_reply), gn_test_ms(10000));
}

/* gn_write_all returns once the kernel has every byte: the records that
 * the last send could not take used to stay in the TLS buffer, and the
 * close right after dropped them (a peer reading slower than the server
 * writes lost the end).  Spurious EAGAIN (gn_faults_set) makes that
 * leftover certain rather than a matter of timing. */
Test(tls, a_blocking_reply_reaches_a_slow_reader_whole_before_the_close, .timeout = 120)
{
    static char got[BIG_REPLY];
    char addr[64], err[GN_ERRBUF_SIZE];
    gn_tls_options server = {0}, client = {0};
    gn_options sopts = {.tls = &server}, copts = {.tls = &client};
    gn_server *srv;
    gn_endpoint ep;
    gn_conn *conn;
    size_t off = 0;

    paths();
    server.cert_file = cert;
    server.key_file = key;
    client.ca_file = ca;
    for (size_t i = 0; i < sizeof(big_reply); i++)
        big_reply[i] = (char)(i % 251);
    cr_assert_eq(gn_faults_set("1:1:eagain", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(
        gn_serve_threads("tls://127.0.0.1:0", reply_big, &sopts, NULL, &srv, err, sizeof(err)), 0,
        "%s", err);
    gn_server_get_endpoint(srv, 0, &ep);
    snprintf(addr, sizeof(addr), "tls://localhost:%u", (unsigned)gn_endpoint_port(&ep));
    cr_assert_eq(gn_dial(addr, gn_test_ms(3000), &copts, &conn, err, sizeof(err)), 0, "%s", err);
    while (off < sizeof(got)) {
        ssize_t n = gn_read(conn, got + off, 16384, gn_test_ms(5000));
        cr_assert_gt(n, 0, "%zu of %zu bytes, then %s", off, sizeof(got),
                     n < 0 ? gn_strerror((int)n) : "the end");
        off += (size_t)n;
    }
    cr_expect_arr_eq(got, big_reply, sizeof(got));
    gn_close(conn);
    gn_server_close(srv, 0);
    gn_faults_set(NULL, NULL, 0);
}

Test(tls, send_file_goes_through_the_encryption)
{
    enum { SIZE = 3 << 20 };
    char addr[64], err[GN_ERRBUF_SIZE], path[] = "/tmp/gn_tls_file_XXXXXX", line[64], want[64];
    gn_tls_options server = {0}, client = {0};
    gn_options sopts = {.tls = &server}, copts = {.tls = &client};
    unsigned long long sum = 0;
    static unsigned char data[SIZE];
    gn_server *srv;
    gn_endpoint ep;
    gn_conn *conn;
    size_t len;
    int fd;

    paths();
    server.cert_file = cert;
    server.key_file = key;
    client.ca_file = ca;
    for (size_t i = 0; i < SIZE; i++) {
        data[i] = (unsigned char)(i * 2654435761u >> 13);
        sum = sum * 31 + data[i];
    }
    fd = mkstemp(path);
    cr_assert_eq(write(fd, data, SIZE), SIZE);
    unlink(path);
    cr_assert_eq(
        gn_serve_threads("tls://127.0.0.1:0", count_and_sum, &sopts, NULL, &srv, err, sizeof(err)),
        0, "%s", err);
    gn_server_get_endpoint(srv, 0, &ep);
    snprintf(addr, sizeof(addr), "tls://localhost:%u", (unsigned)gn_endpoint_port(&ep));
    cr_assert_eq(gn_dial(addr, gn_test_ms(3000), &copts, &conn, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gn_send_file(conn, fd, 0, SIZE), 0);
    cr_assert_eq(gn_shutdown(conn), 0);
    cr_assert_eq(gn_read_line(conn, line, sizeof(line), &len, gn_test_ms(5000)), 1);
    snprintf(want, sizeof(want), "%d %llu", SIZE, sum);
    cr_expect_str_eq(line, want);
    gn_close(conn);
    close(fd);
    gn_server_close(srv, 0);
}

/* A client offers the session its server handed out on the next
 * connection to the same place, and only there: a verifying client never
 * resumes what an insecure one was given. */
Test(tls, clients_resume_sessions_only_where_they_were_made)
{
    char addr[64], err[GN_ERRBUF_SIZE], buf[8];
    gn_tls_options server = {0}, client = {0}, insecure = {.insecure = true};
    gn_options sopts = {.tls = &server}, copts = {.tls = &client}, iopts = {.tls = &insecure};
    bool resumed[4];
    gn_tls_info info;
    gn_server *srv;
    gn_endpoint ep;
    gn_conn *conn;

    paths();
    server.cert_file = cert;
    server.key_file = key;
    client.ca_file = ca;
    cr_assert_eq(
        gn_serve_threads("tls://127.0.0.1:0", serve_echo, &sopts, NULL, &srv, err, sizeof(err)), 0,
        "%s", err);
    gn_server_get_endpoint(srv, 0, &ep);
    snprintf(addr, sizeof(addr), "tls://localhost:%u", (unsigned)gn_endpoint_port(&ep));
    for (int i = 0; i < 4; i++) {
        /* 0, 1: verifying; 2: insecure (its own session); 3: verifying again */
        cr_assert_eq(
            gn_dial(addr, gn_test_ms(3000), i == 2 ? &iopts : &copts, &conn, err, sizeof(err)), 0,
            "%s", err);
        cr_assert_eq(gn_write_all(conn, "x", 1, gn_test_ms(2000)), 0);
        cr_assert_eq(gn_read(conn, buf, sizeof(buf), gn_test_ms(2000)),
                     1); /* the tickets come first */
        cr_assert_eq(gn_conn_get_tls_info(conn, &info), 0);
        resumed[i] = info.resumed;
        gn_close(conn);
    }
    cr_expect_not(resumed[0], "the first connection is a full handshake");
    cr_expect(resumed[1], "the second resumes");
    cr_expect_not(resumed[2], "an insecure client is not given the verified session");
    cr_expect(resumed[3], "and the verifying client still has its own");
    gn_server_close(srv, 0);
}

static int closes_seen, connects_seen;

static void hs_connect(gn_conn *conn)
{
    (void)conn;
    connects_seen++;
}

static void hs_close(gn_conn *conn, int reason)
{
    (void)conn;
    (void)reason;
    closes_seen++;
}

static void close_now(gn_loop *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    gn_close(arg);
}

/* A server that accepts and never answers the ClientHello: gn_close during
 * the handshake ends the connection at once, without on_connect. */
Test(tls, close_during_the_handshake_is_immediate)
{
    const gn_handlers h = {.on_connect = hs_connect, .on_close = hs_close};
    gn_tls_options tls = {.insecure = true, .handshake_timeout_ms = 10000};
    gn_options opts = {.tls = &tls};
    char addr[64], err[GN_ERRBUF_SIZE];
    int lfd = gn_test_raw_listener("tls://", addr, sizeof(addr), 4);
    uint64_t timer;
    gn_loop *loop;
    gn_conn *conn;

    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_connect(loop, addr, &h, &opts, &conn, err, sizeof(err)), 0, "%s", err);
    gn_timer_start(loop, 100, 0, close_now, conn, &timer);
    cr_expect_neq(gn_test_run_loop_for(loop, 3000), GN_ETIMEDOUT,
                  "the loop ends soon after the close, not at the 10 s handshake timeout");
    cr_expect_eq(connects_seen, 0);
    cr_expect_eq(closes_seen, 1);
    gn_loop_free(loop);
    close(lfd);
}

/* A "server" that answers the ClientHello with garbage at once. */
static void *garbage_server(void *arg)
{
    int lfd = *(int *)arg, fd = accept(lfd, NULL, NULL);
    char buf[512];

    if (fd >= 0) {
        if (write(fd, "HTTP/1.0 400 what is this\r\n\r\n", 29) < 0 ||
            read(fd, buf, sizeof(buf)) < 0)
            buf[0] = 0;
        usleep(200000);
        close(fd);
    }
    return NULL;
}

static int early_connects, early_errors;

static void early_connect(gn_conn *conn)
{
    (void)conn;
    early_connects++;
}

static void early_error(gn_conn *conn, int code, const char *message)
{
    (void)conn;
    (void)message;
    early_errors += code == GN_ETLS;
}

Test(tls, a_handshake_that_fails_at_once_never_calls_on_connect)
{
    const gn_handlers h = {.on_connect = early_connect, .on_error = early_error};
    gn_tls_options tls = {.insecure = true};
    gn_options opts = {.tls = &tls};
    char addr[64], err[GN_ERRBUF_SIZE];
    int lfd = gn_test_raw_listener("tls://", addr, sizeof(addr), 4);
    pthread_t tid;
    gn_loop *loop;
    gn_conn *conn;

    pthread_create(&tid, NULL, garbage_server, &lfd);
    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_connect(loop, addr, &h, &opts, &conn, err, sizeof(err)), 0, "%s", err);
    gn_test_run_loop_for(loop, gn_test_ms(3000));
    cr_expect_eq(early_connects, 0, "on_connect only after a completed handshake");
    cr_expect_eq(early_errors, 1);
    gn_loop_free(loop);
    pthread_join(tid, NULL);
    close(lfd);
}

/* However long the paths, an insecure client's session never serves a
 * verifying one: the cache key is a hash of every field, not a cut-off
 * string. */
Test(tls, a_long_ca_path_does_not_let_an_insecure_session_be_resumed)
{
    char dir[1400] = "/tmp", ca_link[1500], addr[64], err[GN_ERRBUF_SIZE], buf[8], c[160], k[160];
    gn_tls_options server = {.cert_file = gn_test_cert_path(c, sizeof(c), "self.pem"),
                             .key_file = gn_test_cert_path(k, sizeof(k), "self.key")};
    gn_tls_options insecure = {.insecure = true}, verifying = {0};
    gn_options sopts = {.tls = &server}, iopts = {.tls = &insecure}, vopts = {.tls = &verifying};
    gn_server *srv;
    gn_endpoint ep;
    gn_conn *conn;

    paths();
    snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/gn_long_%d", (int)getpid());
    mkdir(dir, 0700);
    for (int i = 0; i < 5; i++) {
        size_t used = strlen(dir);
        dir[used++] = '/';
        memset(dir + used, 'a' + i, 200);
        dir[used + 200] = '\0';
        cr_assert_eq(mkdir(dir, 0700), 0, "%s", strerror(errno));
    }
    snprintf(ca_link, sizeof(ca_link), "%s/ca.pem", dir);
    cr_assert_eq(symlink(ca, ca_link), 0);
    insecure.ca_file = verifying.ca_file = ca_link; /* the same path for both */
    cr_assert_eq(
        gn_serve_threads("tls://127.0.0.1:0", serve_echo, &sopts, NULL, &srv, err, sizeof(err)), 0,
        "%s", err);
    gn_server_get_endpoint(srv, 0, &ep);
    snprintf(addr, sizeof(addr), "tls://localhost:%u", (unsigned)gn_endpoint_port(&ep));
    cr_assert_eq(gn_dial(addr, gn_test_ms(3000), &iopts, &conn, err, sizeof(err)), 0, "%s", err);
    gn_write_all(conn, "x", 1, gn_test_ms(2000));
    gn_read(conn, buf, sizeof(buf), gn_test_ms(2000)); /* takes the session ticket */
    gn_close(conn);
    cr_expect_eq(gn_dial(addr, gn_test_ms(3000), &vopts, &conn, err, sizeof(err)), GN_ECERT,
                 "the verifying client verifies: %s", err);
    gn_server_close(srv, 0);
    char base[64];
    snprintf(base, sizeof(base), "/tmp/gn_long_%d", (int)getpid());
    char *rm[] = {"/bin/rm", "-rf", base, NULL};
    struct gn_test_run run;
    if (gn_test_run_argv(rm, NULL, 10000, &run) == 0)
        gn_test_run_free(&run);
}

/* ---- TLS 1.2 suites, old peers (issue 9) -------------------------------- */

static char rsa_cert[160], rsa_key[160];

/* The RSA certificate: the suites refused by default below (RSA key
 * exchange, ECDHE-RSA with CBC) need one, so with it their refusal is the
 * cipher list's doing, not the key's. */
static void rsa_paths(void)
{
    char script[512];
    struct gn_test_run run;
    char *argv[] = {"/bin/sh", script, (char *)gn_test_certs(), "rsa", NULL};

    paths();
    snprintf(script, sizeof(script), "%s/tests/make_certs.sh", GN_TEST_SOURCE_DIR);
    cr_assert_eq(gn_test_run_argv(argv, NULL, 60000, &run), 0);
    cr_assert_eq(run.status, 0, "make_certs.sh rsa: %s", run.err);
    gn_test_run_free(&run);
    gn_test_cert_path(rsa_cert, sizeof(rsa_cert), "rsa.pem");
    gn_test_cert_path(rsa_key, sizeof(rsa_key), "rsa.key");
}

/* openssl s_client offering only `suites` over `version` (-tls1_2,
 * -tls1): true when the handshake completed, the suite agreed in got. */
static bool s_client_suite(const char *addr, const char *version, const char *suites, char *got,
                           size_t len)
{
    struct gn_test_run run;
    char *argv[] = {
        "/usr/bin/openssl", "s_client", "-brief",       "-connect", (char *)hostport(addr),
        (char *)version,    "-cipher",  (char *)suites, NULL};
    const char *suite;
    bool ok;

    cr_assert_eq(gn_test_run_argv(argv, NULL, 10000, &run), 0);
    ok = run.status == 0 && strstr(run.err, "CONNECTION ESTABLISHED");
    suite = strstr(run.err, "Ciphersuite: ");
    snprintf(got, len, "%.*s", suite ? (int)strcspn(suite + 13, "\n") : 0, suite ? suite + 13 : "");
    gn_test_run_free(&run);
    return ok;
}

/* The default list against one server: forward-secret AEAD only, the
 * server's order first. */
static void default_suites_on(const char *addr)
{
    char got[64];

    cr_expect_not(s_client_suite(addr, "-tls1_2", "AES128-GCM-SHA256", got, sizeof(got)),
                  "RSA key exchange (no forward secrecy) refused, got %s", got);
    cr_expect_not(s_client_suite(addr, "-tls1_2", "ECDHE-RSA-AES128-SHA", got, sizeof(got)),
                  "CBC refused, got %s", got);
    cr_expect(s_client_suite(addr, "-tls1_2",
                             "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256", got,
                             sizeof(got)));
    cr_expect_str_eq(got, "ECDHE-RSA-AES128-GCM-SHA256",
                     "the server's preference, not the client's first");
}

Test(tls, tls12_defaults_to_forward_secret_aead_suites_in_the_servers_order, .timeout = 60)
{
    gn_tls_options tls = {0};
    struct gn_test_proc srv;
    char addr[64];
    gn_server *threaded;

    rsa_paths();
    tls.cert_file = rsa_cert;
    tls.key_file = rsa_key;
    threaded = tls_server(&tls, addr, sizeof(addr));
    default_suites_on(addr);
    gn_server_close(threaded, 0);

    char *argv[] = {GN_TEST_CLI, "listen", "tls://127.0.0.1:0",
                    "--echo",    "--cert", rsa_cert,
                    "--key",     rsa_key,  NULL};
    gn_test_spawn(&srv, argv, NULL, true);
    default_suites_on(srv.addr);
    cr_expect_eq(gn_test_proc_wait(&srv, 3000, true), 0, "%s", srv.log);
}

Test(tls, ciphers_widens_or_is_refused_naming_the_list)
{
    gn_tls_options tls = {.ciphers = "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256"};
    gn_options opts = {.tls = &tls};
    char addr[64], err[GN_ERRBUF_SIZE], got[64];
    gn_server *srv;
    gn_conn *conn;

    rsa_paths();
    tls.cert_file = rsa_cert;
    tls.key_file = rsa_key;
    srv = tls_server(&tls, addr, sizeof(addr));
    cr_expect(s_client_suite(addr, "-tls1_2", "ECDHE-RSA-AES128-SHA", got, sizeof(got)));
    cr_expect_str_eq(got, "ECDHE-RSA-AES128-SHA");
    gn_server_close(srv, 0);

    tls.ciphers = "NO-SUCH-SUITE";
    cr_expect_eq(
        gn_serve_threads("tls://127.0.0.1:0", serve_echo, &opts, NULL, &srv, err, sizeof(err)),
        GN_EINVAL);
    cr_expect(strstr(err, "'NO-SUCH-SUITE'"), "%s", err);
    tls.cert_file = tls.key_file = NULL;
    cr_expect_eq(gn_dial("tls://127.0.0.1:1", 3000, &opts, &conn, err, sizeof(err)), GN_EINVAL);
    cr_expect(strstr(err, "'NO-SUCH-SUITE'"), "a client's list too: %s", err);
}

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[4096];

static void keep_log(gn_log_level level, const char *message, void *arg)
{
    size_t have;

    (void)level;
    (void)arg;
    pthread_mutex_lock(&log_lock);
    have = strlen(log_text);
    snprintf(log_text + have, sizeof(log_text) - have, "%s\n", message);
    pthread_mutex_unlock(&log_lock);
}

static bool logged(const char *text)
{
    bool found;

    pthread_mutex_lock(&log_lock);
    found = strstr(log_text, text) != NULL;
    pthread_mutex_unlock(&log_lock);
    return found;
}

Test(tls, peers_with_only_tls_1_0_or_1_1_hear_that_gnezdo_needs_1_2, .timeout = 60)
{
    char accept_arg[32], addr[64], err[GN_ERRBUF_SIZE], got[64];
    gn_tls_options tls = {0};
    struct gn_test_proc s_server;
    gn_options opts = {.tls = &tls};
    gn_server *srv;
    gn_conn *conn;
    int rc = GN_ECONNREFUSED, port;

    rsa_paths();
    /* an old client: the threaded server logs why it dropped it */
    gn_log_set(keep_log, GN_LOG_WARN, NULL);
    tls.cert_file = rsa_cert;
    tls.key_file = rsa_key;
    srv = tls_server(&tls, addr, sizeof(addr));
    cr_expect_not(s_client_suite(addr, "-tls1", "DEFAULT@SECLEVEL=0", got, sizeof(got)));
    for (int i = 0; i < 100 && !logged("gnezdo needs TLS 1.2 or later"); i++)
        usleep(20000);
    cr_expect(logged("gnezdo needs TLS 1.2 or later"), "log: %s", log_text);
    gn_server_close(srv, 0);
    gn_log_set(NULL, GN_LOG_WARN, NULL);

    /* an old server: the client's error says it */
    tls = (gn_tls_options){.ca_file = ca};
    port = gn_test_free_port();
    snprintf(accept_arg, sizeof(accept_arg), "127.0.0.1:%d", port);
    snprintf(addr, sizeof(addr), "tls://localhost:%d", port);
    char *argv[] = {"/usr/bin/openssl",
                    "s_server",
                    "-accept",
                    accept_arg,
                    "-cert",
                    rsa_cert,
                    "-key",
                    rsa_key,
                    "-tls1_1",
                    "-cipher",
                    "DEFAULT@SECLEVEL=0",
                    "-quiet",
                    NULL};
    gn_test_spawn(&s_server, argv, NULL, false);
    for (int i = 0; i < 100 && rc == GN_ECONNREFUSED; i++) {
        rc = gn_dial(addr, 3000, &opts, &conn, err, sizeof(err));
        if (rc == GN_ECONNREFUSED)
            usleep(20000);
    }
    cr_expect_eq(rc, GN_ETLS, "%s", err);
    cr_expect(strstr(err, "gnezdo needs TLS 1.2 or later"), "%s", err);
    gn_test_proc_wait(&s_server, 2000, true);
}

Test(tls, the_event_loop_servers_handshake_timeout_names_the_peer)
{
    gn_tls_options tls = {.handshake_timeout_ms = 100};
    gn_options opts = {.tls = &tls};
    gn_handlers h = {0};
    char addr[64], want[96];
    struct sockaddr_in local;
    socklen_t len = sizeof(local);
    gn_server *srv;
    gn_loop *loop;
    int fd;

    paths();
    tls.cert_file = cert;
    tls.key_file = key;
    gn_log_set(keep_log, GN_LOG_WARN, NULL);
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "tls://127.0.0.1:0", &h, &opts, addr, sizeof(addr));
    fd = gn_test_connect_fd(hostport(addr));
    cr_assert_geq(fd, 0);
    getsockname(fd, (struct sockaddr *)&local, &len);
    snprintf(want, sizeof(want), "127.0.0.1:%u: TLS handshake timed out: dropped",
             (unsigned)ntohs(local.sin_port));
    for (int i = 0; i < 20 && !logged(want); i++)
        gn_test_run_loop_for(loop, 100);
    cr_expect(logged(want), "want '%s' in: %s", want, log_text);
    gn_log_set(NULL, GN_LOG_WARN, NULL);
    close(fd);
    gn_server_close(srv, 0);
    gn_loop_free(loop);
}
