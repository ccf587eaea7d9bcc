/* A mux session: many streams over one carrier connection (the TLS connection between an entry
 * and an exit), framed as proxy/mux_frame_parse.h says, with a flow-control window per stream.
 * A tunnel through a mux costs one stream (no TCP connect, no TLS handshake), and inside its
 * stream the entry and the exit speak the same HTTP/1.1 CONNECT they speak over a connection of
 * its own. Negotiated by ALPN (MUX_ALPN): an exit that does not offer it, and a client such as
 * curl that does not ask for it, speak plain HTTP/1.1 CONNECT over TLS as before.
 *
 * The session does no I/O of its own: its owner reads the carrier and passes the bytes to
 * mux_session_input(), and writes the frames the session hands it (mux_carrier.write), calling
 * mux_frame_written() for each. Each stream is a struct link (proxy/link.h) of its own: the relay,
 * the connection and the upstream client read, write, shut down and close it as they would a
 * socket, with a socket's meaning: FIN is a half-close (the peer reads an end); link_close
 * before both directions ended says FIN and RST together (the peer reads an end, and its
 * writes fail with UV_EPIPE), link_close_reset says RST (the peer reads UV_ECONNRESET). A
 * stream the peer refused (mux_frame_parse.h: it was draining or full, or its owner did not take
 * it) ends its opener's reads with UV_ECONNREFUSED, as a socket whose SYN met a RST: nothing of it
 * was read, and the opener may open it again on another session.
 *
 * Frames wait in the session for the end of the loop's turn (its idle handle) and then go to the
 * carrier together, as far as they fit in a TLS record, so the peer decrypts one record and wakes
 * once. The bytes a server relays back (link_try_write on the accepting side) wait one turn more,
 * the poll between not blocking, for an end of file that a short read left for the next poll;
 * an end already queued with them (the relay found it behind the answer) ends the wait. A bulk
 * frame (over 16 KiB), a window update and a stream's opening frame (its request: the peer starts
 * on it while the turn goes on) go at once, with what waits before them; streams opened in one
 * turn thus take a record each.
 *
 * Memory: a stream's received bytes wait for its reader only within its window (the peer may not
 * send more); a write completes once its frames reached the carrier's socket, so each stream has
 * at most its writer's one buffer in flight, and link_try_write frames bytes at once only while
 * less than one frame's worth of the session's frames waits for the carrier. When the bytes
 * waiting for readers pass MUX_BUFFERED_MAX in all, the session asks its owner to stop reading
 * the carrier, and to read it again once they fell to half of that (read, or dropped with a
 * closed or reset stream).
 *
 * Lifetime: the owner creates the session and ends it with mux_session_close(); streams still
 * open are reset, and the memory goes once every stream link is closed and every frame handed to
 * the owner came back. Not thread-safe: one loop. */
#ifndef GEOPROXY_PROXY_MUX_H
#define GEOPROXY_PROXY_MUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "certs/tls_context.h"
#include "proxy/link.h"

#define MUX_ALPN CERTS_ALPN_MUX
/* Open streams per session. The accepting side does not count those the peer ended (they wait
 * for their owners' close), up to twice this in all: the opener frees a stream as it closes it. */
#define MUX_STREAMS_MAX 256
#define MUX_FRAME_PAYLOAD_MAX (64 * 1024) /* the longest DATA frame we send */
#define MUX_BUFFERED_MAX (8u * 1024u * 1024u)

struct mux_session;
struct mux_stream;

/* Frames for the carrier. The owner writes data[0..len) with 'write' as its request and calls
 * mux_frame_written() once it completed (or failed, or was cancelled). data may hold several
 * frames: the small frames of one loop turn go to the carrier as one write (one TLS record). */
struct mux_frame {
    struct link_write write;
    struct mux_session *session;
    struct mux_stream_write *carries; /* the stream write it carries bytes of, or NULL */
    struct mux_frame *next;           /* the session's queue, or the next of a batch's members */
    struct mux_frame *members;        /* a batch: the frames whose bytes it holds, or NULL */
    size_t len;
    uint8_t data[];
};

struct mux_carrier {
    /* Writes f to the carrier. Returns MUX_FRAME_SENT when all of it went at once (the session
     * then completes f itself), 0 when it goes with f's request (the owner calls
     * mux_frame_written() later), or a libuv error (f is then not written: the session treats the
     * carrier as failed and takes f back itself). */
    int (*write)(void *owner, struct mux_frame *f);
    /* Stop (false) or resume (true) reading the carrier. */
    void (*read_enable)(void *owner, bool enable);
    /* The peer opened a stream (server side): make it a link with link_init_stream() and own
     * that link, or leave it (the stream is then reset). */
    void (*accept)(void *owner, struct mux_stream *stream);
    /* The session cannot go on (the peer broke the protocol, or said GO_AWAY and no stream is
     * left: then 'why' is MUX_ENDED_GO_AWAY, an orderly end): 'why' is for the log. The owner
     * closes the carrier and calls mux_session_close(). Called at most once. */
    void (*ended)(void *owner, const char *why);
};

extern const char MUX_ENDED_GO_AWAY[]; /* mux_carrier.ended's 'why' for an orderly end */

/* Starts a session over a connected carrier. 'client': the side that opens streams. 'local'
 * (may be NULL) is the carrier's local address, which streams report as theirs. Returns NULL
 * when out of memory. */
struct mux_session *mux_session_new(uv_loop_t *loop, bool client, const struct mux_carrier *ops,
                                    void *owner, const struct sockaddr *local);

/* Bytes read from the carrier. */
void mux_session_input(struct mux_session *s, const uint8_t *data, size_t len);

/* The carrier will not deliver more (UV_EOF or an error): every stream is reset. */
void mux_session_carrier_ended(struct mux_session *s);

/* A frame handed to mux_carrier.write went out (status 0) or did not. */
void mux_frame_written(struct mux_frame *f, int status);

#define MUX_FRAME_SENT 1 /* mux_carrier.write: f went at once */

/* The usual mux_carrier.write: writes f to the carrier link at once as far as it takes it
 * (link_try_write), the rest with f's own request, and calls mux_frame_written() when that
 * completed. */
int mux_frame_write(struct mux_frame *f, struct link *carrier);

/* Opens a stream (client side). The link is the caller's (malloc'd; free it in its 'closed'
 * callback) and already open: write to it at once. NULL when the session is ending, at its stream
 * limit, or out of memory. */
struct link *mux_session_open(struct mux_session *s);

/* Makes l the link of a stream the peer opened (mux_carrier.accept). */
void link_init_stream(struct link *l, struct mux_stream *stream);

/* The session a stream link belongs to, or NULL for any other link. */
struct mux_session *link_stream_session(const struct link *l);

/* Streams open now. */
size_t mux_session_streams(const struct mux_session *s);

/* True once the session takes no new streams (GO_AWAY, carrier ended, closing). */
bool mux_session_draining(const struct mux_session *s);

/* True when the peer said GO_AWAY and no stream is left: an end of the carrier now, with or
 * without TLS's close_notify, cuts nothing (the peer closing its session in order). */
bool mux_session_peer_left(const struct mux_session *s);

/* Says GO_AWAY: the peer opens no more streams; those open run to their end. */
void mux_session_go_away(struct mux_session *s);

/* Ends the session: open streams are reset (their owners see UV_ECONNRESET and close them); the
 * memory goes once they are closed and every frame came back. The owner does not use s after. */
void mux_session_close(struct mux_session *s);

#endif
