/*
 * http_hello - a tiny HTTP/1.1 server that answers every request with
 * "hello\n": an example of a protocol on top of gnezdo, not a web server.
 *
 * Shows parsing a request from whatever bytes on_data holds (a request
 * split into 1-byte writes waits for the rest; several pipelined requests
 * in one read are answered one by one, in order), per-connection state in
 * user_data, and a "lingering" close: after a response that ends the
 * connection, gn_shutdown sends FIN and the rest of the input is read and
 * thrown away, so the client is not reset before it reads the response.
 *
 * HTTP handled: request line "METHOD TARGET HTTP/1.0|HTTP/1.1" (else 400),
 * headers up to 8 KiB (else 431), Content-Length bodies (skipped),
 * HEAD (no body), Connection: keep-alive by default for 1.1, close for 1.0
 * unless "keep-alive", "close" always honoured.  Transfer-Encoding (chunked
 * bodies) is not supported: 411 Length Required, then close.  Errors close.
 *
 * The same server speaks HTTPS when its address says tls:// and it is
 * given a certificate: nothing else in it changes.  The request parser
 * is in http_request.h, where fuzz/fuzz_http_request.c reaches it too.
 *
 * Try it:
 *     build/examples/http_hello 127.0.0.1:8080
 *     curl -v http://127.0.0.1:8080/ http://127.0.0.1:8080/again
 *     build/examples/http_hello tls://127.0.0.1:8443 --cert server.pem --key server.key
 *     curl --cacert ca.pem https://localhost:8443/
 */
#include <gnezdo.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_request.h" /* parse_head: the request parser, fuzzed alone */

#define DEFAULT_ADDR   "127.0.0.1:8080"
#define CLOSE_GRACE_MS 1000
#define IDLE_MS        30000 /* also bounds a lingering close */

struct http_conn {
    uint64_t body_left;   /* request body bytes still to skip */
    bool finished;        /* last response sent: discard all input */
    uint64_t finished_at; /* when, by the loop's clock */
};

/* ---- responding -------------------------------------------------------- */

static void finish(gn_conn *conn, struct http_conn *hc)
{
    hc->finished = true;
    hc->finished_at = gn_loop_now(gn_conn_loop(conn));
    gn_shutdown(conn); /* FIN after the response; the peer's close ends it */
}

static void respond_error(gn_conn *conn, struct http_conn *hc, int status)
{
    const char *reason = status == 431   ? "Request Header Fields Too Large"
                         : status == 411 ? "Length Required"
                                         : "Bad Request";
    char buf[160];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status,
                     reason);

    gn_send(conn, buf, (size_t)n);
    finish(conn, hc);
}

static void respond_hello(gn_conn *conn, struct http_conn *hc, const struct request *req)
{
    bool keep_alive = !req->conn_close && (req->minor == 1 || req->conn_keep_alive);
    char buf[160];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n"
                     "Connection: %s\r\n\r\n%s",
                     keep_alive ? "keep-alive" : "close", req->head ? "" : "hello\n");

    gn_send(conn, buf, (size_t)n);
    hc->body_left = req->content_length;
    if (!keep_alive)
        finish(conn, hc);
}

/* ---- connection handlers ----------------------------------------------- */

/* Handles one request head at data; returns the bytes it used (0: wait). */
static size_t handle_head(gn_conn *conn, struct http_conn *hc, const char *data, size_t len)
{
    struct request req;
    long n = parse_head(data, len, &req);

    if (n < 0) {
        respond_error(conn, hc, (int)-n);
        return len;
    }
    if (n > 0)
        respond_hello(conn, hc, &req);
    return (size_t)n;
}

static size_t on_data(gn_conn *conn, const char *data, size_t len)
{
    struct http_conn *hc = gn_conn_user_data(conn);
    size_t used = 0;

    while (used < len && !hc->finished) {
        if (hc->body_left > 0) {
            size_t skip = len - used < hc->body_left ? len - used : (size_t)hc->body_left;
            hc->body_left -= skip;
            used += skip;
            continue;
        }
        size_t n = handle_head(conn, hc, data + used, len - used);
        if (n == 0)
            break; /* an incomplete request: on_data offers it again with more */
        used += n;
    }
    /* A lingering close lasts IDLE_MS at most, however the client
     * trickles bytes to keep it open. */
    if (hc->finished && gn_loop_now(gn_conn_loop(conn)) - hc->finished_at > IDLE_MS)
        gn_abort(conn);
    return hc->finished ? len : used;
}

static void on_accept(gn_conn *conn)
{
    struct http_conn *hc = calloc(1, sizeof(*hc));

    if (!hc) {
        gn_abort(conn);
        return;
    }
    gn_conn_set_user_data(conn, hc);
}

static void on_close(gn_conn *conn, int reason)
{
    (void)reason;
    free(gn_conn_user_data(conn));
}

/* ---- main ---------------------------------------------------------------- */

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

static int listen_status(int rc)
{
    return rc == GN_EBADADDR || rc == GN_ENOSERVICE || rc == GN_ETOOLONG || rc == GN_EINVAL ? 2 : 1;
}

int main(int argc, char **argv)
{
    const gn_handlers h = {.on_accept = on_accept, .on_data = on_data, .on_close = on_close};
    /* Pipelined requests from a client that never reads answers stop
     * being read once its output is full. */
    gn_options opts = {.pause_reading_when_full = true, .idle_timeout_ms = IDLE_MS};
    gn_tls_options tls = {0};
    const char *addr = DEFAULT_ADDR;
    char err[GN_ERRBUF_SIZE];
    gn_server *srv;
    gn_loop *loop;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc) {
            tls.cert_file = argv[++i];
        } else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
            tls.key_file = argv[++i];
        } else if (argv[i][0] == '-' || i > 1) {
            fprintf(stderr,
                    "usage: http_hello [ADDR] [--cert FILE --key FILE]  (default %s), not '%s'\n",
                    DEFAULT_ADDR, argv[i]);
            return 2;
        } else {
            addr = argv[i];
        }
    }
    if (tls.cert_file || tls.key_file)
        opts.tls = &tls; /* used when addr is tls:// */
    if (gn_loop_new(&loop) < 0) {
        fprintf(stderr, "http_hello: cannot create an event loop\n");
        return 1;
    }
    /* Before 'listening on': a signal may follow it at once. */
    if (catch_signals(loop) < 0) {
        fprintf(stderr, "http_hello: cannot watch SIGINT and SIGTERM\n");
        gn_loop_free(loop);
        return 1;
    }
    rc = gn_listen(loop, addr, &h, &opts, &srv, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "http_hello: %s\n", err);
        gn_loop_free(loop);
        return listen_status(rc);
    }
    print_listening(srv);
    gn_loop_run(loop); /* until SIGINT or SIGTERM */
    gn_server_close(srv, CLOSE_GRACE_MS);
    gn_loop_run(loop);
    gn_loop_free(loop);
    return 0;
}
