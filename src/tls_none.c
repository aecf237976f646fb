/*
 * TLS in a build without OpenSSL (the Windows build: Debian has no
 * OpenSSL for mingw-w64, docs/windows.md).  Every tls:// server or client
 * is refused with GN_ENOTSUP and a message saying why, at the call that
 * asked for it; nothing else changes.
 */
#include <string.h>

#include "internal.h"
#include "tls.h"

static const char no_tls[] =
    "TLS is not built into this gnezdo: the Windows build has no OpenSSL (docs/windows.md); "
    "use tcp:// here, or a TLS-terminating proxy";

const struct gn__transport gn__transport_tls = {0};

int gn__tls_config_new(const gn_tls_options *opts, bool server, const gn_endpoint *target,
                       const char *address, struct gn__tls_config **out, char *errbuf,
                       size_t errlen)
{
    (void)opts;
    (void)server;
    (void)target;
    *out = NULL;
    if (!address)
        address = "tls://";
    return gn__errbuf_input(errbuf, errlen, GN_ENOTSUP, address, strlen(address), "%s", no_tls);
}

void gn__tls_config_free(struct gn__tls_config *cfg)
{
    (void)cfg;
}

uint32_t gn__tls_handshake_ms(const struct gn__tls_config *cfg)
{
    (void)cfg;
    return 0;
}

int gn__tls_attach(gn_conn *conn, struct gn__tls_config *cfg, bool owns)
{
    (void)conn;
    (void)cfg;
    (void)owns;
    return GN_ENOTSUP;
}

int gn__tls_client_attach(gn_conn *conn, const gn_tls_options *opts, const gn_endpoint *target,
                          const char *address, char *errbuf, size_t errlen)
{
    struct gn__tls_config *cfg;

    (void)conn;
    return gn__tls_config_new(opts, false, target, address, &cfg, errbuf, errlen);
}

uint32_t gn__tls_conn_handshake_ms(const gn_conn *conn)
{
    (void)conn;
    return 0;
}

void gn__tls_detach(gn_conn *conn)
{
    (void)conn;
}

void gn__tls_goodbye(gn_conn *conn)
{
    (void)conn;
}

int gn_conn_get_tls_info(const gn_conn *conn, gn_tls_info *out)
{
    if (!conn || !out)
        return GN_EINVAL;
    return conn->kind == GN_TRANSPORT_TLS ? GN_ENOTSUP : GN_EFAMILY;
}
