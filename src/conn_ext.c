/*
 * What a connection holds only sometimes (struct gn__conn_ext): the error
 * text, the endpoints handed out to the user, handlers and options of its
 * own, the state of TLS, a client or a user transport.  Allocated on first
 * use and freed with the connection, so that an idle connection of a
 * server is a small object.  The peer's address stays in the connection
 * itself when it fits, as accept gave it: no getpeername per client.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "ratelimit.h"

struct gn__conn_ext *gn__conn_ext(gn_conn *conn)
{
    if (conn->ext)
        return conn->ext;
    conn->ext = calloc(1, sizeof(*conn->ext));
    if (!conn->ext)
        return NULL;
    conn->ext->conn = conn;
    gn__list_init(&conn->ext->handle.node);
    return conn->ext;
}

void gn__conn_ext_free(gn_conn *conn)
{
    if (conn->ext)
        gn__rate_free(conn->ext);
    free(conn->ext);
    conn->ext = NULL;
}

const char *gn__conn_error(const gn_conn *conn)
{
    return conn->ext ? conn->ext->error : "";
}

void gn__conn_set_error(gn_conn *conn, const char *fmt, ...)
{
    struct gn__conn_ext *ext = gn__conn_ext(conn);
    va_list ap;

    if (!ext)
        return; /* the code alone will have to say it */
    va_start(ap, fmt);
    vsnprintf(ext->error, sizeof(ext->error), fmt, ap);
    va_end(ap);
}

void gn__conn_set_peer(gn_conn *conn, const struct sockaddr *sa, socklen_t len)
{
    struct gn__conn_ext *ext;

    conn->peer_len = 0;
    if (len > 0 && len <= sizeof(conn->peer)) {
        memcpy(conn->peer, sa, len);
        conn->peer_len = (uint8_t)len;
        return;
    }
    ext = gn__conn_ext(conn);
    if (ext && gn_endpoint_from_sockaddr(sa, len, (gn_transport)conn->kind, &ext->remote) == 0)
        ext->have_remote = true;
}

int gn__conn_read_peer(gn_conn *conn)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getpeername(conn->io.fd, (struct sockaddr *)&ss, &len) < 0)
        return gn_error_from_errno(errno);
    gn__conn_set_peer(conn, (struct sockaddr *)&ss, len);
    return 0;
}

/* The peer as an endpoint, into *out; false when unknown. */
static bool peer_endpoint(const gn_conn *conn, gn_endpoint *out)
{
    struct sockaddr_storage ss;

    if (conn->ext && conn->ext->have_remote) {
        *out = conn->ext->remote;
        return true;
    }
    if (conn->peer_len == 0)
        return false;
    memcpy(&ss, conn->peer, conn->peer_len);
    return gn_endpoint_from_sockaddr((struct sockaddr *)&ss, conn->peer_len,
                                     (gn_transport)conn->kind, out) == 0;
}

void gn__conn_format_peer(const gn_conn *conn, char *buf, size_t len)
{
    gn_endpoint ep;

    if (!peer_endpoint(conn, &ep)) {
        snprintf(buf, len, "?");
        return;
    }
    gn_endpoint_format(&ep, buf, len);
}

const gn_endpoint *gn_conn_remote(const gn_conn *conn)
{
    gn_conn *c = (gn_conn *)conn; /* the endpoint is made on first use */
    struct gn__conn_ext *ext;
    gn_endpoint ep;

    if (!conn)
        return NULL;
    if (conn->ext && conn->ext->have_remote)
        return &conn->ext->remote;
    if (!peer_endpoint(conn, &ep) || !(ext = gn__conn_ext(c)))
        return NULL;
    ext->remote = ep;
    ext->have_remote = true;
    return &ext->remote;
}

/* The local address is asked of the socket the first time, so a server's
 * connections carry no copy of it; after the descriptor is closed, only a
 * local address asked before is known. */
const gn_endpoint *gn_conn_local(const gn_conn *conn)
{
    gn_conn *c = (gn_conn *)conn;
    struct gn__conn_ext *ext;
    gn_endpoint ep;

    if (!conn)
        return NULL;
    if (conn->ext && conn->ext->have_local)
        return &conn->ext->local;
    if (conn->io.fd < 0 ||
        gn__socket_endpoints(conn->io.fd, (gn_transport)conn->kind, &ep, NULL) < 0 ||
        !(ext = gn__conn_ext(c)))
        return NULL;
    ext->local = ep;
    ext->have_local = true;
    return &ext->local;
}
