/* The rule directive: "rule NAME pass|block [reason \"TEXT\"] [log LEVEL]". */
#include "policy/config_parser.h"

#include <stdlib.h>
#include <string.h>

#include "policy/config_value.h"

#define CONFIG_RULES_MAX 4096
#define CONFIG_REASON_MAX 256

static const char *const log_names[] = {"none", "meta", "full", NULL};
static const char *const rule_actions[] = {"pass", "block", "tunnel", NULL};
static const char *const rule_option_names[] = {"log",  "reason",   "from", "to",
                                                "user", "listener", NULL};
static const char *const rule_matchers[] = {"from", "to", "user", "listener", NULL};

/* The words of a rule line after name and action. */
struct rule_options {
    const struct config_token *log_opt;
    const struct config_token *log;
    const struct config_token *reason_opt;
    const struct config_token *reason;
};

static int rule_parse_options(struct config_parser *p, const struct config_line *w,
                              struct rule_options *o)
{
    static const struct config_option_spec spec = {
        .context = " for 'rule'",
        .names = rule_option_names,
        .planned = rule_matchers,
        .expected = "expected log or reason",
    };
    const struct config_option_slot slots[] = {
        {"log", &o->log_opt, &o->log},
        {"reason", &o->reason_opt, &o->reason},
    };
    return config_parse_option_pairs(p, w, 3, &spec, slots, sizeof(slots) / sizeof(slots[0]));
}

static int rule_check_options(struct config_parser *p, enum rule_action action,
                              const struct rule_options *o, enum log_level *log)
{
    int level;

    *log = LOG_LEVEL_META;
    if (o->log != NULL) {
        level = config_word_index(o->log, log_names);
        if (level < 0) {
            config_error_unknown_word(p, o->log, "log level", "", log_names,
                                      "expected none, meta or full");
            return -1;
        }
        *log = (enum log_level)level;
    }
    if (o->reason != NULL) {
        if (action != RULE_BLOCK) {
            config_parser_error(p, o->reason_opt->col, "'reason' is only allowed on block rules");
            return -1;
        }
        if (o->reason->len == 0) {
            config_parser_error(p, o->reason->col, "empty reason");
            return -1;
        }
        if (o->reason->len > CONFIG_REASON_MAX) {
            config_parser_error(p, o->reason->col, "reason is longer than %u bytes",
                                (unsigned)CONFIG_REASON_MAX);
            return -1;
        }
    }
    return 0;
}

static int rule_check_name(struct config_parser *p, const struct config_token *name)
{
    const struct config *cfg = p->cfg;
    char shown[CONFIG_CLIP_SIZE];
    size_t i;

    if (!config_name_is_valid(name->text, name->len)) {
        config_parser_error(p, name->col, "invalid rule name '%s' (" CONFIG_NAME_RULES ")",
                            config_token_clip(name, shown));
        return -1;
    }
    for (i = 0; i < cfg->n_rules; i++) {
        if (strcmp(cfg->rules[i].name, name->text) == 0) {
            config_parser_error(p, name->col, "duplicate rule name '%s' (first defined at %s:%u)",
                                name->text, cfg->rules[i].file, cfg->rules[i].line);
            return -1;
        }
    }
    return 0;
}

void config_parse_rule(struct config_parser *p, const struct config_line *w)
{
    struct config *cfg = p->cfg;
    struct config_rule r;
    struct rule_options o;
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
                            "(expected pass or block)");
        return;
    }
    action = config_word_index(&w->tokens[2], rule_actions);
    if (action < 0) {
        config_error_unknown_word(p, &w->tokens[2], "action", "", rule_actions,
                                  "expected pass or block");
        return;
    }
    if (config_word_is(&w->tokens[2], "tunnel")) {
        config_parser_error(p, w->tokens[2].col, "'tunnel' " CONFIG_NOT_YET);
        return;
    }
    r.action = action == 0 ? RULE_PASS : RULE_BLOCK;
    if (rule_parse_options(p, w, &o) != 0 || rule_check_options(p, r.action, &o, &r.log) != 0) {
        return;
    }
    if (cfg->n_rules == CONFIG_RULES_MAX) {
        config_parser_error(p, w->tokens[0].col, "too many rules (at most %u)",
                            (unsigned)CONFIG_RULES_MAX);
        return;
    }
    if (cfg->n_rules == p->rules_cap) {
        size_t cap = p->rules_cap == 0 ? 8 : p->rules_cap * 2;
        struct config_rule *grown = realloc(cfg->rules, cap * sizeof *grown);

        if (grown == NULL) {
            config_parser_out_of_memory(p, w->tokens[0].col);
            return;
        }
        cfg->rules = grown;
        p->rules_cap = cap;
    }
    memcpy(r.name, w->tokens[1].text, w->tokens[1].len + 1);
    r.file = strdup(config_parser_file(p));
    r.reason = o.reason != NULL ? strdup(o.reason->text) : NULL;
    r.line = p->line;
    if (r.file == NULL || (o.reason != NULL && r.reason == NULL)) {
        free(r.file);
        free(r.reason);
        config_parser_out_of_memory(p, w->tokens[0].col);
        return;
    }
    cfg->rules[cfg->n_rules++] = r;
}
