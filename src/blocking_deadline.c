/*
 * The deadlines of a blocking connection (gn_conn_set_deadline, Go's
 * SetReadDeadline and SetWriteDeadline) and the waits that honour them.
 *
 * A deadline may be moved from any thread while a call waits in another,
 * and the waiting call must see it at once: that is how a blocked read is
 * cancelled.  So every wait polls the socket and the waiting thread's
 * wake-up, an eventfd made at the thread's first wait and closed when the
 * thread ends, and publishes that eventfd in the connection while it
 * waits; moving a deadline writes to the eventfds published for its
 * direction.  One lock orders the two: a mover either finds the waiter's
 * eventfd or the waiter reads the new deadline, and an eventfd is never
 * written after its waiter has stopped waiting (its number may be reused
 * once the thread ends).  The lock is held for a few loads and stores
 * around each poll, never across one.  A closing threaded server wakes
 * the waits the same way (gn__blocking_wake).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "blocking.h"
#include "wakeup.h"

static pthread_mutex_t deadline_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- the waiting thread's wake-up ---------------------------------- */

static pthread_key_t wake_key;
static pthread_once_t wake_key_once = PTHREAD_ONCE_INIT;
static bool wake_key_made;
static _Thread_local int thread_wake = -1;

static void close_wake(void *fd_plus_one)
{
    gn__wakeup_close((int)(intptr_t)fd_plus_one - 1);
}

static void make_wake_key(void)
{
    wake_key_made = pthread_key_create(&wake_key, close_wake) == 0;
}

/* The calling thread's eventfd, made on first use; -1 when none can be
 * made (the thread then sees a moved deadline only at its next wait). */
int gn__blocking_wake_fd(void)
{
    int fd;

    if (thread_wake >= 0)
        return thread_wake;
    pthread_once(&wake_key_once, make_wake_key);
    if (!wake_key_made)
        return -1;
    fd = gn__wakeup_open();
    if (fd >= 0 && pthread_setspecific(wake_key, (void *)(intptr_t)(fd + 1)) != 0) {
        gn__wakeup_close(fd);
        fd = -1;
    }
    thread_wake = fd;
    return fd;
}

/* ---- deadlines ------------------------------------------------------ */

/* Under the lock: dir's deadline, GN__NO_DEADLINE for none. */
static uint64_t deadline_of(const gn_conn *conn, enum gn__direction dir)
{
    uint64_t d = conn->ext->deadline[dir];

    return d == GN_NO_DEADLINE ? GN__NO_DEADLINE : d;
}

uint64_t gn__blocking_deadline(const gn_conn *conn, enum gn__direction dir)
{
    uint64_t d;

    pthread_mutex_lock(&deadline_lock);
    d = deadline_of(conn, dir);
    pthread_mutex_unlock(&deadline_lock);
    return d;
}

uint64_t gn__blocking_watch(gn_conn *conn, enum gn__direction dir, int wake)
{
    uint64_t d;

    pthread_mutex_lock(&deadline_lock);
    conn->ext->waiter[dir] = wake + 1;
    d = deadline_of(conn, dir);
    pthread_mutex_unlock(&deadline_lock);
    return d;
}

void gn__blocking_unwatch(gn_conn *conn, enum gn__direction dir)
{
    pthread_mutex_lock(&deadline_lock);
    conn->ext->waiter[dir] = 0;
    pthread_mutex_unlock(&deadline_lock);
}

int gn__blocking_wait(gn_conn *conn, short events, uint64_t call_end, enum gn__direction dir)
{
    int wake = gn__blocking_wake_fd();

    for (bool polled = false;; polled = true) {
        struct pollfd p[2] = {{.fd = conn->io.fd, .events = events},
                              {.fd = wake, .events = POLLIN}};
        uint64_t end = gn__deadline_min(call_end, gn__blocking_watch(conn, dir, wake));
        int n, err;

        /* set before gn__blocking_wake took the lock watch took: seen */
        if (atomic_load(&conn->woken)) {
            gn__blocking_unwatch(conn, dir);
            return GN_ECLOSED;
        }

        /* the clock, not poll, says when the time is up: EINTR and a
         * wake-up only make the wait start again with what is left */
        if (polled && gn__poll_ms(end) == 0) {
            gn__blocking_unwatch(conn, dir);
            return GN_ETIMEDOUT;
        }
        n = poll(p, 2, gn__poll_ms(end));
        err = errno;
        gn__blocking_unwatch(conn, dir);
        if (n > 0 && p[0].revents)
            return 0; /* errors and hang-ups show in the next call */
        if (n > 0 && p[1].revents)
            gn__wakeup_drain(wake); /* a deadline moved: take it */
        else if (n < 0 && err != EINTR)
            return gn_error_from_errno(err);
    }
}

void gn__blocking_wake(gn_conn *conn)
{
    if (!conn->ext)
        return; /* never waited: nothing published */
    pthread_mutex_lock(&deadline_lock);
    for (int dir = GN__READING; dir <= GN__WRITING; dir++)
        if (conn->ext->waiter[dir] > 0)
            gn__wakeup_signal(conn->ext->waiter[dir] - 1);
    pthread_mutex_unlock(&deadline_lock);
}

int gn_conn_set_deadline(gn_conn *conn, unsigned which, uint64_t deadline_ms)
{
    if (!conn || which == 0 || which > GN_DEADLINE_BOTH)
        return GN_EINVAL;
    if (conn->prof->owner->mode != &gn__conn_mode_blocking)
        return GN_EMODE;
    /* The extension exists: blocking connections are made with it. */
    pthread_mutex_lock(&deadline_lock);
    for (int dir = GN__READING; dir <= GN__WRITING; dir++) {
        if (!(which & (dir == GN__READING ? GN_DEADLINE_READ : GN_DEADLINE_WRITE)))
            continue;
        conn->ext->deadline[dir] = deadline_ms;
        if (conn->ext->waiter[dir] > 0)
            gn__wakeup_signal(conn->ext->waiter[dir] - 1);
    }
    pthread_mutex_unlock(&deadline_lock);
    return 0;
}
