/*
 * Blocking name resolution: a host name endpoint -> the socket addresses
 * it stands for.  The event loop runs this on a worker thread.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static int socktype_of(gn_transport transport)
{
    return transport == GN_TRANSPORT_UDP ? SOCK_DGRAM : SOCK_STREAM;
}

static int gai_error(int gai_rc, int saved_errno, const char *host, char *errbuf, size_t errlen)
{
    const char *what = host[0] ? host : "(any)";
    size_t what_len = strlen(what);
    int code;

    switch (gai_rc) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
        code = GN_ENONAME;
        break;
    case EAI_AGAIN:
        code = GN_ETEMPNAME;
        break;
    case EAI_MEMORY:
        code = GN_ENOMEM;
        break;
    default:
        code = GN_ERESOLVE;
        break;
    }
    if (gai_rc == EAI_SYSTEM)
        return gn__errbuf_input(errbuf, errlen, code, what, what_len, "cannot resolve: %s",
                                strerror(saved_errno));
    return gn__errbuf_input(errbuf, errlen, code, what, what_len, "cannot resolve: %s",
                            gai_strerror(gai_rc));
}

/* getaddrinfo may list an address twice (once per /etc/hosts line, say);
 * callers trying addresses in turn should not try one twice. */
static bool seen_before(const struct addrinfo *list, const struct addrinfo *ai,
                        gn_transport transport, const gn_endpoint *ep)
{
    gn_endpoint other;

    for (const struct addrinfo *p = list; p != ai; p = p->ai_next)
        if (gn_endpoint_from_sockaddr(p->ai_addr, p->ai_addrlen, transport, &other) == 0 &&
            gn_endpoint_equal(&other, ep))
            return true;
    return false;
}

static int collect(const struct addrinfo *list, gn_transport transport, gn_endpoint *out,
                   size_t max)
{
    size_t total = 0;
    gn_endpoint ep;

    for (const struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        if (gn_endpoint_from_sockaddr(ai->ai_addr, ai->ai_addrlen, transport, &ep) < 0)
            continue; /* a family we do not speak */
        if (seen_before(list, ai, transport, &ep))
            continue;
        if (total < max)
            out[total] = ep;
        total++;
    }
    return (int)total;
}

int gn_resolve(const gn_endpoint *ep, gn_endpoint *out, size_t max, char *errbuf, size_t errlen)
{
    struct addrinfo hints = {0}, *list = NULL;
    char port[8];
    int rc;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!gn__endpoint_valid(ep) || (!out && max > 0))
        return GN_EINVAL;
    if (gn_endpoint_is_resolved(ep)) {
        if (max > 0)
            out[0] = *ep;
        return 1;
    }
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype_of(ep->transport_);
    /* No AI_ADDRCONFIG: it hides ::1 for "localhost" on hosts whose only
     * IPv6 address is loopback, which is exactly where tests run. */
    hints.ai_flags = AI_NUMERICSERV | (ep->family_ == GN_FAMILY_ANY ? AI_PASSIVE : 0);
    snprintf(port, sizeof(port), "%u", (unsigned)ep->port_);
    rc = getaddrinfo(ep->family_ == GN_FAMILY_ANY ? NULL : ep->host_, port, &hints, &list);
    if (rc != 0)
        return gai_error(rc, errno, ep->host_, errbuf, errlen);
    rc = collect(list, ep->transport_, out, max);
    freeaddrinfo(list);
    if (rc == 0)
        return gn__errbuf_input(errbuf, errlen, GN_ENONAME, ep->host_, strlen(ep->host_),
                                "no IPv4 or IPv6 address");
    return rc;
}
