/*
 * Threaded servers: one thread accepts, worker threads run the user's
 * handler on each client in blocking mode.
 *
 * Workers come from a cache, as in the classic thread-per-client socket
 * servers: a worker that finishes takes the next waiting client, or
 * waits idle if fewer than `cache` others do, or ends.  At most
 * max_threads run; clients beyond them wait in a queue, and when the
 * queue is full the accepting thread stops accepting, so that further
 * clients wait in the kernel's listen backlog, as Apache's and Tomcat's
 * do, until a thread frees up.  A flood costs a fixed number of threads
 * and descriptors and refuses nobody; only max_conns (and, if the user
 * asks, queue_timeout_ms) close a client unserved.
 *
 * The accepting thread runs a private loop (loop.c, epoll): the
 * listeners, and the clients that are not ready for a handler yet, whose
 * TLS handshake it drives without blocking (deadline from accept) and,
 * with wait_for_data, whose first bytes it waits for (the idle timeout
 * applies, idle.c).  A silent client so holds a descriptor, not a thread.
 *
 * One mutex guards the queue, the counts and the list of live
 * connections.  A connection's descriptor is closed only under it, after
 * the connection left the list, so gn_server_close can shut down the
 * sockets of the list (to wake blocked calls) without ever touching a
 * descriptor number that was reused.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "blocking.h"
#include "faults.h"
#include "idle.h"
#include "reserved.h"
#include "server.h"
#include "tls.h"
#include "wakeup.h"

#define DEFAULT_MAX_THREADS 64
#define DEFAULT_CACHE       8
#define DEFAULT_QUEUE       64
#define ACCEPT_RETRY_MS     100
#define ACCEPT_BATCH        64

struct worker {
    pthread_t tid;
    struct gn__threads *t;
    struct gn__list node; /* in t->exited once finished */
};

struct gn__threads {
    gn_server *srv;
    gn_thread_fn handler;
    gn_thread_options topts;
    uint32_t queue_timeout_ms; /* resolved: GN_NO_TIMEOUT for none */
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* a client was queued, or stopping */
    pthread_cond_t done_cv; /* a handler returned or a worker ended */
    pthread_t acceptor;
    bool acceptor_running;
    gn_loop *loop;        /* the accepting thread's */
    struct gn__io resume; /* a wake-up in the loop: a worker made room in the queue */
    bool stopping;
    bool full;                         /* accepting stopped: every thread busy, queue full */
    bool resume_sent;                  /* a worker has written to `resume` since */
    bool spawn_failed;                 /* the last thread could not be started */
    bool listening;                    /* the loop watches the listeners (accepting thread's) */
    uint64_t retry_timer, queue_timer; /* in loop, 0 for none */
    /* Clients waiting for a worker, oldest first.  A queued connection is
     * in no loop's idle queue, so its idle entry holds its place here
     * and its time of queueing (last_active, ms, truncated). */
    struct gn__list queue;
    size_t qlen;
    size_t threads, idle, active, starting, watched;
    uint64_t created, served, refused;
    struct gn__list exited; /* finished workers, to join */
};

/* The worker thread running a handler of this server, if any: a close
 * from there must not wait for itself. */
static _Thread_local gn_server *current_server;

/* ---- the live list ---------------------------------------------------- */

/* Under the lock: out of the list, close_notify for a TLS client whose
 * handler did not close it (so that it can tell the end from a cut and
 * its session stays resumable), descriptor closed, memory freed. */
static void drop_conn(struct gn__threads *t, gn_conn *conn)
{
    if (conn->state != GN__CLOSED)
        gn__tls_goodbye(conn);
    gn__server_unlink(t->srv, conn);
    t->srv->live--;
    gn__blocking_conn_free(conn);
}

static void refuse(struct gn__threads *t, gn_conn *conn, const char *why)
{
    char text[GN_ENDPOINT_STRLEN] = "?";

    gn__conn_format_peer(conn, text, sizeof(text));
    gn__log(GN_LOG_WARN, "refused %s: %s", text, why);
    t->refused++;
    drop_conn(t, conn);
}

/* ---- the queue -------------------------------------------------------- */

static uint32_t now_ms32(void)
{
    return (uint32_t)gn__clock_ms();
}

static gn_conn *queue_head(const struct gn__threads *t)
{
    struct gn__list *node = gn__list_first(&t->queue);

    return node ? gn__container_of(node, gn_conn, idle.node) : NULL;
}

static gn_conn *queue_pop(struct gn__threads *t)
{
    gn_conn *conn = queue_head(t);

    if (conn) {
        gn__list_remove(&conn->idle.node);
        t->qlen--;
    }
    return conn;
}

/* Under the lock: whether accepting must stop, every thread being busy
 * (or none startable) and the queue full. */
static bool queue_full(const struct gn__threads *t)
{
    return (t->threads >= t->topts.max_threads || t->spawn_failed) &&
           t->qlen >= t->idle + t->topts.queue;
}

/* Under the lock, on a worker: tell a stopped accepting thread that the
 * queue has room again, once. */
static void maybe_resume(struct gn__threads *t)
{
    if (!t->full || t->resume_sent || queue_full(t))
        return;
    t->resume_sent = true;
    gn__wakeup_signal(t->resume.fd);
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
    conn = queue_pop(t);
    maybe_resume(t);
    return conn;
}

static void *worker_main(void *arg)
{
    struct worker *self = arg;
    struct gn__threads *t = self->t;
    gn_conn *conn;

    current_server = t->srv;
    pthread_mutex_lock(&t->mu);
    t->starting--;
    while ((conn = next_client(t)) != NULL) {
        t->active++;
        pthread_mutex_unlock(&t->mu);
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

    t->spawn_failed = true;
    if (!w)
        return GN_ENOMEM;
    w->t = t;
    if (pthread_create(&w->tid, NULL, worker_main, w) != 0) {
        free(w);
        return GN_ENOMEM;
    }
    t->spawn_failed = false;
    t->threads++;
    t->starting++;
    t->created++;
    return 0;
}

/* ---- queue_timeout_ms ------------------------------------------------- */

static void queue_due(gn_loop *loop, uint64_t id, void *arg);

/* Under the lock, on the accepting thread: a timer for when the oldest
 * queued client will have waited queue_timeout_ms. */
static void arm_queue_timer(struct gn__threads *t)
{
    gn_conn *head = queue_head(t);
    uint32_t limit = gn__timer_ms(t->queue_timeout_ms), waited;

    if (!head || t->queue_timer || t->queue_timeout_ms == GN_NO_TIMEOUT)
        return;
    waited = now_ms32() - head->idle.last_active;
    /* Without a timer (ENOMEM) the clients simply wait on. */
    gn_timer_start(t->loop, waited < limit ? limit - waited : 0, 0, queue_due, t, &t->queue_timer);
}

static void set_listening(struct gn__threads *t, bool on);

/* Close the clients that have waited queue_timeout_ms for a thread.
 * Those an idle or starting worker is about to take are not waiting. */
static void queue_due(gn_loop *loop, uint64_t id, void *arg)
{
    struct gn__threads *t = arg;
    uint32_t limit = gn__timer_ms(t->queue_timeout_ms);
    char why[128];
    gn_conn *head;
    bool resume;

    (void)loop;
    (void)id;
    pthread_mutex_lock(&t->mu);
    t->queue_timer = 0;
    while ((head = queue_head(t)) != NULL && t->qlen > t->idle + t->starting) {
        uint32_t waited = now_ms32() - head->idle.last_active;
        if (waited < limit)
            break;
        queue_pop(t);
        snprintf(why, sizeof(why),
                 "waited %u ms for a thread (queue_timeout_ms %u); all %zu threads busy", waited,
                 limit, t->threads);
        refuse(t, head, why);
    }
    arm_queue_timer(t);
    resume = t->full && !queue_full(t);
    if (resume)
        t->full = false;
    pthread_mutex_unlock(&t->mu);
    if (resume)
        set_listening(t, true);
}

/* ---- admitting clients ------------------------------------------------ */

static void enqueue(struct gn__threads *t, gn_conn *conn)
{
    conn->idle.last_active = now_ms32();
    gn__list_push_back(&t->queue, &conn->idle.node);
    t->qlen++;
    pthread_cond_signal(&t->work_cv);
    arm_queue_timer(t);
}

/* Under the lock, on the accepting thread: hand a ready client to an
 * idle worker, a new one, or the queue, where it waits for a thread.
 * Returns whether accepting must stop. */
static bool admit(struct gn__threads *t, gn_conn *conn)
{
    reap_exited(t);
    if (t->qlen >= t->idle + t->starting && t->threads < t->topts.max_threads &&
        spawn_worker(t) < 0 && t->threads == 0) {
        char why[128];
        snprintf(why, sizeof(why), "%s", "cannot start a thread (none running): out of memory");
        refuse(t, conn, why);
        return false;
    }
    enqueue(t, conn);
    t->full = queue_full(t);
    return t->full;
}

/* ---- the accepting thread's watch over clients not ready yet ---------- */

static struct gn__threads *threads_of(const gn_conn *conn)
{
    return ((gn_server *)conn->owner_data)->threads;
}

static void stop_watching(struct gn__threads *t, gn_conn *conn)
{
    gn__io_watch(t->loop, &conn->io, 0);
    gn__idle_remove(t->loop, &conn->idle);
    conn->io.cb = NULL;
}

/* The client is ready for its handler: off the watch, into the queue. */
static void hand_off(struct gn__threads *t, gn_conn *conn)
{
    bool stop;

    stop_watching(t, conn);
    pthread_mutex_lock(&t->mu);
    t->watched--;
    stop = admit(t, conn);
    pthread_mutex_unlock(&t->mu);
    if (stop)
        set_listening(t, false);
}

static void drop_watched(struct gn__threads *t, gn_conn *conn)
{
    stop_watching(t, conn);
    pthread_mutex_lock(&t->mu);
    t->watched--;
    drop_conn(t, conn);
    pthread_mutex_unlock(&t->mu);
}

static void log_dropped(gn_conn *conn, const char *why)
{
    char peer[GN_ENDPOINT_STRLEN] = "?";

    gn__conn_format_peer(conn, peer, sizeof(peer));
    gn__log(GN_LOG_WARN, "%s: %s: dropped", peer, why);
}

static void on_first_bytes(gn_loop *loop, struct gn__io *io, unsigned events)
{
    gn_conn *conn = gn__container_of(io, gn_conn, io);

    (void)loop;
    (void)events; /* an end or an error is the handler's to see, as data */
    hand_off(threads_of(conn), conn);
}

/* wait_for_data: idle for the idle timeout without a byte. */
static void silent_expired(struct gn__idle_entry *entry, uint64_t idle_ms)
{
    gn_conn *conn = gn__container_of(entry, gn_conn, idle);
    char peer[GN_ENDPOINT_STRLEN] = "?";

    gn__conn_format_peer(conn, peer, sizeof(peer));
    gn__log(GN_LOG_DEBUG, "%s: silent for %llu ms (idle_timeout_ms): closed", peer,
            (unsigned long long)idle_ms);
    drop_watched(threads_of(conn), conn);
}

/* Hand conn on at its first bytes (wait_for_data) or at once. */
static void await_data(struct gn__threads *t, gn_conn *conn)
{
    uint32_t idle_ms = t->srv->prof.opts.idle_timeout_ms;

    if (!t->topts.wait_for_data || gn__conn_transport_buffered(conn)) {
        hand_off(t, conn);
        return;
    }
    conn->io.cb = on_first_bytes;
    if (gn__io_watch(t->loop, &conn->io, GN__READ) < 0) {
        hand_off(t, conn); /* cannot watch it: a thread waits instead */
        return;
    }
    if (idle_ms != GN_NO_TIMEOUT)
        gn__idle_add(t->loop, &conn->idle, gn__timer_ms(idle_ms), silent_expired);
}

/* One step of a TLS handshake; the deadline (idle entry) runs from accept. */
static void handshake_step(struct gn__threads *t, gn_conn *conn)
{
    int rc = conn->transport->handshake(conn);
    unsigned want;

    if (rc == 0) {
        gn__idle_remove(t->loop, &conn->idle);
        await_data(t, conn);
        return;
    }
    if (rc == GN__AGAIN) {
        want = GN__READ | (gn__conn_transport_pending(conn) ? GN__WRITE : 0);
        if (gn__io_watch(t->loop, &conn->io, want) == 0)
            return;
        rc = GN_ENOMEM;
    }
    log_dropped(conn, gn__conn_error(conn)[0] ? gn__conn_error(conn) : gn_strerror(rc));
    drop_watched(t, conn);
}

static void on_handshake(gn_loop *loop, struct gn__io *io, unsigned events)
{
    gn_conn *conn = gn__container_of(io, gn_conn, io);

    (void)loop;
    (void)events;
    handshake_step(threads_of(conn), conn);
}

static void handshake_expired(struct gn__idle_entry *entry, uint64_t idle_ms)
{
    gn_conn *conn = gn__container_of(entry, gn_conn, idle);
    char why[96];

    snprintf(why, sizeof(why), "TLS handshake timed out (%llu ms since accept)",
             (unsigned long long)idle_ms);
    log_dropped(conn, why);
    drop_watched(threads_of(conn), conn);
}

/* A client that needs the watch: TLS (handshake first) or wait_for_data. */
static void watch_client(struct gn__threads *t, gn_conn *conn)
{
    uint32_t hs_ms;
    int rc;

    conn->io.cb = on_handshake; /* marks it watched, for stop_loop */
    if (!t->srv->tls) {
        await_data(t, conn);
        return;
    }
    rc = gn__tls_attach(conn, t->srv->tls, false);
    if (rc < 0) {
        log_dropped(conn, gn_strerror(rc));
        drop_watched(t, conn);
        return;
    }
    hs_ms = gn__tls_handshake_ms(t->srv->tls);
    if (hs_ms != GN_NO_TIMEOUT)
        gn__idle_add(t->loop, &conn->idle, gn__timer_ms(hs_ms), handshake_expired);
    handshake_step(t, conn);
}

/* ---- accepting -------------------------------------------------------- */

static void on_listener(gn_loop *loop, struct gn__io *io, unsigned events);

/* On the accepting thread: watch the listeners or not. */
static void set_listening(struct gn__threads *t, bool on)
{
    gn_server *srv = t->srv;

    if (t->listening == on || (on && t->retry_timer))
        return;
    t->listening = on;
    for (size_t i = 0; i < srv->nlisteners; i++) {
        srv->listeners[i].io.cb = on_listener;
        gn__io_watch(t->loop, &srv->listeners[i].io, on ? GN__READ : 0);
    }
}

/* A new client: refused at max_conns, else watched or queued.  Returns
 * whether accepting must stop. */
static bool accept_client(struct gn__threads *t, gn_transport kind, int fd,
                          const struct sockaddr *peer, socklen_t peer_len)
{
    bool watch = t->srv->tls || t->topts.wait_for_data, stop = false;
    gn_conn *conn;
    int rc = gn__blocking_conn_new(fd, kind, t->srv, &t->srv->prof, &conn);

    if (rc < 0) {
        close(fd); /* e.g. reset before the options: nobody to serve */
        return false;
    }
    gn__conn_set_peer(conn, peer, peer_len);
    pthread_mutex_lock(&t->mu);
    gn__server_link(t->srv, conn);
    if (t->srv->live > t->srv->prof.opts.max_conns) {
        char why[128];
        snprintf(why, sizeof(why), "max_conns (%zu) reached", t->srv->prof.opts.max_conns);
        refuse(t, conn, why);
        watch = false;
    } else if (watch) {
        t->watched++;
    } else {
        stop = admit(t, conn);
    }
    pthread_mutex_unlock(&t->mu);
    if (watch)
        watch_client(t, conn); /* outside the lock: a handshake step is work */
    return stop;
}

static void retry_due(gn_loop *loop, uint64_t id, void *arg)
{
    struct gn__threads *t = arg;
    bool full;

    (void)loop;
    (void)id;
    t->retry_timer = 0;
    pthread_mutex_lock(&t->mu);
    full = t->full;
    pthread_mutex_unlock(&t->mu);
    if (!full)
        set_listening(t, true);
}

/* Out of descriptors: refuse one waiting client with the spare one, so
 * clients hear a close rather than hang in the backlog; or pause. */
static void shed_load(struct gn__threads *t, int listen_fd, int err)
{
    if (err == EMFILE && gn__server_refuse_one(t->srv, listen_fd))
        return;
    gn__log(GN_LOG_WARN, "accept: %s; pausing accepts for %d ms", strerror(err), ACCEPT_RETRY_MS);
    /* Without a timer (ENOMEM) the next readiness simply retries. */
    if (gn_timer_start(t->loop, ACCEPT_RETRY_MS, 0, retry_due, t, &t->retry_timer) == 0)
        set_listening(t, false);
}

static void on_listener(gn_loop *loop, struct gn__io *io, unsigned events)
{
    struct listener *l = gn__container_of(io, struct listener, io);
    struct gn__threads *t = l->srv->threads;

    (void)loop;
    (void)events;
    /* A budget, so that a stream of new clients cannot starve the
     * watched ones; the listener, level-triggered, is reported again. */
    for (int n = 0; n < ACCEPT_BATCH && t->listening; n++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = gn__accept4(io->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            if (accept_client(t, gn_endpoint_transport(&l->ep), fd, (struct sockaddr *)&ss, len))
                set_listening(t, false);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            shed_load(t, io->fd, errno);
        return;
    }
}

/* A worker made room in the queue: accept again. */
static void on_resume(gn_loop *loop, struct gn__io *io, unsigned events)
{
    struct gn__threads *t = gn__container_of(io, struct gn__threads, resume);
    bool full;

    (void)loop;
    (void)events;
    gn__wakeup_drain(io->fd);
    pthread_mutex_lock(&t->mu);
    t->resume_sent = false;
    t->full = full = queue_full(t);
    pthread_mutex_unlock(&t->mu);
    set_listening(t, !full);
}

/* The accepting thread ends: its watched clients are closed (they had
 * nothing to be served for yet), its descriptors unwatched.  The list is
 * walked under the lock, as workers take their clients out of it. */
static void stop_loop(struct gn__threads *t)
{
    struct gn__list *node, *next;

    set_listening(t, false);
    gn__io_watch(t->loop, &t->resume, 0);
    if (t->retry_timer)
        gn_timer_cancel(t->loop, t->retry_timer);
    t->retry_timer = 0;
    pthread_mutex_lock(&t->mu);
    for (node = t->srv->conns.next; node != &t->srv->conns; node = next) {
        gn_conn *conn = gn__container_of(node, gn_conn, link);
        next = node->next;
        if (!conn->io.cb)
            continue;
        stop_watching(t, conn);
        t->watched--;
        drop_conn(t, conn);
    }
    if (t->queue_timer)
        gn_timer_cancel(t->loop, t->queue_timer);
    t->queue_timer = 0;
    pthread_mutex_unlock(&t->mu);
}

static bool stopping(struct gn__threads *t)
{
    bool stop;

    pthread_mutex_lock(&t->mu);
    stop = t->stopping;
    pthread_mutex_unlock(&t->mu);
    return stop;
}

static void *acceptor_main(void *arg)
{
    struct gn__threads *t = arg;

    gn__loop_ref(t->loop); /* runs until gn_loop_stop */
    if (gn__io_watch(t->loop, &t->resume, GN__READ) < 0)
        gn__log(GN_LOG_ERROR, "%s",
                "threaded server: cannot watch its wake-up; accepting "
                "resumes only at the next accept error");
    set_listening(t, true);
    /* The loop ends at gn_loop_stop, or when its wait fails (then again
     * after a pause, as accept errors do). */
    while (gn_loop_run(t->loop) < 0 && !stopping(t))
        usleep(ACCEPT_RETRY_MS * 1000);
    stop_loop(t);
    gn__loop_unref(t->loop);
    return NULL;
}

/* ---- starting and stopping -------------------------------------------- */

static const struct gn__server_kind threads_kind;

static void threads_free(struct gn__threads *t)
{
    gn_loop_free(t->loop); /* the accepting thread has unwatched everything */
    if (t->resume.fd >= 0)
        gn__wakeup_close(t->resume.fd);
    pthread_cond_destroy(&t->work_cv);
    pthread_cond_destroy(&t->done_cv);
    pthread_mutex_destroy(&t->mu);
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
    t->resume = (struct gn__io){.fd = -1, .cb = on_resume};
    gn__list_init(&t->exited);
    gn__list_init(&t->queue);
    t->handler = handler;
    t->topts = topts ? *topts : (gn_thread_options){0};
    if (!t->topts.max_threads)
        t->topts.max_threads = DEFAULT_MAX_THREADS;
    if (!t->topts.cache)
        t->topts.cache = DEFAULT_CACHE;
    if (!t->topts.queue)
        t->topts.queue = DEFAULT_QUEUE;
    t->queue_timeout_ms = gn__timeout_or(t->topts.queue_timeout_ms, GN_NO_TIMEOUT);
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->work_cv, NULL);
    pthread_cond_init(&t->done_cv, &attr);
    pthread_condattr_destroy(&attr);
    t->resume.fd = gn__wakeup_open();
    if (t->resume.fd < 0)
        return t->resume.fd;
    /* epoll: the watch may hold thousands of silent clients. */
    return gn_loop_new_backend(&t->loop, "epoll");
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
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_cond_broadcast(&t->work_cv);
    pthread_mutex_unlock(&t->mu);
    gn_loop_stop(t->loop);
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

/* Under the lock: wake conn's blocked calls (they return GN_ECLOSED)
 * and make its next ones fail.  A TLS connection keeps its sending side:
 * its worker sends close_notify when the handler returns (drop_conn),
 * so the client sees an orderly end; the deadline wakes a blocked write,
 * and the read side's shutdown a blocked read. */
static void wake_conn(gn_conn *conn)
{
    atomic_store(&conn->woken, true);
    if (!gn__conn_tls(conn)) {
        shutdown(conn->io.fd, SHUT_RDWR);
        gn__blocking_wake(conn); /* WSAPoll does not wake at a shutdown */
        return;
    }
    shutdown(conn->io.fd, SHUT_RD);
    gn_conn_set_deadline(conn, GN_DEADLINE_BOTH, gn_now_ms());
}

/* Under the lock: refuse the queued clients, wake every blocked call. */
static void end_connections(struct gn__threads *t)
{
    struct gn__list *node;
    gn_conn *conn;

    while ((conn = queue_pop(t)) != NULL)
        refuse(t, conn, "server closing");
    for (node = t->srv->conns.next; node != &t->srv->conns; node = node->next)
        wake_conn(gn__container_of(node, gn_conn, link));
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

/* The clients waiting in the TCP listeners' backlogs: for a listening
 * socket, Linux reports its accept queue's length as tcpi_unacked. */
static size_t count_backlog(const gn_server *srv)
{
    size_t n = 0;

#ifdef TCP_INFO /* Linux; elsewhere the backlog is not told */
    for (size_t i = 0; i < srv->nlisteners; i++) {
        struct tcp_info info;
        socklen_t len = sizeof(info);
        gn_transport kind = gn_endpoint_transport(&srv->listeners[i].ep);
        if ((kind == GN_TRANSPORT_TCP || kind == GN_TRANSPORT_TLS) &&
            getsockopt(srv->listeners[i].io.fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0)
            n += info.tcpi_unacked;
    }
#else
    (void)srv;
#endif
    return n;
}

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
                             .refused = t->refused,
                             .watched = t->watched};
    pthread_mutex_unlock(&t->mu);
    out->backlog = count_backlog(srv);
    return 0;
}
