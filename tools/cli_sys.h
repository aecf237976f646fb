/*
 * What the CLI needs from the system beyond sockets, one file per system:
 * cli_posix.c (Linux) and cli_win.c (Windows, docs/windows.md).  The
 * commands call these and hold no #ifdef of their own.
 */
#ifndef CLI_SYS_H
#define CLI_SYS_H

#include <fcntl.h>
#include <stdbool.h>

/* Files are opened O_BINARY: Windows' C runtime would otherwise turn
 * "\n" into "\r\n" and stop at a ^Z.  No such mode elsewhere. */
#ifndef O_BINARY
#define O_BINARY 0
#endif

/* Once, first thing in main: a closed output pipe is an error to report,
 * not a signal to die of (POSIX); stdin (unless a console) and stdout
 * carry bytes as they are, not text (Windows). */
void cli_sys_init(void);

/* The signals that stop a command, 0-terminated: SIGINT and SIGTERM on
 * POSIX; on Windows the console's Ctrl+C and Ctrl+Break (SIGINT,
 * SIGBREAK), as no other signal reaches a process there. */
extern const int cli_stop_signals[];

/* The threaded servers' stop, for code that runs no event loop:
 * cli_stop_prepare before any thread is started (POSIX blocks the stop
 * signals, so the threads started afterwards inherit the block; Windows
 * installs a console handler); cli_stop_wait until a stop signal arrives
 * or cli_stop_request is called (from any thread). */
void cli_stop_prepare(void);
void cli_stop_wait(void);
void cli_stop_request(void);

/* Raise the open-descriptor limit to its hard limit (the soft default,
 * often 1024, is far below what a busy server needs); the limit now, or
 * -1 when there is none to speak of (unlimited, or Windows, whose
 * sockets are no descriptors). */
long cli_raise_fd_limit(void);

/* CPU time, user and system, all threads, in microseconds: this process's,
 * or process pid's (bench --pid); -1 when it cannot be read. */
double cli_cpu_self_us(void);
double cli_cpu_process_us(int pid);

/* connect --sync's stdin writer waits for stdin here, so that the reader
 * of the connection can stop it: cli_gate_wait returns true when stdin
 * can be read, false once cli_gate_cancel was called (from any thread)
 * or the wait failed.  Where stdin cannot be waited on (Windows), the
 * wait returns at once and the cancel interrupts the read as it can; a
 * writer left stuck in it is left to the process exit. */
typedef struct cli_gate cli_gate;
cli_gate *cli_gate_new(void); /* NULL when out of memory or descriptors */
bool cli_gate_wait(cli_gate *g);
void cli_gate_cancel(cli_gate *g);
void cli_gate_free(cli_gate *g); /* after the writer was joined */

#endif
