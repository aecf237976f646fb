/*
 * Happy Eyeballs (RFC 8305) with a name that resolves to ::1 and
 * 127.0.0.1: the test process gets a private mount namespace with its own
 * /etc/hosts (needs root; skipped otherwise), so the real resolver and the
 * real connect paths are used.  IPv6 is tried first; a refused IPv6
 * address falls through to IPv4; an IPv6 address that swallows SYNs (a
 * listener with a full queue) does not hold the connection up, because
 * IPv4 starts 250 ms later and wins.  Both the event-loop client and the
 * blocking one.
 */
#define _GNU_SOURCE /* unshare */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

#define NAME "dual-stack.gnezdo.test"

static uint64_t ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A private /etc/hosts where NAME is ::1 and 127.0.0.1, IPv6 first. */
static void private_hosts(void)
{
    char path[64];
    int fd;

    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        cr_skip("needs a private mount namespace (root): %s", strerror(errno));
    snprintf(path, sizeof(path), "/tmp/gn_hosts_%d", (int)getpid());
    fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    cr_assert_geq(fd, 0);
    dprintf(fd, "127.0.0.1 localhost\n::1 %s\n127.0.0.1 %s\n", NAME, NAME);
    close(fd);
    if (mount(path, "/etc/hosts", NULL, MS_BIND, NULL) < 0)
        cr_skip("cannot bind-mount /etc/hosts: %s", strerror(errno));
    unlink(path); /* the mount keeps it */
}

/* A listener on addr:port (port 0: any); returns the fd, *port set. */
static int listener(int family, int *port, int backlog)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    cr_assert_geq(fd, 0);
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sin->sin_port = htons((uint16_t)*port);
        len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = in6addr_loopback;
        sin6->sin6_port = htons((uint16_t)*port);
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        len = sizeof(*sin6);
    }
    cr_assert_eq(bind(fd, (struct sockaddr *)&ss, len), 0, "%s", strerror(errno));
    cr_assert_eq(listen(fd, backlog), 0);
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

/* Fill fd's accept queue so further SYNs are dropped. */
static void swallow_syns(int family, int port, int *fillers, int n)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};

    cr_assert_eq(family, AF_INET6);
    sin6.sin6_port = htons((uint16_t)port);
    for (int i = 0; i < n; i++) {
        fillers[i] = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[i], (struct sockaddr *)&sin6, sizeof(sin6));
    }
    usleep(100000);
}

struct outcome {
    bool connected;
    int reason;
    char remote[GN_ENDPOINT_STRLEN];
};

static void on_connect(gn_conn *conn)
{
    struct outcome *o = gn_conn_user_data(conn);

    o->connected = true;
    gn_endpoint_format(gn_conn_remote(conn), o->remote, sizeof(o->remote));
    gn_close(conn);
}

static void on_close(gn_conn *conn, int reason)
{
    ((struct outcome *)gn_conn_user_data(conn))->reason = reason;
}

/* The event-loop client and the blocking one, each to NAME:port, with
 * fallback_delay_ms (0: the default 250 ms); *fastest and *slowest get
 * the times they took. */
static void connect_both_after(int port, uint32_t fallback_ms, char *async_remote,
                               char *sync_remote, uint64_t *fastest, uint64_t *slowest)
{
    const gn_handlers h = {.on_connect = on_connect, .on_close = on_close};
    struct outcome o = {0};
    gn_options opts = {
        .user_data = &o, .connect_timeout_ms = 10000, .fallback_delay_ms = fallback_ms};
    char addr[96], err[GN_ERRBUF_SIZE];
    gn_loop *loop;
    gn_conn *conn;
    uint64_t t0;

    snprintf(addr, sizeof(addr), "%s:%d", NAME, port);
    cr_assert_eq(gn_loop_new(&loop), 0);
    t0 = ms_now();
    cr_assert_eq(gn_connect(loop, addr, &h, &opts, &conn, err, sizeof(err)), 0, "%s", err);
    gn_test_run_loop_for(loop, 12000);
    *slowest = *fastest = ms_now() - t0;
    gn_loop_free(loop);
    cr_expect(o.connected, "async: %s", gn_strerror(o.reason));
    strcpy(async_remote, o.remote);

    opts.user_data = NULL;
    t0 = ms_now();
    cr_assert_eq(gn_dial(addr, 10000, &opts, &conn, err, sizeof(err)), 0, "sync: %s", err);
    if (ms_now() - t0 > *slowest)
        *slowest = ms_now() - t0;
    if (ms_now() - t0 < *fastest)
        *fastest = ms_now() - t0;
    gn_endpoint_format(gn_conn_remote(conn), sync_remote, GN_ENDPOINT_STRLEN);
    gn_close(conn);
}

static void connect_both(int port, char *async_remote, char *sync_remote, uint64_t *slowest)
{
    uint64_t fastest;

    connect_both_after(port, 0, async_remote, sync_remote, &fastest, slowest);
}

Test(happy_eyeballs, ipv6_first_then_ipv4_when_refused_or_silent, .timeout = 60)
{
    char a[GN_ENDPOINT_STRLEN], s[GN_ENDPOINT_STRLEN], want[64];
    int port = 0, v4, v6, fillers[8];
    gn_endpoint found[4];
    gn_endpoint ep;
    uint64_t took;

    private_hosts();
    cr_assert_eq(gn_endpoint_parse(NAME ":80", 0, &ep, NULL, 0), 0);
    cr_assert_eq(gn_resolve(&ep, found, 4, NULL, 0), 2, "the private hosts file is in use");

    /* Both listen: IPv6 is the resolver's first choice and wins. */
    v4 = listener(AF_INET, &port, 16);
    v6 = listener(AF_INET6, &port, 16);
    connect_both(port, a, s, &took);
    snprintf(want, sizeof(want), "[::1]:%d", port);
    cr_expect_str_eq(a, want);
    cr_expect_str_eq(s, want);
    close(v6);

    /* IPv6 refused: IPv4 at once. */
    connect_both(port, a, s, &took);
    snprintf(want, sizeof(want), "127.0.0.1:%d", port);
    cr_expect_str_eq(a, want);
    cr_expect_str_eq(s, want);
    cr_expect_lt(took, 2000, "a refusal moves on at once (%llu ms)", (unsigned long long)took);

    /* IPv6 swallows SYNs: IPv4 starts 250 ms later and wins, long before
     * the 10 s connect timeout. */
    v6 = listener(AF_INET6, &port, 0);
    swallow_syns(AF_INET6, port, fillers, 8);
    connect_both(port, a, s, &took);
    cr_expect_str_eq(a, want);
    cr_expect_str_eq(s, want);
    cr_expect_lt(took, 5000, "not held up by the silent address (%llu ms)",
                 (unsigned long long)took);
    for (int i = 0; i < 8; i++)
        close(fillers[i]);
    close(v6);
    close(v4);
}

/* fallback_delay_ms is the wait before the next address (Go's
 * FallbackDelay): with IPv6 silent, IPv4 cannot win before it. */
Test(happy_eyeballs, fallback_delay_ms_sets_the_wait_before_ipv4, .timeout = 60)
{
    char a[GN_ENDPOINT_STRLEN], s[GN_ENDPOINT_STRLEN], want[64];
    int port = 0, v4, v6, fillers[8];
    uint64_t fastest, slowest;

    private_hosts();
    v4 = listener(AF_INET, &port, 16);
    v6 = listener(AF_INET6, &port, 0);
    swallow_syns(AF_INET6, port, fillers, 8);
    connect_both_after(port, 1500, a, s, &fastest, &slowest);
    snprintf(want, sizeof(want), "127.0.0.1:%d", port);
    cr_expect_str_eq(a, want);
    cr_expect_str_eq(s, want);
    cr_expect_geq(fastest, 1500, "IPv4 waited for the fallback delay (%llu ms)",
                  (unsigned long long)fastest);
    cr_expect_lt(slowest, 8000, "and won long before the timeout (%llu ms)",
                 (unsigned long long)slowest);
    for (int i = 0; i < 8; i++)
        close(fillers[i]);
    close(v6);
    close(v4);
}
