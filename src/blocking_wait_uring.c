/*
 * Blocking calls that wait and move bytes in one system call: a small
 * io_uring per thread (Linux, when liburing is built).
 *
 * A blocking read that polls first pays poll + recv per message, one
 * system call more than a thread asleep in read(2).  Yet a thread asleep
 * in read(2) cannot be woken by a deadline moved from another thread
 * (only by data, the socket's end or a signal, and the library raises no
 * signals).  Here the receive (or send) and a poll on the thread's
 * wake-up eventfd (blocking_deadline.c) are both armed in the thread's
 * ring, so one io_uring_enter both waits and receives, and a moved
 * deadline still ends the wait at once: the eventfd's poll completes,
 * the wait takes the new deadline and goes on, or cancels the receive.
 * The deadline is one point on the clock, as for gn__blocking_wait: an
 * EINTR or a wake-up only makes the wait start again with what is left.
 *
 * The receive writes into the caller's buffer, so it never outlives the
 * call: every way out waits for its completion (after cancelling it when
 * the time is up; a receive that won the race keeps its bytes).
 *
 * The ring is made at the thread's first wait and closed when the thread
 * ends.  A kernel or a sandbox without io_uring, GN_BACKEND naming
 * another backend (Valgrind cannot see what the kernel writes through a
 * ring: its runs name epoll), and the fault injector (which wraps the
 * socket calls) all mean poll, as before.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "blocking.h"
#include "faults.h"
#include "wakeup.h"

/* The receive or send, the eventfd's poll, and a cancel: 4 is room. */
#define RING_ENTRIES 4

enum ring_tag { TAG_IO = 1, TAG_WAKE, TAG_CANCEL };

struct thread_ring {
    struct io_uring ring;
    unsigned generation; /* the process's, at its making: see forked() */
    int wake;            /* the thread's eventfd, which the ring polls */
    bool wake_armed;     /* that poll is in the ring */
    bool poll_first;     /* the kernel knows IORING_RECVSEND_POLL_FIRST */
};

static pthread_key_t ring_key;
static pthread_once_t ring_once = PTHREAD_ONCE_INIT;
static bool ring_key_made;
/* No ring for any thread: io_uring is refused here, or not wanted. */
static atomic_bool rings_off;
/* Counts forks: a child's copy of a ring belongs to the parent's thread
 * (IORING_SETUP_SINGLE_ISSUER refuses it), so the child makes its own. */
static atomic_uint fork_generation;
static _Thread_local struct thread_ring *thread_ring;
static _Thread_local bool thread_ring_failed;

static void ring_free(void *arg)
{
    struct thread_ring *r = arg;

    io_uring_queue_exit(&r->ring);
    free(r);
}

static void after_fork(void)
{
    atomic_fetch_add(&fork_generation, 1);
}

/* ThreadSanitizer cannot follow a ring: liburing maps and unmaps it with
 * raw system calls it does not see, so a ring made where an ended
 * thread's was reads as a race with that thread (make check-tsan, at
 * anon_inode:[io_uring]).  Under it the blocking calls wait with poll. */
#if defined(__SANITIZE_THREAD__)
#define GN__RINGS_HIDDEN_FROM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GN__RINGS_HIDDEN_FROM_TSAN 1
#endif
#endif

/* Rings only where a loop would take io_uring: GN_BACKEND unset or
 * "uring". */
static void ring_setup_once(void)
{
    const char *backend = getenv("GN_BACKEND");

    if (backend && strcmp(backend, "uring") != 0)
        atomic_store(&rings_off, true);
#ifdef GN__RINGS_HIDDEN_FROM_TSAN
    atomic_store(&rings_off, true);
#endif
    ring_key_made = pthread_key_create(&ring_key, ring_free) == 0 &&
                    pthread_atfork(NULL, NULL, after_fork) == 0;
}

/* Make a ring with the cheapest completion path the kernel has: task
 * work deferred to our own waits (6.1), cooperative (5.19), or plain. */
static int ring_init(struct thread_ring *r)
{
    static const unsigned tries[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                                     IORING_SETUP_COOP_TASKRUN, 0};
    int rc = -EINVAL;

    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]) && rc == -EINVAL; i++) {
        struct io_uring_params p = {.flags = tries[i]};
        rc = io_uring_queue_init_params(RING_ENTRIES, &r->ring, &p);
        if (rc == 0 && !(p.features & IORING_FEAT_EXT_ARG)) {
            io_uring_queue_exit(&r->ring); /* before 5.11: no timed wait */
            return -ENOSYS;
        }
        r->poll_first = tries[i] != 0; /* 5.19 brought both */
    }
    return rc;
}

/* The calling thread's ring, made on first use; NULL: wait with poll. */
static struct thread_ring *ring_of_thread(void)
{
    struct thread_ring *r = thread_ring;
    int rc;

    if (r && r->generation == atomic_load_explicit(&fork_generation, memory_order_relaxed))
        return r;
    if (r) { /* a forked child's copy: drop it, make our own */
        io_uring_queue_exit(&r->ring);
        free(r);
        thread_ring = NULL;
        pthread_setspecific(ring_key, NULL);
    }
    pthread_once(&ring_once, ring_setup_once);
    if (thread_ring_failed || !ring_key_made || atomic_load(&rings_off))
        return NULL;
    thread_ring_failed = true; /* until it works */
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->wake = gn__blocking_wake_fd();
    r->generation = atomic_load(&fork_generation);
    rc = r->wake < 0 ? -ENOMEM : ring_init(r);
    if (rc == 0 && pthread_setspecific(ring_key, r) != 0) {
        io_uring_queue_exit(&r->ring);
        rc = -ENOMEM;
    }
    if (rc < 0) {
        /* Refused for the process (old kernel, sysctl, seccomp): let
         * other threads not try; short of memory: this thread only. */
        if (rc != -ENOMEM)
            atomic_store(&rings_off, true);
        free(r);
        return NULL;
    }
    /* Spares the kernel looking the ring's descriptor up at every wait
     * (5.18; without it, the descriptor is used). */
    io_uring_register_ring_fd(&r->ring);
    thread_ring_failed = false;
    thread_ring = r;
    return r;
}

/* ---- one operation ---------------------------------------------------- */

/* Queue the operation (and the eventfd's poll if it ended); false when
 * the ring has no room, which a failed submission would leave. */
static bool queue_io(struct thread_ring *r, int fd, enum gn__direction dir, void *buf, size_t len,
                     bool poll_first)
{
    struct io_uring_sqe *sqe;

    if (io_uring_sq_space_left(&r->ring) < 2)
        return false;
    if (!r->wake_armed) {
        sqe = io_uring_get_sqe(&r->ring);
        io_uring_prep_poll_multishot(sqe, r->wake, POLLIN);
        io_uring_sqe_set_data64(sqe, TAG_WAKE);
        r->wake_armed = true;
    }
    sqe = io_uring_get_sqe(&r->ring);
    if (dir == GN__READING)
        io_uring_prep_recv(sqe, fd, buf, len, 0);
    else
        io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
    if (poll_first && r->poll_first)
        sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    io_uring_sqe_set_data64(sqe, TAG_IO);
    return true;
}

/* Take every completion there is: true when the operation's came (its
 * result in *res).  A wake-up empties the eventfd; a poll that ended
 * is armed again with the next operation. */
static bool reap(struct thread_ring *r, int *res)
{
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    bool done = false;

    io_uring_for_each_cqe(&r->ring, head, cqe)
    {
        seen++;
        if (cqe->user_data == TAG_IO) {
            *res = cqe->res;
            done = true;
        } else if (cqe->user_data == TAG_WAKE) {
            gn__wakeup_drain(r->wake);
            if (!(cqe->flags & IORING_CQE_F_MORE))
                r->wake_armed = false;
        }
    }
    io_uring_cq_advance(&r->ring, seen);
    return done;
}

/* Submit what is queued and wait up to ms (-1: no limit) for a
 * completion; what the wait ended with is read from the ring.  A failure
 * other than a signal or the time (none is expected: the ring is the
 * thread's own and nearly empty) naps a millisecond, so that a wait that
 * cannot sleep still does not spin. */
static void enter(struct thread_ring *r, int ms)
{
    struct __kernel_timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    struct io_uring_cqe *cqe;
    int rc = ms < 0 ? io_uring_submit_and_wait(&r->ring, 1)
                    : io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);

    if (rc < 0 && rc != -ETIME && rc != -EINTR)
        poll(NULL, 0, 1);
}

/* The time is up: cancel the operation and wait for its completion, as
 * it writes into the caller's buffer.  A cancel of a waiting receive or
 * send ends it at once; one that had completed keeps its result. */
static int cancel_io(struct thread_ring *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    int res = -ECANCELED;

    if (sqe) { /* else a cancel is queued already */
        io_uring_prep_cancel64(sqe, TAG_IO, 0);
        io_uring_sqe_set_data64(sqe, TAG_CANCEL);
    }
    while (!reap(r, &res))
        enter(r, -1);
    return res == -EINTR || res == -EAGAIN ? -ECANCELED : res;
}

static ssize_t result(int res)
{
    if (res >= 0)
        return res;
    return res == -ECANCELED ? GN_ETIMEDOUT : gn_error_from_errno(-res);
}

ssize_t gn__blocking_ring_io(gn_conn *conn, enum gn__direction dir, void *buf, size_t len,
                             uint64_t call_end, bool poll_first)
{
    struct thread_ring *r;
    int res = 0, ms;

    if (gn__faults_on() || (r = ring_of_thread()) == NULL)
        return GN__AGAIN;
    ms = gn__poll_ms(gn__deadline_min(call_end, gn__blocking_watch(conn, dir, r->wake)));
    if (ms == 0) {
        gn__blocking_unwatch(conn, dir);
        return GN__AGAIN; /* no time to wait: one try, the caller's */
    }
    if (!queue_io(r, conn->io.fd, dir, buf, len, poll_first)) {
        gn__blocking_unwatch(conn, dir);
        return GN__AGAIN;
    }
    for (;;) {
        enter(r, ms);
        gn__blocking_unwatch(conn, dir);
        if (reap(r, &res)) {
            if (res != -EAGAIN && res != -EINTR)
                return result(res);
            /* woken for nothing: again (there is room: it just left) */
            queue_io(r, conn->io.fd, dir, buf, len, true);
        }
        /* A wake-up, a signal or the time: the clock and the deadline,
         * read afresh, say whether to go on. */
        ms = gn__poll_ms(gn__deadline_min(call_end, gn__blocking_watch(conn, dir, r->wake)));
        if (ms == 0) {
            gn__blocking_unwatch(conn, dir);
            return result(cancel_io(r));
        }
    }
}
