#include "proxy/client_limits.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "proxy/siphash.h"

#define MILLI 1000u /* the bucket counts thousandths of a connection */

/* One client. A slot with family 0 is free. */
struct client_entry {
    uint8_t addr[16]; /* IPv4: 4 bytes; IPv6: the /64, the rest zero */
    uint8_t family;   /* 4 or 6 */
    uint8_t home;     /* the slot the hash chose, where probing for it starts */
    uint32_t conns;
    uint32_t rate;       /* the rate the bucket fills at; 0: no bucket (always full) */
    uint64_t tokens;     /* thousandths of a token, at most rate * MILLI */
    uint64_t filled_ms;  /* when 'tokens' was last brought up to date */
    uint64_t warned_ms1; /* last refusal warning + 1; 0: never */
};

struct client_key {
    uint8_t bytes[17]; /* family, then the address */
};

struct client_stripe {
    uv_mutex_t lock;
    struct client_entry slots[CLIENT_STRIPE_SLOTS];
};

struct client_table {
    uint8_t key[SIPHASH_KEY_BYTES];
    atomic_uint_fast64_t full_warned_ms1; /* last "table full" warning + 1; 0: never */
    struct client_stripe stripes[CLIENT_TABLE_STRIPES];
};

/* ---- keys and slots ----------------------------------------------------------------------- */

/* The client an address belongs to; false for a family that is not counted. */
static bool client_key_of(const struct sockaddr *addr, struct client_key *k)
{
    memset(k, 0, sizeof(*k));
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        k->bytes[0] = 4;
        memcpy(k->bytes + 1, &in->sin_addr, 4);
        return true;
    }
    if (addr->sa_family != AF_INET6)
        return false;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
        k->bytes[0] = 4;
        memcpy(k->bytes + 1, in6->sin6_addr.s6_addr + 12, 4);
        return true;
    }
    k->bytes[0] = 6;
    memcpy(k->bytes + 1, in6->sin6_addr.s6_addr, 8); /* the /64 */
    return true;
}

static bool entry_has_key(const struct client_entry *e, const struct client_key *k)
{
    return e->family == k->bytes[0] && memcmp(e->addr, k->bytes + 1, sizeof(e->addr)) == 0;
}

/* Linear probing from 'home' within the stripe; a free slot ends a chain (entries are only ever
 * removed by stripe_compact, which rebuilds every chain). */
static int stripe_find(const struct client_stripe *s, const struct client_key *k, unsigned home)
{
    for (unsigned i = 0; i < CLIENT_STRIPE_SLOTS; i++) {
        unsigned at = (home + i) % CLIENT_STRIPE_SLOTS;
        if (s->slots[at].family == 0)
            return -1;
        if (entry_has_key(&s->slots[at], k))
            return (int)at;
    }
    return -1;
}

static int stripe_free_slot(const struct client_stripe *s, unsigned home)
{
    for (unsigned i = 0; i < CLIENT_STRIPE_SLOTS; i++) {
        unsigned at = (home + i) % CLIENT_STRIPE_SLOTS;
        if (s->slots[at].family == 0)
            return (int)at;
    }
    return -1;
}

/* ---- the bucket ----------------------------------------------------------------------------- */

static uint64_t bucket_size(uint32_t rate)
{
    return (uint64_t)rate * MILLI;
}

/* The tokens the bucket holds at 'now' (rate tokens a second, thousandths per millisecond). */
static uint64_t bucket_level(const struct client_entry *e, uint64_t now_ms)
{
    uint64_t size = bucket_size(e->rate);
    uint64_t elapsed = now_ms > e->filled_ms ? now_ms - e->filled_ms : 0;
    if (elapsed >= MILLI || e->tokens >= size)
        return size; /* a whole second refills any bucket: its size is one second's worth */
    uint64_t level = e->tokens + elapsed * e->rate;
    return level < size ? level : size;
}

/* Brings the bucket up to date and moves it to 'rate' (a reload may have changed it). */
static void bucket_update(struct client_entry *e, uint32_t rate, uint64_t now_ms)
{
    e->tokens = e->rate == 0 ? bucket_size(rate) : bucket_level(e, now_ms);
    e->rate = rate;
    if (e->tokens > bucket_size(rate))
        e->tokens = bucket_size(rate);
    e->filled_ms = now_ms;
}

/* No connection open and a full bucket: the entry says nothing a new one would not. */
static bool entry_is_idle(const struct client_entry *e, uint64_t now_ms)
{
    return e->conns == 0 && (e->rate == 0 || bucket_level(e, now_ms) == bucket_size(e->rate));
}

/* Drops the idle entries and puts the others back in their chains. */
static void stripe_compact(struct client_stripe *s, uint64_t now_ms)
{
    struct client_entry kept[CLIENT_STRIPE_SLOTS];
    size_t n = 0;
    for (size_t i = 0; i < CLIENT_STRIPE_SLOTS; i++)
        if (s->slots[i].family != 0 && !entry_is_idle(&s->slots[i], now_ms))
            kept[n++] = s->slots[i];
    memset(s->slots, 0, sizeof(s->slots));
    for (size_t i = 0; i < n; i++)
        s->slots[stripe_free_slot(s, kept[i].home)] = kept[i]; /* n <= slots: always found */
}

/* True (and records it) when the last warning in *last_ms1 is an interval old or never was. */
static bool warn_is_due(uint64_t *last_ms1, uint64_t now_ms)
{
    if (*last_ms1 != 0 && now_ms + 1 - *last_ms1 < CLIENT_WARN_INTERVAL_MS)
        return false;
    *last_ms1 = now_ms + 1;
    return true;
}

static bool table_full_warn_is_due(struct client_table *t, uint64_t now_ms)
{
    uint64_t last = atomic_load_explicit(&t->full_warned_ms1, memory_order_relaxed);
    if (last != 0 && now_ms + 1 - last < CLIENT_WARN_INTERVAL_MS)
        return false;
    return atomic_compare_exchange_strong(&t->full_warned_ms1, &last, now_ms + 1);
}

static struct client_stripe *table_locate(struct client_table *t, const struct client_key *k,
                                          unsigned *home)
{
    uint64_t h = siphash24(t->key, k->bytes, sizeof(k->bytes));
    *home = (unsigned)(h % CLIENT_STRIPE_SLOTS);
    return &t->stripes[(h >> 32) % CLIENT_TABLE_STRIPES];
}

/* ---- the table ------------------------------------------------------------------------------ */

struct client_table *client_table_new(const uint8_t key[16])
{
    struct client_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    memcpy(t->key, key, sizeof(t->key));
    atomic_init(&t->full_warned_ms1, 0);
    for (size_t i = 0; i < CLIENT_TABLE_STRIPES; i++) {
        if (uv_mutex_init(&t->stripes[i].lock) != 0) {
            while (i-- > 0)
                uv_mutex_destroy(&t->stripes[i].lock);
            free(t);
            return NULL;
        }
    }
    return t;
}

void client_table_free(struct client_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < CLIENT_TABLE_STRIPES; i++)
        uv_mutex_destroy(&t->stripes[i].lock);
    free(t);
}

/* Finds the client's entry or makes one; NULL when its stripe is full of live entries. */
static struct client_entry *stripe_get(struct client_stripe *s, const struct client_key *k,
                                       unsigned home, uint32_t rate, uint64_t now_ms)
{
    int at = stripe_find(s, k, home);
    if (at >= 0)
        return &s->slots[at];
    at = stripe_free_slot(s, home);
    if (at < 0) {
        stripe_compact(s, now_ms);
        at = stripe_free_slot(s, home);
        if (at < 0)
            return NULL;
    }
    struct client_entry *e = &s->slots[at];
    memset(e, 0, sizeof(*e));
    e->family = k->bytes[0];
    memcpy(e->addr, k->bytes + 1, sizeof(e->addr));
    e->home = (uint8_t)home;
    e->rate = rate;
    e->tokens = bucket_size(rate);
    e->filled_ms = now_ms;
    return e;
}

enum client_admit_result client_table_admit(struct client_table *t, const struct sockaddr *addr,
                                            const struct client_limits *limits, uint64_t now_ms,
                                            bool *warn)
{
    struct client_key k;
    unsigned home;
    *warn = false;
    if (!client_key_of(addr, &k))
        return CLIENT_ADMIT_UNSUPPORTED;
    struct client_stripe *s = table_locate(t, &k, &home);
    uv_mutex_lock(&s->lock);
    struct client_entry *e = stripe_get(s, &k, home, limits->rate_per_s, now_ms);
    if (e == NULL) {
        uv_mutex_unlock(&s->lock);
        *warn = table_full_warn_is_due(t, now_ms);
        return CLIENT_ADMIT_UNTRACKED;
    }
    bucket_update(e, limits->rate_per_s, now_ms);
    enum client_admit_result result = CLIENT_ADMITTED;
    if (limits->max_conns != 0 && e->conns >= limits->max_conns) {
        result = CLIENT_REFUSED_CONNS;
    } else if (e->rate != 0 && e->tokens < MILLI) {
        result = CLIENT_REFUSED_RATE;
    } else {
        e->conns++;
        if (e->rate != 0)
            e->tokens -= MILLI;
    }
    if (result != CLIENT_ADMITTED)
        *warn = warn_is_due(&e->warned_ms1, now_ms);
    uv_mutex_unlock(&s->lock);
    return result;
}

void client_table_release(struct client_table *t, const struct sockaddr *addr, uint64_t now_ms)
{
    struct client_key k;
    unsigned home;
    if (!client_key_of(addr, &k))
        return;
    struct client_stripe *s = table_locate(t, &k, &home);
    uv_mutex_lock(&s->lock);
    int at = stripe_find(s, &k, home);
    if (at >= 0) {
        struct client_entry *e = &s->slots[at];
        if (e->conns > 0)
            e->conns--;
        if (entry_is_idle(e, now_ms))
            stripe_compact(s, now_ms);
    }
    uv_mutex_unlock(&s->lock);
}

uint32_t client_table_conns(struct client_table *t, const struct sockaddr *addr)
{
    struct client_key k;
    unsigned home;
    uint32_t n = 0;
    if (!client_key_of(addr, &k))
        return 0;
    struct client_stripe *s = table_locate(t, &k, &home);
    uv_mutex_lock(&s->lock);
    int at = stripe_find(s, &k, home);
    if (at >= 0)
        n = s->slots[at].conns;
    uv_mutex_unlock(&s->lock);
    return n;
}

size_t client_table_entries(struct client_table *t)
{
    size_t n = 0;
    for (size_t i = 0; i < CLIENT_TABLE_STRIPES; i++) {
        uv_mutex_lock(&t->stripes[i].lock);
        for (size_t j = 0; j < CLIENT_STRIPE_SLOTS; j++)
            n += t->stripes[i].slots[j].family != 0;
        uv_mutex_unlock(&t->stripes[i].lock);
    }
    return n;
}
