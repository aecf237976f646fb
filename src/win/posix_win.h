/*
 * The POSIX socket calls the library makes, on WinSock 2 (docs/windows.md).
 *
 * The Windows build includes this header first in every file (the
 * compiler's -include), so the library, the CLI and the tests keep one
 * source for both systems.  What it changes:
 *
 *  - WinSock reports failures through WSAGetLastError(), not errno: each
 *    socket call below is wrapped to set errno from it (WSAEWOULDBLOCK
 *    becomes EAGAIN, a pending connect EINPROGRESS, ...), because every
 *    caller reads errno.  The wrappers replace the calls through
 *    function-like macros, so a member such as ops->read(...) is written
 *    (ops->read)(...) where the two meet.
 *  - A socket is a SOCKET handle, held in an int as OpenSSL's SSL_set_fd
 *    does: Windows keeps handles within 32 significant bits so that 32-
 *    and 64-bit processes can share them, and INVALID_SOCKET becomes -1.
 *  - close, read and write take sockets and CRT descriptors both: a
 *    socket call first, the CRT's when WinSock says it is no socket.
 *  - Datagrams as Linux has them: recvmsg with MSG_TRUNC returns a cut
 *    datagram's real length, and an ICMP port unreachable, WSAECONNRESET
 *    on a datagram socket, is ECONNREFUSED, reported to connected UDP
 *    sockets only (SIO_UDP_CONNRESET).
 *  - Missing POSIX names are defined: SOCK_NONBLOCK and SOCK_CLOEXEC
 *    (socket handles are made uninheritable), MSG_NOSIGNAL (no SIGPIPE
 *    on Windows), MSG_DONTWAIT (by a poll first), struct msghdr, fcntl's
 *    O_NONBLOCK, sendfile by copy.
 *  - SO_RCVTIMEO and SO_SNDTIMEO take POSIX's struct timeval, and a call
 *    they end fails with EAGAIN, as on POSIX (WinSock: DWORD ms and
 *    WSAETIMEDOUT).
 *  - SO_REUSEADDR is not passed on: on Windows it lets another socket
 *    take a bound port, where POSIX only allows reusing one in TIME_WAIT,
 *    which Windows allows anyway.
 */
#ifndef GN_POSIX_WIN_H
#define GN_POSIX_WIN_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#ifndef NOGDI
#define NOGDI
#endif
#if !defined(_WIN32_WINNT) || _WIN32_WINNT < 0x0A00
#undef _WIN32_WINNT
#define _WIN32_WINNT 0x0A00 /* Windows 10: AF_UNIX, TCP_KEEPIDLE */
#endif

/* In this order: each needs the one before. */
// clang-format off
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
#include <afunix.h>
// clang-format on

#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "gnezdo.h"

#define SOCK_NONBLOCK 0x10000000
#define SOCK_CLOEXEC  0x20000000
#define MSG_NOSIGNAL  0
/* The library's sockets are non-blocking; a test's may not be, and
 * WinSock has no such flag: the recv and send wrappers see it as "ready
 * now, or EAGAIN" (gn_win_recv says how), and strip it. */
#define MSG_DONTWAIT  0x40000000
#define SHUT_RD       SD_RECEIVE
#define SHUT_WR       SD_SEND
#define SHUT_RDWR     SD_BOTH
#ifndef O_NONBLOCK
#define O_NONBLOCK 0x4000
#endif
#ifndef O_CLOEXEC
#define O_CLOEXEC 0 /* CRT descriptors are not inherited by _spawn* unless asked */
#endif
#define F_GETFD 1
#define F_GETFL 3
#define F_SETFL 4
#ifndef IOV_MAX
#define IOV_MAX 1024
#endif
#ifndef TCP_KEEPIDLE
#define TCP_KEEPIDLE 3 /* TCP_KEEPALIVE in ws2ipdef.h: Windows 10 1709 and later */
#endif
#ifndef TCP_KEEPCNT
#define TCP_KEEPCNT 16
#endif
#ifndef TCP_KEEPINTVL
#define TCP_KEEPINTVL 17
#endif
#ifndef EAI_SYSTEM
#define EAI_SYSTEM (-11) /* never returned by Windows' getaddrinfo */
#endif
#ifndef SIGHUP
#define SIGHUP 1 /* closing the console window (win/signal_win.c) */
#endif
#ifndef SIGPIPE
#define SIGPIPE 13 /* never raised on Windows; named for portable code */
#endif

typedef unsigned long nfds_t;
typedef ADDRESS_FAMILY sa_family_t;

struct msghdr {
    void *msg_name;
    socklen_t msg_namelen;
    struct iovec *msg_iov;
    size_t msg_iovlen;
    void *msg_control;
    size_t msg_controllen;
    int msg_flags;
};

/* errno for a WinSock error code, and errno set from WSAGetLastError(). */
int gn_win_errno(int wsa_error);
int gn_win_fail(void);
/* WSAStartup, once per process; 0 or -1 with errno set. */
int gn_win_startup(void);

int gn_win_socket(int domain, int type, int protocol);
int gn_win_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);
int gn_win_connect(int fd, const struct sockaddr *sa, socklen_t len);
int gn_win_bind(int fd, const struct sockaddr *sa, socklen_t len);
int gn_win_listen(int fd, int backlog);
int gn_win_shutdown(int fd, int how);
int gn_win_close(int fd);
ssize_t gn_win_recv(int fd, void *buf, size_t len, int flags);
ssize_t gn_win_send(int fd, const void *buf, size_t len, int flags);
ssize_t gn_win_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *sa,
                        socklen_t *salen);
ssize_t gn_win_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *sa,
                      socklen_t salen);
ssize_t gn_win_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t gn_win_recvmsg(int fd, struct msghdr *msg, int flags);
ssize_t gn_win_read(int fd, void *buf, size_t len);
ssize_t gn_win_write(int fd, const void *buf, size_t len);
ssize_t gn_win_writev(int fd, const struct iovec *iov, int iovcnt);
ssize_t gn_win_readv(int fd, const struct iovec *iov, int iovcnt);
ssize_t gn_win_sendfile(int out_fd, int in_fd, off_t *offset, size_t len);
int gn_win_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
int gn_win_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
int gn_win_getsockname(int fd, struct sockaddr *sa, socklen_t *len);
int gn_win_getpeername(int fd, struct sockaddr *sa, socklen_t *len);
int gn_win_socketpair(int domain, int type, int protocol, int sv[2]);
int gn_win_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms);
int gn_win_fcntl(int fd, int cmd, ...);
ssize_t gn_win_pread(int fd, void *buf, size_t len, off_t offset);
void *gn_win_memmem(const void *hay, size_t haylen, const void *needle, size_t len);
int gn_win_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);

#define socket(d, t, p)               gn_win_socket(d, t, p)
#define accept(fd, sa, len)           gn_win_accept4(fd, sa, len, 0)
#define accept4(fd, sa, len, fl)      gn_win_accept4(fd, sa, len, fl)
#define connect(fd, sa, len)          gn_win_connect(fd, sa, len)
#define bind(fd, sa, len)             gn_win_bind(fd, sa, len)
#define listen(fd, n)                 gn_win_listen(fd, n)
#define shutdown(fd, how)             gn_win_shutdown(fd, how)
#define close(fd)                     gn_win_close(fd)
#define recv(fd, b, n, fl)            gn_win_recv(fd, b, n, fl)
#define send(fd, b, n, fl)            gn_win_send(fd, b, n, fl)
#define recvfrom(fd, b, n, fl, sa, l) gn_win_recvfrom(fd, b, n, fl, sa, l)
#define sendto(fd, b, n, fl, sa, l)   gn_win_sendto(fd, b, n, fl, sa, l)
#define sendmsg(fd, m, fl)            gn_win_sendmsg(fd, m, fl)
#define recvmsg(fd, m, fl)            gn_win_recvmsg(fd, m, fl)
#define read(fd, b, n)                gn_win_read(fd, b, n)
#define write(fd, b, n)               gn_win_write(fd, b, n)
#define writev(fd, iov, n)            gn_win_writev(fd, iov, n)
#define readv(fd, iov, n)             gn_win_readv(fd, iov, n)
#define sendfile(o, i, off, n)        gn_win_sendfile(o, i, off, n)
#define getsockopt(fd, lv, nm, v, l)  gn_win_getsockopt(fd, lv, nm, v, l)
#define setsockopt(fd, lv, nm, v, l)  gn_win_setsockopt(fd, lv, nm, v, l)
#define getsockname(fd, sa, l)        gn_win_getsockname(fd, sa, l)
#define getpeername(fd, sa, l)        gn_win_getpeername(fd, sa, l)
#define socketpair(d, t, p, sv)       gn_win_socketpair(d, t, p, sv)
#define poll(f, n, t)                 gn_win_poll(f, n, t)
#define fcntl(...)                    gn_win_fcntl(__VA_ARGS__)
#define getaddrinfo(n, s, h, r)       gn_win_getaddrinfo(n, s, h, r)
#define memmem(h, hl, n, nl)          gn_win_memmem(h, hl, n, nl)
#define pread(fd, b, n, off)          gn_win_pread(fd, b, n, off)
/* No symbolic links to tell apart, and an AF_UNIX socket's file is a
 * reparse point stat cannot tell from a file: unix.c leaves such a path
 * alone rather than guess. */
#define lstat       stat
#define S_ISSOCK(m) 0

#endif
