/*
 * Echo benchmark, the load generator: closed-loop clients on one thread,
 * over TCP, Unix domain sockets or TLS (OpenSSL directly, so gnezdo is
 * never measured against itself).
 *
 *   echo_load [--tls] [--depth K] [--cpu-pid PID] ADDR CONNS SECONDS [MSG_SIZE=64]
 *   echo_load --handshakes ADDR SECONDS [MAX_COUNT=100000]
 *   echo_load --rate fin|rst [--cpu-pid PID] [--src-addrs N] ADDR CONCURRENCY SECONDS
 *   echo_load --idle [--src-addrs N] ADDR CONNS MAX_SECONDS
 *
 * ADDR: HOST:PORT, tcp://HOST:PORT, tls://HOST:PORT (same as --tls),
 * unix:/path or unix:@name.  Opens CONNS connections (TCP_NODELAY; with
 * TLS each completes its handshake, blocking, before the load starts).
 * Each keeps K MSG_SIZE-byte messages in flight (default 1): it sends K,
 * and every time one has come back whole (every byte checked) it sends
 * the next; messages made while earlier ones are still being written go
 * out together in one writev.  The first 0.5 s are warm-up and not
 * counted; then it counts SECONDS and stops by itself, printing one line:
 *   conns=50 msgs=1234567 seconds=5.00 msgs_per_sec=246913 p50_us=.. p99_us=..
 * (then depth=K when K > 1).  Latency is from making a message to its
 * last byte back, kept in a fixed histogram of 1 us buckets (no
 * allocation per message).  --cpu-pid PID reads that process's CPU time
 * (utime + stime) at the two edges of the counted window and adds
 *   server_cpu_us=.. cpu_us_per_msg=..
 * Exits 1 if an echo mismatched or a connection failed, 2 on bad
 * arguments.
 *
 * --handshakes: one connection at a time, for SECONDS or MAX_COUNT
 * handshakes, whichever comes first: connect, full TLS handshake (no
 * session resumption; the server's certificate is not verified, so the
 * client does no more work than it must), close_notify, close.  Prints
 *   handshakes=N seconds=2.00 handshakes_per_sec=.. p50_us=.. p99_us=..
 * TLS clients offer the library's defaults (TLS 1.3 here).
 *
 * --rate and --idle: the connection scenarios of load_conns.c (load.h).
 *
 * The soft open-file limit is raised to the hard one first.
 */
#define _GNU_SOURCE /* SOCK_CLOEXEC with _POSIX_C_SOURCE */
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
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "bench_addr.h"
#include "load.h"

#define MAX_EVENTS 256
#define MAX_MSG    (1u << 20)
#define MAX_DEPTH  64
#define READ_SIZE  (256u << 10)

struct client {
    int fd;
    SSL *ssl;          /* NULL without TLS */
    uint64_t made;     /* messages made: being written, written or back */
    uint64_t written;  /* messages written whole */
    size_t woff;       /* bytes written of message `written` */
    uint64_t done;     /* messages back whole */
    size_t got;        /* bytes back of message `done` */
    char *slots;       /* depth messages; message s lives in slot s % depth */
    uint64_t *made_ns; /* when each slot's message was made */
    uint32_t events;   /* what epoll watches */
};

uint64_t load_hist[LOAD_HIST_US + 1];
static size_t g_msg_size = 64;
static unsigned g_depth = 1;
static int g_ep;
static SSL_CTX *g_ctx; /* TLS client context, NULL without TLS */
static char g_rbuf[READ_SIZE];

uint64_t load_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void load_hist_add(uint64_t ns)
{
    uint64_t us = ns / 1000u;

    load_hist[us < LOAD_HIST_US ? us : LOAD_HIST_US]++;
}

unsigned long load_percentile_us(uint64_t total, double q)
{
    uint64_t want = (uint64_t)((double)total * q), seen = 0;

    if (want >= total)
        want = total - 1;
    for (size_t i = 0; i <= LOAD_HIST_US; i++) {
        seen += load_hist[i];
        if (seen > want)
            return (unsigned long)i;
    }
    return LOAD_HIST_US;
}

double load_cpu_us(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut, st;
    ssize_t n;
    int fd;

    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    /* Fields 3 (state) to 13 skipped; 14 utime, 15 stime, in clock ticks. */
    if (!p ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
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

static char *slot(const struct client *c, uint64_t seq)
{
    return c->slots + (size_t)(seq % g_depth) * g_msg_size;
}

static void set_events(struct client *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};

    if (c->events != events && epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = events;
}

/* Account n bytes written. */
static void advance(struct client *c, size_t n)
{
    while (n > 0) {
        size_t left = g_msg_size - c->woff, take = n < left ? n : left;

        c->woff += take;
        n -= take;
        if (c->woff == g_msg_size) {
            c->written++;
            c->woff = 0;
        }
    }
}

/* One write (or SSL_write) of what is made and not yet written: > 0
 * bytes, 0 when the socket is full, -1 failed. */
static ssize_t write_some(struct client *c)
{
    struct iovec iov[MAX_DEPTH];
    int cnt = 0;
    ssize_t n;

    if (c->ssl) {
        int r = SSL_write(c->ssl, slot(c, c->written) + c->woff, (int)(g_msg_size - c->woff)), e;
        if (r > 0)
            return r;
        e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
            return 0;
        fprintf(stderr, "echo_load: SSL_write failed (error %d)\n", e);
        ERR_print_errors_fp(stderr);
        return -1;
    }
    for (uint64_t s = c->written; s < c->made; s++, cnt++) {
        size_t off = s == c->written ? c->woff : 0;
        iov[cnt].iov_base = slot(c, s) + off;
        iov[cnt].iov_len = g_msg_size - off;
    }
    do
        n = cnt == 1 ? write(c->fd, iov[0].iov_base, iov[0].iov_len) : writev(c->fd, iov, cnt);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN)
        return 0;
    if (n < 0)
        fprintf(stderr, "echo_load: write: %s\n", strerror(errno));
    return n;
}

/* Write what is made and not yet written; 0, or -1 on a failed connection. */
static int send_rest(struct client *c)
{
    while (c->written < c->made) {
        ssize_t n = write_some(c);

        if (n < 0)
            return -1;
        if (n == 0) {
            set_events(c, EPOLLIN | EPOLLOUT);
            return 0;
        }
        advance(c, (size_t)n);
    }
    set_events(c, EPOLLIN);
    return 0;
}

/* Make messages until K are in flight, and send them. */
static int top_up(struct client *c, size_t id, uint64_t now)
{
    while (c->made - c->done < g_depth) {
        fill(slot(c, c->made), g_msg_size, id, c->made + 1);
        c->made_ns[c->made % g_depth] = now;
        c->made++;
    }
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

/* Sequential TLS handshakes for `seconds` or `max` of them. */
static int run_handshakes(const struct sockaddr_storage *ss, socklen_t len, double seconds,
                          unsigned long max)
{
    uint64_t t0 = load_now_ns(), end = t0 + (uint64_t)(seconds * 1e9), count = 0, now = t0;

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
        now = load_now_ns();
        count++;
        load_hist_add(now - start);
        SSL_shutdown(ssl); /* sends close_notify; the answer is not awaited */
        SSL_free(ssl);
        close(fd);
        now = load_now_ns();
    }
    if (count == 0) {
        fprintf(stderr, "echo_load: no handshake completed\n");
        return 1;
    }
    printf("handshakes=%llu seconds=%.2f handshakes_per_sec=%.0f p50_us=%lu p99_us=%lu\n",
           (unsigned long long)count, (double)(now - t0) / 1e9,
           (double)count / ((double)(now - t0) / 1e9), load_percentile_us(count, 0.50),
           load_percentile_us(count, 0.99));
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

/* One read (or SSL_read): > 0 bytes, 0 nothing now, -1 failed or closed. */
static ssize_t read_some(struct client *c, size_t id)
{
    ssize_t r;

    if (c->ssl) {
        int sr = SSL_read(c->ssl, g_rbuf, (int)sizeof g_rbuf), e;
        if (sr > 0)
            return sr;
        e = SSL_get_error(c->ssl, sr);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        ERR_print_errors_fp(stderr);
        r = e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
        errno = EPROTO;
    } else {
        r = read(c->fd, g_rbuf, sizeof g_rbuf);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
    }
    if (r <= 0) {
        fprintf(stderr, "echo_load: connection %zu: %s\n", id,
                r == 0 ? "closed by the server" : strerror(errno));
        return -1;
    }
    return r;
}

/*
 * Check n bytes that came back against the messages in flight; a message
 * back whole counts when it lands in [from, to).  Returns messages
 * counted, or -1 when the bytes are wrong.
 */
static long check_back(struct client *c, size_t id, size_t n, uint64_t from, uint64_t to)
{
    const char *p = g_rbuf;
    uint64_t now = 0;
    long counted = 0;

    if ((c->done * g_msg_size + c->got) + n > c->written * g_msg_size + c->woff) {
        fprintf(stderr, "echo_load: connection %zu: more bytes back than sent\n", id);
        return -1;
    }
    while (n > 0) {
        size_t take = g_msg_size - c->got < n ? g_msg_size - c->got : n;

        if (memcmp(slot(c, c->done) + c->got, p, take) != 0) {
            fprintf(stderr, "echo_load: connection %zu: message %llu came back changed\n", id,
                    (unsigned long long)c->done + 1);
            return -1;
        }
        c->got += take;
        p += take;
        n -= take;
        if (c->got < g_msg_size)
            break;
        if (!now)
            now = load_now_ns();
        if (from && now >= from && now < to) {
            load_hist_add(now - c->made_ns[c->done % g_depth]);
            counted++;
        }
        c->done++;
        c->got = 0;
    }
    return counted;
}

/* Readable: read, check, count, refill; messages counted, or -1 failed. */
static long on_readable(struct client *c, size_t id, uint64_t from, uint64_t to)
{
    long counted = 0, k;
    ssize_t r;

    do {
        r = read_some(c, id);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        k = check_back(c, id, (size_t)r, from, to);
        if (k < 0)
            return -1;
        counted += k;
        /* TLS: bytes decrypted already are not news to epoll */
    } while (c->ssl && SSL_pending(c->ssl) > 0);
    if (c->made - c->done < g_depth && top_up(c, id, load_now_ns()) < 0)
        return -1;
    return counted;
}

struct echo_args {
    long conns;
    double seconds;
    int cpu_pid;
};

static void print_echo(const struct echo_args *a, uint64_t msgs, double cpu_us)
{
    printf("conns=%ld msgs=%llu seconds=%.2f msgs_per_sec=%.0f p50_us=%lu p99_us=%lu", a->conns,
           (unsigned long long)msgs, a->seconds, (double)msgs / a->seconds,
           load_percentile_us(msgs, 0.50), load_percentile_us(msgs, 0.99));
    if (g_depth > 1)
        printf(" depth=%u", g_depth);
    if (cpu_us >= 0)
        printf(" server_cpu_us=%.0f cpu_us_per_msg=%.3f", cpu_us, cpu_us / (double)msgs);
    printf("\n");
}

/* The closed loop over clients[0..conns), connected; the exit status. */
static int run_echo(struct client *clients, const struct echo_args *a)
{
    struct epoll_event events[MAX_EVENTS];
    uint64_t t0 = load_now_ns(), open_at = t0 + LOAD_WARMUP_NS, from = 0, to = 0, msgs = 0;
    double cpu0 = -1, cpu1 = -1;

    for (long i = 0; i < a->conns; i++)
        if (top_up(&clients[i], (size_t)i, t0) < 0)
            return 1;
    for (;;) {
        uint64_t now = load_now_ns();
        int n;

        if (!from && now >= open_at) { /* the window opens: the server's CPU now */
            cpu0 = a->cpu_pid > 0 ? load_cpu_us(a->cpu_pid) : -1;
            from = now;
            to = now + (uint64_t)(a->seconds * 1e9);
        }
        if (from && now >= to)
            break;
        n = epoll_wait(g_ep, events, MAX_EVENTS,
                       (int)(((from ? to : open_at) - now) / 1000000u) + 1);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "echo_load: epoll_wait: %s\n", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct client *c = events[i].data.ptr;
            size_t id = (size_t)(c - clients);
            long k;

            if (events[i].events & EPOLLOUT && send_rest(c) < 0)
                return 1;
            if (!(events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                continue;
            k = on_readable(c, id, from, to);
            if (k < 0)
                return 1;
            msgs += (uint64_t)k;
        }
    }
    if (a->cpu_pid > 0 && cpu0 >= 0)
        cpu1 = load_cpu_us(a->cpu_pid);
    if (msgs == 0) {
        fprintf(stderr, "echo_load: no message completed in the measured window\n");
        return 1;
    }
    print_echo(a, msgs, cpu1 >= 0 ? cpu1 - cpu0 : -1);
    return 0;
}

static int echo_main(const char *addr, const struct echo_args *a)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct client *clients;
    char *mem;
    uint64_t *stamps;
    int rc;

    if (bench_parse_addr(addr, 0, &ss, &sslen) < 0)
        return 2;
    clients = calloc((size_t)a->conns, sizeof *clients);
    mem = malloc((size_t)a->conns * g_depth * g_msg_size);
    stamps = calloc((size_t)a->conns * g_depth, sizeof *stamps);
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    if (!clients || !mem || !stamps || g_ep < 0) {
        fprintf(stderr, "echo_load: setup failed\n");
        return 1;
    }
    for (long i = 0; i < a->conns; i++) {
        struct client *c = &clients[i];
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

        c->slots = mem + (size_t)i * g_depth * g_msg_size;
        c->made_ns = stamps + (size_t)i * g_depth;
        if (connect_one(c, &ss, sslen) < 0)
            return 1;
        c->events = EPOLLIN;
        if (epoll_ctl(g_ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
            fprintf(stderr, "echo_load: epoll_ctl: %s\n", strerror(errno));
            return 1;
        }
    }
    rc = run_echo(clients, a);
    for (long i = 0; i < a->conns; i++) {
        SSL_free(clients[i].ssl);
        close(clients[i].fd);
    }
    SSL_CTX_free(g_ctx);
    free(stamps);
    free(mem);
    free(clients);
    return rc;
}

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--tls] [--depth K] [--cpu-pid PID] ADDR CONNS SECONDS [MSG_SIZE=64]\n"
            "       %s --handshakes ADDR SECONDS [MAX_COUNT=100000]\n"
            "       %s --rate fin|rst [--cpu-pid PID] [--src-addrs N] ADDR CONCURRENCY SECONDS\n"
            "       %s --idle [--src-addrs N] ADDR CONNS MAX_SECONDS\n",
            prog, prog, prog, prog);
    return 2;
}

int main(int argc, char **argv)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct echo_args a = {0};
    const char *prog = argv[0], *mode = "echo";
    long depth = 1, src_addrs = 1, fd_limit;
    int reset = 0;
    bool tls = false;

    signal(SIGPIPE, SIG_IGN);
    fd_limit = bench_raise_nofile();
    if (argc >= 2 && strcmp(argv[1], "--handshakes") == 0) {
        unsigned long max = argc == 5 ? strtoul(argv[4], NULL, 10) : 100000;

        a.seconds = argc >= 4 ? strtod(argv[3], NULL) : 0;
        if (argc < 4 || argc > 5 || !(a.seconds > 0) || max < 1)
            return usage(prog);
        if (bench_parse_addr(argv[2], 0, &ss, &sslen) < 0)
            return 2;
        g_ctx = client_ctx();
        return g_ctx ? run_handshakes(&ss, sslen, a.seconds, max) : 1;
    }
    for (argv++, argc--; argc > 0 && strncmp(argv[0], "--", 2) == 0; argv++, argc--) {
        const char *opt = argv[0], *val = argc > 1 ? argv[1] : NULL;

        if (strcmp(opt, "--tls") == 0) {
            tls = true;
            continue;
        }
        if (strcmp(opt, "--idle") == 0) {
            mode = "idle";
            continue;
        }
        if (!val)
            return usage(prog);
        if (strcmp(opt, "--rate") == 0 && (strcmp(val, "fin") == 0 || strcmp(val, "rst") == 0)) {
            mode = "rate";
            reset = val[0] == 'r';
        } else if (strcmp(opt, "--depth") == 0) {
            depth = strtol(val, NULL, 10);
        } else if (strcmp(opt, "--cpu-pid") == 0) {
            a.cpu_pid = (int)strtol(val, NULL, 10);
        } else if (strcmp(opt, "--src-addrs") == 0) {
            src_addrs = strtol(val, NULL, 10);
        } else {
            return usage(prog);
        }
        argv++, argc--;
    }
    /* argv[0] is ADDR now */
    if (argc < 3 || argc > 4 || (argc == 4 && strcmp(mode, "echo") != 0))
        return usage(prog);
    a.conns = strtol(argv[1], NULL, 10);
    a.seconds = strtod(argv[2], NULL);
    if (argc == 4)
        g_msg_size = (size_t)strtoul(argv[3], NULL, 10);
    if (a.conns < 1 || a.conns > 100000 || !(a.seconds > 0) || g_msg_size < 1 ||
        g_msg_size > MAX_MSG || depth < 1 || depth > MAX_DEPTH || src_addrs < 1 ||
        src_addrs > 250) {
        fprintf(stderr,
                "echo_load: need CONNS 1..100000, SECONDS > 0, MSG_SIZE 1..%u, K 1..%d, N 1..250\n",
                MAX_MSG, MAX_DEPTH);
        return 2;
    }
    if (a.conns + 16 > fd_limit) {
        fprintf(stderr, "echo_load: %ld connections need more open files than the limit, %ld\n",
                a.conns, fd_limit);
        return 2;
    }
    g_depth = (unsigned)depth;
    if (strcmp(mode, "echo") != 0) {
        if (tls || strncmp(argv[0], "tls://", 6) == 0 ||
            bench_parse_addr(argv[0], 0, &ss, &sslen) < 0)
            return usage(prog);
        if (strcmp(mode, "idle") == 0)
            return load_run_idle(&ss, sslen, a.conns, a.seconds, (int)src_addrs);
        return load_run_rate(&ss, sslen, reset, a.conns, a.seconds, (int)src_addrs, a.cpu_pid);
    }
    if (strncmp(argv[0], "tls://", 6) == 0)
        tls = true;
    if (tls && !(g_ctx = client_ctx()))
        return 1;
    return echo_main(argv[0], &a);
}
