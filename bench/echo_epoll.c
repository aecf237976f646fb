/*
 * Echo benchmark, the floor: a minimal hand-written single-threaded epoll
 * echo server to measure gnezdo against.  Level-triggered; non-blocking
 * accept; each readable connection is read once into one shared 64 KiB
 * buffer and written straight back; TCP_NODELAY on accepted sockets, as
 * gnezdo does by default.  Bytes the socket does not take are kept per
 * connection and flushed on EPOLLOUT (reading pauses meanwhile).
 *
 *   echo_epoll ADDR [--cert FILE --key FILE]
 *
 * ADDR: HOST:PORT, or unix:/path (a stale file there is replaced, and
 * removed on exit) or unix:@name.  With --cert and --key, the TLS floor:
 * the same loop over OpenSSL directly, non-blocking handshake on the
 * accepted socket, then one SSL_read and one SSL_write per readiness
 * event (TLS 1.3, library defaults, no client certificates).
 * Prints "listening on ADDR" (the bound address, so port 0 works;
 * tls://HOST:PORT with TLS) and runs until SIGTERM or SIGINT, then exits 0.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench_addr.h"

#define BUF_SIZE   (64u << 10)
#define MAX_EVENTS 256

struct pending { /* per connection: its TLS session, unsent bytes (rare) */
    SSL *ssl;
    char *data;
    size_t len, off;
};

static volatile sig_atomic_t g_stop;
static char g_buf[BUF_SIZE];
static struct pending *g_pending; /* indexed by fd */
static size_t g_npending;
static int g_ep;
static SSL_CTX *g_ctx; /* TLS server context, NULL without TLS */

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
        SSL_free(g_pending[fd].ssl);
        free(g_pending[fd].data);
        memset(&g_pending[fd], 0, sizeof g_pending[fd]);
    }
}

static void watch(int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};

    epoll_ctl(g_ep, EPOLL_CTL_MOD, fd, &ev);
}

/* g_pending[fd] exists; -1 when out of memory. */
static int slot(int fd)
{
    if ((size_t)fd >= g_npending) {
        size_t n = (size_t)fd + 64;
        struct pending *np = realloc(g_pending, n * sizeof *np);
        if (!np)
            return -1;
        memset(np + g_npending, 0, (n - g_npending) * sizeof *np);
        g_pending = np;
        g_npending = n;
    }
    return 0;
}

/* Keep what write did not take and wait for EPOLLOUT. */
static int keep(int fd, const char *data, size_t len)
{
    struct pending *p;

    if (slot(fd) < 0)
        return -1;
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

/* read or SSL_read: > 0 bytes, 0 at the end, -1 failed, -2 try later. */
static ssize_t io_read(int fd, char *buf, size_t len)
{
    SSL *ssl = g_ctx ? g_pending[fd].ssl : NULL;
    ssize_t n;
    int r;

    if (!ssl) {
        n = read(fd, buf, len);
        return n < 0 && (errno == EAGAIN || errno == EINTR) ? -2 : n;
    }
    r = SSL_read(ssl, buf, (int)len);
    if (r > 0)
        return r;
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return -2;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error();
        return -1;
    }
}

/* write or SSL_write: bytes taken (>= 0), or -1 failed. */
static ssize_t io_write(int fd, const char *buf, size_t len)
{
    SSL *ssl = g_ctx ? g_pending[fd].ssl : NULL;
    ssize_t n;
    int r, e;

    if (!ssl) {
        n = write(fd, buf, len);
        return n < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : n;
    }
    r = SSL_write(ssl, buf, (int)len);
    if (r > 0)
        return r;
    e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
        return 0; /* retried from keep() with the same bytes, as OpenSSL wants */
    ERR_clear_error();
    return -1;
}

static void on_writable(int fd)
{
    struct pending *p = &g_pending[fd];
    ssize_t n = io_write(fd, p->data + p->off, p->len - p->off);

    if (n < 0) {
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
    ssize_t n, w;

    if (g_ctx && !SSL_is_init_finished(g_pending[fd].ssl)) {
        int r = SSL_do_handshake(g_pending[fd].ssl), e;

        if (r != 1) {
            e = SSL_get_error(g_pending[fd].ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                ERR_clear_error();
                drop(fd);
            }
            return;
        }
    }
    n = io_read(fd, g_buf, sizeof g_buf);
    if (n == -2)
        return;
    if (n <= 0) {
        drop(fd);
        return;
    }
    w = io_write(fd, g_buf, (size_t)n);
    if (w < 0) {
        drop(fd);
        return;
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
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails on Unix: fine */
        if (g_ctx) {
            SSL *ssl = slot(fd) < 0 ? NULL : SSL_new(g_ctx);
            if (!ssl || !SSL_set_fd(ssl, fd)) {
                SSL_free(ssl);
                close(fd);
                continue;
            }
            SSL_set_accept_state(ssl);
            SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
            g_pending[fd].ssl = ssl;
        }
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
    const char *unix_path = NULL;
    int lfd, one = 1;

    if (argc != 2 &&
        !(argc == 6 && strcmp(argv[2], "--cert") == 0 && strcmp(argv[4], "--key") == 0)) {
        fprintf(stderr, "usage: %s ADDR [--cert FILE --key FILE]\n", argv[0]);
        return 2;
    }
    if (bench_parse_addr(argv[1], 1, &ss, &sslen) < 0)
        return 1;
    bench_raise_nofile(); /* for the 10,000 idle connections of bench/run */
    if (argc == 6) {
        g_ctx = SSL_CTX_new(TLS_server_method());
        if (!g_ctx || SSL_CTX_use_certificate_chain_file(g_ctx, argv[3]) != 1 ||
            SSL_CTX_use_PrivateKey_file(g_ctx, argv[5], SSL_FILETYPE_PEM) != 1) {
            fprintf(stderr, "echo_epoll: cannot load %s / %s\n", argv[3], argv[5]);
            ERR_print_errors_fp(stderr);
            return 1;
        }
    }
    if (ss.ss_family == AF_UNIX && ((struct sockaddr_un *)&ss)->sun_path[0] != '\0') {
        unix_path = ((struct sockaddr_un *)&ss)->sun_path;
        unlink(unix_path); /* a stale socket of an earlier run; bench/run owns the path */
    }
    lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&ss, sslen) < 0 || listen(lfd, 511) < 0) {
        fprintf(stderr, "listen on %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    sslen = sizeof ss;
    getsockname(lfd, (struct sockaddr *)&ss, &sslen);
    if (g_ctx) {
        memcpy(name, "tls://", 6);
        bench_format_addr(&ss, sslen, name + 6, sizeof name - 6);
    } else {
        bench_format_addr(&ss, sslen, name, sizeof name);
    }

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
    if (unix_path)
        unlink(unix_path);
    return 0;
}
