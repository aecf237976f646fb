/*
 * The endpoint parser accepts every documented form with the right fields,
 * and rejects every malformed one with a code and a message that names the
 * input.
 */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "gnezdo.h"
#include "helpers.h"

struct accepted {
    const char *text;
    unsigned flags;
    gn_transport transport;
    gn_family family;
    const char *host;
    unsigned port;
    const char *formatted;
};

static const struct accepted accepted[] = {
    {"194.106.118.30:80", 0, GN_TRANSPORT_TCP, GN_FAMILY_IPV4, "194.106.118.30", 80,
     "194.106.118.30:80"},
    {"0.0.0.0:0", 0, GN_TRANSPORT_TCP, GN_FAMILY_IPV4, "0.0.0.0", 0, "0.0.0.0:0"},
    {"255.255.255.255:65535", 0, GN_TRANSPORT_TCP, GN_FAMILY_IPV4, "255.255.255.255", 65535,
     "255.255.255.255:65535"},
    {"[2001:db8::1]:443", 0, GN_TRANSPORT_TCP, GN_FAMILY_IPV6, "2001:db8::1", 443,
     "[2001:db8::1]:443"},
    {"[2001:DB8:0:0:0:0:0:1]:443", 0, GN_TRANSPORT_TCP, GN_FAMILY_IPV6, "2001:db8::1", 443,
     "[2001:db8::1]:443"},
    {"[::1]:8080", 0, GN_TRANSPORT_TCP, GN_FAMILY_IPV6, "::1", 8080, "[::1]:8080"},
    {"[::ffff:1.2.3.4]:1", 0, GN_TRANSPORT_TCP, GN_FAMILY_IPV6, "::ffff:1.2.3.4", 1,
     "[::ffff:1.2.3.4]:1"},
    {"[fe80::1%lo]:80", 0, GN_TRANSPORT_TCP, GN_FAMILY_IPV6, "fe80::1%lo", 80, "[fe80::1%lo]:80"},
    {"[fe80::1%1]:80", 0, GN_TRANSPORT_TCP, GN_FAMILY_IPV6, "fe80::1%lo", 80, "[fe80::1%lo]:80"},
    {"tcp://127.0.0.1:7000", 0, GN_TRANSPORT_TCP, GN_FAMILY_IPV4, "127.0.0.1", 7000,
     "127.0.0.1:7000"},
    {"TCP://127.0.0.1:7000", 0, GN_TRANSPORT_TCP, GN_FAMILY_IPV4, "127.0.0.1", 7000,
     "127.0.0.1:7000"},
    {"udp://[::1]:53", 0, GN_TRANSPORT_UDP, GN_FAMILY_IPV6, "::1", 53, "udp://[::1]:53"},
    {"udp://localhost:domain", 0, GN_TRANSPORT_UDP, GN_FAMILY_NAME, "localhost", 53,
     "udp://localhost:53"},
    {"tls://example.org:https", 0, GN_TRANSPORT_TLS, GN_FAMILY_NAME, "example.org", 443,
     "tls://example.org:443"},
    {"localhost:http", 0, GN_TRANSPORT_TCP, GN_FAMILY_NAME, "localhost", 80, "localhost:80"},
    {"localhost:HTTP", 0, GN_TRANSPORT_TCP, GN_FAMILY_NAME, "localhost", 80, "localhost:80"},
    {"example.org:smtp", 0, GN_TRANSPORT_TCP, GN_FAMILY_NAME, "example.org", 25, "example.org:25"},
    {"example.org.:1", 0, GN_TRANSPORT_TCP, GN_FAMILY_NAME, "example.org.", 1, "example.org.:1"},
    {"my_host-1.example:9pfs", 0, GN_TRANSPORT_TCP, GN_FAMILY_NAME, "my_host-1.example", 564,
     "my_host-1.example:564"},
    {"a.b.c.d1:2", 0, GN_TRANSPORT_TCP, GN_FAMILY_NAME, "a.b.c.d1", 2, "a.b.c.d1:2"},
    {"1a.example:2", 0, GN_TRANSPORT_TCP, GN_FAMILY_NAME, "1a.example", 2, "1a.example:2"},
    {":8080", GN_PARSE_LISTEN, GN_TRANSPORT_TCP, GN_FAMILY_ANY, "", 8080, ":8080"},
    {"8080", GN_PARSE_LISTEN, GN_TRANSPORT_TCP, GN_FAMILY_ANY, "", 8080, ":8080"},
    {"tcp://:8080", GN_PARSE_LISTEN, GN_TRANSPORT_TCP, GN_FAMILY_ANY, "", 8080, ":8080"},
    {"udp://:9999", GN_PARSE_LISTEN, GN_TRANSPORT_UDP, GN_FAMILY_ANY, "", 9999, "udp://:9999"},
    {":http", GN_PARSE_LISTEN, GN_TRANSPORT_TCP, GN_FAMILY_ANY, "", 80, ":80"},
    {"0.0.0.0:7000", GN_PARSE_LISTEN, GN_TRANSPORT_TCP, GN_FAMILY_IPV4, "0.0.0.0", 7000,
     "0.0.0.0:7000"},
    {"unix:/run/app.sock", 0, GN_TRANSPORT_UNIX, GN_FAMILY_UNIX, "", 0, "unix:/run/app.sock"},
    {"unix:relative.sock", 0, GN_TRANSPORT_UNIX, GN_FAMILY_UNIX, "", 0, "unix:relative.sock"},
    {"unix:@abstract", 0, GN_TRANSPORT_UNIX, GN_FAMILY_UNIX, "", 0, "unix:@abstract"},
    {"unix:/tmp/a%20b", 0, GN_TRANSPORT_UNIX, GN_FAMILY_UNIX, "", 0, "unix:/tmp/a%20b"},
    {"unix:%40at", 0, GN_TRANSPORT_UNIX, GN_FAMILY_UNIX, "", 0, "unix:%40at"},
    {"UNIX:/x", 0, GN_TRANSPORT_UNIX, GN_FAMILY_UNIX, "", 0, "unix:/x"},
    {"unixgram:/tmp/d.sock", 0, GN_TRANSPORT_UNIXGRAM, GN_FAMILY_UNIX, "", 0,
     "unixgram:/tmp/d.sock"},
};

/* Table rows are checked in a loop with cr_expect, so one run reports
 * every failing row.  (Criterion's parameterized tests re-exec the binary,
 * where pointers to string literals are not valid.) */
static void check_accepted(const struct accepted *want)
{
    char err[GN_ERRBUF_SIZE], buf[GN_ENDPOINT_STRLEN], text_buf[GN_ENDPOINT_STRLEN],
        host_buf[GN_ENDPOINT_STRLEN], formatted_buf[GN_ENDPOINT_STRLEN];
    /* "%lo" names the loopback interface on this system */
    const char *text = gn_test_lo(want->text, text_buf, sizeof(text_buf));
    const char *host = gn_test_lo(want->host, host_buf, sizeof(host_buf));
    const char *formatted = gn_test_lo(want->formatted, formatted_buf, sizeof(formatted_buf));
    gn_endpoint ep;
    int rc = gn_endpoint_parse(text, want->flags, &ep, err, sizeof(err));

    cr_expect_eq(rc, 0, "%s: rc %d (%s)", text, rc, err);
    if (rc != 0)
        return;
    cr_expect_eq(gn_endpoint_transport(&ep), want->transport, "%s", text);
    cr_expect_eq(gn_endpoint_family(&ep), want->family, "%s: family %s", text,
                 gn_endpoint_family_name(gn_endpoint_family(&ep)));
    cr_expect_eq(gn_endpoint_port(&ep), want->port, "%s", text);
    cr_expect_geq(gn_endpoint_host(&ep, buf, sizeof(buf)), 0);
    cr_expect_str_eq(buf, host, "%s", text);
    cr_expect_gt(gn_endpoint_format(&ep, buf, sizeof(buf)), 0);
    cr_expect_str_eq(buf, formatted, "%s", text);
}

Test(endpoint_parse, accepts_every_documented_form)
{
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++)
        check_accepted(&accepted[i]);
}

struct rejected {
    const char *text;
    unsigned flags;
    int code;
    const char *reason; /* a word the message must contain */
};

static const struct rejected rejected[] = {
    {"", 0, GN_EBADADDR, "empty"},
    {"a b:80", 0, GN_EBADADDR, "space at offset 1"},
    {"localhost:80 ", 0, GN_EBADADDR, "space"},
    {"\tlocalhost:80", 0, GN_EBADADDR, "space"},
    {"localhost:8\n", 0, GN_EBADADDR, "control character 0x0a"},
    {"host:65536", 0, GN_EBADADDR, "port 65536 is out of range 0-65535"},
    {"host:99999999999999999999", 0, GN_EBADADDR, "out of range 0-65535"},
    {"host:-1", 0, GN_EBADADDR, "port -1 is out of range"},
    {"host:80x", 0, GN_EBADADDR, "not a number"},
    {"host:080", 0, GN_EBADADDR, "leading zero"},
    {"host:", 0, GN_EBADADDR, "missing port"},
    {"host", 0, GN_EBADADDR, "missing ':port'"},
    {"256.1.1.1:80", 0, GN_EBADADDR, "256"},
    {"1.2.3:80", 0, GN_EBADADDR, "3 parts, expected 4"},
    {"1.2.3.4.5:80", 0, GN_EBADADDR, "more than 4 parts"},
    {"01.2.3.4:80", 0, GN_EBADADDR, "leading zero"},
    {"1..2.3:80", 0, GN_EBADADDR, "empty part"},
    {"1.2.3.4:", 0, GN_EBADADDR, "missing port"},
    {"example.123:80", 0, GN_EBADADDR, "neither an IPv4 address nor a host name"},
    {"[::1", 0, GN_EBADADDR, "missing ']'"},
    {"[::1]", 0, GN_EBADADDR, "missing ':port'"},
    {"[::1]80", 0, GN_EBADADDR, "unexpected '8'"},
    {"[::1]:", 0, GN_EBADADDR, "missing port"},
    {"[]:80", 0, GN_EBADADDR, "empty IPv6"},
    {"[::g]:80", 0, GN_EBADADDR, "not a valid IPv6"},
    {"[1.2.3.4]:80", 0, GN_EBADADDR, "not a valid IPv6"},
    {"[localhost]:80", 0, GN_EBADADDR, "not a valid IPv6"},
    {"[fe80::1%]:80", 0, GN_EBADADDR, "empty scope"},
    {"[fe80::1%nosuchif0]:80", 0, GN_EBADADDR, "no network interface"},
    {"[fe80::1%0]:80", 0, GN_EBADADDR, "not a valid interface index"},
    {"::1:80", 0, GN_EBADADDR, "brackets"},
    {"::1", 0, GN_EBADADDR, "brackets"},
    {"::1]:80", 0, GN_EBADADDR, "brackets"},
    {"foo://x:1", 0, GN_EBADADDR, "unknown scheme 'foo'"},
    {"http://example.org:80", 0, GN_EBADADDR, "unknown scheme 'http'"},
    {"tcp://", 0, GN_EBADADDR, "missing host and port"},
    {"localhost:nosuchservice", 0, GN_ENOSERVICE, "unknown tcp service name 'nosuchservice'"},
    {"udp://localhost:nosuch", 0, GN_ENOSERVICE, "unknown udp service"},
    {"localhost:ht$p", 0, GN_EBADADDR, "invalid character '$'"},
    {"-bad.example:80", 0, GN_EBADADDR, "starts or ends with '-'"},
    {"a..b:80", 0, GN_EBADADDR, "empty label"},
    {"h\xc3\xa9llo:80", 0, GN_EBADADDR, "invalid character 0xc3"},
    {"h!:80", 0, GN_EBADADDR, "invalid character '!'"},
    {":8080", 0, GN_EBADADDR, "only allowed for listen"},
    {"8080", 0, GN_EBADADDR, "missing ':port'"},
    {":", GN_PARSE_LISTEN, GN_EBADADDR, "missing port"},
    {"unix:", 0, GN_EBADADDR, "empty Unix socket path"},
    {"unix:@", 0, GN_EBADADDR, "empty abstract"},
    {"unix:/tmp/%zz", 0, GN_EBADADDR, "two hex digits"},
    {"unix:/tmp/%4", 0, GN_EBADADDR, "two hex digits"},
    {"unix:/tmp/a%00b", 0, GN_EBADADDR, "NUL"},
    {"localhost:80", 0x80, GN_EINVAL, "unknown parse flags"},
};

static void check_rejected(const struct rejected *want)
{
    char err[GN_ERRBUF_SIZE], quoted_start[16];
    gn_endpoint ep, before;
    int rc;

    memset(&ep, 0x5a, sizeof(ep));
    before = ep;
    rc = gn_endpoint_parse(want->text, want->flags, &ep, err, sizeof(err));
    cr_expect_eq(rc, want->code, "'%s': rc %d (%s), want %d", want->text, rc, err, want->code);
    cr_expect(strstr(err, want->reason), "'%s': message \"%s\" lacks \"%s\"", want->text, err,
              want->reason);
    /* The message opens with the input, quoted (escaped where unprintable). */
    snprintf(quoted_start, sizeof(quoted_start), "'%.4s", want->text);
    if (strspn(want->text, "abcdefghijklmnopqrstuvwxyz0123456789.:[]/%@") >= 4)
        cr_expect_eq(strncmp(err, quoted_start, strlen(quoted_start)), 0, "%s", err);
    cr_expect_eq(memcmp(&ep, &before, sizeof(ep)), 0, "'%s': out changed on failure", want->text);
}

Test(endpoint_parse, rejects_malformed_with_message_naming_input)
{
    for (size_t i = 0; i < sizeof(rejected) / sizeof(rejected[0]); i++)
        check_rejected(&rejected[i]);
}

Test(endpoint_parse, rejects_unix_path_longer_than_sun_path)
{
    struct sockaddr_un sun;
    size_t longest = sizeof(sun.sun_path) - 1;
    char text[256], err[GN_ERRBUF_SIZE];
    gn_endpoint ep;

    strcpy(text, "unix:/");
    memset(text + 6, 'a', longest - 1);
    text[5 + longest] = '\0';
    cr_assert_eq(gn_endpoint_parse(text, 0, &ep, err, sizeof(err)), 0, "%s", err);
    strcat(text, "b");
    cr_assert_eq(gn_endpoint_parse(text, 0, &ep, err, sizeof(err)), GN_ETOOLONG);
    cr_expect(strstr(err, "107 bytes"), "%s", err);

    strcpy(text, "unix:@");
    memset(text + 6, 'a', longest);
    text[6 + longest] = '\0';
    cr_assert_eq(gn_endpoint_parse(text, 0, &ep, err, sizeof(err)), 0, "%s", err);
    strcat(text, "b");
    cr_assert_eq(gn_endpoint_parse(text, 0, &ep, err, sizeof(err)), GN_ETOOLONG);
}

Test(endpoint_parse, rejects_host_names_over_253_bytes_and_labels_over_63)
{
    char text[400], err[GN_ERRBUF_SIZE];
    gn_endpoint ep;

    /* 4 labels of 63 + 3 dots = 255 > 253 */
    memset(text, 'a', 255);
    text[63] = text[127] = text[191] = '.';
    strcpy(text + 255, ":80");
    cr_expect_eq(gn_endpoint_parse(text, 0, &ep, err, sizeof(err)), GN_ETOOLONG, "%s", err);
    memset(text, 'a', 64);
    strcpy(text + 64, ".example:80");
    cr_expect_eq(gn_endpoint_parse(text, 0, &ep, err, sizeof(err)), GN_ETOOLONG, "%s", err);
    cr_expect(strstr(err, "at most 63"), "%s", err);
}

/* Found by fuzz_endpoint: a 253-byte name with a final dot wrote one byte
 * past the endpoint's host, and formatting then failed. */
Test(endpoint_parse, a_final_dot_counts_towards_the_253_bytes)
{
    char text[400], back[GN_ENDPOINT_STRLEN], err[GN_ERRBUF_SIZE];
    gn_endpoint ep, again;

    memset(text, 'a', 253); /* labels of 63 + dots: 63.63.63.61 = 253 bytes */
    text[63] = text[127] = text[191] = '.';
    strcpy(text + 253, ".:8");
    cr_expect_eq(gn_endpoint_parse(text, 0, &ep, err, sizeof(err)), GN_ETOOLONG, "%s", err);
    cr_expect(strstr(err, "254 bytes; at most 253"), "%s", err);

    strcpy(text + 252, ".:8"); /* 252 bytes and the dot: 253 */
    cr_assert_eq(gn_endpoint_parse(text, 0, &ep, err, sizeof(err)), 0, "%s", err);
    cr_assert_gt(gn_endpoint_format(&ep, back, sizeof(back)), 0);
    cr_assert_str_eq(back, text);
    cr_assert_eq(gn_endpoint_parse(back, 0, &again, err, sizeof(err)), 0, "%s", err);
    cr_assert(gn_endpoint_equal(&ep, &again));
    cr_assert_eq(gn_endpoint_port(&again), 8);
}

Test(endpoint_parse, rejects_embedded_nul_with_its_offset)
{
    static const char text[] = "localhost\0:80";
    char err[GN_ERRBUF_SIZE];
    gn_endpoint ep;

    cr_assert_eq(gn_endpoint_parse_len(text, sizeof(text) - 1, 0, &ep, err, sizeof(err)),
                 GN_EBADADDR);
    cr_expect(strstr(err, "NUL byte at offset 9"), "%s", err);
    cr_expect(strstr(err, "\\x00"), "the NUL is shown escaped: %s", err);
}

Test(endpoint_parse, parse_len_never_reads_past_len)
{
    /* The buffer ends exactly at len: under ASan a read past it is caught. */
    static const char *texts[] = {"127.0.0.1:80", "[::1]:80", "unix:/x", "localhost:http", "[::1"};
    char err[GN_ERRBUF_SIZE];
    gn_endpoint ep;

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        size_t len = strlen(texts[i]);
        char *exact = malloc(len);
        cr_assert_not_null(exact);
        memcpy(exact, texts[i], len);
        int rc = gn_endpoint_parse_len(exact, len, 0, &ep, err, sizeof(err));
        cr_expect(i < 4 ? rc == 0 : rc == GN_EBADADDR, "%s: %d %s", texts[i], rc, err);
        free(exact);
    }
}

Test(endpoint_parse, rejects_10_kib_of_garbage_with_a_short_message)
{
    char *garbage = malloc(10240 + 1), err[GN_ERRBUF_SIZE];
    gn_endpoint ep;

    cr_assert_not_null(garbage);
    for (size_t i = 0; i < 10240; i++)
        garbage[i] = (char)(1 + (i * 7919) % 255);
    garbage[10240] = '\0';
    cr_expect_eq(gn_endpoint_parse(garbage, 0, &ep, err, sizeof(err)), GN_ETOOLONG);
    cr_expect(strstr(err, "1024"), "%s", err);
    cr_expect_lt(strlen(err), GN_ERRBUF_SIZE);
    cr_expect(strstr(err, "..."), "the quoted input is cut: %s", err);
    /* Within the length limit the garbage is still rejected, not crashed on. */
    cr_expect_lt(gn_endpoint_parse_len(garbage, 1000, 0, &ep, err, sizeof(err)), 0);
    free(garbage);
}

Test(endpoint_parse, null_arguments_are_einval_and_tiny_errbuf_is_safe)
{
    char err[4];
    gn_endpoint ep;

    cr_expect_eq(gn_endpoint_parse(NULL, 0, &ep, NULL, 0), GN_EINVAL);
    cr_expect_eq(gn_endpoint_parse("127.0.0.1:80", 0, NULL, NULL, 0), GN_EINVAL);
    cr_expect_eq(gn_endpoint_parse_len(NULL, 0, 0, &ep, NULL, 0), GN_EBADADDR);
    cr_expect_eq(gn_endpoint_parse("host:65536", 0, &ep, err, sizeof(err)), GN_EBADADDR);
    cr_expect_eq(strlen(err), 3u);
}

Test(endpoint_parse, accessors_of_unix_endpoints_give_raw_path)
{
    gn_endpoint ep;
    size_t len;
    const char *path;

    cr_assert_eq(gn_endpoint_parse("unix:@a%00b", 0, &ep, NULL, 0), 0);
    cr_expect(gn_endpoint_is_abstract(&ep));
    path = gn_endpoint_path(&ep, &len);
    cr_assert_eq(len, 3u);
    cr_expect_eq(memcmp(path, "a\0b", 3), 0);

    cr_assert_eq(gn_endpoint_parse("unix:/tmp/a%20b", 0, &ep, NULL, 0), 0);
    cr_expect_not(gn_endpoint_is_abstract(&ep));
    path = gn_endpoint_path(&ep, &len);
    cr_assert_eq(len, 8u);
    cr_expect_eq(memcmp(path, "/tmp/a b", 8), 0);
    cr_expect(gn_endpoint_is_resolved(&ep));
    cr_expect_eq(gn_endpoint_port(&ep), 0);
}

Test(endpoint_parse, sockaddr_is_ready_for_bind)
{
    char text[GN_ENDPOINT_STRLEN];
    gn_endpoint ep;
    socklen_t len;
    const struct sockaddr *sa;

    cr_assert_eq(
        gn_endpoint_parse(gn_test_lo("[fe80::1%lo]:80", text, sizeof(text)), 0, &ep, NULL, 0), 0);
    sa = gn_endpoint_sockaddr(&ep, &len);
    cr_assert_not_null(sa);
    cr_expect_eq(sa->sa_family, AF_INET6);
    cr_expect_eq(len, sizeof(struct sockaddr_in6));
    /* lo is interface 1 on Linux; on Windows gn_test_lo names interface 1 */
    cr_expect_eq(gn_endpoint_scope_id(&ep), 1u);

    cr_assert_eq(gn_endpoint_parse("localhost:80", 0, &ep, NULL, 0), 0);
    cr_expect_null(gn_endpoint_sockaddr(&ep, &len));
    cr_expect_eq(len, 0);
    cr_expect_not(gn_endpoint_is_resolved(&ep));
}
