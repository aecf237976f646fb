/*
 * Signals on Windows, for the watchers of signal.c: the console's control
 * events, named as the C runtime and libuv name them.  Ctrl+C is SIGINT,
 * Ctrl+Break SIGBREAK, and closing the console window SIGHUP (Windows
 * then ends the process within about 10 s, whatever the handler does).
 * No other signal reaches a Windows process from outside, so no other can
 * be watched.
 *
 * Windows runs a control handler on a thread of its own: it marks the
 * signal pending in every loop that watches it and wakes those loops,
 * whose callbacks then run on their own threads as on Linux.  While any
 * loop watches an event the handler reports it handled, so Ctrl+C does
 * not end the process; with none, the default action applies.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "signals.h"
#include "wakeup.h"

#define NSIGNALS 32

struct gn__signals {
    struct gn__io io;         /* a wake-up: a signal is pending */
    atomic_uint pending;      /* bit per signal */
    unsigned open[NSIGNALS];  /* open watchers by signal */
    struct gn__list watchers; /* open ones, and closed ones until freed */
    struct gn__list node;     /* in the registry's loops */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gn__list registry_loops = {&registry_loops, &registry_loops};
static bool handler_installed;

static int signal_of(DWORD event)
{
    switch (event) {
    case CTRL_C_EVENT:
        return SIGINT;
    case CTRL_BREAK_EVENT:
        return SIGBREAK;
    case CTRL_CLOSE_EVENT:
        return SIGHUP;
    default:
        return 0;
    }
}

static BOOL WINAPI console_event(DWORD event)
{
    int signum = signal_of(event);
    struct gn__list *node, *next;
    BOOL handled = FALSE;

    if (signum == 0)
        return FALSE;
    pthread_mutex_lock(&registry_lock);
    gn__list_foreach_safe(node, next, &registry_loops)
    {
        struct gn__signals *s = gn__container_of(node, struct gn__signals, node);
        if (s->open[signum] == 0)
            continue;
        atomic_fetch_or(&s->pending, 1u << signum);
        gn__wakeup_signal(s->io.fd);
        handled = TRUE;
    }
    pthread_mutex_unlock(&registry_lock);
    return handled;
}

static void signals_ready(gn_loop *loop, struct gn__io *io, unsigned events)
{
    struct gn__signals *s = gn__container_of(io, struct gn__signals, io);
    unsigned pending;

    (void)loop;
    (void)events;
    gn__wakeup_drain(io->fd);
    pending = atomic_exchange(&s->pending, 0);
    for (int signum = 1; signum < NSIGNALS; signum++)
        if (pending & (1u << signum))
            gn__signals_deliver(&s->watchers, signum);
}

int gn__signals_create(gn_loop *loop, struct gn__signals **out)
{
    struct gn__signals *s = calloc(1, sizeof(*s));
    int rc;

    if (!s)
        return GN_ENOMEM;
    gn__list_init(&s->watchers);
    s->io.cb = signals_ready;
    s->io.fd = rc = gn__wakeup_open();
    if (rc < 0)
        goto out_free;
    rc = gn__io_watch(loop, &s->io, GN__READ);
    if (rc < 0)
        goto out_close;
    pthread_mutex_lock(&registry_lock);
    if (!handler_installed)
        handler_installed = SetConsoleCtrlHandler(console_event, TRUE) != 0;
    gn__list_push_back(&registry_loops, &s->node);
    pthread_mutex_unlock(&registry_lock);
    *out = s;
    return 0;
out_close:
    gn__wakeup_close(s->io.fd);
out_free:
    free(s);
    return rc;
}

void gn__signals_free(gn_loop *loop)
{
    struct gn__signals *s = loop->signals;

    pthread_mutex_lock(&registry_lock);
    gn__list_remove(&s->node);
    pthread_mutex_unlock(&registry_lock);
    gn__io_watch(loop, &s->io, 0);
    gn__wakeup_close(s->io.fd);
    free(s);
    loop->signals = NULL;
}

struct gn__list *gn__signals_watchers(struct gn__signals *s)
{
    return &s->watchers;
}

int gn__signals_add(struct gn__signals *s, int signum)
{
    pthread_mutex_lock(&registry_lock);
    s->open[signum]++;
    pthread_mutex_unlock(&registry_lock);
    return 0;
}

void gn__signals_remove(struct gn__signals *s, int signum)
{
    pthread_mutex_lock(&registry_lock);
    s->open[signum]--;
    pthread_mutex_unlock(&registry_lock);
}

bool gn__signal_watchable(int signum)
{
    return signum == SIGINT || signum == SIGBREAK || signum == SIGHUP;
}
