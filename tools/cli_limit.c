/*
 * --limit RATE for send, recv and listen: bytes per second (as curl's
 * --limit-rate counts), with K, M or G for 1024, 1024^2 or 1024^3.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

uint64_t cli_rate_limit;

/* "10M" -> 10485760; 0 and malformed text are usage errors. */
static int parse_rate(const char *text, uint64_t *out)
{
    unsigned long long n;
    uint64_t unit = 1;
    char *end;

    if (!isdigit((unsigned char)text[0]))
        return -1;
    errno = 0;
    n = strtoull(text, &end, 10);
    if (errno)
        return -1;
    switch (toupper((unsigned char)*end)) {
    case 'K':
        unit = 1024;
        end++;
        break;
    case 'M':
        unit = 1024 * 1024;
        end++;
        break;
    case 'G':
        unit = 1024 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (*end || n == 0 || n > UINT64_MAX / unit)
        return -1;
    *out = n * unit;
    return 0;
}

int cli_take_limit(int *argc, char **argv)
{
    int kept = 0;

    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], "--limit") != 0) {
            argv[kept++] = argv[i];
            continue;
        }
        if (i + 1 >= *argc)
            return cli_usage_error("--limit needs a rate in bytes per second, e.g. '--limit 10M'");
        if (parse_rate(argv[++i], &cli_rate_limit) < 0)
            return cli_usage_error("--limit '%s' is not a rate in bytes per second: a number "
                                   "above 0 with an optional K, M or G (1024, 1024^2, 1024^3)",
                                   argv[i]);
    }
    *argc = kept;
    return 0;
}
