/*
 * A stress run for ThreadSanitizer (`make check-tsan`; Criterion itself
 * cannot start under TSan, so this is a plain program): every place where
 * threads meet.
 *   1. A threaded server with a small cache and queue: 16 client threads
 *      dialling and echoing, 8 holding connections until the server
 *      closes them, the main thread reading stats, counts and the
 *      connection list meanwhile.
 *   2. An event loop serving TLS and plain TCP while it resolves names on
 *      its worker threads for 20 clients, and 4 threads run blocking TLS
 *      clients against it and post tasks to it.
 *   3. Signal watchers: 4 threads, each creating loops that watch SIGUSR1
 *      and signal themselves, 50 rounds each, so the process-wide
 *      registry of dispositions is joined and left concurrently.
 *   4. A server on three loops (gn_options.loops): 6 client threads
 *      dialling and echoing, each echo counting every loop's connections
 *      with gn_server_foreach and gn_server_conn_count from whichever
 *      loop serves it, 4 holding connections open until a task on loop 0
 *      closes the server, which joins the loops' threads.
 * Exits 0 when every exchange went through; TSan reports races itself.
 *   tsan_stress CERT_DIR   (from tests/make_certs.sh)
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* usleep */
#endif
#include <gnezdo.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char threads_addr[GN_ENDPOINT_STRLEN], tls_addr[GN_ENDPOINT_STRLEN];
static char ca[512], cert[512], key[512];
static atomic_int echoed, posted, failures;
static gn_loop *loop;

/* ---- 1. the threaded server ------------------------------------------- */

static void echo_blocking(gn_conn *conn)
{
    char buf[4096];
    ssize_t n;

    while ((n = gn_read(conn, buf, sizeof(buf), GN_NO_TIMEOUT)) > 0)
        if (gn_write_all(conn, buf, (size_t)n, 5000) < 0)
            break;
}

static void *dialler(void *arg)
{
    char err[GN_ERRBUF_SIZE], line[64];
    size_t len;
    gn_conn *c;

    (void)arg;
    for (int i = 0; i < 20; i++) {
        if (gn_dial(threads_addr, 3000, NULL, &c, err, sizeof(err)) < 0)
            continue;
        if (gn_write_all(c, "hello\n", 6, 2000) == 0 &&
            gn_read_line(c, line, sizeof(line), &len, 2000) == 1)
            atomic_fetch_add(&echoed, 1);
        gn_close(c); /* a full queue closes some at once: that is allowed */
    }
    return NULL;
}

static void *holder(void *arg)
{
    char err[GN_ERRBUF_SIZE], buf[8];
    gn_conn *c;

    (void)arg;
    if (gn_dial(threads_addr, 3000, NULL, &c, err, sizeof(err)) == 0) {
        gn_read(c, buf, sizeof(buf), 5000); /* until the server closes */
        gn_close(c);
    }
    return NULL;
}

static void count(gn_conn *c, void *arg)
{
    (void)c;
    ++*(int *)arg;
}

static int threaded_server(void)
{
    gn_thread_options topts = {.max_threads = 8, .cache = 2, .queue = 16};
    char err[GN_ERRBUF_SIZE];
    pthread_t t[24];
    gn_thread_stats st;
    gn_server *srv;
    gn_endpoint ep;
    int visited = 0;

    if (gn_serve_threads("127.0.0.1:0", echo_blocking, NULL, &topts, &srv, err, sizeof(err)) < 0)
        return fprintf(stderr, "%s\n", err), 1;
    gn_server_get_endpoint(srv, 0, &ep);
    gn_endpoint_format(&ep, threads_addr, sizeof(threads_addr));
    for (int i = 0; i < 24; i++)
        pthread_create(&t[i], NULL, i < 16 ? dialler : holder, NULL);
    for (int i = 0; i < 30; i++) {
        gn_server_get_thread_stats(srv, &st);
        gn_server_foreach(srv, count, &visited);
        (void)gn_server_conn_count(srv);
        usleep(10000);
    }
    for (int i = 0; i < 16; i++)
        pthread_join(t[i], NULL);
    gn_server_close(srv, 100); /* the holders are blocked in reads */
    for (int i = 16; i < 24; i++)
        pthread_join(t[i], NULL);
    printf("threaded: %d echoed, %llu threads created\n", atomic_load(&echoed),
           (unsigned long long)st.created);
    return atomic_load(&echoed) > 0 ? 0 : 1;
}

/* ---- 2. the event loop ------------------------------------------------- */

static size_t echo(gn_conn *c, const char *d, size_t n)
{
    gn_send(c, d, n);
    return n;
}

static void on_post(gn_loop *l, void *arg)
{
    (void)l;
    (void)arg;
    atomic_fetch_add(&posted, 1);
}

static void client_connect(gn_conn *c)
{
    gn_send(c, "x\n", 2);
}

static size_t client_data(gn_conn *c, const char *d, size_t n)
{
    (void)d;
    gn_close(c);
    return n;
}

static void *tls_client(void *arg)
{
    gn_tls_options tls = {.ca_file = ca};
    gn_options o = {.tls = &tls};
    char err[GN_ERRBUF_SIZE], line[16];
    size_t len;
    gn_conn *c;

    (void)arg;
    for (int i = 0; i < 10; i++) {
        if (gn_dial(tls_addr, 3000, &o, &c, err, sizeof(err)) < 0) {
            fprintf(stderr, "tls client: %s\n", err);
            atomic_fetch_add(&failures, 1);
            continue;
        }
        gn_write_all(c, "hi\n", 3, 2000);
        if (gn_read_line(c, line, sizeof(line), &len, 2000) != 1)
            atomic_fetch_add(&failures, 1);
        gn_close(c);
        gn_loop_post(loop, on_post, NULL);
    }
    return NULL;
}

static void stop(gn_loop *l, uint64_t id, void *a)
{
    (void)id;
    (void)a;
    gn_loop_stop(l);
}

static int event_loop(void)
{
    const gn_handlers h = {.on_data = echo},
                      ch = {.on_connect = client_connect, .on_data = client_data};
    gn_tls_options st = {.cert_file = cert, .key_file = key};
    gn_options so = {.tls = &st};
    char err[GN_ERRBUF_SIZE], plain[GN_ENDPOINT_STRLEN];
    gn_server *srv, *psrv;
    gn_endpoint ep;
    pthread_t t[4];
    uint64_t timer;
    gn_conn *c;

    gn_loop_new(&loop);
    if (gn_listen(loop, "tls://127.0.0.1:0", &h, &so, &srv, err, sizeof(err)) < 0 ||
        gn_listen(loop, "127.0.0.1:0", &h, NULL, &psrv, err, sizeof(err)) < 0)
        return fprintf(stderr, "%s\n", err), 1;
    gn_server_get_endpoint(srv, 0, &ep);
    snprintf(tls_addr, sizeof(tls_addr), "tls://localhost:%u", (unsigned)gn_endpoint_port(&ep));
    gn_server_get_endpoint(psrv, 0, &ep);
    snprintf(plain, sizeof(plain), "localhost:%u", (unsigned)gn_endpoint_port(&ep));
    for (int i = 0; i < 20; i++) /* names resolved on the loop's worker threads */
        gn_connect(loop, plain, &ch, NULL, &c, err, sizeof(err));
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, tls_client, NULL);
    gn_timer_start(loop, 4000, 0, stop, NULL, &timer);
    gn_loop_run(loop);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    gn_server_close(srv, 0);
    gn_server_close(psrv, 0);
    gn_loop_run(loop); /* the tasks posted last run here */
    gn_loop_free(loop);
    printf("event loop: %d tasks posted, %d failures\n", atomic_load(&posted),
           atomic_load(&failures));
    return atomic_load(&failures) == 0 && atomic_load(&posted) == 40 ? 0 : 1;
}

struct signal_round {
    gn_loop *loop;
    int got;
};

static void got_signal(gn_signal *s, int signum, void *arg)
{
    struct signal_round *r = arg;

    (void)s;
    (void)signum;
    r->got++;
    gn_loop_stop(r->loop); /* the guard timer keeps it running till then */
}

static void *signal_rounds(void *arg)
{
    (void)arg;
    for (int round = 0; round < 50; round++) {
        struct signal_round r = {0};
        gn_signal *s;
        uint64_t guard;

        /* epoll: io_uring rings made and freed on several threads reuse
         * mappings, which TSan takes for races (it does not see munmap
         * order mmap); the signal registry is the same on every backend. */
        if (gn_loop_new_backend(&r.loop, "epoll") < 0 ||
            gn_signal_start(r.loop, SIGUSR1, got_signal, &r, &s) < 0) {
            atomic_fetch_add(&failures, 1);
            return NULL;
        }
        gn_timer_start(r.loop, 2000, 0, stop, NULL, &guard);
        pthread_kill(pthread_self(), SIGUSR1); /* blocked here: the loop reads it */
        gn_loop_run(r.loop);
        atomic_fetch_add(&failures, r.got == 1 ? 0 : 1);
        gn_loop_free(r.loop);
    }
    return NULL;
}

static int signal_watchers(void)
{
    pthread_t t[4];

    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, signal_rounds, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    printf("signal watchers: %d failures\n", atomic_load(&failures));
    return atomic_load(&failures) == 0 ? 0 : 1;
}

/* ---- 4. a server on several loops --------------------------------------- */

static char loops_addr[GN_ENDPOINT_STRLEN];
static gn_server *loops_srv;
static atomic_int loops_echoed, loops_clients_left;

static size_t census_echo(gn_conn *c, const char *d, size_t n)
{
    int visited = 0;

    gn_server_foreach(gn_conn_server(c), count, &visited); /* stops the other loops */
    if (visited < 1 || gn_server_conn_count(gn_conn_server(c)) < 1)
        atomic_fetch_add(&failures, 1);
    gn_send(c, d, n);
    return n;
}

static void close_loops_server(gn_loop *l, void *arg)
{
    (void)l;
    (void)arg;
    gn_server_close(loops_srv, 200);
}

static void *loops_client(void *arg)
{
    char err[GN_ERRBUF_SIZE], line[16];
    size_t len;
    gn_conn *c;

    (void)arg;
    for (int i = 0; i < 20; i++) {
        if (gn_dial(loops_addr, 3000, NULL, &c, err, sizeof(err)) < 0) {
            atomic_fetch_add(&failures, 1);
            continue;
        }
        if (gn_write_all(c, "hi\n", 3, 2000) == 0 &&
            gn_read_line(c, line, sizeof(line), &len, 2000) == 1)
            atomic_fetch_add(&loops_echoed, 1);
        gn_close(c);
    }
    if (atomic_fetch_sub(&loops_clients_left, 1) == 1)
        gn_loop_post(loop, close_loops_server, NULL);
    return NULL;
}

static void *loops_holder(void *arg)
{
    char err[GN_ERRBUF_SIZE], buf[8];
    gn_conn *c;

    (void)arg;
    if (gn_dial(loops_addr, 3000, NULL, &c, err, sizeof(err)) == 0) {
        gn_read(c, buf, sizeof(buf), 10000); /* until the server closes */
        gn_close(c);
    }
    return NULL;
}

static int several_loops(void)
{
    const gn_handlers h = {.on_data = census_echo};
    gn_options o = {.loops = 3};
    char err[GN_ERRBUF_SIZE];
    gn_endpoint ep;
    pthread_t t[10];

    /* epoll, for the reason given in signal_rounds. */
    if (gn_loop_new_backend(&loop, "epoll") < 0 ||
        gn_listen(loop, "127.0.0.1:0", &h, &o, &loops_srv, err, sizeof(err)) < 0)
        return fprintf(stderr, "%s\n", err), 1;
    gn_server_get_endpoint(loops_srv, 0, &ep);
    gn_endpoint_format(&ep, loops_addr, sizeof(loops_addr));
    atomic_store(&loops_clients_left, 6);
    for (int i = 0; i < 10; i++)
        pthread_create(&t[i], NULL, i < 6 ? loops_client : loops_holder, NULL);
    gn_loop_run(loop); /* until the server is closed and gone */
    for (int i = 0; i < 10; i++)
        pthread_join(t[i], NULL);
    gn_loop_free(loop);
    printf("several loops: %d echoed, %d failures\n", atomic_load(&loops_echoed),
           atomic_load(&failures));
    return atomic_load(&failures) == 0 && atomic_load(&loops_echoed) == 120 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: tsan_stress CERT_DIR\n");
        return 2;
    }
    snprintf(ca, sizeof(ca), "%s/ca.pem", argv[1]);
    snprintf(cert, sizeof(cert), "%s/server.pem", argv[1]);
    snprintf(key, sizeof(key), "%s/server.key", argv[1]);
    if (threaded_server() != 0 || event_loop() != 0 || signal_watchers() != 0 ||
        several_loops() != 0)
        return 1;
    printf("tsan_stress: ok\n");
    return 0;
}
