/* expect from FROM to HOST:PORT [user U] [listener L] -> RULE
 * A test of the policy inside the policy: checked at every load and reload, after the rules are
 * compiled; a failed expectation refuses the configuration like a syntax error. */
#include "policy/config_parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/config_diag.h"
#include "policy/config_value.h"
#include "policy/policy.h"

/* Splits "host:port", "[v6]:port" or "CC:port" into host (cap bytes) and port. */
static int expect_split_target(const struct config_token *t, char *host, size_t cap, uint16_t *port,
                               unsigned *bad_offset)
{
    const char *text = t->text;
    size_t len = t->len, host_start = 0, host_end;
    const char *colon;

    if (len > 0 && text[0] == '[') {
        const char *close = memchr(text, ']', len);
        if (close == NULL || (size_t)(close - text) + 1 >= len || close[1] != ':') {
            *bad_offset = 0;
            return -1;
        }
        host_start = 1;
        host_end = (size_t)(close - text);
        colon = close + 1;
    } else {
        colon = memrchr(text, ':', len);
        if (colon == NULL || memchr(text, ':', (size_t)(colon - text)) != NULL) {
            *bad_offset = 0;
            return -1;
        }
        host_end = (size_t)(colon - text);
    }
    uint64_t n;
    size_t port_off = (size_t)(colon - text) + 1;
    if (host_end == host_start || host_end - host_start >= cap ||
        config_parse_number(text + port_off, len - port_off, &n) != CONFIG_NUMBER_OK || n == 0 ||
        n > 65535) {
        *bad_offset = host_end == host_start ? 0 : (unsigned)port_off;
        return -1;
    }
    memcpy(host, text + host_start, host_end - host_start);
    host[host_end - host_start] = '\0';
    *port = (uint16_t)n;
    return 0;
}

void config_parse_expect(struct config_parser *p, const struct config_line *w)
{
    struct config *cfg = p->cfg;
    struct config_expect e;
    char host[256];
    unsigned bad = 0;
    size_t i = 1;

    memset(&e, 0, sizeof e);
    if (w->count < 7 || !config_word_is(&w->tokens[1], "from") ||
        !config_word_is(&w->tokens[3], "to")) {
        config_parser_error(p, w->tokens[0].col,
                            "expected 'expect from ADDRESS-or-COUNTRY to HOST:PORT [user U] "
                            "[listener L] -> RULE'");
        return;
    }
    if (expect_split_target(&w->tokens[4], host, sizeof host, &e.port, &bad) != 0) {
        config_parser_error(p, config_word_col_at(&w->tokens[4], bad),
                            "expected HOST:PORT after 'to' (a port from 1 to 65535; an IPv6 "
                            "address in brackets)");
        return;
    }
    const struct config_token *user = NULL, *listener = NULL;
    for (i = 5; i + 1 < w->count && !config_word_is(&w->tokens[i], "->"); i += 2) {
        if (config_word_is(&w->tokens[i], "user") && user == NULL)
            user = &w->tokens[i + 1];
        else if (config_word_is(&w->tokens[i], "listener") && listener == NULL)
            listener = &w->tokens[i + 1];
        else {
            config_parser_error(p, w->tokens[i].col,
                                "expected 'user', 'listener' or '->' in an expect line");
            return;
        }
    }
    if (i + 2 != w->count || !config_word_is(&w->tokens[i], "->")) {
        config_parser_error(p, i < w->count ? w->tokens[i].col : w->tokens[w->count - 1].end_col,
                            "expected '-> RULE' at the end of the expect line");
        return;
    }
    const struct config_token *rule = &w->tokens[i + 1];
    if (rule->len >= CONFIG_NAME_MAX) {
        config_parser_error(p, rule->col, "rule name too long");
        return;
    }
    if (cfg->n_expects == CONFIG_EXPECTS_MAX) {
        config_parser_error(p, w->tokens[0].col, "too many expect lines (at most %u)",
                            CONFIG_EXPECTS_MAX);
        return;
    }
    struct config_expect *grown = realloc(cfg->expects, (cfg->n_expects + 1) * sizeof *grown);
    if (grown == NULL) {
        config_parser_out_of_memory(p, w->tokens[0].col);
        return;
    }
    cfg->expects = grown;
    memcpy(e.rule, rule->text, rule->len + 1);
    e.from = strdup(w->tokens[2].text);
    e.to_host = strdup(host);
    e.user = user != NULL ? strdup(user->text) : NULL;
    e.listener = listener != NULL ? strdup(listener->text) : NULL;
    e.file = strdup(config_parser_file(p));
    e.line = p->line;
    if (e.from == NULL || e.to_host == NULL || e.file == NULL || (user != NULL && !e.user) ||
        (listener != NULL && !e.listener)) {
        free(e.from);
        free(e.to_host);
        free(e.user);
        free(e.listener);
        free(e.file);
        config_parser_out_of_memory(p, w->tokens[0].col);
        return;
    }
    cfg->expects[cfg->n_expects++] = e;
}

void config_check_expectations(struct config_parser *p)
{
    const struct config *cfg = p->cfg;
    for (size_t i = 0; i < cfg->n_expects; i++) {
        const struct config_expect *e = &cfg->expects[i];
        struct policy_probe probe;
        struct policy_verdict v;
        char err[256];

        if (policy_probe_init(&probe, cfg, e->from, e->to_host, e->port, e->user, e->listener, err,
                              sizeof err) != 0) {
            config_diag_add(p->diags, CONFIG_ERROR, e->file, e->line, 1, "expect: %s", err);
            continue;
        }
        if (policy_decide_config(cfg, &probe.req, &v) == POLICY_NEED_ADDRESS) {
            config_diag_add(p->diags, CONFIG_ERROR, e->file, e->line, 1,
                            "expectation cannot be checked: a rule needs the address of '%s', "
                            "and expect lines never use DNS (write an address or a country "
                            "code instead)",
                            e->to_host);
            continue;
        }
        if (strcmp(v.rule, e->rule) == 0)
            continue;
        if (v.file != NULL)
            config_diag_add(p->diags, CONFIG_ERROR, e->file, e->line, 1,
                            "expectation failed: from %s to %s:%u is decided by rule '%s' "
                            "(%s:%u, %s), not '%s'",
                            e->from, e->to_host, e->port, v.rule, v.file, v.line,
                            policy_action_name(v.action), e->rule);
        else
            config_diag_add(p->diags, CONFIG_ERROR, e->file, e->line, 1,
                            "expectation failed: from %s to %s:%u matches no rule (blocked), "
                            "not '%s'",
                            e->from, e->to_host, e->port, e->rule);
    }
}
