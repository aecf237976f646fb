/*
 * A connection's input buffer (inbuf.c).  Never installed.
 */
#ifndef GN_INBUF_H
#define GN_INBUF_H

#include "conn.h"

/* Make conn->in hold at least need bytes in all, its bytes moved to the
 * front (in->start 0); it never grows past limit.  0, GN_EMSGSIZE (need
 * over limit) or GN_ENOMEM, with the buffer as it was. */
int gn__inbuf_reserve(gn_conn *conn, size_t need, size_t limit);
/* The first n buffered bytes were used; an event-driven connection's
 * buffer goes back to the loop once empty. */
void gn__inbuf_consume(gn_conn *conn, size_t n);
/* Drop the buffer and what it holds. */
void gn__inbuf_release(gn_conn *conn);

static inline size_t gn__inbuf_len(const gn_conn *conn)
{
    return conn->in ? conn->in->len : 0;
}

#endif
