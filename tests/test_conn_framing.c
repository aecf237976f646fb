/*
 * Framing: a line split into 1-byte writes is reassembled by the line
 * framer; a line over its limit is rejected with an error instead of
 * growing memory; the input cap holds for handlers that never consume;
 * the helpers answer 1 / 0 / error exactly.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

#define LINE_MAX_LEN 64

struct lines {
    char got[8][LINE_MAX_LEN + 1];
    int n;
    int reason;
    bool closed;
    int frame_error;
    size_t max_buffered;
};

static struct lines lines;

static size_t on_lines(gn_conn *conn, const char *data, size_t len)
{
    size_t used = 0, line_len, frame_len;
    gn_conn_stats st;
    int rc;

    gn_conn_get_stats(conn, &st);
    if (st.buffered > lines.max_buffered)
        lines.max_buffered = st.buffered;
    while ((rc = gn_frame_line(data + used, len - used, LINE_MAX_LEN, &line_len, &frame_len)) ==
           1) {
        if (lines.n < 8)
            memcpy(lines.got[lines.n], data + used, line_len);
        lines.n++;
        used += frame_len;
    }
    if (rc < 0) {
        lines.frame_error = rc;
        gn_abort(conn);
    }
    return used;
}

static void on_lines_close(gn_conn *conn, int reason)
{
    (void)conn;
    lines.closed = true;
    lines.reason = reason;
}

static const gn_handlers line_handlers = {.on_data = on_lines, .on_close = on_lines_close};

static void write_slowly(int fd, const char *text, gn_loop *loop)
{
    for (size_t i = 0; text[i]; i++) {
        cr_assert_eq(write(fd, text + i, 1), 1);
        gn_test_run_loop_for(loop, 5);
    }
}

Test(conn_framing, one_byte_writes_reassemble_into_lines)
{
    char addr[GN_ENDPOINT_STRLEN];
    gn_loop *loop;
    gn_server *srv;
    int fd;

    memset(&lines, 0, sizeof(lines));
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &line_handlers, NULL, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr);
    cr_assert_geq(fd, 0);
    write_slowly(fd, "hello\r\nsecond line\nthird", loop);
    cr_expect_eq(lines.n, 2);
    cr_expect_str_eq(lines.got[0], "hello", "the CR goes, the line stays");
    cr_expect_str_eq(lines.got[1], "second line");
    write_slowly(fd, "\n", loop);
    cr_expect_eq(lines.n, 3);
    cr_expect_str_eq(lines.got[2], "third");
    close(fd);
    gn_test_run_loop_for(loop, 200);
    cr_expect(lines.closed);
    cr_expect_eq(lines.reason, 0);
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
}

Test(conn_framing, a_line_over_the_limit_is_rejected_and_memory_stays_bounded)
{
    char addr[GN_ENDPOINT_STRLEN], junk[4096];
    gn_loop *loop;
    gn_server *srv;
    int fd;

    memset(&lines, 0, sizeof(lines));
    memset(junk, 'a', sizeof(junk));
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &line_handlers, NULL, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr);
    cr_assert_geq(fd, 0);
    for (int i = 0; i < 16; i++) {
        if (write(fd, junk, 16) != 16)
            break;
        gn_test_run_loop_for(loop, 5);
    }
    cr_expect_eq(lines.frame_error, GN_EMSGSIZE);
    cr_expect(lines.closed);
    cr_expect_leq(lines.max_buffered, LINE_MAX_LEN + 16u, "buffered %zu", lines.max_buffered);
    close(fd);
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
}

static size_t hoard(gn_conn *conn, const char *data, size_t len)
{
    (void)conn;
    (void)data;
    (void)len;
    return 0; /* never consumes */
}

struct hoard_result {
    int reason;
    char message[GN_ERRBUF_SIZE];
};

static struct hoard_result hoarded;

static void hoard_error(gn_conn *conn, int code, const char *message)
{
    (void)conn;
    (void)code;
    snprintf(hoarded.message, sizeof(hoarded.message), "%s", message);
}

static void hoard_close(gn_conn *conn, int reason)
{
    (void)conn;
    hoarded.reason = reason;
}

Test(conn_framing, input_cap_closes_a_connection_whose_handler_never_consumes)
{
    const gn_handlers h = {.on_data = hoard, .on_error = hoard_error, .on_close = hoard_close};
    gn_options opts = {.max_input = 100000};
    char addr[GN_ENDPOINT_STRLEN], junk[65536];
    gn_loop *loop;
    gn_server *srv;
    int fd;

    memset(&hoarded, 0, sizeof(hoarded));
    memset(junk, 'z', sizeof(junk));
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &h, &opts, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr);
    cr_assert_geq(fd, 0);
    for (int i = 0; i < 4; i++)
        if (write(fd, junk, sizeof(junk)) < 0)
            break;
    gn_test_run_loop_for(loop, 500);
    cr_expect_eq(hoarded.reason, GN_EMSGSIZE);
    cr_expect(strstr(hoarded.message, "max_input"), "%s", hoarded.message);
    close(fd);
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
}

Test(conn_framing, helpers_answer_frame_wait_or_error)
{
    size_t line_len, frame_len, off, plen;

    cr_expect_eq(gn_frame_line("abc", 3, 10, &line_len, &frame_len), 0);
    cr_expect_eq(gn_frame_line("abc\n", 4, 10, &line_len, &frame_len), 1);
    cr_expect_eq(line_len, 3u);
    cr_expect_eq(frame_len, 4u);
    cr_expect_eq(gn_frame_line("\r\n", 2, 10, &line_len, &frame_len), 1);
    cr_expect_eq(line_len, 0u);
    cr_expect_eq(frame_len, 2u);
    cr_expect_eq(gn_frame_line("abcdef", 6, 4, &line_len, &frame_len), GN_EMSGSIZE);
    cr_expect_eq(gn_frame_line("abc\n", 4, 4, &line_len, &frame_len), 1, "newline within max");
    cr_expect_eq(gn_frame_line(NULL, 0, 4, &line_len, &frame_len), 0);
    cr_expect_eq(gn_frame_line("a", 1, 0, &line_len, &frame_len), GN_EINVAL);

    cr_expect_eq(gn_frame_exact(3, 4, &frame_len), 0);
    cr_expect_eq(gn_frame_exact(5, 4, &frame_len), 1);
    cr_expect_eq(frame_len, 4u);

    cr_expect_eq(gn_frame_prefix("\x00\x03"
                                 "ab",
                                 4, 2, 100, &off, &plen, &frame_len),
                 0);
    cr_expect_eq(gn_frame_prefix("\x00\x03"
                                 "abcd",
                                 6, 2, 100, &off, &plen, &frame_len),
                 1);
    cr_expect_eq(off, 2u);
    cr_expect_eq(plen, 3u);
    cr_expect_eq(frame_len, 5u);
    cr_expect_eq(gn_frame_prefix("\xff\xff\xff\xff", 4, 4, 1 << 20, &off, &plen, &frame_len),
                 GN_EMSGSIZE, "a hostile length is refused before any payload arrives");
    cr_expect_eq(gn_frame_prefix("\x01", 1, 3, 100, &off, &plen, &frame_len), GN_EINVAL);
    cr_expect_eq(gn_frame_prefix("\xff\xff\xff\xff\xff\xff\xff\xff", 8, 8, UINT64_MAX, &off, &plen,
                                 &frame_len),
                 GN_EMSGSIZE);
}
