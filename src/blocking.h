/*
 * Blocking connections (blocking.c), for gn_dial and the threaded
 * server.  Never installed.
 */
#ifndef GN_BLOCKING_H
#define GN_BLOCKING_H

#include "conn.h"

/* Blocking mode (blocking.c). */
/* A blocking connection around connected, non-blocking fd (options set,
 * endpoints read); on failure fd is left open for the caller. */
int gn__blocking_conn_new(int fd, gn_transport kind, gn_server *srv, const gn_options *opts,
                          gn_conn **out);
void gn__blocking_conn_free(gn_conn *conn);
struct gn__tls_config;
/* A threaded server's TLS handshake, within the configured timeout. */
int gn__blocking_tls_accept(gn_conn *conn, struct gn__tls_config *cfg);

#endif
