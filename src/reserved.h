/*
 * Reserved space at the end of public structs (see "Version and
 * compatibility" in gnezdo.h): what a program hands in must have it zero,
 * so a later release can give it a meaning without surprising programs
 * built before.
 */
#ifndef GN_RESERVED_H
#define GN_RESERVED_H

#include <stdbool.h>
#include <stddef.h>

#include "gnezdo.h"

/* gn__zeroed - every one of the n bytes at p is zero. */
bool gn__zeroed(const void *p, size_t n);

/* GN__RESERVED_CLEAR - s (a pointer to a public struct) is NULL or has
 * its reserved space zero. */
#define GN__RESERVED_CLEAR(s) ((s) == NULL || gn__zeroed((s)->reserved_, sizeof((s)->reserved_)))

/*
 * gn__reserved_error - GN_EINVAL, saying in errbuf (may be NULL) that the
 * struct named type came with reserved space set.
 */
int gn__reserved_error(const char *type, char *errbuf, size_t errlen);

/*
 * gn__options_reserved_clear - 0 when opts (may be NULL) and the TLS
 * options it points to have their reserved space zero; else
 * gn__reserved_error.  (Its framing is checked with the framing.)
 */
int gn__options_reserved_clear(const gn_options *opts, char *errbuf, size_t errlen);

#endif
