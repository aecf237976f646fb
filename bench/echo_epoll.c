/*
 * Echo benchmark, the floor: a minimal hand-written single-threaded epoll
 * echo server to measure gnezdo against.  Level-triggered; non-blocking
 * accept; each readable connection is read once into one shared 64 KiB
 * buffer and written straight back; TCP_NODELAY on accepted sockets, as
 * gnezdo does by default.  Bytes the socket does not take are kept per
 * connection and flushed on EPOLLOUT (reading pauses meanwhile).
 *
 *   echo_epoll ADDR
 *
 * Prints "listening on ADDR" (the bound address, so port 0 works) and
 * runs until SIGTERM or SIGINT, then exits 0.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench_addr.h"

#define BUF_SIZE   (64u << 10)
#define MAX_EVENTS 256

struct pending { /* unsent bytes of one connection, rare */
    char *data;
    size_t len, off;
};

static volatile sig_atomic_t g_stop;
static char g_buf[BUF_SIZE];
static struct pending *g_pending; /* indexed by fd */
static size_t g_npending;
static int g_ep;

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void drop(int fd)
{
    epoll_ctl(g_ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    if ((size_t)fd < g_npending) {
        free(g_pending[fd].data);
        memset(&g_pending[fd], 0, sizeof g_pending[fd]);
    }
}

static void watch(int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};

    epoll_ctl(g_ep, EPOLL_CTL_MOD, fd, &ev);
}

/* Keep what write did not take and wait for EPOLLOUT. */
static int keep(int fd, const char *data, size_t len)
{
    struct pending *p;

    if ((size_t)fd >= g_npending) {
        size_t n = (size_t)fd + 64;
        struct pending *np = realloc(g_pending, n * sizeof *np);
        if (!np)
            return -1;
        memset(np + g_npending, 0, (n - g_npending) * sizeof *np);
        g_pending = np;
        g_npending = n;
    }
    p = &g_pending[fd];
    p->data = malloc(len);
    if (!p->data)
        return -1;
    memcpy(p->data, data, len);
    p->len = len;
    p->off = 0;
    watch(fd, EPOLLOUT);
    return 0;
}

static void on_writable(int fd)
{
    struct pending *p = &g_pending[fd];
    ssize_t n = write(fd, p->data + p->off, p->len - p->off);

    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            drop(fd);
        return;
    }
    p->off += (size_t)n;
    if (p->off == p->len) {
        free(p->data);
        p->data = NULL;
        watch(fd, EPOLLIN);
    }
}

static void on_readable(int fd)
{
    ssize_t n = read(fd, g_buf, sizeof g_buf), w;

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        drop(fd);
        return;
    }
    if (n < 0)
        return;
    w = write(fd, g_buf, (size_t)n);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            drop(fd);
            return;
        }
        w = 0;
    }
    if (w < n && keep(fd, g_buf + w, (size_t)(n - w)) < 0)
        drop(fd);
}

static void on_accept(int lfd)
{
    for (;;) {
        int one = 1, fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN};

        if (fd < 0)
            return; /* EAGAIN, or a transient error: try again next round */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ev.data.fd = fd;
        if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev) < 0)
            close(fd);
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct epoll_event ev = {.events = EPOLLIN}, events[MAX_EVENTS];
    struct sigaction sa;
    char name[NI_MAXHOST + NI_MAXSERV + 8];
    int lfd, one = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: %s ADDR\n", argv[0]);
        return 2;
    }
    if (bench_parse_addr(argv[1], 1, &ss, &sslen) < 0)
        return 1;
    lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&ss, sslen) < 0 || listen(lfd, 511) < 0) {
        fprintf(stderr, "listen on %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    sslen = sizeof ss;
    getsockname(lfd, (struct sockaddr *)&ss, &sslen);
    bench_format_addr(&ss, sslen, name, sizeof name);

    g_ep = epoll_create1(EPOLL_CLOEXEC);
    ev.data.fd = lfd;
    if (g_ep < 0 || epoll_ctl(g_ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
        fprintf(stderr, "epoll: %s\n", strerror(errno));
        return 1;
    }
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop; /* no SA_RESTART: epoll_wait returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    printf("listening on %s\n", name);
    fflush(stdout);
    while (!g_stop) {
        int n = epoll_wait(g_ep, events, MAX_EVENTS, -1);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "epoll_wait: %s\n", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;

            if (fd == lfd)
                on_accept(lfd);
            else if (events[i].events & EPOLLOUT)
                on_writable(fd);
            else
                on_readable(fd);
        }
    }
    return 0;
}
