/*
 * Signal watchers: a callback on the loop's thread for each signal that
 * arrives, over the system's own source of them (signal.h).
 */
#include <stdlib.h>

#include "signals.h"

/* ---- watchers ----------------------------------------------------------- */

static void signal_free(gn_loop *loop, struct gn__deferred *d)
{
    gn_signal *w = gn__container_of(d, gn_signal, free_job);

    gn__list_remove(&w->node);
    free(w);
    if (loop->signals && gn__list_empty(gn__signals_watchers(loop->signals)))
        gn__signals_free(loop);
}

static void signal_close_handle(struct gn__handle *h)
{
    gn_signal_close(gn__container_of(h, gn_signal, handle));
}

int gn_signal_start(gn_loop *loop, int signum, gn_signal_fn fn, void *arg, gn_signal **out)
{
    gn_signal *w;
    int rc;

    if (!loop || !fn || !out || !gn__signal_watchable(signum))
        return GN_EINVAL;
    w = calloc(1, sizeof(*w));
    if (!w)
        return GN_ENOMEM;
    if (!loop->signals) {
        rc = gn__signals_create(loop, &loop->signals);
        if (rc < 0)
            goto out_free;
    }
    rc = gn__signals_add(loop->signals, signum);
    if (rc < 0)
        goto out_free_signals;
    *w = (gn_signal){.loop = loop, .signum = signum, .fn = fn, .arg = arg};
    w->free_job.fn = signal_free;
    w->handle.close = signal_close_handle;
    gn__list_push_back(gn__signals_watchers(loop->signals), &w->node);
    gn__loop_handle_add(loop, &w->handle, false);
    *out = w;
    return 0;
out_free_signals:
    if (gn__list_empty(gn__signals_watchers(loop->signals)))
        gn__signals_free(loop);
out_free:
    free(w);
    return rc;
}

int gn_signal_close(gn_signal *w)
{
    if (!w || w->closed)
        return GN_EINVAL;
    w->closed = true;
    gn__signals_remove(w->loop->signals, w->signum);
    gn__loop_handle_remove(&w->handle);
    gn__loop_defer(w->loop, &w->free_job);
    return 0;
}
