#include "proxy/upstream_health.h"

#include <stdio.h>
#include <string.h>

int upstream_health_init(struct upstream_health *h)
{
    memset(h, 0, sizeof(*h));
    return uv_mutex_init(&h->lock);
}

void upstream_health_destroy(struct upstream_health *h)
{
    uv_mutex_destroy(&h->lock);
}

static struct upstream_health_entry *health_find(struct upstream_health *h, const char *name)
{
    size_t n = atomic_load_explicit(&h->n, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (strcmp(h->entries[i].name, name) == 0)
            return &h->entries[i];
    return NULL;
}

struct upstream_health_entry *upstream_health_entry(struct upstream_health *h, const char *name)
{
    struct upstream_health_entry *e = health_find(h, name);
    if (e != NULL)
        return e;
    uv_mutex_lock(&h->lock);
    e = health_find(h, name);
    size_t n = atomic_load_explicit(&h->n, memory_order_relaxed);
    if (e == NULL && n < UPSTREAM_HEALTH_MAX) {
        e = &h->entries[n];
        snprintf(e->name, sizeof(e->name), "%s", name);
        atomic_store_explicit(&e->state, UPSTREAM_UNCHECKED, memory_order_relaxed);
        atomic_store_explicit(&h->n, n + 1, memory_order_release);
    }
    uv_mutex_unlock(&h->lock);
    return e;
}

bool upstream_health_usable(struct upstream_health *h, const struct config_upstream *u)
{
    struct upstream_health_entry *e = upstream_health_entry(h, u->name);
    if (e == NULL)
        return u->egress[0] == '\0';
    int state = atomic_load_explicit(&e->state, memory_order_relaxed);
    return state == UPSTREAM_UP || (state == UPSTREAM_UNCHECKED && u->egress[0] == '\0');
}

bool upstream_health_up(struct upstream_health *h, const struct config *cfg,
                        const struct config_upstream *u)
{
    if (u->kind != UPSTREAM_GROUP)
        return upstream_health_usable(h, u);
    for (size_t i = 0; i < u->n_members; i++)
        if (upstream_health_usable(h, &cfg->upstreams[u->members[i]]))
            return true;
    return false;
}

bool upstream_health_report(struct upstream_health *h, const struct config_upstream *u, bool up,
                            const char *reason, const char *egress, uint64_t latency_us)
{
    struct upstream_health_entry *e = upstream_health_entry(h, u->name);
    if (e == NULL)
        return false;
    int state = up ? UPSTREAM_UP : UPSTREAM_DOWN;
    if (up)
        atomic_store_explicit(&e->latency_us, latency_us, memory_order_relaxed);
    uv_mutex_lock(&h->lock);
    snprintf(e->reason, sizeof(e->reason), "%s", up || reason == NULL ? "" : reason);
    if (egress != NULL)
        snprintf(e->egress, sizeof(e->egress), "%s", egress);
    uv_mutex_unlock(&h->lock);
    int before = atomic_exchange_explicit(&e->state, state, memory_order_relaxed);
    if (before == state)
        return false;
    atomic_fetch_add_explicit(&e->changes, 1, memory_order_relaxed);
    return true;
}

size_t upstream_health_candidates(struct upstream_health *h, const struct config *cfg,
                                  const struct config_upstream *via,
                                  const struct config_upstream **out, size_t cap)
{
    if (via->kind != UPSTREAM_GROUP) {
        if (cap == 0 || !upstream_health_usable(h, via))
            return 0;
        out[0] = via;
        return 1;
    }
    size_t start = 0;
    if (via->strategy == UPSTREAM_ROUND_ROBIN && via->n_members > 0)
        start =
            atomic_fetch_add_explicit(&h->round_robin, 1, memory_order_relaxed) % via->n_members;
    size_t n = 0;
    for (size_t i = 0; i < via->n_members && n < cap; i++) {
        const struct config_upstream *m =
            &cfg->upstreams[via->members[(start + i) % via->n_members]];
        if (upstream_health_usable(h, m))
            out[n++] = m;
    }
    return n;
}

void upstream_health_texts(struct upstream_health *h, struct upstream_health_entry *e,
                           char reason[UPSTREAM_HEALTH_TEXT_MAX], char egress[64])
{
    uv_mutex_lock(&h->lock);
    memcpy(reason, e->reason, UPSTREAM_HEALTH_TEXT_MAX);
    memcpy(egress, e->egress, 64);
    uv_mutex_unlock(&h->lock);
}

const char *upstream_state_name(enum upstream_state s)
{
    switch (s) {
    case UPSTREAM_UNCHECKED:
        return "unchecked";
    case UPSTREAM_UP:
        return "up";
    case UPSTREAM_DOWN:
        return "down";
    }
    return "?";
}
