/* What is known of each upstream's health, shared by every thread: the health checker
 * (proxy/health_check.c) and failed connections mark upstreams down, checks mark them up again,
 * and connections pick the members of a group among the healthy ones.
 *
 * Entries are keyed by upstream name, so what was learnt survives a reload. An upstream that
 * declares an egress is not used until a check has verified where its traffic leaves (fail
 * closed); any other upstream is used before its first check. Thread-safe: states are atomics,
 * the texts kept for /status are guarded by a lock. */
#ifndef GEOPROXY_PROXY_UPSTREAM_HEALTH_H
#define GEOPROXY_PROXY_UPSTREAM_HEALTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "policy/config.h"
#include "proxy/metrics.h"

#define UPSTREAM_HEALTH_MAX (2 * CONFIG_MAX_UPSTREAMS) /* names remembered across reloads */
#define UPSTREAM_HEALTH_TEXT_MAX 192

enum upstream_state {
    UPSTREAM_UNCHECKED, /* no check has finished yet */
    UPSTREAM_UP,
    UPSTREAM_DOWN,
};

struct upstream_health_entry {
    char name[CONFIG_NAME_MAX];            /* written before the entry is counted in 'n' */
    atomic_int state;                      /* enum upstream_state */
    atomic_uint_fast64_t latency_us;       /* of the last successful check */
    atomic_uint_fast64_t changes;          /* state changes so far */
    char reason[UPSTREAM_HEALTH_TEXT_MAX]; /* why it is down; under the table's lock */
    char egress[64];                       /* the egress the exit last reported, or "" */
};

struct upstream_health {
    uv_mutex_t lock; /* adding entries, and the texts */
    struct upstream_health_entry entries[UPSTREAM_HEALTH_MAX];
    atomic_size_t n;
    atomic_uint round_robin; /* the next start for round-robin groups */
    /* What the health checker's probes count (TLS failures): written by its thread only, summed
     * with the workers' counters in GET /metrics. */
    struct worker_metrics probe_metrics;
};

int upstream_health_init(struct upstream_health *h);
void upstream_health_destroy(struct upstream_health *h);

/* The entry of the upstream named 'name', added when missing (NULL when the table is full). */
struct upstream_health_entry *upstream_health_entry(struct upstream_health *h, const char *name);

/* Whether u (not a group) may carry traffic now. */
bool upstream_health_usable(struct upstream_health *h, const struct config_upstream *u);

/* Whether u may carry traffic now: as upstream_health_usable, and a group when any of its
 * members is usable. */
bool upstream_health_up(struct upstream_health *h, const struct config *cfg,
                        const struct config_upstream *u);

/* Records the outcome of a check or of a connection through u. Returns true when the state
 * changed (the caller logs it). 'reason' (down only) and 'egress' (may be NULL) are copied for
 * /status. */
bool upstream_health_report(struct upstream_health *h, const struct config_upstream *u, bool up,
                            const char *reason, const char *egress, uint64_t latency_us);

/* The upstreams to try for 'via', in order: itself when it is usable, or the usable members of
 * a group by its strategy. Returns how many were stored (at most cap); 0: every one is down. */
size_t upstream_health_candidates(struct upstream_health *h, const struct config *cfg,
                                  const struct config_upstream *via,
                                  const struct config_upstream **out, size_t cap);

/* Copies the entry's texts under the lock (for /status). */
void upstream_health_texts(struct upstream_health *h, struct upstream_health_entry *e,
                           char reason[UPSTREAM_HEALTH_TEXT_MAX], char egress[64]);

const char *upstream_state_name(enum upstream_state s);

#endif
