/* The mux session (proxy/mux.h) and its streams, which are links (link.c dispatches to the
 * link_stream_* functions here).
 *
 * Callbacks: data and ends reach a stream's reader from mux_session_input() when it is reading
 * and nothing waits before them; everything else that calls back into a stream's owner (bytes
 * that waited, the end of reads, failed or cancelled writes, 'closed') runs from the session's
 * idle handle, never under the caller of a link function. The session holds a reference for
 * each stream, each frame out and the owner; its memory goes when the last one is dropped. */
#include "proxy/mux.h"

#include <stdlib.h>
#include <string.h>

#include "proxy/link_internal.h"
#include "proxy/mux_frame_parse.h"

#define MUX_BUCKETS 64

const char MUX_ENDED_GO_AWAY[] = "the peer said GO_AWAY and its last stream ended";
/* Frames of the session's own (window updates, RSTs, PING answers) handed to the carrier and
 * not written yet: a peer that keeps asking for them without reading ends the session. */
#define MUX_CONTROL_OUT_MAX 4096
/* A stream's link_try_write frames its bytes at once (the frames hold a copy) while the frames
 * handed to the carrier and not written yet come to less than this; past it, writers wait for
 * their frames as with link_write. */
#define MUX_TRY_WRITE_OUT_MAX MUX_FRAME_PAYLOAD_MAX
/* Frames queued in one loop turn go to the carrier as one write while they come to at most this
 * (a TLS record's plaintext); a longer frame goes alone. */
#define MUX_BATCH_MAX (16 * 1024)

/* A write or a shutdown of a stream, until its callback ran and its frames came back. */
struct mux_stream_write {
    struct mux_stream_write *next; /* the stream's list, oldest first */
    struct mux_stream *stream;     /* NULL once the stream is gone */
    struct link_write *w;          /* NULL: a shutdown, or the callback ran */
    struct link_shutdown *sd;
    const char *data;
    size_t len, off; /* framed so far */
    unsigned frames; /* frames out carrying it */
    int status;      /* the first failure */
    bool framed;     /* every byte (or the FIN) is in a frame */
    bool called;     /* the callback ran */
};

/* Received bytes waiting for the reader, appended to the last chunk while it has room. */
struct mux_chunk {
    struct mux_chunk *next;
    size_t len, off, cap;
    uint8_t data[];
};
/* The least room a new chunk gets: a peer that sends its window one byte per frame then costs a
 * chunk header per MUX_CHUNK_MIN bytes rather than per byte (48 bytes of heap per byte, on
 * glibc), and a stream at most this much room unused, in its last chunk. */
#define MUX_CHUNK_MIN 4096

struct mux_stream {
    struct mux_session *s;
    struct link *link;
    uint32_t id;
    uint32_t send_window;   /* bytes the peer lets us send */
    uint32_t recv_window;   /* bytes the peer may still send */
    uint32_t recv_consumed; /* delivered and not credited back yet */
    bool reading, delivering;
    bool fin_sent, fin_queued, fin_recv;
    uint16_t opening; /* SYN (we opened it) or ACK (the peer did) for our first frame, then 0 */
    bool acked;       /* we opened it, and a frame of the peer's said ACK: it took the stream */
    bool send_closed; /* no more frames from us: RST sent or received, or the peer closed it */
    bool reset;       /* cut: reads end with an error, what waited for the reader is dropped */
    bool closing;     /* the owner closed the link; 'closed' is due */
    int read_end;     /* UV_EOF or an error, delivered after the queued bytes */
    bool read_end_delivered;
    struct mux_chunk *rq_head, *rq_tail;
    struct mux_stream_write *writes;
    link_closed_fn closed;
    bool in_pump;    /* in the pump's list, or being looked at by it */
    bool pump_again; /* asked for while in_pump */
    struct mux_stream *pump_next;
    struct mux_stream *hnext; /* bucket chain */
};

/* Frames in order, oldest first. */
struct frame_queue {
    struct mux_frame *head, *tail;
};

struct mux_session {
    uv_loop_t *loop;
    uv_idle_t pump;
    const struct mux_carrier *ops;
    void *owner;
    struct sockaddr_storage local;
    bool client;
    bool broken;       /* the carrier failed or the peer broke the protocol */
    bool go_away;      /* no new streams */
    bool peer_go_away; /* the peer said so: the session ends with its last stream */
    bool closed;       /* mux_session_close was called */
    bool ended_told;
    const char *ended_why; /* the owner is to hear it from the pump */
    bool input_paused;
    bool out_may_wait; /* the queue holds a reply's relayed bytes: their end may follow */
    bool out_held;     /* the queue waited one turn already */
    int refs;
    unsigned control_out;    /* frames out that carry no stream's bytes */
    size_t out_bytes;        /* bytes of the frames queued or handed to the carrier, not written */
    struct frame_queue out;  /* frames for the carrier at the end of the turn */
    struct frame_queue sent; /* taken by the carrier at once: the pump completes them */
    size_t n_streams;
    size_t buffered; /* received bytes waiting for readers */
    uint32_t next_id;
    uint32_t last_peer_id;
    struct mux_stream *buckets[MUX_BUCKETS];
    struct mux_stream *pump_head, *pump_tail;
    /* The frame being read: its header bytes, then (DATA) the payload still to come. */
    uint8_t hdr[MUX_FRAME_HEADER_LEN];
    size_t hdr_len;
    struct mux_frame_header cur;
    uint32_t payload_left;
};

static void stream_send(struct mux_stream *st);
static void session_fail(struct mux_session *s, const char *why);

/* ---- references and the pump ---------------------------------------------------------------- */

static void on_pump_closed(uv_handle_t *h)
{
    free(h->data);
}

static void session_unref(struct mux_session *s)
{
    if (--s->refs == 0)
        uv_close((uv_handle_t *)&s->pump, on_pump_closed);
}

static void on_pump(uv_idle_t *idle);

/* The owner hears that the session ended from the pump, never under its own call. */
static void session_tell_ended(struct mux_session *s, const char *why)
{
    if (s->ended_told || s->closed || s->ended_why != NULL)
        return;
    s->ended_why = why;
    uv_idle_start(&s->pump, on_pump);
}

static void pump_schedule(struct mux_stream *st)
{
    struct mux_session *s = st->s;
    if (st->in_pump) {
        st->pump_again = true; /* once its turn in the pump is over */
        return;
    }
    st->in_pump = true;
    st->pump_next = NULL;
    if (s->pump_tail != NULL)
        s->pump_tail->pump_next = st;
    else
        s->pump_head = st;
    s->pump_tail = st;
    uv_idle_start(&s->pump, on_pump);
}

/* ---- the stream table ----------------------------------------------------------------------- */

static struct mux_stream **bucket_of(struct mux_session *s, uint32_t id)
{
    return &s->buckets[(id >> 1) % MUX_BUCKETS];
}

static struct mux_stream *stream_find(struct mux_session *s, uint32_t id)
{
    for (struct mux_stream *st = *bucket_of(s, id); st != NULL; st = st->hnext)
        if (st->id == id)
            return st;
    return NULL;
}

static struct mux_stream *stream_new(struct mux_session *s, uint32_t id)
{
    struct mux_stream *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->s = s;
    st->id = id;
    st->send_window = st->recv_window = MUX_WINDOW_INITIAL;
    struct mux_stream **b = bucket_of(s, id);
    st->hnext = *b;
    *b = st;
    s->n_streams++;
    s->refs++;
    return st;
}

static void stream_free(struct mux_stream *st)
{
    struct mux_session *s = st->s;
    for (struct mux_stream **p = bucket_of(s, st->id); *p != NULL; p = &(*p)->hnext) {
        if (*p == st) {
            *p = st->hnext;
            break;
        }
    }
    for (struct mux_chunk *c = st->rq_head, *next; c != NULL; c = next) {
        next = c->next;
        s->buffered -= c->len - c->off;
        free(c);
    }
    /* Writes whose frames are still out are freed when those come back. */
    for (struct mux_stream_write *sw = st->writes, *next; sw != NULL; sw = next) {
        next = sw->next;
        sw->stream = NULL;
        if (sw->frames == 0)
            free(sw);
    }
    s->n_streams--;
    free(st);
    session_unref(s);
}

/* ---- frames out ---------------------------------------------------------------------------- */

static void session_flush(struct mux_session *s);

static void frame_queue_push(struct frame_queue *q, struct mux_frame *f)
{
    f->next = NULL;
    if (q->tail != NULL)
        q->tail->next = f;
    else
        q->head = f;
    q->tail = f;
}

/* Unlinks the frames from the head up to 'last' and returns the first. */
static struct mux_frame *frame_queue_take(struct frame_queue *q, struct mux_frame *last)
{
    struct mux_frame *first = q->head;
    q->head = last->next;
    if (q->head == NULL)
        q->tail = NULL;
    last->next = NULL;
    return first;
}

/* Queues one frame for the carrier (session_flush hands it over at the end of the turn, or at
 * once: below); 'sw' (may be NULL) is the write whose bytes it carries. */
static void emit(struct mux_session *s, uint8_t type, uint16_t flags, uint32_t id, uint32_t length,
                 const char *payload, size_t payload_len, struct mux_stream_write *sw)
{
    if (s->broken)
        return;
    if (sw == NULL && s->control_out >= MUX_CONTROL_OUT_MAX) {
        session_fail(s, "the peer does not read what it asks for");
        return;
    }
    struct mux_frame *f = malloc(sizeof(*f) + MUX_FRAME_HEADER_LEN + payload_len);
    if (f == NULL) {
        session_fail(s, "out of memory");
        return;
    }
    struct mux_frame_header h = {.type = type, .flags = flags, .stream = id, .length = length};
    mux_frame_header_write(&h, f->data);
    if (payload_len > 0)
        memcpy(f->data + MUX_FRAME_HEADER_LEN, payload, payload_len);
    f->len = MUX_FRAME_HEADER_LEN + payload_len;
    f->session = s;
    f->carries = sw;
    if (sw != NULL)
        sw->frames++;
    else
        s->control_out++;
    s->refs++;
    s->out_bytes += f->len;
    f->members = NULL;
    frame_queue_push(&s->out, f);
    /* Bytes a server relays (link_try_write on the accepting side) are a reply, which its end
     * often follows at once (a server that closes after answering); a client's seldom are. An
     * end in the queue is what they would wait for (proxy/relay.c looks for it after a short
     * read, so an end already in the socket is queued in the same turn): nothing to wait for. */
    if (!s->client && sw != NULL && sw->w == NULL && sw->sd == NULL)
        s->out_may_wait = true;
    if (flags & MUX_FLAG_FIN)
        s->out_may_wait = false;
    uv_idle_start(&s->pump, on_pump); /* session_flush, at the end of the turn */
    /* Bulk goes now, after the frames before it. So does a stream's opening frame (the CONNECT
     * it carries): the peer starts connecting to the destination while this turn goes on, and
     * what the turn writes after it, such as the SOCKS5 reply that wakes the client, is its last
     * write, so that the woken client can have the CPU this loop is about to leave (on two
     * vCPUs, a tunnel's first byte came 40 us sooner; docs/BENCHMARKS.md, session 9). */
    if (f->len > MUX_BATCH_MAX || (flags & MUX_FLAG_SYN))
        session_flush(s);
}

/* Frames the carrier did not take (a chain through 'next'; a batch stands for its members):
 * their writes hear the error from the pump. */
static void frames_take_back(struct mux_frame *f, int err)
{
    for (struct mux_frame *next; f != NULL; f = next) {
        next = f->next;
        struct mux_session *s = f->session;
        struct mux_stream_write *sw = f->carries;
        if (f->members != NULL) {
            frames_take_back(f->members, err);
        } else {
            s->out_bytes -= f->len;
            if (sw != NULL) {
                sw->frames--;
                sw->status = err;
                if (sw->stream == NULL && sw->frames == 0)
                    free(sw); /* nobody's (link_try_write's), or its stream is gone */
            } else {
                s->control_out--;
            }
            s->refs--; /* s has the owner's reference, or the pump's, while frames go out */
        }
        free(f);
    }
}

/* The first frames of the queue, unlinked: as many as fit in one batch. Sets *len to their
 * bytes. */
static struct mux_frame *queue_take_batch(struct mux_session *s, size_t *len)
{
    struct mux_frame *last = s->out.head;
    *len = last->len;
    while (last->next != NULL && *len + last->next->len <= MUX_BATCH_MAX) {
        last = last->next;
        *len += last->len;
    }
    return frame_queue_take(&s->out, last);
}

/* Hands the queued frames to the owner, the small ones of a run as one write, until the session
 * breaks (the pump cancels the rest). Those the carrier took at once wait in 'sent' for the pump
 * to complete them. */
static void session_flush(struct mux_session *s)
{
    while (s->out.head != NULL && !s->broken) {
        size_t len;
        struct mux_frame *first = queue_take_batch(s, &len);
        struct mux_frame *out = first;
        if (first->next != NULL) {
            out = malloc(sizeof(*out) + len);
            if (out == NULL) {
                frames_take_back(first, UV_ENOMEM);
                session_fail(s, "out of memory");
                continue;
            }
            *out = (struct mux_frame){.session = s, .members = first, .len = len};
            size_t at = 0;
            for (struct mux_frame *m = first; m != NULL; m = m->next) {
                memcpy(out->data + at, m->data, m->len);
                at += m->len;
            }
        }
        int err = s->ops->write(s->owner, out);
        if (err == MUX_FRAME_SENT) {
            frame_queue_push(&s->sent, out);
            continue;
        }
        if (err != 0) {
            frames_take_back(out, err);
            session_fail(s, "the carrier refused a write");
        }
    }
}

/* The flags of the stream's next frame: its first one says SYN or ACK as well. */
static uint16_t stream_flags_out(struct mux_stream *st, uint16_t flags)
{
    flags |= st->opening;
    st->opening = 0;
    return flags;
}

static void emit_control(struct mux_stream *st, uint16_t flags, uint32_t delta)
{
    emit(st->s, MUX_FRAME_WINDOW_UPDATE, stream_flags_out(st, flags), st->id, delta, NULL, 0, NULL);
}

/* Runs a write's callback once, with its outcome. */
static void write_call(struct mux_stream_write *sw, int status)
{
    if (sw->called)
        return;
    sw->called = true;
    if (sw->w != NULL)
        sw->w->cb(sw->w, status);
    else if (sw->sd != NULL)
        sw->sd->cb(sw->sd, status);
}

static void write_unlink(struct mux_stream_write *sw)
{
    struct mux_stream *st = sw->stream;
    if (st != NULL) {
        for (struct mux_stream_write **p = &st->writes; *p != NULL; p = &(*p)->next) {
            if (*p == sw) {
                *p = sw->next;
                break;
            }
        }
        sw->stream = NULL;
    }
    if (sw->frames == 0)
        free(sw);
}

void mux_frame_written(struct mux_frame *f, int status)
{
    if (f->members != NULL) { /* a batch: each of its frames went, or did not */
        for (struct mux_frame *m = f->members, *next; m != NULL; m = next) {
            next = m->next;
            mux_frame_written(m, status);
        }
        free(f);
        return;
    }
    struct mux_session *s = f->session;
    struct mux_stream_write *sw = f->carries;
    s->out_bytes -= f->len;
    free(f);
    s->refs++; /* callbacks below may close the session */
    if (sw == NULL)
        s->control_out--;
    if (sw != NULL) {
        sw->frames--;
        if (status < 0 && sw->status == 0)
            sw->status = status;
        if (sw->stream == NULL) {
            if (sw->frames == 0)
                free(sw);
        } else if (sw->framed && sw->frames == 0 && !sw->called) {
            struct mux_stream *st = sw->stream;
            write_call(sw, sw->status);
            write_unlink(sw);
            if (!st->closing && !st->send_closed)
                stream_send(st);
        }
    }
    if (status < 0 && status != UV_ECANCELED)
        session_fail(s, "the carrier failed");
    s->refs--;
    session_unref(s);
}

static void on_frame_link_written(struct link_write *w, int status)
{
    mux_frame_written(w->data, status);
}

int mux_frame_write(struct mux_frame *f, struct link *carrier)
{
    int sent = link_try_write(carrier, (const char *)f->data, f->len);
    if (sent == (int)f->len)
        return MUX_FRAME_SENT;
    if (sent < 0 && sent != UV_EAGAIN)
        return sent;
    size_t done = sent > 0 ? (size_t)sent : 0;
    f->write.data = f;
    return link_write(carrier, &f->write, (const char *)f->data + done, f->len - done,
                      on_frame_link_written);
}

/* Puts data in DATA frames carrying sw's bytes, as far as the peer's window lets; returns how
 * many bytes went. */
static size_t stream_frame_data(struct mux_stream *st, const char *data, size_t len,
                                struct mux_stream_write *sw)
{
    size_t done = 0;
    while (done < len && st->send_window > 0 && !st->s->broken) {
        size_t n = len - done;
        n = n < st->send_window ? n : st->send_window;
        n = n < MUX_FRAME_PAYLOAD_MAX ? n : MUX_FRAME_PAYLOAD_MAX;
        emit(st->s, MUX_FRAME_DATA, stream_flags_out(st, 0), st->id, (uint32_t)n, data + done, n,
             sw);
        done += n;
        st->send_window -= (uint32_t)n;
    }
    return done;
}

/* Frames what the stream's writes hold, as far as the peer's window lets. */
static void stream_send(struct mux_stream *st)
{
    struct mux_session *s = st->s;
    for (struct mux_stream_write *sw = st->writes; sw != NULL && !s->broken && !st->send_closed;
         sw = sw->next) {
        if (sw->framed)
            continue;
        if (sw->w == NULL) { /* a shutdown: FIN; done once the frame is out */
            sw->framed = true;
            st->fin_sent = true;
            emit(s, MUX_FRAME_WINDOW_UPDATE, stream_flags_out(st, MUX_FLAG_FIN), st->id, 0, NULL, 0,
                 sw);
            if (sw->frames == 0) /* nothing went out: the session failed */
                pump_schedule(st);
            continue;
        }
        sw->off += stream_frame_data(st, sw->data + sw->off, sw->len - sw->off, sw);
        if (sw->off < sw->len)
            return; /* the window is closed: wait for credit */
        sw->framed = true;
        if (sw->frames == 0)
            pump_schedule(st); /* an empty write, or the session failed */
    }
    if (s->broken || st->send_closed)
        pump_schedule(st);
}

/* ---- reading -------------------------------------------------------------------------------- */

/* Gives delivered bytes back to the peer's window, half a window at a time. */
static void stream_credit(struct mux_stream *st, size_t n)
{
    st->recv_consumed += (uint32_t)n;
    if (st->recv_consumed < MUX_WINDOW_INITIAL / 2 || st->fin_recv || st->send_closed ||
        st->closing)
        return;
    emit_control(st, 0, st->recv_consumed);
    st->recv_window += st->recv_consumed;
    st->recv_consumed = 0;
    session_flush(st->s); /* the sender may be waiting for it */
}

/* Hands bytes to the reader while it reads; returns how many it took. */
static size_t stream_deliver(struct mux_stream *st, const uint8_t *data, size_t len)
{
    struct link *l = st->link;
    size_t done = 0;
    while (done < len && st->reading && !st->closing && !st->reset) {
        uv_buf_t buf = uv_buf_init(NULL, 0);
        l->alloc(l, &buf);
        if (buf.len == 0) {
            st->read_end = UV_ENOBUFS;
            st->read_end_delivered = true;
            if (!st->send_closed)
                emit_control(st, MUX_FLAG_RST, 0); /* the peer must not wait for us */
            st->reset = st->send_closed = true;
            l->read(l, UV_ENOBUFS, &buf);
            break;
        }
        size_t n = len - done < buf.len ? len - done : buf.len;
        memcpy(buf.base, data + done, n);
        done += n;
        st->delivering = true;
        l->read(l, (ssize_t)n, &buf);
        st->delivering = false;
        stream_credit(st, n);
    }
    return done;
}

/* The one place that stops or resumes reading the carrier: stopped while the bytes waiting for
 * readers pass MUX_BUFFERED_MAX, resumed once they fell to half of it (not at once: each resume
 * would let one more read in and stop again). Called where 'buffered' grows (stream_queue) and at
 * the end of each pump run, which covers every way it falls: a reader taking bytes
 * (stream_drain), a queue dropped by a close or a reset (both schedule the pump) and a stream
 * freed (in the pump). Resuming from the pump rather than under link_close keeps the owner's
 * read_enable out of a stream owner's call. */
static void session_input_update(struct mux_session *s)
{
    bool pause = s->buffered > (s->input_paused ? MUX_BUFFERED_MAX / 2 : MUX_BUFFERED_MAX);
    if (pause == s->input_paused || s->closed || (!pause && s->broken))
        return;
    s->input_paused = pause;
    s->ops->read_enable(s->owner, !pause);
}

/* Keeps bytes for the reader: in the last chunk's room first, the rest in a new chunk. */
static void stream_queue(struct mux_stream *st, const uint8_t *data, size_t len)
{
    struct mux_session *s = st->s;
    struct mux_chunk *tail = st->rq_tail;
    size_t n = tail != NULL ? tail->cap - tail->len : 0;
    n = n < len ? n : len;
    if (n > 0) {
        memcpy(tail->data + tail->len, data, n);
        tail->len += n;
        s->buffered += n;
    }
    if (n < len) {
        size_t cap = len - n > MUX_CHUNK_MIN ? len - n : MUX_CHUNK_MIN;
        struct mux_chunk *c = malloc(sizeof(*c) + cap);
        if (c == NULL) {
            session_fail(s, "out of memory");
            return;
        }
        *c = (struct mux_chunk){.len = len - n, .cap = cap};
        memcpy(c->data, data + n, len - n);
        if (tail != NULL)
            tail->next = c;
        else
            st->rq_head = c;
        st->rq_tail = c;
        s->buffered += len - n;
    }
    session_input_update(s);
}

/* Delivers queued bytes, then the end of reads, while the reader reads. */
static void stream_drain(struct mux_stream *st)
{
    struct mux_session *s = st->s;
    while (st->rq_head != NULL && st->reading && !st->closing) {
        struct mux_chunk *c = st->rq_head;
        size_t n = stream_deliver(st, c->data + c->off, c->len - c->off);
        if (st->closing || st->rq_head != c)
            return; /* closed, or reset (the queue was dropped), by the reader */
        c->off += n;
        s->buffered -= n;
        if (c->off < c->len)
            break;
        st->rq_head = c->next;
        if (st->rq_head == NULL)
            st->rq_tail = NULL;
        free(c);
    }
    if (st->rq_head == NULL && st->read_end != 0 && !st->read_end_delivered && st->reading &&
        !st->closing) {
        st->read_end_delivered = true;
        uv_buf_t none = uv_buf_init(NULL, 0);
        st->link->read(st->link, st->read_end, &none);
    }
}

static void stream_drop_queue(struct mux_stream *st)
{
    for (struct mux_chunk *c = st->rq_head, *next; c != NULL; c = next) {
        next = c->next;
        st->s->buffered -= c->len - c->off;
        free(c);
    }
    st->rq_head = st->rq_tail = NULL;
}

/* The stream is cut (RST from the peer, or the session failed): the reader learns it ('why':
 * UV_ECONNRESET, or UV_ECONNREFUSED for a stream the peer refused), writes fail. */
static void stream_cut(struct mux_stream *st, int why)
{
    if (st->reset)
        return;
    st->reset = st->send_closed = true;
    stream_drop_queue(st);
    if (!st->read_end_delivered)
        st->read_end = why;
    pump_schedule(st);
}

/* The peer closed the stream in order (FIN and RST together, as a socket closed without a
 * shutdown): the reader gets what came and then the end; writes fail (UV_EPIPE). */
static void stream_peer_closed(struct mux_stream *st)
{
    st->send_closed = true;
    st->fin_recv = true;
    if (st->read_end == 0)
        st->read_end = UV_EOF;
    pump_schedule(st);
}

/* Fails or completes, from the pump, the writes that can no longer go out. */
static void stream_settle_writes(struct mux_stream *st)
{
    for (struct mux_stream_write *sw = st->writes, *next; sw != NULL; sw = next) {
        next = sw->next;
        if (st->closing) {
            write_call(sw, UV_ECANCELED);
        } else if (sw->framed && sw->frames == 0) {
            write_call(sw, sw->status);
        } else if (st->send_closed || st->s->broken) {
            int why = st->reset || st->s->broken ? UV_ECONNRESET : UV_EPIPE;
            write_call(sw, sw->status != 0 ? sw->status : why);
        } else {
            continue;
        }
        if (sw->frames == 0)
            write_unlink(sw);
    }
}

static void on_pump(uv_idle_t *idle)
{
    struct mux_session *s = idle->data;
    s->refs++;
    struct mux_stream *head = s->pump_head;
    s->pump_head = s->pump_tail = NULL;
    while (head != NULL) {
        struct mux_stream *st = head;
        head = st->pump_next;
        st->pump_again = false;
        stream_settle_writes(st);
        if (st->closing) {
            stream_settle_writes(st); /* those the callbacks above left: cancelled */
            struct link *l = st->link;
            link_closed_fn closed = st->closed;
            st->link = NULL;
            stream_free(st);
            if (l != NULL) { /* NULL: a stream its owner never took */
                l->stream = NULL;
                closed(l);
            }
            if (s->peer_go_away && s->n_streams == 0)
                session_tell_ended(s, MUX_ENDED_GO_AWAY);
            continue;
        }
        stream_drain(st);
        st->in_pump = false;
        if (st->pump_again) {
            st->pump_again = false;
            pump_schedule(st);
        }
    }
    session_input_update(s);
    if (s->ended_why != NULL && !s->ended_told && !s->closed) {
        s->ended_told = true;
        s->ops->ended(s->owner, s->ended_why);
    }
    /* A reply's relayed bytes queued by the last turn's events wait for one more look at the
     * sockets (the pump keeps it from blocking): the end of file that a short read leaves for the
     * next poll goes with the data before it. Other frames (the client's bytes, a FIN) go now;
     * a CONNECT went when it was queued (emit). */
    if (s->out.head != NULL && s->out_may_wait && !s->out_held && !s->broken) {
        s->out_held = true;
    } else {
        s->out_held = s->out_may_wait = false;
        session_flush(s);
    }
    /* callbacks below may send more: the next turn completes those */
    struct mux_frame *sent = s->sent.head != NULL ? frame_queue_take(&s->sent, s->sent.tail) : NULL;
    for (struct mux_frame *next; sent != NULL; sent = next) {
        next = sent->next;
        mux_frame_written(sent, 0);
    }
    while (s->broken && s->out.head != NULL) /* never handed to the carrier */
        mux_frame_written(frame_queue_take(&s->out, s->out.head), UV_ECANCELED);
    if (s->pump_head == NULL && s->out.head == NULL && s->sent.head == NULL)
        uv_idle_stop(&s->pump);
    session_unref(s);
}

/* ---- frames in ------------------------------------------------------------------------------ */

static void session_fail(struct mux_session *s, const char *why)
{
    if (s->broken)
        return;
    s->broken = true;
    s->go_away = true;
    for (size_t b = 0; b < MUX_BUCKETS; b++)
        for (struct mux_stream *st = s->buckets[b]; st != NULL; st = st->hnext)
            stream_cut(st, UV_ECONNRESET);
    session_tell_ended(s, why);
}

/* True when the peer may have freed its side of the stream already, with no frame to come: a
 * RST went either way (with FIN or not), or both FINs did (link_stream_close sends nothing
 * then). */
static bool stream_peer_may_be_done(const struct mux_stream *st)
{
    return st->send_closed || (st->fin_sent && st->fin_recv);
}

/* True when the peer opens more streams than it may. The opener counts a stream until it closes
 * it and frees it at once; we keep ours until its owner closes it, a turn or more later. So the
 * limit counts only the streams the peer may still hold (its ending frames come before its next
 * SYN on the carrier): a busy entry that closes a stream and opens another in one turn is not
 * refused, which its upstream would read as the exit failing. The streams it ended wait only for
 * their owners; twice the limit in all bounds a peer that ends them faster than owners close. */
static bool session_is_full(struct mux_session *s)
{
    if (s->n_streams < MUX_STREAMS_MAX)
        return false;
    if (s->n_streams >= 2 * MUX_STREAMS_MAX)
        return true;
    size_t held = 0;
    for (size_t b = 0; b < MUX_BUCKETS; b++)
        for (const struct mux_stream *st = s->buckets[b]; st != NULL; st = st->hnext)
            held += !stream_peer_may_be_done(st);
    return held >= MUX_STREAMS_MAX;
}

/* A stream the peer opens (server side); false when the session had to fail. */
static bool stream_accept(struct mux_session *s, uint32_t id)
{
    if (s->client || (id & 1) == 0 || id <= s->last_peer_id) {
        session_fail(s, "the peer opened a stream with an invalid id");
        return false;
    }
    s->last_peer_id = id;
    struct mux_stream *st = s->go_away || session_is_full(s) ? NULL : stream_new(s, id);
    if (st == NULL) { /* refused: a RST without ACK, which the opener may try again elsewhere */
        emit(s, MUX_FRAME_WINDOW_UPDATE, MUX_FLAG_RST, id, 0, NULL, 0, NULL);
        return true;
    }
    st->opening = MUX_FLAG_ACK; /* on our first frame */
    s->ops->accept(s->owner, st);
    if (st->link == NULL) { /* the owner could not take it: the pump frees it */
        st->opening = 0;    /* a bare RST, no ACK: refused (mux_frame_parse.h), as above */
        emit_control(st, MUX_FLAG_RST, 0);
        st->reset = st->send_closed = st->closing = true;
        pump_schedule(st);
    }
    return true;
}

/* What the flags of a frame from the peer say about an existing stream (FIN, RST). */
static void stream_take_flags(struct mux_stream *st, uint16_t flags)
{
    if ((flags & (MUX_FLAG_RST | MUX_FLAG_FIN)) == (MUX_FLAG_RST | MUX_FLAG_FIN)) {
        stream_peer_closed(st);
        return;
    }
    if (flags & MUX_FLAG_RST) {
        /* before any ACK: the peer refused the stream, and nobody there saw its bytes */
        stream_cut(st, st->s->client && !st->acked ? UV_ECONNREFUSED : UV_ECONNRESET);
        return;
    }
    if ((flags & MUX_FLAG_FIN) && !st->fin_recv) {
        st->fin_recv = true;
        if (st->read_end == 0)
            st->read_end = UV_EOF;
        pump_schedule(st);
    }
}

static void session_frame(struct mux_session *s, const struct mux_frame_header *h)
{
    if (h->type == MUX_FRAME_PING) {
        if (h->flags & MUX_FLAG_SYN)
            emit(s, MUX_FRAME_PING, MUX_FLAG_ACK, 0, h->length, NULL, 0, NULL);
        return;
    }
    if (h->type == MUX_FRAME_GO_AWAY) {
        s->go_away = s->peer_go_away = true;
        if (h->length != MUX_GO_AWAY_NORMAL)
            session_fail(s, "the peer ended the session with an error");
        return;
    }
    struct mux_stream *st = stream_find(s, h->stream);
    if ((h->flags & MUX_FLAG_SYN) && st != NULL) {
        session_fail(s, "the peer opened a stream that is open already");
        return;
    }
    if ((h->flags & MUX_FLAG_SYN) && st == NULL) {
        if (!stream_accept(s, h->stream))
            return;
        st = stream_find(s, h->stream);
    }
    if (st != NULL && (h->flags & MUX_FLAG_ACK))
        st->acked = true;
    if (h->type == MUX_FRAME_DATA) {
        if (st != NULL && h->length > st->recv_window) {
            session_fail(s, "the peer sent more than its window");
            return;
        }
        s->cur = *h;
        s->payload_left = h->length;
        if (h->length > 0)
            return; /* flags once the payload is in */
    } else if (st != NULL && h->length > 0 && !st->send_closed) {
        if ((uint64_t)st->send_window + h->length > UINT32_MAX) {
            session_fail(s, "the peer's window overflowed");
            return;
        }
        st->send_window += h->length;
        stream_send(st);
    }
    if (st != NULL)
        stream_take_flags(st, h->flags);
}

/* Payload bytes of the current DATA frame. */
static void session_payload(struct mux_session *s, const uint8_t *data, size_t n)
{
    struct mux_stream *st = stream_find(s, s->cur.stream);
    s->payload_left -= (uint32_t)n;
    if (st != NULL && !st->reset && !st->closing && !st->fin_recv) {
        st->recv_window -= (uint32_t)n;
        size_t done = 0;
        if (st->reading && st->rq_head == NULL && !st->delivering)
            done = stream_deliver(st, data, n);
        if (done < n && !st->reset && !st->closing)
            stream_queue(st, data + done, n - done);
    }
    if (s->payload_left == 0 && !s->broken && (st = stream_find(s, s->cur.stream)) != NULL)
        stream_take_flags(st, s->cur.flags);
}

void mux_session_input(struct mux_session *s, const uint8_t *data, size_t len)
{
    s->refs++;
    size_t at = 0;
    while (at < len && !s->broken) {
        if (s->payload_left > 0) {
            size_t n = len - at < s->payload_left ? len - at : s->payload_left;
            session_payload(s, data + at, n);
            at += n;
            continue;
        }
        size_t n = MUX_FRAME_HEADER_LEN - s->hdr_len;
        n = n < len - at ? n : len - at;
        memcpy(s->hdr + s->hdr_len, data + at, n);
        s->hdr_len += n;
        at += n;
        struct mux_frame_header h;
        size_t used;
        enum parse_result r = mux_frame_header_parse(s->hdr, s->hdr_len, &h, &used);
        if (r == PARSE_NEED_MORE)
            continue;
        s->hdr_len = 0;
        if (r == PARSE_INVALID) {
            session_fail(s, "the peer sent a malformed frame");
            break;
        }
        session_frame(s, &h);
    }
    if (s->peer_go_away && s->n_streams == 0)
        session_tell_ended(s, MUX_ENDED_GO_AWAY);
    session_unref(s);
}

void mux_session_carrier_ended(struct mux_session *s)
{
    s->ended_told = true; /* the owner knows */
    session_fail(s, "the carrier ended");
}

/* ---- the session ---------------------------------------------------------------------------- */

struct mux_session *mux_session_new(uv_loop_t *loop, bool client, const struct mux_carrier *ops,
                                    void *owner, const struct sockaddr *local)
{
    struct mux_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->loop = loop;
    s->ops = ops;
    s->owner = owner;
    s->client = client;
    s->next_id = 1;
    s->refs = 1;
    if (local != NULL)
        memcpy(&s->local, local,
               local->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                            : sizeof(struct sockaddr_in));
    uv_idle_init(loop, &s->pump);
    s->pump.data = s;
    return s;
}

struct link *mux_session_open(struct mux_session *s)
{
    if (!s->client || s->go_away || s->broken || s->closed || s->n_streams >= MUX_STREAMS_MAX ||
        s->next_id > UINT32_MAX - 2)
        return NULL;
    struct link *l = malloc(sizeof(*l));
    struct mux_stream *st = l != NULL ? stream_new(s, s->next_id) : NULL;
    if (st == NULL) {
        free(l);
        return NULL;
    }
    s->next_id += 2;
    link_init_stream(l, st);
    st->opening = MUX_FLAG_SYN; /* on its first frame: the request it carries */
    return l;
}

size_t mux_session_streams(const struct mux_session *s)
{
    return s->n_streams;
}

bool mux_session_draining(const struct mux_session *s)
{
    return s->go_away || s->broken || s->closed;
}

bool mux_session_peer_left(const struct mux_session *s)
{
    return s->peer_go_away && s->n_streams == 0;
}

void mux_session_go_away(struct mux_session *s)
{
    if (s->go_away)
        return;
    s->go_away = true;
    emit(s, MUX_FRAME_GO_AWAY, 0, 0, MUX_GO_AWAY_NORMAL, NULL, 0, NULL);
}

void mux_session_close(struct mux_session *s)
{
    if (!s->broken)
        session_flush(s); /* what the turn said (GO_AWAY, a last FIN) goes before the carrier */
    s->closed = true;
    s->ended_told = true;
    session_fail(s, "closed");
    session_unref(s);
}

/* ---- streams as links (link.c) --------------------------------------------------------------- */

void link_init_stream(struct link *l, struct mux_stream *st)
{
    *l = (struct link){.stream = st};
    st->link = l;
}

struct mux_session *link_stream_session(const struct link *l)
{
    return l->stream != NULL ? l->stream->s : NULL;
}

int link_stream_read_start(struct link *l)
{
    struct mux_stream *st = l->stream;
    st->reading = true;
    if (st->rq_head != NULL || (st->read_end != 0 && !st->read_end_delivered))
        pump_schedule(st);
    return 0;
}

void link_stream_read_stop(struct link *l)
{
    l->stream->reading = false;
}

/* Why the stream takes no more writes (as a socket would say), or 0. */
static int stream_write_refusal(const struct mux_stream *st)
{
    if (st->send_closed || st->s->broken)
        return st->reset || st->s->broken ? UV_ECONNRESET : UV_EPIPE;
    return st->fin_queued ? UV_EPIPE : 0;
}

static int stream_add_write(struct mux_stream *st, struct link_write *w, struct link_shutdown *sd,
                            const char *data, size_t len)
{
    int refusal = stream_write_refusal(st);
    if (refusal != 0)
        return refusal;
    struct mux_stream_write *sw = calloc(1, sizeof(*sw));
    if (sw == NULL)
        return UV_ENOMEM;
    sw->stream = st;
    sw->w = w;
    sw->sd = sd;
    sw->data = data;
    sw->len = len;
    struct mux_stream_write **p = &st->writes;
    while (*p != NULL)
        p = &(*p)->next;
    *p = sw;
    if (sd != NULL)
        st->fin_queued = true;
    stream_send(st);
    return 0;
}

int link_stream_write(struct link *l, struct link_write *w, const char *data, size_t len)
{
    return stream_add_write(l->stream, w, NULL, data, len);
}

/* True when one of the stream's writes has bytes (or its FIN) not yet in a frame. */
static bool stream_has_unframed_write(const struct mux_stream *st)
{
    for (const struct mux_stream_write *sw = st->writes; sw != NULL; sw = sw->next)
        if (!sw->framed)
            return true;
    return false;
}

/* Like a socket whose send buffer has room: the bytes go into frames now, when every write of the
 * stream before them is in frames already (their callbacks may still be due), the peer's window
 * is open and the carrier keeps up. The frames hold their own copy; the write they carry is
 * nobody's (it is freed with its last frame). */
int link_stream_try_write(struct link *l, const char *data, size_t len)
{
    struct mux_stream *st = l->stream;
    struct mux_session *s = st->s;
    int refusal = stream_write_refusal(st);
    if (refusal != 0)
        return refusal;
    if (len == 0 || st->send_window == 0 || stream_has_unframed_write(st) ||
        s->out_bytes >= MUX_TRY_WRITE_OUT_MAX)
        return UV_EAGAIN;
    struct mux_stream_write *sw = calloc(1, sizeof(*sw));
    if (sw == NULL)
        return UV_EAGAIN; /* link_write will say ENOMEM if it is still so */
    sw->framed = sw->called = true;
    /* Held while its frames are made: a frame that goes to the carrier at once (a bulk frame, a
     * stream's first) and is refused there comes back and would free it under us. */
    sw->frames++;
    size_t done = stream_frame_data(st, data, len, sw);
    if (--sw->frames == 0)
        free(sw);
    return s->broken ? UV_ECONNRESET : (int)done;
}

int link_stream_shutdown(struct link *l, struct link_shutdown *sd)
{
    return stream_add_write(l->stream, NULL, sd, NULL, 0);
}

size_t link_stream_queue_size(const struct link *l)
{
    size_t n = 0;
    for (const struct mux_stream_write *sw = l->stream->writes; sw != NULL; sw = sw->next)
        n += sw->len - sw->off;
    return n;
}

void link_stream_close(struct link *l, link_closed_fn closed, bool reset)
{
    struct mux_stream *st = l->stream;
    if (st->closing)
        return;
    st->closing = true;
    st->closed = closed;
    st->reading = false;
    /* A stream the peer never heard of needs no frame; one that ended both ways neither. An
     * orderly close says FIN and RST together: the peer reads an end, and its writes fail. */
    if (!st->send_closed && st->opening != MUX_FLAG_SYN &&
        (reset || !(st->fin_sent && st->fin_recv)))
        emit_control(st, reset ? MUX_FLAG_RST : MUX_FLAG_RST | MUX_FLAG_FIN, 0);
    st->reset = st->send_closed = true;
    stream_drop_queue(st);
    pump_schedule(st);
}

bool link_stream_is_closing(const struct link *l)
{
    return l->stream->closing;
}

int link_stream_local_address(const struct link *l, struct sockaddr *sa, int *len)
{
    const struct sockaddr_storage *local = &l->stream->s->local;
    int n = local->ss_family == AF_INET6 ? (int)sizeof(struct sockaddr_in6)
                                         : (int)sizeof(struct sockaddr_in);
    if (local->ss_family == 0 || *len < n)
        return UV_EINVAL;
    memcpy(sa, local, (size_t)n);
    *len = n;
    return 0;
}
