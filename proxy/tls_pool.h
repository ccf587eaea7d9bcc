/* TLS connections to exits, made before they are needed: a new tunnel takes one whose mutual TLS
 * handshake is already done and only pays for its CONNECT round trip. Per worker (not
 * thread-safe), per tls upstream: up to the upstream's "pool N" idle links, refilled in the
 * background (with session resumption) after each tunnel through it is set up.
 *
 * An idle link is dropped after TLS_POOL_IDLE_MS (well below an exit's handshake timeout, which
 * would close it), or at once when the exit closes it or sends anything. Refills follow tunnels
 * only, so an exit nobody tunnels to is left alone. */
#ifndef GEOPROXY_PROXY_TLS_POOL_H
#define GEOPROXY_PROXY_TLS_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "policy/config.h"
#include "proxy/link.h"

#define TLS_POOL_IDLE_MS 5000
/* A refill waits this long after the tunnel that asked for it: the handshake's CPU then does
 * not delay that tunnel's first exchanges, which run on the same thread. */
#define TLS_POOL_REFILL_DELAY_MS 10
#define TLS_POOL_PER_UPSTREAM_MAX 64

struct policy_snapshot;
struct resolver;
struct tls_session_cache;
struct tls_pool;
struct worker_metrics;

struct tls_pool_idle {
    struct link *link;
    uint64_t since_ms;
    struct sockaddr_storage peer;
};

struct tls_pool_slot {
    char name[CONFIG_NAME_MAX]; /* "" when free */
    const void *ctx;            /* the client context its links were made with (compared only) */
    struct tls_pool_idle idle[TLS_POOL_PER_UPSTREAM_MAX];
    size_t n_idle;
    unsigned filling; /* handshakes in progress */
    /* A refill asked for and not started yet: the upstream, and the snapshot it lives in (one
     * reference), or NULL. */
    struct policy_snapshot *due_snap;
    const struct config_upstream *due;
};

struct tls_pool {
    uv_loop_t *loop;
    struct resolver *resolver;
    struct tls_session_cache *sessions;
    struct worker_metrics *metrics; /* the refills' TLS failures are counted here */
    uv_timer_t sweep;
    uv_timer_t refill; /* starts the refills that are due */
    bool open;
    struct tls_pool_fill *fills; /* in progress, for tls_pool_close */
    struct tls_pool_slot slots[CONFIG_MAX_UPSTREAMS];
};

/* Prepares an empty pool on 'loop'; its handshakes' TLS failures count in 'metrics' (may be
 * NULL). Returns 0 or a libuv error. */
int tls_pool_init(struct tls_pool *pool, uv_loop_t *loop, struct resolver *resolver,
                  struct tls_session_cache *sessions, struct worker_metrics *metrics);

/* An idle link to u (handshake done, nothing sent, not reading) with its peer address, or NULL.
 * The caller owns the link (link_close, then free). */
struct link *tls_pool_take(struct tls_pool *pool, const struct config_upstream *u,
                           struct sockaddr_storage *peer);

/* Starts handshakes, TLS_POOL_REFILL_DELAY_MS from now, until u's pool holds u->pool links.
 * Called once a tunnel through u is set up, not while it is. 'snap' (u's snapshot) is held
 * until the refills end. */
void tls_pool_refill(struct tls_pool *pool, struct policy_snapshot *snap,
                     const struct config_upstream *u);

/* Closes every idle link, cancels refills, closes the timer (run the loop once more). */
void tls_pool_close(struct tls_pool *pool);

#endif
