/*
 * One intrusive, circular, doubly linked list for every list and queue
 * of the library (the loop's handles and deferred work, a server's
 * connections, posted tasks, the resolver's queue, output chunks...).
 * A node is embedded in its object and gn__container_of gets the object
 * back, as in the kernel's list.h and libuv's queue.h: linking never
 * allocates, unlinking is O(1) from the node alone.  Never installed.
 */
#ifndef GN_LIST_H
#define GN_LIST_H

#include <stdbool.h>
#include <stddef.h>

#define gn__container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* A list head and a node are the same thing: a head is a node that no
 * object embeds.  An unlinked node points at itself. */
struct gn__list {
    struct gn__list *prev, *next;
};

static inline void gn__list_init(struct gn__list *l)
{
    l->prev = l->next = l;
}

static inline bool gn__list_empty(const struct gn__list *l)
{
    return l->next == l;
}

/* Whether node is in some list (nodes are initialised unlinked). */
static inline bool gn__list_linked(const struct gn__list *node)
{
    return node->next != node && node->next != NULL;
}

static inline void gn__list_push_back(struct gn__list *head, struct gn__list *node)
{
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

static inline void gn__list_push_front(struct gn__list *head, struct gn__list *node)
{
    node->next = head->next;
    node->prev = head;
    head->next->prev = node;
    head->next = node;
}

/* Safe on an unlinked node; leaves node unlinked. */
static inline void gn__list_remove(struct gn__list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = node;
}

/* The first node, or NULL when empty. */
static inline struct gn__list *gn__list_first(const struct gn__list *head)
{
    return head->next == head ? NULL : head->next;
}

static inline struct gn__list *gn__list_pop_front(struct gn__list *head)
{
    struct gn__list *node = gn__list_first(head);

    if (node)
        gn__list_remove(node);
    return node;
}

/* Move every node of from to the end of to, leaving from empty. */
static inline void gn__list_splice(struct gn__list *to, struct gn__list *from)
{
    if (gn__list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    gn__list_init(from);
}

/* Walk the list; node may be unlinked (not freed: it stays readable for
 * the walk) inside the body, since next is taken first. */
#define gn__list_foreach_safe(node, next, head)                                                    \
    for ((node) = (head)->next, (next) = (node)->next; (node) != (head);                           \
         (node) = (next), (next) = (node)->next)

#endif
