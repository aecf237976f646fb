/*
 * Unix domain stream sockets: what differs from TCP is only how a
 * listener takes its name (the file in the file system) and the peer's
 * credentials.  Bytes move through the plain stream transport.
 *
 * A server that died leaves its socket file behind, and bind then fails
 * with EADDRINUSE.  The file is replaced only when it is a socket that
 * nobody answers on (connect says ECONNREFUSED): never a regular file,
 * never a live server's socket.  On close the file is removed only if it
 * is still the one this server created (same device and inode), so a
 * successor's socket is never deleted.
 */
#define _GNU_SOURCE /* struct ucred */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "server.h"

/* Is a server listening at the path of sa?  1 yes, 0 no (stale), or a
 * negative code when it cannot tell. */
static int someone_listens(const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;

    if (fd < 0)
        return gn_error_from_errno(errno);
    do {
        rc = connect(fd, sa, len);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0 || errno == EAGAIN)
        rc = 1; /* EAGAIN: alive, with a full backlog */
    else if (errno == ECONNREFUSED)
        rc = 0;
    else
        rc = gn_error_from_errno(errno);
    close(fd);
    return rc;
}

/* bind failed with EADDRINUSE on a path: replace the file if it is a
 * stale socket. */
static int replace_stale(int fd, const struct sockaddr_un *sun, socklen_t len, char *why,
                         size_t whylen)
{
    struct stat st;
    int live;

    if (lstat(sun->sun_path, &st) < 0)
        return gn_error_from_errno(errno);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(why, whylen, "the path exists and is not a socket; it is left alone");
        return GN_EADDRINUSE;
    }
    live = someone_listens((const struct sockaddr *)sun, len);
    if (live != 0) {
        snprintf(why, whylen, "%s", live > 0 ? "a server is listening on it" : gn_strerror(live));
        return live > 0 ? GN_EADDRINUSE : live;
    }
    if (unlink(sun->sun_path) < 0 && errno != ENOENT)
        return gn_error_from_errno(errno);
    if (bind(fd, (const struct sockaddr *)sun, len) < 0)
        return gn_error_from_errno(errno);
    return 0;
}

int gn__unix_bind(int fd, const gn_endpoint *ep, const gn_options *opts, struct listener *l,
                  char *why, size_t whylen)
{
    socklen_t len;
    const struct sockaddr_un *sun = (const struct sockaddr_un *)gn_endpoint_sockaddr(ep, &len);
    bool is_file = !gn_endpoint_is_abstract(ep) && sun->sun_path[0] != '\0';
    struct stat st;
    int rc = 0;

    if (bind(fd, (const struct sockaddr *)sun, len) < 0) {
        rc = gn_error_from_errno(errno);
        if (rc == GN_EADDRINUSE && is_file)
            rc = replace_stale(fd, sun, len, why, whylen);
        if (rc < 0)
            return rc;
    }
    if (!is_file)
        return 0;
    /* chmod, not fchmod: on Linux only the file's mode counts for connect. */
    if (opts->unix_mode && chmod(sun->sun_path, (mode_t)opts->unix_mode) < 0) {
        rc = gn_error_from_errno(errno);
        unlink(sun->sun_path);
        return rc;
    }
    if (stat(sun->sun_path, &st) == 0) {
        l->file_dev = st.st_dev;
        l->file_ino = st.st_ino;
        l->owns_file = true;
    }
    return 0;
}

void gn__unix_unlink(struct listener *l)
{
    const struct sockaddr_un *sun;
    struct stat st;
    socklen_t len;

    if (!l->owns_file)
        return;
    l->owns_file = false;
    sun = (const struct sockaddr_un *)gn_endpoint_sockaddr(&l->ep, &len);
    if (stat(sun->sun_path, &st) == 0 && st.st_dev == l->file_dev && st.st_ino == l->file_ino)
        unlink(sun->sun_path);
}

int gn_conn_get_peer_cred(const gn_conn *conn, gn_peer_cred *out)
{
#ifdef SO_PEERCRED
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (!conn || !out)
        return GN_EINVAL;
    if (conn->kind != GN_TRANSPORT_UNIX)
        return GN_EFAMILY;
    if (conn->io.fd < 0)
        return GN_ECLOSED;
    if (getsockopt(conn->io.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return gn_error_from_errno(errno);
    *out = (gn_peer_cred){
        .pid = (int64_t)cred.pid, .uid = (uint32_t)cred.uid, .gid = (uint32_t)cred.gid};
    return 0;
#else /* Windows: no user and group ids to report */
    if (!conn || !out)
        return GN_EINVAL;
    return conn->kind != GN_TRANSPORT_UNIX ? GN_EFAMILY : GN_ENOTSUP;
#endif
}
