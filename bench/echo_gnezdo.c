/*
 * Echo benchmark, the library side: an echo server on gnezdo.  on_data
 * sends every byte back with gn_send and consumes it all.
 *
 *   echo_gnezdo ADDR [--count-allocs] [--cert FILE --key FILE] [--loops N]
 *
 * ADDR is any gnezdo stream address: 127.0.0.1:0, unix:/path,
 * tls://127.0.0.1:0 (which needs --cert and --key, handed to gnezdo as
 * gn_options.tls).  --loops N serves on N loops (gn_options.loops).
 * Prints "listening on ADDR" (the bound address, so port 0 works) on
 * stdout and "backend NAME" (gn_loop_backend: what GN_BACKEND asked for
 * may not exist yet) on stderr, and runs until SIGTERM or SIGINT, then
 * exits 0.  The soft open-file limit is raised to the hard one and the
 * server takes up to 100,000 connections (gnezdo's default cap is
 * 10,000), for the idle-memory scenario.  Built twice: echo_gnezdo,
 * and echo_gnezdo_counted, linked with -Wl,--wrap=malloc,... so every
 * malloc/calloc/realloc/free made by gnezdo's code (linked statically)
 * goes through the counters below.  In the counted build SIGUSR1 prints
 * one line to stderr:
 *   allocs malloc=N calloc=N realloc=N free=N on_data=N bytes_in=N
 * and the same line is printed on exit; --count-allocs is accepted (and
 * required to be meaningful only) there.
 */
#include <gnezdo.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_addr.h"

static gn_loop *g_loop;

#ifdef GN_BENCH_COUNT_ALLOCS
static atomic_ulong g_on_data, g_bytes_in;
static atomic_ulong g_malloc, g_calloc, g_realloc, g_free;

/* The --wrap targets: prototypes first, for -Wmissing-prototypes. */
void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void __real_free(void *p);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
void __wrap_free(void *p);

void *__wrap_malloc(size_t size)
{
    atomic_fetch_add_explicit(&g_malloc, 1, memory_order_relaxed);
    return __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    atomic_fetch_add_explicit(&g_calloc, 1, memory_order_relaxed);
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    atomic_fetch_add_explicit(&g_realloc, 1, memory_order_relaxed);
    return __real_realloc(p, size);
}

void __wrap_free(void *p)
{
    if (p)
        atomic_fetch_add_explicit(&g_free, 1, memory_order_relaxed);
    __real_free(p);
}

/* Async-signal-safe: formats by hand and writes with write(2). */
static char *put_num(char *p, const char *label, unsigned long v)
{
    char tmp[24];
    int n = 0;

    while (*label)
        *p++ = *label++;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static void print_counts(void)
{
    char line[256], *p = line;

    p = put_num(p, "allocs malloc=", atomic_load(&g_malloc));
    p = put_num(p, " calloc=", atomic_load(&g_calloc));
    p = put_num(p, " realloc=", atomic_load(&g_realloc));
    p = put_num(p, " free=", atomic_load(&g_free));
    p = put_num(p, " on_data=", atomic_load(&g_on_data));
    p = put_num(p, " bytes_in=", atomic_load(&g_bytes_in));
    *p++ = '\n';
    if (write(STDERR_FILENO, line, (size_t)(p - line)) < 0)
        return;
}

static void on_usr1(int sig)
{
    (void)sig;
    print_counts();
}
#endif

static size_t echo(gn_conn *conn, const char *data, size_t len)
{
#ifdef GN_BENCH_COUNT_ALLOCS
    atomic_fetch_add_explicit(&g_on_data, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_bytes_in, len, memory_order_relaxed);
#endif
    gn_send(conn, data, len);
    return len;
}

static void on_stop(int sig)
{
    (void)sig;
    gn_loop_stop(g_loop);
}

int main(int argc, char **argv)
{
    gn_handlers h = {.on_data = echo};
    gn_options opts = {.pause_reading_when_full = true, .max_conns = 100000};
    gn_tls_options tls = {0};
    bool count_allocs = false;
    gn_server *srv;
    gn_endpoint ep;
    char err[GN_ERRBUF_SIZE], name[GN_ENDPOINT_STRLEN];
    struct sigaction sa;
    int rc;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--count-allocs") == 0)
            count_allocs = true;
        else if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc)
            tls.cert_file = argv[++i];
        else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
            tls.key_file = argv[++i];
        else if (strcmp(argv[i], "--loops") == 0 && i + 1 < argc)
            opts.loops = strtoul(argv[++i], NULL, 10);
        else
            argc = 0; /* usage */
    }
    if (argc < 2) {
        fprintf(stderr, "usage: %s ADDR [--count-allocs] [--cert FILE --key FILE] [--loops N]\n",
                argv[0]);
        return 2;
    }
    if (tls.cert_file || tls.key_file)
        opts.tls = &tls;
#ifndef GN_BENCH_COUNT_ALLOCS
    if (count_allocs) {
        fprintf(stderr, "%s: --count-allocs needs the echo_gnezdo_counted build\n", argv[0]);
        return 2;
    }
#else
    (void)count_allocs;
#endif
    bench_raise_nofile();
    rc = gn_loop_new(&g_loop);
    if (rc < 0) {
        fprintf(stderr, "gn_loop_new: %s\n", gn_strerror(rc));
        return 1;
    }
    fprintf(stderr, "backend %s\n", gn_loop_backend(g_loop));
    rc = gn_listen(g_loop, argv[1], &h, &opts, &srv, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (gn_server_get_endpoint(srv, 0, &ep) < 0 || gn_endpoint_format(&ep, name, sizeof name) < 0)
        snprintf(name, sizeof name, "%s", argv[1]);

    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
#ifdef GN_BENCH_COUNT_ALLOCS
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
#endif

    printf("listening on %s\n", name);
    fflush(stdout);
    rc = gn_loop_run(g_loop);
    if (rc < 0)
        fprintf(stderr, "gn_loop_run: %s\n", gn_strerror(rc));
    gn_loop_free(g_loop);
#ifdef GN_BENCH_COUNT_ALLOCS
    print_counts();
#endif
    return rc < 0 ? 1 : 0;
}
