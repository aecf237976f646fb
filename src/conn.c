/*
 * Connections as the user sees them: options and their defaults, making
 * a connection for an owner, the event-driven mode's table, and the
 * public calls, which reach either mode through conn->prof->owner->mode.  The state
 * machine and the data path beneath them live in conn_io.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h> /* SOMAXCONN */
#include <unistd.h>

#include "conn.h"
#include "conn_queue.h"
#include "frame.h"
#include "ratelimit.h"
#include "reserved.h"
#include "tls.h"

#define DEFAULT_BACKLOG            SOMAXCONN
#define DEFAULT_MAX_CONNS          10000
#define DEFAULT_SERVER_IDLE_MS     300000
#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_MAX_INPUT          (1u << 20)
#define DEFAULT_MAX_OUTPUT         (16u << 20)
#define DEFAULT_HIGH_WATERMARK     (1u << 20)
#define DEFAULT_LOW_WATERMARK      (64u << 10)

/* The framing's defaults; the input buffer must hold its longest
 * message, or that message would fail as over max_input instead. */
static void resolve_framing(gn_options *opts)
{
    if (gn__framing_resolve(&opts->framing, &opts->framing, opts->max_input, NULL, 0) < 0)
        opts->framing = (gn_framing){0};
    if (gn__framing_span(&opts->framing) > opts->max_input)
        opts->max_input = gn__framing_span(&opts->framing);
}

void gn__options_resolve(gn_options *out, const gn_options *in, bool server)
{
    static const gn_options none;

    *out = in ? *in : none;
    if (out->backlog <= 0)
        out->backlog = DEFAULT_BACKLOG;
    if (!out->max_conns)
        out->max_conns = DEFAULT_MAX_CONNS;
    if (!out->idle_timeout_ms)
        out->idle_timeout_ms = server ? DEFAULT_SERVER_IDLE_MS : GN_NO_TIMEOUT;
    if (!out->connect_timeout_ms)
        out->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (!out->max_input)
        out->max_input = DEFAULT_MAX_INPUT;
    if (!out->max_output)
        out->max_output = DEFAULT_MAX_OUTPUT;
    if (!out->high_watermark)
        out->high_watermark = DEFAULT_HIGH_WATERMARK;
    if (out->high_watermark > out->max_output)
        out->high_watermark = out->max_output;
    if (!out->low_watermark)
        out->low_watermark = DEFAULT_LOW_WATERMARK;
    if (out->low_watermark > out->high_watermark)
        out->low_watermark = out->high_watermark / 2;
    resolve_framing(out);
}

int gn__options_check(const gn_options *opts, const char *address, char *errbuf, size_t errlen)
{
    char why[GN__FRAME_WHY_SIZE];
    gn_framing f;

    int rc = gn__options_reserved_clear(opts, errbuf, errlen);

    if (rc < 0)
        return rc;
    if (!opts || gn__framing_resolve(&f, &opts->framing, DEFAULT_MAX_INPUT, why, sizeof(why)) == 0)
        return 0;
    return gn__errbuf_input(errbuf, errlen, GN_EINVAL, address, strlen(address), "%s", why);
}

int gn__parse_stream_address(const char *address, unsigned flags, gn_endpoint *ep, char *errbuf,
                             size_t errlen)
{
    int rc = gn_endpoint_parse(address, flags, ep, errbuf, errlen);

    if (rc < 0)
        return rc;
    if (gn_endpoint_transport(ep) != GN_TRANSPORT_TCP &&
        gn_endpoint_transport(ep) != GN_TRANSPORT_UNIX &&
        gn_endpoint_transport(ep) != GN_TRANSPORT_TLS)
        return gn__errbuf_input(errbuf, errlen, GN_EFAMILY, address, strlen(address),
                                "a %s address carries datagrams, not a stream: use "
                                "gn_dgram_open (tcp://, unix: and tls:// are streams)",
                                gn_transport_name(gn_endpoint_transport(ep)));
    return 0;
}

static gn_conn *conn_alloc(gn_loop *loop, const struct gn__conn_owner *owner, void *owner_data,
                           int fd)
{
    gn_conn *conn = gn__pool_get(&loop->conn_pool, sizeof(*conn));

    if (!conn)
        return NULL;
    conn->io.fd = fd;
    conn->io.cb = gn__conn_on_io;
    conn->loop = loop;
    conn->owner_data = owner_data;
    gn__list_init(&conn->link);
    gn__list_init(&conn->idle.node);
    conn->transport = &gn__transport_stream;
    conn->kind = GN_TRANSPORT_TCP;
    conn->state = fd < 0 ? GN__CONNECTING : GN__OPEN;
    conn->announced = !owner->is_server; /* a server's, at on_accept */
    return conn;
}

int gn__conn_rate_from_options(gn_conn *conn)
{
    const gn_options *o = &conn->prof->opts;
    gn_rate_limit limit = {.read_bytes_per_s = o->read_rate_limit,
                           .write_bytes_per_s = o->write_rate_limit};
    struct gn__conn_ext *ext;

    if (!limit.read_bytes_per_s && !limit.write_bytes_per_s)
        return 0;
    ext = gn__conn_ext(conn);
    if (!ext)
        return GN_ENOMEM;
    return gn__rate_set(conn, ext, &limit,
                        conn->prof->owner->mode->blocking ? NULL : gn__conn_rate_wake);
}

int gn__conn_new(gn_loop *loop, void *owner_data, int fd, const struct gn__conn_profile *prof,
                 gn_conn **out)
{
    gn_conn *conn = conn_alloc(loop, prof->owner, owner_data, fd);

    if (!conn)
        return GN_ENOMEM;
    conn->prof = prof;
    conn->user_data = prof->opts.user_data;
    conn->framed = prof->opts.framing.kind != GN_FRAMING_NONE;
    if (gn__conn_rate_from_options(conn) < 0) {
        gn__conn_ext_free(conn);
        gn__pool_put(&loop->conn_pool, conn, GN__CONN_POOL_MAX);
        return GN_ENOMEM;
    }
    gn__loop_ref(loop);
    *out = conn;
    return 0;
}

int gn__conn_new_own(gn_loop *loop, const struct gn__conn_owner *owner, void *owner_data, int fd,
                     const gn_handlers *h, const gn_options *opts, gn_conn **out)
{
    gn_conn *conn = conn_alloc(loop, owner, owner_data, fd);

    if (!conn || !gn__conn_ext(conn)) {
        gn__pool_put(&loop->conn_pool, conn, GN__CONN_POOL_MAX);
        return GN_ENOMEM;
    }
    conn->ext->own = (struct gn__conn_profile){.owner = owner, .h = *h, .opts = *opts};
    conn->prof = &conn->ext->own;
    conn->user_data = opts->user_data;
    conn->framed = opts->framing.kind != GN_FRAMING_NONE;
    if (gn__conn_rate_from_options(conn) < 0) {
        gn__conn_ext_free(conn);
        gn__pool_put(&loop->conn_pool, conn, GN__CONN_POOL_MAX);
        return GN_ENOMEM;
    }
    gn__loop_ref(loop);
    *out = conn;
    return 0;
}

int gn__conn_register(gn_conn *conn, void (*close)(struct gn__handle *h))
{
    struct gn__conn_ext *ext = gn__conn_ext(conn);

    if (!ext)
        return GN_ENOMEM;
    ext->handle.close = close;
    gn__loop_handle_add(conn->loop, &ext->handle, false);
    return 0;
}

void gn__conn_announce(gn_conn *conn)
{
    if (conn->prof->h.on_connect)
        conn->prof->h.on_connect(conn);
    if (conn->state == GN__OPEN)
        gn__conn_flush(conn); /* what was sent while connecting */
}

/* ---- the event-driven mode ------------------------------------------ */

static int async_close(gn_conn *conn, bool reset)
{
    if (conn->state == GN__CLOSED)
        return 0;
    if (reset) {
        gn__conn_finish(conn, 0, true);
        return 0;
    }
    if (conn->closing)
        return 0;
    conn->closing = true;
    if (conn->state == GN__CONNECTING || conn->handshaking) {
        gn__conn_finish(conn, 0, false); /* nothing of the user's to flush yet */
        return 0;
    }
    gn__conn_update_watch(conn); /* a closing connection reads no more */
    gn__conn_check_done(conn);
    return 0;
}

static int async_shutdown(gn_conn *conn)
{
    if (conn->state == GN__CLOSED || conn->shutdown_asked || conn->closing)
        return 0;
    conn->shutdown_asked = true;
    if (conn->state == GN__OPEN)
        gn__conn_check_done(conn);
    return 0;
}

static int send_check(gn_conn *conn, uint64_t len)
{
    if (conn->state == GN__CLOSED || conn->closing || conn->shutdown_asked)
        return GN_ECLOSED;
    /* All or nothing: a send that would pass the cap queues nothing, so
     * the peer never sees half a message. */
    if (len > conn->prof->opts.max_output - gn__conn_queued(conn)) {
        conn->above_high = true; /* on_drain tells when to try again */
        return GN_ENOBUFS;
    }
    return 0;
}

static int async_send(gn_conn *conn, const void *buf, size_t len)
{
    int rc = send_check(conn, len);

    if (rc < 0 || len == 0)
        return rc;
    return gn__conn_send(conn, buf, len);
}

static int async_send_file(gn_conn *conn, int fd, int64_t offset, uint64_t len)
{
    /* A file is not copied, so it does not count against max_output. */
    int rc = send_check(conn, 0);

    if (rc < 0 || len == 0)
        return rc;
    rc = gn__queue_file(conn, fd, offset, len);
    if (rc < 0)
        return rc;
    if (conn->state == GN__OPEN)
        gn__conn_flush(conn);
    return 0;
}

static int async_set_reading(gn_conn *conn, bool on)
{
    if (!on) {
        conn->paused_by_user = true;
        gn__conn_update_watch(conn);
        return 0;
    }
    if (!conn->paused_by_user)
        return 0;
    conn->paused_by_user = false;
    gn__conn_update_watch(conn);
    /* Input that arrived before the pause is offered again soon, not
     * inside this call, and without waiting for more bytes to arrive. */
    if (conn->in)
        gn__conn_schedule_redeliver(conn);
    return 0;
}

/* A connection shares its server's handlers and options until it wants
 * its own: then they are copied into its extension.  NULL: out of memory. */
static struct gn__conn_profile *own_profile(gn_conn *conn)
{
    struct gn__conn_ext *ext;

    if (conn->ext && conn->prof == &conn->ext->own)
        return &conn->ext->own;
    ext = gn__conn_ext(conn);
    if (!ext)
        return NULL;
    ext->own = *conn->prof;
    conn->prof = &ext->own;
    return &ext->own;
}

static int async_set_handlers(gn_conn *conn, const gn_handlers *h)
{
    struct gn__conn_profile *own = own_profile(conn);

    if (!own)
        return GN_ENOMEM;
    own->h = *h;
    return 0;
}

const struct gn__conn_mode gn__conn_mode_async = {
    .blocking = false,
    .close = async_close,
    .shutdown = async_shutdown,
    .send = async_send,
    .send_file = async_send_file,
    .set_reading = async_set_reading,
    .set_handlers = async_set_handlers,
};

/* ---- the public calls, in either mode -------------------------------- */

/* The user's own end (close, shutdown, abort) is marked even on a
 * connection that has already ended: a reconnecting client then makes no
 * further attempt (gn_close inside on_close stops it). */
int gn_close(gn_conn *conn)
{
    if (!conn)
        return GN_EINVAL;
    conn->user_ended = true;
    return (conn->prof->owner->mode->close)(conn, false);
}

int gn_shutdown(gn_conn *conn)
{
    if (!conn)
        return GN_EINVAL;
    conn->user_ended = true;
    return (conn->prof->owner->mode->shutdown)(conn);
}

int gn_abort(gn_conn *conn)
{
    if (!conn)
        return GN_EINVAL;
    conn->user_ended = true;
    return (conn->prof->owner->mode->close)(conn, true);
}

int gn_send(gn_conn *conn, const void *buf, size_t len)
{
    if (!conn || (!buf && len > 0))
        return GN_EINVAL;
    return (conn->prof->owner->mode->send)(conn, buf, len);
}

int gn_send_file(gn_conn *conn, int fd, int64_t offset, uint64_t len)
{
    if (!conn || fd < 0 || offset < 0)
        return GN_EINVAL;
    return conn->prof->owner->mode->send_file(conn, fd, offset, len);
}

int gn_pause_reading(gn_conn *conn)
{
    return conn ? conn->prof->owner->mode->set_reading(conn, false) : GN_EINVAL;
}

int gn_resume_reading(gn_conn *conn)
{
    return conn ? conn->prof->owner->mode->set_reading(conn, true) : GN_EINVAL;
}

int gn_conn_set_handlers(gn_conn *conn, const gn_handlers *handlers)
{
    if (!conn || !handlers || !GN__RESERVED_CLEAR(handlers))
        return GN_EINVAL;
    return conn->prof->owner->mode->set_handlers(conn, handlers);
}

/* The new framing cuts from the next unconsumed byte: a message loop
 * under way (conn_message.c) reads it before cutting the next message,
 * and input already buffered is offered again soon, cut the new way (set
 * inside on_data, or from a timer, no other call would offer it). */
int gn_conn_set_framing(gn_conn *conn, const gn_framing *framing)
{
    static const gn_framing none;
    struct gn__conn_profile *own;
    gn_framing f;

    if (!conn)
        return GN_EINVAL;
    if (conn->prof->owner->mode->blocking)
        return GN_EMODE;
    if (gn__framing_resolve(&f, framing ? framing : &none, conn->prof->opts.max_input, NULL, 0) < 0)
        return GN_EINVAL;
    own = own_profile(conn);
    if (!own)
        return GN_ENOMEM;
    own->opts.framing = f;
    resolve_framing(&own->opts);
    conn->framed = f.kind != GN_FRAMING_NONE;
    gn__conn_schedule_redeliver(conn);
    return 0;
}

/* ---- rate limits (ratelimit.c keeps the buckets) --------------------- */

int gn_conn_set_rate_limit(gn_conn *conn, const gn_rate_limit *limit)
{
    struct gn__conn_ext *ext;
    int rc;

    if (!conn || !GN__RESERVED_CLEAR(limit))
        return GN_EINVAL;
    if (conn->state == GN__CLOSED)
        return GN_ECLOSED;
    ext = gn__conn_ext(conn);
    if (!ext)
        return GN_ENOMEM;
    rc = gn__rate_set(conn, ext, limit,
                      conn->prof->owner->mode->blocking ? NULL : gn__conn_rate_wake);
    /* A direction that waited for tokens may go now. */
    if (rc == 0 && !conn->prof->owner->mode->blocking) {
        gn__conn_rate_wake(conn, GN__RATE_READ);
        gn__conn_rate_wake(conn, GN__RATE_WRITE);
    }
    return rc;
}

int gn_conn_join_rate_group(gn_conn *conn, gn_rate_group *group)
{
    struct gn__conn_ext *ext;

    if (!conn || (group && gn__rate_group_loop(group) != conn->loop))
        return GN_EINVAL;
    if (conn->prof->owner->mode->blocking)
        return GN_EMODE;
    if (conn->state == GN__CLOSED)
        return GN_ECLOSED;
    ext = gn__conn_ext(conn);
    if (!ext)
        return GN_ENOMEM;
    return gn__rate_join(conn, ext, group, gn__conn_rate_wake);
}

/* ---- accessors ------------------------------------------------------ */

void *gn_conn_user_data(const gn_conn *conn)
{
    return conn ? conn->user_data : NULL;
}

void gn_conn_set_user_data(gn_conn *conn, void *data)
{
    if (conn)
        conn->user_data = data;
}

gn_server *gn_conn_server(const gn_conn *conn)
{
    return conn && conn->prof->owner->is_server ? conn->owner_data : NULL;
}

gn_loop *gn_conn_loop(const gn_conn *conn)
{
    return conn ? conn->loop : NULL;
}

bool gn_conn_is_blocking(const gn_conn *conn)
{
    return conn && conn->prof->owner->mode->blocking;
}

bool gn_conn_is_open(const gn_conn *conn)
{
    return conn && conn->state == GN__OPEN && !conn->closing && !conn->shutdown_asked;
}

int gn_conn_get_stats(const gn_conn *conn, gn_conn_stats *out)
{
    if (!conn || !out)
        return GN_EINVAL;
    *out = (gn_conn_stats){.bytes_in = conn->bytes_in,
                           .bytes_out = conn->bytes_out,
                           .reads = conn->reads,
                           .writes = conn->writes,
                           .queued = gn__conn_queued(conn),
                           .buffered = conn->in ? conn->in->len : 0};
    return 0;
}
