/*
 * A latency histogram in microseconds with log-linear buckets, as
 * HdrHistogram keeps them: values below 256 each have their own bucket;
 * above, each power of two is cut into 128 equal buckets, so a value is
 * known to within 1/128 (0.8 %) of itself.  One fixed array covers 0 to
 * 2^37 us (38 hours; larger values land in the last bucket): recording is
 * an index computation and an increment, never an allocation.
 */
#ifndef GN_CLI_HISTOGRAM_H
#define GN_CLI_HISTOGRAM_H

#include <stdint.h>

#define HIST_SUB_BITS 8  /* values below 2^8 are exact */
#define HIST_MAX_BITS 36 /* the highest bit a value may have */
#define HIST_BUCKETS  ((HIST_MAX_BITS - HIST_SUB_BITS + 3) << (HIST_SUB_BITS - 1))

struct histogram {
    uint64_t count;  /* values recorded */
    uint64_t max_us; /* the largest recorded, exact */
    uint64_t sum_us; /* for the mean */
    uint64_t buckets[HIST_BUCKETS];
};

/* Forget every value. */
void hist_reset(struct histogram *h);

/* Record one value of us microseconds. */
void hist_record(struct histogram *h, uint64_t us);

/* The value at quantile q (0..1): the highest value that the bucket
 * holding it stands for, as HdrHistogram reports it (the exact maximum
 * for the last one); 0 when empty. */
uint64_t hist_quantile(const struct histogram *h, double q);

/* The mean in microseconds; 0 when empty. */
double hist_mean(const struct histogram *h);

/* The bucket of a value, and the highest value of a bucket (for tests). */
unsigned hist_bucket_of(uint64_t us);
uint64_t hist_bucket_top(unsigned bucket);

#endif
