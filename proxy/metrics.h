/* Counters for Prometheus (GET /metrics on the admin listener). Each worker owns a struct
 * worker_metrics that only its own thread writes, with relaxed loads and stores (no lock and no
 * atomic read-modify-write on the hot path); the admin loop reads and sums them.
 *
 * Labels never hold addresses or host names: actions, rule names (bounded by the
 * configuration and by METRICS_RULES_MAX), countries (676 codes plus local and unknown, and the
 * exposition folds all but the first METRICS_TOP_COUNTRIES seen into "other"), regions, end
 * reasons (constants of the code), TLS failure reasons (a fixed set), upstream and listener names
 * (from the configuration) and fixed histogram buckets. */
#ifndef GEOPROXY_PROXY_METRICS_H
#define GEOPROXY_PROXY_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "geo/geo.h"
#include "geo/region.h"
#include "policy/config.h"
#include "policy/policy.h"

#define METRICS_COUNTRY_SLOTS (COUNTRY_SET_SIZE + 2) /* AA..ZZ, then local, then unknown */
#define METRICS_RULES_MAX 512                        /* rule names counted per worker */
#define METRICS_END_REASONS_MAX 64                   /* distinct end reasons per worker */
#define METRICS_BUCKETS 13                           /* finite latency buckets */
#define METRICS_TOP_COUNTRIES 30                     /* country labels before "other" */

enum metrics_action { METRICS_PASS, METRICS_BLOCK, METRICS_TUNNEL, METRICS_ACTIONS };
enum metrics_latency { METRICS_HANDSHAKE, METRICS_CONNECT, METRICS_DNS, METRICS_LATENCIES };
enum metrics_direction { METRICS_UP, METRICS_DOWN }; /* client to upstream, and back */

/* Why a TLS handshake failed (geoproxy_tls_failures_total{reason}). */
enum metrics_tls_failure {
    METRICS_TLS_NO_CERTIFICATE, /* the peer was asked for a certificate and sent none */
    METRICS_TLS_UNKNOWN_CA,     /* its certificate does not chain to the CA we trust */
    METRICS_TLS_EXPIRED,
    METRICS_TLS_NOT_YET_VALID,
    METRICS_TLS_PIN_MISMATCH, /* an exit's key is not the one its upstream line pins */
    METRICS_TLS_HANDSHAKE,    /* any other failure: protocol, version, not TLS at all */
    METRICS_TLS_FAILURES
};

struct metrics_counter {
    atomic_uint_fast64_t v;
};

struct metrics_histogram {
    struct metrics_counter buckets[METRICS_BUCKETS]; /* counts per bucket, not cumulative */
    struct metrics_counter count;
    struct metrics_counter sum_us;
};

struct metrics_rule {
    atomic_bool used; /* name is written before used is set (release) */
    char name[CONFIG_NAME_MAX];
    struct metrics_counter by_action[METRICS_ACTIONS];
};

struct metrics_end_reason {
    _Atomic(const char *) reason; /* a string constant; NULL: slot free */
    struct metrics_counter count;
};

struct worker_metrics {
    struct metrics_counter decided[METRICS_ACTIONS];
    struct metrics_counter rules_overflow[METRICS_ACTIONS];
    struct metrics_rule rules[METRICS_RULES_MAX];
    struct metrics_counter client_country[METRICS_COUNTRY_SLOTS];
    struct metrics_counter dest_country[METRICS_COUNTRY_SLOTS];
    struct metrics_counter bytes[2][METRICS_ACTIONS];
    struct metrics_end_reason ends[METRICS_END_REASONS_MAX];
    struct metrics_counter ends_overflow;
    struct metrics_histogram latency[METRICS_LATENCIES];
    struct metrics_counter tls_failures[METRICS_TLS_FAILURES];
};

/* ---- recording: the owning worker's thread only ---- */

/* A decision: action and rule, and the countries of both ends (dest NULL when not known). */
void metrics_count_decision(struct worker_metrics *m, const struct policy_verdict *v,
                            const struct geo_result *client, const struct geo_result *dest);

/* A connection ended: its bytes (counted under its action) and why it ended. */
void metrics_count_close(struct worker_metrics *m, bool decided, enum verdict_action action,
                         uint64_t bytes_up, uint64_t bytes_down, const char *end_reason);

void metrics_observe(struct worker_metrics *m, enum metrics_latency which, uint64_t micros);

/* A TLS handshake that failed, on a tunnel listener or towards a tls upstream. */
void metrics_count_tls_failure(struct worker_metrics *m, enum metrics_tls_failure reason);

/* Why a handshake failed, from what OpenSSL says of it (pure): the peer certificate's
 * verification result (SSL_get_verify_result) decides first; X509_V_OK with
 * peer_sent_certificate false is no_certificate; anything else is handshake. Pass
 * peer_sent_certificate false only when the peer answered a certificate request with none, not
 * when the handshake failed before that (a plain-HTTP client is a handshake failure). */
enum metrics_tls_failure metrics_tls_failure_of(long x509_verify_result,
                                                bool peer_sent_certificate);

/* ---- exposition: the admin loop ---- */

/* What the exposition remembers between scrapes: which countries have a label of their own
 * (the first METRICS_TOP_COUNTRIES seen keep it for the life of the process, so every series
 * only ever grows). */
struct metrics_exposition {
    bool labelled[METRICS_COUNTRY_SLOTS];
    size_t n_labelled;
};

struct upstream_health;

/* Process-wide values that do not live in the workers. */
struct metrics_globals {
    unsigned active_connections;
    uint64_t policy_generation;
    uint64_t reloads_ok;
    uint64_t reloads_failed;
    int64_t geo_build_epoch; /* -1: no country database */
    uint64_t events_oversized;
    uint64_t log_write_errors;
    const struct policy_snapshot *snap; /* for the region catalog, upstreams and listeners */
    struct upstream_health *health;     /* upstream states; NULL: no upstream series */
    int64_t now;                        /* Unix time, for certificate expiry */
};

struct strbuf;

/* Appends the Prometheus text exposition (version 0.0.4) of n workers' counters. */
void metrics_render(struct metrics_exposition *x, struct worker_metrics *const *workers, size_t n,
                    const struct metrics_globals *g, struct strbuf *out);

#endif
