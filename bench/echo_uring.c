/*
 * Echo benchmark, the io_uring floor: a minimal hand-written
 * single-threaded echo server on io_uring (liburing), the completion-model
 * counterpart of echo_epoll.  One multishot accept on the listener; per
 * connection one multishot recv that picks its buffers from a provided-
 * buffer ring (IORING_REGISTER_PBUF_RING, 1024 buffers of 16 KiB, touched
 * once at start so the pool is a fixed cost, not a per-connection one);
 * each filled buffer is sent back as it is with io_uring_prep_send and
 * returned to the ring when its send has completed.  TCP_NODELAY on
 * accepted sockets, as echo_epoll and gnezdo do.
 *
 *   echo_uring ADDR
 *
 * ADDR: HOST:PORT, unix:/path or unix:@name.  Prints "listening on ADDR"
 * and runs until SIGTERM or SIGINT, then exits 0; exits 1 when io_uring
 * is unavailable (kernel too old, or io_uring_disabled set).
 *
 * Why these choices, and what breaks if they change:
 * - One send in flight per connection, the rest queued in order: two
 *   sends on one socket may complete out of order (the first waits for
 *   buffer space, the second finds some), and an echo must not reorder.
 * - MSG_WAITALL on send: the kernel then finishes a short send on a
 *   stream socket itself (io_uring's io_net_retry); a short send that
 *   still comes back is resent from where it stopped.
 * - A recv completion without IORING_CQE_F_MORE ended the multishot recv
 *   (ring dry, CQ overflow, EOF, error): re-armed unless the connection
 *   ends.  -ENOBUFS (the ring ran dry) waits for a buffer to come back
 *   before re-arming, or it would spin.
 * - IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN (Linux 6.1) runs the
 *   completions' task work only when this thread waits: the fastest mode
 *   for one thread; without them (older kernels) it still works.
 */
#define _GNU_SOURCE /* accept4-style flags, MSG_WAITALL */
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench_addr.h"

#define SQ_ENTRIES 4096
#ifndef BUF_COUNT
#define BUF_COUNT 1024 /* a power of two, at most 32768; -DBUF_COUNT=4 tests a dry ring */
#endif
#define BUF_SIZE  (16u << 10)
#define BUF_GROUP 0
#define NO_BUF    0xffffu

enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND };

struct conn {
    uint16_t head, tail; /* buffers waiting to be sent, linked by g_next; NO_BUF when none */
    bool recv_armed;     /* a multishot recv is live */
    bool sending;        /* the head buffer's send is in flight */
    bool closing;        /* EOF, reset or a failed send: close once all is done */
    bool starved;        /* on g_starved, waiting for a buffer */
};

static volatile sig_atomic_t g_stop;
static struct io_uring g_ring;
static struct io_uring_buf_ring *g_br;
static char *g_bufs;
static uint32_t g_len[BUF_COUNT], g_off[BUF_COUNT]; /* a filled buffer's bytes, bytes sent */
static uint16_t g_next[BUF_COUNT];
static int g_returned;       /* buffers added to the ring since the last advance */
static struct conn *g_conns; /* indexed by fd */
static long g_nconns;
static int *g_starved, g_nstarved; /* fds whose recv ended on -ENOBUFS */
static int g_lfd;
static unsigned long g_dry; /* -ENOBUFS completions, reported on exit */

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

static struct io_uring_sqe *get_sqe(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&g_ring);

    while (!sqe) { /* the SQ is full: hand it to the kernel and take a fresh one */
        io_uring_submit(&g_ring);
        sqe = io_uring_get_sqe(&g_ring);
    }
    return sqe;
}

static uint64_t ud(enum op op, int fd, unsigned bid)
{
    return (uint64_t)(uint32_t)fd << 32 | (uint64_t)bid << 8 | (uint64_t)op;
}

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = get_sqe();

    io_uring_prep_multishot_accept(sqe, g_lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ud(OP_ACCEPT, g_lfd, 0));
}

static void arm_recv(int fd)
{
    struct io_uring_sqe *sqe = get_sqe();

    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    io_uring_sqe_set_data64(sqe, ud(OP_RECV, fd, 0));
    g_conns[fd].recv_armed = true;
}

static void send_head(int fd)
{
    struct conn *c = &g_conns[fd];
    unsigned bid = c->head;
    struct io_uring_sqe *sqe = get_sqe();

    io_uring_prep_send(sqe, fd, g_bufs + (size_t)bid * BUF_SIZE + g_off[bid],
                       g_len[bid] - g_off[bid], MSG_NOSIGNAL | MSG_WAITALL);
    io_uring_sqe_set_data64(sqe, ud(OP_SEND, fd, bid));
    c->sending = true;
}

/* Back into the ring; visible to the kernel at the next advance. */
static void give_back(unsigned bid)
{
    io_uring_buf_ring_add(g_br, g_bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(BUF_COUNT), g_returned++);
}

static void maybe_close(int fd)
{
    struct conn *c = &g_conns[fd];

    if (!c->closing || c->recv_armed || c->sending || c->starved)
        return;
    while (c->head != NO_BUF) { /* a failed send leaves the rest unsent */
        unsigned bid = c->head;
        c->head = g_next[bid];
        give_back(bid);
    }
    close(fd);
    memset(c, 0, sizeof *c);
}

static void on_accept(int res, unsigned flags)
{
    int one = 1;

    if (!(flags & IORING_CQE_F_MORE))
        arm_accept(); /* ended (an error such as EMFILE, or overflow): start again */
    if (res < 0)
        return;
    if (res >= g_nconns) {
        close(res);
        return;
    }
    setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails on Unix: fine */
    memset(&g_conns[res], 0, sizeof g_conns[res]);
    g_conns[res].head = g_conns[res].tail = NO_BUF;
    arm_recv(res);
}

static void on_recv(int fd, int res, unsigned flags)
{
    struct conn *c = &g_conns[fd];

    if (!(flags & IORING_CQE_F_MORE))
        c->recv_armed = false;
    if (res > 0) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;

        g_len[bid] = (uint32_t)res;
        g_off[bid] = 0;
        g_next[bid] = NO_BUF;
        if (c->head == NO_BUF)
            c->head = (uint16_t)bid;
        else
            g_next[c->tail] = (uint16_t)bid;
        c->tail = (uint16_t)bid;
        if (!c->sending && !c->closing)
            send_head(fd);
    } else if (res == -ENOBUFS) {
        g_dry++;
        if (!c->starved && !c->closing) {
            c->starved = true;
            g_starved[g_nstarved++] = fd;
        }
    } else {
        c->closing = true; /* 0: EOF; < 0: reset or another error */
    }
    if (!c->recv_armed && !c->closing && !c->starved)
        arm_recv(fd);
    maybe_close(fd);
}

static void on_send(int fd, unsigned bid, int res)
{
    struct conn *c = &g_conns[fd];

    c->sending = false;
    if (res < 0) {
        c->closing = true;
        /* The live recv ends (0 or an error) once the socket is shut down. */
        if (c->recv_armed)
            shutdown(fd, SHUT_RDWR);
        maybe_close(fd);
        return;
    }
    g_off[bid] += (uint32_t)res;
    if (g_off[bid] < g_len[bid]) {
        send_head(fd); /* short send: the rest, before anything queued behind it */
        return;
    }
    c->head = g_next[bid];
    give_back(bid);
    if (c->head != NO_BUF) /* after EOF too: every byte that came is echoed */
        send_head(fd);
    maybe_close(fd);
}

/* After buffers came back: restart the receives that found the ring dry. */
static void rearm_starved(void)
{
    int n = g_nstarved;

    g_nstarved = 0;
    for (int i = 0; i < n; i++) {
        int fd = g_starved[i];
        struct conn *c = &g_conns[fd];

        c->starved = false;
        if (c->closing)
            maybe_close(fd);
        else if (!c->recv_armed)
            arm_recv(fd);
    }
}

static void handle(const struct io_uring_cqe *cqe)
{
    uint64_t data = io_uring_cqe_get_data64(cqe);
    int fd = (int)(uint32_t)(data >> 32);
    unsigned bid = (unsigned)(data >> 8) & 0xffffu;

    switch ((enum op)(data & 0xff)) {
    case OP_ACCEPT:
        on_accept(cqe->res, cqe->flags);
        break;
    case OP_RECV:
        on_recv(fd, cqe->res, cqe->flags);
        break;
    case OP_SEND:
        on_send(fd, bid, cqe->res);
        break;
    }
}

static int setup_ring(void)
{
    struct io_uring_params p;
    struct io_uring_buf_reg reg;
    int rc;

    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = 4 * SQ_ENTRIES;
    rc = io_uring_queue_init_params(SQ_ENTRIES, &g_ring, &p);
    if (rc == -EINVAL) { /* before Linux 6.1 */
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = 4 * SQ_ENTRIES;
        rc = io_uring_queue_init_params(SQ_ENTRIES, &g_ring, &p);
    }
    if (rc < 0) {
        fprintf(stderr, "echo_uring: io_uring_queue_init: %s\n", strerror(-rc));
        return -1;
    }
    io_uring_register_ring_fd(&g_ring); /* saves an fd lookup per enter; optional */

    g_br = mmap(NULL, BUF_COUNT * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_bufs = malloc((size_t)BUF_COUNT * BUF_SIZE);
    if (g_br == MAP_FAILED || !g_bufs) {
        fprintf(stderr, "echo_uring: out of memory\n");
        return -1;
    }
    /* Resident now, not per connection; not 0, which GCC turns into calloc. */
    memset(g_bufs, 0x5a, (size_t)BUF_COUNT * BUF_SIZE);
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)g_br;
    reg.ring_entries = BUF_COUNT;
    reg.bgid = BUF_GROUP;
    rc = io_uring_register_buf_ring(&g_ring, &reg, 0);
    if (rc < 0) {
        fprintf(stderr, "echo_uring: io_uring_register_buf_ring: %s\n", strerror(-rc));
        return -1;
    }
    io_uring_buf_ring_init(g_br);
    for (unsigned i = 0; i < BUF_COUNT; i++)
        give_back(i);
    io_uring_buf_ring_advance(g_br, g_returned);
    g_returned = 0;
    return 0;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    char name[NI_MAXHOST + NI_MAXSERV + 8];
    const char *unix_path;

    if (argc != 2) {
        fprintf(stderr, "usage: %s ADDR\n", argv[0]);
        return 2;
    }
    g_nconns = bench_raise_nofile();
    g_conns = calloc((size_t)g_nconns, sizeof *g_conns);
    g_starved = calloc((size_t)g_nconns, sizeof *g_starved);
    if (!g_conns || !g_starved)
        return 1;
    g_lfd = bench_listen(argv[1], 0, name, sizeof name);
    if (g_lfd < 0)
        return 1;
    unix_path = bench_unix_path(argv[1]);
    if (setup_ring() < 0)
        return 1;

    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop; /* no SA_RESTART: the wait returns -EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    arm_accept();
    printf("listening on %s\n", name);
    fflush(stdout);
    while (!g_stop) {
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        int rc = io_uring_submit_and_wait(&g_ring, 1);

        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            fprintf(stderr, "echo_uring: io_uring_submit_and_wait: %s\n", strerror(-rc));
            return 1;
        }
        io_uring_for_each_cqe(&g_ring, head, cqe)
        {
            handle(cqe);
            n++;
        }
        io_uring_cq_advance(&g_ring, n);
        if (g_returned) {
            io_uring_buf_ring_advance(g_br, g_returned);
            g_returned = 0;
            if (g_nstarved)
                rearm_starved();
        }
    }
    if (unix_path)
        unlink(unix_path);
    if (g_dry)
        fprintf(stderr, "echo_uring: the buffer ring ran dry %lu times\n", g_dry);
    return 0;
}
