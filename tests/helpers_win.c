/*
 * Test helpers that run other programs and count the process's
 * descriptors and threads, on Windows (helpers_proc.c is POSIX's).  The
 * suites that run the CLI or make certificates are not built there
 * (tests/CMakeLists.txt); the CLI is tested under Wine by
 * tests/windows/cli_wine.sh.  A suite that reaches one of those helpers
 * anyway is skipped, saying why.
 */
#include "helpers.h"

#include <criterion/criterion.h>
#include <net/if.h>
#include <tlhelp32.h>

static const char no_programs[] = "runs Linux programs (sh, the CLI, openssl): not on Windows";

int gn_test_run_argv(char *const argv[], const char *stdin_text, int timeout_ms,
                     struct gn_test_run *run)
{
    (void)argv;
    (void)stdin_text;
    (void)timeout_ms;
    memset(run, 0, sizeof(*run));
    cr_skip_test("%s", no_programs);
    return -1;
}

int gn_test_cli(struct gn_test_run *run, const char *arg, ...)
{
    (void)arg;
    return gn_test_run_argv(NULL, NULL, 0, run);
}

void gn_test_run_free(struct gn_test_run *run)
{
    free(run->out);
    free(run->err);
    run->out = run->err = NULL;
}

/* Handles stand in for descriptors: sockets, events, threads and files
 * all are, so a leak of any shows as one more. */
int gn_test_count_fds(void)
{
    DWORD n = 0;

    return GetProcessHandleCount(GetCurrentProcess(), &n) ? (int)n : -1;
}

int gn_test_count_threads(void)
{
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
    THREADENTRY32 te = {.dwSize = sizeof(te)};
    DWORD me = GetCurrentProcessId();
    int n = 0;

    if (snap == INVALID_HANDLE_VALUE)
        return -1;
    for (BOOL ok = Thread32First(snap, &te); ok; ok = Thread32Next(snap, &te))
        n += te.th32OwnerProcessID == me;
    CloseHandle(snap);
    return n;
}

void gn_test_spawn(struct gn_test_proc *p, char *const argv[], const char *out_path,
                   bool wait_listening)
{
    (void)argv;
    (void)out_path;
    (void)wait_listening;
    memset(p, 0, sizeof(*p));
    cr_skip_test("%s", no_programs);
}

void gn_test_proc_read(struct gn_test_proc *p, int ms)
{
    (void)p;
    (void)ms;
}

int gn_test_proc_wait(struct gn_test_proc *p, int ms, bool term)
{
    (void)p;
    (void)ms;
    (void)term;
    return -1;
}

const char *gn_test_certs(void)
{
    cr_skip_test("TLS is not built on Windows (docs/windows.md)");
    return NULL;
}

const char *gn_test_cert_path(char *buf, size_t len, const char *file)
{
    (void)file;
    if (len)
        buf[0] = '\0';
    cr_skip_test("TLS is not built on Windows (docs/windows.md)");
    return buf;
}

const char *gn_test_lo(const char *text, char *buf, size_t len)
{
    char name[IF_NAMESIZE];
    const char *p = text;
    size_t n = 0;

    if (!if_indextoname(1, name))
        cr_skip_test("no network interface 1 to stand for Linux's lo");
    for (; *p && n + 1 < len; p++) {
        /* "%lo" as a whole scope: before ']' or at the end */
        if (strncmp(p, "%lo", 3) == 0 && (p[3] == ']' || p[3] == '\0')) {
            n += (size_t)snprintf(buf + n, len - n, "%%%s", name);
            p += 2;
            continue;
        }
        buf[n++] = *p;
    }
    cr_assert(!*p && n < len, "%s: no room for the loopback's name %s", text, name);
    buf[n] = '\0';
    return buf;
}

bool gn_test_under_wine(void)
{
    HMODULE ntdll = GetModuleHandleA("ntdll.dll");

    return ntdll && GetProcAddress(ntdll, "wine_get_version");
}
