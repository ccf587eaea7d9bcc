/* Path-compressed binary prefix trie: nodes are the networks rules name plus the branch points
 * between them, so a trie of n networks has fewer than 2n nodes. */
#include "policy/prefix_trie.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static unsigned addr_bit(const uint8_t *addr, unsigned i)
{
    return (addr[i / 8] >> (7 - i % 8)) & 1u;
}

/* Number of leading bits a and b share, at most max. */
static unsigned common_bits(const uint8_t *a, const uint8_t *b, unsigned max)
{
    unsigned i = 0;

    while (i < max && addr_bit(a, i) == addr_bit(b, i))
        i++;
    return i;
}

static int32_t node_new(struct prefix_trie *t, const uint8_t *addr, unsigned prefix)
{
    struct trie_node *node;

    if (t->n == t->cap) {
        size_t cap = t->cap == 0 ? 16 : t->cap * 2;
        struct trie_node *grown = realloc(t->nodes, cap * sizeof *grown);

        if (grown == NULL || cap > INT32_MAX)
            return -1;
        t->nodes = grown;
        t->cap = cap;
    }
    node = &t->nodes[t->n];
    memset(node, 0, sizeof *node);
    node->key.family = t->family;
    node->key.prefix = (uint8_t)prefix;
    for (unsigned i = 0; i < prefix; i++)
        node->key.addr[i / 8] |= (uint8_t)(addr_bit(addr, i) << (7 - i % 8));
    node->child[0] = node->child[1] = -1;
    return (int32_t)t->n++;
}

int prefix_trie_init(struct prefix_trie *t, enum match_family family)
{
    static const uint8_t zero[16];

    memset(t, 0, sizeof *t);
    t->family = (uint8_t)family;
    return node_new(t, zero, 0) < 0 ? -ENOMEM : 0;
}

/* The node for net, created (with a branch node above it when needed) if it is not there. */
static int32_t trie_insert(struct prefix_trie *t, const struct match_net *net)
{
    int32_t idx = 0;

    for (;;) {
        const struct trie_node *node = &t->nodes[idx];
        unsigned b, common;
        int32_t c, fresh, branch;

        if (node->key.prefix == net->prefix)
            return idx;
        b = addr_bit(net->addr, node->key.prefix);
        c = node->child[b];
        if (c < 0) {
            fresh = node_new(t, net->addr, net->prefix);
            if (fresh >= 0)
                t->nodes[idx].child[b] = fresh;
            return fresh;
        }
        common = common_bits(t->nodes[c].key.addr, net->addr,
                             t->nodes[c].key.prefix < net->prefix ? t->nodes[c].key.prefix
                                                                  : net->prefix);
        if (common == t->nodes[c].key.prefix) {
            idx = c; /* the child contains net: go down */
            continue;
        }
        if (common == net->prefix) { /* net contains the child: put it in between */
            fresh = node_new(t, net->addr, net->prefix);
            if (fresh < 0)
                return -1;
            t->nodes[fresh].child[addr_bit(t->nodes[c].key.addr, net->prefix)] = c;
            t->nodes[idx].child[b] = fresh;
            return fresh;
        }
        branch = node_new(t, net->addr, common);
        fresh = branch < 0 ? -1 : node_new(t, net->addr, net->prefix);
        if (fresh < 0)
            return -1;
        t->nodes[branch].child[addr_bit(net->addr, common)] = fresh;
        t->nodes[branch].child[addr_bit(t->nodes[c].key.addr, common)] = c;
        t->nodes[idx].child[b] = branch;
        return fresh;
    }
}

int prefix_trie_add(struct prefix_trie *t, const struct match_net *net, enum match_polarity pol,
                    uint32_t rule)
{
    int32_t idx = trie_insert(t, net);

    if (idx < 0)
        return -ENOMEM;
    t->nodes[idx].has_values = true;
    return id_list_add(&t->nodes[idx].own[pol], rule);
}

/* Depth-first with the ancestors' ids in anc[2]; the depth is at most 129. */
static int trie_push_down(struct prefix_trie *t, int32_t idx, const struct id_list anc[2],
                          struct bits_pool *pool, bool *over)
{
    struct id_list mine[2] = {{0}, {0}};
    const struct id_list *pass = anc;
    int rc = 0;
    bool failed = false;

    if (t->nodes[idx].has_values) {
        for (int pol = 0; pol < 2 && rc == 0; pol++) {
            rc = id_list_union(&mine[pol], &anc[pol], &t->nodes[idx].own[pol]);
            if (rc == 0)
                t->nodes[idx].set[pol] = rule_bits_of(pool, &mine[pol], &failed, over);
        }
        pass = mine;
    }
    for (int b = 0; b < 2 && rc == 0 && !failed; b++)
        if (t->nodes[idx].child[b] >= 0)
            rc = trie_push_down(t, t->nodes[idx].child[b], pass, pool, over);
    id_list_free(&mine[0]);
    id_list_free(&mine[1]);
    return rc != 0 || failed ? -1 : 0;
}

int prefix_trie_finish(struct prefix_trie *t, struct bits_pool *pool, bool *over)
{
    const struct id_list none[2] = {{0}, {0}};
    int rc = trie_push_down(t, 0, none, pool, over);

    for (size_t i = 0; i < t->n; i++) {
        id_list_free(&t->nodes[i].own[0]);
        id_list_free(&t->nodes[i].own[1]);
    }
    return rc;
}

const struct trie_node *prefix_trie_find(const struct prefix_trie *t, const struct match_net *addr)
{
    const struct trie_node *best = NULL;
    int32_t idx = 0;

    if (t->nodes == NULL || addr->family != t->family)
        return NULL;
    for (;;) {
        const struct trie_node *node = &t->nodes[idx];
        unsigned max = t->family == MATCH_V4 ? 32 : 128;

        if (!match_net_contains(&node->key, addr))
            return best;
        if (node->has_values)
            best = node;
        if (node->key.prefix >= max)
            return best;
        idx = node->child[addr_bit(addr->addr, node->key.prefix)];
        if (idx < 0)
            return best;
    }
}

void prefix_trie_free(struct prefix_trie *t)
{
    for (size_t i = 0; i < t->n; i++) {
        id_list_free(&t->nodes[i].own[0]);
        id_list_free(&t->nodes[i].own[1]);
    }
    free(t->nodes);
    memset(t, 0, sizeof *t);
}
