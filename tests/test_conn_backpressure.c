/*
 * Back-pressure: against a peer that never reads, the output cap holds
 * (gn_send fails with GN_ENOBUFS, nothing half-queued) and on_drain fires
 * once the peer reads again; an echo with pause_reading_when_full keeps
 * its queue bounded however much the peer sends.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "gnezdo.h"
#include "helpers.h"

#define CAP   (1u << 20)
#define CHUNK 65536

struct flood {
    gn_conn *conn;
    size_t sent, max_queued;
    int enobufs, drains;
    bool closed;
};

static struct flood flood;
static char chunk[CHUNK];

static void fill(gn_conn *conn)
{
    gn_conn_stats st;
    int rc;

    while ((rc = gn_send(conn, chunk, CHUNK)) == 0)
        flood.sent += CHUNK;
    cr_assert_eq(rc, GN_ENOBUFS);
    flood.enobufs++;
    gn_conn_get_stats(conn, &st);
    if (st.queued > flood.max_queued)
        flood.max_queued = st.queued;
}

static void flood_accept(gn_conn *conn)
{
    flood.conn = conn;
    fill(conn);
}

static void flood_drain(gn_conn *conn)
{
    flood.drains++;
    if (flood.drains < 3)
        fill(conn);
    else
        gn_close(conn);
}

static void flood_close(gn_conn *conn, int reason)
{
    (void)conn;
    cr_expect_eq(reason, 0);
    flood.closed = true;
}

Test(conn_backpressure, output_cap_holds_against_a_peer_that_never_reads_and_drain_fires)
{
    const gn_handlers h = {
        .on_accept = flood_accept, .on_drain = flood_drain, .on_close = flood_close};
    gn_options opts = {.max_output = CAP, .high_watermark = CAP / 2, .low_watermark = CAP / 8};
    char addr[GN_ENDPOINT_STRLEN], buf[CHUNK];
    size_t received = 0;
    gn_loop *loop;
    gn_server *srv;
    ssize_t n;
    int fd;

    memset(&flood, 0, sizeof(flood));
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &h, &opts, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr);
    cr_assert_geq(fd, 0);
    gn_test_run_loop_for(loop, 300);
    cr_expect_leq(flood.max_queued, CAP, "queued %zu", flood.max_queued);
    cr_expect_gt(flood.max_queued, CAP - CHUNK, "the queue filled up to the cap");
    /* Only when the kernel's buffer was full before the queue began: a
     * short write or EAGAIN (GNEZDO_FAULTS) queues early, and the kernel
     * then takes more, as a real network's opening window would. */
    if (gn_faults_injected() == 0) {
        cr_expect_eq(flood.enobufs, 1);
        cr_expect_eq(flood.drains, 0, "no drain while the peer does not read");
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    /* Read everything, letting the loop refill, until the server closes. */
    for (int i = 0; i < 2000 && !flood.closed; i++) {
        while ((n = read(fd, buf, sizeof(buf))) > 0)
            received += (size_t)n;
        gn_test_run_loop_for(loop, 2);
    }
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        received += (size_t)n;
    cr_expect_eq(flood.drains, 3);
    cr_expect(flood.closed);
    cr_expect_eq(received, flood.sent, "every byte accepted by gn_send arrived");
    cr_expect_leq(flood.max_queued, CAP);
    close(fd);
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
}

static size_t max_queued_echo;

static size_t echo_and_measure(gn_conn *conn, const char *data, size_t len)
{
    gn_conn_stats st;

    cr_assert_eq(gn_send(conn, data, len), 0, "pausing keeps the echo under its cap");
    gn_conn_get_stats(conn, &st);
    if (st.queued > max_queued_echo)
        max_queued_echo = st.queued;
    return len;
}

Test(conn_backpressure, echo_that_pauses_reading_stays_bounded_against_a_reader_that_never_reads)
{
    const gn_handlers h = {.on_data = echo_and_measure};
    gn_options opts = {.pause_reading_when_full = true,
                       .max_output = 4 * CAP,
                       .high_watermark = CAP,
                       .low_watermark = CAP / 4};
    char addr[GN_ENDPOINT_STRLEN];
    size_t written = 0;
    gn_loop *loop;
    gn_server *srv;
    ssize_t n;
    int fd;

    max_queued_echo = 0;
    memset(chunk, 'e', sizeof(chunk));
    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &h, &opts, addr, sizeof(addr));
    fd = gn_test_connect_fd(addr);
    cr_assert_geq(fd, 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    for (int i = 0; i < 400; i++) {
        while ((n = write(fd, chunk, sizeof(chunk))) > 0)
            written += (size_t)n;
        gn_test_run_loop_for(loop, 2);
    }
    /* The peer could write only as much as the queue plus kernel buffers
     * hold; the server stopped reading instead of queueing without end. */
    cr_expect_leq(max_queued_echo, CAP + 64 * 1024u, "queued %zu", max_queued_echo);
    cr_expect_lt(written, 64u << 20, "the sender was stopped (wrote %zu)", written);
    close(fd);
    gn_test_run_loop_for(loop, 100);
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
}

Test(conn_backpressure, a_send_bigger_than_the_cap_queues_nothing)
{
    const gn_handlers h = {0};
    gn_options opts = {.max_output = 1000};
    char addr[GN_ENDPOINT_STRLEN], big[1001] = {0};
    gn_conn_stats st;
    gn_loop *loop;
    gn_server *srv;
    gn_conn *conn;

    cr_assert_eq(gn_loop_new(&loop), 0);
    srv = gn_test_listen(loop, "127.0.0.1:0", &h, NULL, addr, sizeof(addr));
    cr_assert_eq(gn_connect(loop, addr, &h, &opts, &conn, NULL, 0), 0);
    cr_expect_eq(gn_send(conn, big, sizeof(big)), GN_ENOBUFS);
    cr_expect_eq(gn_send(conn, big, 1000), 0, "up to the cap is fine, even while connecting");
    cr_expect_eq(gn_send(conn, big, 1), GN_ENOBUFS);
    gn_conn_get_stats(conn, &st);
    cr_expect_eq(st.queued, 1000u);
    cr_expect_eq(gn_send(conn, NULL, 5), GN_EINVAL);
    cr_expect_eq(gn_send(NULL, big, 5), GN_EINVAL);
    gn_close(conn);
    gn_server_close(srv, 0);
    gn_loop_run(loop);
    gn_loop_free(loop);
}
