/*
 * The hostile network (gn_faults_set, GNEZDO_FAULTS): malformed specs are
 * refused with a reason, a malformed environment stops loops from
 * starting, one seed replays the same faults, and bytes still arrive
 * intact and in order through connections that suffer them.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

Test(faults, malformed_specs_are_refused_with_a_reason)
{
    static const char *const bad[] = {
        "x",
        "1",
        "1:",
        ":0.5",
        "1:2",
        "1:1.5",
        "1:101%",
        "1:0.5:",
        "1:0.5:bogus",
        "1:0.5:short,",
        "1:.",
        "-1:0.5",
        "99999999999999999999:0.5",
        "1:0.5:short:eintr",
        "1:0.5x",
    };
    char err[GN_ERRBUF_SIZE];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(gn_faults_set(bad[i], err, sizeof(err)), GN_EINVAL, "%s", bad[i]);
        cr_expect(strstr(err, bad[i]) != NULL, "the message quotes the spec: %s", err);
    }
    cr_expect_eq(gn_faults_set("1:0.5", NULL, 0), 0);
    cr_expect_eq(gn_faults_set("18446744073709551615:1:all", err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(gn_faults_set("7:25%:short,eagain,eintr,delay", err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(gn_faults_set("7:0", err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(gn_faults_set(NULL, err, sizeof(err)), 0);
    cr_expect_eq(gn_faults_set("", err, sizeof(err)), 0);
}

Test(faults, a_malformed_environment_stops_loops_until_the_program_decides)
{
    gn_loop *loop;

    setenv("GNEZDO_FAULTS", "1:half", 1); /* read once, at the first loop */
    cr_expect_eq(gn_loop_new(&loop), GN_EINVAL);
    cr_expect_eq(gn_faults_set(NULL, NULL, 0), 0);
    cr_assert_eq(gn_loop_new(&loop), 0);
    gn_loop_free(loop);
}

/* ---- the same seed, the same faults ------------------------------------ */

#define REPLAY_BYTES (48u << 10)
#define MAX_PIECES   4096

struct replay {
    size_t sizes[MAX_PIECES];
    size_t pieces, bytes;
};

static size_t note_piece(gn_conn *conn, const char *data, size_t len)
{
    struct replay *r = gn_conn_user_data(conn);

    (void)data;
    if (r->pieces < MAX_PIECES)
        r->sizes[r->pieces++] = len;
    r->bytes += len;
    return len;
}

static void replay_done(gn_conn *conn)
{
    gn_close(conn);
}

/* Read REPLAY_BYTES that wait in a socketpair before the loop starts:
 * the pieces on_data sees depend on the injected faults alone. */
static void read_under(const char *spec, struct replay *r)
{
    const gn_handlers h = {.on_data = note_piece, .on_end = replay_done};
    gn_options opts = {.user_data = r};
    static char payload[REPLAY_BYTES];
    char err[GN_ERRBUF_SIZE];
    gn_loop *loop;
    gn_conn *conn;
    int sv[2];

    memset(r, 0, sizeof(*r));
    cr_assert_eq(gn_faults_set(spec, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(write(sv[1], payload, sizeof(payload)), (ssize_t)sizeof(payload));
    close(sv[1]);
    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_conn_adopt(loop, sv[0], NULL, &h, &opts, &conn), 0);
    cr_assert_eq(gn_test_run_loop_for(loop, 5000), 0);
    gn_loop_free(loop);
    cr_assert_eq(r->bytes, REPLAY_BYTES);
}

Test(faults, the_same_seed_cuts_input_at_the_same_places)
{
    static struct replay plain, first, again, other;
    uint64_t before;

    read_under(NULL, &plain);
    before = gn_faults_injected();
    read_under("42:0.3:short", &first);
    cr_expect_gt(gn_faults_injected(), before, "faults were injected");
    read_under("42:0.3:short", &again);
    read_under("43:0.3:short", &other);
    cr_expect_gt(first.pieces, plain.pieces, "short reads cut the input finer");
    cr_expect_eq(first.pieces, again.pieces);
    cr_expect_arr_eq(first.sizes, again.sizes, first.pieces * sizeof(size_t), "same seed");
    cr_expect(other.pieces != first.pieces ||
                  memcmp(other.sizes, first.sizes, first.pieces * sizeof(size_t)) != 0,
              "another seed, other places");
    gn_faults_set(NULL, NULL, 0);
}

/* ---- an echo through every kind of fault ------------------------------- */

#define ECHO_BYTES (1u << 20)

struct echo_client {
    unsigned char *payload;
    size_t sent, received;
    bool mismatch, closed;
    int reason;
    gn_server *srv;
};

static size_t echo_back(gn_conn *conn, const char *data, size_t len)
{
    cr_assert_eq(gn_send(conn, data, len), 0);
    return len;
}

static void push(gn_conn *conn)
{
    struct echo_client *c = gn_conn_user_data(conn);

    while (c->sent < ECHO_BYTES) {
        size_t piece = ECHO_BYTES - c->sent < 65536 ? ECHO_BYTES - c->sent : 65536;
        int rc = gn_send(conn, c->payload + c->sent, piece);
        if (rc == GN_ENOBUFS)
            return; /* on_drain comes back */
        cr_assert_eq(rc, 0);
        c->sent += piece;
    }
}

static size_t check_echo(gn_conn *conn, const char *data, size_t len)
{
    struct echo_client *c = gn_conn_user_data(conn);

    if (c->received + len > ECHO_BYTES || memcmp(c->payload + c->received, data, len) != 0)
        c->mismatch = true;
    c->received += len;
    if (c->received >= ECHO_BYTES || c->mismatch)
        gn_close(conn);
    return len;
}

static void echo_closed(gn_conn *conn, int reason)
{
    struct echo_client *c = gn_conn_user_data(conn);

    c->closed = true;
    c->reason = reason;
    gn_server_close(c->srv, 1000);
}

static void echo_under_faults(const char *listen_addr)
{
    const gn_handlers server_h = {.on_data = echo_back};
    const gn_handlers client_h = {
        .on_connect = push, .on_drain = push, .on_data = check_echo, .on_close = echo_closed};
    gn_options opts = {.max_output = 4u << 20};
    struct echo_client c = {.payload = malloc(ECHO_BYTES)};
    char addr[GN_ENDPOINT_STRLEN], err[GN_ERRBUF_SIZE];
    uint64_t before;
    gn_loop *loop;
    gn_conn *conn;

    cr_assert_not_null(c.payload);
    srand(1);
    for (size_t i = 0; i < ECHO_BYTES; i++)
        c.payload[i] = (unsigned char)rand();
    cr_assert_eq(gn_faults_set("2026:0.2", err, sizeof(err)), 0, "%s", err);
    before = gn_faults_injected();
    cr_assert_eq(gn_loop_new(&loop), 0);
    c.srv = gn_test_listen(loop, listen_addr, &server_h, &opts, addr, sizeof(addr));
    opts.user_data = &c;
    cr_assert_eq(gn_connect(loop, addr, &client_h, &opts, &conn, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gn_test_run_loop_for(loop, 20000), 0, "the echo finished");
    gn_loop_free(loop);
    gn_faults_set(NULL, NULL, 0);
    cr_expect(c.closed);
    cr_expect_eq(c.reason, 0, "%s", gn_strerror(c.reason));
    cr_expect_not(c.mismatch, "every byte in order");
    cr_expect_eq(c.received, ECHO_BYTES);
    cr_expect_gt(gn_faults_injected(), before, "faults were injected");
    free(c.payload);
}

Test(faults, one_mebibyte_echoes_intact_over_tcp_through_faults, .timeout = 60)
{
    echo_under_faults("127.0.0.1:0");
}

Test(faults, one_mebibyte_echoes_intact_over_a_unix_socket_through_faults, .timeout = 60)
{
    char addr[64];

    snprintf(addr, sizeof(addr), "unix:@gn-test-faults-%d", (int)getpid());
    echo_under_faults(addr);
}

/* The blocking calls retry EINTR and wait out EAGAIN by themselves. */
static void echo_lines(gn_conn *conn)
{
    char buf[4096];
    ssize_t n;

    while ((n = gn_read(conn, buf, sizeof(buf), 5000)) > 0)
        if (gn_write_all(conn, buf, (size_t)n, 5000) < 0)
            break;
}

Test(faults, blocking_calls_move_every_byte_through_faults, .timeout = 60)
{
    static char out[256u << 10], in[sizeof(out)];
    char err[GN_ERRBUF_SIZE], addr[GN_ENDPOINT_STRLEN];
    gn_server *srv;
    gn_endpoint ep;
    gn_conn *conn;
    uint64_t before;

    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = (char)(i * 7 + i / 251);
    cr_assert_eq(gn_faults_set("99:0.25", err, sizeof(err)), 0, "%s", err);
    before = gn_faults_injected();
    cr_assert_eq(gn_serve_threads("127.0.0.1:0", echo_lines, NULL, NULL, &srv, err, sizeof(err)), 0,
                 "%s", err);
    gn_server_get_endpoint(srv, 0, &ep);
    gn_endpoint_format(&ep, addr, sizeof(addr));
    cr_assert_eq(gn_dial(addr, 5000, NULL, &conn, err, sizeof(err)), 0, "%s", err);
    /* Less than the socket buffers hold both ways: written whole, then read. */
    for (size_t off = 0; off < sizeof(out); off += 16384) {
        cr_assert_eq(gn_write_all(conn, out + off, 16384, 5000), 0);
        cr_assert_eq(gn_read_exact(conn, in + off, 16384, 5000), 0);
    }
    cr_expect_arr_eq(in, out, sizeof(out));
    gn_close(conn);
    gn_server_close(srv, 1000);
    gn_faults_set(NULL, NULL, 0);
    cr_expect_gt(gn_faults_injected(), before, "faults were injected");
}
