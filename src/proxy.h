/*
 * Proxies (proxy.c): a client reaches its target through a SOCKS5 proxy
 * (RFC 1928, with RFC 1929's username and password) or an HTTP proxy's
 * CONNECT tunnel (RFC 9110 section 9.3.6, Basic auth).  The client
 * connects to the proxy as to any host; then the tunnel's handshake runs
 * on that socket, and only when the proxy has opened the way does the
 * connection become ready (or start its TLS handshake, with the final
 * host's name).  Never installed.
 */
#ifndef GN_PROXY_H
#define GN_PROXY_H

#include "loop.h"

enum gn__proxy_kind {
    GN__PROXY_SOCKS5,  /* socks5://: the target's name resolved here */
    GN__PROXY_SOCKS5H, /* socks5h://: the name sent, resolved by the proxy */
    GN__PROXY_HTTP,    /* http://: CONNECT host:port */
};

/* RFC 1929 caps both at 255 bytes; HTTP Basic takes the same cap. */
#define GN__PROXY_CRED_MAX 255

/* A parsed proxy URL: what the client keeps of gn_options.proxy. */
struct gn__proxy {
    enum gn__proxy_kind kind;
    gn_endpoint server; /* tcp://host:port of the proxy */
    bool has_user;
    char user[GN__PROXY_CRED_MAX + 1];
    char pass[GN__PROXY_CRED_MAX + 1];
    char text[GN_ENDPOINT_STRLEN + 16]; /* "socks5h proxy 127.0.0.1:1080", for
                                           messages: never the password */
};

/*
 * gn__proxy_parse - url ("socks5h://user:pass@host:1080", "http://host:3128";
 * user and pass percent-decoded; the port 1080 by default, as curl's)
 * into *out.  0, or GN_EINVAL with errbuf naming the URL and the fault.
 */
int gn__proxy_parse(const char *url, struct gn__proxy *out, char *errbuf, size_t errlen);

/* Whether the proxy wants the target as an address (socks5://): the
 * client resolves the name first. */
static inline bool gn__proxy_resolves_here(const struct gn__proxy *p)
{
    return p->kind == GN__PROXY_SOCKS5;
}

/*
 * The tunnel handshake on a socket connected to the proxy: the request
 * for target (a name, or an address), the proxy's answers, until the
 * proxy relays bytes to the target.  Non-blocking, on loop; the deadline
 * is the caller's.  done runs once, from the loop, with 0 or a code and
 * a message ("SOCKS5: connection refused by the proxy's target") that
 * lives only during the call; the tunnel no longer watches fd then, and
 * not one byte past the proxy's answer has been read.  The caller owns
 * fd throughout and frees the tunnel (in done or before) with
 * gn__tunnel_free, which never calls done.
 */
struct gn__tunnel;
typedef void (*gn__tunnel_fn)(void *arg, int rc, const char *message);
int gn__tunnel_start(gn_loop *loop, int fd, const struct gn__proxy *proxy,
                     const gn_endpoint *target, gn__tunnel_fn done, void *arg,
                     struct gn__tunnel **out);
void gn__tunnel_free(struct gn__tunnel *t);
/* "SOCKS5 handshake", "HTTP CONNECT": the stage, for a timeout's message. */
const char *gn__tunnel_stage(const struct gn__tunnel *t);

#endif
