/*
 * Shared by the echo benchmark's hand-written programs: parse "HOST:PORT"
 * ("127.0.0.1:7000", "[::1]:7000", ":7000", optionally after "tcp://" or
 * "tls://") with numeric look-up only, or "unix:/path" / "unix:@name",
 * into a socket address.  Header-only; static inline so unused copies
 * cost nothing and trip no warning.
 */
#ifndef GN_BENCH_ADDR_H
#define GN_BENCH_ADDR_H

#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

static inline int bench_parse_addr(const char *text, int passive, struct sockaddr_storage *out,
                                   socklen_t *outlen)
{
    char host[256];
    const char *colon = strrchr(text, ':');
    const char *h = text;
    size_t hlen;
    struct addrinfo hints, *res = NULL;
    int rc;

    if (strncmp(text, "unix:", 5) == 0) {
        struct sockaddr_un *sun = (struct sockaddr_un *)out;
        const char *path = text + 5;
        size_t plen = strlen(path);

        if (plen == 0 || plen >= sizeof sun->sun_path) {
            fprintf(stderr, "'%s': Unix path empty or too long\n", text);
            return -1;
        }
        memset(sun, 0, sizeof *sun);
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, path, plen);
        if (path[0] == '@') /* Linux abstract name: no NUL terminator counted */
            sun->sun_path[0] = '\0';
        *outlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] != '@'));
        return 0;
    }
    if (strncmp(text, "tcp://", 6) == 0 || strncmp(text, "tls://", 6) == 0)
        h = text + 6;
    if (!colon || colon < h) {
        fprintf(stderr, "'%s': expected HOST:PORT\n", text);
        return -1;
    }
    hlen = (size_t)(colon - h);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= sizeof host) {
        fprintf(stderr, "'%s': host too long\n", text);
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    rc = getaddrinfo(hlen ? host : NULL, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "'%s': %s\n", text, gai_strerror(rc));
        return -1;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *outlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* "127.0.0.1:7000" / "[::1]:7000" / "unix:/path" for a bound or peer address. */
static inline void bench_format_addr(const struct sockaddr_storage *ss, socklen_t len, char *buf,
                                     size_t buflen)
{
    char host[NI_MAXHOST], port[NI_MAXSERV];

    if (ss->ss_family == AF_UNIX) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)ss;
        size_t plen = len > offsetof(struct sockaddr_un, sun_path)
                          ? len - offsetof(struct sockaddr_un, sun_path)
                          : 0;

        if (plen > 0 && sun->sun_path[0] == '\0')
            snprintf(buf, buflen, "unix:@%.*s", (int)plen - 1, sun->sun_path + 1);
        else
            snprintf(buf, buflen, "unix:%.*s", (int)strnlen(sun->sun_path, plen), sun->sun_path);
        return;
    }
    if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(buf, buflen, "?");
        return;
    }
    if (ss->ss_family == AF_INET6)
        snprintf(buf, buflen, "[%s]:%s", host, port);
    else
        snprintf(buf, buflen, "%s:%s", host, port);
}

#endif
