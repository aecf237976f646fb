/*
 * Blocking connections (blocking.c), for gn_dial and the threaded
 * server.  Never installed.
 */
#ifndef GN_BLOCKING_H
#define GN_BLOCKING_H

#include "conn.h"

/* Blocking mode (blocking.c). */
/* A blocking connection around connected, non-blocking fd (options set),
 * of the threaded server srv (NULL: a client's), with prof's options
 * (which must outlive it); on failure fd is left open for the caller. */
int gn__blocking_conn_new(int fd, gn_transport kind, void *srv, const struct gn__conn_profile *prof,
                          gn_conn **out);
/* The owners of blocking connections: a threaded server's, gn_dial's. */
extern const struct gn__conn_owner gn__blocking_owner_server;
extern const struct gn__conn_owner gn__blocking_owner_client;
void gn__blocking_conn_free(gn_conn *conn);
struct gn__tls_config;

/* Deadlines (blocking_deadline.c), by direction. */
enum gn__direction { GN__READING, GN__WRITING };
/* The connection's deadline for dir, GN__NO_DEADLINE for none. */
uint64_t gn__blocking_deadline(const gn_conn *conn, enum gn__direction dir);
/* Wait until conn's socket is ready for events (0), or until call_end or
 * the connection's deadline for dir, read afresh whenever another thread
 * moves it, passes (GN_ETIMEDOUT), or a code.  EINTR only restarts the
 * wait with the time left. */
int gn__blocking_wait(gn_conn *conn, short events, uint64_t call_end, enum gn__direction dir);
/* After conn->woken is set: end the waits of conn's calls (GN_ECLOSED)
 * through their threads' wake-ups, as a moved deadline does; a shutdown
 * of the socket does not wake a poll on every system (WSAPoll). */
void gn__blocking_wake(gn_conn *conn);

/* For other ways of waiting (blocking_wait_uring.c): the calling
 * thread's wake-up (wakeup.h), which a moved deadline signals (-1 if
 * none could be made); publish wake as dir's waiter and read dir's
 * deadline in one step (GN__NO_DEADLINE for none), and stop. */
int gn__blocking_wake_fd(void);
uint64_t gn__blocking_watch(gn_conn *conn, enum gn__direction dir, int wake);
void gn__blocking_unwatch(gn_conn *conn, enum gn__direction dir);

/* One receive (GN__READING) or send (GN__WRITING, MSG_NOSIGNAL) on conn's
 * socket that waits in the same system call, until call_end or dir's
 * deadline (read afresh when another thread moves it, as
 * gn__blocking_wait does): the count, 0 at the end of the stream,
 * GN_ETIMEDOUT or a code.  poll_first: the socket was found empty (or
 * full) just now, so wait before trying.  GN__AGAIN: not here (no
 * io_uring, GN_BACKEND names another backend, faults are injected, or
 * no time is left to wait): wait with gn__blocking_wait instead. */
#ifdef GN_HAVE_URING
ssize_t gn__blocking_ring_io(gn_conn *conn, enum gn__direction dir, void *buf, size_t len,
                             uint64_t call_end, bool poll_first);
#else
static inline ssize_t gn__blocking_ring_io(gn_conn *conn, enum gn__direction dir, void *buf,
                                           size_t len, uint64_t call_end, bool poll_first)
{
    (void)conn, (void)dir, (void)buf, (void)len, (void)call_end, (void)poll_first;
    return GN__AGAIN;
}
#endif

/* A threaded server's TLS handshake, within the configured timeout. */
int gn__blocking_tls_accept(gn_conn *conn, struct gn__tls_config *cfg);

/* For blocking reads made in other files (blocking_message.c): check
 * conn is a blocking connection, open, its read deadline not passed, and
 * set the call's own deadline (the connection's idle timeout may cut
 * timeout_ms short; the read deadline is applied at each wait); 0 or a
 * code. */
int gn__blocking_start(gn_conn *conn, uint32_t timeout_ms, uint64_t *deadline);
/* One read, waiting, appended to the input buffer (moved to its front),
 * which grows to limit + 1 bytes at most: the count, 0 at the end,
 * GN_EMSGSIZE when the buffer is full, or a code. */
ssize_t gn__blocking_read_more(gn_conn *conn, size_t limit, uint64_t deadline);

#endif
