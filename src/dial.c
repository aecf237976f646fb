/*
 * gn_dial, the blocking client: gn_connect's resolution, Happy Eyeballs
 * and TLS handshake, run on a private loop inside the call (as curl's
 * easy interface drives its multi engine), then the connection is taken
 * off that loop and handed over in blocking mode.  One resolver and one
 * Happy Eyeballs serve both modes.
 */
#include <stdio.h>
#include <string.h>

#include "blocking.h"
#include "reserved.h"

struct dial {
    gn_conn *conn;
    bool connected;
    int rc;
    char error[GN_ERRBUF_SIZE];
};

static void dial_connected(gn_conn *conn)
{
    struct dial *d = gn_conn_user_data(conn);

    d->connected = true;
    /* Bytes that came with the handshake stay buffered for gn_read. */
    gn_pause_reading(conn);
    gn_loop_stop(gn_conn_loop(conn));
}

static size_t dial_keep_data(gn_conn *conn, const char *data, size_t len)
{
    (void)conn;
    (void)data;
    (void)len;
    return 0;
}

static void dial_error(gn_conn *conn, int code, const char *message)
{
    struct dial *d = gn_conn_user_data(conn);

    d->rc = code;
    snprintf(d->error, sizeof(d->error), "%s", message);
}

static void dial_closed(gn_conn *conn, int reason)
{
    struct dial *d = gn_conn_user_data(conn);

    if (d->rc == 0)
        d->rc = reason < 0 ? reason : GN_ECONNRESET;
    d->conn = NULL;
    /* The deadline's timer would keep the loop running to the end. */
    gn_loop_stop(gn_conn_loop(conn));
}

/* The whole call's deadline, the TLS handshake included. */
static void dial_expired(gn_loop *loop, uint64_t id, void *arg)
{
    struct dial *d = arg;

    (void)loop;
    (void)id;
    if (d->conn && !d->connected)
        gn__conn_fail(d->conn, GN_ETIMEDOUT, "timed out");
}

static const gn_handlers dial_handlers = {
    .on_connect = dial_connected,
    .on_data = dial_keep_data,
    .on_error = dial_error,
    .on_close = dial_closed,
};

/* The connection's own message names the target ("connect to
 * 127.0.0.1:9: connection refused") or quotes the part of it at fault
 * ("'no-such.invalid': cannot resolve: ..."): the input goes in front only
 * when the message shows neither, so nothing is said twice. */
static int dial_error_text(const struct dial *d, const char *address, char *errbuf, size_t errlen)
{
    if (d->error[0] == '\'' || (d->error[0] && strstr(d->error, address))) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s", d->error);
        return d->rc;
    }
    return gn__errbuf_input(errbuf, errlen, d->rc, address, strlen(address), "%s",
                            d->error[0] ? d->error : gn_strerror(d->rc));
}

/* Run the connect on loop; 0 with d->conn connected, or a code. */
static int dial_on(gn_loop *loop, const char *address, const gn_options *o, struct dial *d,
                   char *errbuf, size_t errlen)
{
    uint64_t timer = 0;
    int rc = gn_connect(loop, address, &dial_handlers, o, &d->conn, errbuf, errlen);

    if (rc < 0)
        return rc;
    if (o->connect_timeout_ms != GN_NO_TIMEOUT)
        rc = gn_timer_start(loop, gn__timer_ms(o->connect_timeout_ms), 0, dial_expired, d, &timer);
    if (rc < 0) {
        gn_abort(d->conn);
        d->conn = NULL;
        return rc;
    }
    gn_loop_run(loop);
    if (timer)
        gn_timer_cancel(loop, timer);
    if (d->connected && d->conn)
        return 0;
    if (d->conn) {
        gn_abort(d->conn); /* the loop ended otherwise: cannot happen, but never leak */
        d->conn = NULL;
    }
    if (d->rc == 0)
        d->rc = GN_ECONNRESET;
    return dial_error_text(d, address, errbuf, errlen);
}

int gn_dial(const char *address, uint32_t timeout_ms, const gn_options *opts, gn_conn **out,
            char *errbuf, size_t errlen)
{
    struct dial d = {0};
    gn_framing framing;
    gn_options o;
    gn_loop *loop;
    int rc;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!address || !out)
        return gn__errbuf_input(errbuf, errlen, GN_EINVAL, "", 0, "%s",
                                "address and out must not be NULL");
    rc = gn__options_check(opts, address, errbuf, errlen);
    if (rc < 0)
        return rc;
    gn__options_resolve(&o, opts, false);
    /* Framed only once blocking, for gn_read_message: while connecting,
     * bytes stay buffered as they came. */
    framing = o.framing;
    o.framing = (gn_framing){0};
    o.connect_timeout_ms = gn__timeout_or(timeout_ms, o.connect_timeout_ms);
    o.user_data = &d;
    o.reconnect = NULL; /* one connection, made once: the caller retries */
    rc = gn__loop_new_private(&loop);
    if (rc < 0)
        return gn__errbuf_input(errbuf, errlen, rc, address, strlen(address),
                                "cannot make the dialling loop: %s", gn_strerror(rc));
    rc = dial_on(loop, address, &o, &d, errbuf, errlen);
    if (rc == 0) {
        rc = gn__conn_detach(d.conn);
        if (rc == 0) {
            d.conn->ext->own.owner = &gn__blocking_owner_client;
            d.conn->ext->own.opts.framing = framing;
            d.conn->user_data = opts ? opts->user_data : NULL;
            *out = d.conn;
        } else {
            gn_abort(d.conn);
            gn__errbuf_input(errbuf, errlen, rc, address, strlen(address), "%s",
                             "the connection closed as it was handed over");
        }
    }
    gn_loop_free(loop);
    return rc;
}
