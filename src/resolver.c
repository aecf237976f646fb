/*
 * Asynchronous name resolution: getaddrinfo on worker threads, results
 * posted back to the loop.  getaddrinfo cannot be interrupted, so a
 * cancelled request is only marked; its worker finishes and the result
 * is dropped.  A cancelled request no longer keeps the loop running.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"

#define RESOLVER_THREADS  4
#define RESOLVE_MAX_ADDRS 32

struct gn__resolve_req {
    struct gn__resolve_req *next;     /* in the queue */
    struct gn__resolve_req *all_next; /* every request of the resolver */
    struct gn__resolve_req **all_prev;
    gn_loop *loop;
    gn_endpoint ep;
    gn__resolve_fn done;
    void *arg;
    bool cancelled; /* loop thread only */
    int rc;
    gn_endpoint addrs[RESOLVE_MAX_ADDRS];
    char error[GN_ERRBUF_SIZE];
};

struct gn__resolver {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct gn__resolve_req *queue_head, *queue_tail;
    struct gn__resolve_req *all;
    pthread_t threads[RESOLVER_THREADS];
    int nthreads, idle;
    bool shutdown;
};

static void req_unlink(struct gn__resolver *r, struct gn__resolve_req *req)
{
    pthread_mutex_lock(&r->lock);
    *req->all_prev = req->all_next;
    if (req->all_next)
        req->all_next->all_prev = req->all_prev;
    pthread_mutex_unlock(&r->lock);
}

/* On the loop's thread, after the worker is done with req. */
static void deliver(gn_loop *loop, void *arg)
{
    struct gn__resolve_req *req = arg;
    int n;

    req_unlink(loop->resolver, req);
    if (!req->cancelled) {
        gn__loop_unref(loop);
        n = req->rc < 0 ? 0 : req->rc > RESOLVE_MAX_ADDRS ? RESOLVE_MAX_ADDRS : req->rc;
        req->done(loop, req->arg, req->rc < 0 ? req->rc : 0, req->addrs, (size_t)n, req->error);
    }
    free(req);
}

static struct gn__resolve_req *next_request(struct gn__resolver *r)
{
    struct gn__resolve_req *req;

    pthread_mutex_lock(&r->lock);
    while (!r->queue_head && !r->shutdown) {
        r->idle++;
        pthread_cond_wait(&r->cond, &r->lock);
        r->idle--;
    }
    req = r->shutdown ? NULL : r->queue_head;
    if (req) {
        r->queue_head = req->next;
        if (!r->queue_head)
            r->queue_tail = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    return req;
}

static void *worker_main(void *arg)
{
    struct gn__resolver *r = arg;
    struct gn__resolve_req *req;

    while ((req = next_request(r))) {
        req->rc =
            gn_resolve(&req->ep, req->addrs, RESOLVE_MAX_ADDRS, req->error, sizeof(req->error));
        /* If even this allocation fails the request stays in "all" and
         * gn__resolver_free reclaims it; the caller's connect timeout
         * reports the failure. */
        gn_loop_post(req->loop, deliver, req);
    }
    return NULL;
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
    loop->resolver = r;
    return 0;
}

/* Workers block every signal: the application's handlers run on its own
 * threads, not in the middle of a DNS query. */
static int spawn_worker(struct gn__resolver *r)
{
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&r->threads[r->nthreads], NULL, worker_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return GN_ENOMEM;
    r->nthreads++;
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
    if (r->queue_tail)
        r->queue_tail->next = req;
    else
        r->queue_head = req;
    r->queue_tail = req;
    req->all_next = r->all;
    if (r->all)
        r->all->all_prev = &req->all_next;
    req->all_prev = &r->all;
    r->all = req;
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
    req->loop = loop;
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
    gn__loop_unref(req->loop);
}

void gn__resolver_free(gn_loop *loop)
{
    struct gn__resolver *r = loop->resolver;
    struct gn__resolve_req *req, *next;

    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->shutdown = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    for (int i = 0; i < r->nthreads; i++)
        pthread_join(r->threads[i], NULL);
    /* Queued, running or posted-but-undelivered: the posted tasks are
     * discarded unrun by gn_loop_free, so free every request here. */
    for (req = r->all; req; req = next) {
        next = req->all_next;
        if (!req->cancelled)
            gn__loop_unref(loop);
        free(req);
    }
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
    loop->resolver = NULL;
}
