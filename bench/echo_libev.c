/*
 * Echo benchmark, a peer: an echo server on libev, the same plain loop as
 * echo_epoll on libev's watchers.  One ev_io per connection; each read
 * event reads once into one shared 64 KiB buffer and writes straight back;
 * bytes the socket does not take are kept and the watcher waits for
 * EV_WRITE instead (reading pauses meanwhile).  TCP_NODELAY on accepted
 * sockets.  libev's default backend here is epoll.
 *
 *   echo_libev ADDR
 *
 * ADDR: HOST:PORT, unix:/path or unix:@name.  Prints "listening on ADDR"
 * and runs until SIGTERM or SIGINT, then exits 0.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_addr.h"

#define BUF_SIZE (64u << 10)

struct conn {
    ev_io io;   /* first: the watcher is the connection */
    char *data; /* unsent bytes, NULL when none */
    size_t len, off;
};

static char g_buf[BUF_SIZE];

static void drop(struct ev_loop *loop, struct conn *c)
{
    ev_io_stop(loop, &c->io);
    close(c->io.fd);
    free(c->data);
    free(c);
}

static void wait_for(struct ev_loop *loop, struct conn *c, int events)
{
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->io.fd, events);
    ev_io_start(loop, &c->io);
}

static void on_writable(struct ev_loop *loop, struct conn *c)
{
    ssize_t n = write(c->io.fd, c->data + c->off, c->len - c->off);

    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            drop(loop, c);
        return;
    }
    c->off += (size_t)n;
    if (c->off == c->len) {
        free(c->data);
        c->data = NULL;
        wait_for(loop, c, EV_READ);
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = (struct conn *)w;
    ssize_t n, sent;

    if (revents & EV_WRITE) {
        on_writable(loop, c);
        return;
    }
    n = read(w->fd, g_buf, sizeof g_buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        drop(loop, c);
        return;
    }
    sent = write(w->fd, g_buf, (size_t)n);
    if (sent < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            drop(loop, c);
            return;
        }
        sent = 0;
    }
    if (sent == n)
        return;
    c->len = (size_t)(n - sent);
    c->off = 0;
    c->data = malloc(c->len);
    if (!c->data) {
        drop(loop, c);
        return;
    }
    memcpy(c->data, g_buf + sent, c->len);
    wait_for(loop, c, EV_WRITE);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    for (;;) {
        int one = 1, fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct conn *c;

        if (fd < 0)
            return; /* EAGAIN, or a transient error: try again next round */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails on Unix: fine */
        c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        ev_io_init(&c->io, on_io, fd, EV_READ);
        ev_io_start(loop, &c->io);
    }
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    struct ev_loop *loop;
    ev_io listener;
    ev_signal sigterm, sigint;
    char name[NI_MAXHOST + NI_MAXSERV + 8];
    const char *unix_path;
    int fd;

    if (argc != 2) {
        fprintf(stderr, "usage: %s ADDR\n", argv[0]);
        return 2;
    }
    bench_raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    loop = ev_default_loop(EVFLAG_AUTO);
    if (!loop) {
        fprintf(stderr, "echo_libev: no event loop\n");
        return 1;
    }
    fd = bench_listen(argv[1], 1, name, sizeof name);
    if (fd < 0)
        return 1;
    unix_path = bench_unix_path(argv[1]);
    ev_io_init(&listener, on_accept, fd, EV_READ);
    ev_io_start(loop, &listener);
    ev_signal_init(&sigterm, on_signal, SIGTERM);
    ev_signal_start(loop, &sigterm);
    ev_signal_init(&sigint, on_signal, SIGINT);
    ev_signal_start(loop, &sigint);

    printf("listening on %s\n", name);
    fflush(stdout);
    ev_run(loop, 0);
    if (unix_path)
        unlink(unix_path);
    return 0;
}
