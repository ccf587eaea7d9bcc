/* Sets of rule numbers for the compiled index: sorted id lists while building, and ranged bitsets
 * (only the words from the first to the last set bit are stored) for evaluation. Internal to
 * policy/. */
#ifndef GEOPROXY_POLICY_RULE_BITS_H
#define GEOPROXY_POLICY_RULE_BITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Rule numbers in increasing order, without repeats. */
struct id_list {
    uint32_t *ids;
    size_t n, cap;
};

/* Bits lo*64 .. (lo+n)*64-1 of a rule set; every other bit is 0. */
struct rule_bits {
    size_t lo, n;
    size_t count; /* bits set */
    uint64_t w[];
};

/* Allocations of one index, counted against a cap so that memory stays bounded. */
struct bits_pool {
    void **blocks;
    size_t n, cap;
    size_t bytes, max_bytes;
};

/* Appends id unless it is already the last one (ids come in increasing order). -ENOMEM or 0. */
int id_list_add(struct id_list *l, uint32_t id);

/* out = a ∪ b (out is overwritten; it may not be a or b). Returns 0 or -ENOMEM. */
int id_list_union(struct id_list *out, const struct id_list *a, const struct id_list *b);

void id_list_free(struct id_list *l);

/* Allocates size bytes in the pool; NULL when out of memory or over the cap (*over set). */
void *bits_pool_alloc(struct bits_pool *pool, size_t size, bool *over);

void bits_pool_free(struct bits_pool *pool);

/* A ranged bitset of the ids (NULL for an empty list, or on failure with *failed set). */
struct rule_bits *rule_bits_of(struct bits_pool *pool, const struct id_list *l, bool *failed,
                               bool *over);

static inline uint64_t rule_bits_word(const struct rule_bits *b, size_t i)
{
    size_t k = i - b->lo; /* wraps for i < lo */

    return k < b->n ? b->w[k] : 0;
}

static inline void rule_bits_set(struct rule_bits *b, size_t id)
{
    b->w[id / 64 - b->lo] |= UINT64_C(1) << (id % 64);
}

#endif
