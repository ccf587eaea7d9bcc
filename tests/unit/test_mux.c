/* proxy/mux.c: a client and a server session on one loop, joined by an in-memory carrier. The
 * fake carrier keeps each frame the session hands it and, from an idle handle, feeds its bytes to
 * the peer's mux_session_input() in odd-sized pieces (1, 3, 12, 5, 13, ... bytes, so headers and
 * payloads are split everywhere), then gives the frame back with mux_frame_written(f, 0). It also
 * taps the frames (RST, FIN, DATA bytes) to say what went over the wire.
 *
 * Streams are used as a user of struct link would: read, write, shut down, close; the tests assert
 * what that user sees (bytes, EOF or reset, the callbacks' statuses and order). The loop runs until
 * nothing is left to do (no timers anywhere), and every test ends by closing everything and
 * closing the loop, which fails when a session's handle was never closed; ASan/LSan see the rest.
 * The tests named after a bug were written when it was found (closing a link from its own
 * write or shutdown callback, a second read end after EOF, ENOBUFS not resetting the peer, a
 * GO_AWAY session never ending): they are its regression tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <uv.h>

#include "proxy/link.h"
#include "proxy/mux.h"
#include "proxy/mux_frame_parse.h"
#include "test_support.h"

/* Heap in use, for the bound on what a stream's received bytes cost: ASan's count under
 * GEOPROXY_SANITIZE (its allocator replaces glibc's), glibc's otherwise. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_HEAP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_HEAP_ASAN 1
#endif
#endif
#ifdef TEST_HEAP_ASAN
/* the runtime's (declared here: gcc does not ship <sanitizer/allocator_interface.h>) */
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t heap_in_use(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
#include <malloc.h>
static size_t heap_in_use(void)
{
    return mallinfo2().uordblks;
}
#endif

#define LOOP_TURNS_MAX 1000000
#define ACCEPTED_MAX (2 * MUX_STREAMS_MAX + 8)
#define BIG_WRITE (1024 * 1024)

struct side;

/* One stream as its user sees it. */
struct tstream {
    struct tstream *next_all;
    struct side *side;
    struct link *link; /* NULL once 'closed' ran */
    struct link own;   /* the server side's link (the client's is malloc'd by the session) */
    bool close_asked;
    /* reading */
    size_t alloc_size; /* 0: all of scratch */
    bool no_room;      /* alloc gives a zero-length buffer */
    char scratch[4096];
    char *got;
    size_t got_len, got_cap;
    int read_end; /* the first end: UV_EOF or an error */
    int read_ends;
    int reads_after_end; /* calls after the first end (the link promises none) */
    /* writing */
    struct link_write w;
    int write_calls, write_status, write_seq;
    char *wbuf;
    struct link_shutdown sd;
    int shutdown_calls, shutdown_status;
    int closed_calls, closed_seq;
    /* behaviour */
    bool echo_on_eof;          /* on EOF, write back everything read, then shut down */
    bool close_in_write_cb;    /* close the link from the write callback */
    bool close_in_shutdown_cb; /* close the link from the shutdown callback */
};

/* One end of the carrier, and the owner of its session. */
struct side {
    const char *name;
    struct mux_session *s; /* NULL once closed */
    struct side *peer;
    /* frames handed to us, oldest first, and how much of the first was delivered */
    struct mux_frame **q;
    size_t q_head, q_len, q_cap, q_off;
    bool input_enabled;
    bool carrier_down; /* frames from or to this side are no longer delivered */
    int write_error;   /* not 0: the carrier refuses every write with it, at once */
    bool in_input, in_write;
    int ended_calls;
    char ended_why[128];
    bool ended_inside_input, reentered_write;
    /* what this side sent on the wire */
    unsigned sent_rst, sent_fin, sent_go_away;
    unsigned frames_sent, writes; /* frames, and the carrier writes that held them */
    unsigned writes_in_input;     /* writes handed over under mux_session_input() */
    /* DATA payload bytes delivered to this side, bytes its readers took, most ever unread */
    uint64_t data_in, read_total, max_unread;
    /* accepting (server) */
    bool accept_refuse, accept_no_read, accept_echo;
    int accepts;
    struct tstream *accepted[ACCEPTED_MAX];
    size_t n_accepted;
};

struct harness {
    uv_loop_t loop;
    uv_idle_t carrier;
    bool carrier_active;
    struct side client, server;
    struct tstream *all;
    int seq;
    size_t piece;
};

static struct harness *H;

/* ---- the carrier ---- */

static const size_t pieces[] = {1, 3, 12, 5, 13, 4096, 7, 65536 + 12, 11, 200000};

static size_t next_piece(void)
{
    return pieces[H->piece++ % N_ELEMS(pieces)];
}

static void on_carrier(uv_idle_t *idle);

static void carrier_kick(void)
{
    if (!H->carrier_active) {
        H->carrier_active = true;
        uv_idle_start(&H->carrier, on_carrier);
    }
}

static int fake_write(void *owner, struct mux_frame *f)
{
    struct side *sd = owner;
    if (sd->write_error != 0)
        return sd->write_error;
    if (sd->in_write)
        sd->reentered_write = true;
    sd->in_write = true;
    /* one frame, or the frames of a batch back to back, each whole */
    for (size_t at = 0; at < f->len;) {
        struct mux_frame_header h;
        size_t used;
        assert_true(f->len - at >= MUX_FRAME_HEADER_LEN);
        assert_int_equal(mux_frame_header_parse(f->data + at, f->len - at, &h, &used), PARSE_DONE);
        if (h.flags & MUX_FLAG_RST)
            sd->sent_rst++;
        if (h.flags & MUX_FLAG_FIN)
            sd->sent_fin++;
        if (h.type == MUX_FRAME_GO_AWAY)
            sd->sent_go_away++;
        size_t frame_len = MUX_FRAME_HEADER_LEN + (h.type == MUX_FRAME_DATA ? h.length : 0);
        assert_true(frame_len <= f->len - at);
        at += frame_len;
        sd->frames_sent++;
    }
    sd->writes++;
    if (sd->in_input)
        sd->writes_in_input++;
    if (sd->q_head + sd->q_len == sd->q_cap) {
        if (sd->q_len > 0)
            memmove(sd->q, sd->q + sd->q_head, sd->q_len * sizeof(*sd->q));
        sd->q_head = 0;
        if (sd->q_len == sd->q_cap) {
            sd->q_cap = sd->q_cap == 0 ? 64 : sd->q_cap * 2;
            sd->q = realloc(sd->q, sd->q_cap * sizeof(*sd->q));
            assert_non_null(sd->q);
        }
    }
    sd->q[sd->q_head + sd->q_len++] = f;
    carrier_kick();
    sd->in_write = false;
    return 0;
}

/* DATA payload bytes among the frame's bytes [off, off + n). */
static size_t payload_in(const struct mux_frame *f, size_t off, size_t n)
{
    if (f->data[1] != MUX_FRAME_DATA || off + n <= MUX_FRAME_HEADER_LEN)
        return 0;
    size_t start = off > MUX_FRAME_HEADER_LEN ? off : MUX_FRAME_HEADER_LEN;
    return off + n - start;
}

/* True when 'from' sent something that can be delivered (or dropped) now. */
static bool carrier_has_work(const struct side *from)
{
    return from->q_len > 0 &&
           (from->carrier_down || from->peer->carrier_down || from->peer->input_enabled);
}

/* Delivers some of what 'from' sent. */
static void carrier_deliver(struct side *from)
{
    struct side *to = from->peer;
    for (int frames = 0; from->q_len > 0 && frames < 32;) {
        struct mux_frame *f = from->q[from->q_head];
        bool drop = from->carrier_down || to->carrier_down;
        if (!drop) {
            if (!to->input_enabled)
                return;
            size_t n = next_piece();
            n = n < f->len - from->q_off ? n : f->len - from->q_off;
            to->data_in += payload_in(f, from->q_off, n);
            to->in_input = true;
            mux_session_input(to->s, f->data + from->q_off, n);
            to->in_input = false;
            uint64_t unread = to->data_in - to->read_total;
            if (unread > to->max_unread)
                to->max_unread = unread;
            from->q_off += n;
            if (from->q_off < f->len)
                continue;
        }
        from->q_head++;
        from->q_len--;
        from->q_off = 0;
        frames++;
        mux_frame_written(f, drop ? UV_ECANCELED : 0);
    }
}

static void on_carrier(uv_idle_t *idle)
{
    carrier_deliver(&H->client);
    carrier_deliver(&H->server);
    /* delivering makes the peer write: look at both again */
    if (!carrier_has_work(&H->client) && !carrier_has_work(&H->server)) {
        H->carrier_active = false;
        uv_idle_stop(idle);
    }
}

static void fake_read_enable(void *owner, bool enable)
{
    struct side *sd = owner;
    sd->input_enabled = enable;
    if (enable)
        carrier_kick();
}

/* The carrier is gone for both (the owner closed it): neither session gets more bytes. */
static void carrier_cut(void)
{
    H->client.carrier_down = H->server.carrier_down = true;
    if (H->client.s != NULL)
        mux_session_carrier_ended(H->client.s);
    if (H->server.s != NULL)
        mux_session_carrier_ended(H->server.s);
    carrier_kick();
}

static void side_close(struct side *sd)
{
    if (sd->s == NULL)
        return;
    mux_session_close(sd->s);
    sd->s = NULL;
    sd->carrier_down = true;
    carrier_kick();
}

static void fake_ended(void *owner, const char *why)
{
    struct side *sd = owner;
    sd->ended_calls++;
    sd->ended_inside_input = sd->ended_inside_input || sd->in_input;
    snprintf(sd->ended_why, sizeof(sd->ended_why), "%s", why != NULL ? why : "(null)");
    /* as an owner does: close the carrier and the session */
    side_close(sd);
    if (sd->peer->s != NULL && !sd->peer->carrier_down) {
        sd->peer->carrier_down = true;
        mux_session_carrier_ended(sd->peer->s);
    }
}

/* ---- streams ---- */

static void on_alloc(struct link *l, uv_buf_t *buf)
{
    struct tstream *ts = l->data;
    size_t len = ts->alloc_size != 0 ? ts->alloc_size : sizeof(ts->scratch);
    *buf = uv_buf_init(ts->scratch, ts->no_room ? 0 : (unsigned)len);
}

static void ts_close(struct tstream *ts, bool reset);
static void on_write(struct link_write *w, int status);
static void on_shutdown(struct link_shutdown *sd, int status);

static int ts_write(struct tstream *ts, const void *data, size_t len)
{
    return link_write(ts->link, &ts->w, data, len, on_write);
}

static int ts_shutdown(struct tstream *ts)
{
    return link_shutdown(ts->link, &ts->sd, on_shutdown);
}

static void on_read(struct link *l, ssize_t nread, const uv_buf_t *buf)
{
    struct tstream *ts = l->data;
    if (ts->read_ends > 0) {
        ts->reads_after_end++;
        return;
    }
    if (nread > 0) {
        assert_ptr_equal(buf->base, ts->scratch);
        if (ts->got_len + (size_t)nread > ts->got_cap) {
            ts->got_cap = (ts->got_len + (size_t)nread) * 2;
            ts->got = realloc(ts->got, ts->got_cap);
            assert_non_null(ts->got);
        }
        memcpy(ts->got + ts->got_len, buf->base, (size_t)nread);
        ts->got_len += (size_t)nread;
        ts->side->read_total += (uint64_t)nread;
        return;
    }
    if (nread == 0)
        return;
    ts->read_end = (int)nread;
    ts->read_ends++;
    if (nread == UV_EOF && ts->echo_on_eof) {
        if (ts_write(ts, ts->got, ts->got_len) != 0 || ts_shutdown(ts) != 0)
            ts_close(ts, true);
    }
}

static void on_write(struct link_write *w, int status)
{
    struct tstream *ts = w->link->data;
    ts->write_calls++;
    ts->write_status = status;
    ts->write_seq = ++H->seq;
    if (ts->close_in_write_cb)
        ts_close(ts, false);
}

static void on_shutdown(struct link_shutdown *sd, int status)
{
    struct tstream *ts = sd->link->data;
    ts->shutdown_calls++;
    ts->shutdown_status = status;
    if (ts->close_in_shutdown_cb && ts->read_end != 0)
        ts_close(ts, false);
}

static void on_closed(struct link *l)
{
    struct tstream *ts = l->data;
    ts->closed_calls++;
    ts->closed_seq = ++H->seq;
    if (l != &ts->own)
        free(l);
    ts->link = NULL;
}

static void ts_close(struct tstream *ts, bool reset)
{
    if (ts->close_asked || ts->link == NULL)
        return;
    ts->close_asked = true;
    if (reset)
        link_close_reset(ts->link, on_closed);
    else
        link_close(ts->link, on_closed);
}

static struct tstream *ts_new(struct side *sd)
{
    struct tstream *ts = calloc(1, sizeof(*ts));
    assert_non_null(ts);
    ts->side = sd;
    ts->next_all = H->all;
    H->all = ts;
    return ts;
}

static void fake_accept(void *owner, struct mux_stream *stream)
{
    struct side *sd = owner;
    sd->accepts++;
    if (sd->accept_refuse || sd->n_accepted == ACCEPTED_MAX)
        return;
    struct tstream *ts = ts_new(sd);
    link_init_stream(&ts->own, stream);
    ts->own.data = ts;
    ts->link = &ts->own;
    ts->echo_on_eof = sd->accept_echo;
    sd->accepted[sd->n_accepted++] = ts;
    if (!sd->accept_no_read)
        assert_int_equal(link_read_start(ts->link, on_alloc, on_read), 0);
}

static const struct mux_carrier fake_ops = {
    .write = fake_write,
    .read_enable = fake_read_enable,
    .accept = fake_accept,
    .ended = fake_ended,
};

/* A stream opened by the client, reading. */
static struct tstream *open_stream(void)
{
    struct link *l = mux_session_open(H->client.s);
    assert_non_null(l);
    struct tstream *ts = ts_new(&H->client);
    ts->link = l;
    l->data = ts;
    assert_int_equal(link_read_start(l, on_alloc, on_read), 0);
    return ts;
}

/* ---- the loop ---- */

static void run(void)
{
    for (int i = 0; i < LOOP_TURNS_MAX; i++)
        if (uv_run(&H->loop, UV_RUN_NOWAIT) == 0)
            return;
    fail_msg("the loop did not settle in %d turns", LOOP_TURNS_MAX);
}

/* One turn of the loop: the sessions hand the carrier what they queued before it (their idle
 * handles run before the carrier's, which a hand-over starts). */
static void turn(void)
{
    uv_run(&H->loop, UV_RUN_NOWAIT);
}

static int setup(void **state)
{
    H = calloc(1, sizeof(*H));
    if (H == NULL || uv_loop_init(&H->loop) != 0)
        return -1;
    uv_idle_init(&H->loop, &H->carrier);
    H->carrier.data = H;
    H->client = (struct side){.name = "client", .peer = &H->server, .input_enabled = true};
    H->server = (struct side){.name = "server", .peer = &H->client, .input_enabled = true};
    H->client.s = mux_session_new(&H->loop, true, &fake_ops, &H->client, NULL);
    H->server.s = mux_session_new(&H->loop, false, &fake_ops, &H->server, NULL);
    if (H->client.s == NULL || H->server.s == NULL)
        return -1;
    *state = H;
    return 0;
}

static void on_handle_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Closes what is left, runs the loop, and frees the test's own memory. Fails when the loop cannot
 * be closed: a session left a handle open. */
static int teardown(void **state)
{
    int ret = 0;
    for (struct tstream *ts = H->all; ts != NULL; ts = ts->next_all)
        ts_close(ts, false);
    side_close(&H->client);
    side_close(&H->server);
    run();
    uv_close((uv_handle_t *)&H->carrier, NULL);
    run();
    if (uv_loop_close(&H->loop) != 0) {
        fprintf(stderr, "teardown: handles left open on the loop\n");
        uv_walk(&H->loop, on_handle_walk, NULL);
        uv_run(&H->loop, UV_RUN_NOWAIT);
        uv_loop_close(&H->loop);
        ret = -1;
    }
    for (struct tstream *ts = H->all, *next; ts != NULL; ts = next) {
        next = ts->next_all;
        if (ts->closed_calls == 0 && ts->link != NULL && ts->link != &ts->own)
            free(ts->link);
        if (ts->closed_calls > 1) {
            fprintf(stderr, "teardown: 'closed' ran %d times\n", ts->closed_calls);
            ret = -1;
        }
        free(ts->got);
        free(ts->wbuf);
        free(ts);
    }
    free(H->client.q);
    free(H->server.q);
    free(H);
    H = NULL;
    return ret;
}

/* Closes every stream link of the test, runs the loop, and checks each closed exactly once and
 * both sessions hold no stream. */
static void close_all_streams(void)
{
    for (struct tstream *ts = H->all; ts != NULL; ts = ts->next_all)
        ts_close(ts, false);
    run();
    for (struct tstream *ts = H->all; ts != NULL; ts = ts->next_all) {
        assert_int_equal(ts->closed_calls, 1);
        assert_null(ts->link);
    }
    if (H->client.s != NULL)
        assert_int_equal(mux_session_streams(H->client.s), 0);
    if (H->server.s != NULL)
        assert_int_equal(mux_session_streams(H->server.s), 0);
}

/* Fills buf with a pattern that differs per seed and does not repeat every 256 bytes. */
static void fill_pattern(char *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)(uint8_t)(i * 7 + i / 251 + seed * 13);
}

/* Gives ts a write buffer (freed with it) of len pattern bytes. */
static void fill_write_buffer(struct tstream *ts, size_t len, unsigned seed)
{
    ts->wbuf = malloc(len);
    assert_non_null(ts->wbuf);
    fill_pattern(ts->wbuf, len, seed);
}

static void assert_got(const struct tstream *ts, const void *want, size_t len)
{
    assert_int_equal(ts->got_len, len);
    assert_memory_equal(ts->got, want, len);
}

static struct tstream *only_accepted(void)
{
    assert_int_equal(H->server.n_accepted, 1);
    return H->server.accepted[0];
}

/* ---- tests ---- */

/* A stream carries bytes both ways, intact, and its writes complete with 0. */
static void test_hello_both_ways(void **state)
{
    struct tstream *c = open_stream();
    assert_int_equal(mux_session_streams(H->client.s), 1);
    assert_int_equal(ts_write(c, "hello", 5), 0);
    assert_int_equal(c->write_calls, 0); /* never under the caller */
    run();
    assert_int_equal(c->write_calls, 1);
    assert_int_equal(c->write_status, 0);

    struct tstream *s = only_accepted();
    assert_got(s, "hello", 5);
    assert_int_equal(s->read_ends, 0);
    assert_int_equal(mux_session_streams(H->server.s), 1);

    assert_int_equal(ts_write(s, "hello to you", 12), 0);
    run();
    assert_int_equal(s->write_calls, 1);
    assert_int_equal(s->write_status, 0);
    assert_got(c, "hello to you", 12);
    assert_int_equal(c->read_ends, 0);

    /* a second round on the same stream */
    assert_int_equal(ts_write(c, " again", 6), 0);
    run();
    assert_got(s, "hello again", 11);
    assert_int_equal(c->write_calls, 2);

    assert_false(H->client.reentered_write || H->server.reentered_write);
    close_all_streams();
}

/* Half-close: the client's FIN is the server's EOF, the server still writes to the client, then
 * its own FIN is the client's EOF. With both FINs out, closing sends no RST. */
static void test_half_close(void **state)
{
    struct tstream *c = open_stream();
    assert_int_equal(ts_write(c, "request", 7), 0);
    assert_int_equal(ts_shutdown(c), 0);
    run();
    assert_int_equal(c->shutdown_calls, 1);
    assert_int_equal(c->shutdown_status, 0);
    assert_int_equal(link_write(c->link, &c->w, "x", 1, on_write), UV_EPIPE); /* after FIN */

    struct tstream *s = only_accepted();
    assert_got(s, "request", 7);
    assert_int_equal(s->read_end, UV_EOF);

    /* the server's direction is still open */
    assert_int_equal(ts_write(s, "reply", 5), 0);
    run();
    assert_int_equal(s->write_status, 0);
    assert_got(c, "reply", 5);
    assert_int_equal(c->read_ends, 0);

    assert_int_equal(ts_write(s, " more", 5), 0);
    assert_int_equal(ts_shutdown(s), 0);
    run();
    assert_int_equal(s->shutdown_calls, 1);
    assert_int_equal(s->shutdown_status, 0);
    assert_got(c, "reply more", 10);
    assert_int_equal(c->read_end, UV_EOF);

    assert_int_equal(H->client.sent_fin, 1);
    assert_int_equal(H->server.sent_fin, 1);
    close_all_streams();
    assert_int_equal(H->client.sent_rst, 0);
    assert_int_equal(H->server.sent_rst, 0);
    assert_int_equal(c->read_ends, 1);
    assert_int_equal(s->read_ends, 1);
}

/* Closing a stream before both FINs went resets it: the peer's read ends with UV_ECONNRESET, not
 * EOF, so a transfer cut short never looks complete. Each case: who closes, how, and whether
 * the closing side had shut down (sent its FIN) first. */
static void test_close_before_both_fins_ends_the_stream(void **state)
{
    static const struct {
        bool client_closes, reset, shutdown_first;
    } cases[] = {
        {true, false, false}, {false, false, false}, {true, true, false},
        {false, true, false}, {true, false, true},   {false, true, true},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        print_message("case %zu: %s closes%s%s\n", i, cases[i].client_closes ? "client" : "server",
                      cases[i].reset ? " with reset" : "",
                      cases[i].shutdown_first ? " after its FIN" : "");
        unsigned rst_before = H->client.sent_rst + H->server.sent_rst;
        struct tstream *c = open_stream();
        assert_int_equal(ts_write(c, "abc", 3), 0);
        run();
        struct tstream *s = H->server.accepted[H->server.n_accepted - 1];
        assert_got(s, "abc", 3);

        struct tstream *closer = cases[i].client_closes ? c : s;
        struct tstream *peer = cases[i].client_closes ? s : c;
        if (cases[i].shutdown_first) {
            assert_int_equal(ts_shutdown(closer), 0);
            run();
            assert_int_equal(peer->read_end, UV_EOF);
            peer->read_end = 0; /* what comes next is what the test is about */
            peer->read_ends = 0;
            link_read_stop(peer->link); /* as the relay does after EOF */
        }
        ts_close(closer, cases[i].reset);
        run();
        assert_int_equal(closer->closed_calls, 1);
        assert_int_equal(H->client.sent_rst + H->server.sent_rst, rst_before + 1);
        if (!cases[i].shutdown_first) { /* a close reads as an end, a reset as a reset */
            assert_int_equal(peer->read_end, cases[i].reset ? UV_ECONNRESET : UV_EOF);
            assert_int_equal(peer->read_ends, 1);
        }
        /* the peer's writes fail now */
        int rc = ts_write(peer, "late", 4);
        run();
        assert_true(rc < 0 || (peer->write_calls == 1 && peer->write_status < 0));
        ts_close(peer, false);
        run();
        assert_int_equal(peer->closed_calls, 1);
        assert_int_equal(H->client.sent_rst + H->server.sent_rst, rst_before + 1);
    }
    close_all_streams();
}

/* Flow control: a server that does not read holds at most one window of a 1 MiB write; the write
 * completes only after the server read everything, and the bytes are intact. */
static void test_flow_control(void **state)
{
    H->server.accept_no_read = true;
    struct tstream *c = open_stream();
    fill_write_buffer(c, BIG_WRITE, 1);
    assert_int_equal(ts_write(c, c->wbuf, BIG_WRITE), 0);
    run();

    struct tstream *s = only_accepted();
    assert_int_equal(c->write_calls, 0);
    assert_true(H->server.data_in > 0);
    assert_true(H->server.data_in <= MUX_WINDOW_INITIAL);
    assert_int_equal(link_write_queue_size(c->link), BIG_WRITE - H->server.data_in);
    assert_int_equal(s->got_len, 0);

    /* still nothing more after more turns of the loop */
    uint64_t held = H->server.data_in;
    run();
    assert_int_equal(H->server.data_in, held);
    assert_int_equal(c->write_calls, 0);

    s->alloc_size = 1000; /* a small reader */
    assert_int_equal(link_read_start(s->link, on_alloc, on_read), 0);
    run();
    assert_int_equal(c->write_calls, 1);
    assert_int_equal(c->write_status, 0);
    assert_got(s, c->wbuf, BIG_WRITE);
    assert_true(H->server.max_unread <= MUX_WINDOW_INITIAL);
    assert_int_equal(link_write_queue_size(c->link), 0);
    assert_int_equal(s->read_ends, 0);
    close_all_streams();
}

/* A session whose readers hold more than MUX_BUFFERED_MAX stops reading the carrier, and reads it
 * again once those bytes are gone, however they go: here their links are closed unread (a client
 * left), which drops their queues. Before, only a reader taking bytes resumed it: the session
 * hung for good. */
static void test_paused_carrier_resumes_when_queues_are_dropped(void **state)
{
    enum { N = MUX_BUFFERED_MAX / MUX_WINDOW_INITIAL + 8 };
    H->server.accept_no_read = true;
    for (int i = 0; i < N; i++) {
        struct tstream *c = open_stream();
        fill_write_buffer(c, MUX_WINDOW_INITIAL, (unsigned)i);
        assert_int_equal(ts_write(c, c->wbuf, MUX_WINDOW_INITIAL), 0);
    }
    run();
    assert_false(H->server.input_enabled);
    for (size_t i = 0; i < H->server.n_accepted; i++)
        ts_close(H->server.accepted[i], false);
    run();
    assert_true(H->server.input_enabled);
    /* the session works: a new stream's bytes arrive */
    H->server.accept_no_read = false;
    size_t before = H->server.n_accepted;
    struct tstream *x = open_stream();
    assert_int_equal(ts_write(x, "hello", 5), 0);
    run();
    assert_int_equal(H->server.n_accepted, before + 1);
    assert_got(H->server.accepted[before], "hello", 5);
    close_all_streams();
}

/* Received bytes cost heap in proportion to their payload, however the peer cuts them: a window
 * of 1-byte DATA frames for a reader that does not read. Before, each piece took an allocation of
 * its own (about 48 bytes of heap per byte on glibc), so a peer within its window made the
 * session hold ~12 MiB per stream. The bytes then reach the reader intact and in order. */
static void test_tiny_frames_cost_heap_in_proportion(void **state)
{
    struct tstream *c = open_stream();
    link_read_stop(c->link);
    assert_int_equal(ts_write(c, "x", 1), 0); /* the stream opens */
    run();
    size_t n = MUX_WINDOW_INITIAL;
    char *want = malloc(n);
    assert_non_null(want);
    uint8_t frame[MUX_FRAME_HEADER_LEN + 1];
    struct mux_frame_header h = {.type = MUX_FRAME_DATA, .stream = 1, .length = 1};
    mux_frame_header_write(&h, frame);
    size_t before = heap_in_use();
    for (size_t i = 0; i < n; i++) {
        want[i] = (char)(uint8_t)(i * 7 + i / 251);
        frame[MUX_FRAME_HEADER_LEN] = (uint8_t)want[i];
        mux_session_input(H->client.s, frame, sizeof(frame));
    }
    size_t held = heap_in_use() - before;
    print_message("%zu payload bytes held with %zu bytes of heap\n", n, held);
    assert_true(held <= n + n / 4);
    assert_int_equal(link_read_start(c->link, on_alloc, on_read), 0);
    run();
    assert_got(c, want, n);
    free(want);
    close_all_streams();
}

/* A window update goes to the carrier at once, under the input that consumed the window, not
 * at the end of the turn: the sender may be waiting for it. */
static void test_window_update_goes_at_once(void **state)
{
    struct tstream *c = open_stream();
    fill_write_buffer(c, MUX_WINDOW_INITIAL, 4);
    assert_int_equal(ts_write(c, c->wbuf, MUX_WINDOW_INITIAL), 0);
    run();
    assert_got(only_accepted(), c->wbuf, MUX_WINDOW_INITIAL);
    assert_true(H->server.writes_in_input > 0);
    close_all_streams();
}

/* link_try_write takes bytes at once, like a socket with room, and the peer gets them in order
 * with what link_write queued; it leaves bytes to link_write when a write waits before them, when
 * the peer's window is closed, and when the carrier has a frame's worth not written yet. */
static void test_try_write(void **state)
{
    struct tstream *c = open_stream();
    assert_int_equal(link_try_write(c->link, "first ", 6), 6);
    run();
    struct tstream *s = only_accepted();
    assert_got(s, "first ", 6);

    /* a write in frames already, its callback still due: try_write's bytes go after it */
    assert_int_equal(ts_write(c, "second ", 7), 0);
    assert_int_equal(link_try_write(c->link, "third", 5), 5);
    assert_int_equal(c->write_calls, 0);
    run();
    assert_int_equal(c->write_calls, 1);
    assert_got(s, "first second third", 18);

    /* the carrier has not written a frame's worth yet: wait for it */
    fill_write_buffer(c, MUX_FRAME_PAYLOAD_MAX, 2);
    assert_int_equal(link_try_write(c->link, c->wbuf, MUX_FRAME_PAYLOAD_MAX),
                     MUX_FRAME_PAYLOAD_MAX);
    assert_int_equal(link_try_write(c->link, "x", 1), UV_EAGAIN);
    run();
    assert_int_equal(s->got_len, 18 + MUX_FRAME_PAYLOAD_MAX);
    assert_memory_equal(s->got + 18, c->wbuf, MUX_FRAME_PAYLOAD_MAX);

    /* a reader that stops reading closes the window: try_write takes what it allows, then no more
     */
    link_read_stop(s->link);
    size_t taken = 0;
    for (int i = 0; i < 100; i++) {
        run();
        int n = link_try_write(c->link, c->wbuf, MUX_FRAME_PAYLOAD_MAX);
        if (n == UV_EAGAIN && taken > 0)
            break;
        assert_true(n > 0);
        taken += (size_t)n;
    }
    assert_true(taken > 0 && taken <= MUX_WINDOW_INITIAL);
    run();
    assert_int_equal(link_try_write(c->link, "x", 1), UV_EAGAIN);
    assert_int_equal(link_read_start(s->link, on_alloc, on_read), 0);
    run();
    assert_int_equal(s->got_len, 18 + MUX_FRAME_PAYLOAD_MAX + taken);
    assert_int_equal(link_try_write(c->link, "x", 1), 1);

    /* after the stream's FIN, try_write says EPIPE as a socket would */
    assert_int_equal(ts_shutdown(c), 0);
    assert_int_equal(link_try_write(c->link, "y", 1), UV_EPIPE);
    run();
    assert_int_equal(s->read_end, UV_EOF);
    assert_int_equal(s->got_len, 18 + MUX_FRAME_PAYLOAD_MAX + taken + 1);
    assert_int_equal(c->write_calls, 1); /* try_write has no callback */
    close_all_streams();
}

/* A server's reply and its end queued in one turn (the relay reads on after a short read and
 * finds the end behind the reply): nothing is left to wait for, so both go at the end of that
 * turn, in one write. */
static void test_reply_and_its_end_go_at_once(void **state)
{
    (void)state;
    struct tstream *c = open_stream();
    assert_int_equal(ts_write(c, "question", 8), 0);
    run();
    struct tstream *s = only_accepted();
    unsigned writes = H->server.writes;
    unsigned frames = H->server.frames_sent;
    assert_int_equal(link_try_write(s->link, "answer", 6), 6);
    assert_int_equal(ts_shutdown(s), 0);
    turn();
    assert_int_equal(H->server.writes - writes, 1);
    assert_int_equal(H->server.frames_sent - frames, 2); /* "answer", then FIN */
    run();
    assert_got(c, "answer", 6);
    assert_int_equal(c->read_end, UV_EOF);
    close_all_streams();
}

/* Frames reach the carrier together while they fit in a TLS record (one record for the peer to
 * decrypt, one wake-up): those of one loop turn, and, after bytes the accepting side relays back
 * (link_try_write), those of the turn after it (an end of file that a short read leaves for the
 * next poll goes with the data before it). A bulk frame goes at once, after the frames queued
 * before it, and so does a stream's opening frame (the peer starts on the request while the
 * turn goes on). Order and bytes are kept. */
static void test_frames_of_a_turn_share_a_write(void **state)
{
    /* a stream's opening frame (its request) goes at once; bytes after it in the same turn go
     * at the end of the turn, together */
    struct tstream *c = open_stream();
    unsigned writes = H->client.writes;
    unsigned frames = H->client.frames_sent;
    assert_int_equal(ts_write(c, "CONNECT ", 8), 0);
    assert_int_equal(H->client.writes - writes, 1); /* under the call */
    assert_int_equal(link_try_write(c->link, "hello", 5), 5);
    assert_int_equal(link_try_write(c->link, " you", 4), 4);
    assert_int_equal(H->client.writes - writes, 1);
    turn();
    assert_int_equal(H->client.writes - writes, 2);
    assert_int_equal(H->client.frames_sent - frames, 3);
    run();
    struct tstream *s = only_accepted();
    assert_got(s, "CONNECT hello you", 17);

    /* the server's reply waits one more turn, and its FIN goes with it */
    writes = H->server.writes;
    frames = H->server.frames_sent;
    assert_int_equal(link_try_write(s->link, "reply", 5), 5);
    turn();
    assert_int_equal(H->server.writes, writes);
    assert_int_equal(ts_shutdown(s), 0);
    turn();
    assert_int_equal(H->server.writes - writes, 1);
    assert_int_equal(H->server.frames_sent - frames, 2); /* "reply", then FIN */
    run();
    assert_got(c, "reply", 5);
    assert_int_equal(c->read_end, UV_EOF);

    /* small frames and a bulk one: the small ones in one write, the bulk one in its own, at
     * once; the FIN after them at the turn's end */
    fill_write_buffer(c, MUX_FRAME_PAYLOAD_MAX, 3);
    writes = H->client.writes;
    frames = H->client.frames_sent;
    assert_int_equal(link_try_write(c->link, "a", 1), 1);
    assert_int_equal(link_try_write(c->link, "b", 1), 1);
    assert_int_equal(H->client.writes, writes);
    assert_int_equal(link_try_write(c->link, c->wbuf, MUX_FRAME_PAYLOAD_MAX),
                     MUX_FRAME_PAYLOAD_MAX);
    assert_int_equal(H->client.writes - writes, 2);
    assert_int_equal(H->client.frames_sent - frames, 3);
    assert_int_equal(ts_shutdown(c), 0);
    run();
    assert_int_equal(H->client.writes - writes, 3);
    assert_int_equal(H->client.frames_sent - frames, 4);
    assert_int_equal(s->got_len, 17 + 2 + MUX_FRAME_PAYLOAD_MAX);
    assert_memory_equal(s->got + 17, "ab", 2);
    assert_memory_equal(s->got + 19, c->wbuf, MUX_FRAME_PAYLOAD_MAX);
    assert_int_equal(s->read_end, UV_EOF);
    close_all_streams();
}

/* A reader that pauses and resumes now and then still gets every byte in order. */
static void test_read_stop_and_start(void **state)
{
    struct tstream *c = open_stream();
    size_t len = 3 * MUX_WINDOW_INITIAL + 17;
    fill_write_buffer(c, len, 2);
    assert_int_equal(ts_write(c, c->wbuf, len), 0);
    assert_int_equal(ts_shutdown(c), 0);
    run();
    struct tstream *s = only_accepted();
    for (int round = 0; round < 1000 && s->read_ends == 0; round++) {
        link_read_stop(s->link);
        for (int i = 0; i < 3; i++)
            uv_run(&H->loop, UV_RUN_NOWAIT);
        assert_int_equal(link_read_start(s->link, on_alloc, on_read), 0);
        for (int i = 0; i < 5; i++)
            uv_run(&H->loop, UV_RUN_NOWAIT);
    }
    run();
    assert_got(s, c->wbuf, len);
    assert_int_equal(s->read_end, UV_EOF);
    assert_int_equal(c->write_status, 0);
    assert_true(H->server.max_unread <= MUX_WINDOW_INITIAL);
    close_all_streams();
}

/* 100 streams at once, each echoing a payload of its own (after the client's FIN). */
static void test_hundred_streams(void **state)
{
    enum { N = 100 };
    H->server.accept_echo = true;
    struct tstream *c[N];
    for (int i = 0; i < N; i++) {
        c[i] = open_stream();
        size_t len = 1 + (size_t)i * 997 % 70000;
        fill_write_buffer(c[i], len, (unsigned)i);
        snprintf(c[i]->wbuf, len, "%d", i);
        assert_int_equal(ts_write(c[i], c[i]->wbuf, len), 0);
        assert_int_equal(ts_shutdown(c[i]), 0);
    }
    assert_int_equal(mux_session_streams(H->client.s), N);
    run();
    assert_int_equal(H->server.accepts, N);
    assert_int_equal(mux_session_streams(H->server.s), N);
    for (int i = 0; i < N; i++) {
        size_t len = 1 + (size_t)i * 997 % 70000;
        print_message("stream %d\n", i);
        assert_int_equal(c[i]->write_calls, 1);
        assert_int_equal(c[i]->write_status, 0);
        assert_int_equal(c[i]->shutdown_status, 0);
        assert_got(c[i], c[i]->wbuf, len);
        assert_int_equal(c[i]->read_end, UV_EOF);
    }
    for (size_t i = 0; i < H->server.n_accepted; i++) {
        assert_int_equal(H->server.accepted[i]->read_end, UV_EOF);
        assert_int_equal(H->server.accepted[i]->write_status, 0);
    }
    close_all_streams();
    assert_int_equal(H->client.sent_rst + H->server.sent_rst, 0);
}

/* After the peer reset the stream, writes fail: at once, or through their callback. */
static void test_write_after_peer_reset(void **state)
{
    struct tstream *c = open_stream();
    assert_int_equal(ts_write(c, "a", 1), 0);
    run();
    struct tstream *s = only_accepted();
    ts_close(s, true);
    run();
    assert_int_equal(c->read_end, UV_ECONNRESET);

    int rc = ts_write(c, "b", 1);
    run();
    if (rc == 0) {
        assert_int_equal(c->write_calls, 2);
        assert_true(c->write_status < 0);
    } else {
        assert_true(rc < 0);
        assert_int_equal(c->write_calls, 1); /* only the first one */
    }
    rc = ts_shutdown(c);
    run();
    assert_true(rc < 0 || (c->shutdown_calls == 1 && c->shutdown_status < 0));
    close_all_streams();
}

/* A write waiting for window when the peer resets the stream fails with an error; the bytes the
 * peer never read are not reported as written. */
static void test_blocked_write_fails_on_peer_reset(void **state)
{
    H->server.accept_no_read = true;
    struct tstream *c = open_stream();
    fill_write_buffer(c, BIG_WRITE, 3);
    assert_int_equal(ts_write(c, c->wbuf, BIG_WRITE), 0);
    run();
    assert_int_equal(c->write_calls, 0);
    ts_close(only_accepted(), false);
    run();
    assert_int_equal(c->write_calls, 1);
    assert_int_equal(c->write_status, UV_EPIPE); /* the peer closed: nobody reads */
    assert_int_equal(c->read_end, UV_EOF);       /* in order: a close, not a reset */
    close_all_streams();
}

/* Closing a link with a write still waiting: the write's callback runs with UV_ECANCELED, and
 * before 'closed'. */
static void test_close_cancels_a_blocked_write_first(void **state)
{
    H->server.accept_no_read = true;
    struct tstream *c = open_stream();
    fill_write_buffer(c, BIG_WRITE, 4);
    assert_int_equal(ts_write(c, c->wbuf, BIG_WRITE), 0);
    run();
    assert_int_equal(c->write_calls, 0);
    ts_close(c, false);
    assert_int_equal(c->write_calls, 0); /* not under link_close */
    assert_int_equal(c->closed_calls, 0);
    run();
    assert_int_equal(c->write_calls, 1);
    assert_int_equal(c->write_status, UV_ECANCELED);
    assert_int_equal(c->closed_calls, 1);
    assert_true(c->write_seq < c->closed_seq);
    assert_int_equal(only_accepted()->read_ends, 0); /* not reading: nothing delivered yet */
    close_all_streams();
}

/* The server's owner does not take a stream (accept leaves it: a draining worker): the client's
 * reader hears a refusal, not a reset, which its upstream would read as the exit failing; writes
 * fail as after a reset. */
static void test_declined_stream_is_refused(void **state)
{
    H->server.accept_refuse = true;
    struct tstream *c = open_stream();
    assert_int_equal(ts_write(c, "x", 1), 0);
    run();
    assert_int_equal(H->server.accepts, 1);
    assert_int_equal(c->read_end, UV_ECONNREFUSED);
    assert_int_equal(mux_session_streams(H->server.s), 0);
    assert_int_equal(ts_write(c, "y", 1), UV_ECONNRESET);
    close_all_streams();
}

/* The server's session is full: it holds twice the limit of streams the client ended and their
 * owners have not closed yet (session_is_full). A new stream is refused before any owner sees it:
 * the client reads the refusal. */
static void test_full_session_refuses_new_streams(void **state)
{
    struct tstream *c[MUX_STREAMS_MAX];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < MUX_STREAMS_MAX; i++) {
            c[i] = open_stream();
            assert_int_equal(ts_write(c[i], "x", 1), 0);
        }
        run();
        for (int i = 0; i < MUX_STREAMS_MAX; i++)
            ts_close(c[i], false);
        run();
    }
    assert_int_equal(mux_session_streams(H->server.s), 2 * MUX_STREAMS_MAX);
    int accepts = H->server.accepts;
    struct tstream *late = open_stream();
    assert_int_equal(ts_write(late, "late", 4), 0);
    run();
    assert_int_equal(H->server.accepts, accepts);
    assert_int_equal(late->read_end, UV_ECONNREFUSED);
    close_all_streams();
}

/* A plain reset stays a reset: the server took the stream and resets it before it sent a byte
 * (its RST carries the ACK), as an exit whose destination refused the connection does. */
static void test_reset_of_a_taken_stream_is_a_reset(void **state)
{
    H->server.accept_no_read = true;
    struct tstream *c = open_stream();
    assert_int_equal(ts_write(c, "x", 1), 0);
    run();
    ts_close(only_accepted(), true);
    run();
    assert_int_equal(c->read_end, UV_ECONNRESET);
    close_all_streams();
}

/* At the stream limit, the entry closes streams and opens new ones in the same turn: its session
 * freed its side of each as it closed it, while the exit holds its side until its owner closes
 * it (here: not yet). The exit must take the new streams, not reset them: the entry's upstream
 * reads a bare reset as the exit failing. Both ways the entry ends a stream: a close (RST|FIN),
 * and a close after both FINs (no frame at all). */
static void test_stream_limit_counts_only_what_the_peer_holds(void **state)
{
    struct tstream *c[MUX_STREAMS_MAX];
    for (int i = 0; i < MUX_STREAMS_MAX; i++) {
        c[i] = open_stream();
        assert_int_equal(ts_write(c[i], "x", 1), 0);
    }
    run();
    assert_int_equal(mux_session_streams(H->server.s), MUX_STREAMS_MAX);
    assert_null(mux_session_open(H->client.s));
    assert_int_equal(ts_shutdown(c[1]), 0);
    assert_int_equal(ts_shutdown(H->server.accepted[1]), 0);
    run();
    assert_int_equal(c[1]->read_end, UV_EOF);
    unsigned rst_before = H->server.sent_rst;

    ts_close(c[0], false);
    ts_close(c[1], false);
    turn(); /* the entry frees both */
    assert_int_equal(mux_session_streams(H->client.s), MUX_STREAMS_MAX - 2);
    struct tstream *x[2];
    for (int i = 0; i < 2; i++) {
        x[i] = open_stream();
        assert_int_equal(ts_write(x[i], "hello", 5), 0);
    }
    run();
    assert_int_equal(H->server.sent_rst, rst_before);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(x[i]->read_ends, 0);
        assert_got(H->server.accepted[MUX_STREAMS_MAX + i], "hello", 5);
    }
    assert_int_equal(mux_session_streams(H->server.s), MUX_STREAMS_MAX + 2);
    close_all_streams();
}

/* A malformed frame ends the session: 'ended' runs from the loop (not under
 * mux_session_input), once, and the streams' readers see an error. */
static void test_malformed_frame_ends_the_session(void **state)
{
    static const struct {
        const char *what;
        bool to_client;
        uint8_t bytes[MUX_FRAME_HEADER_LEN];
    } cases[] = {
        {"version 1", false, {1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
        {"unknown type", false, {0, 9, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
        {"unknown flag", true, {0, 1, 0, 0x20, 0, 0, 0, 1, 0, 0, 0, 0}},
        {"DATA on stream 0", false, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
        {"PING on stream 1", true, {0, 2, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0}},
        {"SYN to the client", true, {0, 1, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0}},
        {"SYN with an even id", false, {0, 1, 0, 1, 0, 0, 0, 4, 0, 0, 0, 0}},
        {"SYN on the open stream", false, {0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0}},
        {"DATA past the window", false, {0, 0, 0, 0, 0, 0, 0, 1, 0, 0x04, 0, 1}},
        {"GO_AWAY with an error", true, {0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        print_message("%s\n", cases[i].what);
        assert_int_equal(setup(state), 0);
        struct tstream *c = open_stream();
        assert_int_equal(ts_write(c, "hi", 2), 0);
        run();
        struct tstream *s = only_accepted();
        assert_got(s, "hi", 2);

        struct side *victim = cases[i].to_client ? &H->client : &H->server;
        struct tstream *vs = cases[i].to_client ? c : s;
        struct tstream *other = cases[i].to_client ? s : c;
        victim->in_input = true;
        mux_session_input(victim->s, cases[i].bytes, sizeof(cases[i].bytes));
        victim->in_input = false;
        assert_int_equal(victim->ended_calls, 0); /* not under mux_session_input */
        run();
        assert_int_equal(victim->ended_calls, 1);
        assert_false(victim->ended_inside_input);
        assert_true(strlen(victim->ended_why) > 0);
        assert_true(vs->read_end < 0 && vs->read_end != UV_EOF);
        assert_int_equal(vs->read_ends, 1);
        /* the owner cut the carrier in 'ended': the other side's stream is reset too */
        assert_true(other->read_end < 0 && other->read_end != UV_EOF);
        assert_true(ts_write(vs, "x", 1) < 0);
        assert_int_equal(victim->peer->ended_calls, 0); /* it was told by carrier_ended */
        assert_int_equal(teardown(state), 0);
    }
}

/* A peer that keeps asking for answers (PING) while their frames are not written ends the
 * session at a bound, instead of growing the write queue without one. */
static void test_unanswered_control_frames_are_bounded(void **state)
{
    uint8_t ping[MUX_FRAME_HEADER_LEN];
    struct mux_frame_header h = {.type = MUX_FRAME_PING, .flags = MUX_FLAG_SYN, .length = 7};
    mux_frame_header_write(&h, ping);
    unsigned before = H->server.frames_sent;
    for (int i = 0; i < 6000; i++) /* the loop does not run: no frame is written */
        mux_session_input(H->server.s, ping, sizeof(ping));
    run();
    assert_int_equal(H->server.ended_calls, 1);
    assert_int_equal(H->client.ended_calls, 0);
    assert_true(H->server.frames_sent - before < 6000); /* the answers past the bound: none */
}

/* A PING is answered and changes nothing else. */
static void test_ping_is_answered(void **state)
{
    struct tstream *c = open_stream();
    uint8_t ping[MUX_FRAME_HEADER_LEN];
    struct mux_frame_header h = {.type = MUX_FRAME_PING, .flags = MUX_FLAG_SYN, .length = 42};
    mux_frame_header_write(&h, ping);
    size_t before = H->server.q_len;
    mux_session_input(H->server.s, ping, sizeof(ping));
    turn();
    /* the server answered with PING|ACK carrying the same value */
    assert_true(H->server.q_len > before);
    struct mux_frame *f = H->server.q[H->server.q_head + H->server.q_len - 1];
    struct mux_frame_header got;
    size_t used;
    assert_int_equal(mux_frame_header_parse(f->data, f->len, &got, &used), PARSE_DONE);
    assert_int_equal(got.type, MUX_FRAME_PING);
    assert_int_equal(got.flags, MUX_FLAG_ACK);
    assert_int_equal(got.length, 42);
    run();
    assert_int_equal(H->client.ended_calls + H->server.ended_calls, 0);
    assert_int_equal(ts_write(c, "ok", 2), 0);
    run();
    assert_got(only_accepted(), "ok", 2);
    close_all_streams();
}

/* GO_AWAY from the server: once it arrived the client opens no more streams; the one open runs to
 * its end. */
static void test_go_away(void **state)
{
    struct tstream *c = open_stream();
    assert_int_equal(ts_write(c, "one", 3), 0);
    run();
    struct tstream *s = only_accepted();

    mux_session_go_away(H->server.s);
    assert_true(mux_session_draining(H->server.s));
    run();
    assert_int_equal(H->server.sent_go_away, 1);
    assert_true(mux_session_draining(H->client.s));
    assert_null(mux_session_open(H->client.s));

    /* the open stream still works both ways and ends cleanly */
    assert_int_equal(ts_write(c, " two", 4), 0);
    assert_int_equal(ts_shutdown(c), 0);
    run();
    assert_got(s, "one two", 7);
    assert_int_equal(s->read_end, UV_EOF);
    assert_int_equal(ts_write(s, "bye", 3), 0);
    assert_int_equal(ts_shutdown(s), 0);
    run();
    assert_got(c, "bye", 3);
    assert_int_equal(c->read_end, UV_EOF);
    assert_int_equal(c->write_status, 0);
    assert_int_equal(s->write_status, 0);
    assert_int_equal(H->client.sent_rst + H->server.sent_rst, 0);
    assert_int_equal(H->client.ended_calls + H->server.ended_calls, 0); /* a stream is open */
    assert_int_equal(H->server.accepts, 1);
    close_all_streams();
}

/* A SYN that crosses the server's GO_AWAY is refused: the client reads the refusal (not a reset),
 * and its session, which got the GO_AWAY, opens no new stream. */
static void test_go_away_refuses_new_streams(void **state)
{
    mux_session_go_away(H->server.s);
    struct tstream *c = open_stream(); /* before the GO_AWAY arrived */
    assert_int_equal(ts_write(c, "late", 4), 0);
    run();
    assert_int_equal(H->server.accepts, 0);
    assert_int_equal(c->read_end, UV_ECONNREFUSED);
    assert_true(mux_session_draining(H->client.s));
    assert_null(mux_session_open(H->client.s));
    close_all_streams();
}

/* After GO_AWAY, the session ends ('ended' runs) once the last stream is gone, without waiting
 * for more bytes from the peer (mux.h: "said GO_AWAY and no stream is left"). */
static void test_regression_go_away_ends_after_last_stream(void **state)
{
    struct tstream *c = open_stream();
    assert_int_equal(ts_write(c, "one", 3), 0);
    assert_int_equal(ts_shutdown(c), 0);
    run();
    struct tstream *s = only_accepted();
    mux_session_go_away(H->server.s);
    assert_int_equal(ts_shutdown(s), 0);
    run();
    assert_int_equal(c->read_end, UV_EOF);
    assert_int_equal(H->client.ended_calls, 0);
    close_all_streams();
    assert_int_equal(H->client.ended_calls, 1);
}

/* mux_session_close with streams open: their readers see UV_ECONNRESET, their waiting writes
 * fail, writes are refused after, and once the links are closed everything is freed (teardown
 * closes the loop; ASan/LSan check the memory). */
/* What the session queued in the turn it is closed in (a draining carrier's GO_AWAY) goes to
 * the carrier before the owner closes it, not with the queue's cancellation. */
static void test_close_hands_over_what_the_turn_queued(void **state)
{
    mux_session_go_away(H->server.s);
    assert_int_equal(H->server.sent_go_away, 0); /* queued for the end of the turn */
    side_close(&H->server);
    assert_int_equal(H->server.sent_go_away, 1);
    run();
}

static void test_session_close_with_open_streams(void **state)
{
    H->server.accept_no_read = false;
    struct tstream *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = open_stream();
        assert_int_equal(ts_write(c[i], "x", 1), 0);
    }
    run();
    assert_int_equal(H->server.n_accepted, 3);
    /* the third one has a write waiting for window */
    link_read_stop(H->server.accepted[2]->link);
    fill_write_buffer(c[2], BIG_WRITE, 5);
    assert_int_equal(ts_write(c[2], c[2]->wbuf, BIG_WRITE), 0);
    run();
    assert_int_equal(c[2]->write_calls, 1);

    side_close(&H->client); /* the owner closes the carrier and the session */
    carrier_cut();          /* and the server sees it end */
    for (int i = 0; i < 3; i++)
        assert_int_equal(c[i]->read_ends, 0); /* not under mux_session_close */
    run();
    for (int i = 0; i < 3; i++) {
        print_message("stream %d\n", i);
        assert_int_equal(c[i]->read_end, UV_ECONNRESET);
        assert_int_equal(c[i]->read_ends, 1);
        assert_true(ts_write(c[i], "y", 1) < 0);
        assert_int_equal(c[i]->closed_calls, 0); /* the owner closes them */
    }
    assert_int_equal(c[2]->write_calls, 2);
    assert_true(c[2]->write_status < 0);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(H->server.accepted[i]->read_end, UV_ECONNRESET);
    assert_int_equal(H->client.ended_calls, 0); /* the owner knows */
    assert_int_equal(H->server.ended_calls, 0);
    side_close(&H->server);
    close_all_streams();
}

/* Closing a session with no stream and no frame out frees it at once (the loop closes). */
static void test_session_close_idle(void **state)
{
    side_close(&H->client);
    side_close(&H->server);
    run();
    assert_int_equal(H->client.ended_calls + H->server.ended_calls, 0);
}

/* A reader whose alloc gives no room gets UV_ENOBUFS, and the stream is cut for the peer too:
 * once the link is closed the peer's reader sees a reset rather than waiting for ever. */
static void test_regression_enobufs_resets_the_peer(void **state)
{
    H->server.accept_no_read = true;
    struct tstream *c = open_stream();
    assert_int_equal(ts_write(c, "data", 4), 0);
    run();
    struct tstream *s = only_accepted();
    s->no_room = true;
    assert_int_equal(link_read_start(s->link, on_alloc, on_read), 0);
    run();
    assert_int_equal(s->read_end, UV_ENOBUFS);
    assert_int_equal(s->got_len, 0);
    ts_close(s, false);
    run();
    assert_int_equal(c->read_end, UV_ECONNRESET);
    assert_true(ts_write(c, "more", 4) < 0);
    close_all_streams();
}

/* Closing a link from its own write or shutdown callback (as the relay does when a direction
 * finishes or a write fails) frees nothing still in use. */
static void test_regression_close_from_shutdown_callback(void **state)
{
    struct tstream *c2 = open_stream();
    c2->close_in_shutdown_cb = true;
    assert_int_equal(ts_write(c2, "pong", 4), 0);
    run();
    struct tstream *s2 = only_accepted();
    assert_int_equal(ts_shutdown(s2), 0); /* the client reads EOF */
    run();
    assert_int_equal(c2->read_end, UV_EOF);
    assert_int_equal(ts_shutdown(c2), 0); /* its callback closes the link */
    run();
    assert_int_equal(c2->shutdown_calls, 1);
    assert_int_equal(c2->closed_calls, 1);
    /* the sessions still work */
    struct tstream *c3 = open_stream();
    assert_int_equal(ts_write(c3, "still", 5), 0);
    run();
    assert_int_equal(H->server.n_accepted, 2);
    assert_got(H->server.accepted[1], "still", 5);
    close_all_streams();
}

static void test_regression_close_from_failed_write_callback(void **state)
{
    H->server.accept_no_read = true;
    struct tstream *c = open_stream();
    c->close_in_write_cb = true;
    fill_write_buffer(c, BIG_WRITE, 6);
    assert_int_equal(ts_write(c, c->wbuf, BIG_WRITE), 0);
    run();
    ts_close(only_accepted(), true);
    run();
    assert_int_equal(c->write_calls, 1);
    assert_true(c->write_status < 0);
    assert_int_equal(c->closed_calls, 1);
    struct tstream *c2 = open_stream();
    assert_int_equal(ts_write(c2, "still", 5), 0);
    run();
    close_all_streams();
}

/* A link_try_write whose frame goes to the carrier at once and is refused there (a stream's
 * first frame, a bulk frame) fails; its write is freed once (ASan: it was freed twice). */
static void assert_try_write_refused(struct tstream *c, const char *data, size_t len, int err)
{
    H->client.write_error = err;
    assert_int_equal(link_try_write(c->link, data, len), UV_ECONNRESET);
    run();
    assert_int_equal(c->read_end, UV_ECONNRESET);
    close_all_streams();
}

static void test_regression_try_write_refused_at_once(void **state)
{
    assert_try_write_refused(open_stream(), "hello", 5, UV_EPIPE);
}

static void test_regression_bulk_try_write_refused_at_once(void **state)
{
    struct tstream *c = open_stream();
    assert_int_equal(ts_write(c, "open", 4), 0);
    run();
    fill_write_buffer(c, MUX_FRAME_PAYLOAD_MAX, 4);
    assert_try_write_refused(c, c->wbuf, MUX_FRAME_PAYLOAD_MAX, UV_ECONNRESET);
}

/* After EOF no more reads follow (link.h), even when the peer then resets the stream. */
static void test_regression_no_read_after_eof(void **state)
{
    struct tstream *c = open_stream();
    assert_int_equal(ts_write(c, "req", 3), 0);
    assert_int_equal(ts_shutdown(c), 0);
    run();
    struct tstream *s = only_accepted();
    assert_int_equal(s->read_end, UV_EOF);
    /* the server keeps its reader started (libuv allows that after EOF); the client goes away
     * before the server's FIN: a reset */
    ts_close(c, false);
    run();
    assert_int_equal(s->read_ends, 1);
    assert_int_equal(s->reads_after_end, 0);
    /* the reset shows on the server's next write instead */
    int rc = ts_write(s, "answer", 6);
    run();
    assert_true(rc < 0 || s->write_status < 0);
    close_all_streams();
}

/* test_mux [PATTERN]: only the tests whose name matches PATTERN (cmocka's filter, '*' allowed). */
int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_before_both_fins_ends_the_stream, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flow_control, setup, teardown),
        cmocka_unit_test_setup_teardown(test_try_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frames_of_a_turn_share_a_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_and_its_end_go_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_update_goes_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paused_carrier_resumes_when_queues_are_dropped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tiny_frames_cost_heap_in_proportion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_stop_and_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hundred_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_after_peer_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blocked_write_fails_on_peer_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_cancels_a_blocked_write_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_declined_stream_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_session_refuses_new_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_of_a_taken_stream_is_a_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_limit_counts_only_what_the_peer_holds, setup,
                                        teardown),
        cmocka_unit_test(test_malformed_frame_ends_the_session),
        cmocka_unit_test_setup_teardown(test_unanswered_control_frames_are_bounded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ping_is_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_go_away, setup, teardown),
        cmocka_unit_test_setup_teardown(test_go_away_refuses_new_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_hands_over_what_the_turn_queued, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_session_close_with_open_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_close_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regression_go_away_ends_after_last_stream, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_regression_enobufs_resets_the_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regression_close_from_shutdown_callback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_regression_close_from_failed_write_callback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_regression_no_read_after_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regression_try_write_refused_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regression_bulk_try_write_refused_at_once, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
