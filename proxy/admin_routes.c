#include "proxy/admin_routes.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "geo/geo.h"
#include "proxy/log.h"
#include "proxy/runtime.h"
#include "proxy/upstream_health.h"
#include "proxy/worker.h"

void admin_status_info_init(struct admin_status_info *info, const struct admin_deps *deps)
{
    info->deps = *deps;
    info->started_at = (int64_t)time(NULL);
}

/* A Unix time as ISO 8601 UTC ("2026-11-28T00:22:44Z"). */
static const char *format_time(int64_t t, char text[32])
{
    struct tm tm;
    time_t tt = (time_t)t;
    text[0] = '\0';
    if (gmtime_r(&tt, &tm) != NULL)
        strftime(text, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text;
}

static void json_time(struct strbuf *out, const char *key, int64_t t)
{
    char text[32];
    strbuf_printf(out, "\"%s\":", key);
    strbuf_json_string(out, format_time(t, text));
}

/* Whole days from now until a certificate's notAfter, rounded down (negative once expired). */
static long long cert_days_left(int64_t not_after, int64_t now)
{
    int64_t diff = not_after - now;
    return (long long)(diff / 86400 - (diff % 86400 < 0 ? 1 : 0));
}

static void json_cert_expiry(struct strbuf *out, int64_t not_after, int64_t now)
{
    strbuf_puts(out, ",");
    json_time(out, "cert_not_after", not_after);
    strbuf_printf(out, ",\"cert_days_left\":%lld", cert_days_left(not_after, now));
}

static void json_string_or_null(struct strbuf *out, const char *s)
{
    if (s != NULL && s[0] != '\0')
        strbuf_json_string(out, s);
    else
        strbuf_puts(out, "null");
}

static const char *upstream_kind_name(enum upstream_kind k)
{
    switch (k) {
    case UPSTREAM_TLS:
        return "tls";
    case UPSTREAM_SOCKS5:
        return "socks5";
    case UPSTREAM_HTTP:
        return "http";
    case UPSTREAM_GROUP:
        break;
    }
    return "group";
}

/* What /status says of one upstream, for both of its forms. */
struct upstream_view {
    const char *state; /* unchecked, up, down */
    char reason[UPSTREAM_HEALTH_TEXT_MAX];
    char egress[64];
    bool has_latency; /* the last check succeeded: it is up */
    double latency_ms;
    uint64_t changes;
    char address[CONFIG_HOST_MAX + 8];
};

static void upstream_view(struct upstream_health *h, const struct config *cfg,
                          const struct config_upstream *u, struct upstream_view *v)
{
    memset(v, 0, sizeof(*v));
    if (u->kind == UPSTREAM_GROUP) {
        v->state = upstream_state_name(upstream_health_up(h, cfg, u) ? UPSTREAM_UP : UPSTREAM_DOWN);
        return;
    }
    bool v6 = strchr(u->host, ':') != NULL;
    snprintf(v->address, sizeof(v->address), "%s%s%s:%u", v6 ? "[" : "", u->host, v6 ? "]" : "",
             (unsigned)u->port);
    struct upstream_health_entry *e = upstream_health_entry(h, u->name);
    if (e == NULL) {
        v->state = upstream_state_name(UPSTREAM_UNCHECKED);
        return;
    }
    enum upstream_state state = atomic_load_explicit(&e->state, memory_order_relaxed);
    v->state = upstream_state_name(state);
    upstream_health_texts(h, e, v->reason, v->egress);
    if (state != UPSTREAM_DOWN)
        v->reason[0] = '\0';
    v->has_latency = state == UPSTREAM_UP;
    v->latency_ms = (double)atomic_load_explicit(&e->latency_us, memory_order_relaxed) / 1000.0;
    v->changes = atomic_load_explicit(&e->changes, memory_order_relaxed);
}

static void status_listeners(const struct config *cfg, int64_t now, struct strbuf *out)
{
    strbuf_puts(out, "\"listeners\":[");
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct config_listener *l = &cfg->listeners[i];
        char addr[64];
        strbuf_puts(out, i == 0 ? "{\"name\":" : ",{\"name\":");
        strbuf_json_string(out, l->name);
        strbuf_puts(out, ",\"kind\":");
        strbuf_json_string(out, config_listener_kind_name(l->kind));
        strbuf_puts(out, ",\"address\":");
        strbuf_json_string(out, config_format_addr(&l->addr, addr, sizeof addr));
        strbuf_printf(out, ",\"authentication\":%s", l->users != NULL ? "true" : "false");
        if (l->kind == LISTENER_TUNNEL)
            json_cert_expiry(out, l->cert_not_after, now);
        strbuf_puts(out, "}");
    }
    strbuf_puts(out, "]");
}

static void status_upstream(struct upstream_health *h, const struct config *cfg,
                            const struct config_upstream *u, int64_t now, struct strbuf *out)
{
    struct upstream_view v;
    upstream_view(h, cfg, u, &v);
    strbuf_puts(out, "{\"name\":");
    strbuf_json_string(out, u->name);
    strbuf_printf(out, ",\"kind\":\"%s\",\"state\":\"%s\"", upstream_kind_name(u->kind), v.state);
    if (u->kind == UPSTREAM_GROUP) {
        strbuf_printf(out, ",\"strategy\":\"%s\",\"members\":[",
                      u->strategy == UPSTREAM_ROUND_ROBIN ? "round-robin" : "failover");
        for (size_t m = 0; m < u->n_members; m++) {
            strbuf_puts(out, m == 0 ? "" : ",");
            strbuf_json_string(out, cfg->upstreams[u->members[m]].name);
        }
        strbuf_puts(out, "]}");
        return;
    }
    strbuf_puts(out, ",\"address\":");
    strbuf_json_string(out, v.address);
    strbuf_puts(out, ",\"reason\":");
    json_string_or_null(out, v.reason);
    strbuf_puts(out, ",\"egress\":");
    json_string_or_null(out, v.egress);
    strbuf_puts(out, ",\"declared_egress\":");
    json_string_or_null(out, u->egress);
    if (v.has_latency)
        strbuf_printf(out, ",\"latency_ms\":%.1f", v.latency_ms);
    else
        strbuf_puts(out, ",\"latency_ms\":null");
    strbuf_printf(out, ",\"state_changes\":%llu", (unsigned long long)v.changes);
    if (u->kind == UPSTREAM_TLS)
        json_cert_expiry(out, u->cert_not_after, now);
    strbuf_puts(out, "}");
}

static void status_upstreams(struct upstream_health *h, const struct config *cfg, int64_t now,
                             struct strbuf *out)
{
    strbuf_puts(out, "\"upstreams\":[");
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        strbuf_puts(out, i == 0 ? "" : ",");
        status_upstream(h, cfg, &cfg->upstreams[i], now, out);
    }
    strbuf_puts(out, "]");
}

static void status_geoip(const struct config *cfg, struct strbuf *out)
{
    const struct config_geoip *g = &cfg->geoip;
    strbuf_puts(out, "\"geoip\":{\"country\":");
    if (g->country == NULL) {
        strbuf_puts(out, "null");
    } else {
        int64_t built = (int64_t)geo_db_build_epoch(g->country);
        int64_t age = ((int64_t)time(NULL) - built) / 86400;
        strbuf_puts(out, "{\"path\":");
        strbuf_json_string(out, g->country_path);
        strbuf_puts(out, ",\"type\":");
        strbuf_json_string(out, geo_db_type(g->country));
        strbuf_puts(out, ",");
        json_time(out, "built", built);
        strbuf_printf(out, ",\"age_days\":%lld,\"default\":%s}", (long long)(age < 0 ? 0 : age),
                      g->country_is_default ? "true" : "false");
    }
    strbuf_puts(out, ",\"asn\":");
    if (g->asn == NULL) {
        strbuf_puts(out, "null");
    } else {
        strbuf_puts(out, "{\"path\":");
        strbuf_json_string(out, g->asn_path);
        strbuf_puts(out, ",\"type\":");
        strbuf_json_string(out, geo_db_type(g->asn));
        strbuf_puts(out, "}");
    }
    strbuf_puts(out, "}");
}

void admin_render_status(const struct admin_status_info *info, struct strbuf *out)
{
    const struct admin_deps *d = &info->deps;
    const struct reloader *r = d->reloader;
    struct policy_snapshot *snap = runtime_acquire_snapshot(d->rt);
    const struct config *cfg = policy_snapshot_config(snap);
    int64_t now = (int64_t)time(NULL);

    strbuf_init(out, ADMIN_REPLY_MAX);
    strbuf_puts(out, "{\"version\":");
    strbuf_json_string(out, GEOPROXY_VERSION);
    strbuf_puts(out, ",");
    json_time(out, "started", info->started_at);
    strbuf_printf(out, ",\"uptime_s\":%lld,\"workers\":%u,\"active_connections\":%u,",
                  (long long)((int64_t)time(NULL) - info->started_at), d->n_workers,
                  atomic_load(&d->rt->active_conns));
    status_listeners(cfg, now, out);
    strbuf_printf(out, ",\"policy\":{\"generation\":%llu,\"rules\":%zu,\"path\":",
                  (unsigned long long)policy_snapshot_generation(snap), cfg->n_rules);
    strbuf_json_string(out, cfg->path);
    strbuf_puts(out, ",");
    json_time(out, "loaded", r->loaded_at);
    strbuf_printf(out, ",\"reloads_ok\":%llu,\"reloads_failed\":%llu,\"last_reload_error\":",
                  (unsigned long long)r->reloads_ok, (unsigned long long)r->reloads_failed);
    if (r->last_error[0] != '\0')
        strbuf_json_string(out, r->last_error);
    else
        strbuf_puts(out, "null");
    strbuf_puts(out, "},");
    status_geoip(cfg, out);
    strbuf_puts(out, ",");
    status_upstreams(&d->rt->health, cfg, now, out);
    strbuf_puts(out, "}\n");
    policy_snapshot_release(snap);
}

static void text_cert_expiry(struct strbuf *out, int64_t not_after, int64_t now)
{
    char when[32];
    long long days = cert_days_left(not_after, now);
    strbuf_printf(out, ", certificate %s %s (%lld day(s)%s)", days < 0 ? "expired" : "expires",
                  format_time(not_after, when), days < 0 ? -days : days, days < 0 ? " ago" : "");
}

/* "upstream     exit-ch tls 192.0.2.7:8443: up, egress 192.0.2.7 (declared CH), 12.0 ms, ..." */
static void text_upstream(struct upstream_health *h, const struct config *cfg,
                          const struct config_upstream *u, int64_t now, struct strbuf *out)
{
    struct upstream_view v;
    upstream_view(h, cfg, u, &v);
    strbuf_printf(out, "upstream     %s %s ", u->name, upstream_kind_name(u->kind));
    if (u->kind == UPSTREAM_GROUP) {
        strbuf_puts(out, u->strategy == UPSTREAM_ROUND_ROBIN ? "round-robin (" : "failover (");
        for (size_t m = 0; m < u->n_members; m++)
            strbuf_printf(out, "%s%s", m == 0 ? "" : ", ", cfg->upstreams[u->members[m]].name);
        strbuf_printf(out, "): %s\n", v.state);
        return;
    }
    strbuf_printf(out, "%s: %s", v.address, v.state);
    if (v.reason[0] != '\0')
        strbuf_printf(out, ": %s", v.reason);
    if (v.egress[0] != '\0')
        strbuf_printf(out, ", egress %s", v.egress);
    if (u->egress[0] != '\0')
        strbuf_printf(out, "%sdeclared %s%s", v.egress[0] != '\0' ? " (" : ", ", u->egress,
                      v.egress[0] != '\0' ? ")" : "");
    if (v.has_latency)
        strbuf_printf(out, ", %.1f ms", v.latency_ms);
    if (u->kind == UPSTREAM_TLS)
        text_cert_expiry(out, u->cert_not_after, now);
    strbuf_puts(out, "\n");
}

void admin_render_status_text(const struct admin_status_info *info, struct strbuf *out)
{
    const struct admin_deps *d = &info->deps;
    const struct reloader *r = d->reloader;
    struct policy_snapshot *snap = runtime_acquire_snapshot(d->rt);
    const struct config *cfg = policy_snapshot_config(snap);
    const struct config_geoip *g = &cfg->geoip;
    int64_t now = (int64_t)time(NULL);
    int64_t up = now - info->started_at;

    strbuf_init(out, ADMIN_REPLY_MAX);
    strbuf_printf(out, "geoproxy %s, up %lldd %02lld:%02lld:%02lld, %u worker(s)\n",
                  GEOPROXY_VERSION, (long long)(up / 86400), (long long)(up / 3600 % 24),
                  (long long)(up / 60 % 60), (long long)(up % 60), d->n_workers);
    strbuf_printf(out, "connections  %u open\n", atomic_load(&d->rt->active_conns));
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        char addr[64];
        const struct config_listener *l = &cfg->listeners[i];
        strbuf_printf(out, "listener     %s %s (%s)%s", l->name,
                      config_format_addr(&l->addr, addr, sizeof addr),
                      config_listener_kind_name(l->kind),
                      l->users != NULL ? ", with authentication" : "");
        if (l->kind == LISTENER_TUNNEL)
            text_cert_expiry(out, l->cert_not_after, now);
        strbuf_puts(out, "\n");
    }
    strbuf_printf(out, "policy       generation %llu, %zu rule(s) from %s\n",
                  (unsigned long long)policy_snapshot_generation(snap), cfg->n_rules, cfg->path);
    strbuf_printf(out, "reloads      %llu ok, %llu failed%s%s\n", (unsigned long long)r->reloads_ok,
                  (unsigned long long)r->reloads_failed,
                  r->last_error[0] != '\0' ? "; last error: " : "", r->last_error);
    if (g->country != NULL) {
        int64_t age = ((int64_t)time(NULL) - (int64_t)geo_db_build_epoch(g->country)) / 86400;
        strbuf_printf(out, "geoip        %s (%s, %lld day(s) old)%s\n", g->country_path,
                      geo_db_type(g->country), (long long)(age < 0 ? 0 : age),
                      g->country_is_default ? ", the default database" : "");
    } else {
        strbuf_puts(out, "geoip        none: public addresses are 'unknown'\n");
    }
    for (size_t i = 0; i < cfg->n_upstreams; i++)
        text_upstream(&d->rt->health, cfg, &cfg->upstreams[i], now, out);
    policy_snapshot_release(snap);
}

void admin_render_metrics(const struct admin_status_info *info, struct metrics_exposition *x,
                          struct strbuf *out)
{
    const struct admin_deps *d = &info->deps;
    struct worker_metrics *all[257];
    size_t n = d->n_workers < 256 ? d->n_workers : 256;
    struct policy_snapshot *snap = runtime_acquire_snapshot(d->rt);
    const struct config *cfg = policy_snapshot_config(snap);

    for (size_t i = 0; i < n; i++)
        all[i] = &d->workers[i].metrics;
    all[n++] = &d->rt->health.probe_metrics; /* the health checker's, on this loop */
    struct metrics_globals g = {
        .active_connections = atomic_load(&d->rt->active_conns),
        .policy_generation = policy_snapshot_generation(snap),
        .reloads_ok = d->reloader->reloads_ok,
        .reloads_failed = d->reloader->reloads_failed,
        .geo_build_epoch =
            cfg->geoip.country != NULL ? (int64_t)geo_db_build_epoch(cfg->geoip.country) : -1,
        .events_oversized = atomic_load(&d->rt->events.oversized),
        .log_write_errors = log_write_errors(),
        .snap = snap,
        .health = &d->rt->health,
        .now = (int64_t)time(NULL),
    };
    strbuf_init(out, ADMIN_REPLY_MAX);
    metrics_render(x, all, n, &g, out);
    policy_snapshot_release(snap);
}

void admin_render_inspection(const struct inspection *q, struct strbuf *out)
{
    size_t checked = 0;
    strbuf_init(out, ADMIN_REPLY_MAX);
    for (size_t i = 0; i < q->n_answers; i++)
        checked += q->counts[i];
    if (q->kind == INSPECT_DRY_RUN) {
        const struct config *cfg = policy_snapshot_config(q->candidate);
        strbuf_puts(out, "{\"candidate\":");
        strbuf_json_string(out, cfg->path);
        strbuf_printf(out, ",\"rules\":%zu,\"connections_checked\":%zu,\"would_change\":[",
                      cfg->n_rules, checked);
    } else {
        strbuf_printf(out, "{\"count\":%zu,\"connections\":[", checked);
    }
    bool first = true;
    for (size_t i = 0; i < q->n_answers; i++) {
        const struct strbuf *a = &q->answers[i];
        if (a->len == 0 || a->failed)
            continue;
        if (!first)
            strbuf_puts(out, ",");
        strbuf_append(out, a->data, a->len);
        first = false;
    }
    strbuf_puts(out, "]}\n");
}

void admin_render_diags(const char *path, const struct config_diags *d, struct strbuf *out)
{
    strbuf_init(out, ADMIN_REPLY_MAX);
    strbuf_puts(out, "{\"candidate\":");
    strbuf_json_string(out, path);
    strbuf_puts(out, ",\"ok\":false,\"errors\":[");
    for (size_t i = 0; i < d->count; i++) {
        if (i > 0)
            strbuf_puts(out, ",");
        strbuf_json_string(out, d->items[i].text);
    }
    strbuf_printf(out, "],\"more\":%zu}\n", d->dropped);
}
