/*
 * The load generator's connection scenarios (see load.h): connections per
 * second with a FIN or a reset at the end, and many idle connections
 * held open while bench/run reads the server's memory.
 */
#define _GNU_SOURCE /* SOCK_NONBLOCK */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "bench_addr.h"
#include "load.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24 /* Linux 4.2; older libc headers lack it */
#endif

#define RATE_MSG   64
#define MAX_EVENTS 256
#define MAX_ERRORS 100 /* failed connections before the run gives up */

enum { CONNECTING, READING };

struct slot {
    int fd;
    int state;
    uint64_t start_ns;
    size_t got;
    char msg[RATE_MSG];
};

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

void load_bind_source(int fd, const struct sockaddr_storage *ss, long i, int n)
{
    struct sockaddr_in src;
    int one = 1;

    if (n <= 1 || ss->ss_family != AF_INET)
        return;
    memset(&src, 0, sizeof src);
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(i % n)); /* 127.0.0.1 + i % n */
    /* The port is picked at connect, per destination, not at bind. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0)
        fprintf(stderr, "echo_load: bind to a source address: %s\n", strerror(errno));
}

static void fill64(char *buf, uint64_t seq)
{
    for (size_t i = 0; i < RATE_MSG; i++)
        buf[i] = (char)(seq * 131u + i * 7u);
}

/* A new connection in slot s; -1 when the socket could not even start. */
static int rate_start(int ep, struct slot *s, const struct sockaddr_storage *ss, socklen_t len,
                      uint64_t seq, int src_addrs)
{
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
    int one = 1;

    s->fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        return -1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    load_bind_source(s->fd, ss, (long)seq, src_addrs);
    s->state = CONNECTING;
    s->got = 0;
    s->start_ns = load_now_ns();
    fill64(s->msg, seq);
    if ((connect(s->fd, (const struct sockaddr *)ss, len) < 0 && errno != EINPROGRESS) ||
        epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
        fprintf(stderr, "echo_load: connect: %s\n", strerror(errno));
        close(s->fd);
        s->fd = -1;
        return -1;
    }
    return 0;
}

/* Advance slot s on an event: 1 when its connection is done, 0 not yet, -1 failed. */
static int rate_step(int ep, struct slot *s, int reset)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    char buf[RATE_MSG];
    int err = 0;
    socklen_t elen = sizeof err;
    ssize_t n;

    if (s->state == CONNECTING) {
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err) {
            fprintf(stderr, "echo_load: connect: %s\n", strerror(err ? err : errno));
            return -1;
        }
        if (write(s->fd, s->msg, RATE_MSG) != RATE_MSG) { /* an empty socket takes 64 bytes */
            fprintf(stderr, "echo_load: write: %s\n", strerror(errno));
            return -1;
        }
        s->state = READING;
        epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
        return 0;
    }
    n = read(s->fd, buf, RATE_MSG - s->got);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0 || memcmp(buf, s->msg + s->got, (size_t)n) != 0) {
        fprintf(stderr, "echo_load: echo: %s\n",
                n < 0    ? strerror(errno)
                : n == 0 ? "closed by the server"
                         : "bytes changed");
        return -1;
    }
    s->got += (size_t)n;
    if (s->got < RATE_MSG)
        return 0;
    if (reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(s->fd); /* also leaves the epoll set: the last reference */
    s->fd = -1;
    return 1;
}

static void print_rate(int reset, long conc, uint64_t done, double seconds, unsigned long errors,
                       double cpu_us)
{
    printf("mode=%s conc=%ld conns=%llu seconds=%.2f conns_per_sec=%.0f p50_us=%lu p99_us=%lu "
           "errors=%lu",
           reset ? "rst" : "fin", conc, (unsigned long long)done, seconds, (double)done / seconds,
           load_percentile_us(done, 0.50), load_percentile_us(done, 0.99), errors);
    if (cpu_us >= 0)
        printf(" server_cpu_us=%.0f cpu_us_per_conn=%.2f", cpu_us, cpu_us / (double)done);
    printf("\n");
}

int load_run_rate(const struct sockaddr_storage *ss, socklen_t len, int reset, long conc,
                  double seconds, int src_addrs, int cpu_pid)
{
    struct epoll_event events[MAX_EVENTS];
    struct slot *slots = calloc((size_t)conc, sizeof *slots);
    uint64_t seq = 0, done = 0, from = load_now_ns() + LOAD_WARMUP_NS, to = 0;
    double cpu0 = -1, cpu1 = -1;
    unsigned long errors = 0;
    int ep = epoll_create1(EPOLL_CLOEXEC);

    if (!slots || ep < 0)
        return 1;
    for (long i = 0; i < conc; i++)
        if (rate_start(ep, &slots[i], ss, len, seq++, src_addrs) < 0)
            return 1;
    for (;;) {
        uint64_t now = load_now_ns(), edge;
        int n;

        if (!to && now >= from) { /* the window opens: the server's CPU now */
            cpu0 = cpu_pid > 0 ? load_cpu_us(cpu_pid) : -1;
            from = now;
            to = now + (uint64_t)(seconds * 1e9);
        }
        if (to && now >= to)
            break;
        edge = to ? to : from;
        n = epoll_wait(ep, events, MAX_EVENTS, (int)((edge - now) / 1000000u) + 1);
        if (n < 0 && errno != EINTR)
            return 1;
        for (int i = 0; i < n; i++) {
            struct slot *s = events[i].data.ptr;
            int r = rate_step(ep, s, reset);

            if (r == 0)
                continue;
            now = load_now_ns();
            if (r > 0 && to && now < to) {
                load_hist_add(now - s->start_ns);
                done++;
            }
            if (r < 0) {
                close(s->fd);
                if (++errors > MAX_ERRORS)
                    return 1;
            }
            while (rate_start(ep, s, ss, len, seq++, src_addrs) < 0)
                if (++errors > MAX_ERRORS)
                    return 1;
        }
    }
    if (cpu_pid > 0 && cpu0 >= 0)
        cpu1 = load_cpu_us(cpu_pid);
    for (long i = 0; i < conc; i++)
        if (slots[i].fd >= 0)
            close(slots[i].fd);
    close(ep);
    free(slots);
    if (done == 0) {
        fprintf(stderr, "echo_load: no connection completed in the measured window\n");
        return 1;
    }
    print_rate(reset, conc, done, seconds, errors, cpu1 >= 0 ? cpu1 - cpu0 : -1);
    return 0;
}

/* One blocking connection with one 64-byte echo done; -1 on failure. */
static int idle_open(const struct sockaddr_storage *ss, socklen_t len, long i, int src_addrs)
{
    struct timeval tv = {.tv_sec = 10};
    char msg[RATE_MSG], back[RATE_MSG];
    size_t got = 0;
    int one = 1, fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        fprintf(stderr, "echo_load: socket: %s\n", strerror(errno));
        return -1;
    }
    if (ss->ss_family != AF_UNIX)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv); /* a silent server fails the run */
    load_bind_source(fd, ss, i, src_addrs);
    fill64(msg, (uint64_t)i);
    if (connect(fd, (const struct sockaddr *)ss, len) < 0 || write(fd, msg, RATE_MSG) != RATE_MSG)
        goto fail;
    while (got < RATE_MSG) {
        ssize_t n = read(fd, back + got, RATE_MSG - got);
        if (n <= 0)
            goto fail;
        got += (size_t)n;
    }
    if (memcmp(msg, back, RATE_MSG) != 0) {
        errno = EPROTO;
        goto fail;
    }
    return fd;
fail:
    fprintf(stderr, "echo_load: idle connection %ld: %s\n", i + 1,
            errno ? strerror(errno) : "closed by the server");
    close(fd);
    return -1;
}

int load_run_idle(const struct sockaddr_storage *ss, socklen_t len, long conns, double max_seconds,
                  int src_addrs)
{
    struct sigaction sa;
    struct timespec nap = {.tv_nsec = 20000000};
    int *fds = malloc((size_t)conns * sizeof *fds);
    uint64_t t0 = load_now_ns(), t1;

    if (!fds)
        return 1;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    for (long i = 0; i < conns; i++) {
        errno = 0;
        fds[i] = idle_open(ss, len, i, src_addrs);
        if (fds[i] < 0 || g_stop)
            return 1;
    }
    t1 = load_now_ns();
    printf("idle conns=%ld connect_seconds=%.2f\n", conns, (double)(t1 - t0) / 1e9);
    fflush(stdout);
    while (!g_stop && load_now_ns() - t1 < (uint64_t)(max_seconds * 1e9))
        nanosleep(&nap, NULL);
    for (long i = 0; i < conns; i++)
        close(fds[i]);
    free(fds);
    return 0;
}
