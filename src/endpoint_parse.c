/*
 * The endpoint parser: address text -> gn_endpoint.
 *
 * Strict and total.  Every byte of the input is accounted for, nothing is
 * read past len, nothing is allocated, and every rejection names the input
 * and the reason.  Deliberately stricter than inet_aton/getaddrinfo: those
 * accept "1.2.3" and "01.2.3.4" (octal!) for historical reasons, and a
 * config file typo should not silently become another host.
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "internal.h"

struct parser {
    const char *input; /* the whole text, for messages */
    size_t input_len;
    unsigned flags;
    char *errbuf;
    size_t errlen;
};

/* A slice of the input: never NUL-terminated, always with its length. */
struct span {
    const char *p;
    size_t len;
};

#define FAIL(ps, code, ...)                                                                        \
    gn__errbuf_input((ps)->errbuf, (ps)->errlen, (code), (ps)->input, (ps)->input_len, __VA_ARGS__)

/* Longest span quoted inside a message, so messages stay within
 * GN_ERRBUF_SIZE even for hostile input. */
#define SPAN_SHOWN 40
#define SPAN_FMT   "%.*s%s"
#define SPAN_ARG(s)                                                                                \
    (int)((s).len > SPAN_SHOWN ? SPAN_SHOWN : (s).len), (s).p, ((s).len > SPAN_SHOWN ? "..." : "")

static bool span_eq_nocase(struct span s, const char *word)
{
    size_t n = strlen(word);

    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s.p[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != word[i])
            return false;
    }
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool all_digits(struct span s)
{
    for (size_t i = 0; i < s.len; i++)
        if (!is_digit(s.p[i]))
            return false;
    return s.len > 0;
}

static const char *memchr_span(struct span s, char c)
{
    return s.len ? memchr(s.p, c, s.len) : NULL;
}

/* '%' or byte 0xNN: only printable ASCII is shown as itself. */
static const char *show_char(char c, char buf[8])
{
    unsigned char u = (unsigned char)c;

    if (u > 0x20 && u < 0x7f)
        snprintf(buf, 8, "'%c'", c);
    else
        snprintf(buf, 8, "0x%02x", u);
    return buf;
}

/* Spaces, control bytes and DEL are never part of an address; reject them
 * up front with their offset, so later stages only see printable text. */
static int check_bytes(struct parser *ps)
{
    for (size_t i = 0; i < ps->input_len; i++) {
        unsigned char c = (unsigned char)ps->input[i];
        if (c == '\0')
            return FAIL(ps, GN_EBADADDR, "NUL byte at offset %zu", i);
        if (c == ' ' || c == '\t')
            return FAIL(ps, GN_EBADADDR, "space at offset %zu (write %%20 in Unix paths)", i);
        if (c < 0x20 || c == 0x7f)
            return FAIL(ps, GN_EBADADDR, "control character 0x%02x at offset %zu", c, i);
    }
    return 0;
}

/* ---- ports ---------------------------------------------------------- */

static gn_proto transport_proto(gn_transport transport)
{
    return transport == GN_TRANSPORT_UDP ? GN_PROTO_UDP : GN_PROTO_TCP;
}

static int parse_port_number(struct parser *ps, struct span s, uint16_t *port)
{
    unsigned long value = 0;

    if (s.len > 1 && s.p[0] == '0')
        return FAIL(ps, GN_EBADADDR, "port '" SPAN_FMT "' has a leading zero", SPAN_ARG(s));
    if (s.len > 5)
        return FAIL(ps, GN_EBADADDR, "port " SPAN_FMT " is out of range 0-65535", SPAN_ARG(s));
    for (size_t i = 0; i < s.len; i++)
        value = value * 10 + (unsigned long)(s.p[i] - '0');
    if (value > 65535)
        return FAIL(ps, GN_EBADADDR, "port %lu is out of range 0-65535", value);
    *port = (uint16_t)value;
    return 0;
}

/* Characters IANA service names use, legacy ones included ("whois++",
 * "sql*net", "z39.50", "cl/1", "rsvp_tunnel"). */
static bool is_service_char(char c)
{
    return is_alnum(c) || strchr("-+*/._", c) != NULL;
}

static int parse_service_name(struct parser *ps, struct span s, gn_transport transport,
                              uint16_t *port)
{
    char name[64], shown[8];
    gn_proto proto = transport_proto(transport);
    int rc;

    if (s.p[0] == '-' && s.len > 1 && all_digits((struct span){s.p + 1, s.len - 1}))
        return FAIL(ps, GN_EBADADDR, "port " SPAN_FMT " is out of range 0-65535", SPAN_ARG(s));
    for (size_t i = 0; i < s.len; i++)
        if (!is_service_char(s.p[i]))
            return FAIL(ps, GN_EBADADDR, "invalid character %s in the port",
                        show_char(s.p[i], shown));
    if (s.len >= sizeof(name))
        return FAIL(ps, GN_ENOSERVICE, "'" SPAN_FMT "' is not a port number or a %s service name",
                    SPAN_ARG(s), gn_proto_name(proto));
    memcpy(name, s.p, s.len);
    name[s.len] = '\0';
    rc = gn_service_port(name, proto);
    if (rc >= 0) {
        *port = (uint16_t)rc;
        return 0;
    }
    if (is_digit(s.p[0]))
        return FAIL(ps, GN_EBADADDR, "port '%s' is not a number (nor a %s service name)", name,
                    gn_proto_name(proto));
    return FAIL(ps, GN_ENOSERVICE, "unknown %s service name '%s'", gn_proto_name(proto), name);
}

static int parse_port(struct parser *ps, struct span s, gn_transport transport, uint16_t *port)
{
    if (s.len == 0)
        return FAIL(ps, GN_EBADADDR, "missing port after ':'");
    if (all_digits(s))
        return parse_port_number(ps, s, port);
    return parse_service_name(ps, s, transport, port);
}

/* ---- IPv4 ----------------------------------------------------------- */

static int parse_ipv4_part(struct parser *ps, struct span part, struct span whole, unsigned *value)
{
    if (part.len == 0)
        return FAIL(ps, GN_EBADADDR, "empty part in IPv4 address '" SPAN_FMT "'", SPAN_ARG(whole));
    if (part.len > 1 && part.p[0] == '0')
        return FAIL(ps, GN_EBADADDR,
                    "leading zero in '" SPAN_FMT "' of IPv4 address '" SPAN_FMT
                    "' (octal is not guessed)",
                    SPAN_ARG(part), SPAN_ARG(whole));
    if (part.len > 3)
        return FAIL(ps, GN_EBADADDR, "'" SPAN_FMT "' in IPv4 address is out of range 0-255",
                    SPAN_ARG(part));
    *value = 0;
    for (size_t i = 0; i < part.len; i++)
        *value = *value * 10 + (unsigned)(part.p[i] - '0');
    if (*value > 255)
        return FAIL(ps, GN_EBADADDR, "%u in IPv4 address '" SPAN_FMT "' is out of range 0-255",
                    *value, SPAN_ARG(whole));
    return 0;
}

/* Exactly four decimal parts 0-255: no shorthand, no octal, no hex. */
static int parse_ipv4(struct parser *ps, struct span s, struct in_addr *addr)
{
    unsigned char bytes[4];
    size_t start = 0, parts = 0;
    unsigned value = 0;
    int rc;

    for (size_t i = 0; i <= s.len; i++) {
        if (i < s.len && s.p[i] != '.')
            continue;
        if (parts == 4)
            return FAIL(ps, GN_EBADADDR, "IPv4 address '" SPAN_FMT "' has more than 4 parts",
                        SPAN_ARG(s));
        rc = parse_ipv4_part(ps, (struct span){s.p + start, i - start}, s, &value);
        if (rc < 0)
            return rc;
        bytes[parts++] = (unsigned char)value;
        start = i + 1;
    }
    if (parts != 4)
        return FAIL(ps, GN_EBADADDR, "IPv4 address '" SPAN_FMT "' has %zu parts, expected 4",
                    SPAN_ARG(s), parts);
    memcpy(&addr->s_addr, bytes, 4);
    return 0;
}

/* ---- IPv6 ----------------------------------------------------------- */

static int parse_scope(struct parser *ps, struct span s, uint32_t *scope_id)
{
    char name[IF_NAMESIZE];

    if (s.len == 0)
        return FAIL(ps, GN_EBADADDR, "empty scope after '%%'");
    if (all_digits(s)) {
        unsigned long long value = 0;
        for (size_t i = 0; i < s.len && value <= UINT32_MAX; i++)
            value = value * 10 + (unsigned)(s.p[i] - '0');
        if (value == 0 || value > UINT32_MAX || (s.len > 1 && s.p[0] == '0'))
            return FAIL(ps, GN_EBADADDR, "scope '" SPAN_FMT "' is not a valid interface index",
                        SPAN_ARG(s));
        *scope_id = (uint32_t)value;
        return 0;
    }
    if (s.len >= sizeof(name))
        return FAIL(ps, GN_EBADADDR, "interface name '" SPAN_FMT "' is too long", SPAN_ARG(s));
    memcpy(name, s.p, s.len);
    name[s.len] = '\0';
    *scope_id = if_nametoindex(name);
    if (*scope_id == 0)
        return FAIL(ps, GN_EBADADDR, "no network interface named '%s' for the scope", name);
    return 0;
}

/* s is what stood between the brackets: "2001:db8::1" or "fe80::1%lo". */
static int parse_ipv6(struct parser *ps, struct span s, struct sockaddr_in6 *sin6)
{
    char text[INET6_ADDRSTRLEN];
    const char *percent = memchr_span(s, '%');
    struct span addr = {s.p, percent ? (size_t)(percent - s.p) : s.len};
    int rc;

    if (addr.len == 0)
        return FAIL(ps, GN_EBADADDR, "empty IPv6 address between '[' and ']'");
    if (addr.len >= sizeof(text))
        return FAIL(ps, GN_EBADADDR, "'" SPAN_FMT "' is not a valid IPv6 address", SPAN_ARG(addr));
    memcpy(text, addr.p, addr.len);
    text[addr.len] = '\0';
    if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1)
        return FAIL(ps, GN_EBADADDR, "'%s' is not a valid IPv6 address", text);
    if (percent) {
        struct span scope = {percent + 1, s.len - addr.len - 1};
        uint32_t scope_id;
        rc = parse_scope(ps, scope, &scope_id);
        if (rc < 0)
            return rc;
        sin6->sin6_scope_id = scope_id; /* a ULONG on Windows */
    }
    return 0;
}

/* ---- host names ----------------------------------------------------- */

static int check_label(struct parser *ps, struct span label, struct span host)
{
    char shown[8];

    if (label.len == 0)
        return FAIL(ps, GN_EBADADDR, "empty label in host name '" SPAN_FMT "'", SPAN_ARG(host));
    if (label.len > 63)
        return FAIL(ps, GN_ETOOLONG, "label of %zu bytes in host name; at most 63 allowed",
                    label.len);
    if (label.p[0] == '-' || label.p[label.len - 1] == '-')
        return FAIL(ps, GN_EBADADDR, "label '" SPAN_FMT "' starts or ends with '-'",
                    SPAN_ARG(label));
    for (size_t i = 0; i < label.len; i++) {
        char c = label.p[i];
        if (!is_alnum(c) && c != '-' && c != '_')
            return FAIL(ps, GN_EBADADDR, "invalid character %s in host name", show_char(c, shown));
    }
    return 0;
}

/* RFC 1123 names (underscores allowed, as DNS itself allows them), at most
 * 253 bytes, and a final label that is not all digits (RFC 3696 2): that
 * keeps "1.2.3" and "10.0.0.256" from passing as names. */
static int check_host_name(struct parser *ps, struct span host)
{
    struct span body = host;
    size_t start = 0;
    int rc;

    /* The whole text, final dot included, must fit the endpoint's host_
     * (GN_HOST_MAX + 1 with its NUL): a 253-byte name with a final dot
     * once overflowed it by one byte (found by fuzz_endpoint). */
    if (host.len > GN_HOST_MAX)
        return FAIL(ps, GN_ETOOLONG, "host name of %zu bytes; at most %d allowed", host.len,
                    GN_HOST_MAX);
    if (body.len > 1 && body.p[body.len - 1] == '.')
        body.len--; /* a fully qualified "example.org." */
    for (size_t i = 0; i <= body.len; i++) {
        if (i < body.len && body.p[i] != '.')
            continue;
        struct span label = {body.p + start, i - start};
        rc = check_label(ps, label, host);
        if (rc < 0)
            return rc;
        if (i == body.len && all_digits(label))
            return FAIL(ps, GN_EBADADDR,
                        "'" SPAN_FMT "' is neither an IPv4 address nor a host name",
                        SPAN_ARG(host));
        start = i + 1;
    }
    return 0;
}

static bool looks_like_ipv4(struct span s)
{
    for (size_t i = 0; i < s.len; i++)
        if (!is_digit(s.p[i]) && s.p[i] != '.')
            return false;
    return true;
}

/* ---- host:port ------------------------------------------------------ */

static void set_ipv4(gn_endpoint *ep, struct in_addr addr)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&ep->addr_;

    ep->family_ = GN_FAMILY_IPV4;
    sin->sin_family = AF_INET;
    sin->sin_addr = addr;
    ep->addrlen_ = sizeof(*sin);
}

static int parse_host(struct parser *ps, struct span host, gn_endpoint *ep)
{
    struct in_addr addr = {0};
    int rc;

    if (looks_like_ipv4(host)) {
        rc = parse_ipv4(ps, host, &addr);
        if (rc < 0)
            return rc;
        set_ipv4(ep, addr);
        return 0;
    }
    rc = check_host_name(ps, host);
    if (rc < 0)
        return rc;
    ep->family_ = GN_FAMILY_NAME;
    memcpy(ep->host_, host.p, host.len);
    ep->host_[host.len] = '\0';
    return 0;
}

/* "[v6]:port", the bracket already seen at s.p[0]. */
static int parse_bracketed(struct parser *ps, struct span s, gn_endpoint *ep)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ep->addr_;
    const char *close = memchr_span(s, ']');
    struct span inside, rest;
    char shown[8];
    uint16_t port;
    int rc;

    if (!close)
        return FAIL(ps, GN_EBADADDR, "missing ']' after IPv6 address");
    inside = (struct span){s.p + 1, (size_t)(close - s.p) - 1};
    rest = (struct span){close + 1, s.len - (size_t)(close - s.p) - 1};
    if (rest.len == 0)
        return FAIL(ps, GN_EBADADDR, "missing ':port' after ']'");
    if (rest.p[0] != ':')
        return FAIL(ps, GN_EBADADDR, "unexpected %s after ']' (expected ':port')",
                    show_char(rest.p[0], shown));
    rc = parse_ipv6(ps, inside, sin6);
    if (rc < 0)
        return rc;
    sin6->sin6_family = AF_INET6;
    ep->family_ = GN_FAMILY_IPV6;
    ep->addrlen_ = sizeof(*sin6);
    rc = parse_port(ps, (struct span){rest.p + 1, rest.len - 1}, ep->transport_, &port);
    if (rc < 0)
        return rc;
    gn__endpoint_set_port(ep, port);
    return 0;
}

static int parse_bare_port(struct parser *ps, struct span s, gn_endpoint *ep)
{
    int rc;

    if (!(ps->flags & GN_PARSE_LISTEN))
        return FAIL(ps, GN_EBADADDR,
                    "missing host (a bare port is only allowed for listen addresses)");
    rc = parse_port(ps, s, ep->transport_, &ep->port_);
    if (rc < 0)
        return rc;
    ep->family_ = GN_FAMILY_ANY;
    return 0;
}

static int parse_host_port(struct parser *ps, struct span s, gn_endpoint *ep)
{
    const char *colon = memchr_span(s, ':');
    struct span host, port_text;
    uint16_t port;
    int rc;

    if (s.len == 0)
        return FAIL(ps, GN_EBADADDR, "missing host and port");
    if (s.p[0] == '[')
        return parse_bracketed(ps, s, ep);
    if (!colon) {
        if (all_digits(s) && (ps->flags & GN_PARSE_LISTEN))
            return parse_bare_port(ps, s, ep);
        return FAIL(ps, GN_EBADADDR, "missing ':port' after the host");
    }
    host = (struct span){s.p, (size_t)(colon - s.p)};
    port_text = (struct span){colon + 1, s.len - host.len - 1};
    if (memchr_span(port_text, ':'))
        return FAIL(ps, GN_EBADADDR, "IPv6 addresses need brackets, as in '[::1]:80'");
    if (memchr_span(host, ']'))
        return FAIL(ps, GN_EBADADDR, "']' without '['");
    if (host.len == 0)
        return parse_bare_port(ps, port_text, ep);
    rc = parse_host(ps, host, ep);
    if (rc < 0)
        return rc;
    rc = parse_port(ps, port_text, ep->transport_, &port);
    if (rc < 0)
        return rc;
    gn__endpoint_set_port(ep, port);
    return 0;
}

/* ---- Unix paths ----------------------------------------------------- */

static int hex_value(char c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX into out (room for max bytes); returns the decoded length. */
static int decode_path(struct parser *ps, struct span s, char *out, size_t max, size_t *len)
{
    size_t n = 0;

    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (c == '%') {
            int hi = i + 2 < s.len ? hex_value(s.p[i + 1]) : -1;
            int lo = hi >= 0 ? hex_value(s.p[i + 2]) : -1;
            if (lo < 0)
                return FAIL(ps, GN_EBADADDR,
                            "'%%' at offset %zu must be followed by two hex digits (%%25 for '%%')",
                            (size_t)(s.p + i - ps->input));
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (n == max)
            return FAIL(ps, GN_ETOOLONG,
                        "Unix socket path longer than the %zu bytes the kernel allows", max);
        out[n++] = c;
    }
    *len = n;
    return 0;
}

/* "unix:/path", "unix:relative", "unix:@abstract" (Linux). */
static int parse_unix(struct parser *ps, struct span s, gn_endpoint *ep)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&ep->addr_;
    const size_t base = offsetof(struct sockaddr_un, sun_path);
    bool abstract = s.len > 0 && s.p[0] == '@';
    size_t len = 0;
    int rc;

    if (abstract)
        s = (struct span){s.p + 1, s.len - 1};
    if (s.len == 0)
        return FAIL(ps, GN_EBADADDR,
                    abstract ? "empty abstract socket name after '@'" : "empty Unix socket path");
    /* A path needs its NUL inside sun_path; an abstract name has a leading
     * NUL instead.  Either way one byte of the 108 is taken. */
    rc = decode_path(ps, s, sun->sun_path + 1, sizeof(sun->sun_path) - 1, &len);
    if (rc < 0)
        return rc;
    if (abstract) {
        sun->sun_path[0] = '\0';
        ep->addrlen_ = (socklen_t)(base + 1 + len);
    } else {
        if (memchr(sun->sun_path + 1, '\0', len))
            return FAIL(ps, GN_EBADADDR, "%%00 (a NUL byte) in a Unix socket path");
        memmove(sun->sun_path, sun->sun_path + 1, len);
        sun->sun_path[len] = '\0';
        ep->addrlen_ = (socklen_t)(base + len + 1);
    }
    sun->sun_family = AF_UNIX;
    ep->family_ = GN_FAMILY_UNIX;
    return 0;
}

/* ---- schemes -------------------------------------------------------- */

struct scheme {
    const char *name;
    gn_transport transport;
    bool is_unix; /* "name:" followed by a path, not "name://" */
};

static const struct scheme schemes[] = {
    {"tcp", GN_TRANSPORT_TCP, false},          {"udp", GN_TRANSPORT_UDP, false},
    {"tls", GN_TRANSPORT_TLS, false},          {"unix", GN_TRANSPORT_UNIX, true},
    {"unixgram", GN_TRANSPORT_UNIXGRAM, true},
};

static const struct scheme *find_scheme(struct span name)
{
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (span_eq_nocase(name, schemes[i].name))
            return &schemes[i];
    return NULL;
}

/* The scheme is the text before the first ':' when that text is letters
 * only and is either a Unix scheme or followed by "//". */
static int split_scheme(struct parser *ps, struct span *rest, const struct scheme **scheme)
{
    static const struct scheme tcp_default = {"tcp", GN_TRANSPORT_TCP, false};
    const char *colon = memchr_span(*rest, ':');
    struct span name = {rest->p, colon ? (size_t)(colon - rest->p) : 0};
    size_t after = name.len + 1;
    bool slashes;

    *scheme = &tcp_default;
    if (!colon || name.len == 0)
        return 0;
    for (size_t i = 0; i < name.len; i++)
        if (!((name.p[i] | 0x20) >= 'a' && (name.p[i] | 0x20) <= 'z'))
            return 0;
    slashes = rest->len >= after + 2 && rest->p[after] == '/' && rest->p[after + 1] == '/';
    *scheme = find_scheme(name);
    if (*scheme && (*scheme)->is_unix) {
        *rest = (struct span){rest->p + after, rest->len - after};
        return 0;
    }
    if (!slashes) {
        *scheme = &tcp_default; /* "localhost:http" */
        return 0;
    }
    if (!*scheme)
        return FAIL(ps, GN_EBADADDR,
                    "unknown scheme '" SPAN_FMT "' (expected tcp, udp, tls, unix or unixgram)",
                    SPAN_ARG(name));
    *rest = (struct span){rest->p + after + 2, rest->len - after - 2};
    return 0;
}

static int parse_all(struct parser *ps, gn_endpoint *ep)
{
    struct span rest = {ps->input, ps->input_len};
    const struct scheme *scheme;
    int rc;

    if (ps->input_len == 0)
        return FAIL(ps, GN_EBADADDR, "empty address");
    if (ps->input_len > GN_ADDRESS_MAX)
        return FAIL(ps, GN_ETOOLONG, "address longer than the %d bytes allowed", GN_ADDRESS_MAX);
    rc = check_bytes(ps);
    if (rc < 0)
        return rc;
    rc = split_scheme(ps, &rest, &scheme);
    if (rc < 0)
        return rc;
    ep->transport_ = scheme->transport;
    if (scheme->is_unix)
        return parse_unix(ps, rest, ep);
    return parse_host_port(ps, rest, ep);
}

int gn_endpoint_parse_len(const char *text, size_t len, unsigned flags, gn_endpoint *out,
                          char *errbuf, size_t errlen)
{
    struct parser ps = {text, len, flags, errbuf, errlen};
    gn_endpoint ep;
    int rc;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!out || (!text && len > 0))
        return gn__errbuf_input(errbuf, errlen, GN_EINVAL, "", 0, "%s",
                                out ? "text is NULL" : "out is NULL");
    if (flags & ~(unsigned)GN_PARSE_LISTEN)
        return FAIL(&ps, GN_EINVAL, "unknown parse flags 0x%x", flags);
    memset(&ep, 0, sizeof(ep));
    rc = parse_all(&ps, &ep);
    if (rc < 0)
        return rc;
    *out = ep;
    return 0;
}

int gn_endpoint_parse(const char *text, unsigned flags, gn_endpoint *out, char *errbuf,
                      size_t errlen)
{
    size_t len;

    if (!text)
        return gn_endpoint_parse_len(NULL, 1, flags, out, errbuf, errlen);
    /* Look no further than one byte past the longest address accepted, so a
     * huge unterminated buffer is not scanned end to end. */
    len = strnlen(text, GN_ADDRESS_MAX + 1);
    return gn_endpoint_parse_len(text, len, flags, out, errbuf, errlen);
}
