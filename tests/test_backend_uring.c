/*
 * The io_uring backend's completion entries, driven directly through the
 * backend interface (loop.h): multishot receive delivers every byte in
 * order, also when thousands of connections drain the buffer ring dry;
 * a stopped receive or accept never reaches its io again, not even when
 * the descriptor number is reused at once; a stop lets a close reach the
 * peer at once; accept delivers non-blocking, close-on-exec descriptors
 * and a stopped accept leaks none.  Readiness stays level-triggered.
 */
#define _GNU_SOURCE /* accept4 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "loop.h"

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The byte at offset i of stream k: position-dependent, so a lost,
 * repeated or reordered chunk shows as a mismatch. */
static uint8_t pattern(size_t k, size_t i)
{
    return (uint8_t)(i * 7 + k * 13 + (i >> 9));
}

static void fill(char *buf, size_t len, size_t k, size_t off)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)pattern(k, off + i);
}

static gn_loop *uring_loop(void)
{
    gn_loop *loop;

    cr_assert_eq(gn_loop_new_backend(&loop, "uring"), 0);
    if (strcmp(gn_loop_backend(loop), "uring") != 0) {
        gn_loop_free(loop);
        cr_skip_test("io_uring is not available here");
    }
    cr_assert_not_null(loop->backend->recv_start);
    return loop;
}

static void wait_once(gn_loop *loop, int ms)
{
    cr_assert_geq(loop->backend->wait(loop, ms), 0);
}

/* Run the backend until done(arg), failing after ms. */
static void wait_until(gn_loop *loop, bool (*done)(void *), void *arg, unsigned ms)
{
    uint64_t deadline = now_ms() + ms;

    while (!done(arg)) {
        cr_assert_lt(now_ms(), deadline, "timed out");
        wait_once(loop, 10);
    }
}

/* ---- a receiver ----------------------------------------------------- */

struct rx {
    struct gn__io io; /* first: the callback casts back */
    size_t k;         /* its stream's pattern */
    size_t bytes;
    size_t mismatches;
    int calls, eofs, error;
    bool stop_in_cb;  /* recv_stop at the first completion */
    bool pause_in_cb; /* recv_pause at the first completion */
    size_t at_pause;  /* bytes when it paused */
};

static void rx_cb(gn_loop *loop, struct gn__io *io, unsigned events)
{
    struct rx *r = (struct rx *)io;
    int res = loop->done.res;

    cr_assert_eq(events, GN__RECV);
    r->calls++;
    if (res > 0) {
        for (int i = 0; i < res; i++)
            r->mismatches += (uint8_t)loop->done.data[i] != pattern(r->k, r->bytes + (size_t)i);
        r->bytes += (size_t)res;
    } else if (res == 0) {
        r->eofs++;
    } else {
        r->error = res;
    }
    if (r->stop_in_cb)
        loop->backend->recv_stop(loop, io);
    if (r->pause_in_cb && !r->at_pause) {
        r->at_pause = r->bytes;
        loop->backend->recv_pause(loop, io);
    }
}

static void rx_init(struct rx *r, int fd, size_t k)
{
    *r = (struct rx){.io = {.cb = rx_cb, .fd = fd}, .k = k};
}

static void socket_pair(int sv[2])
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

/* ---- data arrives intact -------------------------------------------- */

struct writer {
    int fd;
    size_t total;
};

static void *write_all(void *arg)
{
    struct writer *w = arg;
    char buf[7000]; /* not a divisor of the buffer size */
    size_t off = 0;
    int flags = fcntl(w->fd, F_GETFL);

    fcntl(w->fd, F_SETFL, flags & ~O_NONBLOCK);
    while (off < w->total) {
        size_t n = w->total - off < sizeof(buf) ? w->total - off : sizeof(buf);
        ssize_t m;

        fill(buf, n, 0, off);
        m = write(w->fd, buf, n);
        if (m <= 0)
            break;
        off += (size_t)m;
    }
    shutdown(w->fd, SHUT_WR);
    return NULL;
}

static bool rx_ended(void *arg)
{
    struct rx *r = arg;

    return r->eofs > 0 || r->error < 0;
}

Test(backend_uring, receives_a_stream_intact_across_many_completions, .timeout = 30)
{
    gn_loop *loop = uring_loop();
    struct writer w = {.total = 16u << 20};
    struct rx r;
    pthread_t t;
    int sv[2];

    socket_pair(sv);
    rx_init(&r, sv[0], 0);
    cr_assert_eq(loop->backend->recv_start(loop, &r.io), 0);
    w.fd = sv[1];
    cr_assert_eq(pthread_create(&t, NULL, write_all, &w), 0);
    wait_until(loop, rx_ended, &r, 20000);
    pthread_join(t, NULL);
    cr_expect_eq(r.error, 0);
    cr_expect_eq(r.bytes, w.total);
    cr_expect_eq(r.mismatches, 0);
    cr_expect_eq(r.eofs, 1, "one end of stream, then no more completions");
    cr_expect_gt(r.calls, 100);
    loop->backend->recv_stop(loop, &r.io); /* after the end: a no-op */
    close(sv[0]);
    close(sv[1]);
    gn_loop_free(loop);
}

Test(backend_uring, a_reset_is_an_error_that_ends_the_receiving, .timeout = 10)
{
    gn_loop *loop = uring_loop();
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    char text[64];
    struct rx r;
    int lfd = gn_test_raw_listener("", text, sizeof(text), 16);
    int c = gn_test_connect_fd(text);
    int s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    cr_assert_geq(c, 0);
    cr_assert_geq(s, 0);
    rx_init(&r, s, 0);
    cr_assert_eq(loop->backend->recv_start(loop, &r.io), 0);
    wait_once(loop, 0);
    cr_assert_eq(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(c);
    wait_until(loop, rx_ended, &r, 5000);
    cr_expect_eq(r.error, GN_ECONNRESET);
    cr_expect_eq(r.eofs, 0);
    close(s);
    close(lfd);
    gn_loop_free(loop);
}

/* ---- 2,000 connections drain the ring dry --------------------------- */

#define CONNS     2000
#define PER_CONN  (48u << 10) /* 2,000 x 48 KiB: ~94 MiB against an 8 MiB ring */
#define DRY_LIMIT 60000

static int dry_logs;

static void count_dry(gn_log_level level, const char *message, void *arg)
{
    (void)level;
    (void)arg;
    if (strstr(message, "ran out"))
        dry_logs++;
}

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;

    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur >= want)
        return;
    if (rl.rlim_max < want)
        cr_skip_test("needs %lu descriptors", (unsigned long)want);
    rl.rlim_cur = want;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

struct fleet {
    int client[CONNS];
    size_t sent[CONNS];
    struct rx rx[CONNS];
};

static void fleet_connect(struct fleet *f, int lfd, const char *text)
{
    for (size_t k = 0; k < CONNS; k++) {
        int one = 1;
        int s;

        f->client[k] = gn_test_connect_fd(text);
        cr_assert_geq(f->client[k], 0, "connection %zu", k);
        fcntl(f->client[k], F_SETFL, O_NONBLOCK);
        setsockopt(f->client[k], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        cr_assert_geq(s, 0, "accept %zu: %s", k, strerror(errno));
        rx_init(&f->rx[k], s, k);
    }
}

/* Write what the sockets take; true once every byte is out. */
static bool fleet_send(struct fleet *f)
{
    static char buf[PER_CONN];
    bool all = true;

    for (size_t k = 0; k < CONNS; k++) {
        while (f->sent[k] < PER_CONN) {
            size_t n = PER_CONN - f->sent[k];
            ssize_t m;

            fill(buf, n, k, f->sent[k]);
            m = send(f->client[k], buf, n, MSG_NOSIGNAL);
            if (m < 0) {
                cr_assert(errno == EAGAIN, "send: %s", strerror(errno));
                break;
            }
            f->sent[k] += (size_t)m;
            if (f->sent[k] == PER_CONN)
                shutdown(f->client[k], SHUT_WR);
        }
        all = all && f->sent[k] == PER_CONN;
    }
    return all;
}

static bool fleet_done(struct fleet *f)
{
    for (size_t k = 0; k < CONNS; k++)
        if (!rx_ended(&f->rx[k]))
            return false;
    return true;
}

static void fleet_drive(gn_loop *loop, struct fleet *f)
{
    uint64_t deadline = now_ms() + DRY_LIMIT;
    bool sent = false;

    while (!fleet_done(f)) {
        if (!sent)
            sent = fleet_send(f);
        cr_assert_lt(now_ms(), deadline, "stalled");
        wait_once(loop, sent ? 50 : 0);
    }
}

Test(backend_uring, thousands_of_senders_drain_the_buffer_ring_and_lose_nothing, .timeout = 90)
{
    gn_loop *loop = uring_loop();
    struct fleet *f = calloc(1, sizeof(*f));
    char text[64];
    int lfd;

    raise_nofile(2 * CONNS + 64);
    lfd = gn_test_raw_listener("", text, sizeof(text), 4096);
    fleet_connect(f, lfd, text);
    /* Bytes wait in every socket before the receives start, so the first
     * submission alone asks for far more buffers than the ring has. */
    fleet_send(f);
    gn_log_set(count_dry, GN_LOG_DEBUG, NULL);
    for (size_t k = 0; k < CONNS; k++)
        cr_assert_eq(loop->backend->recv_start(loop, &f->rx[k].io), 0);
    fleet_drive(loop, f);
    gn_log_set(NULL, GN_LOG_INFO, NULL);
    cr_expect_gt(dry_logs, 0, "the ring never ran dry: the test proves nothing");
    for (size_t k = 0; k < CONNS; k++) {
        struct rx *r = &f->rx[k];
        cr_expect_eq(r->error, 0, "connection %zu: %d", k, r->error);
        cr_expect_eq(r->bytes, PER_CONN, "connection %zu", k);
        cr_expect_eq(r->mismatches, 0, "connection %zu", k);
        cr_expect_eq(r->eofs, 1, "connection %zu", k);
        close(r->io.fd);
        close(f->client[k]);
    }
    close(lfd);
    free(f);
    gn_loop_free(loop);
}

/* ---- stopping: no stale completion, prompt close -------------------- */

static void write_str(int fd, const char *s)
{
    cr_assert_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* A receive with completions already queued is stopped, its descriptor
 * closed and the number reused by a new socket at once: the old io (freed
 * here, so ASan would see a touch) gets nothing, the new one only its own
 * bytes. */
Test(backend_uring, a_reused_descriptor_never_gets_a_stale_completion, .timeout = 30)
{
    gn_loop *loop = uring_loop();

    for (int round = 0; round < 300; round++) {
        struct rx *old = malloc(sizeof(*old)), fresh;
        char buf[64];
        int a[2], b[2];

        socket_pair(a);
        rx_init(old, a[0], 0);
        old->k = 1000; /* any byte it would get is a mismatch */
        cr_assert_eq(loop->backend->recv_start(loop, &old->io), 0);
        if (round % 3 != 0)
            wait_once(loop, 0); /* armed in the kernel, not just queued */
        write_str(a[1], "old bytes");
        if (round % 2 == 0)
            usleep(200); /* let the completion land in the queue */
        loop->backend->recv_stop(loop, &old->io);
        cr_assert_eq(old->calls, 0);
        free(old);
        close(a[0]);
        socket_pair(b);
        cr_assert_eq(b[0], a[0], "the lowest free number is reused");
        rx_init(&fresh, b[0], 0);
        cr_assert_eq(loop->backend->recv_start(loop, &fresh.io), 0);
        fill(buf, sizeof(buf), 0, 0);
        cr_assert_eq(write(b[1], buf, sizeof(buf)), (ssize_t)sizeof(buf));
        for (int i = 0; i < 100 && fresh.bytes < 64; i++)
            wait_once(loop, 10);
        cr_assert_eq(fresh.bytes, 64, "round %d", round);
        cr_assert_eq(fresh.mismatches, 0, "round %d: stale bytes delivered", round);
        loop->backend->recv_stop(loop, &fresh.io);
        close(a[1]);
        close(b[0]);
        close(b[1]);
    }
    gn_loop_free(loop);
}

/* Several completions of one receive are queued; the callback of the
 * first stops it, and the rest are dropped. */
Test(backend_uring, a_stop_inside_the_callback_drops_the_queued_rest, .timeout = 10)
{
    gn_loop *loop = uring_loop();
    struct rx r;
    int sv[2];

    socket_pair(sv);
    rx_init(&r, sv[0], 0);
    r.stop_in_cb = true;
    cr_assert_eq(loop->backend->recv_start(loop, &r.io), 0);
    wait_once(loop, 0);
    for (int i = 0; i < 5; i++) {
        char buf[100];
        fill(buf, sizeof(buf), 0, (size_t)i * sizeof(buf));
        cr_assert_eq(write(sv[1], buf, sizeof(buf)), (ssize_t)sizeof(buf));
        usleep(1000); /* a completion each */
    }
    for (int i = 0; i < 20; i++)
        wait_once(loop, 5);
    cr_expect_eq(r.calls, 1);
    close(sv[0]);
    close(sv[1]);
    gn_loop_free(loop);
}

/* An armed receive holds the socket: without a prompt cancel, the peer
 * would see the FIN only when the loop next enters the kernel. */
Test(backend_uring, a_close_after_recv_stop_reaches_the_peer_at_once, .timeout = 10)
{
    gn_loop *loop = uring_loop();
    char text[64], byte;
    struct rx r;
    int lfd = gn_test_raw_listener("", text, sizeof(text), 16);
    int c = gn_test_connect_fd(text);
    int s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    struct pollfd pfd = {.fd = c, .events = POLLIN};

    cr_assert_geq(s, 0);
    rx_init(&r, s, 0);
    cr_assert_eq(loop->backend->recv_start(loop, &r.io), 0);
    wait_once(loop, 0);
    loop->backend->recv_stop(loop, &r.io);
    close(s);
    /* No backend call from here on. */
    cr_assert_eq(poll(&pfd, 1, 1000), 1, "the peer did not see the close");
    cr_expect_eq(read(c, &byte, 1), 0, "an orderly end of stream");
    close(c);
    close(lfd);
    gn_loop_free(loop);
}

Test(backend_uring, a_receive_stopped_before_submission_delivers_nothing, .timeout = 10)
{
    gn_loop *loop = uring_loop();
    struct rx r;
    int sv[2];

    socket_pair(sv);
    write_str(sv[1], "already here");
    rx_init(&r, sv[0], 0);
    cr_assert_eq(loop->backend->recv_start(loop, &r.io), 0);
    loop->backend->recv_stop(loop, &r.io);
    for (int i = 0; i < 10; i++)
        wait_once(loop, 5);
    cr_expect_eq(r.calls, 0);
    close(sv[0]);
    close(sv[1]);
    gn_loop_free(loop);
}

/* ---- pausing -------------------------------------------------------- */

/* Fill fd's peer until the socket takes no more; returns the byte count. */
static size_t stuff(int fd, size_t k, size_t off)
{
    char buf[4096];
    size_t total = 0;
    ssize_t n;

    for (;;) {
        fill(buf, sizeof(buf), k, off + total);
        n = send(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0)
            return total;
        total += (size_t)n;
    }
}

static void wait_rounds(gn_loop *loop, int n)
{
    for (int i = 0; i < n; i++)
        wait_once(loop, 5);
}

/* A pause in the first callback: what the kernel had received by then
 * still comes, but at most one arming's worth (64 KiB: the conn core's
 * bounds count on it), then nothing however much waits; a resume brings
 * the rest, every byte in order. */
Test(backend_uring, a_pause_delivers_what_was_received_then_nothing_until_resumed, .timeout = 10)
{
    gn_loop *loop = uring_loop();
    size_t sent, after_pause;
    struct rx r;
    int sv[2];

    socket_pair(sv);
    sent = stuff(sv[1], 0, 0);
    cr_assert_gt(sent, 128u << 10);
    rx_init(&r, sv[0], 0);
    r.pause_in_cb = true;
    cr_assert_eq(loop->backend->recv_start(loop, &r.io), 0);
    wait_rounds(loop, 20);
    cr_assert_gt(r.at_pause, 0);
    after_pause = r.bytes - r.at_pause;
    cr_expect_leq(r.bytes, 64u << 10, "took %zu bytes in one arming", r.bytes);
    sent += stuff(sv[1], 0, sent);
    wait_rounds(loop, 20);
    cr_expect_eq(r.bytes, r.at_pause + after_pause, "nothing more while paused");
    cr_assert_eq(loop->backend->recv_start(loop, &r.io), 0);
    for (int i = 0; i < 1000 && r.bytes < sent; i++) {
        sent += stuff(sv[1], 0, sent);
        wait_once(loop, 5);
        if (sent > (4u << 20))
            break;
    }
    for (int i = 0; i < 200 && r.bytes < sent; i++)
        wait_once(loop, 5);
    cr_expect_eq(r.bytes, sent);
    cr_expect_eq(r.mismatches, 0);
    cr_expect_eq(r.error, 0);
    loop->backend->recv_stop(loop, &r.io);
    close(sv[0]);
    close(sv[1]);
    gn_loop_free(loop);
}

static void untouchable(gn_loop *loop, struct gn__io *io, unsigned events)
{
    (void)loop;
    (void)events;
    cr_assert_fail("a completion reached the io of descriptor %d after its close", io->fd);
}

/* The owner pauses, closes the descriptor without a stop and frees the
 * io (ASan sees any touch) or reuses its memory for the next socket (a
 * pooled object), and the number goes to a new socket at once: whatever
 * the paused request still had reaches no one, the new io gets only its
 * own bytes. */
Test(backend_uring, a_paused_io_closed_without_a_stop_is_never_touched_again, .timeout = 20)
{
    gn_loop *loop = uring_loop();
    struct rx fresh;

    for (int round = 0; round < 150; round++) {
        struct rx *old = malloc(sizeof(*old)), *next = &fresh;
        char buf[64];
        int a[2], b[2];

        socket_pair(a);
        stuff(a[1], 1000, 0);
        rx_init(old, a[0], 1000);
        old->pause_in_cb = round % 2;
        cr_assert_eq(loop->backend->recv_start(loop, &old->io), 0);
        if (old->pause_in_cb) {
            while (!old->at_pause)
                wait_once(loop, 5);
        } else {
            /* Submitted with the pause's cancel: the request received at
             * once, and its completions wait unread in the queue. */
            loop->backend->recv_pause(loop, &old->io);
        }
        if (round % 3 == 1)
            next = old; /* the same address for the new socket */
        else if (round % 3 == 2)
            old->io.cb = untouchable; /* kept, as a pooled object would be */
        else
            free(old);
        close(a[0]);
        socket_pair(b);
        cr_assert_eq(b[0], a[0]);
        if (round % 3 == 2)
            wait_rounds(loop, 3); /* the old completions meet the new socket */
        if (round % 3 != 0) {
            rx_init(next, b[0], 0);
            cr_assert_eq(loop->backend->recv_start(loop, &next->io), 0);
            fill(buf, sizeof(buf), 0, 0);
            cr_assert_eq(write(b[1], buf, sizeof(buf)), (ssize_t)sizeof(buf));
            for (int i = 0; i < 100 && next->bytes < 64; i++)
                wait_once(loop, 5);
            cr_assert_eq(next->bytes, 64, "round %d", round);
            cr_assert_eq(next->mismatches, 0, "round %d: stale bytes", round);
            loop->backend->recv_stop(loop, &next->io);
        } else {
            wait_rounds(loop, 3); /* the old completions meet a socket no io owns */
        }
        if (round % 3 != 0)
            free(old);
        close(a[1]);
        close(b[0]);
        close(b[1]);
    }
    gn_loop_free(loop);
}

/* ---- accept --------------------------------------------------------- */

struct acceptor {
    struct gn__io io;
    int fds[64];
    int n, error;
};

static void acceptor_cb(gn_loop *loop, struct gn__io *io, unsigned events)
{
    struct acceptor *a = (struct acceptor *)io;

    (void)loop;
    cr_assert_eq(events, GN__ACCEPT);
    if (loop->done.res < 0)
        a->error = loop->done.res;
    else if (a->n < 64)
        a->fds[a->n++] = loop->done.res;
    else
        close(loop->done.res);
}

static bool accepted_all(void *arg)
{
    return ((struct acceptor *)arg)->n == 50;
}

Test(backend_uring, accept_delivers_nonblocking_cloexec_descriptors, .timeout = 10)
{
    gn_loop *loop = uring_loop();
    struct acceptor a = {.io = {.cb = acceptor_cb}};
    int clients[50];
    char text[64];

    a.io.fd = gn_test_raw_listener("", text, sizeof(text), 128);
    cr_assert_eq(loop->backend->accept_start(loop, &a.io), 0);
    for (int i = 0; i < 50; i++) {
        clients[i] = gn_test_connect_fd(text);
        cr_assert_geq(clients[i], 0);
    }
    wait_until(loop, accepted_all, &a, 5000);
    cr_expect_eq(a.error, 0);
    for (int i = 0; i < a.n; i++) {
        cr_expect(fcntl(a.fds[i], F_GETFL) & O_NONBLOCK);
        cr_expect(fcntl(a.fds[i], F_GETFD) & FD_CLOEXEC);
        close(a.fds[i]);
    }
    loop->backend->accept_stop(loop, &a.io);
    for (int i = 0; i < 50; i++)
        close(clients[i]);
    close(a.io.fd);
    gn_loop_free(loop);
}

/* Clients connect while the accept is armed; it is stopped with their
 * completions unread and the listener closed: whether the loop waits
 * again or is freed, every accepted descriptor is closed. */
static void accept_stop_leaks_nothing(bool wait_after)
{
    int before = gn_test_count_fds();
    gn_loop *loop = uring_loop();
    struct acceptor a = {.io = {.cb = acceptor_cb}};
    int clients[20];
    char text[64];

    a.io.fd = gn_test_raw_listener("", text, sizeof(text), 128);
    cr_assert_eq(loop->backend->accept_start(loop, &a.io), 0);
    wait_once(loop, 0);
    for (int i = 0; i < 20; i++) {
        clients[i] = gn_test_connect_fd(text);
        cr_assert_geq(clients[i], 0);
    }
    usleep(20000);
    loop->backend->accept_stop(loop, &a.io);
    close(a.io.fd);
    if (wait_after)
        for (int i = 0; i < 10; i++)
            wait_once(loop, 5);
    cr_expect_eq(a.n, 0, "nothing delivered after the stop");
    for (int i = 0; i < 20; i++)
        close(clients[i]);
    gn_loop_free(loop);
    cr_expect_eq(gn_test_count_fds(), before);
}

Test(backend_uring, accept_stop_then_waiting_leaks_no_descriptor, .timeout = 10)
{
    accept_stop_leaks_nothing(true);
}

Test(backend_uring, accept_stop_then_freeing_leaks_no_descriptor, .timeout = 10)
{
    accept_stop_leaks_nothing(false);
}

/* ---- readiness ------------------------------------------------------ */

struct sipper {
    struct gn__io io;
    int reads;
};

static void sip(gn_loop *loop, struct gn__io *io, unsigned events)
{
    struct sipper *s = (struct sipper *)io;
    char byte;

    (void)loop;
    if ((events & GN__READ) && read(io->fd, &byte, 1) == 1)
        s->reads++;
}

/* A byte per wake-up: each wake-up comes from what the last one left. */
static void sip_ten(gn_loop *loop)
{
    struct sipper s = {.io = {.cb = sip}};
    int sv[2];

    socket_pair(sv);
    s.io.fd = sv[0];
    cr_assert_eq(gn__io_watch(loop, &s.io, GN__READ), 0);
    write_str(sv[1], "0123456789");
    for (int i = 0; i < 100 && s.reads < 10; i++)
        wait_once(loop, 100);
    cr_expect_eq(s.reads, 10);
    cr_assert_eq(gn__io_watch(loop, &s.io, 0), 0);
    close(sv[0]);
    close(sv[1]);
}

Test(backend_uring, readiness_is_level_triggered, .timeout = 10)
{
    gn_loop *loop = uring_loop();

    sip_ten(loop);
    gn_loop_free(loop);
}

/* With a receive in flight the ring waits, and readiness comes through
 * its poll on the epoll descriptor: still level-triggered. */
Test(backend_uring, readiness_is_level_triggered_while_the_ring_waits, .timeout = 10)
{
    gn_loop *loop = uring_loop();
    struct rx r;
    int sv[2];

    socket_pair(sv);
    rx_init(&r, sv[0], 0);
    cr_assert_eq(loop->backend->recv_start(loop, &r.io), 0);
    sip_ten(loop);
    cr_expect_eq(r.calls, 0);
    loop->backend->recv_stop(loop, &r.io);
    close(sv[0]);
    close(sv[1]);
    gn_loop_free(loop);
}

struct poster {
    gn_loop *loop;
    int ran;
};

static void posted(gn_loop *loop, void *arg)
{
    (void)loop;
    ((struct poster *)arg)->ran++;
}

static void *post_later(void *arg)
{
    struct poster *p = arg;

    usleep(50000);
    gn_loop_post(p->loop, posted, p);
    return NULL;
}

/* The ring waits its timeout when nothing comes, and a post from another
 * thread (the loop's eventfd, a readiness event) ends the wait early. */
Test(backend_uring, the_ring_wait_keeps_its_timeout_and_wakes_for_a_post, .timeout = 10)
{
    gn_loop *loop = uring_loop();
    struct poster p = {.loop = loop};
    struct rx r;
    uint64_t t0;
    pthread_t t;
    int sv[2];

    socket_pair(sv);
    rx_init(&r, sv[0], 0);
    cr_assert_eq(loop->backend->recv_start(loop, &r.io), 0);
    wait_once(loop, 0);
    t0 = now_ms();
    wait_once(loop, 100);
    cr_expect_geq(now_ms() - t0, 90, "returned early from an empty wait");
    cr_assert_eq(pthread_create(&t, NULL, post_later, &p), 0);
    t0 = now_ms();
    wait_once(loop, 3000);
    cr_expect_lt(now_ms() - t0, 1000, "the post did not wake the ring");
    pthread_join(t, NULL);
    cr_assert_eq(gn_test_run_loop_for(loop, 1000), 0);
    cr_expect_eq(p.ran, 1);
    loop->backend->recv_stop(loop, &r.io);
    close(sv[0]);
    close(sv[1]);
    gn_loop_free(loop);
}
