/*
 * A server on several loops (gn_options.loops > 1): the threads that run
 * loops 1..N-1, which loop a new client goes to, and stopping the world
 * for gn_server_foreach.  What runs on each loop (accepting, serving,
 * closing) is the event-driven server's, server.c.
 *
 * Stopping the world: a thread that must touch every loop's connections
 * posts a "park" task to each other loop and waits until all are parked
 * in it, between two batches of events (or gone).  Two threads stopping
 * at once would wait for each other, so a thread waiting for its turn, or
 * loop 0 waiting for the threads to end, parks for whoever holds the
 * world meanwhile.
 */
#include <stdlib.h>

#include "server.h"

#define NOBODY SIZE_MAX

/* The shard whose loop this thread runs, if the server owns the thread. */
static _Thread_local struct gn__shard *current_shard;

/* Tasks for loop 0 carry srv alone (nothing to free if loop 0 is freed
 * before they run); each is counted in pending0 until it has run. */
static void settle0(gn_server *srv)
{
    struct gn__loops *L = srv->loops;

    pthread_mutex_lock(&L->mu);
    L->pending0--;
    pthread_mutex_unlock(&L->mu);
    L->settled(srv);
}

/* Post fn to loop 0, counted in pending0 already. */
static void post0_counted(gn_server *srv, gn_task_fn fn)
{
    struct gn__loops *L = srv->loops;

    if (gn_loop_post(srv->loop, fn, srv) == 0)
        return;
    pthread_mutex_lock(&L->mu);
    L->pending0--;
    pthread_mutex_unlock(&L->mu);
    gn__log(GN_LOG_ERROR, "out of memory: a task for a server's loop 0 was lost");
}

/* A thread has left its loop: loop 0 checks whether the server is done. */
static void thread_left(gn_loop *loop, void *srv)
{
    (void)loop;
    settle0(srv);
}

static void close_on_loop0(gn_loop *loop, void *arg)
{
    gn_server *srv = arg;
    struct gn__loops *L = srv->loops;
    uint32_t grace_ms;

    (void)loop;
    pthread_mutex_lock(&L->mu);
    grace_ms = L->close0_grace;
    pthread_mutex_unlock(&L->mu);
    L->close0(srv, grace_ms);
    settle0(srv);
}

void gn__loops_close_on_loop0(gn_server *srv, uint32_t grace_ms)
{
    struct gn__loops *L = srv->loops;

    pthread_mutex_lock(&L->mu);
    L->pending0++;
    L->close0_grace = grace_ms; /* the last asked; loop 0 closes once */
    pthread_mutex_unlock(&L->mu);
    post0_counted(srv, close_on_loop0);
}

/* ---- stopping the world ----------------------------------------------- */

/* Under the lock: if another shard holds the world and s has not parked
 * for this stop yet, park until it lets go (true), which may be when the
 * next stop has begun: the caller checks again. */
static bool park_locked(struct gn__loops *L, struct gn__shard *s)
{
    uint64_t epoch = L->epoch;

    if (L->owner == NOBODY || L->owner == s->index || s->parked_epoch == epoch)
        return false;
    s->parked_epoch = epoch;
    L->parked++;
    pthread_cond_broadcast(&L->cv);
    while (L->owner != NOBODY && L->epoch == epoch)
        pthread_cond_wait(&L->cv, &L->mu);
    return true;
}

static void park_task(gn_loop *loop, void *arg)
{
    struct gn__shard *s = arg;
    struct gn__loops *L = s->srv->loops;

    (void)loop;
    pthread_mutex_lock(&L->mu);
    park_locked(L, s);
    pthread_mutex_unlock(&L->mu);
}

static void park0(gn_loop *loop, void *arg)
{
    gn_server *srv = arg;

    park_task(loop, &srv->loops->shards[0]);
    settle0(srv);
}

/* Under the lock: shards other than s still running their loops. */
static size_t others_running(const struct gn__loops *L, const struct gn__shard *s)
{
    size_t n = 0;

    for (size_t i = 0; i < L->n; i++)
        if (i != s->index && !L->shards[i].exited)
            n++;
    return n;
}

void gn__loops_stop_world(gn_server *srv)
{
    struct gn__loops *L = srv->loops;
    struct gn__shard *me = gn__loops_current(srv);

    pthread_mutex_lock(&L->mu);
    if (L->owner == me->index) {
        L->depth++; /* fn of a gn_server_foreach calls it again */
        pthread_mutex_unlock(&L->mu);
        return;
    }
    while (L->owner != NOBODY)
        if (!park_locked(L, me))
            pthread_cond_wait(&L->cv, &L->mu);
    L->owner = me->index;
    L->epoch++;
    L->parked = 0;
    L->pending0 += me->index != 0;  /* the park task of loop 0, below */
    pthread_cond_broadcast(&L->cv); /* loop 0 may be waiting in wait_exited */
    pthread_mutex_unlock(&L->mu);
    for (size_t i = 0; i < L->n; i++) {
        struct gn__shard *s = &L->shards[i];
        if (s == me)
            continue;
        if (i == 0)
            post0_counted(srv, park0);
        else if (gn_loop_post(s->loop, park_task, s) < 0)
            gn__log(GN_LOG_ERROR, "out of memory: cannot pause loop %zu", i);
        /* An exited loop never runs it: nobody waits for that one. */
    }
    pthread_mutex_lock(&L->mu);
    while (L->parked < others_running(L, me))
        pthread_cond_wait(&L->cv, &L->mu);
    pthread_mutex_unlock(&L->mu);
}

void gn__loops_resume_world(gn_server *srv)
{
    struct gn__loops *L = srv->loops;

    pthread_mutex_lock(&L->mu);
    if (L->depth > 0) {
        L->depth--;
    } else {
        L->owner = NOBODY;
        pthread_cond_broadcast(&L->cv);
    }
    pthread_mutex_unlock(&L->mu);
}

/* ---- the threads ------------------------------------------------------ */

/* Whether the shard's loop must go on: something is left on it, and the
 * server was not abandoned while starting. */
static bool loop_has_work(struct gn__loops *L, gn_loop *loop)
{
    bool abandoned;

    pthread_mutex_lock(&L->mu);
    abandoned = L->abandoned;
    pthread_mutex_unlock(&L->mu);
    return !abandoned && (loop->refs > 0 || atomic_load(&loop->tasks_pending) > 0);
}

static void *shard_main(void *arg)
{
    struct gn__shard *s = arg;
    gn_server *srv = s->srv;
    struct gn__loops *L = srv->loops;
    bool tell;
    int rc;

    current_shard = s;
    /* A handler's gn_loop_stop on this loop only pauses it: the loop runs
     * until its shard has closed and nothing is left. */
    do
        rc = gn_loop_run(s->loop);
    while (rc == 0 && loop_has_work(L, s->loop));
    if (rc < 0)
        gn__log(GN_LOG_ERROR, "loop %zu of a server failed: %s", s->index, gn_strerror(rc));
    pthread_mutex_lock(&L->mu);
    s->exited = true;
    L->running--;
    tell = !L->abandoned;
    L->pending0 += tell; /* the word to loop 0, with the count it checks */
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    if (tell)
        post0_counted(srv, thread_left);
    return NULL;
}

void gn__loops_release(struct gn__shard *s)
{
    if (s->keepalive) {
        s->keepalive = false;
        gn__loop_unref(s->loop);
    }
}

static void loops_destroy(struct gn__loops *L)
{
    for (size_t i = 1; i < L->n; i++) {
        struct gn__shard *s = &L->shards[i];
        if (s->started)
            pthread_join(s->tid, NULL);
        gn_loop_free(s->loop);
    }
    pthread_cond_destroy(&L->cv);
    pthread_mutex_destroy(&L->mu);
    free(L->shards);
    free(L);
}

static int shard_start(struct gn__loops *L, struct gn__shard *s)
{
    int rc;

    gn__loop_ref(s->loop);
    s->keepalive = true;
    pthread_mutex_lock(&L->mu);
    L->running++;
    pthread_mutex_unlock(&L->mu);
    rc = pthread_create(&s->tid, NULL, shard_main, s);
    if (rc == 0) {
        s->started = true;
        return 0;
    }
    gn__loops_release(s);
    pthread_mutex_lock(&L->mu);
    L->running--;
    s->exited = true;
    pthread_mutex_unlock(&L->mu);
    return GN_ENOMEM;
}

/* Stop the threads started so far (nothing to close on them yet). */
static void shards_stop(struct gn__loops *L)
{
    for (size_t i = 1; i < L->n; i++)
        if (L->shards[i].started)
            gn_loop_stop(L->shards[i].loop);
}

int gn__loops_start(gn_server *srv, size_t n, void (*settled)(gn_server *srv),
                    void (*close0)(gn_server *srv, uint32_t grace_ms))
{
    struct gn__loops *L = calloc(1, sizeof(*L));
    int rc = 0;

    if (!L)
        return GN_ENOMEM;
    L->shards = calloc(n, sizeof(*L->shards));
    if (!L->shards) {
        free(L);
        return GN_ENOMEM;
    }
    L->n = n;
    L->owner = NOBODY;
    L->next = 1; /* the first client to a thread's loop: loop 0 also accepts */
    L->settled = settled;
    L->close0 = close0;
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv, NULL);
    for (size_t i = 0; i < n; i++) {
        struct gn__shard *s = &L->shards[i];
        *s = (struct gn__shard){.srv = srv, .index = i, .loop = srv->loop};
        gn__list_init(&s->conns);
        atomic_init(&s->live, 0);
        if (i > 0)
            rc = rc ? rc : gn_loop_new_backend(&s->loop, gn_loop_backend(srv->loop));
        if (rc < 0)
            s->loop = NULL;
    }
    srv->loops = L;
    for (size_t i = 1; i < n && rc == 0; i++)
        rc = shard_start(L, &L->shards[i]);
    if (rc < 0) {
        /* The threads have nothing yet: stop their loops, whatever refs. */
        gn__loops_free(srv);
    }
    return rc;
}

void gn__loops_free(gn_server *srv)
{
    struct gn__loops *L = srv->loops;

    if (!L)
        return;
    /* Threads still in their loops (the server failed to start after
     * them) stop now, and tell loop 0 nothing. */
    pthread_mutex_lock(&L->mu);
    L->abandoned = true;
    pthread_mutex_unlock(&L->mu);
    shards_stop(L);
    srv->loops = NULL;
    loops_destroy(L);
}

bool gn__loops_done(gn_server *srv)
{
    struct gn__loops *L = srv->loops;
    bool done;

    pthread_mutex_lock(&L->mu);
    done = L->running == 0 && L->pending0 == 0;
    pthread_mutex_unlock(&L->mu);
    return done;
}

void gn__loops_wait_exited(gn_server *srv)
{
    struct gn__loops *L = srv->loops;

    pthread_mutex_lock(&L->mu);
    while (L->running > 0)
        if (!park_locked(L, &L->shards[0]))
            pthread_cond_wait(&L->cv, &L->mu);
    L->pending0 = 0; /* loop 0 is being freed: its tasks never run */
    pthread_mutex_unlock(&L->mu);
}

/* ---- finding shards --------------------------------------------------- */

struct gn__shard *gn__loops_shard(gn_server *srv, const gn_loop *loop)
{
    struct gn__loops *L = srv->loops;

    for (size_t i = 1; i < L->n; i++)
        if (L->shards[i].loop == loop)
            return &L->shards[i];
    return &L->shards[0];
}

struct gn__shard *gn__loops_current(gn_server *srv)
{
    struct gn__shard *s = current_shard;

    return s && s->srv == srv ? s : &srv->loops->shards[0];
}

struct gn__shard *gn__loops_pick(gn_server *srv)
{
    struct gn__loops *L = srv->loops;
    struct gn__shard *best = NULL;
    size_t best_live = SIZE_MAX;

    /* Ties go round: the search starts one further each time. */
    for (size_t k = 0; k < L->n; k++) {
        struct gn__shard *s = &L->shards[(L->next + k) % L->n];
        size_t live = atomic_load(&s->live);
        if (live < best_live) {
            best = s;
            best_live = live;
        }
    }
    L->next = (L->next + 1) % L->n;
    return best;
}
