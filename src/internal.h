/*
 * Declarations shared between the library's source files and never
 * installed.  Cross-file internals are named gn__...
 */
#ifndef GN_INTERNAL_H
#define GN_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gnezdo.h"

/* Why a unix: address fails where the system has no AF_UNIX (a socket()
 * refused with GN_ENOTSUP). */
#define GN__NO_UNIX_SOCKETS                                                                        \
    "this system has no Unix domain sockets (Windows has them from Windows 10 version 1803; "      \
    "Wine 8 has none)"

/*
 * gn__errbuf_input - write "'<input>': <message>" into errbuf (errlen
 * bytes; nothing when errbuf is NULL or errlen is 0) and return code.
 * input is len bytes, not necessarily NUL-terminated; it is quoted with
 * unprintable bytes escaped and cut after 64 bytes, so hostile input
 * cannot flood a log or a terminal.
 */
int gn__errbuf_input(char *errbuf, size_t errlen, int code, const char *input, size_t len,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* gn__quote - input quoted as gn__errbuf_input does, into buf (size >= 8). */
void gn__quote(char *buf, size_t size, const char *input, size_t len);

/*
 * gn__endpoint_set_port - set ep's port, in its socket address too.
 * ep must be an IP, name or any endpoint; Unix endpoints ignore it.
 */
void gn__endpoint_set_port(gn_endpoint *ep, uint16_t port);

/* gn__endpoint_valid - true when ep's private fields hold a consistent
 * endpoint (guards public functions against garbage structs). */
bool gn__endpoint_valid(const gn_endpoint *ep);

#endif
