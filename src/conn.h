/*
 * The connection core, shared by servers, clients and transports.  Never
 * installed.
 */
#ifndef GN_CONN_H
#define GN_CONN_H

#include <sys/uio.h>

#include "loop.h"

/* A stream transport: how bytes move on a connected descriptor.  TCP and
 * Unix stream sockets share the plain one; TLS wraps it.  Returns are
 * byte counts, 0 for EOF (read), GN__AGAIN, or a negative GN_E code. */
#define GN__AGAIN GN_EAGAIN
struct gn__transport {
    const char *name;
    ssize_t (*read)(gn_conn *conn, void *buf, size_t len);
    ssize_t (*writev)(gn_conn *conn, const struct iovec *iov, int iovcnt);
    ssize_t (*sendfile)(gn_conn *conn, int fd, int64_t *offset, size_t len);
    int (*shutdown)(gn_conn *conn); /* send FIN (or close_notify); may be
                                       GN__AGAIN while that waits to go out */
    /* Optional, for transports with a handshake and bytes of their own
     * (TLS): advance the handshake (0 done, GN__AGAIN, or a code); whether
     * own bytes wait to be written; write them (0, GN__AGAIN, a code). */
    int (*handshake)(gn_conn *conn);
    bool (*pending)(const gn_conn *conn);
    int (*flush)(gn_conn *conn);
    /* Input already taken from the socket and not yet read (TLS records
     * in memory): the socket's readiness will not announce it again. */
    bool (*buffered)(const gn_conn *conn);
    bool goodbye_on_close; /* gn_close runs shutdown first (close_notify) */
};

extern const struct gn__transport gn__transport_stream;

enum gn__conn_state {
    GN__CONNECTING,
    GN__OPEN,
    GN__CLOSED, /* finished: on_close is scheduled */
};

struct gn__chunk;

struct gn_conn {
    struct gn__io io;
    gn_loop *loop;
    gn_server *server;
    struct gn_conn *prev, *next; /* in the server's list or the loop's */
    const struct gn__transport *transport;
    gn_transport kind; /* what the address named: tcp, unix, tls */
    gn_handlers h;
    gn_options opts;
    void *user_data;
    gn_endpoint local, remote;
    enum gn__conn_state state;
    bool closing;        /* gn_close: flush, then close */
    bool shutdown_asked; /* gn_shutdown: FIN after flush */
    bool fin_sent;
    bool peer_ended; /* read EOF */
    bool paused_by_user;
    bool paused_by_output; /* output above high watermark */
    bool above_high;       /* on_drain owed */
    bool redeliver_queued;

    char *in_buf; /* unconsumed input lives at in_buf[in_start..] */
    size_t in_start, in_len, in_cap;

    struct gn__chunk *out_head, *out_tail, *spare;
    size_t out_queued;

    gn_conn_stats stats;
    uint64_t last_active_ms;
    uint64_t idle_timer;

    int close_reason;
    char error[GN_ERRBUF_SIZE];
    struct gn__deferred finalize;
    struct gn__deferred redeliver;

    struct gn__client *client;        /* connect state, client.c */
    struct gn__tls *tls;              /* TLS state, tls.c */
    const gn_transport_ops *user_ops; /* a transport of the user's (adopt.c) */
    struct gn__deferred ready;        /* on_connect of an adopted connection */
    bool handshaking;                 /* transport handshake under way: no app data yet */
    uint64_t handshake_timer;

    /* Blocking mode (blocking.c): no loop, no handlers, no output queue. */
    bool blocking;
    atomic_bool woken; /* the threaded server is closing: calls fail */
};

/* Parse an address for gn_listen/gn_connect: a transport they serve. */
int gn__parse_stream_address(const char *address, unsigned flags, gn_endpoint *ep, char *errbuf,
                             size_t errlen);

/* Connection objects: from the loop's pool, back to it after on_close. */
void gn__conn_dispose(gn_loop *loop, gn_conn *conn);
void gn__conn_pool_free(gn_loop *loop);

/* Defaults filled into a copy of the user's options. */
void gn__options_resolve(gn_options *out, const gn_options *in, bool server);

/* Create a connection around a connected, non-blocking fd (server) or
 * with fd -1 (client, still connecting). */
int gn__conn_new(gn_loop *loop, gn_server *srv, int fd, const gn_handlers *h,
                 const gn_options *opts, gn_conn **out);
/* The connection is established on fd: set options, read endpoints,
 * start watching. */
int gn__conn_established(gn_conn *conn, int fd);
/* Fail: record code and message, close at once, schedule on_error and
 * on_close.  Idempotent. */
void gn__conn_fail(gn_conn *conn, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Recompute what the loop watches on conn's fd. */
void gn__conn_update_watch(gn_conn *conn);

/* Begin the transport's handshake on an established connection (TLS);
 * on_accept or on_connect wait for its end.  0 or a code. */
int gn__conn_start_handshake(gn_conn *conn, uint32_t timeout_ms);
/* The handshake is over: the server or client side takes it from here. */
void gn__server_conn_ready(gn_conn *conn);
void gn__client_conn_ready(gn_conn *conn);
/* Whether the transport holds bytes of its own to write (TLS); input
 * it has read from the socket but not handed out. */
bool gn__conn_transport_pending(const gn_conn *conn);
bool gn__conn_transport_buffered(const gn_conn *conn);

/* Finish gn_close/gn_shutdown once the queue is empty. */
void gn__conn_check_done(gn_conn *conn);

/* I/O paths (conn_io.c). */
void gn__conn_on_io(gn_loop *loop, struct gn__io *io, unsigned events);
int gn__conn_send(gn_conn *conn, const void *buf, size_t len);
void gn__conn_flush(gn_conn *conn);
void gn__conn_deliver_buffered(gn_conn *conn);
/* Offer buffered input again after the current batch (resume, or a
 * transport holding input the socket will not announce). */
void gn__conn_schedule_redeliver(gn_conn *conn);
/* Read what the transport holds already (TLS records in memory). */
void gn__conn_read_transport_buffered(gn_conn *conn);

/* Abort every connection and close every server of the loop. */
void gn__conns_abort_all(gn_loop *loop);

/* Server hooks (server.c). */
void gn__server_conn_gone(gn_server *srv, gn_conn *conn);
void gn__server_abort(gn_server *srv);
void gn__server_conn_closing(gn_server *srv);
gn_server *gn__server_next(gn_server *srv);

/* Client hooks (client.c). */
void gn__client_free(gn_conn *conn);
void gn__client_link(gn_loop *loop, gn_conn *conn);
void gn__client_unlink(gn_loop *loop, gn_conn *conn);

/* RFC 8305 section 4: addresses reordered so the families alternate,
 * the resolver's first choice first (client.c). */
size_t gn__interleave_families(const gn_endpoint *in, size_t n, gn_endpoint *out);

/* Blocking mode (blocking.c). */
/* A blocking connection around connected, non-blocking fd (options set,
 * endpoints read); on failure fd is left open for the caller. */
int gn__blocking_conn_new(int fd, gn_transport kind, gn_server *srv, const gn_options *opts,
                          gn_conn **out);
void gn__blocking_conn_free(gn_conn *conn);
int gn__blocking_close(gn_conn *conn, bool reset);
int gn__blocking_shutdown(gn_conn *conn);
int gn__blocking_send_file(gn_conn *conn, int fd, int64_t offset, uint64_t len);
struct gn__tls_config;
/* A threaded server's TLS handshake, within the configured timeout. */
int gn__blocking_tls_accept(gn_conn *conn, struct gn__tls_config *cfg);

/* Socket helpers (socket.c). */
int gn__socket_tcp_options(int fd, const gn_options *opts);
/* The options of a newly connected socket of kind (TCP's for TCP and
 * TLS, none for Unix sockets), then its endpoints. */
int gn__socket_setup(int fd, gn_transport kind, const gn_options *opts, gn_endpoint *local,
                     gn_endpoint *remote);
int gn__socket_endpoints(int fd, gn_transport transport, gn_endpoint *local, gn_endpoint *remote);
/* The pending error of a socket (SO_ERROR) as a GN_E code, 0 if none. */
int gn__socket_error(int fd);
int gn__socket_set_nonblocking(int fd);
/* sendfile for transports that must see the bytes (TLS, the user's): a
 * chunk of the file at *offset read and written through writev. */
ssize_t gn__sendfile_by_copy(gn_conn *conn, int fd, int64_t *offset, size_t len,
                             ssize_t (*writev)(gn_conn *conn, const struct iovec *iov, int iovcnt));
/* Make close(fd) send RST instead of FIN (SO_LINGER 0). */
void gn__socket_reset_on_close(int fd);

#endif
