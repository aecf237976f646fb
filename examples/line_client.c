/*
 * line_client - connect to ADDR, send each line of stdin, print what the
 * server sends back; at the end of stdin half-close (the server sees EOF)
 * and exit once the server closes.
 *
 * Shows gn_connect and the way other threads talk to a loop: stdin is
 * read by a thread (a terminal, pipe or file cannot be watched by the
 * loop alike), which hands each line to the loop with gn_loop_post and
 * waits until the loop has taken it, so a slow server slows the reader
 * instead of filling memory.  gn_shutdown is the half-close.
 *
 * Try it, with echo_server or chat_server running:
 *     printf 'one\ntwo\n' | build/examples/line_client 127.0.0.1:7000
 */
#define _GNU_SOURCE /* getline */
#include <gnezdo.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define QUEUE_FULL (1u << 20) /* output bytes above which the reader waits */

/* Shared by the reader thread and the loop's thread.  While busy, line
 * and len belong to the loop; closed says the connection is gone, so the
 * loop may be freed at any moment and must not be posted to. */
static struct {
    gn_loop *loop;
    gn_conn *conn;
    pthread_mutex_t lock;
    pthread_cond_t taken;
    const char *line; /* NULL: end of stdin */
    size_t len;
    bool busy, closed;
    bool wait_drain; /* loop thread only: on_drain releases the reader */
    int status;
} cl = {.lock = PTHREAD_MUTEX_INITIALIZER, .taken = PTHREAD_COND_INITIALIZER};

static void release_reader(void)
{
    pthread_mutex_lock(&cl.lock);
    cl.busy = false;
    pthread_cond_signal(&cl.taken);
    pthread_mutex_unlock(&cl.lock);
}

/* Loop thread: send the line the reader handed over, or half-close. */
static void deliver(gn_loop *loop, void *arg)
{
    gn_conn_stats st = {0};

    (void)loop;
    (void)arg;
    if (cl.closed)
        return; /* on_close has released the reader already */
    if (!cl.line) {
        gn_shutdown(cl.conn); /* FIN once the queue is flushed; keep reading */
        release_reader();
        return;
    }
    gn_send(cl.conn, cl.line, cl.len);
    gn_conn_get_stats(cl.conn, &st);
    if (st.queued < QUEUE_FULL)
        release_reader();
    else
        cl.wait_drain = true;
}

/* Reader thread: hand line (NULL at the end) to the loop and wait until
 * it is taken.  False when the connection is gone. */
static bool hand_over(const char *line, size_t len)
{
    bool ok;

    pthread_mutex_lock(&cl.lock);
    ok = !cl.closed;
    if (ok) {
        cl.line = line;
        cl.len = len;
        cl.busy = true;
        ok = gn_loop_post(cl.loop, deliver, NULL) == 0;
        cl.busy = ok;
    }
    while (cl.busy)
        pthread_cond_wait(&cl.taken, &cl.lock);
    ok = ok && !cl.closed;
    pthread_mutex_unlock(&cl.lock);
    return ok;
}

static void *read_stdin(void *arg)
{
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;

    (void)arg;
    while ((n = getline(&buf, &cap, stdin)) > 0)
        if (!hand_over(buf, (size_t)n))
            break;
    if (n <= 0)
        hand_over(NULL, 0);
    free(buf);
    return NULL;
}

static void on_connect(gn_conn *conn)
{
    pthread_t thread;

    if (pthread_create(&thread, NULL, read_stdin, NULL) != 0) {
        fprintf(stderr, "line_client: cannot start the stdin reader\n");
        cl.status = 1;
        gn_close(conn);
        return;
    }
    pthread_detach(thread);
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
    if (cl.wait_drain) {
        cl.wait_drain = false;
        release_reader();
    }
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
    pthread_mutex_lock(&cl.lock);
    cl.closed = true;
    cl.busy = false;
    pthread_cond_signal(&cl.taken);
    pthread_mutex_unlock(&cl.lock);
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
