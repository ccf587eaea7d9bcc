/* One side of a connection: a TCP socket, with or without TLS over it, or a stream of a mux
 * session (proxy/mux.h, which implements that kind). The connection, the relay
 * and the upstream protocols read, write and shut down through a link, so one relay pump serves
 * plain TCP and TLS alike.
 *
 * A plain link is libuv's stream with a thin trampoline. A TLS link (link_tls.c) runs OpenSSL
 * over memory BIOs fed from libuv reads (OpenSSL never owns the socket): reads deliver
 * plaintext, writes encrypt and complete when the ciphertext reached the kernel, a shutdown
 * sends close_notify and then FIN (TLS 1.3 half-close). Plaintext that OpenSSL holds when the
 * reader pauses is delivered from an idle handle once reading starts again, never under the
 * caller of link_read_start.
 *
 * Lifetime: link_init() initialises the socket; link_close() closes every handle and calls
 * 'closed' once they all are (the owner frees the memory there, not before). Callbacks of
 * writes and shutdowns still in flight run before that, with UV_ECANCELED (a write that had
 * failed already, whose callback was still to run, with its own error). No callback runs
 * under the caller of a link function, except link_close's own callbacks of cancelled
 * requests, which libuv runs later. */
#ifndef GEOPROXY_PROXY_LINK_H
#define GEOPROXY_PROXY_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

#include <openssl/ssl.h>

struct link;
struct link_tls;   /* link_tls.c */
struct mux_stream; /* mux.c */

/* Where the next bytes are read into. A zero-length buffer fails the read with UV_ENOBUFS. */
typedef void (*link_alloc_fn)(struct link *l, uv_buf_t *buf);

/* nread > 0: bytes in buf; UV_EOF or another negative code: no more reads follow; 0: nothing
 * was read. In every case buf is what alloc gave (give it back). */
typedef void (*link_read_fn)(struct link *l, ssize_t nread, const uv_buf_t *buf);

struct link_write;
typedef void (*link_write_fn)(struct link_write *w, int status);

/* A write in flight; the caller owns the memory until the callback. */
struct link_write {
    uv_write_t req;
    struct link *link;
    char *cipher; /* TLS: the encrypted bytes being written */
    link_write_fn cb;
    void *data; /* the caller's */
};

struct link_shutdown;
typedef void (*link_shutdown_fn)(struct link_shutdown *s, int status);

struct link_shutdown {
    uv_shutdown_t req;
    struct link *link;
    link_shutdown_fn cb;
    void *data; /* the caller's */
};

typedef void (*link_closed_fn)(struct link *l);

/* A TLS handshake finished: status 0, or a negative code with link_tls_error() saying why. */
typedef void (*link_handshake_fn)(struct link *l, int status);

struct link {
    uv_tcp_t tcp;              /* tcp.data is the link; the owner uses 'data'; unused by a
                                  stream */
    struct link_tls *tls;      /* NULL: plain TCP */
    struct mux_stream *stream; /* not NULL: a stream of a mux session (proxy/mux.h), no socket */
    void *data;                /* the owner's */
    link_alloc_fn alloc;
    link_read_fn read;
    link_closed_fn closed;
    int open_handles; /* counted down by link_close */
    bool tcp_reading; /* libuv reads the socket */
    bool paused;      /* the owner stopped reading, libuv still watches (plain TCP) */
};

/* Initialises the socket on 'loop'. family AF_UNSPEC: no socket yet (uv_accept makes it);
 * AF_INET/AF_INET6: created now, so EMFILE shows here. Returns 0 or a libuv error (nothing to
 * close then). */
int link_init(uv_loop_t *loop, struct link *l, int family);

/* Starts or resumes delivering bytes to 'read'. Returns 0 or a libuv error. */
int link_read_start(struct link *l, link_alloc_fn alloc, link_read_fn read);

/* While reading, delivers what the socket already holds now instead of at the next poll: one
 * read, reported to the owner's callbacks as libuv reports it (bytes, 0 for none, or the end or
 * an error, after which reading stops). For a peer that speaks first: a client's first bytes
 * are usually there when it is accepted. Does nothing on a TLS link, a stream, or a paused link.
 */
void link_read_now(struct link *l);

/* link_read_now for a caller with a buffer of its own, and without the owner's callbacks: the
 * bytes read into buf, 0 for none now (or for a link that link_read_now skips), UV_EOF or an
 * error (after which reading stops). */
ssize_t link_recv_now(struct link *l, char *buf, size_t len);

/* While reading, when the peer's end (or a reset) is all the socket holds, reports it now
 * (UV_EOF or the error, with an empty buffer; reading stops) instead of at the next poll; bytes
 * there wait for the poll. For a reader that has just read a server's answer: a server that
 * closes after answering leaves its end right behind it. Does nothing on a TLS link, a stream,
 * or a paused link. */
void link_read_end_now(struct link *l);

/* Stops delivering bytes; what the peer sends meanwhile waits in the socket (or the stream's
 * window). On a plain link only a pause: libuv goes on watching the socket and stops only if
 * bytes or an end arrive before reading resumes, so a stop and a start within one loop turn
 * cost no syscall. */
void link_read_stop(struct link *l);

/* Writes as much as the kernel takes now, without a request: the count, UV_EAGAIN, or an
 * error. A mux stream takes what its window allows while its carrier keeps up (proxy/mux.h); a
 * TLS link takes all of it while no write is queued (it encrypts it, and what the kernel does not
 * take at once goes on in a write of the link's own, which later writes wait for), else
 * UV_EAGAIN. */
int link_try_write(struct link *l, const char *data, size_t len);

/* Queues len bytes (kept by the caller until the callback). Returns 0 or a libuv error (the
 * callback is then not called). */
int link_write(struct link *l, struct link_write *w, const char *data, size_t len,
               link_write_fn cb);

/* Ends the writing direction once queued writes are out (TLS: close_notify first). */
int link_shutdown(struct link *l, struct link_shutdown *s, link_shutdown_fn cb);

/* Ends the writing direction at once when that needs no request (a plain link with nothing
 * queued): 0, UV_EAGAIN (use link_shutdown), or an error. */
int link_shutdown_now(struct link *l);

/* Bytes queued for writing and not yet in the kernel (ciphertext for TLS). */
size_t link_write_queue_size(const struct link *l);

/* Bytes the kernel holds in the socket's send queue, or -1 when that cannot be known. */
int link_unsent_bytes(const struct link *l);

/* Closes the link; 'closed' runs once every handle is closed. Idempotent. */
void link_close(struct link *l, link_closed_fn closed);

/* The same, with a TCP reset instead of an orderly end (the peer learns the stream was cut):
 * for passing on a reset from the other side. */
void link_close_reset(struct link *l, link_closed_fn closed);

bool link_is_closing(const struct link *l);

/* Our address on the connection (a stream: its session's carrier). Returns 0 or a libuv error. */
int link_local_address(const struct link *l, struct sockaddr *sa, int *len);

/* --- TLS (link_tls.c) */

/* Starts a TLS handshake over the connected socket, as a server or a client of 'ctx'. A client
 * checks 'peer_name' (a DNS name, also sent as SNI, or an IP address) in the server's
 * certificate, offers 'session' for resumption when not NULL, and offers the ALPN protocol
 * 'alpn' when not NULL (link_tls_alpn says what the server chose). Reads the socket until the
 * handshake ends, then stops: 'done' runs once, unless the link closes first. Returns 0 or a
 * libuv error ('done' is then not called). */
int link_tls_start(struct link *l, SSL_CTX *ctx, bool server, const char *peer_name,
                   SSL_SESSION *session, const char *alpn, link_handshake_fn done);

/* Whether the handshake chose the ALPN protocol 'name'. */
bool link_tls_alpn_is(const struct link *l, const char *name);

/* The TLS session, or NULL for a plain link. */
SSL *link_ssl(const struct link *l);

/* Why the handshake or the last read failed ("certificate has expired (CN=...)", ...); ""
 * when nothing failed. */
const char *link_tls_error(const struct link *l);

#endif
