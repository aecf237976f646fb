/*
 * Echo benchmark, gnezdo's synchronous mode: a threaded echo server.
 * gn_serve_threads hands each client to a worker thread whose handler
 * loops gn_read -> gn_write_all until the client leaves.
 *
 *   echo_threads ADDR [MAX_THREADS=256]
 *
 * MAX_THREADS should be at least the number of connections, so that every
 * connection has its own thread (the rest would wait in the queue).
 * Prints "listening on ADDR" (the bound address, so port 0 works) and
 * runs until SIGTERM or SIGINT; then closes the server (waking blocked
 * handlers), prints one line of thread stats to stderr
 *   threads created=N served=N refused=N alive=N
 * and exits 0.
 */
#include <gnezdo.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_SIZE (64u << 10)

static void echo(gn_conn *conn)
{
    char buf[BUF_SIZE];

    for (;;) {
        ssize_t n = gn_read(conn, buf, sizeof buf, GN_NO_TIMEOUT);
        if (n <= 0 || gn_write_all(conn, buf, (size_t)n, GN_NO_TIMEOUT) < 0)
            return;
    }
}

int main(int argc, char **argv)
{
    gn_options opts = {.idle_timeout_ms = GN_NO_TIMEOUT};
    gn_thread_options topts = {.max_threads = 256, .cache = 256, .queue = 1024};
    gn_thread_stats st;
    gn_server *srv;
    gn_endpoint ep;
    char err[GN_ERRBUF_SIZE], name[GN_ENDPOINT_STRLEN];
    sigset_t stop;
    int rc, sig;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s ADDR [MAX_THREADS=256]\n", argv[0]);
        return 2;
    }
    if (argc == 3)
        topts.max_threads = topts.cache = strtoul(argv[2], NULL, 10);
    /* Block the stop signals before any thread exists, so every thread
     * inherits the mask and only sigwait below sees them. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = gn_serve_threads(argv[1], echo, &opts, &topts, &srv, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (gn_server_get_endpoint(srv, 0, &ep) < 0 || gn_endpoint_format(&ep, name, sizeof name) < 0)
        snprintf(name, sizeof name, "%s", argv[1]);
    printf("listening on %s\n", name);
    fflush(stdout);

    sigwait(&stop, &sig);
    if (gn_server_get_thread_stats(srv, &st) < 0)
        memset(&st, 0, sizeof st);
    gn_server_close(srv, 1000);
    fprintf(stderr, "threads created=%llu served=%llu refused=%llu alive=%zu\n",
            (unsigned long long)st.created, (unsigned long long)st.served,
            (unsigned long long)st.refused, st.threads);
    return 0;
}
