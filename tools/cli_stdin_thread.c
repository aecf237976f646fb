/*
 * Standard input read by a thread of its own, for `connect` on streams
 * and on datagrams where stdin cannot be watched by the loop: on Windows
 * WSAPoll takes sockets only, not a console, pipe or file (cli_stdin.c
 * watches it on POSIX systems).  The thread reads a chunk with a blocking
 * read and hands it to the loop's thread with gn_loop_post; it reads the
 * next only once the loop has taken that one and is not paused, so a
 * slow peer slows the reading as on POSIX.  After cli_stdin_stop the
 * thread posts nothing more; one blocked in a read of a console that
 * never ends is left to the process exit.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"

static struct {
    pthread_mutex_t lock; /* guards the flags below between the two threads */
    pthread_cond_t wanted_cv;
    gn_loop *loop;
    cli_stdin_fn fn;
    void *arg;
    bool paused;    /* the loop asked for no more for now */
    bool in_flight; /* a chunk is posted and not yet taken */
    bool done;      /* ended or stopped: nothing more is posted */
    ssize_t len;    /* the chunk's length, 0 at the end */
    char buf[65536];
} in = {.lock = PTHREAD_MUTEX_INITIALIZER, .wanted_cv = PTHREAD_COND_INITIALIZER};

/* On the loop's thread: the chunk the reader posted. */
static void deliver(gn_loop *loop, void *arg)
{
    bool stopped;
    ssize_t len;

    (void)loop;
    (void)arg;
    pthread_mutex_lock(&in.lock);
    stopped = in.done;
    len = in.len;
    pthread_mutex_unlock(&in.lock);
    if (stopped)
        return;
    if (len == 0) {
        cli_stdin_stop();
        in.fn(in.buf, 0, in.arg);
        return;
    }
    in.fn(in.buf, (size_t)len, in.arg);
    pthread_mutex_lock(&in.lock);
    in.in_flight = false; /* the buffer is the reader's again */
    pthread_cond_signal(&in.wanted_cv);
    pthread_mutex_unlock(&in.lock);
}

/* Wait until the loop wants a chunk; false once stopped. */
static bool wait_wanted(void)
{
    bool go;

    pthread_mutex_lock(&in.lock);
    while (!in.done && (in.paused || in.in_flight))
        pthread_cond_wait(&in.wanted_cv, &in.lock);
    go = !in.done;
    pthread_mutex_unlock(&in.lock);
    return go;
}

static void *reader(void *arg)
{
    ssize_t n;
    bool posted;

    (void)arg;
    do {
        if (!wait_wanted())
            break;
        do {
            n = read(STDIN_FILENO, in.buf, sizeof(in.buf));
        } while (n < 0 && errno == EINTR);
        pthread_mutex_lock(&in.lock);
        posted = !in.done;
        if (posted) {
            in.len = n < 0 ? 0 : n; /* a failed read ends the input, as on POSIX */
            in.in_flight = true;
            posted = gn_loop_post(in.loop, deliver, NULL) == 0;
        }
        pthread_mutex_unlock(&in.lock);
    } while (posted && n > 0);
    return NULL;
}

int cli_stdin_start(gn_loop *loop, cli_stdin_fn fn, void *arg)
{
    pthread_t thread;

    in.loop = loop;
    in.fn = fn;
    in.arg = arg;
    in.paused = in.in_flight = in.done = false;
    if (pthread_create(&thread, NULL, reader, NULL) != 0) {
        in.done = true;
        return GN_ENOMEM;
    }
    pthread_detach(thread);
    return 0;
}

void cli_stdin_pause(void)
{
    pthread_mutex_lock(&in.lock);
    in.paused = true;
    pthread_mutex_unlock(&in.lock);
}

void cli_stdin_resume(void)
{
    pthread_mutex_lock(&in.lock);
    in.paused = false;
    pthread_cond_signal(&in.wanted_cv);
    pthread_mutex_unlock(&in.lock);
}

void cli_stdin_stop(void)
{
    pthread_mutex_lock(&in.lock);
    in.done = true;
    pthread_cond_signal(&in.wanted_cv);
    pthread_mutex_unlock(&in.lock);
}
