/*
 * Echo benchmark, the load generator: closed-loop clients on one thread,
 * over TCP, Unix domain sockets or TLS (OpenSSL directly, so gnezdo is
 * never measured against itself).
 *
 *   echo_load [--tls] ADDR CONNS SECONDS [MSG_SIZE=64]
 *   echo_load --handshakes ADDR SECONDS [MAX_COUNT=100000]
 *
 * ADDR: HOST:PORT, tcp://HOST:PORT, tls://HOST:PORT (same as --tls),
 * unix:/path or unix:@name.  Opens CONNS connections (TCP_NODELAY; with
 * TLS each completes its handshake, blocking, before the load starts).
 * Each sends one MSG_SIZE-byte message, waits until all of it has come
 * back, checks every byte, then sends the next.  The first 0.5 s are
 * warm-up and not counted; then it counts SECONDS and stops by itself,
 * printing one line:
 *   conns=50 msgs=1234567 seconds=5.00 msgs_per_sec=246913 p50_us=.. p99_us=..
 * Latency is send-to-last-byte-back, kept in a fixed histogram of 1 us
 * buckets (no allocation per message).  Exits 1 if an echo mismatched or
 * a connection failed, 2 on bad arguments.
 *
 * --handshakes: one connection at a time, for SECONDS or MAX_COUNT
 * handshakes, whichever comes first: connect, full TLS handshake (no
 * session resumption; the server's certificate is not verified, so the
 * client does no more work than it must), close_notify, close.  Prints
 *   handshakes=N seconds=2.00 handshakes_per_sec=.. p50_us=.. p99_us=..
 * TLS clients offer the library's defaults (TLS 1.3 here).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "bench_addr.h"

#define WARMUP_NS  500000000ull
#define HIST_US    200000 /* 1 us buckets up to 200 ms; above goes in the last */
#define MAX_EVENTS 256
#define MAX_MSG    (1u << 20)

struct client {
    int fd;
    SSL *ssl;         /* NULL without TLS */
    uint64_t seq;     /* number of the message in flight */
    uint64_t sent_ns; /* when it was sent */
    size_t sent;      /* bytes of it written */
    size_t got;       /* bytes of it read back */
    char *msg;        /* what was sent */
    char *back;       /* what came back */
    uint32_t events;  /* what epoll watches */
};

static uint64_t g_hist[HIST_US + 1];
static size_t g_msg_size = 64;
static int g_ep;
static SSL_CTX *g_ctx; /* TLS client context, NULL without TLS */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Message seq of connection id: every byte depends on both. */
static void fill(char *buf, size_t len, size_t id, uint64_t seq)
{
    uint64_t x = (seq + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)id * 0xC2B2AE3D27D4EB4Full;

    for (size_t i = 0; i < len; i++) {
        x ^= x >> 29;
        x *= 0xBF58476D1CE4E5B9ull;
        buf[i] = (char)(x >> 56);
    }
}

static void set_events(struct client *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};

    if (c->events != events && epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = events;
}

/* Write what is left of the message; 0, or -1 on a failed connection. */
static int send_rest(struct client *c)
{
    while (c->sent < g_msg_size) {
        ssize_t n;

        if (c->ssl) {
            int r = SSL_write(c->ssl, c->msg + c->sent, (int)(g_msg_size - c->sent));
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                    set_events(c, EPOLLIN | EPOLLOUT);
                    return 0;
                }
                fprintf(stderr, "echo_load: SSL_write failed (error %d)\n", e);
                ERR_print_errors_fp(stderr);
                return -1;
            }
            c->sent += (size_t)r;
            continue;
        }
        n = write(c->fd, c->msg + c->sent, g_msg_size - c->sent);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                set_events(c, EPOLLIN | EPOLLOUT);
                return 0;
            }
            fprintf(stderr, "echo_load: write: %s\n", strerror(errno));
            return -1;
        }
        c->sent += (size_t)n;
    }
    set_events(c, EPOLLIN);
    return 0;
}

static int start_next(struct client *c, size_t id, uint64_t now)
{
    c->seq++;
    fill(c->msg, g_msg_size, id, c->seq);
    c->sent = c->got = 0;
    c->sent_ns = now;
    return send_rest(c);
}

/* A connected socket, blocking; -1 on failure. */
static int dial(const struct sockaddr_storage *ss, socklen_t len)
{
    int one = 1, fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || connect(fd, (const struct sockaddr *)ss, len) < 0) {
        fprintf(stderr, "echo_load: connect: %s\n", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (ss->ss_family != AF_UNIX)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* A TLS session over fd, handshake done (blocking); NULL on failure. */
static SSL *tls_handshake(int fd)
{
    SSL *ssl = SSL_new(g_ctx);

    if (!ssl || !SSL_set_fd(ssl, fd) || SSL_connect(ssl) != 1) {
        fprintf(stderr, "echo_load: TLS handshake failed\n");
        ERR_print_errors_fp(stderr);
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

static int connect_one(struct client *c, const struct sockaddr_storage *ss, socklen_t len)
{
    c->fd = dial(ss, len);
    if (c->fd < 0)
        return -1;
    if (g_ctx) {
        c->ssl = tls_handshake(c->fd);
        if (!c->ssl)
            return -1;
        SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    return 0;
}

static unsigned long percentile_us(uint64_t total, double q)
{
    uint64_t want = (uint64_t)((double)total * q), seen = 0;

    if (want >= total)
        want = total - 1;
    for (size_t i = 0; i <= HIST_US; i++) {
        seen += g_hist[i];
        if (seen > want)
            return (unsigned long)i;
    }
    return HIST_US;
}

/* Sequential TLS handshakes for `seconds` or `max` of them. */
static int run_handshakes(const struct sockaddr_storage *ss, socklen_t len, double seconds,
                          unsigned long max)
{
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9), count = 0, now = t0;

    while (now < end && count < max) {
        uint64_t start = now;
        int fd = dial(ss, len);
        SSL *ssl;

        if (fd < 0)
            return 1;
        ssl = tls_handshake(fd);
        if (!ssl) {
            close(fd);
            return 1;
        }
        now = now_ns();
        count++;
        {
            uint64_t us = (now - start) / 1000u;
            g_hist[us < HIST_US ? us : HIST_US]++;
        }
        SSL_shutdown(ssl); /* sends close_notify; the answer is not awaited */
        SSL_free(ssl);
        close(fd);
        now = now_ns();
    }
    if (count == 0) {
        fprintf(stderr, "echo_load: no handshake completed\n");
        return 1;
    }
    printf("handshakes=%llu seconds=%.2f handshakes_per_sec=%.0f p50_us=%lu p99_us=%lu\n",
           (unsigned long long)count, (double)(now - t0) / 1e9,
           (double)count / ((double)(now - t0) / 1e9), percentile_us(count, 0.50),
           percentile_us(count, 0.99));
    return 0;
}

static SSL_CTX *client_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (!ctx) {
        ERR_print_errors_fp(stderr);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return ctx;
}

int main(int argc, char **argv)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct epoll_event events[MAX_EVENTS];
    struct client *clients;
    char *mem;
    long conns;
    double seconds;
    uint64_t t0, measure_from, measure_to, msgs = 0;
    int failed = 0;
    bool tls = false;
    const char *prog = argv[0];

    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && strcmp(argv[1], "--handshakes") == 0) {
        unsigned long max = argc == 5 ? strtoul(argv[4], NULL, 10) : 100000;

        seconds = argc >= 4 ? strtod(argv[3], NULL) : 0;
        if (argc < 4 || argc > 5 || !(seconds > 0) || max < 1) {
            fprintf(stderr, "usage: %s --handshakes ADDR SECONDS [MAX_COUNT=100000]\n", prog);
            return 2;
        }
        if (bench_parse_addr(argv[2], 0, &ss, &sslen) < 0)
            return 2;
        g_ctx = client_ctx();
        return g_ctx ? run_handshakes(&ss, sslen, seconds, max) : 1;
    }
    if (argc >= 2 && strcmp(argv[1], "--tls") == 0) {
        tls = true;
        argv++;
        argc--;
    }
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s [--tls] ADDR CONNS SECONDS [MSG_SIZE=64]\n", prog);
        return 2;
    }
    if (strncmp(argv[1], "tls://", 6) == 0)
        tls = true;
    if (tls && !(g_ctx = client_ctx()))
        return 1;
    conns = strtol(argv[2], NULL, 10);
    seconds = strtod(argv[3], NULL);
    if (argc == 5)
        g_msg_size = (size_t)strtoul(argv[4], NULL, 10);
    if (conns < 1 || conns > 100000 || !(seconds > 0) || g_msg_size < 1 || g_msg_size > MAX_MSG) {
        fprintf(stderr, "echo_load: need CONNS 1..100000, SECONDS > 0, MSG_SIZE 1..%u\n", MAX_MSG);
        return 2;
    }
    if (bench_parse_addr(argv[1], 0, &ss, &sslen) < 0)
        return 2;

    clients = calloc((size_t)conns, sizeof *clients);
    mem = malloc((size_t)conns * 2 * g_msg_size);
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    if (!clients || !mem || g_ep < 0) {
        fprintf(stderr, "echo_load: setup failed\n");
        return 1;
    }
    for (long i = 0; i < conns; i++) {
        struct client *c = &clients[i];
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

        c->msg = mem + (size_t)i * 2 * g_msg_size;
        c->back = c->msg + g_msg_size;
        if (connect_one(c, &ss, sslen) < 0)
            return 1;
        c->events = EPOLLIN;
        if (epoll_ctl(g_ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
            fprintf(stderr, "echo_load: epoll_ctl: %s\n", strerror(errno));
            return 1;
        }
    }

    t0 = now_ns();
    measure_from = t0 + WARMUP_NS;
    measure_to = measure_from + (uint64_t)(seconds * 1e9);
    for (long i = 0; i < conns; i++)
        if (start_next(&clients[i], (size_t)i, t0) < 0)
            return 1;

    while (!failed) {
        uint64_t now = now_ns();
        int n, timeout_ms;

        if (now >= measure_to)
            break;
        timeout_ms = (int)((measure_to - now) / 1000000u) + 1;
        n = epoll_wait(g_ep, events, MAX_EVENTS, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "echo_load: epoll_wait: %s\n", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n && !failed; i++) {
            struct client *c = events[i].data.ptr;
            size_t id = (size_t)(c - clients);
            ssize_t r;

            if (events[i].events & EPOLLOUT && send_rest(c) < 0) {
                failed = 1;
                break;
            }
            if (!(events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                continue;
        again:
            if (c->ssl) {
                int sr = SSL_read(c->ssl, c->back + c->got, (int)(g_msg_size - c->got));
                r = sr;
                if (sr <= 0) {
                    int e = SSL_get_error(c->ssl, sr);
                    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                        continue;
                    ERR_print_errors_fp(stderr);
                    r = e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
                    errno = EPROTO;
                }
            } else {
                r = read(c->fd, c->back + c->got, g_msg_size - c->got);
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
            }
            if (r <= 0) {
                fprintf(stderr, "echo_load: connection %zu: %s\n", id,
                        r == 0 ? "closed by the server" : strerror(errno));
                failed = 1;
                break;
            }
            c->got += (size_t)r;
            if (c->got > c->sent) {
                fprintf(stderr, "echo_load: connection %zu: more bytes back than sent\n", id);
                failed = 1;
                break;
            }
            if (c->got < g_msg_size) {
                if (c->ssl && SSL_pending(c->ssl) > 0)
                    goto again; /* bytes decrypted already: epoll will not say */
                continue;
            }
            if (memcmp(c->msg, c->back, g_msg_size) != 0) {
                fprintf(stderr, "echo_load: connection %zu: message %llu came back changed\n", id,
                        (unsigned long long)c->seq);
                failed = 1;
                break;
            }
            now = now_ns();
            if (now >= measure_from && now < measure_to) {
                uint64_t us = (now - c->sent_ns) / 1000u;
                g_hist[us < HIST_US ? us : HIST_US]++;
                msgs++;
            }
            if (start_next(c, id, now) < 0)
                failed = 1;
        }
    }
    for (long i = 0; i < conns; i++) {
        SSL_free(clients[i].ssl);
        close(clients[i].fd);
    }
    SSL_CTX_free(g_ctx);
    if (failed)
        return 1;
    if (msgs == 0) {
        fprintf(stderr, "echo_load: no message completed in the measured window\n");
        return 1;
    }
    printf("conns=%ld msgs=%llu seconds=%.2f msgs_per_sec=%.0f p50_us=%lu p99_us=%lu\n", conns,
           (unsigned long long)msgs, seconds, (double)msgs / seconds, percentile_us(msgs, 0.50),
           percentile_us(msgs, 0.99));
    free(mem);
    free(clients);
    return 0;
}
