/*
 * The same echo, chat and half-close tests run over every stream
 * transport (TCP over IPv4 and IPv6, Unix sockets with a path and with
 * an abstract name, TLS), in both modes (event loop and blocking threads), from
 * one table, so a transport cannot pass by being tested less.  Then what
 * only Unix sockets have: stale-file replacement, refusal to replace a
 * live socket or a regular file, the file removed on close, its mode, and
 * the peer's credentials; and IPv6-only listeners.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

struct transport {
    const char *name;
    char listen[128];  /* the address to listen on */
    gn_options server; /* options of its servers and clients: TLS needs */
    gn_options client; /* a certificate on one side and trust on the other */
};

static char ca[160], cert[160], key[160];
static gn_tls_options tls_server = {.cert_file = cert, .key_file = key};
static gn_tls_options tls_client = {.ca_file = ca};

/* Every stream transport, with fresh names for this process. */
static size_t transports(struct transport *t)
{
    size_t n = 0;

    t[n++] = (struct transport){.name = "tcp4", .listen = "127.0.0.1:0"};
    t[n++] = (struct transport){.name = "tcp6", .listen = "[::1]:0"};
    t[n] = (struct transport){.name = "unix"};
    snprintf(t[n++].listen, sizeof(t->listen), "unix:/tmp/gn_transports_%d.sock", (int)getpid());
    t[n] = (struct transport){.name = "unix-abstract"};
    snprintf(t[n++].listen, sizeof(t->listen), "unix:@gn_transports_%d", (int)getpid());
    gn_test_cert_path(ca, sizeof(ca), "ca.pem");
    gn_test_cert_path(cert, sizeof(cert), "server.pem");
    gn_test_cert_path(key, sizeof(key), "server.key");
    t[n++] = (struct transport){.name = "tls",
                                .listen = "tls://127.0.0.1:0",
                                .server.tls = &tls_server,
                                .client.tls = &tls_client};
    return n;
}

/* ---- event loop: echo, chat, half-close -------------------------------- */

static size_t echo(gn_conn *conn, const char *data, size_t len)
{
    cr_assert_eq(gn_send(conn, data, len), 0);
    return len;
}

/* Half-close: the server answers after the client's FIN with how many
 * bytes it got, then closes. */
static size_t count_only(gn_conn *conn, const char *data, size_t len)
{
    (void)data;
    gn_conn_set_user_data(conn, (char *)gn_conn_user_data(conn) + len);
    return len;
}

static void answer_at_end(gn_conn *conn)
{
    char text[32];

    snprintf(text, sizeof(text), "got %zu\n", (size_t)(char *)gn_conn_user_data(conn));
    cr_expect_eq(gn_send(conn, text, strlen(text)), 0, "sending after the peer's FIN");
    gn_close(conn);
}

/* Chat: every byte goes to every other connection of the server. */
struct fanout {
    gn_conn *from;
    const char *data;
    size_t len;
};

static void send_unless_sender(gn_conn *conn, void *arg)
{
    struct fanout *f = arg;

    if (conn != f->from)
        gn_send(conn, f->data, f->len);
}

static size_t chat(gn_conn *conn, const char *data, size_t len)
{
    struct fanout f = {conn, data, len};

    gn_server_foreach(gn_conn_server(conn), send_unless_sender, &f);
    return len;
}

struct client {
    const char *payload;
    size_t len;
    char got[1 << 16];
    size_t got_len;
    bool half_close, closed;
    int reason;
};

static void client_connect(gn_conn *conn)
{
    struct client *c = gn_conn_user_data(conn);

    if (c->len)
        cr_assert_eq(gn_send(conn, c->payload, c->len), 0);
    if (c->half_close)
        gn_shutdown(conn);
}

static size_t client_data(gn_conn *conn, const char *data, size_t len)
{
    struct client *c = gn_conn_user_data(conn);
    size_t room = sizeof(c->got) - c->got_len, take = len < room ? len : room;

    memcpy(c->got + c->got_len, data, take);
    c->got_len += take;
    if (!c->half_close && c->got_len >= c->len && c->len)
        gn_close(conn);
    return len;
}

static void client_close(gn_conn *conn, int reason)
{
    struct client *c = gn_conn_user_data(conn);

    c->closed = true;
    c->reason = reason;
}

static const gn_handlers client_h = {
    .on_connect = client_connect, .on_data = client_data, .on_close = client_close};

static void connect_client(gn_loop *loop, const char *addr, const struct transport *t,
                           struct client *c)
{
    char err[GN_ERRBUF_SIZE];
    gn_options opts = t ? t->client : (gn_options){0};
    gn_conn *conn;

    opts.user_data = c;
    cr_assert_eq(gn_connect(loop, addr, &client_h, &opts, &conn, err, sizeof(err)), 0, "%s: %s",
                 addr, err);
}

static void random_payload(char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)(rand() & 0xff);
}

/* Run loop until c's connection has closed, 10 s at most: a handshake
 * under Valgrind takes far longer than on its own. */
static void run_until_closed(gn_loop *loop, const struct client *c)
{
    for (int i = 0; i < 100 && !c->closed; i++)
        gn_test_run_loop_for(loop, 100);
}

Test(transports, async_echo_over_every_transport)
{
    struct transport t[8];
    size_t n = transports(t);
    static char payload[60000];

    random_payload(payload, sizeof(payload));
    for (size_t i = 0; i < n; i++) {
        const gn_handlers h = {.on_data = echo};
        struct client c = {.payload = payload, .len = sizeof(payload)};
        char addr[GN_ENDPOINT_STRLEN];
        gn_loop *loop;
        gn_server *srv;

        cr_assert_eq(gn_loop_new(&loop), 0);
        srv = gn_test_listen(loop, t[i].listen, &h, &t[i].server, addr, sizeof(addr));
        connect_client(loop, addr, &t[i], &c);
        run_until_closed(loop, &c);
        cr_expect(c.closed, "%s: client not done", t[i].name);
        cr_expect_eq(c.reason, 0, "%s: %s", t[i].name, gn_strerror(c.reason));
        cr_expect_eq(c.got_len, sizeof(payload), "%s", t[i].name);
        cr_expect_eq(memcmp(c.got, payload, sizeof(payload)), 0, "%s: bytes differ", t[i].name);
        gn_server_close(srv, 0);
        gn_test_run_loop_for(loop, 2000);
        gn_loop_free(loop);
    }
}

Test(transports, async_half_close_over_every_transport)
{
    struct transport t[8];
    size_t n = transports(t);

    for (size_t i = 0; i < n; i++) {
        const gn_handlers h = {.on_data = count_only, .on_end = answer_at_end};
        struct client c = {.payload = "twelve bytes", .len = 12, .half_close = true};
        char addr[GN_ENDPOINT_STRLEN];
        gn_loop *loop;
        gn_server *srv;

        cr_assert_eq(gn_loop_new(&loop), 0);
        srv = gn_test_listen(loop, t[i].listen, &h, &t[i].server, addr, sizeof(addr));
        connect_client(loop, addr, &t[i], &c);
        run_until_closed(loop, &c);
        c.got[c.got_len] = '\0';
        cr_expect(c.closed, "%s", t[i].name);
        cr_expect_str_eq(c.got, "got 12\n", "%s", t[i].name);
        gn_server_close(srv, 0);
        gn_test_run_loop_for(loop, 2000);
        gn_loop_free(loop);
    }
}

/* Three chat members: two send after all joined, each gets the other's. */
struct member {
    struct client c;
    gn_conn *conn;
};

static int joined;

static void member_connect(gn_conn *conn)
{
    joined++;
    (void)conn;
}

static void say(gn_loop *loop, uint64_t id, void *arg)
{
    struct member *m = arg;

    (void)loop;
    (void)id;
    gn_send(m->conn, m->c.payload, m->c.len);
}

static void stop_loop(gn_loop *loop, uint64_t id, void *arg)
{
    (void)id;
    (void)arg;
    gn_loop_stop(loop);
}

static void count_one(gn_conn *conn, void *arg)
{
    (void)conn;
    ++*(int *)arg;
}

/* Members speak once all three joined on both sides (a TLS server meets a
 * client a little after the client's on_connect): a every 10 ms check,
 * then a, then b 50 ms later, then the loop stops 250 ms after that. */
struct chat_run {
    gn_server *srv;
    struct member *m;
    uint64_t timer;
};

static void speak_when_joined(gn_loop *loop, uint64_t id, void *arg)
{
    struct chat_run *run = arg;
    int seen = 0;

    (void)id;
    gn_server_foreach(run->srv, count_one, &seen);
    if (joined < 3 || seen < 3)
        return;
    gn_timer_cancel(loop, run->timer);
    say(loop, 0, &run->m[0]);
    gn_timer_start(loop, gn_test_ms(50), 0, say, &run->m[1], &id);
    gn_timer_start(loop, gn_test_ms(300), 0, stop_loop, NULL, &id);
}

Test(transports, async_chat_over_every_transport)
{
    struct transport t[8];
    size_t n = transports(t);

    for (size_t i = 0; i < n; i++) {
        const gn_handlers h = {.on_data = chat};
        const gn_handlers mh = {.on_connect = member_connect, .on_data = client_data};
        struct member m[3] = {{.c.payload = "from a\n", .c.len = 7},
                              {.c.payload = "from b\n", .c.len = 7},
                              {.c.len = 0}};
        char addr[GN_ENDPOINT_STRLEN], err[GN_ERRBUF_SIZE];
        struct chat_run run;
        gn_loop *loop;
        gn_server *srv;

        joined = 0;
        cr_assert_eq(gn_loop_new(&loop), 0);
        srv = gn_test_listen(loop, t[i].listen, &h, &t[i].server, addr, sizeof(addr));
        for (int k = 0; k < 3; k++) {
            gn_options opts = t[i].client;
            opts.user_data = &m[k].c;
            m[k].c.half_close = true; /* keep reading: no close on length */
            cr_assert_eq(gn_connect(loop, addr, &mh, &opts, &m[k].conn, err, sizeof(err)), 0);
        }
        run = (struct chat_run){.srv = srv, .m = m};
        gn_timer_start(loop, 10, 10, speak_when_joined, &run, &run.timer);
        gn_test_run_loop_for(loop, gn_test_ms(5000));
        cr_expect_eq(joined, 3, "%s", t[i].name);
        m[0].c.got[m[0].c.got_len] = m[1].c.got[m[1].c.got_len] = m[2].c.got[m[2].c.got_len] = 0;
        cr_expect_str_eq(m[0].c.got, "from b\n", "%s", t[i].name);
        cr_expect_str_eq(m[1].c.got, "from a\n", "%s", t[i].name);
        cr_expect_str_eq(m[2].c.got, "from a\nfrom b\n", "%s", t[i].name);
        cr_expect_eq(gn_server_conn_count(srv), 3, "%s", t[i].name);
        gn_server_close(srv, 0);
        for (int k = 0; k < 3; k++)
            gn_abort(m[k].conn);
        gn_test_run_loop_for(loop, 2000);
        gn_loop_free(loop);
    }
}

/* ---- blocking: the same echo and half-close with threads --------------- */

static void blocking_echo(gn_conn *conn)
{
    char buf[4096];
    ssize_t n;

    while ((n = gn_read(conn, buf, sizeof(buf), gn_test_ms(5000))) > 0)
        if (gn_write_all(conn, buf, (size_t)n, gn_test_ms(5000)) < 0)
            break;
}

static void blocking_count(gn_conn *conn)
{
    char buf[4096], text[32];
    size_t total = 0;
    ssize_t n;

    while ((n = gn_read(conn, buf, sizeof(buf), gn_test_ms(5000))) > 0)
        total += (size_t)n;
    snprintf(text, sizeof(text), "got %zu\n", total);
    cr_expect_eq(gn_write_all(conn, text, strlen(text), gn_test_ms(5000)), 0,
                 "write after the peer's FIN");
}

static gn_server *serve_threads(const struct transport *t, gn_thread_fn h, char *addr, size_t len)
{
    const char *listen = t->listen;
    char err[GN_ERRBUF_SIZE];
    gn_server *srv;
    gn_endpoint ep;

    cr_assert_eq(gn_serve_threads(listen, h, &t->server, NULL, &srv, err, sizeof(err)), 0, "%s: %s",
                 listen, err);
    gn_server_get_endpoint(srv, 0, &ep);
    gn_endpoint_format(&ep, addr, len);
    return srv;
}

Test(transports, blocking_echo_and_half_close_over_every_transport)
{
    struct transport t[8];
    size_t n = transports(t);
    static char payload[60000], back[60000];

    random_payload(payload, sizeof(payload));
    for (size_t i = 0; i < n; i++) {
        char addr[GN_ENDPOINT_STRLEN], err[GN_ERRBUF_SIZE], line[64];
        gn_server *srv = serve_threads(&t[i], blocking_echo, addr, sizeof(addr));
        gn_conn *conn;
        size_t len;

        cr_assert_eq(gn_dial(addr, gn_test_ms(2000), &t[i].client, &conn, err, sizeof(err)), 0,
                     "%s", err);
        cr_assert_eq(gn_write_all(conn, payload, sizeof(payload), gn_test_ms(5000)), 0, "%s",
                     t[i].name);
        cr_assert_eq(gn_read_exact(conn, back, sizeof(back), gn_test_ms(5000)), 0, "%s", t[i].name);
        cr_expect_eq(memcmp(back, payload, sizeof(back)), 0, "%s", t[i].name);
        gn_close(conn);
        gn_server_close(srv, 1000);

        srv = serve_threads(&t[i], blocking_count, addr, sizeof(addr));
        cr_assert_eq(gn_dial(addr, gn_test_ms(2000), &t[i].client, &conn, err, sizeof(err)), 0,
                     "%s", err);
        cr_assert_eq(gn_write_all(conn, payload, 1000, gn_test_ms(5000)), 0);
        cr_assert_eq(gn_shutdown(conn), 0);
        cr_expect_eq(gn_read_line(conn, line, sizeof(line), &len, gn_test_ms(5000)), 1, "%s",
                     t[i].name);
        cr_expect_str_eq(line, "got 1000", "%s", t[i].name);
        gn_close(conn);
        gn_server_close(srv, 1000);
    }
}

/* ---- Unix socket files -------------------------------------------------- */

static void unix_path(char *path, size_t len, const char *tag)
{
    snprintf(path, len, "/tmp/gn_unix_%s_%d.sock", tag, (int)getpid());
    unlink(path);
}

static int listen_err(gn_loop *loop, const char *addr, const gn_options *opts, gn_server **srv,
                      char *err, size_t errlen)
{
    const gn_handlers h = {.on_data = echo};

    return gn_listen(loop, addr, &h, opts, srv, err, errlen);
}

Test(transports, unix_stale_file_is_replaced_live_socket_and_regular_file_are_not)
{
    char path[96], addr[128], err[GN_ERRBUF_SIZE];
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    gn_server *srv, *second = NULL;
    gn_loop *loop;
    int fd;

    unix_path(path, sizeof(path), "stale");
    snprintf(addr, sizeof(addr), "unix:%s", path);
    /* A dead server's socket: bound, never listening, closed. */
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    strcpy(sun.sun_path, path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(fd);
    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_expect_eq(listen_err(loop, addr, NULL, &srv, err, sizeof(err)), 0, "stale: %s", err);
    /* Now it is live: a second server must not take it over. */
    cr_expect_eq(listen_err(loop, addr, NULL, &second, err, sizeof(err)), GN_EADDRINUSE);
    cr_expect(strstr(err, "a server is listening on it") && strstr(err, path), "%s", err);
    gn_server_close(srv, 0);
    gn_test_run_loop_for(loop, 1000);
    cr_expect_neq(access(path, F_OK), 0, "the socket file is removed on close");

    /* A regular file in the way is never deleted. */
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "keep", 4), 4);
    close(fd);
    cr_expect_eq(listen_err(loop, addr, NULL, &srv, err, sizeof(err)), GN_EADDRINUSE);
    cr_expect(strstr(err, "not a socket"), "%s", err);
    cr_expect_eq(access(path, F_OK), 0, "the regular file is still there");
    unlink(path);
    gn_loop_free(loop);
}

Test(transports, unix_file_mode_and_successor_file_survives)
{
    char path[96], addr[128], err[GN_ERRBUF_SIZE];
    gn_options opts = {.unix_mode = 0600};
    struct stat st;
    gn_server *srv;
    gn_loop *loop;

    unix_path(path, sizeof(path), "mode");
    snprintf(addr, sizeof(addr), "unix:%s", path);
    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(listen_err(loop, addr, &opts, &srv, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(stat(path, &st), 0);
    cr_expect(S_ISSOCK(st.st_mode));
    cr_expect_eq(st.st_mode & 0777, 0600);
    /* Someone replaced the file meanwhile: closing must not delete theirs. */
    unlink(path);
    cr_assert_eq(mkfifo(path, 0600), 0);
    gn_server_close(srv, 0);
    gn_test_run_loop_for(loop, 1000);
    cr_expect_eq(access(path, F_OK), 0, "not our file: left alone");
    unlink(path);
    gn_loop_free(loop);
}

static gn_peer_cred seen_cred;
static int cred_rc = 1;

static void note_cred(gn_conn *conn)
{
    cred_rc = gn_conn_get_peer_cred(conn, &seen_cred);
    gn_close(conn);
}

Test(transports, unix_peer_credentials)
{
    const gn_handlers h = {.on_accept = note_cred};
    char path[96], addr[128];
    struct client c = {.half_close = true};
    gn_peer_cred none;
    gn_loop *loop;
    gn_server *srv;

    unix_path(path, sizeof(path), "cred");
    snprintf(addr, sizeof(addr), "unix:%s", path);
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, addr, &h, NULL, addr, sizeof(addr));
    connect_client(loop, addr, NULL, &c);
    gn_test_run_loop_for(loop, 500);
    cr_expect_eq(cred_rc, 0);
    cr_expect_eq(seen_cred.pid, getpid());
    cr_expect_eq(seen_cred.uid, getuid());
    cr_expect_eq(seen_cred.gid, getgid());
    cr_expect_eq(gn_conn_get_peer_cred(NULL, &none), GN_EINVAL);
    gn_server_close(srv, 0);
    gn_test_run_loop_for(loop, 1000);
    gn_loop_free(loop);
}

Test(transports, unix_connect_to_a_missing_path_says_not_found)
{
    char err[GN_ERRBUF_SIZE];
    gn_conn *conn;
    int rc = gn_dial("unix:/tmp/gn_no_such_socket_here", 1000, NULL, &conn, err, sizeof(err));

    cr_expect_eq(rc, GN_ENOTFOUND, "%s: %s", gn_errname(rc), err);
    cr_expect(strstr(err, "/tmp/gn_no_such_socket_here"), "%s", err);
}

/* ---- IPv6 ---------------------------------------------------------------- */

Test(transports, ipv6_only_listener_refuses_ipv4_and_dual_stack_shows_ipv4)
{
    const gn_handlers h = {.on_data = echo};
    gn_options v6only = {.ipv6_only = true};
    char addr[GN_ENDPOINT_STRLEN], v4[64], err[GN_ERRBUF_SIZE];
    gn_endpoint ep;
    gn_conn *conn;
    gn_server *srv;

    cr_assert_eq(gn_serve_threads("[::]:0", blocking_echo, &v6only, NULL, &srv, err, sizeof(err)),
                 0, "%s", err);
    gn_server_get_endpoint(srv, 0, &ep);
    snprintf(v4, sizeof(v4), "127.0.0.1:%u", (unsigned)gn_endpoint_port(&ep));
    snprintf(addr, sizeof(addr), "[::1]:%u", (unsigned)gn_endpoint_port(&ep));
    cr_expect_eq(gn_dial(v4, 1000, NULL, &conn, err, sizeof(err)), GN_ECONNREFUSED, "%s", err);
    cr_assert_eq(gn_dial(addr, gn_test_ms(1000), NULL, &conn, err, sizeof(err)), 0, "%s", err);
    gn_close(conn);
    gn_server_close(srv, 0);

    /* Dual stack: an IPv4 client's endpoints read as IPv4, not ::ffff:. */
    cr_assert_eq(gn_serve_threads("[::]:0", blocking_echo, NULL, NULL, &srv, err, sizeof(err)), 0);
    gn_server_get_endpoint(srv, 0, &ep);
    snprintf(v4, sizeof(v4), "127.0.0.1:%u", (unsigned)gn_endpoint_port(&ep));
    cr_assert_eq(gn_dial(v4, 1000, NULL, &conn, err, sizeof(err)), 0, "%s", err);
    gn_endpoint_format(gn_conn_remote(conn), addr, sizeof(addr));
    cr_expect_str_eq(addr, v4);
    gn_close(conn);
    gn_server_close(srv, 0);
    (void)h;
}
