/* libFuzzer target for proxy/mux.c: the input is what the peer sent on the carrier of a mux
 * session, fed to mux_session_input() in pieces, with the loop running between them. The owner
 * behaves as the proxy does: it accepts streams (server side) or opens a few (client side), reads
 * them, echoes a little back, shuts down after EOF, closes on errors and when the peer's bytes say
 * so; the fake carrier completes every frame from an idle handle (never inside its write), and can
 * fail one. At the end the session is closed, every link closed, the loop run until nothing is
 * left, and everything must be freed (LeakSanitizer). Broken promises abort:
 *   - every frame the session hands out is a valid header (+ its DATA payload, at most
 *     MUX_FRAME_PAYLOAD_MAX bytes);
 *   - no link callback runs under the caller of a link function; a write's and a shutdown's
 *     callback run once each, before 'closed'; 'closed' runs once; no read after link_read_stop;
 *   - 'ended' runs at most once, never under mux_session_input();
 *   - once everything is closed the loop has nothing left (the session closed its handle).
 *
 * Input: byte 0 chooses the owner's behaviour (bits below), byte 1 the piece sizes; the rest is
 * the carrier's bytes. In a stream, the first byte of a read decides: 'C' close, 'R' close with
 * reset, 'S' shut down, 'P' pause reading until the owner's next turn.
 *
 * With bit 0x40 the owner closes links from inside link callbacks too (as the relay does), and
 * every read's end is checked to be the last read.
 * Build: tests/fuzz/CMakeLists.txt (GEOPROXY_FUZZ=ON). Seeds: tests/fuzz/corpus/mux/. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "proxy/link.h"
#include "proxy/mux.h"
#include "proxy/mux_frame_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

/* byte 0 */
#define OPT_CLIENT 0x01       /* a client session that opens streams, not a server */
#define OPT_REFUSE 0x02       /* refuse every third stream the peer opens */
#define OPT_FAIL_FRAME 0x04   /* the carrier fails the 5th frame (after handing it over) */
#define OPT_REFUSE_WRITE 0x08 /* the carrier refuses the 7th frame outright */
#define OPT_PAUSED 0x10       /* streams start not reading; the owner starts them next turn */
#define OPT_GO_AWAY 0x20      /* the owner says GO_AWAY at once */
#define OPT_CLOSE_IN_CB 0x40  /* close from link callbacks (as the relay does) */
#define OPT_SMALL_READS 0x80  /* the reader's buffer is 3 bytes */

#define ECHO_MAX 16
#define TURNS_BETWEEN_PIECES 2
#define SETTLE_TURNS_MAX 100000
#define FRAMES_MAX 4096

struct fz_stream {
    struct fz_stream *next;
    struct link own; /* a stream the peer opened; one we opened is malloc'd by the session */
    struct link *l;  /* NULL once closed */
    char rbuf[256];
    char wbuf[ECHO_MAX];
    struct link_write w;
    struct link_shutdown sd;
    bool writing, shutting, shut_asked, read_ended, paused;
    bool close_asked, close_pending, close_reset;
    int closed_calls;
};

static struct {
    uv_loop_t loop;
    uv_idle_t carrier;
    bool ready;
    /* per input */
    uint8_t opts;
    struct mux_session *s;
    struct mux_frame *frames[FRAMES_MAX];
    size_t n_frames;
    unsigned frames_seen, writes_seen;
    bool carrier_down;
    bool in_input, in_link_call;
    int ended_calls, accepts;
    struct fz_stream *streams;
} fz;

static bool close_in_callbacks(void)
{
    return (fz.opts & OPT_CLOSE_IN_CB) != 0;
}

/* ---- the carrier ---- */

static void on_carrier(uv_idle_t *idle)
{
    /* frames handed over from here on wait for the next turn */
    size_t n = fz.n_frames;
    struct mux_frame *done[FRAMES_MAX];
    memcpy(done, fz.frames, n * sizeof(*done));
    fz.n_frames = 0;
    for (size_t i = 0; i < n; i++) {
        int status = 0;
        if (fz.carrier_down)
            status = UV_ECANCELED;
        else if ((fz.opts & OPT_FAIL_FRAME) && ++fz.frames_seen == 5)
            status = UV_EPIPE;
        mux_frame_written(done[i], status);
    }
    if (fz.n_frames == 0)
        uv_idle_stop(idle);
}

static int fake_write(void *owner, struct mux_frame *f)
{
    /* one frame, or the frames of a batch back to back, each whole and well formed */
    CHECK(f->len >= MUX_FRAME_HEADER_LEN);
    for (size_t at = 0; at < f->len;) {
        struct mux_frame_header h;
        size_t used;
        CHECK(f->len - at >= MUX_FRAME_HEADER_LEN);
        CHECK(mux_frame_header_parse(f->data + at, f->len - at, &h, &used) == PARSE_DONE);
        CHECK(h.type != MUX_FRAME_DATA || h.length <= MUX_FRAME_PAYLOAD_MAX);
        size_t frame_len = MUX_FRAME_HEADER_LEN + (h.type == MUX_FRAME_DATA ? h.length : 0);
        CHECK(frame_len <= f->len - at);
        at += frame_len;
    }
    if ((fz.opts & OPT_REFUSE_WRITE) && ++fz.writes_seen == 7)
        return UV_EPIPE;
    if (fz.n_frames == FRAMES_MAX)
        return UV_ENOBUFS; /* a carrier that cannot take more */
    fz.frames[fz.n_frames++] = f;
    uv_idle_start(&fz.carrier, on_carrier);
    return 0;
}

static void fake_read_enable(void *owner, bool enable)
{
}

static void session_close(void)
{
    if (fz.s == NULL)
        return;
    mux_session_close(fz.s);
    fz.s = NULL;
    fz.carrier_down = true;
    uv_idle_start(&fz.carrier, on_carrier);
}

static void fake_ended(void *owner, const char *why)
{
    CHECK(!fz.in_input);
    CHECK(why != NULL);
    CHECK(++fz.ended_calls == 1);
    session_close();
}

/* ---- streams ---- */

static void on_closed(struct link *l)
{
    struct fz_stream *st = l->data;
    CHECK(++st->closed_calls == 1);
    CHECK(!st->writing && !st->shutting);
    if (l != &st->own)
        free(l);
    st->l = NULL;
}

static void stream_close_now(struct fz_stream *st)
{
    if (st->close_asked || st->l == NULL)
        return;
    st->close_asked = true;
    st->close_pending = false;
    if (st->close_reset)
        link_close_reset(st->l, on_closed);
    else
        link_close(st->l, on_closed);
}

static void stream_close(struct fz_stream *st, bool reset)
{
    st->close_reset = st->close_reset || reset;
    if (close_in_callbacks())
        stream_close_now(st);
    else
        st->close_pending = true;
}

static void on_shutdown(struct link_shutdown *sd, int status)
{
    struct fz_stream *st = sd->link->data;
    CHECK(!fz.in_link_call);
    CHECK(st->shutting && st->closed_calls == 0);
    st->shutting = false;
    if (status < 0 || st->read_ended)
        stream_close(st, false);
}

static void stream_shutdown(struct fz_stream *st)
{
    if (st->shut_asked || st->close_asked)
        return;
    st->shut_asked = true;
    fz.in_link_call = true;
    int err = link_shutdown(st->l, &st->sd, on_shutdown);
    fz.in_link_call = false;
    if (err == 0)
        st->shutting = true;
    else
        stream_close(st, false);
}

static void on_write(struct link_write *w, int status)
{
    struct fz_stream *st = w->link->data;
    CHECK(!fz.in_link_call);
    CHECK(st->writing && st->closed_calls == 0);
    st->writing = false;
    if (status < 0)
        stream_close(st, false);
}

static void on_alloc(struct link *l, uv_buf_t *buf)
{
    struct fz_stream *st = l->data;
    *buf = uv_buf_init(st->rbuf, (fz.opts & OPT_SMALL_READS) ? 3 : sizeof(st->rbuf));
}

static void on_read(struct link *l, ssize_t nread, const uv_buf_t *buf)
{
    struct fz_stream *st = l->data;
    CHECK(!fz.in_link_call);
    CHECK(st->closed_calls == 0 && !st->close_asked);
    CHECK(!st->paused);
    if (st->read_ended) {
        CHECK(!"a read after the read's end");
        return;
    }
    if (nread == 0)
        return;
    if (nread < 0) {
        st->read_ended = true;
        if (nread == UV_EOF && !st->shut_asked)
            stream_shutdown(st);
        else if (nread != UV_EOF || !st->shutting)
            stream_close(st, false);
        return;
    }
    CHECK(buf->base == st->rbuf && (size_t)nread <= sizeof(st->rbuf));
    if (!st->writing && !st->shut_asked && !st->close_asked) {
        size_t n = (size_t)nread < ECHO_MAX ? (size_t)nread : ECHO_MAX;
        memcpy(st->wbuf, buf->base, n);
        fz.in_link_call = true;
        int err = link_write(st->l, &st->w, st->wbuf, n, on_write);
        fz.in_link_call = false;
        st->writing = err == 0;
    }
    switch (buf->base[0]) {
    case 'C':
        stream_close(st, false);
        break;
    case 'R':
        stream_close(st, true);
        break;
    case 'S':
        stream_shutdown(st);
        break;
    case 'P':
        link_read_stop(st->l);
        st->paused = true;
        break;
    default:
        break;
    }
}

static struct fz_stream *stream_new(void)
{
    struct fz_stream *st = calloc(1, sizeof(*st));
    CHECK(st != NULL);
    st->next = fz.streams;
    fz.streams = st;
    return st;
}

static void stream_start(struct fz_stream *st)
{
    st->l->data = st;
    if (fz.opts & OPT_PAUSED) {
        st->paused = true;
        return;
    }
    fz.in_link_call = true;
    CHECK(link_read_start(st->l, on_alloc, on_read) == 0);
    fz.in_link_call = false;
}

static void fake_accept(void *owner, struct mux_stream *stream)
{
    CHECK(!(fz.opts & OPT_CLIENT));
    if ((fz.opts & OPT_REFUSE) && ++fz.accepts % 3 == 0)
        return;
    struct fz_stream *st = stream_new();
    link_init_stream(&st->own, stream);
    st->l = &st->own;
    stream_start(st);
}

static const struct mux_carrier fake_ops = {
    .write = fake_write,
    .read_enable = fake_read_enable,
    .accept = fake_accept,
    .ended = fake_ended,
};

/* The owner's turn: closes asked for in callbacks, readers paused since the last turn. */
static void owner_turn(void)
{
    for (struct fz_stream *st = fz.streams; st != NULL; st = st->next) {
        if (st->l == NULL)
            continue;
        if (st->close_pending) {
            stream_close_now(st);
        } else if (st->paused && !st->close_asked) {
            st->paused = false;
            fz.in_link_call = true;
            int err = link_read_start(st->l, on_alloc, on_read);
            fz.in_link_call = false;
            if (err != 0)
                stream_close(st, false);
        }
    }
}

static void turns(int n)
{
    for (int i = 0; i < n; i++) {
        uv_run(&fz.loop, UV_RUN_NOWAIT);
        owner_turn();
    }
}

/* Client side: three streams, one of them already half-closed. */
static void open_streams(void)
{
    for (int i = 0; i < 3 && fz.s != NULL; i++) {
        struct link *l = mux_session_open(fz.s);
        if (l == NULL)
            break;
        struct fz_stream *st = stream_new();
        st->l = l;
        stream_start(st);
        memcpy(st->wbuf, "hello", 5);
        fz.in_link_call = true;
        st->writing = link_write(l, &st->w, st->wbuf, 5, on_write) == 0;
        fz.in_link_call = false;
        if (i == 2)
            stream_shutdown(st);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fz.ready) {
        CHECK(uv_loop_init(&fz.loop) == 0);
        CHECK(uv_idle_init(&fz.loop, &fz.carrier) == 0);
        fz.ready = true;
    }
    if (size < 2)
        return 0;
    fz.opts = data[0];
    uint8_t pieces = data[1];
    data += 2;
    size -= 2;
    fz.n_frames = 0;
    fz.frames_seen = fz.writes_seen = 0;
    fz.carrier_down = false;
    fz.ended_calls = fz.accepts = 0;
    fz.streams = NULL;

    fz.s = mux_session_new(&fz.loop, (fz.opts & OPT_CLIENT) != 0, &fake_ops, NULL, NULL);
    CHECK(fz.s != NULL);
    if (fz.opts & OPT_CLIENT)
        open_streams();
    if ((fz.opts & OPT_GO_AWAY) && fz.s != NULL)
        mux_session_go_away(fz.s);

    /* the carrier's bytes, in pieces of 1..16 bytes (a pattern from byte 1), or all at once */
    uint32_t lcg = pieces;
    for (size_t at = 0; at < size && fz.s != NULL;) {
        size_t n = size - at;
        if (pieces != 0) {
            lcg = lcg * 1103515245u + 12345u;
            size_t piece = 1 + (lcg >> 16) % 16;
            n = n < piece ? n : piece;
        }
        fz.in_input = true;
        mux_session_input(fz.s, data + at, n);
        fz.in_input = false;
        at += n;
        turns(TURNS_BETWEEN_PIECES);
    }
    turns(TURNS_BETWEEN_PIECES);

    /* the end: the owner closes the session and every link, and everything goes */
    session_close();
    for (struct fz_stream *st = fz.streams; st != NULL; st = st->next)
        stream_close_now(st);
    int settled = 0;
    while (uv_run(&fz.loop, UV_RUN_NOWAIT) != 0) {
        owner_turn();
        CHECK(++settled < SETTLE_TURNS_MAX);
    }
    CHECK(fz.n_frames == 0);
    CHECK(!uv_loop_alive(&fz.loop));
    for (struct fz_stream *st = fz.streams, *next; st != NULL; st = next) {
        next = st->next;
        CHECK(st->closed_calls == 1);
        free(st);
    }
    fz.streams = NULL;
    return 0;
}
