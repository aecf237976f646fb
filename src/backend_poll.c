/*
 * The poll(2) backend: POSIX, for systems without epoll and as a second
 * implementation of the backend interface (GN_BACKEND=poll selects it,
 * which the tests use to run the connection suites over it too).
 *
 * One pollfd per watched descriptor, kept dense: an io remembers its slot,
 * and removing one moves the last into its place.  Ready descriptors are
 * copied out, a batch at a time, before callbacks run, because callbacks
 * add and remove descriptors; a collected one has its revents cleared, so
 * a move never reports it twice (a ready one moved behind the scan waits
 * for the next poll: readiness is level-triggered); one closed meanwhile
 * is skipped by gn__io_dispatch (its fd is -1), as with epoll.  The batch
 * lives on the stack: per descriptor only the pollfd and its io pointer.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "loop.h"

struct poll_state {
    struct pollfd *fds;
    struct gn__io **ios; /* ios[i] watches fds[i] */
    size_t n, cap;
};

#define BATCH 64

struct ready {
    struct gn__io *io;
    unsigned events;
};

static int poll_init(gn_loop *loop)
{
    struct poll_state *ps = calloc(1, sizeof(*ps));

    if (!ps)
        return GN_ENOMEM;
    loop->backend_events = ps;
    return 0;
}

static void poll_destroy(gn_loop *loop)
{
    struct poll_state *ps = loop->backend_events;

    free(ps->fds);
    free(ps->ios);
    free(ps);
}

static int grow(struct poll_state *ps)
{
    size_t cap = ps->cap ? ps->cap * 2 : 64;
    struct pollfd *fds;
    struct gn__io **ios;

    if (cap > (1u << 24)) /* io->slot has 24 bits */
        return GN_ENOMEM;
    fds = realloc(ps->fds, cap * sizeof(*fds));
    if (!fds)
        return GN_ENOMEM;
    ps->fds = fds;
    ios = realloc(ps->ios, cap * sizeof(*ios));
    if (!ios)
        return GN_ENOMEM;
    ps->ios = ios;
    ps->cap = cap;
    return 0;
}

static short to_poll(unsigned events)
{
    return (short)((events & GN__READ ? POLLIN : 0) | (events & GN__WRITE ? POLLOUT : 0));
}

static int poll_watch(gn_loop *loop, struct gn__io *io, unsigned old_ev, unsigned new_ev)
{
    struct poll_state *ps = loop->backend_events;
    size_t last;

    if (!old_ev) {
        if (ps->n == ps->cap && grow(ps) < 0)
            return GN_ENOMEM;
        io->slot = ps->n++;
        ps->fds[io->slot] = (struct pollfd){.fd = io->fd, .events = to_poll(new_ev)};
        ps->ios[io->slot] = io;
        return 0;
    }
    if (new_ev) {
        ps->fds[io->slot].events = to_poll(new_ev);
        return 0;
    }
    last = --ps->n;
    if (io->slot != last) {
        ps->fds[io->slot] = ps->fds[last];
        ps->ios[io->slot] = ps->ios[last];
        ps->ios[io->slot]->slot = io->slot;
    }
    return 0;
}

static unsigned events_of(short e)
{
    return (e & POLLIN ? GN__READ : 0u) | (e & POLLOUT ? GN__WRITE : 0u) |
           (e & (POLLERR | POLLHUP | POLLNVAL) ? GN__ERROR : 0u);
}

/* Up to BATCH ready descriptors from index *pos on, their revents taken. */
static size_t collect(struct poll_state *ps, size_t *pos, struct ready *batch)
{
    size_t nready = 0;

    for (; *pos < ps->n && nready < BATCH; ++*pos) {
        short e = ps->fds[*pos].revents;
        if (!e)
            continue;
        ps->fds[*pos].revents = 0;
        batch[nready++] = (struct ready){ps->ios[*pos], events_of(e)};
    }
    return nready;
}

static int poll_wait_dispatch(gn_loop *loop, int timeout_ms)
{
    struct poll_state *ps = loop->backend_events;
    struct ready batch[BATCH];
    size_t pos = 0, nready;
    int n = poll(ps->fds, (nfds_t)ps->n, timeout_ms);

    if (n < 0)
        return errno == EINTR ? 0 : gn_error_from_errno(errno);
    while (n > 0 && (nready = collect(ps, &pos, batch)) > 0)
        for (size_t i = 0; i < nready; i++)
            gn__io_dispatch(loop, batch[i].io, batch[i].events);
    return n;
}

const struct gn__backend gn__backend_poll = {
    .name = "poll",
    .init = poll_init,
    .destroy = poll_destroy,
    .watch = poll_watch,
    .wait = poll_wait_dispatch,
};
