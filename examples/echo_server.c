/*
 * echo_server - the smallest useful server: every byte a client sends
 * comes back to it.
 *
 * Shows gn_listen, on_data returning what it consumed, and
 * pause_reading_when_full: while a client's output queue is above the
 * high watermark the server stops reading from it, so a client that sends
 * but never reads costs bounded memory instead of filling the queue.
 * Also the shutdown every example server uses: SIGINT/SIGTERM stop the
 * loop, the server is closed (connections flushed), and main returns 0.
 *
 * Try it:
 *     build/examples/echo_server 127.0.0.1:7000
 *     nc 127.0.0.1 7000          # type lines; each comes back
 */
#include <gnezdo.h>
#include <signal.h>
#include <stdio.h>

#define DEFAULT_ADDR   "127.0.0.1:7000"
#define CLOSE_GRACE_MS 1000

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

/* The first stdout line says where we listen: with port 0 the caller
 * learns the port the system chose. */
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

static size_t echo(gn_conn *conn, const char *data, size_t len)
{
    /* gn_send copies what the socket does not take at once.  With
     * pause_reading_when_full the queue stays near the high watermark,
     * far below max_output, so this only fails on a closing connection. */
    gn_send(conn, data, len);
    return len;
}

/* Parse errors are the user's input (exit 2); the rest are the system's. */
static int listen_status(int rc)
{
    return rc == GN_EBADADDR || rc == GN_ENOSERVICE || rc == GN_ETOOLONG || rc == GN_EINVAL ? 2 : 1;
}

int main(int argc, char **argv)
{
    const gn_handlers h = {.on_data = echo};
    const gn_options opts = {.pause_reading_when_full = true};
    const char *addr = argc > 1 ? argv[1] : DEFAULT_ADDR;
    char err[GN_ERRBUF_SIZE];
    gn_server *srv;
    gn_loop *loop;
    int rc;

    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: echo_server [ADDR]  (default %s), not '%s'\n", DEFAULT_ADDR,
                argv[argc - 1]);
        return 2;
    }
    if (gn_loop_new(&loop) < 0) {
        fprintf(stderr, "echo_server: cannot create an event loop\n");
        return 1;
    }
    /* Before 'listening on': a signal may follow it at once. */
    if (catch_signals(loop) < 0) {
        fprintf(stderr, "echo_server: cannot watch SIGINT and SIGTERM\n");
        gn_loop_free(loop);
        return 1;
    }
    rc = gn_listen(loop, addr, &h, &opts, &srv, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "echo_server: %s\n", err);
        gn_loop_free(loop);
        return listen_status(rc);
    }
    print_listening(srv);
    gn_loop_run(loop);                    /* until SIGINT or SIGTERM */
    gn_server_close(srv, CLOSE_GRACE_MS); /* flush clients, then close */
    gn_loop_run(loop);
    gn_loop_free(loop);
    return 0;
}
