/*
 * Threaded servers: one thread accepts, worker threads run the user's
 * handler on each client in blocking mode.
 *
 * Workers come from a cache, as in the classic thread-per-client socket
 * servers: a worker that finishes takes the next waiting client, or
 * waits idle if fewer than `cache` others do, or ends.  At most
 * max_threads run; clients beyond them wait in a bounded queue, and a
 * client that finds it full is closed at once with a logged reason, so a
 * flood costs a fixed number of threads and queued descriptors.
 *
 * One mutex guards the queue, the counts and the list of live
 * connections.  A connection's descriptor is closed only under it, after
 * the connection left the list, so gn_server_close can shut down the
 * sockets of the list (to wake blocked calls) without ever touching a
 * descriptor number that was reused.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "blocking.h"
#include "faults.h"
#include "reserved.h"
#include "server.h"
#include "tls.h"

#define DEFAULT_MAX_THREADS 64
#define DEFAULT_CACHE       8
#define DEFAULT_QUEUE       64
#define ACCEPT_RETRY_MS     100

struct worker {
    pthread_t tid;
    struct gn__threads *t;
    struct gn__list node; /* in t->exited once finished */
};

struct gn__threads {
    gn_server *srv;
    gn_thread_fn handler;
    gn_thread_options topts;
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* a client was queued, or stopping */
    pthread_cond_t done_cv; /* a handler returned or a worker ended */
    pthread_t acceptor;
    bool acceptor_running;
    int wake_fd; /* eventfd: tells the acceptor to stop */
    bool stopping;
    gn_conn **queue; /* ring of clients waiting for a worker */
    size_t qcap, qhead, qlen;
    size_t threads, idle, active;
    uint64_t created, served, refused;
    struct gn__list exited; /* finished workers, to join */
};

/* The worker thread running a handler of this server, if any: a close
 * from there must not wait for itself. */
static _Thread_local gn_server *current_server;

/* ---- the live list ---------------------------------------------------- */

/* Under the lock: out of the list, descriptor closed, memory freed. */
static void drop_conn(struct gn__threads *t, gn_conn *conn)
{
    gn__server_unlink(t->srv, conn);
    t->srv->live--;
    gn__blocking_conn_free(conn);
}

/* ---- workers ---------------------------------------------------------- */

static void reap_exited(struct gn__threads *t)
{
    struct gn__list *node;

    while ((node = gn__list_pop_front(&t->exited))) {
        struct worker *w = gn__container_of(node, struct worker, node);
        pthread_join(w->tid, NULL);
        free(w);
    }
}

/* Under the lock: the next client, or NULL when this worker should end
 * (stopping, or enough idle workers are cached already). */
static gn_conn *next_client(struct gn__threads *t)
{
    gn_conn *conn;

    while (t->qlen == 0) {
        if (t->stopping || t->idle >= t->topts.cache)
            return NULL;
        t->idle++;
        pthread_cond_wait(&t->work_cv, &t->mu);
        t->idle--;
    }
    conn = t->queue[t->qhead];
    t->qhead = (t->qhead + 1) % t->qcap;
    t->qlen--;
    return conn;
}

/* A tls:// server's handshake, on the worker: a slow or hostile client
 * holds one thread for at most the handshake timeout. */
static bool tls_ready(struct gn__threads *t, gn_conn *conn)
{
    char peer[GN_ENDPOINT_STRLEN] = "?";
    int rc;

    if (!t->srv->tls)
        return true;
    rc = gn__blocking_tls_accept(conn, t->srv->tls);
    if (rc == 0)
        return true;
    gn__conn_format_peer(conn, peer, sizeof(peer));
    gn__log(GN_LOG_WARN, "%s: %s: dropped", peer,
            gn__conn_error(conn)[0] ? gn__conn_error(conn) : gn_strerror(rc));
    return false;
}

static void *worker_main(void *arg)
{
    struct worker *self = arg;
    struct gn__threads *t = self->t;
    gn_conn *conn;

    current_server = t->srv;
    pthread_mutex_lock(&t->mu);
    while ((conn = next_client(t)) != NULL) {
        t->active++;
        pthread_mutex_unlock(&t->mu);
        if (tls_ready(t, conn))
            t->handler(conn);
        pthread_mutex_lock(&t->mu);
        t->active--;
        t->served++;
        drop_conn(t, conn);
        pthread_cond_broadcast(&t->done_cv);
    }
    t->threads--;
    gn__list_push_back(&t->exited, &self->node);
    pthread_cond_broadcast(&t->done_cv);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* Under the lock. */
static int spawn_worker(struct gn__threads *t)
{
    struct worker *w = calloc(1, sizeof(*w));

    if (!w)
        return GN_ENOMEM;
    w->t = t;
    if (pthread_create(&w->tid, NULL, worker_main, w) != 0) {
        free(w);
        return GN_ENOMEM;
    }
    t->threads++;
    t->created++;
    return 0;
}

/* ---- admitting clients ------------------------------------------------ */

static void refuse(struct gn__threads *t, gn_conn *conn, const char *why)
{
    char text[GN_ENDPOINT_STRLEN] = "?";

    gn__conn_format_peer(conn, text, sizeof(text));
    gn__log(GN_LOG_WARN, "refused %s: %s", text, why);
    t->refused++;
    drop_conn(t, conn);
}

static void enqueue(struct gn__threads *t, gn_conn *conn)
{
    t->queue[(t->qhead + t->qlen) % t->qcap] = conn;
    t->qlen++;
    pthread_cond_signal(&t->work_cv);
}

/* Under the lock: hand conn to an idle worker, a new one, or the queue;
 * refuse it when none of them can take it. */
static void admit(struct gn__threads *t, gn_conn *conn)
{
    char why[128];
    int spawned = 1;

    gn__server_link(t->srv, conn);
    reap_exited(t);
    if (t->srv->live > t->srv->prof.opts.max_conns) {
        snprintf(why, sizeof(why), "max_conns (%zu) reached", t->srv->prof.opts.max_conns);
        refuse(t, conn, why);
    } else if (t->qlen < t->idle) {
        enqueue(t, conn);
    } else if (t->threads < t->topts.max_threads && (spawned = spawn_worker(t)) == 0) {
        enqueue(t, conn);
    } else if (t->threads > 0 && t->qlen - t->idle < t->topts.queue) {
        enqueue(t, conn); /* with no thread at all it would wait forever */
    } else if (spawned < 0) {
        snprintf(why, sizeof(why), "cannot start a thread (%zu running): out of memory",
                 t->threads);
        refuse(t, conn, why);
    } else {
        snprintf(why, sizeof(why), "all %zu threads busy and %zu clients waiting", t->threads,
                 t->qlen);
        refuse(t, conn, why);
    }
}

static void accept_client(struct gn__threads *t, gn_transport kind, int fd,
                          const struct sockaddr *peer, socklen_t peer_len)
{
    gn_conn *conn;
    int rc = gn__blocking_conn_new(fd, kind, t->srv, &t->srv->prof, &conn);

    if (rc < 0) {
        close(fd); /* e.g. reset before the options: nobody to serve */
        return;
    }
    gn__conn_set_peer(conn, peer, peer_len);
    pthread_mutex_lock(&t->mu);
    admit(t, conn);
    pthread_mutex_unlock(&t->mu);
}

/* Out of descriptors: refuse one waiting client with the spare one, so
 * clients hear a close rather than hang in the backlog.  Returns how
 * long to pause accepting. */
static int shed_load(gn_server *srv, int listen_fd, int err)
{
    if (err == EMFILE && gn__server_refuse_one(srv, listen_fd))
        return 0;
    gn__log(GN_LOG_WARN, "accept: %s; pausing accepts for %d ms", strerror(err), ACCEPT_RETRY_MS);
    return ACCEPT_RETRY_MS;
}

static int accept_ready(struct gn__threads *t, const struct listener *l)
{
    int listen_fd = l->io.fd;

    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = gn__accept4(listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            accept_client(t, gn_endpoint_transport(&l->ep), fd, (struct sockaddr *)&ss, len);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return shed_load(t->srv, listen_fd, errno);
    }
}

static void *acceptor_main(void *arg)
{
    struct gn__threads *t = arg;
    gn_server *srv = t->srv;
    struct pollfd pfd[MAX_LISTENERS + 1];
    int pause_ms = 0;

    for (size_t i = 0; i < srv->nlisteners; i++)
        pfd[i] = (struct pollfd){.fd = srv->listeners[i].io.fd, .events = POLLIN};
    pfd[srv->nlisteners] = (struct pollfd){.fd = t->wake_fd, .events = POLLIN};
    for (;;) {
        /* While paused, only the wake descriptor is watched. */
        struct pollfd *watch = pause_ms ? &pfd[srv->nlisteners] : pfd;
        nfds_t n = pause_ms ? 1 : srv->nlisteners + 1;
        int ready = poll(watch, n, pause_ms ? pause_ms : -1);

        if (pfd[srv->nlisteners].revents)
            return NULL;
        if (ready < 0 && errno != EINTR)
            pause_ms = ACCEPT_RETRY_MS;
        else if (ready == 0)
            pause_ms = 0;
        for (size_t i = 0; ready > 0 && !pause_ms && i < srv->nlisteners; i++)
            if (pfd[i].revents)
                pause_ms = accept_ready(t, &srv->listeners[i]);
    }
}

/* ---- starting and stopping -------------------------------------------- */

static const struct gn__server_kind threads_kind;

static void threads_free(struct gn__threads *t)
{
    if (t->wake_fd >= 0)
        close(t->wake_fd);
    pthread_cond_destroy(&t->work_cv);
    pthread_cond_destroy(&t->done_cv);
    pthread_mutex_destroy(&t->mu);
    free(t->queue);
    free(t);
}

static void server_free(gn_server *srv)
{
    if (srv->threads)
        threads_free(srv->threads);
    gn__server_free(srv);
}

static int threads_new(gn_server *srv, gn_thread_fn handler, const gn_thread_options *topts)
{
    struct gn__threads *t = calloc(1, sizeof(*t));
    pthread_condattr_t attr;

    if (!t)
        return GN_ENOMEM;
    srv->threads = t;
    t->srv = srv;
    gn__list_init(&t->exited);
    t->handler = handler;
    t->topts = topts ? *topts : (gn_thread_options){0};
    if (!t->topts.max_threads)
        t->topts.max_threads = DEFAULT_MAX_THREADS;
    if (!t->topts.cache)
        t->topts.cache = DEFAULT_CACHE;
    if (!t->topts.queue)
        t->topts.queue = DEFAULT_QUEUE;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->work_cv, NULL);
    pthread_cond_init(&t->done_cv, &attr);
    pthread_condattr_destroy(&attr);
    /* A ring that never overflows: queued <= idle + queue <= threads + queue. */
    t->qcap = t->topts.max_threads + t->topts.queue;
    t->queue = calloc(t->qcap, sizeof(*t->queue));
    t->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (!t->queue || t->wake_fd < 0)
        return t->queue ? gn_error_from_errno(errno) : GN_ENOMEM;
    return 0;
}

int gn_serve_threads(const char *address, gn_thread_fn handler, const gn_options *opts,
                     const gn_thread_options *topts, gn_server **out, char *errbuf, size_t errlen)
{
    gn_server *srv;
    int rc;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!address || !handler || !out)
        return gn__errbuf_input(errbuf, errlen, GN_EINVAL, "", 0, "%s",
                                "address, handler and out must not be NULL");
    if (!GN__RESERVED_CLEAR(topts))
        return gn__reserved_error("gn_thread_options", errbuf, errlen);
    if (opts && opts->loops > 1)
        return gn__errbuf_input(errbuf, errlen, GN_EINVAL, address, strlen(address),
                                "loops: %zu: a threaded server has no loops (gn_listen has; "
                                "gn_thread_options sizes this one)",
                                opts->loops);
    rc = gn__server_open(NULL, &threads_kind, address, opts, &srv, errbuf, errlen);
    if (rc < 0)
        return rc;
    srv->prof.owner = &gn__blocking_owner_server;
    rc = threads_new(srv, handler, topts);
    if (rc == 0 && pthread_create(&srv->threads->acceptor, NULL, acceptor_main, srv->threads) != 0)
        rc = gn__errbuf_input(errbuf, errlen, GN_ENOMEM, address, strlen(address), "%s",
                              "cannot start the accepting thread");
    if (rc < 0) {
        server_free(srv);
        return rc;
    }
    srv->threads->acceptor_running = true;
    *out = srv;
    return 0;
}

static void stop_accepting(struct gn__threads *t)
{
    uint64_t one = 1;

    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_cond_broadcast(&t->work_cv);
    pthread_mutex_unlock(&t->mu);
    if (write(t->wake_fd, &one, sizeof(one)) < 0) {
        /* cannot fail for an eventfd short of overflow; nothing to do */
    }
}

/* Under the lock: wait until cond holds or deadline_ms (monotonic)
 * passes; UINT64_MAX waits forever. */
static void wait_done(struct gn__threads *t, bool (*cond)(const struct gn__threads *),
                      uint64_t deadline_ms)
{
    struct timespec until = {.tv_sec = (time_t)(deadline_ms / 1000),
                             .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};

    while (!cond(t)) {
        if (deadline_ms == UINT64_MAX)
            pthread_cond_wait(&t->done_cv, &t->mu);
        else if (pthread_cond_timedwait(&t->done_cv, &t->mu, &until) == ETIMEDOUT)
            return;
    }
}

static bool no_handler_runs(const struct gn__threads *t)
{
    return t->active == 0 && t->qlen == 0;
}

static bool no_thread_left(const struct gn__threads *t)
{
    return t->threads == 0;
}

/* Under the lock: refuse the queued clients, wake every blocked call. */
static void end_connections(struct gn__threads *t)
{
    struct gn__list *node;

    while (t->qlen > 0) {
        gn_conn *conn = t->queue[t->qhead];
        t->qhead = (t->qhead + 1) % t->qcap;
        t->qlen--;
        refuse(t, conn, "server closing");
    }
    for (node = t->srv->conns.next; node != &t->srv->conns; node = node->next) {
        gn_conn *conn = gn__container_of(node, gn_conn, link);
        atomic_store(&conn->woken, true);
        shutdown(conn->io.fd, SHUT_RDWR);
    }
}

static void threads_close(gn_server *srv, uint32_t grace_ms)
{
    struct gn__threads *t = srv->threads;

    stop_accepting(t);
    if (current_server == srv)
        return; /* a handler cannot wait for itself: see gn_serve_threads */
    if (t->acceptor_running) {
        pthread_join(t->acceptor, NULL);
        t->acceptor_running = false;
    }
    gn__server_close_listeners(srv);
    pthread_mutex_lock(&t->mu);
    /* Queued clients are still served during the grace period. */
    if (gn__timer_ms(grace_ms) > 0) /* GN_DEFAULT_TIMEOUT, GN_NO_WAIT: none */
        wait_done(t, no_handler_runs, gn__deadline_after(grace_ms));
    end_connections(t);
    wait_done(t, no_thread_left, UINT64_MAX);
    reap_exited(t);
    pthread_mutex_unlock(&t->mu);
    server_free(srv);
}

static size_t threads_conn_count(const gn_server *srv)
{
    struct gn__threads *t = srv->threads;
    size_t live;

    pthread_mutex_lock(&t->mu);
    live = srv->live;
    pthread_mutex_unlock(&t->mu);
    return live;
}

static int threads_foreach(gn_server *srv, void (*fn)(gn_conn *conn, void *arg), void *arg)
{
    struct gn__threads *t = srv->threads;
    struct gn__list *node;
    int visited = 0;

    pthread_mutex_lock(&t->mu);
    for (node = srv->conns.next; node != &srv->conns; node = node->next, visited++)
        fn(gn__container_of(node, gn_conn, link), arg);
    pthread_mutex_unlock(&t->mu);
    return visited;
}

static const struct gn__server_kind threads_kind = {
    .close = threads_close,
    .conn_count = threads_conn_count,
    .foreach = threads_foreach,
};

int gn_server_get_thread_stats(gn_server *srv, gn_thread_stats *out)
{
    struct gn__threads *t;

    if (!srv || !out || srv->kind != &threads_kind)
        return GN_EINVAL;
    t = srv->threads;
    pthread_mutex_lock(&t->mu);
    *out = (gn_thread_stats){.threads = t->threads,
                             .active = t->active,
                             .idle = t->idle,
                             .queued = t->qlen,
                             .created = t->created,
                             .served = t->served,
                             .refused = t->refused};
    pthread_mutex_unlock(&t->mu);
    return 0;
}
