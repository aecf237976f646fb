/*
 * minicrit's runner: main() of every test program built without
 * Criterion (see criterion/criterion.h).  Like Criterion, it runs each
 * test in a child process of its own, so that a crash, an exit or a
 * hang ends that test alone: the program starts itself again with
 * "--minicrit-run suite/name", waits for that child (killing it at the
 * test's timeout) and reads the result from its exit status.
 */
#ifndef _WIN32
#define _POSIX_C_SOURCE 200809L
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "criterion/criterion.h"

#ifdef _WIN32
#include <windows.h>
#else
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
extern char **environ;
#endif

/* A child's exit status says how its test ended; any other status (an
 * exit() in the test, even exit(0), abort(), a signal) is a crash. */
enum { MC_PASSED = 97, MC_FAILED = 98, MC_SKIPPED = 99 };

static struct mc_test *mc_tests;
static struct mc_suite *mc_suites;

/* The child's state: where a fatal assert or a skip jumps to. */
static jmp_buf mc_jump;
static int mc_failures;
static bool mc_was_skipped;
static const struct mc_test *mc_current;

static int mc_compare(const struct mc_test *a, const struct mc_test *b)
{
    int by_suite = strcmp(a->suite, b->suite);
    return by_suite ? by_suite : strcmp(a->name, b->name);
}

/* Kept sorted (by suite, then name) so that runs are in a stable order. */
void mc_register_test(struct mc_test *test)
{
    struct mc_test **at = &mc_tests;
    while (*at && mc_compare(*at, test) < 0)
        at = &(*at)->next;
    test->next = *at;
    *at = test;
}

void mc_register_suite(struct mc_suite *suite)
{
    suite->next = mc_suites;
    mc_suites = suite;
}

static const struct mc_suite *mc_find_suite(const char *name)
{
    for (const struct mc_suite *s = mc_suites; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

__attribute__((format(printf, 6, 0))) static void mc_report(const char *file, int line,
                                                            const char *expr, const char *actual,
                                                            const char *expected, const char *fmt,
                                                            va_list ap)
{
    fprintf(stderr, "%s:%d: Assertion failed:", file, line);
    if (fmt[1]) /* fmt is " " followed by the caller's message */
        vfprintf(stderr, fmt, ap);
    else
        fprintf(stderr, " %s", expr);
    if (actual)
        fprintf(stderr, "\n    actual: \"%s\"\n    expected: \"%s\"", actual, expected);
    fputc('\n', stderr);
}

void mc_assert_failed(const char *file, int line, const char *expr, const char *actual,
                      const char *expected, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mc_report(file, line, expr, actual, expected, fmt, ap);
    va_end(ap);
    mc_failures++;
    longjmp(mc_jump, 1);
}

void mc_expect_failed(const char *file, int line, const char *expr, const char *actual,
                      const char *expected, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mc_report(file, line, expr, actual, expected, fmt, ap);
    va_end(ap);
    mc_failures++;
}

void mc_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[SKIP] %s::%s", mc_current->suite, mc_current->name);
    if (fmt[1]) {
        fputc(':', stderr);
        vfprintf(stderr, fmt, ap);
    }
    fputc('\n', stderr);
    va_end(ap);
    mc_was_skipped = true;
    longjmp(mc_jump, 1);
}

void mc_log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("[----]", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

#ifdef _WIN32
static LONG WINAPI mc_crashed(EXCEPTION_POINTERS *exception)
{
    (void)exception;
    return EXCEPTION_EXECUTE_HANDLER;
}
#endif

/* Runs in the child: suite init, test init, test, test fini, suite fini.
 * A fatal assert or a skip ends the test part; the fini still run. */
static int mc_run_child(const struct mc_test *test)
{
    static const struct mc_suite *suite; /* static: kept across longjmp */
    suite = mc_find_suite(test->suite);
    mc_current = test;
#ifdef _WIN32
    /* A crash ends the child with its exception code, without a dialog
     * or (under Wine) a debugger's dump. */
    SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX);
    SetUnhandledExceptionFilter(mc_crashed);
#endif
    if (!setjmp(mc_jump)) {
        if (suite && suite->init)
            suite->init();
        if (test->init)
            test->init();
        test->fn();
    }
    if (!setjmp(mc_jump)) {
        if (test->fini)
            test->fini();
        if (suite && suite->fini)
            suite->fini();
    }
    fflush(NULL);
    if (mc_failures)
        return MC_FAILED;
    return mc_was_skipped ? MC_SKIPPED : MC_PASSED;
}

/* How a child ended: one of the MC_ codes, or a crash described in why. */
static int mc_status(bool timed_out, double timeout, unsigned long code, bool signalled, char *why,
                     size_t size)
{
    if (timed_out)
        snprintf(why, size, "TIMEOUT after %.1f s", timeout);
    else if (signalled)
        snprintf(why, size, "CRASH (signal %lu)", code);
    else if (code >= 0xC0000000UL)
        snprintf(why, size, "CRASH (exception 0x%08lX)", code);
    else if (code == MC_PASSED || code == MC_FAILED || code == MC_SKIPPED)
        return (int)code;
    else
        snprintf(why, size, "CRASH (exit status %lu)", code);
    return -1;
}

#ifdef _WIN32
/* Every child in one job that dies with the runner: when ctest kills a
 * runner at its timeout, no test process is left to keep Wine's server
 * and the test's output pipe alive. */
static HANDLE mc_job(void)
{
    static HANDLE job;
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION limits = {
        .BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE};

    if (!job) {
        job = CreateJobObjectA(NULL, NULL);
        if (job)
            SetInformationJobObject(job, JobObjectExtendedLimitInformation, &limits,
                                    sizeof(limits));
    }
    return job;
}

static int mc_spawn(const char *self, const struct mc_test *test, double timeout, char *why,
                    size_t size)
{
    char command[4096];
    STARTUPINFOA startup = {.cb = sizeof(startup)};
    PROCESS_INFORMATION child;
    snprintf(command, sizeof(command), "\"%s\" --minicrit-run %s/%s", self, test->suite,
             test->name);
    if (!CreateProcessA(self, command, NULL, NULL, TRUE, 0, NULL, NULL, &startup, &child)) {
        snprintf(why, size, "cannot start %s: error %lu", self, GetLastError());
        return -1;
    }
    if (mc_job())
        AssignProcessToJobObject(mc_job(), child.hProcess);
    DWORD wait_ms = timeout > 0 ? (DWORD)(timeout * 1000) : INFINITE;
    bool timed_out = WaitForSingleObject(child.hProcess, wait_ms) == WAIT_TIMEOUT;
    if (timed_out) {
        TerminateProcess(child.hProcess, 1);
        WaitForSingleObject(child.hProcess, INFINITE);
    }
    DWORD code = 1;
    GetExitCodeProcess(child.hProcess, &code);
    CloseHandle(child.hThread);
    CloseHandle(child.hProcess);
    return mc_status(timed_out, timeout, code, false, why, size);
}

static const char *mc_self(const char *argv0)
{
    static char path[MAX_PATH];
    DWORD n = GetModuleFileNameA(NULL, path, sizeof(path));
    return n > 0 && n < sizeof(path) ? path : argv0;
}
#else
static double mc_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static int mc_spawn(const char *self, const struct mc_test *test, double timeout, char *why,
                    size_t size)
{
    char id[512];
    snprintf(id, sizeof(id), "%s/%s", test->suite, test->name);
    char *args[] = {(char *)self, "--minicrit-run", id, NULL};
    pid_t pid;
    int err = posix_spawn(&pid, self, NULL, NULL, args, environ);
    if (err) {
        snprintf(why, size, "cannot start %s: %s", self, strerror(err));
        return -1;
    }
    /* Poll every 10 ms until the child ends or its deadline passes. */
    double deadline = mc_now() + timeout;
    bool timed_out = false;
    int status = 0;
    for (;;) {
        pid_t got = waitpid(pid, &status, timeout > 0 ? WNOHANG : 0);
        if (got == pid || (got < 0 && errno != EINTR))
            break;
        if (got == 0 && mc_now() >= deadline) {
            timed_out = true;
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        if (got == 0)
            nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    bool signalled = WIFSIGNALED(status);
    unsigned long code = (unsigned long)(signalled ? WTERMSIG(status) : WEXITSTATUS(status));
    return mc_status(timed_out, timeout, code, signalled, why, size);
}

/* Descriptors the runner inherited (from a shell, ctest, a CI harness)
 * are not passed on to the tests: like Criterion's, a test starts with
 * stdin, stdout and stderr only (test_server_limits counts its own). */
static void mc_hide_inherited_descriptors(void)
{
    long max = sysconf(_SC_OPEN_MAX);
    for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* The running program, for re-exec: argv[0] unless it was found in PATH. */
static const char *mc_self(const char *argv0)
{
    return strchr(argv0, '/') || access("/proc/self/exe", X_OK) != 0 ? argv0 : "/proc/self/exe";
}
#endif

/* Criterion's --filter glob on "suite/name": '*' any run, '?' one char. */
static bool mc_glob(const char *pattern, const char *text)
{
    if (*pattern == '*')
        return mc_glob(pattern + 1, text) || (*text && mc_glob(pattern, text + 1));
    if (!*pattern)
        return !*text;
    return *text && (*pattern == '?' || *pattern == *text) && mc_glob(pattern + 1, text + 1);
}

static bool mc_selected(const struct mc_test *test, const char *filter)
{
    char id[512];
    snprintf(id, sizeof(id), "%s/%s", test->suite, test->name);
    return !filter || mc_glob(filter, id);
}

int main(int argc, char **argv)
{
    const char *filter = NULL;
    bool verbose = false, list = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--minicrit-run") == 0 && i + 1 < argc) {
            for (struct mc_test *t = mc_tests; t; t = t->next)
                if (mc_selected(t, argv[i + 1]))
                    return mc_run_child(t);
            fprintf(stderr, "minicrit: no test %s\n", argv[i + 1]);
            return 2;
        } else if ((strcmp(arg, "--filter") == 0 || strcmp(arg, "--jobs") == 0 ||
                    strcmp(arg, "-j") == 0) &&
                   i + 1 < argc) {
            if (arg[2] == 'f')
                filter = argv[i + 1];
            i++; /* --jobs N: the tests run one at a time anyway */
        } else if (strncmp(arg, "--filter=", 9) == 0) {
            filter = arg + 9;
        } else if (strncmp(arg, "--jobs=", 7) == 0 || strncmp(arg, "-j", 2) == 0) {
        } else if (strcmp(arg, "--verbose") == 0 || strncmp(arg, "--verbose=", 10) == 0) {
            verbose = true;
        } else if (strcmp(arg, "--list") == 0) {
            list = true;
        } else {
            fprintf(stderr,
                    "usage: %s [--filter SUITE/NAME-GLOB] [--jobs N] [--verbose] [--list]\n",
                    argv[0]);
            return 2;
        }
    }

    const char *self = mc_self(argv[0]);
#ifndef _WIN32
    mc_hide_inherited_descriptors();
#endif
    int tested = 0, passing = 0, failing = 0, crashing = 0, skipped = 0;
    for (const struct mc_test *t = mc_tests; t; t = t->next) {
        if (!mc_selected(t, filter))
            continue;
        if (list) {
            printf("%s/%s\n", t->suite, t->name);
            continue;
        }
        const struct mc_suite *suite = mc_find_suite(t->suite);
        if (t->disabled) {
            fprintf(stderr, "[SKIP] %s::%s: disabled\n", t->suite, t->name);
            skipped++;
            continue;
        }
        double timeout = t->timeout > 0 ? t->timeout : suite ? suite->timeout : 0;
        char why[256] = "";
        if (verbose)
            fprintf(stderr, "[RUN ] %s::%s\n", t->suite, t->name);
        int result = mc_spawn(self, t, timeout, why, sizeof(why));
        if (result == MC_SKIPPED) {
            skipped++;
            continue;
        }
        tested++;
        if (result == MC_PASSED) {
            passing++;
            if (verbose)
                fprintf(stderr, "[PASS] %s::%s\n", t->suite, t->name);
        } else {
            *(result == MC_FAILED ? &failing : &crashing) += 1;
            fprintf(stderr, "[FAIL] %s::%s%s%s\n", t->suite, t->name, *why ? ": " : "", why);
        }
    }
    if (list)
        return 0;
    fprintf(stderr,
            "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: %d | "
            "Skipped: %d\n",
            tested, passing, failing, crashing, skipped);
    return failing || crashing ? 1 : 0;
}
