/*
 * The CLI's system parts on Windows (cli_sys.h, docs/windows.md): binary
 * standard streams, the console's control events as the stop, CPU times
 * from GetProcessTimes, and CancelSynchronousIo to stop a thread reading
 * stdin.  posix_win.h, included first, has brought windows.h.
 */
#include <io.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli_sys.h"

/* No SIGTERM reaches a Windows process: Ctrl+C and Ctrl+Break are what a
 * person at the console has. */
const int cli_stop_signals[] = {SIGINT, SIGBREAK, 0};

void cli_sys_init(void)
{
    /* send, recv, connect and listen carry bytes; the text the others
     * print keeps its "\n", which the console shows as a new line.  A
     * console's input stays text: its lines then end in "\n" as on a
     * terminal elsewhere, and Ctrl+Z ends the input as people expect. */
    if (!_isatty(_fileno(stdin)))
        _setmode(_fileno(stdin), _O_BINARY);
    _setmode(_fileno(stdout), _O_BINARY);
    _setmode(_fileno(stderr), _O_BINARY);
}

/* ---- stop ------------------------------------------------------------- */

static HANDLE stop_event; /* manual-reset: set once, stays set */

/* On a thread Windows starts for the event: Ctrl+C, Ctrl+Break, or the
 * console window closing (after which Windows ends the process anyway
 * within seconds). */
static BOOL WINAPI console_stop(DWORD event)
{
    if (event != CTRL_C_EVENT && event != CTRL_BREAK_EVENT && event != CTRL_CLOSE_EVENT)
        return FALSE;
    SetEvent(stop_event);
    return TRUE;
}

void cli_stop_prepare(void)
{
    if (!stop_event)
        stop_event = CreateEventW(NULL, TRUE, FALSE, NULL);
    SetConsoleCtrlHandler(console_stop, TRUE);
}

void cli_stop_wait(void)
{
    if (stop_event)
        WaitForSingleObject(stop_event, INFINITE);
}

void cli_stop_request(void)
{
    if (stop_event)
        SetEvent(stop_event);
}

/* ---- limits and CPU --------------------------------------------------- */

/* Sockets are handles, not C runtime descriptors: no limit applies. */
long cli_raise_fd_limit(void)
{
    return -1;
}

static double cpu_us_of(HANDLE process)
{
    FILETIME created, exited, kernel, user;
    ULARGE_INTEGER k, u;

    if (!GetProcessTimes(process, &created, &exited, &kernel, &user))
        return -1;
    k.LowPart = kernel.dwLowDateTime;
    k.HighPart = kernel.dwHighDateTime;
    u.LowPart = user.dwLowDateTime;
    u.HighPart = user.dwHighDateTime;
    return (double)(k.QuadPart + u.QuadPart) / 10.0; /* 100 ns units */
}

double cli_cpu_self_us(void)
{
    return cpu_us_of(GetCurrentProcess());
}

double cli_cpu_process_us(int pid)
{
    HANDLE process = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
    double us;

    if (!process)
        return -1;
    us = cpu_us_of(process);
    CloseHandle(process);
    return us;
}

/* ---- the stdin gate ---------------------------------------------------- */

/* A console or pipe cannot be polled on Windows: the writer reads stdin
 * at once, and a cancel interrupts that read with CancelSynchronousIo.
 * A cancel that comes between the check and the read misses it, and the
 * caller's bounded join then leaves the writer to the process exit. */
struct cli_gate {
    pthread_mutex_t lock;
    HANDLE reader; /* the waiting thread, once it waited */
    bool cancelled;
};

cli_gate *cli_gate_new(void)
{
    cli_gate *g = calloc(1, sizeof(*g));

    if (g)
        pthread_mutex_init(&g->lock, NULL);
    return g;
}

bool cli_gate_wait(cli_gate *g)
{
    bool go;

    pthread_mutex_lock(&g->lock);
    if (!g->reader)
        DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(), &g->reader, 0,
                        FALSE, DUPLICATE_SAME_ACCESS);
    go = !g->cancelled;
    pthread_mutex_unlock(&g->lock);
    return go;
}

void cli_gate_cancel(cli_gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->cancelled = true;
    if (g->reader)
        CancelSynchronousIo(g->reader);
    pthread_mutex_unlock(&g->lock);
}

void cli_gate_free(cli_gate *g)
{
    if (!g)
        return;
    if (g->reader)
        CloseHandle(g->reader);
    pthread_mutex_destroy(&g->lock);
    free(g);
}
