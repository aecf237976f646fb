/*
 * A program written against gnezdo 0.1's names: it must still build (with
 * deprecation warnings that name the replacements, checked by compat.sh)
 * and work.  Prints "ok".
 */
#include <gnezdo.h>
#include <stdio.h>
#include <sys/socket.h>

static void handler(gn_conn *conn)
{
    (void)conn;
}

static ssize_t plain_read(gn_conn *conn, int fd, void *buf, size_t len)
{
    ssize_t n = recv(fd, buf, len, 0);

    (void)conn;
    return n < 0 ? GN_EAGAIN : n;
}

static ssize_t plain_writev(gn_conn *conn, int fd, const struct iovec *iov, int iovcnt)
{
    (void)conn;
    (void)fd;
    (void)iov;
    (void)iovcnt;
    return GN_EAGAIN;
}

int main(void)
{
    gn_thread_handler fn = handler;
    gn_transport_ops ops = {.name = "plain", .read = plain_read, .writev = plain_writev};
    char err[GN_ERRBUF_SIZE];
    gn_thread_stats stats;
    gn_endpoint ep;
    gn_server *srv;

    if (gn_serve_threads("127.0.0.1:0", fn, NULL, NULL, &srv, err, sizeof(err)) < 0) {
        fprintf(stderr, "old_names: %s\n", err);
        return 1;
    }
    if (gn_server_endpoint(srv, 0, &ep) < 0 || gn_server_thread_stats(srv, &stats) < 0 ||
        gn_endpoint_port(&ep) == 0 || ops.read == NULL) {
        fprintf(stderr, "old_names: the old names did not work\n");
        return 1;
    }
    gn_server_close(srv, 0);
    printf("ok\n");
    return 0;
}
