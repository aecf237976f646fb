/*
 * Error codes: their texts, their names, and the one place errno values
 * become codes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

struct error_info {
    int code;
    const char *name;
    const char *text;
};

static const struct error_info error_table[] = {
#define GN__ERROR_INFO(name, value, text) {(value), #name, (text)},
    GN_ERRORS(GN__ERROR_INFO)
#undef GN__ERROR_INFO
};

static const struct error_info *error_find(int code)
{
    for (size_t i = 0; i < sizeof(error_table) / sizeof(error_table[0]); i++)
        if (error_table[i].code == code)
            return &error_table[i];
    return NULL;
}

const char *gn_strerror(int code)
{
    const struct error_info *info;

    if (code == 0)
        return "success";
    info = error_find(code); /* a positive code is no code: unknown, not success */
    return info ? info->text : "unknown error";
}

const char *gn_errname(int code)
{
    const struct error_info *info;

    if (code == 0)
        return "OK";
    info = error_find(code);
    return info ? info->name : "EUNKNOWN";
}

int gn_error_from_errno(int err)
{
    switch (err) {
    case 0:
        return 0;
    case EINVAL:
        return GN_EINVAL;
    case ENOMEM:
        return GN_ENOMEM;
    case ENAMETOOLONG:
        return GN_ETOOLONG;
    case EAFNOSUPPORT:
#ifdef EPFNOSUPPORT /* not on Windows */
    case EPFNOSUPPORT:
#endif
    case EPROTONOSUPPORT:
        return GN_EFAMILY;
    case ETIMEDOUT:
        return GN_ETIMEDOUT;
    case ECONNREFUSED:
        return GN_ECONNREFUSED;
    case ECONNRESET:
    case ECONNABORTED:
        return GN_ECONNRESET;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENETDOWN:
#ifdef EHOSTDOWN
    case EHOSTDOWN:
#endif
        return GN_EUNREACH;
    case EADDRINUSE:
        return GN_EADDRINUSE;
    case EACCES:
    case EPERM:
        return GN_EACCES;
    case EMFILE:
    case ENFILE:
        return GN_EMFILE;
    case ENOBUFS:
        return GN_ENOBUFS;
    case EMSGSIZE:
        return GN_EMSGSIZE;
    case EPIPE:
        return GN_EPIPE;
    case EADDRNOTAVAIL:
        return GN_EADDRNOTAVAIL;
    case ENOENT: /* a Unix socket path that does not exist */
        return GN_ENOTFOUND;
    case EEXIST:
        return GN_EEXIST;
    case EOPNOTSUPP:
        return GN_ENOTSUP;
    default:
        return GN_ESYS;
    }
}

/* Long enough to recognise the input; short enough that 10 KiB of garbage
 * does not become a 10 KiB log line. */
#define QUOTE_MAX_INPUT 64

void gn__quote(char *buf, size_t size, const char *input, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t shown = len > QUOTE_MAX_INPUT ? QUOTE_MAX_INPUT : len;
    size_t o = 0;

    buf[o++] = '\'';
    for (size_t i = 0; i < shown && o + 8 < size; i++) {
        unsigned char c = (unsigned char)input[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
            buf[o++] = (char)c;
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        }
    }
    if (shown < len && o + 5 < size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '\'';
    buf[o] = '\0';
}

int gn__errbuf_input(char *errbuf, size_t errlen, int code, const char *input, size_t len,
                     const char *fmt, ...)
{
    char quoted[QUOTE_MAX_INPUT * 4 + 8];
    va_list ap;
    int n;

    if (!errbuf || errlen == 0)
        return code;
    gn__quote(quoted, sizeof(quoted), input, len);
    n = snprintf(errbuf, errlen, "%s: ", quoted);
    if (n >= 0 && (size_t)n < errlen) {
        va_start(ap, fmt);
        vsnprintf(errbuf + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return code;
}
