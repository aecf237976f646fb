/*
 * The loop's insides, shared by the loop, its backends, timers, the
 * resolver and the connection core.  Never installed.
 */
#ifndef GN_LOOP_H
#define GN_LOOP_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "internal.h"
#include "list.h"
#include "pool.h"

/* Readiness events a backend reports and watches. */
#define GN__READ  1u
#define GN__WRITE 2u
#define GN__ERROR 4u /* error or hang-up: the callback finds out which */
/* Completions a completion backend (io_uring) reports instead, see
 * struct gn__backend: the result is in loop->done. */
#define GN__RECV   8u  /* bytes received into a loop-owned buffer */
#define GN__ACCEPT 16u /* a client accepted on a listening socket */

struct gn__io;
typedef void (*gn__io_fn)(gn_loop *loop, struct gn__io *io, unsigned events);

/* A descriptor the loop watches.  Embedded in its owner (conn, server,
 * the loop's own eventfd); the owner must outlive the batch of events
 * it is in, which is why connections are freed only after the batch. */
struct gn__io {
    gn__io_fn cb;
    int fd;
    unsigned events : 8; /* what the backend watches now */
    unsigned slot : 24;  /* the poll backend's index of this io */
};

/* A backend: one file, one const table.  A readiness backend only
 * reports; the loop owns descriptors, timers and callbacks. */
struct gn__backend {
    const char *name;
    int (*init)(gn_loop *loop);
    void (*destroy)(gn_loop *loop);
    int (*watch)(gn_loop *loop, struct gn__io *io, unsigned old_ev, unsigned new_ev);
    /* Wait up to timeout_ms (-1: no limit) and call gn__io_dispatch for
     * each ready descriptor.  Returns how many, 0 on EINTR, or -code. */
    int (*wait)(gn_loop *loop, int timeout_ms);

    /* Completion entries, NULL in a readiness backend; the connection
     * core and the server use them when present (plain sockets only: TLS
     * and user transports read through readiness and their own calls).
     *
     * recv_start: receive on io->fd, again and again, into buffers the
     * loop owns, until recv_stop, the end of the stream or an error.  Each
     * completion calls io->cb(loop, io, GN__RECV) with loop->done.res the
     * byte count (0: end of stream, negative: a GN_E code; either ends
     * the receiving) and loop->done.data the bytes, valid only during the
     * call.  recv_stop: no GN__RECV for io after it returns, even for
     * receives already completed; safe when none runs; the descriptor
     * may be closed right after it.
     * accept_start/accept_stop: the same for accepting on a listening
     * io: GN__ACCEPT with loop->done.res the new non-blocking, close-on-
     * exec descriptor or a negative GN_E code (EMFILE and the like end
     * the accepting: start again later). */
    int (*recv_start)(gn_loop *loop, struct gn__io *io);
    void (*recv_stop)(gn_loop *loop, struct gn__io *io);
    /* recv_pause: stop receiving for now, keeping io: bytes the kernel
     * had already received still come as GN__RECV (nothing received is
     * lost), then nothing until recv_start; recv_stop ends it for good.
     * A paused io is still the backend's: recv_stop it before closing its
     * descriptor, as a receiving one. */
    void (*recv_pause)(gn_loop *loop, struct gn__io *io);
    int (*accept_start)(gn_loop *loop, struct gn__io *io);
    void (*accept_stop)(gn_loop *loop, struct gn__io *io);
};

/* The result of the completion being dispatched (see struct gn__backend). */
struct gn__done {
    int res;
    const char *data;
};

extern const struct gn__backend gn__backend_epoll;
extern const struct gn__backend gn__backend_poll;
extern const struct gn__backend gn__backend_uring; /* built with GN_HAVE_URING */

struct gn__timer_heap {
    struct gn__timer *slots; /* by slot index; ids carry slot + generation */
    uint32_t nslots;
    uint32_t free_head; /* free-slot list, UINT32_MAX when empty */
    uint32_t *heap;     /* slot indices, a binary min-heap */
    uint32_t nheap;
    uint64_t seq;      /* start order, to break ties */
    uint64_t heap_due; /* the first timer's due time, while nheap > 0 */
};

struct gn__task {
    struct gn__list node;
    gn_task_fn fn;
    void *arg;
};

/* Something to do after the current batch of events: free a closed
 * connection, run a deferred on_close.  Intrusive, owned by its object. */
struct gn__deferred {
    struct gn__list node;
    void (*fn)(gn_loop *loop, struct gn__deferred *d);
};

/* Something gn_loop_free must close: a server, a client connection, a
 * datagram socket, the resolver.  The loop knows handles, not their
 * kinds (libuv's handle queue): close ends the handle as abruptly as it
 * must, and may leave freeing to deferred work, which the loop runs
 * before it frees itself. */
struct gn__handle {
    struct gn__list node;
    void (*close)(struct gn__handle *h);
};

struct gn_loop {
    const struct gn__backend *backend;
    int backend_fd;
    void *backend_events; /* backend's event array */
    uint64_t now_ms;
    size_t refs; /* servers, conns, timers, resolutions, tasks */
    bool running;
    atomic_bool stop;

    struct gn__done done; /* of the completion being dispatched */
    struct gn__timer_heap timers;
    struct gn__idle_queue **idle_queues; /* idle.c's, by index */
    size_t idle_queues_len, idle_queues_cap;

    pthread_mutex_t tasks_lock;
    struct gn__list tasks;
    atomic_size_t tasks_pending;
    struct gn__io wakeup; /* eventfd: posts and stops wake the loop */

    struct gn__list deferred;

    char *read_buf;                /* shared by every connection's reads */
    struct gn__resolver *resolver; /* created on first use */
    struct gn__list handles;       /* closed by gn_loop_free: users' first */
    struct gn__list watches;       /* descriptor watchers (watch.c) */
    struct gn__signals *signals;   /* signal watchers (signal.c), while any */
    struct gn__pool conn_pool;     /* freed connections kept for reuse */
    struct gn__pool in_pool;       /* standard input buffers (conn_io.c) */
    struct gn__pool outq_pool;     /* output queues (conn_queue.c) */
    struct gn__pool chunk_pool;    /* standard output chunks (conn_queue.c) */
};

/* A loop for one call's own use inside the library (gn_dial). */
int gn__loop_new_private(gn_loop **out);

/* Register, change or drop (events 0) what the loop watches on io. */
int gn__io_watch(gn_loop *loop, struct gn__io *io, unsigned events);
/* Called by backends for each ready descriptor (inline: once per event). */
static inline void gn__io_dispatch(gn_loop *loop, struct gn__io *io, unsigned events)
{
    if (io->fd >= 0 && io->cb)
        io->cb(loop, io, events);
}

/* Keep gn_loop_run running while something is pending. */
static inline void gn__loop_ref(gn_loop *loop)
{
    loop->refs++;
}

static inline void gn__loop_unref(gn_loop *loop)
{
    loop->refs--;
}

/* Register h to be closed by gn_loop_free; service handles (the
 * resolver) are closed after every user-facing one, whose close may
 * still reach them (a client cancelling its lookup). */
void gn__loop_handle_add(gn_loop *loop, struct gn__handle *h, bool service);
/* Unregister h (it closed by itself).  Safe on an unregistered handle. */
static inline void gn__loop_handle_remove(struct gn__handle *h)
{
    gn__list_remove(&h->node);
}

/* Run d->fn after the current batch of events (d must stay valid). */
void gn__loop_defer(gn_loop *loop, struct gn__deferred *d);

uint64_t gn__clock_ms(void);

/* Deadlines of blocking calls (deadline.c): a point on gn__clock_ms's
 * clock, GN__NO_DEADLINE for none. */
#define GN__NO_DEADLINE UINT64_MAX
/* A timeout as the user wrote it: GN_DEFAULT_TIMEOUT becomes default_ms;
 * the rest stay as they are. */
uint32_t gn__timeout_or(uint32_t timeout_ms, uint32_t default_ms);
/* A resolved timeout as a timer's delay: GN_NO_WAIT is 0 (the caller
 * skips the timer for GN_NO_TIMEOUT). */
uint32_t gn__timer_ms(uint32_t timeout_ms);
/* The deadline of a resolved timeout starting now: GN__NO_DEADLINE for
 * GN_NO_TIMEOUT, now for GN_NO_WAIT. */
uint64_t gn__deadline_after(uint32_t timeout_ms);
uint64_t gn__deadline_min(uint64_t a, uint64_t b);
/* Milliseconds left for poll(2): -1 for none, 0 once passed. */
int gn__poll_ms(uint64_t deadline);
/* Wait until fd is ready for events (0), or GN_ETIMEDOUT, or a code. */
int gn__wait_fd(int fd, short events, uint64_t deadline);

/* Timers (timer.c). */
int gn__timers_init(struct gn__timer_heap *t);
void gn__timers_free(gn_loop *loop);
/* Milliseconds until the next timer is due: -1 for none.  The clock is
 * read afresh (the batch just run may have taken long: a timer must not
 * fire late by that much), but only when there is a timer. */
static inline int gn__timers_timeout(const gn_loop *loop)
{
    const struct gn__timer_heap *t = &loop->timers;
    uint64_t now;

    if (t->nheap == 0)
        return -1;
    now = gn__clock_ms();
    if (t->heap_due <= now)
        return 0;
    return t->heap_due - now > INT_MAX ? INT_MAX : (int)(t->heap_due - now);
}
/* Whether a timer is due by now_ms: the cheap test before running them. */
static inline bool gn__timers_due(const gn_loop *loop)
{
    const struct gn__timer_heap *t = &loop->timers;

    return t->nheap > 0 && t->heap_due <= loop->now_ms;
}
void gn__timers_run(gn_loop *loop);

/* Logging (log.c). */
bool gn__log_enabled(gn_log_level level);
void gn__log(gn_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
