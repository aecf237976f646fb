/*
 * SOCKS5 (RFC 1928) with username and password (RFC 1929), for the
 * tunnel engine: greeting, optional sign-in, CONNECT.  The target goes
 * as a name when it is one (socks5h://: the proxy resolves it) or as an
 * address (socks5://, whose client resolved the name first).
 */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "proxy_proto.h"

enum { STEP_GREETING, STEP_SIGN_IN, STEP_CONNECT };

#define VERSION         5
#define SIGN_IN_VERSION 1 /* RFC 1929's sub-negotiation version */
#define METHOD_NONE     0x00
#define METHOD_PASSWORD 0x02
#define METHOD_REFUSED  0xff
#define CMD_CONNECT     1
#define ATYP_IPV4       1
#define ATYP_NAME       3
#define ATYP_IPV6       4

static int fail(struct gn__tunnel *t, int code, const char *what)
{
    snprintf(t->error, sizeof(t->error), "SOCKS5: %s", what);
    return code;
}

static size_t put_cred(unsigned char *p, const char *s)
{
    size_t n = strlen(s); /* at most GN__PROXY_CRED_MAX, checked when parsed */

    p[0] = (unsigned char)n;
    memcpy(p + 1, s, n);
    return n + 1;
}

static size_t put_target(unsigned char *p, const gn_endpoint *target)
{
    socklen_t len;
    const struct sockaddr *sa = gn_endpoint_sockaddr(target, &len);
    uint16_t port = gn_endpoint_port(target);
    size_t o = 0;

    if (sa && sa->sa_family == AF_INET) {
        p[o++] = ATYP_IPV4;
        memcpy(p + o, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        o += 4;
    } else if (sa && sa->sa_family == AF_INET6) {
        p[o++] = ATYP_IPV6;
        memcpy(p + o, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        o += 16;
    } else {
        char host[GN_HOST_MAX + 1];
        gn_endpoint_host(target, host, sizeof(host));
        p[o++] = ATYP_NAME;
        o += put_cred(p + o, host); /* a name is at most 253 bytes */
    }
    p[o++] = (unsigned char)(port >> 8);
    p[o++] = (unsigned char)port;
    return o;
}

static int socks5_request(struct gn__tunnel *t)
{
    unsigned char *p = t->out;
    size_t o = 0;

    switch (t->step) {
    case STEP_GREETING:
        p[o++] = VERSION;
        p[o++] = t->proxy->has_user ? 2 : 1;
        p[o++] = METHOD_NONE;
        if (t->proxy->has_user)
            p[o++] = METHOD_PASSWORD;
        break;
    case STEP_SIGN_IN:
        p[o++] = SIGN_IN_VERSION;
        o += put_cred(p + o, t->proxy->user);
        o += put_cred(p + o, t->proxy->pass);
        break;
    default:
        p[o++] = VERSION;
        p[o++] = CMD_CONNECT;
        p[o++] = 0;
        o += put_target(p + o, &t->target);
        break;
    }
    t->out_len = o;
    return 0;
}

/* Greeting and sign-in answers are two bytes; CONNECT's carries the
 * proxy's bound address, whose length its fourth byte tells. */
static long socks5_reply_end(struct gn__tunnel *t)
{
    size_t need;

    if (t->step != STEP_CONNECT)
        return t->in_len >= 2 ? 2 : 0;
    if (t->in_len < 5)
        return 0;
    if (t->in[0] != VERSION)
        return fail(t, GN_EPROXY, "the proxy's reply is not SOCKS version 5");
    switch (t->in[3]) {
    case ATYP_IPV4:
        need = 4 + 4 + 2;
        break;
    case ATYP_IPV6:
        need = 4 + 16 + 2;
        break;
    case ATYP_NAME:
        need = 4 + 1 + t->in[4] + 2;
        break;
    default:
        if (t->in[1] != 0)
            return 5; /* a refusal with no address to skip: judge it */
        return fail(t, GN_EPROXY, "the proxy's reply has an unknown address type");
    }
    return t->in_len >= need ? (long)need : 0;
}

static int greeting_reply(struct gn__tunnel *t)
{
    if (t->in[0] != VERSION)
        return fail(t, GN_EPROXY, "the proxy does not speak SOCKS version 5");
    if (t->in[1] == METHOD_NONE) {
        t->step = STEP_CONNECT;
        return GN__TUNNEL_NEXT;
    }
    if (t->in[1] == METHOD_PASSWORD && t->proxy->has_user) {
        t->step = STEP_SIGN_IN;
        return GN__TUNNEL_NEXT;
    }
    if (t->proxy->has_user)
        return fail(t, GN_EPROXY, "the proxy accepts none of our authentication methods");
    return fail(t, GN_EPROXY,
                "the proxy requires authentication: give user:password@ in the proxy URL");
}

/* RFC 1928 section 6's reply codes: what happened beyond the proxy maps
 * to the code a direct connection would have given. */
static int connect_reply(struct gn__tunnel *t)
{
    static const struct {
        int code;
        const char *text;
    } replies[] = {
        {0, ""},
        {GN_EPROXY, "general failure of the proxy"},
        {GN_EACCES, "connection not allowed by the proxy's rules"},
        {GN_EUNREACH, "network unreachable from the proxy"},
        {GN_EUNREACH, "the proxy's target host is unreachable"},
        {GN_ECONNREFUSED, "connection refused by the proxy's target"},
        {GN_ETIMEDOUT, "TTL expired on the way to the proxy's target"},
        {GN_EPROXY, "the proxy does not support CONNECT"},
        {GN_EPROXY, "the proxy does not support this address type"},
    };
    unsigned rep = t->in[1];
    char text[64];

    if (t->in[0] != VERSION)
        return fail(t, GN_EPROXY, "the proxy's reply is not SOCKS version 5");
    if (rep == 0)
        return GN__TUNNEL_OPEN;
    if (rep < sizeof(replies) / sizeof(replies[0]))
        return fail(t, replies[rep].code, replies[rep].text);
    snprintf(text, sizeof(text), "the proxy answered with unknown reply code %u", rep);
    return fail(t, GN_EPROXY, text);
}

static int socks5_reply(struct gn__tunnel *t, size_t len)
{
    (void)len;
    switch (t->step) {
    case STEP_GREETING:
        return greeting_reply(t);
    case STEP_SIGN_IN:
        if (t->in[1] != 0) /* RFC 1929: any other status is a failure */
            return fail(t, GN_EPROXY, "the proxy refused the username and password");
        t->step = STEP_CONNECT;
        return GN__TUNNEL_NEXT;
    default:
        return connect_reply(t);
    }
}

const struct gn__proxy_proto gn__proxy_socks5 = {
    .name = "SOCKS5",
    .stage = "SOCKS5 handshake",
    .request = socks5_request,
    .reply_end = socks5_reply_end,
    .reply = socks5_reply,
};
