/*
 * The CLI's system parts on POSIX systems (cli_sys.h): signals, the
 * descriptor limit, CPU times from getrusage and /proc, and a pipe that
 * stops a thread waiting for stdin.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli_sys.h"

const int cli_stop_signals[] = {SIGINT, SIGTERM, 0};

void cli_sys_init(void)
{
    signal(SIGPIPE, SIG_IGN);
}

/* ---- stop ------------------------------------------------------------- */

static sigset_t stop_set;

/* Blocked in every thread and taken by sigwait in the waiting one, so
 * workers never run a handler mid-call. */
void cli_stop_prepare(void)
{
    sigemptyset(&stop_set);
    for (const int *s = cli_stop_signals; *s; s++)
        sigaddset(&stop_set, *s);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
}

void cli_stop_wait(void)
{
    int sig;

    sigwait(&stop_set, &sig);
}

void cli_stop_request(void)
{
    kill(getpid(), SIGTERM); /* blocked everywhere: cli_stop_wait takes it */
}

/* ---- limits and CPU --------------------------------------------------- */

long cli_raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur > (rlim_t)LONG_MAX)
        return -1;
    return (long)rl.rlim_cur;
}

double cli_cpu_self_us(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return -1;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* utime + stime from /proc/PID/stat. */
double cli_cpu_process_us(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut, st;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

/* ---- the stdin gate ---------------------------------------------------- */

struct cli_gate {
    int cancel[2]; /* a pipe: a byte in it says stop */
};

cli_gate *cli_gate_new(void)
{
    cli_gate *g = malloc(sizeof(*g));

    if (g && pipe(g->cancel) < 0) {
        free(g);
        g = NULL;
    }
    return g;
}

bool cli_gate_wait(cli_gate *g)
{
    struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                          {.fd = g->cancel[0], .events = POLLIN}};

    while (poll(p, 2, -1) < 0)
        if (errno != EINTR)
            return false;
    return !p[1].revents;
}

void cli_gate_cancel(cli_gate *g)
{
    char one = 1;

    if (write(g->cancel[1], &one, 1) < 0) {
        /* a pipe with room: cannot fail */
    }
}

void cli_gate_free(cli_gate *g)
{
    if (!g)
        return;
    close(g->cancel[0]);
    close(g->cancel[1]);
    free(g);
}
