/* Links: the plain TCP side, and the dispatch to link_tls.c when TLS runs over the socket. */
#include "proxy/link.h"

#include <errno.h>
#include <stdlib.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "proxy/container_of.h"
#include "proxy/link_internal.h"

/* TLS reads ciphertext here: it is copied into OpenSSL's memory BIO before the read callback
 * returns, so one buffer per thread serves every TLS link of that thread. */
static _Thread_local char tls_cipher_buf[64 * 1024];

int link_init(uv_loop_t *loop, struct link *l, int family)
{
    *l = (struct link){.tls = NULL};
    int err = family == AF_UNSPEC ? uv_tcp_init(loop, &l->tcp)
                                  : uv_tcp_init_ex(loop, &l->tcp, (unsigned)family);
    if (err != 0)
        return err;
    l->tcp.data = l;
    l->open_handles = 1;
    return 0;
}

static void on_tcp_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct link *l = handle->data;
    if (l->tls != NULL) {
        *buf = uv_buf_init(tls_cipher_buf, sizeof(tls_cipher_buf));
        return;
    }
    if (l->paused) { /* no buffer: libuv leaves the bytes in the socket (on_tcp_read) */
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    l->alloc(l, buf);
}

/* libuv reports UV_EOF, without reading again, when the poll that brought the last bytes also
 * said the peer hung up; a peer that reset the connection after those bytes then looks like one
 * that closed it. The socket's pending error tells them apart (and a reset must reach the other
 * side as one: an end of file would pass a cut transfer off as complete). */
static ssize_t tcp_end_of(struct link *l, ssize_t nread)
{
    if (nread != UV_EOF)
        return nread;
    uv_os_fd_t fd;
    int err = 0;
    socklen_t len = sizeof(err);
    if (uv_fileno((uv_handle_t *)&l->tcp, &fd) == 0 &&
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == ECONNRESET)
        return UV_ECONNRESET;
    return nread;
}

static void on_tcp_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct link *l = stream->data;
    if (l->paused && l->tls == NULL) { /* bytes (or the end) came while paused: libuv stops */
        link_tcp_read_stop(l);
        return;
    }
    if (nread < 0 && nread != UV_ENOBUFS)
        l->tcp_reading = false; /* libuv stopped reading at the end or the error */
    nread = tcp_end_of(l, nread);
    if (l->tls != NULL) {
        link_tls_on_read(l, nread, buf->base);
        return;
    }
    l->read(l, nread, buf);
}

/* Starts reading the socket into link_tls.c or the owner's callbacks (for link_tls.c too). A
 * pause that no bytes interrupted ends here without a word to libuv. */
int link_tcp_read_start(struct link *l)
{
    if (uv_is_closing((uv_handle_t *)&l->tcp))
        return UV_ECANCELED;
    l->paused = false;
    if (l->tcp_reading)
        return 0;
    int err = uv_read_start((uv_stream_t *)&l->tcp, on_tcp_alloc, on_tcp_read);
    l->tcp_reading = err == 0;
    return err;
}

void link_tcp_read_stop(struct link *l)
{
    uv_read_stop((uv_stream_t *)&l->tcp);
    l->tcp_reading = l->paused = false;
}

int link_read_start(struct link *l, link_alloc_fn alloc, link_read_fn read)
{
    l->alloc = alloc;
    l->read = read;
    if (l->stream != NULL)
        return link_stream_is_closing(l) ? UV_ECANCELED : link_stream_read_start(l);
    if (l->tls != NULL)
        return link_tls_read_start(l);
    return link_tcp_read_start(l);
}

/* The socket of a plain link whose owner reads (not paused), or -1. */
static uv_os_fd_t plain_reading_fd(const struct link *l)
{
    uv_os_fd_t fd;
    if (l->tls != NULL || l->stream != NULL || !l->tcp_reading || l->paused ||
        uv_fileno((const uv_handle_t *)&l->tcp, &fd) != 0)
        return -1;
    return fd;
}

/* One recv without waiting, told as libuv tells a read: bytes, 0 for none now, UV_EOF (through
 * tcp_end_of), or an error. A peek (MSG_PEEK) takes a pending error as a read does. */
static ssize_t tcp_recv_now(struct link *l, uv_os_fd_t fd, char *buf, size_t len, int flags)
{
    ssize_t n;
    do
        n = recv(fd, buf, len, flags | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        return n;
    if (n == 0)
        return tcp_end_of(l, UV_EOF);
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : uv_translate_sys_error(errno);
}

ssize_t link_recv_now(struct link *l, char *buf, size_t len)
{
    uv_os_fd_t fd = plain_reading_fd(l);
    if (fd < 0)
        return 0;
    ssize_t n = tcp_recv_now(l, fd, buf, len, 0);
    if (n < 0)
        link_tcp_read_stop(l); /* as libuv does at an end or an error: it is reported once */
    return n;
}

void link_read_now(struct link *l)
{
    if (plain_reading_fd(l) < 0)
        return;
    uv_buf_t buf = uv_buf_init(NULL, 0);
    l->alloc(l, &buf);
    if (buf.len == 0)
        return; /* the owner has no room: the bytes wait for the poll, as they would */
    l->read(l, link_recv_now(l, buf.base, buf.len), &buf);
}

void link_read_end_now(struct link *l)
{
    uv_os_fd_t fd = plain_reading_fd(l);
    if (fd < 0)
        return;
    char next;
    ssize_t n = tcp_recv_now(l, fd, &next, 1, MSG_PEEK);
    if (n >= 0)
        return; /* bytes (left for the poll), or nothing yet */
    /* The end, or an error (a reset): the peek took the socket's pending error, so it is reported
     * here, or nobody would (libuv would then read a plain end). */
    link_tcp_read_stop(l);
    uv_buf_t none = uv_buf_init(NULL, 0);
    l->read(l, n, &none);
}

void link_read_stop(struct link *l)
{
    if (l->stream != NULL) {
        link_stream_read_stop(l);
        return;
    }
    if (l->tls != NULL) {
        link_tls_read_stop(l);
        return;
    }
    /* Only a pause: libuv stops (an epoll_ctl, and another to start again) if bytes come before
     * reading resumes. A connection's handshake hands over to its relay without a syscall. */
    l->paused = l->tcp_reading;
}

int link_try_write(struct link *l, const char *data, size_t len)
{
    if (l->stream != NULL)
        return link_stream_try_write(l, data, len);
    if (l->tls != NULL)
        return link_tls_try_write(l, data, len);
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
    return uv_try_write((uv_stream_t *)&l->tcp, &buf, 1);
}

static void on_tcp_write(uv_write_t *req, int status)
{
    struct link_write *w = container_of(req, struct link_write, req);
    free(w->cipher);
    w->cipher = NULL;
    w->cb(w, status);
}

/* Writes 'len' bytes of 'data' with w's request; link_tls.c uses it for ciphertext. */
int link_tcp_write(struct link *l, struct link_write *w, const char *data, size_t len)
{
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
    return uv_write(&w->req, (uv_stream_t *)&l->tcp, &buf, 1, on_tcp_write);
}

int link_write(struct link *l, struct link_write *w, const char *data, size_t len, link_write_fn cb)
{
    w->link = l;
    w->cb = cb;
    w->cipher = NULL;
    if (link_is_closing(l))
        return UV_ECANCELED;
    if (l->stream != NULL)
        return link_stream_write(l, w, data, len);
    if (l->tls != NULL)
        return link_tls_write(l, w, data, len);
    return link_tcp_write(l, w, data, len);
}

static void on_tcp_shutdown(uv_shutdown_t *req, int status)
{
    struct link_shutdown *s = container_of(req, struct link_shutdown, req);
    s->cb(s, status);
}

int link_tcp_shutdown(struct link *l, struct link_shutdown *s)
{
    return uv_shutdown(&s->req, (uv_stream_t *)&l->tcp, on_tcp_shutdown);
}

int link_shutdown(struct link *l, struct link_shutdown *s, link_shutdown_fn cb)
{
    s->link = l;
    s->cb = cb;
    if (link_is_closing(l))
        return UV_ECANCELED;
    if (l->stream != NULL)
        return link_stream_shutdown(l, s);
    if (l->tls != NULL)
        return link_tls_shutdown(l, s);
    return link_tcp_shutdown(l, s);
}

int link_shutdown_now(struct link *l)
{
    uv_os_fd_t fd;
    if (l->tls != NULL || l->stream != NULL ||
        uv_stream_get_write_queue_size((uv_stream_t *)&l->tcp) != 0)
        return UV_EAGAIN;
    if (uv_fileno((uv_handle_t *)&l->tcp, &fd) != 0)
        return UV_EBADF;
    if (shutdown(fd, SHUT_WR) != 0 && errno != ENOTCONN)
        return uv_translate_sys_error(errno);
    return 0;
}

size_t link_write_queue_size(const struct link *l)
{
    if (l->stream != NULL)
        return link_stream_queue_size(l);
    return uv_stream_get_write_queue_size((const uv_stream_t *)&l->tcp);
}

int link_unsent_bytes(const struct link *l)
{
    uv_os_fd_t fd;
    int unsent;
    if (l->stream != NULL)
        return (int)link_stream_queue_size(l);
    if (uv_fileno((const uv_handle_t *)&l->tcp, &fd) != 0 || ioctl(fd, SIOCOUTQ, &unsent) != 0)
        return -1;
    return unsent;
}

static void on_link_handle_closed(uv_handle_t *handle)
{
    struct link *l = handle->data;
    if (--l->open_handles > 0)
        return;
    link_tls_free(l);
    l->closed(l);
}

static void link_close_as(struct link *l, link_closed_fn closed, bool reset)
{
    if (l->stream != NULL) {
        link_stream_close(l, closed, reset);
        return;
    }
    if (uv_is_closing((uv_handle_t *)&l->tcp))
        return;
    l->closed = closed;
    if (l->tls != NULL)
        link_tls_close(l, on_link_handle_closed);
    /* A reset is refused once a shutdown was asked for: then the FIN is on its way anyway. */
    if (!reset || uv_tcp_close_reset(&l->tcp, on_link_handle_closed) != 0)
        uv_close((uv_handle_t *)&l->tcp, on_link_handle_closed);
}

void link_close(struct link *l, link_closed_fn closed)
{
    link_close_as(l, closed, false);
}

void link_close_reset(struct link *l, link_closed_fn closed)
{
    link_close_as(l, closed, true);
}

bool link_is_closing(const struct link *l)
{
    if (l->stream != NULL)
        return link_stream_is_closing(l);
    return uv_is_closing((const uv_handle_t *)&l->tcp) != 0;
}

int link_local_address(const struct link *l, struct sockaddr *sa, int *len)
{
    if (l->stream != NULL)
        return link_stream_local_address(l, sa, len);
    return uv_tcp_getsockname(&l->tcp, sa, len);
}
