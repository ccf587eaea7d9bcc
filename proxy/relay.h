/* The relay: one pump for both directions of a connected pair (client <-> upstream). Reads go
 * into fixed-size buffers from the worker's pool; each direction has at most one buffer in
 * flight, and reading a side stops while its peer has not drained (backpressure). EOF on one
 * side becomes a shutdown of the other (half-close); the connection ends when both directions
 * are done, on an error, or when the idle deadline passes. An idle relay holds no buffer. */
#ifndef GEOPROXY_PROXY_RELAY_H
#define GEOPROXY_PROXY_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "proxy/link.h"

struct conn;

/* One direction: bytes read from 'from' and written to the other side. */
struct relay_dir {
    char *buf;      /* pool buffer being written, or NULL */
    size_t pending; /* bytes of buf still to write */
    bool eof;       /* the reading side sent EOF */
    bool done;      /* EOF forwarded (shutdown completed) */
    int unsent;     /* the writing socket's send queue (SIOCOUTQ) when last looked at */
    struct link_write write_req;
    struct link_shutdown shutdown_req;
};

struct relay {
    struct relay_dir dirs[2]; /* indexed by the reading side: CONN_CLIENT, CONN_UPSTREAM */
};

/* Starts pumping. 'initial' (may be empty) are client bytes read during the handshake that
 * must go upstream first; they are copied. Called by conn_relay_start(). */
void relay_start(struct conn *c, const void *initial, size_t initial_len);

/* True when a write that is waiting for the peer has moved since the last call: the kernel's
 * send queue of its socket changed (the peer is reading, slowly). The idle deadline uses it, as
 * a large socket buffer can take longer than the idle time to drain enough for libuv to
 * complete the write. */
bool relay_write_progressed(struct conn *c);

/* Releases the buffers the relay holds; called when the connection closes. */
void relay_release(struct conn *c);

#endif
