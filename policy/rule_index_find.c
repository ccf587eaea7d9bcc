/* Finding the first matching rule: with the compiled index, and by trying every rule in order
 * (the reference). Both never allocate. */
#include "policy/rule_index_internal.h"

#include <stdint.h>
#include <string.h>

#define DIM_SETS_MAX 10 /* sets one dimension can combine, each polarity */
#define DIMS_MAX 5

/* One dimension of a request: the rules that can match on it are the union of pos minus the
 * union of neg. */
struct dim {
    const struct rule_bits *pos[DIM_SETS_MAX];
    const struct rule_bits *neg[DIM_SETS_MAX];
    unsigned n_pos, n_neg;
    size_t lo, hi; /* the words where pos may have a bit */
    size_t weight; /* bits in pos, counted with repeats: tried first when small */
};

static void dim_add(struct dim *d, int pol, const struct rule_bits *b)
{
    if (b == NULL)
        return;
    if (pol == MATCH_POS)
        d->pos[d->n_pos++] = b;
    else
        d->neg[d->n_neg++] = b;
}

static void dim_add_place(struct dim *d, const struct place_index *pi, const struct match_net *a,
                          const struct geo_result *g)
{
    int c = g->cls == GEO_CLASS_COUNTRY ? country_code_index(g->country) : -1;
    const struct trie_node *node =
        a->family == MATCH_NONE ? NULL : prefix_trie_find(&pi->trie[a->family == MATCH_V6], a);
    const struct key_entry *asn = g->asn != 0 ? key_map_find(&pi->asns, NULL, 0, g->asn) : NULL;

    for (int pol = 0; pol < 2; pol++) {
        if (c >= 0)
            dim_add(d, pol, pi->country[pol][c]);
        if (g->local || g->cls == GEO_CLASS_LOCAL)
            dim_add(d, pol, pi->local[pol]);
        if (g->cls == GEO_CLASS_UNKNOWN)
            dim_add(d, pol, pi->unknown[pol]);
        if (node != NULL)
            dim_add(d, pol, node->set[pol]);
        if (asn != NULL)
            dim_add(d, pol, asn->set[pol]);
    }
}

static void dim_add_domains(struct dim *d, const struct key_map *map, const char *host, size_t len)
{
    const struct key_entry *e = key_map_find(map, host, len, 0);

    if (e != NULL) {
        dim_add(d, MATCH_POS, e->set[MATCH_POS]);
        dim_add(d, MATCH_NEG, e->set[MATCH_NEG]);
    }
    for (size_t i = 0; i <= len; i++) { /* the longest suffix that some rule names */
        if (i > 0 && host[i - 1] != '.')
            continue;
        e = key_map_find(map, host + i, len - i, 0);
        if (e != NULL && (e->set[2] != NULL || e->set[3] != NULL)) {
            dim_add(d, MATCH_POS, e->set[2]);
            dim_add(d, MATCH_NEG, e->set[3]);
            return;
        }
    }
}

static void dim_add_name(struct dim *d, const struct key_map *map, const char *name)
{
    const struct key_entry *e = name != NULL ? key_map_find(map, name, strlen(name), 0) : NULL;

    if (e != NULL) {
        dim_add(d, MATCH_POS, e->set[MATCH_POS]);
        dim_add(d, MATCH_NEG, e->set[MATCH_NEG]);
    }
}

/* Gathers the sets of every dimension some rule constrains; returns how many dimensions. */
static size_t dims_collect(const struct rule_index *idx, const struct match_request *r,
                           struct dim dims[DIMS_MAX])
{
    size_t n = 0;

    memset(dims, 0, DIMS_MAX * sizeof dims[0]);
    if (idx->active & DIM_PORT) {
        size_t i = port_interval(&idx->ports, r->port);

        dim_add(&dims[n], MATCH_POS, idx->port_free);
        dim_add(&dims[n], MATCH_POS, idx->ports.set[MATCH_POS][i]);
        dim_add(&dims[n++], MATCH_NEG, idx->ports.set[MATCH_NEG][i]);
    }
    if (idx->active & DIM_FROM) {
        dim_add(&dims[n], MATCH_POS, idx->from_free);
        dim_add_place(&dims[n++], &idx->from, &r->client, r->client_geo);
    }
    if (idx->active & DIM_HOST) {
        dim_add(&dims[n], MATCH_POS, idx->host_free);
        if (r->host != NULL)
            dim_add_domains(&dims[n], &idx->domains, r->host, r->host_len);
        if (r->dest_known)
            dim_add_place(&dims[n], &idx->to, &r->dest, r->dest_geo);
        else if (r->named)
            dim_add(&dims[n], MATCH_POS, idx->to_addr_pos); /* may need the address */
        n++;
    }
    if (idx->active & DIM_USER) {
        dim_add(&dims[n], MATCH_POS, idx->user_free);
        dim_add_name(&dims[n++], &idx->users, r->user);
    }
    if (idx->active & DIM_LISTENER) {
        dim_add(&dims[n], MATCH_POS, idx->listener_free);
        dim_add_name(&dims[n++], &idx->listeners, r->listener);
    }
    return n;
}

static inline uint64_t dim_word(const struct dim *d, size_t w)
{
    uint64_t pos = 0, neg = 0;

    for (unsigned i = 0; i < d->n_pos; i++)
        pos |= rule_bits_word(d->pos[i], w);
    if (pos == 0)
        return 0;
    for (unsigned i = 0; i < d->n_neg; i++)
        neg |= rule_bits_word(d->neg[i], w);
    return pos & ~neg;
}

/* What rule i says: FOUND, NEED_ADDRESS, or RULE_NONE to go on. */
static enum rule_find rule_try(const struct config_rule *rule, const struct match_request *r)
{
    switch (rule_match_eval(rule->match, r)) {
    case MATCH_YES:
        return RULE_FOUND;
    case MATCH_NEED:
        return rule->no_resolve ? RULE_NONE : RULE_NEED_ADDRESS;
    case MATCH_NO:
        break;
    }
    return RULE_NONE;
}

/* Computes each dimension's word range and weight, puts the lightest dimension first, and
 * narrows [*lo, *hi) to the words every dimension may have. */
static void dims_order(struct dim *dims, size_t n, size_t *lo, size_t *hi)
{
    for (size_t d = 0; d < n; d++) {
        struct dim *x = &dims[d];

        x->lo = SIZE_MAX;
        x->hi = 0;
        for (unsigned i = 0; i < x->n_pos; i++) {
            const struct rule_bits *b = x->pos[i];

            x->lo = b->lo < x->lo ? b->lo : x->lo;
            x->hi = b->lo + b->n > x->hi ? b->lo + b->n : x->hi;
            x->weight += b->count;
        }
        *lo = x->lo > *lo ? x->lo : *lo;
        *hi = x->hi < *hi ? x->hi : *hi;
    }
    for (size_t d = 1; d < n; d++) {
        struct dim x = dims[d];
        size_t k = d;

        for (; k > 0 && dims[k - 1].weight > x.weight; k--)
            dims[k] = dims[k - 1];
        dims[k] = x;
    }
}

enum rule_find rule_index_find(const struct rule_index *idx, const struct config *cfg,
                               const struct match_request *r, size_t *rule)
{
    return rule_index_find_from(idx, cfg, r, 0, rule);
}

enum rule_find rule_index_find_from(const struct rule_index *idx, const struct config *cfg,
                                    const struct match_request *r, size_t start, size_t *rule)
{
    struct dim dims[DIMS_MAX];
    size_t n_dims = dims_collect(idx, r, dims);
    size_t tail = idx->n_rules % 64;
    size_t lo = start / 64, hi = idx->n_words;

    dims_order(dims, n_dims, &lo, &hi);
    for (size_t w = lo; w < hi; w++) {
        uint64_t acc =
            (w + 1 == idx->n_words && tail != 0) ? (UINT64_C(1) << tail) - 1 : ~UINT64_C(0);

        if (w == start / 64)
            acc &= ~UINT64_C(0) << (start % 64);

        for (size_t d = 0; d < n_dims && acc != 0; d++)
            acc &= dim_word(&dims[d], w);
        for (; acc != 0; acc &= acc - 1) {
            size_t i = w * 64 + (size_t)__builtin_ctzll(acc);
            enum rule_find found = rule_try(&cfg->rules[i], r);

            if (found != RULE_NONE) {
                *rule = i;
                return found;
            }
        }
    }
    return RULE_NONE;
}

enum rule_find rule_find_linear(const struct config *cfg, const struct match_request *r,
                                size_t *rule)
{
    for (size_t i = 0; i < cfg->n_rules; i++) {
        enum rule_find found = rule_try(&cfg->rules[i], r);

        if (found != RULE_NONE) {
            *rule = i;
            return found;
        }
    }
    return RULE_NONE;
}

void match_request_init(struct match_request *r, const struct policy_request *req, char *host_buf)
{
    int len;

    memset(r, 0, sizeof *r);
    match_net_from_sockaddr(req->client, &r->client);
    r->client_geo = &req->client_geo;
    r->dest_known = req->dest != NULL;
    match_net_from_sockaddr(req->dest, &r->dest);
    r->dest_geo = &req->dest_geo;
    r->named = req->host != NULL;
    len = req->host != NULL ? match_host_normalize(req->host, host_buf) : -1;
    if (len >= 0) {
        r->host = host_buf;
        r->host_len = (size_t)len;
    }
    r->port = req->port;
    r->user = req->user;
    r->listener = req->listener;
}
