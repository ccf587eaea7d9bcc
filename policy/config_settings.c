/* The directives that set one value each: workers, timeout, limit, resolver. */
#include "policy/config_parser.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "policy/config_value.h"

#define CONFIG_DNS_PORT 53
#define CONFIG_WORKERS_MAX 256

static const char *const timeout_names[] = {"handshake", "connect", "dns", "idle", "drain", NULL};
static const char *const limit_names[] = {"connections", "header-bytes", "dns-cache", NULL};
static const uint32_t limit_min[CONFIG_LIMIT_COUNT] = {1, 1024, 0};
static const uint32_t limit_max[CONFIG_LIMIT_COUNT] = {1000000, 1048576, 1000000};

void config_parse_workers(struct config_parser *p, const struct config_line *w)
{
    const struct config_token *t = &w->tokens[1];
    char shown[CONFIG_CLIP_SIZE];
    uint64_t n;
    enum config_number_result rc;

    if (w->count < 2) {
        config_parser_error(
            p, w->tokens[0].end_col,
            "missing value after 'workers' (expected auto or a number from 1 to %u)",
            CONFIG_WORKERS_MAX);
        return;
    }
    if (!config_expect_end(p, w, 2, "workers") ||
        !config_check_once(p, &p->workers_at, w->tokens[0].col, "'workers'")) {
        return;
    }
    if (config_word_is(t, "auto")) {
        n = 0;
    } else {
        rc = config_parse_number(t->text, t->len, &n);
        if (rc == CONFIG_NUMBER_INVALID) {
            config_parser_error(p, t->col, "expected 'auto' or a number for 'workers', got '%s'",
                                config_token_clip(t, shown));
            return;
        }
        if (rc == CONFIG_NUMBER_TOO_LARGE || n > CONFIG_WORKERS_MAX) {
            config_parser_error(p, t->col,
                                "'workers' must be 'auto' or a number from 1 to %u, got '%s'",
                                CONFIG_WORKERS_MAX, config_token_clip(t, shown));
            return;
        }
    }
    p->cfg->workers = (unsigned)n; /* 0 is "auto" */
    config_mark_set(p, &p->workers_at);
}

int config_parse_duration_word(struct config_parser *p, const struct config_token *t,
                               const char *what, uint32_t *ms)
{
    char shown[CONFIG_CLIP_SIZE];
    uint64_t value;
    enum config_number_result rc = config_parse_duration(t->text, t->len, &value);

    if (rc == CONFIG_NUMBER_INVALID) {
        config_parser_error(
            p, t->col, "invalid duration '%s' (expected a number with ms, s, m or h, e.g. 10s)",
            config_token_clip(t, shown));
        return -1;
    }
    if (rc == CONFIG_NUMBER_TOO_LARGE || value == 0 || value > CONFIG_DURATION_MAX_MS) {
        config_parser_error(p, t->col, "%s must be from 1ms to 24h, got '%s'", what,
                            config_token_clip(t, shown));
        return -1;
    }
    *ms = (uint32_t)value;
    return 0;
}

static uint32_t *timeout_slot(struct config_timeouts *t, enum config_timeout_kind kind)
{
    switch (kind) {
    case CONFIG_TIMEOUT_HANDSHAKE:
        return &t->handshake_ms;
    case CONFIG_TIMEOUT_CONNECT:
        return &t->connect_ms;
    case CONFIG_TIMEOUT_DNS:
        return &t->dns_ms;
    case CONFIG_TIMEOUT_IDLE:
        return &t->idle_ms;
    case CONFIG_TIMEOUT_DRAIN:
    case CONFIG_TIMEOUT_COUNT:
        break;
    }
    return &t->drain_ms;
}

void config_parse_timeout(struct config_parser *p, const struct config_line *w)
{
    char what[48];
    int kind;
    uint32_t ms;

    if (w->count < 2) {
        config_parser_error(
            p, w->tokens[0].end_col,
            "missing timeout name (expected handshake, connect, dns, idle or drain)");
        return;
    }
    kind = config_word_index(&w->tokens[1], timeout_names);
    if (kind < 0) {
        config_error_unknown_word(p, &w->tokens[1], "timeout", "", timeout_names,
                                  "expected handshake, connect, dns, idle or drain");
        return;
    }
    snprintf(what, sizeof what, "'timeout %s'", timeout_names[kind]);
    if (w->count < 3) {
        config_parser_error(p, w->tokens[1].end_col, "missing duration after %s (e.g. 10s)", what);
        return;
    }
    if (!config_expect_end(p, w, 3, "timeout") ||
        !config_check_once(p, &p->timeout_at[kind], w->tokens[0].col, what)) {
        return;
    }
    if (config_parse_duration_word(p, &w->tokens[2], what, &ms) != 0) {
        return;
    }
    *timeout_slot(&p->cfg->timeouts, (enum config_timeout_kind)kind) = ms;
    config_mark_set(p, &p->timeout_at[kind]);
}

static uint32_t *limit_slot(struct config_limits *l, enum config_limit_kind kind)
{
    switch (kind) {
    case CONFIG_LIMIT_CONNECTIONS:
        return &l->connections;
    case CONFIG_LIMIT_HEADER_BYTES:
        return &l->header_bytes;
    case CONFIG_LIMIT_DNS_CACHE:
    case CONFIG_LIMIT_COUNT:
        break;
    }
    return &l->dns_cache_entries;
}

void config_parse_limit(struct config_parser *p, const struct config_line *w)
{
    char shown[CONFIG_CLIP_SIZE];
    char what[48];
    int kind;
    uint64_t n;
    enum config_number_result rc;

    if (w->count < 2) {
        config_parser_error(p, w->tokens[0].end_col,
                            "missing limit name (expected connections, header-bytes or dns-cache)");
        return;
    }
    kind = config_word_index(&w->tokens[1], limit_names);
    if (kind < 0) {
        config_error_unknown_word(p, &w->tokens[1], "limit", "", limit_names,
                                  "expected connections, header-bytes or dns-cache");
        return;
    }
    snprintf(what, sizeof what, "'limit %s'", limit_names[kind]);
    if (w->count < 3) {
        config_parser_error(p, w->tokens[1].end_col, "missing number after %s", what);
        return;
    }
    if (!config_expect_end(p, w, 3, "limit") ||
        !config_check_once(p, &p->limit_at[kind], w->tokens[0].col, what)) {
        return;
    }
    rc = config_parse_number(w->tokens[2].text, w->tokens[2].len, &n);
    if (rc == CONFIG_NUMBER_INVALID) {
        config_parser_error(p, w->tokens[2].col, "expected a number for %s, got '%s'", what,
                            config_token_clip(&w->tokens[2], shown));
        return;
    }
    if (rc == CONFIG_NUMBER_TOO_LARGE || n < limit_min[kind] || n > limit_max[kind]) {
        config_parser_error(p, w->tokens[2].col, "%s must be a number from %u to %u, got '%s'",
                            what, (unsigned)limit_min[kind], (unsigned)limit_max[kind],
                            config_token_clip(&w->tokens[2], shown));
        return;
    }
    *limit_slot(&p->cfg->limits, (enum config_limit_kind)kind) = (uint32_t)n;
    config_mark_set(p, &p->limit_at[kind]);
}

void config_parse_resolver(struct config_parser *p, const struct config_line *w)
{
    struct sockaddr_storage found[CONFIG_MAX_RESOLVERS];
    struct config_value_error err;
    char shown[CONFIG_CLIP_SIZE];
    size_t n = 0;
    size_t i;
    size_t j;

    if (w->count < 2) {
        config_parser_error(
            p, w->tokens[0].end_col,
            "missing value after 'resolver' (expected system or ADDRESS[:PORT] ...)");
        return;
    }
    if (!config_check_once(p, &p->resolver_at, w->tokens[0].col, "'resolver'")) {
        return;
    }
    if (config_word_is(&w->tokens[1], "system") && w->count > 2) {
        config_parser_error(p, w->tokens[2].col,
                            "'system' cannot be combined with resolver addresses");
        return;
    }
    for (i = config_word_is(&w->tokens[1], "system") ? w->count : 1; i < w->count; i++) {
        const struct config_token *t = &w->tokens[i];

        if (config_word_is(t, "system")) {
            config_parser_error(p, t->col, "'system' cannot be combined with resolver addresses");
            return;
        }
        if (n == CONFIG_MAX_RESOLVERS) {
            config_parser_error(p, t->col, "too many resolvers (at most %u)",
                                (unsigned)CONFIG_MAX_RESOLVERS);
            return;
        }
        if (config_parse_address(t->text, t->len, CONFIG_DNS_PORT, &found[n], &err) != 0) {
            config_parser_error(p, config_word_col_at(t, err.offset), "%s", err.message);
            return;
        }
        for (j = 0; j < n; j++) {
            if (config_address_equal(&found[j], &found[n])) {
                config_parser_error(p, t->col, "duplicate resolver '%s'",
                                    config_token_clip(t, shown));
                return;
            }
        }
        n++;
    }
    memcpy(p->cfg->resolvers, found, n * sizeof found[0]);
    p->cfg->n_resolvers = n;
    config_mark_set(p, &p->resolver_at);
}
