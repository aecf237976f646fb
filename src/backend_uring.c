/*
 * The io_uring backend (Linux 6.0 or newer): a completion backend.
 *
 * Readiness goes through an epoll instance of the backend's own.  Why not
 * a multishot poll per descriptor: those are edge-like (a CQE per
 * wake-up), and the conn core needs level-triggered readiness (it reads
 * up to a budget and expects a still-readable descriptor to come back);
 * rebuilding that on per-descriptor polls needs a re-check list and a
 * cancellation on every change, while epoll already has exactly the epoll
 * backend's semantics.  While no completion request is in flight the
 * wait is a plain epoll_wait, one system call as on the epoll backend.
 * Otherwise the ring waits, with a one-shot POLL_ADD on the epoll
 * descriptor among its requests; when that completes, epoll_wait(0)
 * collects.  One-shot and re-armed before each wait, not multishot:
 * epoll re-queues a still-ready level-triggered descriptor without waking
 * its pollers, so a multishot poll would not fire for it again, while a
 * new poll checks the ready list when it is armed and completes at once.
 *
 * Completions: multishot receive (capped per arming, see RECV_CAP) into a
 * provided-buffer ring (up to BUF_COUNT buffers of BUF_SIZE, each given
 * back as soon as its callback returns) and multishot accept.  The crux
 * is lifetime: an io may be freed and its descriptor number reused the
 * moment recv_stop returns, while CQEs of the stopped request may still
 * sit in the completion queue.  So no user_data points at an io: it
 * carries the kind, the descriptor and a generation, and a table indexed
 * by descriptor says which io (if any) owns the requests of which
 * generations.  Any other CQE is dropped: its buffer goes back to the
 * ring, its accepted descriptor is closed.  Stopping also submits an
 * ASYNC_CANCEL at once, because the request holds a reference to the file
 * and the peer would not see the FIN or RST of a close() until the
 * request ends.  A pause cancels too but keeps the io, whose last bytes
 * still come; since an owner may close a paused io unstopped, those are
 * delivered only while the descriptor still holds the same socket.
 */
#define _GNU_SOURCE /* liburing.h uses cpu_set_t */
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loop.h"

#define SQ_ENTRIES 256
/* Many CQEs per batch with thousands of connections; an overflowing CQ
 * still loses nothing (the kernel keeps the rest, IORING_FEAT_NODROP) but
 * ends multishot requests, which then cost a re-arm each. */
#define CQ_ENTRIES 4096
/* Up to 512 x 16 KiB = 8 MiB of address space.  The ring hands buffers
 * out in order, so every buffer in it is touched sooner or later, even by
 * 64-byte messages: they are the loop's memory, not a connection's, and
 * are touched when they join the ring (bufs_provide), so that a loop's
 * resident size says so from the start.  It starts with BUF_START of them
 * (1 MiB) and doubles each time a batch finds it dry, up to BUF_COUNT.  Buffers are
 * held only during one callback, so the full ring runs dry only when more
 * than 8 MiB arrive within one batch; then the receives that found no
 * buffer (-ENOBUFS) are re-armed after the batch has given the buffers
 * back.  16 KiB keeps a 64 KiB message to four completions; the bench's
 * io_uring floor uses the same size. */
#define BUF_COUNT 512u /* a power of two, at most 32768 */
#define BUF_START 64u
#define BUF_SIZE  (16u << 10)
#define BUF_GROUP 0
/* What one connection may take per arming, hence per loop iteration: a
 * multishot receive otherwise reads ahead as long as the ring has buffers,
 * and what it took before a recv_pause still comes, past max_input: up to
 * the whole ring for one connection.  Capped (Linux 6.17), the request
 * ends after RECV_CAP bytes and is re-armed after the batch unless paused,
 * so a pause overshoots by at most 64 KiB, as one read of the readiness
 * path does (the conn core's back-pressure bounds count on that).  The
 * price, measured with a writer thread streaming to N connections on 2
 * cores: N=1 ~3.5 GB/s with or without the cap, N=200 ~1.4 GB/s against
 * ~4 GB/s uncapped.  Older kernels get a single-shot receive (one 16 KiB
 * buffer per arming): slower, as bounded. */
#define RECV_CAP    (64u << 10)
#define EPOLL_BATCH 256
/* CQEs handled per wait: callbacks make system calls, which run task
 * work that posts more CQEs, so without a cap a flood could keep timers
 * and posted tasks waiting forever. */
#define CQE_BUDGET (2 * CQ_ENTRIES)

/* user_data: kind in the top 2 bits, generation in the next 30, the
 * descriptor in the low 32. */
enum kind { K_POLL = 0, K_RECV = 1, K_ACCEPT = 2, K_CTL = 3 };
#define GEN_MASK 0x3ffffffu /* 26 bits: the slot keeps its flags beside */

/* Who owns the requests on one descriptor.  Every request started for
 * the same io since its start from idle (generations base..gen) reports
 * to it: after a pause and a resume, the paused request's last bytes
 * still come, and before the new request's (the CQ is in order). */
struct slot {
    struct gn__io *io;   /* NULL: CQEs for this descriptor are dropped */
    uint32_t gen : 26;   /* of the current request */
    uint32_t kind : 2;   /* K_RECV or K_ACCEPT */
    uint32_t armed : 1;  /* the current request is queued or in the kernel */
    uint32_t queued : 1; /* on the re-arm list */
    uint32_t paused : 1; /* recv_pause: no re-arming until recv_start */
    uint32_t base;       /* generation of io's first request */
    int32_t next;        /* re-arm list link (while queued), -1 at its end */
    uint32_t ino;        /* while paused: the socket's inode, see paused_gone */
};

struct uring {
    struct io_uring ring;
    int epfd;
    bool poll_armed; /* the one-shot poll on epfd is queued or live */
    bool poll_fired; /* it completed: epoll has something ready */
    int poll_error;  /* a GN_E code once polling epfd failed */
    bool recv_cap;   /* the kernel caps a multishot receive (RECV_CAP) */
    bool ran_dry;    /* a receive found the buffer ring empty this batch */
    unsigned nbufs;  /* buffers handed to the ring so far */
    struct io_uring_buf_ring *br;
    char *bufs;
    struct slot *slots; /* by descriptor */
    size_t nslots;
    int32_t rearm_head; /* slots whose request ended early, -1: none */
    size_t inflight;    /* requests whose last CQE has not been seen */
    struct epoll_event events[EPOLL_BATCH];
};

static uint64_t ud_make(enum kind kind, uint32_t gen, int fd)
{
    return (uint64_t)kind << 62 | (uint64_t)(gen & GEN_MASK) << 32 | (uint32_t)fd;
}

static enum kind ud_kind(uint64_t ud)
{
    return (enum kind)(ud >> 62);
}

static uint32_t ud_gen(uint64_t ud)
{
    return (uint32_t)(ud >> 32) & GEN_MASK;
}

static int ud_fd(uint64_t ud)
{
    return (int)(uint32_t)ud;
}

/* ---- submission ----------------------------------------------------- */

/* An SQE, flushing the queue to the kernel when it is full. */
static struct io_uring_sqe *get_sqe(struct uring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

    if (!sqe && io_uring_submit(&u->ring) >= 0)
        sqe = io_uring_get_sqe(&u->ring);
    return sqe;
}

static int arm_poll(struct uring *u)
{
    struct io_uring_sqe *sqe = get_sqe(u);

    if (!sqe)
        return GN_ENOMEM;
    io_uring_prep_poll_add(sqe, u->epfd, EPOLLIN);
    io_uring_sqe_set_data64(sqe, ud_make(K_POLL, 0, u->epfd));
    u->poll_armed = true;
    u->inflight++;
    return 0;
}

/* A receive into the buffer ring: multishot with a total cap (the field
 * is sqe->optlen, file_index's place in liburing 2.3's header), else one
 * buffer's worth (see RECV_CAP). */
static void prep_recv(struct io_uring_sqe *sqe, int fd, bool capped)
{
    if (capped) {
        io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
        sqe->file_index = RECV_CAP;
    } else {
        io_uring_prep_recv(sqe, fd, NULL, BUF_SIZE, 0);
    }
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
}

/* Queue the request slot s (descriptor fd) stands for. */
static int arm(struct uring *u, int fd, struct slot *s)
{
    struct io_uring_sqe *sqe = get_sqe(u);

    if (!sqe)
        return GN_ENOMEM;
    if (s->kind == K_RECV) {
        prep_recv(sqe, fd, u->recv_cap);
    } else {
        io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    }
    io_uring_sqe_set_data64(sqe, ud_make((enum kind)s->kind, s->gen, fd));
    s->armed = true;
    u->inflight++;
    return 0;
}

/* Cancel the request named ud and submit at once: until it ends, the
 * request keeps the socket open behind a close() (see the header). */
static void cancel(struct uring *u, uint64_t ud)
{
    struct io_uring_sqe *sqe = get_sqe(u);

    if (!sqe) {
        /* The queue would not flush (the kernel is short of memory):
         * cancel synchronously instead.  A request whose own SQE is still
         * queued escapes this; it starts later and keeps the socket until
         * it ends, but its CQEs reach no one either way. */
        struct io_uring_sync_cancel_reg reg = {.addr = ud, .timeout = {-1, -1}};
        io_uring_register_sync_cancel(&u->ring, &reg);
        return;
    }
    io_uring_prep_cancel64(sqe, ud, 0);
    io_uring_sqe_set_data64(sqe, ud_make(K_CTL, 0, -1));
    u->inflight++;
    io_uring_submit(&u->ring);
}

/* ---- the descriptor table ------------------------------------------- */

static int slots_grow(struct uring *u, int fd)
{
    size_t n = u->nslots ? u->nslots : 64;
    struct slot *slots;

    while (n <= (size_t)fd)
        n *= 2;
    /* calloc and copy rather than realloc and fill: a large table's new
     * part stays untouched zero pages until descriptors that high come
     * (an all-zero slot is an unused one: next is read only when queued). */
    slots = calloc(n, sizeof(*slots));
    if (!slots)
        return GN_ENOMEM;
    if (u->nslots)
        memcpy(slots, u->slots, u->nslots * sizeof(*slots));
    free(u->slots);
    u->slots = slots;
    u->nslots = n;
    return 0;
}

/* Socket inodes are numbered from a 32-bit counter (get_next_ino). */
static uint32_t fd_ino(int fd)
{
    struct stat st;

    return fstat(fd, &st) == 0 ? (uint32_t)st.st_ino : 0;
}

/* Whether a paused io's socket is no longer behind its descriptor number.
 * An owner may close a paused io's descriptor and free the io without a
 * stop, while completions of the paused request still wait in the CQ;
 * the socket's identity says so without touching the io. */
static bool paused_gone(const struct slot *s, int fd)
{
    return s->ino == 0 || fd_ino(fd) != s->ino;
}

/* The slot of a CQE's request if its io still wants it, else NULL.  An
 * io whose descriptor was closed (fd -1, the io kept until the end of the
 * batch) wants nothing more either. */
static struct slot *live_slot(struct uring *u, uint64_t ud)
{
    struct slot *s;
    int fd = ud_fd(ud);

    if (fd < 0 || (size_t)fd >= u->nslots)
        return NULL;
    s = &u->slots[fd];
    if (!s->io || s->kind != ud_kind(ud))
        return NULL;
    /* The current request's (the common case) needs no range check. */
    if (ud_gen(ud) != s->gen &&
        ((ud_gen(ud) - s->base) & GEN_MASK) > ((s->gen - s->base) & GEN_MASK))
        return NULL;
    if (s->paused && paused_gone(s, fd)) {
        s->io = NULL; /* forgotten unseen: it may be freed */
        s->paused = false;
        return NULL;
    }
    return s->io->fd == fd ? s : NULL;
}

/* Whether a CQE is of the slot's current request (not a paused one's). */
static bool is_current(const struct slot *s, uint64_t ud)
{
    return ud_gen(ud) == s->gen;
}

static void rearm_later(struct uring *u, int fd)
{
    struct slot *s = &u->slots[fd];

    if (s->queued)
        return;
    s->queued = true;
    s->next = u->rearm_head;
    u->rearm_head = fd;
}

/* Re-arm what ended early, once the batch has given its buffers back
 * (re-arming a receive at once after -ENOBUFS would only fail again). */
static void rearm_flush(struct uring *u)
{
    while (u->rearm_head >= 0) {
        int fd = u->rearm_head;
        struct slot *s = &u->slots[fd];

        u->rearm_head = s->next;
        s->queued = false;
        s->next = -1;
        if (s->io && !s->armed && !s->paused && arm(u, fd, s) < 0) {
            rearm_later(u, fd); /* no SQE now: next wait */
            break;
        }
    }
}

/* Forget the requests of slot s (descriptor fd); cancel the current one
 * if live (paused ones were cancelled by the pause). */
static void slot_stop(struct uring *u, int fd, struct slot *s)
{
    s->io = NULL;
    s->paused = false;
    if (s->armed) {
        s->armed = false;
        cancel(u, ud_make((enum kind)s->kind, s->gen, fd));
    }
}

static int req_start(struct uring *u, struct gn__io *io, enum kind kind)
{
    struct slot *s;
    int rc;

    if (io->fd < 0)
        return GN_EINVAL;
    if ((size_t)io->fd >= u->nslots && (rc = slots_grow(u, io->fd)) < 0)
        return rc;
    s = &u->slots[io->fd];
    if (s->io == io && s->kind == kind && !s->paused)
        return 0;
    /* Another io on this number, or the same address with a new socket (a
     * pooled object): the old one's descriptor was closed without a stop,
     * so its requests end here and never reach anyone. */
    if (s->io && (s->io != io || s->kind != kind || (s->paused && paused_gone(s, io->fd))))
        slot_stop(u, io->fd, s);
    s->gen = (s->gen + 1) & GEN_MASK;
    if (!s->io)
        s->base = s->gen;
    s->io = io;
    s->kind = kind;
    s->paused = false;
    rc = arm(u, io->fd, s);
    if (rc < 0)
        slot_stop(u, io->fd, s);
    return rc;
}

/* The slot io owns for kind, or NULL. */
static struct slot *owned(struct uring *u, struct gn__io *io, enum kind kind)
{
    struct slot *s;

    if (io->fd < 0 || (size_t)io->fd >= u->nslots)
        return NULL;
    s = &u->slots[io->fd];
    return s->io == io && s->kind == kind ? s : NULL;
}

static void req_stop(struct uring *u, struct gn__io *io, enum kind kind)
{
    struct slot *s = owned(u, io, kind);

    if (s)
        slot_stop(u, io->fd, s);
}

/* Cancel the receive but keep io: what the request had received before
 * the cancel still comes (live_slot accepts its generation). */
static void req_pause(struct uring *u, struct gn__io *io)
{
    struct slot *s = owned(u, io, K_RECV);

    if (!s || s->paused)
        return;
    s->paused = true;
    s->ino = fd_ino(io->fd);
    if (s->armed) {
        s->armed = false;
        cancel(u, ud_make(K_RECV, s->gen, io->fd));
    }
}

/* ---- completions ---------------------------------------------------- */

static char *buf_at(struct uring *u, unsigned bid)
{
    return u->bufs + (size_t)bid * BUF_SIZE;
}

static void buf_recycle(struct uring *u, unsigned bid)
{
    io_uring_buf_ring_add(u->br, buf_at(u, bid), BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(BUF_COUNT), 0);
    io_uring_buf_ring_advance(u->br, 1);
}

static void deliver(gn_loop *loop, struct gn__io *io, unsigned what, int res, const char *data)
{
    loop->done = (struct gn__done){.res = res, .data = data};
    io->cb(loop, io, what);
    loop->done = (struct gn__done){0};
}

/* Results no one is told of: the ring ran dry or the call was interrupted
 * (the bytes wait in the socket), or a pause's own cancellation. */
static bool recv_quiet(const struct io_uring_cqe *c, bool paused, bool current)
{
    return c->res == -ENOBUFS || c->res == -EAGAIN || c->res == -EINTR ||
           (c->res == -ECANCELED && (paused || !current));
}

/* A receive's CQE for its live slot s: returns 1 when io was told. */
static int recv_result(gn_loop *loop, struct uring *u, struct slot *s, const struct io_uring_cqe *c,
                       const char *data)
{
    bool current = is_current(s, c->user_data), more = c->flags & IORING_CQE_F_MORE;
    bool quiet = recv_quiet(c, s->paused, current);
    int fd = ud_fd(c->user_data);
    struct gn__io *io = s->io;

    if (current && !more) {
        s->armed = false;
        if (s->paused) {
            /* The paused request ended: io is not referenced any more,
             * so an owner that closes it unstopped leaves nothing behind;
             * a resume starts afresh. */
            s->io = NULL;
            s->paused = false;
        }
    }
    if (quiet) {
        u->ran_dry |= c->res == -ENOBUFS;
        if (current && !more)
            rearm_later(u, fd); /* unless paused meanwhile: see rearm_flush */
        return 0;
    }
    if (c->res <= 0)
        slot_stop(u, fd, s); /* the end of the stream or an error ends it all */
    else if (current && !more)
        rearm_later(u, fd);
    deliver(loop, io, GN__RECV, c->res < 0 ? gn_error_from_errno(-c->res) : c->res, data);
    return 1;
}

static int on_recv(gn_loop *loop, struct uring *u, const struct io_uring_cqe *c)
{
    struct slot *s = live_slot(u, c->user_data);
    bool has_buf = c->flags & IORING_CQE_F_BUFFER;
    unsigned bid = c->flags >> IORING_CQE_BUFFER_SHIFT;
    int told = 0;

    if (s)
        told = recv_result(loop, u, s, c, has_buf && c->res > 0 ? buf_at(u, bid) : NULL);
    if (has_buf)
        buf_recycle(u, bid); /* the callee copied what it keeps */
    return told;
}

/* Errors of one pending connection (accept(2): "treat as EAGAIN"), not of
 * the listener: accepting goes on. */
static bool accept_transient(int err)
{
    switch (err) {
    case ECONNABORTED:
    case EINTR:
    case EAGAIN:
    case EPROTO:
    case EPERM: /* a firewall rule refused this one */
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
        return true;
    default:
        return false;
    }
}

static int on_accept(gn_loop *loop, struct uring *u, const struct io_uring_cqe *c)
{
    struct slot *s = live_slot(u, c->user_data);
    bool more = c->flags & IORING_CQE_F_MORE;
    int fd = ud_fd(c->user_data);
    struct gn__io *io;

    if (!s) {
        if (c->res >= 0)
            close(c->res); /* accepted for a listener that stopped */
        return 0;
    }
    if (is_current(s, c->user_data) && !more)
        s->armed = false;
    if (c->res < 0 && accept_transient(-c->res)) {
        if (!more)
            rearm_later(u, fd);
        return 0;
    }
    io = s->io;
    if (c->res < 0)
        slot_stop(u, fd, s);
    else if (!more)
        rearm_later(u, fd);
    deliver(loop, io, GN__ACCEPT, c->res < 0 ? gn_error_from_errno(-c->res) : c->res, NULL);
    return 1;
}

static void on_poll(struct uring *u, const struct io_uring_cqe *c)
{
    u->poll_armed = false; /* armed again by the next wait that needs it */
    if (c->res < 0 && c->res != -ECANCELED)
        u->poll_error = gn_error_from_errno(-c->res);
    else
        u->poll_fired = true;
}

static int complete(gn_loop *loop, struct uring *u, const struct io_uring_cqe *c)
{
    if (!(c->flags & IORING_CQE_F_MORE))
        u->inflight--;
    switch (ud_kind(c->user_data)) {
    case K_RECV:
        return on_recv(loop, u, c);
    case K_ACCEPT:
        return on_accept(loop, u, c);
    case K_POLL:
        on_poll(u, c);
        return 0;
    default:
        return 0; /* a cancel's own result: nothing to do either way */
    }
}

/* Each CQE is copied and marked seen before its callback runs, which may
 * submit, stop requests or free ios. */
static int reap(gn_loop *loop, struct uring *u)
{
    struct io_uring_cqe *cqe, c;
    int n = 0;

    for (unsigned i = 0; i < CQE_BUDGET && io_uring_peek_cqe(&u->ring, &cqe) == 0; i++) {
        c = *cqe;
        io_uring_cqe_seen(&u->ring, cqe);
        n += complete(loop, u, &c);
    }
    return n;
}

/* ---- readiness ------------------------------------------------------ */

static uint32_t to_epoll(unsigned events)
{
    return (events & GN__READ ? EPOLLIN : 0u) | (events & GN__WRITE ? EPOLLOUT : 0u);
}

static int uring_watch(gn_loop *loop, struct gn__io *io, unsigned old_ev, unsigned new_ev)
{
    struct uring *u = loop->backend_events;
    struct epoll_event ev = {.events = to_epoll(new_ev), .data.ptr = io};
    int op = !old_ev ? EPOLL_CTL_ADD : !new_ev ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;

    if (epoll_ctl(u->epfd, op, io->fd, &ev) < 0)
        return gn_error_from_errno(errno);
    return 0;
}

static int epoll_dispatch(gn_loop *loop, struct uring *u, int timeout_ms)
{
    int n = epoll_wait(u->epfd, u->events, EPOLL_BATCH, timeout_ms);

    if (n < 0)
        return errno == EINTR ? 0 : gn_error_from_errno(errno);
    for (int i = 0; i < n; i++) {
        uint32_t e = u->events[i].events;
        unsigned ready = (e & EPOLLIN ? GN__READ : 0u) | (e & EPOLLOUT ? GN__WRITE : 0u) |
                         (e & (EPOLLERR | EPOLLHUP) ? GN__ERROR : 0u);
        gn__io_dispatch(loop, u->events[i].data.ptr, ready);
    }
    return n;
}

/* ---- waiting -------------------------------------------------------- */

/* Submit what is queued and wait up to timeout_ms for one CQE. */
static int enter(struct uring *u, int timeout_ms)
{
    struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                   .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
    struct io_uring_cqe *cqe;
    int rc;

    if (timeout_ms == 0) {
        /* Nothing to wait for: no system call unless there is something
         * to submit; reap's peek enters the kernel itself when task work
         * or an overflow is pending. */
        rc = io_uring_sq_ready(&u->ring) ? io_uring_submit(&u->ring) : 0;
    } else {
        rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, timeout_ms < 0 ? NULL : &ts, NULL);
    }
    /* EBUSY/EAGAIN: the CQ is backed up; reaping is the cure. */
    if (rc == -ETIME || rc == -EINTR || rc == -EBUSY || rc == -EAGAIN)
        return 0;
    return rc < 0 ? gn_error_from_errno(-rc) : 0;
}

/* Hand buffers n0..n-1 to the ring (the ring's own slots are in order). */
static void bufs_provide(struct uring *u, unsigned n)
{
    memset(buf_at(u, u->nbufs), 0, (size_t)(n - u->nbufs) * BUF_SIZE);
    for (unsigned bid = u->nbufs; bid < n; bid++)
        io_uring_buf_ring_add(u->br, buf_at(u, bid), BUF_SIZE, (unsigned short)bid,
                              io_uring_buf_ring_mask(BUF_COUNT), (int)(bid - u->nbufs));
    io_uring_buf_ring_advance(u->br, (int)(n - u->nbufs));
    u->nbufs = n;
}

/* After a batch that found the ring dry: more buffers, up to BUF_COUNT. */
static void grow_if_dry(struct uring *u)
{
    unsigned was = u->nbufs;

    if (!u->ran_dry)
        return;
    u->ran_dry = false;
    if (u->nbufs < BUF_COUNT)
        bufs_provide(u, 2 * u->nbufs < BUF_COUNT ? 2 * u->nbufs : BUF_COUNT);
    gn__log(GN_LOG_DEBUG, "io_uring: the %u receive buffers of %u KiB ran out; now %u", was,
            BUF_SIZE >> 10, u->nbufs);
}

/* The ring's way: readiness through the one-shot poll on epfd. */
static int ring_wait(gn_loop *loop, struct uring *u, int timeout_ms)
{
    int rc, n;

    if (!u->poll_armed && (rc = arm_poll(u)) < 0)
        return rc;
    rc = enter(u, timeout_ms);
    if (rc < 0)
        return rc;
    n = reap(loop, u);
    grow_if_dry(u);
    if (u->poll_fired) {
        u->poll_fired = false;
        rc = epoll_dispatch(loop, u, 0);
        if (rc < 0)
            return rc;
        n += rc;
    }
    rearm_flush(u);
    return n;
}

static int uring_wait(gn_loop *loop, int timeout_ms)
{
    struct uring *u = loop->backend_events;

    if (u->poll_error)
        return u->poll_error;
    /* Nothing in the ring and nothing to submit: wait as epoll does. */
    if (u->inflight == 0 && io_uring_sq_ready(&u->ring) == 0)
        return epoll_dispatch(loop, u, timeout_ms);
    return ring_wait(loop, u, timeout_ms);
}

/* ---- setup ---------------------------------------------------------- */

static int ring_open(struct uring *u)
{
    /* COOP_TASKRUN: completions wait for the loop's next system call
     * instead of interrupting it (Linux 5.19); SUBMIT_ALL: one bad SQE
     * (a descriptor closed meanwhile) does not hold back the rest. */
    struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL |
                                         IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
                                .cq_entries = CQ_ENTRIES};
    int rc = io_uring_queue_init_params(SQ_ENTRIES, &u->ring, &p);

    if (rc == -EINVAL) {
        p = (struct io_uring_params){.flags = IORING_SETUP_CQSIZE, .cq_entries = CQ_ENTRIES};
        rc = io_uring_queue_init_params(SQ_ENTRIES, &u->ring, &p);
    }
    if (rc < 0)
        return gn_error_from_errno(-rc);
    if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_EXT_ARG)) {
        io_uring_queue_exit(&u->ring);
        return GN_ESYS;
    }
    return 0;
}

static size_t br_bytes(void)
{
    return BUF_COUNT * sizeof(struct io_uring_buf);
}

/* The buffer ring (Linux 5.19) with its first BUF_START buffers. */
static int bufs_open(struct uring *u)
{
    struct io_uring_buf_reg reg = {.ring_entries = BUF_COUNT, .bgid = BUF_GROUP};
    int rc;

    u->br = mmap(NULL, br_bytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (u->br == MAP_FAILED)
        return GN_ENOMEM;
    u->bufs = mmap(NULL, (size_t)BUF_COUNT * BUF_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (u->bufs == MAP_FAILED) {
        rc = GN_ENOMEM;
        goto out_unmap_br;
    }
    io_uring_buf_ring_init(u->br);
    reg.ring_addr = (uint64_t)(uintptr_t)u->br;
    rc = io_uring_register_buf_ring(&u->ring, &reg, 0);
    if (rc < 0) {
        rc = gn_error_from_errno(-rc);
        goto out_unmap_bufs;
    }
    bufs_provide(u, BUF_START);
    return 0;
out_unmap_bufs:
    munmap(u->bufs, (size_t)BUF_COUNT * BUF_SIZE);
out_unmap_br:
    munmap(u->br, br_bytes());
    return rc;
}

static void bufs_close(struct uring *u)
{
    io_uring_unregister_buf_ring(&u->ring, BUF_GROUP);
    munmap(u->bufs, (size_t)BUF_COUNT * BUF_SIZE);
    munmap(u->br, br_bytes());
}

/* Whether multishot receive (Linux 6.0), capped (6.17) if asked, works
 * here: no feature flag names either, so one is tried on a descriptor
 * that is not a socket.  A kernel that knows it gets as far as the socket
 * check (-ENOTSOCK); an older one rejects the flag or the field (-EINVAL).
 * No buffer is taken either way. */
static int probe_recv(struct uring *u, bool capped)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    struct io_uring_cqe *cqe;
    int rc;

    io_uring_prep_recv_multishot(sqe, u->epfd, NULL, 0, 0);
    if (capped)
        sqe->file_index = RECV_CAP;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    io_uring_sqe_set_data64(sqe, ud_make(K_CTL, 0, -1));
    rc = io_uring_submit_and_wait(&u->ring, 1);
    if (rc < 0)
        return gn_error_from_errno(-rc);
    rc = io_uring_peek_cqe(&u->ring, &cqe);
    if (rc < 0)
        return gn_error_from_errno(-rc);
    rc = cqe->res;
    io_uring_cqe_seen(&u->ring, cqe);
    return rc == -ENOTSOCK ? 0 : GN_ESYS;
}

/* The capped multishot receive, or failing that (before 6.17) the single
 * one (see RECV_CAP).  A kernel without multishot receive (before 6.0)
 * is refused: 6.0 is this backend's floor, where buffer rings, multishot
 * accept and poll-driven receives are all present, and epoll serves the
 * older ones as well. */
static int probe_recv_modes(struct uring *u)
{
    u->recv_cap = probe_recv(u, true) == 0;
    return u->recv_cap ? 0 : probe_recv(u, false);
}

static int uring_setup(struct uring *u)
{
    int rc = ring_open(u);

    if (rc < 0)
        return rc;
    rc = bufs_open(u);
    if (rc < 0)
        goto out_exit_ring;
    u->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (u->epfd < 0) {
        rc = gn_error_from_errno(errno);
        goto out_close_bufs;
    }
    rc = probe_recv_modes(u);
    if (rc < 0)
        goto out_close_epfd;
    return 0;
out_close_epfd:
    close(u->epfd);
out_close_bufs:
    bufs_close(u);
out_exit_ring:
    io_uring_queue_exit(&u->ring);
    return rc;
}

static int uring_init(gn_loop *loop)
{
    struct uring *u = calloc(1, sizeof(*u));
    int rc;

    if (!u)
        return GN_ENOMEM;
    u->epfd = -1;
    u->rearm_head = -1;
    rc = uring_setup(u);
    if (rc < 0) {
        free(u);
        return rc;
    }
    loop->backend_events = u;
    loop->backend_fd = u->ring.ring_fd;
    return 0;
}

/* Stop every request and reap until each has ended, so no accepted
 * descriptor is left behind in the completion queue.  Bounded: a kernel
 * that never answers costs a second, not a hang. */
static void drain(gn_loop *loop, struct uring *u)
{
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000000};
    struct io_uring_cqe *cqe;

    /* By slot, not by io: an owner that never stopped may have freed it. */
    for (size_t fd = 0; fd < u->nslots; fd++)
        if (u->slots[fd].io)
            slot_stop(u, (int)fd, &u->slots[fd]);
    if (u->poll_armed)
        cancel(u, ud_make(K_POLL, 0, u->epfd));
    for (int i = 0; i < 100 && u->inflight > 0; i++) {
        io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
        reap(loop, u);
    }
}

static void uring_destroy(gn_loop *loop)
{
    struct uring *u = loop->backend_events;

    drain(loop, u);
    bufs_close(u);
    io_uring_queue_exit(&u->ring);
    close(u->epfd);
    free(u->slots);
    free(u);
    loop->backend_events = NULL;
    loop->backend_fd = -1;
}

static int uring_recv_start(gn_loop *loop, struct gn__io *io)
{
    return req_start(loop->backend_events, io, K_RECV);
}

static void uring_recv_stop(gn_loop *loop, struct gn__io *io)
{
    req_stop(loop->backend_events, io, K_RECV);
}

static void uring_recv_pause(gn_loop *loop, struct gn__io *io)
{
    req_pause(loop->backend_events, io);
}

static int uring_accept_start(gn_loop *loop, struct gn__io *io)
{
    return req_start(loop->backend_events, io, K_ACCEPT);
}

static void uring_accept_stop(gn_loop *loop, struct gn__io *io)
{
    req_stop(loop->backend_events, io, K_ACCEPT);
}

const struct gn__backend gn__backend_uring = {
    .name = "uring",
    .init = uring_init,
    .destroy = uring_destroy,
    .watch = uring_watch,
    .wait = uring_wait,
    .recv_start = uring_recv_start,
    .recv_stop = uring_recv_stop,
    .recv_pause = uring_recv_pause,
    .accept_start = uring_accept_start,
    .accept_stop = uring_accept_stop,
};
