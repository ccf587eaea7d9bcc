/* Connections through an upstream (tunnel verdicts, and the health checker's probes): connect to
 * the upstream (proxy/outbound.h), then speak its protocol as a client over a link:
 *   tls:    TLS 1.3 handshake (CA, name and optional SPKI pin checked, session resumed when one
 *           is cached), then HTTP CONNECT host:port, the name unresolved; for a CONNECT, over a
 *           stream of a mux session with the exit (proxy/mux_pool.h) when there is one, and a
 *           new session is made of the connection when the exit accepts the mux by ALPN;
 *   http:   HTTP CONNECT host:port over plain TCP;
 *   socks5: greeting, optional RFC 1929 login, CONNECT with the name unresolved (ATYP 3).
 * For a group, the healthy members are tried in the group's order (proxy/upstream_health.h);
 * a member that cannot be reached or fails its handshake is marked down and the next one is
 * tried within the same deadline. A refusal or failure the upstream reports for the
 * destination (403, 502, SOCKS REP) ends the request: the upstream itself is healthy. */
#ifndef GEOPROXY_PROXY_UPSTREAM_H
#define GEOPROXY_PROXY_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "policy/config.h"
#include "proxy/link.h"
#include "proxy/resolver.h"
#include "proxy/target.h"

struct policy_snapshot;
struct worker_metrics;
struct upstream_health;
struct tls_pool;
struct mux_pool;
struct tls_session_cache;

enum upstream_ask {
    UPSTREAM_ASK_CONNECT,   /* open a tunnel to 'target' */
    UPSTREAM_ASK_EGRESS,    /* health probe: tls asks the exit for its egress; socks5 greets;
                               http connects */
    UPSTREAM_ASK_RESOLVE,   /* ask a tls exit to resolve target.host */
    UPSTREAM_ASK_HANDSHAKE, /* a tls link with its handshake done, nothing sent (tls_pool.h) */
};

struct upstream_params {
    uv_loop_t *loop;
    struct resolver *resolver;          /* for upstream host names */
    struct upstream_health *health;     /* marks and picks; NULL: try 'via' whatever its state */
    struct tls_session_cache *sessions; /* resumption; may be NULL */
    struct tls_pool *pool;              /* idle links to take; may be NULL */
    struct mux_pool *mux;               /* CONNECT: sessions to open tunnels on, and to add
                                           new ones to; may be NULL (no mux offered) */
    struct worker_metrics *metrics;     /* TLS failures are counted here; NULL: not counted */
    struct policy_snapshot *snap;       /* cfg's snapshot, for the pool's refills (with pool) */
    const struct config *cfg;           /* 'via' belongs to it; kept alive by the caller */
    const struct config_upstream *via;  /* an upstream or a group */
    enum upstream_ask ask;
    const struct target *target; /* CONNECT and RESOLVE */
    uint32_t timeout_ms;         /* the whole request, every member included */
};

struct upstream_result {
    enum outbound_status status;
    const struct config_upstream *used; /* the member last tried, or NULL when none was */
    struct link *link; /* CONNECT and HANDSHAKE, OUTBOUND_OK: the link, now the callee's (see
                          outbound_cb for the contract); NULL otherwise */
    const struct sockaddr *peer; /* the upstream's address, when connected */
    const char *early;           /* CONNECT: bytes that came after the upstream's reply: the
                                    destination's, to be relayed first */
    size_t early_len;
    const char *detail;    /* why it failed, for logs and for the client; "" when it did not */
    bool upstream_refused; /* the upstream's own policy refused the destination (403) */
    const char *egress;    /* EGRESS: the Geoproxy-Egress value, NUL-terminated, or NULL */
    const char *addresses; /* RESOLVE: the Geoproxy-Addresses value, or NULL */
    size_t addresses_len;
    uint64_t latency_us; /* from the start to the reply */
    const char *tls;     /* a tls member: how its TLS session began: "mux" (a stream of a
                            session open already), "pooled" (a link made ahead), "resumed" or
                            "full" (handshake; the first stream of a new session when the exit
                            took the mux); else NULL */
};

/* Called exactly once unless cancelled first, never before upstream_request returns. Pointers in
 * the result are valid during the call only. */
typedef void (*upstream_cb)(void *arg, const struct upstream_result *r);

struct upstream_req;

/* Starts a request. Returns NULL on allocation failure (the callback is then not called). */
struct upstream_req *upstream_request(const struct upstream_params *p, upstream_cb cb, void *arg);

/* Abandons a request: the callback is not called; its memory goes once its handles closed. */
void upstream_cancel(struct upstream_req *req);

#endif
