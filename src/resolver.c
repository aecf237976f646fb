/*
 * Asynchronous name resolution: getaddrinfo on worker threads, results
 * posted back to the loop.  getaddrinfo cannot be interrupted, so a
 * cancelled request is only marked; its worker finishes and the result
 * is dropped.  A cancelled request no longer keeps the loop running.
 *
 * Workers are detached and the resolver is freed by the last of the loop
 * and its workers to let go: gn_loop_free never waits for a slow DNS
 * server, which is what lets gn_dial keep its deadline on a private loop.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "resolver.h"

#define RESOLVER_THREADS  4
#define RESOLVE_MAX_ADDRS 32

enum req_state { REQ_QUEUED, REQ_RUNNING, REQ_POSTED };

struct gn__resolve_req {
    struct gn__list queued; /* in the resolver's queue while REQ_QUEUED */
    struct gn__list all;    /* every request of the resolver */
    struct gn__resolver *r;
    enum req_state state; /* under r->lock */
    gn_endpoint ep;
    gn__resolve_fn done;
    void *arg;
    bool cancelled; /* loop thread only */
    int rc;
    gn_endpoint addrs[RESOLVE_MAX_ADDRS];
    char error[GN_ERRBUF_SIZE];
};

struct gn__resolver {
    struct gn__handle handle;
    gn_loop *loop;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct gn__list queue, all;
    int nthreads, idle;
    int refs; /* the loop's and each worker's */
    bool shutdown;
};

/* Drop one reference, under r->lock; frees r after the last. */
static void resolver_release_locked(struct gn__resolver *r)
{
    bool last = --r->refs == 0;

    pthread_mutex_unlock(&r->lock);
    if (!last)
        return;
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* On the loop's thread, after the worker is done with req. */
static void deliver(gn_loop *loop, void *arg)
{
    struct gn__resolve_req *req = arg;
    int n;

    pthread_mutex_lock(&req->r->lock);
    gn__list_remove(&req->all);
    pthread_mutex_unlock(&req->r->lock);
    if (!req->cancelled) {
        gn__loop_unref(loop);
        n = req->rc < 0 ? 0 : req->rc > RESOLVE_MAX_ADDRS ? RESOLVE_MAX_ADDRS : req->rc;
        req->done(loop, req->arg, req->rc < 0 ? req->rc : 0, req->addrs, (size_t)n, req->error);
    }
    free(req);
}

/* The next request, or NULL when the resolver shuts down; under r->lock. */
static struct gn__resolve_req *next_request(struct gn__resolver *r)
{
    struct gn__list *node;

    while (gn__list_empty(&r->queue) && !r->shutdown) {
        r->idle++;
        pthread_cond_wait(&r->cond, &r->lock);
        r->idle--;
    }
    if (r->shutdown)
        return NULL;
    node = gn__list_pop_front(&r->queue);
    return gn__container_of(node, struct gn__resolve_req, queued);
}

/* Hand the result to the loop, or drop it if the loop has gone; under
 * r->lock, which the loop's shutdown takes too, so the loop cannot be
 * freed between the check and the post. */
static void finish_request(struct gn__resolver *r, struct gn__resolve_req *req)
{
    if (r->shutdown) {
        gn__list_remove(&req->all);
        free(req);
        return;
    }
    req->state = REQ_POSTED;
    /* If even this allocation fails the request stays in "all" until the
     * loop is freed; the caller's connect timeout reports the failure. */
    gn_loop_post(r->loop, deliver, req);
}

static void *worker_main(void *arg)
{
    struct gn__resolver *r = arg;
    struct gn__resolve_req *req;

    pthread_mutex_lock(&r->lock);
    while ((req = next_request(r))) {
        req->state = REQ_RUNNING;
        pthread_mutex_unlock(&r->lock);
        req->rc =
            gn_resolve(&req->ep, req->addrs, RESOLVE_MAX_ADDRS, req->error, sizeof(req->error));
        pthread_mutex_lock(&r->lock);
        finish_request(r, req);
    }
    resolver_release_locked(r);
    return NULL;
}

/* gn_loop_free: requests not held by a worker are freed now, the rest
 * by their workers when getaddrinfo returns. */
static void resolver_close(struct gn__handle *h)
{
    struct gn__resolver *r = gn__container_of(h, struct gn__resolver, handle);
    struct gn__list *node, *next;

    pthread_mutex_lock(&r->lock);
    r->shutdown = true;
    pthread_cond_broadcast(&r->cond);
    gn__list_foreach_safe(node, next, &r->all)
    {
        struct gn__resolve_req *req = gn__container_of(node, struct gn__resolve_req, all);
        if (req->state == REQ_RUNNING)
            continue;
        gn__list_remove(&req->all);
        if (!req->cancelled)
            gn__loop_unref(r->loop);
        free(req);
    }
    r->loop->resolver = NULL;
    resolver_release_locked(r);
}

static int resolver_create(gn_loop *loop)
{
    struct gn__resolver *r = calloc(1, sizeof(*r));

    if (!r)
        return GN_ENOMEM;
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return GN_ENOMEM;
    }
    if (pthread_cond_init(&r->cond, NULL) != 0) {
        pthread_mutex_destroy(&r->lock);
        free(r);
        return GN_ENOMEM;
    }
    r->loop = loop;
    r->refs = 1;
    gn__list_init(&r->queue);
    gn__list_init(&r->all);
    r->handle.close = resolver_close;
    gn__loop_handle_add(loop, &r->handle, true);
    loop->resolver = r;
    return 0;
}

/* Workers block every signal: the application's handlers run on its own
 * threads, not in the middle of a DNS query.  Under r->lock. */
static int spawn_worker(struct gn__resolver *r)
{
#ifndef _WIN32
    sigset_t all, old;
#endif
    pthread_attr_t attr;
    pthread_t tid;
    int rc;

    if (pthread_attr_init(&attr) != 0)
        return GN_ENOMEM;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
#ifdef _WIN32 /* no signals to keep out */
    rc = pthread_create(&tid, &attr, worker_main, r);
#else
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&tid, &attr, worker_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
#endif
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return GN_ENOMEM;
    r->nthreads++;
    r->refs++;
    return 0;
}

static int enqueue(struct gn__resolver *r, struct gn__resolve_req *req)
{
    int rc = 0;

    pthread_mutex_lock(&r->lock);
    if (r->idle == 0 && r->nthreads < RESOLVER_THREADS)
        rc = spawn_worker(r);
    if (rc < 0 && r->nthreads == 0) {
        pthread_mutex_unlock(&r->lock);
        return rc; /* no thread at all to run it */
    }
    req->state = REQ_QUEUED;
    gn__list_push_back(&r->queue, &req->queued);
    gn__list_push_back(&r->all, &req->all);
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

int gn__resolve_start(gn_loop *loop, const gn_endpoint *ep, gn__resolve_fn done, void *arg,
                      struct gn__resolve_req **out)
{
    struct gn__resolve_req *req;
    int rc;

    if (!loop->resolver && (rc = resolver_create(loop)) < 0)
        return rc;
    req = calloc(1, sizeof(*req));
    if (!req)
        return GN_ENOMEM;
    req->r = loop->resolver;
    req->ep = *ep;
    req->done = done;
    req->arg = arg;
    rc = enqueue(loop->resolver, req);
    if (rc < 0) {
        free(req);
        return rc;
    }
    gn__loop_ref(loop);
    *out = req;
    return 0;
}

void gn__resolve_cancel(struct gn__resolve_req *req)
{
    if (!req || req->cancelled)
        return;
    req->cancelled = true;
    gn__loop_unref(req->r->loop);
}
