/* Compiling rules into struct rule_index: id lists per key while reading the rules, then ranged
 * bitsets in a capped pool. */
#include "policy/rule_index_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* What a build collects before it makes bitsets. */
struct place_lists {
    struct id_list country[2][COUNTRY_SET_SIZE];
    struct id_list local[2], unknown[2];
};

struct build {
    struct rule_index *idx;
    struct place_lists *from, *to;
    struct id_list from_free, host_free, to_addr_pos, port_free, user_free, listener_free;
    bool failed, over;
};

static void note(struct build *b, int rc)
{
    if (rc != 0)
        b->failed = true;
}

static void add_place(struct build *b, struct place_index *pi, struct place_lists *pl,
                      const struct match_place *v, int pol, uint32_t rule)
{
    for (size_t w = 0; w < COUNTRY_SET_WORDS; w++) {
        for (uint64_t bits = v->countries.bits[w]; bits != 0; bits &= bits - 1) {
            size_t c = w * 64 + (size_t)__builtin_ctzll(bits);

            note(b, id_list_add(&pl->country[pol][c], rule));
        }
    }
    if (v->local)
        note(b, id_list_add(&pl->local[pol], rule));
    if (v->unknown)
        note(b, id_list_add(&pl->unknown[pol], rule));
    for (size_t i = 0; i < v->n_nets; i++) {
        struct prefix_trie *t = &pi->trie[v->nets[i].family == MATCH_V6];

        note(b, prefix_trie_add(t, &v->nets[i], (enum match_polarity)pol, rule));
    }
    for (size_t i = 0; i < v->n_asns; i++) {
        struct key_entry *e = key_map_get(&pi->asns, NULL, 0, v->asns[i]);

        note(b, e == NULL ? -ENOMEM : id_list_add(&e->own[pol], rule));
    }
}

static void add_names(struct build *b, struct key_map *map, const struct match_names *names,
                      int pol, uint32_t rule, bool domains)
{
    for (size_t i = 0; i < names->n; i++) {
        const char *name = names->names[i];
        bool suffix = domains && name[0] == '.';
        struct key_entry *e = key_map_get(map, name + suffix, strlen(name + suffix), 0);

        note(b, e == NULL ? -ENOMEM : id_list_add(&e->own[pol + (suffix ? 2 : 0)], rule));
    }
}

static void add_rule(struct build *b, const struct rule_match *m, uint32_t rule)
{
    struct rule_index *idx = b->idx;

    if (m == NULL || match_place_is_empty(&m->from[MATCH_POS]))
        note(b, id_list_add(&b->from_free, rule));
    if (m == NULL || (match_place_is_empty(&m->to[MATCH_POS]) && m->domains[MATCH_POS].n == 0))
        note(b, id_list_add(&b->host_free, rule));
    if (m != NULL && !match_place_is_empty(&m->to[MATCH_POS]))
        note(b, id_list_add(&b->to_addr_pos, rule));
    if (m == NULL || m->n_ports[MATCH_POS] == 0)
        note(b, id_list_add(&b->port_free, rule));
    if (m == NULL || m->users[MATCH_POS].n == 0)
        note(b, id_list_add(&b->user_free, rule));
    if (m == NULL || m->listeners[MATCH_POS].n == 0)
        note(b, id_list_add(&b->listener_free, rule));
    if (m == NULL)
        return;
    for (int pol = 0; pol < 2; pol++) {
        if (!match_place_is_empty(&m->from[pol]))
            idx->active |= DIM_FROM;
        if (!match_place_is_empty(&m->to[pol]) || m->domains[pol].n > 0)
            idx->active |= DIM_HOST;
        if (m->n_ports[pol] > 0)
            idx->active |= DIM_PORT;
        if (m->users[pol].n > 0)
            idx->active |= DIM_USER;
        if (m->listeners[pol].n > 0)
            idx->active |= DIM_LISTENER;
        add_place(b, &idx->from, b->from, &m->from[pol], pol, rule);
        add_place(b, &idx->to, b->to, &m->to[pol], pol, rule);
        add_names(b, &idx->domains, &m->domains[pol], pol, rule, true);
        add_names(b, &idx->users, &m->users[pol], pol, rule, false);
        add_names(b, &idx->listeners, &m->listeners[pol], pol, rule, false);
    }
}

static const struct rule_bits *make_bits(struct build *b, const struct id_list *l)
{
    return rule_bits_of(&b->idx->pool, l, &b->failed, &b->over);
}

static void finish_place(struct build *b, struct place_index *pi, struct place_lists *pl)
{
    for (int pol = 0; pol < 2; pol++) {
        for (size_t c = 0; c < COUNTRY_SET_SIZE; c++)
            pi->country[pol][c] = make_bits(b, &pl->country[pol][c]);
        pi->local[pol] = make_bits(b, &pl->local[pol]);
        pi->unknown[pol] = make_bits(b, &pl->unknown[pol]);
    }
    for (int f = 0; f < 2; f++)
        if (prefix_trie_finish(&pi->trie[f], &b->idx->pool, &b->over) != 0)
            b->failed = true;
    for (size_t k = 0; k < pi->asns.n; k++)
        for (int pol = 0; pol < 2; pol++)
            pi->asns.entries[k].set[pol] = make_bits(b, &pi->asns.entries[k].own[pol]);
}

static void finish_names(struct build *b, struct key_map *map)
{
    for (size_t k = 0; k < map->n; k++)
        for (int pol = 0; pol < 2; pol++)
            map->entries[k].set[pol] = make_bits(b, &map->entries[k].own[pol]);
}

/* A suffix entry's sets also hold the rules of every shorter suffix ("example.com" gets ".com"'s
 * rules), so the longest suffix found for a name is enough. */
static void finish_domain_suffixes(struct build *b, struct key_map *map)
{
    const struct id_list empty = {0};
    struct id_list acc = {0}, tmp = {0};

    for (size_t k = 0; k < map->n; k++) {
        const struct key_entry *e = &map->entries[k];

        for (int pol = 0; pol < 2; pol++) {
            if (e->own[2 + pol].n == 0)
                continue;
            note(b, id_list_union(&acc, &e->own[2 + pol], &empty));
            for (size_t i = 0; i < e->len; i++) {
                const struct key_entry *parent;
                struct id_list swap;

                if (e->name[i] != '.')
                    continue;
                parent = key_map_find(map, e->name + i + 1, e->len - i - 1, 0);
                if (parent == NULL || parent->own[2 + pol].n == 0)
                    continue;
                note(b, id_list_union(&tmp, &acc, &parent->own[2 + pol]));
                swap = acc;
                acc = tmp;
                tmp = swap;
            }
            map->entries[k].set[2 + pol] = make_bits(b, &acc);
        }
    }
    id_list_free(&acc);
    id_list_free(&tmp);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

size_t port_interval(const struct port_index *pi, uint32_t port)
{
    size_t lo = 0, hi = pi->n; /* starts[lo] <= port < starts[hi] */

    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;

        if (pi->starts[mid] <= port)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static void build_ports(struct build *b, const struct config *cfg)
{
    struct port_index *pi = &b->idx->ports;
    struct id_list *lists[2] = {NULL, NULL};
    size_t n = 1;

    for (size_t r = 0; r < cfg->n_rules; r++)
        for (int pol = 0; cfg->rules[r].match != NULL && pol < 2; pol++)
            n += 2 * cfg->rules[r].match->n_ports[pol];
    pi->starts = malloc(n * sizeof *pi->starts);
    if (pi->starts == NULL) {
        b->failed = true;
        return;
    }
    pi->starts[pi->n++] = 0;
    for (size_t r = 0; r < cfg->n_rules; r++) {
        const struct rule_match *m = cfg->rules[r].match;

        for (int pol = 0; m != NULL && pol < 2; pol++) {
            for (size_t i = 0; i < m->n_ports[pol]; i++) {
                pi->starts[pi->n++] = m->ports[pol][i].lo;
                if (m->ports[pol][i].hi < 65535)
                    pi->starts[pi->n++] = (uint32_t)m->ports[pol][i].hi + 1;
            }
        }
    }
    qsort(pi->starts, pi->n, sizeof *pi->starts, cmp_u32);
    n = 1;
    for (size_t i = 1; i < pi->n; i++)
        if (pi->starts[i] != pi->starts[n - 1])
            pi->starts[n++] = pi->starts[i];
    pi->n = n;
    for (int pol = 0; pol < 2; pol++) {
        lists[pol] = calloc(n, sizeof *lists[pol]);
        pi->set[pol] = calloc(n, sizeof *pi->set[pol]);
        if (lists[pol] == NULL || pi->set[pol] == NULL)
            b->failed = true;
    }
    for (size_t r = 0; !b->failed && r < cfg->n_rules; r++) {
        const struct rule_match *m = cfg->rules[r].match;

        for (int pol = 0; m != NULL && pol < 2; pol++) {
            for (size_t i = 0; i < m->n_ports[pol]; i++) {
                size_t last = port_interval(pi, m->ports[pol][i].hi);

                for (size_t j = port_interval(pi, m->ports[pol][i].lo); j <= last; j++)
                    note(b, id_list_add(&lists[pol][j], (uint32_t)r));
            }
        }
    }
    for (int pol = 0; pol < 2; pol++) {
        for (size_t j = 0; lists[pol] != NULL && j < n; j++) {
            if (pi->set[pol] != NULL)
                pi->set[pol][j] = make_bits(b, &lists[pol][j]);
            id_list_free(&lists[pol][j]);
        }
        free(lists[pol]);
    }
}

static void place_lists_free(struct place_lists *pl)
{
    if (pl == NULL)
        return;
    for (int pol = 0; pol < 2; pol++) {
        for (size_t c = 0; c < COUNTRY_SET_SIZE; c++)
            id_list_free(&pl->country[pol][c]);
        id_list_free(&pl->local[pol]);
        id_list_free(&pl->unknown[pol]);
    }
    free(pl);
}

static void build_all(struct build *b, const struct config *cfg)
{
    struct rule_index *idx = b->idx;

    for (int f = 0; f < 2; f++) {
        note(b, prefix_trie_init(&idx->from.trie[f], f == 0 ? MATCH_V4 : MATCH_V6));
        note(b, prefix_trie_init(&idx->to.trie[f], f == 0 ? MATCH_V4 : MATCH_V6));
    }
    if (b->failed)
        return;
    for (size_t r = 0; r < cfg->n_rules; r++)
        add_rule(b, cfg->rules[r].match, (uint32_t)r);
    idx->from_free = make_bits(b, &b->from_free);
    idx->host_free = make_bits(b, &b->host_free);
    idx->to_addr_pos = make_bits(b, &b->to_addr_pos);
    idx->port_free = make_bits(b, &b->port_free);
    idx->user_free = make_bits(b, &b->user_free);
    idx->listener_free = make_bits(b, &b->listener_free);
    finish_place(b, &idx->from, b->from);
    finish_place(b, &idx->to, b->to);
    finish_names(b, &idx->domains);
    finish_domain_suffixes(b, &idx->domains);
    finish_names(b, &idx->users);
    finish_names(b, &idx->listeners);
    build_ports(b, cfg);
}

int rule_index_build(const struct config *cfg, struct rule_index **out)
{
    struct build b;
    int ret;

    *out = NULL;
    memset(&b, 0, sizeof b);
    b.idx = calloc(1, sizeof *b.idx);
    b.from = calloc(1, sizeof *b.from);
    b.to = calloc(1, sizeof *b.to);
    if (b.idx == NULL || b.from == NULL || b.to == NULL) {
        ret = -ENOMEM;
        goto out;
    }
    b.idx->n_rules = cfg->n_rules;
    b.idx->n_words = (cfg->n_rules + 63) / 64;
    b.idx->pool.max_bytes = RULE_INDEX_MAX_BYTES;
    build_all(&b, cfg);
    ret = b.over ? -E2BIG : (b.failed ? -ENOMEM : 0);
out:
    place_lists_free(b.from);
    place_lists_free(b.to);
    id_list_free(&b.from_free);
    id_list_free(&b.host_free);
    id_list_free(&b.to_addr_pos);
    id_list_free(&b.port_free);
    id_list_free(&b.user_free);
    id_list_free(&b.listener_free);
    if (ret == 0)
        *out = b.idx;
    else
        rule_index_free(b.idx);
    return ret;
}

size_t rule_index_bytes(const struct rule_index *idx)
{
    return idx != NULL ? idx->pool.bytes : 0;
}

static void place_index_free(struct place_index *pi)
{
    prefix_trie_free(&pi->trie[0]);
    prefix_trie_free(&pi->trie[1]);
    key_map_free(&pi->asns);
}

void rule_index_free(struct rule_index *idx)
{
    if (idx == NULL)
        return;
    place_index_free(&idx->from);
    place_index_free(&idx->to);
    key_map_free(&idx->domains);
    key_map_free(&idx->users);
    key_map_free(&idx->listeners);
    free(idx->ports.starts);
    free(idx->ports.set[0]);
    free(idx->ports.set[1]);
    bits_pool_free(&idx->pool);
    free(idx);
}
