/*
 * An HTTP proxy's tunnel (RFC 9110 section 9.3.6), for the tunnel engine:
 * one CONNECT request, with Basic credentials (RFC 7617) when the URL
 * has them, and a 2xx answer opens the tunnel.  The target goes by name:
 * the proxy resolves it.
 */
#include <stdio.h>
#include <string.h>

#include "proxy_proto.h"

#define REASON_SHOWN 60 /* of the proxy's reason phrase, in a message */

/* Base64 (RFC 4648 section 4) of len bytes into out, NUL-terminated. */
static void base64(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;

    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = digits[(v >> 18) & 63];
        out[o++] = digits[(v >> 12) & 63];
        out[o++] = i + 1 < len ? digits[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? digits[v & 63] : '=';
    }
    out[o] = '\0';
}

/* "Proxy-Authorization: Basic ...\r\n", or "" without credentials. */
static void basic_auth(const struct gn__proxy *p, char *out, size_t size)
{
    unsigned char plain[2 * GN__PROXY_CRED_MAX + 2];
    char coded[sizeof(plain) / 3 * 4 + 8];
    int n;

    out[0] = '\0';
    if (!p->has_user)
        return;
    n = snprintf((char *)plain, sizeof(plain), "%s:%s", p->user, p->pass);
    base64(plain, (size_t)n, coded);
    snprintf(out, size, "Proxy-Authorization: Basic %s\r\n", coded);
}

static int http_request(struct gn__tunnel *t)
{
    char host[GN_HOST_MAX + 1], auth[GN__TUNNEL_OUT_MAX / 2 + 64], authority[GN_HOST_MAX + 16];
    int n;

    gn_endpoint_host(&t->target, host, sizeof(host));
    snprintf(authority, sizeof(authority), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
             (unsigned)gn_endpoint_port(&t->target));
    basic_auth(t->proxy, auth, sizeof(auth));
    n = snprintf((char *)t->out, sizeof(t->out), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n",
                 authority, authority, auth);
    if (n < 0 || (size_t)n >= sizeof(t->out)) {
        snprintf(t->error, sizeof(t->error), "HTTP proxy: the CONNECT request is too long");
        return GN_EINVAL;
    }
    t->out_len = (size_t)n;
    return 0;
}

/* The answer's head ends at its first empty line. */
static long http_reply_end(struct gn__tunnel *t)
{
    for (size_t i = 0; i + 1 < t->in_len; i++) {
        if (t->in[i] != '\n')
            continue;
        if (t->in[i + 1] == '\n')
            return (long)(i + 2);
        if (i + 2 < t->in_len && t->in[i + 1] == '\r' && t->in[i + 2] == '\n')
            return (long)(i + 3);
    }
    if (t->in_len == sizeof(t->in)) {
        snprintf(t->error, sizeof(t->error),
                 "HTTP proxy: the answer's headers are longer than %zu bytes", sizeof(t->in));
        return GN_EPROXY;
    }
    return 0;
}

/* "HTTP/1.1 407 Proxy Authentication Required": 2xx opens the tunnel;
 * anything else is reported with the proxy's own status line. */
static int http_reply(struct gn__tunnel *t, size_t len)
{
    const char *line = (const char *)t->in;
    unsigned status = 0;
    char reason[REASON_SHOWN + 1];
    size_t r = 0, i;

    if (len < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ' ||
        sscanf(line + 9, "%3u", &status) != 1 || status < 100) {
        snprintf(t->error, sizeof(t->error), "HTTP proxy: the answer is not HTTP/1.x");
        return GN_EPROXY;
    }
    if (status >= 200 && status < 300)
        return GN__TUNNEL_OPEN;
    i = line[12] == ' ' ? 13 : 12;
    for (; i < len && r < REASON_SHOWN && line[i] != '\r' && line[i] != '\n'; i++)
        reason[r++] = line[i] >= 0x20 && line[i] < 0x7f ? line[i] : '?';
    reason[r] = '\0';
    snprintf(t->error, sizeof(t->error), "HTTP proxy: %u%s%s", status, r ? " " : "", reason);
    return GN_EPROXY;
}

const struct gn__proxy_proto gn__proxy_http = {
    .name = "HTTP proxy",
    .stage = "HTTP CONNECT",
    .request = http_request,
    .reply_end = http_reply_end,
    .reply = http_reply,
};
