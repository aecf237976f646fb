/*
 * Deadlines for blocking calls: a timeout becomes one point on the
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

uint64_t gn__deadline_after(uint32_t timeout_ms)
{
    return timeout_ms == GN_NO_TIMEOUT ? GN__NO_DEADLINE : gn__clock_ms() + timeout_ms;
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
        if (n == 0)
            return GN_ETIMEDOUT;
        if (errno != EINTR)
            return gn_error_from_errno(errno);
    }
}
