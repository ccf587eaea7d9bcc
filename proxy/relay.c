#include "proxy/relay.h"

#include <errno.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

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

static void relay_dir_finished(struct conn *c, struct relay_dir *dir)
{
    dir->done = true;
    if (c->relay.dirs[CONN_CLIENT].done && c->relay.dirs[CONN_UPSTREAM].done)
        conn_close_because(c, "done");
}

static void on_shutdown_done(uv_shutdown_t *req, int status)
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
    uv_stream_t *to = conn_side_stream(c, other_side(from));
    uv_os_fd_t fd;
    if (uv_stream_get_write_queue_size(to) == 0 && c->sends_in_flight[other_side(from)] == 0 &&
        uv_fileno((uv_handle_t *)to, &fd) == 0) {
        if (shutdown(fd, SHUT_WR) != 0 && errno != ENOTCONN) {
            conn_close_because(c, "shutdown-error");
            return;
        }
        relay_dir_finished(c, dir);
        return;
    }
    dir->shutdown_req.data = c;
    if (uv_shutdown(&dir->shutdown_req, conn_side_stream(c, other_side(from)), on_shutdown_done) !=
        0) {
        conn_close_because(c, "shutdown-error");
        return;
    }
    conn_ref(c);
}

static void on_write_done(uv_write_t *req, int status)
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
        conn_close_because(c, from == CONN_CLIENT ? "upstream-write-error" : "client-write-error");
        return;
    }
    conn_touch(c); /* a slow reader that keeps reading is not idle */
    if (dir->eof)
        relay_forward_eof(c, from);
    else
        relay_read_start(c, from);
}

/* Writes what was read; what the kernel does not take at once is queued without copying, and
 * the reading side pauses until it is written (backpressure). */
/* Bytes the kernel holds in a socket's send queue, or -1 when that cannot be known. */
static int stream_unsent_bytes(uv_stream_t *stream)
{
    uv_os_fd_t fd;
    int unsent;
    if (uv_fileno((uv_handle_t *)stream, &fd) != 0 || ioctl(fd, SIOCOUTQ, &unsent) != 0)
        return -1;
    return unsent;
}

bool relay_write_progressed(struct conn *c)
{
    bool progressed = false;
    for (int side = CONN_CLIENT; side <= CONN_UPSTREAM; side++) {
        struct relay_dir *dir = &c->relay.dirs[side];
        if (dir->buf == NULL)
            continue;
        int unsent = stream_unsent_bytes(conn_side_stream(c, other_side(side)));
        if (unsent != dir->unsent)
            progressed = true;
        dir->unsent = unsent;
    }
    return progressed;
}

static void relay_write(struct conn *c, enum conn_side from, char *buf, size_t len)
{
    uv_stream_t *to = conn_side_stream(c, other_side(from));
    uv_buf_t chunk = uv_buf_init(buf, (unsigned)len);
    int written = uv_try_write(to, &chunk, 1);
    if (written == (int)len) {
        bufpool_put(conn_pool(c), buf);
        return;
    }
    if (written < 0 && written != UV_EAGAIN) {
        bufpool_put(conn_pool(c), buf);
        conn_close_because(c, from == CONN_CLIENT ? "upstream-write-error" : "client-write-error");
        return;
    }
    size_t done = written > 0 ? (size_t)written : 0;
    struct relay_dir *dir = &c->relay.dirs[from];
    dir->buf = buf;
    dir->pending = len - done;
    dir->unsent = stream_unsent_bytes(to);
    dir->write_req.data = c;
    chunk = uv_buf_init(buf + done, (unsigned)dir->pending);
    uv_read_stop(conn_side_stream(c, from));
    if (uv_write(&dir->write_req, to, &chunk, 1, on_write_done) != 0) {
        bufpool_put(conn_pool(c), buf);
        dir->buf = NULL;
        conn_close_because(c, from == CONN_CLIENT ? "upstream-write-error" : "client-write-error");
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
        relay_write(c, from, buf->base, (size_t)nread);
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
    uv_read_stop(conn_side_stream(c, from));
    dir->eof = true;
    if (dir->buf == NULL)
        relay_forward_eof(c, from);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    relay_on_read(c, stream == (uv_stream_t *)&c->client ? CONN_CLIENT : CONN_UPSTREAM, nread, buf);
}

static void relay_read_start(struct conn *c, enum conn_side side)
{
    uv_stream_t *stream = conn_side_stream(c, side);
    stream->data = c;
    int err = uv_read_start(stream, conn_alloc_buffer, on_read);
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
