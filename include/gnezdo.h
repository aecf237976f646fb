/*
 * gnezdo - a socket library: server and client sockets over TCP, UDP,
 * Unix domain sockets and TLS, one API chosen by the address.
 *
 * This header is the whole public API.  Conventions that hold everywhere:
 *  - Functions return 0 (or a count) on success and a negative GN_E... code
 *    on failure; gn_strerror() names the code.  A failed call changes
 *    nothing it was given except an error buffer.
 *  - Functions that parse text written by people take an optional error
 *    buffer (errbuf, errlen).  On failure it receives one line that names
 *    the input and says what is wrong, e.g.
 *    "'localhost:65536': port 65536 is out of range 0-65535".
 *    errbuf may be NULL; GN_ERRBUF_SIZE is always enough.
 *  - The library never prints, exits, raises signals or touches errno
 *    on purpose: every failure comes back as a return code.  (A signal
 *    watcher forwards a signal that landed on the wrong thread, see
 *    gn_signal_start.)
 *  - Names: gn_ + object + verb; types carry no _t suffix.
 */
#ifndef GNEZDO_H
#define GNEZDO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#include <sys/types.h> /* ssize_t */
#else
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*
 * gn_socket - a socket as the system names it: an int descriptor on POSIX
 * systems, a SOCKET handle on Windows.  Functions that take a socket the
 * caller made (gn_watch_start, gn_conn_adopt) take one of these.
 */
#ifdef _WIN32
typedef SOCKET gn_socket;
/* Windows has no struct iovec: gnezdo's, laid out as POSIX's. */
struct iovec {
    void *iov_base;
    size_t iov_len;
};
#else
typedef int gn_socket;
#endif

#if defined(_WIN32) && defined(GN_BUILDING_DLL)
#define GN_API __declspec(dllexport)
#elif defined(_WIN32) && !defined(GN_STATIC)
#define GN_API __declspec(dllimport)
#elif defined(__GNUC__) && !defined(GN_STATIC) && !defined(_WIN32)
#define GN_API __attribute__((visibility("default")))
#else
#define GN_API
#endif

/* ------------------------------------------------------------------------
 * Version and compatibility
 *
 * Within one major version the ABI only grows: a program built against an
 * older 1.x header runs with any newer 1.x library (the SONAME is
 * libgnezdo.so.MAJOR).  Structs the program fills or receives end in
 * reserved space, so their size never changes within a major version:
 * a later minor release turns reserved space into new fields whose zero
 * value means "as before".  The rule for every such struct (docs/api.md):
 * start from all zeros ({0} or a designated initializer) and set what you
 * need; a library given non-zero reserved space (a field from a newer
 * header, or an uninitialised struct) refuses it with GN_EINVAL.
 */
#define GN_VERSION_MAJOR  1
#define GN_VERSION_MINOR  2
#define GN_VERSION_PATCH  0
#define GN_VERSION_STRING "1.2.0"
/* One number that compares in order: 10203 for 1.2.3. */
#define GN_VERSION_NUMBER (GN_VERSION_MAJOR * 10000 + GN_VERSION_MINOR * 100 + GN_VERSION_PATCH)

/* Reserved space at the end of a public struct: leave it zero. */
#define GN_RESERVED(n)          uint64_t reserved_[n]
#define GN_RESERVED_HANDLERS(n) void (*reserved_[n])(void)

/*
 * gn_version - the library's version, "MAJOR.MINOR.PATCH", of the library
 * running, which may be newer than the header a program was built with.
 * Static storage; never NULL.  Thread: any.
 */
GN_API const char *gn_version(void);

/*
 * gn_version_number - the running library's GN_VERSION_NUMBER, to check at
 * run time what a program needs ("gn_version_number() >= 10100").
 * Thread: any.
 */
GN_API unsigned gn_version_number(void);

/* ------------------------------------------------------------------------
 * Errors
 *
 * Every code is negative and keeps its number forever; new codes are only
 * appended.  Where an errno applies, the code is the errno's meaning, not
 * its number, so codes are the same on every system.
 */
#define GN_ERRORS(XX)                                                                              \
    XX(EINVAL, -1, "invalid argument")                                                             \
    XX(ENOMEM, -2, "out of memory")                                                                \
    XX(EBADADDR, -3, "malformed address")                                                          \
    XX(ENOSERVICE, -4, "unknown service name")                                                     \
    XX(ENONAME, -5, "host name not found")                                                         \
    XX(ETEMPNAME, -6, "temporary failure in name resolution")                                      \
    XX(ERESOLVE, -7, "name resolution failed")                                                     \
    XX(ENOSPC, -8, "buffer too small")                                                             \
    XX(ENOTFOUND, -9, "not found")                                                                 \
    XX(ESYS, -10, "unexpected system error")                                                       \
    XX(ETOOLONG, -11, "name or path too long")                                                     \
    XX(EFAMILY, -12, "address family not supported")                                               \
    XX(ETIMEDOUT, -13, "timed out")                                                                \
    XX(ECONNREFUSED, -14, "connection refused")                                                    \
    XX(ECONNRESET, -15, "connection reset by peer")                                                \
    XX(EUNREACH, -16, "network or host unreachable")                                               \
    XX(EADDRINUSE, -17, "address already in use")                                                  \
    XX(EACCES, -18, "permission denied")                                                           \
    XX(EMFILE, -19, "too many open files")                                                         \
    XX(ECLOSED, -20, "connection is closed")                                                       \
    XX(ENOBUFS, -21, "output queue is full")                                                       \
    XX(EMSGSIZE, -22, "message too long")                                                          \
    XX(EPIPE, -23, "broken pipe")                                                                  \
    XX(EADDRNOTAVAIL, -24, "address not available")                                                \
    XX(EMODE, -25, "call does not fit the connection's mode")                                      \
    XX(EEOF, -26, "end of stream before the data expected")                                        \
    XX(ETLS, -27, "TLS handshake or protocol failure")                                             \
    XX(ECERT, -28, "peer certificate not accepted")                                                \
    XX(EAGAIN, -29, "not now: try again when the socket is ready")                                 \
    XX(EEXIST, -30, "already watched")                                                             \
    XX(ENOTSUP, -31, "not supported for this descriptor")                                          \
    XX(EPROXY, -32, "the proxy refused or failed")

enum gn_error {
#define GN__ERROR_ENUM(name, value, text) GN_##name = (value),
    GN_ERRORS(GN__ERROR_ENUM)
#undef GN__ERROR_ENUM
};

/* Enough for every message an errbuf receives, truncation included. */
#define GN_ERRBUF_SIZE 256

/*
 * gn_strerror - a short English text for a GN_E... code, e.g.
 * "malformed address"; 0 gives "success".  Any other code (positive
 * ones included) gives "unknown error".
 * Static storage; never NULL.  Thread: any.
 */
GN_API const char *gn_strerror(int code);

/*
 * gn_errname - the code's symbolic name without prefix, e.g. "EBADADDR",
 * for logs and JSON; 0 gives "OK".  Any other code (positive ones
 * included) gives "EUNKNOWN".  Thread: any.
 */
GN_API const char *gn_errname(int code);

/*
 * gn_error_from_errno - the GN_E... code that best says what errno value
 * err means (ECONNREFUSED -> GN_ECONNREFUSED, ...); GN_ESYS when no code
 * fits.  Thread: any.
 */
GN_API int gn_error_from_errno(int err);

/* ------------------------------------------------------------------------
 * Transports and protocols
 *
 * A transport is chosen by the scheme of an address: "tcp://" (or no
 * scheme), "udp://", "tls://", "unix:" (stream) and "unixgram:".
 */
typedef enum gn_transport {
    GN_TRANSPORT_NONE = 0,
    GN_TRANSPORT_TCP,
    GN_TRANSPORT_UDP,
    GN_TRANSPORT_TLS,
    GN_TRANSPORT_UNIX,
    GN_TRANSPORT_UNIXGRAM,
} gn_transport;

/*
 * gn_transport_name - "tcp", "udp", "tls", "unix", "unixgram"; "none" for
 * GN_TRANSPORT_NONE and "unknown" for values out of range.  Thread: any.
 */
GN_API const char *gn_transport_name(gn_transport transport);

/* IP protocols of the port registry.  GN_PROTO_ANY in a look-up matches
 * every protocol; in a registry entry it means IANA named none. */
typedef enum gn_proto {
    GN_PROTO_ANY = 0,
    GN_PROTO_TCP,
    GN_PROTO_UDP,
    GN_PROTO_SCTP,
    GN_PROTO_DCCP,
} gn_proto;

/*
 * gn_proto_name - "tcp", "udp", "sctp", "dccp"; "" for GN_PROTO_ANY and
 * "unknown" for values out of range.  Thread: any.
 */
GN_API const char *gn_proto_name(gn_proto proto);

/*
 * gn_proto_parse - the protocol named by name ("tcp", "UDP", ...), case
 * insensitive.  Returns 0 and sets *out, or GN_EINVAL for a NULL argument
 * or a name that is not one of the four.  Thread: any.
 */
GN_API int gn_proto_parse(const char *name, gn_proto *out);

/* ------------------------------------------------------------------------
 * Endpoints
 *
 * An endpoint is a value: a transport plus where to reach it.  It is one of
 *  - an IPv4 or IPv6 address (with scope for link-local) and a port,
 *  - a Unix domain socket path, or a Linux abstract name,
 *  - a host name and a port, still to be resolved (GN_FAMILY_NAME),
 *  - a port on every local address, for listeners (GN_FAMILY_ANY).
 * Text forms, strictly parsed:
 *     194.106.118.30:80      [2001:db8::1]:443      [fe80::1%lo]:80
 *     tcp://host:80   udp://host:53   tls://host:https   localhost:http
 *     unix:/run/app.sock     unix:@abstract-name     unixgram:/tmp/d.sock
 *     :8080  8080  tcp://:8080     (listen addresses only)
 * A port may be a registry service name, looked up for the transport's
 * protocol (udp for udp://, tcp otherwise).  In Unix paths, %XX stands for
 * the byte XX, so any path can be written and formatted back.
 * Endpoints are plain structs: copy them with =, compare them with
 * gn_endpoint_equal, read them with the accessors (the fields are
 * private and may change).
 */
typedef enum gn_family {
    GN_FAMILY_NONE = 0,
    GN_FAMILY_IPV4,
    GN_FAMILY_IPV6,
    GN_FAMILY_UNIX,
    GN_FAMILY_NAME, /* host name, needs gn_resolve */
    GN_FAMILY_ANY,  /* every local address (listen addresses) */
} gn_family;

/* Longest host name a DNS name can be (RFC 1035), without the final NUL. */
#define GN_HOST_MAX 253
/* Room for any endpoint's text from gn_endpoint_format, NUL included. */
#define GN_ENDPOINT_STRLEN 400
/* Longest address text gn_endpoint_parse looks at; longer is rejected. */
#define GN_ADDRESS_MAX 1024

typedef struct gn_endpoint {
    /* private: use the accessors below */
    gn_transport transport_;
    gn_family family_;
    socklen_t addrlen_;
    struct sockaddr_storage addr_;
    char host_[GN_HOST_MAX + 1];
    uint16_t port_;
    GN_RESERVED(4);
} gn_endpoint;

/* Flags for gn_endpoint_parse: an OR of these, passed as unsigned (as
 * every set of flags in this header is: a named enum of GN_<AREA>_<FLAG>
 * bits). */
typedef enum gn_parse_flags {
    /* A listen address: a bare port (":8080", "8080") means every local
     * address of the transport's family (GN_FAMILY_ANY). */
    GN_PARSE_LISTEN = 1u << 0,
} gn_parse_flags;

/*
 * gn_endpoint_parse - parse the address text (see above) into *out.
 * text is a NUL-terminated string and is only read.  flags: GN_PARSE_...
 * Host names are checked for form but not resolved; service names are
 * looked up in the built-in registry (no I/O).
 * Returns 0, or GN_EINVAL (text or out NULL, unknown flags),
 * GN_EBADADDR (malformed), GN_ENOSERVICE (unknown service name),
 * GN_ETOOLONG (host name, Unix path or the whole text too long).  An IPv6
 * scope names an interface that must exist here ("%lo"), or is a number.
 * On failure *out is left untouched and errbuf says why.  Thread: any.
 */
GN_API int gn_endpoint_parse(const char *text, unsigned flags, gn_endpoint *out, char *errbuf,
                             size_t errlen);

/*
 * gn_endpoint_parse_len - gn_endpoint_parse for text of exactly len bytes,
 * which need not be NUL-terminated; a NUL byte inside it is an error.
 * Never reads text[len] or beyond.  Same returns as gn_endpoint_parse.
 */
GN_API int gn_endpoint_parse_len(const char *text, size_t len, unsigned flags, gn_endpoint *out,
                                 char *errbuf, size_t errlen);

/*
 * gn_endpoint_format - write ep's canonical text into buf (len bytes,
 * always NUL-terminated when len > 0).  TCP endpoints carry no scheme,
 * the others do: "127.0.0.1:80", "[::1]:80", "udp://[::1]:53",
 * "unix:/tmp/s", "unix:@name", "tls://example.org:443", ":8080".
 * gn_endpoint_parse of the text gives back an equal endpoint.
 * Returns the text's length (without NUL), or GN_EINVAL (ep NULL or not
 * a valid endpoint, buf NULL with len > 0), GN_ENOSPC (buf too small:
 * buf holds a truncated text).  GN_ENDPOINT_STRLEN is always enough.
 * Thread: any.
 */
GN_API int gn_endpoint_format(const gn_endpoint *ep, char *buf, size_t len);

/*
 * gn_endpoint_equal - true when a and b are the same endpoint: same
 * transport, family, address (host names compare case-insensitively),
 * scope, port and path.  NULL equals only NULL.  Thread: any.
 */
GN_API bool gn_endpoint_equal(const gn_endpoint *a, const gn_endpoint *b);

/*
 * gn_endpoint_from_sockaddr - make an endpoint of transport from a socket
 * address (AF_INET, AF_INET6 or AF_UNIX, as accept or getpeername give
 * it).  An unnamed Unix socket (len == sizeof(sa_family_t)) gives an
 * endpoint with an empty path.
 * Returns 0, or GN_EINVAL (NULL argument, len too small for the family),
 * GN_EFAMILY (other families, or a transport that does not fit).
 * Thread: any.
 */
GN_API int gn_endpoint_from_sockaddr(const struct sockaddr *sa, socklen_t len,
                                     gn_transport transport, gn_endpoint *out);

/* Accessors.  Each takes a valid endpoint; NULL gives the zero answer. */

/* gn_endpoint_transport - the transport (GN_TRANSPORT_NONE for NULL). */
GN_API gn_transport gn_endpoint_transport(const gn_endpoint *ep);

/* gn_endpoint_family - what the endpoint holds (GN_FAMILY_NONE for NULL). */
GN_API gn_family gn_endpoint_family(const gn_endpoint *ep);

/* gn_endpoint_family_name - "ipv4", "ipv6", "unix", "name", "any",
 * "none" (also for out-of-range values).  Thread: any. */
GN_API const char *gn_endpoint_family_name(gn_family family);

/* gn_endpoint_port - the port, 0 for Unix endpoints and NULL. */
GN_API uint16_t gn_endpoint_port(const gn_endpoint *ep);

/*
 * gn_endpoint_host - the address without port or brackets into buf:
 * "194.106.118.30", "fe80::1%lo", "example.org"; "" for Unix and
 * GN_FAMILY_ANY endpoints.  Returns the length or GN_EINVAL / GN_ENOSPC
 * as gn_endpoint_format does.
 */
GN_API int gn_endpoint_host(const gn_endpoint *ep, char *buf, size_t len);

/*
 * gn_endpoint_path - a Unix endpoint's path, raw bytes, not escaped and not
 * NUL-terminated: *len receives its length.  For an abstract name the
 * returned bytes omit the leading NUL (see gn_endpoint_is_abstract).
 * Returns NULL (and *len = 0) for other families.  The pointer is into ep
 * and lives as long as ep does.
 */
GN_API const char *gn_endpoint_path(const gn_endpoint *ep, size_t *len);

/* gn_endpoint_is_abstract - true for a Linux abstract Unix name. */
GN_API bool gn_endpoint_is_abstract(const gn_endpoint *ep);

/* gn_endpoint_scope_id - an IPv6 endpoint's scope (interface index), else 0. */
GN_API uint32_t gn_endpoint_scope_id(const gn_endpoint *ep);

/* gn_endpoint_is_resolved - true when the endpoint is a socket address
 * (IPv4, IPv6, Unix), false for host names and GN_FAMILY_ANY. */
GN_API bool gn_endpoint_is_resolved(const gn_endpoint *ep);

/*
 * gn_endpoint_sockaddr - the socket address to hand to bind or connect,
 * and its length in *len.  NULL (and *len = 0) when the endpoint is not
 * resolved.  The pointer is into ep and lives as long as ep does.
 */
GN_API const struct sockaddr *gn_endpoint_sockaddr(const gn_endpoint *ep, socklen_t *len);

/*
 * gn_resolve - every socket address ep stands for, in the order the
 * system resolver prefers, without duplicates.  A resolved endpoint gives
 * itself; a host name is looked up with getaddrinfo; GN_FAMILY_ANY gives
 * the wildcard addresses the resolver offers for listening (usually
 * "0.0.0.0" and "[::]").  Writes at
 * most max endpoints to out and returns how many there are in all (may
 * be more than max, as with snprintf).
 * Blocks while the system resolver works (DNS may take seconds); the
 * event loop's asynchronous resolver calls this on a worker thread.
 * Errors: GN_EINVAL (ep NULL, or out NULL with max > 0), GN_ENONAME (no
 * such host), GN_ETEMPNAME (try again later), GN_ERESOLVE (other resolver
 * failures), GN_ENOMEM.  errbuf names the host and the reason.
 * Thread: any.
 */
GN_API int gn_resolve(const gn_endpoint *ep, gn_endpoint *out, size_t max, char *errbuf,
                      size_t errlen);

/* ------------------------------------------------------------------------
 * The port registry
 *
 * The IANA Service Name and Transport Protocol Port Number Registry,
 * compiled in: no file is read, /etc/services is not used.  Every row of
 * the registry is an entry, including unnamed ones ("Reserved",
 * "Unassigned") and ranges.  Entries live in static storage for the life
 * of the program and never change.  Look-ups by name or port are binary
 * searches.  Thread: any function, any thread.
 */
typedef struct gn_service {
    const char *name;        /* "http"; "" for unnamed rows */
    const char *description; /* "World Wide Web HTTP"; may be "" */
    uint16_t port_lo;        /* first port; 0 when has_port is false */
    uint16_t port_hi;        /* last port; == port_lo unless a range */
    bool has_port;           /* false for name-only (DNS-SD) rows */
    gn_proto proto;          /* GN_PROTO_ANY when IANA gives none */
} gn_service;

/*
 * gn_services_date - the date of the compiled-in registry, "YYYY-MM-DD".
 */
GN_API const char *gn_services_date(void);

/* gn_services_count - number of entries; gn_service_at(i) for i below it. */
GN_API size_t gn_services_count(void);

/* gn_service_at - entry i in registry order, or NULL when out of range. */
GN_API const gn_service *gn_service_at(size_t i);

/*
 * gn_services_by_name - the entries named name (case-insensitive) for
 * proto (GN_PROTO_ANY for all; entries without a protocol match any
 * proto), in registry order.  Writes at most max pointers to out and
 * returns how many match in all (0 when none).  GN_EINVAL for NULL name,
 * out NULL with max > 0, or a proto out of range.
 */
GN_API int gn_services_by_name(const char *name, gn_proto proto, const gn_service **out,
                               size_t max);

/*
 * gn_services_by_port - the entries whose port or range holds port, for
 * proto as in gn_services_by_name: named entries first, in registry order
 * (so the primary name comes first: 80/tcp gives http, www, www-http),
 * then unnamed ones ("Reserved"...).  Returns as gn_services_by_name;
 * GN_EINVAL also for port above 65535.
 */
GN_API int gn_services_by_port(unsigned port, gn_proto proto, const gn_service **out, size_t max);

/*
 * gn_services_search - named entries whose name or description contains
 * word (case-insensitive, ASCII), in registry order.  A linear scan, meant
 * for people looking things up.  Returns as gn_services_by_name; GN_EINVAL
 * for NULL or empty word.
 */
GN_API int gn_services_search(const char *word, gn_proto proto, const gn_service **out, size_t max);

/*
 * gn_service_port - the port of the service called name for proto: the
 * first entry in registry order with a single port, else the first port of
 * its first range ("x11" is 6000-6063: 6000).  Returns the port
 * (0-65535), GN_EINVAL (NULL name, proto out of range) or GN_ENOSERVICE.
 */
GN_API int gn_service_port(const char *name, gn_proto proto);

/* ------------------------------------------------------------------------
 * Logging
 *
 * The library never prints.  What no return code can carry (a server
 * shedding clients when out of descriptors, a peer over its input cap)
 * goes to one process-wide function, silent while none is set; messages
 * are formatted only when one is.
 */
typedef enum gn_log_level {
    GN_LOG_ERROR = 0,
    GN_LOG_WARN,
    GN_LOG_INFO,
    GN_LOG_DEBUG,
} gn_log_level;

typedef void (*gn_log_fn)(gn_log_level level, const char *message, void *arg);

/*
 * gn_log_set - send library messages up to max_level to fn(level, message,
 * arg); fn NULL turns logging off (the default).  message lives only for
 * the call.  fn may be called from any thread that runs a loop.
 * Thread: call before starting loops; not synchronised with them.
 */
GN_API void gn_log_set(gn_log_fn fn, gn_log_level max_level, void *arg);

/* ------------------------------------------------------------------------
 * A hostile network, for tests
 *
 * With faults on, gnezdo's socket calls misbehave as a real kernel may:
 * reads return fewer bytes than are waiting ("short"), writes take fewer
 * than offered ("short"), calls fail with EAGAIN ("eagain", a spurious
 * wake-up) or EINTR ("eintr", a signal), and connects complete up to
 * 50 ms late ("delay").  Handlers then see input cut at any byte and
 * on_drain at other moments: code that passes its tests under faults does
 * not rely on how the bytes happened to arrive on loopback.  Each thread
 * draws from its own generator seeded from the seed, so a run replays
 * with the same seed.  The environment variable GNEZDO_FAULTS, read when
 * the first loop starts or socket call runs, takes the same spec as
 * gn_faults_set.  See docs/testing.md.
 */

/*
 * gn_faults_set - inject faults as spec says: "seed:rate[:kinds]", seed a
 * decimal number below 2^64, rate the fraction of socket calls that
 * misbehave ("0.05", or "5%"), kinds a comma-separated list of short,
 * eagain, eintr, delay or all (the default).  NULL or "" turns faults off.
 * Overrides GNEZDO_FAULTS, even a malformed one.
 * Returns 0 or GN_EINVAL (spec malformed, errbuf says why; the faults in
 * force stay).  Thread: any; threads doing socket calls meanwhile pick
 * the new spec up at their next call.
 */
GN_API int gn_faults_set(const char *spec, char *errbuf, size_t errlen);

/*
 * gn_faults_injected - how many faults this process has injected so far,
 * all threads and kinds together: a test that asked for faults can check
 * it met some.  Thread: any.
 */
GN_API uint64_t gn_faults_injected(void);

/* ------------------------------------------------------------------------
 * The event loop
 *
 * One loop per thread runs everything asynchronous: sockets, timers,
 * posted tasks and name resolution (on a worker thread, so a slow DNS
 * answer never stalls the loop).  Every gn_ call on a loop's objects is
 * made on the loop's thread, except gn_loop_post and gn_loop_stop, which
 * any thread may call.  Callbacks run on the loop's thread, one at a time.
 */
typedef struct gn_loop gn_loop;
typedef struct gn_server gn_server;
typedef struct gn_conn gn_conn;

/*
 * gn_loop_new - create a loop with the best backend this system has:
 * io_uring where the kernel allows it, else epoll, else poll(2).  The
 * environment variable GN_BACKEND=uring|epoll|poll asks for one (see
 * gn_loop_new_backend); gn_loop_backend says which the loop took.
 * *out receives it; free it with gn_loop_free.
 * Returns 0, GN_EINVAL (out NULL, or GNEZDO_FAULTS malformed: logged at
 * GN_LOG_ERROR, see gn_faults_set), GN_ENOMEM, GN_EMFILE or GN_ESYS.
 */
GN_API int gn_loop_new(gn_loop **out);

/*
 * gn_loop_new_backend - create a loop on the backend named: "uring"
 * (io_uring), "epoll", "poll", or NULL for gn_loop_new's choice.  A
 * backend this system or build lacks is not an error: the loop falls back
 * (io_uring to epoll to poll) and gn_loop_backend says which it took.
 * *out receives the loop; free it with gn_loop_free.
 * Returns 0, GN_EINVAL (out NULL, a name not in the list, or GNEZDO_FAULTS
 * malformed), GN_ENOMEM, GN_EMFILE or GN_ESYS.
 */
GN_API int gn_loop_new_backend(gn_loop **out, const char *backend);

/*
 * gn_loop_run - run callbacks until nothing is left to wait for (no
 * server, connection, timer, posted task or resolution) or gn_loop_stop
 * is called.  Returns 0, GN_EINVAL (loop NULL, or the loop is already
 * running), or a backend failure code.  May be called again afterwards.
 */
GN_API int gn_loop_run(gn_loop *loop);

/*
 * gn_loop_stop - make gn_loop_run return after the callbacks under way;
 * if the loop is not running, the next gn_loop_run returns at once.
 * Nothing is closed.  Thread: any (async-signal-safe as well).
 */
GN_API void gn_loop_stop(gn_loop *loop);

/*
 * gn_loop_free - free the loop.  Connections still open are aborted,
 * servers closed, timers cancelled and watchers closed (descriptors stay
 * open; signal masks and dispositions are put back); on_close handlers
 * run first.  Waits for resolutions under way on worker threads.  NULL is
 * a no-op.  Must not be called while the loop runs; call it on the
 * loop's thread when it has signal watchers (the mask is per thread).
 */
GN_API void gn_loop_free(gn_loop *loop);

/*
 * gn_loop_now - the loop's monotonic clock in milliseconds, read once per
 * iteration (cheap to call often).  0 for NULL.
 */
GN_API uint64_t gn_loop_now(const gn_loop *loop);

/* gn_loop_backend - the backend's name, e.g. "epoll". */
GN_API const char *gn_loop_backend(const gn_loop *loop);

typedef void (*gn_task_fn)(gn_loop *loop, void *arg);

/*
 * gn_loop_post - run fn(loop, arg) on the loop's thread soon, once.
 * Tasks posted from one thread run in the order posted.  A posted task
 * keeps gn_loop_run running until it has run.  If the loop is freed
 * first, the task never runs.
 * Returns 0, GN_EINVAL (loop or fn NULL), GN_ENOMEM.  Thread: any.
 */
GN_API int gn_loop_post(gn_loop *loop, gn_task_fn fn, void *arg);

/* ------------------------------------------------------------------------
 * Timers
 *
 * Monotonic one-shot and repeating timers, named by an id: an id that
 * has fired (one-shot) or was cancelled is simply unknown afterwards, so
 * cancelling is always safe.  Timers due at the same time fire in the
 * order they were started.  A pending timer keeps gn_loop_run running.
 */
typedef void (*gn_timer_fn)(gn_loop *loop, uint64_t id, void *arg);

/*
 * gn_timer_start - call fn(loop, id, arg) after delay_ms, then every
 * repeat_ms if repeat_ms > 0.  *id receives the timer's id (never 0).
 * Returns 0, GN_EINVAL (loop, fn or id NULL), GN_ENOMEM.
 * Thread: the loop's.
 */
GN_API int gn_timer_start(gn_loop *loop, uint64_t delay_ms, uint64_t repeat_ms, gn_timer_fn fn,
                          void *arg, uint64_t *id);

/*
 * gn_timer_cancel - stop timer id; safe inside its own callback (a
 * repeating timer then stops repeating).  Returns 0, GN_EINVAL (loop
 * NULL) or GN_ENOTFOUND (no such timer: fired, cancelled or never was).
 * Thread: the loop's.
 */
GN_API int gn_timer_cancel(gn_loop *loop, uint64_t id);

/* ------------------------------------------------------------------------
 * Time limits
 *
 * Every timeout in this API, a call's timeout_ms and an option's *_ms
 * limit alike (idle_timeout_ms, connect_timeout_ms, handshake_timeout_ms,
 * gn_server_close's grace_ms), is a uint32_t read the same way:
 *
 *   GN_DEFAULT_TIMEOUT (0)   the default written beside it.  For a call
 *                            that moves data (gn_read, gn_read_message, gn_write_all,
 *                            gn_dgram_recv ...) that is no limit of its
 *                            own: only the connection's deadline and
 *                            idle timeout bound it;
 *   GN_NO_TIMEOUT            no limit: wait as long as it takes;
 *   GN_NO_WAIT               no time at all: a call does what it can
 *                            without waiting, then GN_ETIMEDOUT; a limit
 *                            ends as soon as it starts;
 *   anything else            that many milliseconds.
 *
 * A timeout covers a whole call, however many system calls it takes;
 * signals (EINTR) neither end nor extend it.  Deadlines are points on
 * gn_now_ms's clock.  Delays that are not limits (gn_timer_start,
 * fallback_delay_ms) are plain counts.
 */
#define GN_DEFAULT_TIMEOUT 0u
#define GN_NO_TIMEOUT      UINT32_MAX
#define GN_NO_WAIT         (UINT32_MAX - 1u)

/* gn_now_ms - milliseconds on the monotonic clock (CLOCK_MONOTONIC, the
 * clock of timers and deadlines), from an arbitrary start.  Thread: any. */
GN_API uint64_t gn_now_ms(void);

/* ------------------------------------------------------------------------
 * Descriptor watchers
 *
 * A watcher tells you when a descriptor the loop does not own becomes
 * readable or writable: standard input, a pipe, a terminal, an eventfd,
 * another library's socket (libuv's uv_poll_t, libevent's event_new).
 * The descriptor stays yours: the watcher never reads, writes or closes
 * it, so your callback does the reading (non-blocking, or one read per
 * call) and gn_watch_close comes before your close(2).  Readiness is
 * level-triggered: a descriptor still readable after the callback is
 * reported again on the next iteration.  A watcher watching something
 * keeps gn_loop_run running; a paused one does not.  gn_loop_free closes
 * the watchers still open.  The same on every backend.
 */
typedef struct gn_watch gn_watch;

typedef enum gn_watch_events {
    GN_WATCH_READABLE = 1u << 0, /* data to read, or the end of it */
    GN_WATCH_WRITABLE = 1u << 1, /* room to write */
} gn_watch_events;

/* events: what is ready, among those watched; an error or hang-up on the
 * descriptor is reported as every event watched, so the read or write
 * that follows finds out (0 bytes, EPIPE, ...). */
typedef void (*gn_watch_fn)(gn_watch *w, gn_socket fd, unsigned events, void *arg);

/*
 * gn_watch_start - call fn(w, fd, events, arg) on the loop's thread whenever
 * fd is ready for events (GN_WATCH_READABLE, GN_WATCH_WRITABLE or both).
 * *out receives the watcher.  fd may be blocking; the watcher changes none of
 * its flags.  Returns 0, GN_EINVAL (loop, fn or out NULL, fd negative or
 * not open, events 0 or unknown bits), GN_EEXIST (a watcher of this loop
 * already watches fd: one per descriptor), GN_ENOTSUP (a regular file or
 * directory, always ready, or another file the kernel cannot poll, such
 * as /dev/null under epoll: read it directly), GN_ENOMEM.  A descriptor a
 * connection, server or datagram socket of the same loop owns must not
 * be watched.  Thread: the loop's.
 */
GN_API int gn_watch_start(gn_loop *loop, gn_socket fd, unsigned events, gn_watch_fn fn, void *arg,
                          gn_watch **out);

/*
 * gn_watch_set_events - watch for events (GN_WATCH_READABLE,
 * GN_WATCH_WRITABLE or both) from now on; on a paused watcher, from
 * gn_watch_resume on.
 * Returns 0, GN_EINVAL (w NULL or closed; events 0 or unknown bits).
 * Thread: the loop's; safe in the watcher's own callback.
 */
GN_API int gn_watch_set_events(gn_watch *w, unsigned events);

/*
 * gn_watch_pause - stop reporting until gn_watch_resume (back-pressure:
 * pause standard input while the connection's output is full, resume in
 * on_drain).  Idempotent.  gn_watch_resume - report again the events set.
 * Return 0 or GN_EINVAL (w NULL or closed).  Thread: the loop's; safe in
 * the watcher's own callback.
 */
GN_API int gn_watch_pause(gn_watch *w);
GN_API int gn_watch_resume(gn_watch *w);

/* gn_watch_is_paused - whether w is paused (false for NULL). */
GN_API bool gn_watch_is_paused(const gn_watch *w);

/*
 * gn_watch_close - stop watching and free w (after the current batch of
 * events, so it is safe inside w's own callback: no call follows).  The
 * descriptor is not closed.  Returns 0 or GN_EINVAL (w NULL or already
 * closed).  Thread: the loop's.
 */
GN_API int gn_watch_close(gn_watch *w);

/* ------------------------------------------------------------------------
 * Signal watchers
 *
 * Signals delivered on the loop, as ordinary callbacks (signalfd(2)): no
 * async-signal-safety rules in the callback, no sigaction block of your
 * own.  Several watchers may watch one signal, on one loop or on several;
 * each on the loop that receives it is called, in the order they were
 * added.  Standard signals do not queue: several arriving before the
 * loop reads them are reported once.  A signal watcher alone does not
 * keep gn_loop_run running (a server that stops on SIGTERM need not
 * close it first); it waits alongside the loop's other work.
 * gn_loop_free closes the signal watchers still open.
 *
 * What the library does to the process, and what holds with threads:
 *  - The signal is blocked (pthread_sigmask) in the thread that calls
 *    gn_signal_start, which must be the thread that runs the loop, and
 *    threads it starts afterwards inherit the block.
 *  - While a signal has a watcher anywhere in the process, its
 *    disposition (sigaction) is the library's: a signal that lands on a
 *    thread that does not block it (one started before, or another
 *    library's) is forwarded to a thread whose loop watches it, so it is
 *    never lost to the default action.  Block the signal in your other
 *    threads anyway and nothing is forwarded.
 *  - A signal sent to the process (kill, a terminal's ^C) reaches one
 *    loop that watches it, whichever reads it first; one sent to a
 *    thread (pthread_kill) reaches that thread's loop.  To tell every
 *    loop, watch on one and gn_loop_post to the others.
 *  - When the last watcher of a signal on a loop closes, the signal is
 *    unblocked in that thread again unless it was blocked before; when
 *    the last in the process closes, the disposition it had before the
 *    first is restored (a change you made in between is overwritten).
 *    A signal that arrived but was not yet read then meets that
 *    disposition.
 *  - SIGKILL and SIGSTOP cannot be watched; SIGSEGV, SIGBUS, SIGFPE and
 *    SIGILL raised by a fault cannot be blocked and are not watchable.
 *  - A child made by fork inherits the blocked mask, and a program it
 *    execs keeps it: unblock the signals in the child before exec
 *    (posix_spawnattr_setsigmask), or the program cannot be stopped by
 *    them.
 */
typedef struct gn_signal gn_signal;

typedef void (*gn_signal_fn)(gn_signal *s, int signum, void *arg);

/*
 * gn_signal_start - call fn(s, signum, arg) on the loop's thread each
 * time signum arrives (see above).  *out receives the watcher.
 * Returns 0, GN_EINVAL (loop, fn or out NULL; signum not a signal
 * number, one glibc keeps for its threads (32, 33), or SIGKILL, SIGSTOP,
 * SIGSEGV, SIGBUS, SIGFPE, SIGILL), GN_EMFILE, GN_ENOMEM.  Thread: the loop's (the one that runs
 * it).
 */
GN_API int gn_signal_start(gn_loop *loop, int signum, gn_signal_fn fn, void *arg, gn_signal **out);

/*
 * gn_signal_close - stop watching and free s (after the current batch of
 * events, so it is safe inside s's own callback: no call follows).  The
 * last watcher of a signal restores the mask and disposition, as above.
 * Returns 0 or GN_EINVAL (s NULL or already closed).  Thread: the loop's.
 */
GN_API int gn_signal_close(gn_signal *s);

/* ------------------------------------------------------------------------
 * Handlers and options of connections and servers
 *
 * A connection's events.  Every member may be NULL.  Handlers run on the
 * loop's thread and may call any gn_ function, including gn_close,
 * gn_abort and gn_server_close on their own connection or server.
 */
typedef struct gn_handlers {
    /* Server side: a client connected; conn is new, with both endpoints. */
    void (*on_accept)(gn_conn *conn);
    /* Client side: the connection is established. */
    void (*on_connect)(gn_conn *conn);
    /* Bytes arrived: data holds every byte not consumed so far.  Return
     * how many were consumed (0..len); the rest is offered again with
     * more.  A frame split over many reads is never the handler's problem.
     * data is valid only during the call. */
    size_t (*on_data)(gn_conn *conn, const char *data, size_t len);
    /* The output queue fell to the low watermark after being above it. */
    void (*on_drain)(gn_conn *conn);
    /* The peer finished sending (FIN).  When NULL, the connection closes
     * after flushing; when set, it stays open for sending until gn_close.
     * No byte arrives after it, but bytes on_data left unconsumed before
     * it are offered to on_data again by gn_resume_reading. */
    void (*on_end)(gn_conn *conn);
    /* The connection failed: code says how and message names what, e.g.
     * "connect to 127.0.0.1:9: connection refused".  Runs just before
     * on_close, at most once. */
    void (*on_error)(gn_conn *conn, int code, const char *message);
    /* Exactly once per connection, last: reason is 0 for an orderly close
     * (either side) and a GN_E... code otherwise.  conn is freed when this
     * returns. */
    void (*on_close)(gn_conn *conn, int reason);
    /* A framed connection (gn_options.framing, gn_conn_set_framing) got
     * a whole message: a line without its delimiter, an exact count, a
     * payload without its length prefix.  msg points into the input
     * (no copy) and is valid only during the call.  While a framing is
     * set, on_data is not called; NULL drops the messages. */
    void (*on_message)(gn_conn *conn, const char *msg, size_t len);
    /* A reconnecting client (gn_options.reconnect) makes attempt number
     * `attempt` (1, 2, ... since it was last connected) on conn, a new
     * connection with these handlers and the user data of the one that
     * ended, in delay_ms; last_error is how that one ended (0: orderly).
     * Runs after the old connection's on_close.  gn_close(conn) here (or
     * any time before it connects) stops the retrying. */
    void (*on_reconnect)(gn_conn *conn, unsigned attempt, uint32_t delay_ms, int last_error);
    GN_RESERVED_HANDLERS(7);
} gn_handlers;

/*
 * Framing: how a connection cuts its input into messages for on_message
 * (and for gn_read_message in blocking mode), so that no handler loops
 * over partial frames.  A value; {0} means no framing.
 *  - GN_FRAMING_LINE: bytes up to a delimiter ("\n" unless set), which
 *    is dropped with one "\r" before a "\n" (keep_delimiter keeps both).
 *  - GN_FRAMING_FIXED: exactly `size` bytes each.
 *  - GN_FRAMING_LENGTH: a prefix_bytes-long unsigned length, big-endian
 *    unless prefix_little_endian, then that many bytes (the payload,
 *    delivered without the prefix).  With length_counts_prefix the
 *    length counts its own bytes too.
 * A line longer than max_message, or a length announcing more, is
 * refused as soon as it shows: every message before it has been
 * delivered; on an event-driven connection on_error then gets
 * GN_EMSGSIZE and a message such as "127.0.0.1:5000: message of
 * 2000000 bytes exceeds max_message 1048576", and the connection closes
 * after flushing what was sent before (on_close's reason GN_EMSGSIZE).
 */
typedef enum gn_framing_kind {
    GN_FRAMING_NONE = 0, /* raw bytes to on_data */
    GN_FRAMING_LINE,
    GN_FRAMING_FIXED,
    GN_FRAMING_LENGTH,
} gn_framing_kind;

typedef struct gn_framing {
    gn_framing_kind kind;
    size_t max_message;        /* longest message (a line without its
                                  delimiter, a payload without its prefix);
                                  0 = max_input (1 MiB).  Not used by
                                  GN_FRAMING_FIXED, whose size is the limit */
    size_t size;               /* FIXED: bytes per message, >= 1 */
    unsigned prefix_bytes;     /* LENGTH: 1, 2, 4 or 8; 0 = 4 */
    bool prefix_little_endian; /* LENGTH: the length is little-endian */
    bool length_counts_prefix; /* LENGTH: the length includes the prefix */
    bool keep_delimiter;       /* LINE: deliver the delimiter (and "\r") too */
    char delimiter[8];         /* LINE: 1 to 7 bytes, NUL-terminated;
                                  "" = "\n" */
    GN_RESERVED(2);
} gn_framing;

/* TLS settings (OpenSSL 3), for tls:// addresses.  Strings are read when
 * the server or client is made, not kept. */
typedef struct gn_tls_options {
    const char *cert_file;         /* PEM certificate chain: a server's own
                                      (required), or a client certificate */
    const char *key_file;          /* its private key, PEM */
    const char *ca_file;           /* PEM CA certificates to verify the peer with,
                                      instead of the system's trust store */
    const char *server_name;       /* client: the name sent (SNI) and verified;
                                      default: the host of the address */
    const char *alpn;              /* protocols, comma-separated, most wanted
                                      first ("h2,http/1.1"): a client offers
                                      them, a server picks the first it shares */
    bool verify_client;            /* server: require a client certificate signed
                                      by a CA of ca_file */
    bool insecure;                 /* client: accept any certificate and name.
                                      Defeats TLS against an active attacker;
                                      logged as a warning for every connection */
    uint32_t handshake_timeout_ms; /* 10000; GN_NO_TIMEOUT for none */
    const char *ciphers;           /* the TLS 1.2 suites allowed, an OpenSSL cipher
                                      list ("ECDHE-RSA-AES128-SHA:..."); NULL: only
                                      forward-secret AEAD suites (Mozilla's
                                      "intermediate": ECDHE or DHE with AES-GCM or
                                      ChaCha20-Poly1305).  A server picks by its
                                      own order.  TLS 1.3's suites are not
                                      affected.  A list naming no suite
                                      OpenSSL knows: GN_EINVAL, errbuf names it */
    GN_RESERVED(5);
} gn_tls_options;

/* Options of a server (for each of its connections) or a client.  A field
 * left 0 takes the default shown, so {0} or NULL means all defaults; the
 * *_ms limits take GN_NO_TIMEOUT and GN_NO_WAIT too (see Time limits). */
typedef struct gn_options {
    int backlog;                      /* listen backlog; SOMAXCONN (the kernel
                                         caps it at net.core.somaxconn) */
    size_t max_conns;                 /* server: live connections; 10000.  Past it
                                         new clients are accepted and closed. */
    uint32_t idle_timeout_ms;         /* close after this long with no I/O;
                                         server 300000 (5 min), client none;
                                         GN_NO_TIMEOUT for none */
    uint32_t connect_timeout_ms;      /* client: whole connect, resolution
                                        included; 10000; GN_NO_TIMEOUT for none */
    size_t max_input;                 /* unconsumed input kept; 1 MiB.  Past it
                                         the connection fails with GN_EMSGSIZE. */
    size_t max_output;                /* queued output; 16 MiB.  gn_send past it
                                         fails with GN_ENOBUFS, queueing nothing. */
    size_t high_watermark;            /* output above this is "full"; 1 MiB */
    size_t low_watermark;             /* on_drain when output falls to this; 64 KiB */
    bool pause_reading_when_full;     /* stop reading while output is full, so
                                       an echo or proxy costs bounded memory
                                       against a peer that never reads */
    bool nagle;                       /* keep Nagle's algorithm (TCP_NODELAY off) */
    uint32_t keepalive_s;             /* TCP keep-alive: idle seconds before
                                         probes; 0 = off */
    uint32_t keepalive_interval_s;    /* between probes; 0 = system's */
    uint32_t keepalive_count;         /* probes before giving up; 0 = system's */
    bool ipv6_only;                   /* a listener on "[::]" serves IPv6 only
                                         (default: IPv4 too, dual stack) */
    uint32_t unix_mode;               /* permissions of a Unix socket file,
                                         e.g. 0660; 0 = as the umask makes them */
    const struct gn_tls_options *tls; /* for tls:// addresses; read by
                                   gn_listen, gn_connect, gn_dial and
                                   gn_serve_threads, not kept */
    void *user_data;                  /* initial user data of each connection */
    uint32_t fallback_delay_ms;       /* client: RFC 8305's "Connection Attempt
                                         Delay", the wait before the next address
                                         is tried while earlier attempts are
                                         pending (Go's FallbackDelay); 250 */
    gn_framing framing;               /* deliver whole messages to on_message
                                         (see gn_framing); {0}: bytes to on_data.
                                         max_input grows to hold the longest
                                         message with its framing bytes */
    size_t loops;                     /* gn_listen: serve on this many loops, the
                                         server's own and loops-1 threads it starts
                                         (up to 256); 0 or 1: the server's loop
                                         alone.  See "Servers on several loops" */
    const char *proxy;                /* client: reach the target through this
                                         proxy: "socks5://[user:pass@]host[:port]"
                                         (the name resolved here),
                                         "socks5h://..." (by the proxy) or
                                         "http://..." (CONNECT); port 1080; user
                                         and pass percent-decoded.  Read when the
                                         client is made, not kept; NULL = direct.
                                         See docs/transports.md, Proxies */
    const struct gn_backoff *reconnect; /* client (gn_connect): reconnect after a
                                         failed connect or a lost connection, as
                                         it says (see Reconnecting clients); read
                                         by gn_connect, not kept.  NULL: never.
                                         Ignored by servers and gn_dial */
    uint64_t read_rate_limit;           /* bytes per second read from each
                                           connection (see Rate limits); 0: none */
    uint64_t write_rate_limit;          /* bytes per second written to each
                                           connection; 0: none */
    GN_RESERVED(3);
} gn_options;

/* ------------------------------------------------------------------------
 * Server sockets
 *
 * A server listens on one address (all addresses a host name resolves
 * to; for a bare port, every local address, IPv6 and IPv4) and, for
 * every client that connects, creates a gn_conn, gives it the server's
 * handlers and options and calls on_accept.  The server keeps the list
 * of its live connections.
 */

/*
 * gn_listen - listen on address ("tcp://0.0.0.0:7000", "[::1]:http",
 * ":8080") with handlers (copied) and opts (copied; NULL for defaults).
 * *out receives the server.  Names are resolved here, blocking.
 * Returns 0, GN_EINVAL (NULL loop, address, handlers or out), the parse
 * errors of gn_endpoint_parse, GN_EFAMILY (transport not supported yet),
 * GN_EADDRINUSE, GN_EACCES, GN_EADDRNOTAVAIL, GN_EMFILE, GN_ENOMEM, or a
 * resolution error.  errbuf says which address failed and why.
 * Thread: the loop's.
 */
GN_API int gn_listen(gn_loop *loop, const char *address, const gn_handlers *handlers,
                     const gn_options *opts, gn_server **out, char *errbuf, size_t errlen);

/*
 * gn_server_close - stop accepting, close every connection gracefully
 * (gn_close: flush, then close) and abort those still open after
 * grace_ms (GN_DEFAULT_TIMEOUT and GN_NO_WAIT: no grace, abort at once;
 * GN_NO_TIMEOUT: as long as they take).  The server is freed once its
 * last connection is gone:
 * until the last on_close has returned, gn_conn_server still gives it
 * and the gn_server_ accessors still work (gn_server_foreach visits the
 * connections not yet closed); after that the pointer is gone.  A
 * threaded server (gn_serve_threads) is freed before this returns.
 * Idempotent in effect; NULL is a no-op.  Thread: the loop's; safe in any
 * callback.
 */
GN_API void gn_server_close(gn_server *srv, uint32_t grace_ms);

/* gn_server_conn_count - live connections of srv (0 for NULL). */
GN_API size_t gn_server_conn_count(const gn_server *srv);

/*
 * gn_server_foreach - call fn(conn, arg) for each live connection of srv,
 * oldest first; fn may close or send on any connection.  Returns how
 * many were visited, or GN_EINVAL.
 */
typedef void (*gn_visit_fn)(gn_conn *conn, void *arg);
GN_API int gn_server_foreach(gn_server *srv, gn_visit_fn fn, void *arg);

/*
 * gn_server_get_endpoint - the i-th listening address (from 0), with the
 * actual port when 0 was asked for.  Returns 0, GN_EINVAL or GN_ENOTFOUND
 * (i past the last).
 */
GN_API int gn_server_get_endpoint(const gn_server *srv, size_t i, gn_endpoint *out);

/* gn_server_loop / gn_server_user_data / gn_server_set_user_data. */
GN_API gn_loop *gn_server_loop(const gn_server *srv);
GN_API void *gn_server_user_data(const gn_server *srv);
GN_API void gn_server_set_user_data(gn_server *srv, void *data);

/*
 * Servers on several loops: gn_options.loops = N > 1 makes gn_listen's
 * loop the server's loop 0 and starts N-1 more loops, each on a thread
 * the server owns.  Loop 0 accepts every client and hands it to the loop
 * serving the fewest connections (itself included); that loop runs all
 * of the connection's handlers, on its thread, so handlers must guard
 * data they share.  TCP, Unix and TLS addresses alike; per-connection
 * options (limits, idle timeout, TLS) are as with one loop; max_conns
 * counts the whole server.  gn_conn_loop gives a connection's loop,
 * gn_server_loop loop 0.
 * Threads: gn_server_close, gn_server_conn_count and gn_server_foreach
 * may be called on loop 0's thread or in any handler of the server.
 * gn_server_foreach stops the server's other loops between two batches
 * of events while fn runs on the calling thread, so fn may send on or
 * close any connection as with one loop (a broadcast stalls every loop
 * for its length); it waits for each loop to reach that point, loop 0
 * too, which must therefore be running (gn_loop_run) or be the caller.
 * gn_server_close stops accepting at once (from another loop's handler:
 * as soon as loop 0 runs), closes each loop's connections on that loop's
 * thread with the same grace, and once every connection is gone joins
 * the threads and frees their loops; gn_loop_run(loop 0) keeps running
 * until then.  gn_loop_free(loop 0) aborts every connection and joins
 * the threads before it returns.
 */

/* ------------------------------------------------------------------------
 * Client sockets
 */

/*
 * gn_connect - connect to address ("example.org:http", "[::1]:7000")
 * asynchronously: resolution on a worker thread, then each resolved
 * address in turn (IPv6 and IPv4 interleaved, a new attempt started
 * every fallback_delay_ms, 250 by default, while earlier ones are
 * pending, as RFC 8305 "Happy Eyeballs" suggests), all within
 * connect_timeout_ms.  on_connect fires
 * on success; otherwise on_error and on_close carry GN_ECONNREFUSED,
 * GN_ETIMEDOUT, GN_EUNREACH, GN_ENONAME, ...  *out receives the
 * connection at once (it may be closed before it connects).
 * With opts->proxy the attempts go to the proxy, then its handshake runs
 * (within the same connect_timeout_ms) and TLS, for a tls:// address,
 * starts through the tunnel with the address's name; what the proxy
 * refuses comes as GN_EPROXY or the code a direct connect would give
 * (GN_ECONNREFUSED: "SOCKS5: connection refused by the proxy's target").
 * Returns 0 (events follow) or, with no event ever firing: GN_EINVAL
 * (also a bad proxy URL, or a Unix address with a proxy), the parse
 * errors of gn_endpoint_parse, GN_EFAMILY, GN_ENOMEM.
 * Thread: the loop's.
 */
GN_API int gn_connect(gn_loop *loop, const char *address, const gn_handlers *handlers,
                      const gn_options *opts, gn_conn **out, char *errbuf, size_t errlen);

/* ------------------------------------------------------------------------
 * Reconnecting clients
 *
 * With gn_options.reconnect set, a client that fails to connect, or whose
 * connection ends for any reason but your own gn_close, gn_shutdown or
 * gn_abort, connects again after a pause that grows with each failure, as
 * gRPC's connection backoff does: the n-th consecutive failure waits
 * min(initial_ms * multiplier^(n-1), max_ms), spread at random by
 * +-jitter of itself, counted from the start of the failed attempt.  A
 * connection that stayed up for initial_ms resets the backoff: its loss
 * is retried at once.  Each attempt is a new gn_conn with the same
 * handlers and user data (a connection's life stays one connection: its
 * buffers, counters and on_close are its own, and output queued on a lost
 * connection is not replayed to the next); on_reconnect announces it.
 * Each attempt may take connect_timeout_ms when set, else the larger of
 * 20 s (gRPC's MIN_CONNECT_TIMEOUT) and the current backoff.
 * Stop with gn_close (or gn_abort) on the current connection, in any
 * handler; gn_loop_free stops it too.
 */
typedef struct gn_backoff {
    uint32_t initial_ms;   /* the first pause; 1000 */
    uint32_t max_ms;       /* the longest pause; 120000 */
    double multiplier;     /* growth per failure, >= 1; 1.6 */
    double jitter;         /* random spread, 0..1 of the pause; 0.2;
                              GN_BACKOFF_NO_JITTER for none */
    uint32_t max_attempts; /* consecutive failed connects before giving
                              up (the last on_close is final); 0: never */
    GN_RESERVED(4);
} gn_backoff;

#define GN_BACKOFF_NO_JITTER (-1.0)

/*
 * gn_conn_is_reconnecting - true when conn is a reconnecting client's
 * connection that has ended (in on_error and on_close) and another
 * attempt will follow (on_reconnect); false otherwise, NULL included.
 * Thread: conn's loop.
 */
GN_API bool gn_conn_is_reconnecting(const gn_conn *conn);

/*
 * gn_backoff_delay_ms - the pause before the attempt after `failures`
 * consecutive failures (>= 1) under b (NULL: the defaults), without
 * jitter when random is 0.5, and at its extremes for random 0 and 1 (the
 * rule above; for tests and for programs that retry on their own).
 * Returns the milliseconds, or 0 for failures 0.  Thread: any.
 */
GN_API uint32_t gn_backoff_delay_ms(const gn_backoff *b, unsigned failures, double random);

/* ------------------------------------------------------------------------
 * Connections
 *
 * Created by a server (on_accept) or gn_connect, freed by the library
 * right after on_close returns.  All calls below are for the loop's thread
 * and are safe inside any callback, the connection's own included.
 */

/*
 * gn_send - send len bytes of buf.  Writes at once when nothing is
 * queued and copies what the socket did not take; buf stays the caller's.
 * Returns 0, GN_EINVAL (conn NULL, buf NULL with len > 0), GN_ECLOSED
 * (close, shutdown or abort already requested, or connection ended),
 * GN_ENOBUFS (over max_output: nothing was queued).
 */
GN_API int gn_send(gn_conn *conn, const void *buf, size_t len);

/*
 * gn_send_file - send len bytes of file descriptor fd from offset with
 * sendfile(2), after what is already queued.  fd stays the caller's and
 * must stay open until on_drain or on_close.  Returns as gn_send, and
 * GN_EINVAL for a negative fd or offset.
 * Blocking mode: sends all len bytes before returning, within the
 * connection's write deadline and idle_timeout_ms; returns 0,
 * GN_ETIMEDOUT, GN_EEOF (the file ended first), GN_EPIPE, GN_ECONNRESET
 * or GN_ECLOSED.
 */
GN_API int gn_send_file(gn_conn *conn, int fd, int64_t offset, uint64_t len);

/*
 * gn_close - flush what is queued, then close.  on_close follows (from
 * the loop, never inside this call).  Idempotent; returns 0 or GN_EINVAL.
 * Blocking mode: writes are already flushed, so the socket closes at
 * once.  A connection from gn_dial is freed, as fclose frees a FILE: call
 * it exactly once.  A threaded server's connection is freed by the server
 * when the handler returns; gn_close there only ends the connection.
 */
GN_API int gn_close(gn_conn *conn);

/*
 * gn_shutdown - half-close: send FIN once the queue is flushed, keep
 * reading until the peer closes.  Idempotent; 0 or GN_EINVAL.
 */
GN_API int gn_shutdown(gn_conn *conn);

/*
 * gn_abort - close at once, discarding queued output; the peer sees a
 * reset (RST).  on_close follows with reason 0, as the user asked for it.
 * Idempotent; 0 or GN_EINVAL.  Blocking mode: as gn_close, with a reset.
 */
GN_API int gn_abort(gn_conn *conn);

/* gn_pause_reading / gn_resume_reading - stop and restart reading from
 * the socket (data already buffered is not offered until resumed).
 * 0, GN_EINVAL, or GN_EMODE on a blocking connection. */
GN_API int gn_pause_reading(gn_conn *conn);
GN_API int gn_resume_reading(gn_conn *conn);

/* gn_conn_set_handlers - replace conn's handlers (copied: a server's
 * connection shares the server's until it gets its own here); GN_ENOMEM,
 * or GN_EMODE on a blocking connection, which has no events. */
GN_API int gn_conn_set_handlers(gn_conn *conn, const gn_handlers *handlers);

/*
 * gn_conn_set_framing - cut conn's input into messages for on_message
 * as framing says (copied), from the next unconsumed byte on; NULL (or
 * kind GN_FRAMING_NONE) gives raw bytes to on_data again.  Safe inside
 * on_data and on_message: the bytes after the current message are cut
 * the new way, so a protocol can read a header line and then a body of
 * a fixed size, or switch to raw bytes.  Messages are delivered while
 * the connection is open and reading: after gn_close, or while reading
 * is paused (gn_pause_reading, or pause_reading_when_full with the
 * output full), they wait in the input buffer and come on resume.
 * Bytes of a message the peer's end cut short are not delivered
 * (gn_conn_get_stats counts them as buffered).  The connection's
 * max_input grows to hold the longest message with its framing bytes.
 * Returns 0, GN_EINVAL (conn NULL; kind out of range, FIXED size 0,
 * prefix_bytes not 1, 2, 4 or 8, a delimiter of 8 bytes or more),
 * GN_ENOMEM, or GN_EMODE on a blocking connection (gn_read_message takes
 * the framing with each call).  Thread: conn's loop.
 */
GN_API int gn_conn_set_framing(gn_conn *conn, const gn_framing *framing);

GN_API void *gn_conn_user_data(const gn_conn *conn);
GN_API void gn_conn_set_user_data(gn_conn *conn, void *data);

/* gn_conn_local / gn_conn_remote - the endpoints (NULL until connected).
 * The remote one is kept from the connect or accept.  The local one is
 * asked of the socket on the first call (so a server's connections carry
 * no copy of it): after the connection closed it is NULL unless it was
 * asked for before.  The endpoints stay valid as long as conn; NULL also
 * when out of memory.  Thread: conn's. */
GN_API const gn_endpoint *gn_conn_local(const gn_conn *conn);
GN_API const gn_endpoint *gn_conn_remote(const gn_conn *conn);

/* gn_conn_server - the server that accepted conn; NULL for clients. */
GN_API gn_server *gn_conn_server(const gn_conn *conn);
/* gn_conn_loop - the loop of an asynchronous connection; NULL in
 * blocking mode. */
GN_API gn_loop *gn_conn_loop(const gn_conn *conn);
/* gn_conn_is_blocking - true for connections of gn_dial and of threaded
 * servers, which take the blocking calls below. */
GN_API bool gn_conn_is_blocking(const gn_conn *conn);

/* The process on the other end of a Unix domain socket, as the kernel
 * recorded it when the connection was made. */
typedef struct gn_peer_cred {
    int64_t pid;
    uint32_t uid, gid;
    GN_RESERVED(2);
} gn_peer_cred;

/* gn_conn_get_peer_cred - the peer's credentials of a Unix socket connection
 * (SO_PEERCRED).  0, GN_EINVAL, GN_EFAMILY (not a Unix socket),
 * GN_ECLOSED. */
GN_API int gn_conn_get_peer_cred(const gn_conn *conn, gn_peer_cred *out);

/* ------------------------------------------------------------------------
 * Your own I/O layer
 *
 * Every stream connection moves its bytes through I/O operations: plain
 * for TCP and Unix sockets, TLS for tls://.  (The word "transport" is kept
 * for what an address's scheme names: gn_transport.)  A program can bring
 * its own (a
 * framing or obfuscation layer, a test double over a socketpair) and
 * hand gnezdo a connected descriptor to drive with it: the connection
 * then has the same events, buffers, back-pressure, limits and close
 * semantics as any other.  The descriptor is non-blocking; each function
 * returns what the system call would, as a GN_E code: a count, 0 at the
 * end of the stream (read), GN_EAGAIN when the socket is not ready, or
 * another negative code, which fails the connection.
 */
typedef struct gn_io_ops {
    const char *name;
    ssize_t (*read)(gn_conn *conn, gn_socket fd, void *buf, size_t len);
    ssize_t (*writev)(gn_conn *conn, gn_socket fd, const struct iovec *iov, int iovcnt);
    int (*shutdown)(gn_conn *conn, gn_socket fd); /* half-close (FIN); may be NULL */
    GN_RESERVED_HANDLERS(4);
} gn_io_ops;

/*
 * gn_conn_adopt - make an asynchronous connection of fd, a connected
 * stream socket (TCP or Unix), driven through ops (NULL: plain reads and
 * writes).  fd becomes the connection's, even on failure.  on_connect
 * fires from the loop, never inside this call.  ops must outlive the
 * connection.  Returns 0, GN_ENOMEM or GN_EINVAL: loop, handlers or out
 * NULL, fd negative, ops without read or writev, or fd no connected
 * stream socket (a pipe, a file, a directory, a datagram or a listening
 * socket: refused at once, and the log, gn_log_set, says which).
 * Thread: the loop's.
 */
GN_API int gn_conn_adopt(gn_loop *loop, gn_socket fd, const gn_io_ops *ops, const gn_handlers *handlers,
                         const gn_options *opts, gn_conn **out);

/*
 * gn_conn_pair - two connections joined by a Unix socketpair, each with
 * its handlers (a and b), both driven through ops (NULL: plain): an
 * in-memory client and server for tests and for plumbing inside a
 * program.  Returns as gn_conn_adopt, or GN_EMFILE.
 */
GN_API int gn_conn_pair(gn_loop *loop, const gn_io_ops *ops, const gn_handlers *a,
                        const gn_handlers *b, const gn_options *opts, gn_conn **out_a,
                        gn_conn **out_b);

/* What a TLS connection agreed on. */
typedef struct gn_tls_info {
    char version[16]; /* "TLSv1.3" */
    char cipher[64];  /* "TLS_AES_256_GCM_SHA384" */
    char alpn[64];    /* the protocol chosen by ALPN, "" if none */
    char peer[256];   /* the peer certificate's subject, "" if none */
    bool resumed;     /* the session was resumed */
    GN_RESERVED(4);
} gn_tls_info;

/* gn_conn_get_tls_info - what conn's TLS handshake agreed on.  0, GN_EINVAL,
 * GN_EFAMILY (not a TLS connection), GN_ECLOSED (not established). */
GN_API int gn_conn_get_tls_info(const gn_conn *conn, gn_tls_info *out);

/* gn_conn_is_open - connected and no close, shutdown or abort asked. */
GN_API bool gn_conn_is_open(const gn_conn *conn);

typedef struct gn_conn_stats {
    uint64_t bytes_in, bytes_out; /* payload bytes read and written */
    uint64_t reads, writes;       /* successful read and write syscalls */
    size_t queued;                /* bytes waiting in the output queue */
    size_t buffered;              /* unconsumed input bytes */
    GN_RESERVED(4);
} gn_conn_stats;

/* gn_conn_stats - counters of conn into *out.  0 or GN_EINVAL. */
GN_API int gn_conn_get_stats(const gn_conn *conn, gn_conn_stats *out);

/* ------------------------------------------------------------------------
 * Rate limits
 *
 * A connection's reading and writing may be held to a rate, in bytes per
 * second of payload (TLS records and headers are not counted), by a
 * token bucket: up to `burst` bytes may move at once, and the bucket
 * refills at the rate.  So over any time t a direction moves at most
 * rate * t + burst bytes.  Throttled reading stops reading the socket
 * (as gn_pause_reading does) until tokens come back, so the kernel's
 * buffers fill and the peer's sending backs up: nothing is buffered on
 * its behalf.  Throttled writing leaves output in the queue, where
 * high_watermark, on_drain and max_output apply as ever.  A group (as
 * libevent's rate-limit groups) holds several connections of one loop to
 * one shared rate as well as their own.  With a completion backend
 * (io_uring) bytes already received when the bucket empties are still
 * delivered, and paid for by a longer pause.  Blocking connections
 * (gn_dial, threaded servers) sleep in gn_read, gn_write_all and
 * gn_send_file instead, within their deadlines.
 */
typedef struct gn_rate_limit {
    uint64_t read_bytes_per_s;  /* 0: reading is not limited */
    uint64_t write_bytes_per_s; /* 0: writing is not limited */
    uint64_t read_burst;        /* bytes at once; 0: a tenth of a second's
                                   worth of the rate (at least 1) */
    uint64_t write_burst;       /* the same for writing */
    GN_RESERVED(4);
} gn_rate_limit;

/*
 * gn_conn_set_rate_limit - limit conn's reading and writing as limit says
 * (copied; NULL or all zero: no limit of its own), from now on, with full
 * buckets.  gn_options.read_rate_limit and write_rate_limit set this for
 * every connection of a server or client, with the default bursts.
 * Returns 0, GN_EINVAL (conn NULL, reserved space not zero), GN_ECLOSED,
 * GN_ENOMEM.  Thread: conn's loop; blocking mode: while no call of conn
 * runs.
 */
GN_API int gn_conn_set_rate_limit(gn_conn *conn, const gn_rate_limit *limit);

typedef struct gn_rate_group gn_rate_group;

/*
 * gn_rate_group_new - a group of connections of loop that together read
 * and write no faster than limit says (copied; a zero rate: that
 * direction is not limited by the group).  *out receives it.  Returns 0,
 * GN_EINVAL (NULL argument, reserved space not zero), GN_ENOMEM.
 * Thread: the loop's.
 */
GN_API int gn_rate_group_new(gn_loop *loop, const gn_rate_limit *limit, gn_rate_group **out);

/*
 * gn_rate_group_set_limit - change the group's rates (buckets refilled).
 * 0 or GN_EINVAL.  Thread: the loop's.
 */
GN_API int gn_rate_group_set_limit(gn_rate_group *group, const gn_rate_limit *limit);

/*
 * gn_conn_join_rate_group - put conn in group (leaving the one it was in);
 * group NULL: leave.  A connection leaves by itself when it closes.
 * Returns 0, GN_EINVAL (conn NULL, group of another loop), GN_EMODE
 * (blocking connection), GN_ECLOSED, GN_ENOMEM.  Thread: conn's loop.
 */
GN_API int gn_conn_join_rate_group(gn_conn *conn, gn_rate_group *group);

/*
 * gn_rate_group_free - free group; its connections leave it and go on
 * under their own limits.  gn_loop_free frees the groups left.  NULL is a
 * no-op.  Thread: the loop's.
 */
GN_API void gn_rate_group_free(gn_rate_group *group);

/* ------------------------------------------------------------------------
 * Blocking mode
 *
 * The same gn_conn, driven by calls that wait.  Each call ends at the
 * earliest of its own timeout_ms (see Time limits: GN_DEFAULT_TIMEOUT and
 * GN_NO_TIMEOUT set none, GN_NO_WAIT tries once), the connection's
 * deadline for its direction (gn_conn_set_deadline) and, on a server's
 * connection, the server's idle_timeout_ms.  Signals (EINTR) neither end
 * nor extend a call.  A blocking connection is used by one thread at a time,
 * or by two at most when one only reads (gn_read, gn_read_exact,
 * gn_read_line, gn_wait_readable) and the other only writes (gn_write_all,
 * gn_send_file), as a socket is full duplex; gn_shutdown and gn_close
 * belong to the writer; gn_conn_set_deadline, to any thread.  The accessors above (endpoints,
 * stats, user data) work on it too, and the asynchronous calls (gn_send, gn_pause_reading, ...)
 * return GN_EMODE, as the calls below do on an asynchronous connection.
 */

/*
 * gn_dial - connect to address and wait: gn_connect's resolution and
 * Happy Eyeballs (fallback_delay_ms included), run on a private loop
 * inside this call, then the TLS handshake for tls://; through
 * opts->proxy as gn_connect goes.  timeout_ms
 * covers it all, resolution (and a proxy's handshake) included; GN_DEFAULT_TIMEOUT takes
 * opts->connect_timeout_ms (default 10 s).  opts may be NULL.  *out
 * receives the connection, to end with gn_close.  Returns 0, GN_EINVAL,
 * the parse errors of gn_endpoint_parse, GN_EFAMILY, GN_ENONAME,
 * GN_ECONNREFUSED, GN_EUNREACH, GN_ETIMEDOUT, GN_EMFILE, GN_ENOMEM,
 * GN_EPROXY; errbuf says which address failed and why.  Thread: any.
 */
GN_API int gn_dial(const char *address, uint32_t timeout_ms, const gn_options *opts, gn_conn **out,
                   char *errbuf, size_t errlen);

/*
 * gn_read - wait for input and copy up to len bytes of it into buf.
 * Returns the count (>= 1), 0 when the peer has finished sending, or
 * GN_ETIMEDOUT (the call's timeout or the read deadline passed: the
 * connection stays usable), GN_ECONNRESET, GN_ECLOSED (closed here, or
 * the server is closing), GN_EMODE, GN_EINVAL.
 */
GN_API ssize_t gn_read(gn_conn *conn, void *buf, size_t len, uint32_t timeout_ms);

/*
 * gn_read_exact - read exactly len bytes into buf.  0, GN_EEOF (the peer
 * finished first: what came is lost to the caller), or gn_read's errors.
 * After GN_ETIMEDOUT nothing is consumed: what came waits for the next
 * read.
 */
GN_API int gn_read_exact(gn_conn *conn, void *buf, size_t len, uint32_t timeout_ms);

/*
 * gn_read_line - read one line into buf (size bytes; the line is
 * NUL-terminated and *len holds its length, which may include NUL
 * bytes).  Only the "\n" and one "\r" before it are stripped.  Returns 1
 * for a complete line, 0 for a last line that the peer ended without a
 * newline, GN_EEOF at the end of the stream, GN_EMSGSIZE when no newline
 * comes within size - 1 bytes (or the connection's max_input; nothing is
 * consumed), or gn_read's errors.  Bytes after the line stay buffered
 * for the next read, as does a partial line after GN_ETIMEDOUT.
 */
GN_API int gn_read_line(gn_conn *conn, char *buf, size_t size, size_t *len, uint32_t timeout_ms);

/*
 * gn_read_message - read one message as framing says (NULL: the
 * framing of the options the connection was made with) into buf, then a
 * NUL byte, so size must exceed the message's length.  Returns the
 * length (0 is a message too: an empty line), or GN_EEOF when the peer
 * finished first (a message it cut short stays buffered: gn_read takes
 * its bytes), GN_EMSGSIZE when the message is longer than max_message or
 * size - 1 (known from a length prefix before its payload comes; nothing
 * is consumed), GN_EINVAL (no framing, or one gn_conn_set_framing would
 * refuse), or gn_read's errors.  Bytes after the message stay buffered.
 */
GN_API ssize_t gn_read_message(gn_conn *conn, const gn_framing *framing, void *buf, size_t size,
                               uint32_t timeout_ms);

/*
 * gn_write_all - write all len bytes of buf.  0, GN_ETIMEDOUT (some may
 * have been written: the stats say how many), GN_EPIPE, GN_ECONNRESET,
 * GN_ECLOSED (after gn_shutdown or close), GN_EMODE, GN_EINVAL.
 */
GN_API int gn_write_all(gn_conn *conn, const void *buf, size_t len, uint32_t timeout_ms);

/*
 * gn_wait_readable - wait until a read would not block (input buffered
 * or arriving, or the peer finished).  0, GN_ETIMEDOUT, GN_ECLOSED,
 * GN_EMODE, GN_EINVAL.
 */
GN_API int gn_wait_readable(gn_conn *conn, uint32_t timeout_ms);

/* Which deadline gn_conn_set_deadline sets. */
#define GN_DEADLINE_READ                                                                           \
    1u                       /* gn_read, gn_read_exact, gn_read_line, gn_read_message,             \
                                gn_wait_readable */
#define GN_DEADLINE_WRITE 2u /* gn_write_all, gn_send_file, gn_shutdown */
#define GN_DEADLINE_BOTH  3u
#define GN_NO_DEADLINE    0u /* a deadline of 0: none */

/*
 * gn_conn_set_deadline - a deadline for every blocking call of conn in
 * the direction(s) `which` (Go's SetReadDeadline, SetWriteDeadline,
 * SetDeadline): deadline_ms is a point on gn_now_ms's clock, e.g.
 * gn_now_ms() + 5000 for "within five seconds from now", or
 * GN_NO_DEADLINE to clear it.  A call ends at the earlier of the deadline
 * and its own timeout_ms.  Once the deadline has passed, every call in
 * that direction returns GN_ETIMEDOUT at once, even with input buffered,
 * until the deadline is moved or cleared; the connection stays usable.
 * A call waiting in another thread sees a moved deadline at once: setting
 * it to gn_now_ms() cancels a blocked read, as in Go.  (For that, each
 * thread that waits in a blocking call keeps one eventfd and, where
 * io_uring is allowed, one small io_uring that waits and receives in one
 * system call; both are closed when the thread ends.  GN_BACKEND=epoll or
 * poll: no io_uring.)  Returns 0, GN_EINVAL (NULL, or `which` not one of
 * the three), GN_EMODE (an asynchronous connection: use a timer).
 * Thread: any, while the connection is open (not after gn_close).
 */
GN_API int gn_conn_set_deadline(gn_conn *conn, unsigned which, uint64_t deadline_ms);

/* ------------------------------------------------------------------------
 * Threaded servers
 *
 * One thread accepts; each client is handed to handler(conn) on a worker
 * thread, in blocking mode.  Finished workers wait for the next client;
 * at most `cache` of them are kept idle, at most `max_threads` run at
 * once, and past that clients wait in a bounded queue, then in the
 * listen backlog.  A client beyond max_conns is closed at once with a
 * logged reason.  The handler owns the connection until it returns; the
 * server then closes and frees it.
 */
typedef void (*gn_thread_fn)(gn_conn *conn);

typedef struct gn_thread_options {
    size_t max_threads; /* handlers running at once; 64 */
    size_t cache;       /* idle threads kept for reuse; 8 */
    size_t queue;       /* clients waiting for a thread; 64.  When every
                           thread is busy and the queue is full, the server
                           stops accepting: further clients wait in the
                           listen backlog (gn_options.backlog) */
    bool wait_for_data; /* hand a client to a thread only once its first
                           bytes arrive (or it closes); until then the
                           accepting thread watches it, holding no thread,
                           and closes it after idle_timeout_ms.  Off: a
                           thread at once, for protocols where the server
                           speaks first */
    char pad_wait_for_data_[7];
    uint32_t queue_timeout_ms; /* close a client that waited this long in the
                                  queue for a thread, with a logged reason
                                  (counted in refused); GN_DEFAULT_TIMEOUT
                                  or GN_NO_TIMEOUT: wait as long as it takes */
    uint32_t pad_queue_timeout_ms_;
    GN_RESERVED(2);
} gn_thread_options;

typedef struct gn_thread_stats {
    size_t threads;   /* worker threads alive now */
    size_t active;    /* of them, running a handler */
    size_t idle;      /* of them, waiting for a client */
    size_t queued;    /* clients waiting for a thread */
    uint64_t created; /* threads ever created */
    uint64_t served;  /* handlers that returned */
    uint64_t refused; /* clients closed unserved: max_conns, queue_timeout_ms */
    size_t watched;   /* clients the accepting thread holds before their
                         handler: TLS handshake, wait_for_data */
    size_t backlog;   /* clients waiting in the TCP listeners' backlog
                         (the kernel's count), as while accepting is
                         stopped because the queue is full */
    GN_RESERVED(2);
} gn_thread_stats;

/*
 * gn_serve_threads - listen on address as gn_listen does and serve each
 * client with handler on a worker thread.  opts as for gn_listen (its
 * idle_timeout_ms bounds every blocking call of a connection, its
 * max_input every line); topts may be NULL for the defaults.  *out
 * receives the server: gn_server_conn_count, gn_server_foreach (fn runs
 * under the server's lock: keep it short), gn_server_get_endpoint and the
 * user data calls work on it; gn_server_close stops accepting, waits up
 * to grace_ms for handlers to return, then wakes blocked calls with
 * GN_ECLOSED and joins every thread.  Clients beyond max_threads wait in
 * the queue, then (accepting stops) in the listen backlog: none is
 * refused but at max_conns or queue_timeout_ms.  A tls:// server
 * handshakes on the accepting thread (deadline from accept) and sends
 * close_notify whenever it ends a connection.  Returns as gn_listen.
 * Thread: any.  gn_server_close must not be called from the server's own
 * handlers (it would wait for itself): there it only stops accepting, and
 * another thread's gn_server_close finishes the job.
 */
GN_API int gn_serve_threads(const char *address, gn_thread_fn handler, const gn_options *opts,
                            const gn_thread_options *topts, gn_server **out, char *errbuf,
                            size_t errlen);

/* gn_server_get_thread_stats - thread counts of a threaded server.  0, or
 * GN_EINVAL (NULL, or not a threaded server). */
GN_API int gn_server_get_thread_stats(gn_server *srv, gn_thread_stats *out);

/* ------------------------------------------------------------------------
 * Datagram sockets
 *
 * A gn_dgram is a UDP ("udp://host:port") or Unix datagram
 * ("unixgram:/path", "unixgram:@name") socket that moves whole messages:
 * a datagram is never merged with another or split.  One arrives whole
 * or not at all: a datagram larger than max_datagram is consumed and
 * reported (GN_EMSGSIZE), never handed over cut.  Sends that the socket
 * cannot take now wait, copied, in a bounded FIFO queue (max_queue).
 * An asynchronous socket lives on a loop (gn_dgram_open) and keeps it
 * running until closed; a blocking one (gn_dgram_open_blocking) is
 * driven by gn_dgram_recv and gn_dgram_send_wait.  See docs/datagrams.md.
 */
typedef struct gn_dgram gn_dgram;

/* A datagram socket's events.  Every member may be NULL.  They run on the
 * loop's thread and may call any gn_ function, gn_dgram_close included. */
typedef struct gn_dgram_handlers {
    /* A datagram of len bytes (0 is possible) arrived from `from` (for an
     * unnamed Unix sender an endpoint with an empty path, which cannot be
     * answered).  data and from are valid only during the call. */
    void (*on_datagram)(gn_dgram *sock, const char *data, size_t len, const gn_endpoint *from);
    /* The send queue emptied after a send was queued. */
    void (*on_drain)(gn_dgram *sock);
    /* Something failed that no call returned: GN_EMSGSIZE (a datagram
     * larger than max_datagram arrived and was dropped, not cut),
     * GN_ECONNREFUSED (connected mode: the peer's port is closed), or a
     * queued datagram that could not be sent (it is dropped).  message
     * names the peer and the size or reason.  The socket stays open. */
    void (*on_error)(gn_dgram *sock, int code, const char *message);
    /* Exactly once, after gn_dgram_close (or gn_loop_free); reason is 0.
     * sock is freed when it returns. */
    void (*on_close)(gn_dgram *sock, int reason);
    GN_RESERVED_HANDLERS(4);
} gn_dgram_handlers;

/* Options of a datagram socket; a field left 0 takes the default shown,
 * so {0} or NULL means all defaults. */
typedef struct gn_dgram_options {
    size_t max_datagram; /* largest datagram received or sent; 65507 (UDP
                            over IPv4's maximum).  The socket keeps a
                            receive buffer of this size. */
    size_t max_queue;    /* bytes of datagrams queued for sending while
                            the socket is full; 1 MiB.  Past it a send
                            fails with GN_ENOBUFS, queueing nothing. */
    bool ipv6_only;      /* binding "[::]": IPv6 only, not dual stack */
    void *user_data;     /* initial user data */
    GN_RESERVED(4);
} gn_dgram_options;

/* Flags for gn_dgram_open and gn_dgram_open_blocking: one of these. */
typedef enum gn_dgram_flags {
    GN_DGRAM_BIND = 1u << 0,    /* bind to the address (a server, or a fixed local port) */
    GN_DGRAM_CONNECT = 1u << 1, /* connect to it: gn_dgram_send goes there, only its
                                   datagrams arrive */
} gn_dgram_flags;

/*
 * gn_dgram_open - open a datagram socket on address with flags
 * GN_DGRAM_BIND (":9999", "udp://[::1]:0", "unixgram:/run/d.sock") or
 * GN_DGRAM_CONNECT ("udp://host:53"), not both.  A bare port binds "[::]"
 * dual stack (or "0.0.0.0" where IPv6 is missing); a host name is
 * resolved here, blocking, and its first address used.  A connecting
 * unixgram socket binds an autobind abstract name first, so the peer can
 * answer.  A bound Unix path is removed again on close; an existing file
 * at the path is GN_EADDRINUSE (it is never removed for you).
 * handlers and opts are copied (NULL for none and for the defaults).
 * *out receives the socket.  Returns 0, GN_EINVAL (NULL loop, address or
 * out; bad flags), the parse errors of gn_endpoint_parse, GN_EFAMILY (not
 * a udp:// or unixgram: address), a resolution error, GN_EADDRINUSE,
 * GN_EACCES, GN_EADDRNOTAVAIL, GN_ENOTFOUND (no socket at a Unix path to
 * connect to), GN_ECONNREFUSED, GN_EMFILE, GN_ENOMEM; errbuf names the
 * address and says why.  Thread: the loop's.
 */
GN_API int gn_dgram_open(gn_loop *loop, const char *address, unsigned flags,
                         const gn_dgram_handlers *handlers, const gn_dgram_options *opts,
                         gn_dgram **out, char *errbuf, size_t errlen);

/*
 * gn_dgram_send_to - send len bytes of data as one datagram to `to`, a
 * resolved endpoint of the socket's kind (IPv4 or IPv6 for UDP, whatever
 * its scheme; a Unix path or name for unixgram).  Sent at once when
 * nothing is queued; otherwise, or when the socket is full, copied into
 * the queue and sent in order (on_drain when it empties).  data stays the
 * caller's.  Returns 0, GN_EINVAL (sock NULL, data NULL with len > 0, to
 * NULL or unresolved), GN_EFAMILY (to is of another family, e.g. IPv6 on
 * an IPv4 socket), GN_EMSGSIZE (len > max_datagram, or the kernel's
 * limit), GN_ENOBUFS (over max_queue: nothing queued), GN_ECLOSED,
 * GN_EMODE (blocking socket), GN_EUNREACH, GN_EACCES (broadcast),
 * GN_ENOTFOUND (unixgram: no socket at the path), or GN_ECONNREFUSED
 * (unixgram: nobody bound there any more; UDP connected: the peer refused
 * an earlier datagram, this one was not sent; the socket stays usable).
 * Thread: the loop's; safe in any handler.
 */
GN_API int gn_dgram_send_to(gn_dgram *sock, const void *data, size_t len, const gn_endpoint *to);

/* gn_dgram_send - gn_dgram_send_to the connected peer; GN_EINVAL on a
 * socket opened without GN_DGRAM_CONNECT. */
GN_API int gn_dgram_send(gn_dgram *sock, const void *data, size_t len);

/*
 * gn_dgram_close - close sock.  Asynchronous: queued datagrams get one
 * last try and the rest are dropped; on_close follows from the loop,
 * never inside this call; idempotent.  Blocking: closes and frees at
 * once, as fclose does: call it exactly once.  Returns 0 or GN_EINVAL.
 */
GN_API int gn_dgram_close(gn_dgram *sock);

/* gn_dgram_local - the bound address (with the actual port, or the
 * autobind name); gn_dgram_remote - the connected peer, NULL unless
 * GN_DGRAM_CONNECT.  Valid while sock is. */
GN_API const gn_endpoint *gn_dgram_local(const gn_dgram *sock);
GN_API const gn_endpoint *gn_dgram_remote(const gn_dgram *sock);

/* gn_dgram_queued - bytes waiting in the send queue (0 for NULL). */
GN_API size_t gn_dgram_queued(const gn_dgram *sock);

GN_API void *gn_dgram_user_data(const gn_dgram *sock);
GN_API void gn_dgram_set_user_data(gn_dgram *sock, void *data);

/*
 * gn_dgram_open_blocking - gn_dgram_open without a loop, for
 * gn_dgram_recv and gn_dgram_send_wait.  Same flags, options, returns.
 * Thread: any; one thread receiving and one sending may share a socket.
 */
GN_API int gn_dgram_open_blocking(const char *address, unsigned flags, const gn_dgram_options *opts,
                                  gn_dgram **out, char *errbuf, size_t errlen);

/*
 * gn_dgram_recv - wait up to timeout_ms (see Time limits: GN_DEFAULT_TIMEOUT
 * and GN_NO_TIMEOUT wait forever, GN_NO_WAIT takes only what has come;
 * signals neither end nor extend the wait) for one datagram and copy it
 * into buf.
 * from (may be NULL) receives the sender.  Returns its length, or
 * GN_EMSGSIZE when it was larger than size or max_datagram (it is
 * consumed, never returned cut), GN_ETIMEDOUT, GN_ECONNREFUSED
 * (connected: the peer's port is closed; the socket stays usable),
 * GN_EMODE (asynchronous socket), GN_EINVAL.
 */
GN_API ssize_t gn_dgram_recv(gn_dgram *sock, void *buf, size_t size, gn_endpoint *from,
                             uint32_t timeout_ms);

/*
 * gn_dgram_send_wait - send one datagram to `to` (NULL: the connected
 * peer), waiting up to timeout_ms (as gn_dgram_recv's) while the socket
 * is full.  Returns 0,
 * GN_ETIMEDOUT (nothing was sent), GN_EMODE (asynchronous socket), or
 * the errors of gn_dgram_send_to.
 */
GN_API int gn_dgram_send_wait(gn_dgram *sock, const void *data, size_t len, const gn_endpoint *to,
                              uint32_t timeout_ms);

/* ------------------------------------------------------------------------
 * Framing helpers, for on_data
 *
 * Stateless: each looks at the bytes on_data was given and says whether a
 * whole frame is there.  Return 1 (a frame: *frame_len bytes to consume),
 * 0 (not yet: consume nothing, wait for more) or a negative code.
 */

/*
 * gn_frame_line - a line ending in "\n" (a "\r" before it is dropped from
 * *line_len, not from *frame_len).  GN_EMSGSIZE when max_len bytes hold
 * no newline: the peer sends a line longer than allowed.
 */
GN_API int gn_frame_line(const char *data, size_t len, size_t max_len, size_t *line_len,
                         size_t *frame_len);

/*
 * gn_frame_exact - a frame of exactly n bytes: 1 and *frame_len = n when
 * len >= n, else 0.
 */
GN_API int gn_frame_exact(size_t len, size_t n, size_t *frame_len);

/*
 * gn_frame_prefix - a frame of a size_bytes (1, 2, 4 or 8) big-endian
 * length then that many bytes: *payload_off and *payload_len locate the
 * payload.  GN_EMSGSIZE when the length exceeds max_payload, GN_EINVAL
 * for other size_bytes.
 */
GN_API int gn_frame_prefix(const char *data, size_t len, unsigned size_bytes, uint64_t max_payload,
                           size_t *payload_off, size_t *payload_len, size_t *frame_len);

/* ------------------------------------------------------------------------
 * Deprecated names (GN_DEPRECATED_ALIASES_BEGIN)
 *
 * The names of 0.1, renamed in 1.0 to the rules of docs/api.md ("Names"),
 * kept for this major version: each still compiles, with a warning naming
 * its replacement.  Define GN_NO_DEPRECATED before including gnezdo.h to
 * hide them.  They are not exported symbols: a 0.1 binary needs
 * libgnezdo.so.0 anyway.
 */
#ifndef GN_NO_DEPRECATED
#if defined(__GNUC__)
#define GN_DEPRECATED(replacement) __attribute__((deprecated("use " replacement)))
#else
#define GN_DEPRECATED(replacement)
#endif
typedef gn_thread_fn gn_thread_handler GN_DEPRECATED("gn_thread_fn");
typedef gn_io_ops gn_transport_ops GN_DEPRECATED("gn_io_ops");
GN_DEPRECATED("gn_server_get_thread_stats")
static inline int gn_server_thread_stats(gn_server *srv, gn_thread_stats *out)
{
    return gn_server_get_thread_stats(srv, out);
}
GN_DEPRECATED("gn_conn_get_tls_info")
static inline int gn_conn_tls_info(const gn_conn *conn, gn_tls_info *out)
{
    return gn_conn_get_tls_info(conn, out);
}
GN_DEPRECATED("gn_conn_get_peer_cred")
static inline int gn_conn_peer_cred(const gn_conn *conn, gn_peer_cred *out)
{
    return gn_conn_get_peer_cred(conn, out);
}
GN_DEPRECATED("gn_server_get_endpoint")
static inline int gn_server_endpoint(const gn_server *srv, size_t i, gn_endpoint *out)
{
    return gn_server_get_endpoint(srv, i, out);
}
#endif /* GN_DEPRECATED_ALIASES_END */

#ifdef __cplusplus
}
#endif

#endif /* GNEZDO_H */
