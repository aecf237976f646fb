/*
 * Time limits: how a timeout as the user writes it (GN_DEFAULT_TIMEOUT,
 * GN_NO_TIMEOUT, GN_NO_WAIT or a count of milliseconds) reads, and the
 * deadlines of blocking calls.  A timeout becomes one point on the
 * monotonic clock when a call starts, and every wait inside the call
 * polls for the time left, so EINTR or many short waits never stretch
 * the call past it.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <time.h>

#include "loop.h"

uint64_t gn__clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t gn_now_ms(void)
{
    return gn__clock_ms();
}

uint32_t gn__timeout_or(uint32_t timeout_ms, uint32_t default_ms)
{
    return timeout_ms == GN_DEFAULT_TIMEOUT ? default_ms : timeout_ms;
}

uint32_t gn__timer_ms(uint32_t timeout_ms)
{
    return timeout_ms == GN_NO_WAIT ? 0 : timeout_ms;
}

uint64_t gn__deadline_after(uint32_t timeout_ms)
{
    if (timeout_ms == GN_NO_TIMEOUT)
        return GN__NO_DEADLINE;
    return gn__clock_ms() + gn__timer_ms(timeout_ms);
}

uint64_t gn__deadline_min(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

int gn__poll_ms(uint64_t deadline)
{
    uint64_t now;

    if (deadline == GN__NO_DEADLINE)
        return -1;
    now = gn__clock_ms();
    if (now >= deadline)
        return 0;
    return deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
}

int gn__wait_fd(int fd, short events, uint64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};

    for (;;) {
        int n = poll(&p, 1, gn__poll_ms(deadline));
        if (n > 0)
            return 0; /* errors and hang-ups show in the next call */
        /* poll rounds its own timeout; the clock, not poll, says whether
         * the deadline has passed (a wait capped at INT_MAX ms ends early) */
        if (n == 0 && gn__poll_ms(deadline) == 0)
            return GN_ETIMEDOUT;
        if (n < 0 && errno != EINTR)
            return gn_error_from_errno(errno);
    }
}
