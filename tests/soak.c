/*
 * The soak (`make soak`, docs/reliability.md): a gnezdo echo server
 * under hours-in-minutes of churn, with every echoed byte checked and the
 * server's descriptors and memory compared before and after.
 *
 *   soak [--tls CERT_DIR] [--conns N] BACKEND SECONDS
 *
 * BACKEND: uring, epoll, poll, or default (gn_loop_new's choice).
 *
 * The server runs in a child process (fork, before this one starts any
 * thread or OpenSSL state), so that its descriptors and resident memory
 * are its own: a gnezdo loop on BACKEND (uring, epoll or poll) echoing
 * on 127.0.0.1:0, over TLS with CERT_DIR/server.pem (tests/make_certs.sh)
 * when --tls is given, with pause_reading_when_full.  This process keeps
 * N connections (500) open to it on one thread with epoll, raw sockets
 * and OpenSSL directly (so gnezdo is not checked against itself; the TLS
 * client verifies the server against CERT_DIR/ca.pem).  Each connection
 * sends 1 to 16 messages of random sizes (1 byte to 1 MiB, most small),
 * one at a time, checking every byte of each echo, then ends one of three
 * ways, picked at random: a graceful close once every echo is back, a
 * reset (SO_LINGER 0) with the last echo still on its way, or a
 * half-close (shutdown, or TLS close_notify) after which every byte must
 * still come back before the server's end.  A new connection takes its
 * place at once.  Resets and half-closes are a third each, closes the rest.
 *
 * During a warm-up it reads the server's resident memory
 * (/proc/PID/statm) every 100 ms and keeps the highest, the level a
 * server meeting this whole mix of sizes, endings and handshakes settles
 * at.  The warm-up lasts a third of SECONDS (at least 2 s), and longer
 * until every one of the N places has finished a connection (TLS
 * handshakes make that slow on a busy machine), but not past two thirds
 * of SECONDS.  At the end it reads the memory again, then
 * closes every connection, waits (10 s at most) for the server's
 * descriptor count (/proc/PID/fd) to come back to what it was before the
 * first client, and asks the server to stop; the server frees its loop
 * and checks that its descriptors are the ones it started with.  Prints
 * one line of figures and exits 0; 1 when a byte came back wrong or
 * missing, a connection failed or stalled (30 s without progress), the
 * descriptors did not come back, or the resident memory at the end (or
 * after the close) is more than 10% above the warm-up's highest: memory
 * that grows with the work done, not with the load at one moment; 2 on bad
 * arguments; 77 when BACKEND is not available here (io_uring refused).
 * SOAK_SEED=N replays the random choices (printed in the figures).
 *
 * In tests/ rather than bench/: it is a check with a verdict, like
 * tests/tsan_stress.c, not a measurement of speed; and not a ctest
 * entry, as it runs for as long as it is told to.
 */
#define _GNU_SOURCE /* SOCK_NONBLOCK, SOCK_CLOEXEC */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gnezdo.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS       5000
#define MAX_EVENTS      256
#define IO_CHUNK        (64u << 10)
#define TLS_CHUNK       (16u << 10)
#define MAX_MESSAGES    16
#define STALL_NS        (30ull * 1000000000ull)
#define FD_WAIT_MS      10000
#define RSS_TOLERANCE   0.10
#define ROUNDS_PER_WAKE 16 /* read/write rounds per connection per event */

enum state { CONNECTING, HANDSHAKE, RUNNING, DRAINING };
enum ending { END_CLOSE, END_RESET, END_HALF };

struct client {
    int fd;
    SSL *ssl; /* NULL without TLS */
    enum state state;
    enum ending ending; /* how this connection will end */
    uint64_t seed;      /* its byte stream: stream_fill(seed, offset) */
    uint64_t sent;      /* bytes written */
    uint64_t checked;   /* bytes echoed and found right */
    uint64_t msg_end;   /* offset where the message being sent ends */
    unsigned msgs_left; /* messages still to start */
    bool want_write;    /* the last write (or handshake) waits for room */
    bool notify_left;   /* TLS half-close: close_notify waits for room */
    uint32_t events;    /* what epoll watches */
    uint64_t active_ns; /* last progress */
};

struct figures {
    uint64_t connections, closes, resets, half_closes, messages, bytes, refused_ports;
};

static struct figures g_fig;
static int g_ep;
static SSL_CTX *g_ctx;
static struct sockaddr_in g_addr;
static uint64_t g_rng, g_generation, g_run_seed;
static struct client *g_clients;
static bool g_cycled[MAX_CONNS]; /* the slot has finished a connection */
static int g_cycled_count;
static unsigned char g_wbuf[IO_CHUNK], g_rbuf[IO_CHUNK], g_want[IO_CHUNK];

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t n)
{
    g_rng = splitmix(g_rng);
    return g_rng % n;
}

/* The bytes [off, off + len) of the stream of seed: each 8-byte word is
 * a hash of its index, so any stretch can be made on its own. */
static void stream_fill(unsigned char *buf, uint64_t seed, uint64_t off, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint64_t pos = off + i;
        buf[i] = (unsigned char)(splitmix(seed ^ (pos >> 3)) >> ((pos & 7) * 8));
    }
}

/* Message sizes: most small, some large, a few up to 1 MiB. */
static uint64_t message_size(void)
{
    uint64_t r = rnd(100);

    if (r < 60)
        return 1 + rnd(512);
    if (r < 90)
        return 1 + rnd(16u << 10);
    if (r < 99)
        return 1 + rnd(128u << 10);
    return 1 + rnd(1u << 20);
}

/* ---- the server (child process) ---------------------------------------- */

static int count_fds(pid_t pid)
{
    char path[64];
    struct dirent *e;
    int n = 0;
    DIR *d;

    if (pid)
        snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    else
        snprintf(path, sizeof path, "/proc/self/fd");
    d = opendir(path);
    if (!d)
        return -1;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return pid ? n : n - 1; /* not the directory's own descriptor */
}

static gn_server *g_srv;

static size_t echo(gn_conn *conn, const char *data, size_t len)
{
    /* GN_ENOBUFS cannot happen: reading pauses at the high watermark. */
    gn_send(conn, data, len);
    return len;
}

/* The parent wrote 'q' or went away: close everything, let the loop end. */
static void on_control(gn_watch *w, int fd, unsigned events, void *arg)
{
    char c;

    (void)events;
    (void)arg;
    if (read(fd, &c, 1) < 0 && errno == EAGAIN)
        return;
    gn_watch_close(w);
    gn_server_close(g_srv, 1000);
}

static int server_main(const char *backend, const char *cert_dir, int control, int report)
{
    char err[GN_ERRBUF_SIZE], cert[512], key[512];
    gn_tls_options tls = {0};
    gn_options opts = {.pause_reading_when_full = true};
    gn_handlers h = {.on_data = echo};
    gn_endpoint ep;
    gn_watch *w;
    gn_loop *loop;
    int fds_start = count_fds(0), fds_end, rc;
    uint16_t port;

    signal(SIGPIPE, SIG_IGN);
    if (gn_loop_new_backend(&loop, strcmp(backend, "default") == 0 ? NULL : backend) < 0)
        return 1;
    fprintf(stderr, "soak: server on %s%s\n", gn_loop_backend(loop), cert_dir ? " over TLS" : "");
    if (strcmp(backend, "default") != 0 && strcmp(gn_loop_backend(loop), backend) != 0) {
        fprintf(stderr, "soak: backend %s is not available here (got %s)\n", backend,
                gn_loop_backend(loop));
        gn_loop_free(loop);
        return 77;
    }
    if (cert_dir) {
        snprintf(cert, sizeof cert, "%s/server.pem", cert_dir);
        snprintf(key, sizeof key, "%s/server.key", cert_dir);
        tls.cert_file = cert;
        tls.key_file = key;
        opts.tls = &tls;
    }
    rc = gn_listen(loop, cert_dir ? "tls://127.0.0.1:0" : "127.0.0.1:0", &h, &opts, &g_srv, err,
                   sizeof err);
    if (rc < 0 || gn_server_get_endpoint(g_srv, 0, &ep) < 0 ||
        gn_watch_start(loop, control, GN_WATCH_READABLE, on_control, NULL, &w) < 0) {
        fprintf(stderr, "soak: server: %s\n", rc < 0 ? err : "no endpoint or watcher");
        return 1;
    }
    port = gn_endpoint_port(&ep);
    if (write(report, &port, sizeof port) != sizeof port)
        return 1;
    rc = gn_loop_run(loop);
    gn_loop_free(loop);
    fds_end = count_fds(0);
    if (rc < 0 || fds_end != fds_start) {
        fprintf(stderr, "soak: server: loop %s, descriptors %d at the start and %d at the end\n",
                rc < 0 ? gn_strerror(rc) : "ended", fds_start, fds_end);
        return 1;
    }
    return 0;
}

/* ---- the clients (this process) ---------------------------------------- */

/* Readable always once connected; writable while the last write waited
 * for room, or while a message has bytes left to write (a turn that
 * ended on its round limit must come back, whatever comes in). */
static void set_events(struct client *c)
{
    bool more = c->state == RUNNING && c->sent < c->msg_end;
    uint32_t ev =
        c->state == CONNECTING ? EPOLLOUT : EPOLLIN | (c->want_write || more ? EPOLLOUT : 0);
    struct epoll_event e = {.events = ev, .data.ptr = c};

    if (ev != c->events && epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &e) == 0)
        c->events = ev;
}

static int fail(const struct client *c, const char *what)
{
    static const char *const states[] = {"connecting", "handshake", "running", "draining"};
    static const char *const endings[] = {"close", "reset", "half-close"};

    fprintf(stderr,
            "soak: connection %llu (%s, to end by %s, %u messages to go, sent %llu of %llu, "
            "checked %llu): %s\n",
            (unsigned long long)(c->seed ^ g_run_seed), states[c->state], endings[c->ending],
            c->msgs_left, (unsigned long long)c->sent, (unsigned long long)c->msg_end,
            (unsigned long long)c->checked, what);
    ERR_print_errors_fp(stderr);
    return -1;
}

/* A new connection in slot c, connect under way; -1 on failure. */
static int client_start(struct client *c)
{
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    int one = 1;

    if (c->active_ns && !g_cycled[c - g_clients]) { /* it had one before */
        g_cycled[c - g_clients] = true;
        g_cycled_count++;
    }
    memset(c, 0, sizeof *c);
    c->seed = ++g_generation ^ g_run_seed;
    c->ending = (enum ending)rnd(3);
    c->msgs_left = 1 + (unsigned)rnd(MAX_MESSAGES);
    c->active_ns = now_ns();
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return fail(c, strerror(errno));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&g_addr, sizeof g_addr) < 0 && errno != EINPROGRESS)
        return fail(c, strerror(errno));
    c->state = CONNECTING;
    c->events = EPOLLOUT;
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, c->fd, &e) < 0)
        return fail(c, strerror(errno));
    g_fig.connections++;
    return 0;
}

/* End slot c's connection, with a reset when asked. */
static void client_end(struct client *c, bool reset)
{
    if (reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    } else if (c->ssl && c->state != DRAINING) {
        SSL_shutdown(c->ssl); /* close_notify; the answer is not awaited */
    }
    SSL_free(c->ssl);
    close(c->fd); /* leaves epoll with it */
    c->ssl = NULL;
    c->fd = -1;
}

/* 1 connected (and handshaken), 0 not yet, -1 failed. */
static int connect_step(struct client *c)
{
    int err = 0, r;
    socklen_t len = sizeof err;

    if (c->state == CONNECTING) {
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err == EINPROGRESS)
            return 0;
        if (err == EADDRNOTAVAIL) { /* this machine's ports ran out: try again */
            g_fig.refused_ports++;
            client_end(c, false);
            return client_start(c) < 0 ? -1 : 0;
        }
        if (err)
            return fail(c, strerror(err));
        if (!g_ctx) {
            c->state = RUNNING;
            return 1;
        }
        c->ssl = SSL_new(g_ctx);
        if (!c->ssl || !SSL_set_fd(c->ssl, c->fd) ||
            !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), "127.0.0.1"))
            return fail(c, "SSL_new");
        SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        c->state = HANDSHAKE;
    }
    r = SSL_connect(c->ssl);
    if (r == 1) {
        c->state = RUNNING;
        c->want_write = false;
        return 1;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        c->want_write = false;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        c->want_write = true;
        return 0;
    default:
        return fail(c, "TLS handshake failed");
    }
}

/* Write some of the message under way: bytes written, 0 if none could
 * be, -1 failed. */
static long write_step(struct client *c)
{
    size_t n = c->msg_end - c->sent;
    ssize_t w;

    if (n == 0)
        return 0;
    if (n > (c->ssl ? TLS_CHUNK : IO_CHUNK))
        n = c->ssl ? TLS_CHUNK : IO_CHUNK;
    /* A TLS retry must offer the same bytes: they are the same stretch. */
    stream_fill(g_wbuf, c->seed, c->sent, n);
    if (c->ssl) {
        int r = SSL_write(c->ssl, g_wbuf, (int)n), e;

        if (r <= 0) {
            e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                c->want_write = e == SSL_ERROR_WANT_WRITE;
                return 0;
            }
            return fail(c, "SSL_write failed");
        }
        w = r;
    } else {
        w = send(c->fd, g_wbuf, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            c->want_write = true;
            return 0;
        }
        if (w < 0)
            return fail(c, strerror(errno));
    }
    c->want_write = false;
    c->sent += (uint64_t)w;
    return w;
}

/* Read and check what came back: bytes read, 0 if none yet, -1 failed,
 * -2 the server's end came (an error unless expected). */
static long read_step(struct client *c)
{
    ssize_t n;

    if (c->ssl) {
        int r = SSL_read(c->ssl, g_rbuf, (int)sizeof g_rbuf), e;

        if (r <= 0) {
            e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                return 0;
            if (e == SSL_ERROR_WANT_WRITE) {
                c->want_write = true;
                return 0;
            }
            if (e == SSL_ERROR_ZERO_RETURN)
                return -2;
            return fail(c, "SSL_read failed");
        }
        n = r;
    } else {
        n = recv(c->fd, g_rbuf, sizeof g_rbuf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        if (n < 0)
            return fail(c, strerror(errno));
        if (n == 0)
            return -2;
    }
    if (c->checked + (uint64_t)n > c->sent)
        return fail(c, "more bytes came back than were sent");
    stream_fill(g_want, c->seed, c->checked, (size_t)n);
    if (memcmp(g_want, g_rbuf, (size_t)n) != 0)
        return fail(c, "an echoed byte differs from the one sent");
    c->checked += (uint64_t)n;
    g_fig.bytes += (uint64_t)n;
    return n;
}

/* Send TLS's half-close (close_notify), which a full socket may hold
 * back: the alert then waits in OpenSSL for the next try.  0, or -1. */
static int notify_step(struct client *c)
{
    int r;

    if (!c->notify_left)
        return 0;
    r = SSL_shutdown(c->ssl);
    if (r >= 0) {
        c->notify_left = c->want_write = false;
        return 0;
    }
    if (SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_WRITE) {
        c->want_write = true;
        return 0;
    }
    return fail(c, "SSL_shutdown failed");
}

/* The next message, or the end: 1 the connection ended, 0 not, -1
 * failed. */
static int next_step(struct client *c)
{
    if (c->sent < c->msg_end || c->state == DRAINING)
        return 0;
    if (c->msgs_left > 0) {
        if (c->checked < c->sent)
            return 0; /* one message at a time: its echo first */
        if (c->msg_end > 0)
            g_fig.messages++;
        c->msg_end = c->sent + message_size();
        c->msgs_left--;
        return 0;
    }
    switch (c->ending) {
    case END_RESET: /* the last echo still under way */
        g_fig.resets++;
        client_end(c, true);
        return 1;
    case END_CLOSE:
        if (c->checked < c->sent)
            return 0;
        g_fig.messages++;
        g_fig.closes++;
        client_end(c, false);
        return 1;
    case END_HALF:
        c->state = DRAINING;
        if (!c->ssl) {
            shutdown(c->fd, SHUT_WR); /* the kernel sends FIN after the data */
            return 0;
        }
        c->notify_left = true;
        return notify_step(c);
    }
    return 0;
}

/* Work on one connection after an event: 0, or -1 on a soak failure.
 * An ended connection's slot gets a new connection. */
static int client_event(struct client *c)
{
    if (c->state == CONNECTING || c->state == HANDSHAKE) {
        int r = connect_step(c);

        if (r <= 0) {
            if (r == 0 && c->fd >= 0)
                set_events(c);
            return r;
        }
        c->active_ns = now_ns();
    }
    for (int round = 0; round < ROUNDS_PER_WAKE; round++) {
        long rd = read_step(c), wr = 0;
        int ended;

        if (rd == -1)
            return -1;
        if (rd == -2) {
            if (c->state != DRAINING || c->checked != c->sent)
                return fail(c, "the server ended the connection early");
            g_fig.messages++;
            g_fig.half_closes++;
            client_end(c, false);
            return client_start(c);
        }
        if (c->state != DRAINING) {
            wr = write_step(c);
            if (wr < 0)
                return -1;
        } else if (notify_step(c) < 0) {
            return -1;
        }
        ended = next_step(c);
        if (ended < 0)
            return -1;
        if (ended)
            return client_start(c);
        if (rd > 0 || wr > 0)
            c->active_ns = now_ns();
        if (rd == 0 && wr == 0 && c->sent == c->msg_end)
            break;
        if (rd == 0 && wr == 0 && c->want_write)
            break;
    }
    set_events(c);
    return 0;
}

static long rss_kb(pid_t pid)
{
    char path[64];
    long pages = -1, resident = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static SSL_CTX *client_ctx(const char *cert_dir)
{
    char ca[512];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    snprintf(ca, sizeof ca, "%s/ca.pem", cert_dir);
    if (!ctx || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        fprintf(stderr, "soak: cannot load %s\n", ca);
        ERR_print_errors_fp(stderr);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return ctx;
}

/* Keep every slot busy until end_ns.  During the warm-up (until
 * warm_min, then until every slot has finished a connection, but not
 * past warm_max) *warm_kb follows the server's highest resident memory,
 * read every 100 ms; *warm_end_ns says when it ended. */
static int run_clients(struct client *clients, int conns, pid_t server, uint64_t warm_min,
                       uint64_t warm_max, uint64_t end_ns, long *warm_kb, uint64_t *warm_end_ns)
{
    struct epoll_event events[MAX_EVENTS];
    uint64_t next_scan = now_ns() + 1000000000ull, next_rss = 0;

    for (int i = 0; i < conns; i++)
        if (client_start(&clients[i]) < 0)
            return -1;
    for (;;) {
        uint64_t now = now_ns();
        int n;

        if (!*warm_end_ns && now >= warm_max)
            *warm_end_ns = now;
        if (!*warm_end_ns && now >= warm_min && g_cycled_count >= conns)
            *warm_end_ns = now;
        if (!*warm_end_ns && now >= next_rss) {
            long kb = rss_kb(server);
            if (kb > *warm_kb)
                *warm_kb = kb;
            next_rss = now + 100000000ull;
        }
        if (now >= end_ns)
            return 0;
        if (now >= next_scan) { /* every connection must move */
            for (int i = 0; i < conns; i++)
                if (now - clients[i].active_ns > STALL_NS)
                    return fail(&clients[i], "no progress for 30 s");
            next_scan = now + 1000000000ull;
        }
        n = epoll_wait(g_ep, events, MAX_EVENTS, 100);
        if (n < 0 && errno != EINTR) {
            perror("soak: epoll_wait");
            return -1;
        }
        for (int i = 0; i < n; i++)
            if (client_event(events[i].data.ptr) < 0)
                return -1;
    }
}

/* The server's descriptors back to want, within FD_WAIT_MS: the count. */
static int wait_fds(pid_t server, int want)
{
    int n = count_fds(server);

    for (int waited = 0; n != want && waited < FD_WAIT_MS; waited += 10) {
        usleep(10000);
        n = count_fds(server);
    }
    return n;
}

static pid_t start_server(const char *backend, const char *cert_dir, int *control)
{
    int ctl[2], rep[2];
    uint16_t port = 0;
    pid_t pid;

    if (pipe2(ctl, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        close(ctl[1]);
        close(rep[0]);
        _exit(server_main(backend, cert_dir, ctl[0], rep[1]));
    }
    close(ctl[0]);
    close(rep[1]);
    if (pid < 0 || read(rep[0], &port, sizeof port) != sizeof port) {
        close(rep[0]);
        close(ctl[1]);
        return -1; /* the server said why, or exited 77 */
    }
    close(rep[0]);
    *control = ctl[1];
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons(port);
    g_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return pid;
}

static int usage(void)
{
    fprintf(stderr, "usage: soak [--tls CERT_DIR] [--conns N] uring|epoll|poll|default SECONDS\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *cert_dir = NULL, *backend, *seed_env = getenv("SOAK_SEED");
    long warm_kb = -1, end_kb, closed_kb;
    int conns = 500, control = -1, fds_before, fds_after, status = 0, rc = 0;
    double seconds, growth;
    struct client *clients;
    struct rlimit rl;
    uint64_t t0, t1, warm_end = 0;
    pid_t server;

    for (argv++, argc--; argc >= 2 && strncmp(argv[0], "--", 2) == 0; argv += 2, argc -= 2) {
        if (strcmp(argv[0], "--tls") == 0)
            cert_dir = argv[1];
        else if (strcmp(argv[0], "--conns") == 0)
            conns = atoi(argv[1]);
        else
            return usage();
    }
    if (argc != 2 || conns < 1 || conns > MAX_CONNS)
        return usage();
    backend = argv[0];
    seconds = strtod(argv[1], NULL);
    if (!(seconds > 0 && seconds <= 86400))
        return usage();
    /* Both ends of every connection live on this machine: room for both. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < (rlim_t)conns * 2 + 64) {
        fprintf(stderr, "soak: %d connections need %d open files; the limit is %ld\n", conns,
                conns * 2 + 64, (long)rl.rlim_cur);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    g_run_seed =
        seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    g_rng = g_run_seed;

    server = start_server(backend, cert_dir, &control);
    if (server < 0) {
        waitpid(-1, &status, 0);
        return WIFEXITED(status) && WEXITSTATUS(status) == 77 ? 77 : 1;
    }
    fds_before = count_fds(server);
    clients = calloc((size_t)conns, sizeof *clients);
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    if (!clients || g_ep < 0 || (cert_dir && !(g_ctx = client_ctx(cert_dir))))
        return 1;

    g_clients = clients;
    t0 = now_ns();
    {
        uint64_t run = (uint64_t)(seconds * 1e9), warm = run / 3;

        if (warm < 2000000000ull)
            warm = 2000000000ull;
        if (run_clients(clients, conns, server, t0 + warm, t0 + 2 * run / 3, t0 + run, &warm_kb,
                        &warm_end) < 0)
            rc = 1;
    }
    t1 = now_ns();
    end_kb = rss_kb(server);
    for (int i = 0; i < conns; i++)
        if (clients[i].fd >= 0)
            client_end(&clients[i], false);
    fds_after = wait_fds(server, fds_before);
    closed_kb = rss_kb(server);
    if (write(control, "q", 1) != 1 || waitpid(server, &status, 0) != server ||
        !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "soak: the server did not end cleanly (status %d)\n", status);
        rc = 1;
    }
    close(control);

    growth =
        warm_kb > 0 ? (double)(end_kb > closed_kb ? end_kb : closed_kb) / (double)warm_kb - 1 : 0;
    printf("soak: %s%s %.1f s conns=%d seed=%llu: connections=%llu (closes=%llu resets=%llu "
           "half_closes=%llu) messages=%llu bytes_checked=%llu (%.1f MB/s) "
           "server_fds=%d->%d server_rss_kb: warm=%ld (%.1f s) end=%ld closed=%ld (%+.1f%%)\n",
           backend, cert_dir ? "+tls" : "", (double)(t1 - t0) / 1e9, conns,
           (unsigned long long)g_run_seed, (unsigned long long)g_fig.connections,
           (unsigned long long)g_fig.closes, (unsigned long long)g_fig.resets,
           (unsigned long long)g_fig.half_closes, (unsigned long long)g_fig.messages,
           (unsigned long long)g_fig.bytes, (double)g_fig.bytes / ((double)(t1 - t0) / 1e3),
           fds_before, fds_after, warm_kb,
           warm_end ? (double)(warm_end - t0) / 1e9 : (double)(t1 - t0) / 1e9, end_kb, closed_kb,
           growth * 100);
    if (g_fig.refused_ports)
        printf("soak: %llu connects found no free local port and were retried\n",
               (unsigned long long)g_fig.refused_ports);
    if (fds_after != fds_before) {
        fprintf(stderr, "soak: the server holds %d descriptors, %d before the clients\n", fds_after,
                fds_before);
        rc = 1;
    }
    if (warm_kb <= 0 || growth > RSS_TOLERANCE) {
        fprintf(stderr, "soak: the server's resident memory grew %.1f%% after the warm-up\n",
                growth * 100);
        rc = 1;
    }
    SSL_CTX_free(g_ctx);
    free(clients);
    close(g_ep);
    return rc;
}
