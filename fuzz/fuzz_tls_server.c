/*
 * libFuzzer target for a server's TLS connections: the input is what a
 * client sends, from its first byte (fuzz/corpus/tls_server holds real
 * ClientHellos from openssl s_client, so that mutations reach past the
 * record layer into the handshake, its extensions, SNI and ALPN).
 *
 * One server for the whole run (gn_listen on tls://127.0.0.1:0 with the
 * test certificates of tests/make_certs.sh and an ALPN list: the
 * OpenSSL context is made once), and for every input a new loopback
 * connection that sends the input, half-closes, reads what comes back and
 * resets.  The server side is gnezdo's own: its accept, the TLS
 * transport over memory BIOs, the handshake timer, the failure path.
 * Checks: no crash or leak (ASan, LeakSanitizer), a handshake that fails
 * never reaches the handlers, and once the client is gone the server
 * holds no connection (and so no descriptor, SSL or buffer) for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_loop.h"
#include "gnezdo.h"

#define QUIET_STEPS 3
#define MAX_STEPS   256

#ifndef GN_FUZZ_CERTS
#error "GN_FUZZ_CERTS: the directory of tests/make_certs.sh's certificates"
#endif

static gn_loop *loop;
static gn_server *server;
static struct sockaddr_in server_addr;
static uint64_t events, peer_bytes;
static int accepts, closes;

/* ---- the server: echoes whatever a client that got through sends ---- */

static void on_accept(gn_conn *conn)
{
    gn_tls_info info;

    events++;
    accepts++;
    if (gn_conn_get_tls_info(conn, &info) != 0) {
        fprintf(stderr, "fuzz_tls_server: on_accept before the handshake ended\n");
        abort();
    }
}

static size_t on_data(gn_conn *conn, const char *data, size_t len)
{
    events++;
    gn_send(conn, data, len);
    return len;
}

static void on_close(gn_conn *conn, int reason)
{
    (void)conn;
    (void)reason;
    events++;
    closes++;
}

static void quiet_log(gn_log_level level, const char *message, void *arg)
{
    (void)level;
    (void)message;
    (void)arg; /* refused handshakes are the point here, not news */
}

static void start_server(void)
{
    const gn_handlers h = {.on_accept = on_accept, .on_data = on_data, .on_close = on_close};
    const gn_tls_options tls = {.cert_file = GN_FUZZ_CERTS "/server.pem",
                                .key_file = GN_FUZZ_CERTS "/server.key",
                                .alpn = "h2,http/1.1"};
    const gn_options opts = {.tls = &tls};
    char err[GN_ERRBUF_SIZE];
    gn_endpoint ep;
    socklen_t len;
    const struct sockaddr *sa;

    gn_log_set(quiet_log, GN_LOG_WARN, NULL);
    if (gn_loop_new_backend(&loop, "epoll") < 0 ||
        gn_listen(loop, "tls://127.0.0.1:0", &h, &opts, &server, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_tls_server: no server (%s): run tests/make_certs.sh %s\n", err,
                GN_FUZZ_CERTS);
        abort();
    }
    gn_server_get_endpoint(server, 0, &ep);
    sa = gn_endpoint_sockaddr(&ep, &len);
    memcpy(&server_addr, sa, sizeof(server_addr));
}

/* ---- the client: the fuzzer's bytes --------------------------------- */

static void drain(int fd)
{
    char buf[16384];
    ssize_t n;

    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
        peer_bytes += (uint64_t)n;
}

static uint64_t progress(void)
{
    return events + peer_bytes + gn_server_conn_count(server);
}

static void run_until_quiet(int fd)
{
    uint64_t last = progress();

    for (int i = 0, quiet = 0; i < MAX_STEPS && quiet < QUIET_STEPS; i++) {
        uint64_t now;
        fuzz_loop_step(loop);
        if (fd >= 0)
            drain(fd);
        now = progress();
        quiet = now == last ? quiet + 1 : 0;
        last = now;
    }
}

static int connect_client(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0 || connect(fd, (const struct sockaddr *)&server_addr, sizeof(server_addr)) < 0) {
        fprintf(stderr, "fuzz_tls_server: cannot connect: %s\n", strerror(errno));
        abort();
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* A reset, not a FIN: no TIME_WAIT left behind for every input. */
static void reset_client(int fd)
{
    struct linger lg = {1, 0};

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

static void send_input(int fd, const uint8_t *data, size_t size)
{
    for (size_t at = 0; at < size;) {
        ssize_t n = send(fd, data + at, size - at, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            at += (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return; /* the server gave up on us: fine */
        }
        run_until_quiet(fd);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd, accepted_before = accepts, closes_before = closes;

    if (!server)
        start_server();
    fd = connect_client();
    run_until_quiet(fd); /* accepted */
    send_input(fd, data, size);
    run_until_quiet(fd);
    shutdown(fd, SHUT_WR); /* the end of the client's bytes */
    run_until_quiet(fd);
    reset_client(fd);
    for (int i = 0; i < 8 && gn_server_conn_count(server) > 0; i++)
        run_until_quiet(-1);
    if (gn_server_conn_count(server) != 0) {
        fprintf(stderr, "fuzz_tls_server: the client is gone, the server still holds %zu\n",
                gn_server_conn_count(server));
        abort();
    }
    if (closes - closes_before != accepts - accepted_before) {
        fprintf(stderr, "fuzz_tls_server: %d accepted, %d closed\n", accepts - accepted_before,
                closes - closes_before);
        abort();
    }
    return 0;
}
