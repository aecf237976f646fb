/*
 * Free lists of same-sized objects (see pool.h).
 */
#include <stdlib.h>
#include <string.h>

#include "pool.h"

void *gn__pool_get(struct gn__pool *pool, size_t size)
{
    void *obj = pool->head;

    if (!obj)
        return calloc(1, size);
    memcpy(&pool->head, obj, sizeof(void *));
    pool->len--;
    memset(obj, 0, size);
    return obj;
}

void gn__pool_put(struct gn__pool *pool, void *obj, size_t max)
{
    if (!obj)
        return;
    if (pool->len >= max) {
        free(obj);
        return;
    }
    memcpy(obj, &pool->head, sizeof(void *));
    pool->head = obj;
    pool->len++;
}

void gn__pool_free(struct gn__pool *pool)
{
    void *obj, *next;

    for (obj = pool->head; obj; obj = next) {
        memcpy(&next, obj, sizeof(void *));
        free(obj);
    }
    pool->head = NULL;
    pool->len = 0;
}
