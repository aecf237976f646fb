/*
 * gn_read_message: the framings of on_message for blocking connections,
 * cut by the same code (frame.c) from the same input buffer that
 * gn_read and gn_read_line use, so the calls can be mixed.
 */
#include <string.h>

#include "blocking.h"
#include "frame.h"
#include "inbuf.h"

/* The call's framing, resolved, its limit cut to what buf can hold with
 * its NUL: 0, GN_EINVAL, or GN_EMSGSIZE for a fixed size over it. */
static int call_framing(const gn_conn *conn, const gn_framing *asked, size_t size, gn_framing *f)
{
    int rc = gn__framing_resolve(f, asked ? asked : &conn->prof->opts.framing,
                                 conn->prof->opts.max_input, NULL, 0);

    if (rc < 0 || f->kind == GN_FRAMING_NONE)
        return GN_EINVAL;
    if (f->kind == GN_FRAMING_FIXED && f->size > size - 1)
        return GN_EMSGSIZE;
    if (f->max_message > size - 1)
        f->max_message = size - 1;
    return 0;
}

static ssize_t take_message(gn_conn *conn, const struct gn__frame *fr, char *buf)
{
    memcpy(buf, conn->in->data + conn->in->start + fr->msg_off, fr->msg_len);
    buf[fr->msg_len] = '\0';
    gn__inbuf_consume(conn, fr->frame_len);
    return (ssize_t)fr->msg_len;
}

ssize_t gn_read_message(gn_conn *conn, const gn_framing *framing, void *buf, size_t size,
                        uint32_t timeout_ms)
{
    struct gn__frame fr;
    uint64_t deadline;
    gn_framing f;
    int rc = gn__blocking_start(conn, timeout_ms, &deadline);

    if (rc < 0)
        return rc;
    if (!buf || size == 0)
        return GN_EINVAL;
    rc = call_framing(conn, framing, size, &f);
    if (rc < 0)
        return rc;
    for (;;) {
        size_t have = gn__inbuf_len(conn);
        ssize_t n;

        rc = gn__frame_next(&f, have ? conn->in->data + conn->in->start : NULL, have, &fr, NULL, 0);
        if (rc > 0)
            return take_message(conn, &fr, buf);
        if (rc < 0)
            return rc;
        if (conn->peer_ended)
            return GN_EEOF;
        n = gn__blocking_read_more(conn, gn__framing_span(&f), deadline);
        if (n < 0)
            return n;
    }
}
