/* The health checker: on the main loop, every "health-check every" interval, each upstream of the
 * policy in force is probed (proxy/upstream.h, UPSTREAM_ASK_EGRESS) within "health-check
 * timeout": a tls exit must complete mutual TLS (and match its pin) and report its egress, a
 * socks5 parent must answer the greeting, an http parent must accept a connection. An exit that
 * declares an egress is up only when the address it reports lies in that country or region by
 * our GeoIP database (fail closed: an unknown egress is down). Outcomes go to the runtime's
 * upstream_health table; changes are logged. */
#ifndef GEOPROXY_PROXY_HEALTH_CHECK_H
#define GEOPROXY_PROXY_HEALTH_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "policy/config.h"
#include "proxy/tls_session_cache.h"

struct runtime;
struct resolver;
struct policy_snapshot;
struct upstream_req;

struct health_probe {
    struct health_checker *hc;
    const struct config_upstream *u;
    struct upstream_req *req;
};

struct health_checker {
    uv_loop_t *loop;
    struct runtime *rt;
    struct resolver *resolver;
    struct tls_session_cache sessions;
    uv_timer_t tick;
    struct policy_snapshot *snap; /* the policy being checked, held while probes run */
    struct health_probe probes[CONFIG_MAX_UPSTREAMS];
    size_t in_flight;
    bool running;
};

/* Starts checking at once, then every interval of the policy in force. 'cfg' gives the
 * resolvers used for upstream host names. Returns 0 or a libuv error. */
int health_checker_start(struct health_checker *hc, uv_loop_t *loop, struct runtime *rt,
                         const struct config *cfg);

/* Checks again now (a new policy was published); a round in progress finishes first. */
void health_checker_kick(struct health_checker *hc);

/* Cancels probes in flight and closes the checker's handles. */
void health_checker_close(struct health_checker *hc);

#endif
