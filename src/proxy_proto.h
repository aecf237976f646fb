/*
 * A proxy protocol as the tunnel engine (proxy.c) drives it: a few steps
 * of request and reply.  The protocol files (proxy_socks5.c,
 * proxy_http.c) only fill and read buffers; the engine does the I/O.
 * Never installed.
 */
#ifndef GN_PROXY_PROTO_H
#define GN_PROXY_PROTO_H

#include "proxy.h"

#define GN__TUNNEL_OUT_MAX 2048 /* CONNECT with a 255:255 Basic credential fits */
#define GN__TUNNEL_IN_MAX  4096 /* an HTTP proxy's answer headers */

struct gn__tunnel {
    struct gn__io io;
    gn_loop *loop;
    const struct gn__proxy_proto *proto;
    const struct gn__proxy *proxy;
    gn_endpoint target;
    unsigned step; /* the protocol's: which request is under way */
    unsigned char out[GN__TUNNEL_OUT_MAX];
    size_t out_len, out_sent;
    unsigned char in[GN__TUNNEL_IN_MAX];
    size_t in_len;
    gn__tunnel_fn done;
    void *arg;
    struct gn__deferred free_later;
    char error[GN_ERRBUF_SIZE];
};

/* What a reply said (gn__proxy_proto.reply). */
#define GN__TUNNEL_OPEN 0 /* the proxy relays now: done */
#define GN__TUNNEL_NEXT 1 /* send the next step's request */

struct gn__proxy_proto {
    const char *name;  /* "SOCKS5", the start of its messages */
    const char *stage; /* "SOCKS5 handshake", for messages */
    /* Fill t->out (t->out_len) with the request of t->step: 0 or a code
     * with t->error set. */
    int (*request)(struct gn__tunnel *t);
    /* The length of the reply at the start of t->in[0..in_len) when it
     * is all there, 0 while more must come, or a code with t->error set.
     * Never more than in_len: the engine reads no byte past the reply. */
    long (*reply_end)(struct gn__tunnel *t);
    /* Judge the complete reply of len bytes: GN__TUNNEL_OPEN,
     * GN__TUNNEL_NEXT, or a code with t->error set. */
    int (*reply)(struct gn__tunnel *t, size_t len);
};

extern const struct gn__proxy_proto gn__proxy_socks5;
extern const struct gn__proxy_proto gn__proxy_http;

#endif
