#include "proxy/resolver_cache.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "proxy/siphash.h"

#define DNS_NAME_MAX 253
#define DNS_LABEL_MAX 63
#define CACHE_BUCKETS_MAX (1u << 20)

/* ---- names ---- */

int resolver_name_normalize(const char *host, char *out, size_t len)
{
    size_t n = strnlen(host, DNS_NAME_MAX + 2);
    if (n > 0 && host[n - 1] == '.')
        n--;
    if (n == 0 || n > DNS_NAME_MAX || n + 1 > len)
        return -1;

    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)host[i];
        if (ch <= 0x20 || ch == 0x7f || ch == '\\')
            return -1;
        if (ch == '.') {
            if (label == 0)
                return -1;
            label = 0;
        } else if (++label > DNS_LABEL_MAX) {
            return -1;
        }
        out[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : (char)ch;
    }
    if (label == 0) /* "a.." */
        return -1;
    out[n] = '\0';
    return (int)n;
}

/* ---- address ordering ---- */

static bool addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
    return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0 &&
           x->sin6_scope_id == y->sin6_scope_id;
}

static size_t addrs_pick_family(const struct sockaddr_storage *in, size_t n, int family,
                                const struct sockaddr_storage **picked)
{
    size_t count = 0;
    for (size_t i = 0; i < n && count < RESOLVER_MAX_ADDRS; i++) {
        if (in[i].ss_family != family)
            continue;
        bool seen = false;
        for (size_t j = 0; j < count && !seen; j++)
            seen = addr_equal(picked[j], &in[i]);
        if (!seen)
            picked[count++] = &in[i];
    }
    return count;
}

void resolver_addrs_order(const struct sockaddr_storage *in, size_t n, struct resolver_answer *out)
{
    const struct sockaddr_storage *v6[RESOLVER_MAX_ADDRS];
    const struct sockaddr_storage *v4[RESOLVER_MAX_ADDRS];
    size_t n6 = addrs_pick_family(in, n, AF_INET6, v6);
    size_t n4 = addrs_pick_family(in, n, AF_INET, v4);
    size_t i6 = 0, i4 = 0;

    out->n_addrs = 0;
    while (out->n_addrs < RESOLVER_MAX_ADDRS && (i6 < n6 || i4 < n4)) {
        if (i6 < n6)
            out->addrs[out->n_addrs++] = *v6[i6++];
        if (i4 < n4 && out->n_addrs < RESOLVER_MAX_ADDRS)
            out->addrs[out->n_addrs++] = *v4[i4++];
    }
}

/* ---- the cache: chained hash table plus an LRU list ---- */

struct cache_addr {
    uint8_t family; /* AF_INET or AF_INET6 */
    uint8_t bytes[16];
    uint32_t scope_id;
};

struct cache_entry {
    struct cache_entry *hash_next;
    struct cache_entry *lru_prev; /* towards the most recently used */
    struct cache_entry *lru_next; /* towards the least recently used */
    uint64_t hash;
    uint64_t expires_ms;
    enum outbound_status status;
    size_t n_addrs;
    size_t name_len;
    char *name; /* points behind addrs[] */
    struct cache_addr addrs[];
};

struct resolver_cache {
    struct cache_entry **buckets;
    size_t n_buckets; /* a power of two */
    size_t count;
    size_t capacity;
    struct cache_entry *lru_head; /* most recently used */
    struct cache_entry *lru_tail; /* least recently used: evicted first */
    uint8_t hash_key[16];
};

struct resolver_cache *resolver_cache_new(uint32_t capacity, const uint8_t hash_key[16])
{
    struct resolver_cache *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->n_buckets = 16;
    while (c->n_buckets < capacity && c->n_buckets < CACHE_BUCKETS_MAX)
        c->n_buckets *= 2;
    c->buckets = calloc(c->n_buckets, sizeof(*c->buckets));
    if (c->buckets == NULL) {
        free(c);
        return NULL;
    }
    c->capacity = capacity;
    memcpy(c->hash_key, hash_key, sizeof(c->hash_key));
    return c;
}

void resolver_cache_free(struct resolver_cache *c)
{
    if (c == NULL)
        return;
    struct cache_entry *e = c->lru_head;
    while (e != NULL) {
        struct cache_entry *next = e->lru_next;
        free(e);
        e = next;
    }
    free(c->buckets);
    free(c);
}

size_t resolver_cache_count(const struct resolver_cache *c)
{
    return c->count;
}

static void lru_unlink(struct resolver_cache *c, struct cache_entry *e)
{
    if (e->lru_prev != NULL)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->lru_head = e->lru_next;
    if (e->lru_next != NULL)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_head(struct resolver_cache *c, struct cache_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    if (c->lru_head != NULL)
        c->lru_head->lru_prev = e;
    c->lru_head = e;
    if (c->lru_tail == NULL)
        c->lru_tail = e;
}

/* Returns the link that points at the entry for 'name', or at the NULL ending its chain. */
static struct cache_entry **cache_find(struct resolver_cache *c, const char *name, size_t len,
                                       uint64_t hash)
{
    struct cache_entry **link = &c->buckets[hash & (c->n_buckets - 1)];
    while (*link != NULL) {
        struct cache_entry *e = *link;
        if (e->hash == hash && e->name_len == len && memcmp(e->name, name, len) == 0)
            break;
        link = &e->hash_next;
    }
    return link;
}

static void cache_remove(struct resolver_cache *c, struct cache_entry *e)
{
    struct cache_entry **link = cache_find(c, e->name, e->name_len, e->hash);
    *link = e->hash_next;
    lru_unlink(c, e);
    c->count--;
    free(e);
}

bool resolver_cache_get(struct resolver_cache *c, const char *name, uint64_t now_ms,
                        enum outbound_status *status, struct resolver_answer *answer)
{
    size_t len = strlen(name);
    uint64_t hash = siphash24(c->hash_key, name, len);
    struct cache_entry *e = *cache_find(c, name, len, hash);
    if (e == NULL)
        return false;
    if (e->expires_ms <= now_ms) {
        cache_remove(c, e);
        return false;
    }
    lru_unlink(c, e);
    lru_push_head(c, e);

    *status = e->status;
    answer->n_addrs = 0;
    for (size_t i = 0; i < e->n_addrs; i++) {
        struct sockaddr_storage *ss = &answer->addrs[answer->n_addrs++];
        memset(ss, 0, sizeof(*ss));
        if (e->addrs[i].family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)ss;
            sin->sin_family = AF_INET;
            memcpy(&sin->sin_addr, e->addrs[i].bytes, sizeof(sin->sin_addr));
        } else {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
            sin6->sin6_family = AF_INET6;
            memcpy(&sin6->sin6_addr, e->addrs[i].bytes, sizeof(sin6->sin6_addr));
            sin6->sin6_scope_id = e->addrs[i].scope_id;
        }
    }
    return true;
}

static size_t answer_pack(const struct resolver_answer *answer, struct cache_addr *out)
{
    size_t n = 0;
    for (size_t i = 0; answer != NULL && i < answer->n_addrs && i < RESOLVER_MAX_ADDRS; i++) {
        const struct sockaddr_storage *ss = &answer->addrs[i];
        if (ss->ss_family == AF_INET) {
            const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
            out[n] = (struct cache_addr){.family = AF_INET};
            memcpy(out[n].bytes, &sin->sin_addr, sizeof(sin->sin_addr));
            n++;
        } else if (ss->ss_family == AF_INET6) {
            const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
            out[n] = (struct cache_addr){.family = AF_INET6, .scope_id = sin6->sin6_scope_id};
            memcpy(out[n].bytes, &sin6->sin6_addr, sizeof(sin6->sin6_addr));
            n++;
        }
    }
    return n;
}

int resolver_cache_put(struct resolver_cache *c, const char *name, enum outbound_status status,
                       const struct resolver_answer *answer, uint64_t expires_ms)
{
    if (c->capacity == 0)
        return 0;
    struct cache_addr packed[RESOLVER_MAX_ADDRS];
    size_t n_addrs = status == OUTBOUND_OK ? answer_pack(answer, packed) : 0;
    size_t len = strlen(name);
    uint64_t hash = siphash24(c->hash_key, name, len);

    struct cache_entry *e = malloc(sizeof(*e) + n_addrs * sizeof(e->addrs[0]) + len + 1);
    if (e == NULL)
        return UV_ENOMEM;
    *e = (struct cache_entry){.hash = hash,
                              .expires_ms = expires_ms,
                              .status = status,
                              .n_addrs = n_addrs,
                              .name_len = len};
    memcpy(e->addrs, packed, n_addrs * sizeof(e->addrs[0]));
    e->name = (char *)(e->addrs + n_addrs);
    memcpy(e->name, name, len + 1);

    struct cache_entry *old = *cache_find(c, name, len, hash);
    if (old != NULL)
        cache_remove(c, old);
    else if (c->count >= c->capacity)
        cache_remove(c, c->lru_tail);

    struct cache_entry **bucket = &c->buckets[hash & (c->n_buckets - 1)];
    e->hash_next = *bucket;
    *bucket = e;
    lru_push_head(c, e);
    c->count++;
    return 0;
}
