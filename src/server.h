/*
 * A server's insides: what every server has (server_base.c), and the
 * table through which the public calls reach its kind, the event-driven
 * server (server.c) or the threaded one (server_threads.c).  Never
 * installed.
 */
#ifndef GN_SERVER_H
#define GN_SERVER_H

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
    struct gn__list conns;        /* every connection not yet finalized */
    size_t live;                  /* of those, the ones not closed */
    bool closing;
    bool accept_paused;
    bool free_queued;
    uint64_t grace_timer, retry_timer;
    int spare_fd;
    void *user_data;
    struct gn__deferred free_later;
    struct gn__threads *threads; /* set for a threaded server */
    struct gn__tls_config *tls;  /* set for a tls:// server */
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

#endif
