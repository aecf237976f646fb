/*
 * The CLI's proxies: `gnezdo send` through microsocks and tinyproxy to
 * `gnezdo recv`, chosen by --proxy or by ALL_PROXY; and which proxy the
 * environment picks, as curl would (ALL_PROXY, https_proxy for tls://
 * only, NO_PROXY, --noproxy and --proxy '' overriding), seen in the
 * error's route against a proxy port nobody listens on.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

static void wait_accepting(unsigned port)
{
    if (!gn_test_port_accepts(port))
        cr_assert_fail("nothing accepts on 127.0.0.1:%u", port);
}

static void clear_proxy_env(void)
{
    static const char *const names[] = {"all_proxy", "ALL_PROXY", "https_proxy", "HTTPS_PROXY",
                                        "no_proxy",  "NO_PROXY",  "http_proxy",  "HTTP_PROXY"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unsetenv(names[i]);
}

/* A file of a few KiB sent with `gnezdo send` (--proxy proxy_flag when
 * set) to a fresh `gnezdo recv`: it arrives whole.  Returns recv's
 * address, for finding it in the proxy's log. */
static const char *expect_send_arrives(const char *how, const char *proxy_flag)
{
    char in[] = "/tmp/gn_cli_proxy_in_XXXXXX", out[] = "/tmp/gn_cli_proxy_out_XXXXXX";
    char *recv_argv[] = {GN_TEST_CLI, "recv", "127.0.0.1:0", out, NULL};
    char sent[8192], got[sizeof(sent) + 1];
    static struct gn_test_proc recv;
    struct gn_test_run run;
    FILE *f;
    int fd;

    for (size_t i = 0; i < sizeof(sent); i++)
        sent[i] = (char)('a' + i % 26);
    fd = mkstemp(in);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, sent, sizeof(sent)), (ssize_t)sizeof(sent));
    close(fd);
    fd = mkstemp(out);
    cr_assert_geq(fd, 0);
    close(fd);
    gn_test_spawn(&recv, recv_argv, NULL, true);
    if (proxy_flag)
        cr_assert_eq(
            gn_test_cli(&run, "send", "--quiet", "--proxy", proxy_flag, in, recv.addr, NULL), 0);
    else
        cr_assert_eq(gn_test_cli(&run, "send", "--quiet", in, recv.addr, NULL), 0);
    cr_expect_eq(run.status, 0, "%s: %s", how, run.err);
    gn_test_run_free(&run);
    cr_expect_eq(gn_test_proc_wait(&recv, 10000, false), 0, "%s: %s", how, recv.log);
    f = fopen(out, "rb");
    cr_assert_not_null(f);
    cr_expect_eq(fread(got, 1, sizeof(got), f), sizeof(sent), "%s", how);
    cr_expect_eq(memcmp(got, sent, sizeof(sent)), 0, "%s", how);
    fclose(f);
    unlink(in);
    unlink(out);
    return recv.addr;
}

Test(cli_proxy, send_goes_through_socks5_by_flag_and_http_connect_by_all_proxy, .timeout = 60)
{
    unsigned socks_port = gn_test_free_port(), http_port;
    char port_text[8], url[64], conf_dir[] = "/tmp/gn_cli_tinyproxy_XXXXXX", conf[64], log[64];
    char seen[128], tinyproxy_log[4096] = "";
    const char *target;
    char *socks_argv[] = {"/usr/bin/microsocks", "-i", "127.0.0.1", "-p", port_text, NULL};
    char *http_argv[] = {"/usr/bin/tinyproxy", "-d", "-c", conf, NULL};
    struct gn_test_proc socks, http;
    FILE *f;

    clear_proxy_env();
    snprintf(port_text, sizeof(port_text), "%u", socks_port);
    gn_test_spawn(&socks, socks_argv, NULL, false);
    wait_accepting(socks_port);
    snprintf(url, sizeof(url), "socks5h://127.0.0.1:%u", socks_port);
    target = expect_send_arrives("--proxy socks5h://", url);
    snprintf(seen, sizeof(seen), "connected to %s", target);
    gn_test_proc_read(&socks, 200);
    cr_expect(strstr(socks.log, seen), "microsocks carried it: %s", socks.log);

    http_port = gn_test_free_port();
    cr_assert_not_null(mkdtemp(conf_dir));
    snprintf(conf, sizeof(conf), "%s/tinyproxy.conf", conf_dir);
    snprintf(log, sizeof(log), "%s/tinyproxy.log", conf_dir);
    f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f, "Port %u\nListen 127.0.0.1\nLogLevel Connect\n", http_port);
    fclose(f);
    gn_test_spawn(&http, http_argv, log, false);
    wait_accepting(http_port);
    snprintf(url, sizeof(url), "127.0.0.1:%u", http_port); /* no scheme: http://, as curl */
    setenv("ALL_PROXY", url, 1);
    target = expect_send_arrives("ALL_PROXY=host:port", NULL);
    snprintf(seen, sizeof(seen), "CONNECT %s HTTP/1.1", target);
    f = fopen(log, "r");
    cr_assert_not_null(f);
    tinyproxy_log[fread(tinyproxy_log, 1, sizeof(tinyproxy_log) - 1, f)] = '\0';
    fclose(f);
    cr_expect(strstr(tinyproxy_log, seen), "tinyproxy carried it: %s", tinyproxy_log);
    unlink(log);
    unlink(conf);
    rmdir(conf_dir);
    gn_test_proc_wait(&http, 2000, true);
    gn_test_proc_wait(&socks, 2000, true);
}

/* `gnezdo connect target` with extra arguments; its stderr. */
static char *connect_err(const char *target, const char *flag, const char *value)
{
    struct gn_test_run run;
    char *err;

    if (flag)
        cr_assert_eq(gn_test_cli(&run, "connect", target, flag, value, NULL), 0);
    else
        cr_assert_eq(gn_test_cli(&run, "connect", target, NULL), 0);
    cr_expect_neq(run.status, 0, "nothing listens on %s: %s", target, run.err);
    err = run.err;
    run.err = NULL;
    gn_test_run_free(&run);
    return err;
}

/* With the environment as set, through the dead proxy (its route in the
 * error) or not. */
static void expect_route(const char *target, const char *flag, const char *value, const char *route,
                         const char *how)
{
    char *err = connect_err(target, flag, value);

    if (route)
        cr_expect(strstr(err, route), "%s: '%s' lacks '%s'", how, err, route);
    else
        cr_expect_null(strstr(err, " via "), "%s: direct expected: %s", how, err);
    free(err);
}

Test(cli_proxy, the_environment_picks_the_proxy_as_curl_does, .timeout = 60)
{
    char proxy[64], socks_route[80], http_route[80], tcp[64], tls[64], name[64];
    unsigned dead = gn_test_free_port(), closed = gn_test_free_port();

    clear_proxy_env();
    snprintf(proxy, sizeof(proxy), "socks5://127.0.0.1:%u", dead);
    snprintf(socks_route, sizeof(socks_route), "via socks5 proxy 127.0.0.1:%u", dead);
    snprintf(http_route, sizeof(http_route), "via http proxy 127.0.0.1:%u", dead);
    snprintf(tcp, sizeof(tcp), "127.0.0.1:%u", closed);
    snprintf(tls, sizeof(tls), "tls://127.0.0.1:%u", closed);
    snprintf(name, sizeof(name), "localhost:%u", closed);

    expect_route(tcp, NULL, NULL, NULL, "no variables");
    setenv("ALL_PROXY", proxy, 1);
    expect_route(tcp, NULL, NULL, socks_route, "ALL_PROXY");
    expect_route(tcp, "--proxy", "", NULL, "--proxy '' over ALL_PROXY");
    setenv("NO_PROXY", "example.org, 127.0.0.1", 1);
    expect_route(tcp, NULL, NULL, NULL, "NO_PROXY lists the address");
    expect_route(tcp, "--noproxy", "", socks_route, "--noproxy '' over NO_PROXY");
    setenv("NO_PROXY", "127.0.0.0/8", 1);
    expect_route(tcp, NULL, NULL, NULL, "NO_PROXY's CIDR block");
    setenv("NO_PROXY", ".localhost", 1);
    expect_route(name, NULL, NULL, NULL, "NO_PROXY .localhost matches localhost");
    setenv("NO_PROXY", "host", 1);
    expect_route(name, NULL, NULL, socks_route, "NO_PROXY host does not match localhost");
    setenv("NO_PROXY", "*", 1);
    expect_route(name, NULL, NULL, NULL, "NO_PROXY *");
    unsetenv("NO_PROXY");
    unsetenv("ALL_PROXY");

    snprintf(proxy, sizeof(proxy), "127.0.0.1:%u", dead);
    setenv("https_proxy", proxy, 1);
    expect_route(tcp, NULL, NULL, NULL, "https_proxy is not for tcp://");
    expect_route(tls, NULL, NULL, http_route, "https_proxy for tls://, http:// by default");
    setenv("http_proxy", proxy, 1);
    unsetenv("https_proxy");
    expect_route(tls, NULL, NULL, NULL, "http_proxy is for http:// URLs only, as in curl");
}

Test(cli_proxy, proxy_flags_are_for_clients_and_bad_urls_are_usage_errors)
{
    struct gn_test_run run;

    clear_proxy_env();
    cr_assert_eq(gn_test_cli(&run, "listen", "127.0.0.1:0", "--proxy", "socks5://h", NULL), 0);
    cr_expect_eq(run.status, 2, "%s", run.err);
    cr_expect(strstr(run.err, "--proxy and --noproxy are for connect and send"), "%s", run.err);
    gn_test_run_free(&run);
    cr_assert_eq(gn_test_cli(&run, "connect", "127.0.0.1:9", "--proxy", "socks4://h", NULL), 0);
    cr_expect_eq(run.status, 2, "%s", run.err);
    cr_expect(strstr(run.err, "proxy URL: unknown scheme"), "%s", run.err);
    gn_test_run_free(&run);
    cr_assert_eq(gn_test_cli(&run, "connect", "unix:/tmp/x", "--proxy", "socks5://h", NULL), 0);
    cr_expect_eq(run.status, 2, "%s", run.err);
    cr_expect(strstr(run.err, "cannot be reached through a proxy"), "%s", run.err);
    gn_test_run_free(&run);
}
