/*
 * The gnezdo CLI, run as a program: ports and addr answer with the right
 * text and JSON; every malformed address is refused with exit 2 and a
 * message naming it; usage errors exit 2 with a hint; --help and
 * --version work; the demo completes.
 */
#define _GNU_SOURCE /* strcasestr */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "gnezdo.h"
#include "helpers.h"

static struct gn_test_run run;

static void cli(const char *a, const char *b, const char *c, const char *d)
{
    gn_test_run_free(&run);
    cr_assert_eq(gn_test_cli(&run, a, b, c, d, NULL), 0);
}

static void teardown(void)
{
    gn_test_run_free(&run);
}

TestSuite(cli, .fini = teardown);

Test(cli, ports_http_says_80_tcp)
{
    cli("ports", "http", NULL, NULL);
    cr_expect_eq(run.status, 0);
    cr_expect(strstr(run.out, "http") && strstr(run.out, "80/tcp"), "%s", run.out);
}

Test(cli, ports_80_lists_http_first)
{
    cli("ports", "80", NULL, NULL);
    cr_expect_eq(run.status, 0);
    cr_expect_eq(strncmp(run.out, "http ", 5), 0, "%s", run.out);
    cr_expect(strstr(run.out, "www-http"), "%s", run.out);
}

Test(cli, ports_udp_53_is_domain_on_udp_only)
{
    cli("ports", "--udp", "53", NULL);
    cr_expect_eq(run.status, 0);
    cr_expect(strstr(run.out, "domain") && strstr(run.out, "53/udp"), "%s", run.out);
    cr_expect_null(strstr(run.out, "/tcp"), "%s", run.out);
}

Test(cli, ports_search_mail_finds_smtp_and_every_line_mentions_mail)
{
    char *line, *save = NULL;

    cli("ports", "--search", "mail", NULL);
    cr_expect_eq(run.status, 0);
    cr_expect(strstr(run.out, "smtp"), "%s", run.out);
    for (line = strtok_r(run.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        cr_expect(strcasestr(line, "mail"), "'%s' does not mention mail", line);
}

Test(cli, ports_of_an_unknown_service_exits_1_naming_it)
{
    cli("ports", "nosuchservice", NULL, NULL);
    cr_expect_eq(run.status, 1);
    cr_expect(strstr(run.err, "nosuchservice"), "%s", run.err);
}

Test(cli, ports_out_of_range_exits_2)
{
    cli("ports", "65536", NULL, NULL);
    cr_expect_eq(run.status, 2);
    cr_expect(strstr(run.err, "65536 is out of range 0-65535"), "%s", run.err);
    cli("ports", "-1", NULL, NULL);
    cr_expect_eq(run.status, 2, "%s", run.err);
}

Test(cli, ports_json_is_one_object_per_line)
{
    struct gn_test_run check;
    char *argv[] = {"/usr/bin/python3", "-c",
                    "import json,sys\n"
                    "rows=[json.loads(l) for l in sys.stdin]\n"
                    "assert rows and rows[0]['name']=='domain' and rows[0]['port']==53, rows\n"
                    "assert {r['proto'] for r in rows} == {'tcp','udp'}, rows\n"
                    "print(len(rows))",
                    NULL};

    cli("ports", "domain", "--json", NULL);
    cr_assert_eq(run.status, 0);
    cr_assert_eq(gn_test_run_argv(argv, run.out, 10000, &check), 0);
    cr_expect_eq(check.status, 0, "%s%s", check.out, check.err);
    cr_expect_str_eq(check.out, "2\n");
    gn_test_run_free(&check);
}

Test(cli, addr_shows_the_normal_form_and_fields)
{
    cli("addr", "[::1]:http", NULL, NULL);
    cr_expect_eq(run.status, 0);
    cr_expect(strstr(run.out, "address    [::1]:80\n"), "%s", run.out);
    cr_expect(strstr(run.out, "family     ipv6\n"), "%s", run.out);
    cr_expect(strstr(run.out, "port       80 (http)\n"), "%s", run.out);
}

Test(cli, addr_resolves_host_names)
{
    cli("addr", "localhost:80", NULL, NULL);
    cr_expect_eq(run.status, 0);
    cr_expect(strstr(run.out, "resolved   127.0.0.1:80\n"), "%s", run.out);
}

Test(cli, addr_listen_takes_a_bare_port)
{
    cli("addr", "--listen", ":8080", NULL);
    cr_expect_eq(run.status, 0, "%s", run.err);
    cr_expect(strstr(run.out, "family     any\n"), "%s", run.out);
    cli("addr", ":8080", NULL, NULL);
    cr_expect_eq(run.status, 2);
}

Test(cli, addr_json_parses)
{
    struct gn_test_run check;
    char *argv[] = {"/usr/bin/python3", "-c",
                    "import json,sys\n"
                    "o=json.loads(sys.stdin.read())\n"
                    "assert o['address']=='unix:/tmp/a%20b' and o['family']=='unix', o\n"
                    "assert o['path']=='/tmp/a%20b', o\n",
                    NULL};

    cli("addr", "unix:/tmp/a%20b", "--json", NULL);
    cr_assert_eq(run.status, 0, "%s", run.err);
    cr_assert_eq(gn_test_run_argv(argv, run.out, 10000, &check), 0);
    cr_expect_eq(check.status, 0, "%s%s", check.out, check.err);
    gn_test_run_free(&check);
}

Test(cli, every_malformed_address_exits_2_with_the_input_named)
{
    static const char *bad[] = {"",         "a b:80",       "host:65536", "host:-1",
                                "host:80x", "256.1.1.1:80", "1.2.3:80",   "01.2.3.4:80",
                                "[::1",     "::1:80",       "foo://x:1",  "localhost:nosuch"};
    char quoted[64];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cli("addr", bad[i], NULL, NULL);
        cr_expect_eq(run.status, 2, "'%s': exit %d", bad[i], run.status);
        snprintf(quoted, sizeof(quoted), "'%s'", bad[i]);
        cr_expect(strstr(run.err, quoted), "'%s': %s", bad[i], run.err);
    }
}

Test(cli, long_unix_path_and_garbage_exit_2_with_a_short_message)
{
    char path[220] = "unix:/", garbage[10241];

    memset(path + 6, 'p', 200);
    path[206] = '\0';
    cli("addr", path, NULL, NULL);
    cr_expect_eq(run.status, 2);
    cr_expect(strstr(run.err, "107 bytes"), "%s", run.err);
    for (size_t i = 0; i < 10240; i++)
        garbage[i] = (char)('!' + i % 90);
    garbage[10240] = '\0';
    cli("addr", garbage, NULL, NULL);
    cr_expect_eq(run.status, 2);
    cr_expect_lt(run.err_len, 400u, "a bounded message for 10 KiB of input");
}

Test(cli, usage_errors_exit_2_with_a_hint)
{
    cli("frobnicate", NULL, NULL, NULL);
    cr_expect_eq(run.status, 2);
    cr_expect(strstr(run.err, "see 'gnezdo --help'"), "%s", run.err);
    cli("ports", NULL, NULL, NULL);
    cr_expect_eq(run.status, 2);
    cli("ports", "http", "--frob", NULL);
    cr_expect_eq(run.status, 2);
    cr_expect(strstr(run.err, "--frob"), "%s", run.err);
    cli("addr", "a:1", "b:2", NULL);
    cr_expect_eq(run.status, 2);
    cli(NULL, NULL, NULL, NULL);
    cr_expect_eq(run.status, 2);
}

Test(cli, help_and_version)
{
    cli("--help", NULL, NULL, NULL);
    cr_expect_eq(run.status, 0);
    cr_expect(strstr(run.out, "usage: gnezdo"), "%s", run.out);
    cli("--version", NULL, NULL, NULL);
    cr_expect_eq(run.status, 0);
    cr_expect(strstr(run.out, GN_VERSION_STRING), "%s", run.out);
    cr_expect(strstr(run.out, gn_services_date()), "the registry date: %s", run.out);
}

Test(cli, write_errors_fail_the_command)
{
    struct gn_test_run full;
    char *argv[] = {"/bin/sh", "-c", GN_TEST_CLI " ports --search a > /dev/full", NULL};

    cr_assert_eq(gn_test_run_argv(argv, NULL, 10000, &full), 0);
    cr_expect_eq(full.status, 1, "%s", full.err);
    cr_expect(strstr(full.err, "cannot write"), "%s", full.err);
    gn_test_run_free(&full);
}

Test(cli, demo_shows_a_connection_per_client_and_exits_0, .timeout = 30)
{
    cli("demo", NULL, NULL, NULL);
    cr_expect_eq(run.status, 0, "%s%s", run.out, run.err);
    cr_expect(strstr(run.out, "new connection object #3"), "%s", run.out);
    cr_expect(strstr(run.out, " -> 127.0.0.1:"), "both endpoints shown: %s", run.out);
    cr_expect(strstr(run.out, "every message delivered"), "%s", run.out);
}
