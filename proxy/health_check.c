#include "proxy/health_check.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "policy/policy.h"
#include "proxy/http_control_parse.h"
#include "proxy/log.h"
#include "proxy/resolver.h"
#include "proxy/runtime.h"
#include "proxy/upstream.h"
#include "proxy/upstream_health.h"

static void health_round(uv_timer_t *t);

static void health_schedule(struct health_checker *hc, uint64_t delay_ms)
{
    if (hc->running)
        uv_timer_start(&hc->tick, health_round, delay_ms, 0);
}

/* Whether the egress an exit reported satisfies what it declares; the reason when not. */
static bool health_egress_ok(struct health_checker *hc, const struct config_upstream *u,
                             const char *egress, char *why, size_t why_len)
{
    if (u->egress[0] == '\0')
        return true;
    struct sockaddr_storage addr;
    if (egress == NULL || http_control_parse_egress(egress, strlen(egress), &addr) != 0 ||
        addr.ss_family == AF_UNSPEC) {
        snprintf(why, why_len, "its egress is unknown, and it must be in %s", u->egress);
        return false;
    }
    if (policy_egress_matches(hc->snap, u, (const struct sockaddr *)&addr))
        return true;
    struct geo_result where;
    policy_classify(hc->snap, (const struct sockaddr *)&addr, &where);
    snprintf(why, why_len, "it reports egress %s (%s), outside its declared egress %s", egress,
             where.cls == GEO_CLASS_COUNTRY ? where.country : geo_class_name(where.cls), u->egress);
    return false;
}

static void health_round_done(struct health_checker *hc)
{
    const struct config *cfg = policy_snapshot_config(hc->snap);
    uint32_t interval = cfg->health.interval_ms;
    policy_snapshot_release(hc->snap);
    hc->snap = NULL;
    health_schedule(hc, interval);
}

static void on_probe_done(void *arg, const struct upstream_result *r)
{
    struct health_probe *probe = arg;
    struct health_checker *hc = probe->hc;
    const struct config_upstream *u = probe->u;
    char why[UPSTREAM_HEALTH_TEXT_MAX];
    probe->req = NULL;

    bool up = r->status == OUTBOUND_OK;
    if (up)
        up = health_egress_ok(hc, u, r->egress, why, sizeof(why));
    else
        snprintf(why, sizeof(why), "%s",
                 r->detail[0] != '\0' ? r->detail : outbound_status_name(r->status));
    if (upstream_health_report(&hc->rt->health, u, up, why, r->egress, r->latency_us)) {
        if (up)
            log_msg(LOG_INFO, "upstream %s is up%s%s", u->name,
                    r->egress != NULL ? ", egress " : "", r->egress != NULL ? r->egress : "");
        else
            log_msg(LOG_WARN, "upstream %s is down: %s", u->name, why);
    }
    if (--hc->in_flight == 0)
        health_round_done(hc);
}

static void health_round(uv_timer_t *t)
{
    struct health_checker *hc = t->data;
    if (hc->in_flight > 0)
        return; /* kicked during a round: the round's end schedules the next */
    hc->snap = runtime_acquire_snapshot(hc->rt);
    const struct config *cfg = policy_snapshot_config(hc->snap);
    hc->in_flight = 1; /* held while starting, so no probe ends the round early */
    for (size_t i = 0; i < cfg->n_upstreams && i < CONFIG_MAX_UPSTREAMS; i++) {
        const struct config_upstream *u = &cfg->upstreams[i];
        if (u->kind == UPSTREAM_GROUP)
            continue;
        struct health_probe *probe = &hc->probes[i];
        *probe = (struct health_probe){.hc = hc, .u = u};
        struct upstream_params p = {
            .loop = hc->loop,
            .resolver = hc->resolver,
            .sessions = &hc->sessions,
            .metrics = &hc->rt->health.probe_metrics,
            .cfg = cfg,
            .via = u,
            .ask = UPSTREAM_ASK_EGRESS,
            .timeout_ms = cfg->health.timeout_ms,
        };
        probe->req = upstream_request(&p, on_probe_done, probe);
        if (probe->req != NULL)
            hc->in_flight++;
    }
    if (--hc->in_flight == 0)
        health_round_done(hc);
}

int health_checker_start(struct health_checker *hc, uv_loop_t *loop, struct runtime *rt,
                         const struct config *cfg)
{
    memset(hc, 0, sizeof(*hc));
    hc->loop = loop;
    hc->rt = rt;
    struct resolver_options ropts = {
        .servers = cfg->resolvers,
        .n_servers = cfg->n_resolvers,
        .timeout_ms = cfg->timeouts.dns_ms,
        .cache_entries = 64,
    };
    int err = resolver_new(loop, &ropts, &hc->resolver);
    if (err != 0)
        return err;
    uv_timer_init(loop, &hc->tick);
    hc->tick.data = hc;
    hc->running = true;
    health_schedule(hc, 0);
    return 0;
}

void health_checker_kick(struct health_checker *hc)
{
    if (hc->in_flight == 0)
        health_schedule(hc, 0);
}

void health_checker_close(struct health_checker *hc)
{
    if (!hc->running)
        return;
    hc->running = false;
    for (size_t i = 0; i < CONFIG_MAX_UPSTREAMS; i++) {
        if (hc->probes[i].req != NULL) {
            upstream_cancel(hc->probes[i].req);
            hc->probes[i].req = NULL;
        }
    }
    if (hc->snap != NULL) {
        policy_snapshot_release(hc->snap);
        hc->snap = NULL;
    }
    hc->in_flight = 0;
    uv_close((uv_handle_t *)&hc->tick, NULL);
    resolver_free(hc->resolver);
    hc->resolver = NULL;
    tls_session_cache_clear(&hc->sessions);
}
