/*
 * Shared by the fuzz targets that drive a gn_loop: one iteration of the
 * loop at a time, so that a target can look at its invariants between
 * steps, and a byte reader over the fuzzer's input.
 */
#ifndef GN_FUZZ_LOOP_H
#define GN_FUZZ_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "gnezdo.h"

/* Stops the loop from a task posted by a task: gn_loop_run runs the
 * first before its first wait, the second after it, so one run is one
 * wait (with no timeout: a task is pending) and the callbacks it brings. */
static inline void fuzz_stop_task(gn_loop *loop, void *arg)
{
    (void)arg;
    gn_loop_stop(loop);
}

static inline void fuzz_post_stop_task(gn_loop *loop, void *arg)
{
    (void)arg;
    if (gn_loop_post(loop, fuzz_stop_task, NULL) < 0)
        gn_loop_stop(loop);
}

/* One iteration of loop: what is ready now, never a wait. */
static inline void fuzz_loop_step(gn_loop *loop)
{
    if (gn_loop_post(loop, fuzz_post_stop_task, NULL) < 0 || gn_loop_run(loop) < 0) {
        fprintf(stderr, "fuzz: the loop failed to run\n");
        abort();
    }
}

/* Reads the fuzzer's input a byte at a time: 0 once it is used up. */
struct fuzz_bytes {
    const uint8_t *data;
    size_t len, at;
};

static inline uint8_t fuzz_byte(struct fuzz_bytes *in)
{
    return in->at < in->len ? in->data[in->at++] : 0;
}

static inline size_t fuzz_left(const struct fuzz_bytes *in)
{
    return in->len - in->at;
}

#endif
