/*
 * Test helpers over sockets and loops, the same on every system; those
 * that run programs and count descriptors are in helpers_proc.c (POSIX)
 * and helpers_win.c.
 */
#include "helpers.h"

#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- async helpers ---- */

unsigned gn_test_free_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

bool gn_test_port_accepts(unsigned port)
{
    char addr[32];

    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    for (int i = 0; i < 250; i++) {
        int fd = gn_test_connect_fd(addr);
        if (fd >= 0) {
            close(fd);
            return true;
        }
        usleep(20000);
    }
    return false;
}

int gn_test_raw_listener(const char *prefix, char *addr, size_t len, int backlog)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    cr_assert_eq(listen(fd, backlog), 0);
    getsockname(fd, (struct sockaddr *)&sin, &slen);
    snprintf(addr, len, "%s127.0.0.1:%d", prefix, ntohs(sin.sin_port));
    return fd;
}

gn_server *gn_test_listen(gn_loop *loop, const char *addr, const gn_handlers *h,
                          const gn_options *opts, char *text, size_t len)
{
    char err[GN_ERRBUF_SIZE];
    gn_options with_loops = opts ? *opts : (gn_options){0};
    gn_endpoint ep;
    gn_server *srv;
    int rc;

    if (!with_loops.loops)
        with_loops.loops = gn_test_loops();
    rc = gn_listen(loop, addr, h, &with_loops, &srv, err, sizeof(err));

    cr_assert_eq(rc, 0, "gn_listen(%s): %s", addr, err);
    cr_assert_eq(gn_server_get_endpoint(srv, 0, &ep), 0);
    cr_assert_gt(gn_endpoint_format(&ep, text, len), 0);
    return srv;
}

static pthread_mutex_t checks_lock = PTHREAD_MUTEX_INITIALIZER;
static int checks_failed;
static char checks_first[512];

void gn_test_check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;
    int n;

    pthread_mutex_lock(&checks_lock);
    if (checks_failed++ == 0) {
        n = snprintf(checks_first, sizeof(checks_first), "%s:%d: %s: ", file, line, cond);
        va_start(ap, fmt);
        if (n > 0 && (size_t)n < sizeof(checks_first))
            vsnprintf(checks_first + n, sizeof(checks_first) - (size_t)n, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&checks_lock);
}

void gn_test_checks_ok(void)
{
    int failed;
    char first[sizeof(checks_first)];

    pthread_mutex_lock(&checks_lock);
    failed = checks_failed;
    memcpy(first, checks_first, sizeof(first));
    checks_failed = 0;
    checks_first[0] = '\0';
    pthread_mutex_unlock(&checks_lock);
    cr_expect_eq(failed, 0, "%d checks in handlers failed; the first: %s", failed, first);
}

size_t gn_test_loops(void)
{
    const char *env = getenv("GN_TEST_LOOPS");

    return env ? strtoul(env, NULL, 10) : 0;
}

int gn_test_connect_fd(const char *text)
{
    gn_endpoint ep;
    socklen_t len;
    const struct sockaddr *sa;
    int fd;

    if (gn_endpoint_parse(text, 0, &ep, NULL, 0) < 0)
        return -1;
    sa = gn_endpoint_sockaddr(&ep, &len);
    if (!sa)
        return -1;
    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, sa, len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

struct watchdog {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done, fired;
    unsigned ms;
    gn_loop *loop;
};

/* A thread, not a timer: a timer would keep the loop running. */
static void *watchdog_main(void *arg)
{
    struct watchdog *w = arg;
    struct timespec deadline;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += w->ms / 1000;
    deadline.tv_nsec += (long)(w->ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    while (!w->done)
        if (pthread_cond_timedwait(&w->cond, &w->lock, &deadline) != 0)
            break;
    if (!w->done) {
        w->fired = true;
        gn_loop_stop(w->loop);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int gn_test_run_loop_for(gn_loop *loop, unsigned ms)
{
    struct watchdog w = {
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, ms, loop};
    pthread_t thread;
    int rc;

    cr_assert_eq(pthread_create(&thread, NULL, watchdog_main, &w), 0);
    rc = gn_loop_run(loop);
    pthread_mutex_lock(&w.lock);
    w.done = true;
    pthread_cond_signal(&w.cond);
    pthread_mutex_unlock(&w.lock);
    pthread_join(thread, NULL);
    return w.fired ? GN_ETIMEDOUT : rc;
}

/* ---- Valgrind ---- */

unsigned gn_test_ms(unsigned ms)
{
    return getenv("GN_TEST_VALGRIND") ? ms * 20u : ms;
}
