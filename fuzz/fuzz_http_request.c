/*
 * libFuzzer target for examples/http_hello's request parser
 * (examples/http_request.h), over the input as a client's byte stream:
 * requests one after another, each head followed by its Content-Length
 * bytes of body, as http_hello's on_data walks them.  Checks, for every
 * head:
 *  - no read outside the bytes given (ASan: each prefix looked at is a
 *    heap copy of exactly that many bytes);
 *  - an answer the server can act on: the head's length (within the
 *    bytes and HEADER_MAX), 0 for "wait for more", or -400, -411, -431;
 *  - the same answer however the bytes arrive: every shorter prefix
 *    says "wait" or gives the same answer, never another one, and every
 *    longer one gives the same answer and the same request.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_request.h"

#define MAX_REQUESTS 64
#define MAX_CHECKS   24 /* prefixes looked at per head, besides the edges */

static long parse_copy(const uint8_t *data, size_t len, struct request *req)
{
    char *copy = malloc(len ? len : 1);
    long n;

    if (!copy)
        abort();
    memcpy(copy, data, len);
    n = parse_head(copy, len, req);
    free(copy);
    return n;
}

static bool same_request(const struct request *a, const struct request *b)
{
    return a->minor == b->minor && a->head == b->head && a->conn_close == b->conn_close &&
           a->conn_keep_alive == b->conn_keep_alive && a->chunked == b->chunked &&
           a->has_length == b->has_length && a->content_length == b->content_length;
}

static void check_answer(long n, size_t len)
{
    if (n == 0 || n == -400 || n == -411 || n == -431)
        return;
    if (n > 0 && (size_t)n <= len && n <= HEADER_MAX)
        return;
    fprintf(stderr, "fuzz_http_request: parse_head answers %ld for %zu bytes\n", n, len);
    abort();
}

/* The answer for a prefix of k bytes, against the answer n for all. */
static void check_prefix(const uint8_t *data, size_t k, long n, const struct request *req)
{
    struct request part;
    long m = parse_copy(data, k, &part);

    check_answer(m, k);
    if (m == 0 && (n <= 0 || k < (size_t)n))
        return; /* not all there yet */
    if (m != n || (n > 0 && !same_request(&part, req))) {
        fprintf(stderr, "fuzz_http_request: %zu bytes answer %ld, all of them %ld\n", k, m, n);
        abort();
    }
}

/* Prefixes of every length near the head's end, and some in between. */
static void check_prefixes(const uint8_t *data, size_t len, long n, const struct request *req)
{
    size_t end = n > 0 ? (size_t)n : len;

    for (size_t k = end > 4 ? end - 4 : 0; k <= end + 4 && k <= len; k++)
        check_prefix(data, k, n, req);
    for (size_t i = 1; i < MAX_CHECKS; i++)
        check_prefix(data, len * i / MAX_CHECKS, n, req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t at = 0;

    for (int i = 0; i < MAX_REQUESTS && at < size; i++) {
        struct request req;
        long n = parse_copy(data + at, size - at, &req);

        check_answer(n, size - at);
        check_prefixes(data + at, size - at, n, &req);
        if (n <= 0)
            break; /* an error closes the connection; 0 waits for more */
        at += (size_t)n;
        /* The body is skipped, as http_hello does. */
        at += req.content_length < size - at ? (size_t)req.content_length : size - at;
    }
    return 0;
}
