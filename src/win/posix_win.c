/*
 * The POSIX socket calls on WinSock 2: errno from WSAGetLastError(), the
 * flags WinSock lacks, and the calls it has under other names
 * (posix_win.h says why each exists).
 */
#include <stdarg.h>
#include <string.h>

/* The wrappers call WinSock by its own names. */
#undef socket
#undef accept
#undef accept4
#undef connect
#undef bind
#undef listen
#undef shutdown
#undef close
#undef recv
#undef send
#undef recvfrom
#undef sendto
#undef sendmsg
#undef recvmsg
#undef read
#undef write
#undef writev
#undef readv
#undef sendfile
#undef getsockopt
#undef setsockopt
#undef getsockname
#undef getpeername
#undef socketpair
#undef poll
#undef fcntl
#undef getaddrinfo
#undef memmem
#undef pread

static const struct {
    int wsa, err;
} wsa_errors[] = {
    {WSAEWOULDBLOCK, EAGAIN},
    {WSAEINPROGRESS, EINPROGRESS},
    {WSAEALREADY, EALREADY},
    {WSAEINTR, EINTR},
    {WSAEBADF, EBADF},
    {WSAENOTSOCK, ENOTSOCK},
    {WSAEACCES, EACCES},
    {WSAEFAULT, EFAULT},
    {WSAEINVAL, EINVAL},
    {WSAEMFILE, EMFILE},
    {WSAEMSGSIZE, EMSGSIZE},
    {WSAEPROTOTYPE, EPROTOTYPE},
    {WSAENOPROTOOPT, ENOPROTOOPT},
    {WSAEPROTONOSUPPORT, EPROTONOSUPPORT},
    {WSAESOCKTNOSUPPORT, EPROTONOSUPPORT},
    {WSAEOPNOTSUPP, EOPNOTSUPP},
    {WSAEPFNOSUPPORT, EAFNOSUPPORT},
    {WSAEAFNOSUPPORT, EAFNOSUPPORT},
    {WSAEADDRINUSE, EADDRINUSE},
    {WSAEADDRNOTAVAIL, EADDRNOTAVAIL},
    {WSAENETDOWN, ENETDOWN},
    {WSAENETUNREACH, ENETUNREACH},
    {WSAENETRESET, ENETRESET},
    {WSAECONNABORTED, ECONNABORTED},
    {WSAECONNRESET, ECONNRESET},
    {WSAENOBUFS, ENOBUFS},
    {WSAEISCONN, EISCONN},
    {WSAENOTCONN, ENOTCONN},
    {WSAESHUTDOWN, EPIPE},
    {WSAETIMEDOUT, ETIMEDOUT},
    {WSAECONNREFUSED, ECONNREFUSED},
    {WSAEHOSTDOWN, EHOSTUNREACH},
    {WSAEHOSTUNREACH, EHOSTUNREACH},
    {WSAENAMETOOLONG, ENAMETOOLONG},
    {WSAEDISCON, EPIPE},
    {WSA_NOT_ENOUGH_MEMORY, ENOMEM},
    {WSANOTINITIALISED, EINVAL},
    {ERROR_NOT_ENOUGH_MEMORY, ENOMEM},
};

int gn_win_errno(int wsa_error)
{
    for (size_t i = 0; i < sizeof(wsa_errors) / sizeof(wsa_errors[0]); i++)
        if (wsa_errors[i].wsa == wsa_error)
            return wsa_errors[i].err;
    return EIO;
}

int gn_win_fail(void)
{
    errno = gn_win_errno(WSAGetLastError());
    return -1;
}

static INIT_ONCE startup_once = INIT_ONCE_STATIC_INIT;
static int startup_error;

static BOOL CALLBACK start_winsock(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    WSADATA data;

    (void)once;
    (void)param;
    (void)ctx;
    startup_error = WSAStartup(MAKEWORD(2, 2), &data);
    return TRUE;
}

int gn_win_startup(void)
{
    InitOnceExecuteOnce(&startup_once, start_winsock, NULL, NULL);
    if (startup_error != 0) {
        errno = gn_win_errno(startup_error);
        return -1;
    }
    return 0;
}

static SOCKET sock(int fd)
{
    return (SOCKET)(intptr_t)fd;
}

/* Whether an ICMP port unreachable for a datagram this UDP socket sent
 * fails a later receive (WSAECONNRESET).  Linux reports it on connected
 * sockets only: Windows' default, on, is turned off for a new socket and
 * on again by connect, so a server that answers a vanished client is not
 * told.  A failure (no such option) leaves the default. */
static void udp_connreset(SOCKET s, BOOL on)
{
    DWORD none;

    WSAIoctl(s, SIO_UDP_CONNRESET, &on, sizeof(on), NULL, 0, &none, NULL, NULL);
}

static bool is_datagram(SOCKET s)
{
    int type = 0, len = sizeof(type);

    return getsockopt(s, SOL_SOCKET, SO_TYPE, (char *)&type, &len) == 0 && type == SOCK_DGRAM;
}

/* gn_win_fail for a call on s that sends or receives.  WSAECONNRESET on
 * a datagram socket is an ICMP port unreachable for an earlier datagram
 * (SIO_UDP_CONNRESET, on once connected), where POSIX says ECONNREFUSED;
 * the socket's type is asked only then, so other failures cost nothing. */
static int sock_fail(SOCKET s)
{
    int err = WSAGetLastError();

    if (err == WSAECONNRESET && is_datagram(s))
        err = WSAECONNREFUSED;
    errno = gn_win_errno(err);
    return -1;
}

static int set_nonblocking(SOCKET s, bool on)
{
    u_long mode = on;

    return ioctlsocket(s, FIONBIO, &mode) == 0 ? 0 : gn_win_fail();
}

/* A new socket as an int, with SOCK_NONBLOCK applied; -1 and errno. */
static int adopt_new(SOCKET s, int flags)
{
    if (s == INVALID_SOCKET)
        return gn_win_fail();
    if ((flags & SOCK_NONBLOCK) && set_nonblocking(s, true) < 0) {
        int err = errno;

        closesocket(s);
        errno = err;
        return -1;
    }
    return (int)(intptr_t)s;
}

static bool unix_refused(int wsa_error)
{
    return wsa_error == WSAEAFNOSUPPORT || wsa_error == WSAESOCKTNOSUPPORT ||
           wsa_error == WSAEPROTONOSUPPORT || wsa_error == WSAEPROTOTYPE;
}

int gn_win_socket(int domain, int type, int protocol)
{
    int flags = type & (SOCK_NONBLOCK | SOCK_CLOEXEC);
    SOCKET s;

    if (gn_win_startup() < 0)
        return -1;
    type &= ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    /* Overlapped, as socket() makes them: SO_RCVTIMEO and SO_SNDTIMEO
     * work only on such sockets (WSASocket's documentation). */
    s = WSASocketW(domain, type, protocol, NULL, 0,
                   WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    /* No AF_UNIX here (before Windows 10 1803, or Wine), or not of this
     * type (Windows' has SOCK_STREAM only): not supported, rather than an
     * address family or a type the caller did not get wrong. */
    if (s == INVALID_SOCKET && domain == AF_UNIX && unix_refused(WSAGetLastError())) {
        errno = EOPNOTSUPP;
        return -1;
    }
    if (s != INVALID_SOCKET && type == SOCK_DGRAM && domain != AF_UNIX)
        udp_connreset(s, FALSE);
    return adopt_new(s, flags);
}

int gn_win_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    SOCKET s = accept(sock(fd), sa, len);

    /* An accepted socket inherits the listener's non-blocking mode on
     * Windows; POSIX's does not, so set it either way. */
    if (s != INVALID_SOCKET && !(flags & SOCK_NONBLOCK) && set_nonblocking(s, false) < 0) {
        closesocket(s);
        return -1;
    }
    return adopt_new(s, flags);
}

int gn_win_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (connect(sock(fd), sa, len) == 0) {
        if (is_datagram(sock(fd)))
            udp_connreset(sock(fd), TRUE);
        return 0;
    }
    gn_win_fail();
    /* A non-blocking connect under way: EINPROGRESS, as POSIX says. */
    if (errno == EAGAIN)
        errno = EINPROGRESS;
    return -1;
}

int gn_win_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    return bind(sock(fd), sa, len) == 0 ? 0 : gn_win_fail();
}

int gn_win_listen(int fd, int backlog)
{
    return listen(sock(fd), backlog) == 0 ? 0 : gn_win_fail();
}

int gn_win_shutdown(int fd, int how)
{
    return shutdown(sock(fd), how) == 0 ? 0 : gn_win_fail();
}

int gn_win_close(int fd)
{
    if (closesocket(sock(fd)) == 0)
        return 0;
    if (WSAGetLastError() == WSAENOTSOCK)
        return _close(fd);
    return gn_win_fail();
}

static int clamp_len(size_t len)
{
    return len > INT_MAX ? INT_MAX : (int)len;
}

/* MSG_DONTWAIT, which WinSock lacks, taken out of *flags: true, with
 * errno EAGAIN, when it was there and the socket is not ready for
 * `events` now.  A ready socket's call then does not wait for a receive,
 * nor for a send that fits the room there is (a larger one to a blocking
 * socket still waits: only tests pass the flag, on small writes). */
static bool not_ready_now(int fd, int *flags, short events)
{
    WSAPOLLFD p = {.fd = sock(fd), .events = events};

    if (!(*flags & MSG_DONTWAIT))
        return false;
    *flags &= ~MSG_DONTWAIT;
    if (WSAPoll(&p, 1, 0) != 0)
        return false; /* ready, or a failure the call itself reports */
    errno = EAGAIN;
    return true;
}

/* A blocking call's time limit (SO_RCVTIMEO, SO_SNDTIMEO) ends it with
 * WSAETIMEDOUT, where POSIX says EAGAIN; WSAETIMEDOUT on a socket with
 * no limit is a connection that died (ETIMEDOUT).  -1 and errno. */
static int io_fail(int fd, int limit_opt)
{
    int wsa = WSAGetLastError();
    DWORD ms = 0;
    int len = sizeof(ms);

    if (wsa == WSAETIMEDOUT &&
        getsockopt(sock(fd), SOL_SOCKET, limit_opt, (char *)&ms, &len) == 0 && ms != 0) {
        errno = EAGAIN;
        return -1;
    }
    WSASetLastError(wsa);
    return sock_fail(sock(fd));
}

/* A stream's end read as 0 bytes that was a reset: Wine's recv says 0
 * after the peer's RST, where Windows and POSIX say ECONNRESET, while
 * its WSAPoll still says POLLERR.  Asked only at an end (once per
 * connection), of stream sockets (a datagram may be empty); -1 with
 * ECONNRESET then, else 0. */
static ssize_t end_or_reset(int fd)
{
    WSAPOLLFD p = {.fd = sock(fd), .events = POLLRDNORM};
    int type = 0, len = sizeof(type);

    if (WSAPoll(&p, 1, 0) == 1 && (p.revents & POLLERR) &&
        getsockopt(sock(fd), SOL_SOCKET, SO_TYPE, (char *)&type, &len) == 0 &&
        type == SOCK_STREAM) {
        errno = ECONNRESET;
        return -1;
    }
    return 0;
}

ssize_t gn_win_recv(int fd, void *buf, size_t len, int flags)
{
    int n;

    if (not_ready_now(fd, &flags, POLLRDNORM))
        return -1;
    n = recv(sock(fd), buf, clamp_len(len), flags);
    if (n == 0 && len > 0)
        return end_or_reset(fd);
    return n == SOCKET_ERROR ? io_fail(fd, SO_RCVTIMEO) : n;
}

ssize_t gn_win_send(int fd, const void *buf, size_t len, int flags)
{
    int n;

    if (not_ready_now(fd, &flags, POLLWRNORM))
        return -1;
    n = send(sock(fd), buf, clamp_len(len), flags);

    return n == SOCKET_ERROR ? io_fail(fd, SO_SNDTIMEO) : n;
}

ssize_t gn_win_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *sa,
                        socklen_t *salen)
{
    int n;

    if (not_ready_now(fd, &flags, POLLRDNORM))
        return -1;
    n = recvfrom(sock(fd), buf, clamp_len(len), flags, sa, salen);

    return n == SOCKET_ERROR ? io_fail(fd, SO_RCVTIMEO) : n;
}

ssize_t gn_win_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *sa,
                      socklen_t salen)
{
    int n;

    if (not_ready_now(fd, &flags, POLLWRNORM))
        return -1;
    n = sendto(sock(fd), buf, clamp_len(len), flags, sa, salen);

    return n == SOCKET_ERROR ? io_fail(fd, SO_SNDTIMEO) : n;
}

enum { MAX_BUFS = 64 };

/* The iovecs as WSABUFs, at most MAX_BUFS of them (a short write, as
 * POSIX allows); their count. */
static DWORD to_wsabufs(WSABUF *bufs, const struct iovec *iov, size_t iovcnt)
{
    DWORD n = 0;

    for (; n < iovcnt && n < MAX_BUFS; n++) {
        bufs[n].buf = iov[n].iov_base;
        bufs[n].len = (ULONG)(iov[n].iov_len > ULONG_MAX ? ULONG_MAX : iov[n].iov_len);
    }
    return n;
}

ssize_t gn_win_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    WSABUF bufs[MAX_BUFS];
    DWORD nbufs = to_wsabufs(bufs, msg->msg_iov, msg->msg_iovlen), sent = 0;
    int rc;

    if (not_ready_now(fd, &flags, POLLWRNORM))
        return -1;
    rc = WSASendTo(sock(fd), bufs, nbufs, &sent, (DWORD)flags, msg->msg_name, (int)msg->msg_namelen,
                   NULL, NULL);

    return rc == SOCKET_ERROR ? io_fail(fd, SO_SNDTIMEO) : (ssize_t)sent;
}

/* The largest UDP payload (IPv6: 65535 - 8); no larger datagram exists
 * on Windows, whose AF_UNIX has no SOCK_DGRAM. */
enum { MAX_DATAGRAM = 65527 };

/*
 * POSIX recvmsg: a datagram larger than the buffers fills them and sets
 * MSG_TRUNC in msg_flags; with MSG_TRUNC in flags (Linux) it also returns
 * the datagram's real length.  WinSock fills the buffers and fails with
 * WSAEMSGSIZE, the datagram gone and its length untold, so for MSG_TRUNC
 * one more buffer takes what does not fit (on the stack, only as large as
 * the caller's buffers fall short of MAX_DATAGRAM): the count then is the
 * real length, and a datagram that fits is read in place, no copy.
 */
ssize_t gn_win_recvmsg(int fd, struct msghdr *msg, int flags)
{
    WSABUF bufs[MAX_BUFS + 1];
    DWORD nbufs = to_wsabufs(bufs, msg->msg_iov, msg->msg_iovlen), got = 0;
    DWORD wflags;
    INT namelen = (INT)msg->msg_namelen;
    size_t room = 0;
    int rc;

    if (not_ready_now(fd, &flags, POLLRDNORM))
        return -1;
    wflags = (DWORD)(flags & ~MSG_TRUNC);

    for (DWORD i = 0; i < nbufs; i++)
        room += bufs[i].len;
    if ((flags & MSG_TRUNC) && room < MAX_DATAGRAM) {
        char *overflow = __builtin_alloca(MAX_DATAGRAM - room);

        bufs[nbufs].buf = overflow;
        bufs[nbufs++].len = (ULONG)(MAX_DATAGRAM - room);
    }
    rc = WSARecvFrom(sock(fd), bufs, nbufs, &got, &wflags, msg->msg_name,
                     msg->msg_name ? &namelen : NULL, NULL, NULL);
    msg->msg_flags = 0;
    msg->msg_controllen = 0;
    if (rc == SOCKET_ERROR) {
        if (WSAGetLastError() != WSAEMSGSIZE)
            return io_fail(fd, SO_RCVTIMEO);
        /* Every buffer full: the datagram's head, or with the overflow
         * (no UDP datagram is that large) a length it at least has. */
        msg->msg_flags = MSG_TRUNC;
        got = 0;
        for (DWORD i = 0; i < nbufs; i++)
            got += bufs[i].len;
    }
    if (got > room)
        msg->msg_flags = MSG_TRUNC;
    if (msg->msg_name)
        msg->msg_namelen = (socklen_t)namelen;
    return (ssize_t)got;
}

ssize_t gn_win_read(int fd, void *buf, size_t len)
{
    int n = recv(sock(fd), buf, clamp_len(len), 0);

    if (n == 0 && len > 0)
        return end_or_reset(fd);
    if (n != SOCKET_ERROR)
        return n;
    if (WSAGetLastError() == WSAENOTSOCK)
        return _read(fd, buf, (unsigned)(len > UINT_MAX ? UINT_MAX : len));
    return io_fail(fd, SO_RCVTIMEO);
}

ssize_t gn_win_write(int fd, const void *buf, size_t len)
{
    int n = send(sock(fd), buf, clamp_len(len), 0);

    if (n != SOCKET_ERROR)
        return n;
    if (WSAGetLastError() == WSAENOTSOCK)
        return _write(fd, buf, (unsigned)(len > UINT_MAX ? UINT_MAX : len));
    return io_fail(fd, SO_SNDTIMEO);
}

ssize_t gn_win_writev(int fd, const struct iovec *iov, int iovcnt)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t n = gn_win_sendmsg(fd, &msg, 0), total = 0;

    if (n >= 0 || errno != ENOTSOCK)
        return n;
    for (int i = 0; i < iovcnt; i++) {
        n = _write(fd, iov[i].iov_base, (unsigned)iov[i].iov_len);
        if (n < 0)
            return total > 0 ? total : -1;
        total += n;
        if ((size_t)n < iov[i].iov_len)
            break;
    }
    return total;
}

ssize_t gn_win_readv(int fd, const struct iovec *iov, int iovcnt)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};

    return gn_win_recvmsg(fd, &msg, 0);
}

/* No TransmitFile here: it wants a file HANDLE and overlapped sockets to
 * be of use; a copy through a buffer keeps the POSIX contract (a short
 * count, the offset moved). */
ssize_t gn_win_sendfile(int out_fd, int in_fd, off_t *offset, size_t len)
{
    char buf[64 * 1024];
    size_t want = len < sizeof(buf) ? len : sizeof(buf);
    int got;
    ssize_t sent;

    got = (int)gn_win_pread(in_fd, buf, want, *offset);
    if (got <= 0)
        return got;
    sent = gn_win_send(out_fd, buf, (size_t)got, 0);
    if (sent > 0)
        *offset += sent;
    return sent;
}

int gn_win_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    if (getsockopt(sock(fd), level, name, val, len) != 0)
        return gn_win_fail();
    /* A failed connect's SO_ERROR is a WinSock code: as errno, as POSIX. */
    if (level == SOL_SOCKET && name == SO_ERROR && *len >= (socklen_t)sizeof(int) && *(int *)val)
        *(int *)val = gn_win_errno(*(int *)val);
    return 0;
}

int gn_win_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    if (level == SOL_SOCKET && name == SO_REUSEADDR)
        return 0;
    /* A time limit is a struct timeval on POSIX, a DWORD of ms here. */
    if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO) &&
        len >= (socklen_t)sizeof(struct timeval)) {
        const struct timeval *tv = val;
        DWORD ms = (DWORD)tv->tv_sec * 1000 + (DWORD)(tv->tv_usec + 999) / 1000;

        return setsockopt(sock(fd), level, name, (const char *)&ms, sizeof(ms)) == 0
                   ? 0
                   : gn_win_fail();
    }
    return setsockopt(sock(fd), level, name, val, len) == 0 ? 0 : gn_win_fail();
}

int gn_win_getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
    return getsockname(sock(fd), sa, len) == 0 ? 0 : gn_win_fail();
}

int gn_win_getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
    return getpeername(sock(fd), sa, len) == 0 ? 0 : gn_win_fail();
}

/* A connected pair over loopback TCP: Windows has no socketpair, and its
 * AF_UNIX sockets cannot be paired without a path.  The listener accepts
 * only the connect it was made for (the peer's address is checked). */
int gn_win_socketpair(int domain, int type, int protocol, int sv[2])
{
    struct sockaddr_in addr = {.sin_family = AF_INET};
    struct sockaddr_in mine, peer;
    socklen_t len = sizeof(addr);
    int flags = type & (SOCK_NONBLOCK | SOCK_CLOEXEC);
    int lfd, a = -1, b = -1, err;

    (void)domain;
    (void)protocol;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = gn_win_socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0)
        return -1;
    if (gn_win_bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        gn_win_getsockname(lfd, (struct sockaddr *)&addr, &len) < 0 || gn_win_listen(lfd, 1) < 0)
        goto fail;
    a = gn_win_socket(AF_INET, SOCK_STREAM, 0);
    if (a < 0 || gn_win_connect(a, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        goto fail;
    len = sizeof(peer);
    b = gn_win_accept4(lfd, (struct sockaddr *)&peer, &len, 0);
    if (b < 0)
        goto fail;
    len = sizeof(mine);
    if (gn_win_getsockname(a, (struct sockaddr *)&mine, &len) < 0 ||
        mine.sin_port != peer.sin_port) {
        errno = ECONNABORTED;
        goto fail;
    }
    if ((flags & SOCK_NONBLOCK) &&
        (set_nonblocking(sock(a), true) < 0 || set_nonblocking(sock(b), true) < 0))
        goto fail;
    closesocket(sock(lfd));
    sv[0] = a;
    sv[1] = b;
    return 0;
fail:
    err = errno;
    closesocket(sock(lfd));
    if (a >= 0)
        closesocket(sock(a));
    if (b >= 0)
        closesocket(sock(b));
    errno = err;
    return -1;
}

/* WSAPoll says POLLHUP, asked for or not, once the peer has ended its
 * side (its FIN: a close or a shutdown(SHUT_WR)), where poll(2) says
 * POLLIN, the end being read as 0 bytes, and POLLOUT while there is
 * room, as the peer may still read (POLLHUP there means both directions
 * ended).  An end alone is made POLLIN when that was asked for, and
 * nothing otherwise: a connection that paused its reading hears of the
 * end when it reads again, after the messages it holds, as on POSIX.
 * An abortive end comes with POLLERR: kept.  Returns the count of
 * entries ready; *ended is true when some entry's only news was an end
 * it did not ask about. */
static int as_posix_revents(struct pollfd *fds, nfds_t nfds, bool *ended)
{
    int n = 0;

    *ended = false;
    for (nfds_t i = 0; i < nfds; i++) {
        struct pollfd *p = &fds[i];

        if ((p->revents & (POLLHUP | POLLERR)) == POLLHUP) {
            p->revents &= ~POLLHUP;
            p->revents |= p->events & POLLRDNORM;
            *ended |= !p->revents;
        }
        n += p->revents != 0;
    }
    return n;
}

static bool only_ended(const struct pollfd *p)
{
    return p->revents == POLLHUP && !(p->events & POLLRDNORM);
}

enum { ENDED_RECHECK_MS = 10 };

/* Some socket says only that its peer ended, which WSAPoll would say at
 * once again and again: wait up to ms for the others, with those left
 * out (an INVALID_SOCKET entry is ignored); their turn comes after. */
static int wait_for_the_others(struct pollfd *fds, nfds_t nfds, int ms)
{
    SOCKET *saved = malloc(nfds * sizeof(*saved));
    nfds_t left_out = 0;
    int n = 0;

    if (!saved) {
        Sleep((DWORD)ms);
        return 0;
    }
    if (WSAPoll(fds, (ULONG)nfds, 0) == SOCKET_ERROR)
        n = gn_win_fail();
    for (nfds_t i = 0; n == 0 && i < nfds; i++) {
        saved[i] = fds[i].fd;
        if (only_ended(&fds[i])) {
            fds[i].fd = INVALID_SOCKET;
            left_out++;
        }
    }
    if (n == 0 && left_out == nfds)
        Sleep((DWORD)ms);
    else if (n == 0 && WSAPoll(fds, (ULONG)nfds, ms) == SOCKET_ERROR)
        n = gn_win_fail();
    for (nfds_t i = 0; left_out && i < nfds; i++)
        fds[i].fd = saved[i];
    free(saved);
    return n;
}

/* Milliseconds left of timeout_ms since start; -1 for no end. */
static int time_left(ULONGLONG start, int timeout_ms)
{
    ULONGLONG spent = GetTickCount64() - start;

    if (timeout_ms < 0)
        return -1;
    return spent >= (ULONGLONG)timeout_ms ? 0 : timeout_ms - (int)spent;
}

/* poll(2) on WSAPoll: an empty set sleeps (WSAPoll refuses it), and a
 * peer's end reads as on POSIX (as_posix_revents). */
int gn_win_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
    ULONGLONG start = GetTickCount64();
    int n, left = timeout_ms;
    bool ended;

    if (nfds == 0) {
        Sleep(timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
        return 0;
    }
    for (;;) {
        if (WSAPoll(fds, (ULONG)nfds, left) == SOCKET_ERROR)
            return gn_win_fail();
        n = as_posix_revents(fds, nfds, &ended);
        if (n > 0 || !ended || (left = time_left(start, timeout_ms)) == 0)
            return n;
        if (wait_for_the_others(fds, nfds,
                                left < 0 || left > ENDED_RECHECK_MS ? ENDED_RECHECK_MS : left) < 0)
            return -1;
        left = time_left(start, timeout_ms);
    }
}

int gn_win_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    int arg, type;
    socklen_t len = sizeof(type);

    switch (cmd) {
    case F_GETFD:
    case F_GETFL:
        /* Only sockets are asked about; their flags cannot be read back. */
        if (getsockopt(sock(fd), SOL_SOCKET, SO_TYPE, (char *)&type, &len) != 0)
            return _get_osfhandle(fd) == -1 ? (errno = EBADF, -1) : 0;
        return 0;
    case F_SETFL:
        va_start(ap, cmd);
        arg = va_arg(ap, int);
        va_end(ap);
        return set_nonblocking(sock(fd), (arg & O_NONBLOCK) != 0);
    default:
        errno = EINVAL;
        return -1;
    }
}

void *gn_win_memmem(const void *hay, size_t haylen, const void *needle, size_t len)
{
    const char *h = hay;

    if (len == 0)
        return (void *)hay;
    for (size_t i = 0; len <= haylen && i <= haylen - len; i++)
        if (h[i] == *(const char *)needle && memcmp(h + i, needle, len) == 0)
            return (void *)(h + i);
    return NULL;
}

/* A read at offset through the file's handle, as pread: threads sharing
 * the descriptor do not race on a seek (the CRT's position does move,
 * which no caller reads). */
ssize_t gn_win_pread(int fd, void *buf, size_t len, off_t offset)
{
    HANDLE h = (HANDLE)_get_osfhandle(fd);
    OVERLAPPED at = {.Offset = (DWORD)((uint64_t)offset & 0xffffffffu),
                     .OffsetHigh = (DWORD)((uint64_t)offset >> 32)};
    DWORD got = 0;

    if (h == INVALID_HANDLE_VALUE) {
        errno = EBADF;
        return -1;
    }
    if (ReadFile(h, buf, (DWORD)(len > INT_MAX ? INT_MAX : len), &got, &at))
        return (ssize_t)got;
    if (GetLastError() == ERROR_HANDLE_EOF)
        return 0;
    errno = EIO;
    return -1;
}

int gn_win_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    if (gn_win_startup() < 0)
        return EAI_FAIL;
    return getaddrinfo(node, service, hints, res);
}
