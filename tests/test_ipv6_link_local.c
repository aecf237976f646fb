/*
 * IPv6 link-local addresses with a scope, over a real interface: the test
 * process moves into a network namespace of its own (needs root; skipped
 * otherwise), brings its loopback up and gives it fe80::1, then serves
 * and dials "[fe80::1%lo]:port" in both modes.  Without the scope the
 * address means nothing, so the scope must survive parsing, resolution,
 * listening, connecting and formatting.
 */
#define _GNU_SOURCE /* unshare */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "gnezdo.h"
#include "helpers.h"

static void private_network(void)
{
    struct gn_test_run run;
    char *up[] = {"/usr/sbin/ip", "link", "set", "lo", "up", NULL};
    char *addr[] = {"/usr/sbin/ip", "-6", "addr", "add", "fe80::1/64", "dev", "lo", "nodad", NULL};

    if (unshare(CLONE_NEWNET) < 0)
        cr_skip("needs a network namespace of its own (root): %s", strerror(errno));
    cr_assert_eq(gn_test_run_argv(up, NULL, 5000, &run), 0);
    cr_assert_eq(run.status, 0, "ip link set lo up: %s", run.err);
    gn_test_run_free(&run);
    cr_assert_eq(gn_test_run_argv(addr, NULL, 5000, &run), 0);
    cr_assert_eq(run.status, 0, "ip -6 addr add: %s", run.err);
    gn_test_run_free(&run);
}

static void echo_line(gn_conn *conn)
{
    char line[128];
    size_t len;

    if (gn_read_line(conn, line, sizeof(line) - 1, &len, 2000) == 1) {
        line[len] = '\n';
        gn_write_all(conn, line, len + 1, 2000);
    }
}

static size_t echo(gn_conn *conn, const char *data, size_t len)
{
    gn_send(conn, data, len);
    return len;
}

static char async_reply[64];

static void say(gn_conn *conn)
{
    gn_send(conn, "event\n", 6);
}

static size_t heard(gn_conn *conn, const char *data, size_t len)
{
    size_t have = strlen(async_reply);

    /* TCP keeps no message boundaries: the line may come in pieces. */
    snprintf(async_reply + have, sizeof(async_reply) - have, "%.*s", (int)len, data);
    if (strchr(async_reply, '\n'))
        gn_close(conn);
    return len;
}

Test(ipv6_link_local, scoped_address_served_and_dialled_in_both_modes)
{
    char err[GN_ERRBUF_SIZE], text[GN_ENDPOINT_STRLEN], dial[GN_ENDPOINT_STRLEN], line[64];
    gn_server *srv;
    gn_endpoint ep;
    gn_conn *conn;
    size_t len;

    private_network();
    /* blocking: a threaded server and gn_dial */
    cr_assert_eq(gn_serve_threads("[fe80::1%lo]:0", echo_line, NULL, NULL, &srv, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(gn_server_get_endpoint(srv, 0, &ep), 0);
    gn_endpoint_format(&ep, text, sizeof(text));
    cr_expect(strncmp(text, "[fe80::1%lo]:", 13) == 0, "the scope is kept: %s", text);
    cr_expect_gt(gn_endpoint_scope_id(&ep), 0);
    snprintf(dial, sizeof(dial), "%s", text);
    cr_assert_eq(gn_dial(dial, 2000, NULL, &conn, err, sizeof(err)), 0, "%s", err);
    gn_endpoint_format(gn_conn_remote(conn), text, sizeof(text));
    cr_expect_str_eq(text, dial);
    gn_endpoint_format(gn_conn_local(conn), text, sizeof(text));
    cr_expect(strncmp(text, "[fe80::1%lo]:", 13) == 0, "%s", text);
    cr_assert_eq(gn_write_all(conn, "scoped\n", 7, 2000), 0);
    cr_expect_eq(gn_read_line(conn, line, sizeof(line), &len, 2000), 1);
    cr_expect_str_eq(line, "scoped");
    gn_close(conn);
    gn_server_close(srv, 0);

    /* events: gn_listen and gn_connect */
    {
        const gn_handlers sh = {.on_data = echo}, ch = {.on_connect = say, .on_data = heard};
        gn_loop *loop;

        cr_assert_eq(gn_loop_new(&loop), 0);
        srv = gn_test_listen(loop, "[fe80::1%lo]:0", &sh, NULL, text, sizeof(text));
        cr_assert_eq(gn_connect(loop, text, &ch, NULL, &conn, err, sizeof(err)), 0, "%s", err);
        gn_test_run_loop_for(loop, 500);
        cr_expect_str_eq(async_reply, "event\n");
        gn_server_close(srv, 0);
        gn_test_run_loop_for(loop, 1000);
        gn_loop_free(loop);
    }

    /* a link-local address without its scope cannot be reached */
    snprintf(dial, sizeof(dial), "[fe80::1]:%u", (unsigned)gn_endpoint_port(&ep));
    cr_expect_neq(gn_dial(dial, 1000, NULL, &conn, err, sizeof(err)), 0, "unscoped: %s", err);
}
