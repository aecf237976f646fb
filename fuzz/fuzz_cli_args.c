/*
 * libFuzzer target for the CLI's argument parsing: the input is a
 * command line, its words separated by NUL bytes ("ports\0--tcp\0http"
 * is `gnezdo ports --tcp http`).  It goes through what main does before
 * a command runs (the TLS flags taken out of argv) and then through the
 * parse step of the command named (ports, addr, listen, connect, send,
 * recv), never through the command itself, which would open sockets.
 * ports also looks its query up in the registry, as it would.  Checks:
 *  - no read outside the words (ASan: each is a heap copy of its bytes);
 *  - every answer is 0 or CLI_USAGE (2), never a crash or an exit;
 *  - the words left are the words given, in order, fewer at most, and
 *    what a parser picks out (an address, a query, a path) is one of them.
 * The messages of usage errors are thrown away (stderr goes to
 * /dev/null while parsing).
 */
#include <fcntl.h>
#include <unistd.h>

#define main gnezdo_cli_main /* tools/gnezdo.c, whole, without its main */
int gnezdo_cli_main(int argc, char **argv);
#include "gnezdo.c"
#undef main

#include "fuzz_cli.h"

#define MAX_WORDS 24

static int saved_stderr = -1; /* while parsing */

static void restore_stderr(void)
{
    if (saved_stderr >= 0) {
        dup2(saved_stderr, 2);
        close(saved_stderr);
        saved_stderr = -1;
    }
}

static void fail(const char *what, const char *word)
{
    restore_stderr();
    fprintf(stderr, "fuzz_cli_args: %s%s%s\n", what, word ? ": " : "", word ? word : "");
    abort();
}

static void expect_answer(int rc, const char *parser)
{
    if (rc != 0 && rc != CLI_USAGE)
        fail("a parser answered neither 0 nor CLI_USAGE", parser);
}

/* word is one of the words given (or NULL, or a literal default). */
static void expect_word(const char *word, char **given, int n, const char *parser)
{
    for (int i = 0; i < n; i++)
        if (word == given[i])
            return;
    fail("picked out something that is not one of the words", parser);
}

/* argv[0..argc) is given[0..n) with some words left out, in order. */
static void expect_subsequence(char **argv, int argc, char **given, int n, const char *who)
{
    int at = 0;

    for (int i = 0; i < argc; i++) {
        while (at < n && given[at] != argv[i])
            at++;
        if (at++ == n)
            fail("the words left are not the words given, in order", who);
    }
}

static void parse_ports(int argc, char **argv, char **given, int n)
{
    static const gn_service *found[MAX_RESULTS];
    struct ports_args a;
    int rc = parse_ports_args(argc, argv, &a), count;

    expect_answer(rc, "ports");
    if (rc)
        return;
    expect_word(a.query, given, n, "ports");
    count = lookup_ports(&a, found);
    if (count > MAX_RESULTS || (count < 0 && count != PORT_OUT_OF_RANGE && count != GN_EINVAL))
        fail("a registry lookup answered out of range", a.query);
    for (int i = 0; i < count; i++)
        if (!found[i] || !found[i]->description)
            fail("a registry lookup gave an empty entry", a.query);
}

static void parse_command(int argc, char **argv, char **given, int n)
{
    const char *cmd = argv[1], *addr, *path;
    bool json, listen, sync, quiet, hash;
    size_t threads;
    int rest = argc - 2, rc;

    argv += 2;
    if (strcmp(cmd, "ports") == 0) {
        parse_ports(rest, argv, given, n);
    } else if (strcmp(cmd, "addr") == 0) {
        rc = parse_addr_args(rest, argv, &addr, &json, &listen);
        expect_answer(rc, "addr");
        if (rc == 0)
            expect_word(addr, given, n, "addr");
    } else if (strcmp(cmd, "listen") == 0) {
        rc = fuzz_parse_listen_args(rest, argv, &addr, &threads);
        expect_answer(rc, "listen");
        if (rc == 0)
            expect_word(addr, given, n, "listen");
        if (rc == 0 && threads > 100000)
            fail("listen --threads past 100000", addr);
    } else if (strcmp(cmd, "connect") == 0) {
        rc = fuzz_parse_connect_args(rest, argv, &addr, &sync);
        expect_answer(rc, "connect");
        if (rc == 0)
            expect_word(addr, given, n, "connect");
    } else if (strcmp(cmd, "send") == 0) {
        rc = fuzz_parse_send_args(&rest, argv, &quiet, &hash);
        expect_answer(rc, "send");
        if (rc == 0) /* on a usage error the CLI stops, argv as it may be */
            expect_subsequence(argv, rest, given, n, "send");
        if (rc == 0 && rest != 2)
            fail("send accepted other than a file and an address", NULL);
    } else if (strcmp(cmd, "recv") == 0) {
        rc = fuzz_parse_recv_args(&rest, argv, &quiet, &hash, &path);
        expect_answer(rc, "recv");
        if (rc == 0) /* on a usage error the CLI stops, argv as it may be */
            expect_subsequence(argv, rest, given, n, "recv");
        if (rc == 0 && strcmp(path, "-") != 0)
            expect_word(path, given, n, "recv");
    }
}

/* The parsers' usage errors go to stderr: to /dev/null while fuzzing. */
static void quiet_stderr(void)
{
    static int devnull = -2;

    if (devnull == -2)
        devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    fflush(stderr);
    saved_stderr = dup(2);
    if (devnull >= 0 && saved_stderr >= 0)
        dup2(devnull, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *given[MAX_WORDS + 2], *argv[MAX_WORDS + 2];
    int n = 0, argc, rc;

    given[n++] = strdup("gnezdo");
    for (size_t at = 0; at <= size && n < MAX_WORDS + 1;) {
        const uint8_t *end = memchr(data + at, '\0', size - at);
        size_t len = end ? (size_t)(end - (data + at)) : size - at;
        given[n] = malloc(len + 1);
        if (!given[n])
            abort();
        memcpy(given[n], data + at, len);
        given[n++][len] = '\0';
        at += len + 1;
    }
    memcpy(argv, given, sizeof(given[0]) * (size_t)n);
    argv[n] = NULL;
    argc = n;
    quiet_stderr();
    /* main: a command is needed, then the TLS flags leave argv. */
    if (argc >= 2) {
        rc = take_tls_options(&argc, argv);
        expect_answer(rc, "the TLS flags");
        if (rc == 0) { /* on a usage error main stops, argv as it may be */
            expect_subsequence(argv, argc, given, n, "the TLS flags");
            if (argv[0] != given[0] || argv[1] != given[1])
                fail("the TLS flags took the program or the command", NULL);
            parse_command(argc, argv, given, n);
        }
    }
    restore_stderr();
    for (int i = 0; i < n; i++)
        free(given[i]);
    return 0;
}
