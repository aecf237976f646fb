/*
 * Echo benchmark, a peer: an echo server on libuv, written the way libuv's
 * documentation suggests for speed.  alloc_cb hands out one static 64 KiB
 * buffer (libuv reads into it and calls read_cb before asking again, so
 * one buffer serves every connection); read_cb writes the bytes straight
 * back with uv_try_write and only what the socket did not take is copied
 * and queued with uv_write (reading pauses until it is written, as in
 * echo_epoll).  TCP_NODELAY on accepted connections.
 *
 *   echo_libuv ADDR
 *
 * ADDR: HOST:PORT or unix:/path (libuv's pipes take no abstract names).
 * Prints "listening on ADDR" and runs until SIGTERM or SIGINT, then
 * exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bench_addr.h"

#define BUF_SIZE (64u << 10)

union stream { /* what an accepted connection is, by the listener's family */
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
};

struct copy { /* the bytes uv_try_write did not take, until uv_write is done */
    uv_write_t req;
    char data[];
};

static char g_buf[BUF_SIZE];
static uv_loop_t *g_loop;
static union stream g_server;
static int g_is_unix;

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    (void)suggested;
    *buf = uv_buf_init(g_buf, sizeof g_buf);
}

static void on_closed(uv_handle_t *handle)
{
    free(handle);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void on_written(uv_write_t *req, int status)
{
    uv_stream_t *stream = req->handle;

    free(req); /* req is the start of its struct copy */
    if (status < 0) {
        if (!uv_is_closing((uv_handle_t *)stream))
            uv_close((uv_handle_t *)stream, on_closed);
        return;
    }
    if (stream->write_queue_size == 0)
        uv_read_start(stream, on_alloc, on_read);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    uv_buf_t out;
    struct copy *copy;
    int n;

    if (nread <= 0) {
        if (nread < 0) /* UV_EOF, or a reset */
            uv_close((uv_handle_t *)stream, on_closed);
        return; /* 0: EAGAIN, nothing read */
    }
    out = uv_buf_init(buf->base, (unsigned)nread);
    n = uv_try_write(stream, &out, 1);
    if (n == nread)
        return;
    if (n < 0 && n != UV_EAGAIN) {
        uv_close((uv_handle_t *)stream, on_closed);
        return;
    }
    if (n < 0)
        n = 0;
    copy = malloc(sizeof *copy + (size_t)(nread - n));
    if (!copy) {
        uv_close((uv_handle_t *)stream, on_closed);
        return;
    }
    memcpy(copy->data, buf->base + n, (size_t)(nread - n));
    out = uv_buf_init(copy->data, (unsigned)(nread - n));
    if (uv_write(&copy->req, stream, &out, 1, on_written) < 0) {
        free(copy);
        uv_close((uv_handle_t *)stream, on_closed);
        return;
    }
    uv_read_stop(stream);
}

static void on_connection(uv_stream_t *server, int status)
{
    union stream *client;

    if (status < 0)
        return;
    client = malloc(sizeof *client);
    if (!client)
        return;
    if (g_is_unix)
        uv_pipe_init(g_loop, &client->pipe, 0);
    else
        uv_tcp_init(g_loop, &client->tcp);
    if (uv_accept(server, &client->stream) < 0) {
        uv_close((uv_handle_t *)&client->stream, on_closed);
        return;
    }
    if (!g_is_unix)
        uv_tcp_nodelay(&client->tcp, 1);
    uv_read_start(&client->stream, on_alloc, on_read);
}

static void on_signal(uv_signal_t *handle, int signum)
{
    (void)signum;
    uv_stop(handle->loop);
}

int main(int argc, char **argv)
{
    uv_signal_t sigterm, sigint;
    char name[NI_MAXHOST + NI_MAXSERV + 8];
    const char *unix_path;
    int fd, rc;

    if (argc != 2) {
        fprintf(stderr, "usage: %s ADDR\n", argv[0]);
        return 2;
    }
    bench_raise_nofile();
    signal(SIGPIPE, SIG_IGN); /* libuv writes with plain write(2) */
    g_loop = uv_default_loop();
    fd = bench_listen(argv[1], 1, name, sizeof name);
    if (fd < 0)
        return 1;
    unix_path = bench_unix_path(argv[1]);
    g_is_unix = strncmp(argv[1], "unix:", 5) == 0;
    if (g_is_unix) {
        uv_pipe_init(g_loop, &g_server.pipe, 0);
        rc = uv_pipe_open(&g_server.pipe, fd);
    } else {
        uv_tcp_init(g_loop, &g_server.tcp);
        rc = uv_tcp_open(&g_server.tcp, fd);
    }
    if (rc == 0)
        rc = uv_listen(&g_server.stream, 511, on_connection);
    if (rc < 0) {
        fprintf(stderr, "echo_libuv: %s\n", uv_strerror(rc));
        return 1;
    }
    uv_signal_init(g_loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(g_loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);

    printf("listening on %s\n", name);
    fflush(stdout);
    uv_run(g_loop, UV_RUN_DEFAULT);
    if (unix_path)
        unlink(unix_path);
    return 0;
}
