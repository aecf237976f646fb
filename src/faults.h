/*
 * The fault injector (GNEZDO_FAULTS, gn_faults_set): socket calls that
 * return short counts, EAGAIN and EINTR, connects that complete late and
 * received bytes delivered in pieces, at random but reproducibly from a
 * seed, so that users' protocol code and the library meet a hostile
 * network in their tests.  Never installed.
 *
 * The transport files call gn__recv, gn__send ... instead of the
 * syscalls.  While no faults are wanted each costs one load and one
 * predictable branch; the injector itself lives in faults.c.
 */
#ifndef GN_FAULTS_H
#define GN_FAULTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "internal.h"

/* Nonzero while faults may be injected, and before the environment has
 * been read (the first call through the slow path reads it). */
extern atomic_uint gn__faults_maybe;

static inline bool gn__faults_on(void)
{
    return __builtin_expect(atomic_load_explicit(&gn__faults_maybe, memory_order_relaxed) != 0, 0);
}

ssize_t gn__faulty_recv(int fd, void *buf, size_t len, int flags);
ssize_t gn__faulty_send(int fd, const void *buf, size_t len, int flags);
ssize_t gn__faulty_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t gn__faulty_sendfile(int out_fd, int in_fd, off_t *offset, size_t len);
/* Datagrams keep their boundaries: EAGAIN and EINTR only. */
ssize_t gn__faulty_recvmsg(int fd, struct msghdr *msg, int flags);
ssize_t gn__faulty_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *sa,
                          socklen_t salen);
#ifdef _GNU_SOURCE /* accept4 */
int gn__faulty_accept4(int fd, struct sockaddr *sa, socklen_t *salen, int flags);
#endif

/* How many of n received bytes to deliver now (a short read at the
 * delivery step of a completion backend): n, or 1..n-1. */
size_t gn__faults_piece(size_t n);
/* Milliseconds to hold back a finished connect, 0 for none. */
uint32_t gn__faults_connect_delay_ms(void);

/* 0, or GN_EINVAL when GNEZDO_FAULTS is malformed (logged as an error):
 * a loop refuses to start rather than run a test without its faults. */
int gn__faults_env_check(void);

static inline ssize_t gn__recv(int fd, void *buf, size_t len, int flags)
{
    return gn__faults_on() ? gn__faulty_recv(fd, buf, len, flags) : recv(fd, buf, len, flags);
}

static inline ssize_t gn__send(int fd, const void *buf, size_t len, int flags)
{
    return gn__faults_on() ? gn__faulty_send(fd, buf, len, flags) : send(fd, buf, len, flags);
}

static inline ssize_t gn__sendmsg(int fd, const struct msghdr *msg, int flags)
{
    return gn__faults_on() ? gn__faulty_sendmsg(fd, msg, flags) : sendmsg(fd, msg, flags);
}

static inline ssize_t gn__sendfile(int out_fd, int in_fd, off_t *offset, size_t len)
{
    return gn__faults_on() ? gn__faulty_sendfile(out_fd, in_fd, offset, len)
                           : sendfile(out_fd, in_fd, offset, len);
}

static inline ssize_t gn__recvmsg(int fd, struct msghdr *msg, int flags)
{
    return gn__faults_on() ? gn__faulty_recvmsg(fd, msg, flags) : recvmsg(fd, msg, flags);
}

static inline ssize_t gn__sendto(int fd, const void *buf, size_t len, int flags,
                                 const struct sockaddr *sa, socklen_t salen)
{
    return gn__faults_on() ? gn__faulty_sendto(fd, buf, len, flags, sa, salen)
                           : sendto(fd, buf, len, flags, sa, salen);
}

#ifdef _GNU_SOURCE
static inline int gn__accept4(int fd, struct sockaddr *sa, socklen_t *salen, int flags)
{
    return gn__faults_on() ? gn__faulty_accept4(fd, sa, salen, flags)
                           : accept4(fd, sa, salen, flags);
}
#endif

#endif
