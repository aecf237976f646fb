/*
 * Framed connections: whole lines, exact counts and length-prefixed
 * messages reach on_message however the bytes were split (one byte per
 * write, a megabyte at once, many messages in one read); a message over
 * max_message closes its connection with a clear error after every
 * message before it and every reply sent before it; handlers may close,
 * pause or change the framing between two messages; blocking
 * connections read the same framings with gn_read_message.
 */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

#define MAX_MSGS  4096
#define SLOW_MS   3    /* loop run after each byte, so each is read alone */
#define WAIT_MS   5000 /* watchdog: the loop is stopped once all came */
#define BIG_BYTES (1u << 20)

/* What the server's connection got. */
struct inbox {
    char *msgs[MAX_MSGS];
    size_t lens[MAX_MSGS];
    int n, want; /* messages so far; stop the loop at want */
    char *bytes; /* on_data's, after framing was turned off */
    size_t bytes_len;
    int error, reason; /* on_error's code, on_close's reason */
    char message[GN_ERRBUF_SIZE];
    bool closed;
    gn_conn *conn;
    /* Per test: what a message makes the handler do. */
    void (*react)(gn_conn *conn, const char *msg, size_t len);
};

static struct inbox box;

static void inbox_reset(void)
{
    for (int i = 0; i < box.n && i < MAX_MSGS; i++)
        free(box.msgs[i]);
    free(box.bytes);
    memset(&box, 0, sizeof(box));
}

static void on_accept(gn_conn *conn)
{
    box.conn = conn;
}

static void on_message(gn_conn *conn, const char *msg, size_t len)
{
    if (box.n < MAX_MSGS) {
        box.msgs[box.n] = malloc(len + 1);
        cr_assert_not_null(box.msgs[box.n]);
        memcpy(box.msgs[box.n], msg, len);
        box.msgs[box.n][len] = '\0';
        box.lens[box.n] = len;
    }
    box.n++;
    if (box.react)
        box.react(conn, msg, len);
    if (box.want && box.n == box.want)
        gn_loop_stop(gn_conn_loop(conn));
}

static size_t on_data(gn_conn *conn, const char *data, size_t len)
{
    (void)conn;
    box.bytes = realloc(box.bytes, box.bytes_len + len + 1);
    cr_assert_not_null(box.bytes);
    memcpy(box.bytes + box.bytes_len, data, len);
    box.bytes_len += len;
    box.bytes[box.bytes_len] = '\0';
    return len;
}

static void on_error(gn_conn *conn, int code, const char *message)
{
    (void)conn;
    box.error = code;
    snprintf(box.message, sizeof(box.message), "%s", message);
}

static void on_close(gn_conn *conn, int reason)
{
    box.closed = true;
    box.reason = reason;
    box.conn = NULL;
    gn_loop_stop(gn_conn_loop(conn));
}

static const gn_handlers handlers = {.on_accept = on_accept,
                                     .on_message = on_message,
                                     .on_data = on_data,
                                     .on_error = on_error,
                                     .on_close = on_close};

/* A server with framing f (in its options) and a raw client of it. */
struct setup {
    gn_loop *loop;
    gn_server *srv;
    int fd;
};

static void start_with(struct setup *s, const gn_options *opts)
{
    char addr[GN_ENDPOINT_STRLEN];
    int one = 1;

    inbox_reset();
    cr_assert_eq(gn_loop_new(&s->loop), 0);
    s->srv = gn_test_listen(s->loop, "127.0.0.1:0", &handlers, opts, addr, sizeof(addr));
    s->fd = gn_test_connect_fd(addr);
    cr_assert_geq(s->fd, 0);
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void start(struct setup *s, const gn_framing *f, size_t max_input)
{
    gn_options opts = {.max_input = max_input};

    if (f)
        opts.framing = *f;
    start_with(s, &opts);
}

static void finish(struct setup *s)
{
    if (s->fd >= 0)
        close(s->fd);
    gn_server_close(s->srv, 0);
    gn_test_run_loop_for(s->loop, WAIT_MS);
    gn_loop_free(s->loop);
    inbox_reset();
}

static void write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        cr_assert_gt(n, 0, "write failed");
        p += n;
        len -= (size_t)n;
    }
}

/* Each byte alone, with the loop run after it, so the server reads it
 * alone. */
static void write_bytewise(struct setup *s, const void *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        write_all(s->fd, (const char *)data + i, 1);
        gn_test_run_loop_for(s->loop, SLOW_MS);
    }
}

/* Run the loop until box.want messages came (or the connection closed). */
static void wait_messages(struct setup *s, int want)
{
    box.want = want;
    for (int i = 0; i < 100 && box.n < want && !box.closed; i++)
        gn_test_run_loop_for(s->loop, WAIT_MS / 100);
    cr_assert_eq(box.n, want, "got %d of %d messages", box.n, want);
}

static void expect_msg(int i, const char *text, size_t len)
{
    cr_assert_lt(i, box.n);
    cr_expect_eq(box.lens[i], len, "message %d: %zu bytes, not %zu", i, box.lens[i], len);
    cr_expect(memcmp(box.msgs[i], text, len) == 0, "message %d: '%s'", i, box.msgs[i]);
}

/* ---- split over single bytes ------------------------------------------ */

Test(conn_message, lines_written_one_byte_at_a_time_arrive_whole, .timeout = 30)
{
    const gn_framing f = {.kind = GN_FRAMING_LINE, .max_message = 64};
    static const char text[] = "hello\r\n\nsecond line\nthird";
    struct setup s;

    start(&s, &f, 0);
    write_bytewise(&s, text, sizeof(text) - 1);
    cr_assert_eq(box.n, 3, "the unfinished line is not delivered: %d", box.n);
    expect_msg(0, "hello", 5);
    expect_msg(1, "", 0);
    expect_msg(2, "second line", 11);
    write_bytewise(&s, "\n", 1);
    wait_messages(&s, 4);
    expect_msg(3, "third", 5);
    cr_expect_eq(box.bytes_len, 0u, "on_data is not called while framed");
    finish(&s);
}

Test(conn_message, a_delimiter_of_several_bytes_may_be_split_and_kept, .timeout = 30)
{
    const gn_framing f = {.kind = GN_FRAMING_LINE, .delimiter = "\r\n\r\n", .keep_delimiter = true};
    static const char text[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\nnext\r\n\r\n";
    struct setup s;

    start(&s, &f, 0);
    write_bytewise(&s, text, sizeof(text) - 1);
    wait_messages(&s, 2);
    expect_msg(0, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    expect_msg(1, "next\r\n\r\n", 8);
    finish(&s);
}

Test(conn_message, fixed_size_messages_written_one_byte_at_a_time_arrive_whole, .timeout = 30)
{
    const gn_framing f = {.kind = GN_FRAMING_FIXED, .size = 4};
    struct setup s;

    start(&s, &f, 0);
    write_bytewise(&s, "abcd\0\n\r\xffwxy", 11);
    wait_messages(&s, 2);
    expect_msg(0, "abcd", 4);
    expect_msg(1, "\0\n\r\xff", 4);
    write_bytewise(&s, "z", 1);
    wait_messages(&s, 3);
    expect_msg(2, "wxyz", 4);
    finish(&s);
}

Test(conn_message, length_prefixed_messages_written_one_byte_at_a_time_arrive_whole, .timeout = 30)
{
    const gn_framing f = {.kind = GN_FRAMING_LENGTH, .prefix_bytes = 2, .max_message = 300};
    static const char wire[] = "\x00\x05hello"
                               "\x00\x00"
                               "\x01\x00";
    char big[258];
    struct setup s;

    memset(big, 'q', sizeof(big));
    big[0] = 'A';
    start(&s, &f, 0);
    write_bytewise(&s, wire, sizeof(wire) - 1);
    wait_messages(&s, 2);
    expect_msg(0, "hello", 5);
    expect_msg(1, "", 0);
    write_bytewise(&s, big, 256); /* the payload the third prefix announced */
    wait_messages(&s, 3);
    expect_msg(2, big, 256);
    finish(&s);
}

Test(conn_message, a_little_endian_length_that_counts_its_prefix_is_read_as_such, .timeout = 30)
{
    const gn_framing f = {.kind = GN_FRAMING_LENGTH,
                          .prefix_bytes = 4,
                          .prefix_little_endian = true,
                          .length_counts_prefix = true};
    static const char wire[] = "\x07\x00\x00\x00"
                               "abc"
                               "\x04\x00\x00\x00";
    struct setup s;

    start(&s, &f, 0);
    write_bytewise(&s, wire, sizeof(wire) - 1);
    wait_messages(&s, 2);
    expect_msg(0, "abc", 3);
    expect_msg(1, "", 0);
    finish(&s);
}

/* ---- large, and many at once ------------------------------------------ */

struct writer {
    int fd;
    const char *data;
    size_t len;
};

static void *write_main(void *arg)
{
    struct writer *w = arg;
    size_t done = 0;

    while (done < w->len) {
        ssize_t n = write(w->fd, w->data + done, w->len - done);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    return NULL;
}

/* Write len bytes from another thread while the loop runs for want
 * messages. */
static void write_big(struct setup *s, const char *data, size_t len, int want)
{
    struct writer w = {s->fd, data, len};
    pthread_t t;

    cr_assert_eq(pthread_create(&t, NULL, write_main, &w), 0);
    wait_messages(s, want);
    pthread_join(t, NULL);
}

static char *pattern(size_t len)
{
    char *p = malloc(len);

    cr_assert_not_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (char)('a' + (i * 7 + i / 251) % 26);
    return p;
}

Test(conn_message, a_one_mib_length_prefixed_message_arrives_whole_and_intact, .timeout = 60)
{
    const gn_framing f = {.kind = GN_FRAMING_LENGTH, .max_message = BIG_BYTES};
    char *wire = malloc(BIG_BYTES + 4 + 8);
    char *payload = pattern(BIG_BYTES);
    struct setup s;

    cr_assert_not_null(wire);
    memcpy(wire, "\x00\x10\x00\x00", 4); /* 1 MiB, big-endian */
    memcpy(wire + 4, payload, BIG_BYTES);
    memcpy(wire + 4 + BIG_BYTES, "\x00\x00\x00\x02ok", 6);
    start(&s, &f, 0); /* max_input stays at its default: the framing raises it */
    write_big(&s, wire, BIG_BYTES + 10, 2);
    expect_msg(0, payload, BIG_BYTES);
    expect_msg(1, "ok", 2);
    cr_expect_eq(box.error, 0, "%s", box.message);
    finish(&s);
    free(wire);
    free(payload);
}

Test(conn_message, a_one_mib_line_arrives_whole_and_intact, .timeout = 60)
{
    const gn_framing f = {.kind = GN_FRAMING_LINE, .max_message = BIG_BYTES};
    char *line = pattern(BIG_BYTES + 2);
    struct setup s;

    line[BIG_BYTES] = '\r';
    line[BIG_BYTES + 1] = '\n';
    start(&s, &f, 0);
    write_big(&s, line, BIG_BYTES + 2, 1);
    expect_msg(0, line, BIG_BYTES);
    finish(&s);
    free(line);
}

Test(conn_message, a_thousand_lines_in_one_write_arrive_in_order, .timeout = 30)
{
    const gn_framing f = {.kind = GN_FRAMING_LINE, .max_message = 32};
    char text[16 * 1000], want[16];
    size_t len = 0;
    struct setup s;

    for (int i = 0; i < 1000; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "line %d\n", i);
    start(&s, &f, 0);
    write_all(s.fd, text, len);
    wait_messages(&s, 1000);
    for (int i = 0; i < 1000; i++) {
        snprintf(want, sizeof(want), "line %d", i);
        expect_msg(i, want, strlen(want));
    }
    finish(&s);
}

/* ---- over the limit ---------------------------------------------------- */

static void reply(gn_conn *conn, const char *msg, size_t len)
{
    char out[64];
    int n = snprintf(out, sizeof(out), "ok:%.*s\n", (int)len, msg);

    gn_send(conn, out, (size_t)n);
}

/* Everything the server sends until it closes. */
static size_t read_to_end(struct setup *s, char *buf, size_t cap)
{
    size_t got = 0;

    for (int i = 0; i < 200 && !box.closed; i++)
        gn_test_run_loop_for(s->loop, WAIT_MS / 200);
    cr_assert(box.closed, "the connection was not closed");
    for (;;) {
        ssize_t n = read(s->fd, buf + got, cap - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return got;
}

Test(conn_message, a_line_over_max_message_closes_after_the_lines_and_replies_before_it,
     .timeout = 30)
{
    const gn_framing f = {.kind = GN_FRAMING_LINE, .max_message = 16};
    char junk[200], got[256];
    struct setup s;

    memset(junk, 'x', sizeof(junk));
    start(&s, &f, 0);
    box.react = reply;
    write_all(s.fd, "one\ntwo\n", 8);
    write_all(s.fd, junk, sizeof(junk)); /* no newline within 16 bytes */
    read_to_end(&s, got, sizeof(got));
    cr_expect_eq(box.n, 2);
    cr_expect_str_eq(got, "ok:one\nok:two\n", "replies sent before the refusal go out");
    cr_expect_eq(box.error, GN_EMSGSIZE);
    cr_expect_eq(box.reason, GN_EMSGSIZE);
    cr_expect(strstr(box.message, "line longer than max_message 16"), "%s", box.message);
    cr_expect(strstr(box.message, "127.0.0.1:"), "names the peer: %s", box.message);
    finish(&s);
}

Test(conn_message, a_complete_line_over_max_message_is_refused_too, .timeout = 30)
{
    const gn_framing f = {.kind = GN_FRAMING_LINE, .max_message = 4};
    char got[64];
    struct setup s;

    start(&s, &f, 0);
    write_all(s.fd, "four\r\nfive!\n", 12);
    read_to_end(&s, got, sizeof(got));
    cr_expect_eq(box.n, 1);
    expect_msg(0, "four", 4);
    cr_expect_eq(box.reason, GN_EMSGSIZE);
    cr_expect(strstr(box.message, "line of 5 bytes exceeds max_message 4"), "%s", box.message);
    finish(&s);
}

Test(conn_message, a_length_over_max_message_is_refused_before_its_payload_comes, .timeout = 30)
{
    const gn_framing f = {.kind = GN_FRAMING_LENGTH, .max_message = BIG_BYTES};
    char got[64];
    struct setup s;

    start(&s, &f, 0);
    box.react = reply;
    /* 2000000 = 0x1E8480, announced and never sent */
    write_all(s.fd, "\x00\x00\x00\x02hi\x00\x1e\x84\x80", 10);
    read_to_end(&s, got, sizeof(got));
    cr_expect_eq(box.n, 1);
    cr_expect_str_eq(got, "ok:hi\n");
    cr_expect_eq(box.reason, GN_EMSGSIZE);
    cr_expect(strstr(box.message, "message of 2000000 bytes exceeds max_message 1048576"), "%s",
              box.message);
    finish(&s);
}

/* ---- handlers acting between messages --------------------------------- */

#define LONG_REPLY (8u << 20) /* more than the sockets take at once */

static void send_long(gn_conn *conn)
{
    char *r = malloc(LONG_REPLY);

    cr_assert_not_null(r);
    memset(r, 'r', LONG_REPLY);
    cr_assert_eq(gn_send(conn, r, LONG_REPLY), 0);
    free(r);
}

/* A long reply, so the close has output to flush: the connection is
 * still open, and closing, when the next message would be cut. */
static void close_at_second(gn_conn *conn, const char *msg, size_t len)
{
    (void)msg;
    (void)len;
    if (box.n == 2) {
        send_long(conn);
        gn_close(conn);
    }
}

/* Read what the server sends, running its loop, until it has closed and
 * its end is read; returns the count. */
static size_t drain_until_closed(struct setup *s)
{
    static char buf[1 << 16];
    size_t total = 0;

    for (int i = 0; i < 2000; i++) {
        ssize_t n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0)
            total += (size_t)n;
        else if (n == 0 && box.closed)
            break;
        else
            gn_test_run_loop_for(s->loop, SLOW_MS);
    }
    cr_assert(box.closed, "the connection was not closed");
    return total;
}

static void reply_long_once(gn_conn *conn, const char *msg, size_t len)
{
    (void)msg;
    (void)len;
    send_long(conn);
}

Test(conn_message, a_refused_line_waits_for_the_output_queued_before_it, .timeout = 30)
{
    const gn_framing f = {.kind = GN_FRAMING_LINE, .max_message = 16};
    char wire[4 + 8192];
    struct setup s;

    memcpy(wire, "one\n", 4);
    memset(wire + 4, 'x', sizeof(wire) - 4);
    start(&s, &f, 1024); /* the rest of the read is over max_input: dropped */
    box.react = reply_long_once;
    write_all(s.fd, wire, sizeof(wire));
    cr_expect_eq(drain_until_closed(&s), LONG_REPLY, "the reply is flushed before the close");
    cr_expect_eq(box.n, 1);
    cr_expect_eq(box.reason, GN_EMSGSIZE);
    cr_expect(strstr(box.message, "line longer than max_message 16"), "%s", box.message);
    finish(&s);
}

Test(conn_message, no_message_follows_a_close_inside_on_message, .timeout = 30)
{
    const gn_framing f = {.kind = GN_FRAMING_LINE};
    struct setup s;

    start(&s, &f, 0);
    box.react = close_at_second;
    write_all(s.fd, "a\nb\nc\nd\n", 8);
    cr_expect_eq(drain_until_closed(&s), LONG_REPLY, "the reply is flushed before the close");
    cr_expect_eq(box.n, 2);
    cr_expect_eq(box.reason, 0, "an orderly close");
    finish(&s);
}

/* "LEN n" then n bytes of body, then lines again; "RAW" turns framing
 * off for good. */
static void header_then_body(gn_conn *conn, const char *msg, size_t len)
{
    const gn_framing line = {.kind = GN_FRAMING_LINE};
    gn_framing body = {.kind = GN_FRAMING_FIXED};
    static bool in_body;

    if (box.n == 1)
        in_body = false;
    if (in_body) {
        in_body = false;
        cr_assert_eq(gn_conn_set_framing(conn, &line), 0);
    } else if (len > 4 && memcmp(msg, "LEN ", 4) == 0) {
        body.size = (size_t)atoi(msg + 4);
        in_body = true;
        cr_assert_eq(gn_conn_set_framing(conn, &body), 0);
    } else if (len == 3 && memcmp(msg, "RAW", 3) == 0) {
        cr_assert_eq(gn_conn_set_framing(conn, NULL), 0);
    }
}

Test(conn_message, a_framing_changed_inside_on_message_cuts_the_next_message, .timeout = 30)
{
    const gn_framing f = {.kind = GN_FRAMING_LINE};
    static const char text[] = "LEN 8\nab\ncd\nefLEN 2\n\n\nafter\nRAW\nrest\nof it";
    struct setup s;

    start(&s, &f, 0);
    box.react = header_then_body;
    write_all(s.fd, text, sizeof(text) - 1); /* all in one read */
    wait_messages(&s, 6);
    expect_msg(0, "LEN 8", 5);
    expect_msg(1, "ab\ncd\nef", 8);
    expect_msg(2, "LEN 2", 5);
    expect_msg(3, "\n\n", 2);
    expect_msg(4, "after", 5);
    expect_msg(5, "RAW", 3);
    for (int i = 0; i < 50 && box.bytes_len < 10; i++)
        gn_test_run_loop_for(s.loop, SLOW_MS);
    cr_expect_str_eq(box.bytes, "rest\nof it", "after RAW, bytes go to on_data at once");
    finish(&s);
}

Test(conn_message, a_framing_changed_bytewise_still_cuts_at_the_change, .timeout = 30)
{
    const gn_framing f = {.kind = GN_FRAMING_LINE};
    static const char text[] = "LEN 3\nx\nyLEN 1\nz";
    struct setup s;

    start(&s, &f, 0);
    box.react = header_then_body;
    write_bytewise(&s, text, sizeof(text) - 1);
    wait_messages(&s, 4);
    expect_msg(1, "x\ny", 3);
    expect_msg(3, "z", 1);
    finish(&s);
}

static void pause_at_first(gn_conn *conn, const char *msg, size_t len)
{
    (void)msg;
    (void)len;
    if (box.n == 1) {
        gn_pause_reading(conn);
        gn_loop_stop(gn_conn_loop(conn));
    }
}

Test(conn_message, messages_wait_while_paused_and_come_on_resume, .timeout = 30)
{
    const gn_framing f = {.kind = GN_FRAMING_FIXED, .size = 2};
    struct setup s;

    start(&s, &f, 0);
    box.react = pause_at_first;
    write_all(s.fd, "aabbcc", 6);
    wait_messages(&s, 1);
    gn_test_run_loop_for(s.loop, 20);
    cr_expect_eq(box.n, 1, "no message while paused");
    cr_assert_not_null(box.conn);
    gn_resume_reading(box.conn);
    wait_messages(&s, 3);
    expect_msg(1, "bb", 2);
    expect_msg(2, "cc", 2);
    finish(&s);
}

#define HIGH_WATER (64u << 10)

/* Each message asks for a reply far above the high watermark. */
static void reply_long(gn_conn *conn, const char *msg, size_t len)
{
    gn_conn_stats st;
    char *r = malloc(LONG_REPLY);

    (void)msg;
    (void)len;
    cr_assert_not_null(r);
    gn_conn_get_stats(conn, &st);
    cr_expect_leq(st.queued, HIGH_WATER, "message %d came while the output was full", box.n);
    memset(r, 'r', LONG_REPLY);
    cr_expect_eq(gn_send(conn, r, LONG_REPLY), 0);
    free(r);
}

Test(conn_message, messages_wait_while_the_output_is_full_and_come_as_it_drains, .timeout = 60)
{
    const gn_options opts = {.framing = {.kind = GN_FRAMING_LINE},
                             .pause_reading_when_full = true,
                             .high_watermark = HIGH_WATER,
                             .max_output = 2 * LONG_REPLY};
    struct setup s;

    start_with(&s, &opts);
    box.react = reply_long;
    write_all(s.fd, "1\n2\n3\n", 6); /* in one read, and nothing more comes */
    shutdown(s.fd, SHUT_WR);
    cr_expect_eq(drain_until_closed(&s), 3 * LONG_REPLY);
    cr_expect_eq(box.n, 3, "every message came, each once the output had drained");
    finish(&s);
}

/* ---- set on one connection -------------------------------------------- */

/* A raw greeting line, then length-prefixed messages. */
static size_t greeting_then_frames(gn_conn *conn, const char *data, size_t len)
{
    const gn_framing f = {.kind = GN_FRAMING_LENGTH, .prefix_bytes = 1};
    const char *nl = memchr(data, '\n', len);

    if (!nl)
        return 0;
    cr_assert_eq(gn_conn_set_framing(conn, &f), 0);
    return (size_t)(nl - data) + 1;
}

Test(conn_message, a_framing_set_inside_on_data_cuts_the_rest_without_more_input, .timeout = 30)
{
    gn_handlers h = handlers;
    char addr[GN_ENDPOINT_STRLEN];
    struct setup s;

    inbox_reset();
    h.on_data = greeting_then_frames;
    cr_assert_eq(gn_loop_new(&s.loop), 0);
    s.srv = gn_test_listen(s.loop, "127.0.0.1:0", &h, NULL, addr, sizeof(addr));
    s.fd = gn_test_connect_fd(addr);
    cr_assert_geq(s.fd, 0);
    static const char wire[] = "HELLO 1\n\x02hi\x00\x03"
                               "bye";
    write_all(s.fd, wire, sizeof(wire) - 1); /* one read, nothing after */
    wait_messages(&s, 3);
    expect_msg(0, "hi", 2);
    expect_msg(1, "", 0);
    expect_msg(2, "bye", 3);
    finish(&s);
}

static void frame_on_accept(gn_conn *conn)
{
    const gn_framing f = {.kind = GN_FRAMING_LENGTH, .prefix_bytes = 1};

    box.conn = conn;
    cr_assert_eq(gn_conn_set_framing(conn, &f), 0);
}

Test(conn_message, gn_conn_set_framing_in_on_accept_frames_that_connection, .timeout = 30)
{
    gn_handlers h = handlers;
    char addr[GN_ENDPOINT_STRLEN];
    gn_loop *loop;
    gn_server *srv;
    int fd;

    inbox_reset();
    h.on_accept = frame_on_accept;
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &h, NULL, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr);
    cr_assert_geq(fd, 0);
    write_all(fd, "\x03one\x03two", 8);
    struct setup s = {loop, srv, fd};
    wait_messages(&s, 2);
    expect_msg(0, "one", 3);
    expect_msg(1, "two", 3);
    finish(&s);
}

Test(conn_message, framings_that_cannot_work_are_refused_with_a_reason)
{
    const gn_handlers h = {.on_message = on_message};
    gn_options opts = {.framing = {.kind = GN_FRAMING_LENGTH, .prefix_bytes = 3}};
    char err[GN_ERRBUF_SIZE];
    gn_framing f = {.kind = GN_FRAMING_FIXED};
    gn_server *srv;
    gn_conn *conn;
    gn_loop *loop;

    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_expect_eq(gn_listen(loop, "127.0.0.1:0", &h, &opts, &srv, err, sizeof(err)), GN_EINVAL);
    cr_expect(strstr(err, "prefix_bytes 3 is not 1, 2, 4 or 8"), "%s", err);
    opts.framing = f; /* size 0 */
    cr_expect_eq(gn_connect(loop, "127.0.0.1:9", &h, &opts, &conn, err, sizeof(err)), GN_EINVAL);
    cr_expect(strstr(err, "fixed size of 0 bytes"), "%s", err);
    opts.framing = (gn_framing){.kind = GN_FRAMING_LINE, .delimiter = "12345678"};
    cr_expect_eq(gn_listen(loop, "127.0.0.1:0", &h, &opts, &srv, err, sizeof(err)), GN_EINVAL);
    cr_expect(strstr(err, "delimiter"), "%s", err);
    opts.framing = (gn_framing){.kind = (gn_framing_kind)7};
    cr_expect_eq(gn_listen(loop, "127.0.0.1:0", &h, &opts, &srv, err, sizeof(err)), GN_EINVAL);
    cr_expect_eq(gn_conn_set_framing(NULL, &f), GN_EINVAL);
    gn_loop_free(loop);
}

/* ---- blocking mode ---------------------------------------------------- */

/* A dialled connection and the raw socket at its other end. */
struct dialled {
    gn_conn *conn;
    int peer;
};

static void dial_pair(struct dialled *d, const gn_options *opts)
{
    char addr[GN_ENDPOINT_STRLEN], err[GN_ERRBUF_SIZE];
    int lfd = gn_test_raw_listener("", addr, sizeof(addr), 4);

    cr_assert_eq(gn_dial(addr, 5000, opts, &d->conn, err, sizeof(err)), 0, "%s", err);
    d->peer = accept(lfd, NULL, NULL);
    cr_assert_geq(d->peer, 0);
    close(lfd);
}

Test(conn_message, gn_read_message_reads_the_framings_of_its_options_and_of_each_call,
     .timeout = 30)
{
    const gn_options opts = {.framing = {.kind = GN_FRAMING_LINE, .max_message = 100}};
    const gn_framing fixed = {.kind = GN_FRAMING_FIXED, .size = 3};
    const gn_framing prefixed = {.kind = GN_FRAMING_LENGTH, .prefix_bytes = 1};
    struct dialled d;
    char buf[128];

    dial_pair(&d, &opts);
    write_all(d.peer, "first\r\nxyz\x02hi", 13);
    write_all(d.peer,
              "\x05"
              "abcde",
              6);
    cr_expect_eq(gn_read_message(d.conn, NULL, buf, sizeof(buf), 5000), 5);
    cr_expect_str_eq(buf, "first");
    cr_expect_eq(gn_read_message(d.conn, &fixed, buf, sizeof(buf), 5000), 3);
    cr_expect_str_eq(buf, "xyz");
    cr_expect_eq(gn_read_message(d.conn, &prefixed, buf, sizeof(buf), 5000), 2);
    cr_expect_str_eq(buf, "hi");
    cr_expect_eq(gn_read_message(d.conn, &prefixed, buf, 5, 5000), GN_EMSGSIZE,
                 "5 bytes need 6 with the NUL");
    cr_expect_eq(gn_read_message(d.conn, &prefixed, buf, 6, 5000), 5, "nothing was consumed");
    cr_expect_str_eq(buf, "abcde");
    write_all(d.peer, "cut", 3);
    close(d.peer);
    cr_expect_eq(gn_read_message(d.conn, NULL, buf, sizeof(buf), 5000), GN_EEOF);
    cr_expect_eq(gn_read(d.conn, buf, sizeof(buf), 5000), 3, "the cut message stays buffered");
    gn_close(d.conn);
}

Test(conn_message, gn_read_message_refuses_a_line_or_length_over_max_message, .timeout = 30)
{
    const gn_framing line = {.kind = GN_FRAMING_LINE, .max_message = 8};
    const gn_framing prefixed = {.kind = GN_FRAMING_LENGTH, .max_message = 1000};
    struct dialled d;
    char buf[2000], junk[100];

    memset(junk, 'j', sizeof(junk));
    dial_pair(&d, NULL);
    cr_expect_eq(gn_read_message(d.conn, NULL, buf, sizeof(buf), 100), GN_EINVAL, "no framing");
    write_all(d.peer, "12345678\n", 9);
    cr_expect_eq(gn_read_message(d.conn, &line, buf, sizeof(buf), 5000), 8);
    write_all(d.peer, junk, sizeof(junk));
    cr_expect_eq(gn_read_message(d.conn, &line, buf, sizeof(buf), 5000), GN_EMSGSIZE);
    gn_close(d.conn);
    close(d.peer);

    dial_pair(&d, NULL);
    write_all(d.peer, "\x00\x00\x03\xe9", 4); /* 1001 */
    cr_expect_eq(gn_read_message(d.conn, &prefixed, buf, sizeof(buf), 5000), GN_EMSGSIZE,
                 "refused before the payload comes");
    gn_close(d.conn);
    close(d.peer);
}

Test(conn_message, gn_read_message_reads_a_one_mib_message_written_in_pieces, .timeout = 60)
{
    const gn_framing prefixed = {.kind = GN_FRAMING_LENGTH, .max_message = BIG_BYTES};
    char *payload = pattern(BIG_BYTES), *buf = malloc(BIG_BYTES + 1);
    struct writer w;
    struct dialled d;
    pthread_t t;

    cr_assert_not_null(buf);
    dial_pair(&d, NULL);
    write_all(d.peer, "\x00\x10\x00\x00", 4);
    w = (struct writer){d.peer, payload, BIG_BYTES};
    cr_assert_eq(pthread_create(&t, NULL, write_main, &w), 0);
    cr_expect_eq(gn_read_message(d.conn, &prefixed, buf, BIG_BYTES + 1, 10000), (ssize_t)BIG_BYTES);
    pthread_join(t, NULL);
    cr_expect(memcmp(buf, payload, BIG_BYTES) == 0);
    gn_close(d.conn);
    close(d.peer);
    free(buf);
    free(payload);
}

/* Answers each length-prefixed message with its length, as a line. */
static void count_messages(gn_conn *conn)
{
    char buf[64], line[32];
    ssize_t n;

    while ((n = gn_read_message(conn, NULL, buf, sizeof(buf), 5000)) >= 0) {
        int len = snprintf(line, sizeof(line), "%zd\n", n);
        if (gn_write_all(conn, line, (size_t)len, 5000) < 0)
            return;
    }
    snprintf(line, sizeof(line), "end %s\n", gn_errname((int)n));
    gn_write_all(conn, line, strlen(line), 5000);
}

Test(conn_message, a_threaded_server_reads_the_framing_of_its_options, .timeout = 30)
{
    const gn_options opts = {.framing = {.kind = GN_FRAMING_LENGTH, .prefix_bytes = 2}};
    static const char wire[] = "\x00\x03"
                               "abc"
                               "\x00\x00"
                               "\x00\x07"
                               "1234567";
    char addr[GN_ENDPOINT_STRLEN], err[GN_ERRBUF_SIZE], got[64];
    gn_server *srv;
    gn_endpoint ep;
    size_t len = 0;
    int fd;

    cr_assert_eq(
        gn_serve_threads("127.0.0.1:0", count_messages, &opts, NULL, &srv, err, sizeof(err)), 0,
        "%s", err);
    cr_assert_eq(gn_server_get_endpoint(srv, 0, &ep), 0);
    gn_endpoint_format(&ep, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr);
    cr_assert_geq(fd, 0);
    for (size_t i = 0; i < sizeof(wire) - 1; i++)
        write_all(fd, wire + i, 1); /* the handler may read each alone */
    shutdown(fd, SHUT_WR);
    for (ssize_t n; len < sizeof(got) - 1 && (n = read(fd, got + len, sizeof(got) - 1 - len)) > 0;)
        len += (size_t)n;
    got[len] = '\0';
    cr_expect_str_eq(got, "3\n0\n7\nend EEOF\n");
    close(fd);
    gn_server_close(srv, 1000);
}
