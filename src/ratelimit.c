/*
 * Rate limits: a token bucket per direction of a connection, and per
 * direction of a group of connections (libevent's rate-limit groups).
 * A bucket holds up to `burst` bytes and refills at `rate` per second;
 * what may move now is the least of the connection's and its group's
 * tokens.  A direction with no tokens waits: the connection core stops
 * reading the socket, or leaves output queued, and a timer (the
 * connection's own, or the group's for all its waiting members) wakes it
 * once a quantum of tokens is back.  Reads taken past the tokens (a
 * completion backend's buffers already received) overdraw the bucket,
 * and the overdraft is paid by a longer pause, so the rate holds over
 * time whatever the pieces.
 */
#include <stdlib.h>

#include "ratelimit.h"
#include "reserved.h"

/* A paused direction wakes when this much of a second's tokens is back
 * (or the whole burst, if smaller): 20 ms at 10 MB/s is 200 KB, few
 * enough wake-ups and small enough pieces. */
#define QUANTUM_DIV 50

struct gn_rate_group {
    gn_loop *loop;
    struct gn__bucket b[2];
    struct gn__list members; /* struct gn__conn_rate.member */
    uint64_t timer[2];
    struct gn__handle handle; /* freed by gn_loop_free */
};

/* ---- buckets ---------------------------------------------------------- */

static uint64_t default_burst(uint64_t rate)
{
    return rate / 10 > 0 ? rate / 10 : 1;
}

static void bucket_init(struct gn__bucket *b, uint64_t rate, uint64_t burst)
{
    uint64_t max_burst = INT64_MAX / 2000;

    if (burst == 0)
        burst = default_burst(rate);
    if (burst > max_burst)
        burst = max_burst;
    b->rate = rate;
    b->cap = (int64_t)burst * 1000;
    b->milli = b->cap;
    b->last_ms = gn__clock_ms();
}

static void bucket_refill(struct gn__bucket *b, uint64_t now)
{
    uint64_t dt = now > b->last_ms ? now - b->last_ms : 0;
    /* Long enough to fill the bucket from empty: no product to overflow. */
    uint64_t fill_ms = (uint64_t)(b->cap - (b->milli < 0 ? b->milli : 0)) / b->rate + 1;

    b->last_ms = now;
    if (dt >= fill_ms) {
        b->milli = b->cap;
        return;
    }
    b->milli += (int64_t)(b->rate * dt);
    if (b->milli > b->cap)
        b->milli = b->cap;
}

/* Whole bytes available now (0 when empty or overdrawn). */
static uint64_t bucket_bytes(struct gn__bucket *b, uint64_t now)
{
    if (b->rate == 0)
        return UINT64_MAX;
    bucket_refill(b, now);
    return b->milli > 0 ? (uint64_t)b->milli / 1000 : 0;
}

static void bucket_take(struct gn__bucket *b, size_t n)
{
    if (b->rate)
        b->milli -= (int64_t)n * 1000;
}

static uint64_t quantum(const struct gn__bucket *b)
{
    uint64_t q = b->rate / QUANTUM_DIV, burst = (uint64_t)b->cap / 1000;

    if (q > burst)
        q = burst;
    return q > 0 ? q : 1;
}

/* Milliseconds until the bucket holds a quantum (at least 1). */
static uint64_t bucket_wait_ms(struct gn__bucket *b, uint64_t now)
{
    int64_t need;

    if (b->rate == 0)
        return 0;
    bucket_refill(b, now);
    need = (int64_t)quantum(b) * 1000 - b->milli;
    if (need <= 0)
        return 0;
    return ((uint64_t)need + b->rate - 1) / b->rate;
}

/* ---- a connection's state --------------------------------------------- */

static struct gn__conn_rate *rate_of(const gn_conn *conn)
{
    return conn->ext ? conn->ext->rate : NULL;
}

static void set_waiting(gn_conn *conn, enum gn__rate_dir dir, bool on)
{
    if (dir == GN__RATE_READ)
        conn->rate_wait_read = on;
    else
        conn->rate_wait_write = on;
    conn->ext->rate->waiting[dir] = on;
}

bool gn__rate_limits(const gn_conn *conn)
{
    const struct gn__conn_rate *r = rate_of(conn);

    return r && (r->own[0].rate || r->own[1].rate || r->group);
}

static void note_limited(gn_conn *conn)
{
    conn->rate_limited = gn__rate_limits(conn);
}

static struct gn__conn_rate *rate_state(gn_conn *conn, struct gn__conn_ext *ext,
                                        void (*wake)(gn_conn *conn, int dir))
{
    if (!ext->rate) {
        ext->rate = calloc(1, sizeof(*ext->rate));
        if (!ext->rate)
            return NULL;
        ext->rate->conn = conn;
        gn__list_init(&ext->rate->member);
    }
    ext->rate->wake = wake;
    return ext->rate;
}

int gn__rate_set(gn_conn *conn, struct gn__conn_ext *ext, const gn_rate_limit *limit,
                 void (*wake)(gn_conn *conn, int dir))
{
    static const gn_rate_limit none;
    struct gn__conn_rate *r;

    if (!limit)
        limit = &none;
    if (!ext->rate && !limit->read_bytes_per_s && !limit->write_bytes_per_s)
        return 0; /* nothing to undo */
    r = rate_state(conn, ext, wake);
    if (!r)
        return GN_ENOMEM;
    /* Waits for the old buckets end; the caller wakes the directions. */
    for (int dir = 0; dir < 2; dir++) {
        if (r->timer[dir] && conn->loop)
            gn_timer_cancel(conn->loop, r->timer[dir]);
        r->timer[dir] = 0;
        if (r->waiting[dir])
            set_waiting(conn, (enum gn__rate_dir)dir, false);
    }
    bucket_init(&r->own[GN__RATE_READ], limit->read_bytes_per_s, limit->read_burst);
    bucket_init(&r->own[GN__RATE_WRITE], limit->write_bytes_per_s, limit->write_burst);
    note_limited(conn);
    return 0;
}

/* ---- timers ----------------------------------------------------------- */

static void resume(struct gn__conn_rate *r, enum gn__rate_dir dir)
{
    if (!r->waiting[dir])
        return;
    set_waiting(r->conn, dir, false);
    if (r->wake)
        r->wake(r->conn, dir);
}

static void own_refilled(gn_loop *loop, uint64_t id, void *arg, enum gn__rate_dir dir)
{
    struct gn__conn_rate *r = arg;

    (void)loop;
    (void)id;
    r->timer[dir] = 0;
    resume(r, dir); /* a group still empty pauses it again at once */
}

static void own_read_refilled(gn_loop *loop, uint64_t id, void *arg)
{
    own_refilled(loop, id, arg, GN__RATE_READ);
}

static void own_write_refilled(gn_loop *loop, uint64_t id, void *arg)
{
    own_refilled(loop, id, arg, GN__RATE_WRITE);
}

static void group_refilled(gn_loop *loop, uint64_t id, void *arg, enum gn__rate_dir dir)
{
    gn_rate_group *g = arg;
    struct gn__list round, *node;

    (void)loop;
    (void)id;
    g->timer[dir] = 0;
    /* A woken member may close, leave or make another leave: take the
     * members out, and put each back before waking it. */
    gn__list_init(&round);
    while (!gn__list_empty(&g->members)) {
        node = g->members.next;
        gn__list_remove(node);
        gn__list_push_back(&round, node);
    }
    while (!gn__list_empty(&round)) {
        struct gn__conn_rate *r;
        node = round.next;
        gn__list_remove(node);
        gn__list_push_back(&g->members, node);
        r = gn__container_of(node, struct gn__conn_rate, member);
        if (!r->timer[dir])
            resume(r, dir);
    }
}

static void group_read_refilled(gn_loop *loop, uint64_t id, void *arg)
{
    group_refilled(loop, id, arg, GN__RATE_READ);
}

static void group_write_refilled(gn_loop *loop, uint64_t id, void *arg)
{
    group_refilled(loop, id, arg, GN__RATE_WRITE);
}

static const gn_timer_fn own_timer_fn[2] = {own_read_refilled, own_write_refilled};
static const gn_timer_fn group_timer_fn[2] = {group_read_refilled, group_write_refilled};

/* Wait for whichever bucket is empty; on a loop, a timer wakes the
 * direction (a blocking caller sleeps by gn__rate_wait_ms instead). */
static void start_waiting(gn_conn *conn, enum gn__rate_dir dir, uint64_t now)
{
    struct gn__conn_rate *r = conn->ext->rate;
    gn_rate_group *g = r->group;
    uint64_t own_ms = bucket_wait_ms(&r->own[dir], now);
    uint64_t group_ms = g ? bucket_wait_ms(&g->b[dir], now) : 0;

    if (!conn->loop)
        return; /* blocking: the caller sleeps by gn__rate_wait_ms */
    set_waiting(conn, dir, true);
    if (own_ms > 0 && !r->timer[dir] &&
        gn_timer_start(conn->loop, own_ms, 0, own_timer_fn[dir], r, &r->timer[dir]) < 0)
        r->timer[dir] = 0;
    if (group_ms > 0 && !g->timer[dir] &&
        gn_timer_start(g->loop, group_ms, 0, group_timer_fn[dir], g, &g->timer[dir]) < 0)
        g->timer[dir] = 0;
    /* No timer could start (out of memory): try again soon rather than
     * stall for ever. */
    if (!r->timer[dir] && !(g && g->timer[dir]) &&
        gn_timer_start(conn->loop, 1, 0, own_timer_fn[dir], r, &r->timer[dir]) < 0)
        r->timer[dir] = 0;
}

/* ---- the core's questions --------------------------------------------- */

size_t gn__rate_allow(gn_conn *conn, enum gn__rate_dir dir, size_t want)
{
    struct gn__conn_rate *r = rate_of(conn);
    uint64_t now, have;

    if (!r)
        return want;
    if (r->waiting[dir])
        return 0;
    now = gn__clock_ms();
    have = bucket_bytes(&r->own[dir], now);
    if (r->group) {
        uint64_t g = bucket_bytes(&r->group->b[dir], now);
        have = g < have ? g : have;
    }
    if (have == 0) {
        start_waiting(conn, dir, now);
        return 0;
    }
    return have < want ? (size_t)have : want;
}

bool gn__rate_used(gn_conn *conn, enum gn__rate_dir dir, size_t n)
{
    struct gn__conn_rate *r = rate_of(conn);
    uint64_t now;
    bool empty;

    if (!r || n == 0)
        return false;
    now = gn__clock_ms();
    bucket_take(&r->own[dir], n);
    empty = r->own[dir].rate && bucket_bytes(&r->own[dir], now) == 0;
    if (r->group) {
        bucket_take(&r->group->b[dir], n);
        empty = empty || (r->group->b[dir].rate && bucket_bytes(&r->group->b[dir], now) == 0);
    }
    if (empty && !r->waiting[dir])
        start_waiting(conn, dir, now);
    return empty;
}

uint64_t gn__rate_wait_ms(gn_conn *conn, enum gn__rate_dir dir)
{
    struct gn__conn_rate *r = rate_of(conn);

    return r ? bucket_wait_ms(&r->own[dir], gn__clock_ms()) : 0;
}

static void leave_group(struct gn__conn_rate *r)
{
    gn__list_remove(&r->member);
    r->group = NULL;
}

void gn__rate_stop(gn_conn *conn)
{
    struct gn__conn_rate *r = rate_of(conn);

    if (!r)
        return;
    for (int dir = 0; dir < 2; dir++) {
        if (r->timer[dir] && conn->loop)
            gn_timer_cancel(conn->loop, r->timer[dir]);
        r->timer[dir] = 0;
        if (r->waiting[dir])
            set_waiting(conn, (enum gn__rate_dir)dir, false);
    }
    leave_group(r);
    note_limited(conn);
}

void gn__rate_free(struct gn__conn_ext *ext)
{
    if (!ext->rate)
        return;
    gn__list_remove(&ext->rate->member);
    free(ext->rate);
    ext->rate = NULL;
}

int gn__rate_join(gn_conn *conn, struct gn__conn_ext *ext, gn_rate_group *group,
                  void (*wake)(gn_conn *conn, int dir))
{
    struct gn__conn_rate *r;

    if (!group && !ext->rate)
        return 0;
    r = rate_state(conn, ext, wake);
    if (!r)
        return GN_ENOMEM;
    leave_group(r);
    if (group) {
        r->group = group;
        gn__list_push_back(&group->members, &r->member);
    }
    note_limited(conn);
    /* Waiting on the old group's timer: look again now. */
    for (int dir = 0; dir < 2; dir++)
        if (r->waiting[dir] && !r->timer[dir])
            resume(r, (enum gn__rate_dir)dir);
    return 0;
}

/* ---- groups ----------------------------------------------------------- */

gn_loop *gn__rate_group_loop(const gn_rate_group *group)
{
    return group->loop;
}

static void group_close_handle(struct gn__handle *h)
{
    gn_rate_group_free(gn__container_of(h, gn_rate_group, handle));
}

static int limit_check(const gn_rate_limit *limit)
{
    return limit && GN__RESERVED_CLEAR(limit) ? 0 : GN_EINVAL;
}

int gn_rate_group_new(gn_loop *loop, const gn_rate_limit *limit, gn_rate_group **out)
{
    gn_rate_group *g;

    if (!loop || !out || limit_check(limit) < 0)
        return GN_EINVAL;
    g = calloc(1, sizeof(*g));
    if (!g)
        return GN_ENOMEM;
    g->loop = loop;
    gn__list_init(&g->members);
    bucket_init(&g->b[GN__RATE_READ], limit->read_bytes_per_s, limit->read_burst);
    bucket_init(&g->b[GN__RATE_WRITE], limit->write_bytes_per_s, limit->write_burst);
    g->handle.close = group_close_handle;
    gn__loop_handle_add(loop, &g->handle, false);
    *out = g;
    return 0;
}

int gn_rate_group_set_limit(gn_rate_group *group, const gn_rate_limit *limit)
{
    if (!group || limit_check(limit) < 0)
        return GN_EINVAL;
    bucket_init(&group->b[GN__RATE_READ], limit->read_bytes_per_s, limit->read_burst);
    bucket_init(&group->b[GN__RATE_WRITE], limit->write_bytes_per_s, limit->write_burst);
    group_refilled(group->loop, 0, group, GN__RATE_READ);
    group_refilled(group->loop, 0, group, GN__RATE_WRITE);
    return 0;
}

void gn_rate_group_free(gn_rate_group *group)
{
    if (!group)
        return;
    for (int dir = 0; dir < 2; dir++)
        if (group->timer[dir])
            gn_timer_cancel(group->loop, group->timer[dir]);
    /* Members go on under their own limits, woken if they waited on us. */
    while (!gn__list_empty(&group->members)) {
        struct gn__conn_rate *r =
            gn__container_of(group->members.next, struct gn__conn_rate, member);
        leave_group(r);
        note_limited(r->conn);
        for (int dir = 0; dir < 2; dir++)
            if (r->waiting[dir] && !r->timer[dir])
                resume(r, (enum gn__rate_dir)dir);
    }
    gn__loop_handle_remove(&group->handle);
    free(group);
}
