/*
 * Echo benchmark, the floor of the threaded mode: a hand-written
 * thread-per-client server.  One thread accepts (blocking accept4); each
 * client gets its own detached pthread (256 KiB stack) that loops a
 * blocking read into a 64 KiB buffer, then a blocking write of what it
 * got, until the client leaves.  TCP_NODELAY, as gnezdo's default.  No
 * time limits, no cancellation: the least a thread per client can cost,
 * two system calls per message.
 *
 *   echo_blocking ADDR
 *
 * ADDR as bench_addr.h reads it (127.0.0.1:0, unix:/path).  Prints
 * "listening on ADDR" and runs until SIGTERM or SIGINT, then exits 0.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_addr.h"

#define BUF_SIZE   (64u << 10)
#define STACK_SIZE (256u << 10)

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* Write all n bytes of buf; 0, or -1 when the client is gone. */
static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *client_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[BUF_SIZE];

    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || write_all(fd, buf, (size_t)n) < 0)
            break;
    }
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    char name[NI_MAXHOST + NI_MAXSERV + 8];
    const char *unix_path;
    pthread_attr_t attr;
    struct sigaction sa;
    int lfd, one = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: %s ADDR\n", argv[0]);
        return 2;
    }
    bench_raise_nofile();
    lfd = bench_listen(argv[1], 0, name, sizeof name);
    if (lfd < 0)
        return 1;
    unix_path = bench_unix_path(argv[1]);
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop; /* no SA_RESTART: accept4 returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, STACK_SIZE);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);

    printf("listening on %s\n", name);
    fflush(stdout);
    while (!g_stop) {
        pthread_t t;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("accept4");
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails on Unix: fine */
        if (pthread_create(&t, &attr, client_main, (void *)(intptr_t)fd) != 0) {
            fprintf(stderr, "echo_blocking: cannot start a thread; client closed\n");
            close(fd);
        }
    }
    if (unix_path)
        unlink(unix_path);
    return 0; /* the client threads end with the process */
}
