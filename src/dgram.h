/*
 * Datagram sockets' insides, shared by the asynchronous half (dgram.c)
 * and the blocking half (dgram_blocking.c).  Never installed.
 */
#ifndef GN_DGRAM_H
#define GN_DGRAM_H

#include <sys/socket.h>

#include "loop.h"

#define GN__DGRAM_AGAIN (-1000) /* the socket is full, or nothing to read */

/* A datagram waiting in the send queue, with its own destination. */
struct gn__dgram_msg {
    struct gn__list node;
    struct sockaddr_storage to;
    socklen_t tolen; /* 0: the connected peer */
    size_t len;
    char data[];
};

struct gn_dgram {
    struct gn__io io;         /* first: the loop's callback casts back */
    gn_loop *loop;            /* NULL for a blocking socket */
    struct gn__handle handle; /* on a loop: closed by gn_loop_free */
    gn_dgram_handlers h;
    gn_dgram_options opts;
    void *user_data;
    gn_transport transport;
    int family; /* the socket's AF_INET, AF_INET6 or AF_UNIX */
    gn_endpoint local, remote;
    bool connected;
    bool blocking;
    bool closed;
    bool unlink_path; /* bound a Unix path: remove it on close */
    bool retry_by_timer;

    char *rbuf;            /* max_datagram bytes, asynchronous sockets only */
    struct gn__list queue; /* of struct gn__dgram_msg */
    size_t queued;
    uint64_t retry_timer;
    struct gn__deferred finalize;
};

/* Parse, resolve, create the socket, bind or connect it, read its
 * endpoints.  The socket is not watched yet; loop may be NULL. */
int gn__dgram_create(gn_loop *loop, const char *address, unsigned flags,
                     const gn_dgram_options *opts, gn_dgram **out, char *errbuf, size_t errlen);
/* Close the descriptor, remove a bound path, free everything. */
void gn__dgram_release(gn_dgram *sock);
/* Close the descriptor and remove a bound path (idempotent). */
void gn__dgram_close_fd(gn_dgram *sock);

/* Check a send's arguments and turn `to` (NULL: connected peer) into the
 * socket address to hand to sendto (*len 0: none). */
int gn__dgram_dest(const gn_dgram *sock, const void *data, size_t len, const gn_endpoint *to,
                   struct sockaddr_storage *ss, socklen_t *sslen);
/* One sendto: 0, GN__DGRAM_AGAIN or a GN_E code. */
int gn__dgram_sendto(int fd, const void *data, size_t len, const struct sockaddr_storage *ss,
                     socklen_t sslen);
/* One recvmsg of a datagram into buf: its real length (which may exceed
 * size: then it was cut and *cut is set), GN__DGRAM_AGAIN or a code.
 * *from receives the sender (an empty Unix path when unnamed). */
ssize_t gn__dgram_recvfrom(const gn_dgram *sock, void *buf, size_t size, gn_endpoint *from,
                           bool *cut);

#endif
