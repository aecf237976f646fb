/*
 * Standard input read on the loop's own thread, for `connect` on streams
 * and on datagrams.  A terminal, pipe or socket is watched (gn_watch_start)
 * and read once per readiness, so the read never blocks; a file or
 * /dev/null cannot be watched (always ready) and is read a chunk per loop
 * iteration by a task that posts itself again, so the socket is served
 * in between.  The caller pauses the reading while its output is full
 * and resumes it when it drains.
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"

static struct {
    gn_loop *loop;
    cli_stdin_fn fn;
    void *arg;
    gn_watch *watch; /* NULL when stdin is a file, read by tasks */
    bool paused;
    bool done; /* ended, or stopped */
} in;

static void read_once(void)
{
    static char buf[65536];
    ssize_t n;

    do {
        n = read(STDIN_FILENO, buf, sizeof(buf));
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN) /* a non-blocking stdin someone else read */
        return;
    if (n <= 0) {
        cli_stdin_stop();
        in.fn(buf, 0, in.arg);
        return;
    }
    in.fn(buf, (size_t)n, in.arg);
}

static void stdin_readable(gn_watch *w, gn_socket fd, unsigned events, void *arg)
{
    (void)w;
    (void)fd;
    (void)events;
    (void)arg;
    read_once();
}

static void read_file_task(gn_loop *loop, void *arg)
{
    (void)arg;
    if (in.done || in.paused)
        return;
    read_once();
    if (!in.done && !in.paused && gn_loop_post(loop, read_file_task, NULL) < 0)
        cli_stdin_stop();
}

int cli_stdin_start(gn_loop *loop, cli_stdin_fn fn, void *arg)
{
    int rc;

    in.loop = loop;
    in.fn = fn;
    in.arg = arg;
    in.paused = false;
    in.done = false;
    rc = gn_watch_start(loop, STDIN_FILENO, GN_WATCH_READABLE, stdin_readable, NULL, &in.watch);
    if (rc == GN_ENOTSUP)
        rc = gn_loop_post(loop, read_file_task, NULL);
    if (rc == GN_EINVAL) { /* stdin is closed: at its end already */
        in.done = true;
        fn(NULL, 0, arg);
        return 0;
    }
    if (rc < 0)
        in.done = true;
    return rc;
}

void cli_stdin_pause(void)
{
    if (in.done || in.paused)
        return;
    in.paused = true;
    if (in.watch)
        gn_watch_pause(in.watch);
}

void cli_stdin_resume(void)
{
    if (in.done || !in.paused)
        return;
    in.paused = false;
    if (in.watch)
        gn_watch_resume(in.watch);
    else if (gn_loop_post(in.loop, read_file_task, NULL) < 0)
        cli_stdin_stop();
}

void cli_stdin_stop(void)
{
    in.done = true;
    if (in.watch)
        gn_watch_close(in.watch);
    in.watch = NULL;
}
