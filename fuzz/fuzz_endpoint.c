/*
 * libFuzzer target for the endpoint parser.  Checks, for every input:
 * no crash or out-of-bounds read (ASan; the input buffer is exactly
 * size bytes), a message whenever parsing fails, and for every accepted
 * input that formatting round-trips: parse(format(x)) == x.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnezdo.h"

static void check_round_trip(const gn_endpoint *ep, unsigned flags)
{
    char text[GN_ENDPOINT_STRLEN], err[GN_ERRBUF_SIZE];
    gn_endpoint back;
    int n = gn_endpoint_format(ep, text, sizeof(text));

    if (n <= 0) {
        fprintf(stderr, "format failed: %d\n", n);
        abort();
    }
    if (gn_endpoint_parse(text, flags, &back, err, sizeof(err)) != 0) {
        fprintf(stderr, "'%s' does not parse back: %s\n", text, err);
        abort();
    }
    if (!gn_endpoint_equal(ep, &back)) {
        fprintf(stderr, "'%s' parses back to another endpoint\n", text);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned flags = size > 0 && (data[0] & 1) ? GN_PARSE_LISTEN : 0;
    char err[GN_ERRBUF_SIZE];
    gn_endpoint ep;
    int rc;

    err[0] = 'x';
    rc = gn_endpoint_parse_len((const char *)data, size, flags, &ep, err, sizeof(err));
    if (rc < 0) {
        if (err[0] != '\'' || strlen(err) >= sizeof(err)) {
            fprintf(stderr, "failure %d without a message naming the input\n", rc);
            abort();
        }
        return 0;
    }
    check_round_trip(&ep, flags);
    return 0;
}
