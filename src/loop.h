/*
 * The loop's insides, shared by the loop, its backends, timers, the
 * resolver and the connection core.  Never installed.
 */
#ifndef GN_LOOP_H
#define GN_LOOP_H

#include <pthread.h>
#include <stdatomic.h>

#include "internal.h"

/* Readiness events a backend reports and watches. */
#define GN__READ  1u
#define GN__WRITE 2u
#define GN__ERROR 4u /* error or hang-up: the callback finds out which */

struct gn__io;
typedef void (*gn__io_fn)(gn_loop *loop, struct gn__io *io, unsigned events);

/* A descriptor the loop watches.  Embedded in its owner (conn, server,
 * the loop's own eventfd); the owner must outlive the batch of events
 * it is in, which is why connections are freed only after the batch. */
struct gn__io {
    int fd;
    unsigned events; /* what the backend watches now */
    gn__io_fn cb;
    size_t slot; /* the poll backend's index of this io */
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
};

extern const struct gn__backend gn__backend_epoll;
extern const struct gn__backend gn__backend_poll;

struct gn__timer_heap {
    struct gn__timer *slots; /* by slot index; ids carry slot + generation */
    uint32_t nslots;
    uint32_t free_head; /* free-slot list, UINT32_MAX when empty */
    uint32_t *heap;     /* slot indices, a binary min-heap */
    uint32_t nheap;
    uint64_t seq; /* start order, to break ties */
};

struct gn__task {
    struct gn__task *next;
    gn_task_fn fn;
    void *arg;
};

/* Something to do after the current batch of events: free a closed
 * connection, run a deferred on_close.  Intrusive, owned by its object. */
struct gn__deferred {
    struct gn__deferred *next;
    void (*fn)(gn_loop *loop, struct gn__deferred *d);
};

struct gn_loop {
    const struct gn__backend *backend;
    int backend_fd;
    void *backend_events; /* backend's event array */
    uint64_t now_ms;
    size_t refs; /* servers, conns, timers, resolutions, tasks */
    bool running;
    atomic_bool stop;

    struct gn__timer_heap timers;

    pthread_mutex_t tasks_lock;
    struct gn__task *tasks_head, *tasks_tail;
    atomic_size_t tasks_pending;
    struct gn__io wakeup; /* eventfd: posts and stops wake the loop */

    struct gn__deferred *deferred_head, *deferred_tail;

    char *read_buf;                /* shared by every connection's reads */
    struct gn__resolver *resolver; /* created on first use */
    struct gn_server *servers;     /* every open server, for gn_loop_free */
    struct gn_conn *conns;         /* every live client connection, idem */
    struct gn_dgram *dgrams;       /* every open datagram socket, idem */
    struct gn_conn *conn_pool;     /* freed connections kept for reuse */
    size_t conn_pool_len;
};

/* Register, change or drop (events 0) what the loop watches on io. */
int gn__io_watch(gn_loop *loop, struct gn__io *io, unsigned events);
/* Called by backends for each ready descriptor. */
void gn__io_dispatch(gn_loop *loop, struct gn__io *io, unsigned events);

/* Keep gn_loop_run running while something is pending. */
void gn__loop_ref(gn_loop *loop);
void gn__loop_unref(gn_loop *loop);

/* Run d->fn after the current batch of events (d must stay valid). */
void gn__loop_defer(gn_loop *loop, struct gn__deferred *d);

uint64_t gn__clock_ms(void);

/* Deadlines of blocking calls (deadline.c): a point on gn__clock_ms's
 * clock, GN__NO_DEADLINE for none. */
#define GN__NO_DEADLINE UINT64_MAX
uint64_t gn__deadline_after(uint32_t timeout_ms);
/* Milliseconds left for poll(2): -1 for none, 0 once passed. */
int gn__poll_ms(uint64_t deadline);
/* Wait until fd is ready for events (0), or GN_ETIMEDOUT, or a code. */
int gn__wait_fd(int fd, short events, uint64_t deadline);

/* Timers (timer.c). */
int gn__timers_init(struct gn__timer_heap *t);
void gn__timers_free(gn_loop *loop);
/* Milliseconds until the next timer is due: -1 for none. */
int gn__timers_timeout(gn_loop *loop);
void gn__timers_run(gn_loop *loop);

/* Asynchronous resolution (resolver.c).  done runs on the loop's thread
 * with the results; a cancelled request never calls done. */
struct gn__resolve_req;
typedef void (*gn__resolve_fn)(gn_loop *loop, void *arg, int rc, const gn_endpoint *addrs, size_t n,
                               const char *error);
int gn__resolve_start(gn_loop *loop, const gn_endpoint *ep, gn__resolve_fn done, void *arg,
                      struct gn__resolve_req **out);
void gn__resolve_cancel(struct gn__resolve_req *req);
void gn__resolver_free(gn_loop *loop);

/* Logging (log.c). */
bool gn__log_enabled(gn_log_level level);
void gn__log(gn_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Close every datagram socket of the loop, for gn_loop_free (dgram.c). */
void gn__dgrams_close_all(gn_loop *loop);

#endif
