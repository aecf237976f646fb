/*
 * Client sockets: a refused port, an unknown host name and a connect
 * timeout are each reported exactly once, through on_error and on_close,
 * with the right code; success fires on_connect with both endpoints; data
 * sent while connecting goes out once connected.
 */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

struct outcome {
    int connects, errors, closes, error_code, reason;
    char message[GN_ERRBUF_SIZE];
    char got[64];
    size_t want; /* close once got holds this many bytes (TCP may cut them) */
};

static struct outcome out;

static void o_connect(gn_conn *conn)
{
    out.connects++;
    cr_expect_not_null(gn_conn_local(conn));
    cr_expect_not_null(gn_conn_remote(conn));
}

static void o_error(gn_conn *conn, int code, const char *message)
{
    (void)conn;
    out.errors++;
    out.error_code = code;
    snprintf(out.message, sizeof(out.message), "%s", message);
}

static size_t o_data(gn_conn *conn, const char *data, size_t len)
{
    size_t have = strlen(out.got);

    if (have + len < sizeof(out.got))
        memcpy(out.got + have, data, len);
    if (strlen(out.got) >= out.want)
        gn_close(conn);
    return len;
}

static void o_close(gn_conn *conn, int reason)
{
    (void)conn;
    out.closes++;
    out.reason = reason;
}

static const gn_handlers handlers = {
    .on_connect = o_connect, .on_error = o_error, .on_data = o_data, .on_close = o_close};

static void connect_and_run(const char *addr, const gn_options *opts)
{
    char err[GN_ERRBUF_SIZE];
    gn_loop *loop;
    gn_conn *conn;

    memset(&out, 0, sizeof(out));
    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_connect(loop, addr, &handlers, opts, &conn, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(out.closes + out.errors + out.connects, 0, "no event inside gn_connect");
    cr_expect_eq(gn_test_run_loop_for(loop, 10000), 0);
    gn_loop_free(loop);
}

/* A port that refuses: bound, never listening. */
static int refusing_port(int *fd)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);

    *fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(bind(*fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    getsockname(*fd, (struct sockaddr *)&sin, &len);
    return ntohs(sin.sin_port);
}

Test(client_connect, refused_is_reported_once_as_econnrefused)
{
    char addr[64], want[GN_ERRBUF_SIZE];
    int fd, fds = gn_test_count_fds();

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", refusing_port(&fd));
    connect_and_run(addr, NULL);
    cr_expect_eq(out.connects, 0);
    cr_expect_eq(out.errors, 1);
    cr_expect_eq(out.closes, 1);
    cr_expect_eq(out.reason, GN_ECONNREFUSED, "%s", gn_errname(out.reason));
    snprintf(want, sizeof(want), "connect to %s: connection refused", addr);
    cr_expect_str_eq(out.message, want, "the address once, then the reason");
    close(fd);
    cr_expect_eq(gn_test_count_fds(), fds);
}

Test(client_connect, unknown_host_is_reported_once_as_enoname)
{
    connect_and_run("no-such-host.invalid:80", NULL);
    cr_expect_eq(out.errors, 1);
    cr_expect_eq(out.closes, 1);
    cr_expect(out.reason == GN_ENONAME || out.reason == GN_ETEMPNAME, "%s", gn_errname(out.reason));
    cr_expect(strstr(out.message, "no-such-host.invalid"), "%s", out.message);
}

Test(client_connect, unanswered_syn_times_out_once_as_etimedout)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    gn_options opts = {.connect_timeout_ms = 300};
    int lfd, fillers[8], nfill = 0;
    char addr[64];

    /* A listener with a full accept queue drops further SYNs, so the
     * connect neither succeeds nor fails: it can only time out. */
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    cr_assert_eq(listen(lfd, 0), 0);
    getsockname(lfd, (struct sockaddr *)&sin, &len);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sin.sin_port));
    for (; nfill < 8; nfill++) {
        fillers[nfill] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[nfill], (struct sockaddr *)&sin, sizeof(sin));
    }
    connect_and_run(addr, &opts);
    cr_expect_eq(out.connects, 0);
    cr_expect_eq(out.errors, 1);
    cr_expect_eq(out.closes, 1);
    cr_expect_eq(out.reason, GN_ETIMEDOUT, "%s: %s", gn_errname(out.reason), out.message);
    for (int i = 0; i < nfill; i++)
        close(fillers[i]);
    close(lfd);
}

static size_t greet(gn_conn *conn, const char *data, size_t len)
{
    cr_expect_eq(gn_send(conn, data, len), 0);
    return len;
}

Test(client_connect, connects_and_sends_what_was_queued_while_connecting)
{
    const gn_handlers server_h = {.on_data = greet};
    char addr[GN_ENDPOINT_STRLEN], err[GN_ERRBUF_SIZE];
    gn_loop *loop;
    gn_server *srv;
    gn_conn *conn;

    memset(&out, 0, sizeof(out));
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &server_h, NULL, addr, sizeof(addr));
    cr_assert_eq(gn_connect(loop, addr, &handlers, NULL, &conn, err, sizeof(err)), 0);
    out.want = 10;
    cr_expect_eq(gn_send(conn, "early bird", 10), 0);
    cr_expect_null(gn_conn_remote(conn), "no endpoint before connecting");
    gn_test_run_loop_for(loop, 500);
    cr_expect_eq(out.connects, 1);
    cr_expect_str_eq(out.got, "early bird");
    cr_expect_eq(out.closes, 1);
    cr_expect_eq(out.reason, 0);
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
}

Test(client_connect, localhost_name_falls_through_to_an_address_that_listens)
{
    const gn_handlers server_h = {.on_data = greet};
    char addr[GN_ENDPOINT_STRLEN], name[64], err[GN_ERRBUF_SIZE];
    gn_endpoint ep;
    gn_loop *loop;
    gn_server *srv;
    gn_conn *conn;

    memset(&out, 0, sizeof(out));
    cr_assert_eq(gn_loop_new(&loop), 0);
    /* Only IPv4 listens: if localhost resolves to ::1 first, that attempt
     * is refused and the next address must be tried. */
    srv = gn_test_listen(loop, "127.0.0.1:0", &server_h, NULL, addr, sizeof(addr));
    gn_server_get_endpoint(srv, 0, &ep);
    snprintf(name, sizeof(name), "localhost:%u", gn_endpoint_port(&ep));
    cr_assert_eq(gn_connect(loop, name, &handlers, NULL, &conn, err, sizeof(err)), 0);
    out.want = 2;
    cr_expect_eq(gn_send(conn, "hi", 2), 0);
    gn_test_run_loop_for(loop, 3000);
    cr_expect_eq(out.connects, 1, "%s", out.message);
    cr_expect_str_eq(out.got, "hi");
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
}

Test(client_connect, bad_arguments_fail_at_once_without_events)
{
    char err[GN_ERRBUF_SIZE];
    gn_loop *loop;
    gn_conn *conn;

    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_expect_eq(gn_connect(loop, "host:99999", &handlers, NULL, &conn, err, sizeof(err)),
                 GN_EBADADDR);
    cr_expect(strstr(err, "99999"), "%s", err);
    cr_expect_eq(gn_connect(loop, "udp://127.0.0.1:9", &handlers, NULL, &conn, err, sizeof(err)),
                 GN_EFAMILY);
    cr_expect_eq(gn_connect(NULL, "127.0.0.1:9", &handlers, NULL, &conn, NULL, 0), GN_EINVAL);
    cr_expect_eq(gn_connect(loop, "127.0.0.1:9", NULL, NULL, &conn, NULL, 0), GN_EINVAL);
    cr_expect_eq(gn_loop_run(loop), 0, "nothing was left pending");
    gn_loop_free(loop);
}

Test(client_connect, close_while_resolving_cancels_quietly)
{
    gn_loop *loop;
    gn_conn *conn;

    memset(&out, 0, sizeof(out));
    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_connect(loop, "localhost:9", &handlers, NULL, &conn, NULL, 0), 0);
    cr_expect_eq(gn_close(conn), 0);
    cr_expect_eq(gn_test_run_loop_for(loop, 5000), 0);
    cr_expect_eq(out.closes, 1);
    cr_expect_eq(out.reason, 0);
    cr_expect_eq(out.connects + out.errors, 0);
    gn_loop_free(loop);
}
