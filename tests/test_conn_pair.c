/*
 * gn_conn_pair and a transport of the user's own: two in-memory
 * connections over a socketpair exchange data with the usual events; a
 * toy transport (bytes XOR 0x5a on the wire) plugged in through
 * gn_io_ops is seen scrambled by a raw peer and clear by the
 * handlers, with back-pressure and half-close working through it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

/* ---- the toy transport ------------------------------------------------ */

static ssize_t xor_read(gn_conn *conn, gn_socket fd, void *buf, size_t len)
{
    ssize_t n;

    (void)conn;
    do {
        n = recv(fd, buf, len, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN ? GN_EAGAIN : gn_error_from_errno(errno);
    for (ssize_t i = 0; i < n; i++)
        ((unsigned char *)buf)[i] ^= 0x5a;
    return n;
}

static ssize_t xor_writev(gn_conn *conn, gn_socket fd, const struct iovec *iov, int iovcnt)
{
    static char scrambled[65536];
    size_t len = 0;
    ssize_t n;

    (void)conn;
    for (int i = 0; i < iovcnt && len < sizeof(scrambled); i++) {
        size_t take = iov[i].iov_len;
        if (take > sizeof(scrambled) - len)
            take = sizeof(scrambled) - len;
        for (size_t k = 0; k < take; k++)
            scrambled[len + k] = (char)(((const unsigned char *)iov[i].iov_base)[k] ^ 0x5a);
        len += take;
    }
    do {
        n = send(fd, scrambled, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN ? GN_EAGAIN : gn_error_from_errno(errno);
    return n; /* a partial send is fine: bytes map one to one */
}

static const gn_io_ops xor_ops = {.name = "xor", .read = xor_read, .writev = xor_writev};

/* ---- handlers --------------------------------------------------------- */

struct side {
    int connects, closes, reason;
    char got[1 << 20];
    size_t got_len;
    bool echo, ended;
};

static void on_connect(gn_conn *conn)
{
    ((struct side *)gn_conn_user_data(conn))->connects++;
}

static size_t on_data(gn_conn *conn, const char *data, size_t len)
{
    struct side *s = gn_conn_user_data(conn);
    size_t room = sizeof(s->got) - s->got_len, take = len < room ? len : room;

    memcpy(s->got + s->got_len, data, take);
    s->got_len += take;
    if (s->echo)
        gn_send(conn, data, len);
    return len;
}

static void on_end(gn_conn *conn)
{
    struct side *s = gn_conn_user_data(conn);

    s->ended = true;
    gn_send(conn, "bye", 3);
    gn_close(conn);
}

static void on_close(gn_conn *conn, int reason)
{
    struct side *s = gn_conn_user_data(conn);

    s->closes++;
    s->reason = reason;
}

static const gn_handlers handlers = {
    .on_connect = on_connect, .on_data = on_data, .on_end = on_end, .on_close = on_close};

static struct side a_side, b_side;

static void reset(void)
{
    memset(&a_side, 0, sizeof(a_side));
    memset(&b_side, 0, sizeof(b_side));
}

static void pair_exchange(const gn_io_ops *ops)
{
    gn_options oa = {.user_data = &a_side}, ob = {.user_data = &b_side};
    gn_conn *a, *b;
    gn_loop *loop;
    static char big[300000];

    reset();
    b_side.echo = true;
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 31 + 7);
    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_conn_pair(loop, ops, &handlers, &handlers, &oa, &a, &b), 0);
    gn_conn_set_user_data(b, &b_side);
    cr_expect_eq(a_side.connects, 0, "on_connect never inside the call");
    cr_assert_eq(gn_send(a, big, sizeof(big)), 0);
    gn_shutdown(a); /* after the echo comes back, b says bye and closes */
    (void)ob;
    cr_expect_eq(gn_test_run_loop_for(loop, 5000), 0, "the loop ends by itself");
    cr_expect_eq(a_side.connects, 1);
    cr_expect_eq(b_side.connects, 1);
    cr_expect_eq(b_side.got_len, sizeof(big));
    cr_expect_eq(memcmp(b_side.got, big, sizeof(big)), 0);
    cr_expect_eq(a_side.got_len, sizeof(big) + 3);
    cr_expect_eq(memcmp(a_side.got, big, sizeof(big)), 0, "echo intact");
    cr_expect_eq(memcmp(a_side.got + sizeof(big), "bye", 3), 0);
    cr_expect(b_side.ended);
    cr_expect_eq(a_side.closes, 1);
    cr_expect_eq(b_side.closes, 1);
    cr_expect_eq(a_side.reason, 0);
    gn_loop_free(loop);
}

Test(conn_pair, plain_pair_exchanges_with_the_usual_events)
{
    int before = gn_test_count_fds();

    pair_exchange(NULL);
    cr_expect_eq(gn_test_count_fds(), before, "no descriptor left behind");
}

Test(conn_pair, a_user_transport_carries_the_same_exchange)
{
    pair_exchange(&xor_ops);
}

Test(conn_pair, a_raw_peer_sees_the_user_transport_on_the_wire)
{
    gn_options opts = {.user_data = &a_side};
    char wire[16], scrambled_hi[2] = {'h' ^ 0x5a, 'i' ^ 0x5a};
    struct pollfd p;
    gn_conn *conn;
    gn_loop *loop;
    int sv[2];

    reset();
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_conn_adopt(loop, sv[0], &xor_ops, &handlers, &opts, &conn), 0);
    cr_assert_eq(gn_send(conn, "hello", 5), 0);
    gn_test_run_loop_for(loop, 50);
    p = (struct pollfd){.fd = sv[1], .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 1000), 1);
    cr_assert_eq(read(sv[1], wire, sizeof(wire)), 5);
    for (int i = 0; i < 5; i++)
        cr_expect_eq(wire[i], "hello"[i] ^ 0x5a, "byte %d is scrambled on the wire", i);
    cr_assert_eq(write(sv[1], scrambled_hi, 2), 2);
    gn_test_run_loop_for(loop, 50);
    cr_expect_eq(a_side.got_len, 2);
    cr_expect_eq(memcmp(a_side.got, "hi", 2), 0, "and clear in on_data");
    cr_expect_eq(a_side.connects, 1);
    close(sv[1]); /* the peer goes: on_end, then close */
    gn_test_run_loop_for(loop, 1000);
    cr_expect_eq(a_side.closes, 1);
    gn_loop_free(loop);
}

Test(conn_pair, bad_arguments_and_the_descriptor_is_taken_even_then)
{
    const gn_io_ops half = {.name = "half", .read = xor_read};
    gn_conn *a, *b;
    gn_loop *loop;
    int sv[2];

    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_expect_eq(gn_conn_adopt(loop, sv[0], &half, &handlers, NULL, &a), GN_EINVAL);
    cr_expect_eq(fcntl(sv[0], F_GETFD), -1, "closed by the failed call");
    close(sv[1]);
    cr_expect_eq(gn_conn_adopt(NULL, -1, NULL, &handlers, NULL, &a), GN_EINVAL);
    cr_expect_eq(gn_conn_pair(loop, NULL, NULL, &handlers, NULL, &a, &b), GN_EINVAL);
    gn_loop_free(loop);
}

/* ---- descriptors that are no connection --------------------------------- */

#ifndef _WIN32 /* pipes and directories are no sockets there: WinSock refuses them itself */
static char logged[512];

static void keep_log(gn_log_level level, const char *message, void *arg)
{
    (void)level;
    (void)arg;
    snprintf(logged, sizeof(logged), "%s", message);
}

/* gn_conn_adopt(fd) is refused at once, fd is closed, and the log names
 * why (what must appear in the message). */
static void expect_refused(gn_loop *loop, int fd, const char *what)
{
    gn_options opts = {.user_data = &a_side};
    gn_conn *conn = NULL;

    cr_assert_geq(fd, 0, "%s: %s", what, strerror(errno));
    logged[0] = '\0';
    cr_expect_eq(gn_conn_adopt(loop, fd, NULL, &handlers, &opts, &conn), GN_EINVAL, "%s", what);
    cr_expect_null(conn, "%s: no connection", what);
    cr_expect_eq(fcntl(fd, F_GETFD), -1, "%s: closed by the failed call", what);
    cr_expect(strstr(logged, what) && strstr(logged, "not a connected stream socket"),
              "%s: logged '%s'", what, logged);
}

Test(conn_pair, a_pipe_a_file_a_directory_and_non_stream_sockets_are_refused_at_once)
{
    char path[] = "/tmp/gnezdo-adopt-XXXXXX", addr[64];
    int p[2], before = gn_test_count_fds();
    gn_loop *loop;

    reset();
    gn_log_set(keep_log, GN_LOG_ERROR, NULL);
    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(pipe(p), 0);
    close(p[1]);
    expect_refused(loop, p[0], "a pipe");
    expect_refused(loop, mkstemp(path), "a regular file");
    unlink(path);
    expect_refused(loop, open("/tmp", O_RDONLY | O_DIRECTORY), "a directory");
    expect_refused(loop, socket(AF_INET, SOCK_DGRAM, 0), "a datagram socket");
    expect_refused(loop, gn_test_raw_listener("", addr, sizeof(addr), 4), "a listening socket");
    gn_test_run_loop_for(loop, 50);
    cr_expect_eq(a_side.connects + a_side.closes, 0, "no event for a refused descriptor");
    gn_loop_free(loop);
    gn_log_set(NULL, GN_LOG_ERROR, NULL);
    cr_expect_eq(gn_test_count_fds(), before, "no descriptor left behind");
}
#endif

Test(conn_pair, a_connected_tcp_socket_is_adopted)
{
    gn_options opts = {.user_data = &a_side};
    char addr[64];
    int lfd, cfd;
    gn_conn *conn;
    gn_loop *loop;

    reset();
    cr_assert_eq(gn_loop_new(&loop), 0);
    lfd = gn_test_raw_listener("", addr, sizeof(addr), 4);
    cfd = gn_test_connect_fd(addr);
    cr_assert_geq(cfd, 0);
    cr_assert_eq(gn_conn_adopt(loop, cfd, NULL, &handlers, &opts, &conn), 0);
    gn_test_run_loop_for(loop, 50);
    cr_expect_eq(a_side.connects, 1, "on_connect fired");
    gn_abort(conn);
    gn_test_run_loop_for(loop, 50);
    close(lfd);
    gn_loop_free(loop);
}
