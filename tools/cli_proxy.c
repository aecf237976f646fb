/*
 * Which proxy the CLI's clients use (connect, connect --sync, send): the
 * --proxy and --noproxy flags, else the environment as curl reads it.
 * The library never reads the environment; the command line does, as
 * people expect of a curl-like tool.
 *
 *   --proxy URL        this proxy ("socks5h://user:pass@host:1080"; no
 *                      scheme means http://, as in curl); '' for none
 *   --noproxy LIST     hosts reached directly (overrides NO_PROXY)
 *   https_proxy, HTTPS_PROXY   for tls:// targets
 *   all_proxy, ALL_PROXY       for tcp:// and tls:// targets
 *   no_proxy, NO_PROXY         hosts reached directly
 *
 * http_proxy is not read: curl uses it only for http:// URLs, and a raw
 * TCP connection is not one (an HTTP proxy reached through ALL_PROXY
 * still tunnels it with CONNECT).  Lower case is read before upper case.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

static const char *proxy_flag;   /* --proxy, NULL when not given */
static const char *noproxy_flag; /* --noproxy, NULL when not given */

int cli_take_proxy_options(int *argc, char **argv)
{
    int kept = 2;

    for (int i = 2; i < *argc; i++) {
        const char **flag = strcmp(argv[i], "--proxy") == 0     ? &proxy_flag
                            : strcmp(argv[i], "--noproxy") == 0 ? &noproxy_flag
                                                                : NULL;
        if (!flag) {
            argv[kept++] = argv[i];
            continue;
        }
        if (i + 1 >= *argc)
            return cli_usage_error("%s needs a value ('' for none)", argv[i]);
        *flag = argv[++i];
    }
    *argc = kept;
    if ((proxy_flag || noproxy_flag) && strcmp(argv[1], "connect") != 0 &&
        strcmp(argv[1], "send") != 0)
        return cli_usage_error("--proxy and --noproxy are for connect and send");
    return 0;
}

/* The first of the variables that is set and not empty. */
static const char *env_first(const char *const names[], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = getenv(names[i]);
        if (v && v[0])
            return v;
    }
    return NULL;
}

/* An address or CIDR entry ("10.0.0.0/8", "::1") against an address host. */
static bool ip_matches(const char *entry, size_t len, const char *host)
{
    unsigned char want[16], have[16];
    char text[64];
    const char *slash;
    int family = strchr(host, ':') ? AF_INET6 : AF_INET;
    long bits = family == AF_INET6 ? 128 : 32, max = bits;

    if (len >= sizeof(text) || inet_pton(family, host, have) != 1)
        return false;
    memcpy(text, entry, len);
    text[len] = '\0';
    slash = strchr(text, '/');
    if (slash) {
        bits = strtol(slash + 1, NULL, 10);
        text[slash - text] = '\0';
    }
    if (bits < 0 || bits > max || inet_pton(family, text, want) != 1)
        return false;
    for (long b = 0; b < bits; b++)
        if (((want[b / 8] ^ have[b / 8]) >> (7 - b % 8)) & 1)
            return false;
    return true;
}

/* curl's NO_PROXY: entries split by commas and spaces; "*" alone matches
 * every host; a name matches itself and its subdomains (a leading dot
 * is ignored); an address matches itself or its CIDR block; the port
 * plays no part.  Case-insensitive. */
static bool no_proxy_matches(const char *list, const char *host)
{
    size_t hlen = strlen(host);

    if (strcmp(list, "*") == 0)
        return true;
    for (const char *p = list; *p;) {
        size_t len;
        p += strspn(p, ", ");
        len = strcspn(p, ", ");
        if (len == 0)
            break;
        const char *entry = p[0] == '.' ? p + 1 : p;
        size_t elen = p[0] == '.' ? len - 1 : len;
        p += len;
        if (elen == 0)
            continue;
        if (ip_matches(entry, elen, host))
            return true;
        if (elen <= hlen && strncasecmp(host + hlen - elen, entry, elen) == 0 &&
            (elen == hlen || host[hlen - elen - 1] == '.'))
            return true;
    }
    return false;
}

const char *cli_proxy_for(const char *address)
{
    static const char *const tls_vars[] = {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
    static const char *const tcp_vars[] = {"all_proxy", "ALL_PROXY"};
    static const char *const no_vars[] = {"no_proxy", "NO_PROXY"};
    static char url[GN_ADDRESS_MAX + 16];
    char host[GN_HOST_MAX + 1] = "";
    const char *proxy = proxy_flag, *skip;
    gn_endpoint ep;
    gn_transport kind;

    if (gn_endpoint_parse(address, 0, &ep, NULL, 0) < 0)
        return proxy_flag && proxy_flag[0] ? proxy_flag : NULL; /* the library says why */
    kind = gn_endpoint_transport(&ep);
    if (!proxy && kind == GN_TRANSPORT_TLS)
        proxy = env_first(tls_vars, 4);
    else if (!proxy && kind == GN_TRANSPORT_TCP)
        proxy = env_first(tcp_vars, 2);
    if (!proxy || !proxy[0])
        return NULL;
    skip = noproxy_flag ? noproxy_flag : env_first(no_vars, 2);
    gn_endpoint_host(&ep, host, sizeof(host));
    if (skip && host[0] && no_proxy_matches(skip, host))
        return NULL;
    if (strstr(proxy, "://"))
        return proxy;
    snprintf(url, sizeof(url), "http://%s", proxy); /* curl's default scheme */
    return url;
}
