/*
 * The fault injector: what GNEZDO_FAULTS=seed:rate[:kinds] or
 * gn_faults_set asks for, and the slow path of the socket calls in
 * faults.h.
 *
 * Every fault is something a real kernel may do: a read returns fewer
 * bytes than are waiting, a write takes fewer than offered, a call fails
 * with EINTR (a signal) or EAGAIN (a spurious wake-up: epoll(7) warns of
 * them), a connect takes longer.  So code that survives them is correct,
 * not merely tuned to the injector.
 *
 * Each thread draws from its own splitmix64 generator, seeded from the
 * seed alone: a thread doing the same calls in the same order meets the
 * same faults, whatever other threads do.  After three failed calls in a
 * row (EAGAIN, EINTR) a thread's next call goes through, so a rate of 1
 * slows a program down but never stalls it.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"
#include "loop.h"

#define KIND_SHORT   1u
#define KIND_EAGAIN  2u
#define KIND_EINTR   4u
#define KIND_DELAY   8u
#define KINDS_ALL    (KIND_SHORT | KIND_EAGAIN | KIND_EINTR | KIND_DELAY)
#define KINDS_STREAM (KIND_SHORT | KIND_EAGAIN | KIND_EINTR)
#define KINDS_RETRY  (KIND_EAGAIN | KIND_EINTR)

#define RATE_ONE        1000000u /* rates are kept in millionths */
#define MAX_FAIL_STREAK 3
#define MAX_DELAY_MS    50u

struct config {
    uint64_t seed;
    uint32_t rate; /* millionths of calls that fail */
    unsigned kinds;
};

/* 1 until the environment is read: the first call takes the slow path. */
atomic_uint gn__faults_maybe = 1;

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static atomic_int env_rc;
static atomic_ullong cfg_seed;
static atomic_uint cfg_rate, cfg_kinds, cfg_generation;
static atomic_ullong injected;

static _Thread_local struct {
    uint64_t state;
    unsigned generation; /* of the config the state was seeded from */
    unsigned streak;     /* failed calls in a row */
} rng;

/* ---- the spec -------------------------------------------------------- */

static int spec_error(char *errbuf, size_t errlen, const char *spec, const char *what)
{
    return gn__errbuf_input(errbuf, errlen, GN_EINVAL, spec, strlen(spec), "%s", what);
}

/* Decimal digits up to the next ':' or the end. */
static const char *parse_seed(const char *p, uint64_t *seed)
{
    uint64_t v = 0;
    const char *start = p;

    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return NULL;
        v = v * 10 + d;
    }
    if (p == start || p - start > 20)
        return NULL;
    *seed = v;
    return p;
}

/* "0.05", ".5", "1", "5%": a fraction of calls, to a millionth. */
static const char *parse_rate(const char *p, uint32_t *rate)
{
    uint64_t whole = 0, frac = 0, scale = RATE_ONE;
    const char *start = p;

    for (; *p >= '0' && *p <= '9' && whole <= 100; p++)
        whole = whole * 10 + (uint64_t)(*p - '0');
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++) {
            if (scale > 1) {
                scale /= 10;
                frac += (uint64_t)(*p - '0') * scale;
            }
        }
    }
    if (p == start || (p - start == 1 && *start == '.'))
        return NULL;
    if (*p == '%') {
        p++;
        if (whole > 100 || (whole == 100 && frac > 0))
            return NULL;
        *rate = (uint32_t)((whole * RATE_ONE + frac) / 100);
        return p;
    }
    if (whole > 1 || (whole == 1 && frac > 0))
        return NULL;
    *rate = (uint32_t)(whole * RATE_ONE + frac);
    return p;
}

static unsigned kind_named(const char *word, size_t len)
{
    static const struct {
        const char *name;
        unsigned kind;
    } names[] = {{"short", KIND_SHORT},
                 {"eagain", KIND_EAGAIN},
                 {"eintr", KIND_EINTR},
                 {"delay", KIND_DELAY},
                 {"all", KINDS_ALL}};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == len && memcmp(names[i].name, word, len) == 0)
            return names[i].kind;
    return 0;
}

/* "short,eagain,eintr,delay" or "all". */
static const char *parse_kinds(const char *p, unsigned *kinds)
{
    *kinds = 0;
    for (;;) {
        size_t len = strcspn(p, ",");
        unsigned k = kind_named(p, len);
        if (!k)
            return NULL;
        *kinds |= k;
        p += len;
        if (*p != ',')
            return p;
        p++;
    }
}

static int parse_spec(const char *spec, struct config *c, char *errbuf, size_t errlen)
{
    const char *p = parse_seed(spec, &c->seed);

    if (!p || *p != ':')
        return spec_error(errbuf, errlen, spec,
                          "expected seed:rate[:kinds], the seed a decimal number below 2^64");
    p = parse_rate(p + 1, &c->rate);
    if (!p || (*p && *p != ':'))
        return spec_error(errbuf, errlen, spec,
                          "the rate must be a fraction from 0 to 1 (0.05) or a percentage (5%)");
    c->kinds = KINDS_ALL;
    if (*p == ':') {
        p = parse_kinds(p + 1, &c->kinds);
        if (!p)
            return spec_error(errbuf, errlen, spec,
                              "kinds are a comma-separated list of short, eagain, eintr, "
                              "delay or all");
    }
    return 0;
}

static void apply(const struct config *c)
{
    atomic_store(&cfg_seed, c->seed);
    atomic_store(&cfg_rate, c->rate);
    atomic_store(&cfg_kinds, c->kinds);
    atomic_fetch_add(&cfg_generation, 1);
    atomic_store(&gn__faults_maybe, c->rate > 0 && c->kinds != 0);
}

static void read_env(void)
{
    char error[GN_ERRBUF_SIZE];
    const char *spec = getenv("GNEZDO_FAULTS");
    struct config c = {0};

    if (spec && spec[0]) {
        env_rc = parse_spec(spec, &c, error, sizeof(error));
        if (env_rc < 0) {
            gn__log(GN_LOG_ERROR, "GNEZDO_FAULTS: %s", error);
            c = (struct config){0};
        }
    }
    apply(&c);
}

int gn__faults_env_check(void)
{
    pthread_once(&env_once, read_env);
    return env_rc;
}

int gn_faults_set(const char *spec, char *errbuf, size_t errlen)
{
    struct config c = {0};
    int rc;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    pthread_once(&env_once, read_env); /* so the environment cannot override it later */
    if (spec && spec[0]) {
        rc = parse_spec(spec, &c, errbuf, errlen);
        if (rc < 0)
            return rc;
    }
    env_rc = 0; /* the program chose: a bad GNEZDO_FAULTS no longer matters */
    apply(&c);
    return 0;
}

uint64_t gn_faults_injected(void)
{
    return atomic_load(&injected);
}

/* ---- drawing --------------------------------------------------------- */

static uint64_t next_random(void)
{
    /* splitmix64 (Steele, Lea, Flood 2014): one add and three mixes. */
    uint64_t z = (rng.state += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* The fault for one call that can suffer `possible` kinds, or 0. */
static unsigned draw(unsigned possible)
{
    unsigned generation, kinds, n = 0, pick, k;

    pthread_once(&env_once, read_env);
    generation = atomic_load_explicit(&cfg_generation, memory_order_relaxed);
    if (rng.generation != generation) {
        rng.state = atomic_load_explicit(&cfg_seed, memory_order_relaxed);
        rng.generation = generation;
        rng.streak = 0;
    }
    kinds = possible & atomic_load_explicit(&cfg_kinds, memory_order_relaxed);
    if (!kinds || next_random() % RATE_ONE >= atomic_load_explicit(&cfg_rate, memory_order_relaxed))
        goto clean;
    if ((kinds & ~KINDS_RETRY) == 0 && rng.streak >= MAX_FAIL_STREAK)
        goto clean; /* a call must go through at last */
    for (k = kinds; k; k &= k - 1)
        n++;
    pick = (unsigned)(next_random() % n);
    for (k = kinds; pick > 0; pick--)
        k &= k - 1;
    k &= -k; /* the lowest kind left */
    if (k & KINDS_RETRY) {
        if (rng.streak >= MAX_FAIL_STREAK)
            k = KIND_SHORT & kinds ? KIND_SHORT : KIND_DELAY;
        else
            rng.streak++;
    }
    if (!(k & KINDS_RETRY))
        rng.streak = 0;
    atomic_fetch_add_explicit(&injected, 1, memory_order_relaxed);
    return k;
clean:
    rng.streak = 0;
    return 0;
}

/* Fewer than len bytes, small ones more often than large: a frame split
 * after its first byte matters more than one split near its end. */
static size_t short_len(size_t len)
{
    size_t bound = (size_t)1 << (next_random() % 17);

    if (bound > len - 1)
        bound = len - 1;
    return 1 + (size_t)(next_random() % bound);
}

/* A failure with errno set, for EAGAIN and EINTR; 0 for the others. */
static int failure(unsigned k)
{
    if (k == KIND_EAGAIN)
        errno = EAGAIN;
    else if (k == KIND_EINTR)
        errno = EINTR;
    else
        return 0;
    return -1;
}

/* The kinds a call moving len bytes can suffer: no short count of one. */
static unsigned stream_kinds(size_t len)
{
    return len > 1 ? KINDS_STREAM : KINDS_RETRY;
}

ssize_t gn__faulty_recv(int fd, void *buf, size_t len, int flags)
{
    unsigned k = draw(stream_kinds(len));

    if (failure(k))
        return -1;
    return recv(fd, buf, k == KIND_SHORT ? short_len(len) : len, flags);
}

ssize_t gn__faulty_send(int fd, const void *buf, size_t len, int flags)
{
    unsigned k = draw(stream_kinds(len));

    if (failure(k))
        return -1;
    return send(fd, buf, k == KIND_SHORT ? short_len(len) : len, flags);
}

ssize_t gn__faulty_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    struct iovec iov[64];
    struct msghdr part = *msg;
    size_t total = 0, want, i;
    unsigned k;

    for (i = 0; i < msg->msg_iovlen; i++)
        total += msg->msg_iov[i].iov_len;
    k = draw(stream_kinds(total));
    if (failure(k))
        return -1;
    if (k != KIND_SHORT)
        return sendmsg(fd, msg, flags);
    /* The first `want` bytes, in at most 64 pieces (fewer still is only
     * shorter, which is the point). */
    want = short_len(total);
    for (i = 0; i < msg->msg_iovlen && i < 64 && want > 0; i++) {
        iov[i] = msg->msg_iov[i];
        if (iov[i].iov_len > want)
            iov[i].iov_len = want;
        want -= iov[i].iov_len;
    }
    part.msg_iov = iov;
    part.msg_iovlen = i;
    return sendmsg(fd, &part, flags);
}

ssize_t gn__faulty_sendfile(int out_fd, int in_fd, off_t *offset, size_t len)
{
    unsigned k = draw(stream_kinds(len));

    if (failure(k))
        return -1;
    return sendfile(out_fd, in_fd, offset, k == KIND_SHORT ? short_len(len) : len);
}

ssize_t gn__faulty_recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (failure(draw(KINDS_RETRY)))
        return -1;
    return recvmsg(fd, msg, flags);
}

ssize_t gn__faulty_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *sa,
                          socklen_t salen)
{
    if (failure(draw(KINDS_RETRY)))
        return -1;
    return sendto(fd, buf, len, flags, sa, salen);
}

int gn__faulty_accept4(int fd, struct sockaddr *sa, socklen_t *salen, int flags)
{
    if (failure(draw(KINDS_RETRY)))
        return -1;
    return accept4(fd, sa, salen, flags);
}

size_t gn__faults_piece(size_t n)
{
    return n > 1 && draw(KIND_SHORT) ? short_len(n) : n;
}

uint32_t gn__faults_connect_delay_ms(void)
{
    return draw(KIND_DELAY) ? 1 + (uint32_t)(next_random() % MAX_DELAY_MS) : 0;
}
