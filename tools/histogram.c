/*
 * The latency histogram (histogram.h).  A value v of 2^8 or more has its
 * highest bit at msb; shifted right by msb - 7 it falls in [128, 256),
 * and that with the shift names its bucket: 128 * shift + (v >> shift),
 * which continues the exact buckets 0..255 without a gap.
 */
#include "histogram.h"

#include <string.h>

#define SUB_COUNT  (1u << HIST_SUB_BITS)       /* 256 exact values */
#define HALF_COUNT (1u << (HIST_SUB_BITS - 1)) /* 128 buckets per power of two */
#define MAX_VALUE  ((UINT64_C(1) << (HIST_MAX_BITS + 1)) - 1)

void hist_reset(struct histogram *h)
{
    memset(h, 0, sizeof(*h));
}

unsigned hist_bucket_of(uint64_t us)
{
    unsigned shift;

    if (us < SUB_COUNT)
        return (unsigned)us;
    if (us > MAX_VALUE)
        us = MAX_VALUE;
    shift = (unsigned)(63 - __builtin_clzll(us)) - (HIST_SUB_BITS - 1);
    return HALF_COUNT * shift + (unsigned)(us >> shift);
}

uint64_t hist_bucket_top(unsigned bucket)
{
    unsigned shift;

    if (bucket < SUB_COUNT)
        return bucket;
    shift = bucket / HALF_COUNT - 1;
    return ((uint64_t)(bucket - HALF_COUNT * shift + 1) << shift) - 1;
}

void hist_record(struct histogram *h, uint64_t us)
{
    h->buckets[hist_bucket_of(us)]++;
    h->count++;
    h->sum_us += us;
    if (us > h->max_us)
        h->max_us = us;
}

uint64_t hist_quantile(const struct histogram *h, double q)
{
    uint64_t want, seen = 0;

    if (h->count == 0)
        return 0;
    /* The value with at least q of all values at or below it. */
    want = (uint64_t)(q * (double)h->count + 0.5);
    if (want < 1)
        want = 1;
    if (want > h->count)
        want = h->count;
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        seen += h->buckets[b];
        if (seen >= want) {
            uint64_t top = hist_bucket_top(b);
            return top < h->max_us ? top : h->max_us;
        }
    }
    return h->max_us;
}

double hist_mean(const struct histogram *h)
{
    return h->count ? (double)h->sum_us / (double)h->count : 0;
}
