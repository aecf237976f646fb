/*
 * Watchers on the loop: descriptors the user owns (a pipe, an eventfd, a
 * terminal) reported readable and writable, paused and resumed, closed
 * inside their own callbacks; signals delivered as callbacks, from other
 * threads too, to several watchers, with the process's mask and
 * disposition put back after the last.  Run over every backend.
 */
#define _GNU_SOURCE /* pipe2 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

#define GUARD_MS 5000 /* no test waits this long unless it is failing */

static gn_loop *new_loop(void)
{
    gn_loop *loop;

    cr_assert_eq(gn_loop_new(&loop), 0);
    return loop;
}

static void make_pipe(int fds[2])
{
    cr_assert_eq(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
}

/* A watcher that reads what comes, then closes itself at the end. */
struct reader {
    char got[256];
    size_t len;
    int calls;
    bool eof;
    size_t close_after; /* close itself once this much came (0: at EOF) */
};

static void read_some(gn_watch *w, int fd, unsigned events, void *arg)
{
    struct reader *r = arg;
    ssize_t n;

    cr_assert_eq(events, GN_WATCH_READABLE);
    r->calls++;
    n = read(fd, r->got + r->len, sizeof(r->got) - 1 - r->len);
    cr_assert(n >= 0, "read: %s", strerror(errno));
    r->len += (size_t)n;
    r->eof = n == 0;
    if (r->eof || (r->close_after && r->len >= r->close_after))
        cr_assert_eq(gn_watch_close(w), 0);
}

Test(watch, pipe_readable_then_closed_in_its_own_callback)
{
    gn_loop *loop = new_loop();
    struct reader r = {.close_after = 5};
    gn_watch *w;
    int p[2];

    make_pipe(p);
    cr_assert_eq(gn_watch_start(loop, p[0], GN_WATCH_READABLE, read_some, &r, &w), 0);
    cr_assert_eq(write(p[1], "hello", 5), 5);
    /* The watcher keeps the loop running; closing it lets the run end. */
    cr_assert_eq(gn_test_run_loop_for(loop, GUARD_MS), 0);
    cr_assert_eq(r.len, 5);
    cr_assert_str_eq(r.got, "hello");
    cr_assert_eq(r.calls, 1);
    /* The descriptor is the caller's: still open, and watchable again. */
    cr_assert_geq(fcntl(p[0], F_GETFD), 0);
    cr_assert_eq(gn_watch_start(loop, p[0], GN_WATCH_READABLE, read_some, &r, &w), 0);
    gn_loop_free(loop);
    cr_assert_geq(fcntl(p[0], F_GETFD), 0, "gn_loop_free closed the user's descriptor");
    close(p[0]);
    close(p[1]);
}

Test(watch, hang_up_is_reported_as_readable_and_reads_end_of_file)
{
    gn_loop *loop = new_loop();
    struct reader r = {0};
    gn_watch *w;
    int p[2];

    make_pipe(p);
    cr_assert_eq(gn_watch_start(loop, p[0], GN_WATCH_READABLE, read_some, &r, &w), 0);
    cr_assert_eq(write(p[1], "ab", 2), 2);
    close(p[1]);
    cr_assert_eq(gn_test_run_loop_for(loop, GUARD_MS), 0);
    cr_assert(r.eof);
    cr_assert_str_eq(r.got, "ab");
    gn_loop_free(loop);
    close(p[0]);
}

struct writer {
    size_t wrote;
    int calls;
};

/* Fill the pipe until it is full, then stop. */
static void write_until_full(gn_watch *w, int fd, unsigned events, void *arg)
{
    static const char block[4096];
    struct writer *wr = arg;
    ssize_t n;

    cr_assert_eq(events, GN_WATCH_WRITABLE);
    wr->calls++;
    while ((n = write(fd, block, sizeof(block))) > 0)
        wr->wrote += (size_t)n;
    cr_assert(n < 0 && errno == EAGAIN, "write: %s", strerror(errno));
    gn_watch_close(w);
}

Test(watch, pipe_writable_until_full)
{
    gn_loop *loop = new_loop();
    struct writer wr = {0};
    gn_watch *w;
    char buf[4096];
    size_t drained = 0;
    ssize_t n;
    int p[2];

    make_pipe(p);
    cr_assert_eq(gn_watch_start(loop, p[1], GN_WATCH_WRITABLE, write_until_full, &wr, &w), 0);
    cr_assert_eq(gn_test_run_loop_for(loop, GUARD_MS), 0);
    cr_assert_eq(wr.calls, 1);
    cr_assert_gt(wr.wrote, 0);
    while ((n = read(p[0], buf, sizeof(buf))) > 0)
        drained += (size_t)n;
    cr_assert_eq(drained, wr.wrote);
    gn_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

/* Pause in the first callback; a timer checks nothing came meanwhile,
 * although the pipe stayed readable, and resumes. */
struct pausing {
    gn_watch *w;
    int calls;
    int calls_at_resume;
    bool resumed;
    char got[8];
    size_t len;
};

static void read_one_byte_pausing(gn_watch *w, int fd, unsigned events, void *arg)
{
    struct pausing *p = arg;

    (void)events;
    p->calls++;
    cr_assert_eq(read(fd, p->got + p->len, 1), 1);
    p->len++;
    if (!p->resumed) {
        cr_assert_eq(gn_watch_pause(w), 0);
        cr_assert(gn_watch_is_paused(w));
    } else if (p->len == 3) {
        gn_watch_close(w);
    }
}

static void resume_later(gn_loop *loop, uint64_t id, void *arg)
{
    struct pausing *p = arg;

    (void)loop;
    (void)id;
    p->calls_at_resume = p->calls;
    p->resumed = true;
    cr_assert_eq(gn_watch_resume(p->w), 0);
    cr_assert(!gn_watch_is_paused(p->w));
}

Test(watch, paused_watcher_is_not_called_until_resumed)
{
    gn_loop *loop = new_loop();
    struct pausing ps = {0};
    uint64_t id;
    int p[2];

    make_pipe(p);
    cr_assert_eq(write(p[1], "xyz", 3), 3);
    cr_assert_eq(gn_watch_start(loop, p[0], GN_WATCH_READABLE, read_one_byte_pausing, &ps, &ps.w),
                 0);
    /* Several iterations pass while paused: the pipe is still readable. */
    cr_assert_eq(gn_timer_start(loop, 30, 0, resume_later, &ps, &id), 0);
    cr_assert_eq(gn_test_run_loop_for(loop, GUARD_MS), 0);
    cr_assert_eq(ps.calls_at_resume, 1);
    cr_assert_eq(ps.calls, 3);
    cr_assert_eq(memcmp(ps.got, "xyz", 3), 0);
    gn_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

static void never_called(gn_watch *w, int fd, unsigned events, void *arg)
{
    (void)w;
    (void)fd;
    (void)events;
    (void)arg;
    cr_assert_fail("a paused or closed watcher was called");
}

Test(watch, paused_watcher_does_not_keep_the_loop_running)
{
    gn_loop *loop = new_loop();
    gn_watch *w;
    int p[2];

    make_pipe(p);
    cr_assert_eq(write(p[1], "x", 1), 1);
    cr_assert_eq(gn_watch_start(loop, p[0], GN_WATCH_READABLE, never_called, NULL, &w), 0);
    cr_assert_eq(gn_watch_pause(w), 0);
    cr_assert_eq(gn_watch_pause(w), 0, "pausing twice is harmless");
    cr_assert_eq(gn_test_run_loop_for(loop, GUARD_MS), 0);
    /* Events set while paused take effect on resume. */
    cr_assert_eq(gn_watch_set_events(w, GN_WATCH_READABLE | GN_WATCH_WRITABLE), 0);
    cr_assert(gn_watch_is_paused(w));
    gn_loop_free(loop); /* closes w */
    close(p[0]);
    close(p[1]);
}

/* Switching from readable to writable on a socket pair that is writable
 * but has nothing to read. */
static void expect_writable(gn_watch *w, int fd, unsigned events, void *arg)
{
    int *calls = arg;

    (void)fd;
    cr_assert_eq(events, GN_WATCH_WRITABLE);
    ++*calls;
    gn_watch_close(w);
}

Test(watch, set_events_switches_what_is_watched)
{
    gn_loop *loop = new_loop();
    gn_watch *w;
    int sv[2], calls = 0;

    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(gn_watch_start(loop, sv[0], GN_WATCH_READABLE, expect_writable, &calls, &w), 0);
    cr_assert_eq(gn_watch_set_events(w, GN_WATCH_WRITABLE), 0);
    cr_assert_eq(gn_test_run_loop_for(loop, GUARD_MS), 0);
    cr_assert_eq(calls, 1);
    gn_loop_free(loop);
    close(sv[0]);
    close(sv[1]);
}

/* An eventfd written from another thread wakes the loop. */
struct counter {
    uint64_t total;
    uint64_t want;
};

static void read_counter(gn_watch *w, int fd, unsigned events, void *arg)
{
    struct counter *c = arg;
    uint64_t v;

    (void)events;
    if (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
        c->total += v;
    if (c->total >= c->want)
        gn_watch_close(w);
}

static void *add_to_eventfd(void *arg)
{
    int fd = *(int *)arg;

    for (uint64_t i = 1; i <= 100; i++)
        cr_assert_eq(write(fd, &i, sizeof(i)), (ssize_t)sizeof(i));
    return NULL;
}

Test(watch, eventfd_written_by_another_thread)
{
    gn_loop *loop = new_loop();
    struct counter c = {0, 5050};
    pthread_t thread;
    gn_watch *w;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    cr_assert_geq(fd, 0);
    cr_assert_eq(gn_watch_start(loop, fd, GN_WATCH_READABLE, read_counter, &c, &w), 0);
    cr_assert_eq(pthread_create(&thread, NULL, add_to_eventfd, &fd), 0);
    cr_assert_eq(gn_test_run_loop_for(loop, GUARD_MS), 0);
    pthread_join(thread, NULL);
    cr_assert_eq(c.total, 5050);
    gn_loop_free(loop);
    close(fd);
}

/* A terminal: the pseudo-terminal's slave side reads a line typed on the
 * master (canonical mode: readable once the line ends), and the master
 * reads what the slave prints. */
Test(watch, terminal_reads_a_typed_line)
{
    gn_loop *loop = new_loop();
    struct reader tty = {.close_after = 6}, master = {.close_after = 4};
    gn_watch *wt, *wm;
    int m, s;

    cr_assert_eq(openpty(&m, &s, NULL, NULL, NULL), 0);
    cr_assert(isatty(s));
    cr_assert_eq(gn_watch_start(loop, s, GN_WATCH_READABLE, read_some, &tty, &wt), 0);
    cr_assert_eq(gn_watch_start(loop, m, GN_WATCH_READABLE, read_some, &master, &wm), 0);
    cr_assert_eq(write(m, "hello\n", 6), 6);
    cr_assert_eq(write(s, "ok\n", 3), 3); /* the terminal turns \n into \r\n */
    cr_assert_eq(gn_test_run_loop_for(loop, GUARD_MS), 0);
    cr_assert_str_eq(tty.got, "hello\n");
    /* The master also sees the echo of what was typed; the reply follows. */
    cr_assert(strstr(master.got, "ok\r\n") || strstr(master.got, "hello"), "master: '%s'",
              master.got);
    gn_loop_free(loop);
    close(m);
    close(s);
}

/* Two watchers ready in one batch: the first closes the second, which is
 * then never called, though the backend had already reported it. */
struct pair_close {
    gn_watch *other;
    int calls;
};

static void close_the_other(gn_watch *w, int fd, unsigned events, void *arg)
{
    struct pair_close *pc = arg;
    char c;

    (void)events;
    pc->calls++;
    cr_assert_eq(read(fd, &c, 1), 1);
    cr_assert_eq(gn_watch_close(pc->other), 0);
    cr_assert_eq(gn_watch_close(w), 0);
}

Test(watch, closing_another_watcher_ready_in_the_same_batch)
{
    gn_loop *loop = new_loop();
    struct pair_close a = {0}, b = {0};
    gn_watch *wa, *wb;
    int p[2], q[2];

    make_pipe(p);
    make_pipe(q);
    cr_assert_eq(write(p[1], "1", 1), 1);
    cr_assert_eq(write(q[1], "2", 1), 1);
    cr_assert_eq(gn_watch_start(loop, p[0], GN_WATCH_READABLE, close_the_other, &a, &wa), 0);
    cr_assert_eq(gn_watch_start(loop, q[0], GN_WATCH_READABLE, close_the_other, &b, &wb), 0);
    a.other = wb;
    b.other = wa;
    cr_assert_eq(gn_test_run_loop_for(loop, GUARD_MS), 0);
    cr_assert_eq(a.calls + b.calls, 1, "a closed watcher was called");
    gn_loop_free(loop);
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
}

Test(watch, bad_input_is_refused)
{
    gn_loop *loop = new_loop();
    char path[] = "/tmp/gn_watch_XXXXXX";
    gn_watch *w;
    int p[2], file;

    make_pipe(p);
    cr_assert_eq(gn_watch_start(NULL, p[0], GN_WATCH_READABLE, never_called, NULL, &w), GN_EINVAL);
    cr_assert_eq(gn_watch_start(loop, p[0], GN_WATCH_READABLE, NULL, NULL, &w), GN_EINVAL);
    cr_assert_eq(gn_watch_start(loop, p[0], GN_WATCH_READABLE, never_called, NULL, NULL),
                 GN_EINVAL);
    cr_assert_eq(gn_watch_start(loop, -1, GN_WATCH_READABLE, never_called, NULL, &w), GN_EINVAL);
    cr_assert_eq(gn_watch_start(loop, p[0], 0, never_called, NULL, &w), GN_EINVAL);
    cr_assert_eq(gn_watch_start(loop, p[0], 4, never_called, NULL, &w), GN_EINVAL);
    /* A descriptor number that is not open. */
    int closed = dup(p[0]);
    close(closed);
    cr_assert_eq(gn_watch_start(loop, closed, GN_WATCH_READABLE, never_called, NULL, &w),
                 GN_EINVAL);
    /* A regular file is always ready: read it directly. */
    file = mkstemp(path);
    cr_assert_geq(file, 0);
    unlink(path);
    cr_assert_eq(gn_watch_start(loop, file, GN_WATCH_READABLE, never_called, NULL, &w), GN_ENOTSUP);
    close(file);
    /* One watcher per descriptor and loop. */
    cr_assert_eq(gn_watch_start(loop, p[0], GN_WATCH_READABLE, never_called, NULL, &w), 0);
    gn_watch *again;
    cr_assert_eq(gn_watch_start(loop, p[0], GN_WATCH_WRITABLE, never_called, NULL, &again),
                 GN_EEXIST);
    cr_assert_eq(gn_watch_set_events(w, 0), GN_EINVAL);
    cr_assert_eq(gn_watch_set_events(NULL, GN_WATCH_READABLE), GN_EINVAL);
    cr_assert_eq(gn_watch_pause(NULL), GN_EINVAL);
    cr_assert_eq(gn_watch_resume(NULL), GN_EINVAL);
    cr_assert_eq(gn_watch_close(NULL), GN_EINVAL);
    cr_assert_eq(gn_watch_close(w), 0);
    cr_assert_eq(gn_watch_close(w), GN_EINVAL, "closed twice");
    cr_assert_eq(gn_watch_pause(w), GN_EINVAL);
    gn_loop_free(loop); /* frees w, closed but not yet freed */
    close(p[0]);
    close(p[1]);
}

/* /dev/null is always ready: epoll refuses it (and io_uring's readiness
 * is epoll's); poll(2) reports it readable, and a read gives end of file. */
Test(watch, dev_null_is_refused_where_epoll_cannot_poll_it)
{
    gn_loop *loop = new_loop();
    struct reader r = {0};
    gn_watch *w;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int rc;

    cr_assert_geq(fd, 0);
    rc = gn_watch_start(loop, fd, GN_WATCH_READABLE, read_some, &r, &w);
    if (strcmp(gn_loop_backend(loop), "poll") == 0) {
        cr_assert_eq(rc, 0);
        cr_assert_eq(gn_test_run_loop_for(loop, GUARD_MS), 0);
        cr_assert(r.eof);
    } else {
        cr_assert_eq(rc, GN_ENOTSUP, "%s: %s", gn_loop_backend(loop), gn_strerror(rc));
    }
    gn_loop_free(loop);
    close(fd);
}

/* ---- signals ------------------------------------------------------------ */

/* Watchers of one signal; the run ends when each has seen what it wants. */
struct sig_case {
    gn_loop *loop;
    uint64_t guard;
    int calls[3];
    int want;     /* calls in total before the run ends */
    int close_at; /* watcher 0 closes itself at this call (0: never) */
    gn_signal *s[3];
    pthread_t loop_thread;
    bool on_loop_thread;
};

static void guard_fired(gn_loop *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    (void)arg;
    cr_assert_fail("the signal never came");
}

static int total_calls(const struct sig_case *sc)
{
    return sc->calls[0] + sc->calls[1] + sc->calls[2];
}

static void count_signal(gn_signal *s, int signum, void *arg)
{
    struct sig_case *sc = arg;
    int i = s == sc->s[0] ? 0 : s == sc->s[1] ? 1 : 2;

    cr_assert_eq(signum, SIGUSR1);
    sc->on_loop_thread &= pthread_equal(pthread_self(), sc->loop_thread) != 0;
    sc->calls[i]++;
    if (i == 0 && sc->calls[0] == sc->close_at)
        cr_assert_eq(gn_signal_close(s), 0);
    if (total_calls(sc) >= sc->want)
        gn_timer_cancel(sc->loop, sc->guard);
}

static void sig_case_start(struct sig_case *sc, int watchers, int want)
{
    sc->loop = new_loop();
    sc->want = want;
    sc->loop_thread = pthread_self();
    sc->on_loop_thread = true;
    for (int i = 0; i < watchers; i++)
        cr_assert_eq(gn_signal_start(sc->loop, SIGUSR1, count_signal, sc, &sc->s[i]), 0);
    /* Signal watchers do not keep the loop running: the guard does. */
    cr_assert_eq(gn_timer_start(sc->loop, GUARD_MS, 0, guard_fired, NULL, &sc->guard), 0);
}

struct sender {
    pthread_t target;
    enum { TO_THREAD, TO_PROCESS, TO_ITSELF } how;
    int times;
};

static void *send_signal(void *arg)
{
    struct sender *snd = arg;
    sigset_t one;

    /* This thread inherited the block from the loop's thread; raising
     * here after unblocking plays a thread another library started. */
    sigemptyset(&one);
    sigaddset(&one, SIGUSR1);
    if (snd->how == TO_ITSELF)
        pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    for (int i = 0; i < snd->times; i++) {
        if (snd->how == TO_THREAD)
            cr_assert_eq(pthread_kill(snd->target, SIGUSR1), 0);
        else if (snd->how == TO_PROCESS)
            cr_assert_eq(kill(getpid(), SIGUSR1), 0);
        else
            cr_assert_eq(raise(SIGUSR1), 0); /* lands here: forwarded */
        if (i + 1 < snd->times)
            usleep(20000); /* separate deliveries: standard signals do not queue */
    }
    return NULL;
}

static void run_with_sender(struct sig_case *sc, struct sender *snd)
{
    pthread_t thread;

    snd->target = pthread_self();
    cr_assert_eq(pthread_create(&thread, NULL, send_signal, snd), 0);
    cr_assert_eq(gn_loop_run(sc->loop), 0);
    pthread_join(thread, NULL);
    cr_assert(sc->on_loop_thread);
}

Test(signal, sent_to_the_loop_thread_from_another_thread)
{
    struct sig_case sc = {0};
    struct sender snd = {.how = TO_THREAD, .times = 1};

    sig_case_start(&sc, 1, 1);
    run_with_sender(&sc, &snd);
    cr_assert_eq(sc.calls[0], 1);
    gn_loop_free(sc.loop);
}

Test(signal, sent_to_the_process_from_another_thread)
{
    struct sig_case sc = {0};
    struct sender snd = {.how = TO_PROCESS, .times = 1};

    sig_case_start(&sc, 1, 1);
    run_with_sender(&sc, &snd);
    cr_assert_eq(sc.calls[0], 1);
    gn_loop_free(sc.loop);
}

Test(signal, landing_on_a_thread_that_does_not_block_it_is_forwarded)
{
    struct sig_case sc = {0};
    struct sender snd = {.how = TO_ITSELF, .times = 1};

    sig_case_start(&sc, 1, 1);
    run_with_sender(&sc, &snd);
    cr_assert_eq(sc.calls[0], 1);
    gn_loop_free(sc.loop);
}

Test(signal, two_watchers_of_one_signal_are_both_called)
{
    struct sig_case sc = {0};
    struct sender snd = {.how = TO_THREAD, .times = 1};

    sig_case_start(&sc, 2, 2);
    run_with_sender(&sc, &snd);
    cr_assert_eq(sc.calls[0], 1);
    cr_assert_eq(sc.calls[1], 1);
    gn_loop_free(sc.loop);
}

Test(signal, watcher_closed_in_its_own_callback_is_not_called_again)
{
    struct sig_case sc = {.close_at = 1};
    struct sender snd = {.how = TO_THREAD, .times = 2};

    /* Watcher 0 closes itself at the first signal; 1 sees both. */
    sig_case_start(&sc, 2, 3);
    run_with_sender(&sc, &snd);
    cr_assert_eq(sc.calls[0], 1);
    cr_assert_eq(sc.calls[1], 2);
    gn_loop_free(sc.loop);
}

static void user_handler(int signum)
{
    (void)signum;
}

static bool blocked_here(int signum)
{
    sigset_t now;

    pthread_sigmask(SIG_SETMASK, NULL, &now);
    return sigismember(&now, signum);
}

static void ignore_signal(gn_signal *s, int signum, void *arg)
{
    (void)s;
    (void)signum;
    (void)arg;
}

Test(signal, last_watcher_restores_disposition_and_mask)
{
    struct sigaction mine = {.sa_handler = user_handler}, now;
    gn_loop *loop = new_loop();
    gn_signal *a, *b;

    sigemptyset(&mine.sa_mask);
    cr_assert_eq(sigaction(SIGUSR2, &mine, NULL), 0);
    cr_assert(!blocked_here(SIGUSR2));
    cr_assert_eq(gn_signal_start(loop, SIGUSR2, ignore_signal, NULL, &a), 0);
    cr_assert_eq(gn_signal_start(loop, SIGUSR2, ignore_signal, NULL, &b), 0);
    cr_assert(blocked_here(SIGUSR2));
    sigaction(SIGUSR2, NULL, &now);
    cr_assert_neq(now.sa_handler, user_handler, "the library's forwarder is in place");
    cr_assert_eq(gn_signal_close(a), 0);
    cr_assert(blocked_here(SIGUSR2), "one watcher is left");
    cr_assert_eq(gn_signal_close(b), 0);
    cr_assert(!blocked_here(SIGUSR2));
    sigaction(SIGUSR2, NULL, &now);
    cr_assert_eq(now.sa_handler, user_handler);
    cr_assert_eq(gn_signal_close(b), GN_EINVAL, "closed twice");
    gn_loop_free(loop);
}

/* An ignored signal (nohup's SIGHUP) still reaches its watchers, and is
 * ignored again once the last is closed. */
Test(signal, an_ignored_signal_reaches_its_watcher_and_is_ignored_again_after)
{
    struct sig_case sc = {0};
    struct sender snd = {.how = TO_THREAD, .times = 1};
    struct sigaction now;

    signal(SIGUSR1, SIG_IGN);
    sig_case_start(&sc, 1, 1);
    run_with_sender(&sc, &snd);
    cr_assert_eq(sc.calls[0], 1);
    gn_loop_free(sc.loop);
    sigaction(SIGUSR1, NULL, &now);
    cr_assert_eq(now.sa_handler, SIG_IGN);
}

Test(signal, a_signal_blocked_before_stays_blocked)
{
    gn_loop *loop = new_loop();
    sigset_t one;
    gn_signal *s;

    sigemptyset(&one);
    sigaddset(&one, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &one, NULL);
    cr_assert_eq(gn_signal_start(loop, SIGUSR2, ignore_signal, NULL, &s), 0);
    gn_loop_free(loop); /* closes s */
    cr_assert(blocked_here(SIGUSR2));
    sigaction(SIGUSR2, NULL, &(struct sigaction){0});
}

Test(signal, bad_signal_numbers_are_refused)
{
    static const int bad[] = {0, -1, SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL, 32, 1000};
    gn_loop *loop = new_loop();
    gn_signal *s;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(gn_signal_start(loop, bad[i], ignore_signal, NULL, &s), GN_EINVAL, "signal %d",
                     bad[i]);
    cr_assert_eq(gn_signal_start(NULL, SIGUSR1, ignore_signal, NULL, &s), GN_EINVAL);
    cr_assert_eq(gn_signal_start(loop, SIGUSR1, NULL, NULL, &s), GN_EINVAL);
    cr_assert_eq(gn_signal_start(loop, SIGUSR1, ignore_signal, NULL, NULL), GN_EINVAL);
    cr_assert_eq(gn_signal_close(NULL), GN_EINVAL);
    cr_assert(!blocked_here(SIGUSR1), "a refused watch changed the mask");
    gn_loop_free(loop);
}

/* Two loops on two threads watch one signal: a signal sent to a thread
 * reaches that thread's loop. */
struct loop_thread {
    struct sig_case sc;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool ready;
    pthread_t self;
};

static void *run_second_loop(void *arg)
{
    struct loop_thread *lt = arg;

    sig_case_start(&lt->sc, 1, 1);
    pthread_mutex_lock(&lt->lock);
    lt->ready = true;
    pthread_cond_signal(&lt->cond);
    pthread_mutex_unlock(&lt->lock);
    cr_assert_eq(gn_loop_run(lt->sc.loop), 0);
    gn_loop_free(lt->sc.loop);
    return NULL;
}

Test(signal, two_loops_on_two_threads_each_get_their_own)
{
    static struct loop_thread lt = {.lock = PTHREAD_MUTEX_INITIALIZER,
                                    .cond = PTHREAD_COND_INITIALIZER};
    struct sig_case sc = {0};
    struct sender snd = {.how = TO_THREAD, .times = 1};
    pthread_t thread;

    cr_assert_eq(pthread_create(&thread, NULL, run_second_loop, &lt), 0);
    pthread_mutex_lock(&lt.lock);
    while (!lt.ready)
        pthread_cond_wait(&lt.cond, &lt.lock);
    pthread_mutex_unlock(&lt.lock);
    cr_assert_eq(pthread_kill(thread, SIGUSR1), 0);
    sig_case_start(&sc, 1, 1);
    run_with_sender(&sc, &snd);
    pthread_join(thread, NULL);
    cr_assert_eq(sc.calls[0], 1);
    cr_assert_eq(lt.sc.calls[0], 1);
    cr_assert(lt.sc.on_loop_thread);
}
