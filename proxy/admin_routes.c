#include "proxy/admin_routes.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "geo/geo.h"
#include "proxy/log.h"
#include "proxy/runtime.h"
#include "proxy/worker.h"

void admin_status_info_init(struct admin_status_info *info, const struct admin_deps *deps)
{
    info->deps = *deps;
    info->started_at = (int64_t)time(NULL);
}

static void json_time(struct strbuf *out, const char *key, int64_t t)
{
    char text[32] = "";
    struct tm tm;
    time_t tt = (time_t)t;
    if (gmtime_r(&tt, &tm) != NULL)
        strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    strbuf_printf(out, "\"%s\":", key);
    strbuf_json_string(out, text);
}

static void status_listeners(const struct config *cfg, struct strbuf *out)
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
        strbuf_printf(out, ",\"authentication\":%s}", l->users != NULL ? "true" : "false");
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

    strbuf_init(out, ADMIN_REPLY_MAX);
    strbuf_puts(out, "{\"version\":");
    strbuf_json_string(out, GEOPROXY_VERSION);
    strbuf_puts(out, ",");
    json_time(out, "started", info->started_at);
    strbuf_printf(out, ",\"uptime_s\":%lld,\"workers\":%u,\"active_connections\":%u,",
                  (long long)((int64_t)time(NULL) - info->started_at), d->n_workers,
                  atomic_load(&d->rt->active_conns));
    status_listeners(cfg, out);
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
    strbuf_puts(out, ",\"upstreams\":[],\"certificates\":[]}\n");
    policy_snapshot_release(snap);
}

void admin_render_status_text(const struct admin_status_info *info, struct strbuf *out)
{
    const struct admin_deps *d = &info->deps;
    const struct reloader *r = d->reloader;
    struct policy_snapshot *snap = runtime_acquire_snapshot(d->rt);
    const struct config *cfg = policy_snapshot_config(snap);
    const struct config_geoip *g = &cfg->geoip;
    int64_t up = (int64_t)time(NULL) - info->started_at;

    strbuf_init(out, ADMIN_REPLY_MAX);
    strbuf_printf(out, "geoproxy %s, up %lldd %02lld:%02lld:%02lld, %u worker(s)\n",
                  GEOPROXY_VERSION, (long long)(up / 86400), (long long)(up / 3600 % 24),
                  (long long)(up / 60 % 60), (long long)(up % 60), d->n_workers);
    strbuf_printf(out, "connections  %u open\n", atomic_load(&d->rt->active_conns));
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        char addr[64];
        const struct config_listener *l = &cfg->listeners[i];
        strbuf_printf(out, "listener     %s %s (%s)%s\n", l->name,
                      config_format_addr(&l->addr, addr, sizeof addr),
                      config_listener_kind_name(l->kind),
                      l->users != NULL ? ", with authentication" : "");
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
    policy_snapshot_release(snap);
}

void admin_render_metrics(const struct admin_status_info *info, struct metrics_exposition *x,
                          struct strbuf *out)
{
    const struct admin_deps *d = &info->deps;
    struct worker_metrics *all[256];
    size_t n = d->n_workers < 256 ? d->n_workers : 256;
    struct policy_snapshot *snap = runtime_acquire_snapshot(d->rt);
    const struct config *cfg = policy_snapshot_config(snap);

    for (size_t i = 0; i < n; i++)
        all[i] = &d->workers[i].metrics;
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
