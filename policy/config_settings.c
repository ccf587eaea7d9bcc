/* The directives that set one value each: workers, timeout, limit, resolver, user, group. */
#include "policy/config_parser.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "policy/config_value.h"

#define CONFIG_DNS_PORT 53
#define CONFIG_WORKERS_MAX 256

static const char *const timeout_names[] = {"handshake", "connect", "dns", "idle", "drain", NULL};
static const char *const limit_names[] = {
    "connections", "header-bytes", "dns-cache", "per-client-connections", "per-client-rate", NULL};
static const uint32_t limit_min[CONFIG_LIMIT_COUNT] = {1, 1024, 0, 0, 1};
static const uint32_t limit_max[CONFIG_LIMIT_COUNT] = {1000000, 1048576, 1000000, 1000000, 1000000};
#define LIMIT_EXPECTED                                                                             \
    "expected connections, header-bytes, dns-cache, per-client-connections or per-client-rate"

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
    case CONFIG_LIMIT_PER_CLIENT_CONNECTIONS:
        return &l->per_client_connections;
    case CONFIG_LIMIT_PER_CLIENT_RATE:
        return &l->per_client_rate;
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
        config_parser_error(p, w->tokens[0].end_col, "missing limit name (" LIMIT_EXPECTED ")");
        return;
    }
    kind = config_word_index(&w->tokens[1], limit_names);
    if (kind < 0) {
        config_error_unknown_word(p, &w->tokens[1], "limit", "", limit_names, LIMIT_EXPECTED);
        return;
    }
    bool is_rate = kind == CONFIG_LIMIT_PER_CLIENT_RATE;
    const char *unit = is_rate ? "/s" : "";
    snprintf(what, sizeof what, "'limit %s'", limit_names[kind]);
    if (w->count < 3) {
        config_parser_error(p, w->tokens[1].end_col, "missing %s after %s",
                            is_rate ? "rate (e.g. 20/s)" : "number", what);
        return;
    }
    if (!config_expect_end(p, w, 3, "limit") ||
        !config_check_once(p, &p->limit_at[kind], w->tokens[0].col, what)) {
        return;
    }
    const struct config_token *t = &w->tokens[2];
    size_t len = t->len;
    if (is_rate && config_word_is(t, "off")) {
        p->cfg->limits.per_client_rate = 0;
        config_mark_set(p, &p->limit_at[kind]);
        return;
    }
    if (is_rate && (len < 3 || memcmp(t->text + len - 2, "/s", 2) != 0)) {
        config_parser_error(p, t->col,
                            "expected a rate like 20/s (new connections per second) or 'off' "
                            "for %s, got '%s'",
                            what, config_token_clip(t, shown));
        return;
    }
    rc = config_parse_number(t->text, is_rate ? len - 2 : len, &n);
    if (rc == CONFIG_NUMBER_INVALID) {
        config_parser_error(p, t->col, "expected a number%s for %s, got '%s'",
                            is_rate ? " before '/s'" : "", what, config_token_clip(t, shown));
        return;
    }
    if (rc == CONFIG_NUMBER_TOO_LARGE || n < limit_min[kind] || n > limit_max[kind]) {
        config_parser_error(p, t->col, "%s must be %s from %u%s to %u%s, got '%s'", what,
                            is_rate ? "a rate" : "a number", (unsigned)limit_min[kind], unit,
                            (unsigned)limit_max[kind], unit, config_token_clip(t, shown));
        return;
    }
    *limit_slot(&p->cfg->limits, (enum config_limit_kind)kind) = (uint32_t)n;
    config_mark_set(p, &p->limit_at[kind]);
}

/* A portable account name (POSIX): letters, digits, '.', '_' and '-', not starting with '-'. */
static bool account_name_is_valid(const struct config_token *t)
{
    if (t->len == 0 || t->len > CONFIG_ACCOUNT_NAME_MAX || t->text[0] == '-')
        return false;
    for (size_t i = 0; i < t->len; i++) {
        char ch = t->text[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* "user NAME" and "group NAME": checked for form here; whether the account exists is the
 * business of `run`, on the machine it runs on. */
static void parse_account(struct config_parser *p, const struct config_line *w, const char *what,
                          struct config_origin *at, char out[CONFIG_ACCOUNT_NAME_MAX + 1])
{
    char shown[CONFIG_CLIP_SIZE];
    char quoted[16];

    snprintf(quoted, sizeof quoted, "'%s'", what);
    if (w->count < 2) {
        config_parser_error(p, w->tokens[0].end_col, "missing %s name after '%s'", what, what);
        return;
    }
    if (!config_expect_end(p, w, 2, what) || !config_check_once(p, at, w->tokens[0].col, quoted)) {
        return;
    }
    const struct config_token *t = &w->tokens[1];
    if (!account_name_is_valid(t)) {
        config_parser_error(p, t->col,
                            "invalid %s name '%s' (1 to %u letters, digits, '.', '_' or '-', "
                            "not starting with '-')",
                            what, config_token_clip(t, shown), (unsigned)CONFIG_ACCOUNT_NAME_MAX);
        return;
    }
    memcpy(out, t->text, t->len);
    out[t->len] = '\0';
    config_mark_set(p, at);
}

void config_parse_user(struct config_parser *p, const struct config_line *w)
{
    parse_account(p, w, "user", &p->user_at, p->cfg->run_user);
}

void config_parse_group(struct config_parser *p, const struct config_line *w)
{
    parse_account(p, w, "group", &p->group_at, p->cfg->run_group);
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
