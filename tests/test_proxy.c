/*
 * Clients through proxies, against real ones started here on loopback:
 * microsocks (SOCKS5, with and without a password) and tinyproxy (HTTP
 * CONNECT, with and without Basic auth), each in front of an echo server
 * (`gnezdo listen --echo`, plain or TLS).  Both modes: gn_connect on a
 * loop and the blocking gn_dial.  A few peers written here play a proxy
 * to see what goes on the wire (socks5 vs socks5h) and a target that
 * speaks first.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

#define MICROSOCKS "/usr/bin/microsocks"
#define TINYPROXY  "/usr/bin/tinyproxy"

static void wait_accepting(struct gn_test_proc *p, unsigned port)
{
    if (gn_test_port_accepts(port))
        return;
    gn_test_proc_read(p, 100);
    cr_assert_fail("the proxy never accepted on 127.0.0.1:%u: %s", port, p->log);
}

/* microsocks on a free loopback port, with -u/-P when user is set. */
static unsigned start_microsocks(struct gn_test_proc *p, const char *user, const char *pass)
{
    unsigned port = gn_test_free_port();
    char port_text[8];
    char *argv[] = {MICROSOCKS, "-i",         "127.0.0.1", "-p",         port_text,
                    "-u",       (char *)user, "-P",        (char *)pass, NULL};

    cr_assert_eq(access(MICROSOCKS, X_OK), 0, "microsocks is missing: run scripts/install-deps");
    snprintf(port_text, sizeof(port_text), "%u", port);
    if (!user)
        argv[5] = NULL;
    gn_test_spawn(p, argv, NULL, false);
    wait_accepting(p, port);
    return port;
}

/* tinyproxy in the foreground with a configuration written to a temporary
 * directory; no ConnectPort line: CONNECT goes to any port. */
static unsigned start_tinyproxy(struct gn_test_proc *p, const char *user, const char *pass)
{
    char dir[] = "/tmp/gn_tinyproxy_XXXXXX", conf[64];
    unsigned port = gn_test_free_port();
    char *argv[] = {TINYPROXY, "-d", "-c", conf, NULL};
    FILE *f;

    cr_assert_eq(access(TINYPROXY, X_OK), 0, "tinyproxy is missing: run scripts/install-deps");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(conf, sizeof(conf), "%s/tinyproxy.conf", dir);
    f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f, "Port %u\nListen 127.0.0.1\nTimeout 10\nMaxClients 20\nLogLevel Critical\n", port);
    if (user)
        fprintf(f, "BasicAuth %s %s\n", user, pass);
    fclose(f);
    gn_test_spawn(p, argv, NULL, false);
    wait_accepting(p, port);
    unlink(conf); /* read at start */
    rmdir(dir);
    return port;
}

static void stop(struct gn_test_proc *p)
{
    gn_test_proc_wait(p, 2000, true);
}

/* `gnezdo listen --echo` on 127.0.0.1, TLS with cert (a file of the test
 * certificates) when not NULL; its port. */
static unsigned start_echo(struct gn_test_proc *p, const char *cert)
{
    char cert_path[512], key_path[512];
    char *plain[] = {GN_TEST_CLI, "listen", "--echo", "127.0.0.1:0", NULL};
    char *tls[] = {GN_TEST_CLI, "listen", "--echo", "tls://127.0.0.1:0", "--cert", cert_path,
                   "--key",     key_path, NULL};

    if (cert) {
        gn_test_cert_path(cert_path, sizeof(cert_path), cert);
        gn_test_cert_path(key_path, sizeof(key_path), "server.key");
    }
    gn_test_spawn(p, cert ? tls : plain, NULL, true);
    return (unsigned)atoi(strrchr(p->addr, ':') + 1);
}

/* ---- a round trip through a proxy, in each mode ---------------------- */

struct trip {
    int code;
    char message[GN_ERRBUF_SIZE];
    char echoed[64];
    size_t len;
};

static void trip_connected(gn_conn *conn)
{
    gn_send(conn, "ping through", 12);
}

static size_t trip_data(gn_conn *conn, const char *data, size_t len)
{
    struct trip *t = gn_conn_user_data(conn);
    size_t room = sizeof(t->echoed) - 1 - t->len;
    size_t n = len < room ? len : room;

    memcpy(t->echoed + t->len, data, n);
    t->len += n;
    if (t->len >= 12)
        gn_close(conn);
    return len;
}

static void trip_error(gn_conn *conn, int code, const char *message)
{
    struct trip *t = gn_conn_user_data(conn);

    t->code = code;
    snprintf(t->message, sizeof(t->message), "%s", message);
}

static void trip_closed(gn_conn *conn, int reason)
{
    gn_loop_stop(gn_conn_loop(conn));
    (void)reason;
}

static const gn_handlers trip_handlers = {
    .on_connect = trip_connected,
    .on_data = trip_data,
    .on_error = trip_error,
    .on_close = trip_closed,
};

/* TLS options trusting the test CA for a tls:// target; NULL otherwise
 * (the certificates are made only for the tests that need them). */
static const gn_tls_options *trust_test_ca(const char *target)
{
    static char ca[512];
    static gn_tls_options tls;

    if (strncmp(target, "tls://", 6) != 0)
        return NULL;
    gn_test_cert_path(ca, sizeof(ca), "ca.pem");
    tls = (gn_tls_options){.ca_file = ca};
    return &tls;
}

/* gn_connect to target through proxy on a loop: the echo, or the error. */
static struct trip trip_async(const char *target, const char *proxy)
{
    struct trip t = {0};
    gn_options opts = {
        .proxy = proxy, .tls = trust_test_ca(target), .user_data = &t, .connect_timeout_ms = 5000};
    gn_loop *loop;
    gn_conn *conn;
    int rc;

    cr_assert_eq(gn_loop_new(&loop), 0);
    rc = gn_connect(loop, target, &trip_handlers, &opts, &conn, t.message, sizeof(t.message));
    cr_assert_eq(rc, 0, "gn_connect(%s via %s): %s", target, proxy, t.message);
    cr_assert_eq(gn_test_run_loop_for(loop, 10000), 0, "the round trip never ended");
    gn_loop_free(loop);
    return t;
}

/* gn_dial to target through proxy, write, read the echo back. */
static struct trip trip_blocking(const char *target, const char *proxy)
{
    struct trip t = {0};
    gn_options opts = {.proxy = proxy, .tls = trust_test_ca(target)};
    gn_conn *conn;

    t.code = gn_dial(target, 5000, &opts, &conn, t.message, sizeof(t.message));
    if (t.code < 0)
        return t;
    cr_assert_eq(gn_write_all(conn, "ping through", 12, 5000), 0);
    t.code = gn_read_exact(conn, t.echoed, 12, 5000);
    t.len = t.code == 0 ? 12 : 0;
    gn_close(conn);
    return t;
}

static void expect_echo(struct trip t, const char *how)
{
    cr_expect_eq(t.code, 0, "%s: %s: %s", how, gn_errname(t.code), t.message);
    cr_expect_eq(t.len, 12, "%s: %zu bytes echoed", how, t.len);
    cr_expect_eq(memcmp(t.echoed, "ping through", 12), 0, "%s", how);
}

static void expect_failure(struct trip t, int code, const char *text, const char *how)
{
    cr_expect_eq(t.code, code, "%s: %s, not %s: %s", how, gn_errname(t.code), gn_errname(code),
                 t.message);
    cr_expect(strstr(t.message, text), "%s: '%s' lacks '%s'", how, t.message, text);
    cr_expect_null(strstr(t.message, "s3cret"), "%s: the password shows: %s", how, t.message);
}

/* Through proxy_url, target in both modes: the echo comes back. */
static void expect_echo_both(const char *target, const char *proxy_url)
{
    char how[256];

    snprintf(how, sizeof(how), "gn_connect %s via %s", target, proxy_url);
    expect_echo(trip_async(target, proxy_url), how);
    snprintf(how, sizeof(how), "gn_dial %s via %s", target, proxy_url);
    expect_echo(trip_blocking(target, proxy_url), how);
}

static void expect_failure_both(const char *target, const char *proxy_url, int code,
                                const char *text)
{
    expect_failure(trip_async(target, proxy_url), code, text, "gn_connect");
    expect_failure(trip_blocking(target, proxy_url), code, text, "gn_dial");
}

/* ---- SOCKS5 ------------------------------------------------------------ */

Test(proxy, socks5_tunnels_carry_an_echo_with_and_without_a_password, .timeout = 60)
{
    struct gn_test_proc echo, open_proxy, locked_proxy;
    unsigned target_port = start_echo(&echo, NULL);
    unsigned open_port = start_microsocks(&open_proxy, NULL, NULL);
    unsigned locked_port = start_microsocks(&locked_proxy, "alice", "s3cret");
    char target[64], name_target[64], url[128];

    snprintf(target, sizeof(target), "127.0.0.1:%u", target_port);
    snprintf(name_target, sizeof(name_target), "tcp://localhost:%u", target_port);
    snprintf(url, sizeof(url), "socks5://127.0.0.1:%u", open_port);
    expect_echo_both(target, url);
    snprintf(url, sizeof(url), "socks5h://127.0.0.1:%u", open_port);
    expect_echo_both(target, url);
    /* "s%33cret": percent-decoded to s3cret. */
    snprintf(url, sizeof(url), "socks5h://alice:s%%33cret@127.0.0.1:%u", locked_port);
    expect_echo_both(name_target, url);
    snprintf(url, sizeof(url), "socks5://alice:s3cret@127.0.0.1:%u", locked_port);
    expect_echo_both(name_target, url);
    stop(&locked_proxy);
    stop(&open_proxy);
    stop(&echo);
}

Test(proxy, socks5_wrong_or_missing_password_fails_with_a_clear_message, .timeout = 60)
{
    struct gn_test_proc echo, proxy;
    unsigned target_port = start_echo(&echo, NULL);
    unsigned proxy_port = start_microsocks(&proxy, "alice", "s3cret");
    char target[64], url[128];

    snprintf(target, sizeof(target), "127.0.0.1:%u", target_port);
    snprintf(url, sizeof(url), "socks5h://alice:wrong@127.0.0.1:%u", proxy_port);
    expect_failure_both(target, url, GN_EPROXY,
                        "SOCKS5: the proxy refused the username and password");
    snprintf(url, sizeof(url), "socks5h://127.0.0.1:%u", proxy_port);
    expect_failure_both(target, url, GN_EPROXY, "SOCKS5: the proxy requires authentication");
    stop(&proxy);
    stop(&echo);
}

Test(proxy, socks5_target_refusing_is_connection_refused_by_the_proxys_target, .timeout = 60)
{
    struct gn_test_proc proxy;
    unsigned proxy_port = start_microsocks(&proxy, NULL, NULL);
    char target[64], url[128];

    snprintf(target, sizeof(target), "127.0.0.1:%u", gn_test_free_port()); /* nobody listens */
    snprintf(url, sizeof(url), "socks5h://127.0.0.1:%u", proxy_port);
    expect_failure_both(target, url, GN_ECONNREFUSED,
                        "SOCKS5: connection refused by the proxy's target");
    stop(&proxy);
}

Test(proxy, a_proxy_that_is_down_is_named_in_the_error, .timeout = 30)
{
    char url[128];

    snprintf(url, sizeof(url), "socks5h://127.0.0.1:%u", gn_test_free_port());
    expect_failure_both("127.0.0.1:9", url, GN_ECONNREFUSED, "via socks5h proxy 127.0.0.1:");
}

/* ---- HTTP CONNECT ------------------------------------------------------ */

Test(proxy, http_connect_tunnels_carry_an_echo_with_and_without_basic_auth, .timeout = 60)
{
    struct gn_test_proc echo, open_proxy, locked_proxy;
    unsigned target_port = start_echo(&echo, NULL);
    unsigned open_port = start_tinyproxy(&open_proxy, NULL, NULL);
    unsigned locked_port = start_tinyproxy(&locked_proxy, "alice", "s3cret");
    char target[64], url[128];

    snprintf(target, sizeof(target), "localhost:%u", target_port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", open_port);
    expect_echo_both(target, url);
    snprintf(url, sizeof(url), "http://alice:s3cret@127.0.0.1:%u/", locked_port);
    expect_echo_both(target, url);
    stop(&locked_proxy);
    stop(&open_proxy);
    stop(&echo);
}

Test(proxy, http_proxy_refusals_come_back_with_the_proxys_status, .timeout = 60)
{
    struct gn_test_proc echo, proxy;
    unsigned target_port = start_echo(&echo, NULL);
    unsigned proxy_port = start_tinyproxy(&proxy, "alice", "s3cret");
    char target[64], url[128];

    snprintf(target, sizeof(target), "127.0.0.1:%u", target_port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", proxy_port);
    expect_failure_both(target, url, GN_EPROXY, "HTTP proxy: 407 Proxy Authentication Required");
    snprintf(url, sizeof(url), "http://alice:wrong@127.0.0.1:%u", proxy_port);
    expect_failure_both(target, url, GN_EPROXY, "HTTP proxy: 40");
    snprintf(url, sizeof(url), "http://alice:s3cret@127.0.0.1:%u", proxy_port);
    snprintf(target, sizeof(target), "127.0.0.1:%u", gn_test_free_port()); /* nobody listens */
    expect_failure_both(target, url, GN_EPROXY, "HTTP proxy: 5");
    stop(&proxy);
    stop(&echo);
}

/* ---- TLS through the tunnel ------------------------------------------ */

Test(proxy, tls_runs_through_the_tunnel_verified_against_the_final_host, .timeout = 60)
{
    struct gn_test_proc echo, wrong_name, socks, http;
    unsigned good_port = start_echo(&echo, "server.pem");
    unsigned other_port = start_echo(&wrong_name, "other.pem"); /* for other.example only */
    unsigned socks_port = start_microsocks(&socks, NULL, NULL);
    unsigned http_port = start_tinyproxy(&http, NULL, NULL);
    char target[64], url[128], http_url[128];

    snprintf(url, sizeof(url), "socks5h://127.0.0.1:%u", socks_port);
    snprintf(http_url, sizeof(http_url), "http://127.0.0.1:%u", http_port);
    snprintf(target, sizeof(target), "tls://localhost:%u", good_port);
    expect_echo_both(target, url);
    expect_echo_both(target, http_url);
    /* The proxy's address would pass (127.0.0.1 is in neither cert): the
     * name checked is the target's, "localhost", which other.pem lacks. */
    snprintf(target, sizeof(target), "tls://localhost:%u", other_port);
    expect_failure_both(target, url, GN_ECERT, "hostname mismatch");
    expect_failure_both(target, http_url, GN_ECERT, "hostname mismatch");
    stop(&http);
    stop(&socks);
    stop(&wrong_name);
    stop(&echo);
}

/* ---- what goes on the wire: peers of our own --------------------------- */

struct fake_proxy {
    int listener;
    unsigned port;
    pthread_t thread;
    const char *answer; /* HTTP: the whole answer; NULL: SOCKS5 */
    unsigned char request[600];
    size_t request_len;
};

static size_t read_some(int fd, unsigned char *buf, size_t need)
{
    size_t got = 0;

    while (got < need) {
        ssize_t n = read(fd, buf + got, need - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

/* SOCKS5 without auth: keep the CONNECT request, refuse it with "not
 * allowed" (2). */
static void fake_socks5(struct fake_proxy *f, int fd)
{
    static const unsigned char method[] = {5, 0}, refusal[] = {5, 2, 0, 1, 0, 0, 0, 0, 0, 0};
    unsigned char greeting[3];

    read_some(fd, greeting, 3);
    (void)!write(fd, method, sizeof(method));
    f->request_len = (size_t)read(fd, f->request, sizeof(f->request));
    (void)!write(fd, refusal, sizeof(refusal));
}

static void *fake_proxy_main(void *arg)
{
    struct fake_proxy *f = arg;
    int fd = accept(f->listener, NULL, NULL);

    if (fd < 0)
        return NULL;
    if (f->answer) {
        f->request_len = (size_t)read(fd, f->request, sizeof(f->request));
        (void)!write(fd, f->answer, strlen(f->answer));
        /* Let the client read before the end comes; a silent proxy
         * (answer "") holds on past the client's deadline. */
        usleep(f->answer[0] ? 300000 : 1500000);
    } else {
        fake_socks5(f, fd);
    }
    close(fd);
    return NULL;
}

static void fake_proxy_start(struct fake_proxy *f, const char *answer)
{
    char addr[64];

    memset(f, 0, sizeof(*f));
    f->answer = answer;
    f->listener = gn_test_raw_listener("", addr, sizeof(addr), 4);
    f->port = (unsigned)atoi(strrchr(addr, ':') + 1);
    cr_assert_eq(pthread_create(&f->thread, NULL, fake_proxy_main, f), 0);
}

static void fake_proxy_join(struct fake_proxy *f)
{
    pthread_join(f->thread, NULL);
    close(f->listener);
}

Test(proxy, socks5h_sends_the_name_and_socks5_an_address, .timeout = 30)
{
    struct fake_proxy f;
    char url[128];
    struct trip t;

    fake_proxy_start(&f, NULL);
    snprintf(url, sizeof(url), "socks5h://127.0.0.1:%u", f.port);
    t = trip_async("localhost:4242", url);
    fake_proxy_join(&f);
    expect_failure(t, GN_EACCES, "SOCKS5: connection not allowed by the proxy's rules", url);
    cr_assert_eq(f.request_len, 4 + 1 + 9 + 2, "a name: %zu bytes", f.request_len);
    cr_expect_eq(f.request[3], 3, "ATYP 3, a domain name");
    cr_expect_eq(memcmp(f.request + 4, "\x09localhost\x10\x92", 12), 0);

    fake_proxy_start(&f, NULL);
    snprintf(url, sizeof(url), "socks5://127.0.0.1:%u", f.port);
    t = trip_blocking("localhost:4242", url);
    fake_proxy_join(&f);
    expect_failure(t, GN_EACCES, "SOCKS5: connection not allowed", url);
    cr_expect(f.request[3] == 1 || f.request[3] == 4, "ATYP 1 or 4, an address: %u", f.request[3]);
    cr_expect_eq(f.request_len, f.request[3] == 1 ? 10u : 22u);
}

Test(proxy, bytes_right_behind_the_proxys_answer_reach_the_connection, .timeout = 30)
{
    struct fake_proxy f;
    char url[128];
    struct trip t;

    /* A target that speaks first: its banner comes in the same packet as
     * the proxy's answer, and must not be eaten by the handshake. */
    fake_proxy_start(&f, "HTTP/1.1 200 Connection established\r\nX-A: b\r\n\r\nbanner line!");
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", f.port);
    t = trip_async("example.invalid:25", url);
    fake_proxy_join(&f);
    cr_expect_eq(t.len, 12, "%zu bytes: %s", t.len, t.message);
    cr_expect_eq(memcmp(t.echoed, "banner line!", 12), 0);
    cr_expect(strstr((const char *)f.request,
                     "CONNECT example.invalid:25 HTTP/1.1\r\nHost: example.invalid:25\r\n"),
              "%.*s", (int)f.request_len, (const char *)f.request);
}

Test(proxy, the_connect_timeout_covers_the_proxys_handshake, .timeout = 30)
{
    struct trip t = {0};
    struct fake_proxy f;
    char url[128];
    gn_options opts = {.proxy = url, .user_data = &t, .connect_timeout_ms = 500};
    gn_loop *loop;
    gn_conn *conn;

    fake_proxy_start(&f, ""); /* takes the CONNECT, never answers */
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", f.port);
    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_connect(loop, "example.invalid:80", &trip_handlers, &opts, &conn, NULL, 0), 0);
    cr_assert_eq(gn_test_run_loop_for(loop, 10000), 0);
    gn_loop_free(loop);
    fake_proxy_join(&f);
    expect_failure(t, GN_ETIMEDOUT, "timed out after 500 ms in the HTTP CONNECT", url);
}

/* ---- what is refused before any I/O ------------------------------------ */

Test(proxy, bad_urls_and_unix_targets_are_refused_with_the_reason)
{
    static const struct {
        const char *url, *text;
    } bad[] = {
        {"127.0.0.1:1080", "no scheme"},
        {"socks4://127.0.0.1:1080", "unknown scheme"},
        {"https://127.0.0.1:3128", "HTTPS proxy"},
        {"socks5://", "no host"},
        {"socks5://user:s3cret@", "no host"},
        {"http://127.0.0.1:3128/path", "no path"},
        {"socks5h://a:b%zz@127.0.0.1", "two hex digits"},
        {"socks5h://:s3cret@127.0.0.1", "user before '@' is empty"},
        {"socks5://127.0.0.1:99999", "host and port"},
    };
    gn_options opts = {0};
    char err[GN_ERRBUF_SIZE];
    gn_loop *loop;
    gn_conn *conn;

    cr_assert_eq(gn_loop_new(&loop), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        opts.proxy = bad[i].url;
        cr_expect_eq(
            gn_connect(loop, "127.0.0.1:9", &trip_handlers, &opts, &conn, err, sizeof(err)),
            GN_EINVAL, "%s", bad[i].url);
        cr_expect(strstr(err, bad[i].text), "%s: '%s' lacks '%s'", bad[i].url, err, bad[i].text);
        cr_expect(strstr(err, "proxy URL"), "%s", err);
        cr_expect_null(strstr(err, "s3cret"), "the password shows: %s", err);
        cr_expect_eq(gn_dial("127.0.0.1:9", 1000, &opts, &conn, err, sizeof(err)), GN_EINVAL, "%s",
                     bad[i].url);
    }
    opts.proxy = "socks5h://127.0.0.1:1080";
    cr_expect_eq(
        gn_connect(loop, "unix:/tmp/x.sock", &trip_handlers, &opts, &conn, err, sizeof(err)),
        GN_EINVAL);
    cr_expect(strstr(err, "a Unix socket cannot be reached through a proxy"), "%s", err);
    cr_expect_eq(gn_dial("unix:@x", 1000, &opts, &conn, err, sizeof(err)), GN_EINVAL);
    gn_loop_free(loop);
}
