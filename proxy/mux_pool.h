/* The entry's mux sessions (proxy/mux.h) to its exits: per worker (not thread-safe), per tls
 * upstream, the TLS connections whose handshake chose MUX_ALPN, each carrying the tunnels opened
 * on it as streams. A new tunnel through an upstream with a session costs one stream: no TCP
 * connect, no handshake. A session is made by the first tunnel that needs one (upstream.c hands
 * its freshly handshaken link over); it is closed once it has carried no stream for
 * MUX_POOL_IDLE_MS, or at once when its exit ends it (or said GO_AWAY and its last stream
 * ended). After a reload that changed the upstream (its TLS context differs) new tunnels go to a
 * new session, and the old one closes once idle. */
#ifndef GEOPROXY_PROXY_MUX_POOL_H
#define GEOPROXY_PROXY_MUX_POOL_H

#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

#include "policy/config.h"
#include "proxy/link.h"

#define MUX_POOL_IDLE_MS 30000

struct mux_pool_carrier;

struct mux_pool {
    uv_loop_t *loop;
    uv_timer_t sweep;
    bool open;
    struct mux_pool_carrier *carriers;
};

/* Prepares an empty pool on 'loop'. Returns 0 or a libuv error. */
int mux_pool_init(struct mux_pool *pool, uv_loop_t *loop);

/* A new stream over a session to u, with the exit's address, or NULL when there is no session
 * to u with room. The link is the caller's (link_close, then free). */
struct link *mux_pool_open(struct mux_pool *pool, const struct config_upstream *u,
                           struct sockaddr_storage *peer);

/* Makes a session of 'tls', a link to u whose handshake chose MUX_ALPN (the pool owns it from
 * here, whatever the outcome), and opens its first stream: NULL when that failed. */
struct link *mux_pool_adopt(struct mux_pool *pool, const struct config_upstream *u,
                            struct link *tls, const struct sockaddr *peer);

/* Closes every session (their streams are reset) and the timer (run the loop once more). */
void mux_pool_close(struct mux_pool *pool);

#endif
