/* What all worker threads share: the policy snapshot in force, the global connection count and
 * the per-client counts (proxy/client_limits.h). Everything here is thread-safe. */
#ifndef GEOPROXY_PROXY_RUNTIME_H
#define GEOPROXY_PROXY_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "policy/policy.h"
#include "proxy/client_limits.h"
#include "proxy/events.h"
#include "proxy/pseudonym.h"
#include "proxy/upstream_health.h"

struct runtime {
    uv_mutex_t lock;                 /* guards 'current' */
    struct policy_snapshot *current; /* the snapshot new connections take */
    atomic_uint active_conns;        /* connections admitted and not yet freed */
    struct client_table *clients;    /* per-client connection counts and rate buckets */
    atomic_uint_fast64_t next_conn_id;
    struct pseudonym_key pseudonym_key; /* random per process: client pseudonyms in events */
    struct events_hub events;           /* connection events for live followers */
    struct upstream_health health;      /* what is known of every upstream */
};

/* Initialises the runtime with its first snapshot (taking the caller's reference) and a new
 * pseudonym key. Returns 0 or a libuv error (UV_EIO when there is no randomness). */
int runtime_init(struct runtime *rt, struct policy_snapshot *first);

/* Releases the current snapshot. */
void runtime_destroy(struct runtime *rt);

/* Returns a new reference to the snapshot in force. */
struct policy_snapshot *runtime_acquire_snapshot(struct runtime *rt);

/* Publishes a new snapshot (taking the caller's reference); connections in flight keep theirs. */
void runtime_publish_snapshot(struct runtime *rt, struct policy_snapshot *snap);

enum runtime_admission {
    RUNTIME_ADMITTED,
    RUNTIME_REFUSED_TOTAL,      /* 'limit connections' reached */
    RUNTIME_REFUSED_PER_CLIENT, /* 'limit per-client-connections' reached for this client */
    RUNTIME_REFUSED_RATE,       /* 'limit per-client-rate' exceeded by this client */
};

/* Counts a new connection from 'client' against 'limits' (the global cap, then the client's
 * own); anything but RUNTIME_ADMITTED means refuse it, and nothing was counted. *warn says
 * whether to log it: a per-client refusal at most once per client per CLIENT_WARN_INTERVAL_MS. A
 * client the full table cannot count is admitted (see proxy/client_limits.h) with *warn set once
 * per interval. */
enum runtime_admission runtime_admit_conn(struct runtime *rt, const struct config_limits *limits,
                                          const struct sockaddr *client, bool *warn);

/* Uncounts a connection admitted by runtime_admit_conn() from 'client'. */
void runtime_release_conn(struct runtime *rt, const struct sockaddr *client);

#endif
