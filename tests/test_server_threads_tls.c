/*
 * A threaded TLS server over real loopback sockets: close_notify when the
 * handler returns, when the idle timeout ends a connection (in the
 * handler, or on the accepting thread with wait_for_data) and on
 * gn_server_close, read by Python's ssl with suppress_ragged_eofs=False
 * and unwrap(); silent TCP sockets do not keep a fresh TLS client out
 * (the handshake runs on the accepting thread, its deadline from
 * accept); TLS 1.2 session-ID resumption (openssl s_client -reconnect).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

static gn_server *serve(gn_thread_fn h, uint32_t idle_ms, const gn_thread_options *topts,
                        char *port, size_t len)
{
    gn_tls_options tls = {.cert_file = cert, .key_file = key};
    gn_options opts = {.tls = &tls, .idle_timeout_ms = idle_ms};
    char err[GN_ERRBUF_SIZE];
    gn_server *srv = NULL;
    gn_endpoint ep;

    paths();
    cr_assert_eq(gn_serve_threads("tls://127.0.0.1:0", h, &opts, topts, &srv, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(gn_server_get_endpoint(srv, 0, &ep), 0);
    snprintf(port, len, "%u", (unsigned)gn_endpoint_port(&ep));
    return srv;
}

/* Python's ssl client: sends argv[3] (if any), reads to the end with
 * suppress_ragged_eofs=False (a ragged end raises), then unwrap()s. */
static const char python_client[] =
    "import socket, ssl, sys\n"
    "port, ca, send = int(sys.argv[1]), sys.argv[2], sys.argv[3]\n"
    "ctx = ssl.create_default_context(cafile=ca)\n"
    "# Python sets OpenSSL's IGNORE_UNEXPECTED_EOF: a bare EOF would pass\n"
    "ctx.options &= ~getattr(ssl, 'OP_IGNORE_UNEXPECTED_EOF', 0)\n"
    "s = socket.create_connection(('127.0.0.1', port), timeout=20)\n"
    "t = ctx.wrap_socket(s, server_hostname='localhost', suppress_ragged_eofs=False)\n"
    "if send:\n"
    "    t.sendall(send.encode())\n"
    "got = b''\n"
    "try:\n"
    "    while True:\n"
    "        b = t.recv(4096)\n"
    "        if not b:\n"
    "            break\n"
    "        got += b\n"
    "except ssl.SSLEOFError as e:\n"
    "    print('ragged EOF:', e, repr(got)); sys.exit(0)\n"
    "except OSError as e:\n"
    "    print('error:', type(e).__name__, e, repr(got)); sys.exit(0)\n"
    "try:\n"
    "    t.unwrap()\n"
    "    print('close_notify unwrapped', repr(got.decode()))\n"
    "except OSError as e:\n"
    "    print('close_notify, unwrap failed:', type(e).__name__, e, repr(got.decode()))\n";

struct python_run {
    pthread_t tid;
    const char *port, *send;
    struct gn_test_run run;
    int rc;
};

static void *python_main(void *arg)
{
    struct python_run *p = arg;
    char *argv[] = {"/usr/bin/python3", "-c", (char *)python_client, (char *)p->port, (char *)ca,
                    (char *)p->send,    NULL};

    p->rc = gn_test_run_argv(argv, NULL, 30000, &p->run);
    return NULL;
}

static void python_start(struct python_run *p, const char *port, const char *send)
{
    p->port = port;
    p->send = send;
    cr_assert_eq(pthread_create(&p->tid, NULL, python_main, p), 0);
}

/* The client saw close_notify and got `expect` before it. */
static void python_expect_clean(struct python_run *p, const char *expect)
{
    char want[128];

    pthread_join(p->tid, NULL);
    cr_assert_eq(p->rc, 0);
    printf("python: %s", p->run.out);
    snprintf(want, sizeof(want), "close_notify unwrapped '%s'", expect);
    cr_expect(strstr(p->run.out, want), "python: %s%s", p->run.out, p->run.err);
    gn_test_run_free(&p->run);
}

static void greet(gn_conn *conn)
{
    gn_write_all(conn, "hello", 5, 5000);
} /* returning ends the connection */

Test(server_threads_tls, close_notify_when_the_handler_returns, .timeout = 60)
{
    struct python_run py;
    char port[16];
    int threads_before = gn_test_count_threads(), fds_before = gn_test_count_fds();
    gn_server *srv = serve(greet, 0, NULL, port, sizeof(port));

    python_start(&py, port, "");
    python_expect_clean(&py, "hello");
    gn_server_close(srv, 1000);
    cr_expect_eq(gn_test_count_threads(), threads_before);
    cr_expect_eq(gn_test_count_fds(), fds_before);
}

static atomic_int echoed, results[2];

/* Echo until the end, the idle timeout or the server's close. */
static void echo(gn_conn *conn)
{
    char buf[256];
    ssize_t n;

    while ((n = gn_read(conn, buf, sizeof(buf), GN_NO_TIMEOUT)) > 0)
        if (gn_write_all(conn, buf, (size_t)n, 5000) == 0)
            atomic_fetch_add(&echoed, 1);
    if (n == GN_ETIMEDOUT)
        atomic_fetch_add(&results[0], 1);
    else if (n == GN_ECLOSED)
        atomic_fetch_add(&results[1], 1);
}

Test(server_threads_tls, close_notify_when_the_idle_timeout_ends_a_handler, .timeout = 60)
{
    struct python_run py;
    char port[16];
    gn_server *srv;

    atomic_store(&results[0], 0);
    srv = serve(echo, 1000, NULL, port, sizeof(port));
    python_start(&py, port, "ping");
    python_expect_clean(&py, "ping");
    gn_server_close(srv, 1000);
    cr_expect_eq(atomic_load(&results[0]), 1, "the handler's read timed out");
}

Test(server_threads_tls, close_notify_when_a_silent_client_times_out_unhandled, .timeout = 60)
{
    gn_thread_options topts = {.wait_for_data = true};
    gn_thread_stats st;
    struct python_run py;
    char port[16];
    gn_server *srv = serve(echo, 300, &topts, port, sizeof(port));

    python_start(&py, port, "");
    python_expect_clean(&py, "");
    gn_server_get_thread_stats(srv, &st);
    cr_expect_eq(st.served, 0, "closed on the accepting thread, never handled");
    cr_expect_eq(st.threads, 0);
    gn_server_close(srv, 1000);
}

Test(server_threads_tls, close_notify_on_server_close, .timeout = 60)
{
    struct python_run py;
    char port[16];
    gn_server *srv;

    atomic_store(&echoed, 0);
    atomic_store(&results[1], 0);
    srv = serve(echo, 0, NULL, port, sizeof(port));
    python_start(&py, port, "ping");
    for (uint64_t end = gn_now_ms() + 20000; gn_now_ms() < end && atomic_load(&echoed) == 0;)
        usleep(5000);
    cr_assert_eq(atomic_load(&echoed), 1, "the client was served");
    gn_server_close(srv, 0); /* wakes the blocked read */
    python_expect_clean(&py, "ping");
    cr_expect_eq(atomic_load(&results[1]), 1, "the blocked read got GN_ECLOSED");
}

struct tls_client {
    const char *addr;
    int rc;
    char err[GN_ERRBUF_SIZE];
};

/* One echo over TLS, on its own thread: the eventfd a thread keeps for
 * its blocking calls ends with it, so descriptors can be counted after. */
static void *tls_echo_once(void *arg)
{
    struct tls_client *c = arg;
    gn_tls_options tls = {.ca_file = ca, .server_name = "localhost"};
    gn_options opts = {.tls = &tls};
    gn_conn *conn = NULL;
    char buf[8];

    c->rc = gn_dial(c->addr, 10000, &opts, &conn, c->err, sizeof(c->err));
    if (c->rc == 0 && (c->rc = gn_write_all(conn, "hi", 2, 5000)) == 0)
        c->rc = gn_read_exact(conn, buf, 2, 5000);
    if (conn)
        gn_close(conn);
    return NULL;
}

/* 100 TCP sockets that never start a handshake, against 8 threads: they
 * wait on the accepting thread, and a fresh TLS client is served. */
Test(server_threads_tls, silent_sockets_do_not_keep_a_tls_client_out, .timeout = 60)
{
    enum { SILENT = 100 };
    gn_thread_options topts = {.max_threads = 8};
    char port[16], addr[64], tcp[64];
    int fds[SILENT], threads_before = gn_test_count_threads(), fds_before = gn_test_count_fds();
    struct tls_client client = {.addr = addr};
    gn_thread_stats st;
    gn_server *srv = serve(echo, 0, &topts, port, sizeof(port));
    pthread_t tid;
    uint64_t t0;

    snprintf(tcp, sizeof(tcp), "127.0.0.1:%s", port);
    snprintf(addr, sizeof(addr), "tls://127.0.0.1:%s", port);
    for (int i = 0; i < SILENT; i++) {
        fds[i] = gn_test_connect_fd(tcp);
        cr_assert_geq(fds[i], 0);
    }
    for (uint64_t end = gn_now_ms() + 5000; gn_now_ms() < end; usleep(2000)) {
        gn_server_get_thread_stats(srv, &st);
        if (st.watched == SILENT)
            break;
    }
    cr_expect_eq(st.watched, SILENT, "the silent sockets wait in their handshake");
    cr_expect_eq(st.threads, 0, "and hold no thread");
    t0 = gn_now_ms();
    cr_assert_eq(pthread_create(&tid, NULL, tls_echo_once, &client), 0);
    pthread_join(tid, NULL);
    cr_expect_eq(client.rc, 0, "%s", client.err);
    printf("a TLS client served in %llu ms beside %d silent sockets\n",
           (unsigned long long)(gn_now_ms() - t0), SILENT);
    gn_server_get_thread_stats(srv, &st);
    cr_expect_eq(st.watched, SILENT, "served while the silent sockets are still held");
    for (int i = 0; i < SILENT; i++)
        close(fds[i]);
    gn_server_close(srv, 1000);
    cr_expect_eq(gn_test_count_threads(), threads_before);
    cr_expect_eq(gn_test_count_fds(), fds_before);
}

/* The handshake deadline runs from accept, not from when a thread is
 * free: a socket silent for handshake_timeout_ms is dropped on time. */
Test(server_threads_tls, the_handshake_deadline_runs_from_accept, .timeout = 60)
{
    gn_tls_options tls = {.cert_file = cert, .key_file = key, .handshake_timeout_ms = 300};
    gn_options opts = {.tls = &tls};
    gn_thread_options topts = {.max_threads = 1};
    char err[GN_ERRBUF_SIZE], tcp[64], buf[8];
    gn_server *srv;
    gn_endpoint ep;
    int fd;

    paths();
    cr_assert_eq(gn_serve_threads("tls://127.0.0.1:0", echo, &opts, &topts, &srv, err, sizeof(err)),
                 0, "%s", err);
    gn_server_get_endpoint(srv, 0, &ep);
    snprintf(tcp, sizeof(tcp), "127.0.0.1:%u", (unsigned)gn_endpoint_port(&ep));
    fd = gn_test_connect_fd(tcp);
    cr_assert_geq(fd, 0);
    cr_expect_eq(read(fd, buf, sizeof(buf)), 0, "dropped at the handshake deadline");
    close(fd);
    gn_server_close(srv, 1000);
}

/* TLS 1.2 with session IDs only (no tickets): the server's close_notify
 * keeps each session in its cache, so reconnections resume. */
Test(server_threads_tls, tls12_session_ids_resume, .timeout = 60)
{
    struct gn_test_run run;
    char port[16], hostport[32];
    gn_server *srv = serve(echo, 0, NULL, port, sizeof(port));
    int reused = 0;

    snprintf(hostport, sizeof(hostport), "127.0.0.1:%s", port);
    char *argv[] = {"/usr/bin/openssl", "s_client", "-tls1_2", "-no_ticket", "-reconnect",
                    "-connect",         hostport,   "-CAfile", ca,           NULL};
    cr_assert_eq(gn_test_run_argv(argv, NULL, 30000, &run), 0);
    for (const char *p = run.out; (p = strstr(p, "\nReused, ")) != NULL; p++)
        reused++;
    printf("s_client -tls1_2 -no_ticket -reconnect: %d of 5 reconnections resumed\n", reused);
    cr_expect_eq(reused, 5, "%s", run.out);
    gn_test_run_free(&run);
    gn_server_close(srv, 1000);
}
