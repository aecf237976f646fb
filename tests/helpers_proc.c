/*
 * Test helpers that run other programs and count the process's
 * descriptors and threads: POSIX (fork, /proc).  helpers_win.c is
 * Windows' version.
 */
#define _GNU_SOURCE /* pipe2 */
#include "helpers.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = (*cap ? *cap * 2 : 4096);
        while (ncap < *len + n + 1)
            ncap *= 2;
        char *nbuf = realloc(*buf, ncap);
        if (!nbuf)
            return -1;
        *buf = nbuf;
        *cap = ncap;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

static void child_exec(char *const argv[], int in_fd, int out_fd, int err_fd)
{
    dup2(in_fd, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    execv(argv[0], argv);
    _exit(127);
}

/* Reads both pipes until EOF or the deadline; writes stdin_text meanwhile. */
static void pump(int out_fd, int err_fd, int in_fd, const char *in, long long deadline,
                 struct gn_test_run *run)
{
    size_t out_cap = 0, err_cap = 0, in_left = in ? strlen(in) : 0;
    struct pollfd pfd[3];
    char chunk[65536];

    while (out_fd >= 0 || err_fd >= 0) {
        long long left = deadline - now_ms();
        if (left <= 0)
            break;
        pfd[0] = (struct pollfd){.fd = out_fd, .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = err_fd, .events = POLLIN};
        pfd[2] = (struct pollfd){.fd = in_left ? in_fd : -1, .events = POLLOUT};
        if (poll(pfd, 3, (int)left) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (pfd[i].fd < 0 || !pfd[i].revents)
                continue;
            ssize_t n = read(pfd[i].fd, chunk, sizeof(chunk));
            if (n <= 0) {
                close(pfd[i].fd);
                *(i == 0 ? &out_fd : &err_fd) = -1;
            } else if (i == 0) {
                append(&run->out, &run->out_len, &out_cap, chunk, (size_t)n);
            } else {
                append(&run->err, &run->err_len, &err_cap, chunk, (size_t)n);
            }
        }
        if (pfd[2].fd >= 0 && pfd[2].revents) {
            ssize_t n = write(in_fd, in, in_left);
            if (n > 0) {
                in += n;
                in_left -= (size_t)n;
            } else {
                in_left = 0;
            }
            if (!in_left) {
                close(in_fd);
                in_fd = -1;
            }
        }
    }
    if (out_fd >= 0)
        close(out_fd);
    if (err_fd >= 0)
        close(err_fd);
    if (in_fd >= 0)
        close(in_fd);
}

int gn_test_run_argv(char *const argv[], const char *stdin_text, int timeout_ms,
                     struct gn_test_run *run)
{
    int in[2], out[2], err[2], wstatus;
    pid_t pid;

    memset(run, 0, sizeof(*run));
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        child_exec(argv, in[0], out[1], err[1]);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    if (!stdin_text) {
        close(in[1]);
        in[1] = -1;
    }
    signal(SIGPIPE, SIG_IGN);
    pump(out[0], err[0], in[1], stdin_text, now_ms() + timeout_ms, run);
    if (waitpid(pid, &wstatus, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &wstatus, 0);
    }
    run->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    if (!run->out)
        run->out = calloc(1, 1);
    if (!run->err)
        run->err = calloc(1, 1);
    return 0;
}

int gn_test_cli(struct gn_test_run *run, const char *arg, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;

    argv[argc++] = (char *)GN_TEST_CLI;
    va_start(ap, arg);
    for (const char *a = arg; a && argc < 63; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    return gn_test_run_argv(argv, NULL, 20000, run);
}

void gn_test_run_free(struct gn_test_run *run)
{
    free(run->out);
    free(run->err);
    run->out = run->err = NULL;
}

/* Entries of a /proc directory, "." and ".." not counted; -1 if unreadable. */
static int count_entries(const char *path)
{
    DIR *dir = opendir(path);
    struct dirent *de;
    int n = 0;

    if (!dir)
        return -1;
    while ((de = readdir(dir)))
        if (de->d_name[0] != '.')
            n++;
    closedir(dir);
    return n;
}

int gn_test_count_fds(void)
{
    int n = count_entries("/proc/self/fd");

    return n < 0 ? n : n - 1; /* the directory's own descriptor */
}

int gn_test_count_threads(void)
{
    return count_entries("/proc/self/task");
}

/* ---- background processes ---- */

void gn_test_spawn(struct gn_test_proc *p, char *const argv[], const char *out_path,
                   bool wait_listening)
{
    int err[2];
    char *line;

    memset(p, 0, sizeof(*p));
    cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
    p->pid = fork();
    cr_assert_geq(p->pid, 0);
    if (p->pid == 0) {
        int null = open("/dev/null", O_RDWR);
        int out = out_path ? open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : null;
        dup2(null, 0);
        dup2(out, 1);
        dup2(err[1], 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(err[1]);
    p->err_fd = err[0];
    if (!wait_listening)
        return;
    for (int i = 0; i < 50 && !(line = strstr(p->log, "listening on ")); i++)
        gn_test_proc_read(p, 100);
    for (int i = 0; i < 10 && line && !strchr(line, '\n'); i++)
        gn_test_proc_read(p, 100);
    cr_assert_not_null(line, "%s: no 'listening on' line: %s", argv[0], p->log);
    sscanf(line, "listening on %127s", p->addr);
}

void gn_test_proc_read(struct gn_test_proc *p, int ms)
{
    struct pollfd pfd = {.fd = p->err_fd, .events = POLLIN};
    ssize_t n;

    while (p->log_len < sizeof(p->log) - 1 && poll(&pfd, 1, ms) > 0) {
        n = read(p->err_fd, p->log + p->log_len, sizeof(p->log) - 1 - p->log_len);
        if (n <= 0)
            break;
        p->log_len += (size_t)n;
        p->log[p->log_len] = '\0';
        ms = 20;
    }
}

int gn_test_proc_wait(struct gn_test_proc *p, int ms, bool term)
{
    long long end = now_ms() + ms;
    int status = 0;

    if (term)
        kill(p->pid, SIGTERM);
    for (;;) {
        gn_test_proc_read(p, 10);
        if (waitpid(p->pid, &status, WNOHANG) == p->pid)
            break;
        if (now_ms() >= end) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            break;
        }
    }
    gn_test_proc_read(p, 10);
    close(p->err_fd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- TLS ---- */

static char certs_dir[64];

static void remove_certs(void)
{
    char *argv[] = {"/bin/rm", "-rf", certs_dir, NULL};
    struct gn_test_run run;

    if (certs_dir[0] && gn_test_run_argv(argv, NULL, 10000, &run) == 0)
        gn_test_run_free(&run);
}

const char *gn_test_certs(void)
{
    char script[512];
    struct gn_test_run run;

    if (certs_dir[0])
        return certs_dir;
    snprintf(certs_dir, sizeof(certs_dir), "/tmp/gn_certs_%d", (int)getpid());
    snprintf(script, sizeof(script), "%s/tests/make_certs.sh", GN_TEST_SOURCE_DIR);
    char *argv[] = {"/bin/sh", script, certs_dir, NULL};
    cr_assert_eq(gn_test_run_argv(argv, NULL, 60000, &run), 0);
    cr_assert_eq(run.status, 0, "make_certs.sh: %s", run.err);
    gn_test_run_free(&run);
    atexit(remove_certs);
    return certs_dir;
}

const char *gn_test_cert_path(char *buf, size_t len, const char *file)
{
    snprintf(buf, len, "%s/%s", gn_test_certs(), file);
    return buf;
}

const char *gn_test_lo(const char *text, char *buf, size_t len)
{
    (void)buf;
    (void)len;
    return text;
}
