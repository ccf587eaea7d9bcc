/* A path-compressed binary prefix trie of networks (one address family) for the compiled rule
 * index: each network carries the rules that name it, and after prefix_trie_finish() also those of
 * every shorter network containing it, so one walk to the longest matching network gives every
 * rule whose network contains an address. Internal to policy/. */
#ifndef GEOPROXY_POLICY_PREFIX_TRIE_H
#define GEOPROXY_POLICY_PREFIX_TRIE_H

#include <stdint.h>

#include "policy/rule_bits.h"
#include "policy/rule_match.h"

struct trie_node {
    struct match_net key;
    int32_t child[2];               /* -1: none */
    bool has_values;                /* some rule names exactly this network */
    struct id_list own[2];          /* [polarity], while building */
    const struct rule_bits *set[2]; /* [polarity] with the ancestors', after finishing */
};

struct prefix_trie {
    struct trie_node *nodes; /* nodes[0] is the root, the network of prefix 0 */
    size_t n, cap;
    uint8_t family; /* enum match_family */
};

/* Starts an empty trie for MATCH_V4 or MATCH_V6. Returns 0 or -ENOMEM. */
int prefix_trie_init(struct prefix_trie *t, enum match_family family);

/* Records that rule names net (of the trie's family) with polarity pol. 0 or -ENOMEM. */
int prefix_trie_add(struct prefix_trie *t, const struct match_net *net, enum match_polarity pol,
                    uint32_t rule);

/* Turns the id lists into bitsets, each network's including its ancestors'. Returns 0, or -1
 * (out of memory, or *over when the pool's cap was reached). */
int prefix_trie_finish(struct prefix_trie *t, struct bits_pool *pool, bool *over);

/* The longest network that some rule names and that contains addr, or NULL. */
const struct trie_node *prefix_trie_find(const struct prefix_trie *t, const struct match_net *addr);

void prefix_trie_free(struct prefix_trie *t);

#endif
