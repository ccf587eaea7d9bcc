#include "proxy/runtime.h"

/* The clock of per-client buckets: monotonic, the same for every worker. */
static uint64_t runtime_now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

int runtime_init(struct runtime *rt, struct policy_snapshot *first)
{
    uint8_t table_key[16];
    if (pseudonym_key_init(&rt->pseudonym_key) != 0 ||
        uv_random(NULL, NULL, table_key, sizeof(table_key), 0, NULL) != 0)
        return UV_EIO;
    rt->clients = client_table_new(table_key);
    if (rt->clients == NULL)
        return UV_ENOMEM;
    int err = uv_mutex_init(&rt->lock);
    if (err != 0)
        goto fail_clients;
    err = events_hub_init(&rt->events);
    if (err != 0)
        goto fail_lock;
    err = upstream_health_init(&rt->health);
    if (err != 0)
        goto fail_events;
    rt->current = first;
    atomic_init(&rt->active_conns, 0);
    atomic_init(&rt->next_conn_id, 1);
    return 0;

fail_events:
    events_hub_destroy(&rt->events);
fail_lock:
    uv_mutex_destroy(&rt->lock);
fail_clients:
    client_table_free(rt->clients);
    rt->clients = NULL;
    return err;
}

void runtime_destroy(struct runtime *rt)
{
    policy_snapshot_release(rt->current);
    rt->current = NULL;
    upstream_health_destroy(&rt->health);
    events_hub_destroy(&rt->events);
    uv_mutex_destroy(&rt->lock);
    client_table_free(rt->clients);
    rt->clients = NULL;
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

/* Counts one more connection in the global count unless 'limit' are already active. */
static bool runtime_admit_total(struct runtime *rt, unsigned limit)
{
    unsigned active = atomic_load_explicit(&rt->active_conns, memory_order_relaxed);
    do {
        if (active >= limit)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&rt->active_conns, &active, active + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    return true;
}

enum runtime_admission runtime_admit_conn(struct runtime *rt, const struct config_limits *limits,
                                          const struct sockaddr *client, bool *warn)
{
    *warn = true;
    if (!runtime_admit_total(rt, limits->connections))
        return RUNTIME_REFUSED_TOTAL;
    struct client_limits per_client = {
        .max_conns = limits->per_client_connections,
        .rate_per_s = limits->per_client_rate,
    };
    switch (client_table_admit(rt->clients, client, &per_client, runtime_now_ms(), warn)) {
    case CLIENT_ADMITTED:
    case CLIENT_ADMIT_UNTRACKED:
    case CLIENT_ADMIT_UNSUPPORTED:
        return RUNTIME_ADMITTED;
    case CLIENT_REFUSED_CONNS:
        atomic_fetch_sub_explicit(&rt->active_conns, 1, memory_order_relaxed);
        return RUNTIME_REFUSED_PER_CLIENT;
    case CLIENT_REFUSED_RATE:
        break;
    }
    atomic_fetch_sub_explicit(&rt->active_conns, 1, memory_order_relaxed);
    return RUNTIME_REFUSED_RATE;
}

void runtime_release_conn(struct runtime *rt, const struct sockaddr *client)
{
    client_table_release(rt->clients, client, runtime_now_ms());
    atomic_fetch_sub_explicit(&rt->active_conns, 1, memory_order_relaxed);
}
