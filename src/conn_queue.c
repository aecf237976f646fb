/*
 * The output queue.  Small sends are appended to the tail chunk while it
 * has room, so many small messages become one writev.  The queue itself
 * exists only while something is queued: an idle connection holds none,
 * and its spent chunks and the queue go back to the loop's pools, so a
 * steady stream of partial writes does not allocate per message.
 */
#include <stdlib.h>
#include <string.h>

#include "conn_queue.h"

#define CHUNK_MIN  (16u << 10)
#define FILE_CHUNK ((size_t)-1) /* cap marker: not data */
#define POOL_MAX   64           /* spare chunks and queues a loop keeps */

static struct gn__outq *queue_get(gn_conn *conn)
{
    struct gn__outq *q = conn->out;

    if (q)
        return q;
    q = gn__pool_get(&conn->loop->outq_pool, sizeof(*q));
    if (!q)
        return NULL;
    gn__list_init(&q->chunks);
    conn->out = q;
    return q;
}

static void chunk_free(gn_conn *conn, struct gn__chunk *chunk)
{
    if (chunk->file_fd < 0 && chunk->cap == CHUNK_MIN)
        gn__pool_put(&conn->loop->chunk_pool, chunk, POOL_MAX);
    else
        free(chunk);
}

/* An empty queue goes back to the loop, its spare chunk with it. */
static void queue_release_if_empty(gn_conn *conn)
{
    struct gn__outq *q = conn->out;

    if (!q || !gn__list_empty(&q->chunks))
        return;
    if (q->spare)
        chunk_free(conn, q->spare);
    conn->out = NULL;
    gn__pool_put(&conn->loop->outq_pool, q, POOL_MAX);
}

static struct gn__chunk *chunk_get(gn_conn *conn, size_t len)
{
    struct gn__chunk *chunk = conn->out->spare;
    size_t cap = len < CHUNK_MIN ? CHUNK_MIN : len;

    if (chunk && chunk->cap >= len) {
        conn->out->spare = NULL;
    } else {
        chunk = cap == CHUNK_MIN ? gn__pool_get(&conn->loop->chunk_pool, sizeof(*chunk) + cap)
                                 : malloc(sizeof(*chunk) + cap);
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
    if (chunk->file_fd < 0 && !conn->out->spare && chunk->cap == CHUNK_MIN)
        conn->out->spare = chunk;
    else
        chunk_free(conn, chunk);
}

struct gn__chunk *gn__queue_head(const gn_conn *conn)
{
    struct gn__list *node = conn->out ? gn__list_first(&conn->out->chunks) : NULL;

    return node ? gn__container_of(node, struct gn__chunk, node) : NULL;
}

static struct gn__chunk *queue_tail(const gn_conn *conn)
{
    const struct gn__list *chunks = &conn->out->chunks;

    return gn__list_empty(chunks) ? NULL : gn__container_of(chunks->prev, struct gn__chunk, node);
}

int gn__queue_data(gn_conn *conn, const void *buf, size_t len)
{
    struct gn__chunk *tail, *chunk;

    if (!queue_get(conn))
        return GN_ENOMEM;
    tail = queue_tail(conn);
    if (tail && tail->file_fd < 0 && tail->cap - tail->len >= len) {
        memcpy(tail->data + tail->len, buf, len);
        tail->len += len;
    } else {
        chunk = chunk_get(conn, len);
        if (!chunk) {
            queue_release_if_empty(conn);
            return GN_ENOMEM;
        }
        memcpy(chunk->data, buf, len);
        chunk->len = len;
        gn__list_push_back(&conn->out->chunks, &chunk->node);
    }
    conn->out->queued += len;
    return 0;
}

int gn__queue_file(gn_conn *conn, int fd, int64_t offset, uint64_t len)
{
    struct gn__chunk *chunk;

    if (!queue_get(conn))
        return GN_ENOMEM;
    chunk = malloc(sizeof(*chunk));
    if (!chunk) {
        queue_release_if_empty(conn);
        return GN_ENOMEM;
    }
    chunk->file_fd = fd;
    chunk->file_off = offset;
    chunk->len = (size_t)len;
    chunk->off = 0;
    chunk->cap = FILE_CHUNK;
    gn__list_push_back(&conn->out->chunks, &chunk->node);
    return 0;
}

int gn__queue_iov(gn_conn *conn, struct iovec *iov, int max)
{
    struct gn__list *node;
    int n = 0;

    if (!conn->out)
        return 0;
    for (node = conn->out->chunks.next; node != &conn->out->chunks && n < max; node = node->next) {
        struct gn__chunk *c = gn__container_of(node, struct gn__chunk, node);
        if (c->file_fd >= 0)
            break;
        iov[n].iov_base = c->data + c->off;
        iov[n].iov_len = c->len - c->off;
        n++;
    }
    return n;
}

void gn__queue_consume(gn_conn *conn, size_t n)
{
    struct gn__chunk *c;

    conn->out->queued -= n;
    while (n > 0 && (c = gn__queue_head(conn)) && c->file_fd < 0) {
        size_t left = c->len - c->off;
        if (n < left) {
            c->off += n;
            return;
        }
        n -= left;
        gn__list_remove(&c->node);
        chunk_put(conn, c);
    }
    queue_release_if_empty(conn);
}

void gn__queue_drop_head(gn_conn *conn)
{
    struct gn__chunk *c = gn__queue_head(conn);

    if (!c)
        return;
    gn__list_remove(&c->node);
    free(c);
    queue_release_if_empty(conn);
}

void gn__queue_clear(gn_conn *conn)
{
    struct gn__chunk *c;

    while ((c = gn__queue_head(conn))) {
        gn__list_remove(&c->node);
        chunk_free(conn, c);
    }
    queue_release_if_empty(conn);
}
