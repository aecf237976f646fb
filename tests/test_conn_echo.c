/*
 * Bytes arrive intact: an echo server returns random payloads from 1 byte
 * to 16 MiB byte for byte, and one loop serves 200 concurrent clients.
 * Client and server are both gnezdo, in one loop, over real loopback TCP.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

static size_t echo(gn_conn *conn, const char *data, size_t len)
{
    int rc = gn_send(conn, data, len);

    GN_TEST_CHECK(rc == 0, "gn_send: %s", gn_strerror(rc));
    return len;
}

struct client {
    char *payload;
    size_t len, sent, received;
    bool connected, closed, mismatch;
    int reason;
    gn_server *srv;
    int *open_clients;
};

/* Sends in pieces so a 16 MiB payload never passes max_output. */
static void push(gn_conn *conn)
{
    struct client *c = gn_conn_user_data(conn);

    while (c->sent < c->len) {
        size_t piece = c->len - c->sent < 65536 ? c->len - c->sent : 65536;
        int rc = gn_send(conn, c->payload + c->sent, piece);
        if (rc == GN_ENOBUFS)
            return; /* on_drain resumes */
        cr_assert_eq(rc, 0);
        c->sent += piece;
    }
}

static void client_connect(gn_conn *conn)
{
    struct client *c = gn_conn_user_data(conn);

    c->connected = true;
    push(conn);
}

static size_t client_data(gn_conn *conn, const char *data, size_t len)
{
    struct client *c = gn_conn_user_data(conn);

    if (c->received + len > c->len || memcmp(c->payload + c->received, data, len) != 0)
        c->mismatch = true;
    c->received += len;
    if (c->received >= c->len)
        gn_close(conn);
    return len;
}

static void client_close(gn_conn *conn, int reason)
{
    struct client *c = gn_conn_user_data(conn);

    c->closed = true;
    c->reason = reason;
    if (--*c->open_clients == 0)
        gn_server_close(c->srv, 1000);
}

static const gn_handlers client_handlers = {
    .on_connect = client_connect,
    .on_data = client_data,
    .on_drain = push,
    .on_close = client_close,
};

static void run_echo(struct client *clients, int n)
{
    const gn_handlers server_handlers = {.on_data = echo};
    gn_options server_opts = {.pause_reading_when_full = true};
    char addr[GN_ENDPOINT_STRLEN], err[GN_ERRBUF_SIZE];
    int fds = gn_test_count_fds(), open_clients = n;
    gn_loop *loop;
    gn_server *srv;
    gn_conn *conn;

    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &server_handlers, &server_opts, addr, sizeof(addr));
    for (int i = 0; i < n; i++) {
        gn_options opts = {.user_data = &clients[i]};
        clients[i].srv = srv;
        clients[i].open_clients = &open_clients;
        cr_assert_eq(gn_connect(loop, addr, &client_handlers, &opts, &conn, err, sizeof(err)), 0,
                     "%s", err);
    }
    cr_assert_eq(gn_test_run_loop_for(loop, 60000), 0);
    gn_loop_free(loop);
    for (int i = 0; i < n; i++) {
        cr_expect(clients[i].connected, "client %d connected", i);
        cr_expect(clients[i].closed, "client %d closed", i);
        cr_expect_eq(clients[i].reason, 0, "client %d: %s", i, gn_strerror(clients[i].reason));
        cr_expect_eq(clients[i].received, clients[i].len, "client %d", i);
        cr_expect_not(clients[i].mismatch, "client %d got other bytes than it sent", i);
    }
    cr_expect_eq(gn_test_count_fds(), fds, "no descriptor leaked");
    gn_test_checks_ok();
}

static char *random_bytes(size_t len, unsigned seed)
{
    char *p = malloc(len ? len : 1);

    cr_assert_not_null(p);
    srand(seed);
    for (size_t i = 0; i < len; i++)
        p[i] = (char)rand();
    return p;
}

Test(conn_echo, random_payloads_from_1_byte_to_16_mib_come_back_intact, .timeout = 120)
{
    static const size_t sizes[] = {1, 2, 63, 4096, 65535, 65537, 1 << 20, 16 << 20};
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    struct client clients[N];

    memset(clients, 0, sizeof(clients));
    for (int i = 0; i < N; i++) {
        clients[i].len = sizes[i];
        clients[i].payload = random_bytes(sizes[i], (unsigned)i + 1);
    }
    run_echo(clients, N);
    for (int i = 0; i < N; i++)
        free(clients[i].payload);
}

Test(conn_echo, one_loop_serves_200_concurrent_clients, .timeout = 120)
{
    enum { N = 200 };
    static struct client clients[N];

    memset(clients, 0, sizeof(clients));
    for (int i = 0; i < N; i++) {
        clients[i].len = 1000 + (size_t)i * 97;
        clients[i].payload = random_bytes(clients[i].len, (unsigned)i + 100);
    }
    run_echo(clients, N);
    for (int i = 0; i < N; i++)
        free(clients[i].payload);
}

static void count_conns(gn_conn *conn, void *arg)
{
    (void)conn;
    (*(int *)arg)++;
}

struct counting {
    gn_server *srv;
    int accepted, max_live, closed;
};

static struct counting counting;
/* With GN_TEST_LOOPS=2, on_accept runs on two threads. */
static pthread_mutex_t counting_lock = PTHREAD_MUTEX_INITIALIZER;

static void note_accept(gn_conn *conn)
{
    char local[GN_ENDPOINT_STRLEN], remote[GN_ENDPOINT_STRLEN];
    int visited = 0;

    GN_TEST_CHECK(gn_conn_local(conn) && gn_conn_remote(conn));
    if (!gn_conn_local(conn) || !gn_conn_remote(conn))
        return;
    gn_endpoint_format(gn_conn_local(conn), local, sizeof(local));
    gn_endpoint_format(gn_conn_remote(conn), remote, sizeof(remote));
    GN_TEST_CHECK(strncmp(remote, "127.0.0.1:", 10) == 0, "%s", remote);
    GN_TEST_CHECK(gn_conn_server(conn) == counting.srv);
    gn_server_foreach(counting.srv, count_conns, &visited);
    /* On several loops a client counts from its hand-out, before its
     * own loop has announced it. */
    if (gn_test_loops() > 1)
        GN_TEST_CHECK((size_t)visited <= gn_server_conn_count(counting.srv));
    else
        GN_TEST_CHECK((size_t)visited == gn_server_conn_count(counting.srv));
    pthread_mutex_lock(&counting_lock);
    counting.accepted++;
    if (visited > counting.max_live)
        counting.max_live = visited;
    pthread_mutex_unlock(&counting_lock);
}

Test(conn_echo, server_lists_live_connections_with_both_endpoints)
{
    const gn_handlers h = {.on_accept = note_accept, .on_data = echo};
    char addr[GN_ENDPOINT_STRLEN], buf[4];
    int fds[5];
    gn_loop *loop;

    cr_assert_eq(gn_loop_new(&loop), 0);
    counting = (struct counting){0};
    counting.srv = gn_test_listen(loop, "127.0.0.1:0", &h, NULL, addr, sizeof(addr));
    for (int i = 0; i < 5; i++) {
        fds[i] = gn_test_connect_fd(addr);
        cr_assert_geq(fds[i], 0);
        cr_assert_eq(write(fds[i], "x", 1), 1);
    }
    gn_test_run_loop_for(loop, 300);
    cr_expect_eq(counting.accepted, 5);
    cr_expect_eq(counting.max_live, 5);
    cr_expect_eq(gn_server_conn_count(counting.srv), 5u);
    for (int i = 0; i < 5; i++) {
        cr_expect_eq(read(fds[i], buf, 1), 1);
        close(fds[i]);
    }
    gn_test_run_loop_for(loop, 300);
    cr_expect_eq(gn_server_conn_count(counting.srv), 0u, "closed peers leave the list");
    gn_server_close(counting.srv, 0);
    cr_expect_eq(gn_loop_run(loop), 0);
    gn_loop_free(loop);
    gn_test_checks_ok();
}
