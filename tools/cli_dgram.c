/*
 * The CLI's datagram side: `listen` and `connect` with udp:// and
 * unixgram: addresses (cli_net.c hands them over).
 *
 * listen prints or echoes each datagram and logs its sender and size;
 * connect sends each stdin line (newline included) as one datagram,
 * prints what comes back, and after the end of stdin waits a second for
 * late replies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gnezdo.h"

#define LINGER_MS 1000 /* after stdin ends, for replies still coming */

bool cli_is_dgram_address(const char *addr, unsigned parse_flags)
{
    gn_endpoint ep;
    gn_transport t;

    if (gn_endpoint_parse(addr, parse_flags, &ep, NULL, 0) < 0)
        return false;
    t = gn_endpoint_transport(&ep);
    return t == GN_TRANSPORT_UDP || t == GN_TRANSPORT_UNIXGRAM;
}

static int open_failed(gn_loop *loop, int rc, const char *err)
{
    gn_loop_free(loop);
    return cli_open_error(rc, err);
}

/* A Unix sender that never bound a name cannot be answered. */
static bool is_unnamed(const gn_endpoint *ep)
{
    size_t len = 0;

    return gn_endpoint_family(ep) == GN_FAMILY_UNIX && gn_endpoint_path(ep, &len) && len == 0 &&
           !gn_endpoint_is_abstract(ep);
}

static void log_error(gn_dgram *sock, int code, const char *message)
{
    (void)sock;
    (void)code;
    fprintf(stderr, "error      %s\n", message);
}

/* ---- listen --------------------------------------------------------- */

static enum cli_dgram_mode listen_mode;

static gn_loop *dgram_loop; /* of the listening socket */

/* Why not to echo to from, or NULL.  A UDP source address can be forged:
 * one datagram "from" this socket's own port, or from another echo or
 * chargen service (ports below 1024), would start a loop that never
 * ends.  Clients send from ephemeral ports, so they lose nothing. */
static const char *echo_refusal(gn_dgram *sock, const gn_endpoint *from)
{
    const gn_endpoint *local = gn_dgram_local(sock);

    if (is_unnamed(from))
        return "an unnamed sender cannot be answered";
    if (gn_endpoint_family(from) == GN_FAMILY_UNIX)
        return local && gn_endpoint_equal(from, local) ? "it is this socket" : NULL;
    if (local && gn_endpoint_port(from) == gn_endpoint_port(local))
        return "its port is this socket's: an echo loop";
    if (gn_endpoint_port(from) < 1024)
        return "a service port: an echo loop with another server";
    return NULL;
}

#define LOG_LINES_PER_SECOND 20

static uint64_t log_second;
static unsigned log_lines, log_skipped;

/* At most LOG_LINES_PER_SECOND lines a second, then a count: a flood must
 * not become a flood of log. */
static bool may_log(void)
{
    uint64_t second = gn_loop_now(dgram_loop) / 1000;

    if (second != log_second) {
        if (log_skipped)
            fprintf(stderr, "(%u more datagram lines not shown)\n", log_skipped);
        log_second = second;
        log_lines = log_skipped = 0;
    }
    if (log_lines < LOG_LINES_PER_SECOND) {
        log_lines++;
        return true;
    }
    log_skipped++;
    return false;
}

static void listen_datagram(gn_dgram *sock, const char *data, size_t len, const gn_endpoint *from)
{
    bool log = may_log();
    const char *refusal;
    char who[GN_ENDPOINT_STRLEN] = "an unnamed sender";
    int rc;

    if (!is_unnamed(from))
        gn_endpoint_format(from, who, sizeof(who));
    if (log)
        fprintf(stderr, "datagram from %s: %zu bytes\n", who, len);
    switch (listen_mode) {
    case CLI_DGRAM_ECHO:
        refusal = echo_refusal(sock, from);
        if (refusal) {
            if (!is_unnamed(from) && log)
                fprintf(stderr, "not echoed to %s: %s\n", who, refusal);
            break;
        }
        rc = gn_dgram_send_to(sock, data, len, from);
        if (rc < 0 && log)
            fprintf(stderr, "error      cannot echo to %s: %s\n", who, gn_strerror(rc));
        break;
    case CLI_DGRAM_PRINT:
        if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0) {
            cli_output_failed();
            gn_loop_stop(dgram_loop);
        }
        break;
    case CLI_DGRAM_DISCARD:
        break;
    }
}

int cli_dgram_listen(const char *addr, enum cli_dgram_mode mode)
{
    const gn_dgram_handlers h = {.on_datagram = listen_datagram, .on_error = log_error};
    char err[GN_ERRBUF_SIZE], text[GN_ENDPOINT_STRLEN];
    gn_loop *loop;
    gn_dgram *sock;
    int rc;

    listen_mode = mode;
    if (gn_loop_new(&loop) < 0)
        return cli_fail("cannot create an event loop");
    dgram_loop = loop;
    rc = gn_dgram_open(loop, addr, GN_DGRAM_BIND, &h, NULL, &sock, err, sizeof(err));
    if (rc < 0)
        return open_failed(loop, rc, err);
    /* Handlers first: a supervisor may signal as soon as it reads the
     * "listening on" line. */
    cli_catch_signals(loop);
    gn_endpoint_format(gn_dgram_local(sock), text, sizeof(text));
    fprintf(stderr, "listening on %s\n", text);
    gn_loop_run(loop);
    gn_dgram_close(sock);
    gn_loop_run(loop);
    gn_loop_free(loop);
    return cli_output_broken ? CLI_FAILURE : CLI_OK;
}

/* ---- connect -------------------------------------------------------- */

/* stdin is read on the loop's thread (cli_stdin.c) and cut into lines;
 * past STDIN_BEHIND bytes queued for the socket (half its default
 * max_queue, so a chunk of lines more always fits) the reading waits for
 * on_drain, so a fast stdin cannot fill memory. */
#define STDIN_BEHIND (512u << 10)

static struct {
    gn_loop *loop;
    gn_dgram *sock;
    bool closed;
    uint64_t linger_timer;
    char pending[65536]; /* a line begun, not yet ended */
    size_t have;
} cs;

static void send_line(const char *data, size_t len)
{
    int rc = gn_dgram_send(cs.sock, data, len);

    if (rc < 0)
        fprintf(stderr, "gnezdo: a line of %zu bytes was not sent: %s\n", len, gn_strerror(rc));
}

static void linger_done(gn_loop *loop, uint64_t id, void *arg)
{
    (void)loop;
    (void)id;
    (void)arg;
    cs.linger_timer = 0;
    gn_dgram_close(cs.sock);
}

/* Send the whole lines in cs.pending (and all of it when full, a line
 * longer than the buffer going in pieces); keep the rest. */
static void send_whole_lines(void)
{
    size_t start = 0;

    for (char *nl; (nl = memchr(cs.pending + start, '\n', cs.have - start));) {
        size_t end = (size_t)(nl - cs.pending) + 1;
        send_line(cs.pending + start, end - start);
        start = end;
    }
    if (start == 0 && cs.have == sizeof(cs.pending)) {
        send_line(cs.pending, cs.have);
        start = cs.have;
    }
    memmove(cs.pending, cs.pending + start, cs.have - start);
    cs.have -= start;
}

static void stdin_lines(const char *data, size_t len, void *arg)
{
    (void)arg;
    if (cs.closed)
        return;
    if (len == 0) { /* the last line may lack its newline */
        if (cs.have > 0)
            send_line(cs.pending, cs.have);
        cs.have = 0;
        gn_timer_start(cs.loop, LINGER_MS, 0, linger_done, NULL, &cs.linger_timer);
        return;
    }
    while (len > 0) {
        size_t take = sizeof(cs.pending) - cs.have < len ? sizeof(cs.pending) - cs.have : len;
        memcpy(cs.pending + cs.have, data, take);
        cs.have += take;
        data += take;
        len -= take;
        send_whole_lines();
    }
    if (gn_dgram_queued(cs.sock) >= STDIN_BEHIND)
        cli_stdin_pause();
}

static void connect_drain(gn_dgram *sock)
{
    (void)sock;
    cli_stdin_resume();
}

static void connect_datagram(gn_dgram *sock, const char *data, size_t len, const gn_endpoint *from)
{
    (void)sock;
    (void)from;
    fwrite(data, 1, len, stdout);
    fflush(stdout);
}

static void connect_error(gn_dgram *sock, int code, const char *message)
{
    (void)sock;
    (void)code;
    fprintf(stderr, "gnezdo: %s\n", message);
}

static void connect_closed(gn_dgram *sock, int reason)
{
    (void)sock;
    (void)reason;
    cs.closed = true;
    cli_stdin_stop();
}

int cli_dgram_connect(const char *addr)
{
    const gn_dgram_handlers h = {.on_datagram = connect_datagram,
                                 .on_error = connect_error,
                                 .on_drain = connect_drain,
                                 .on_close = connect_closed};
    char err[GN_ERRBUF_SIZE], local[GN_ENDPOINT_STRLEN], remote[GN_ENDPOINT_STRLEN];
    int rc;

    if (gn_loop_new(&cs.loop) < 0)
        return cli_fail("cannot create an event loop");
    rc = gn_dgram_open(cs.loop, addr, GN_DGRAM_CONNECT, &h, NULL, &cs.sock, err, sizeof(err));
    if (rc < 0)
        return open_failed(cs.loop, rc, err);
    cli_catch_signals(cs.loop);
    gn_endpoint_format(gn_dgram_local(cs.sock), local, sizeof(local));
    gn_endpoint_format(gn_dgram_remote(cs.sock), remote, sizeof(remote));
    fprintf(stderr, "sending    %s -> %s\n", local, remote);
    rc = cli_stdin_start(cs.loop, stdin_lines, NULL);
    if (rc < 0) {
        gn_dgram_close(cs.sock);
        gn_loop_run(cs.loop);
        gn_loop_free(cs.loop);
        return cli_fail("cannot read stdin: %s", gn_strerror(rc));
    }
    gn_loop_run(cs.loop);
    /* Stopped by a signal, or the socket closed after the linger. */
    bool was_closed = cs.closed;
    cs.closed = true;
    cli_stdin_stop();
    if (!was_closed)
        gn_dgram_close(cs.sock);
    if (cs.linger_timer)
        gn_timer_cancel(cs.loop, cs.linger_timer);
    gn_loop_run(cs.loop);
    gn_loop_free(cs.loop);
    return 0;
}
