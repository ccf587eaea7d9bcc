/* The layout of the compiled rule index, shared by its builder (rule_index.c) and its evaluator
 * (rule_index_find.c). Internal to policy/. */
#ifndef GEOPROXY_POLICY_RULE_INDEX_INTERNAL_H
#define GEOPROXY_POLICY_RULE_INDEX_INTERNAL_H

#include "geo/region.h"
#include "policy/key_map.h"
#include "policy/prefix_trie.h"
#include "policy/rule_bits.h"
#include "policy/rule_index.h"

/* The dimensions of a request; a dimension no rule constrains is left out of evaluation. */
enum index_dim {
    DIM_FROM = 1u << 0,
    DIM_HOST = 1u << 1, /* the destination's name or address */
    DIM_PORT = 1u << 2,
    DIM_USER = 1u << 3,
    DIM_LISTENER = 1u << 4,
};

/* The sets of one side (client or destination), [polarity] each. */
struct place_index {
    const struct rule_bits *country[2][COUNTRY_SET_SIZE]; /* regions expanded to countries */
    const struct rule_bits *local[2];
    const struct rule_bits *unknown[2];
    struct prefix_trie trie[2]; /* [0] IPv4, [1] IPv6 */
    struct key_map asns;        /* set[polarity] */
};

/* Ports cut into intervals [starts[i], starts[i + 1]) inside which every rule answers alike. */
struct port_index {
    uint32_t *starts; /* starts[0] == 0 */
    size_t n;
    const struct rule_bits **set[2]; /* [polarity][interval] */
};

/* The interval of pi that holds port. */
size_t port_interval(const struct port_index *pi, uint32_t port);

struct rule_index {
    size_t n_rules, n_words;
    unsigned active; /* enum index_dim */
    struct place_index from, to;
    const struct rule_bits *from_free;     /* rules with no positive from-value */
    const struct rule_bits *host_free;     /* rules with no positive host-side to-value */
    const struct rule_bits *to_addr_pos;   /* rules with a positive to-value on the address */
    const struct rule_bits *port_free;     /* rules with no positive port */
    const struct rule_bits *user_free;     /* rules with no positive user */
    const struct rule_bits *listener_free; /* rules with no positive listener */
    struct key_map domains;   /* set[pol]: exact name; set[2 + pol]: suffix, with its parents' */
    struct key_map users;     /* set[polarity] */
    struct key_map listeners; /* set[polarity] */
    struct port_index ports;
    struct bits_pool pool;
};

#endif
