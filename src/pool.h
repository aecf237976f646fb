/*
 * A free list of same-sized objects kept for reuse, so that a server
 * under churn does not call malloc per client.  Bounded: past max, a
 * returned object is freed.  Not thread-safe: one owner (a loop).
 * Never installed.
 */
#ifndef GN_POOL_H
#define GN_POOL_H

#include <stddef.h>

struct gn__pool {
    void *head; /* each free object's first word links the next */
    size_t len;
};

/* A zeroed object of size bytes (>= sizeof(void *)): reused if one is
 * free, else newly allocated.  NULL when out of memory. */
void *gn__pool_get(struct gn__pool *pool, size_t size);
/* Give obj back (keep at most max); obj may be NULL. */
void gn__pool_put(struct gn__pool *pool, void *obj, size_t max);
/* Free every kept object. */
void gn__pool_free(struct gn__pool *pool);

#endif
