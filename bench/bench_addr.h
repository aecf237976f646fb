/*
 * Shared by the echo benchmark's hand-written programs: parse "HOST:PORT"
 * ("127.0.0.1:7000", "[::1]:7000", ":7000", optionally after "tcp://" or
 * "tls://") with numeric look-up only, or "unix:/path" / "unix:@name",
 * into a socket address; open a listener on one; raise the open-file
 * limit.  Header-only; static inline so unused copies cost nothing and
 * trip no warning.
 */
#ifndef GN_BENCH_ADDR_H
#define GN_BENCH_ADDR_H

#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

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

/*
 * Soft RLIMIT_NOFILE up to the hard limit: 10,000 idle connections need
 * more than the usual soft 1024.  Returns the new soft limit.
 */
static inline long bench_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000000 ? 1000000 : (long)rl.rlim_cur;
}

/*
 * A listening stream socket on TEXT (SO_REUSEADDR, backlog 511, the
 * kernel's own cap applying), non-blocking when nonblock; a stale Unix
 * socket file there is replaced (bench/run owns the path).  name gets
 * the bound address ("listening on" form, so port 0 works).  -1 with a
 * message on stderr when it fails.
 */
static inline int bench_listen(const char *text, int nonblock, char *name, size_t namelen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    int fd, one = 1;

    if (bench_parse_addr(text, 1, &ss, &sslen) < 0)
        return -1;
    if (ss.ss_family == AF_UNIX && ((struct sockaddr_un *)&ss)->sun_path[0] != '\0')
        unlink(((struct sockaddr_un *)&ss)->sun_path);
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, 511) < 0) {
        perror(text);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    sslen = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sslen);
    bench_format_addr(&ss, sslen, name, namelen);
    return fd;
}

/* The Unix socket file bench_listen made for TEXT, to remove on exit; NULL if none. */
static inline const char *bench_unix_path(const char *text)
{
    return strncmp(text, "unix:", 5) == 0 && text[5] != '@' ? text + 5 : NULL;
}

#endif
