/*
 * Framing (frame.c): cutting a byte stream into messages as a gn_framing
 * says, shared by framed event-driven connections (conn_message.c) and
 * gn_read_message (message_blocking.c).  Never installed.
 */
#ifndef GN_FRAME_H
#define GN_FRAME_H

#include "internal.h"

/* Where a message lies in the bytes looked at. */
struct gn__frame {
    size_t msg_off, msg_len; /* what on_message gets */
    size_t frame_len;        /* what it takes from the input */
};

/* Room for the reason a framing or a message was refused. */
#define GN__FRAME_WHY_SIZE 128

/*
 * gn__framing_resolve - check in and write it to *out with its defaults
 * filled in (delimiter "\n", prefix_bytes 4, max_message = max_input; a
 * FIXED framing's max_message is its size), so that resolving again
 * changes nothing.  0, or GN_EINVAL with the reason in why.
 */
int gn__framing_resolve(gn_framing *out, const gn_framing *in, size_t max_input, char *why,
                        size_t whylen);

/* gn__framing_span - the most input one message of a resolved framing
 * takes, framing bytes included (0 for none). */
size_t gn__framing_span(const gn_framing *f);

/*
 * gn__frame_next - the first message in data[0..len) under the resolved
 * framing f: 1 and *out; 0 when it is not all there yet; GN_EMSGSIZE
 * when it cannot fit max_message (why says how long it is or claims to
 * be), known as soon as a length prefix or max_message bytes of a line
 * have come.
 */
int gn__frame_next(const gn_framing *f, const char *data, size_t len, struct gn__frame *out,
                   char *why, size_t whylen);

#endif
