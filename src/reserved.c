#include "reserved.h"

#include <stdio.h>

bool gn__zeroed(const void *p, size_t n)
{
    const unsigned char *byte = p;

    for (size_t i = 0; i < n; i++)
        if (byte[i])
            return false;
    return true;
}

int gn__reserved_error(const char *type, char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        snprintf(errbuf, errlen,
                 "%s: its reserved space is not zero: start the struct from {0} "
                 "(or it sets a field of a newer gnezdo than this %s)",
                 type, GN_VERSION_STRING);
    return GN_EINVAL;
}

int gn__options_reserved_clear(const gn_options *opts, char *errbuf, size_t errlen)
{
    if (!GN__RESERVED_CLEAR(opts))
        return gn__reserved_error("gn_options", errbuf, errlen);
    if (opts && !GN__RESERVED_CLEAR(opts->reconnect))
        return gn__reserved_error("gn_backoff", errbuf, errlen);
    if (opts && !GN__RESERVED_CLEAR(opts->tls))
        return gn__reserved_error("gn_tls_options", errbuf, errlen);
    return 0;
}
