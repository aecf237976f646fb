/*
 * How clients spread over the loops of a server, the two ways a server
 * on several cores can take them (docs/benchmarks.md, "Several loops"):
 *
 *   loops_spread [LOOPS=2] [CONNS=1000]
 *
 * acceptor: a gnezdo server with gn_options.loops = LOOPS (loop 0 accepts
 * and hands each client to the loop serving the fewest); CONNS clients
 * connect one after another from 127.0.0.1 and stay connected; prints how
 * many each loop serves.
 * reuseport: LOOPS plain listening sockets on one port with SO_REUSEPORT
 * (the kernel picks a socket by a hash of the addresses and ports); the
 * same CONNS clients; prints how many each socket got.  Then the same
 * again for small groups: 100 rounds of 10 clients, printing the worst
 * split seen (what a server with few clients meets).
 * One line each, e.g.
 *   acceptor  loops=2 conns=1000 per_loop=500,500 max_share=0.50
 *   reuseport loops=2 conns=1000 per_loop=489,511 max_share=0.51
 *   reuseport loops=2 conns=10x100 worst=9,1 max_share=0.90
 */
#define _GNU_SOURCE
#include <gnezdo.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LOOPS 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static gn_loop *seen_loops[MAX_LOOPS];
static int per_loop[MAX_LOOPS], accepted;

static void on_accept(gn_conn *conn)
{
    gn_loop *l = gn_conn_loop(conn);
    int i = 0;

    pthread_mutex_lock(&lock);
    while (i < MAX_LOOPS && seen_loops[i] && seen_loops[i] != l)
        i++;
    if (i < MAX_LOOPS) {
        seen_loops[i] = l;
        per_loop[i]++;
    }
    accepted++;
    pthread_mutex_unlock(&lock);
}

static void *run(void *loop)
{
    gn_loop_run(loop);
    return NULL;
}

static void close_server(gn_loop *loop, void *srv)
{
    (void)loop;
    gn_server_close(srv, 0);
}

static int connect_to(const struct sockaddr_in *sin)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd >= 0 && connect(fd, (const struct sockaddr *)sin, sizeof(*sin)) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void print_split(const char *how, int loops, const char *conns, const int *counts, int total)
{
    int max = 0;

    printf("%-9s loops=%d conns=%s per_loop=", how, loops, conns);
    for (int i = 0; i < loops; i++) {
        printf("%s%d", i ? "," : "", counts[i]);
        max = counts[i] > max ? counts[i] : max;
    }
    printf(" max_share=%.2f\n", total ? (double)max / total : 0.0);
}

static int acceptor(int loops, int conns, int *fds)
{
    const gn_handlers h = {.on_accept = on_accept};
    gn_options opts = {.loops = (size_t)loops, .max_conns = (size_t)conns + 10};
    struct sockaddr_in sin = {.sin_family = AF_INET};
    char err[GN_ERRBUF_SIZE], text[32];
    gn_endpoint ep;
    gn_server *srv;
    gn_loop *loop;
    pthread_t t;

    if (gn_loop_new(&loop) < 0 ||
        gn_listen(loop, "127.0.0.1:0", &h, &opts, &srv, err, sizeof(err)) < 0)
        return fprintf(stderr, "acceptor: %s\n", err), 1;
    gn_server_get_endpoint(srv, 0, &ep);
    sin.sin_port = htons(gn_endpoint_port(&ep));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    pthread_create(&t, NULL, run, loop);
    for (int i = 0; i < conns; i++)
        fds[i] = connect_to(&sin);
    for (int i = 0; i < 500; i++) { /* up to 5 s for the last accepts */
        pthread_mutex_lock(&lock);
        int n = accepted;
        pthread_mutex_unlock(&lock);
        if (n >= conns)
            break;
        usleep(10000);
    }
    pthread_mutex_lock(&lock);
    snprintf(text, sizeof(text), "%d", conns);
    print_split("acceptor", loops, text, per_loop, accepted);
    pthread_mutex_unlock(&lock);
    gn_loop_post(loop, close_server, srv);
    pthread_join(t, NULL);
    gn_loop_free(loop);
    for (int i = 0; i < conns; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return 0;
}

/* LOOPS SO_REUSEPORT listeners on one port; counts[i]: clients listener
 * i took, of conns connected (and closed again). */
static int reuseport_round(int loops, int conns, int *fds, int *counts)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct pollfd pfd[MAX_LOOPS];
    socklen_t len = sizeof(sin);
    int one = 1, got = 0;

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < loops; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 4096) < 0)
            return perror("reuseport listener"), 1;
        getsockname(fd, (struct sockaddr *)&sin, &len); /* the others take its port */
        pfd[i] = (struct pollfd){.fd = fd, .events = POLLIN};
        counts[i] = 0;
    }
    for (int i = 0; i < conns; i++)
        fds[i] = connect_to(&sin);
    while (got < conns && poll(pfd, (nfds_t)loops, 2000) > 0) {
        for (int i = 0; i < loops; i++) {
            int c;
            while ((c = accept4(pfd[i].fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
                counts[i]++;
                got++;
                close(c);
            }
        }
    }
    for (int i = 0; i < conns; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    for (int i = 0; i < loops; i++)
        close(pfd[i].fd);
    return got == conns ? 0 : 1;
}

static int reuseport(int loops, int conns, int *fds)
{
    int counts[MAX_LOOPS], worst[MAX_LOOPS], worst_max = 0;
    char text[32];

    if (reuseport_round(loops, conns, fds, counts) != 0)
        return 1;
    snprintf(text, sizeof(text), "%d", conns);
    print_split("reuseport", loops, text, counts, conns);
    for (int round = 0; round < 100; round++) {
        int max = 0;
        if (reuseport_round(loops, 10, fds, counts) != 0)
            return 1;
        for (int i = 0; i < loops; i++)
            max = counts[i] > max ? counts[i] : max;
        if (max > worst_max) {
            worst_max = max;
            memcpy(worst, counts, sizeof(int) * (size_t)loops);
        }
    }
    print_split("reuseport", loops, "10x100(worst)", worst, 10);
    return 0;
}

int main(int argc, char **argv)
{
    int loops = argc > 1 ? atoi(argv[1]) : 2, conns = argc > 2 ? atoi(argv[2]) : 1000;
    struct rlimit rl;
    int *fds, rc;

    if (loops < 2 || loops > MAX_LOOPS || conns < 10) {
        fprintf(stderr, "usage: loops_spread [LOOPS=2 (2-%d)] [CONNS=1000 (10 or more)]\n",
                MAX_LOOPS);
        return 2;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    fds = calloc((size_t)conns, sizeof(*fds));
    if (!fds)
        return 1;
    rc = acceptor(loops, conns, fds) || reuseport(loops, conns, fds);
    free(fds);
    return rc;
}
