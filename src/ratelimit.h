/*
 * Rate limits (ratelimit.c): token buckets for a connection's reading and
 * writing, alone and in groups (libevent's rate-limit groups).  The
 * connection core asks how much may move now, says how much moved, and
 * pauses the direction when the answer is nothing; a timer wakes it when
 * tokens are back.  Never installed.
 */
#ifndef GN_RATELIMIT_H
#define GN_RATELIMIT_H

#include "conn.h"

enum gn__rate_dir { GN__RATE_READ, GN__RATE_WRITE };

/* A token bucket.  Tokens are kept in thousandths of a byte, so that a
 * refill of a millisecond at a low rate is never rounded away. */
struct gn__bucket {
    uint64_t rate;    /* bytes per second; 0: no limit */
    int64_t milli;    /* tokens * 1000; negative after an overdraft */
    int64_t cap;      /* burst * 1000 */
    uint64_t last_ms; /* when milli was last refilled */
};

/* A connection's limits and its place in a group (in its extension). */
struct gn__conn_rate {
    gn_conn *conn;
    struct gn__bucket own[2]; /* by enum gn__rate_dir */
    gn_rate_group *group;
    struct gn__list member; /* in group->members */
    uint64_t timer[2];      /* waiting for own tokens */
    bool waiting[2];        /* paused until tokens come: own or group's */
    /* Called on the loop when a paused direction may move again. */
    void (*wake)(gn_conn *conn, int dir);
};

/* Set conn's own limits (limit NULL: none); the state is made on first
 * use in ext and kept.  wake is called when a direction resumes.  0 or
 * GN_ENOMEM. */
int gn__rate_set(gn_conn *conn, struct gn__conn_ext *ext, const gn_rate_limit *limit,
                 void (*wake)(gn_conn *conn, int dir));
/* Join group (NULL: leave).  0 or GN_ENOMEM. */
int gn__rate_join(gn_conn *conn, struct gn__conn_ext *ext, gn_rate_group *group,
                  void (*wake)(gn_conn *conn, int dir));
/* The group's loop. */
gn_loop *gn__rate_group_loop(const gn_rate_group *group);
/* Whether conn's state limits anything. */
bool gn__rate_limits(const gn_conn *conn);

/* How many of want bytes may move in dir now.  0 means none: the
 * direction is marked waiting (conn->rate_wait_read/_write) and, on a
 * loop, a timer will call wake.  want > 0. */
size_t gn__rate_allow(gn_conn *conn, enum gn__rate_dir dir, size_t want);
/* n bytes moved in dir.  Returns true when that emptied a bucket: the
 * direction is now waiting as after gn__rate_allow's 0. */
bool gn__rate_used(gn_conn *conn, enum gn__rate_dir dir, size_t n);
/* Blocking mode: milliseconds until dir holds a quantum of tokens (0: now). */
uint64_t gn__rate_wait_ms(gn_conn *conn, enum gn__rate_dir dir);
/* Stop timers and leave the group (closing, detaching from the loop);
 * the limits stay. */
void gn__rate_stop(gn_conn *conn);
/* Free the state (with the extension). */
void gn__rate_free(struct gn__conn_ext *ext);

#endif
