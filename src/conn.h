/*
 * The connection core, shared by servers, clients and transports.  Never
 * installed.
 */
#ifndef GN_CONN_H
#define GN_CONN_H

#include <sys/uio.h>

#include "idle.h"
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
struct gn__conn_rate;
struct gn__reconnect;

/* What a connection's calls do in its mode, chosen when it is made:
 * event-driven (conn.c) or blocking (blocking.c).  The public calls
 * dispatch through it, so the core has no per-mode branches. */
struct gn__conn_mode {
    bool blocking;
    int (*close)(gn_conn *conn, bool reset);
    int (*shutdown)(gn_conn *conn);
    int (*send)(gn_conn *conn, const void *buf, size_t len);
    int (*send_file)(gn_conn *conn, int fd, int64_t offset, uint64_t len);
    int (*set_reading)(gn_conn *conn, bool on);
    int (*set_handlers)(gn_conn *conn, const gn_handlers *h);
};

extern const struct gn__conn_mode gn__conn_mode_async;
extern const struct gn__conn_mode gn__conn_mode_blocking;

/* Who made a connection and hears of its life: a server, a client, an
 * adopted socket, the threaded server.  The core calls these and names
 * no owner (as nginx's listening socket calls ls->handler(c)). */
struct gn__conn_owner {
    /* The transport's handshake is over: hand the connection to the user
     * (on_accept, on_connect).  Called once, only while OPEN. */
    void (*ready)(gn_conn *conn);
    /* The connection has just closed: descriptor gone, on_close pending.
     * NULL when the owner needs no word. */
    void (*closing)(gn_conn *conn);
    /* on_close has run; the object is freed when this returns. */
    void (*gone)(gn_conn *conn);
    /* The calls of the connections it makes (event-driven or blocking). */
    const struct gn__conn_mode *mode;
    /* conn->owner_data is the gn_server that gn_conn_server reports. */
    bool is_server;
};

/* Handlers and options, shared by a server's connections and kept in the
 * extension of a connection that has its own (clients, gn_conn_set_handlers). */
struct gn__conn_profile {
    const struct gn__conn_owner *owner;
    gn_handlers h;
    gn_options opts;
};

/* What a connection needs only sometimes, allocated on first use and
 * freed with it, so that an idle connection stays small. */
struct gn__conn_ext {
    gn_conn *conn;               /* whose it is */
    char error[GN_ERRBUF_SIZE];  /* why it failed; "" until then */
    struct gn__conn_profile own; /* when conn->prof is its own */
    gn_endpoint local, remote;   /* as handed out by gn_conn_local/remote */
    bool have_local, have_remote;
    struct gn__handle handle;  /* the loop's, when no server owns it */
    struct gn__tls *tls;       /* TLS state, tls.c */
    const gn_io_ops *user_ops; /* a transport of the user's (adopt.c) */
    struct gn__deferred ready; /* on_connect of an adopted connection */
    uint64_t handshake_timer;
    /* Blocking mode (blocking_deadline.c), under its lock: the read and
     * write deadlines (gn_now_ms; GN_NO_DEADLINE for none) and the
     * eventfd + 1 of the thread waiting in each direction (0: none). */
    uint64_t deadline[2];
    int waiter[2];
    struct gn__conn_rate *rate;      /* rate limits, ratelimit.c */
    struct gn__reconnect *reconnect; /* a reconnecting client's chain, reconnect.c */
};

/* Input the handler left unconsumed, at data[start..start+len). */
struct gn__inbuf {
    size_t start, len, cap;
    char data[];
};

/* The output queue: chunks of copied bytes and file ranges, in order. */
struct gn__outq {
    struct gn__list chunks;
    struct gn__chunk *spare; /* one spent chunk kept for the next send */
    size_t queued;           /* bytes copied in and not yet written */
};

struct gn_conn {
    struct gn__io io;
    gn_loop *loop;
    void *owner_data;     /* the owner's: its gn_server, or a client's state */
    struct gn__list link; /* in its server's list of connections */
    const struct gn__transport *transport;
    const struct gn__conn_profile *prof; /* its server's, or ext->own */
    void *user_data;
    struct gn__conn_ext *ext; /* NULL until needed */
    struct gn__inbuf *in;     /* NULL while no input waits */
    struct gn__outq *out;     /* NULL while nothing is queued */
    uint64_t bytes_in, bytes_out, reads, writes;
    struct gn__idle_entry idle;  /* in the loop's queue for idle_timeout_ms */
    struct gn__deferred later;   /* finalize once CLOSED, else redeliver */
    unsigned state : 2;          /* enum gn__conn_state */
    unsigned kind : 3;           /* gn_transport: what the address named */
    unsigned announced : 1;      /* the user knows it: handlers may run */
    unsigned closing : 1;        /* gn_close: flush, then close */
    unsigned shutdown_asked : 1; /* gn_shutdown: FIN after flush */
    unsigned fin_sent : 1;
    unsigned peer_ended : 1; /* read EOF */
    unsigned paused_by_user : 1;
    unsigned paused_by_output : 1; /* output above high watermark */
    unsigned above_high : 1;       /* on_drain owed */
    unsigned redeliver_queued : 1;
    unsigned handshaking : 1; /* transport handshake under way: no app data yet */
    unsigned receiving : 1;   /* a completion backend receives for it */
    unsigned recv_held : 1;   /* ... or holds it paused: stop before closing */
    unsigned eof_pending : 1; /* received the end while paused: tell on resume */
    unsigned framed : 1;      /* prof->opts.framing cuts input for on_message */
    unsigned rate_limited : 1;    /* ext->rate limits reading or writing */
    unsigned rate_wait_read : 1;  /* out of read tokens: not reading */
    unsigned rate_wait_write : 1; /* out of write tokens: output waits */
    unsigned user_ended : 1;      /* gn_close, gn_shutdown or gn_abort was called */
    int16_t close_reason;
    /* Blocking mode (blocking.c): the threaded server is closing. */
    atomic_bool woken;
    /* Blocking mode (blocking.c), the reader's own: the last read came
     * back short, so the socket's queue was empty and the next read
     * waits for input before it tries. */
    bool read_drained;
    /* The peer's address as accept or connect gave it, when it fits
     * (IPv4, IPv6, unnamed or short Unix addresses); else in ext. */
    uint8_t peer_len;
    unsigned char peer[28];
};

/* Bytes waiting in the output queue (0 when there is none). */
static inline size_t gn__conn_queued(const gn_conn *conn)
{
    return conn->out ? conn->out->queued : 0;
}

/* The extension (conn_ext.c): created on first use (NULL: out of memory),
 * freed with the connection. */
struct gn__conn_ext *gn__conn_ext(gn_conn *conn);
void gn__conn_ext_free(gn_conn *conn);
static inline struct gn__tls *gn__conn_tls(const gn_conn *conn)
{
    return conn->ext ? conn->ext->tls : NULL;
}
/* Why the connection failed, "" if nobody said; set it (lost, quietly,
 * when out of memory: the code still tells). */
const char *gn__conn_error(const gn_conn *conn);
void gn__conn_set_error(gn_conn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The peer's address, as accept or connect gave it; or asked of the
 * socket.  Formatted, "?" when unknown. */
void gn__conn_set_peer(gn_conn *conn, const struct sockaddr *sa, socklen_t len);
int gn__conn_read_peer(gn_conn *conn);
void gn__conn_format_peer(const gn_conn *conn, char *buf, size_t len);

/* Parse an address for gn_listen/gn_connect: a transport they serve. */
int gn__parse_stream_address(const char *address, unsigned flags, gn_endpoint *ep, char *errbuf,
                             size_t errlen);

/* Freed connections kept by each loop (see pool.h). */
#if defined(__SANITIZE_ADDRESS__)
#define GN__CONN_POOL_MAX 0 /* under ASan, freed means freed: use-after-free shows */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GN__CONN_POOL_MAX 0
#endif
#endif
#ifndef GN__CONN_POOL_MAX
#define GN__CONN_POOL_MAX 256
#endif

/* Defaults filled into a copy of the user's options (checked first by
 * gn__options_check: a framing it would refuse is dropped here). */
void gn__options_resolve(gn_options *out, const gn_options *in, bool server);
/* What gn__options_resolve cannot fill in: 0, or GN_EINVAL with errbuf
 * naming address and the reason ("':7000': framing: ..."). */
int gn__options_check(const gn_options *opts, const char *address, char *errbuf, size_t errlen);

/* Create an event-driven connection around a connected, non-blocking fd
 * (server) or with fd -1 (client, still connecting); owner_data is its
 * owner's.  new shares prof (a server's, naming the owner; it must
 * outlive the connection); new_own keeps owner, h and opts of its own. */
int gn__conn_new(gn_loop *loop, void *owner_data, int fd, const struct gn__conn_profile *prof,
                 gn_conn **out);
int gn__conn_new_own(gn_loop *loop, const struct gn__conn_owner *owner, void *owner_data, int fd,
                     const gn_handlers *h, const gn_options *opts, gn_conn **out);
/* A connection no server owns is one of the loop's handles: close is
 * called by gn_loop_free.  0 or GN_ENOMEM. */
int gn__conn_register(gn_conn *conn, void (*close)(struct gn__handle *h));
/* The connection is the user's now: on_connect, then flush what was sent
 * before it (a client's or an adopted connection's ready hook). */
void gn__conn_announce(gn_conn *conn);
/* Give back a connection that never became the user's (gn__conn_new's
 * undo, before any event). */
void gn__conn_discard(gn_conn *conn);

/* The engine (conn_io.c): state machine, data path, handshake. */
/* The connection is established on fd: set options, read endpoints,
 * start watching. */
int gn__conn_established(gn_conn *conn, int fd);
/* Close the descriptor now (with a reset if asked), schedule on_close. */
void gn__conn_finish(gn_conn *conn, int reason, bool reset);
/* Fail: record code and message, close at once, schedule on_error and
 * on_close.  Idempotent. */
void gn__conn_fail(gn_conn *conn, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Recompute what the loop watches on conn's fd. */
void gn__conn_update_watch(gn_conn *conn);
/* Begin the transport's handshake on an established connection (TLS);
 * the owner's ready hook waits for its end.  0 or a code. */
int gn__conn_start_handshake(gn_conn *conn, uint32_t timeout_ms);
/* Whether the transport holds bytes of its own to write (TLS); input
 * it has read from the socket but not handed out. */
bool gn__conn_transport_pending(const gn_conn *conn);
bool gn__conn_transport_buffered(const gn_conn *conn);
/* Finish gn_close/gn_shutdown once the queue is empty. */
void gn__conn_check_done(gn_conn *conn);
void gn__conn_on_io(gn_loop *loop, struct gn__io *io, unsigned events);
int gn__conn_send(gn_conn *conn, const void *buf, size_t len);
void gn__conn_flush(gn_conn *conn);
/* Take an open connection off its loop, for blocking mode: unwatched, no
 * timers, no handlers, no owner; its input buffer and TLS state stay.
 * GN_ECLOSED when it is closing or has output queued. */
int gn__conn_detach(gn_conn *conn);
/* Offer buffered input again after the current batch (resume, or a
 * transport holding input the socket will not announce). */
void gn__conn_schedule_redeliver(gn_conn *conn);
/* Rate limits: apply the options' read_rate_limit and write_rate_limit
 * (conn.c; 0 or GN_ENOMEM), and go on in a direction (enum gn__rate_dir
 * of ratelimit.h) whose tokens are back (conn_io.c). */
int gn__conn_rate_from_options(gn_conn *conn);
void gn__conn_rate_wake(gn_conn *conn, int dir);

/* Messages (conn_message.c): cut data into messages for on_message while
 * conn is open, reading and framed; returns the bytes they took.  A
 * message that cannot fit max_message stops it with *code GN_EMSGSIZE
 * and the reason in why (*code is left alone otherwise). */
size_t gn__messages_deliver(gn_conn *conn, const char *data, size_t len, int *code, char *why,
                            size_t whylen);

/* Socket helpers (socket.c). */
int gn__socket_tcp_options(int fd, const gn_options *opts);
/* The options of a newly connected socket of kind (TCP's for TCP and
 * TLS, none for Unix sockets). */
int gn__socket_options(int fd, gn_transport kind, const gn_options *opts);
int gn__socket_endpoints(int fd, gn_transport transport, gn_endpoint *local, gn_endpoint *remote);
/* The pending error of a socket (SO_ERROR) as a GN_E code, 0 if none. */
int gn__socket_error(int fd);
int gn__socket_set_nonblocking(int fd);
/* sendfile for transports that must see the bytes (TLS, the user's): a
 * chunk of the file at *offset read and written through writev. */
ssize_t gn__sendfile_by_copy(gn_conn *conn, int fd, int64_t *offset, size_t len,
                             ssize_t (*write_fn)(gn_conn *conn, const struct iovec *iov, int iovcnt));
/* Make close(fd) send RST instead of FIN (SO_LINGER 0). */
void gn__socket_reset_on_close(int fd);

#endif
