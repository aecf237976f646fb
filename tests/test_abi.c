/*
 * The compatibility rule of gnezdo.h: version numbers agree, and structs
 * handed in with reserved space set are refused at once, with a message,
 * while structs handed out come back with it zero.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gnezdo.h"

static void echo_nothing(gn_conn *conn)
{
    (void)conn;
}

Test(abi, version_number_matches_the_header_and_the_string)
{
    char text[32];

    cr_assert_eq(gn_version_number(), GN_VERSION_NUMBER);
    snprintf(text, sizeof(text), "%d.%d.%d", GN_VERSION_MAJOR, GN_VERSION_MINOR, GN_VERSION_PATCH);
    cr_assert_str_eq(gn_version(), text);
    cr_assert_str_eq(GN_VERSION_STRING, text);
    cr_assert_eq(GN_VERSION_NUMBER,
                 GN_VERSION_MAJOR * 10000 + GN_VERSION_MINOR * 100 + GN_VERSION_PATCH);
}

Test(abi, options_with_reserved_space_set_are_refused_by_every_server_and_client)
{
    gn_options opts = {0};
    gn_tls_options tls = {0};
    gn_handlers h = {0};
    char err[GN_ERRBUF_SIZE];
    gn_server *srv = NULL;
    gn_conn *conn = NULL;
    gn_loop *loop;

    cr_assert_eq(gn_loop_new(&loop), 0);
    opts.reserved_[2] = 1;
    cr_assert_eq(gn_listen(loop, "127.0.0.1:0", &h, &opts, &srv, err, sizeof(err)), GN_EINVAL);
    cr_assert(strstr(err, "gn_options") && strstr(err, "reserved"), "%s", err);
    cr_assert_eq(gn_connect(loop, "127.0.0.1:9", &h, &opts, &conn, err, sizeof(err)), GN_EINVAL);
    cr_assert(strstr(err, "gn_options"), "%s", err);
    cr_assert_eq(gn_dial("127.0.0.1:9", 1000, &opts, &conn, err, sizeof(err)), GN_EINVAL);
    cr_assert(strstr(err, "gn_options"), "%s", err);
    cr_assert_eq(gn_serve_threads("127.0.0.1:0", echo_nothing, &opts, NULL, &srv, err, sizeof(err)),
                 GN_EINVAL);

    opts.reserved_[2] = 0;
    tls.reserved_[0] = 7;
    opts.tls = &tls;
    cr_assert_eq(gn_listen(loop, "127.0.0.1:0", &h, &opts, &srv, err, sizeof(err)), GN_EINVAL);
    cr_assert(strstr(err, "gn_tls_options"), "%s", err);

    h.reserved_[6] = (void (*)(void))echo_nothing;
    cr_assert_eq(gn_listen(loop, "127.0.0.1:0", &h, NULL, &srv, err, sizeof(err)), GN_EINVAL);
    cr_assert(strstr(err, "gn_handlers"), "%s", err);
    cr_assert_eq(gn_connect(loop, "127.0.0.1:9", &h, NULL, &conn, err, sizeof(err)), GN_EINVAL);
    cr_assert_null(srv);
    cr_assert_null(conn);
    gn_loop_free(loop);
}

Test(abi, thread_datagram_and_transport_structs_are_checked_too)
{
    gn_thread_options topts = {.reserved_ = {0, 1}};
    gn_dgram_options dopts = {.reserved_ = {1}};
    gn_dgram_handlers dh = {0};
    gn_io_ops ops = {.name = "plain"};
    gn_handlers h = {0};
    char err[GN_ERRBUF_SIZE];
    gn_server *srv = NULL;
    gn_dgram *sock = NULL;
    gn_conn *conn = NULL;
    gn_loop *loop;
    int sv[2];

    cr_assert_eq(
        gn_serve_threads("127.0.0.1:0", echo_nothing, NULL, &topts, &srv, err, sizeof(err)),
        GN_EINVAL);
    cr_assert(strstr(err, "gn_thread_options"), "%s", err);
    cr_assert_eq(
        gn_dgram_open_blocking("udp://127.0.0.1:0", GN_DGRAM_BIND, &dopts, &sock, err, sizeof(err)),
        GN_EINVAL);
    cr_assert(strstr(err, "gn_dgram_options"), "%s", err);

    cr_assert_eq(gn_loop_new(&loop), 0);
    dh.reserved_[0] = (void (*)(void))echo_nothing;
    cr_assert_eq(
        gn_dgram_open(loop, "udp://127.0.0.1:0", GN_DGRAM_BIND, &dh, NULL, &sock, err, sizeof(err)),
        GN_EINVAL);
    cr_assert(strstr(err, "gn_dgram_handlers"), "%s", err);

    /* gn_conn_adopt takes the descriptor even when it refuses. */
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ops.read = NULL;
    ops.reserved_[1] = (void (*)(void))echo_nothing;
    cr_assert_eq(gn_conn_adopt(loop, sv[0], &ops, &h, NULL, &conn), GN_EINVAL);
    cr_assert_eq(fcntl(sv[0], F_GETFD), -1, "the refused descriptor was closed");
    close(sv[1]);
    cr_assert_null(srv);
    cr_assert_null(sock);
    cr_assert_null(conn);
    gn_loop_free(loop);
}

Test(abi, structs_handed_out_come_back_with_reserved_space_zero)
{
    gn_handlers h = {0}, bad = {.reserved_ = {(void (*)(void))echo_nothing}};
    gn_conn_stats stats;
    gn_peer_cred cred;
    gn_endpoint ep;
    gn_conn *a, *b;
    gn_loop *loop;

    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_conn_pair(loop, NULL, &h, &h, NULL, &a, &b), 0);
    memset(&stats, 0xff, sizeof(stats));
    memset(&cred, 0xff, sizeof(cred));
    memset(&ep, 0xff, sizeof(ep));
    cr_assert_eq(gn_conn_get_stats(a, &stats), 0);
    cr_assert_eq(gn_conn_get_peer_cred(a, &cred), 0);
    cr_assert_eq(gn_endpoint_parse("[::1]:80", 0, &ep, NULL, 0), 0);
    for (size_t i = 0; i < sizeof(stats.reserved_) / sizeof(stats.reserved_[0]); i++)
        cr_assert_eq(stats.reserved_[i], 0);
    for (size_t i = 0; i < sizeof(cred.reserved_) / sizeof(cred.reserved_[0]); i++)
        cr_assert_eq(cred.reserved_[i], 0);
    for (size_t i = 0; i < sizeof(ep.reserved_) / sizeof(ep.reserved_[0]); i++)
        cr_assert_eq(ep.reserved_[i], 0);
    cr_assert_eq(cred.pid, getpid());
    cr_assert_eq(gn_conn_set_handlers(a, &bad), GN_EINVAL);
    cr_assert_eq(gn_conn_set_handlers(a, &h), 0);
    gn_loop_free(loop);
}
