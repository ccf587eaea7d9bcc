#include "policy/policy.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

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

/* Every rule matches every connection until matchers arrive with the policy engine. */
static bool rule_matches(const struct config_rule *rule, const struct policy_request *req)
{
    (void)rule;
    (void)req;
    return true;
}

void policy_decide(const struct policy_snapshot *snap, const struct policy_request *req,
                   struct policy_verdict *out)
{
    const struct config *cfg = snap->cfg;
    for (size_t i = 0; i < cfg->n_rules; i++) {
        const struct config_rule *rule = &cfg->rules[i];
        if (!rule_matches(rule, req))
            continue;
        out->action = rule->action == RULE_PASS ? VERDICT_PASS : VERDICT_BLOCK;
        out->rule = rule->name;
        out->reason = rule->reason;
        out->log = rule->log;
        return;
    }
    out->action = VERDICT_BLOCK;
    out->rule = "(no rule)";
    out->reason = "no rule matched: geoproxy refuses by default";
    out->log = LOG_LEVEL_META;
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
