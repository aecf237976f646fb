/*
 * Tasks posted from other threads all run exactly once, on the loop's
 * thread, in order per posting thread; gn_loop_stop works from any thread.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "gnezdo.h"
#include "helpers.h"

#define THREADS          4
#define TASKS_PER_THREAD 10000

struct counts {
    pthread_t loop_thread;
    int runs[THREADS][TASKS_PER_THREAD];
    int last[THREADS];
    bool in_order;
    bool on_loop_thread;
};

struct task_arg {
    struct counts *c;
    int thread, index;
};

static struct task_arg args[THREADS][TASKS_PER_THREAD];

static void task(gn_loop *loop, void *arg)
{
    struct task_arg *a = arg;

    (void)loop;
    a->c->runs[a->thread][a->index]++;
    if (a->index != a->c->last[a->thread] + 1)
        a->c->in_order = false;
    a->c->last[a->thread] = a->index;
    if (!pthread_equal(pthread_self(), a->c->loop_thread))
        a->c->on_loop_thread = false;
}

struct poster {
    gn_loop *loop;
    int thread;
    struct counts *c;
};

static void *post_all(void *arg)
{
    struct poster *p = arg;

    for (int i = 0; i < TASKS_PER_THREAD; i++) {
        args[p->thread][i] = (struct task_arg){p->c, p->thread, i};
        cr_assert_eq(gn_loop_post(p->loop, task, &args[p->thread][i]), 0);
    }
    return NULL;
}

static void keep_alive(gn_loop *loop, uint64_t id, void *arg)
{
    struct counts *c = arg;
    int done = 0;

    (void)id;
    for (int t = 0; t < THREADS; t++)
        done += c->last[t] == TASKS_PER_THREAD - 1;
    if (done == THREADS)
        gn_timer_cancel(loop, id);
}

Test(loop_post, tasks_from_four_threads_each_run_exactly_once_in_order)
{
    static struct counts c;
    struct poster posters[THREADS];
    pthread_t threads[THREADS];
    gn_loop *loop;
    uint64_t id;

    c.loop_thread = pthread_self();
    c.in_order = c.on_loop_thread = true;
    for (int t = 0; t < THREADS; t++)
        c.last[t] = -1;
    cr_assert_eq(gn_loop_new(&loop), 0);
    /* Keeps the loop running until every task arrived. */
    cr_assert_eq(gn_timer_start(loop, 1, 1, keep_alive, &c, &id), 0);
    for (int t = 0; t < THREADS; t++) {
        posters[t] = (struct poster){loop, t, &c};
        cr_assert_eq(pthread_create(&threads[t], NULL, post_all, &posters[t]), 0);
    }
    cr_assert_eq(gn_test_run_loop_for(loop, 20000), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    gn_loop_run(loop); /* anything posted after the timer ended */
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < TASKS_PER_THREAD; i++)
            cr_assert_eq(c.runs[t][i], 1, "task %d of thread %d ran %d times", i, t, c.runs[t][i]);
    cr_expect(c.in_order, "tasks of one thread run in the order posted");
    cr_expect(c.on_loop_thread, "tasks run on the loop's thread");
    gn_loop_free(loop);
}

static void never(gn_loop *loop, void *arg)
{
    (void)loop;
    *(int *)arg = 1;
}

Test(loop_post, a_posted_task_keeps_run_going_and_free_drops_unrun_tasks)
{
    gn_loop *loop;
    int ran = 0;

    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_loop_post(loop, never, &ran), 0);
    cr_assert_eq(gn_loop_run(loop), 0);
    cr_expect_eq(ran, 1);
    ran = 0;
    cr_assert_eq(gn_loop_post(loop, never, &ran), 0);
    gn_loop_free(loop);
    cr_expect_eq(ran, 0, "a task posted to a loop freed before running never runs");
    cr_expect_eq(gn_loop_post(NULL, never, &ran), GN_EINVAL);
}

static void *stop_later(void *arg)
{
    struct timespec ts = {0, 50 * 1000000L};

    nanosleep(&ts, NULL);
    gn_loop_stop(arg);
    return NULL;
}

static void forever(gn_loop *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    (void)arg;
}

Test(loop_post, stop_from_another_thread_returns_run)
{
    gn_loop *loop;
    pthread_t thread;
    uint64_t id;

    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_assert_eq(gn_timer_start(loop, 60000, 0, forever, NULL, &id), 0);
    cr_assert_eq(pthread_create(&thread, NULL, stop_later, loop), 0);
    cr_expect_eq(gn_test_run_loop_for(loop, 10000), 0, "stopped by the thread, not the watchdog");
    pthread_join(thread, NULL);
    gn_loop_free(loop);
}
