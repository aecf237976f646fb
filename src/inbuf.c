/*
 * A connection's input buffer (struct gn__inbuf): the bytes its handler
 * left unconsumed.  An event-driven connection has one only while such
 * bytes wait; the standard size comes from the loop's pool and goes back
 * to it when the buffer empties, so a connection that goes idle owns no
 * input memory and partial frames cost no allocation per message.  A
 * blocking connection keeps its buffer (gn_read_line reuses it).
 */
#include <stdlib.h>
#include <string.h>

#include "inbuf.h"

#define INBUF_STD_CAP (16384 - sizeof(struct gn__inbuf))
#define INBUF_POOL    64

static void inbuf_free(gn_conn *conn, struct gn__inbuf *in)
{
    if (conn->loop && in->cap == INBUF_STD_CAP)
        gn__pool_put(&conn->loop->in_pool, in, INBUF_POOL);
    else
        free(in);
}

static struct gn__inbuf *inbuf_alloc(gn_conn *conn, size_t cap)
{
    struct gn__inbuf *in;

    if (cap <= INBUF_STD_CAP) {
        cap = INBUF_STD_CAP;
        in = conn->loop ? gn__pool_get(&conn->loop->in_pool, sizeof(*in) + cap)
                        : malloc(sizeof(*in) + cap);
    } else {
        in = malloc(sizeof(*in) + cap);
    }
    if (in)
        *in = (struct gn__inbuf){.cap = cap};
    return in;
}

int gn__inbuf_reserve(gn_conn *conn, size_t need, size_t limit)
{
    struct gn__inbuf *in = conn->in, *grown;
    size_t cap;

    if (need > limit)
        return GN_EMSGSIZE;
    if (!in) {
        conn->in = inbuf_alloc(conn, need);
        return conn->in ? 0 : GN_ENOMEM;
    }
    if (in->start > 0 && in->len > 0)
        memmove(in->data, in->data + in->start, in->len);
    in->start = 0;
    if (need <= in->cap)
        return 0;
    for (cap = in->cap; cap < need; cap *= 2)
        ;
    if (cap > limit)
        cap = limit;
    grown = inbuf_alloc(conn, cap);
    if (!grown)
        return GN_ENOMEM;
    memcpy(grown->data, in->data, in->len);
    grown->len = in->len;
    inbuf_free(conn, in);
    conn->in = grown;
    return 0;
}

void gn__inbuf_consume(gn_conn *conn, size_t n)
{
    struct gn__inbuf *in = conn->in;

    in->start += n;
    in->len -= n;
    if (in->len > 0)
        return;
    in->start = 0;
    if (conn->loop)
        gn__inbuf_release(conn);
}

void gn__inbuf_release(gn_conn *conn)
{
    if (!conn->in)
        return;
    inbuf_free(conn, conn->in);
    conn->in = NULL;
}
