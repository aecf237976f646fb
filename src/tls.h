/*
 * TLS over a stream socket (tls.c), with OpenSSL 3.  Never installed.
 *
 * A configuration (certificate, trust, ALPN, names) is made once per
 * server, or per client connection, and every TLS connection gets an SSL
 * object that talks to the socket through two memory BIOs, so the
 * connection core keeps doing its own non-blocking I/O and back-pressure.
 */
#ifndef GN_TLS_H
#define GN_TLS_H

#include "conn.h"

struct gn__tls_config;

extern const struct gn__transport gn__transport_tls;

/*
 * gn__tls_config_new - a configuration from opts (NULL: defaults) for a
 * server or for a client of target.  Errors name the file or setting at
 * fault in errbuf (prefixed by address).
 */
int gn__tls_config_new(const gn_tls_options *opts, bool server, const gn_endpoint *target,
                       const char *address, struct gn__tls_config **out, char *errbuf,
                       size_t errlen);
void gn__tls_config_free(struct gn__tls_config *cfg);
uint32_t gn__tls_handshake_ms(const struct gn__tls_config *cfg);

/* Make conn a TLS connection under cfg (owned by conn when owns). */
int gn__tls_attach(gn_conn *conn, struct gn__tls_config *cfg, bool owns);
/* A client's own configuration, for target, attached to conn. */
int gn__tls_client_attach(gn_conn *conn, const gn_tls_options *opts, const gn_endpoint *target,
                          const char *address, char *errbuf, size_t errlen);
uint32_t gn__tls_conn_handshake_ms(const gn_conn *conn);
/* Free conn's TLS state; safe when there is none. */
void gn__tls_detach(gn_conn *conn);
/* Send close_notify as a goodbye, without waiting (blocking mode). */
void gn__tls_goodbye(gn_conn *conn);

#endif
