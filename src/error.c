/*
 * Error codes: their texts, their names, and the one place errno values
 * become codes.
 */
#include <errno.h>

#include "gnezdo.h"

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

    if (code >= 0)
        return "success";
    info = error_find(code);
    return info ? info->text : "unknown error";
}

const char *gn_errname(int code)
{
    const struct error_info *info;

    if (code >= 0)
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
    case EPFNOSUPPORT:
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
    case EHOSTDOWN:
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
    default:
        return GN_ESYS;
    }
}
