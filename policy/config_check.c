/* Warnings about the rules of a configuration that loads: a last rule that is not a catch-all,
 * rules that can never match because an earlier rule takes every connection they could match,
 * and countries or regions without a country database. */
#include "policy/config_parser.h"

#include <stdint.h>
#include <stdlib.h>

#include "policy/rule_match.h"

/* Full coverage tests allowed for one configuration, so a check of 10,000 rules stays fast. */
#define CHECK_COMPARISONS_MAX 4000000u

/* Which matchers of a rule constrain (have any value) and which have positive values, as bits:
 * from, to host side, to ports, user, listener. */
struct rule_shape {
    unsigned constrains;
    unsigned positive;
    bool negated;
};

static bool place_any(const struct match_place *pl)
{
    return pl->local || pl->unknown || pl->n_nets > 0 || pl->n_asns > 0 ||
           country_set_count(&pl->countries) > 0;
}

static struct rule_shape rule_shape_of(const struct rule_match *m)
{
    struct rule_shape s = {0, 0, false};

    if (m == NULL)
        return s;
    for (int pol = 0; pol < 2; pol++) {
        unsigned bits = (place_any(&m->from[pol]) ? 1u : 0) |
                        (place_any(&m->to[pol]) || m->domains[pol].n > 0 ? 2u : 0) |
                        (m->n_ports[pol] > 0 ? 4u : 0) | (m->users[pol].n > 0 ? 8u : 0) |
                        (m->listeners[pol].n > 0 ? 16u : 0);

        s.constrains |= bits;
        if (pol == MATCH_POS)
            s.positive = bits;
        else
            s.negated = bits != 0;
    }
    return s;
}

static void warn_unreachable(struct config_parser *p, const struct config_rule *later,
                             const struct config_rule *earlier)
{
    if (earlier->match == NULL)
        config_diag_add(p->diags, CONFIG_WARNING, later->file, later->line, 1,
                        "rule '%s' can never match: rule '%s' (%s:%u) before it matches every "
                        "connection",
                        later->name, earlier->name, earlier->file, earlier->line);
    else
        config_diag_add(p->diags, CONFIG_WARNING, later->file, later->line, 1,
                        "rule '%s' can never match: rule '%s' (%s:%u) before it matches every "
                        "connection it could match",
                        later->name, earlier->name, earlier->file, earlier->line);
}

static void check_unreachable(struct config_parser *p, struct rule_shape *shapes)
{
    const struct config *cfg = p->cfg;
    size_t catch_all = SIZE_MAX;
    size_t comparisons = 0;
    bool stopped = false;

    for (size_t j = 0; j < cfg->n_rules; j++) {
        const struct config_rule *b = &cfg->rules[j];

        shapes[j] = rule_shape_of(b->match);
        if (catch_all != SIZE_MAX) {
            warn_unreachable(p, b, &cfg->rules[catch_all]);
            continue;
        }
        if (b->match == NULL)
            catch_all = j;
        for (size_t i = 0; i < j && !stopped; i++) {
            const struct rule_shape *a = &shapes[i];

            if (a->negated || (a->constrains & ~shapes[j].positive) != 0)
                continue; /* a constrains a matcher that b leaves open, or negates */
            if (++comparisons > CHECK_COMPARISONS_MAX) {
                stopped = true;
                config_diag_add(p->diags, CONFIG_WARNING, b->file, b->line, 1,
                                "stopped looking for rules that can never match at rule '%s' "
                                "(after %u comparisons)",
                                b->name, CHECK_COMPARISONS_MAX);
                break;
            }
            if (rule_match_covers(cfg->rules[i].match, b->match)) {
                warn_unreachable(p, b, &cfg->rules[i]);
                break;
            }
        }
    }
}

static void check_countries(struct config_parser *p)
{
    const struct config *cfg = p->cfg;
    const struct config_rule *first = NULL;
    size_t n = 0;

    if (cfg->geoip.country != NULL)
        return;
    for (size_t i = 0; i < cfg->n_rules; i++) {
        if (rule_match_uses_countries(cfg->rules[i].match)) {
            if (first == NULL)
                first = &cfg->rules[i];
            n++;
        }
    }
    if (first == NULL)
        return;
    if (n == 1)
        config_diag_add(p->diags, CONFIG_WARNING, first->file, first->line, 1,
                        "rule '%s' names countries or regions, but there is no country "
                        "database: every public address is 'unknown' (see 'geoip country')",
                        first->name);
    else
        config_diag_add(p->diags, CONFIG_WARNING, first->file, first->line, 1,
                        "rule '%s' and %zu more name countries or regions, but there is no "
                        "country database: every public address is 'unknown' (see 'geoip "
                        "country')",
                        first->name, n - 1);
}

void config_check_rules(struct config_parser *p)
{
    const struct config *cfg = p->cfg;
    const char *top = p->frames[0].name;
    struct rule_shape *shapes;

    if (cfg->n_rules == 0) {
        config_diag_add(p->diags, CONFIG_WARNING, top, 0, 0,
                        "no rule: every connection will be blocked (fail closed)");
        return;
    }
    check_countries(p);
    shapes = calloc(cfg->n_rules, sizeof *shapes);
    if (shapes != NULL)
        check_unreachable(p, shapes);
    free(shapes);
    if (cfg->rules[cfg->n_rules - 1].match != NULL) {
        const struct config_rule *last = &cfg->rules[cfg->n_rules - 1];

        config_diag_add(p->diags, CONFIG_WARNING, last->file, last->line, 1,
                        "last rule '%s' is not a catch-all: connections it does not match "
                        "will be blocked (fail closed)",
                        last->name);
    }
}
