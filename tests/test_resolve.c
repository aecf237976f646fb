/*
 * gn_resolve turns host names into every address in order, reports
 * unknown names with a clear code, and leaks no descriptors.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "gnezdo.h"
#include "helpers.h"

Test(resolve, localhost_gives_loopback_addresses_with_the_port)
{
    gn_endpoint ep, out[16];
    char text[GN_ENDPOINT_STRLEN], err[GN_ERRBUF_SIZE];
    bool saw_v4 = false;

    cr_assert_eq(gn_endpoint_parse("localhost:http", 0, &ep, NULL, 0), 0);
    int n = gn_resolve(&ep, out, 16, err, sizeof(err));
    cr_assert_gt(n, 0, "%s", err);
    for (int i = 0; i < n && i < 16; i++) {
        cr_expect(gn_endpoint_is_resolved(&out[i]));
        cr_expect_eq(gn_endpoint_port(&out[i]), 80);
        cr_expect_eq(gn_endpoint_transport(&out[i]), GN_TRANSPORT_TCP);
        gn_endpoint_format(&out[i], text, sizeof(text));
        saw_v4 |= strcmp(text, "127.0.0.1:80") == 0;
        for (int j = 0; j < i; j++)
            cr_expect_not(gn_endpoint_equal(&out[i], &out[j]), "duplicate %s", text);
    }
    cr_expect(saw_v4, "127.0.0.1:80 among the results");
}

Test(resolve, keeps_the_transport_and_counts_beyond_max)
{
    gn_endpoint ep, one;
    int all;

    cr_assert_eq(gn_endpoint_parse("udp://localhost:domain", 0, &ep, NULL, 0), 0);
    all = gn_resolve(&ep, NULL, 0, NULL, 0);
    cr_assert_geq(all, 1);
    cr_expect_eq(gn_resolve(&ep, &one, 1, NULL, 0), all);
    cr_expect_eq(gn_endpoint_transport(&one), GN_TRANSPORT_UDP);
    cr_expect_eq(gn_endpoint_port(&one), 53);
}

Test(resolve, resolved_endpoints_give_themselves)
{
    gn_endpoint ep, out;

    cr_assert_eq(gn_endpoint_parse("[::1]:7", 0, &ep, NULL, 0), 0);
    cr_expect_eq(gn_resolve(&ep, &out, 1, NULL, 0), 1);
    cr_expect(gn_endpoint_equal(&ep, &out));
    cr_assert_eq(gn_endpoint_parse("unix:@x", 0, &ep, NULL, 0), 0);
    cr_expect_eq(gn_resolve(&ep, &out, 1, NULL, 0), 1);
    cr_expect(gn_endpoint_equal(&ep, &out));
}

Test(resolve, listen_wildcard_gives_any_addresses)
{
    gn_endpoint ep, out[4];
    char text[GN_ENDPOINT_STRLEN];
    bool saw_any4 = false;

    cr_assert_eq(gn_endpoint_parse(":7000", GN_PARSE_LISTEN, &ep, NULL, 0), 0);
    int n = gn_resolve(&ep, out, 4, NULL, 0);
    cr_assert_geq(n, 1);
    for (int i = 0; i < n && i < 4; i++) {
        gn_endpoint_format(&out[i], text, sizeof(text));
        saw_any4 |= strcmp(text, "0.0.0.0:7000") == 0;
    }
    cr_expect(saw_any4);
}

Test(resolve, unknown_name_is_enoname_with_the_name_in_the_message)
{
    gn_endpoint ep, out[4];
    char err[GN_ERRBUF_SIZE];

    /* .invalid is reserved never to resolve (RFC 6761). */
    cr_assert_eq(gn_endpoint_parse("no-such-host.invalid:80", 0, &ep, NULL, 0), 0);
    int rc = gn_resolve(&ep, out, 4, err, sizeof(err));
    cr_expect(rc == GN_ENONAME || rc == GN_ETEMPNAME, "rc %d (%s)", rc, err);
    cr_expect(strstr(err, "no-such-host.invalid"), "%s", err);
}

Test(resolve, bad_arguments_are_einval_and_no_descriptor_leaks)
{
    gn_endpoint ep, out[4];
    int before = gn_test_count_fds();

    cr_expect_eq(gn_resolve(NULL, out, 4, NULL, 0), GN_EINVAL);
    cr_assert_eq(gn_endpoint_parse("localhost:1", 0, &ep, NULL, 0), 0);
    cr_expect_eq(gn_resolve(&ep, NULL, 4, NULL, 0), GN_EINVAL);
    for (int i = 0; i < 50; i++)
        cr_assert_gt(gn_resolve(&ep, out, 4, NULL, 0), 0);
    cr_expect_eq(gn_test_count_fds(), before);
}
