/*
 * A server's insides: what every server has (server_base.c), and the
 * table through which the public calls reach its kind, the event-driven
 * server (server.c) or the threaded one (server_threads.c).  Never
 * installed.
 */
#ifndef GN_SERVER_H
#define GN_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "conn.h"

#define MAX_LISTENERS 8

struct listener {
    struct gn__io io;
    gn_server *srv;
    gn_endpoint ep;
    /* A Unix socket file this listener created, removed on close. */
    dev_t file_dev;
    ino_t file_ino;
    bool owns_file;
    bool accepting; /* a completion backend accepts on it */
};

/* What differs between the kinds of server. */
struct gn__server_kind {
    gn__io_fn on_listener; /* a listener is readable; NULL: no loop watches */
    void (*close)(gn_server *srv, uint32_t grace_ms);
    size_t (*conn_count)(const gn_server *srv);
    int (*foreach)(gn_server *srv, void (*fn)(gn_conn *conn, void *arg), void *arg);
};

struct gn_server {
    gn_loop *loop; /* NULL for a threaded server */
    const struct gn__server_kind *kind;
    struct gn__handle handle; /* the loop's: gn_loop_free closes the server */
    struct listener listeners[MAX_LISTENERS];
    size_t nlisteners;
    struct gn__conn_profile prof; /* its connections' handlers and options */
    struct gn__list conns;        /* every connection not yet finalized
                                     (one loop; with several, the shards') */
    atomic_size_t live;           /* of those, the ones not closed */
    bool closing;
    bool accept_paused;
    bool free_queued;
    uint64_t grace_timer, retry_timer;
    int spare_fd;
    void *user_data;
    struct gn__deferred free_later;
    struct gn__threads *threads; /* set for a threaded server */
    struct gn__tls_config *tls;  /* set for a tls:// server */
    struct gn__loops *loops;     /* set for a server on several loops */
    uint32_t close_grace_ms;     /* gn_server_close's, for every loop */
};

/* A server of kind listening on address (parsed, options resolved, TLS
 * set up, listeners open and watched when kind has on_listener, spare
 * descriptor taken); freed again on failure, with errbuf saying why. */
int gn__server_open(gn_loop *loop, const struct gn__server_kind *kind, const char *address,
                    const gn_options *opts, gn_server **out, char *errbuf, size_t errlen);
/* Close the listeners and the spare descriptor, free the TLS settings
 * and srv. */
void gn__server_free(gn_server *srv);

void gn__server_close_listeners(gn_server *srv);
/* The list of live connections (through conn->link): link counts
 * the connection live; unlink takes it out (the caller adjusts live). */
void gn__server_link(gn_server *srv, gn_conn *conn);
void gn__server_unlink(gn_server *srv, gn_conn *conn);
/* Unix stream listeners (unix.c): bind to ep, replacing a stale socket
 * file (why says why a file was not replaced), chmod to opts->unix_mode;
 * and remove the file on close if it is still ours. */
int gn__unix_bind(int fd, const gn_endpoint *ep, const gn_options *opts, struct listener *l,
                  char *why, size_t whylen);
void gn__unix_unlink(struct listener *l);
/* The descriptor kept in reserve for shedding clients out of EMFILE;
 * refuse_one spends it on one waiting client (accept, close) and takes
 * it again.  false when there is no spare. */
bool gn__server_refuse_one(gn_server *srv, int listen_fd);

/* ---- several loops (server_loops.c) ------------------------------------ */

/* One loop's part of a server on several loops: the connections that loop
 * serves.  Shard 0 is the server's own loop (loop 0, which accepts); the
 * others run on threads the server owns.  conns, grace_timer and closing
 * are touched on the shard's own thread only, or by the thread that
 * stopped the world (gn__loops_stop_world). */
struct gn__shard {
    gn_server *srv;
    gn_loop *loop;
    size_t index;
    struct gn__list conns;
    atomic_size_t live; /* counted in by loop 0, out by its own loop */
    uint64_t grace_timer;
    bool closing;
    bool keepalive;        /* holds a reference on its loop until closing */
    bool exited;           /* under the lock: its thread left its loop */
    uint64_t parked_epoch; /* under the lock: the last stop it parked for */
    pthread_t tid;
    bool started;
};

struct gn__loops {
    size_t n;
    struct gn__shard *shards;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t running;  /* threads still in their loops */
    size_t pending0; /* tasks posted to loop 0 that have not run */
    bool abandoned;  /* gn__loops_start failed: tell loop 0 nothing */
    /* Stopping the world: who stopped it (SIZE_MAX: nobody), how many
     * times inside itself, which stop, how many shards are parked for it. */
    size_t owner, depth, parked;
    uint64_t epoch;
    size_t next;                     /* loop 0's: where the search for the least loaded starts */
    void (*settled)(gn_server *srv); /* loop 0: a task of its ran; srv may be done */
    void (*close0)(gn_server *srv, uint32_t grace_ms); /* gn_server_close on loop 0 */
    uint32_t close0_grace;                             /* under the lock */
};

/* Make loops 1..n-1 (on loop 0's backend) and start their threads; each
 * loop is kept running until its shard closes.  settled runs on loop 0
 * after each task posted there; close0 is gn_server_close's work there.
 * 0 or a code (everything undone). */
int gn__loops_start(gn_server *srv, size_t n, void (*settled)(gn_server *srv),
                    void (*close0)(gn_server *srv, uint32_t grace_ms));
/* Join the threads (all must have left their loops) and free the loops. */
void gn__loops_free(gn_server *srv);
/* The shard of loop; that of the calling thread (shard 0 on any thread
 * the server does not own). */
struct gn__shard *gn__loops_shard(gn_server *srv, const gn_loop *loop);
struct gn__shard *gn__loops_current(gn_server *srv);
/* Loop 0: the shard with the fewest live connections. */
struct gn__shard *gn__loops_pick(gn_server *srv);
/* gn_server_close from a thread other than loop 0's: close0 runs on
 * loop 0 soon (a task, counted until it has run). */
void gn__loops_close_on_loop0(gn_server *srv, uint32_t grace_ms);
/* Drop shard s's hold on its loop: its thread ends once the loop has
 * nothing left (on s's thread). */
void gn__loops_release(struct gn__shard *s);
/* Every thread has left its loop and loop 0 has run every task posted to
 * it: the server may be freed. */
bool gn__loops_done(gn_server *srv);
/* Loop 0, its loop being freed: wait until every thread has left its
 * loop (stopping for others meanwhile); tasks posted to loop 0 will not
 * run. */
void gn__loops_wait_exited(gn_server *srv);
/* Pause every other shard's loop between two batches of events, so the
 * caller may touch any connection; nests.  resume undoes one stop. */
void gn__loops_stop_world(gn_server *srv);
void gn__loops_resume_world(gn_server *srv);

#endif
