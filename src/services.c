/*
 * The port registry: look-ups in the IANA table that scripts/gen-services.py
 * compiles in.  Everything here reads constant data, so every function is
 * safe from any thread; nothing allocates or does I/O.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gnezdo.h"
#include "services_table.h"

/* Indexed by gn_proto; the registry spells protocols in lower case. */
static const char *const proto_names[] = {"", "tcp", "udp", "sctp", "dccp"};

/* A port lies in at most one range per protocol group (the generator
 * checks the groups are disjoint), so a look-up meets at most this many. */
#define MAX_RANGE_HITS (GN_PROTO_DCCP + 1)

/* Where results go: the first max are written, all are counted, so callers
 * learn how big a buffer to pass next time. */
struct collector {
    const gn_service **out;
    size_t max;
    size_t count;
};

/* A port's entries: the run of single-port rows in gn__services_by_port
 * and the ranges holding it (table indices, ascending). */
struct port_hits {
    size_t first, end;
    uint16_t ranges[MAX_RANGE_HITS];
    size_t nranges;
};

/* ASCII only: names are ASCII, and locale-dependent tolower() would make
 * the order differ from the generator's. */
static unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Compares as the generator sorts: lowercased bytes, unsigned, shorter
 * prefix first. */
static int name_cmp(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;

    while (*x && ascii_lower(*x) == ascii_lower(*y)) {
        x++;
        y++;
    }
    return (int)ascii_lower(*x) - (int)ascii_lower(*y);
}

/* Cast first: the enum's type may be unsigned, and callers can pass any
 * int value. */
static bool proto_valid(gn_proto proto)
{
    return (unsigned)proto <= GN_PROTO_DCCP;
}

/* GN_PROTO_ANY on either side matches: asked for any protocol, or IANA
 * named none for the entry. */
static bool proto_matches(gn_proto entry, gn_proto wanted)
{
    return wanted == GN_PROTO_ANY || entry == GN_PROTO_ANY || entry == wanted;
}

static void collect(struct collector *c, const gn_service *s)
{
    if (c->count < c->max)
        c->out[c->count] = s;
    c->count++;
}

const char *gn_proto_name(gn_proto proto)
{
    return proto_valid(proto) ? proto_names[proto] : "unknown";
}

int gn_proto_parse(const char *name, gn_proto *out)
{
    if (!name || !out)
        return GN_EINVAL;
    for (int p = GN_PROTO_TCP; p <= GN_PROTO_DCCP; p++) {
        if (name_cmp(name, proto_names[p]) == 0) {
            *out = (gn_proto)p;
            return 0;
        }
    }
    return GN_EINVAL;
}

const char *gn_services_date(void)
{
    return gn__services_date;
}

size_t gn_services_count(void)
{
    return gn__services_table_len;
}

const gn_service *gn_service_at(size_t i)
{
    return i < gn__services_table_len ? &gn__services_table[i] : NULL;
}

/* ---- by name ---------------------------------------------------------- */

/* The first position in gn__services_by_name whose name is not below name;
 * equal names follow it in registry order. */
static size_t name_lower_bound(const char *name)
{
    size_t lo = 0, hi = gn__services_by_name_len;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (name_cmp(gn__services_table[gn__services_by_name[mid]].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The entry at position pos of the name index if it is called name. */
static const gn_service *name_at(size_t pos, const char *name)
{
    const gn_service *s;

    if (pos >= gn__services_by_name_len)
        return NULL;
    s = &gn__services_table[gn__services_by_name[pos]];
    return name_cmp(s->name, name) == 0 ? s : NULL;
}

int gn_services_by_name(const char *name, gn_proto proto, const gn_service **out, size_t max)
{
    struct collector c = {out, max, 0};
    const gn_service *s;

    if (!name || (!out && max > 0) || !proto_valid(proto))
        return GN_EINVAL;
    for (size_t pos = name_lower_bound(name); (s = name_at(pos, name)); pos++)
        if (proto_matches(s->proto, proto))
            collect(&c, s);
    return (int)c.count;
}

int gn_service_port(const char *name, gn_proto proto)
{
    const gn_service *s;
    int range_start = GN_ENOSERVICE;

    if (!name || !proto_valid(proto))
        return GN_EINVAL;
    for (size_t pos = name_lower_bound(name); (s = name_at(pos, name)); pos++) {
        if (!s->has_port || !proto_matches(s->proto, proto))
            continue;
        if (s->port_lo == s->port_hi)
            return s->port_lo;
        if (range_start < 0)
            range_start = s->port_lo; /* "x11" is 6000-6063: 6000, as /etc/services has it */
    }
    return range_start;
}

/* ---- by port ---------------------------------------------------------- */

/* [*first, *end): the single-port rows for port in gn__services_by_port. */
static void port_run(unsigned port, size_t *first, size_t *end)
{
    size_t lo = 0, hi = gn__services_by_port_len;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (gn__services_table[gn__services_by_port[mid]].port_lo < port)
            lo = mid + 1;
        else
            hi = mid;
    }
    *first = lo;
    while (lo < gn__services_by_port_len &&
           gn__services_table[gn__services_by_port[lo]].port_lo == port)
        lo++;
    *end = lo;
}

/* The range of group g holding port, as a table index, or -1.  Ranges in a
 * group are disjoint and sorted, so only the last one starting at or
 * before port can hold it. */
static long group_range(int g, unsigned port)
{
    size_t lo = gn__services_ranges_start[g], hi = gn__services_ranges_start[g + 1];
    const gn_service *s;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (gn__services_table[gn__services_ranges[mid]].port_lo <= port)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == gn__services_ranges_start[g])
        return -1;
    s = &gn__services_table[gn__services_ranges[lo - 1]];
    return s->port_hi >= port ? (long)gn__services_ranges[lo - 1] : -1;
}

/* Fills h->ranges with the ranges holding port for proto, ascending, so
 * they merge with the single-port run in registry order. */
static void find_ranges(unsigned port, gn_proto proto, struct port_hits *h)
{
    h->nranges = 0;
    for (int g = GN_PROTO_ANY; g <= GN_PROTO_DCCP; g++) {
        long idx;

        if (!proto_matches((gn_proto)g, proto) || (idx = group_range(g, port)) < 0)
            continue;
        size_t k = h->nranges++;
        for (; k > 0 && h->ranges[k - 1] > idx; k--)
            h->ranges[k] = h->ranges[k - 1];
        h->ranges[k] = (uint16_t)idx;
    }
}

/* The next single-port row at or after *pos that is named (or unnamed)
 * and matches proto, as a table index; -1 when the run is done. */
static long next_single(const struct port_hits *h, size_t *pos, gn_proto proto, bool named)
{
    for (; *pos < h->end; (*pos)++) {
        uint16_t idx = gn__services_by_port[*pos];
        const gn_service *s = &gn__services_table[idx];

        if ((s->name[0] != '\0') == named && proto_matches(s->proto, proto))
            return idx;
    }
    return -1;
}

/* The next range at or after *r that is named (or unnamed); -1 when none. */
static long next_range(const struct port_hits *h, size_t *r, bool named)
{
    for (; *r < h->nranges; (*r)++)
        if ((gn__services_table[h->ranges[*r]].name[0] != '\0') == named)
            return h->ranges[*r];
    return -1;
}

/* Collects the named (or unnamed) hits in registry order: both sources are
 * ascending within a class, so a two-way merge keeps that order. */
static void collect_class(struct collector *c, const struct port_hits *h, gn_proto proto,
                          bool named)
{
    size_t pos = h->first, r = 0;
    long single = next_single(h, &pos, proto, named);
    long range = next_range(h, &r, named);

    while (single >= 0 || range >= 0) {
        if (range < 0 || (single >= 0 && single < range)) {
            collect(c, &gn__services_table[single]);
            pos++;
            single = next_single(h, &pos, proto, named);
        } else {
            collect(c, &gn__services_table[range]);
            r++;
            range = next_range(h, &r, named);
        }
    }
}

int gn_services_by_port(unsigned port, gn_proto proto, const gn_service **out, size_t max)
{
    struct collector c = {out, max, 0};
    struct port_hits h;

    if (port > 65535 || (!out && max > 0) || !proto_valid(proto))
        return GN_EINVAL;
    port_run(port, &h.first, &h.end);
    find_ranges(port, proto, &h);
    /* Named first so the primary name leads (80/tcp: http, www, www-http);
     * "Reserved" and "Unassigned" rows only after them. */
    collect_class(&c, &h, proto, true);
    collect_class(&c, &h, proto, false);
    return (int)c.count;
}

/* ---- search ----------------------------------------------------------- */

/* Whether word occurs in text, ASCII case-insensitively.  Naive, which is
 * fine for a scan over short descriptions that people run by hand. */
static bool contains_word(const char *text, const char *word)
{
    for (; *text; text++) {
        size_t i = 0;

        while (word[i] &&
               ascii_lower((unsigned char)text[i]) == ascii_lower((unsigned char)word[i]))
            i++;
        if (!word[i])
            return true;
    }
    return false;
}

int gn_services_search(const char *word, gn_proto proto, const gn_service **out, size_t max)
{
    struct collector c = {out, max, 0};

    if (!word || !word[0] || (!out && max > 0) || !proto_valid(proto))
        return GN_EINVAL;
    for (size_t i = 0; i < gn__services_table_len; i++) {
        const gn_service *s = &gn__services_table[i];

        /* Unnamed rows are excluded: "Unassigned" is not a service. */
        if (s->name[0] == '\0' || !proto_matches(s->proto, proto))
            continue;
        if (contains_word(s->name, word) || contains_word(s->description, word))
            collect(&c, s);
    }
    return (int)c.count;
}
