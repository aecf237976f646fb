/*
 * The load generator's parts (echo_load.c: echo and TLS handshakes;
 * load_conns.c: connection rate and idle connections) share a clock, a
 * latency histogram and a reader of a server's CPU time.
 */
#ifndef GN_BENCH_LOAD_H
#define GN_BENCH_LOAD_H

#include <stdint.h>
#include <sys/socket.h>

#define LOAD_WARMUP_NS 500000000ull
#define LOAD_HIST_US   200000 /* 1 us buckets up to 200 ms; above goes in the last */

/* Latencies in 1 us buckets: no allocation per message. */
extern uint64_t load_hist[LOAD_HIST_US + 1];

uint64_t load_now_ns(void);
void load_hist_add(uint64_t ns);
unsigned long load_percentile_us(uint64_t total, double q);

/*
 * Microseconds of CPU (utime + stime, /proc/PID/stat) process pid has
 * used, all its threads; -1 when unreadable.  Read at the edges of the
 * measured window, so the server's CPU and the messages counted cover
 * the same time.
 */
double load_cpu_us(int pid);

/*
 * Connection rate: conc connections at a time, each: connect, send 64
 * bytes, read them back, close (reset: SO_LINGER 0, so an RST instead of
 * a FIN and no TIME_WAIT); 0.5 s warm-up, then seconds counted.  Source
 * addresses rotate over 127.0.0.1..127.0.0.src_addrs (IPv4 only) so that
 * TIME_WAIT does not use up one address's ephemeral ports.  cpu_pid > 0:
 * that process's CPU per connection too.  Prints one line; returns the
 * exit status.
 */
int load_run_rate(const struct sockaddr_storage *ss, socklen_t len, int reset, long conc,
                  double seconds, int src_addrs, int cpu_pid);

/*
 * Idle connections: open conns connections one at a time, do one 64-byte
 * echo on each, print "idle conns=N ..." and hold them open until SIGTERM
 * or SIGINT, or max_seconds; then close them and return 0.
 */
int load_run_idle(const struct sockaddr_storage *ss, socklen_t len, long conns, double max_seconds,
                  int src_addrs);

/* Bind fd to the i-th source address of load_run_*'s rotation (no-op when n <= 1). */
void load_bind_source(int fd, const struct sockaddr_storage *ss, long i, int n);

#endif
