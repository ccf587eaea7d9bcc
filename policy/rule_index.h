/* The compiled form of a configuration's rules, so that finding the first matching rule does not
 * test every rule: for each dimension of a request (client, destination host, port, user,
 * listener) a few precomputed rule sets are combined into the set of rules that can match on that
 * dimension; the sets of all dimensions are ANDed a 64-rule word at a time and the first set bit
 * is the candidate, confirmed with rule_match_eval(). Country and region values are per-country
 * bitsets, networks are in prefix tries, domains are hashed by suffix, ports are cut into
 * intervals. Internal to policy/; built once at load, then read-only and shared by threads. */
#ifndef GEOPROXY_POLICY_RULE_INDEX_H
#define GEOPROXY_POLICY_RULE_INDEX_H

#include <stddef.h>

#include "policy/config.h"
#include "policy/policy.h"
#include "policy/rule_match.h"

#define RULE_INDEX_MAX_BYTES (256u * 1024u * 1024u)

struct rule_index;

enum rule_find { RULE_FOUND, RULE_NONE, RULE_NEED_ADDRESS };

/* Compiles the rules of cfg. Returns 0 and *out, -ENOMEM, or -E2BIG when the compiled form would
 * be larger than RULE_INDEX_MAX_BYTES. */
int rule_index_build(const struct config *cfg, struct rule_index **out);

void rule_index_free(struct rule_index *idx);

/* Bytes the compiled sets take (for benchmarks and tests). */
size_t rule_index_bytes(const struct rule_index *idx);

/* The first rule that matches r (*rule set, RULE_FOUND), or RULE_NEED_ADDRESS when the first rule
 * that may still match needs the destination's address and is not no-resolve, or RULE_NONE.
 * Never allocates. */
enum rule_find rule_index_find(const struct rule_index *idx, const struct config *cfg,
                               const struct match_request *r, size_t *rule);

/* The same, looking only at rules from number start on. */
enum rule_find rule_index_find_from(const struct rule_index *idx, const struct config *cfg,
                                    const struct match_request *r, size_t start, size_t *rule);

/* The same answer by trying every rule in order: the reference the index is tested against. */
enum rule_find rule_find_linear(const struct config *cfg, const struct match_request *r,
                                size_t *rule);

/* Fills r from req; host_buf (MATCH_DOMAIN_MAX + 2 bytes) holds the normalized host name. */
void match_request_init(struct match_request *r, const struct policy_request *req, char *host_buf);

#endif
