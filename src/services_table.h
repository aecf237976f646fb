/*
 * The compiled-in port registry: services_table.c, which the build
 * generates from data/ with scripts/gen-services.py, defines these; only
 * services.c reads them.  See the generator for how the indices are sorted
 * and what it checks.
 */
#ifndef GN_SERVICES_TABLE_H
#define GN_SERVICES_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "gnezdo.h"

/* The registry's date, "YYYY-MM-DD". */
extern const char gn__services_date[];

/* Every row of the registry, in registry order. */
extern const gn_service gn__services_table[];
extern const size_t gn__services_table_len;

/* Named rows by ASCII-lowercased name (bytewise), then registry order. */
extern const uint16_t gn__services_by_name[];
extern const size_t gn__services_by_name_len;

/* Single-port rows (port_lo == port_hi) by port, named rows before unnamed
 * ones, then registry order. */
extern const uint16_t gn__services_by_port[];
extern const size_t gn__services_by_port_len;

/*
 * Range rows (port_lo < port_hi) grouped by proto, each group by port_lo,
 * then registry order.  Group p is [gn__services_ranges_start[p],
 * gn__services_ranges_start[p + 1]).  Ranges within a group never overlap.
 */
extern const uint16_t gn__services_ranges[];
extern const uint16_t gn__services_ranges_start[GN_PROTO_DCCP + 2];

#endif
