#include "proxy/conn_log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "geo/region.h"

#include "proxy/conn.h"
#include "proxy/events.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/pseudonym.h"
#include "proxy/runtime.h"
#include "proxy/worker.h"

#define CONN_LOG_FIELDS_MAX 24
#define CONN_LOG_REGIONS_MAX 8 /* region names shown per end */

/* A connection that closed before any decision is logged at the default level, meta. */
static enum log_level conn_log_level(const struct conn *c)
{
    return c->verdict.rule != NULL ? c->verdict.log : LOG_LEVEL_META;
}

struct conn_fields {
    struct log_field items[CONN_LOG_FIELDS_MAX];
    size_t n;
    char client[64];
    char client_id[PSEUDONYM_LEN + 1];
    char target[TARGET_HOST_MAX + 16];
    char regions[2][CONN_LOG_REGIONS_MAX * (REGION_NAME_MAX + 1)];
};

static void fields_add(struct conn_fields *f, struct log_field field)
{
    if (f->n < CONN_LOG_FIELDS_MAX)
        f->items[f->n++] = field;
}

static void fields_add_common(struct conn_fields *f, const struct conn *c)
{
    fields_add(f, LOG_FIELD_NUM("conn", c->id));
    fields_add(f, LOG_FIELD_STR("listener", c->listener != NULL ? c->listener->name : NULL));
    fields_add(f, LOG_FIELD_STR("proto", c->proto != NULL ? c->proto->name : NULL));
    if (c->verdict.rule != NULL) {
        fields_add(f, LOG_FIELD_STR("action", policy_action_name(c->verdict.action)));
        fields_add(f, LOG_FIELD_STR("rule", c->verdict.rule));
    }
    if (c->verdict.action == VERDICT_TUNNEL && c->verdict.via != NULL)
        fields_add(f, LOG_FIELD_STR("via", c->via != NULL ? c->via->name : c->verdict.via->name));
    if (c->via_tls != NULL)
        fields_add(f, LOG_FIELD_STR("via_tls", c->via_tls));
}

/* "DE", "local" or "unknown", and the regions of a country as "EU,EEA" (omitted when none). */
static void fields_add_geo(struct conn_fields *f, const struct conn *c, const char *key,
                           const char *regions_key, const struct geo_result *geo, char *regions,
                           size_t regions_len)
{
    if (geo->cls != GEO_CLASS_COUNTRY) {
        fields_add(f, LOG_FIELD_STR(key, geo_class_name(geo->cls)));
        return;
    }
    fields_add(f, LOG_FIELD_STR(key, geo->country));
    const char *names[CONN_LOG_REGIONS_MAX];
    size_t n = policy_regions_of(c->snap, geo->country, names, CONN_LOG_REGIONS_MAX);
    if (n == 0)
        return;
    size_t used = 0;
    for (size_t i = 0; i < n && i < CONN_LOG_REGIONS_MAX; i++) {
        int w = snprintf(regions + used, regions_len - used, "%s%s", i == 0 ? "" : ",", names[i]);
        if (w < 0 || (size_t)w >= regions_len - used)
            break;
        used += (size_t)w;
    }
    fields_add(f, LOG_FIELD_STR(regions_key, regions));
}

/* Where both ends are, at every level but none: the jurisdictions are what the policy is about. */
static void fields_add_jurisdictions(struct conn_fields *f, const struct conn *c)
{
    if (c->client_classified)
        fields_add_geo(f, c, "from", "from_regions", &c->client_geo, f->regions[0],
                       sizeof f->regions[0]);
    if (c->dest_classified)
        fields_add_geo(f, c, "to", "to_regions", &c->dest_geo, f->regions[1], sizeof f->regions[1]);
}

/* The client's pseudonym for today (one HMAC). */
static void conn_client_id_of(const struct conn *c, char out[PSEUDONYM_LEN + 1])
{
    pseudonym_of(&c->worker->rt->pseudonym_key, (const struct sockaddr *)&c->client_addr,
                 (uint64_t)time(NULL) / 86400u, out);
}

/* At meta the client is a pseudonym; at full its address (fields_add_identities). */
static void fields_add_identities(struct conn_fields *f, const struct conn *c)
{
    if (conn_log_level(c) == LOG_LEVEL_META && c->client_classified) {
        if (c->client_id[0] != '\0')
            memcpy(f->client_id, c->client_id, sizeof f->client_id);
        else
            conn_client_id_of(c, f->client_id);
        fields_add(f, LOG_FIELD_STR("client_id", f->client_id));
    }
    if (conn_log_level(c) != LOG_LEVEL_FULL)
        return;
    fields_add(f, LOG_FIELD_STR("client",
                                config_format_addr(&c->client_addr, f->client, sizeof(f->client))));
    if (c->user[0] != '\0')
        fields_add(f, LOG_FIELD_STR("user", c->user));
    if (c->target.port != 0)
        fields_add(
            f, LOG_FIELD_STR("target", target_format(&c->target, f->target, sizeof(f->target))));
}

/* Keeps the pseudonym worked out for one event for the connection's next ones (one HMAC per
 * connection). */
static void conn_remember_client_id(struct conn *c, const struct conn_fields *f)
{
    if (c->client_id[0] == '\0' && f->client_id[0] != '\0')
        memcpy(c->client_id, f->client_id, sizeof c->client_id);
}

/* Writes an event to the log and to the live event stream. */
static void conn_emit(const struct conn *c, const char *event, const struct conn_fields *f)
{
    log_event(LOG_INFO, event, f->items, f->n);
    events_publish(&c->worker->rt->events, event, f->items, f->n);
}

void conn_log_decision(struct conn *c)
{
    metrics_count_decision(&c->worker->metrics, &c->verdict, &c->client_geo,
                           c->dest_classified ? &c->dest_geo : NULL);
    if (conn_log_level(c) == LOG_LEVEL_NONE)
        return;
    struct conn_fields f = {.n = 0};
    fields_add_common(&f, c);
    if (c->verdict.action == VERDICT_BLOCK && c->verdict.reason != NULL)
        fields_add(&f, LOG_FIELD_STR("reason", c->verdict.reason));
    fields_add_jurisdictions(&f, c);
    fields_add_identities(&f, c);
    conn_remember_client_id(c, &f);
    conn_emit(c, "decision", &f);
}

void conn_log_close(struct conn *c)
{
    metrics_count_close(&c->worker->metrics, c->verdict.rule != NULL, c->verdict.action,
                        c->bytes_up, c->bytes_down,
                        c->end_reason != NULL ? c->end_reason : "closed");
    if (conn_log_level(c) == LOG_LEVEL_NONE)
        return;
    struct conn_fields f = {.n = 0};
    fields_add_common(&f, c);
    if (c->verdict.rule != NULL)
        fields_add(&f, LOG_FIELD_STR("outcome", outbound_status_name(c->outbound)));
    fields_add(&f, LOG_FIELD_STR("end", c->end_reason != NULL ? c->end_reason : "closed"));
    fields_add(&f, LOG_FIELD_NUM("bytes_up", c->bytes_up));
    fields_add(&f, LOG_FIELD_NUM("bytes_down", c->bytes_down));
    fields_add(&f, LOG_FIELD_NUM("duration_ms", uv_now(&c->worker->loop) - c->accepted_ms));
    fields_add_jurisdictions(&f, c);
    fields_add_identities(&f, c);
    conn_remember_client_id(c, &f);
    conn_emit(c, "close", &f);
}

static const char *conn_phase_name(enum conn_phase phase)
{
    switch (phase) {
    case CONN_PHASE_HANDSHAKE:
        return "handshake";
    case CONN_PHASE_CONNECTING:
        return "connecting";
    case CONN_PHASE_RELAY:
        return "relay";
    case CONN_PHASE_FORWARD:
        return "forward";
    case CONN_PHASE_MUX:
        return "mux";
    case CONN_PHASE_CLOSING:
        return "closing";
    }
    return "?";
}

size_t conn_log_describe(const struct conn *c, const struct policy_verdict *candidate, char *out,
                         size_t cap)
{
    struct conn_fields f = {.n = 0};
    fields_add_common(&f, c);
    fields_add(&f, LOG_FIELD_STR("phase", conn_phase_name(c->phase)));
    fields_add(&f, LOG_FIELD_NUM("bytes_up", c->bytes_up));
    fields_add(&f, LOG_FIELD_NUM("bytes_down", c->bytes_down));
    fields_add(&f, LOG_FIELD_NUM("age_ms", uv_now(&c->worker->loop) - c->accepted_ms));
    if (candidate != NULL) {
        fields_add(&f, LOG_FIELD_STR("new_action", policy_action_name(candidate->action)));
        fields_add(&f, LOG_FIELD_STR("new_rule", candidate->rule));
    }
    if (conn_log_level(c) != LOG_LEVEL_NONE) {
        fields_add_jurisdictions(&f, c);
        fields_add_identities(&f, c);
    }
    return log_event_format(out, cap, LOG_FORMAT_JSON, LOG_INFO, "connection", f.items, f.n);
}

const char *conn_log_client_id(struct conn *c)
{
    if (c->client_id[0] == '\0')
        conn_client_id_of(c, c->client_id);
    return c->client_id;
}
