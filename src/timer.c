/*
 * Timers: a binary min-heap of slots, ordered by (due, start order).
 * A timer's id is its slot plus the slot's generation, so an id outlives
 * its timer harmlessly: a stale id finds a newer generation and is
 * "not found" instead of cancelling someone else's timer.
 */
#include <stdlib.h>

#include "loop.h"

#define NO_SLOT UINT32_MAX

struct gn__timer {
    uint64_t due;
    uint64_t seq;
    uint64_t repeat;
    gn_timer_fn fn;
    void *arg;
    uint32_t gen;
    uint32_t heap_pos; /* NO_SLOT when free */
    uint32_t next_free;
};

static uint64_t make_id(uint32_t slot, uint32_t gen)
{
    return ((uint64_t)gen << 32) | (uint64_t)(slot + 1);
}

int gn__timers_init(struct gn__timer_heap *t)
{
    *t = (struct gn__timer_heap){.free_head = NO_SLOT, .heap_due = UINT64_MAX};
    return 0;
}

void gn__timers_free(gn_loop *loop)
{
    struct gn__timer_heap *t = &loop->timers;

    loop->refs -= t->nheap;
    free(t->slots);
    free(t->heap);
    gn__timers_init(t);
}

static bool earlier(const struct gn__timer_heap *t, uint32_t a, uint32_t b)
{
    const struct gn__timer *ta = &t->slots[t->heap[a]], *tb = &t->slots[t->heap[b]];

    return ta->due < tb->due || (ta->due == tb->due && ta->seq < tb->seq);
}

static void heap_swap(struct gn__timer_heap *t, uint32_t a, uint32_t b)
{
    uint32_t slot = t->heap[a];

    t->heap[a] = t->heap[b];
    t->heap[b] = slot;
    t->slots[t->heap[a]].heap_pos = a;
    t->slots[t->heap[b]].heap_pos = b;
}

static void sift_up(struct gn__timer_heap *t, uint32_t i)
{
    while (i > 0 && earlier(t, i, (i - 1) / 2)) {
        heap_swap(t, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void sift_down(struct gn__timer_heap *t, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, min = i;
        if (l < t->nheap && earlier(t, l, min))
            min = l;
        if (r < t->nheap && earlier(t, r, min))
            min = r;
        if (min == i)
            return;
        heap_swap(t, i, min);
        i = min;
    }
}

/* Kept beside the heap for gn__timers_due, the loop's test per wake-up. */
static void note_first(struct gn__timer_heap *t)
{
    t->heap_due = t->nheap > 0 ? t->slots[t->heap[0]].due : UINT64_MAX;
}

static void heap_remove(struct gn__timer_heap *t, uint32_t pos)
{
    uint32_t last = --t->nheap;

    if (pos != last) {
        heap_swap(t, pos, last);
        sift_down(t, pos);
        sift_up(t, pos);
    }
    note_first(t);
}

static void heap_push(struct gn__timer_heap *t, uint32_t slot)
{
    t->slots[slot].seq = t->seq++;
    t->slots[slot].heap_pos = t->nheap;
    t->heap[t->nheap++] = slot;
    sift_up(t, t->nheap - 1);
    note_first(t);
}

/* Doubles slots and heap together, so a push never fails later. */
static int grow(struct gn__timer_heap *t)
{
    uint32_t n = t->nslots ? t->nslots * 2 : 16;
    struct gn__timer *slots;
    uint32_t *heap;

    if (t->nslots >= UINT32_MAX / 4)
        return GN_ENOMEM;
    slots = realloc(t->slots, n * sizeof(*slots));
    if (!slots)
        return GN_ENOMEM;
    t->slots = slots;
    heap = realloc(t->heap, n * sizeof(*heap));
    if (!heap)
        return GN_ENOMEM;
    t->heap = heap;
    for (uint32_t i = n; i-- > t->nslots;) {
        t->slots[i] = (struct gn__timer){.heap_pos = NO_SLOT, .next_free = t->free_head};
        t->free_head = i;
    }
    t->nslots = n;
    return 0;
}

int gn_timer_start(gn_loop *loop, uint64_t delay_ms, uint64_t repeat_ms, gn_timer_fn fn, void *arg,
                   uint64_t *id)
{
    struct gn__timer_heap *t;
    struct gn__timer *timer;
    uint32_t slot;

    if (!loop || !fn || !id)
        return GN_EINVAL;
    t = &loop->timers;
    if (t->free_head == NO_SLOT && grow(t) < 0)
        return GN_ENOMEM;
    slot = t->free_head;
    timer = &t->slots[slot];
    t->free_head = timer->next_free;
    timer->due = gn__clock_ms() + delay_ms;
    if (timer->due < delay_ms)
        timer->due = UINT64_MAX; /* "never", not a wrap into the past */
    timer->repeat = repeat_ms;
    timer->fn = fn;
    timer->arg = arg;
    heap_push(t, slot);
    gn__loop_ref(loop);
    *id = make_id(slot, timer->gen);
    return 0;
}

static void release_slot(gn_loop *loop, uint32_t slot)
{
    struct gn__timer_heap *t = &loop->timers;
    struct gn__timer *timer = &t->slots[slot];

    timer->gen++;
    timer->heap_pos = NO_SLOT;
    timer->next_free = t->free_head;
    t->free_head = slot;
    gn__loop_unref(loop);
}

int gn_timer_cancel(gn_loop *loop, uint64_t id)
{
    struct gn__timer_heap *t;
    uint32_t slot = (uint32_t)(id & 0xffffffffu) - 1;

    if (!loop)
        return GN_EINVAL;
    t = &loop->timers;
    if (id == 0 || slot >= t->nslots || t->slots[slot].gen != (uint32_t)(id >> 32) ||
        t->slots[slot].heap_pos == NO_SLOT)
        return GN_ENOTFOUND;
    heap_remove(t, t->slots[slot].heap_pos);
    release_slot(loop, slot);
    return 0;
}

/* Runs the timers due now.  Only those started before this pass run in
 * it, so a callback that starts a zero-delay timer cannot spin here. */
void gn__timers_run(gn_loop *loop)
{
    struct gn__timer_heap *t = &loop->timers;
    uint64_t now = loop->now_ms, pass_seq = t->seq;

    while (t->nheap > 0) {
        uint32_t slot = t->heap[0];
        struct gn__timer *timer = &t->slots[slot];
        gn_timer_fn fn = timer->fn;
        void *arg = timer->arg;
        uint64_t id = make_id(slot, timer->gen);

        if (timer->due > now || timer->seq >= pass_seq)
            return;
        heap_remove(t, 0);
        if (timer->repeat) {
            timer->due =
                timer->due + timer->repeat > now ? timer->due + timer->repeat : now + timer->repeat;
            heap_push(t, slot);
        } else {
            release_slot(loop, slot);
        }
        fn(loop, id, arg); /* may start or cancel timers: t->slots may move */
    }
}
