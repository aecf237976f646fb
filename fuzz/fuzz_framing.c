/*
 * libFuzzer target for the framings of gn_framing (line, exact count,
 * length prefix).  The input's first bytes choose a framing and how to
 * cut the stream that follows into pieces; the rest is the stream.
 * Every input is cut three ways, which must agree on every message
 * (bytes and order) and on whether the stream is refused:
 *  - a reference cutter written here from the documentation alone;
 *  - frame.c's cutter over the whole stream in one piece;
 *  - a framed gn_conn (gn_conn_pair, epoll) that reads the stream in the
 *    pieces chosen, each piece read before the next is sent, so that a
 *    message, a delimiter or a length prefix is split wherever the input
 *    says.  A refused stream must end that connection with GN_EMSGSIZE
 *    in on_error and on_close, once each.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "fuzz_loop.h"
#include "gnezdo.h"

#define MAX_MESSAGES 4096
#define MAX_PIECES   16
#define MAX_STEPS    64 /* loop iterations to read one piece */

/* The messages one way of cutting found, as offsets into the stream's
 * copy it kept (messages of a line framing may drop a "\r"). */
struct cut {
    char bytes[1 << 16];
    size_t used;
    size_t off[MAX_MESSAGES], len[MAX_MESSAGES];
    size_t count;
    bool refused;
};

static void cut_add(struct cut *c, const char *msg, size_t len)
{
    if (c->count == MAX_MESSAGES || len > sizeof(c->bytes) - c->used) {
        fprintf(stderr, "fuzz_framing: more messages than the fuzzer keeps\n");
        abort();
    }
    memcpy(c->bytes + c->used, msg, len);
    c->off[c->count] = c->used;
    c->len[c->count++] = len;
    c->used += len;
}

/* ---- the framing and the pieces, from the input ----------------------- */

static void choose_framing(struct fuzz_bytes *in, gn_framing *f)
{
    static const unsigned prefixes[] = {1, 2, 4, 8};
    uint8_t flags = fuzz_byte(in), max = fuzz_byte(in);

    *f = (gn_framing){.kind = GN_FRAMING_LINE + flags % 3};
    /* 0: the default (max_input); else a small limit the stream can pass. */
    f->max_message = max;
    switch (f->kind) {
    case GN_FRAMING_LINE:
        f->keep_delimiter = flags & 8;
        /* 0 to 3 delimiter bytes, "" being "\n". */
        for (unsigned i = 0, n = (flags >> 4) & 3; i < n; i++) {
            uint8_t b = fuzz_byte(in);
            f->delimiter[i] = (char)(b ? b : '\n'); /* no NUL inside */
        }
        break;
    case GN_FRAMING_FIXED:
        f->size = 1 + fuzz_byte(in) % 64;
        break;
    default:
        f->prefix_bytes = prefixes[(flags >> 2) & 3];
        f->prefix_little_endian = flags & 16;
        f->length_counts_prefix = flags & 32;
        break;
    }
}

/* ---- the reference, from the documentation of gn_framing ----------- */

static size_t find(const char *hay, size_t len, const char *needle, size_t nlen)
{
    for (size_t i = 0; i + nlen <= len; i++)
        if (memcmp(hay + i, needle, nlen) == 0)
            return i;
    return len;
}

/* 1 with the frame and message lengths, 0 for "wait for more", -1 for refused. */
static int reference_line(const gn_framing *f, const char *s, size_t len, size_t *frame,
                          size_t *msg_len)
{
    const char *delim = f->delimiter[0] ? f->delimiter : "\n";
    size_t dlen = strlen(delim), max = f->max_message ? f->max_message : 1 << 20;
    bool crlf = strcmp(delim, "\n") == 0;
    size_t at = find(s, len, delim, dlen), bare;

    if (at == len) {
        /* No delimiter: refused once the longest line allowed, "\r" and
         * delimiter included, could have ended. */
        return len >= max + dlen + crlf ? -1 : 0;
    }
    bare = at - (crlf && at > 0 && s[at - 1] == '\r');
    if (bare > max)
        return -1;
    *frame = at + dlen;
    *msg_len = f->keep_delimiter ? at + dlen : bare;
    return 1;
}

static int reference_length(const gn_framing *f, const char *s, size_t len, size_t *frame,
                            size_t *msg_off, size_t *msg_len)
{
    size_t pb = f->prefix_bytes, max = f->max_message ? f->max_message : 1 << 20;
    uint64_t n = 0;

    if (len < pb)
        return 0;
    for (size_t i = 0; i < pb; i++) {
        size_t k = f->prefix_little_endian ? pb - 1 - i : i;
        n = n * 256 + (unsigned char)s[k];
    }
    if (f->length_counts_prefix) {
        if (n < pb)
            return -1;
        n -= pb;
    }
    if (n > max)
        return -1;
    if (len - pb < n)
        return 0;
    *frame = pb + (size_t)n;
    *msg_off = pb;
    *msg_len = (size_t)n;
    return 1;
}

static void reference_cut(const gn_framing *f, const char *s, size_t len, struct cut *out)
{
    size_t at = 0, frame = 0, off = 0, n = 0;
    int rc;

    for (;;) {
        off = 0;
        if (at == len)
            return;
        if (f->kind == GN_FRAMING_LINE)
            rc = reference_line(f, s + at, len - at, &frame, &n);
        else if (f->kind == GN_FRAMING_FIXED)
            rc = len - at >= f->size ? (frame = n = f->size, 1) : 0;
        else
            rc = reference_length(f, s + at, len - at, &frame, &off, &n);
        if (rc < 0)
            out->refused = true;
        if (rc <= 0)
            return;
        cut_add(out, s + at + off, n);
        at += frame;
    }
}

/* ---- frame.c over the whole stream ------------------------------------ */

static void whole_cut(const gn_framing *f, const char *s, size_t len, struct cut *out)
{
    char why[GN__FRAME_WHY_SIZE];
    struct gn__frame fr;
    gn_framing resolved;
    size_t at = 0;
    int rc;

    if (gn__framing_resolve(&resolved, f, 1 << 20, why, sizeof(why)) != 0) {
        fprintf(stderr, "fuzz_framing: a framing the fuzzer made is refused: %s\n", why);
        abort();
    }
    while ((rc = gn__frame_next(&resolved, s + at, len - at, &fr, why, sizeof(why))) > 0) {
        if (fr.frame_len == 0 || fr.frame_len > len - at ||
            fr.msg_off + fr.msg_len > fr.frame_len) {
            fprintf(stderr, "fuzz_framing: a frame outside the input\n");
            abort();
        }
        cut_add(out, s + at + fr.msg_off, fr.msg_len);
        at += fr.frame_len;
    }
    if (rc < 0) {
        if (rc != GN_EMSGSIZE || why[0] == '\0') {
            fprintf(stderr, "fuzz_framing: refused with %d, '%s'\n", rc, why);
            abort();
        }
        out->refused = true;
    }
}

/* ---- a framed connection, in pieces ---------------------------------- */

struct receiver {
    struct cut *cut;
    int errors, closes, error_code, close_reason;
};

static void on_message(gn_conn *conn, const char *msg, size_t len)
{
    struct receiver *r = gn_conn_user_data(conn);

    cut_add(r->cut, msg, len);
}

static void on_error(gn_conn *conn, int code, const char *message)
{
    struct receiver *r = gn_conn_user_data(conn);

    (void)message;
    r->errors++;
    r->error_code = code;
}

static void on_close(gn_conn *conn, int reason)
{
    struct receiver *r = gn_conn_user_data(conn);

    r->closes++;
    r->close_reason = reason;
}

static gn_loop *shared_loop(void)
{
    static gn_loop *loop;

    if (!loop && gn_loop_new_backend(&loop, "epoll") < 0) {
        fprintf(stderr, "fuzz_framing: no loop\n");
        abort();
    }
    return loop;
}

/* Sends s in the pieces asked for, each one read by the other side
 * before the next goes; stops early once the receiver has closed. */
static void send_pieces(gn_loop *loop, gn_conn *tx, gn_conn *rx, const struct receiver *r,
                        const char *s, size_t len, const size_t *pieces, size_t npieces)
{
    gn_conn_stats st;

    for (size_t at = 0, i = 0; at < len && r->closes == 0; i++) {
        size_t n = npieces ? pieces[i % npieces] : len;
        if (n > len - at)
            n = len - at;
        if (gn_send(tx, s + at, n) != 0) {
            fprintf(stderr, "fuzz_framing: gn_send failed\n");
            abort();
        }
        at += n;
        for (int step = 0; step < MAX_STEPS && r->closes == 0; step++) {
            fuzz_loop_step(loop);
            if (r->closes == 0 && gn_conn_get_stats(rx, &st) == 0 && st.bytes_in == at)
                break;
        }
    }
}

static void conn_cut(const gn_framing *f, const char *s, size_t len, const size_t *pieces,
                     size_t npieces, struct cut *out)
{
    const gn_handlers tx_h = {.on_close = on_close};
    const gn_handlers rx_h = {.on_message = on_message, .on_error = on_error, .on_close = on_close};
    struct receiver tx_r = {.cut = NULL}, rx_r = {.cut = out};
    gn_loop *loop = shared_loop();
    gn_conn *tx, *rx;

    if (gn_conn_pair(loop, NULL, &tx_h, &rx_h, NULL, &tx, &rx) != 0) {
        fprintf(stderr, "fuzz_framing: gn_conn_pair failed\n");
        abort();
    }
    gn_conn_set_user_data(tx, &tx_r);
    gn_conn_set_user_data(rx, &rx_r);
    if (gn_conn_set_framing(rx, f) != 0) {
        fprintf(stderr, "fuzz_framing: gn_conn_set_framing refused a framing\n");
        abort();
    }
    send_pieces(loop, tx, rx, &rx_r, s, len, pieces, npieces);
    out->refused = rx_r.errors > 0;
    if (rx_r.errors > 1 || (rx_r.errors && rx_r.error_code != GN_EMSGSIZE)) {
        fprintf(stderr, "fuzz_framing: on_error %d times, last with %d\n", rx_r.errors,
                rx_r.error_code);
        abort();
    }
    /* A closed connection is freed: only the open ones are aborted. */
    if (tx_r.closes == 0)
        gn_abort(tx);
    if (rx_r.closes == 0)
        gn_abort(rx);
    for (int step = 0; step < MAX_STEPS && (tx_r.closes == 0 || rx_r.closes == 0); step++)
        fuzz_loop_step(loop);
    if (tx_r.closes != 1 || rx_r.closes != 1) {
        fprintf(stderr, "fuzz_framing: on_close ran %d and %d times\n", tx_r.closes, rx_r.closes);
        abort();
    }
    if (rx_r.errors && rx_r.close_reason != GN_EMSGSIZE) {
        fprintf(stderr, "fuzz_framing: refused, but on_close's reason is %d\n", rx_r.close_reason);
        abort();
    }
}

/* ---- comparing ---------------------------------------------------------- */

static void expect_same(const char *what, const struct cut *want, const struct cut *got)
{
    if (want->refused != got->refused) {
        fprintf(stderr, "fuzz_framing: %s %s the stream, the reference %s\n", what,
                got->refused ? "refuses" : "accepts", want->refused ? "refuses" : "accepts");
        abort();
    }
    if (want->count != got->count) {
        fprintf(stderr, "fuzz_framing: %s cuts %zu messages, the reference %zu\n", what, got->count,
                want->count);
        abort();
    }
    for (size_t i = 0; i < want->count; i++)
        if (want->len[i] != got->len[i] ||
            memcmp(want->bytes + want->off[i], got->bytes + got->off[i], want->len[i]) != 0) {
            fprintf(stderr, "fuzz_framing: %s: message %zu differs\n", what, i);
            abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cut reference, whole, pieces_cut;
    struct fuzz_bytes in = {.data = data, .len = size};
    size_t pieces[MAX_PIECES], npieces;
    gn_framing f;

    choose_framing(&in, &f);
    npieces = fuzz_byte(&in) % MAX_PIECES;
    for (size_t i = 0; i < npieces; i++)
        pieces[i] = 1 + fuzz_byte(&in) % 32;

    const char *s = (const char *)data + in.at;
    size_t len = fuzz_left(&in);

    reference.count = reference.used = 0, reference.refused = false;
    whole.count = whole.used = 0, whole.refused = false;
    pieces_cut.count = pieces_cut.used = 0, pieces_cut.refused = false;
    reference_cut(&f, s, len, &reference);
    whole_cut(&f, s, len, &whole);
    expect_same("frame.c in one piece", &reference, &whole);
    conn_cut(&f, s, len, pieces, npieces, &pieces_cut);
    expect_same("a framed gn_conn in pieces", &reference, &pieces_cut);
    return 0;
}
