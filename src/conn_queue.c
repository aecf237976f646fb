/*
 * The output queue.  Small sends are appended to the tail chunk while it
 * has room, so many small messages become one writev; one spent chunk is
 * kept per connection so a steady stream of partial writes does not
 * allocate per message.
 */
#include <stdlib.h>
#include <string.h>

#include "conn_queue.h"

#define CHUNK_MIN  (16u << 10)
#define FILE_CHUNK ((size_t)-1) /* cap marker: not data */

static void chunk_append(gn_conn *conn, struct gn__chunk *chunk)
{
    chunk->next = NULL;
    if (conn->out_tail)
        conn->out_tail->next = chunk;
    else
        conn->out_head = chunk;
    conn->out_tail = chunk;
}

static struct gn__chunk *chunk_get(gn_conn *conn, size_t len)
{
    struct gn__chunk *chunk = conn->spare;
    size_t cap = len < CHUNK_MIN ? CHUNK_MIN : len;

    if (chunk && chunk->cap >= len) {
        conn->spare = NULL;
    } else {
        chunk = malloc(sizeof(*chunk) + cap);
        if (!chunk)
            return NULL;
        chunk->cap = cap;
    }
    chunk->file_fd = -1;
    chunk->len = chunk->off = 0;
    return chunk;
}

static void chunk_put(gn_conn *conn, struct gn__chunk *chunk)
{
    if (chunk->file_fd < 0 && !conn->spare && chunk->cap == CHUNK_MIN)
        conn->spare = chunk;
    else
        free(chunk);
}

int gn__queue_data(gn_conn *conn, const void *buf, size_t len)
{
    struct gn__chunk *tail = conn->out_tail;
    struct gn__chunk *chunk;

    if (tail && tail->file_fd < 0 && tail->cap - tail->len >= len) {
        memcpy(tail->data + tail->len, buf, len);
        tail->len += len;
    } else {
        chunk = chunk_get(conn, len);
        if (!chunk)
            return GN_ENOMEM;
        memcpy(chunk->data, buf, len);
        chunk->len = len;
        chunk_append(conn, chunk);
    }
    conn->out_queued += len;
    return 0;
}

int gn__queue_file(gn_conn *conn, int fd, int64_t offset, uint64_t len)
{
    struct gn__chunk *chunk = malloc(sizeof(*chunk));

    if (!chunk)
        return GN_ENOMEM;
    chunk->file_fd = fd;
    chunk->file_off = offset;
    chunk->len = (size_t)len;
    chunk->off = 0;
    chunk->cap = FILE_CHUNK;
    chunk_append(conn, chunk);
    return 0;
}

int gn__queue_iov(gn_conn *conn, struct iovec *iov, int max)
{
    int n = 0;

    for (struct gn__chunk *c = conn->out_head; c && c->file_fd < 0 && n < max; c = c->next) {
        iov[n].iov_base = c->data + c->off;
        iov[n].iov_len = c->len - c->off;
        n++;
    }
    return n;
}

void gn__queue_consume(gn_conn *conn, size_t n)
{
    struct gn__chunk *c;

    conn->out_queued -= n;
    while (n > 0 && (c = conn->out_head) && c->file_fd < 0) {
        size_t left = c->len - c->off;
        if (n < left) {
            c->off += n;
            return;
        }
        n -= left;
        conn->out_head = c->next;
        if (!conn->out_head)
            conn->out_tail = NULL;
        chunk_put(conn, c);
    }
}

void gn__queue_clear(gn_conn *conn)
{
    struct gn__chunk *c, *next;

    for (c = conn->out_head; c; c = next) {
        next = c->next;
        free(c);
    }
    free(conn->spare);
    conn->out_head = conn->out_tail = conn->spare = NULL;
    conn->out_queued = 0;
}
