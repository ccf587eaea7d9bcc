/* Hash map of names and numbers (FNV-1a, linear probing). */
#include "policy/key_map.h"

#include <stdlib.h>
#include <string.h>

static uint64_t key_hash(const char *name, size_t len, uint32_t number)
{
    uint64_t h = UINT64_C(14695981039346656037);

    if (name == NULL) {
        h ^= number;
        h *= UINT64_C(1099511628211);
        return h ^ (h >> 29);
    }
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= UINT64_C(1099511628211);
    }
    return h ^ (h >> 29);
}

static bool key_equal(const struct key_entry *e, const char *name, size_t len, uint32_t number)
{
    if (name == NULL)
        return e->name == NULL && e->number == number;
    return e->name != NULL && e->len == len && memcmp(e->name, name, len) == 0;
}

static size_t key_slot(const struct key_map *m, const char *name, size_t len, uint32_t number)
{
    size_t mask = m->n_slots - 1;
    size_t i = (size_t)key_hash(name, len, number) & mask;

    while (m->slots[i] >= 0 && !key_equal(&m->entries[m->slots[i]], name, len, number))
        i = (i + 1) & mask;
    return i;
}

const struct key_entry *key_map_find(const struct key_map *m, const char *name, size_t len,
                                     uint32_t number)
{
    size_t i;

    if (m->n == 0)
        return NULL;
    i = key_slot(m, name, len, number);
    return m->slots[i] >= 0 ? &m->entries[m->slots[i]] : NULL;
}

static int key_map_rehash(struct key_map *m, size_t n_slots)
{
    int32_t *slots = malloc(n_slots * sizeof *slots);

    if (slots == NULL)
        return -1;
    memset(slots, 0xff, n_slots * sizeof *slots);
    free(m->slots);
    m->slots = slots;
    m->n_slots = n_slots;
    for (size_t k = 0; k < m->n; k++) {
        const struct key_entry *e = &m->entries[k];

        m->slots[key_slot(m, e->name, e->len, e->number)] = (int32_t)k;
    }
    return 0;
}

struct key_entry *key_map_get(struct key_map *m, const char *name, size_t len, uint32_t number)
{
    struct key_entry *e;
    size_t i;

    if (m->n_slots == 0 && key_map_rehash(m, 16) != 0)
        return NULL;
    i = key_slot(m, name, len, number);
    if (m->slots[i] >= 0)
        return &m->entries[m->slots[i]];
    if (m->n == m->cap) {
        size_t cap = m->cap == 0 ? 16 : m->cap * 2;
        struct key_entry *grown = realloc(m->entries, cap * sizeof *grown);

        if (grown == NULL || cap > INT32_MAX)
            return NULL;
        m->entries = grown;
        m->cap = cap;
    }
    e = &m->entries[m->n];
    memset(e, 0, sizeof *e);
    if (name != NULL) {
        e->name = malloc(len + 1);
        if (e->name == NULL)
            return NULL;
        memcpy(e->name, name, len);
        e->name[len] = '\0';
    }
    e->len = len;
    e->number = number;
    m->slots[i] = (int32_t)m->n++;
    if (m->n * 2 > m->n_slots && key_map_rehash(m, m->n_slots * 2) != 0)
        return NULL; /* the entry is in: the map stays consistent */
    return &m->entries[m->n - 1];
}

void key_map_free(struct key_map *m)
{
    for (size_t k = 0; k < m->n; k++) {
        free(m->entries[k].name);
        for (int s = 0; s < KEY_MAP_SLOTS; s++)
            id_list_free(&m->entries[k].own[s]);
    }
    free(m->entries);
    free(m->slots);
    memset(m, 0, sizeof *m);
}
