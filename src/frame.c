/*
 * Framing: the public helpers, stateless checks over the bytes on_data
 * offers, and the framings of gn_framing that cut a stream into the
 * messages of on_message and gn_read_message.
 */
#define _GNU_SOURCE /* memmem */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "frame.h"
#include "reserved.h"

int gn_frame_line(const char *data, size_t len, size_t max_len, size_t *line_len, size_t *frame_len)
{
    size_t scan = len < max_len ? len : max_len;
    const char *nl;

    if ((!data && len > 0) || !line_len || !frame_len || max_len == 0)
        return GN_EINVAL;
    nl = scan ? memchr(data, '\n', scan) : NULL;
    if (!nl)
        return len >= max_len ? GN_EMSGSIZE : 0;
    *frame_len = (size_t)(nl - data) + 1;
    *line_len = *frame_len - 1;
    if (*line_len > 0 && data[*line_len - 1] == '\r')
        (*line_len)--;
    return 1;
}

int gn_frame_exact(size_t len, size_t n, size_t *frame_len)
{
    if (!frame_len)
        return GN_EINVAL;
    if (len < n)
        return 0;
    *frame_len = n;
    return 1;
}

int gn_frame_prefix(const char *data, size_t len, unsigned size_bytes, uint64_t max_payload,
                    size_t *payload_off, size_t *payload_len, size_t *frame_len)
{
    uint64_t n = 0;

    if ((!data && len > 0) || !payload_off || !payload_len || !frame_len)
        return GN_EINVAL;
    if (size_bytes != 1 && size_bytes != 2 && size_bytes != 4 && size_bytes != 8)
        return GN_EINVAL;
    if (len < size_bytes)
        return 0;
    for (unsigned i = 0; i < size_bytes; i++)
        n = (n << 8) | (unsigned char)data[i];
    /* Checked before waiting for the payload, so a hostile length is
     * refused at once instead of buffering toward it. */
    if (n > max_payload || n > SIZE_MAX - size_bytes)
        return GN_EMSGSIZE;
    if (len - size_bytes < n)
        return 0;
    *payload_off = size_bytes;
    *payload_len = (size_t)n;
    *frame_len = size_bytes + (size_t)n;
    return 1;
}

/* ---- gn_framing ------------------------------------------------------ */

/* Far above any buffer a process holds, and far enough below SIZE_MAX
 * that a message's span (the limit plus its framing bytes) cannot wrap. */
#define FRAME_LIMIT (SIZE_MAX >> 2)

static bool strip_cr(const gn_framing *f)
{
    return f->delimiter[0] == '\n' && f->delimiter[1] == '\0';
}

/* Write why (when asked) and return code. */
static int refuse(int code, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(int code, char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    if (why && whylen) {
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* The fields of f's kind, checked and defaulted into *out. */
static int resolve_kind(gn_framing *out, const gn_framing *f, char *why, size_t whylen)
{
    switch (f->kind) {
    case GN_FRAMING_LINE:
        if (memchr(f->delimiter, '\0', sizeof(f->delimiter)) == NULL)
            return refuse(GN_EINVAL, why, whylen,
                          "framing: the delimiter must be 1 to %zu bytes, NUL-terminated",
                          sizeof(f->delimiter) - 1);
        if (f->delimiter[0] == '\0')
            out->delimiter[0] = '\n';
        return 0;
    case GN_FRAMING_FIXED:
        if (f->size == 0 || f->size > FRAME_LIMIT)
            return refuse(GN_EINVAL, why, whylen, "framing: a fixed size of %zu bytes", f->size);
        out->max_message = f->size;
        return 0;
    case GN_FRAMING_LENGTH:
        if (f->prefix_bytes == 0)
            out->prefix_bytes = 4;
        else if (f->prefix_bytes != 1 && f->prefix_bytes != 2 && f->prefix_bytes != 4 &&
                 f->prefix_bytes != 8)
            return refuse(GN_EINVAL, why, whylen, "framing: prefix_bytes %u is not 1, 2, 4 or 8",
                          f->prefix_bytes);
        return 0;
    default:
        return refuse(GN_EINVAL, why, whylen, "framing: kind %d is not a gn_framing_kind",
                      (int)f->kind);
    }
}

int gn__framing_resolve(gn_framing *out, const gn_framing *in, size_t max_input, char *why,
                        size_t whylen)
{
    gn_framing f = *in;
    int rc;

    if (!GN__RESERVED_CLEAR(in))
        return refuse(GN_EINVAL, why, whylen, "%s",
                      "gn_framing: its reserved space is not zero: start it from {0}");
    if (f.kind == GN_FRAMING_NONE) {
        *out = (gn_framing){0};
        return 0;
    }
    if (f.max_message > FRAME_LIMIT)
        return refuse(GN_EINVAL, why, whylen, "framing: max_message %zu is too large",
                      f.max_message);
    if (f.max_message == 0)
        f.max_message = max_input < FRAME_LIMIT ? max_input : FRAME_LIMIT;
    rc = resolve_kind(&f, in, why, whylen);
    if (rc < 0)
        return rc;
    *out = f;
    return 0;
}

size_t gn__framing_span(const gn_framing *f)
{
    switch (f->kind) {
    case GN_FRAMING_LINE:
        return f->max_message + strlen(f->delimiter) + strip_cr(f);
    case GN_FRAMING_FIXED:
        return f->size;
    case GN_FRAMING_LENGTH:
        return f->max_message + f->prefix_bytes;
    default:
        return 0;
    }
}

/* A line: the delimiter is looked for only as far as the longest line
 * allowed could reach, so a peer that never sends one is refused after
 * max_message bytes instead of being buffered toward max_input. */
static int next_line(const gn_framing *f, const char *data, size_t len, struct gn__frame *out,
                     char *why, size_t whylen)
{
    size_t dlen = strlen(f->delimiter), window = gn__framing_span(f);
    size_t scan = len < window ? len : window, line, bare;
    const char *at =
        dlen == 1 ? memchr(data, f->delimiter[0], scan) : memmem(data, scan, f->delimiter, dlen);

    if (!at)
        return len < window
                   ? 0
                   : refuse(GN_EMSGSIZE, why, whylen,
                            "line longer than max_message %zu: no delimiter in its first %zu bytes",
                            f->max_message, window);
    line = (size_t)(at - data);
    bare = line - (strip_cr(f) && line > 0 && data[line - 1] == '\r');
    if (bare > f->max_message)
        return refuse(GN_EMSGSIZE, why, whylen, "line of %zu bytes exceeds max_message %zu", bare,
                      f->max_message);
    *out = (struct gn__frame){
        .msg_off = 0, .msg_len = f->keep_delimiter ? line + dlen : bare, .frame_len = line + dlen};
    return 1;
}

static uint64_t prefix_value(const gn_framing *f, const unsigned char *p)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < f->prefix_bytes; i++)
        n = (n << 8) | p[f->prefix_little_endian ? f->prefix_bytes - 1 - i : i];
    return n;
}

/* A length-prefixed message: refused as soon as its prefix is in, so a
 * hostile length is never buffered toward. */
static int next_prefixed(const gn_framing *f, const char *data, size_t len, struct gn__frame *out,
                         char *why, size_t whylen)
{
    unsigned pb = f->prefix_bytes;
    uint64_t n;

    if (len < pb)
        return 0;
    n = prefix_value(f, (const unsigned char *)data);
    if (f->length_counts_prefix) {
        if (n < pb)
            return refuse(GN_EMSGSIZE, why, whylen,
                          "length %" PRIu64 " is shorter than its own %u-byte prefix", n, pb);
        n -= pb;
    }
    if (n > f->max_message)
        return refuse(GN_EMSGSIZE, why, whylen,
                      "message of %" PRIu64 " bytes exceeds max_message %zu", n, f->max_message);
    if (len - pb < n)
        return 0;
    *out = (struct gn__frame){.msg_off = pb, .msg_len = (size_t)n, .frame_len = pb + (size_t)n};
    return 1;
}

int gn__frame_next(const gn_framing *f, const char *data, size_t len, struct gn__frame *out,
                   char *why, size_t whylen)
{
    if (len == 0)
        return 0; /* every message takes a byte at least */
    switch (f->kind) {
    case GN_FRAMING_LINE:
        return next_line(f, data, len, out, why, whylen);
    case GN_FRAMING_FIXED:
        if (len < f->size)
            return 0;
        *out = (struct gn__frame){.msg_off = 0, .msg_len = f->size, .frame_len = f->size};
        return 1;
    case GN_FRAMING_LENGTH:
        return next_prefixed(f, data, len, out, why, whylen);
    default:
        return 0;
    }
}
