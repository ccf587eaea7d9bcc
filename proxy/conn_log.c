#include "proxy/conn_log.h"

#include "proxy/conn.h"
#include "proxy/log.h"
#include "proxy/worker.h"

#define CONN_LOG_FIELDS_MAX 16

/* A connection that closed before any decision is logged at the default level, meta. */
static enum log_level conn_log_level(const struct conn *c)
{
    return c->verdict.rule != NULL ? c->verdict.log : LOG_LEVEL_META;
}

struct conn_fields {
    struct log_field items[CONN_LOG_FIELDS_MAX];
    size_t n;
    char client[64];
    char target[TARGET_HOST_MAX + 16];
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
}

static void fields_add_identities(struct conn_fields *f, const struct conn *c)
{
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

void conn_log_decision(const struct conn *c)
{
    if (conn_log_level(c) == LOG_LEVEL_NONE)
        return;
    struct conn_fields f = {.n = 0};
    fields_add_common(&f, c);
    if (c->verdict.action == VERDICT_BLOCK && c->verdict.reason != NULL)
        fields_add(&f, LOG_FIELD_STR("reason", c->verdict.reason));
    fields_add_identities(&f, c);
    log_event(LOG_INFO, "decision", f.items, f.n);
}

void conn_log_close(const struct conn *c)
{
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
    fields_add_identities(&f, c);
    log_event(LOG_INFO, "close", f.items, f.n);
}
