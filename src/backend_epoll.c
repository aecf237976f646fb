/*
 * The epoll backend (Linux).  Level-triggered: the conn core reads until
 * EAGAIN or a budget, and a descriptor still readable after the budget is
 * reported again next round instead of being lost, which edge-triggered
 * mode would require extra bookkeeping to avoid.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop.h"

#define EPOLL_BATCH 256

static int epoll_init(gn_loop *loop)
{
    loop->backend_events = malloc(EPOLL_BATCH * sizeof(struct epoll_event));
    if (!loop->backend_events)
        return GN_ENOMEM;
    loop->backend_fd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->backend_fd < 0) {
        int rc = gn_error_from_errno(errno);
        free(loop->backend_events);
        return rc;
    }
    return 0;
}

static void epoll_destroy(gn_loop *loop)
{
    close(loop->backend_fd);
    free(loop->backend_events);
}

static uint32_t to_epoll(unsigned events)
{
    return (events & GN__READ ? EPOLLIN : 0u) | (events & GN__WRITE ? EPOLLOUT : 0u);
}

static int epoll_watch(gn_loop *loop, struct gn__io *io, unsigned old_ev, unsigned new_ev)
{
    struct epoll_event ev = {.events = to_epoll(new_ev), .data.ptr = io};
    int op = !old_ev ? EPOLL_CTL_ADD : !new_ev ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;

    if (epoll_ctl(loop->backend_fd, op, io->fd, &ev) < 0)
        return gn_error_from_errno(errno);
    return 0;
}

/* Without branches: EPOLLIN is GN__READ's bit, EPOLLOUT (4) is GN__WRITE's
 * (2) shifted, and any of EPOLLERR | EPOLLHUP is GN__ERROR (4). */
static unsigned from_epoll(uint32_t e)
{
    _Static_assert(EPOLLIN == GN__READ && EPOLLOUT == GN__WRITE << 1, "epoll's event bits");
    return (e & EPOLLIN) | (e & EPOLLOUT) >> 1 | (e & (EPOLLERR | EPOLLHUP) ? GN__ERROR : 0u);
}

static int epoll_wait_dispatch(gn_loop *loop, int timeout_ms)
{
    struct epoll_event *events = loop->backend_events;
    int n = epoll_wait(loop->backend_fd, events, EPOLL_BATCH, timeout_ms);

    if (n < 0)
        return errno == EINTR ? 0 : gn_error_from_errno(errno);
    for (int i = 0; i < n; i++) {
        gn__io_dispatch(loop, events[i].data.ptr, from_epoll(events[i].events));
    }
    return n;
}

const struct gn__backend gn__backend_epoll = {
    .name = "epoll",
    .init = epoll_init,
    .destroy = epoll_destroy,
    .watch = epoll_watch,
    .wait = epoll_wait_dispatch,
};
