/*
 * Formatting round-trips: parse(format(x)) equals x, for written addresses,
 * for random socket addresses of every family, and for Unix paths holding
 * any byte.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "gnezdo.h"
#include "helpers.h"

static void expect_round_trip(const gn_endpoint *ep, unsigned flags)
{
    char text[GN_ENDPOINT_STRLEN], again[GN_ENDPOINT_STRLEN], err[GN_ERRBUF_SIZE];
    gn_endpoint back;
    int n = gn_endpoint_format(ep, text, sizeof(text));

    cr_assert_gt(n, 0);
    cr_assert_eq((size_t)n, strlen(text));
    cr_assert_eq(gn_endpoint_parse(text, flags, &back, err, sizeof(err)), 0, "%s: %s", text, err);
    cr_expect(gn_endpoint_equal(ep, &back), "'%s' does not parse back to itself", text);
    cr_assert_gt(gn_endpoint_format(&back, again, sizeof(again)), 0);
    cr_expect_str_eq(again, text);
}

Test(endpoint_roundtrip, written_addresses_parse_back_equal)
{
    static const char *texts[] = {
        "194.106.118.30:80",
        "[2001:db8::1]:443",
        "[fe80::1%lo]:80",
        "udp://[::1]:53",
        "tls://example.org:https",
        "localhost:http",
        "unix:/run/app.sock",
        "unix:@abstract",
        "unixgram:/tmp/x",
        "unix:/tmp/with%25percent",
        "unix:%40file",
        "unix:@@at",
        /* hosts named like a Unix scheme keep "tcp://" (found by the fuzzer) */
        "tcp://unixgram:7000",
        "tcp://UNIX:80",
    };
    char text[GN_ENDPOINT_STRLEN];
    gn_endpoint ep;

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        /* "%lo" names the loopback interface on this system */
        cr_assert_eq(gn_endpoint_parse(gn_test_lo(texts[i], text, sizeof(text)), 0, &ep, NULL, 0),
                     0, "%s", texts[i]);
        expect_round_trip(&ep, 0);
    }
    cr_assert_eq(gn_endpoint_parse(":8080", GN_PARSE_LISTEN, &ep, NULL, 0), 0);
    expect_round_trip(&ep, GN_PARSE_LISTEN);
}

Test(endpoint_roundtrip, random_ipv4_and_ipv6_socket_addresses)
{
    static const gn_transport transports[] = {GN_TRANSPORT_TCP, GN_TRANSPORT_UDP, GN_TRANSPORT_TLS};
    gn_endpoint ep;

    srand(20261125);
    for (int i = 0; i < 5000; i++) {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)rand())};
        struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)rand())};
        gn_transport t = transports[i % 3];

        sin.sin_addr.s_addr = (uint32_t)rand() ^ ((uint32_t)rand() << 16);
        for (int b = 0; b < 16; b++)
            sin6.sin6_addr.s6_addr[b] = (uint8_t)(i % 4 == 0 && b < 8 ? 0 : rand());
        cr_assert_eq(gn_endpoint_from_sockaddr((struct sockaddr *)&sin, sizeof(sin), t, &ep), 0);
        expect_round_trip(&ep, 0);
        cr_assert_eq(gn_endpoint_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), t, &ep), 0);
        expect_round_trip(&ep, 0);
    }
}

Test(endpoint_roundtrip, unix_paths_with_any_byte)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    gn_endpoint ep;

    srand(7);
    for (int i = 0; i < 3000; i++) {
        bool abstract = i % 2;
        size_t len = 1 + (size_t)rand() % (sizeof(sun.sun_path) - 1);
        memset(sun.sun_path, 0, sizeof(sun.sun_path));
        for (size_t b = 0; b < len; b++)
            sun.sun_path[abstract + b] = (char)(abstract ? rand() % 256 : 1 + rand() % 255);
        if (abstract && len == sizeof(sun.sun_path))
            len--;
        socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + abstract + len +
                                      (abstract ? 0 : 1));
        gn_transport t = i % 3 ? GN_TRANSPORT_UNIX : GN_TRANSPORT_UNIXGRAM;
        cr_assert_eq(gn_endpoint_from_sockaddr((struct sockaddr *)&sun, salen, t, &ep), 0);
        cr_assert_eq(gn_endpoint_is_abstract(&ep), abstract);
        expect_round_trip(&ep, 0);
    }
}

Test(endpoint_roundtrip, v4_mapped_peers_show_as_ipv4)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(53122)};
    char text[GN_ENDPOINT_STRLEN];
    gn_endpoint ep, plain;

    inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr);
    cr_assert_eq(
        gn_endpoint_from_sockaddr((struct sockaddr *)&sin6, sizeof(sin6), GN_TRANSPORT_TCP, &ep),
        0);
    cr_expect_eq(gn_endpoint_family(&ep), GN_FAMILY_IPV4);
    gn_endpoint_format(&ep, text, sizeof(text));
    cr_expect_str_eq(text, "127.0.0.1:53122");
    cr_assert_eq(gn_endpoint_parse("127.0.0.1:53122", 0, &plain, NULL, 0), 0);
    cr_expect(gn_endpoint_equal(&ep, &plain));
}

Test(endpoint_roundtrip, from_sockaddr_checks_family_length_and_transport)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct sockaddr sa = {.sa_family = AF_APPLETALK};
    gn_endpoint ep;

    cr_expect_eq(
        gn_endpoint_from_sockaddr((struct sockaddr *)&sin, sizeof(sin) - 1, GN_TRANSPORT_TCP, &ep),
        GN_EINVAL);
    cr_expect_eq(
        gn_endpoint_from_sockaddr((struct sockaddr *)&sin, sizeof(sin), GN_TRANSPORT_UNIX, &ep),
        GN_EFAMILY);
    cr_expect_eq(
        gn_endpoint_from_sockaddr((struct sockaddr *)&sun, sizeof(sun), GN_TRANSPORT_TCP, &ep),
        GN_EFAMILY);
    cr_expect_eq(gn_endpoint_from_sockaddr(&sa, sizeof(sa), GN_TRANSPORT_TCP, &ep), GN_EFAMILY);
    cr_expect_eq(gn_endpoint_from_sockaddr((struct sockaddr *)&sin, sizeof(sin), 99, &ep),
                 GN_EINVAL);
    cr_expect_eq(gn_endpoint_from_sockaddr(NULL, 16, GN_TRANSPORT_TCP, &ep), GN_EINVAL);
    /* An unnamed Unix socket: only the family. */
    cr_assert_eq(gn_endpoint_from_sockaddr((struct sockaddr *)&sun, sizeof(sa_family_t),
                                           GN_TRANSPORT_UNIX, &ep),
                 0);
    size_t len = 99;
    cr_expect_not_null(gn_endpoint_path(&ep, &len));
    cr_expect_eq(len, 0u);
}

Test(endpoint_roundtrip, kernel_path_lengths_with_and_without_nul_compare_equal)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX, .sun_path = "/tmp/s"};
    socklen_t base = offsetof(struct sockaddr_un, sun_path);
    gn_endpoint a, b, c;

    cr_assert_eq(
        gn_endpoint_from_sockaddr((struct sockaddr *)&sun, base + 6, GN_TRANSPORT_UNIX, &a), 0);
    cr_assert_eq(
        gn_endpoint_from_sockaddr((struct sockaddr *)&sun, base + 7, GN_TRANSPORT_UNIX, &b), 0);
    cr_assert_eq(
        gn_endpoint_from_sockaddr((struct sockaddr *)&sun, sizeof(sun), GN_TRANSPORT_UNIX, &c), 0);
    cr_expect(gn_endpoint_equal(&a, &b));
    cr_expect(gn_endpoint_equal(&a, &c));
}

Test(endpoint_roundtrip, equality_distinguishes_every_field)
{
    static const char *distinct[] = {
        "127.0.0.1:80", "127.0.0.1:81", "127.0.0.2:80",    "udp://127.0.0.1:80",
        "[::1]:80",     "[fe80::1]:80", "[fe80::1%lo]:80", "localhost:80",
        "unix:/a",      "unixgram:/a",  "unix:@a",         "unix:/b",
    };
    char text[GN_ENDPOINT_STRLEN];
    gn_endpoint a, b;

    /* "%lo" names the loopback interface on this system (gn_test_lo) */
    for (size_t i = 0; i < sizeof(distinct) / sizeof(distinct[0]); i++) {
        cr_assert_eq(gn_endpoint_parse(gn_test_lo(distinct[i], text, sizeof(text)), 0, &a, NULL, 0),
                     0, "%s", distinct[i]);
        for (size_t j = 0; j < sizeof(distinct) / sizeof(distinct[0]); j++) {
            cr_assert_eq(
                gn_endpoint_parse(gn_test_lo(distinct[j], text, sizeof(text)), 0, &b, NULL, 0), 0);
            cr_expect_eq(gn_endpoint_equal(&a, &b), i == j, "%s vs %s", distinct[i], distinct[j]);
        }
    }
    cr_assert_eq(gn_endpoint_parse("LocalHost:80", 0, &b, NULL, 0), 0);
    cr_assert_eq(gn_endpoint_parse("localhost:80", 0, &a, NULL, 0), 0);
    cr_expect(gn_endpoint_equal(&a, &b), "host names compare case-insensitively");
    cr_expect(gn_endpoint_equal(NULL, NULL));
    cr_expect_not(gn_endpoint_equal(&a, NULL));
}

Test(endpoint_roundtrip, format_reports_a_small_buffer)
{
    char small[8];
    gn_endpoint ep;

    cr_assert_eq(gn_endpoint_parse("194.106.118.30:80", 0, &ep, NULL, 0), 0);
    cr_expect_eq(gn_endpoint_format(&ep, small, sizeof(small)), GN_ENOSPC);
    cr_expect_str_eq(small, "194.106");
    cr_expect_eq(gn_endpoint_format(&ep, NULL, 0), GN_ENOSPC);
    cr_expect_eq(gn_endpoint_format(NULL, small, sizeof(small)), GN_EINVAL);
    memset(&ep, 0x77, sizeof(ep));
    cr_expect_eq(gn_endpoint_format(&ep, small, sizeof(small)), GN_EINVAL,
                 "a garbage struct is refused, not read");
}
