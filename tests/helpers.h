/* Helpers shared by the tests: running a program and capturing its output. */
#ifndef GN_TEST_HELPERS_H
#define GN_TEST_HELPERS_H

#include <stdbool.h>
#include <stddef.h>

struct gn_test_run {
    int status; /* exit code, or 128 + signal number */
    char *out;  /* stdout, NUL-terminated (free with gn_test_run_free) */
    size_t out_len;
    char *err; /* stderr, NUL-terminated */
    size_t err_len;
};

/*
 * gn_test_run_argv - run argv[0] (a path) with argv, stdin from
 * stdin_text (may be NULL: /dev/null), and capture stdout and stderr.
 * Kills the child after timeout_ms.  Returns 0 or -1 (could not run).
 */
int gn_test_run_argv(char *const argv[], const char *stdin_text, int timeout_ms,
                     struct gn_test_run *run);

/* gn_test_cli - gn_test_run_argv for the built gnezdo CLI; args end in NULL. */
int gn_test_cli(struct gn_test_run *run, const char *arg, ...);

void gn_test_run_free(struct gn_test_run *run);

/* gn_test_count_fds - how many descriptors this process has open. */
int gn_test_count_fds(void);
/* gn_test_count_threads - how many threads this process has now. */
int gn_test_count_threads(void);
/* gn_test_free_port - a loopback TCP port nothing listens on now (bound
 * and closed again; another process may take it before it is used). */
unsigned gn_test_free_port(void);
/* gn_test_port_accepts - whether something accepts on 127.0.0.1:port
 * within about 5 s (a peer program the test started). */
bool gn_test_port_accepts(unsigned port);

#endif

/* ---- async helpers ---- */
#include "gnezdo.h"

/* gn_test_listen - listen on addr with handlers; writes the actual address
 * ("127.0.0.1:40123") into text.  Fails the test on error.  Unless opts
 * sets loops, the server has gn_test_loops() loops. */
gn_server *gn_test_listen(gn_loop *loop, const char *addr, const gn_handlers *h,
                          const gn_options *opts, char *text, size_t len);

/* gn_test_loops - the loops a test server asks for (gn_options.loops):
 * GN_TEST_LOOPS from the environment (ctest runs some suites again with
 * 2), else 0: the test's own loop alone. */
size_t gn_test_loops(void);

/*
 * Checks inside handlers that may run on a server's other loops
 * (GN_TEST_LOOPS): Criterion's cr_ macros talk to the runner and must not
 * be called from two threads at once, so a handler records a failed
 * check with GN_TEST_CHECK (thread-safe; the first message is kept) and
 * the test's thread asserts gn_test_checks_ok() at its end.
 */
#define GN_TEST_CHECK(cond, ...)                                                                   \
    do {                                                                                           \
        if (!(cond))                                                                               \
            gn_test_check_failed(__FILE__, __LINE__, #cond, " " __VA_ARGS__);                      \
    } while (0)
void gn_test_check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Asserts (on the test's thread) that no GN_TEST_CHECK failed, and
 * forgets the failures for the next test. */
void gn_test_checks_ok(void);

/* gn_test_connect_fd - a blocking client socket connected to text
 * ("127.0.0.1:40123"), or -1. */
int gn_test_connect_fd(const char *text);

/* gn_test_raw_listener - a plain listening socket on 127.0.0.1 (any
 * port), its address as prefix + "127.0.0.1:PORT" in addr.  Fails the
 * test on error. */
int gn_test_raw_listener(const char *prefix, char *addr, size_t len, int backlog);

/* gn_test_run_loop_for - run loop until it returns by itself, or stop it
 * after ms (a watchdog thread); returns gn_loop_run's result, or
 * GN_ETIMEDOUT when the watchdog had to stop it. */
int gn_test_run_loop_for(gn_loop *loop, unsigned ms);

/* ---- background processes ---- */
#include <sys/types.h>

struct gn_test_proc {
    pid_t pid;
    int err_fd;      /* the child's stderr, read into log */
    char log[16384]; /* what it wrote to stderr so far */
    size_t log_len;
    char addr[128]; /* from its "listening on ADDR" line, if any */
};

/*
 * gn_test_spawn - start argv[0] (a path) with argv in the background,
 * stdin and stdout on /dev/null unless out_path names a file for stdout;
 * when wait_listening, wait up to 5 s for "listening on ADDR" on its
 * stderr and keep ADDR in p->addr.  Fails the test on error.
 */
void gn_test_spawn(struct gn_test_proc *p, char *const argv[], const char *out_path,
                   bool wait_listening);
/* gn_test_proc_read - read the child's stderr for up to ms into p->log. */
void gn_test_proc_read(struct gn_test_proc *p, int ms);
/* gn_test_proc_wait - wait up to ms for the child to exit (SIGTERM first
 * when term, SIGKILL at the deadline); returns the exit code or 128 + the
 * signal number. */
int gn_test_proc_wait(struct gn_test_proc *p, int ms, bool term);

/* ---- TLS ---- */

/*
 * gn_test_certs - the directory holding the test certificates of
 * tests/make_certs.sh (made once per process with the openssl command,
 * removed at exit); gn_test_cert_path joins it with a file name into buf.
 */
const char *gn_test_certs(void);
const char *gn_test_cert_path(char *buf, size_t len, const char *file);

/* ---- Valgrind ---- */

/*
 * gn_test_ms - ms, or 20 times ms under Valgrind (tests/valgrind.sh sets
 * GN_TEST_VALGRIND), where code runs many times slower: for a bound on
 * work that must finish in time, never for a wait that is the point.
 */
unsigned gn_test_ms(unsigned ms);

/* ---- what differs by system ---- */

/*
 * gn_test_lo - text with each IPv6 scope "%lo" (Linux's loopback
 * interface, index 1) naming the loopback interface of this system: text
 * itself on Linux; on Windows, whose names differ ("loopback_0"), a copy
 * in buf with the name of interface 1, or the test skips if it has none.
 */
const char *gn_test_lo(const char *text, char *buf, size_t len);

#ifdef _WIN32
/* gn_test_under_wine - whether Wine runs this program (ntdll exports
 * wine_get_version), for a test of what Wine does not do as Windows does:
 * it skips there, saying what. */
bool gn_test_under_wine(void);
#endif
