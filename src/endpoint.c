/*
 * Endpoints as values: formatting, comparing, converting from socket
 * addresses, and the accessors.  The parser lives in endpoint_parse.c.
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "internal.h"

#define SUN_PATH_OFFSET offsetof(struct sockaddr_un, sun_path)

static const char *const transport_names[] = {
    [GN_TRANSPORT_NONE] = "none", [GN_TRANSPORT_TCP] = "tcp",
    [GN_TRANSPORT_UDP] = "udp",   [GN_TRANSPORT_TLS] = "tls",
    [GN_TRANSPORT_UNIX] = "unix", [GN_TRANSPORT_UNIXGRAM] = "unixgram",
};

static const char *const family_names[] = {
    [GN_FAMILY_NONE] = "none", [GN_FAMILY_IPV4] = "ipv4", [GN_FAMILY_IPV6] = "ipv6",
    [GN_FAMILY_UNIX] = "unix", [GN_FAMILY_NAME] = "name", [GN_FAMILY_ANY] = "any",
};

const char *gn_transport_name(gn_transport transport)
{
    if ((unsigned)transport >= sizeof(transport_names) / sizeof(transport_names[0]))
        return "unknown";
    return transport_names[transport];
}

const char *gn_endpoint_family_name(gn_family family)
{
    if ((unsigned)family >= sizeof(family_names) / sizeof(family_names[0]))
        return "none";
    return family_names[family];
}

static bool transport_is_unix(gn_transport transport)
{
    return transport == GN_TRANSPORT_UNIX || transport == GN_TRANSPORT_UNIXGRAM;
}

bool gn__endpoint_valid(const gn_endpoint *ep)
{
    if (!ep || ep->transport_ <= GN_TRANSPORT_NONE || ep->transport_ > GN_TRANSPORT_UNIXGRAM)
        return false;
    switch (ep->family_) {
    case GN_FAMILY_IPV4:
        return !transport_is_unix(ep->transport_) && ep->addr_.ss_family == AF_INET &&
               ep->addrlen_ == sizeof(struct sockaddr_in);
    case GN_FAMILY_IPV6:
        return !transport_is_unix(ep->transport_) && ep->addr_.ss_family == AF_INET6 &&
               ep->addrlen_ == sizeof(struct sockaddr_in6);
    case GN_FAMILY_UNIX:
        return transport_is_unix(ep->transport_) && ep->addr_.ss_family == AF_UNIX &&
               ep->addrlen_ >= SUN_PATH_OFFSET && ep->addrlen_ <= sizeof(struct sockaddr_un);
    case GN_FAMILY_NAME:
        return !transport_is_unix(ep->transport_) && ep->host_[0] != '\0' &&
               memchr(ep->host_, '\0', sizeof(ep->host_)) != NULL;
    case GN_FAMILY_ANY:
        return !transport_is_unix(ep->transport_);
    default:
        return false;
    }
}

void gn__endpoint_set_port(gn_endpoint *ep, uint16_t port)
{
    ep->port_ = port;
    if (ep->family_ == GN_FAMILY_IPV4)
        ((struct sockaddr_in *)&ep->addr_)->sin_port = htons(port);
    else if (ep->family_ == GN_FAMILY_IPV6)
        ((struct sockaddr_in6 *)&ep->addr_)->sin6_port = htons(port);
}

/* ---- formatting ----------------------------------------------------- */

/* Copies text into buf the way snprintf would, with GN_ENOSPC for a cut. */
static int copy_out(const char *text, size_t n, char *buf, size_t len)
{
    if (len > 0) {
        size_t copy = n < len ? n : len - 1;
        memcpy(buf, text, copy);
        buf[copy] = '\0';
    }
    return n < len ? (int)n : GN_ENOSPC;
}

static size_t format_scope(uint32_t scope_id, char *buf, size_t len)
{
    char name[IF_NAMESIZE];

    /* A name reads better and parses back to the same index while the
     * interface exists; the number is the fallback that always works. */
    if (if_indextoname(scope_id, name))
        return (size_t)snprintf(buf, len, "%%%s", name);
    return (size_t)snprintf(buf, len, "%%%u", (unsigned)scope_id);
}

/* The address without port or brackets; returns its length. */
static size_t format_host(const gn_endpoint *ep, char *buf, size_t len)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ep->addr_;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&ep->addr_;
    size_t n;

    switch (ep->family_) {
    case GN_FAMILY_IPV4:
        inet_ntop(AF_INET, &sin->sin_addr, buf, (socklen_t)len);
        return strlen(buf);
    case GN_FAMILY_IPV6:
        inet_ntop(AF_INET6, &sin6->sin6_addr, buf, (socklen_t)len);
        n = strlen(buf);
        if (sin6->sin6_scope_id)
            n += format_scope(sin6->sin6_scope_id, buf + n, len - n);
        return n;
    case GN_FAMILY_NAME:
        return (size_t)snprintf(buf, len, "%s", ep->host_);
    default:
        buf[0] = '\0';
        return 0;
    }
}

/* Bytes that would not survive the parser (space, control, '%', and a
 * leading '@' that would turn a path into an abstract name) become %XX. */
static bool needs_escape(unsigned char c, size_t pos)
{
    return c <= 0x20 || c == 0x7f || c == '%' || (pos == 0 && c == '@');
}

static size_t format_path(const gn_endpoint *ep, char *buf, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t path_len, o = 0;
    const char *path = gn_endpoint_path(ep, &path_len);

    if (gn_endpoint_is_abstract(ep))
        buf[o++] = '@';
    for (size_t i = 0; i < path_len && o + 4 < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (needs_escape(c, i) && !(c == '@' && gn_endpoint_is_abstract(ep))) {
            buf[o++] = '%';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o] = '\0';
    return o;
}

/* A TCP host named like a Unix scheme ("unix:7000") would parse back as a
 * Unix path, so such a host keeps its explicit "tcp://". */
static bool host_looks_like_scheme(const char *host)
{
    return strcasecmp(host, "unix") == 0 || strcasecmp(host, "unixgram") == 0;
}

static const char *scheme_prefix(gn_transport transport, const char *host)
{
    switch (transport) {
    case GN_TRANSPORT_UDP:
        return "udp://";
    case GN_TRANSPORT_TLS:
        return "tls://";
    case GN_TRANSPORT_UNIX:
        return "unix:";
    case GN_TRANSPORT_UNIXGRAM:
        return "unixgram:";
    default:
        /* TCP is what an address without a scheme means */
        return host_looks_like_scheme(host) ? "tcp://" : "";
    }
}

int gn_endpoint_format(const gn_endpoint *ep, char *buf, size_t len)
{
    char text[GN_ENDPOINT_STRLEN], host[GN_HOST_MAX + IF_NAMESIZE + 2];
    size_t n;

    if (!gn__endpoint_valid(ep) || (!buf && len > 0))
        return GN_EINVAL;
    if (ep->family_ == GN_FAMILY_UNIX) {
        n = (size_t)snprintf(text, sizeof(text), "%s", scheme_prefix(ep->transport_, ""));
        n += format_path(ep, text + n, sizeof(text) - n);
    } else {
        format_host(ep, host, sizeof(host));
        n = (size_t)snprintf(text, sizeof(text), "%s", scheme_prefix(ep->transport_, host));
        n += (size_t)snprintf(text + n, sizeof(text) - n,
                              ep->family_ == GN_FAMILY_IPV6 ? "[%s]:%u" : "%s:%u", host,
                              (unsigned)ep->port_);
    }
    return copy_out(text, n, buf, len);
}

int gn_endpoint_host(const gn_endpoint *ep, char *buf, size_t len)
{
    char host[GN_HOST_MAX + IF_NAMESIZE + 2];
    size_t n;

    if (!gn__endpoint_valid(ep) || (!buf && len > 0))
        return GN_EINVAL;
    n = format_host(ep, host, sizeof(host));
    return copy_out(host, n, buf, len);
}

/* ---- comparing ------------------------------------------------------ */

static bool same_address(const gn_endpoint *a, const gn_endpoint *b)
{
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&a->addr_;
    const struct sockaddr_in6 *b6 = (const struct sockaddr_in6 *)&b->addr_;
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)&a->addr_;
    const struct sockaddr_in *b4 = (const struct sockaddr_in *)&b->addr_;
    const struct sockaddr_un *au = (const struct sockaddr_un *)&a->addr_;
    const struct sockaddr_un *bu = (const struct sockaddr_un *)&b->addr_;

    switch (a->family_) {
    case GN_FAMILY_IPV4:
        return a4->sin_addr.s_addr == b4->sin_addr.s_addr;
    case GN_FAMILY_IPV6:
        return memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof(a6->sin6_addr)) == 0 &&
               a6->sin6_scope_id == b6->sin6_scope_id;
    case GN_FAMILY_UNIX:
        return a->addrlen_ == b->addrlen_ &&
               memcmp(au->sun_path, bu->sun_path, a->addrlen_ - SUN_PATH_OFFSET) == 0;
    case GN_FAMILY_NAME:
        return strcasecmp(a->host_, b->host_) == 0;
    default:
        return true;
    }
}

bool gn_endpoint_equal(const gn_endpoint *a, const gn_endpoint *b)
{
    if (!a || !b)
        return a == b;
    if (!gn__endpoint_valid(a) || !gn__endpoint_valid(b))
        return false;
    return a->transport_ == b->transport_ && a->family_ == b->family_ && a->port_ == b->port_ &&
           same_address(a, b);
}

/* ---- from socket addresses ------------------------------------------ */

/* An IPv4 peer of a dual-stack IPv6 socket shows up as ::ffff:a.b.c.d;
 * people and equality both expect plain a.b.c.d. */
static void unmap_v4(gn_endpoint *ep)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ep->addr_;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = sin6->sin6_port};

    if (!IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
        return;
    memcpy(&sin.sin_addr, sin6->sin6_addr.s6_addr + 12, 4);
    memset(&ep->addr_, 0, sizeof(ep->addr_));
    memcpy(&ep->addr_, &sin, sizeof(sin));
    ep->addrlen_ = sizeof(sin);
    ep->family_ = GN_FAMILY_IPV4;
}

/* Kernels report path lengths with or without the NUL, and with trailing
 * garbage on some systems; keep the path up to its NUL, as the parser does. */
static void from_sockaddr_un(const struct sockaddr_un *sun, socklen_t len, gn_endpoint *ep)
{
    size_t path_max = len - SUN_PATH_OFFSET;
    struct sockaddr_un *dst = (struct sockaddr_un *)&ep->addr_;

    memcpy(dst, sun, len);
    ep->family_ = GN_FAMILY_UNIX;
    if (path_max == 0 || sun->sun_path[0] == '\0') {
        ep->addrlen_ = len; /* unnamed, or abstract: every byte counts */
        return;
    }
    path_max = strnlen(sun->sun_path, path_max);
    if (path_max == sizeof(dst->sun_path))
        path_max--; /* no room for the NUL: keep 107 bytes, as parse allows */
    dst->sun_path[path_max] = '\0';
    ep->addrlen_ = (socklen_t)(SUN_PATH_OFFSET + path_max + 1);
}

static int check_family_fits(int family, socklen_t len, gn_transport transport)
{
    bool unix_transport = transport_is_unix(transport);

    if (transport <= GN_TRANSPORT_NONE || transport > GN_TRANSPORT_UNIXGRAM)
        return GN_EINVAL;
    if (family == AF_INET)
        return unix_transport ? GN_EFAMILY : len < sizeof(struct sockaddr_in) ? GN_EINVAL : 0;
    if (family == AF_INET6)
        return unix_transport ? GN_EFAMILY : len < sizeof(struct sockaddr_in6) ? GN_EINVAL : 0;
    if (family == AF_UNIX)
        return !unix_transport ? GN_EFAMILY : len > sizeof(struct sockaddr_un) ? GN_EINVAL : 0;
    return GN_EFAMILY;
}

int gn_endpoint_from_sockaddr(const struct sockaddr *sa, socklen_t len, gn_transport transport,
                              gn_endpoint *out)
{
    gn_endpoint ep;
    int rc;

    if (!sa || !out || len < (socklen_t)sizeof(sa_family_t))
        return GN_EINVAL;
    rc = check_family_fits(sa->sa_family, len, transport);
    if (rc < 0)
        return rc;
    memset(&ep, 0, sizeof(ep));
    ep.transport_ = transport;
    if (sa->sa_family == AF_UNIX) {
        from_sockaddr_un((const struct sockaddr_un *)sa, len, &ep);
    } else {
        ep.family_ = sa->sa_family == AF_INET ? GN_FAMILY_IPV4 : GN_FAMILY_IPV6;
        ep.addrlen_ =
            sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        memcpy(&ep.addr_, sa, ep.addrlen_);
        if (ep.family_ == GN_FAMILY_IPV6) {
            ((struct sockaddr_in6 *)&ep.addr_)->sin6_flowinfo = 0;
            unmap_v4(&ep);
        }
        ep.port_ = ntohs(((const struct sockaddr_in *)&ep.addr_)->sin_port);
    }
    *out = ep;
    return 0;
}

/* ---- accessors ------------------------------------------------------ */

gn_transport gn_endpoint_transport(const gn_endpoint *ep)
{
    return gn__endpoint_valid(ep) ? ep->transport_ : GN_TRANSPORT_NONE;
}

gn_family gn_endpoint_family(const gn_endpoint *ep)
{
    return gn__endpoint_valid(ep) ? ep->family_ : GN_FAMILY_NONE;
}

uint16_t gn_endpoint_port(const gn_endpoint *ep)
{
    return gn__endpoint_valid(ep) && ep->family_ != GN_FAMILY_UNIX ? ep->port_ : 0;
}

bool gn_endpoint_is_abstract(const gn_endpoint *ep)
{
    if (gn_endpoint_family(ep) != GN_FAMILY_UNIX)
        return false;
    return ep->addrlen_ > SUN_PATH_OFFSET &&
           ((const struct sockaddr_un *)&ep->addr_)->sun_path[0] == '\0';
}

const char *gn_endpoint_path(const gn_endpoint *ep, size_t *len)
{
    const struct sockaddr_un *sun;
    size_t n;

    if (len)
        *len = 0;
    if (gn_endpoint_family(ep) != GN_FAMILY_UNIX)
        return NULL;
    sun = (const struct sockaddr_un *)&ep->addr_;
    n = ep->addrlen_ - SUN_PATH_OFFSET;
    if (gn_endpoint_is_abstract(ep)) {
        if (len)
            *len = n - 1;
        return sun->sun_path + 1;
    }
    if (len)
        *len = strnlen(sun->sun_path, n);
    return sun->sun_path;
}

uint32_t gn_endpoint_scope_id(const gn_endpoint *ep)
{
    if (gn_endpoint_family(ep) != GN_FAMILY_IPV6)
        return 0;
    return ((const struct sockaddr_in6 *)&ep->addr_)->sin6_scope_id;
}

bool gn_endpoint_is_resolved(const gn_endpoint *ep)
{
    gn_family family = gn_endpoint_family(ep);

    return family == GN_FAMILY_IPV4 || family == GN_FAMILY_IPV6 || family == GN_FAMILY_UNIX;
}

const struct sockaddr *gn_endpoint_sockaddr(const gn_endpoint *ep, socklen_t *len)
{
    bool resolved = gn_endpoint_is_resolved(ep);

    if (len)
        *len = resolved ? ep->addrlen_ : 0;
    return resolved ? (const struct sockaddr *)&ep->addr_ : NULL;
}
