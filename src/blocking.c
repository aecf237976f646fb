/*
 * Blocking mode: the same gn_conn driven by calls that wait, for clients
 * (gn_dial) and for the handlers of threaded servers (server_threads.c).
 *
 * The descriptor stays non-blocking and every wait is a poll(2) against
 * one deadline computed when the call starts, so a timeout bounds the
 * whole call however many reads or writes it takes, and EINTR only
 * recomputes the time left.  A threaded server that closes sets `woken`
 * and shuts the socket down, which ends any poll at once; the calls then
 * report GN_ECLOSED rather than an end of stream.
 */
#define _GNU_SOURCE /* pthread_condattr_setclock is POSIX; SOCK_* flags */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "tls.h"

#define MAX_DIAL_ADDRS   32
#define ATTEMPT_DELAY_MS 250 /* RFC 8305 section 5 */
#define LINE_CHUNK       16384

/* ---- time ----------------------------------------------------------- */

/* The call's own timeout, cut short by the idle timeout of the
 * connection (a server's read deadline). */
static uint64_t call_deadline(const gn_conn *conn, uint32_t timeout_ms)
{
    uint32_t idle = conn->opts.idle_timeout_ms;

    return gn__deadline_after(idle < timeout_ms ? idle : timeout_ms);
}

/* ---- waiting -------------------------------------------------------- */

static int woken_code(gn_conn *conn, int code)
{
    return atomic_load(&conn->woken) ? GN_ECLOSED : code;
}

/* Wait until the socket is ready for events or the deadline passes; a
 * closing threaded server's shutdown ends the wait with GN_ECLOSED. */
static int wait_fd(gn_conn *conn, short events, uint64_t deadline)
{
    int rc = gn__wait_fd(conn->io.fd, events, deadline);

    return atomic_load(&conn->woken) ? GN_ECLOSED : rc;
}

static int check_blocking(const gn_conn *conn)
{
    if (!conn)
        return GN_EINVAL;
    if (!conn->blocking)
        return GN_EMODE;
    if (conn->state == GN__CLOSED)
        return GN_ECLOSED;
    return 0;
}

/* ---- reading -------------------------------------------------------- */

/* One read of up to len bytes into buf, waiting for input: a count, 0 at
 * the end of the stream, or a code. */
static ssize_t read_some(gn_conn *conn, void *buf, size_t len, uint64_t deadline)
{
    for (;;) {
        ssize_t n = conn->transport->read(conn, buf, len);
        if (n > 0) {
            conn->stats.bytes_in += (uint64_t)n;
            conn->stats.reads++;
            return n;
        }
        if (n == 0) {
            conn->peer_ended = true;
            return woken_code(conn, 0);
        }
        if (n != GN__AGAIN)
            return woken_code(conn, (int)n);
        n = wait_fd(conn, POLLIN | (gn__conn_transport_pending(conn) ? POLLOUT : 0), deadline);
        if (n < 0)
            return n;
    }
}

/* Hand out buffered input first: what a line read fetched past its line
 * belongs to the next read. */
static size_t take_buffered(gn_conn *conn, void *buf, size_t len)
{
    size_t n = conn->in_len < len ? conn->in_len : len;

    if (n == 0)
        return 0; /* in_buf may not exist yet */
    memcpy(buf, conn->in_buf + conn->in_start, n);
    conn->in_start += n;
    conn->in_len -= n;
    if (conn->in_len == 0)
        conn->in_start = 0;
    return n;
}

ssize_t gn_read(gn_conn *conn, void *buf, size_t len, uint32_t timeout_ms)
{
    int rc = check_blocking(conn);

    if (rc < 0)
        return rc;
    if (!buf && len > 0)
        return GN_EINVAL;
    if (len == 0)
        return 0;
    if (conn->in_len > 0)
        return (ssize_t)take_buffered(conn, buf, len);
    if (conn->peer_ended)
        return 0;
    return read_some(conn, buf, len, call_deadline(conn, timeout_ms));
}

int gn_read_exact(gn_conn *conn, void *buf, size_t len, uint32_t timeout_ms)
{
    uint64_t deadline;
    size_t got = 0;
    int rc = check_blocking(conn);

    if (rc < 0)
        return rc;
    if (!buf && len > 0)
        return GN_EINVAL;
    deadline = call_deadline(conn, timeout_ms);
    got = take_buffered(conn, buf, len);
    while (got < len) {
        ssize_t n = conn->peer_ended ? 0 : read_some(conn, (char *)buf + got, len - got, deadline);
        if (n == 0)
            return GN_EEOF;
        if (n < 0)
            return (int)n;
        got += (size_t)n;
    }
    return 0;
}

/* Room after the buffered bytes for a read worth its system call, moving
 * them to the front first; the buffer grows only as far as limit + 1. */
static int make_room(gn_conn *conn, size_t limit)
{
    size_t room, want;
    char *grown;

    if (conn->in_start > 0 && conn->in_len > 0)
        memmove(conn->in_buf, conn->in_buf + conn->in_start, conn->in_len);
    conn->in_start = 0;
    room = conn->in_cap - conn->in_len;
    if (room >= 4096 || (room > 0 && conn->in_cap >= limit + 1))
        return 0;
    want = conn->in_len + LINE_CHUNK;
    if (want > limit + 1)
        want = limit + 1;
    if (want <= conn->in_cap)
        return 0;
    grown = realloc(conn->in_buf, want);
    if (!grown)
        return GN_ENOMEM;
    conn->in_buf = grown;
    conn->in_cap = want;
    return 0;
}

/* Copy the first n buffered bytes out as a line, consuming skip bytes. */
static void deliver_line(gn_conn *conn, char *buf, size_t n, size_t skip, size_t *len)
{
    memcpy(buf, conn->in_buf + conn->in_start, n);
    buf[n] = '\0';
    *len = n;
    conn->in_start += skip;
    conn->in_len -= skip;
    if (conn->in_len == 0)
        conn->in_start = 0;
}

int gn_read_line(gn_conn *conn, char *buf, size_t size, size_t *len, uint32_t timeout_ms)
{
    size_t max, scanned = 0;
    uint64_t deadline;
    int rc = check_blocking(conn);

    if (rc < 0)
        return rc;
    if (!buf || size == 0 || !len)
        return GN_EINVAL;
    *len = 0;
    buf[0] = '\0';
    max = size - 1 < conn->opts.max_input ? size - 1 : conn->opts.max_input;
    deadline = call_deadline(conn, timeout_ms);
    for (;;) {
        const char *start = conn->in_buf + conn->in_start;
        size_t look = conn->in_len < max + 1 ? conn->in_len : max + 1;
        const char *nl = look > scanned ? memchr(start + scanned, '\n', look - scanned) : NULL;
        ssize_t n;

        if (nl) {
            size_t line = (size_t)(nl - start);
            deliver_line(conn, buf, line - (line > 0 && nl[-1] == '\r'), line + 1, len);
            return 1;
        }
        scanned = look;
        if (conn->in_len > max)
            return GN_EMSGSIZE;
        if (conn->peer_ended) {
            if (conn->in_len == 0)
                return GN_EEOF;
            deliver_line(conn, buf, conn->in_len, conn->in_len, len);
            return 0;
        }
        rc = make_room(conn, max);
        if (rc < 0)
            return rc;
        n = read_some(conn, conn->in_buf + conn->in_len, conn->in_cap - conn->in_len, deadline);
        if (n < 0)
            return (int)n;
        conn->in_len += (size_t)n;
    }
}

int gn_wait_readable(gn_conn *conn, uint32_t timeout_ms)
{
    int rc = check_blocking(conn);

    if (rc < 0)
        return rc;
    if (conn->in_len > 0 || conn->peer_ended || gn__conn_transport_buffered(conn))
        return 0;
    return wait_fd(conn, POLLIN, call_deadline(conn, timeout_ms));
}

/* ---- writing -------------------------------------------------------- */

static int check_writable(const gn_conn *conn)
{
    int rc = check_blocking(conn);

    if (rc == 0 && conn->shutdown_asked)
        rc = GN_ECLOSED;
    return rc;
}

int gn_write_all(gn_conn *conn, const void *buf, size_t len, uint32_t timeout_ms)
{
    uint64_t deadline;
    size_t done = 0;
    int rc = check_writable(conn);

    if (rc < 0)
        return rc;
    if (!buf && len > 0)
        return GN_EINVAL;
    deadline = call_deadline(conn, timeout_ms);
    while (done < len) {
        struct iovec iov = {.iov_base = (char *)buf + done, .iov_len = len - done};
        ssize_t n = conn->transport->writev(conn, &iov, 1);
        if (n >= 0) {
            done += (size_t)n;
            conn->stats.bytes_out += (uint64_t)n;
            conn->stats.writes++;
            continue;
        }
        if (n != GN__AGAIN)
            return woken_code(conn, (int)n);
        rc = wait_fd(conn, POLLOUT, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int gn__blocking_send_file(gn_conn *conn, int fd, int64_t offset, uint64_t len)
{
    uint64_t deadline;
    int rc = check_writable(conn);

    if (rc < 0)
        return rc;
    deadline = call_deadline(conn, GN_NO_TIMEOUT);
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : (size_t)len;
        ssize_t n = conn->transport->sendfile(conn, fd, &offset, chunk);
        if (n > 0) {
            len -= (uint64_t)n;
            conn->stats.bytes_out += (uint64_t)n;
            conn->stats.writes++;
            continue;
        }
        if (n == 0)
            return GN_EEOF; /* the file is shorter than len */
        if (n != GN__AGAIN)
            return woken_code(conn, (int)n);
        rc = wait_fd(conn, POLLOUT, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- closing -------------------------------------------------------- */

int gn__blocking_shutdown(gn_conn *conn)
{
    uint64_t deadline = call_deadline(conn, 1000);
    int rc;

    if (conn->state == GN__CLOSED || conn->shutdown_asked)
        return 0;
    conn->shutdown_asked = true;
    /* TLS: close_notify goes out before the FIN; a peer that takes
     * nothing for a second does not get it. */
    while ((rc = conn->transport->shutdown(conn)) == GN__AGAIN)
        if (wait_fd(conn, POLLOUT, deadline) < 0)
            break;
    return rc == GN__AGAIN ? GN_ETIMEDOUT : rc;
}

/* Drive a transport's handshake (TLS) to its end before the deadline. */
static int handshake_until(gn_conn *conn, uint64_t deadline)
{
    for (;;) {
        int rc = conn->transport->handshake(conn);
        if (rc != GN__AGAIN)
            return rc;
        rc = wait_fd(conn, POLLIN | (gn__conn_transport_pending(conn) ? POLLOUT : 0), deadline);
        if (rc == GN_ETIMEDOUT)
            snprintf(conn->error, sizeof(conn->error), "TLS handshake timed out");
        if (rc < 0)
            return rc;
    }
}

int gn__blocking_tls_accept(gn_conn *conn, struct gn__tls_config *cfg)
{
    int rc = gn__tls_attach(conn, cfg, false);

    if (rc < 0)
        return rc;
    return handshake_until(conn, call_deadline(conn, gn__tls_handshake_ms(cfg)));
}

void gn__blocking_conn_free(gn_conn *conn)
{
    gn__tls_detach(conn);
    if (conn->io.fd >= 0)
        close(conn->io.fd);
    free(conn->in_buf);
    free(conn);
}

int gn__blocking_close(gn_conn *conn, bool reset)
{
    if (reset && conn->io.fd >= 0 && conn->state != GN__CLOSED)
        gn__socket_reset_on_close(conn->io.fd);
    else if (conn->state != GN__CLOSED)
        gn__tls_goodbye(conn); /* close_notify, if there is room for it */
    if (!conn->server) {
        gn__blocking_conn_free(conn);
        return 0;
    }
    /* The server owns the descriptor until the handler returns, so that
     * its close can never shut down a number reused by someone else.  A
     * reset sends nothing now: a FIN first would let the peer take the
     * end for an orderly one; the server's close sends the RST. */
    if (conn->state != GN__CLOSED)
        shutdown(conn->io.fd, reset ? SHUT_RD : SHUT_RDWR);
    conn->state = GN__CLOSED;
    return 0;
}

int gn__blocking_conn_new(int fd, gn_transport kind, gn_server *srv, const gn_options *opts,
                          gn_conn **out)
{
    gn_conn *conn = calloc(1, sizeof(*conn));
    int rc;

    if (!conn)
        return GN_ENOMEM;
    conn->io.fd = fd;
    conn->server = srv;
    conn->blocking = true;
    conn->transport = &gn__transport_stream;
    conn->kind = kind;
    conn->opts = *opts;
    conn->user_data = opts->user_data;
    conn->state = GN__OPEN;
    atomic_init(&conn->woken, false);
    rc = gn__socket_setup(fd, kind, opts, &conn->local, &conn->remote);
    if (rc < 0) {
        free(conn);
        return rc;
    }
    *out = conn;
    return 0;
}

/* ---- dialling: resolution with a deadline ---------------------------- */

/* getaddrinfo cannot be interrupted, so it runs on a detached thread; a
 * caller whose deadline passes walks away and the last of the two to
 * let go frees the request. */
struct dial_lookup {
    pthread_mutex_t mu;
    pthread_cond_t done_cv;
    int refs;
    bool done;
    gn_endpoint target;
    gn_endpoint addrs[MAX_DIAL_ADDRS];
    int rc;
    char error[GN_ERRBUF_SIZE];
};

static void lookup_release(struct dial_lookup *lk)
{
    bool last;

    pthread_mutex_lock(&lk->mu);
    last = --lk->refs == 0;
    pthread_mutex_unlock(&lk->mu);
    if (!last)
        return;
    pthread_cond_destroy(&lk->done_cv);
    pthread_mutex_destroy(&lk->mu);
    free(lk);
}

static void *lookup_main(void *arg)
{
    struct dial_lookup *lk = arg;
    char error[GN_ERRBUF_SIZE];
    int rc = gn_resolve(&lk->target, lk->addrs, MAX_DIAL_ADDRS, error, sizeof(error));

    pthread_mutex_lock(&lk->mu);
    lk->rc = rc;
    memcpy(lk->error, error, sizeof(error));
    lk->done = true;
    pthread_cond_signal(&lk->done_cv);
    pthread_mutex_unlock(&lk->mu);
    lookup_release(lk);
    return NULL;
}

static struct timespec abs_monotonic(uint64_t deadline_ms)
{
    return (struct timespec){.tv_sec = (time_t)(deadline_ms / 1000),
                             .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};
}

static int lookup_wait(struct dial_lookup *lk, uint64_t deadline, gn_endpoint *out, char *errbuf,
                       size_t errlen)
{
    struct timespec until = abs_monotonic(deadline);
    int rc = 0;

    pthread_mutex_lock(&lk->mu);
    while (!lk->done && rc != ETIMEDOUT)
        rc = deadline == GN__NO_DEADLINE ? pthread_cond_wait(&lk->done_cv, &lk->mu)
                                         : pthread_cond_timedwait(&lk->done_cv, &lk->mu, &until);
    if (lk->done) {
        rc = lk->rc;
        if (rc > 0)
            memcpy(out, lk->addrs, sizeof(gn_endpoint) * (size_t)rc);
        else if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s", lk->error);
    } else {
        rc = GN_ETIMEDOUT;
    }
    pthread_mutex_unlock(&lk->mu);
    return rc;
}

static int resolve_before(const gn_endpoint *target, uint64_t deadline, gn_endpoint *out,
                          char *errbuf, size_t errlen)
{
    struct dial_lookup *lk;
    pthread_condattr_t attr;
    pthread_t tid;
    int rc;

    if (gn_endpoint_is_resolved(target))
        return gn_resolve(target, out, MAX_DIAL_ADDRS, errbuf, errlen);
    lk = calloc(1, sizeof(*lk));
    if (!lk)
        return GN_ENOMEM;
    lk->target = *target;
    lk->refs = 2;
    pthread_mutex_init(&lk->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&lk->done_cv, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&tid, NULL, lookup_main, lk) != 0) {
        lk->refs = 1;
        lookup_release(lk);
        return gn_resolve(target, out, MAX_DIAL_ADDRS, errbuf, errlen);
    }
    pthread_detach(tid);
    rc = lookup_wait(lk, deadline, out, errbuf, errlen);
    lookup_release(lk);
    return rc;
}

/* ---- dialling: connection attempts ----------------------------------- */

struct dial {
    const char *address;
    gn_endpoint addrs[MAX_DIAL_ADDRS];
    struct pollfd pfd[MAX_DIAL_ADDRS];
    size_t idx[MAX_DIAL_ADDRS]; /* pfd[i] tries addrs[idx[i]] */
    size_t naddrs, next, npending;
    int last_error;
    char errors[GN_ERRBUF_SIZE];
};

static void note_failure(struct dial *d, size_t i, int code)
{
    char text[GN_ENDPOINT_STRLEN];
    size_t used = strlen(d->errors);

    d->last_error = code;
    gn_endpoint_format(&d->addrs[i], text, sizeof(text));
    snprintf(d->errors + used, sizeof(d->errors) - used, "%s%s: %s", used ? "; " : "", text,
             gn_strerror(code));
}

/* Start the next address that can be tried; false when none is left. */
static bool start_next(struct dial *d)
{
    while (d->next < d->naddrs) {
        size_t i = d->next++;
        socklen_t len;
        const struct sockaddr *sa = gn_endpoint_sockaddr(&d->addrs[i], &len);
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        if (fd < 0) {
            note_failure(d, i, gn_error_from_errno(errno));
            continue;
        }
        if (connect(fd, sa, len) < 0 && errno != EINPROGRESS && errno != EINTR) {
            note_failure(d, i, gn_error_from_errno(errno));
            close(fd);
            continue;
        }
        d->pfd[d->npending] = (struct pollfd){.fd = fd, .events = POLLOUT};
        d->idx[d->npending++] = i;
        return true;
    }
    return false;
}

static void drop_pending(struct dial *d, size_t p)
{
    close(d->pfd[p].fd);
    d->pfd[p] = d->pfd[d->npending - 1];
    d->idx[p] = d->idx[d->npending - 1];
    d->npending--;
}

/* Look at the attempts poll reported: the first that connected wins (its
 * descriptor is returned), those that failed are dropped. */
static int collect_ready(struct dial *d)
{
    for (size_t p = 0; p < d->npending;) {
        int rc;

        if (!d->pfd[p].revents) {
            p++;
            continue;
        }
        rc = gn__socket_error(d->pfd[p].fd);
        if (rc == 0) {
            int fd = d->pfd[p].fd;
            d->pfd[p] = d->pfd[d->npending - 1];
            d->idx[p] = d->idx[d->npending - 1];
            d->npending--;
            return fd;
        }
        note_failure(d, d->idx[p], rc);
        drop_pending(d, p);
    }
    return -1;
}

static int race_attempts(struct dial *d, uint64_t deadline)
{
    uint64_t next_start = 0;

    for (;;) {
        int wait, n, fd;

        if (d->npending == 0 || gn__clock_ms() >= next_start) {
            if (start_next(d))
                next_start = gn__clock_ms() + ATTEMPT_DELAY_MS;
            else if (d->npending == 0)
                return d->last_error ? d->last_error : GN_ENOTFOUND;
        }
        wait = gn__poll_ms(deadline);
        if (wait == 0)
            return GN_ETIMEDOUT;
        if (d->next < d->naddrs) {
            int until_next = (int)(next_start > gn__clock_ms() ? next_start - gn__clock_ms() : 0);
            if (wait < 0 || until_next < wait)
                wait = until_next;
        }
        n = poll(d->pfd, d->npending, wait);
        if (n < 0 && errno != EINTR)
            return gn_error_from_errno(errno);
        fd = n > 0 ? collect_ready(d) : -1;
        if (fd >= 0)
            return fd;
    }
}

static void close_pending(struct dial *d)
{
    while (d->npending > 0)
        drop_pending(d, 0);
}

static int dial_fail(struct dial *d, int code, char *errbuf, size_t errlen)
{
    close_pending(d);
    if (code == GN_ETIMEDOUT && !d->errors[0])
        return gn__errbuf_input(errbuf, errlen, code, d->address, strlen(d->address),
                                "connect timed out");
    return gn__errbuf_input(errbuf, errlen, code, d->address, strlen(d->address), "%s",
                            d->errors[0] ? d->errors : gn_strerror(code));
}

static int dial_tls(gn_conn *conn, struct gn__tls_config *cfg, const char *address,
                    uint64_t deadline, char *errbuf, size_t errlen)
{
    int rc = gn__tls_attach(conn, cfg, true);

    if (rc == 0) {
        rc = handshake_until(conn, deadline);
        if (rc < 0)
            gn__errbuf_input(errbuf, errlen, rc, address, strlen(address), "%s",
                             conn->error[0] ? conn->error : gn_strerror(rc));
    } else {
        gn__tls_config_free(cfg);
    }
    if (rc < 0)
        gn__blocking_conn_free(conn);
    return rc;
}

/* Every resolved address, raced; the winner's descriptor or a code. */
static int connect_any(const char *address, const gn_endpoint *target, uint64_t deadline,
                       char *errbuf, size_t errlen)
{
    gn_endpoint found[MAX_DIAL_ADDRS];
    struct dial *d;
    int n, fd;

    n = resolve_before(target, deadline, found, errbuf, errlen);
    if (n == GN_ETIMEDOUT)
        return gn__errbuf_input(errbuf, errlen, n, address, strlen(address),
                                "name resolution timed out");
    if (n < 0)
        return n;
    d = calloc(1, sizeof(*d));
    if (!d)
        return GN_ENOMEM;
    d->address = address;
    d->naddrs = gn__interleave_families(found, (size_t)n, d->addrs);
    fd = race_attempts(d, deadline);
    if (fd < 0)
        fd = dial_fail(d, fd, errbuf, errlen);
    close_pending(d); /* the attempts that lost the race */
    free(d);
    return fd;
}

int gn_dial(const char *address, uint32_t timeout_ms, const gn_options *opts, gn_conn **out,
            char *errbuf, size_t errlen)
{
    struct gn__tls_config *cfg = NULL;
    gn_endpoint target;
    gn_options o;
    uint64_t deadline;
    int fd, rc;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!address || !out)
        return gn__errbuf_input(errbuf, errlen, GN_EINVAL, "", 0, "%s",
                                "address and out must not be NULL");
    rc = gn__parse_stream_address(address, 0, &target, errbuf, errlen);
    if (rc < 0)
        return rc;
    gn__options_resolve(&o, opts, false);
    /* TLS settings first: a bad file is reported without a connection. */
    if (gn_endpoint_transport(&target) == GN_TRANSPORT_TLS) {
        rc = gn__tls_config_new(o.tls, false, &target, address, &cfg, errbuf, errlen);
        if (rc < 0)
            return rc;
    }
    deadline = gn__deadline_after(timeout_ms ? timeout_ms : o.connect_timeout_ms);
    fd = connect_any(address, &target, deadline, errbuf, errlen);
    if (fd >= 0) {
        rc = gn__blocking_conn_new(fd, gn_endpoint_transport(&target), NULL, &o, out);
        if (rc < 0) {
            close(fd);
            fd = gn__errbuf_input(errbuf, errlen, rc, address, strlen(address), "%s",
                                  gn_strerror(rc));
        }
    }
    if (fd < 0) {
        gn__tls_config_free(cfg);
        return fd;
    }
    return cfg ? dial_tls(*out, cfg, address, deadline, errbuf, errlen) : 0;
}
