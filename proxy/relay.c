#include "proxy/relay.h"

#include <stdint.h>
#include <string.h>

#include "proxy/bufpool.h"
#include "proxy/conn.h"
#include "proxy/container_of.h"
#include "proxy/worker.h"

static enum conn_side other_side(enum conn_side side)
{
    return side == CONN_CLIENT ? CONN_UPSTREAM : CONN_CLIENT;
}

static struct bufpool *conn_pool(struct conn *c)
{
    return &c->worker->relay_bufs;
}

static void relay_read_start(struct conn *c, enum conn_side side);

/* Passes bytes a side sent before it went (conn_read_last_bytes) to the other side, after what
 * went before them, as far as it takes them at once. */
static bool pass_on_at_once(struct conn *c, enum conn_side gone, const char *data, size_t n)
{
    int written = link_try_write(conn_side_link(c, other_side(gone)), data, n);
    if (written > 0)
        *(gone == CONN_CLIENT ? &c->bytes_up : &c->bytes_down) += (uint64_t)written;
    return written == (int)n;
}

/* A write to the other side of 'from' failed: what that side said before it went is passed on,
 * then the connection closes with the reason. */
static void relay_close_on_write_failure(struct conn *c, enum conn_side from, int status)
{
    struct relay_dir *gone = &c->relay.dirs[other_side(from)];
    if (gone->buf == NULL && !gone->eof) /* else bytes it sent before are queued, or it ended */
        conn_read_last_bytes(c, other_side(from), pass_on_at_once);
    conn_close_because(c, conn_write_failure(other_side(from), status));
}

static void relay_dir_finished(struct conn *c, struct relay_dir *dir)
{
    dir->done = true;
    if (c->relay.dirs[CONN_CLIENT].done && c->relay.dirs[CONN_UPSTREAM].done)
        conn_close_because(c, "done");
}

static void on_shutdown_done(struct link_shutdown *req, int status)
{
    struct relay_dir *dir = container_of(req, struct relay_dir, shutdown_req);
    struct conn *c = req->data;
    if (!conn_request_done(c))
        return;
    if (status < 0) {
        conn_close_because(c, "shutdown-error");
        return;
    }
    relay_dir_finished(c, dir);
}

/* The reading side sent EOF and everything it sent was written: pass the EOF on. With nothing
 * queued on the other side, shutdown(2) at once; otherwise libuv shuts down after the queue. */
static void relay_forward_eof(struct conn *c, enum conn_side from)
{
    struct relay_dir *dir = &c->relay.dirs[from];
    struct link *to = conn_side_link(c, other_side(from));
    if (c->sends_in_flight[other_side(from)] == 0) {
        int now = link_shutdown_now(to);
        if (now == 0) {
            relay_dir_finished(c, dir);
            return;
        }
        if (now != UV_EAGAIN) {
            conn_close_because(c, "shutdown-error");
            return;
        }
    }
    dir->shutdown_req.data = c;
    if (link_shutdown(to, &dir->shutdown_req, on_shutdown_done) != 0) {
        conn_close_because(c, "shutdown-error");
        return;
    }
    conn_ref(c);
}

static void on_write_done(struct link_write *req, int status)
{
    struct relay_dir *dir = container_of(req, struct relay_dir, write_req);
    struct conn *c = req->data;
    enum conn_side from = dir == &c->relay.dirs[CONN_CLIENT] ? CONN_CLIENT : CONN_UPSTREAM;
    bufpool_put(conn_pool(c), dir->buf);
    dir->buf = NULL;
    dir->pending = 0;
    if (!conn_request_done(c))
        return;
    if (status < 0) {
        relay_close_on_write_failure(c, from, status);
        return;
    }
    conn_touch(c); /* a slow reader that keeps reading is not idle */
    if (dir->eof)
        relay_forward_eof(c, from);
    else
        relay_read_start(c, from);
}

bool relay_write_progressed(struct conn *c)
{
    bool progressed = false;
    for (int side = CONN_CLIENT; side <= CONN_UPSTREAM; side++) {
        struct relay_dir *dir = &c->relay.dirs[side];
        if (dir->buf == NULL)
            continue;
        int unsent = link_unsent_bytes(conn_side_link(c, other_side(side)));
        if (unsent != dir->unsent)
            progressed = true;
        dir->unsent = unsent;
    }
    return progressed;
}

/* Writes what was read; what the kernel does not take at once is queued without copying, and
 * the reading side pauses until it is written (backpressure). */
static void relay_write(struct conn *c, enum conn_side from, char *buf, size_t len)
{
    struct link *to = conn_side_link(c, other_side(from));
    int written = link_try_write(to, buf, len);
    if (written == (int)len) {
        bufpool_put(conn_pool(c), buf);
        return;
    }
    if (written < 0 && written != UV_EAGAIN) {
        bufpool_put(conn_pool(c), buf);
        relay_close_on_write_failure(c, from, written);
        return;
    }
    size_t done = written > 0 ? (size_t)written : 0;
    struct relay_dir *dir = &c->relay.dirs[from];
    dir->buf = buf;
    dir->pending = len - done;
    dir->unsent = link_unsent_bytes(to);
    dir->write_req.data = c;
    link_read_stop(conn_side_link(c, from));
    int err = link_write(to, &dir->write_req, buf + done, dir->pending, on_write_done);
    if (err != 0) {
        bufpool_put(conn_pool(c), buf);
        dir->buf = NULL;
        relay_close_on_write_failure(c, from, err);
        return;
    }
    conn_ref(c);
}

static void relay_on_read(struct conn *c, enum conn_side from, ssize_t nread, const uv_buf_t *buf)
{
    if (nread > 0) {
        conn_touch(c);
        if (from == CONN_CLIENT)
            c->bytes_up += (uint64_t)nread;
        else
            c->bytes_down += (uint64_t)nread;
        bool short_read = (size_t)nread < buf->len;
        relay_write(c, from, buf->base, (size_t)nread);
        /* A server that answers and closes leaves its end right behind the answer, which libuv,
         * after a short read, would see only at the next poll. For a tunnel's stream, passed on
         * now, the end goes in the same frames as the answer: one record, one wake-up of the
         * entry. (A peek per short read: elsewhere it would buy a few microseconds.) */
        if (short_read && from == CONN_UPSTREAM && c->client.stream != NULL && !conn_is_closing(c))
            link_read_end_now(conn_side_link(c, from));
        return;
    }
    bufpool_put(conn_pool(c), buf->base);
    if (nread == 0)
        return;
    if (nread != UV_EOF) {
        conn_close_because(c, from == CONN_CLIENT ? "client-reset" : "upstream-reset");
        return;
    }
    struct relay_dir *dir = &c->relay.dirs[from];
    link_read_stop(conn_side_link(c, from));
    dir->eof = true;
    if (dir->buf == NULL)
        relay_forward_eof(c, from);
}

static void on_read(struct link *l, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = l->data;
    relay_on_read(c, l == &c->client ? CONN_CLIENT : CONN_UPSTREAM, nread, buf);
}

static void relay_read_start(struct conn *c, enum conn_side side)
{
    int err = link_read_start(conn_side_link(c, side), conn_alloc_buffer, on_read);
    if (err != 0)
        conn_close_because(c, side == CONN_CLIENT ? "client-error" : "upstream-error");
}

void relay_start(struct conn *c, const void *initial, size_t initial_len)
{
    memset(&c->relay, 0, sizeof(c->relay));
    if (initial_len > 0) {
        c->bytes_up += initial_len;
        if (conn_send(c, CONN_UPSTREAM, initial, initial_len, NULL) != 0)
            return;
    }
    relay_read_start(c, CONN_CLIENT);
    if (!conn_is_closing(c))
        relay_read_start(c, CONN_UPSTREAM);
}

void relay_release(struct conn *c)
{
    for (size_t i = 0; i < 2; i++) {
        bufpool_put(conn_pool(c), c->relay.dirs[i].buf);
        c->relay.dirs[i].buf = NULL;
    }
}
