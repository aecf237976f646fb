/*
 * The CLI's blocking-mode subcommands: listen --threads (a threaded
 * server), connect --sync (a blocking client), send and recv (a file over
 * a connection, with a progress bar and a SHA-256 of what went through).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_sys.h"
#include "gnezdo.h"
#include "sha256.h"

#define CHUNK         (1u << 20)
#define SEND_CHUNK    (8u << 20) /* per sendfile call: the progress bar's step */
#define STALL_MS      60000      /* a peer that takes nothing this long has failed */
#define FIRST_BYTE_MS 10000      /* recv: a client silent this long is not the sender */
#define WRITE_FAILED  1          /* receipt.status: the output file, not the peer */

static double seconds_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_fd_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- listen --threads ------------------------------------------------- */

static enum cli_thread_mode thread_mode;
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

static void serve_client(gn_conn *conn)
{
    static _Thread_local char buf[65536];
    char who[2 * GN_ENDPOINT_STRLEN + 8];
    ssize_t n;

    if (!cli_listen_quiet) {
        cli_describe_conn(conn, who, sizeof(who));
        fprintf(stderr, "connect    %s\n", who);
    }
    while ((n = gn_read(conn, buf, sizeof(buf), GN_NO_TIMEOUT)) > 0) {
        if (thread_mode == CLI_THREADS_ECHO && gn_write_all(conn, buf, (size_t)n, 30000) < 0)
            break;
        if (thread_mode == CLI_THREADS_PRINT) {
            int failed;
            pthread_mutex_lock(&print_lock);
            failed = write_fd_all(STDOUT_FILENO, buf, (size_t)n) < 0;
            if (failed)
                cli_output_failed();
            pthread_mutex_unlock(&print_lock);
            if (failed) {
                cli_stop_request(); /* the main thread's cli_stop_wait ends the server */
                break;
            }
        }
    }
    if (!cli_listen_quiet)
        fprintf(stderr, "disconnect %s%s%s\n", who, n < 0 ? ": " : "",
                n < 0 ? gn_strerror((int)n) : "");
}

int cli_listen_threads(const char *addr, enum cli_thread_mode mode, size_t threads)
{
    /* Every client of listen speaks first (or only listens): a silent one
     * need not hold a thread until it sends. */
    gn_thread_options topts = {.max_threads = threads, .cache = threads, .wait_for_data = true};
    char err[GN_ERRBUF_SIZE], text[GN_ENDPOINT_STRLEN];
    gn_options opts;
    gn_server *srv;
    gn_endpoint ep;
    int rc;

    thread_mode = mode;
    cli_stop_prepare(); /* before the server's threads start */
    opts = cli_options();
    rc = gn_serve_threads(addr, serve_client, &opts, &topts, &srv, err, sizeof(err));
    if (rc < 0)
        return cli_open_error(rc, err);
    for (size_t i = 0; gn_server_get_endpoint(srv, i, &ep) == 0; i++) {
        gn_endpoint_format(&ep, text, sizeof(text));
        fprintf(stderr, "listening on %s (%zu threads)\n", text, threads);
    }
    cli_stop_wait();
    gn_server_close(srv, 1000);
    return cli_output_broken ? CLI_FAILURE : CLI_OK;
}

/* ---- connect --sync --------------------------------------------------- */

struct stdin_writer {
    gn_conn *conn;
    cli_gate *gate; /* the reader says the connection is over */
    pthread_mutex_t lock;
    pthread_cond_t finished_cv;
    bool finished; /* the thread is about to return: joining it cannot block */
};

static void shutdown_and_join(struct stdin_writer *w, pthread_t writer);

/* Waits for stdin through the gate, so the thread can be joined (a
 * thread stuck in read(stdin) could not be). */
static void *stdin_to_conn(void *arg)
{
    static char buf[65536];
    struct stdin_writer *w = arg;
    ssize_t n;

    while (cli_gate_wait(w->gate)) {
        n = read(STDIN_FILENO, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (gn_write_all(w->conn, buf, (size_t)n, GN_NO_TIMEOUT) < 0)
            break;
    }
    gn_shutdown(w->conn); /* half-close: the peer sees EOF, we keep reading */
    pthread_mutex_lock(&w->lock);
    w->finished = true;
    pthread_cond_signal(&w->finished_cv);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* One thread reads the connection, another writes it: a socket is full
 * duplex, and a blocking connection allows one reader and one writer. */
int cli_connect_sync(const char *addr)
{
    static char buf[65536];
    char err[GN_ERRBUF_SIZE], who[2 * GN_ENDPOINT_STRLEN + 8];
    struct stdin_writer w = {.lock = PTHREAD_MUTEX_INITIALIZER,
                             .finished_cv = PTHREAD_COND_INITIALIZER};
    pthread_t writer;
    ssize_t n;
    gn_options opts = cli_options();
    int rc;

    opts.proxy = cli_proxy_for(addr);
    rc = gn_dial(addr, GN_DEFAULT_TIMEOUT, &opts, &w.conn, err, sizeof(err));
    if (rc < 0)
        return cli_open_error(rc, err);
    cli_describe_conn(w.conn, who, sizeof(who));
    fprintf(stderr, "connected  %s\n", who);
    w.gate = cli_gate_new();
    if (!w.gate || pthread_create(&writer, NULL, stdin_to_conn, &w) != 0) {
        cli_gate_free(w.gate);
        gn_close(w.conn);
        return cli_fail("cannot start the stdin reader");
    }
    while ((n = gn_read(w.conn, buf, sizeof(buf), GN_NO_TIMEOUT)) > 0)
        if (write_fd_all(STDOUT_FILENO, buf, (size_t)n) < 0) {
            cli_output_failed();
            break;
        }
    if (n < 0)
        fprintf(stderr, "gnezdo: %s: %s\n", addr, gn_strerror((int)n));
    /* The peer is done: stop the writer, then free the connection. */
    shutdown_and_join(&w, writer);
    return n < 0 || cli_output_broken ? CLI_FAILURE : CLI_OK;
}

/* The writer thread owns gn_shutdown and the writes; the reader only
 * asks it to stop.  A writer stuck in a write to a peer that half-closed
 * and reads no more (or, on Windows, in a read of stdin) is given 2 s,
 * then left to the process exit. */
static void shutdown_and_join(struct stdin_writer *w, pthread_t writer)
{
    struct timespec until;
    bool finished;
    int rc = 0;

    cli_gate_cancel(w->gate);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    pthread_mutex_lock(&w->lock);
    while (!w->finished && rc == 0)
        rc = pthread_cond_timedwait(&w->finished_cv, &w->lock, &until);
    finished = w->finished;
    pthread_mutex_unlock(&w->lock);
    if (!finished)
        return;
    pthread_join(writer, NULL);
    gn_close(w->conn);
    cli_gate_free(w->gate);
}

/* ---- progress --------------------------------------------------------- */

struct progress {
    bool draw; /* stderr is a terminal and not --quiet */
    double start, last_draw;
    uint64_t total; /* 0: unknown */
    const char *verb;
};

static void human_bytes(double n, char *buf, size_t len)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;

    while (n >= 1024 && u < 4) {
        n /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", n, units[u]);
}

static void progress_draw(struct progress *p, uint64_t done, bool final)
{
    char have[32], all[32], rate[32], eta[32] = "";
    double now = seconds_now(), elapsed = now - p->start;
    double speed = elapsed > 0 ? (double)done / elapsed : 0;

    if (!p->draw || (!final && now - p->last_draw < 0.1))
        return;
    p->last_draw = now;
    human_bytes((double)done, have, sizeof(have));
    human_bytes(speed, rate, sizeof(rate));
    if (p->total) {
        double left = speed > 0 ? (double)(p->total - done) / speed : 0;
        int width = 30, filled = (int)((double)width * (double)done / (double)p->total);
        char bar[64];

        memset(bar, '#', (size_t)filled);
        memset(bar + filled, '-', (size_t)(width - filled));
        bar[width] = '\0';
        human_bytes((double)p->total, all, sizeof(all));
        snprintf(eta, sizeof(eta), "ETA %d:%02d", (int)left / 60, (int)left % 60);
        fprintf(stderr, "\r%s [%s] %3d%% %s / %s  %s/s  %s\033[K", p->verb, bar,
                (int)(100.0 * (double)done / (double)p->total), have, all, rate, eta);
    } else {
        fprintf(stderr, "\r%s %s  %s/s\033[K", p->verb, have, rate);
    }
    if (final)
        fputc('\n', stderr);
}

static void print_summary(const char *verb, uint64_t bytes, double seconds, const char *hex)
{
    char rate[32];

    human_bytes(seconds > 0 ? (double)bytes / seconds : 0, rate, sizeof(rate));
    fprintf(stderr, "%s %llu bytes in %.2f s (%s/s)\nsha256 %s\n", verb, (unsigned long long)bytes,
            seconds, rate, hex);
}

#define NO_HASH "(not computed: --no-hash)"

/* --quiet and --no-hash (measure the transfer alone, e.g. against socat,
 * which does not hash). */
static int parse_quiet(int *argc, char **argv, bool *quiet, bool *hash)
{
    int kept = 0;

    *quiet = false;
    *hash = true;
    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0)
            *quiet = true;
        else if (strcmp(argv[i], "--no-hash") == 0)
            *hash = false;
        else if (argv[i][0] == '-' && argv[i][1] != '\0')
            return cli_usage_error("unknown option '%s'", argv[i]);
        else
            argv[kept++] = argv[i];
    }
    *argc = kept;
    return 0;
}

/* ---- send ------------------------------------------------------------- */

/* The file is hashed by a second thread while the first sends it with
 * sendfile: the digest costs no time on the transfer's path.  The hasher
 * reads through a descriptor of its own: where sendfile and pread are
 * a seek and a read (Windows), a shared one would mix their offsets. */
struct hasher {
    int fd;
    uint64_t size;
    char hex[CLI_SHA256_HEX];
    int failed;
};

static void *hash_file(void *arg)
{
    struct hasher *h = arg;
    cli_sha256 *md = cli_sha256_new();
    char *buf = malloc(CHUNK);
    uint64_t off = 0;

    if (!md || !buf) {
        h->failed = 1;
    } else {
        while (off < h->size) {
            ssize_t n = read(h->fd, buf, CHUNK);
            if (n <= 0) {
                h->failed = 1;
                break;
            }
            cli_sha256_update(md, buf, (size_t)n);
            off += (uint64_t)n;
        }
        cli_sha256_hex(md, h->hex);
    }
    cli_sha256_free(md);
    free(buf);
    return NULL;
}

static int send_open(const char *path, int *fd, uint64_t *size)
{
    struct stat st;

    *fd = open(path, O_RDONLY | O_BINARY | O_CLOEXEC);
    if (*fd < 0)
        return cli_fail("cannot open '%s': %s", path, strerror(errno));
    if (fstat(*fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(*fd);
        return cli_fail("'%s' is not a regular file", path);
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

static int send_body(gn_conn *conn, int fd, struct progress *p)
{
    uint64_t sent = 0;

    while (sent < p->total) {
        uint64_t step = p->total - sent < SEND_CHUNK ? p->total - sent : SEND_CHUNK;
        int rc = gn_send_file(conn, fd, (int64_t)sent, step);
        if (rc < 0)
            return rc;
        sent += step;
        progress_draw(p, sent, false);
    }
    progress_draw(p, sent, true);
    return 0;
}

/* send's arguments: FILE ADDRESS and the flags of parse_quiet, which
 * leaves FILE and ADDRESS in argv[0] and argv[1] (fuzz/fuzz_cli_args.c
 * calls this too). */
static int parse_send_args(int *argc, char **argv, bool *quiet, bool *hash)
{
    int rc = parse_quiet(argc, argv, quiet, hash);

    if (rc)
        return rc;
    if (*argc != 2)
        return cli_usage_error("send takes FILE and ADDRESS, e.g. 'gnezdo send big.iso host:9000'");
    return cli_check_tls_flags(argv[1], false);
}

int cli_send(int argc, char **argv)
{
    struct progress p = {.verb = "sent"};
    gn_options opts = cli_options();
    struct hasher h = {0};
    char err[GN_ERRBUF_SIZE], rest[64];
    pthread_t hash_thread;
    gn_conn *conn;
    bool quiet, hash, hashing = false;
    int fd, rc = cli_take_limit(&argc, argv);

    if (rc == 0)
        rc = parse_send_args(&argc, argv, &quiet, &hash);
    if (rc)
        return rc;
    opts = cli_options(); /* with --limit */
    rc = send_open(argv[0], &fd, &p.total);
    if (rc)
        return rc;
    opts.idle_timeout_ms = STALL_MS;
    opts.proxy = cli_proxy_for(argv[1]);
    rc = gn_dial(argv[1], GN_DEFAULT_TIMEOUT, &opts, &conn, err, sizeof(err));
    if (rc < 0) {
        close(fd);
        return cli_open_error(rc, err);
    }
    h.fd = hash ? open(argv[0], O_RDONLY | O_BINARY | O_CLOEXEC) : -1;
    h.size = p.total;
    snprintf(h.hex, sizeof(h.hex), "%s", NO_HASH);
    if (hash)
        hashing = h.fd >= 0 && pthread_create(&hash_thread, NULL, hash_file, &h) == 0;
    if (hash && !hashing)
        h.failed = 1;
    p.draw = !quiet && isatty(STDERR_FILENO);
    p.start = seconds_now();
    rc = send_body(conn, fd, &p);
    if (rc == 0) {
        /* FIN, then wait for the receiver to close: it has everything. */
        ssize_t n;

        gn_shutdown(conn);
        while ((n = gn_read(conn, rest, sizeof(rest), 60000)) > 0)
            ;
        if (n < 0) /* a reset, not a close: the receiver did not take it all */
            rc = (int)n;
    }
    if (hashing)
        pthread_join(hash_thread, NULL);
    gn_close(conn);
    close(fd);
    if (h.fd >= 0)
        close(h.fd);
    if (rc < 0)
        return cli_fail("sending '%s' to %s: %s", argv[0], argv[1], gn_strerror(rc));
    if (h.failed)
        return cli_fail("cannot read '%s' to hash it", argv[0]);
    if (!quiet)
        print_summary("sent", p.total, seconds_now() - p.start, h.hex);
    return CLI_OK;
}

/* ---- recv ------------------------------------------------------------- */

struct receipt {
    int out_fd, write_errno;
    bool draw, hash;
    bool claimed; /* a connection sent data: it is the transfer */
    pthread_mutex_t mu;
    pthread_cond_t done_cv;
    bool done;
    int status;
    uint64_t bytes;
    double seconds;
    char hex[CLI_SHA256_HEX];
    char who[2 * GN_ENDPOINT_STRLEN + 8];
};

static struct receipt receipt = {.mu = PTHREAD_MUTEX_INITIALIZER,
                                 .done_cv = PTHREAD_COND_INITIALIZER};

/* The first connection to send data becomes the transfer; others are
 * turned away.  Several are served at once, so clients that connect and
 * say nothing (each dropped after FIRST_BYTE_MS) cannot keep the real
 * sender out. */
static bool claim_transfer(const char *who)
{
    bool mine;

    pthread_mutex_lock(&receipt.mu);
    mine = !receipt.claimed;
    if (mine) {
        receipt.claimed = true;
        snprintf(receipt.who, sizeof(receipt.who), "%s", who);
    }
    pthread_mutex_unlock(&receipt.mu);
    return mine;
}

static int write_chunk(cli_sha256 *md, const char *buf, size_t n)
{
    if (md)
        cli_sha256_update(md, buf, n);
    if (write_fd_all(receipt.out_fd, buf, n) < 0) {
        receipt.write_errno = errno; /* errno is this thread's */
        return WRITE_FAILED;
    }
    return 0;
}

/* The rest of the transfer after its first n bytes in buf; a sender that
 * stalls for STALL_MS has failed. */
static int receive_body(gn_conn *conn, cli_sha256 *md, struct progress *p, char *buf, ssize_t n,
                        uint64_t *bytes)
{
    do {
        int rc = write_chunk(md, buf, (size_t)n);
        if (rc)
            return rc;
        *bytes += (uint64_t)n;
        progress_draw(p, *bytes, false);
    } while ((n = gn_read(conn, buf, CHUNK, STALL_MS)) > 0);
    progress_draw(p, *bytes, true);
    return n < 0 ? (int)n : 0;
}

static void finish_receipt(int rc, uint64_t bytes, double seconds, cli_sha256 *md)
{
    pthread_mutex_lock(&receipt.mu);
    if (!receipt.done) {
        receipt.status = rc;
        receipt.bytes = bytes;
        receipt.seconds = seconds;
        if (md)
            cli_sha256_hex(md, receipt.hex);
        else
            snprintf(receipt.hex, sizeof(receipt.hex), "%s", NO_HASH);
        receipt.done = true;
        pthread_cond_signal(&receipt.done_cv);
    }
    pthread_mutex_unlock(&receipt.mu);
}

static void receive_one(gn_conn *conn)
{
    struct progress p = {.verb = "received", .draw = receipt.draw};
    char who[sizeof(receipt.who)], *buf = malloc(CHUNK);
    cli_sha256 *md = NULL;
    uint64_t bytes = 0;
    ssize_t n;
    int rc = GN_ENOMEM;

    cli_describe_conn(conn, who, sizeof(who));
    n = buf ? gn_read(conn, buf, CHUNK, FIRST_BYTE_MS) : GN_ENOMEM;
    if (n <= 0) {
        /* A port probe (nc -z) or a silent client is not the transfer
         * (GN_ECLOSED: recv is done and closing; nothing to say). */
        if (n != GN_ECLOSED)
            fprintf(stderr, "gnezdo: warning: %s sent nothing; still waiting for a sender\n", who);
        free(buf);
        return;
    }
    if (!claim_transfer(who)) {
        fprintf(stderr, "gnezdo: warning: %s turned away: already receiving from %s\n", who,
                receipt.who);
        gn_abort(conn); /* a reset: the sender must not think it was heard */
        free(buf);
        return;
    }
    p.start = seconds_now();
    if (receipt.hash) {
        md = cli_sha256_new();
    }
    if (!receipt.hash || md)
        rc = receive_body(conn, md, &p, buf, n, &bytes);
    finish_receipt(rc, bytes, seconds_now() - p.start, md);
    cli_sha256_free(md);
    free(buf);
}

static int recv_open(const char *path)
{
    if (strcmp(path, "-") == 0)
        return STDOUT_FILENO;
    return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_BINARY | O_CLOEXEC, 0644);
}

/* recv's arguments: ADDRESS [FILE] and the flags of parse_quiet; the
 * address stays in argv[0] (fuzz/fuzz_cli_args.c calls this too). */
static int parse_recv_args(int *argc, char **argv, bool *quiet, bool *hash, const char **path)
{
    int rc = parse_quiet(argc, argv, quiet, hash);

    *path = "-";
    if (rc)
        return rc;
    if (*argc < 1 || *argc > 2)
        return cli_usage_error("recv takes ADDRESS and an optional FILE ('-' is stdout)");
    *path = *argc == 2 ? argv[1] : "-";
    return cli_check_tls_flags(argv[0], true);
}

int cli_recv(int argc, char **argv)
{
    gn_thread_options topts = {.max_threads = 8, .cache = 8, .queue = 8};
    char err[GN_ERRBUF_SIZE], text[GN_ENDPOINT_STRLEN];
    gn_options opts;
    const char *path;
    gn_server *srv;
    gn_endpoint ep;
    bool quiet;
    int rc = cli_take_limit(&argc, argv);

    if (rc == 0)
        rc = parse_recv_args(&argc, argv, &quiet, &receipt.hash, &path);
    if (rc)
        return rc;
    receipt.out_fd = recv_open(path);
    if (receipt.out_fd < 0)
        return cli_fail("cannot create '%s': %s", path, strerror(errno));
    receipt.draw = !quiet && isatty(STDERR_FILENO);
    opts = cli_options();
    rc = gn_serve_threads(argv[0], receive_one, &opts, &topts, &srv, err, sizeof(err));
    if (rc < 0)
        return cli_open_error(rc, err);
    for (size_t i = 0; gn_server_get_endpoint(srv, i, &ep) == 0; i++) {
        gn_endpoint_format(&ep, text, sizeof(text));
        fprintf(stderr, "listening on %s\n", text);
    }
    pthread_mutex_lock(&receipt.mu);
    while (!receipt.done)
        pthread_cond_wait(&receipt.done_cv, &receipt.mu);
    pthread_mutex_unlock(&receipt.mu);
    gn_server_close(srv, 0);
    if (receipt.out_fd != STDOUT_FILENO && close(receipt.out_fd) < 0 &&
        receipt.status != WRITE_FAILED) {
        receipt.status = WRITE_FAILED;
        receipt.write_errno = errno;
    }
    if (receipt.status == WRITE_FAILED)
        return cli_fail("cannot write '%s': %s", path, strerror(receipt.write_errno));
    if (receipt.status < 0)
        return cli_fail("receiving from %s: %s", receipt.who, gn_strerror(receipt.status));
    if (!quiet)
        print_summary("received", receipt.bytes, receipt.seconds, receipt.hex);
    return CLI_OK;
}
