/*
 * chat_server - a line-based chat room: every line a client sends goes to
 * every other client, prefixed with the sender's address:
 *     127.0.0.1:53122: hello
 * and joins and leaves are announced the same way:
 *     127.0.0.1:53122 joined
 *     127.0.0.1:53122 left
 *
 * Shows a framed connection: the server's options cut the input into
 * lines for on_message, and a line longer than LINE_MAX_BYTES closes its
 * sender (the library refuses it with GN_EMSGSIZE, so no client can make
 * the server buffer without bound), walking the server's live connections with gn_server_foreach,
 * and dropping a client that reads too slowly to keep up (gn_send answers GN_ENOBUFS past
 * max_output).
 *
 * Try it:
 *     build/examples/chat_server 127.0.0.1:7001
 *     nc 127.0.0.1 7001          # in two or three terminals
 */
#include <gnezdo.h>
#include <signal.h>
#include <stdio.h>

#define DEFAULT_ADDR   "127.0.0.1:7001"
#define CLOSE_GRACE_MS 1000
#define LINE_MAX_BYTES 1024       /* without the newline */
#define OUTPUT_MAX     (1u << 20) /* per client: 1 MiB of unread chat */

static gn_server *server; /* NULL once closing */

/* SIGINT and SIGTERM stop the loop: signal watchers, callbacks on the
 * loop like any other, closed with it by gn_loop_free. */
static void stop_loop(gn_signal *s, int signum, void *loop)
{
    (void)s;
    (void)signum;
    gn_loop_stop(loop);
}

static int catch_signals(gn_loop *loop)
{
    gn_signal *sigint, *sigterm;

    if (gn_signal_start(loop, SIGINT, stop_loop, loop, &sigint) < 0 ||
        gn_signal_start(loop, SIGTERM, stop_loop, loop, &sigterm) < 0)
        return -1;
    return 0;
}

static void print_listening(const gn_server *srv)
{
    char text[GN_ENDPOINT_STRLEN];
    gn_endpoint ep;

    for (size_t i = 0; gn_server_get_endpoint(srv, i, &ep) == 0; i++) {
        gn_endpoint_format(&ep, text, sizeof(text));
        printf("listening on %s\n", text);
    }
    fflush(stdout);
}

struct message {
    const gn_conn *from; /* not sent back to its sender */
    const char *text;
    size_t len;
};

static void send_one(gn_conn *conn, void *arg)
{
    const struct message *msg = arg;

    if (conn == msg->from)
        return;
    /* Past max_output the client is far behind: drop it rather than let
     * one slow reader hold megabytes of everybody's chat. */
    if (gn_send(conn, msg->text, msg->len) == GN_ENOBUFS)
        gn_abort(conn);
}

/* Send "<from's address><sep><body>\n" to every client but from. */
static void broadcast(const gn_conn *from, const char *sep, const char *body, size_t body_len)
{
    char text[GN_ENDPOINT_STRLEN + LINE_MAX_BYTES + 16];
    char who[GN_ENDPOINT_STRLEN] = "?";
    struct message msg = {from, text, 0};
    int n;

    if (gn_conn_remote(from))
        gn_endpoint_format(gn_conn_remote(from), who, sizeof(who));
    n = snprintf(text, sizeof(text), "%s%s%.*s\n", who, sep, (int)body_len, body);
    if (n < 0)
        return;
    msg.len = (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1;
    if (server)
        gn_server_foreach(server, send_one, &msg);
}

static void on_accept(gn_conn *conn)
{
    broadcast(conn, " ", "joined", 6);
}

static void on_close(gn_conn *conn, int reason)
{
    (void)reason;
    broadcast(conn, " ", "left", 4);
}

/* A whole line, without its "\n" (or "\r\n"): a partial one waits in the
 * library for the rest. */
static void on_message(gn_conn *conn, const char *line, size_t len)
{
    broadcast(conn, ": ", line, len);
}

static int listen_status(int rc)
{
    return rc == GN_EBADADDR || rc == GN_ENOSERVICE || rc == GN_ETOOLONG || rc == GN_EINVAL ? 2 : 1;
}

int main(int argc, char **argv)
{
    const gn_handlers h = {.on_accept = on_accept, .on_message = on_message, .on_close = on_close};
    const gn_options opts = {
        .max_output = OUTPUT_MAX,
        .framing = {.kind = GN_FRAMING_LINE, .max_message = LINE_MAX_BYTES},
    };
    const char *addr = argc > 1 ? argv[1] : DEFAULT_ADDR;
    char err[GN_ERRBUF_SIZE];
    gn_server *srv;
    gn_loop *loop;
    int rc;

    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: chat_server [ADDR]  (default %s), not '%s'\n", DEFAULT_ADDR,
                argv[argc - 1]);
        return 2;
    }
    if (gn_loop_new(&loop) < 0) {
        fprintf(stderr, "chat_server: cannot create an event loop\n");
        return 1;
    }
    /* Before 'listening on': a signal may follow it at once. */
    if (catch_signals(loop) < 0) {
        fprintf(stderr, "chat_server: cannot watch SIGINT and SIGTERM\n");
        gn_loop_free(loop);
        return 1;
    }
    rc = gn_listen(loop, addr, &h, &opts, &server, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "chat_server: %s\n", err);
        gn_loop_free(loop);
        return listen_status(rc);
    }
    print_listening(server);
    gn_loop_run(loop); /* until SIGINT or SIGTERM */
    srv = server;
    server = NULL; /* no more broadcasts: the closing server is not ours */
    gn_server_close(srv, CLOSE_GRACE_MS);
    gn_loop_run(loop);
    gn_loop_free(loop);
    return 0;
}
