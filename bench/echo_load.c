/*
 * Echo benchmark, the load generator: closed-loop clients on one thread.
 *
 *   echo_load ADDR CONNS SECONDS [MSG_SIZE=64]
 *
 * Opens CONNS connections (TCP_NODELAY).  Each sends one MSG_SIZE-byte
 * message, waits until all of it has come back, checks every byte, then
 * sends the next.  The first 0.5 s are warm-up and not counted; then it
 * counts SECONDS and stops by itself, printing one line:
 *   conns=50 msgs=1234567 seconds=5.00 msgs_per_sec=246913 p50_us=.. p99_us=..
 * Latency is send-to-last-byte-back, kept in a fixed histogram of 1 us
 * buckets (no allocation per message).  Exits 1 if an echo mismatched or
 * a connection failed, 2 on bad arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
        ssize_t n = write(c->fd, c->msg + c->sent, g_msg_size - c->sent);
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

static int connect_one(const struct sockaddr_storage *ss, socklen_t len)
{
    int one = 1, fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || connect(fd, (const struct sockaddr *)ss, len) < 0) {
        fprintf(stderr, "echo_load: connect: %s\n", strerror(errno));
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
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

    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s ADDR CONNS SECONDS [MSG_SIZE=64]\n", argv[0]);
        return 2;
    }
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
        c->fd = connect_one(&ss, sslen);
        if (c->fd < 0)
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
            r = read(c->fd, c->back + c->got, g_msg_size - c->got);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
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
            if (c->got < g_msg_size)
                continue;
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
    for (long i = 0; i < conns; i++)
        close(clients[i].fd);
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
