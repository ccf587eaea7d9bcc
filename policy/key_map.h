/* A hash map from a name (domain, user, listener) or a number (AS number) to the rules that name
 * it, for the compiled rule index. Open addressing; built once, then read-only. Internal to
 * policy/. */
#ifndef GEOPROXY_POLICY_KEY_MAP_H
#define GEOPROXY_POLICY_KEY_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "policy/rule_bits.h"

#define KEY_MAP_SLOTS 4 /* sets per key: [polarity] or [polarity + 2] for domain suffixes */

struct key_entry {
    char *name; /* NUL-terminated copy, or NULL for a number key */
    size_t len;
    uint32_t number;
    struct id_list own[KEY_MAP_SLOTS];          /* while building */
    const struct rule_bits *set[KEY_MAP_SLOTS]; /* after building */
};

struct key_map {
    struct key_entry *entries;
    size_t n, cap;
    int32_t *slots; /* index into entries, -1 empty */
    size_t n_slots; /* a power of two, at least twice n */
};

/* The entry for name[0..len) (or for number when name is NULL), created when missing. NULL when
 * out of memory. Pointers are valid until the next key_map_get. */
struct key_entry *key_map_get(struct key_map *m, const char *name, size_t len, uint32_t number);

/* The entry, or NULL. Never allocates. */
const struct key_entry *key_map_find(const struct key_map *m, const char *name, size_t len,
                                     uint32_t number);

void key_map_free(struct key_map *m);

#endif
