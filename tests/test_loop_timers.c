/*
 * Timers fire in order and on time (within tolerance), repeat, can be
 * cancelled from inside their own callback, and stale ids are harmless.
 * A loop with nothing to do returns at once.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gnezdo.h"
#include "helpers.h"

#define TOLERANCE_MS 150 /* a loaded CI machine; lateness only, never early */

struct fired {
    gn_loop *loop;
    uint64_t start;
    int order[16];
    uint64_t at[16];
    int n;
};

static void record(gn_loop *loop, uint64_t id, void *arg)
{
    struct fired *f = arg;

    (void)id;
    f->at[f->n] = gn_loop_now(loop) - f->start;
    f->order[f->n] = f->n;
    f->n++;
}

Test(loop_timers, empty_loop_returns_at_once)
{
    const char *want = getenv("GN_BACKEND"), *got;
    gn_loop *loop;

    cr_assert_eq(gn_loop_new(&loop), 0);
    got = gn_loop_backend(loop);
    /* the suites run over the default backend and again with GN_BACKEND
     * set; io_uring (the default where built) falls back to epoll where
     * the kernel refuses it */
    if (!want || strcmp(want, "uring") == 0)
        cr_expect(strcmp(got, "uring") == 0 || strcmp(got, "epoll") == 0, "%s", got);
    else
        cr_expect_str_eq(got, want);
    cr_expect_eq(gn_loop_run(loop), 0);
    gn_loop_free(loop);
}

struct ordered {
    int seen[8];
    int n;
};

static struct ordered *ordered_state;

static void note(gn_loop *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    ordered_state->seen[ordered_state->n++] = (int)(intptr_t)arg;
}

Test(loop_timers, fire_in_deadline_order_and_ties_in_start_order)
{
    static const unsigned delays[] = {60, 20, 40, 20, 0};
    static const int expected[] = {4, 1, 3, 2, 0};
    struct ordered o = {0};
    gn_loop *loop;
    uint64_t id;

    ordered_state = &o;
    cr_assert_eq(gn_loop_new(&loop), 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(gn_timer_start(loop, delays[i], 0, note, (void *)(intptr_t)i, &id), 0);
    cr_assert_eq(gn_test_run_loop_for(loop, 5000), 0);
    cr_assert_eq(o.n, 5);
    for (int i = 0; i < 5; i++)
        cr_expect_eq(o.seen[i], expected[i], "position %d", i);
    gn_loop_free(loop);
}

Test(loop_timers, fire_on_time_within_tolerance)
{
    struct fired f = {0};
    gn_loop *loop;
    uint64_t id;

    cr_assert_eq(gn_loop_new(&loop), 0);
    f.start = gn_loop_now(loop);
    cr_assert_eq(gn_timer_start(loop, 100, 0, record, &f, &id), 0);
    cr_assert_eq(gn_timer_start(loop, 250, 0, record, &f, &id), 0);
    cr_assert_eq(gn_test_run_loop_for(loop, 5000), 0);
    cr_assert_eq(f.n, 2);
    cr_expect_geq(f.at[0], 100);
    cr_expect_leq(f.at[0], 100 + gn_test_ms(TOLERANCE_MS));
    cr_expect_geq(f.at[1], 250);
    cr_expect_leq(f.at[1], 250 + gn_test_ms(TOLERANCE_MS));
    gn_loop_free(loop);
}

struct repeat {
    int count;
    uint64_t id;
    int cancel_rc;
};

static void tick(gn_loop *loop, uint64_t id, void *arg)
{
    struct repeat *r = arg;

    cr_expect_eq(id, r->id);
    if (++r->count == 5)
        r->cancel_rc = gn_timer_cancel(loop, id);
}

Test(loop_timers, repeating_timer_cancelled_inside_its_callback_stops)
{
    struct repeat r = {0};
    gn_loop *loop;

    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_timer_start(loop, 5, 5, tick, &r, &r.id), 0);
    cr_assert_eq(gn_test_run_loop_for(loop, 5000), 0, "the loop ends once the timer is gone");
    cr_expect_eq(r.count, 5);
    cr_expect_eq(r.cancel_rc, 0);
    cr_expect_eq(gn_timer_cancel(loop, r.id), GN_ENOTFOUND);
    gn_loop_free(loop);
}

static void cancel_self_once(gn_loop *loop, uint64_t id, void *arg)
{
    *(int *)arg = gn_timer_cancel(loop, id);
}

Test(loop_timers, fired_and_cancelled_ids_are_not_found_and_never_hit_others)
{
    gn_loop *loop;
    uint64_t a, b;
    int rc = 1;

    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_timer_start(loop, 0, 0, cancel_self_once, &rc, &a), 0);
    cr_assert_eq(gn_test_run_loop_for(loop, 5000), 0);
    cr_expect_eq(rc, GN_ENOTFOUND, "a one-shot timer is gone once it fires");
    /* b reuses a's slot; a's stale id must not cancel it. */
    cr_assert_eq(gn_timer_start(loop, 10000, 0, cancel_self_once, &rc, &b), 0);
    cr_expect_neq(a, b);
    cr_expect_eq(gn_timer_cancel(loop, a), GN_ENOTFOUND);
    cr_expect_eq(gn_timer_cancel(loop, b), 0);
    cr_expect_eq(gn_timer_cancel(loop, 0), GN_ENOTFOUND);
    cr_expect_eq(gn_timer_cancel(loop, UINT64_MAX), GN_ENOTFOUND);
    cr_expect_eq(gn_loop_run(loop), 0, "nothing left: returns at once");
    gn_loop_free(loop);
}

Test(loop_timers, bad_arguments_are_einval)
{
    gn_loop *loop;
    uint64_t id;

    cr_expect_eq(gn_loop_new(NULL), GN_EINVAL);
    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_expect_eq(gn_timer_start(NULL, 1, 0, record, NULL, &id), GN_EINVAL);
    cr_expect_eq(gn_timer_start(loop, 1, 0, NULL, NULL, &id), GN_EINVAL);
    cr_expect_eq(gn_timer_start(loop, 1, 0, record, NULL, NULL), GN_EINVAL);
    cr_expect_eq(gn_timer_cancel(NULL, 1), GN_EINVAL);
    cr_expect_eq(gn_loop_run(NULL), GN_EINVAL);
    gn_loop_stop(NULL);
    gn_loop_free(NULL);
    gn_loop_free(loop);
}

#define SORTED_TIMERS 2000

/* Each timer's due time lies between the clock read before its start
 * and the one after, plus its delay: the bounds make the order check
 * hold however long the starts take (a loaded machine, Valgrind). */
static struct {
    uint64_t earliest, latest;
} sorted_due[SORTED_TIMERS];
static uint64_t sorted_floor, sorted_count;

static void record_sorted(gn_loop *loop, uint64_t id, void *arg)
{
    size_t i = (size_t)(uintptr_t)arg;

    (void)loop;
    (void)id;
    cr_expect_geq(sorted_due[i].latest, sorted_floor,
                  "timer %zu, due by %llu, fired after one due no earlier than %llu", i,
                  (unsigned long long)sorted_due[i].latest, (unsigned long long)sorted_floor);
    if (sorted_due[i].earliest > sorted_floor)
        sorted_floor = sorted_due[i].earliest;
    sorted_count++;
}

Test(loop_timers, many_timers_with_random_delays_fire_sorted)
{
    gn_loop *loop;
    uint64_t id;

    int expected = 0;

    cr_assert_eq(gn_loop_new(&loop), 0);
    srand(42);
    for (int i = 0; i < SORTED_TIMERS; i++) {
        /* Steps of 20 ms: many timers share a due time, and later starts
         * with shorter delays overtake earlier ones. */
        uint64_t delay = (uint64_t)(rand() % 10) * 20;

        sorted_due[i].earliest = gn_now_ms() + delay;
        cr_assert_eq(gn_timer_start(loop, delay, 0, record_sorted, (void *)(uintptr_t)i, &id), 0);
        sorted_due[i].latest = gn_now_ms() + delay;
        if (i % 3 == 0)
            cr_assert_eq(gn_timer_cancel(loop, id), 0);
        else
            expected++;
    }
    cr_assert_eq(gn_test_run_loop_for(loop, 5000), 0);
    cr_expect_eq(sorted_count, (uint64_t)expected);
    gn_loop_free(loop);
}
