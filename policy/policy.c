#include "policy/policy.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "geo/region.h"
#include "policy/config_parser.h"
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

static void verdict_from_rule(const struct config_rule *rule, struct policy_verdict *out)
{
    static const enum verdict_action actions[] = {
        [RULE_PASS] = VERDICT_PASS, [RULE_BLOCK] = VERDICT_BLOCK, [RULE_TUNNEL] = VERDICT_TUNNEL};

    out->action = actions[rule->action];
    out->via = rule->action == RULE_TUNNEL ? rule->via : NULL;
    out->resolve_via = NULL;
    out->rule = rule->name;
    out->reason = rule->reason;
    out->log = rule->log;
    out->file = rule->file;
    out->line = rule->line;
}

static void verdict_no_rule(struct policy_verdict *out)
{
    out->action = VERDICT_BLOCK;
    out->rule = "(no rule)";
    out->reason = "no rule matched: geoproxy refuses by default";
    out->log = LOG_LEVEL_META;
    out->file = NULL;
    out->line = 0;
    out->via = NULL;
    out->resolve_via = NULL;
}

/* The rule at 'rule' needs the destination's address: who resolves the name. */
static enum policy_outcome verdict_need_address(const struct config_rule *rule,
                                                struct policy_verdict *out)
{
    out->via = NULL;
    out->resolve_via = rule->resolve_via;
    return POLICY_NEED_ADDRESS;
}

/* True for 0.0.0.0 and :: (also IPv4-mapped): connecting there reaches this machine. */
static bool dest_is_unspecified(const struct sockaddr *sa)
{
    static const uint8_t zero[16] = {0};
    static const uint8_t v4mapped_zero[16] = {[10] = 0xff, [11] = 0xff};
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == 0;
    if (sa->sa_family != AF_INET6)
        return false;
    const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    return memcmp(a, zero, 16) == 0 || memcmp(a, v4mapped_zero, 16) == 0;
}

/* True when the rule itself names local destinations: 'to local' or a network or address. */
static bool rule_names_local_destinations(const struct config_rule *rule)
{
    const struct rule_match *m = rule->match;
    return m != NULL && (m->present & MATCH_HAS_TO) &&
           (m->to[MATCH_POS].local || m->to[MATCH_POS].n_nets > 0);
}

static void verdict_builtin(struct policy_verdict *out, const char *rule, const char *reason)
{
    out->action = VERDICT_BLOCK;
    out->rule = rule;
    out->reason = reason;
    out->log = LOG_LEVEL_META;
    out->file = NULL;
    out->line = 0;
    out->via = NULL;
    out->resolve_via = NULL;
}

/* Refusals that no catch-all rule can lift (safe defaults), applied once the destination's
 * address is known: an unspecified address, and a local destination for a client outside the
 * local ranges unless the deciding rule names local destinations. 'rule' is the deciding rule,
 * or NULL. Returns true when *out was replaced. */
static bool policy_guard(const struct config_rule *rule, const struct policy_request *req,
                         struct policy_verdict *out)
{
    /* A tunnelled destination is reached by the exit, from its own network, not by this
     * machine: the exit's own policy and refusals apply there. */
    if (req->dest == NULL || out->action == VERDICT_TUNNEL)
        return false;
    if (dest_is_unspecified(req->dest)) {
        verdict_builtin(out, "(unspecified destination)",
                        "0.0.0.0 and :: are not destinations (they would reach the proxy's own "
                        "machine)");
        return true;
    }
    if (out->action == VERDICT_PASS && req->dest_geo.local && !req->client_geo.local &&
        (rule == NULL || !rule_names_local_destinations(rule))) {
        verdict_builtin(out, "(local destination)",
                        "local networks are closed to clients outside them unless a rule names "
                        "them ('to local' or a network)");
        return true;
    }
    return false;
}

enum policy_outcome policy_decide_config(const struct config *cfg, const struct policy_request *req,
                                         struct policy_verdict *out)
{
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
        return verdict_need_address(&cfg->rules[i], out);
    if (found == RULE_FOUND)
        verdict_from_rule(&cfg->rules[i], out);
    else
        verdict_no_rule(out);
    policy_guard(found == RULE_FOUND ? &cfg->rules[i] : NULL, req, out);
    return POLICY_DECIDED;
}

enum policy_outcome policy_decide(const struct policy_snapshot *snap,
                                  const struct policy_request *req, struct policy_verdict *out)
{
    return policy_decide_config(snap->cfg, req, out);
}

enum policy_outcome policy_explain(const struct config *cfg, const struct policy_request *req,
                                   policy_step_fn step, void *arg, struct policy_verdict *out)
{
    char host[MATCH_DOMAIN_MAX + 2];
    struct match_request r;

    match_request_init(&r, req, host);
    for (size_t i = 0; i < cfg->n_rules; i++) {
        const struct config_rule *rule = &cfg->rules[i];
        switch (rule_match_eval(rule->match, &r)) {
        case MATCH_YES:
            step(arg, rule, POLICY_STEP_MATCH);
            verdict_from_rule(rule, out);
            policy_guard(rule, req, out);
            return POLICY_DECIDED;
        case MATCH_NEED:
            if (rule->no_resolve) {
                step(arg, rule, POLICY_STEP_SKIPPED_NO_RESOLVE);
                continue;
            }
            step(arg, rule, POLICY_STEP_NEEDS_ADDRESS);
            return verdict_need_address(rule, out);
        case MATCH_NO:
            step(arg, rule, POLICY_STEP_NO_MATCH);
            break;
        }
    }
    verdict_no_rule(out);
    policy_guard(NULL, req, out);
    return POLICY_DECIDED;
}

/* Reads text as an IP address into ss (port 0); false when it is not one. */
static bool probe_parse_ip(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

static bool probe_is_country(const char *text)
{
    return strlen(text) == 2 && country_code_index(text) >= 0;
}

/* A place given as a country code: that country, with no address. */
static void probe_country(const char *cc, struct sockaddr_storage *ss, struct geo_result *geo)
{
    memset(ss, 0, sizeof *ss);
    ss->ss_family = AF_UNSPEC;
    memset(geo, 0, sizeof *geo);
    geo->cls = GEO_CLASS_COUNTRY;
    geo->country[0] = (char)(cc[0] & ~0x20);
    geo->country[1] = (char)(cc[1] & ~0x20);
}

int policy_probe_init(struct policy_probe *p, const struct config *cfg, const char *from,
                      const char *to_host, uint16_t port, const char *user, const char *listener,
                      char *err, size_t err_len)
{
    const struct config_geoip *g = &cfg->geoip;
    memset(p, 0, sizeof *p);
    p->req.client = (const struct sockaddr *)&p->client_addr;
    if (probe_parse_ip(from, &p->client_addr)) {
        geo_classify(g->country, g->asn, p->req.client, &p->req.client_geo);
    } else if (probe_is_country(from)) {
        probe_country(from, &p->client_addr, &p->req.client_geo);
    } else {
        snprintf(err, err_len, "'%s' is neither an IP address nor a country code", from);
        return -1;
    }
    if (probe_parse_ip(to_host, &p->dest_addr)) {
        p->req.dest = (const struct sockaddr *)&p->dest_addr;
        geo_classify(g->country, g->asn, p->req.dest, &p->req.dest_geo);
    } else if (probe_is_country(to_host)) {
        probe_country(to_host, &p->dest_addr, &p->req.dest_geo);
        p->req.dest = (const struct sockaddr *)&p->dest_addr;
    } else {
        if (to_host[0] == '\0' || strlen(to_host) >= sizeof p->host) {
            snprintf(err, err_len, "'%s' is not a host name", to_host);
            return -1;
        }
        snprintf(p->host, sizeof p->host, "%s", to_host);
        p->req.host = p->host;
    }
    p->req.port = port;
    if (user != NULL) {
        snprintf(p->user, sizeof p->user, "%s", user);
        p->req.user = p->user;
    }
    snprintf(p->listener, sizeof p->listener, "%s",
             listener != NULL ? listener : (cfg->n_listeners > 0 ? cfg->listeners[0].name : ""));
    p->req.listener = p->listener;
    return 0;
}

void policy_classify(const struct policy_snapshot *snap, const struct sockaddr *addr,
                     struct geo_result *out)
{
    const struct config_geoip *g = &snap->cfg->geoip;
    geo_classify(g->country, g->asn, addr, out);
}

size_t policy_config_regions_of(const struct config *cfg, const char cc[2], const char **names,
                                size_t cap)
{
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

size_t policy_regions_of(const struct policy_snapshot *snap, const char cc[2], const char **names,
                         size_t cap)
{
    return policy_config_regions_of(snap->cfg, cc, names, cap);
}

const char *policy_action_name(enum verdict_action action)
{
    switch (action) {
    case VERDICT_PASS:
        return "pass";
    case VERDICT_BLOCK:
        return "block";
    case VERDICT_TUNNEL:
        return "tunnel";
    }
    return "?";
}

bool policy_egress_matches(const struct policy_snapshot *snap, const struct config_upstream *u,
                           const struct sockaddr *egress)
{
    const struct region *r;
    struct geo_result g;

    if (u->egress[0] == '\0')
        return true;
    if (egress == NULL)
        return false;
    policy_classify(snap, egress, &g);
    /* A local address that the database gives a country (test fixtures, internal networks)
     * is judged by that country; one without a country, or unknown, matches nothing. */
    if (g.cls != GEO_CLASS_COUNTRY)
        return false;
    r = config_region_find(snap->cfg, u->egress);
    if (r != NULL)
        return region_has_country(r, g.country);
    return u->egress[0] == g.country[0] && u->egress[1] == g.country[1] && u->egress[2] == '\0';
}
