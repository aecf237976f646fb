/*
 * A program built against one gnezdo header and run against a library
 * built from another (tests/abi/compat.sh): every struct it hands in or
 * receives crosses that line.  Prints what it did and "ok", or says what
 * failed and exits 1.
 *
 * Built with -DGN_SETS_NEWER_FIELD against a header that has
 * added_in_next_minor, it sets that field in gn_options and expects an
 * older library to refuse it (GN_EINVAL, with a message) rather than
 * ignore it.
 */
#include <gnezdo.h>
#include <stdio.h>
#include <string.h>

#define CHECK(cond, what)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "consumer: %s failed\n", what);                                        \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static void echo_lines(gn_conn *conn)
{
    char line[256];
    size_t len;

    while (gn_read_line(conn, line, sizeof(line) - 1, &len, 5000) == 1) {
        line[len++] = '\n'; /* gn_read_line gives the line without it */
        if (gn_write_all(conn, line, len, 5000) < 0)
            return;
    }
}

#ifdef GN_SETS_NEWER_FIELD
int main(void)
{
    gn_options opts = {.added_in_next_minor = 1};
    char err[GN_ERRBUF_SIZE];
    gn_server *srv;
    int rc = gn_serve_threads("127.0.0.1:0", echo_lines, &opts, NULL, &srv, err, sizeof(err));

    CHECK(rc == GN_EINVAL, "refusing a field this library does not know");
    printf("library %s refused: %s\n", gn_version(), err);
    printf("ok\n");
    return 0;
}
#else
static int threaded_echo(void)
{
    gn_options opts = {.max_input = 4096, .idle_timeout_ms = 10000};
    gn_thread_options topts = {.max_threads = 4, .cache = 2, .queue = 8};
    char err[GN_ERRBUF_SIZE], addr[GN_ENDPOINT_STRLEN], line[64];
    gn_thread_stats ts;
    gn_conn_stats cs;
    gn_endpoint ep;
    gn_server *srv;
    gn_conn *conn;
    size_t len;

    CHECK(gn_serve_threads("127.0.0.1:0", echo_lines, &opts, &topts, &srv, err, sizeof(err)) == 0,
          err);
    CHECK(gn_server_get_endpoint(srv, 0, &ep) == 0, "the server's address");
    gn_endpoint_format(&ep, addr, sizeof(addr));
    CHECK(gn_dial(addr, 5000, &opts, &conn, err, sizeof(err)) == 0, err);
    CHECK(gn_write_all(conn, "hello\n", 6, 5000) == 0, "write");
    CHECK(gn_read_line(conn, line, sizeof(line), &len, 5000) == 1, "read the echo");
    CHECK(len >= 5 && memcmp(line, "hello", 5) == 0, "the echo's bytes");
    memset(&cs, 0xff, sizeof(cs));
    CHECK(gn_conn_get_stats(conn, &cs) == 0 && cs.bytes_out == 6, "connection stats");
    CHECK(gn_server_get_thread_stats(srv, &ts) == 0 && ts.created >= 1, "thread stats");
    gn_close(conn);
    gn_server_close(srv, 1000);
    printf("threaded echo over %s: ok\n", addr);
    return 0;
}

static int datagram_to_itself(void)
{
    gn_dgram_options opts = {.max_datagram = 2048, .max_queue = 65536};
    char err[GN_ERRBUF_SIZE], buf[64];
    gn_endpoint from;
    gn_dgram *sock;
    ssize_t n;

    CHECK(gn_dgram_open_blocking("udp://127.0.0.1:0", GN_DGRAM_BIND, &opts, &sock, err,
                                 sizeof(err)) == 0,
          err);
    CHECK(gn_dgram_send_wait(sock, "ping", 4, gn_dgram_local(sock), 5000) == 0, "datagram send");
    n = gn_dgram_recv(sock, buf, sizeof(buf), &from, 5000);
    CHECK(n == 4 && memcmp(buf, "ping", 4) == 0, "datagram receive");
    gn_dgram_close(sock);
    printf("datagram: ok\n");
    return 0;
}

static size_t pair_data(gn_conn *conn, const char *data, size_t len)
{
    int *got = gn_conn_user_data(conn);

    (void)data;
    *got += (int)len;
    if (*got >= 4)
        gn_loop_stop(gn_conn_loop(conn));
    return len;
}

static int async_pair(void)
{
    gn_handlers quiet = {0}, counting = {.on_data = pair_data};
    int got = 0;
    gn_options opts = {.user_data = &got};
    gn_conn *a, *b;
    gn_loop *loop;

    CHECK(gn_loop_new(&loop) == 0, "loop");
    CHECK(gn_conn_pair(loop, NULL, &quiet, &counting, &opts, &a, &b) == 0, "connection pair");
    CHECK(gn_send(a, "data", 4) == 0, "send");
    gn_loop_run(loop);
    CHECK(got == 4, "the pair's bytes");
    gn_loop_free(loop);
    printf("event loop pair: ok\n");
    return 0;
}

int main(void)
{
    printf("built against %s, running with %s\n", GN_VERSION_STRING, gn_version());
    if (threaded_echo() || datagram_to_itself() || async_pair())
        return 1;
    printf("ok\n");
    return 0;
}
#endif
