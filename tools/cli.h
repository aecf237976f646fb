/* Shared by the CLI's source files. */
#ifndef GN_CLI_H
#define GN_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* Exit codes: 0 success, 1 runtime failure, 2 usage error. */
#define CLI_OK      0
#define CLI_FAILURE 1
#define CLI_USAGE   2

/* Print "gnezdo: <message>; see 'gnezdo --help'" and return CLI_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* After a failed gn_listen/gn_connect/gn_dial/...: a usage error (2) when
 * the address or flags were at fault, else a runtime failure (1). */
int cli_open_error(int rc, const char *err);
/* The TLS flags fit addr (a server: tls:// needs --cert and --key);
 * 0 or a usage error's exit code. */
int cli_check_tls_flags(const char *addr, bool server);
/* Writing stdout failed: say so once; the caller stops. */
void cli_output_failed(void);
extern bool cli_output_broken;
/* listen --quiet: no line per client (for measuring). */
extern bool cli_listen_quiet;

/* Print "gnezdo: <message>" and return CLI_FAILURE. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#include "gnezdo.h"

/* The stop signals (cli_sys.h: SIGINT and SIGTERM, on Windows Ctrl+C and
 * Ctrl+Break) stop loop (signal watchers, closed with the loop). */
void cli_catch_signals(gn_loop *loop);

/* Standard input on the loop's thread (cli_stdin.c; on Windows read by a
 * thread of its own and handed over, cli_stdin_thread.c): fn(data, len, arg)
 * for each chunk read, len 0 once at its end (the reading has stopped
 * then).  Pause while the output is full, resume when it drains; stop
 * when the socket closes, or the watcher keeps the loop running.
 * cli_stdin_start returns 0 or a GN_E code. */
typedef void (*cli_stdin_fn)(const char *data, size_t len, void *arg);
int cli_stdin_start(gn_loop *loop, cli_stdin_fn fn, void *arg);
void cli_stdin_pause(void);
void cli_stdin_resume(void);
void cli_stdin_stop(void);

/* "remote -> local" endpoints of conn into buf, for the connection log. */
void cli_describe_conn(const gn_conn *conn, char *buf, size_t len);

/* Options with every TLS setting given on the command line (--cert,
 * --key, --ca, --insecure, --alpn); the rest zero. */
gn_options cli_options(void);

/* Proxies (cli_proxy.c): take --proxy URL and --noproxy LIST out of argv
 * (from index 2 on; a usage error's code for other commands than connect
 * and send); the proxy URL for a client of address, from the flags or
 * the environment as curl reads it, or NULL for none. */
int cli_take_proxy_options(int *argc, char **argv);
const char *cli_proxy_for(const char *address);

/* --limit RATE (cli_limit.c): taken out of argv into cli_rate_limit
 * (bytes per second, 0 for none), which cli_options puts in both
 * directions of every connection; 0 or a usage error's exit code. */
extern uint64_t cli_rate_limit;
int cli_take_limit(int *argc, char **argv);

int cli_listen(int argc, char **argv);
int cli_connect(int argc, char **argv);
int cli_demo(int argc, char **argv);

/* Blocking mode (cli_sync.c). */
enum cli_thread_mode { CLI_THREADS_PRINT, CLI_THREADS_ECHO, CLI_THREADS_DISCARD };
int cli_listen_threads(const char *addr, enum cli_thread_mode mode, size_t threads);
int cli_connect_sync(const char *addr);

/* Datagram sockets (cli_dgram.c): udp:// and unixgram: addresses. */
enum cli_dgram_mode { CLI_DGRAM_PRINT, CLI_DGRAM_ECHO, CLI_DGRAM_DISCARD };
bool cli_is_dgram_address(const char *addr, unsigned parse_flags);
int cli_dgram_listen(const char *addr, enum cli_dgram_mode mode);
int cli_dgram_connect(const char *addr);
int cli_send(int argc, char **argv);
int cli_recv(int argc, char **argv);

/* gnezdo bench (cli_bench.c): a load generator for echo servers. */
int cli_bench(int argc, char **argv);

#endif
