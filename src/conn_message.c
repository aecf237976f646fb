/*
 * Messages of a framed connection: the loop that cuts the input on_data
 * would have got into the messages of on_message, as the connection's
 * framing (gn_options.framing, gn_conn_set_framing) says.  Each message
 * is handed over where it lies in the input, without a copy.
 *
 * Handlers may close the connection, pause it, change its handlers or its
 * framing between two messages, so the connection is looked at again
 * before each one: a closed or closing connection gets no more; a paused
 * one keeps the rest buffered until it resumes (reading stops, and so do
 * the messages already read, which bounds what a peer's requests can make
 * a server queue); a new framing cuts the next message.
 */
#include "conn.h"
#include "frame.h"

static bool takes_messages(const gn_conn *conn)
{
    return conn->framed && conn->state == GN__OPEN && !conn->closing && !conn->paused_by_user &&
           !conn->paused_by_output;
}

size_t gn__messages_deliver(gn_conn *conn, const char *data, size_t len, int *code, char *why,
                            size_t whylen)
{
    struct gn__frame fr;
    size_t used = 0;
    int rc;

    while (takes_messages(conn)) {
        rc = gn__frame_next(&conn->prof->opts.framing, data + used, len - used, &fr, why, whylen);
        if (rc < 0)
            *code = rc;
        if (rc <= 0)
            break;
        used += fr.frame_len;
        if (conn->prof->h.on_message)
            conn->prof->h.on_message(conn, data + used - fr.frame_len + fr.msg_off, fr.msg_len);
    }
    return used;
}
