/*
 * `gnezdo demo` (what `make demo` runs): one process, one loop.  A server
 * socket listens on a free loopback port, three client sockets connect,
 * the server creates a connection object per client and shows both of its
 * endpoints, every client says hello, the server broadcasts each line to
 * the others, then everyone closes cleanly.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gnezdo.h"

#define CLIENTS         3
#define DEMO_TIMEOUT_MS 5000

struct demo_client {
    int id;
    gn_conn *conn;
    int lines_heard;
};

static struct demo {
    gn_server *srv;
    struct demo_client clients[CLIENTS];
    int accepted, closed_clients;
    uint64_t timeout_timer;
} demo;

static const char *fmt_ep(const gn_endpoint *ep, char *buf, size_t len)
{
    if (!ep)
        return "?";
    gn_endpoint_format(ep, buf, len);
    return buf;
}

/* ---- the server side ------------------------------------------------ */

static void server_accept(gn_conn *conn)
{
    char remote[GN_ENDPOINT_STRLEN], local[GN_ENDPOINT_STRLEN];

    demo.accepted++;
    printf("server: new connection object #%d  %s -> %s  (%zu live)\n", demo.accepted,
           fmt_ep(gn_conn_remote(conn), remote, sizeof(remote)),
           fmt_ep(gn_conn_local(conn), local, sizeof(local)), gn_server_conn_count(demo.srv));
}

struct relay {
    gn_conn *from;
    char text[512];
    size_t len;
};

static void relay_to(gn_conn *conn, void *arg)
{
    struct relay *r = arg;

    if (conn != r->from)
        gn_send(conn, r->text, r->len);
}

static size_t server_data(gn_conn *conn, const char *data, size_t len)
{
    size_t used = 0, line_len, frame_len;
    char who[GN_ENDPOINT_STRLEN];
    struct relay r = {.from = conn};

    while (gn_frame_line(data + used, len - used, 256, &line_len, &frame_len) == 1) {
        fmt_ep(gn_conn_remote(conn), who, sizeof(who));
        printf("server: %s says \"%.*s\"; broadcasting to the other %zu\n", who, (int)line_len,
               data + used, gn_server_conn_count(demo.srv) - 1);
        r.len =
            (size_t)snprintf(r.text, sizeof(r.text), "%s: %.*s\n", who, (int)line_len, data + used);
        gn_server_foreach(demo.srv, relay_to, &r);
        used += frame_len;
    }
    return used;
}

static void server_close(gn_conn *conn, int reason)
{
    char remote[GN_ENDPOINT_STRLEN];

    printf("server: connection %s closed (%s)\n",
           fmt_ep(gn_conn_remote(conn), remote, sizeof(remote)),
           reason ? gn_strerror(reason) : "orderly");
}

/* ---- the client side ------------------------------------------------ */

static void client_connect(gn_conn *conn)
{
    struct demo_client *c = gn_conn_user_data(conn);
    char line[64];
    int n = snprintf(line, sizeof(line), "hello from client %d\n", c->id);

    gn_send(conn, line, (size_t)n);
}

static size_t client_data(gn_conn *conn, const char *data, size_t len)
{
    struct demo_client *c = gn_conn_user_data(conn);
    size_t used = 0, line_len, frame_len;

    while (gn_frame_line(data + used, len - used, 512, &line_len, &frame_len) == 1) {
        printf("client %d: heard \"%.*s\"\n", c->id, (int)line_len, data + used);
        used += frame_len;
        if (++c->lines_heard == CLIENTS - 1)
            gn_close(conn); /* heard everyone else: done */
    }
    return used;
}

static void client_close(gn_conn *conn, int reason)
{
    struct demo_client *c = gn_conn_user_data(conn);

    printf("client %d: closed (%s)\n", c->id, reason ? gn_strerror(reason) : "orderly");
    if (++demo.closed_clients == CLIENTS) {
        gn_server_close(demo.srv, 1000);
        gn_timer_cancel(gn_conn_loop(conn), demo.timeout_timer);
    }
}

static void client_error(gn_conn *conn, int code, const char *message)
{
    (void)conn;
    (void)code;
    printf("error: %s\n", message);
}

static void give_up(gn_loop *loop, uint64_t id, void *arg)
{
    (void)id;
    (void)arg;
    printf("demo: timed out after %d ms\n", DEMO_TIMEOUT_MS);
    gn_loop_stop(loop);
}

static int start_clients(gn_loop *loop, const char *addr)
{
    const gn_handlers h = {.on_connect = client_connect,
                           .on_data = client_data,
                           .on_error = client_error,
                           .on_close = client_close};
    char err[GN_ERRBUF_SIZE];

    for (int i = 0; i < CLIENTS; i++) {
        gn_options opts = {.user_data = &demo.clients[i]};
        demo.clients[i].id = i + 1;
        if (gn_connect(loop, addr, &h, &opts, &demo.clients[i].conn, err, sizeof(err)) < 0)
            return cli_fail("%s", err);
        printf("client %d: connecting to %s\n", i + 1, addr);
    }
    return 0;
}

int cli_demo(int argc, char **argv)
{
    const gn_handlers h = {
        .on_accept = server_accept, .on_data = server_data, .on_close = server_close};
    char addr[GN_ENDPOINT_STRLEN], err[GN_ERRBUF_SIZE];
    gn_endpoint ep;
    gn_loop *loop;
    int rc;

    (void)argv;
    if (argc > 0)
        return cli_usage_error("demo takes no arguments");
    if (gn_loop_new(&loop) < 0)
        return cli_fail("cannot create an event loop");
    if (gn_listen(loop, "127.0.0.1:0", &h, NULL, &demo.srv, err, sizeof(err)) < 0) {
        gn_loop_free(loop);
        return cli_fail("%s", err);
    }
    gn_server_get_endpoint(demo.srv, 0, &ep);
    gn_endpoint_format(&ep, addr, sizeof(addr));
    printf("server: listening on %s (port picked by the kernel; 'http' would be port %d)\n", addr,
           gn_service_port("http", GN_PROTO_TCP));
    rc = start_clients(loop, addr);
    gn_timer_start(loop, DEMO_TIMEOUT_MS, 0, give_up, NULL, &demo.timeout_timer);
    if (rc == 0)
        gn_loop_run(loop);
    gn_timer_cancel(loop, demo.timeout_timer);
    gn_loop_free(loop);
    if (rc == 0 && (demo.closed_clients != CLIENTS || demo.accepted != CLIENTS))
        return cli_fail("the demo did not complete");
    if (rc == 0)
        printf("demo: %d clients served, every message delivered, all closed\n", CLIENTS);
    return rc;
}
