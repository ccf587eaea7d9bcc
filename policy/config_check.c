/* Warnings about the rules of a configuration that loads: a last rule that is not a catch-all,
 * rules that can never match because an earlier rule takes every connection they could match,
 * and countries or regions without a country database. */
#include "policy/config_parser.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/rule_index.h"
#include "policy/rule_match.h"

/* Candidate pairs of rules looked at for one configuration, so that the check stays fast. */
#define CHECK_COMPARISONS_MAX 2000000u

/* Which matchers of a rule constrain (have any value) and which have positive values, as bits:
 * from, to host side, to ports, user, listener. */
struct rule_shape {
    unsigned constrains;
    unsigned positive;
    bool negated;
    /* Bloom signatures of the positive values that can only be covered by the same value
     * (countries, local, unknown, AS numbers; users; listeners): from, to, user, listener. */
    uint64_t sig[4];
};

static uint64_t sig_bit(uint64_t x)
{
    x *= UINT64_C(0x9e3779b97f4a7c15);
    return UINT64_C(1) << (x >> 58);
}

static uint64_t sig_place(const struct match_place *pl)
{
    uint64_t sig = (pl->local ? sig_bit(1000) : 0) | (pl->unknown ? sig_bit(1001) : 0);

    for (size_t w = 0; w < COUNTRY_SET_WORDS; w++)
        for (uint64_t bits = pl->countries.bits[w]; bits != 0; bits &= bits - 1)
            sig |= sig_bit(w * 64 + (uint64_t)__builtin_ctzll(bits));
    for (size_t i = 0; i < pl->n_asns; i++)
        sig |= sig_bit(UINT64_C(1) << 32 | pl->asns[i]);
    return sig;
}

static uint64_t sig_names(const struct match_names *n)
{
    uint64_t sig = 0;

    for (size_t i = 0; i < n->n; i++) {
        uint64_t h = 1469598103934665603u;

        for (const char *c = n->names[i]; *c != '\0'; c++)
            h = (h ^ (unsigned char)*c) * 1099511628211u;
        sig |= sig_bit(h);
    }
    return sig;
}

static struct rule_shape rule_shape_of(const struct rule_match *m)
{
    struct rule_shape s;

    memset(&s, 0, sizeof s);

    if (m == NULL)
        return s;
    for (int pol = 0; pol < 2; pol++) {
        unsigned bits = (!match_place_is_empty(&m->from[pol]) ? 1u : 0) |
                        (!match_place_is_empty(&m->to[pol]) || m->domains[pol].n > 0 ? 2u : 0) |
                        (m->n_ports[pol] > 0 ? 4u : 0) | (m->users[pol].n > 0 ? 8u : 0) |
                        (m->listeners[pol].n > 0 ? 16u : 0);

        s.constrains |= bits;
        if (pol == MATCH_POS)
            s.positive = bits;
        else
            s.negated = bits != 0;
    }
    s.sig[0] = sig_place(&m->from[MATCH_POS]);
    s.sig[1] = sig_place(&m->to[MATCH_POS]);
    s.sig[2] = sig_names(&m->users[MATCH_POS]);
    s.sig[3] = sig_names(&m->listeners[MATCH_POS]);
    return s;
}

/* False when a certainly does not cover b: a constrains a matcher that b leaves open, a has a
 * negated value, or b has a value a lacks. */
static bool shape_may_cover(const struct rule_shape *a, const struct rule_shape *b)
{
    static const unsigned dim_of_sig[4] = {1u, 2u, 8u, 16u};

    if (a->negated || (a->constrains & ~b->positive) != 0)
        return false;
    for (int k = 0; k < 4; k++)
        if ((a->constrains & dim_of_sig[k]) && (b->sig[k] & ~a->sig[k]) != 0)
            return false;
    return true;
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

/* A connection that rule m matches, built from the first positive value of each matcher: every
 * rule that covers m matches it too, so the compiled index finds the candidates. */
struct representative {
    struct match_request r;
    struct geo_result client_geo, dest_geo;
    char host[MATCH_DOMAIN_MAX + 2];
};

static void representative_place(const struct match_place *pl, struct match_net *addr,
                                 struct geo_result *g)
{
    memset(g, 0, sizeof *g);
    memset(addr, 0, sizeof *addr);
    addr->family = MATCH_V4;
    g->cls = GEO_CLASS_UNKNOWN;
    for (size_t w = 0; w < COUNTRY_SET_WORDS; w++) {
        if (pl->countries.bits[w] != 0) {
            size_t c = w * 64 + (size_t)__builtin_ctzll(pl->countries.bits[w]);

            g->cls = GEO_CLASS_COUNTRY;
            g->country[0] = (char)('A' + c / 26);
            g->country[1] = (char)('A' + c % 26);
            return;
        }
    }
    if (pl->local) {
        g->cls = GEO_CLASS_LOCAL;
        g->local = true;
    } else if (pl->n_asns > 0) {
        g->asn = pl->asns[0];
    } else if (pl->n_nets > 0) {
        *addr = pl->nets[0];
    }
}

static bool representative_of(const struct rule_match *m, struct representative *rep)
{
    const struct match_names *d = &m->domains[MATCH_POS];

    memset(rep, 0, sizeof *rep);
    representative_place(&m->from[MATCH_POS], &rep->r.client, &rep->client_geo);
    representative_place(&m->to[MATCH_POS], &rep->r.dest, &rep->dest_geo);
    rep->r.client_geo = &rep->client_geo;
    rep->r.dest_geo = &rep->dest_geo;
    rep->r.dest_known = true;
    if (d->n > 0) {
        const char *name = d->names[0][0] == '.' ? d->names[0] + 1 : d->names[0];

        rep->r.named = true;
        rep->r.host_len = strlen(name);
        memcpy(rep->host, name, rep->r.host_len + 1);
        rep->r.host = rep->host;
    }
    rep->r.port = m->n_ports[MATCH_POS] > 0 ? m->ports[MATCH_POS][0].lo : 1;
    rep->r.user = m->users[MATCH_POS].n > 0 ? m->users[MATCH_POS].names[0] : NULL;
    rep->r.listener = m->listeners[MATCH_POS].n > 0 ? m->listeners[MATCH_POS].names[0] : NULL;
    return rule_match_eval(m, &rep->r) == MATCH_YES; /* else a negation excludes it: no check */
}

static void check_unreachable(struct config_parser *p, struct rule_shape *shapes)
{
    const struct config *cfg = p->cfg;
    size_t catch_all = SIZE_MAX;
    size_t comparisons = 0;

    for (size_t j = 0; j < cfg->n_rules; j++) {
        const struct config_rule *b = &cfg->rules[j];
        struct representative rep;
        size_t i = 0;

        shapes[j] = rule_shape_of(b->match);
        if (catch_all != SIZE_MAX) {
            warn_unreachable(p, b, &cfg->rules[catch_all]);
            continue;
        }
        if (b->match == NULL) {
            catch_all = j;
            continue;
        }
        if (cfg->index == NULL || !representative_of(b->match, &rep))
            continue;
        while (rule_index_find_from(cfg->index, cfg, &rep.r, i, &i) == RULE_FOUND && i < j) {
            if (++comparisons > CHECK_COMPARISONS_MAX) {
                config_diag_add(p->diags, CONFIG_WARNING, b->file, b->line, 1,
                                "stopped looking for rules that can never match at rule '%s' "
                                "(after %u candidate pairs)",
                                b->name, CHECK_COMPARISONS_MAX);
                return;
            }
            if (shape_may_cover(&shapes[i], &shapes[j]) &&
                rule_match_covers(cfg->rules[i].match, b->match)) {
                warn_unreachable(p, b, &cfg->rules[i]);
                break;
            }
            i++;
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
