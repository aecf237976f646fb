/*
 * A connection's output queue: chunks of copied bytes and file ranges,
 * in the order they were sent.  Never installed.
 */
#ifndef GN_CONN_QUEUE_H
#define GN_CONN_QUEUE_H

#include "conn.h"

struct gn__chunk {
    struct gn__list node; /* in conn->out->chunks */
    int file_fd;          /* -1 for a data chunk */
    int64_t file_off;     /* next byte of the file to send */
    size_t len;           /* data: bytes held; file: bytes left */
    size_t off;           /* data: bytes already sent */
    size_t cap;           /* data: room in data[] */
    char data[];
};

/* Append a copy of len bytes.  0 or GN_ENOMEM (nothing queued). */
int gn__queue_data(gn_conn *conn, const void *buf, size_t len);
/* Append a file range.  0 or GN_ENOMEM. */
int gn__queue_file(gn_conn *conn, int fd, int64_t offset, uint64_t len);
/* Fill iov (at most max) with the data chunks at the head of the queue,
 * up to the first file chunk.  Returns how many. */
int gn__queue_iov(gn_conn *conn, struct iovec *iov, int max);
/* n bytes of the head's data chunks were written. */
void gn__queue_consume(gn_conn *conn, size_t n);
/* The chunk at the head of the queue, or NULL when nothing is queued. */
struct gn__chunk *gn__queue_head(const gn_conn *conn);
/* The head chunk (a file range) is done: drop it. */
void gn__queue_drop_head(gn_conn *conn);
/* Drop everything (abort, close). */
void gn__queue_clear(gn_conn *conn);

#endif
