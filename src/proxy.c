/*
 * Proxy URLs, and the tunnel engine that runs a proxy protocol's steps
 * (proxy_socks5.c, proxy_http.c) on a socket connected to the proxy.
 *
 * The engine reads no byte past the proxy's answer: a target that
 * speaks first (a banner, an SMTP greeting) may send right behind it, and
 * those bytes belong to the connection.  So it peeks, asks the protocol
 * where the answer ends, and takes only that much off the socket.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "faults.h"
#include "proxy_proto.h"

#define DEFAULT_PORT "1080" /* curl's default for every kind of proxy */

/* ---- URLs ---------------------------------------------------------------- */

/* The URL for messages, its password (if any) shown as "***". */
static int url_fail(const char *url, char *errbuf, size_t errlen, const char *why)
{
    char shown[GN_ADDRESS_MAX + 8];
    const char *scheme_end = strstr(url, "://");
    const char *start = scheme_end ? scheme_end + 3 : url;
    const char *at = strrchr(start, '@');
    const char *colon = at ? memchr(start, ':', (size_t)(at - start)) : NULL;

    if (colon)
        snprintf(shown, sizeof(shown), "%.*s***%s", (int)(colon + 1 - url), url, at);
    else
        snprintf(shown, sizeof(shown), "%s", url);
    return gn__errbuf_input(errbuf, errlen, GN_EINVAL, shown, strlen(shown), "proxy URL: %s", why);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode in[0..len) into out (GN__PROXY_CRED_MAX + 1 bytes):
 * NULL, or the reason it cannot be. */
static const char *decode_cred(const char *in, size_t len, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i];
        if (c == '%') {
            if (i + 2 >= len || hex_digit(in[i + 1]) < 0 || hex_digit(in[i + 2]) < 0)
                return "a '%' in the user or password is not followed by two hex digits";
            c = hex_digit(in[i + 1]) * 16 + hex_digit(in[i + 2]);
            i += 2;
            if (c == 0)
                return "the user or password holds %00";
        }
        if (o == GN__PROXY_CRED_MAX)
            return "the user or password is longer than 255 bytes";
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return NULL;
}

static const char *parse_scheme(const char *url, struct gn__proxy *out, const char **rest)
{
    static const struct {
        const char *prefix;
        enum gn__proxy_kind kind;
    } schemes[] = {
        {"socks5://", GN__PROXY_SOCKS5},
        {"socks5h://", GN__PROXY_SOCKS5H},
        {"http://", GN__PROXY_HTTP},
    };

    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t n = strlen(schemes[i].prefix);
        if (strncasecmp(url, schemes[i].prefix, n) == 0) {
            out->kind = schemes[i].kind;
            *rest = url + n;
            return NULL;
        }
    }
    if (strncasecmp(url, "https://", 8) == 0)
        return "an HTTPS proxy (TLS to the proxy) is not supported: use http:// (a tls:// "
               "target still gets TLS end to end)";
    if (!strstr(url, "://"))
        return "no scheme: start it with socks5://, socks5h:// or http://";
    return "unknown scheme: use socks5://, socks5h:// or http://";
}

static const char *parse_user(const char *auth, size_t len, struct gn__proxy *out)
{
    const char *colon = memchr(auth, ':', len);
    size_t ulen = colon ? (size_t)(colon - auth) : len;
    const char *why = decode_cred(auth, ulen, out->user);

    if (!why)
        why = colon ? decode_cred(colon + 1, len - ulen - 1, out->pass) : NULL;
    if (!why && !out->user[0])
        why = "the user before '@' is empty";
    out->has_user = !why;
    return why;
}

/* host[:port] (IPv6 in brackets) into out->server, port 1080 by default. */
static int parse_server(const char *url, const char *host, size_t len, struct gn__proxy *out,
                        char *errbuf, size_t errlen)
{
    const char *close = len && host[0] == '[' ? memchr(host, ']', len) : NULL;
    const char *after = close ? close + 1 : host;
    bool has_port = memchr(after, ':', len - (size_t)(after - host)) != NULL;
    char text[GN_ADDRESS_MAX + 16], why[GN_ERRBUF_SIZE];
    int n;

    if (len == 0 || (len == 1 && host[0] == ':'))
        return url_fail(url, errbuf, errlen, "no host");
    n = snprintf(text, sizeof(text), "tcp://%.*s%s", (int)len, host,
                 has_port ? "" : ":" DEFAULT_PORT);
    if (n < 0 || (size_t)n >= sizeof(text))
        return url_fail(url, errbuf, errlen, "too long");
    if (gn_endpoint_parse(text, 0, &out->server, why, sizeof(why)) < 0 ||
        gn_endpoint_port(&out->server) == 0) {
        char reason[GN_ERRBUF_SIZE + 32];
        snprintf(reason, sizeof(reason), "the proxy's host and port: %s", why[0] ? why : "port 0");
        return url_fail(url, errbuf, errlen, reason);
    }
    return 0;
}

int gn__proxy_parse(const char *url, struct gn__proxy *out, char *errbuf, size_t errlen)
{
    static const char *const kinds[] = {"socks5", "socks5h", "http"};
    const char *rest, *end, *at, *why;
    char server[GN_ENDPOINT_STRLEN];
    int rc;

    memset(out, 0, sizeof(*out));
    if (strlen(url) > GN_ADDRESS_MAX)
        return url_fail(url, errbuf, errlen, "too long");
    why = parse_scheme(url, out, &rest);
    if (why)
        return url_fail(url, errbuf, errlen, why);
    end = rest + strcspn(rest, "/?#");
    if (*end && strcmp(end, "/") != 0)
        return url_fail(url, errbuf, errlen, "a proxy URL has no path, query or fragment");
    at = memchr(rest, '@', (size_t)(end - rest));
    for (const char *p = at ? at + 1 : NULL; p && p < end; p++)
        if (*p == '@')
            at = p; /* the last '@': an unescaped one in the password */
    why = at ? parse_user(rest, (size_t)(at - rest), out) : NULL;
    if (why)
        return url_fail(url, errbuf, errlen, why);
    rest = at ? at + 1 : rest;
    rc = parse_server(url, rest, (size_t)(end - rest), out, errbuf, errlen);
    if (rc < 0)
        return rc;
    gn_endpoint_format(&out->server, server, sizeof(server));
    snprintf(out->text, sizeof(out->text), "%s proxy %s", kinds[out->kind], server);
    return 0;
}

/* ---- the tunnel engine --------------------------------------------------- */

static void tunnel_finish(struct gn__tunnel *t, int rc)
{
    gn__io_watch(t->loop, &t->io, 0);
    if (rc < 0 && !t->error[0])
        snprintf(t->error, sizeof(t->error), "%s: %s", t->proto->name, gn_strerror(rc));
    t->done(t->arg, rc, rc < 0 ? t->error : ""); /* may free t */
}

static void io_failed(struct gn__tunnel *t, const char *what, int rc)
{
    snprintf(t->error, sizeof(t->error), "%s: %s the proxy: %s", t->proto->name, what,
             gn_strerror(rc));
    tunnel_finish(t, rc);
}

static void send_request(struct gn__tunnel *t)
{
    /* Not gn__send: an injected short write would split a request of a
     * few bytes that a real network carries in one segment, and proxies
     * such as microsocks read each request with one recv. */
    while (t->out_sent < t->out_len) {
        ssize_t n = send(t->io.fd, t->out + t->out_sent, t->out_len - t->out_sent, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return; /* writable again later */
        if (n < 0) {
            io_failed(t, "cannot send to", gn_error_from_errno(errno));
            return;
        }
        t->out_sent += (size_t)n;
    }
    t->in_len = 0;
    if (gn__io_watch(t->loop, &t->io, GN__READ) < 0)
        io_failed(t, "cannot wait for", GN_ESYS);
}

/* A receive failed (code), or the proxy closed (0). */
static void tunnel_read_failed(struct gn__tunnel *t, int code)
{
    if (code < 0) {
        io_failed(t, "cannot receive from", code);
        return;
    }
    snprintf(t->error, sizeof(t->error), "%s: the proxy closed the connection", t->proto->name);
    tunnel_finish(t, GN_EPROXY);
}

/* The answer is complete: the next step, or the end. */
static void judge_reply(struct gn__tunnel *t, size_t len)
{
    int rc = t->proto->reply(t, len);

    if (rc != GN__TUNNEL_NEXT) {
        tunnel_finish(t, rc);
        return;
    }
    rc = t->proto->request(t);
    if (rc < 0) {
        tunnel_finish(t, rc);
        return;
    }
    t->out_sent = 0;
    if (gn__io_watch(t->loop, &t->io, GN__WRITE) < 0)
        io_failed(t, "cannot wait for", GN_ESYS);
}

/* Peek, find where the answer ends, take only that.  Each round takes
 * at least one byte or returns, so the loop ends; a short take (a
 * hostile network, faults.h) is peeked again. */
static void read_reply(struct gn__tunnel *t)
{
    for (;;) {
        size_t old = t->in_len, want;
        ssize_t n = gn__recv(t->io.fd, t->in + old, sizeof(t->in) - old, MSG_PEEK);
        long end;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            tunnel_read_failed(t, n < 0 ? gn_error_from_errno(errno) : 0);
            return;
        }
        t->in_len = old + (size_t)n;
        end = t->proto->reply_end(t);
        if (end < 0) {
            tunnel_finish(t, (int)end);
            return;
        }
        want = end > 0 ? (size_t)end - old : (size_t)n;
        n = gn__recv(t->io.fd, t->in + old, want, 0);
        t->in_len = old + (n > 0 ? (size_t)n : 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            tunnel_read_failed(t, n < 0 ? gn_error_from_errno(errno) : 0);
            return;
        }
        if (end > 0 && t->in_len == (size_t)end) {
            judge_reply(t, (size_t)end);
            return;
        }
    }
}

static void on_tunnel_io(gn_loop *loop, struct gn__io *io, unsigned events)
{
    struct gn__tunnel *t = gn__container_of(io, struct gn__tunnel, io);

    (void)loop;
    (void)events;
    if (t->out_sent < t->out_len)
        send_request(t);
    else
        read_reply(t);
}

int gn__tunnel_start(gn_loop *loop, int fd, const struct gn__proxy *proxy,
                     const gn_endpoint *target, gn__tunnel_fn done, void *arg,
                     struct gn__tunnel **out)
{
    struct gn__tunnel *t = calloc(1, sizeof(*t));
    int rc;

    if (!t)
        return GN_ENOMEM;
    t->io = (struct gn__io){.fd = fd, .cb = on_tunnel_io};
    t->loop = loop;
    t->proto = proxy->kind == GN__PROXY_HTTP ? &gn__proxy_http : &gn__proxy_socks5;
    t->proxy = proxy;
    t->target = *target;
    t->done = done;
    t->arg = arg;
    rc = t->proto->request(t);
    if (rc == 0)
        rc = gn__io_watch(loop, &t->io, GN__WRITE);
    if (rc < 0) {
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static void tunnel_release(gn_loop *loop, struct gn__deferred *d)
{
    (void)loop;
    free(gn__container_of(d, struct gn__tunnel, free_later));
}

void gn__tunnel_free(struct gn__tunnel *t)
{
    if (!t)
        return;
    gn__io_watch(t->loop, &t->io, 0);
    /* Its io may still sit in this batch of events: free after it. */
    t->free_later.fn = tunnel_release;
    gn__loop_defer(t->loop, &t->free_later);
}

const char *gn__tunnel_stage(const struct gn__tunnel *t)
{
    return t->proto->stage;
}
