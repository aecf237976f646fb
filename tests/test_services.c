/*
 * The compiled-in IANA port registry answers look-ups by name and port as
 * gnezdo.h says, and holds exactly the rows of data/'s CSV.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gnezdo.h"
#include "helpers.h"

#define CSV_PATH  GN_TEST_SOURCE_DIR "/data/iana-service-names-port-numbers.csv"
#define DATE_PATH GN_TEST_SOURCE_DIR "/data/iana-registry.date"

/* More than any name or port has in the registry (the most is 7, for 80);
 * tests assert the count fits so a truncated answer cannot pass. */
#define MANY 64

/* Whether s is among the first n of list; n is a look-up's count and may
 * exceed what it wrote, so only the first cap are read. */
static bool holds(const gn_service *const *list, int n, size_t cap, const gn_service *s)
{
    for (int i = 0; i < n && (size_t)i < cap; i++)
        if (list[i] == s)
            return true;
    return false;
}

static bool has_name(const gn_service *const *list, int n, size_t cap, const char *name)
{
    for (int i = 0; i < n && (size_t)i < cap; i++)
        if (strcmp(list[i]->name, name) == 0)
            return true;
    return false;
}

/* Reads a whole file, NUL-terminated; fails the test when it cannot. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;

    cr_assert_not_null(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    cr_assert_geq(size, 0);
    rewind(f);
    buf = malloc((size_t)size + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    buf[size] = '\0';
    *len = (size_t)size;
    return buf;
}

/* ---- a tiny RFC 4180 reader, independent of the generator ----------- */

struct csv {
    char *p, *end;
};

/* Decodes the next field in place (unquoting only shrinks it) and returns
 * what ended it: ',' for another field, '\n' for the end of the record,
 * 0 for the end of the file. */
static int csv_field(struct csv *c, char **field)
{
    char *w = c->p;
    int term;

    *field = w;
    if (c->p < c->end && *c->p == '"') {
        for (c->p++;; c->p++) {
            cr_assert_lt(c->p, c->end, "unterminated quoted field");
            if (*c->p == '"' && (c->p + 1 == c->end || c->p[1] != '"'))
                break;
            if (*c->p == '"')
                c->p++;
            *w++ = *c->p;
        }
        c->p++;
        cr_assert(c->p == c->end || strchr(",\r\n", *c->p), "text after a closing quote");
    } else {
        while (c->p < c->end && *c->p != ',' && *c->p != '\r' && *c->p != '\n')
            *w++ = *c->p++;
    }
    term = c->p == c->end ? 0 : *c->p == ',' ? ',' : '\n';
    if (term && *c->p == '\r' && c->p + 1 < c->end && c->p[1] == '\n')
        c->p++;
    if (term)
        c->p++;
    *w = '\0';
    return term;
}

/* Reads one record's first n fields into fields (the rest are skipped);
 * returns how many fields it had, 0 at the end of the file. */
static int csv_record(struct csv *c, char **fields, int n)
{
    char *field;
    int count = 0, term;

    if (c->p >= c->end)
        return 0;
    do {
        term = csv_field(c, &field);
        if (count < n)
            fields[count] = field;
        count++;
    } while (term == ',');
    return count;
}

/* "", "80" or "6000-6063" as the registry writes them. */
static void parse_ports(const char *text, gn_service *s)
{
    char *end;

    s->has_port = text[0] != '\0';
    s->port_lo = s->port_hi = 0;
    if (!s->has_port)
        return;
    s->port_lo = s->port_hi = (uint16_t)strtoul(text, &end, 10);
    if (*end == '-')
        s->port_hi = (uint16_t)strtoul(end + 1, &end, 10);
    cr_assert_eq(*end, '\0', "port '%s'", text);
}

static void expect_entry_is_row(size_t i, char **f)
{
    const gn_service *s = gn_service_at(i);
    gn_service want = {f[0], f[3], 0, 0, false, GN_PROTO_ANY};

    cr_assert_not_null(s, "row %zu has no entry", i);
    parse_ports(f[1], &want);
    if (f[2][0])
        cr_assert_eq(gn_proto_parse(f[2], &want.proto), 0, "row %zu proto '%s'", i, f[2]);
    cr_expect_str_eq(s->name, want.name, "row %zu", i);
    cr_expect_str_eq(s->description, want.description, "row %zu", i);
    cr_expect_eq(s->has_port, want.has_port, "row %zu", i);
    cr_expect_eq(s->port_lo, want.port_lo, "row %zu", i);
    cr_expect_eq(s->port_hi, want.port_hi, "row %zu", i);
    cr_expect_eq(s->proto, want.proto, "row %zu", i);
}

Test(services, every_csv_row_is_an_entry_in_order_and_no_more)
{
    size_t len, rows = 0;
    char *buf = read_file(CSV_PATH, &len), *f[4];
    struct csv c = {buf, buf + len};

    cr_assert_eq(csv_record(&c, f, 4), 12, "header");
    cr_assert_str_eq(f[0], "Service Name");
    for (int n; (n = csv_record(&c, f, 4)) != 0; rows++) {
        cr_assert_eq(n, 12, "row %zu has %d fields", rows, n);
        expect_entry_is_row(rows, f);
    }
    cr_expect_eq(gn_services_count(), rows);
    cr_expect_null(gn_service_at(rows));
    cr_expect_null(gn_service_at((size_t)-1));
    free(buf);
}

Test(services, count_is_the_14533_rows_of_the_2026_08_17_registry)
{
    /* Pins the committed data; update with data/ (see docs/services.md). */
    cr_expect_eq(gn_services_count(), 14533);
    cr_assert_not_null(gn_service_at(2));
    cr_expect_str_eq(gn_service_at(2)->name, "tcpmux");
    cr_expect_str_eq(gn_service_at(0)->description, "Reserved");
}

Test(services, non_ascii_and_multi_line_descriptions_survive_escaping)
{
    const gn_service *out[MANY];
    int n = gn_services_search("FORT\xc3\x89 Vision", GN_PROTO_ANY, out, MANY);

    cr_assert_gt(n, 0, "the 'FORTÉ' description, as UTF-8");
    n = gn_services_by_name("whoispp", GN_PROTO_TCP, out, MANY);
    cr_assert_eq(n, 1);
    cr_expect_str_eq(out[0]->description, "whois++\nIANA assigned this well-formed service name "
                                          "as a replacement for \"whois++\".");
}

Test(services, date_is_iso_and_equals_the_data_file)
{
    size_t len;
    char *want = read_file(DATE_PATH, &len);
    const char *date = gn_services_date();
    int y, m, d, end = 0;

    while (len > 0 && (want[len - 1] == '\n' || want[len - 1] == '\r'))
        want[--len] = '\0';
    cr_assert_not_null(date);
    cr_expect_eq(strlen(date), 10);
    cr_expect_eq(sscanf(date, "%4d-%2d-%2d%n", &y, &m, &d, &end), 3);
    cr_expect_eq(end, 10, "'%s' is YYYY-MM-DD", date);
    cr_expect_str_eq(date, want);
    free(want);
}

/* ---- by name ----------------------------------------------------------- */

Test(services, http_is_80_on_tcp_udp_and_sctp_but_not_dccp)
{
    cr_expect_eq(gn_service_port("http", GN_PROTO_TCP), 80);
    cr_expect_eq(gn_service_port("http", GN_PROTO_UDP), 80);
    cr_expect_eq(gn_service_port("http", GN_PROTO_SCTP), 80);
    cr_expect_eq(gn_service_port("http", GN_PROTO_ANY), 80);
    cr_expect_eq(gn_service_port("http", GN_PROTO_DCCP), GN_ENOSERVICE);
}

Test(services, domain_is_53_on_tcp_and_udp)
{
    cr_expect_eq(gn_service_port("domain", GN_PROTO_TCP), 53);
    cr_expect_eq(gn_service_port("domain", GN_PROTO_UDP), 53);
    cr_expect_eq(gn_service_port("https", GN_PROTO_TCP), 443);
}

Test(services, names_are_case_insensitive)
{
    const gn_service *out[MANY];

    cr_expect_eq(gn_service_port("HTTP", GN_PROTO_TCP), 80);
    cr_expect_eq(gn_service_port("Domain", GN_PROTO_UDP), 53);
    cr_assert_eq(gn_services_by_name("HtTp", GN_PROTO_ANY, out, MANY), 3);
    for (int i = 0; i < 3; i++)
        cr_expect_str_eq(out[i]->name, "http");
    /* Registry names with capitals are found in lower case too. */
    cr_expect_gt(gn_services_by_name("ethernet/ip-1", GN_PROTO_ANY, out, MANY), 0);
}

Test(services, by_name_gives_registry_order_filtered_by_proto)
{
    const gn_service *out[MANY];

    cr_assert_eq(gn_services_by_name("http", GN_PROTO_ANY, out, MANY), 3);
    cr_expect_eq(out[0]->proto, GN_PROTO_TCP);
    cr_expect_eq(out[1]->proto, GN_PROTO_UDP);
    cr_expect_eq(out[2]->proto, GN_PROTO_SCTP);
    cr_expect_lt(out[0], out[1]);
    cr_expect_lt(out[1], out[2]);
    cr_assert_eq(gn_services_by_name("http", GN_PROTO_SCTP, out, MANY), 1);
    cr_expect_eq(out[0]->proto, GN_PROTO_SCTP);
    cr_expect_eq(out[0]->port_lo, 80);
}

Test(services, entries_without_proto_match_every_proto)
{
    const gn_service *out[MANY];

    /* boe-cms: 6400 with no transport protocol in the registry. */
    cr_assert_eq(gn_services_by_name("boe-cms", GN_PROTO_DCCP, out, MANY), 1);
    cr_expect_eq(out[0]->proto, GN_PROTO_ANY);
    cr_expect_eq(gn_service_port("boe-cms", GN_PROTO_UDP), 6400);
}

Test(services, unknown_names_give_no_entries_and_enoservice)
{
    const gn_service *out[1];

    cr_expect_eq(gn_services_by_name("nosuch", GN_PROTO_ANY, out, 1), 0);
    cr_expect_eq(gn_services_by_name("", GN_PROTO_ANY, out, 1), 0);
    cr_expect_eq(gn_services_by_name("http ", GN_PROTO_ANY, out, 1), 0);
    cr_expect_eq(gn_services_by_name("htt", GN_PROTO_ANY, out, 1), 0);
    cr_expect_eq(gn_service_port("nosuch", GN_PROTO_TCP), GN_ENOSERVICE);
    cr_expect_eq(gn_service_port("", GN_PROTO_TCP), GN_ENOSERVICE);
}

Test(services, name_only_names_have_no_port_and_range_names_give_their_first)
{
    const gn_service *out[MANY];

    /* 7ksonar is a DNS-SD name with no port; x11 exists only as a range. */
    cr_assert_eq(gn_services_by_name("7ksonar", GN_PROTO_TCP, out, MANY), 1);
    cr_expect_not(out[0]->has_port);
    cr_expect_eq(gn_service_port("7ksonar", GN_PROTO_TCP), GN_ENOSERVICE);
    cr_expect_eq(gn_service_port("x11", GN_PROTO_TCP), 6000);
    cr_expect_eq(gn_service_port("x11", GN_PROTO_SCTP), GN_ENOSERVICE);
}

/* ---- by port ----------------------------------------------------------- */

Test(services, port_80_tcp_gives_http_then_www_then_www_http)
{
    const gn_service *out[MANY];

    cr_assert_eq(gn_services_by_port(80, GN_PROTO_TCP, out, MANY), 3);
    cr_expect_str_eq(out[0]->name, "http");
    cr_expect_str_eq(out[1]->name, "www");
    cr_expect_str_eq(out[2]->name, "www-http");
    for (int i = 0; i < 3; i++)
        cr_expect_eq(out[i]->proto, GN_PROTO_TCP);
    cr_assert_eq(gn_services_by_port(80, GN_PROTO_ANY, out, MANY), 7);
    cr_expect_str_eq(out[0]->name, "http");
}

Test(services, named_entries_come_before_unnamed_ones_on_a_port)
{
    const gn_service *out[MANY];

    /* 270: the registry lists "Reserved" for tcp before gist for udp. */
    cr_assert_eq(gn_services_by_port(270, GN_PROTO_ANY, out, MANY), 2);
    cr_expect_str_eq(out[0]->name, "gist");
    cr_expect_str_eq(out[1]->name, "");
    cr_expect_gt(out[0], out[1], "the registry order differs from the answer's");
}

Test(services, every_port_lists_named_then_unnamed_each_in_registry_order)
{
    const gn_service *out[MANY];

    for (unsigned port = 0; port <= 65535; port++) {
        int n = gn_services_by_port(port, GN_PROTO_ANY, out, MANY);

        cr_assert_leq(n, MANY, "port %u", port);
        for (int i = 0; i < n; i++) {
            cr_assert(out[i]->has_port && out[i]->port_lo <= port && port <= out[i]->port_hi);
            if (i == 0)
                continue;
            bool prev_named = out[i - 1]->name[0], named = out[i]->name[0];
            cr_assert(prev_named >= named, "port %u: unnamed before named", port);
            if (prev_named == named)
                cr_assert_lt(out[i - 1], out[i], "port %u: out of registry order", port);
        }
    }
}

Test(services, x11_range_holds_6003_on_tcp)
{
    const gn_service *out[MANY];
    int n = gn_services_by_port(6003, GN_PROTO_TCP, out, MANY);

    cr_assert_eq(n, 1);
    cr_expect_str_eq(out[0]->name, "x11");
    cr_expect_eq(out[0]->port_lo, 6000);
    cr_expect_eq(out[0]->port_hi, 6063);
    cr_expect_eq(out[0]->proto, GN_PROTO_TCP);
    n = gn_services_by_port(6063, GN_PROTO_TCP, out, MANY);
    cr_expect(has_name(out, n, MANY, "x11"), "last port of the range");
    n = gn_services_by_port(6064, GN_PROTO_TCP, out, MANY);
    cr_expect_not(has_name(out, n, MANY, "x11"), "one past the range");
}

Test(services, flex_lm_without_proto_is_found_for_27005_on_tcp)
{
    const gn_service *out[MANY];
    int n = gn_services_by_port(27005, GN_PROTO_TCP, out, MANY);

    cr_assert_eq(n, 1);
    cr_expect_str_eq(out[0]->name, "flex-lm");
    cr_expect_eq(out[0]->proto, GN_PROTO_ANY);
    cr_expect_eq(out[0]->port_lo, 27000);
    cr_expect_eq(out[0]->port_hi, 27009);
    n = gn_services_by_port(27010, GN_PROTO_TCP, out, MANY);
    cr_expect_not(has_name(out, n, MANY, "flex-lm"));
}

/* ---- every entry, both ways -------------------------------------------- */

static void expect_found_by_name(const gn_service *s, size_t i)
{
    const gn_service *out[MANY];
    char upper[64];
    size_t k;
    int n = gn_services_by_name(s->name, s->proto, out, MANY);

    cr_assert_leq(n, MANY);
    cr_expect(holds(out, n, MANY, s), "entry %zu '%s' by name", i, s->name);
    for (k = 0; s->name[k] && k < sizeof(upper) - 1; k++)
        upper[k] = s->name[k] >= 'a' && s->name[k] <= 'z' ? (char)(s->name[k] - 32) : s->name[k];
    upper[k] = '\0';
    n = gn_services_by_name(upper, s->proto, out, MANY);
    cr_expect(holds(out, n, MANY, s), "entry %zu '%s' by name", i, upper);
    if (s->has_port && s->port_lo == s->port_hi)
        cr_expect_geq(gn_service_port(s->name, s->proto), 0, "entry %zu", i);
}

static void expect_found_by_port(const gn_service *s, size_t i)
{
    const gn_service *out[MANY];
    unsigned ports[] = {s->port_lo, (s->port_lo + s->port_hi) / 2u, s->port_hi};

    for (size_t k = 0; k < 3; k++) {
        int n = gn_services_by_port(ports[k], s->proto, out, MANY);

        cr_assert_leq(n, MANY);
        cr_expect(holds(out, n, MANY, s), "entry %zu '%s' by port %u", i, s->name, ports[k]);
    }
}

Test(services, every_entry_is_found_by_its_name_and_its_ports)
{
    for (size_t i = 0; i < gn_services_count(); i++) {
        const gn_service *s = gn_service_at(i);

        if (s->name[0])
            expect_found_by_name(s, i);
        if (s->has_port)
            expect_found_by_port(s, i);
    }
}

Test(services, service_port_is_the_first_single_port_entry_in_registry_order)
{
    /* A sample of names (every 41st row): the reference scan is linear. */
    for (size_t i = 0; i < gn_services_count(); i += 41) {
        const gn_service *s = gn_service_at(i), *first = NULL;

        if (!s->name[0])
            continue;
        for (size_t j = 0; j < gn_services_count() && !first; j++) {
            const gn_service *t = gn_service_at(j);

            if (t->has_port && t->port_lo == t->port_hi && strcasecmp(t->name, s->name) == 0)
                first = t;
        }
        cr_expect_eq(gn_service_port(s->name, GN_PROTO_ANY), first ? first->port_lo : GN_ENOSERVICE,
                     "'%s'", s->name);
    }
}

/* ---- buffers and arguments --------------------------------------------- */

Test(services, max_below_the_total_returns_the_total_and_writes_only_max)
{
    const gn_service *sentinel = gn_service_at(0);
    const gn_service *out[3] = {sentinel, sentinel, sentinel};

    cr_expect_eq(gn_services_by_port(80, GN_PROTO_ANY, out, 2), 7);
    cr_expect_str_eq(out[0]->name, "http");
    cr_expect_str_eq(out[1]->name, "http");
    cr_expect_eq(out[2], sentinel);
    out[0] = sentinel;
    cr_expect_eq(gn_services_by_name("http", GN_PROTO_ANY, out, 1), 3);
    cr_expect_eq(out[0]->proto, GN_PROTO_TCP);
    cr_expect_eq(out[1]->proto, GN_PROTO_UDP, "left as it was");
    cr_expect_eq(gn_services_by_name("http", GN_PROTO_ANY, NULL, 0), 3);
    cr_expect_eq(gn_services_by_port(80, GN_PROTO_TCP, NULL, 0), 3);
    cr_expect_gt(gn_services_search("mail", GN_PROTO_ANY, NULL, 0), 2);
}

Test(services, bad_arguments_give_einval)
{
    const gn_service *out[1];
    gn_proto p = GN_PROTO_TCP;

    cr_expect_eq(gn_services_by_name(NULL, GN_PROTO_ANY, out, 1), GN_EINVAL);
    cr_expect_eq(gn_services_by_name("http", GN_PROTO_ANY, NULL, 1), GN_EINVAL);
    cr_expect_eq(gn_services_by_name("http", (gn_proto)5, out, 1), GN_EINVAL);
    cr_expect_eq(gn_services_by_name("http", (gn_proto)-1, out, 1), GN_EINVAL);
    cr_expect_eq(gn_services_by_port(65536, GN_PROTO_ANY, out, 1), GN_EINVAL);
    cr_expect_eq(gn_services_by_port(~0u, GN_PROTO_ANY, out, 1), GN_EINVAL);
    cr_expect_eq(gn_services_by_port(80, GN_PROTO_ANY, NULL, 1), GN_EINVAL);
    cr_expect_eq(gn_services_by_port(80, (gn_proto)5, out, 1), GN_EINVAL);
    cr_expect_eq(gn_services_search(NULL, GN_PROTO_ANY, out, 1), GN_EINVAL);
    cr_expect_eq(gn_services_search("", GN_PROTO_ANY, out, 1), GN_EINVAL);
    cr_expect_eq(gn_services_search("mail", GN_PROTO_ANY, NULL, 1), GN_EINVAL);
    cr_expect_eq(gn_services_search("mail", (gn_proto)9, out, 1), GN_EINVAL);
    cr_expect_eq(gn_service_port(NULL, GN_PROTO_TCP), GN_EINVAL);
    cr_expect_eq(gn_service_port("http", (gn_proto)5), GN_EINVAL);
    cr_expect_eq(gn_proto_parse(NULL, &p), GN_EINVAL);
    cr_expect_eq(gn_proto_parse("tcp", NULL), GN_EINVAL);
    cr_expect_eq(p, GN_PROTO_TCP, "unchanged by failed calls");
}

/* ---- search ------------------------------------------------------------ */

static bool contains_ci(const char *text, const char *word)
{
    for (; *text; text++)
        if (strncasecmp(text, word, strlen(word)) == 0)
            return true;
    return false;
}

Test(services, search_mail_finds_smtp_and_every_result_contains_mail)
{
    const gn_service *out[256];
    int n = gn_services_search("mail", GN_PROTO_ANY, out, 256);

    cr_assert_gt(n, 2);
    cr_assert_leq(n, 256);
    cr_expect(has_name(out, n, 256, "smtp"));
    for (int i = 0; i < n; i++) {
        cr_expect_neq(out[i]->name[0], '\0', "named entries only");
        cr_expect(contains_ci(out[i]->name, "mail") || contains_ci(out[i]->description, "mail"),
                  "'%s': '%s'", out[i]->name, out[i]->description);
        if (i > 0)
            cr_expect_lt(out[i - 1], out[i], "registry order");
    }
    cr_expect_eq(gn_services_search("MaIl", GN_PROTO_ANY, NULL, 0), n);
}

Test(services, search_looks_in_names_too)
{
    const gn_service *out[MANY];
    int n = gn_services_search("SMTP", GN_PROTO_TCP, out, MANY);

    /* smtp's description, "Simple Mail Transfer", lacks the word. */
    cr_assert_leq(n, MANY);
    cr_expect(has_name(out, n, MANY, "smtp"));
}

Test(services, search_filters_by_proto)
{
    const gn_service *out[256];
    int all = gn_services_search("mail", GN_PROTO_ANY, NULL, 0);
    int n = gn_services_search("mail", GN_PROTO_SCTP, out, 256);

    cr_assert_geq(n, 0);
    cr_assert_lt(n, all);
    for (int i = 0; i < n && i < 256; i++)
        cr_expect(out[i]->proto == GN_PROTO_SCTP || out[i]->proto == GN_PROTO_ANY);
    cr_expect_eq(gn_services_search("no-such-word-anywhere", GN_PROTO_ANY, out, 256), 0);
}

/* ---- protocols ----------------------------------------------------------- */

Test(services, proto_names_parse_back_case_insensitively)
{
    gn_proto p;

    for (int i = GN_PROTO_TCP; i <= GN_PROTO_DCCP; i++) {
        cr_assert_eq(gn_proto_parse(gn_proto_name((gn_proto)i), &p), 0);
        cr_expect_eq(p, (gn_proto)i);
    }
    cr_expect_str_eq(gn_proto_name(GN_PROTO_TCP), "tcp");
    cr_expect_str_eq(gn_proto_name(GN_PROTO_DCCP), "dccp");
    cr_expect_eq(gn_proto_parse("UDP", &p), 0);
    cr_expect_eq(p, GN_PROTO_UDP);
    cr_expect_eq(gn_proto_parse("Sctp", &p), 0);
    cr_expect_eq(p, GN_PROTO_SCTP);
}

Test(services, proto_name_of_any_is_empty_and_out_of_range_is_unknown)
{
    gn_proto p = GN_PROTO_DCCP;

    cr_expect_str_eq(gn_proto_name(GN_PROTO_ANY), "");
    cr_expect_str_eq(gn_proto_name((gn_proto)5), "unknown");
    cr_expect_str_eq(gn_proto_name((gn_proto)-1), "unknown");
    cr_expect_eq(gn_proto_parse("", &p), GN_EINVAL);
    cr_expect_eq(gn_proto_parse("tcpx", &p), GN_EINVAL);
    cr_expect_eq(gn_proto_parse("tc", &p), GN_EINVAL);
    cr_expect_eq(gn_proto_parse("any", &p), GN_EINVAL);
    cr_expect_eq(p, GN_PROTO_DCCP, "unchanged by failed calls");
}
