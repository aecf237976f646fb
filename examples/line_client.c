/*
 * line_client - connect to ADDR, send stdin, print what the server sends
 * back; at the end of stdin half-close (the server sees EOF) and exit
 * once the server closes.
 *
 * Shows gn_connect and a descriptor watcher: stdin (a terminal or a pipe)
 * is watched by the loop, on the loop's one thread, and paused while the
 * connection's output is full, resumed in on_drain, so a slow server
 * slows the reading instead of filling memory.  A file on stdin cannot be
 * watched (it is always ready): it is read a chunk per loop iteration by
 * a task that posts itself again.  gn_shutdown is the half-close.
 *
 * Try it, with echo_server or chat_server running:
 *     printf 'one\ntwo\n' | build/examples/line_client 127.0.0.1:7000
 */
#include <errno.h>
#include <gnezdo.h>
#include <stdio.h>
#include <unistd.h>

#define QUEUE_FULL (1u << 20) /* output bytes above which stdin waits */

static struct {
    gn_loop *loop;
    gn_conn *conn;
    gn_watch *stdin_watch; /* NULL when stdin is a file, read by tasks */
    bool paused;           /* until on_drain */
    bool done;             /* end of stdin, or the connection closed */
    int status;
} cl;

static void stop_reading(void)
{
    cl.done = true;
    if (cl.stdin_watch)
        gn_watch_close(cl.stdin_watch); /* stdin itself stays open */
    cl.stdin_watch = NULL;
}

/* One read of stdin: send it, or half-close at its end. */
static void read_stdin(void)
{
    char buf[16384];
    gn_conn_stats st = {0};
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return; /* ready again later */
    if (n <= 0) {
        stop_reading();
        gn_shutdown(cl.conn); /* FIN once the queue is flushed; keep reading */
        return;
    }
    gn_send(cl.conn, buf, (size_t)n);
    gn_conn_get_stats(cl.conn, &st);
    if (st.queued >= QUEUE_FULL) {
        cl.paused = true;
        if (cl.stdin_watch)
            gn_watch_pause(cl.stdin_watch);
    }
}

static void on_stdin(gn_watch *w, int fd, unsigned events, void *arg)
{
    (void)w;
    (void)fd;
    (void)events;
    (void)arg;
    read_stdin();
}

static void read_file_task(gn_loop *loop, void *arg)
{
    (void)arg;
    if (cl.done || cl.paused)
        return;
    read_stdin();
    if (!cl.done && !cl.paused)
        gn_loop_post(loop, read_file_task, NULL); /* after the socket's turn */
}

static void on_connect(gn_conn *conn)
{
    int rc =
        gn_watch_start(cl.loop, STDIN_FILENO, GN_WATCH_READABLE, on_stdin, NULL, &cl.stdin_watch);

    if (rc == GN_ENOTSUP) /* a file */
        rc = gn_loop_post(cl.loop, read_file_task, NULL);
    if (rc < 0) {
        fprintf(stderr, "line_client: cannot read stdin: %s\n", gn_strerror(rc));
        cl.status = 1;
        gn_close(conn);
    }
}

static size_t on_data(gn_conn *conn, const char *data, size_t len)
{
    (void)conn;
    fwrite(data, 1, len, stdout);
    fflush(stdout);
    return len;
}

static void on_drain(gn_conn *conn)
{
    (void)conn;
    if (cl.done || !cl.paused)
        return;
    cl.paused = false;
    if (cl.stdin_watch)
        gn_watch_resume(cl.stdin_watch);
    else
        gn_loop_post(cl.loop, read_file_task, NULL);
}

static void on_error(gn_conn *conn, int code, const char *message)
{
    (void)conn;
    (void)code;
    fprintf(stderr, "line_client: %s\n", message);
}

static void on_close(gn_conn *conn, int reason)
{
    (void)conn;
    stop_reading(); /* a watcher would keep the loop running */
    if (reason < 0)
        cl.status = 1;
}

int main(int argc, char **argv)
{
    /* on_end stays NULL: when the server closes its side, so do we. */
    const gn_handlers h = {.on_connect = on_connect,
                           .on_data = on_data,
                           .on_drain = on_drain,
                           .on_error = on_error,
                           .on_close = on_close};
    char err[GN_ERRBUF_SIZE];
    int rc;

    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: line_client ADDR, e.g. 'line_client 127.0.0.1:7000'%s%s%s\n",
                argc > 1 ? ", not '" : "", argc > 1 ? argv[argc - 1] : "", argc > 1 ? "'" : "");
        return 2;
    }
    if (gn_loop_new(&cl.loop) < 0) {
        fprintf(stderr, "line_client: cannot create an event loop\n");
        return 1;
    }
    rc = gn_connect(cl.loop, argv[1], &h, NULL, &cl.conn, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "line_client: %s\n", err);
        gn_loop_free(cl.loop);
        return rc == GN_EBADADDR || rc == GN_ENOSERVICE || rc == GN_ETOOLONG ? 2 : 1;
    }
    gn_loop_run(cl.loop); /* until the connection closes */
    gn_loop_free(cl.loop);
    return cl.status;
}
