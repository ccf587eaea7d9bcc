#include "policy/policy.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "geo/region.h"
#include "policy/rule_index.h"
#include "policy/rule_match.h"

/* Up to this many rules, trying each in order is faster than combining the index's sets. */
#define POLICY_LINEAR_RULES_MAX 8

struct policy_snapshot {
    atomic_uint refs;
    uint64_t generation;
    struct config *cfg;
};

struct policy_snapshot *policy_snapshot_new(struct config *cfg, uint64_t generation)
{
    struct policy_snapshot *snap = calloc(1, sizeof(*snap));
    if (snap == NULL) {
        config_free(cfg);
        return NULL;
    }
    atomic_init(&snap->refs, 1);
    snap->generation = generation;
    snap->cfg = cfg;
    return snap;
}

struct policy_snapshot *policy_snapshot_acquire(struct policy_snapshot *snap)
{
    atomic_fetch_add_explicit(&snap->refs, 1, memory_order_relaxed);
    return snap;
}

void policy_snapshot_release(struct policy_snapshot *snap)
{
    if (snap == NULL)
        return;
    if (atomic_fetch_sub_explicit(&snap->refs, 1, memory_order_acq_rel) != 1)
        return;
    config_free(snap->cfg);
    free(snap);
}

const struct config *policy_snapshot_config(const struct policy_snapshot *snap)
{
    return snap->cfg;
}

uint64_t policy_snapshot_generation(const struct policy_snapshot *snap)
{
    return snap->generation;
}

enum policy_outcome policy_decide(const struct policy_snapshot *snap,
                                  const struct policy_request *req, struct policy_verdict *out)
{
    const struct config *cfg = snap->cfg;
    char host[MATCH_DOMAIN_MAX + 2];
    struct match_request r;
    enum rule_find found;
    size_t i = 0;

    match_request_init(&r, req, host);
    if (cfg->index != NULL && cfg->n_rules > POLICY_LINEAR_RULES_MAX)
        found = rule_index_find(cfg->index, cfg, &r, &i);
    else
        found = rule_find_linear(cfg, &r, &i);
    if (found == RULE_NEED_ADDRESS)
        return POLICY_NEED_ADDRESS;
    if (found == RULE_FOUND) {
        const struct config_rule *rule = &cfg->rules[i];

        out->action = rule->action == RULE_PASS ? VERDICT_PASS : VERDICT_BLOCK;
        out->rule = rule->name;
        out->reason = rule->reason;
        out->log = rule->log;
        out->file = rule->file;
        out->line = rule->line;
        return POLICY_DECIDED;
    }
    out->action = VERDICT_BLOCK;
    out->rule = "(no rule)";
    out->reason = "no rule matched: geoproxy refuses by default";
    out->log = LOG_LEVEL_META;
    out->file = NULL;
    out->line = 0;
    return POLICY_DECIDED;
}

void policy_classify(const struct policy_snapshot *snap, const struct sockaddr *addr,
                     struct geo_result *out)
{
    const struct config_geoip *g = &snap->cfg->geoip;
    geo_classify(g->country, g->asn, addr, out);
}

size_t policy_regions_of(const struct policy_snapshot *snap, const char cc[2], const char **names,
                         size_t cap)
{
    const struct config *cfg = snap->cfg;
    const struct region *extra[CONFIG_MAX_REGIONS];
    const struct region *found[CONFIG_MAX_REGIONS + 16];
    size_t n_extra = cfg->n_regions < CONFIG_MAX_REGIONS ? cfg->n_regions : CONFIG_MAX_REGIONS;

    for (size_t i = 0; i < n_extra; i++)
        extra[i] = &cfg->regions[i];
    size_t total =
        region_list_for_country(cc, extra, n_extra, found, sizeof found / sizeof found[0]);
    size_t shown = total < sizeof found / sizeof found[0] ? total : sizeof found / sizeof found[0];
    for (size_t i = 0; i < shown && i < cap; i++)
        names[i] = found[i]->name;
    return total;
}

const char *policy_action_name(enum verdict_action action)
{
    switch (action) {
    case VERDICT_PASS:
        return "pass";
    case VERDICT_BLOCK:
        return "block";
    }
    return "?";
}
