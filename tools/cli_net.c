/*
 * The CLI's network subcommands: listen, connect and demo.
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_sys.h"
#include "gnezdo.h"

#define CHAT_LINE_MAX   4096
#define CHAT_BEHIND_MAX (1u << 20)  /* queued for one member */
#define CHAT_TOTAL_MAX  (32u << 20) /* queued for all of them together */
#define CHAT_LAGGING    (64u << 10) /* a member this far behind is lagging */

static void stop_loop(gn_signal *s, int signum, void *arg)
{
    (void)s;
    (void)signum;
    gn_loop_stop(arg);
}

void cli_catch_signals(gn_loop *loop)
{
    gn_signal *sig;

    /* Closed by gn_loop_free, which puts the dispositions back. */
    for (const int *s = cli_stop_signals; *s; s++)
        gn_signal_start(loop, *s, stop_loop, loop, &sig);
}

void cli_describe_conn(const gn_conn *conn, char *buf, size_t len)
{
    char local[GN_ENDPOINT_STRLEN] = "?", remote[GN_ENDPOINT_STRLEN] = "?";

    if (gn_conn_remote(conn))
        gn_endpoint_format(gn_conn_remote(conn), remote, sizeof(remote));
    if (gn_conn_local(conn))
        gn_endpoint_format(gn_conn_local(conn), local, sizeof(local));
    snprintf(buf, len, "%s -> %s", remote, local);
}

/* ---- listen --------------------------------------------------------- */

enum listen_mode { MODE_PRINT, MODE_ECHO, MODE_CHAT, MODE_DISCARD };

struct listen_state {
    enum listen_mode mode;
    gn_server *srv;
};

static struct listen_state listening;

static void log_accept(gn_conn *conn)
{
    char who[2 * GN_ENDPOINT_STRLEN + 8];

    cli_describe_conn(conn, who, sizeof(who));
    fprintf(stderr, "connect    %s (%zu open)\n", who, gn_server_conn_count(listening.srv));
}

static void log_close(gn_conn *conn, int reason)
{
    char who[2 * GN_ENDPOINT_STRLEN + 8];

    cli_describe_conn(conn, who, sizeof(who));
    fprintf(stderr, "disconnect %s%s%s\n", who, reason ? ": " : "",
            reason ? gn_strerror(reason) : "");
}

static void log_error(gn_conn *conn, int code, const char *message)
{
    (void)conn;
    (void)code;
    fprintf(stderr, "error      %s\n", message);
}

bool cli_output_broken;
bool cli_listen_quiet;

void cli_output_failed(void)
{
    if (!cli_output_broken)
        fprintf(stderr, "gnezdo: cannot write the output: %s\n", strerror(errno));
    cli_output_broken = true;
}

static size_t print_data(gn_conn *conn, const char *data, size_t len)
{
    if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0) {
        cli_output_failed();
        /* Nowhere to put what comes: stop the server's loop (loop 0 when
         * there are several; this may be another's thread). */
        gn_loop_stop(gn_server_loop(gn_conn_server(conn)));
    }
    return len;
}

static size_t echo_data(gn_conn *conn, const char *data, size_t len)
{
    /* With pause_reading_when_full the queue stays far below max_output,
     * so this only fails if the connection is already closing. */
    gn_send(conn, data, len);
    return len;
}

static size_t discard_data(gn_conn *conn, const char *data, size_t len)
{
    (void)conn;
    (void)data;
    return len;
}

struct chat_line {
    const gn_conn *from;
    const char *text;
    size_t len;
};

static void chat_drop(gn_conn *conn, const char *why)
{
    char who[GN_ENDPOINT_STRLEN] = "?";

    if (gn_conn_remote(conn))
        gn_endpoint_format(gn_conn_remote(conn), who, sizeof(who));
    fprintf(stderr, "dropped    %s: %s\n", who, why);
    gn_abort(conn);
}

/* A member more than CHAT_BEHIND_MAX behind is dropped, with a word:
 * the others go on, and memory stays bounded. */
static void chat_send(gn_conn *conn, void *arg)
{
    const struct chat_line *line = arg;

    if (conn != line->from && gn_send(conn, line->text, line->len) == GN_ENOBUFS)
        chat_drop(conn, "more than 1024 KiB of chat behind");
}

static size_t queued_of(const gn_conn *conn)
{
    gn_conn_stats st = {0};

    gn_conn_get_stats(conn, &st);
    return st.queued;
}

static void add_queued(gn_conn *conn, void *arg)
{
    *(size_t *)arg += queued_of(conn);
}

static void drop_if_lagging(gn_conn *conn, void *arg)
{
    (void)arg;
    if (queued_of(conn) > CHAT_LAGGING)
        chat_drop(conn, "lagging while the chat's memory is full");
}

/* Each member is capped, and so is the sum: many members that never read
 * would otherwise hold a copy of every line each.  Over the total, the
 * members who are behind go; those keeping up are not behind. */
static void chat_keep_within_budget(size_t line_len)
{
    size_t total = 0;

    gn_server_foreach(listening.srv, add_queued, &total);
    if (total + line_len * gn_server_conn_count(listening.srv) > CHAT_TOTAL_MAX)
        gn_server_foreach(listening.srv, drop_if_lagging, NULL);
}

static void chat_broadcast(gn_conn *from, const char *line, size_t len)
{
    char text[CHAT_LINE_MAX + GN_ENDPOINT_STRLEN + 4];
    char who[GN_ENDPOINT_STRLEN] = "?";
    struct chat_line msg = {from, text, 0};

    if (gn_conn_remote(from))
        gn_endpoint_format(gn_conn_remote(from), who, sizeof(who));
    msg.len = (size_t)snprintf(text, sizeof(text), "%s: %.*s\n", who, (int)len, line);
    if (msg.len >= sizeof(text))
        msg.len = sizeof(text) - 1;
    chat_keep_within_budget(msg.len);
    gn_server_foreach(listening.srv, chat_send, &msg);
}

/* A line of a member, framed by the library: one longer than
 * CHAT_LINE_MAX closes its sender with an error ("error" in the log). */
static void chat_message(gn_conn *conn, const char *line, size_t len)
{
    chat_broadcast(conn, line, len);
}

/* "--threads N": N from 1 to 100000, else a usage error. */
static int parse_threads(int argc, char **argv, int *i, size_t *threads)
{
    char *end;
    unsigned long n;

    if (*i + 1 >= argc)
        return cli_usage_error("--threads needs a count, e.g. '--threads 16'");
    errno = 0;
    n = strtoul(argv[++*i], &end, 10);
    if (errno || *end || end == argv[*i] || n < 1 || n > 100000 ||
        !isdigit((unsigned char)argv[*i][0]))
        return cli_usage_error("--threads '%s' is not a count from 1 to 100000", argv[*i]);
    *threads = n;
    return 0;
}

/* "--loops N": N from 1 to 256 (gn_options.loops), else a usage error. */
static int parse_loops(int argc, char **argv, int *i, size_t *loops)
{
    char *end;
    unsigned long n;

    if (*i + 1 >= argc)
        return cli_usage_error("--loops needs a count, e.g. '--loops 2'");
    errno = 0;
    n = strtoul(argv[++*i], &end, 10);
    if (errno || *end || end == argv[*i] || n < 1 || n > 256 ||
        !isdigit((unsigned char)argv[*i][0]))
        return cli_usage_error("--loops '%s' is not a count from 1 to 256", argv[*i]);
    *loops = n;
    return 0;
}

static enum listen_mode mode_of(const char *arg)
{
    if (strcmp(arg, "--echo") == 0)
        return MODE_ECHO;
    if (strcmp(arg, "--chat") == 0)
        return MODE_CHAT;
    if (strcmp(arg, "--discard") == 0)
        return MODE_DISCARD;
    return MODE_PRINT;
}

static int parse_listen_args(int argc, char **argv, const char **addr, enum listen_mode *mode,
                             size_t *threads, size_t *loops)
{
    int rc;

    *addr = NULL;
    *mode = MODE_PRINT;
    *threads = 0;
    *loops = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0) {
            rc = parse_threads(argc, argv, &i, threads);
            if (rc)
                return rc;
        } else if (strcmp(argv[i], "--loops") == 0) {
            rc = parse_loops(argc, argv, &i, loops);
            if (rc)
                return rc;
        } else if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0) {
            cli_listen_quiet = true;
        } else if (mode_of(argv[i]) != MODE_PRINT) {
            if (*mode != MODE_PRINT)
                return cli_usage_error("choose one of --echo, --chat and --discard");
            *mode = mode_of(argv[i]);
        } else if (argv[i][0] == '-' && argv[i][1] != '\0')
            return cli_usage_error("unknown option '%s' for listen", argv[i]);
        else if (*addr)
            return cli_usage_error("listen takes one address, got '%s' and '%s'", *addr, argv[i]);
        else
            *addr = argv[i];
    }
    if (!*addr)
        return cli_usage_error("listen needs an address, e.g. 'gnezdo listen :7000 --echo'");
    if (*threads && *mode == MODE_CHAT)
        return cli_usage_error("--chat runs on the event loop; drop --threads");
    if (*threads && *loops)
        return cli_usage_error("--loops and --threads are two kinds of server: choose one");
    return 0;
}

static void print_listening(gn_server *srv)
{
    char text[GN_ENDPOINT_STRLEN];
    gn_endpoint ep;

    for (size_t i = 0; gn_server_get_endpoint(srv, i, &ep) == 0; i++) {
        gn_endpoint_format(&ep, text, sizeof(text));
        fprintf(stderr, "listening on %s\n", text);
    }
}

static const char listen_usage[] =
    "usage: gnezdo listen ADDRESS [--echo|--chat|--discard] [--threads N] [--quiet]\n"
    "\n"
    "A server socket: prints what clients send (--echo sends it back, --discard\n"
    "drops it, --chat relays lines between clients); logs connects and\n"
    "disconnects to stderr unless --quiet.  Idle clients are closed after 5 min;\n"
    "past 10000 connections a new client is closed at once, with a warning.\n"
    "\n"
    "  --threads N   serve each client on a thread, at most N at once (the\n"
    "                blocking mode).  A client beyond N is not refused: it waits,\n"
    "                first in a queue of 64, then in the kernel's listen backlog\n"
    "                (SOMAXCONN), and is served as soon as a thread is free; it\n"
    "                sees a slow answer, not a closed connection.  A client that\n"
    "                has sent nothing yet holds no thread: the accepting thread\n"
    "                waits for its first bytes (and does any TLS handshake).\n"
    "                Without --threads one event loop serves every client at once.\n"
    "\n"
    "TLS: tls://host:port with --cert FILE --key FILE (see 'gnezdo --help').\n";

/* "--help" or "-h" anywhere among listen's arguments. */
static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

int cli_listen(int argc, char **argv)
{
    static size_t (*const data_fns[])(gn_conn *, const char *,
                                      size_t) = {[MODE_PRINT] = print_data,
                                                 [MODE_ECHO] = echo_data,
                                                 [MODE_CHAT] = NULL, /* on_message */
                                                 [MODE_DISCARD] = discard_data};
    gn_handlers h = {.on_accept = log_accept, .on_close = log_close, .on_error = log_error};
    gn_options opts = cli_options();
    char err[GN_ERRBUF_SIZE];
    static const enum cli_thread_mode thread_modes[] = {[MODE_PRINT] = CLI_THREADS_PRINT,
                                                        [MODE_ECHO] = CLI_THREADS_ECHO,
                                                        [MODE_CHAT] = CLI_THREADS_PRINT,
                                                        [MODE_DISCARD] = CLI_THREADS_DISCARD};
    const char *addr;
    size_t threads, loops;
    gn_loop *loop;
    int rc = cli_take_limit(&argc, argv);

    if (rc == 0 && wants_help(argc, argv)) {
        fputs(listen_usage, stdout);
        return CLI_OK;
    }
    if (rc == 0)
        rc = parse_listen_args(argc, argv, &addr, &listening.mode, &threads, &loops);
    if (rc == 0)
        rc = cli_check_tls_flags(addr, true);
    if (rc)
        return rc;
    opts = cli_options(); /* with --limit */
    if (cli_is_dgram_address(addr, GN_PARSE_LISTEN)) {
        if (threads || loops || listening.mode == MODE_CHAT || cli_rate_limit)
            return cli_usage_error("%s is for stream sockets, not '%s'",
                                   threads                       ? "--threads"
                                   : loops                       ? "--loops"
                                   : listening.mode == MODE_CHAT ? "--chat"
                                                                 : "--limit",
                                   addr);
        return cli_dgram_listen(addr, listening.mode == MODE_ECHO      ? CLI_DGRAM_ECHO
                                      : listening.mode == MODE_DISCARD ? CLI_DGRAM_DISCARD
                                                                       : CLI_DGRAM_PRINT);
    }
    cli_raise_fd_limit(); /* servers: the soft default is far below a busy one's needs */
    if (threads)
        return cli_listen_threads(addr, thread_modes[listening.mode], threads);
    h.on_data = data_fns[listening.mode];
    if (cli_listen_quiet) {
        h.on_accept = NULL;
        h.on_close = NULL;
        h.on_error = NULL;
    }
    opts.pause_reading_when_full = listening.mode == MODE_ECHO || listening.mode == MODE_CHAT;
    if (listening.mode == MODE_CHAT) {
        opts.max_output = CHAT_BEHIND_MAX;
        opts.framing = (gn_framing){.kind = GN_FRAMING_LINE, .max_message = CHAT_LINE_MAX};
        h.on_message = chat_message;
    }
    /* With several loops the handlers run on several threads: each log
     * line is one stdio call (locked, so lines stay whole), the chat's
     * broadcast is gn_server_foreach, which pauses the other loops. */
    opts.loops = loops;
    if (gn_loop_new(&loop) < 0)
        return cli_fail("cannot create an event loop");
    /* Handlers first: a supervisor may signal as soon as it reads the
     * "listening on" line; and the threads of --loops, started by
     * gn_listen, inherit the blocked signals. */
    cli_catch_signals(loop);
    rc = gn_listen(loop, addr, &h, &opts, &listening.srv, err, sizeof(err));
    if (rc < 0) {
        gn_loop_free(loop);
        return cli_open_error(rc, err);
    }
    print_listening(listening.srv);
    gn_loop_run(loop);
    gn_server_close(listening.srv, 1000);
    gn_loop_run(loop);
    gn_loop_free(loop);
    return cli_output_broken ? CLI_FAILURE : CLI_OK;
}

/* ---- connect -------------------------------------------------------- */

/* stdin is read on the loop's own thread (cli_stdin.c); past
 * STDIN_BEHIND bytes queued for the socket it waits for on_drain, so a
 * slow peer slows the reading instead of filling memory.  on_drain comes
 * only after the output went above high_watermark (1 MiB by default, as
 * STDIN_BEHIND): pausing at exactly 1 MiB queued (whole 64 KiB reads
 * after a send the kernel refused) would have waited for it forever. */
#define STDIN_BEHIND (1u << 20)

static gn_loop *connect_loop;
static int connect_status;
/* connect --retry: each attempt is a new connection; stdin goes to the
 * one of the moment and waits while there is none. */
static gn_conn *connect_current;
static bool stdin_started;

static void stdin_to_conn(const char *data, size_t len, void *arg)
{
    gn_conn *conn = connect_current;
    gn_conn_stats st;

    (void)arg;
    if (!conn) {
        cli_stdin_pause(); /* cannot happen: paused while disconnected */
        return;
    }
    if (len == 0) {
        gn_shutdown(conn); /* half-close: the peer sees EOF, we keep reading */
        return;
    }
    gn_send(conn, data, len);
    gn_conn_get_stats(conn, &st);
    if (st.queued > STDIN_BEHIND)
        cli_stdin_pause();
}

static void conn_connected(gn_conn *conn)
{
    char who[2 * GN_ENDPOINT_STRLEN + 8];
    int rc;

    cli_describe_conn(conn, who, sizeof(who));
    fprintf(stderr, "connected  %s\n", who);
    connect_current = conn;
    if (stdin_started) {
        cli_stdin_resume();
        return;
    }
    stdin_started = true;
    rc = cli_stdin_start(connect_loop, stdin_to_conn, NULL);
    if (rc < 0) {
        fprintf(stderr, "gnezdo: cannot read stdin: %s\n", gn_strerror(rc));
        gn_shutdown(conn);
    }
}

static void conn_drain(gn_conn *conn)
{
    (void)conn;
    cli_stdin_resume();
}

static void conn_closed(gn_conn *conn, int reason)
{
    connect_current = NULL;
    connect_status = reason < 0 ? 1 : 0;
    if (gn_conn_is_reconnecting(conn)) {
        cli_stdin_pause(); /* until the next connection */
        return;
    }
    cli_stdin_stop();
}

static void conn_reconnect(gn_conn *conn, unsigned attempt, uint32_t delay_ms, int last_error)
{
    (void)conn;
    (void)last_error;
    fprintf(stderr, "gnezdo: reconnecting in %.1f s (attempt %u)\n", delay_ms / 1000.0, attempt);
}

static void conn_error(gn_conn *conn, int code, const char *message)
{
    (void)conn;
    (void)code;
    fprintf(stderr, "gnezdo: %s\n", message);
}

/* connect's arguments: ADDRESS, or ADDRESS and --sync in either order
 * (fuzz/fuzz_cli_args.c calls this too). */
static int parse_connect_args(int argc, char **argv, const char **addr, bool *sync)
{
    *addr = NULL;
    *sync = argc == 2 && (strcmp(argv[0], "--sync") == 0 || strcmp(argv[1], "--sync") == 0);
    if (*sync) {
        *addr = strcmp(argv[0], "--sync") == 0 ? argv[1] : argv[0];
        if ((*addr)[0] == '-')
            return cli_usage_error("connect --sync takes one address");
        return cli_check_tls_flags(*addr, false);
    }
    if (argc != 1 || argv[0][0] == '-')
        return cli_usage_error(argc == 0 ? "connect needs an address, e.g. 'gnezdo connect "
                                           "localhost:7000'"
                                         : "connect takes exactly one address");
    *addr = argv[0];
    return cli_check_tls_flags(*addr, false);
}

/* Take --retry out of argv: whether it was there. */
static bool take_retry(int *argc, char **argv)
{
    int kept = 0;
    bool retry = false;

    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], "--retry") == 0)
            retry = true;
        else
            argv[kept++] = argv[i];
    }
    *argc = kept;
    return retry;
}

int cli_connect(int argc, char **argv)
{
    const gn_handlers h = {.on_connect = conn_connected,
                           .on_data = print_data,
                           .on_drain = conn_drain,
                           .on_end = NULL,
                           .on_error = conn_error,
                           .on_close = conn_closed,
                           .on_reconnect = conn_reconnect};
    const gn_backoff backoff = {0}; /* gRPC's: 1 s, x1.6, +-20%, at most 120 s */
    bool retry = take_retry(&argc, argv);
    char err[GN_ERRBUF_SIZE];
    gn_options opts;
    gn_conn *conn;
    int rc;

    const char *addr;
    bool sync;

    rc = parse_connect_args(argc, argv, &addr, &sync);
    if (rc == 0 && retry && (sync || cli_is_dgram_address(addr, 0)))
        return cli_usage_error("--retry is for the event-driven client of a stream address: "
                               "'gnezdo connect HOST:PORT --retry'");
    if (rc)
        return rc;
    if (sync)
        return cli_connect_sync(addr);
    if (cli_is_dgram_address(addr, 0))
        return cli_dgram_connect(addr);
    if (gn_loop_new(&connect_loop) < 0)
        return cli_fail("cannot create an event loop");
    opts = cli_options();
    opts.proxy = cli_proxy_for(addr);
    if (retry)
        opts.reconnect = &backoff;
    rc = gn_connect(connect_loop, addr, &h, &opts, &conn, err, sizeof(err));
    if (rc < 0) {
        gn_loop_free(connect_loop);
        return cli_open_error(rc, err);
    }
    cli_catch_signals(connect_loop);
    gn_loop_run(connect_loop);
    cli_stdin_stop(); /* stopped by a signal: a reader thread must post no more */
    gn_loop_free(connect_loop);
    return cli_output_broken ? CLI_FAILURE : connect_status;
}
