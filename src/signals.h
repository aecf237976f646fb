/*
 * Signal watchers (signal.c) over a per-system source of signals:
 * signalfd on Linux (signal_posix.c), the console's control handler on
 * Windows (win/signal_win.c).  Never installed.
 */
#ifndef GN_SIGNALS_H
#define GN_SIGNALS_H

#include "loop.h"

struct gn_signal {
    struct gn__list node; /* in the loop's watchers */
    struct gn__handle handle;
    struct gn__deferred free_job;
    gn_loop *loop;
    int signum;
    gn_signal_fn fn;
    void *arg;
    bool closed;
};

/* The loop's signals: made with its first watcher, freed after its last. */
int gn__signals_create(gn_loop *loop, struct gn__signals **out);
void gn__signals_free(gn_loop *loop);
/* The watchers of loop's signals, open ones and closed ones until freed. */
struct gn__list *gn__signals_watchers(struct gn__signals *s);
/* One more (fewer) open watcher of signum on this loop. */
int gn__signals_add(struct gn__signals *s, int signum);
void gn__signals_remove(struct gn__signals *s, int signum);
/* Whether this system lets a watcher take signum. */
bool gn__signal_watchable(int signum);

/* Call every open watcher of signum.  Closed watchers stay linked until
 * after the batch, so next is valid whatever the callback closes. */
static inline void gn__signals_deliver(struct gn__list *watchers, int signum)
{
    struct gn__list *node, *next;

    gn__list_foreach_safe(node, next, watchers)
    {
        gn_signal *w = gn__container_of(node, gn_signal, node);
        if (w->signum == signum && !w->closed)
            w->fn(w, signum, w->arg);
    }
}

#endif
