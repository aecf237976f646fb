/*
 * A server's insides, shared by the event-driven server (server.c) and
 * the threaded one (server_threads.c).  Never installed.
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
};

struct gn_server {
    gn_loop *loop;
    gn_server *prev, *next; /* the loop's servers */
    struct listener listeners[MAX_LISTENERS];
    size_t nlisteners;
    gn_handlers h;
    gn_options opts;
    gn_conn *head, *tail; /* every connection not yet finalized */
    size_t live;          /* of those, the ones not closed */
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

/* A server of either kind listening on address (parsed, options resolved,
 * TLS set up, listeners open, watched by loop when there is one); freed
 * again on failure, with errbuf saying why. */
int gn__server_open(gn_loop *loop, const char *address, const gn_options *opts, gn_server **out,
                    char *errbuf, size_t errlen);
/* The TLS configuration of a tls:// server from opts->tls. */
int gn__server_tls_setup(gn_server *srv, const gn_endpoint *ep, const char *address, char *errbuf,
                         size_t errlen);

/* Listen on every address ep names, adding to srv->listeners (watched
 * by srv->loop when there is one). */
int gn__server_listen(gn_server *srv, const gn_endpoint *ep, char *errbuf, size_t errlen);
void gn__server_close_listeners(gn_server *srv);
/* The list of live connections: link counts the connection live;
 * unlink takes it out of the list (the caller adjusts live). */
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
int gn__open_spare_fd(void);
bool gn__server_refuse_one(gn_server *srv, int listen_fd);

/* The threaded server (server_threads.c). */
void gn__threads_close(gn_server *srv, uint32_t grace_ms);
size_t gn__threads_conn_count(const gn_server *srv);
int gn__threads_foreach(gn_server *srv, void (*fn)(gn_conn *conn, void *arg), void *arg);

#endif
