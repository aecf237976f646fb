/*
 * http_request.h - the request parser of http_hello.c: one request head
 * (request line and headers) from the start of the bytes on_data holds.
 * A header of its own so that fuzz/fuzz_http_request.c parses with the
 * very same code; static functions, as in a single-file example.
 *
 * HTTP handled: request line "METHOD TARGET HTTP/1.0|HTTP/1.1" (else 400),
 * headers up to HEADER_MAX bytes (else 431), Content-Length (two that
 * disagree: 400), Transfer-Encoding (not supported: 411), Connection.
 */
#ifndef HTTP_REQUEST_H
#define HTTP_REQUEST_H

#include <gnezdo.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#define HEADER_MAX 8192 /* request line and headers, CRLFs included */

struct request {
    int minor; /* HTTP/1.minor */
    bool head; /* HEAD: the response has no body */
    bool conn_close, conn_keep_alive;
    bool chunked;
    bool has_length;
    uint64_t content_length;
};

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_tchar(s[i]))
            return false;
    return len > 0;
}

static bool equals_nocase(const char *s, size_t len, const char *word)
{
    return len == strlen(word) && strncasecmp(s, word, len) == 0;
}

/* "GET /path HTTP/1.1": returns 0 or 400. */
static int parse_request_line(const char *line, size_t len, struct request *req)
{
    const char *sp1 = memchr(line, ' ', len), *sp2, *version;
    size_t version_len;

    if (!sp1 || !is_token(line, (size_t)(sp1 - line)))
        return 400;
    sp2 = memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - line));
    if (!sp2 || sp2 == sp1 + 1)
        return 400;
    for (const char *p = sp1 + 1; p < sp2; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return 400;
    version = sp2 + 1;
    version_len = len - (size_t)(version - line);
    if (version_len != 8 || memcmp(version, "HTTP/1.", 7) != 0 ||
        (version[7] != '0' && version[7] != '1'))
        return 400;
    req->minor = version[7] - '0';
    req->head = sp1 - line == 4 && memcmp(line, "HEAD", 4) == 0;
    return 0;
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t'))
        (*s)++, (*len)--;
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

/* Connection: a comma-separated list of options. */
static void parse_connection(const char *v, size_t len, struct request *req)
{
    const char *end = v + len;

    while (v < end) {
        const char *comma = memchr(v, ',', (size_t)(end - v)), *item = v;
        size_t n = (size_t)((comma ? comma : end) - v);

        trim(&item, &n);
        req->conn_close |= equals_nocase(item, n, "close");
        req->conn_keep_alive |= equals_nocase(item, n, "keep-alive");
        v = comma ? comma + 1 : end;
    }
}

static int parse_content_length(const char *v, size_t len, struct request *req)
{
    uint64_t n = 0;

    if (len == 0 || len > 18) /* 18 digits cannot overflow */
        return 400;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 400;
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    /* Two lengths that disagree: which one frames the body is exactly
     * what a request smuggler wants us to guess (RFC 9112, 6.3). */
    if (req->has_length && req->content_length != n)
        return 400;
    req->has_length = true;
    req->content_length = n;
    return 0;
}

/* "Name: value": returns 0 or 400. */
static int parse_header(const char *line, size_t len, struct request *req)
{
    const char *colon = memchr(line, ':', len), *v;
    size_t name_len, v_len;

    if (!colon || !is_token(line, (size_t)(colon - line)))
        return 400; /* also a space before the colon (RFC 9112, 5.1) */
    name_len = (size_t)(colon - line);
    v = colon + 1;
    v_len = len - name_len - 1;
    trim(&v, &v_len);
    if (equals_nocase(line, name_len, "Content-Length"))
        return parse_content_length(v, v_len, req);
    if (equals_nocase(line, name_len, "Transfer-Encoding"))
        req->chunked = true;
    else if (equals_nocase(line, name_len, "Connection"))
        parse_connection(v, v_len, req);
    return 0;
}

/*
 * Parse one request head from the start of data.  Returns its length
 * (blank line included), 0 if it is not complete yet, or -status.
 */
static long parse_head(const char *data, size_t len, struct request *req)
{
    size_t off = 0, line_len, frame_len;
    bool first = true;
    int rc;

    *req = (struct request){0};
    for (;;) {
        if (off >= HEADER_MAX)
            return -431;
        rc = gn_frame_line(data + off, len - off, HEADER_MAX - off, &line_len, &frame_len);
        if (rc <= 0)
            return rc == 0 ? 0 : -431;
        const char *line = data + off;
        off += frame_len;
        if (first && line_len == 0)
            continue; /* an empty line before a request is ignored (RFC 9112, 2.2) */
        if (!first && line_len == 0)
            return req->chunked ? -411 : (long)off;
        rc = first ? parse_request_line(line, line_len, req) : parse_header(line, line_len, req);
        if (rc)
            return -rc;
        first = false;
    }
}

#endif
