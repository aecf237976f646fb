/*
 * Connection features: pausing and resuming reading (buffered input is
 * offered again on resume), gn_send_file, IPv6 on loopback, dual-stack
 * listening on a bare port, user data and counters.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

struct paused {
    gn_conn *conn;
    int calls;
    size_t seen;
};

static struct paused paused;

static size_t take_one_line_then_pause(gn_conn *conn, const char *data, size_t len)
{
    size_t line_len, frame_len;

    paused.conn = conn;
    paused.calls++;
    if (gn_frame_line(data, len, 100, &line_len, &frame_len) != 1)
        return 0;
    paused.seen++;
    gn_pause_reading(conn);
    return frame_len;
}

static void resume_later(gn_loop *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    gn_resume_reading(arg);
}

Test(conn_features, resume_offers_buffered_input_without_new_bytes)
{
    const gn_handlers h = {.on_data = take_one_line_then_pause};
    char addr[GN_ENDPOINT_STRLEN];
    gn_loop *loop;
    gn_server *srv;
    uint64_t id;
    int fd;

    memset(&paused, 0, sizeof(paused));
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &h, NULL, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "one\ntwo\nthree\n", 14), 14);
    gn_test_run_loop_for(loop, 100);
    cr_expect_eq(paused.seen, 1u, "paused after the first line");
    for (int i = 0; i < 2; i++) {
        gn_timer_start(loop, 10, 0, resume_later, paused.conn, &id);
        gn_test_run_loop_for(loop, 100);
    }
    cr_expect_eq(paused.seen, 3u, "each resume offered the next buffered line");
    close(fd);
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
}

static int file_fd;
static size_t file_len;

static void send_the_file(gn_conn *conn)
{
    cr_assert_eq(gn_send(conn, "HEAD", 4), 0);
    cr_assert_eq(gn_send_file(conn, file_fd, 0, file_len), 0);
    cr_assert_eq(gn_send(conn, "TAIL", 4), 0);
    gn_close(conn);
}

Test(conn_features, send_file_goes_out_in_order_between_sends)
{
    const gn_handlers h = {.on_accept = send_the_file};
    char addr[GN_ENDPOINT_STRLEN], path[] = "/tmp/gnezdo-sendfile-XXXXXX";
    char *content, *got;
    size_t total = 0;
    gn_loop *loop;
    gn_server *srv;
    ssize_t n;
    int fd;

    file_len = 3u << 20;
    content = malloc(file_len);
    got = malloc(file_len + 8);
    for (size_t i = 0; i < file_len; i++)
        content[i] = (char)(i * 31 + 7);
    file_fd = mkstemp(path);
    cr_assert_geq(file_fd, 0);
    unlink(path);
    cr_assert_eq(write(file_fd, content, file_len), (ssize_t)file_len);
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &h, NULL, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr);
    cr_assert_geq(fd, 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    for (int i = 0; i < 5000 && total < file_len + 8; i++) {
        while ((n = read(fd, got + total, file_len + 8 - total)) > 0)
            total += (size_t)n;
        gn_test_run_loop_for(loop, 1);
    }
    cr_expect_eq(total, file_len + 8);
    cr_expect_eq(memcmp(got, "HEAD", 4), 0);
    cr_expect_eq(memcmp(got + 4, content, file_len), 0, "the file arrived intact");
    cr_expect_eq(memcmp(got + 4 + file_len, "TAIL", 4), 0);
    close(fd);
    close(file_fd);
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
    free(content);
    free(got);
}

static size_t echo(gn_conn *conn, const char *data, size_t len)
{
    gn_send(conn, data, len);
    return len;
}

static char reply[64];

static void say_hi(gn_conn *conn)
{
    gn_send(conn, "hi6", 3);
}

/* TCP keeps no message boundaries: the reply may come in pieces. */
static size_t keep_reply(gn_conn *conn, const char *data, size_t len)
{
    size_t have = strlen(reply);

    snprintf(reply + have, sizeof(reply) - have, "%.*s", (int)len, data);
    if (strlen(reply) >= 3)
        gn_close(conn);
    return len;
}

static void talk(const char *listen_addr, const char *connect_host)
{
    const gn_handlers server_h = {.on_data = echo};
    const gn_handlers client_h = {.on_connect = say_hi, .on_data = keep_reply};
    char addr[GN_ENDPOINT_STRLEN], target[GN_ENDPOINT_STRLEN];
    gn_endpoint ep;
    gn_loop *loop;
    gn_server *srv;
    gn_conn *conn;

    reply[0] = '\0';
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, listen_addr, &server_h, NULL, addr, sizeof(addr));
    gn_server_get_endpoint(srv, 0, &ep);
    snprintf(target, sizeof(target), "%s:%u", connect_host, gn_endpoint_port(&ep));
    cr_assert_eq(gn_connect(loop, target, &client_h, NULL, &conn, NULL, 0), 0);
    gn_test_run_loop_for(loop, 1000);
    cr_expect_str_eq(reply, "hi6", "%s -> %s", addr, target);
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
}

Test(conn_features, ipv6_loopback_works_end_to_end)
{
    talk("[::1]:0", "[::1]");
}

Test(conn_features, a_bare_port_listens_for_ipv4_and_ipv6)
{
    talk(":0", "127.0.0.1");
    talk(":0", "[::1]");
}

static void check_counts(gn_conn *conn, int reason)
{
    gn_conn_stats st;

    (void)reason;
    cr_assert_eq(gn_conn_get_stats(conn, &st), 0);
    cr_expect_eq(st.bytes_out, 3u);
    cr_expect_eq(st.bytes_in, 3u);
    cr_expect_geq(st.reads, 1u);
    cr_expect_geq(st.writes, 1u);
    cr_expect_eq(gn_conn_user_data(conn), (void *)&reply);
}

Test(conn_features, counters_and_user_data_are_kept)
{
    const gn_handlers server_h = {.on_data = echo};
    const gn_handlers client_h = {
        .on_connect = say_hi, .on_data = keep_reply, .on_close = check_counts};
    gn_options opts = {.user_data = &reply};
    char addr[GN_ENDPOINT_STRLEN];
    gn_loop *loop;
    gn_server *srv;
    gn_conn *conn;

    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &server_h, NULL, addr, sizeof(addr));
    cr_assert_eq(gn_connect(loop, addr, &client_h, &opts, &conn, NULL, 0), 0);
    gn_test_run_loop_for(loop, 1000);
    cr_expect_str_eq(reply, "hi6");
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
}
