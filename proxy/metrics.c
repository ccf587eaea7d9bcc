#include "proxy/metrics.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509_vfy.h>

#include "proxy/strbuf.h"
#include "proxy/upstream_health.h"

/* Upper bounds of the finite latency buckets, in microseconds. */
static const uint64_t bucket_bounds_us[METRICS_BUCKETS] = {
    1000,   2500,   5000,    10000,   25000,   50000,    100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

static const char *const action_names[METRICS_ACTIONS] = {"pass", "block", "tunnel"};

static const char *const tls_failure_names[METRICS_TLS_FAILURES] = {
    "no_certificate", "unknown_ca", "expired", "not_yet_valid", "pin_mismatch", "handshake",
};

/* ---- recording ---------------------------------------------------------------------------- */

static inline void counter_add(struct metrics_counter *c, uint64_t n)
{
    /* Single writer: a plain load and store, atomic only so that readers see whole values. */
    uint64_t v = atomic_load_explicit(&c->v, memory_order_relaxed);
    atomic_store_explicit(&c->v, v + n, memory_order_relaxed);
}

static inline uint64_t counter_get(const struct metrics_counter *c)
{
    return atomic_load_explicit(&c->v, memory_order_relaxed);
}

static enum metrics_action metrics_action_of(enum verdict_action a)
{
    switch (a) {
    case VERDICT_PASS:
        return METRICS_PASS;
    case VERDICT_TUNNEL:
        return METRICS_TUNNEL;
    case VERDICT_BLOCK:
        break;
    }
    return METRICS_BLOCK;
}

static size_t country_slot(const struct geo_result *g)
{
    if (g->cls == GEO_CLASS_COUNTRY) {
        int i = country_code_index(g->country);
        if (i >= 0)
            return (size_t)i;
    }
    return g->cls == GEO_CLASS_LOCAL ? COUNTRY_SET_SIZE : COUNTRY_SET_SIZE + 1;
}

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* The worker's slot for a rule name, claimed on first use; NULL when the table is full. */
static struct metrics_rule *metrics_rule_slot(struct worker_metrics *m, const char *name)
{
    size_t start = name_hash(name) % METRICS_RULES_MAX;
    for (size_t i = 0; i < METRICS_RULES_MAX; i++) {
        struct metrics_rule *r = &m->rules[(start + i) % METRICS_RULES_MAX];
        if (!atomic_load_explicit(&r->used, memory_order_relaxed)) {
            size_t len = strnlen(name, CONFIG_NAME_MAX - 1);
            memcpy(r->name, name, len);
            r->name[len] = '\0';
            atomic_store_explicit(&r->used, true, memory_order_release);
            return r;
        }
        if (strcmp(r->name, name) == 0)
            return r;
    }
    return NULL;
}

void metrics_count_decision(struct worker_metrics *m, const struct policy_verdict *v,
                            const struct geo_result *client, const struct geo_result *dest)
{
    enum metrics_action a = metrics_action_of(v->action);
    counter_add(&m->decided[a], 1);
    struct metrics_rule *r = metrics_rule_slot(m, v->rule);
    counter_add(r != NULL ? &r->by_action[a] : &m->rules_overflow[a], 1);
    counter_add(&m->client_country[country_slot(client)], 1);
    if (dest != NULL)
        counter_add(&m->dest_country[country_slot(dest)], 1);
}

void metrics_count_close(struct worker_metrics *m, bool decided, enum verdict_action action,
                         uint64_t bytes_up, uint64_t bytes_down, const char *end_reason)
{
    if (decided) {
        enum metrics_action a = metrics_action_of(action);
        counter_add(&m->bytes[METRICS_UP][a], bytes_up);
        counter_add(&m->bytes[METRICS_DOWN][a], bytes_down);
    }
    for (size_t i = 0; i < METRICS_END_REASONS_MAX; i++) {
        struct metrics_end_reason *e = &m->ends[i];
        const char *r = atomic_load_explicit(&e->reason, memory_order_relaxed);
        if (r == NULL) {
            atomic_store_explicit(&e->reason, end_reason, memory_order_release);
            r = end_reason;
        }
        if (r == end_reason || strcmp(r, end_reason) == 0) {
            counter_add(&e->count, 1);
            return;
        }
    }
    counter_add(&m->ends_overflow, 1);
}

void metrics_observe(struct worker_metrics *m, enum metrics_latency which, uint64_t micros)
{
    struct metrics_histogram *h = &m->latency[which];
    for (size_t i = 0; i < METRICS_BUCKETS; i++) {
        if (micros <= bucket_bounds_us[i]) {
            counter_add(&h->buckets[i], 1);
            break;
        }
    }
    counter_add(&h->count, 1);
    counter_add(&h->sum_us, micros);
}

void metrics_count_tls_failure(struct worker_metrics *m, enum metrics_tls_failure reason)
{
    if ((unsigned)reason >= METRICS_TLS_FAILURES)
        reason = METRICS_TLS_HANDSHAKE;
    counter_add(&m->tls_failures[reason], 1);
}

enum metrics_tls_failure metrics_tls_failure_of(long x509_verify_result, bool peer_sent_certificate)
{
    switch (x509_verify_result) {
    case X509_V_OK:
        return peer_sent_certificate ? METRICS_TLS_HANDSHAKE : METRICS_TLS_NO_CERTIFICATE;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return METRICS_TLS_EXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return METRICS_TLS_NOT_YET_VALID;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        return METRICS_TLS_UNKNOWN_CA;
    default:
        return METRICS_TLS_HANDSHAKE;
    }
}

/* ---- exposition --------------------------------------------------------------------------- */

static void render_header(struct strbuf *out, const char *name, const char *type, const char *help)
{
    strbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

struct rule_total {
    const char *name;
    uint64_t by_action[METRICS_ACTIONS];
};

static int rule_total_cmp(const void *a, const void *b)
{
    return strcmp(((const struct rule_total *)a)->name, ((const struct rule_total *)b)->name);
}

static void render_connections(struct worker_metrics *const *w, size_t n, struct strbuf *out)
{
    render_header(out, "geoproxy_connections_total", "counter",
                  "Connections decided by the policy, by action and rule.");
    struct rule_total *all = calloc(n * METRICS_RULES_MAX + 1, sizeof *all);
    size_t count = 0;
    uint64_t overflow[METRICS_ACTIONS] = {0};
    for (size_t i = 0; i < n && all != NULL; i++) {
        for (size_t a = 0; a < METRICS_ACTIONS; a++)
            overflow[a] += counter_get(&w[i]->rules_overflow[a]);
        for (size_t r = 0; r < METRICS_RULES_MAX; r++) {
            const struct metrics_rule *mr = &w[i]->rules[r];
            if (!atomic_load_explicit(&mr->used, memory_order_acquire))
                continue;
            all[count].name = mr->name;
            for (size_t a = 0; a < METRICS_ACTIONS; a++)
                all[count].by_action[a] = counter_get(&mr->by_action[a]);
            count++;
        }
    }
    if (all != NULL)
        qsort(all, count, sizeof *all, rule_total_cmp);
    for (size_t i = 0; i < count;) {
        struct rule_total sum = all[i];
        size_t j = i + 1;
        for (; j < count && strcmp(all[j].name, sum.name) == 0; j++)
            for (size_t a = 0; a < METRICS_ACTIONS; a++)
                sum.by_action[a] += all[j].by_action[a];
        for (size_t a = 0; a < METRICS_ACTIONS; a++)
            if (sum.by_action[a] > 0)
                strbuf_printf(out, "geoproxy_connections_total{action=\"%s\",rule=\"%s\"} %llu\n",
                              action_names[a], sum.name, (unsigned long long)sum.by_action[a]);
        i = j;
    }
    for (size_t a = 0; a < METRICS_ACTIONS; a++)
        if (overflow[a] > 0)
            strbuf_printf(out,
                          "geoproxy_connections_total{action=\"%s\",rule=\"(other rules)\"} %llu\n",
                          action_names[a], (unsigned long long)overflow[a]);
    if (all == NULL)
        out->failed = true;
    free(all);
}

static const char *country_label(size_t slot, char cc[3])
{
    if (slot == COUNTRY_SET_SIZE)
        return "local";
    if (slot == COUNTRY_SET_SIZE + 1)
        return "unknown";
    cc[0] = (char)('A' + slot / 26);
    cc[1] = (char)('A' + slot % 26);
    cc[2] = '\0';
    return cc;
}

/* Sums one country array of every worker into totals. */
static void sum_countries(struct worker_metrics *const *w, size_t n, bool client,
                          uint64_t totals[METRICS_COUNTRY_SLOTS])
{
    memset(totals, 0, METRICS_COUNTRY_SLOTS * sizeof totals[0]);
    for (size_t i = 0; i < n; i++)
        for (size_t s = 0; s < METRICS_COUNTRY_SLOTS; s++)
            totals[s] += counter_get(client ? &w[i]->client_country[s] : &w[i]->dest_country[s]);
}

static void render_countries(struct metrics_exposition *x, const char *name, const char *help,
                             const uint64_t totals[METRICS_COUNTRY_SLOTS], struct strbuf *out)
{
    render_header(out, name, "counter", help);
    uint64_t other = 0;
    for (size_t s = 0; s < METRICS_COUNTRY_SLOTS; s++) {
        if (totals[s] == 0)
            continue;
        bool local_or_unknown = s >= COUNTRY_SET_SIZE;
        if (!x->labelled[s] && (local_or_unknown || x->n_labelled < METRICS_TOP_COUNTRIES)) {
            x->labelled[s] = true;
            x->n_labelled += local_or_unknown ? 0 : 1;
        }
        if (!x->labelled[s]) {
            other += totals[s];
            continue;
        }
        char cc[3];
        strbuf_printf(out, "%s{country=\"%s\"} %llu\n", name, country_label(s, cc),
                      (unsigned long long)totals[s]);
    }
    if (other > 0)
        strbuf_printf(out, "%s{country=\"other\"} %llu\n", name, (unsigned long long)other);
}

static uint64_t region_total(const struct region *r, const uint64_t totals[METRICS_COUNTRY_SLOTS])
{
    uint64_t sum = 0;
    for (size_t s = 0; s < COUNTRY_SET_SIZE; s++) {
        char cc[3];
        country_label(s, cc);
        if (totals[s] > 0 && region_has_country(r, cc))
            sum += totals[s];
    }
    return sum;
}

static void render_regions(const char *name, const char *help, const struct config *cfg,
                           const uint64_t totals[METRICS_COUNTRY_SLOTS], struct strbuf *out)
{
    render_header(out, name, "counter", help);
    for (size_t i = 0; i < region_builtin_count(); i++) {
        const struct region *r = region_builtin_at(i);
        strbuf_printf(out, "%s{region=\"%s\"} %llu\n", name, r->name,
                      (unsigned long long)region_total(r, totals));
    }
    for (size_t i = 0; cfg != NULL && i < cfg->n_regions; i++)
        strbuf_printf(out, "%s{region=\"%s\"} %llu\n", name, cfg->regions[i].name,
                      (unsigned long long)region_total(&cfg->regions[i], totals));
}

static void render_bytes(struct worker_metrics *const *w, size_t n, struct strbuf *out)
{
    static const char *const directions[2] = {"up", "down"};
    render_header(out, "geoproxy_bytes_total", "counter",
                  "Bytes relayed: up is client to destination, down the other way.");
    for (size_t d = 0; d < 2; d++)
        for (size_t a = 0; a < METRICS_ACTIONS; a++) {
            uint64_t sum = 0;
            for (size_t i = 0; i < n; i++)
                sum += counter_get(&w[i]->bytes[d][a]);
            strbuf_printf(out, "geoproxy_bytes_total{action=\"%s\",direction=\"%s\"} %llu\n",
                          action_names[a], directions[d], (unsigned long long)sum);
        }
}

static void render_ends(struct worker_metrics *const *w, size_t n, struct strbuf *out)
{
    render_header(out, "geoproxy_connection_ends_total", "counter",
                  "Connections closed, by why they ended.");
    const char *seen[METRICS_END_REASONS_MAX * 4];
    size_t n_seen = 0;
    uint64_t overflow = 0;
    for (size_t i = 0; i < n; i++) {
        overflow += counter_get(&w[i]->ends_overflow);
        for (size_t e = 0; e < METRICS_END_REASONS_MAX; e++) {
            const char *r = atomic_load_explicit(&w[i]->ends[e].reason, memory_order_acquire);
            if (r == NULL)
                break;
            bool known = false;
            for (size_t k = 0; k < n_seen && !known; k++)
                known = strcmp(seen[k], r) == 0;
            if (!known && n_seen < sizeof seen / sizeof seen[0])
                seen[n_seen++] = r;
        }
    }
    for (size_t k = 0; k < n_seen; k++) {
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t e = 0; e < METRICS_END_REASONS_MAX; e++) {
                const char *r = atomic_load_explicit(&w[i]->ends[e].reason, memory_order_acquire);
                if (r == NULL)
                    break;
                if (strcmp(r, seen[k]) == 0)
                    sum += counter_get(&w[i]->ends[e].count);
            }
        strbuf_printf(out, "geoproxy_connection_ends_total{reason=\"%s\"} %llu\n", seen[k],
                      (unsigned long long)sum);
    }
    if (overflow > 0)
        strbuf_printf(out, "geoproxy_connection_ends_total{reason=\"other\"} %llu\n",
                      (unsigned long long)overflow);
}

static void render_histogram(struct worker_metrics *const *w, size_t n, enum metrics_latency which,
                             const char *name, const char *help, struct strbuf *out)
{
    render_header(out, name, "histogram", help);
    uint64_t cumulative = 0, count = 0, sum_us = 0;
    for (size_t i = 0; i < n; i++) {
        count += counter_get(&w[i]->latency[which].count);
        sum_us += counter_get(&w[i]->latency[which].sum_us);
    }
    for (size_t b = 0; b < METRICS_BUCKETS; b++) {
        for (size_t i = 0; i < n; i++)
            cumulative += counter_get(&w[i]->latency[which].buckets[b]);
        strbuf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, (double)bucket_bounds_us[b] / 1e6,
                      (unsigned long long)cumulative);
    }
    strbuf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)count);
    strbuf_printf(out, "%s_sum %.6f\n%s_count %llu\n", name, (double)sum_us / 1e6, name,
                  (unsigned long long)count);
}

static void render_globals(const struct metrics_globals *g, struct strbuf *out)
{
    render_header(out, "geoproxy_active_connections", "gauge", "Client connections open now.");
    strbuf_printf(out, "geoproxy_active_connections %u\n", g->active_connections);
    render_header(out, "geoproxy_policy_generation", "gauge", "Generation of the policy in force.");
    strbuf_printf(out, "geoproxy_policy_generation %llu\n",
                  (unsigned long long)g->policy_generation);
    render_header(out, "geoproxy_reloads_total", "counter", "Policy reloads, by result.");
    strbuf_printf(out, "geoproxy_reloads_total{result=\"ok\"} %llu\n",
                  (unsigned long long)g->reloads_ok);
    strbuf_printf(out, "geoproxy_reloads_total{result=\"failed\"} %llu\n",
                  (unsigned long long)g->reloads_failed);
    if (g->geo_build_epoch >= 0) {
        render_header(out, "geoproxy_geoip_build_timestamp_seconds", "gauge",
                      "When the country database in use was built (Unix time).");
        strbuf_printf(out, "geoproxy_geoip_build_timestamp_seconds %lld\n",
                      (long long)g->geo_build_epoch);
        render_header(out, "geoproxy_geoip_age_seconds", "gauge",
                      "Age of the country database in use.");
        long long age = (long long)time(NULL) - (long long)g->geo_build_epoch;
        strbuf_printf(out, "geoproxy_geoip_age_seconds %lld\n", age < 0 ? 0 : age);
    }
    render_header(out, "geoproxy_log_write_errors_total", "counter",
                  "Log lines that could not be written (a full disk, a closed stderr).");
    strbuf_printf(out, "geoproxy_log_write_errors_total %llu\n",
                  (unsigned long long)g->log_write_errors);
    render_header(out, "geoproxy_events_oversized_total", "counter",
                  "Events left out of the live stream because they were too long.");
    strbuf_printf(out, "geoproxy_events_oversized_total %llu\n",
                  (unsigned long long)g->events_oversized);
}

static void render_tls_failures(struct worker_metrics *const *w, size_t n, struct strbuf *out)
{
    render_header(out, "geoproxy_tls_failures_total", "counter",
                  "TLS handshakes that failed (tunnel listeners and tls upstreams), by reason.");
    for (size_t r = 0; r < METRICS_TLS_FAILURES; r++) {
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += counter_get(&w[i]->tls_failures[r]);
        strbuf_printf(out, "geoproxy_tls_failures_total{reason=\"%s\"} %llu\n",
                      tls_failure_names[r], (unsigned long long)sum);
    }
}

/* The health entry of an upstream that is checked itself (not a group), or NULL. */
static struct upstream_health_entry *checked_entry(struct upstream_health *h,
                                                   const struct config_upstream *u)
{
    return u->kind != UPSTREAM_GROUP ? upstream_health_entry(h, u->name) : NULL;
}

/* Health of every upstream of the policy in force (names from the configuration). */
static void render_upstreams(const struct config *cfg, struct upstream_health *h,
                             struct strbuf *out)
{
    render_header(out, "geoproxy_upstream_up", "gauge",
                  "Whether the upstream may carry traffic now (a group: any of its members).");
    for (size_t i = 0; i < cfg->n_upstreams; i++)
        strbuf_printf(out, "geoproxy_upstream_up{upstream=\"%s\"} %d\n", cfg->upstreams[i].name,
                      upstream_health_up(h, cfg, &cfg->upstreams[i]) ? 1 : 0);
    render_header(out, "geoproxy_upstream_check_latency_seconds", "gauge",
                  "How long the last health check of an upstream that is up took.");
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        struct upstream_health_entry *e = checked_entry(h, &cfg->upstreams[i]);
        if (e != NULL && atomic_load_explicit(&e->state, memory_order_relaxed) == UPSTREAM_UP)
            strbuf_printf(out, "geoproxy_upstream_check_latency_seconds{upstream=\"%s\"} %.6f\n",
                          e->name,
                          (double)atomic_load_explicit(&e->latency_us, memory_order_relaxed) / 1e6);
    }
    render_header(out, "geoproxy_upstream_state_changes_total", "counter",
                  "Times an upstream went up or down since the start.");
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        struct upstream_health_entry *e = checked_entry(h, &cfg->upstreams[i]);
        if (e != NULL)
            strbuf_printf(
                out, "geoproxy_upstream_state_changes_total{upstream=\"%s\"} %llu\n", e->name,
                (unsigned long long)atomic_load_explicit(&e->changes, memory_order_relaxed));
    }
}

static void render_expiry(struct strbuf *out, const char *kind, const char *name, int64_t not_after,
                          int64_t now)
{
    strbuf_printf(out, "geoproxy_certificate_expiry_seconds{kind=\"%s\",name=\"%s\"} %lld\n", kind,
                  name, (long long)(not_after - now));
}

/* Time until the certificates of tunnel listeners and tls upstreams expire. Seconds, not days:
 * Prometheus's base unit (promtool's lint refuses a _days name). */
static void render_certificates(const struct config *cfg, int64_t now, struct strbuf *out)
{
    render_header(out, "geoproxy_certificate_expiry_seconds", "gauge",
                  "Seconds until a certificate geoproxy presents expires (negative: expired).");
    for (size_t i = 0; i < cfg->n_listeners; i++)
        if (cfg->listeners[i].kind == LISTENER_TUNNEL)
            render_expiry(out, "listener", cfg->listeners[i].name, cfg->listeners[i].cert_not_after,
                          now);
    for (size_t i = 0; i < cfg->n_upstreams; i++)
        if (cfg->upstreams[i].kind == UPSTREAM_TLS)
            render_expiry(out, "upstream", cfg->upstreams[i].name, cfg->upstreams[i].cert_not_after,
                          now);
}

void metrics_render(struct metrics_exposition *x, struct worker_metrics *const *w, size_t n,
                    const struct metrics_globals *g, struct strbuf *out)
{
    uint64_t totals[METRICS_COUNTRY_SLOTS];
    const struct config *cfg = g->snap != NULL ? policy_snapshot_config(g->snap) : NULL;

    render_globals(g, out);
    render_connections(w, n, out);
    sum_countries(w, n, true, totals);
    render_countries(x, "geoproxy_client_connections_total",
                     "Connections decided, by the client's country (local, unknown, other).",
                     totals, out);
    render_regions("geoproxy_client_region_connections_total",
                   "Connections decided, by a region the client's country is in.", cfg, totals,
                   out);
    sum_countries(w, n, false, totals);
    render_countries(x, "geoproxy_destination_connections_total",
                     "Connections decided with a known destination address, by its country.",
                     totals, out);
    render_regions("geoproxy_destination_region_connections_total",
                   "Connections decided with a known destination address, by its region.", cfg,
                   totals, out);
    render_bytes(w, n, out);
    render_ends(w, n, out);
    render_histogram(w, n, METRICS_HANDSHAKE, "geoproxy_handshake_seconds",
                     "From accept until the client's request was read.", out);
    render_histogram(w, n, METRICS_CONNECT, "geoproxy_connect_seconds",
                     "From the decision until the destination was connected (or failed).", out);
    render_histogram(w, n, METRICS_DNS, "geoproxy_dns_seconds",
                     "Destination name resolutions the policy asked for.", out);
    render_tls_failures(w, n, out);
    if (cfg != NULL && g->health != NULL)
        render_upstreams(cfg, g->health, out);
    if (cfg != NULL)
        render_certificates(cfg, g->now, out);
}
