/*
 * Signals on Linux, for the watchers of signal.c: read from a signalfd on
 * the loop, so their callbacks are ordinary code.
 *
 * Three levels, because a signal has state at three:
 *  - the loop (struct gn__signals): one signalfd whose mask is every
 *    signal with a watcher on this loop, and the watchers, by signal;
 *  - the loop's thread: a signal must be blocked there for signalfd to
 *    receive it instead of a handler (pthread_sigmask); whether it was
 *    blocked before is kept, to leave the mask as it was found;
 *  - the process (the registry): the disposition.  While any loop
 *    watches a signal, its handler is forward(), which runs only where
 *    the signal is not blocked (a thread started before the watcher, or
 *    another library's) and sends it on to a thread whose loop watches
 *    it, instead of letting the default action kill the process.  A
 *    handler matters for ignored signals too (nohup's SIGHUP): with
 *    SIG_IGN, one sent to the process while its main thread does not
 *    block it is discarded at once, before a signalfd could read it.
 *    The disposition found before the first watcher is put back after
 *    the last.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "signals.h"

#define READ_BATCH 16

struct gn__signals {
    struct gn__io io;         /* the signalfd */
    sigset_t mask;            /* signals with an open watcher on this loop */
    sigset_t was_blocked;     /* of those, blocked in the thread before */
    pid_t tid;                /* the loop's thread, for forward() */
    unsigned open[_NSIG];     /* open watchers by signal */
    struct gn__list watchers; /* open ones, and closed ones until freed */
    struct gn__list node;     /* in the registry's loops */
};

/* ---- the process: dispositions ---------------------------------------- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gn__list registry_loops = {&registry_loops, &registry_loops};
static struct {
    unsigned loops;          /* loops watching the signal */
    struct sigaction before; /* the disposition before the first */
} registry[_NSIG];
/* The thread forward() sends a signal to: one whose loop watches it. */
static atomic_int forward_to[_NSIG];

static void forward(int signum)
{
    int saved_errno = errno;
    pid_t tid = (pid_t)atomic_load(&forward_to[signum]);

    if (tid > 0)
        syscall(SYS_tgkill, getpid(), tid, signum); /* async-signal-safe */
    errno = saved_errno;
}

/* Another loop's thread watching signum, 0 for none. */
static pid_t other_watcher(const struct gn__signals *me, int signum)
{
    struct gn__list *node, *next;

    gn__list_foreach_safe(node, next, &registry_loops)
    {
        struct gn__signals *s = gn__container_of(node, struct gn__signals, node);
        if (s != me && sigismember(&s->mask, signum))
            return s->tid;
    }
    return 0;
}

static int registry_join(struct gn__signals *me, int signum)
{
    struct sigaction sa = {.sa_handler = forward, .sa_flags = SA_RESTART};
    int rc = 0;

    sigemptyset(&sa.sa_mask);
    pthread_mutex_lock(&registry_lock);
    if (registry[signum].loops == 0 && sigaction(signum, &sa, &registry[signum].before) < 0)
        rc = gn_error_from_errno(errno);
    if (rc == 0) {
        registry[signum].loops++;
        if (atomic_load(&forward_to[signum]) == 0)
            atomic_store(&forward_to[signum], me->tid);
    }
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

static void registry_leave(struct gn__signals *me, int signum)
{
    pthread_mutex_lock(&registry_lock);
    if (--registry[signum].loops == 0) {
        atomic_store(&forward_to[signum], 0);
        sigaction(signum, &registry[signum].before, NULL);
    } else if (atomic_load(&forward_to[signum]) == me->tid) {
        atomic_store(&forward_to[signum], other_watcher(me, signum));
    }
    pthread_mutex_unlock(&registry_lock);
}

static void registry_add_loop(struct gn__signals *s)
{
    pthread_mutex_lock(&registry_lock);
    gn__list_push_back(&registry_loops, &s->node);
    pthread_mutex_unlock(&registry_lock);
}

static void registry_remove_loop(struct gn__signals *s)
{
    pthread_mutex_lock(&registry_lock);
    gn__list_remove(&s->node);
    pthread_mutex_unlock(&registry_lock);
}

/* ---- the loop: its signalfd ------------------------------------------- */

static void signals_ready(gn_loop *loop, struct gn__io *io, unsigned events)
{
    struct gn__signals *s = gn__container_of(io, struct gn__signals, io);
    struct signalfd_siginfo info[READ_BATCH];
    ssize_t n;

    (void)loop;
    (void)events;
    /* A callback may close every watcher: the signalfd and s stay until
     * after this batch of events, and read nothing more then. */
    do {
        n = read(io->fd, info, sizeof(info));
        for (ssize_t i = 0; n > 0 && i < n / (ssize_t)sizeof(info[0]); i++)
            gn__signals_deliver(&s->watchers, (int)info[i].ssi_signo);
    } while (n == (ssize_t)sizeof(info));
}

int gn__signals_create(gn_loop *loop, struct gn__signals **out)
{
    struct gn__signals *s = calloc(1, sizeof(*s));
    int rc;

    if (!s)
        return GN_ENOMEM;
    sigemptyset(&s->mask);
    sigemptyset(&s->was_blocked);
    gn__list_init(&s->watchers);
    s->tid = (pid_t)syscall(SYS_gettid);
    s->io.cb = signals_ready;
    s->io.fd = signalfd(-1, &s->mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s->io.fd < 0) {
        rc = gn_error_from_errno(errno);
        goto out_free;
    }
    rc = gn__io_watch(loop, &s->io, GN__READ);
    if (rc < 0)
        goto out_close;
    registry_add_loop(s);
    *out = s;
    return 0;
out_close:
    close(s->io.fd);
out_free:
    free(s);
    return rc;
}

void gn__signals_free(gn_loop *loop)
{
    struct gn__signals *s = loop->signals;

    registry_remove_loop(s);
    gn__io_watch(loop, &s->io, 0);
    close(s->io.fd);
    free(s);
    loop->signals = NULL;
}

/* The first open watcher of signum on this loop: block it here, add it
 * to the signalfd, make the disposition the library's. */
int gn__signals_add(struct gn__signals *s, int signum)
{
    sigset_t one, old;
    int rc;

    if (s->open[signum]++ > 0)
        return 0;
    sigemptyset(&one);
    sigaddset(&one, signum);
    pthread_sigmask(SIG_BLOCK, &one, &old);
    if (sigismember(&old, signum))
        sigaddset(&s->was_blocked, signum);
    sigaddset(&s->mask, signum);
    if (signalfd(s->io.fd, &s->mask, 0) < 0) {
        rc = gn_error_from_errno(errno);
        goto out_undo;
    }
    rc = registry_join(s, signum);
    if (rc == 0)
        return 0;
out_undo:
    s->open[signum]--;
    sigdelset(&s->mask, signum);
    signalfd(s->io.fd, &s->mask, 0);
    if (!sigismember(&s->was_blocked, signum))
        pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    sigdelset(&s->was_blocked, signum);
    return rc;
}

/* The last open watcher of signum on this loop went: undo signal_add, the
 * disposition first, so a signal pending here meets the right one. */
void gn__signals_remove(struct gn__signals *s, int signum)
{
    sigset_t one;

    if (--s->open[signum] > 0)
        return;
    registry_leave(s, signum);
    sigdelset(&s->mask, signum);
    signalfd(s->io.fd, &s->mask, 0);
    if (!sigismember(&s->was_blocked, signum)) {
        sigemptyset(&one);
        sigaddset(&one, signum);
        pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    }
    sigdelset(&s->was_blocked, signum);
}

struct gn__list *gn__signals_watchers(struct gn__signals *s)
{
    return &s->watchers;
}

/* Signals a watcher may not take: SIGKILL and SIGSTOP cannot be caught,
 * faults cannot be blocked, and glibc keeps 32 and 33 for its threads. */
bool gn__signal_watchable(int signum)
{
    if (signum < 1 || signum >= _NSIG || signum > SIGRTMAX)
        return false;
    if (signum > SIGSYS && signum < SIGRTMIN)
        return false;
    switch (signum) {
    case SIGKILL:
    case SIGSTOP:
    case SIGSEGV:
    case SIGBUS:
    case SIGFPE:
    case SIGILL:
        return false;
    default:
        return true;
    }
}
