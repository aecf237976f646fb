/*
 * Backend choice: a default loop takes io_uring where the build and the
 * kernel allow it; where io_uring_setup is refused (a seccomp filter, as
 * container runtimes install, answering ENOSYS or EPERM) the loop falls
 * back to epoll silently, also when GN_BACKEND=uring asks for io_uring,
 * and still carries traffic.  Named backends and unknown names.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425 /* the same on every architecture */
#endif

/* What a default loop should take here: io_uring when built, allowed (no
 * seccomp filter or sysctl refusing io_uring_setup) and new enough (6.0:
 * multishot receive); epoll otherwise. */
static const char *expected_default(void)
{
    struct io_uring_params p = {0};
    struct utsname u;
    int fd, major = 0, minor = 0;

    if (!GN_TEST_HAVE_URING)
        return "epoll";
    if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2 || major < 6)
        return "epoll";
    fd = (int)syscall(__NR_io_uring_setup, 1, &p);
    if (fd < 0)
        return "epoll";
    close(fd);
    return "uring";
}

static const char *backend_of(const char *name)
{
    static char taken[16];
    gn_loop *loop;

    cr_assert_eq(gn_loop_new_backend(&loop, name), 0, "%s", name ? name : "NULL");
    snprintf(taken, sizeof(taken), "%s", gn_loop_backend(loop));
    gn_loop_free(loop);
    return taken;
}

Test(backend_fallback, a_default_loop_takes_io_uring_when_built_with_it)
{
    gn_loop *loop;

    unsetenv("GN_BACKEND");
    cr_assert_eq(gn_loop_new(&loop), 0);
    cr_expect_str_eq(gn_loop_backend(loop), expected_default());
    gn_loop_free(loop);
    cr_expect_str_eq(backend_of(NULL), expected_default());
}

Test(backend_fallback, named_backends_are_taken_and_unknown_names_refused)
{
    gn_loop *loop = NULL;

    unsetenv("GN_BACKEND");
    cr_expect_str_eq(backend_of("epoll"), "epoll");
    cr_expect_str_eq(backend_of("poll"), "poll");
    cr_expect_str_eq(backend_of("uring"), expected_default());
    cr_expect_eq(gn_loop_new_backend(&loop, "kqueue"), GN_EINVAL);
    cr_expect_eq(gn_loop_new_backend(&loop, ""), GN_EINVAL);
    cr_expect_null(loop);
    cr_expect_eq(gn_loop_new_backend(NULL, "epoll"), GN_EINVAL);
    setenv("GN_BACKEND", "poll", 1);
    cr_expect_str_eq(backend_of(NULL), "poll", "NULL follows GN_BACKEND, as gn_loop_new");
    setenv("GN_BACKEND", "bogus", 1);
    cr_expect_str_eq(backend_of(NULL), expected_default());
    unsetenv("GN_BACKEND");
}

Test(backend_fallback, the_cli_version_names_the_default_backend)
{
    struct gn_test_run run;
    char want[32];

    unsetenv("GN_BACKEND");
    cr_assert_eq(gn_test_cli(&run, "--version", NULL), 0);
    cr_expect_eq(run.status, 0);
    snprintf(want, sizeof(want), "backend: %s\n", expected_default());
    cr_expect(strstr(run.out, want), "%s", run.out);
    gn_test_run_free(&run);
}

/* ---- io_uring refused by seccomp, in a child -------------------------- */

/* Make io_uring_setup fail with err and allow everything else.  No
 * architecture check: the number is the native one, and the filter
 * denies nothing else. */
static int refuse_io_uring(int err)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

/* An echo over loopback on loop: the client sends, the server echoes, the
 * client checks and stops the loop. */
struct echo {
    size_t got;
    bool ok;
};

static const char message[] = "through the fallback";

static size_t server_echo(gn_conn *conn, const char *data, size_t len)
{
    gn_send(conn, data, len);
    return len;
}

static void client_connected(gn_conn *conn)
{
    gn_send(conn, message, sizeof(message) - 1);
}

static size_t client_data(gn_conn *conn, const char *data, size_t len)
{
    struct echo *e = gn_conn_user_data(conn);

    if (len < sizeof(message) - 1)
        return 0;
    e->ok = memcmp(data, message, sizeof(message) - 1) == 0;
    gn_loop_stop(gn_conn_loop(conn));
    return len;
}

static int echo_once(gn_loop *loop)
{
    gn_handlers sh = {.on_data = server_echo};
    gn_handlers ch = {.on_connect = client_connected, .on_data = client_data};
    struct echo e = {0};
    char addr[80], text[64];
    gn_endpoint ep;
    gn_server *srv;
    gn_conn *conn;

    if (gn_listen(loop, "tcp://127.0.0.1:0", &sh, NULL, &srv, NULL, 0) < 0)
        return 10;
    if (gn_server_get_endpoint(srv, 0, &ep) < 0 || gn_endpoint_format(&ep, text, sizeof(text)) < 0)
        return 11;
    snprintf(addr, sizeof(addr), "tcp://%s", text);
    if (gn_connect(loop, addr, &ch, NULL, &conn, NULL, 0) < 0)
        return 12;
    gn_conn_set_user_data(conn, &e);
    if (gn_test_run_loop_for(loop, 5000) < 0)
        return 13;
    gn_close(conn);
    gn_server_close(srv, 0);
    if (gn_test_run_loop_for(loop, 5000) < 0)
        return 14;
    return e.ok ? 0 : 15;
}

/* In the child: refuse io_uring, make a loop (GN_BACKEND as given), check
 * it is epoll and carries an echo.  The exit code says what failed. */
static int child(int err, const char *env)
{
    gn_loop *loop;
    int rc;

    if (refuse_io_uring(err) < 0)
        return 2;
    if (syscall(__NR_io_uring_setup, 1, NULL) != -1 || errno != err)
        return 3; /* the filter does not work: the test would prove nothing */
    if (env)
        setenv("GN_BACKEND", env, 1);
    else
        unsetenv("GN_BACKEND");
    if (gn_loop_new(&loop) < 0)
        return 4;
    if (strcmp(gn_loop_backend(loop), "epoll") != 0)
        return 5;
    rc = echo_once(loop);
    gn_loop_free(loop);
    if (rc)
        return rc;
    if (gn_loop_new_backend(&loop, "uring") < 0)
        return 6;
    rc = strcmp(gn_loop_backend(loop), "epoll") != 0 ? 7 : 0;
    gn_loop_free(loop);
    return rc;
}

static void falls_back(int err, const char *env)
{
    int status;
    pid_t pid = fork();

    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(child(err, env));
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "the child died (signal %d)", WTERMSIG(status));
    cr_expect_eq(WEXITSTATUS(status), 0, "the child failed at step %d", WEXITSTATUS(status));
}

Test(backend_fallback, io_uring_refused_with_enosys_falls_back_to_epoll, .timeout = 20)
{
    falls_back(ENOSYS, NULL);
}

Test(backend_fallback, io_uring_refused_with_eperm_falls_back_to_epoll, .timeout = 20)
{
    falls_back(EPERM, NULL);
}

Test(backend_fallback, gn_backend_uring_refused_falls_back_too, .timeout = 20)
{
    falls_back(ENOSYS, "uring");
    falls_back(EPERM, "uring");
}
