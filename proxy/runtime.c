#include "proxy/runtime.h"

int runtime_init(struct runtime *rt, struct policy_snapshot *first)
{
    if (pseudonym_key_init(&rt->pseudonym_key) != 0)
        return UV_EIO;
    int err = uv_mutex_init(&rt->lock);
    if (err != 0)
        return err;
    err = events_hub_init(&rt->events);
    if (err != 0) {
        uv_mutex_destroy(&rt->lock);
        return err;
    }
    err = upstream_health_init(&rt->health);
    if (err != 0) {
        events_hub_destroy(&rt->events);
        uv_mutex_destroy(&rt->lock);
        return err;
    }
    rt->current = first;
    atomic_init(&rt->active_conns, 0);
    atomic_init(&rt->next_conn_id, 1);
    return 0;
}

void runtime_destroy(struct runtime *rt)
{
    policy_snapshot_release(rt->current);
    rt->current = NULL;
    upstream_health_destroy(&rt->health);
    events_hub_destroy(&rt->events);
    uv_mutex_destroy(&rt->lock);
}

struct policy_snapshot *runtime_acquire_snapshot(struct runtime *rt)
{
    uv_mutex_lock(&rt->lock);
    struct policy_snapshot *snap = policy_snapshot_acquire(rt->current);
    uv_mutex_unlock(&rt->lock);
    return snap;
}

void runtime_publish_snapshot(struct runtime *rt, struct policy_snapshot *snap)
{
    uv_mutex_lock(&rt->lock);
    struct policy_snapshot *old = rt->current;
    rt->current = snap;
    uv_mutex_unlock(&rt->lock);
    policy_snapshot_release(old);
}

bool runtime_admit_conn(struct runtime *rt, unsigned limit)
{
    unsigned active = atomic_load_explicit(&rt->active_conns, memory_order_relaxed);
    do {
        if (active >= limit)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&rt->active_conns, &active, active + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    return true;
}

void runtime_release_conn(struct runtime *rt)
{
    atomic_fetch_sub_explicit(&rt->active_conns, 1, memory_order_relaxed);
}
