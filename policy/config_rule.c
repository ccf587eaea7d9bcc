/* The rule directive:
 *   rule NAME pass|block [reason "TEXT"] [from V...] [to V...] [user N...] [listener N...]
 *        [no-resolve] [resolve via UPSTREAM] [log LEVEL]
 *   rule NAME tunnel via UPSTREAM-or-GROUP [the same options but reason]
 * Options come in any order, each at most once; a matcher's values run until the next option
 * word. The values themselves are parsed in config_rule_match.c. */
#include "policy/config_parser.h"

#include <stdlib.h>
#include <string.h>

#include "policy/config_diag.h"
#include "policy/config_value.h"
#include "policy/rule_match.h"

#define CONFIG_RULES_MAX 50000
#define CONFIG_MATCH_VALUES_MAX 250000 /* values in all matchers of a configuration */
#define CONFIG_REASON_MAX 256
#define OPTIONS_EXPECTED "expected from, to, user, listener, no-resolve, resolve, reason or log"

static const char *const log_names[] = {"none", "meta", "full", NULL};
static const char *const rule_actions[] = {"pass", "block", "tunnel", NULL};

/* The option words; the first four are the matchers, in enum config_matcher order. */
enum rule_option {
    OPT_FROM,
    OPT_TO,
    OPT_USER,
    OPT_LISTENER,
    OPT_NO_RESOLVE,
    OPT_RESOLVE,
    OPT_REASON,
    OPT_LOG
};
#define N_OPTIONS 8
static const char *const rule_option_names[] = {
    "from", "to", "user", "listener", "no-resolve", "resolve", "reason", "log", NULL};

/* Where each option of a rule line is: its word, and its values (first, count). */
struct rule_words {
    const struct config_token *opt[N_OPTIONS];
    size_t first[N_OPTIONS];
    size_t count[N_OPTIONS];
};

static bool is_option(const struct config_token *t)
{
    return config_word_index(t, rule_option_names) >= 0;
}

/* "via NAME" after word 'at' ("tunnel" or "resolve"): the index of NAME, or 0 after reporting. */
static size_t rule_find_via(struct config_parser *p, const struct config_line *w, size_t at)
{
    const struct config_token *t = &w->tokens[at];

    if (at + 1 >= w->count || !config_word_is(&w->tokens[at + 1], "via")) {
        config_parser_error(p, at + 1 >= w->count ? t->end_col : w->tokens[at + 1].col,
                            "expected 'via UPSTREAM' after '%s'", t->text);
        return 0;
    }
    if (at + 2 >= w->count) {
        config_parser_error(p, w->tokens[at + 1].end_col, "missing upstream name after 'via'");
        return 0;
    }
    return at + 2;
}

/* The options from word i on. */
static int rule_split_options(struct config_parser *p, const struct config_line *w, size_t i,
                              struct rule_words *o)
{
    static const char *const context = " for 'rule'";

    memset(o, 0, sizeof *o);
    while (i < w->count) {
        const struct config_token *t = &w->tokens[i];
        int k = config_word_index(t, rule_option_names);
        size_t j = i + 1;

        if (k < 0) {
            config_error_unknown_word(p, t, "option", context, rule_option_names, OPTIONS_EXPECTED);
            return -1;
        }
        if (o->opt[k] != NULL) {
            config_parser_error(p, t->col, "option '%s' given twice", t->text);
            return -1;
        }
        o->opt[k] = t;
        if (k == OPT_NO_RESOLVE) {
            i++;
            continue;
        }
        if (k == OPT_RESOLVE) {
            size_t name = rule_find_via(p, w, i);

            if (name == 0)
                return -1;
            o->first[k] = name;
            o->count[k] = 1;
            i = name + 1;
            continue;
        }
        if (k == OPT_REASON || k == OPT_LOG) {
            j = i + 1 < w->count ? i + 2 : i + 1; /* exactly one value, whatever it is */
        } else {
            while (j < w->count && !is_option(&w->tokens[j]))
                j++;
        }
        if (j == i + 1) {
            config_parser_error(p, t->end_col, "missing value after '%s'", t->text);
            return -1;
        }
        o->first[k] = i + 1;
        o->count[k] = j - i - 1;
        i = j;
    }
    return 0;
}

/* "resolve via NAME": a tls upstream, whose exit resolves the destination's name. */
static int rule_check_resolve_via(struct config_parser *p, const struct config_line *w,
                                  const struct rule_words *o, struct config_rule *r)
{
    static const char *const kinds[] = {"a tls upstream", "a socks5 upstream", "an http upstream",
                                        "a group"};
    const struct config_token *t;
    const struct config_upstream *u;

    if (o->opt[OPT_RESOLVE] == NULL)
        return 0;
    if (o->opt[OPT_NO_RESOLVE] != NULL) {
        config_parser_error(p, o->opt[OPT_RESOLVE]->col,
                            "'resolve via' and 'no-resolve' cannot be combined");
        return -1;
    }
    t = &w->tokens[o->first[OPT_RESOLVE]];
    u = config_upstream_lookup(p, t);
    if (u == NULL)
        return -1;
    if (u->kind != UPSTREAM_TLS) {
        config_parser_error(p, t->col, "resolve via needs a tls upstream ('%s' is %s)", u->name,
                            kinds[u->kind]);
        return -1;
    }
    r->resolve_via = u;
    return 0;
}

static int rule_check_options(struct config_parser *p, const struct config_line *w,
                              enum rule_action action, const struct rule_words *o,
                              enum log_level *log)
{
    const struct config_token *reason = o->opt[OPT_REASON] ? &w->tokens[o->first[OPT_REASON]] : 0;
    int level;

    *log = LOG_LEVEL_META;
    if (o->opt[OPT_LOG] != NULL) {
        const struct config_token *t = &w->tokens[o->first[OPT_LOG]];

        level = config_word_index(t, log_names);
        if (level < 0) {
            config_error_unknown_word(p, t, "log level", "", log_names,
                                      "expected none, meta or full");
            return -1;
        }
        *log = (enum log_level)level;
    }
    if (reason != NULL) {
        if (action != RULE_BLOCK) {
            config_parser_error(p, o->opt[OPT_REASON]->col,
                                "'reason' is only allowed on block rules");
            return -1;
        }
        if (reason->len == 0) {
            config_parser_error(p, reason->col, "empty reason");
            return -1;
        }
        if (reason->len > CONFIG_REASON_MAX) {
            config_parser_error(p, reason->col, "reason is longer than %u bytes",
                                (unsigned)CONFIG_REASON_MAX);
            return -1;
        }
    }
    return 0;
}

/* Parses the matchers into a new rule_match in *out (NULL when the rule has none). */
static int rule_parse_matchers(struct config_parser *p, const struct config_line *w,
                               const struct rule_words *o, struct rule_match **out)
{
    struct rule_match *m = NULL;
    size_t values = 0;

    *out = NULL;
    for (int k = OPT_FROM; k <= OPT_LISTENER; k++)
        values += o->count[k];
    if (values == 0)
        return 0;
    if (p->match_values + values > CONFIG_MATCH_VALUES_MAX) {
        config_parser_error(p, w->tokens[0].col,
                            "too many matcher values in the configuration (at most %u)",
                            (unsigned)CONFIG_MATCH_VALUES_MAX);
        return -1;
    }
    m = rule_match_new();
    if (m == NULL) {
        config_parser_out_of_memory(p, w->tokens[0].col);
        return -1;
    }
    for (int k = OPT_FROM; k <= OPT_LISTENER; k++) {
        if (o->opt[k] != NULL &&
            config_rule_match_parse(p, (enum config_matcher)k, &w->tokens[o->first[k]], o->count[k],
                                    m) != 0) {
            rule_match_free(m);
            return -1;
        }
    }
    p->match_values += values;
    *out = m;
    return 0;
}

static int rule_check_name(struct config_parser *p, const struct config_token *name)
{
    const struct config *cfg = p->cfg;
    const struct key_entry *e;
    char shown[CONFIG_CLIP_SIZE];

    if (!config_name_is_valid(name->text, name->len)) {
        config_parser_error(p, name->col, "invalid rule name '%s' (" CONFIG_NAME_RULES ")",
                            config_token_clip(name, shown));
        return -1;
    }
    e = key_map_find(&p->rule_names, name->text, name->len, 0);
    if (e != NULL) {
        const struct config_rule *first = &cfg->rules[e->number];

        config_parser_error(p, name->col, "duplicate rule name '%s' (first defined at %s:%u)",
                            name->text, first->file, first->line);
        return -1;
    }
    return 0;
}

static int rule_append(struct config_parser *p, const struct config_line *w, struct config_rule *r)
{
    struct config *cfg = p->cfg;
    struct key_entry *e;

    if (cfg->n_rules == CONFIG_RULES_MAX) {
        config_parser_error(p, w->tokens[0].col, "too many rules (at most %u)",
                            (unsigned)CONFIG_RULES_MAX);
        return -1;
    }
    if (cfg->n_rules == p->rules_cap) {
        size_t cap = p->rules_cap == 0 ? 8 : p->rules_cap * 2;
        struct config_rule *grown = realloc(cfg->rules, cap * sizeof *grown);

        if (grown == NULL) {
            config_parser_out_of_memory(p, w->tokens[0].col);
            return -1;
        }
        cfg->rules = grown;
        p->rules_cap = cap;
    }
    e = key_map_get(&p->rule_names, r->name, strlen(r->name), 0);
    if (e == NULL) {
        config_parser_out_of_memory(p, w->tokens[0].col);
        return -1;
    }
    e->number = (uint32_t)cfg->n_rules;
    cfg->rules[cfg->n_rules++] = *r;
    return 0;
}

void config_parse_rule(struct config_parser *p, const struct config_line *w)
{
    struct config_rule r;
    struct rule_words o;
    size_t via = 2; /* the word before the options */
    int action;

    memset(&r, 0, sizeof r);
    if (w->count < 2) {
        config_parser_error(p, w->tokens[0].end_col, "missing rule name");
        return;
    }
    if (rule_check_name(p, &w->tokens[1]) != 0) {
        return;
    }
    if (w->count < 3) {
        config_parser_error(p, w->tokens[1].end_col,
                            "missing action after the rule name "
                            "(expected pass, block or tunnel)");
        return;
    }
    action = config_word_index(&w->tokens[2], rule_actions);
    if (action < 0) {
        config_error_unknown_word(p, &w->tokens[2], "action", "", rule_actions,
                                  "expected pass, block or tunnel");
        return;
    }
    r.action = action == 0 ? RULE_PASS : action == 1 ? RULE_BLOCK : RULE_TUNNEL;
    if (r.action == RULE_TUNNEL) {
        via = rule_find_via(p, w, 2);
        if (via == 0 || (r.via = config_upstream_lookup(p, &w->tokens[via])) == NULL)
            return;
    }
    memcpy(r.name, w->tokens[1].text, w->tokens[1].len + 1);
    if (rule_split_options(p, w, via + 1, &o) != 0 ||
        rule_check_options(p, w, r.action, &o, &r.log) != 0 ||
        rule_check_resolve_via(p, w, &o, &r) != 0 || rule_parse_matchers(p, w, &o, &r.match) != 0) {
        return;
    }
    r.no_resolve = o.opt[OPT_NO_RESOLVE] != NULL;
    r.file = strdup(config_parser_file(p));
    r.reason = o.opt[OPT_REASON] != NULL ? strdup(w->tokens[o.first[OPT_REASON]].text) : NULL;
    r.line = p->line;
    if (r.file == NULL || (o.opt[OPT_REASON] != NULL && r.reason == NULL)) {
        config_parser_out_of_memory(p, w->tokens[0].col);
        goto fail;
    }
    if (r.no_resolve && !rule_match_needs_address(r.match)) {
        config_diag_add(p->diags, CONFIG_WARNING, r.file, r.line, o.opt[OPT_NO_RESOLVE]->col,
                        "'no-resolve' has no effect: rule '%s' has no 'to' value that needs the "
                        "destination's address",
                        r.name);
    }
    if (r.resolve_via != NULL && !rule_match_needs_address(r.match)) {
        config_diag_add(p->diags, CONFIG_WARNING, r.file, r.line, o.opt[OPT_RESOLVE]->col,
                        "'resolve via' has no effect: rule '%s' has no 'to' value that needs the "
                        "destination's address",
                        r.name);
    }
    if (rule_append(p, w, &r) == 0)
        return;
fail:
    free(r.file);
    free(r.reason);
    rule_match_free(r.match);
}
