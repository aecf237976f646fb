/*
 * Descriptor watchers: a descriptor the user owns (standard input, a
 * pipe, another library's socket), reported readable or writable through
 * the loop's backend like the loop's own descriptors.
 *
 * A watcher is a loop handle, so gn_loop_free closes it.  Closing stops
 * the watching at once and frees after the batch of events: the backend
 * may still hold the io in the batch it is dispatching, and a closed io
 * (fd -1) is skipped by gn__io_dispatch.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "loop.h"

#define EVENTS_ALL (GN_WATCH_READABLE | GN_WATCH_WRITABLE)

struct gn_watch {
    struct gn__io io;
    struct gn__handle handle;     /* closed by gn_loop_free */
    struct gn__list node;         /* in loop->watches, to find a fd again */
    struct gn__deferred free_job; /* after the batch that closed it */
    gn_loop *loop;
    gn_watch_fn fn;
    void *arg;
    unsigned events; /* GN_WATCH_READABLE | GN_WATCH_WRITABLE wanted */
    bool paused;
    bool closed;
};

static unsigned to_io_events(unsigned events)
{
    return (events & GN_WATCH_READABLE ? GN__READ : 0u) |
           (events & GN_WATCH_WRITABLE ? GN__WRITE : 0u);
}

/* An error or hang-up is told as every event watched: the user's read or
 * write is what finds out which (end of file, EPIPE). */
static unsigned to_user_events(unsigned ready, unsigned watched)
{
    if (ready & GN__ERROR)
        return watched;
    return ((ready & GN__READ ? GN_WATCH_READABLE : 0u) |
            (ready & GN__WRITE ? GN_WATCH_WRITABLE : 0u)) &
           watched;
}

static void watch_ready(gn_loop *loop, struct gn__io *io, unsigned ready)
{
    gn_watch *w = gn__container_of(io, gn_watch, io);
    unsigned events = to_user_events(ready, w->events);

    (void)loop;
    if (events && !w->paused && !w->closed)
        w->fn(w, io->fd, events, w->arg);
}

static bool valid_events(unsigned events)
{
    return events != 0 && (events & ~EVENTS_ALL) == 0;
}

/* A regular file or directory is always ready, and epoll refuses it
 * (EPERM) where poll(2) would report it ready forever: refused on every
 * backend alike, so a program does not work on one and spin on another. */
static int check_pollable(int fd)
{
    struct stat st;

    if (fcntl(fd, F_GETFD) < 0)
        return GN_EINVAL;
    if (fstat(fd, &st) < 0)
        return gn_error_from_errno(errno);
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
        return GN_ENOTSUP;
    return 0;
}

static gn_watch *find_watch(gn_loop *loop, int fd)
{
    struct gn__list *node, *next;

    gn__list_foreach_safe(node, next, &loop->watches)
    {
        gn_watch *w = gn__container_of(node, gn_watch, node);
        if (w->io.fd == fd)
            return w;
    }
    return NULL;
}

/* What the backend watches now: nothing while paused.  The loop is kept
 * running by a watcher that watches something. */
static int apply(gn_watch *w, unsigned events, bool paused)
{
    unsigned io_events = paused ? 0u : to_io_events(events);
    bool was_active = w->io.events != 0;
    int rc = gn__io_watch(w->loop, &w->io, io_events);

    if (rc < 0)
        return rc == GN_EACCES ? GN_ENOTSUP : rc; /* epoll: EPERM, not pollable */
    if (was_active && !io_events)
        gn__loop_unref(w->loop);
    else if (!was_active && io_events)
        gn__loop_ref(w->loop);
    w->events = events;
    w->paused = paused;
    return 0;
}

static void watch_free(gn_loop *loop, struct gn__deferred *d)
{
    (void)loop;
    free(gn__container_of(d, gn_watch, free_job));
}

static void watch_close_handle(struct gn__handle *h)
{
    gn_watch_close(gn__container_of(h, gn_watch, handle));
}

int gn_watch_start(gn_loop *loop, gn_socket sock, unsigned events, gn_watch_fn fn, void *arg,
                   gn_watch **out)
{
    int fd = (int)sock; /* posix_win.h: a SOCKET fits an int */
    gn_watch *w;
    int rc;

    if (!loop || !fn || !out || fd < 0 || !valid_events(events))
        return GN_EINVAL;
    rc = check_pollable(fd);
    if (rc < 0)
        return rc;
    if (find_watch(loop, fd))
        return GN_EEXIST;
    w = calloc(1, sizeof(*w));
    if (!w)
        return GN_ENOMEM;
    *w = (gn_watch){.io = {.cb = watch_ready, .fd = fd}, .loop = loop, .fn = fn, .arg = arg};
    rc = apply(w, events, false);
    if (rc < 0) {
        free(w);
        return rc;
    }
    w->free_job.fn = watch_free;
    w->handle.close = watch_close_handle;
    gn__loop_handle_add(loop, &w->handle, false);
    gn__list_push_back(&loop->watches, &w->node);
    *out = w;
    return 0;
}

int gn_watch_set_events(gn_watch *w, unsigned events)
{
    if (!w || w->closed || !valid_events(events))
        return GN_EINVAL;
    return apply(w, events, w->paused);
}

int gn_watch_pause(gn_watch *w)
{
    if (!w || w->closed)
        return GN_EINVAL;
    return apply(w, w->events, true);
}

int gn_watch_resume(gn_watch *w)
{
    if (!w || w->closed)
        return GN_EINVAL;
    return apply(w, w->events, false);
}

bool gn_watch_is_paused(const gn_watch *w)
{
    return w && w->paused;
}

int gn_watch_close(gn_watch *w)
{
    if (!w || w->closed)
        return GN_EINVAL;
    /* Removing fails only when the descriptor was closed first (epoll:
     * EBADF), which dropped it from the backend anyway. */
    if (apply(w, w->events, true) < 0 && w->io.events) {
        w->io.events = 0;
        gn__loop_unref(w->loop);
    }
    w->closed = true;
    w->io.fd = -1; /* skipped if still in the batch being dispatched */
    gn__list_remove(&w->node);
    gn__loop_handle_remove(&w->handle);
    gn__loop_defer(w->loop, &w->free_job);
    return 0;
}
