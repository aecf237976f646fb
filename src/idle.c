/*
 * Idle timeouts (see idle.h).  A queue's timer is set for its head's
 * deadline and not moved when the head is touched: when it fires it
 * expires what is due and sets itself for the new head, so the hot path
 * never touches the timer heap.
 */
#include <stdlib.h>

#include "idle.h"

struct gn__idle_queue {
    gn_loop *loop;
    uint32_t timeout_ms;
    gn__idle_fn expired;
    struct gn__list entries; /* oldest activity first */
    uint64_t timer;
};

static uint32_t idle_for(const gn_loop *loop, const struct gn__idle_entry *e)
{
    return (uint32_t)loop->now_ms - e->last_active;
}

static void arm(struct gn__idle_queue *q);

static void queue_due(gn_loop *loop, uint64_t id, void *arg)
{
    struct gn__idle_queue *q = arg;
    struct gn__list *node;

    (void)id;
    q->timer = 0;
    while ((node = gn__list_first(&q->entries))) {
        struct gn__idle_entry *e = gn__container_of(node, struct gn__idle_entry, node);
        uint32_t idle = idle_for(loop, e);
        if (idle < q->timeout_ms)
            break;
        gn__list_remove(node);
        q->expired(e, idle); /* may add or remove entries */
    }
    arm(q);
}

/* The timer for the head's deadline; none while the queue is empty. */
static void arm(struct gn__idle_queue *q)
{
    struct gn__list *node = gn__list_first(&q->entries);
    uint32_t idle;

    if (!node || q->timer)
        return;
    idle = idle_for(q->loop, gn__container_of(node, struct gn__idle_entry, node));
    /* Without a timer entries simply time out late (at the next arm):
     * the only effect of ENOMEM here, so not an error. */
    gn_timer_start(q->loop, idle < q->timeout_ms ? q->timeout_ms - idle : 0, 0, queue_due, q,
                   &q->timer);
}

static int find_queue(gn_loop *loop, uint32_t timeout_ms, gn__idle_fn expired)
{
    struct gn__idle_queue *q;
    size_t i;

    for (i = 0; i < loop->idle_queues_len; i++) {
        q = loop->idle_queues[i];
        if (q->timeout_ms == timeout_ms && q->expired == expired)
            return (int)i;
    }
    if (i > UINT16_MAX)
        return GN_ENOMEM;
    if (i == loop->idle_queues_cap) {
        size_t cap = i ? i * 2 : 4;
        struct gn__idle_queue **grown = realloc(loop->idle_queues, cap * sizeof(*grown));
        if (!grown)
            return GN_ENOMEM;
        loop->idle_queues = grown;
        loop->idle_queues_cap = cap;
    }
    q = calloc(1, sizeof(*q));
    if (!q)
        return GN_ENOMEM;
    *q = (struct gn__idle_queue){.loop = loop, .timeout_ms = timeout_ms, .expired = expired};
    gn__list_init(&q->entries);
    loop->idle_queues[loop->idle_queues_len++] = q;
    return (int)i;
}

int gn__idle_add(gn_loop *loop, struct gn__idle_entry *entry, uint32_t timeout_ms,
                 gn__idle_fn expired)
{
    int i = find_queue(loop, timeout_ms, expired);
    struct gn__idle_queue *q;

    if (i < 0)
        return i;
    q = loop->idle_queues[i];
    gn__list_remove(&entry->node);
    entry->queue = (uint16_t)i;
    entry->last_active = (uint32_t)loop->now_ms;
    gn__list_push_back(&q->entries, &entry->node);
    arm(q);
    return 0;
}

/* An empty queue's timer would keep gn_loop_run going for nothing. */
void gn__idle_remove(gn_loop *loop, struct gn__idle_entry *entry)
{
    struct gn__idle_queue *q;

    if (!gn__list_linked(&entry->node))
        return;
    gn__list_remove(&entry->node);
    q = loop->idle_queues[entry->queue];
    if (gn__list_empty(&q->entries) && q->timer) {
        gn_timer_cancel(loop, q->timer);
        q->timer = 0;
    }
}

void gn__idle_requeue(gn_loop *loop, struct gn__idle_entry *entry)
{
    entry->last_active = (uint32_t)loop->now_ms;
    if (!gn__list_linked(&entry->node))
        return;
    gn__list_remove(&entry->node);
    gn__list_push_back(&loop->idle_queues[entry->queue]->entries, &entry->node);
}

void gn__idle_free(gn_loop *loop)
{
    for (size_t i = 0; i < loop->idle_queues_len; i++)
        free(loop->idle_queues[i]);
    free(loop->idle_queues);
    loop->idle_queues = NULL;
    loop->idle_queues_len = loop->idle_queues_cap = 0;
}
