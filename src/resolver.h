/*
 * Name resolution off the loop's thread (resolver.c).  Never installed.
 */
#ifndef GN_RESOLVER_H
#define GN_RESOLVER_H

#include "loop.h"

/* Asynchronous resolution (resolver.c).  done runs on the loop's thread
 * with the results; a cancelled request never calls done. */
struct gn__resolve_req;
typedef void (*gn__resolve_fn)(gn_loop *loop, void *arg, int rc, const gn_endpoint *addrs, size_t n,
                               const char *error);
int gn__resolve_start(gn_loop *loop, const gn_endpoint *ep, gn__resolve_fn done, void *arg,
                      struct gn__resolve_req **out);
void gn__resolve_cancel(struct gn__resolve_req *req);

#endif
