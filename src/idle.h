/*
 * Idle timeouts for many connections at the cost of a list node each:
 * one queue per distinct timeout, kept in order of last activity (a touch
 * moves an entry to the tail, the way libev's manual suggests for
 * connection timeouts), and one loop timer per queue, for its head.  A
 * heap timer per connection would cost ~60 bytes each and a heap
 * operation per re-arm.  Never installed.
 */
#ifndef GN_IDLE_H
#define GN_IDLE_H

#include "loop.h"

/* Embedded in what may go idle (a connection). */
struct gn__idle_entry {
    struct gn__list node; /* in its queue, or unlinked */
    uint32_t last_active; /* the loop's clock in ms, truncated: compared
                             by difference, so it wraps harmlessly */
    uint16_t queue;       /* index of its queue in the loop */
};

/* Called when entry has been idle for its queue's timeout, after it was
 * taken out of the queue.  idle_ms says how long. */
typedef void (*gn__idle_fn)(struct gn__idle_entry *entry, uint64_t idle_ms);

/* Start timing entry (active now) in the queue of timeout_ms.  0, or
 * GN_ENOMEM (then it never times out). */
int gn__idle_add(gn_loop *loop, struct gn__idle_entry *entry, uint32_t timeout_ms,
                 gn__idle_fn expired);
/* Stop timing entry.  Safe when it is in no queue. */
void gn__idle_remove(gn_loop *loop, struct gn__idle_entry *entry);
/* Entry was active now: to the tail of its queue, at most once per ms
 * (the hot path: two list operations, no timer). */
void gn__idle_requeue(gn_loop *loop, struct gn__idle_entry *entry);
static inline void gn__idle_touch(gn_loop *loop, struct gn__idle_entry *entry)
{
    if (entry->last_active != (uint32_t)loop->now_ms)
        gn__idle_requeue(loop, entry);
}

/* Free every queue (gn_loop_free). */
void gn__idle_free(gn_loop *loop);

#endif
