/*
 * Reconnecting clients (reconnect.c): the chain of connections one
 * gn_connect with gn_options.reconnect makes to one address, and the
 * backoff between them.  The client (client.c) drives its connections
 * and tells the chain what happened; the chain makes each successor and
 * starts it through the client's hooks.  Never installed.
 */
#ifndef GN_RECONNECT_H
#define GN_RECONNECT_H

#include "conn.h"

struct gn__reconnect;

/* What the chain needs of the client, which it never names. */
struct gn__reconnect_hooks {
    const struct gn__conn_owner *owner;
    /* Start connecting conn to ep, with the client's start data (the
     * chain's copy, NULL if none): 0, or a code (then conn is failed). */
    int (*start)(gn_conn *conn, const gn_endpoint *ep, const void *data);
    void (*close_handle)(struct gn__handle *h); /* gn_loop_free's */
};

/*
 * gn__reconnect_new - a chain to ep (address as the user wrote it) under
 * opts (resolved; its reconnect and tls are read here, not kept).  A TLS
 * configuration is made once for every connection of the chain, and a
 * copy of the client's start data (data_len bytes; NULL for none: a
 * proxy, say) is handed to every start.
 * 0, GN_EINVAL (a backoff value out of range; errbuf says which),
 * GN_ENOMEM, or a TLS configuration error.
 */
int gn__reconnect_new(const gn_options *opts, uint32_t user_connect_timeout_ms,
                      const gn_endpoint *ep, const char *address, const void *data,
                      size_t data_len, const struct gn__reconnect_hooks *hooks,
                      struct gn__reconnect **out, char *errbuf, size_t errlen);
/* Free a chain no connection holds (gn_connect's failure path). */
void gn__reconnect_free(struct gn__reconnect *r);
/* conn (the first of the chain) joins it: its TLS and its attempt's
 * time limit.  0 or GN_ENOMEM; on failure r stays the caller's. */
int gn__reconnect_attach(struct gn__reconnect *r, gn_conn *conn);

/* Events of the client: conn's attempt started, it connected (ready for
 * the user), it closed (before on_close), it is gone (after on_close:
 * the successor, if any, is made here). */
void gn__reconnect_started(gn_conn *conn);
void gn__reconnect_connected(gn_conn *conn);
void gn__reconnect_closing(gn_conn *conn);
void gn__reconnect_gone(gn_conn *conn);

#endif
