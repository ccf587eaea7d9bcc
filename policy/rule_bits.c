/* Rule sets for the compiled index: id lists and ranged bitsets in a capped pool. */
#include "policy/rule_bits.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int id_list_reserve(struct id_list *l, size_t need)
{
    size_t cap = l->cap == 0 ? 4 : l->cap;
    uint32_t *grown;

    if (need <= l->cap)
        return 0;
    while (cap < need)
        cap *= 2;
    grown = realloc(l->ids, cap * sizeof *grown);
    if (grown == NULL)
        return -ENOMEM;
    l->ids = grown;
    l->cap = cap;
    return 0;
}

int id_list_add(struct id_list *l, uint32_t id)
{
    if (l->n > 0 && l->ids[l->n - 1] == id)
        return 0;
    if (id_list_reserve(l, l->n + 1) != 0)
        return -ENOMEM;
    l->ids[l->n++] = id;
    return 0;
}

int id_list_union(struct id_list *out, const struct id_list *a, const struct id_list *b)
{
    size_t i = 0, j = 0;

    out->n = 0;
    if (id_list_reserve(out, a->n + b->n) != 0)
        return -ENOMEM;
    while (i < a->n || j < b->n) {
        uint32_t x;

        if (j == b->n || (i < a->n && a->ids[i] < b->ids[j]))
            x = a->ids[i++];
        else if (i == a->n || b->ids[j] < a->ids[i])
            x = b->ids[j++];
        else {
            x = a->ids[i++];
            j++;
        }
        out->ids[out->n++] = x;
    }
    return 0;
}

void id_list_free(struct id_list *l)
{
    free(l->ids);
    l->ids = NULL;
    l->n = l->cap = 0;
}

void *bits_pool_alloc(struct bits_pool *pool, size_t size, bool *over)
{
    void *block;

    if (pool->bytes + size > pool->max_bytes) {
        *over = true;
        return NULL;
    }
    if (pool->n == pool->cap) {
        size_t cap = pool->cap == 0 ? 64 : pool->cap * 2;
        void **grown = realloc(pool->blocks, cap * sizeof *grown);

        if (grown == NULL)
            return NULL;
        pool->blocks = grown;
        pool->cap = cap;
    }
    block = calloc(1, size);
    if (block == NULL)
        return NULL;
    pool->blocks[pool->n++] = block;
    pool->bytes += size;
    return block;
}

void bits_pool_free(struct bits_pool *pool)
{
    for (size_t i = 0; i < pool->n; i++)
        free(pool->blocks[i]);
    free(pool->blocks);
    memset(pool, 0, sizeof *pool);
}

static struct rule_bits *bits_new(struct bits_pool *pool, size_t lo, size_t n, bool *failed,
                                  bool *over)
{
    struct rule_bits *b = bits_pool_alloc(pool, sizeof *b + n * sizeof(uint64_t), over);

    if (b == NULL) {
        *failed = true;
        return NULL;
    }
    b->lo = lo;
    b->n = n;
    return b;
}

struct rule_bits *rule_bits_of(struct bits_pool *pool, const struct id_list *l, bool *failed,
                               bool *over)
{
    struct rule_bits *b;

    if (l->n == 0)
        return NULL;
    b = bits_new(pool, l->ids[0] / 64, l->ids[l->n - 1] / 64 - l->ids[0] / 64 + 1, failed, over);
    for (size_t i = 0; b != NULL && i < l->n; i++)
        rule_bits_set(b, l->ids[i]);
    if (b != NULL)
        b->count = l->n;
    return b;
}
