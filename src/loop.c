/*
 * The event loop: one per thread.  Each iteration runs posted tasks,
 * waits for readiness (or the next timer), dispatches, runs due timers,
 * then runs deferred work such as freeing closed connections, which is
 * kept until after the batch so no event in it points at freed memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "faults.h"
#include "idle.h"
#include "loop.h"
#include "wakeup.h"

static void wakeup_drain(gn_loop *loop, struct gn__io *io, unsigned events)
{
    (void)loop;
    (void)events;
    gn__wakeup_drain(io->fd);
}

static void wakeup_signal(gn_loop *loop)
{
    gn__wakeup_signal(loop->wakeup.fd);
}

/* Backends in order of preference; a loop takes the first that starts
 * here, beginning at the one asked for.  io_uring is refused in many
 * ways (an old kernel, the kernel.io_uring_disabled sysctl, a container's
 * seccomp filter, a missing feature), and epoll is missing outside Linux. */
static const struct gn__backend *const backends[] = {
#ifdef GN_HAVE_URING
    &gn__backend_uring,
#endif
#ifdef GN_HAVE_EPOLL
    &gn__backend_epoll,
#endif
    &gn__backend_poll,
};
#define NBACKENDS (sizeof(backends) / sizeof(backends[0]))

/* The index in backends of the one named, or of the next one where it
 * was not built ("uring" without liburing); -1 for an unknown name. */
static int backend_index(const char *name)
{
    static const char *const names[] = {"uring", "epoll", "poll"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i]) != 0)
            continue;
        for (size_t b = 0; b < NBACKENDS; b++)
            if (strcmp(backends[b]->name, names[i]) == 0)
                return (int)b;
        return 0; /* not built: the best that was */
    }
    return -1;
}

/* The best, unless GN_BACKEND names another (tests run suites over each). */
static int default_backend(void)
{
    const char *name = getenv("GN_BACKEND");
    int i = name ? backend_index(name) : -1;

    return i < 0 ? 0 : i;
}

/* Whether a failed init means "not here" rather than a real failure.
 * io_uring fails in too many ways to sort (ENOSYS, EPERM, EACCES, ENOMEM
 * from RLIMIT_MEMLOCK before Linux 5.12, EINVAL): any failure is taken
 * as its absence.  epoll's absence is ENOSYS. */
static bool backend_absent(const struct gn__backend *backend, int rc)
{
    return strcmp(backend->name, "uring") == 0 || rc == GN_ESYS || rc == GN_EFAMILY;
}

/* Start the backend at index first, or the next one that starts. */
static int backend_init(gn_loop *loop, size_t first)
{
    int rc = GN_ESYS;

    for (size_t i = first; i < NBACKENDS; i++) {
        loop->backend = backends[i];
        loop->backend_fd = -1;
        loop->backend_events = NULL;
        rc = loop->backend->init(loop);
        if (rc == 0 || !backend_absent(loop->backend, rc))
            break;
    }
    return rc;
}

static int loop_init(gn_loop *loop, size_t backend)
{
    int rc;

    loop->now_ms = gn__clock_ms();
    atomic_init(&loop->stop, false);
    atomic_init(&loop->tasks_pending, 0);
    gn__list_init(&loop->tasks);
    gn__list_init(&loop->deferred);
    gn__list_init(&loop->handles);
    gn__list_init(&loop->watches);
    rc = gn__timers_init(&loop->timers);
    if (rc < 0)
        return rc;
    if (pthread_mutex_init(&loop->tasks_lock, NULL) != 0)
        goto out_free_timers;
    loop->wakeup.fd = rc = gn__wakeup_open();
    if (rc < 0)
        goto out_destroy_lock;
    loop->wakeup.cb = wakeup_drain;
    rc = backend_init(loop, backend);
    if (rc < 0)
        goto out_close_wakeup;
    rc = gn__io_watch(loop, &loop->wakeup, GN__READ);
    if (rc < 0)
        goto out_destroy_backend;
    return 0;
out_destroy_backend:
    loop->backend->destroy(loop);
out_close_wakeup:
    gn__wakeup_close(loop->wakeup.fd);
out_destroy_lock:
    pthread_mutex_destroy(&loop->tasks_lock);
out_free_timers:
    gn__timers_free(loop);
    return rc < 0 ? rc : GN_ESYS;
}

static int loop_new(gn_loop **out, size_t backend)
{
    gn_loop *loop;
    int rc;

    if (!out)
        return GN_EINVAL;
    rc = gn__faults_env_check(); /* a test without its faults would pass for nothing */
    if (rc < 0)
        return rc;
    loop = calloc(1, sizeof(*loop));
    if (!loop)
        return GN_ENOMEM;
    rc = loop_init(loop, backend);
    if (rc < 0) {
        free(loop);
        return rc;
    }
    *out = loop;
    return 0;
}

int gn_loop_new(gn_loop **out)
{
    return loop_new(out, (size_t)default_backend());
}

int gn_loop_new_backend(gn_loop **out, const char *backend)
{
    int i = backend ? backend_index(backend) : default_backend();

    if (i < 0)
        return GN_EINVAL;
    return loop_new(out, (size_t)i);
}

/* poll(2) needs no descriptor of its own, and a dial watches a handful. */
int gn__loop_new_private(gn_loop **out)
{
    return loop_new(out, NBACKENDS - 1);
}

int gn__io_watch(gn_loop *loop, struct gn__io *io, unsigned events)
{
    int rc;

    if (io->events == events)
        return 0;
    rc = loop->backend->watch(loop, io, io->events, events);
    if (rc == 0)
        io->events = events;
    return rc;
}

void gn__loop_handle_add(gn_loop *loop, struct gn__handle *h, bool service)
{
    if (service)
        gn__list_push_back(&loop->handles, &h->node);
    else
        gn__list_push_front(&loop->handles, &h->node);
}

void gn__loop_defer(gn_loop *loop, struct gn__deferred *d)
{
    gn__list_push_back(&loop->deferred, &d->node);
}

/* Deferred work may defer more (a close that frees a server); run until
 * the list is empty. */
static inline void run_deferred(gn_loop *loop)
{
    struct gn__list *node;

    while ((node = gn__list_pop_front(&loop->deferred))) {
        struct gn__deferred *d = gn__container_of(node, struct gn__deferred, node);
        d->fn(loop, d);
    }
}

static void take_tasks(gn_loop *loop, struct gn__list *out)
{
    gn__list_init(out);
    pthread_mutex_lock(&loop->tasks_lock);
    gn__list_splice(out, &loop->tasks);
    pthread_mutex_unlock(&loop->tasks_lock);
}

/* Tasks posted while these run wait for the next iteration, so a task
 * that posts itself cannot starve I/O. */
static void run_tasks(gn_loop *loop)
{
    struct gn__list batch, *node;

    take_tasks(loop, &batch);
    while ((node = gn__list_pop_front(&batch))) {
        struct gn__task *task = gn__container_of(node, struct gn__task, node);
        task->fn(loop, task->arg);
        free(task);
        atomic_fetch_sub(&loop->tasks_pending, 1);
    }
}

int gn_loop_post(gn_loop *loop, gn_task_fn fn, void *arg)
{
    struct gn__task *task;

    if (!loop || !fn)
        return GN_EINVAL;
    task = malloc(sizeof(*task));
    if (!task)
        return GN_ENOMEM;
    *task = (struct gn__task){.fn = fn, .arg = arg};
    atomic_fetch_add(&loop->tasks_pending, 1);
    pthread_mutex_lock(&loop->tasks_lock);
    gn__list_push_back(&loop->tasks, &task->node);
    pthread_mutex_unlock(&loop->tasks_lock);
    wakeup_signal(loop);
    return 0;
}

/* Whether another thread has posted: one atomic load spares the lock
 * on every iteration.  A post seen late is not lost: it wakes the loop. */
static bool tasks_posted(gn_loop *loop)
{
    return atomic_load_explicit(&loop->tasks_pending, memory_order_acquire) > 0;
}

static bool loop_alive(gn_loop *loop)
{
    return loop->refs > 0 || atomic_load(&loop->tasks_pending) > 0 ||
           !gn__list_empty(&loop->deferred);
}

static int loop_iterate(gn_loop *loop)
{
    int timeout, rc;

    timeout = gn__timers_timeout(loop);
    if (tasks_posted(loop) || !gn__list_empty(&loop->deferred))
        timeout = 0;
    rc = loop->backend->wait(loop, timeout);
    if (rc < 0)
        return rc;
    loop->now_ms = gn__clock_ms();
    run_deferred(loop);
    if (gn__timers_due(loop)) {
        gn__timers_run(loop);
        run_deferred(loop);
    }
    if (tasks_posted(loop)) {
        run_tasks(loop);
        run_deferred(loop);
    }
    return 0;
}

int gn_loop_run(gn_loop *loop)
{
    int rc = 0;

    if (!loop || loop->running)
        return GN_EINVAL;
    loop->running = true;
    loop->now_ms = gn__clock_ms();
    run_tasks(loop);
    run_deferred(loop);
    while (rc == 0 && loop_alive(loop) && !atomic_load(&loop->stop))
        rc = loop_iterate(loop);
    /* Cleared on the way out, not on the way in: a stop that raced ahead
     * of this run (another thread, a signal) still ends it. */
    atomic_store(&loop->stop, false);
    loop->running = false;
    return rc;
}

void gn_loop_stop(gn_loop *loop)
{
    if (!loop)
        return;
    atomic_store(&loop->stop, true);
    wakeup_signal(loop);
}

uint64_t gn_loop_now(const gn_loop *loop)
{
    return loop ? loop->now_ms : 0;
}

const char *gn_loop_backend(const gn_loop *loop)
{
    return loop ? loop->backend->name : "none";
}

static void free_tasks(gn_loop *loop)
{
    struct gn__list batch, *node;

    take_tasks(loop, &batch);
    while ((node = gn__list_pop_front(&batch)))
        free(gn__container_of(node, struct gn__task, node));
}

/* Close every handle, users' first: each close may defer its freeing, and
 * deferred work (an on_close) may open or close more. */
static void close_handles(gn_loop *loop)
{
    struct gn__list *node;

    while (!gn__list_empty(&loop->handles) || !gn__list_empty(&loop->deferred)) {
        while ((node = gn__list_pop_front(&loop->handles))) {
            struct gn__handle *h = gn__container_of(node, struct gn__handle, node);
            (h->close)(h);
        }
        run_deferred(loop);
    }
}

void gn_loop_free(gn_loop *loop)
{
    if (!loop || loop->running)
        return;
    close_handles(loop);
    gn__pool_free(&loop->conn_pool);
    gn__pool_free(&loop->in_pool);
    gn__pool_free(&loop->outq_pool);
    gn__pool_free(&loop->chunk_pool);
    gn__idle_free(loop);
    gn__timers_free(loop);
    free_tasks(loop);
    gn__io_watch(loop, &loop->wakeup, 0);
    gn__wakeup_close(loop->wakeup.fd);
    loop->backend->destroy(loop);
    pthread_mutex_destroy(&loop->tasks_lock);
    free(loop->read_buf);
    free(loop);
}
