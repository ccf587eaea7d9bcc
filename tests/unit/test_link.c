/* proxy/link.c over real loopback sockets: how the end of a peer's stream reaches the reader. A
 * peer that sends some bytes and then resets the connection before the link reads them all
 * (both in the kernel when the poll returns) must be reported as a reset, not as an end of file:
 * libuv alone reports UV_EOF there (a partial read on a poll that also said POLLHUP), which would
 * make a cut transfer look complete. A peer that closes normally is an end of file.
 *
 * And pausing: link_read_stop on a plain link only pauses (libuv keeps watching the socket until
 * bytes come), so what the peer sends while the reader is paused must stay in the socket, and
 * reach the reader, in order and whole, once it reads again; so must an end.
 *
 * And link_read_now: what the peer already sent reaches a reading link at once, without a poll,
 * and an end it finds is reported once; link_read_end_now reports an end that is all the socket
 * holds. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "proxy/link.h"

#define LOOP_TURNS_MAX 100000

struct reader {
    struct link link;
    char buf[4096];
    size_t got;
    int end; /* 0 until the first end: UV_EOF or an error */
    bool closed;
};

static void on_alloc(struct link *l, uv_buf_t *buf)
{
    struct reader *r = l->data;
    *buf = uv_buf_init(r->buf, sizeof(r->buf));
}

static void on_read(struct link *l, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct reader *r = l->data;
    if (nread > 0) {
        r->got += (size_t)nread;
    } else if (nread < 0 && r->end == 0) {
        r->end = (int)nread;
        link_read_stop(l);
    }
}

static void on_closed(struct link *l)
{
    ((struct reader *)l->data)->closed = true;
}

/* A connected pair on loopback: *peer is a plain socket, *ours accepted from it. */
static void tcp_pair(int *peer, int *ours)
{
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(srv >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(srv, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(srv, 1), 0);
    assert_int_equal(getsockname(srv, (struct sockaddr *)&a, &alen), 0);
    *peer = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(*peer, (struct sockaddr *)&a, sizeof(a)), 0);
    *ours = accept(srv, NULL, NULL);
    assert_true(*ours >= 0);
    close(srv);
}

/* Closes fd with a TCP reset (SO_LINGER 0). */
static void close_with_reset(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(fd);
}

/* The peer sends 'bytes', then closes (reset: with SO_LINGER 0); only then does the link start
 * reading. Returns what the reader saw. */
static struct reader read_after_peer_end(bool reset)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    int peer, ours;
    tcp_pair(&peer, &ours);
    static const char bytes[] = "the first part of an answer";
    assert_int_equal(write(peer, bytes, sizeof(bytes)), (ssize_t)sizeof(bytes));
    if (reset) /* loopback delivers the bytes and the FIN or RST within these calls */
        close_with_reset(peer);
    else
        close(peer);

    struct reader r = {.end = 0};
    assert_int_equal(link_init(&loop, &r.link, AF_UNSPEC), 0);
    r.link.data = &r;
    assert_int_equal(uv_tcp_open(&r.link.tcp, ours), 0);
    assert_int_equal(link_read_start(&r.link, on_alloc, on_read), 0);
    for (int i = 0; i < LOOP_TURNS_MAX && r.end == 0; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    link_close(&r.link, on_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(r.closed);
    assert_int_equal(uv_loop_close(&loop), 0);
    r.link.data = NULL;
    return r;
}

static void test_reset_after_bytes_is_a_reset(void **state)
{
    (void)state;
    struct reader r = read_after_peer_end(true);
    assert_int_equal(r.end, UV_ECONNRESET);
}

static void test_close_after_bytes_is_an_end(void **state)
{
    (void)state;
    struct reader r = read_after_peer_end(false);
    assert_int_equal(r.got, sizeof("the first part of an answer"));
    assert_int_equal(r.end, UV_EOF);
}

/* Runs the loop without blocking until 'done' or LOOP_TURNS_MAX turns. */
static void turn_until(uv_loop_t *loop, const bool *done)
{
    for (int i = 0; i < LOOP_TURNS_MAX && !*done; i++)
        uv_run(loop, UV_RUN_NOWAIT);
}

/* Bytes waiting in our end of the socket, not read by anyone. */
static ssize_t unread_bytes(int fd)
{
    char peek[64];
    return recv(fd, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);
}

struct pausing_reader {
    struct reader r;
    bool got_first;
};

static void on_read_pausing(struct link *l, ssize_t nread, const uv_buf_t *buf)
{
    struct pausing_reader *p = l->data;
    on_read(l, nread, buf);
    if (nread > 0 && !p->got_first) {
        p->got_first = true;
        link_read_stop(l); /* as a relay does when the other side's write is pending */
    }
}

/* The peer writes "first", the reader pauses on it; the peer writes "second" (and, with
 * 'then_end', closes). While paused nothing reaches the reader and the bytes wait in the socket;
 * resumed, it gets them and then the end. */
static void pause_while_peer_sends(bool then_end)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    int peer, ours;
    tcp_pair(&peer, &ours);
    struct pausing_reader p = {.got_first = false};
    assert_int_equal(link_init(&loop, &p.r.link, AF_UNSPEC), 0);
    p.r.link.data = &p;
    assert_int_equal(uv_tcp_open(&p.r.link.tcp, ours), 0);
    assert_int_equal(link_read_start(&p.r.link, on_alloc, on_read_pausing), 0);

    assert_int_equal(write(peer, "first", 5), 5);
    turn_until(&loop, &p.got_first);
    assert_true(p.got_first);
    assert_int_equal(p.r.got, 5);

    assert_int_equal(write(peer, "second", 6), 6);
    if (then_end)
        assert_int_equal(shutdown(peer, SHUT_WR), 0);
    for (int i = 0; i < 100; i++) /* polls that see the socket readable while paused */
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(p.r.got, 5);
    assert_int_equal(p.r.end, 0);
    assert_int_equal(unread_bytes(ours), 6);

    assert_int_equal(link_read_start(&p.r.link, on_alloc, on_read_pausing), 0);
    bool whole = false;
    for (int i = 0; i < LOOP_TURNS_MAX && !whole; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        whole = p.r.got == 11 && (!then_end || p.r.end != 0);
    }
    assert_int_equal(p.r.got, 11);
    assert_memory_equal(p.r.buf, "second", 6); /* the last read's bytes */
    assert_int_equal(p.r.end, then_end ? UV_EOF : 0);

    close(peer);
    link_close(&p.r.link, on_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(p.r.closed);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_bytes_sent_while_paused_wait_in_the_socket(void **state)
{
    (void)state;
    pause_while_peer_sends(false);
}

static void test_an_end_while_paused_comes_after_the_bytes(void **state)
{
    (void)state;
    pause_while_peer_sends(true);
}

/* A pause and a resume in one turn, as a connection's handshake hands over to its relay: bytes
 * sent afterwards arrive as usual. */
static void test_pause_and_resume_in_one_turn(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    int peer, ours;
    tcp_pair(&peer, &ours);
    struct reader r = {.end = 0};
    assert_int_equal(link_init(&loop, &r.link, AF_UNSPEC), 0);
    r.link.data = &r;
    assert_int_equal(uv_tcp_open(&r.link.tcp, ours), 0);
    assert_int_equal(link_read_start(&r.link, on_alloc, on_read), 0);
    link_read_stop(&r.link);
    assert_int_equal(link_read_start(&r.link, on_alloc, on_read), 0);
    assert_int_equal(write(peer, "bytes", 5), 5);
    close(peer);
    bool ended = false;
    for (int i = 0; i < LOOP_TURNS_MAX && !ended; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        ended = r.end != 0;
    }
    assert_int_equal(r.got, 5);
    assert_int_equal(r.end, UV_EOF);
    link_close(&r.link, on_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(r.closed);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A reader on a socket whose peer already sent 'bytes' (and, with 'then_end', closed). */
static void reader_on_pair(uv_loop_t *loop, struct reader *r, int *peer, const char *bytes,
                           bool then_end)
{
    int ours;
    tcp_pair(peer, &ours);
    if (bytes != NULL)
        assert_int_equal(write(*peer, bytes, strlen(bytes)), (ssize_t)strlen(bytes));
    if (then_end)
        assert_int_equal(shutdown(*peer, SHUT_WR), 0);
    *r = (struct reader){.end = 0};
    assert_int_equal(link_init(loop, &r->link, AF_UNSPEC), 0);
    r->link.data = r;
    assert_int_equal(uv_tcp_open(&r->link.tcp, ours), 0);
}

static void reader_close(uv_loop_t *loop, struct reader *r, int peer)
{
    close(peer);
    link_close(&r->link, on_closed);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_true(r->closed);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* link_read_now hands over what a client sent with its connection at once, before the loop
 * polls; what comes later arrives as usual, after it. */
static void test_read_now_delivers_waiting_bytes(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct reader r;
    int peer;
    reader_on_pair(&loop, &r, &peer, "hello", false);
    link_read_now(&r.link); /* not reading yet: nothing */
    assert_int_equal(r.got, 0);
    assert_int_equal(link_read_start(&r.link, on_alloc, on_read), 0);
    link_read_now(&r.link);
    assert_int_equal(r.got, 5);
    assert_memory_equal(r.buf, "hello", 5);
    assert_int_equal(r.end, 0);

    link_read_now(&r.link); /* nothing more there: nothing, and still reading */
    assert_int_equal(r.got, 5);
    assert_int_equal(r.end, 0);
    assert_int_equal(write(peer, "world", 5), 5);
    bool more = false;
    for (int i = 0; i < LOOP_TURNS_MAX && !more; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        more = r.got == 10;
    }
    assert_int_equal(r.got, 10);
    assert_memory_equal(r.buf, "world", 5);
    reader_close(&loop, &r, peer);
}

static int ends_seen;

/* Counts ends, and goes on reading after one (the link must stop by itself). */
static void on_read_counting_ends(struct link *l, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct reader *r = l->data;
    if (nread > 0) {
        r->got += (size_t)nread;
    } else if (nread < 0) {
        ends_seen++;
        r->end = (int)nread;
    }
}

/* A reader (reader_on_pair) that reads with on_read_counting_ends, from no end seen. */
static void reader_counting_ends(uv_loop_t *loop, struct reader *r, int *peer, const char *bytes,
                                 bool then_end)
{
    reader_on_pair(loop, r, peer, bytes, then_end);
    ends_seen = 0;
    assert_int_equal(link_read_start(&r->link, on_alloc, on_read_counting_ends), 0);
}

/* Polls that would see the socket's end again, had reading not stopped at the one reported. */
static void assert_end_reported_once(uv_loop_t *loop)
{
    assert_int_equal(ends_seen, 1);
    for (int i = 0; i < 100; i++)
        uv_run(loop, UV_RUN_NOWAIT);
    assert_int_equal(ends_seen, 1);
}

/* An end found by link_read_now is reported once: reading stops there, as libuv stops at one. */
static void test_read_now_reports_an_end_once(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct reader r;
    int peer;
    reader_counting_ends(&loop, &r, &peer, "bye", true);
    link_read_now(&r.link);
    assert_int_equal(r.got, 3);
    assert_int_equal(ends_seen, 0);
    link_read_now(&r.link);
    assert_end_reported_once(&loop);
    assert_int_equal(r.got, 3);
    reader_close(&loop, &r, peer);
}

/* link_read_end_now reports the peer's end at once when it is all the socket holds, and only
 * then: bytes before it wait for a read, and without an end nothing happens. Once. */
static void test_read_end_now_only_at_the_end(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct reader r;
    int peer;
    reader_counting_ends(&loop, &r, &peer, "tail", false);
    link_read_end_now(&r.link); /* bytes come first: nothing */
    assert_int_equal(r.got, 0);
    assert_int_equal(ends_seen, 0);
    link_read_now(&r.link);
    assert_int_equal(r.got, 4);
    link_read_end_now(&r.link); /* no end yet: nothing */
    assert_int_equal(ends_seen, 0);
    assert_int_equal(shutdown(peer, SHUT_WR), 0);
    link_read_end_now(&r.link);
    assert_end_reported_once(&loop);
    assert_int_equal(r.got, 4);
    reader_close(&loop, &r, peer);
}

/* A reset behind the last bytes is reported as a reset by link_read_end_now: its peek takes the
 * socket's pending error, after which a read would see a plain end (a cut transfer passed off
 * as complete). */
static void test_read_end_now_reports_a_reset(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct reader r;
    int peer;
    reader_counting_ends(&loop, &r, &peer, "answer", false);
    close_with_reset(peer); /* loopback delivers the RST within the call */
    link_read_now(&r.link);
    assert_int_equal(r.got, 6);
    link_read_end_now(&r.link);
    assert_int_equal(r.end, UV_ECONNRESET);
    assert_end_reported_once(&loop);
    reader_close(&loop, &r, -1); /* the peer is closed already */
}

/* A paused reader gets nothing from link_read_now: the bytes wait in the socket. */
static void test_read_now_leaves_a_paused_reader_alone(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct reader r;
    int peer;
    reader_on_pair(&loop, &r, &peer, "wait", false);
    assert_int_equal(link_read_start(&r.link, on_alloc, on_read), 0);
    link_read_stop(&r.link);
    link_read_now(&r.link);
    assert_int_equal(r.got, 0);
    uv_os_fd_t fd;
    assert_int_equal(uv_fileno((uv_handle_t *)&r.link.tcp, &fd), 0);
    assert_int_equal(unread_bytes(fd), 4);
    reader_close(&loop, &r, peer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reset_after_bytes_is_a_reset),
        cmocka_unit_test(test_close_after_bytes_is_an_end),
        cmocka_unit_test(test_bytes_sent_while_paused_wait_in_the_socket),
        cmocka_unit_test(test_an_end_while_paused_comes_after_the_bytes),
        cmocka_unit_test(test_pause_and_resume_in_one_turn),
        cmocka_unit_test(test_read_now_delivers_waiting_bytes),
        cmocka_unit_test(test_read_now_reports_an_end_once),
        cmocka_unit_test(test_read_now_leaves_a_paused_reader_alone),
        cmocka_unit_test(test_read_end_now_only_at_the_end),
        cmocka_unit_test(test_read_end_now_reports_a_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
