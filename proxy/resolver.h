/* Asynchronous DNS over c-ares, driven by one worker's libuv loop, with a bounded cache that keeps
 * answers for their TTL. Never blocks the loop. One resolver per worker (c-ares channels are not
 * shared between threads). Literal addresses and "localhost" (via /etc/hosts) also resolve. */
#ifndef GEOPROXY_PROXY_RESOLVER_H
#define GEOPROXY_PROXY_RESOLVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "proxy/target.h"

#define RESOLVER_MAX_ADDRS 16 /* addresses kept per name */

struct resolver;
struct resolver_query;

struct resolver_options {
    const struct sockaddr_storage *servers; /* with ports; NULL or 0 servers: /etc/resolv.conf */
    size_t n_servers;
    uint32_t timeout_ms;    /* whole resolution, all tries */
    uint32_t cache_entries; /* 0 disables the cache */
};

/* An answer: IPv6 and IPv4 addresses interleaved in the order to try them (RFC 8305 §4:
 * first family preference, then alternating), ports not set. */
struct resolver_answer {
    struct sockaddr_storage addrs[RESOLVER_MAX_ADDRS];
    size_t n_addrs;
};

/* Called exactly once per query unless the query was cancelled first. 'status' is OUTBOUND_OK
 * (answer has at least one address), OUTBOUND_DNS_NOT_FOUND, OUTBOUND_DNS_FAILED or
 * OUTBOUND_DNS_TIMEOUT. 'answer' is valid only during the call. It may be called before
 * resolver_resolve returns (cache hit, literal address). */
typedef void (*resolver_cb)(void *arg, enum outbound_status status,
                            const struct resolver_answer *answer);

/* Creates a resolver on 'loop'. Returns 0, or a negative UV_* error. */
int resolver_new(uv_loop_t *loop, const struct resolver_options *opts, struct resolver **out);

/* Cancels every query in flight (their callbacks are not called), then releases the resolver;
 * its handles close on the loop, so run the loop once more after this. NULL is a no-op. */
void resolver_free(struct resolver *r);

/* Starts resolving 'host' (a name or a literal address). Returns a handle for
 * resolver_cancel, or NULL when the callback has already been called (synchronous answer) or
 * on allocation failure (then the callback was called with OUTBOUND_DNS_FAILED). */
struct resolver_query *resolver_resolve(struct resolver *r, const char *host, resolver_cb cb,
                                        void *arg);

/* Cancels a query in flight: its callback will not be called. */
void resolver_cancel(struct resolver_query *q);

#endif
