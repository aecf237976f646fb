/*
 * Reconnecting clients, with the backoff of gRPC's connection backoff
 * spec (doc/connection-backoff.md): the n-th consecutive failure waits
 * min(INITIAL * MULTIPLIER^(n-1), MAX) spread uniformly by +-JITTER of
 * itself, counted from the start of the failed attempt, and each attempt
 * may take max(MIN_CONNECT_TIMEOUT, the current backoff).
 *
 * Each attempt is a new gn_conn handed to the same handlers (and user
 * data), not the old one brought back: a gn_conn is one connection's life
 * (CONNECTING, OPEN, CLOSED, then on_close and free), and its buffers,
 * counters, TLS state, endpoints and half-close flags all belong to that
 * one connection.  Reviving it would mean resetting every one of them and
 * breaking "on_close comes last, then the pointer is gone"; output queued
 * for a lost connection would reach a peer that knows nothing of it.  The
 * chain (struct gn__reconnect) is what outlives connections: the backoff
 * state, the address, the options, one TLS configuration.  It belongs to
 * the connection of the moment, which hands it on in its gone hook.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reconnect.h"
#include "tls.h"

/* gRPC's defaults. */
#define DEFAULT_INITIAL_MS     1000
#define DEFAULT_MAX_MS         120000
#define DEFAULT_MULTIPLIER     1.6
#define DEFAULT_JITTER         0.2
#define MIN_CONNECT_TIMEOUT_MS 20000

struct gn__reconnect {
    gn_backoff b; /* defaults filled in; jitter 0 means none */
    const struct gn__reconnect_hooks *hooks;
    gn_options opts;          /* of every connection: no pointers of the user's */
    uint32_t user_timeout_ms; /* connect_timeout_ms as given (0: gRPC's rule) */
    gn_endpoint target;
    char target_text[GN_ENDPOINT_STRLEN];
    gn_transport kind;
    struct gn__tls_config *tls;
    void *start_data;    /* the client's, for every start; NULL if none */
    unsigned failures;   /* consecutive failed attempts */
    unsigned attempt;    /* attempts since the last connection */
    uint64_t started_ms; /* the current attempt's start */
    uint64_t up_ms;      /* when it connected, 0 if it has not */
    gn_conn *waiting;    /* the successor in its pause, if any */
    uint64_t wait_timer;
    uint64_t rng;
};

/* ---- the backoff ------------------------------------------------------ */

static void backoff_defaults(gn_backoff *out, const gn_backoff *in)
{
    static const gn_backoff none;

    *out = in ? *in : none;
    if (!out->initial_ms)
        out->initial_ms = DEFAULT_INITIAL_MS;
    if (!out->max_ms)
        out->max_ms = DEFAULT_MAX_MS;
    if (out->max_ms < out->initial_ms)
        out->max_ms = out->initial_ms;
    if (out->multiplier == 0)
        out->multiplier = DEFAULT_MULTIPLIER;
    if (out->jitter == 0)
        out->jitter = DEFAULT_JITTER;
    else if (out->jitter < 0)
        out->jitter = 0;
}

/* The pause after `failures` failures before jitter, in ms. */
static double backoff_base(const gn_backoff *b, unsigned failures)
{
    double ms = b->initial_ms;

    for (unsigned i = 1; i < failures && ms < b->max_ms; i++)
        ms *= b->multiplier;
    return ms < b->max_ms ? ms : b->max_ms;
}

uint32_t gn_backoff_delay_ms(const gn_backoff *b, unsigned failures, double random)
{
    gn_backoff d;
    double base, ms;

    if (failures == 0)
        return 0;
    backoff_defaults(&d, b);
    if (random < 0)
        random = 0;
    if (random > 1)
        random = 1;
    base = backoff_base(&d, failures);
    ms = base + d.jitter * base * (2 * random - 1);
    return ms <= 0 ? 0 : ms >= UINT32_MAX ? UINT32_MAX : (uint32_t)(ms + 0.5);
}

/* xorshift64*: the jitter needs spread, not secrecy. */
static double next_random(struct gn__reconnect *r)
{
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return (double)((r->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static int backoff_check(const gn_backoff *b, const char *address, char *errbuf, size_t errlen)
{
    if (b->multiplier != 0 && !(b->multiplier >= 1 && b->multiplier <= 1000))
        return gn__errbuf_input(errbuf, errlen, GN_EINVAL, address, strlen(address),
                                "reconnect: multiplier %g is not from 1 to 1000", b->multiplier);
    if (b->jitter > 1 || (b->jitter < 0 && b->jitter != GN_BACKOFF_NO_JITTER))
        return gn__errbuf_input(errbuf, errlen, GN_EINVAL, address, strlen(address),
                                "reconnect: jitter %g is not from 0 to 1 "
                                "(GN_BACKOFF_NO_JITTER for none)",
                                b->jitter);
    return 0;
}

/* ---- the chain -------------------------------------------------------- */

int gn__reconnect_new(const gn_options *opts, uint32_t user_connect_timeout_ms,
                      const gn_endpoint *ep, const char *address, const void *data,
                      size_t data_len, const struct gn__reconnect_hooks *hooks,
                      struct gn__reconnect **out, char *errbuf, size_t errlen)
{
    struct gn__reconnect *r;
    struct timespec ts;
    int rc = backoff_check(opts->reconnect, address, errbuf, errlen);

    if (rc < 0)
        return rc;
    r = calloc(1, sizeof(*r));
    if (!r)
        return GN_ENOMEM;
    backoff_defaults(&r->b, opts->reconnect);
    r->hooks = hooks;
    r->opts = *opts;
    r->opts.reconnect = NULL;
    r->opts.tls = NULL;
    r->user_timeout_ms = user_connect_timeout_ms;
    r->target = *ep;
    gn_endpoint_format(ep, r->target_text, sizeof(r->target_text));
    r->kind = gn_endpoint_transport(ep);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    r->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)r;
    if (r->rng == 0)
        r->rng = 1;
    if (data && !(r->start_data = malloc(data_len))) {
        free(r);
        return GN_ENOMEM;
    }
    if (data)
        memcpy(r->start_data, data, data_len);
    if (r->kind == GN_TRANSPORT_TLS) {
        rc = gn__tls_config_new(opts->tls, false, ep, address, &r->tls, errbuf, errlen);
        if (rc < 0) {
            free(r->start_data);
            free(r);
            return rc;
        }
    }
    *out = r;
    return 0;
}

void gn__reconnect_free(struct gn__reconnect *r)
{
    if (!r)
        return;
    gn__tls_config_free(r->tls);
    free(r->start_data);
    free(r);
}

/* The time limit of the attempt about to start: the user's, or gRPC's
 * max(MIN_CONNECT_TIMEOUT, current backoff). */
static uint32_t attempt_timeout_ms(const struct gn__reconnect *r)
{
    double backoff = backoff_base(&r->b, r->failures ? r->failures : 1);

    if (r->user_timeout_ms)
        return r->user_timeout_ms;
    return backoff > MIN_CONNECT_TIMEOUT_MS ? (uint32_t)backoff : MIN_CONNECT_TIMEOUT_MS;
}

int gn__reconnect_attach(struct gn__reconnect *r, gn_conn *conn)
{
    int rc = r->tls ? gn__tls_attach(conn, r->tls, false) : 0;

    if (rc < 0)
        return rc;
    conn->ext->own.opts.connect_timeout_ms = attempt_timeout_ms(r);
    conn->ext->reconnect = r;
    return 0;
}

static struct gn__reconnect *chain_of(const gn_conn *conn)
{
    return conn && conn->ext ? conn->ext->reconnect : NULL;
}

void gn__reconnect_started(gn_conn *conn)
{
    struct gn__reconnect *r = chain_of(conn);

    if (!r)
        return;
    r->started_ms = gn__clock_ms();
    r->up_ms = 0;
}

void gn__reconnect_connected(gn_conn *conn)
{
    struct gn__reconnect *r = chain_of(conn);

    if (!r)
        return;
    r->up_ms = gn__clock_ms();
    r->attempt = 0;
}

/* Whether conn's end counts as a failure: it never connected, or it
 * did not stay up for initial_ms (a server that accepts and drops at
 * once must not be hammered). */
static bool ended_as_failure(const struct gn__reconnect *r, uint64_t now)
{
    return !r->up_ms || now - r->up_ms < r->b.initial_ms;
}

static bool will_retry(const struct gn__reconnect *r, const gn_conn *conn, uint64_t now)
{
    unsigned failures = ended_as_failure(r, now) ? r->failures + 1 : 0;

    if (conn->user_ended)
        return false;
    return r->b.max_attempts == 0 || failures < r->b.max_attempts;
}

bool gn_conn_is_reconnecting(const gn_conn *conn)
{
    const struct gn__reconnect *r = chain_of(conn);

    return r && conn->state == GN__CLOSED && will_retry(r, conn, gn__clock_ms());
}

void gn__reconnect_closing(gn_conn *conn)
{
    struct gn__reconnect *r = chain_of(conn);

    if (!r || r->waiting != conn)
        return;
    /* Closed in its pause (gn_close, gn_loop_free): no attempt. */
    if (r->wait_timer)
        gn_timer_cancel(conn->loop, r->wait_timer);
    r->wait_timer = 0;
    r->waiting = NULL;
}

static void pause_over(gn_loop *loop, uint64_t id, void *arg)
{
    struct gn__reconnect *r = arg;
    gn_conn *conn = r->waiting;
    int rc;

    (void)loop;
    (void)id;
    r->wait_timer = 0;
    r->waiting = NULL;
    conn->ext->own.opts.connect_timeout_ms = attempt_timeout_ms(r);
    gn__reconnect_started(conn);
    rc = r->hooks->start(conn, &r->target, r->start_data);
    if (rc < 0)
        gn__conn_fail(conn, rc, "connect to %s: %s", r->target_text, gn_strerror(rc));
}

/* The pause before the next attempt, from now: the backoff counts from
 * the start of the attempt that failed. */
static uint32_t pause_ms(struct gn__reconnect *r, uint64_t now)
{
    uint64_t due;

    if (r->failures == 0)
        return 0;
    due = r->started_ms + gn_backoff_delay_ms(&r->b, r->failures, next_random(r));
    return due > now ? (uint32_t)(due - now) : 0;
}

/* The successor of old: a connection with its handlers and user data,
 * waiting out the pause.  0 or a code. */
static int make_successor(struct gn__reconnect *r, gn_conn *old, uint32_t delay, gn_conn **out)
{
    gn_conn *conn;
    int rc = gn__conn_new_own(old->loop, r->hooks->owner, NULL, -1, &old->prof->h, &r->opts, &conn);

    if (rc < 0)
        return rc;
    conn->kind = r->kind;
    conn->user_data = old->user_data;
    rc = gn__conn_register(conn, r->hooks->close_handle);
    if (rc == 0)
        rc = gn__reconnect_attach(r, conn);
    if (rc == 0)
        rc = gn_timer_start(conn->loop, delay, 0, pause_over, r, &r->wait_timer);
    if (rc < 0) {
        gn__tls_detach(conn);
        if (conn->ext)
            conn->ext->reconnect = NULL;
        gn__conn_discard(conn);
        return rc;
    }
    r->waiting = conn;
    *out = conn;
    return 0;
}

void gn__reconnect_gone(gn_conn *old)
{
    struct gn__reconnect *r = chain_of(old);
    uint64_t now = gn__clock_ms();
    void (*announce)(gn_conn *, unsigned, uint32_t, int);
    gn_conn *conn;
    uint32_t delay;
    int rc;

    if (!r)
        return;
    old->ext->reconnect = NULL;
    if (!will_retry(r, old, now)) {
        gn__reconnect_free(r);
        return;
    }
    r->failures = ended_as_failure(r, now) ? r->failures + 1 : 0;
    r->attempt++;
    delay = pause_ms(r, now);
    rc = make_successor(r, old, delay, &conn);
    if (rc < 0) {
        gn__log(GN_LOG_ERROR, "reconnect to %s: gave up: %s", r->target_text, gn_strerror(rc));
        gn__reconnect_free(r);
        return;
    }
    announce = conn->prof->h.on_reconnect;
    if (announce)
        announce(conn, r->attempt, delay, old->close_reason);
}
