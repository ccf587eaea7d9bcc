#include "proxy/tls_pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "proxy/tls_session_cache.h"
#include "proxy/upstream.h"

#define TLS_POOL_SWEEP_MS 1000

/* A handshake made to refill a slot. */
struct tls_pool_fill {
    struct tls_pool *pool;
    struct tls_pool_fill *prev, *next;
    struct policy_snapshot *snap; /* keeps 'u' alive */
    const struct config_upstream *u;
    struct upstream_req *req;
};

static void on_idle_closed(struct link *l)
{
    free(l);
}

static struct tls_pool_slot *pool_slot(struct tls_pool *pool, const char *name, bool add)
{
    struct tls_pool_slot *free_slot = NULL;
    for (size_t i = 0; i < CONFIG_MAX_UPSTREAMS; i++) {
        struct tls_pool_slot *s = &pool->slots[i];
        if (s->name[0] == '\0') {
            if (free_slot == NULL)
                free_slot = s;
        } else if (strcmp(s->name, name) == 0) {
            return s;
        }
    }
    if (!add || free_slot == NULL)
        return NULL;
    snprintf(free_slot->name, sizeof(free_slot->name), "%s", name);
    return free_slot;
}

static void on_idle_shut(struct link_shutdown *s, int status)
{
    (void)status;
    struct link *l = s->link;
    free(s);
    link_close(l, on_idle_closed);
}

/* Says goodbye properly (close_notify, FIN) so that the exit sees a client leaving, not a
 * connection cut short; closes it once that is out. */
static void pool_drop_idle(struct tls_pool_slot *slot, size_t i)
{
    struct link *l = slot->idle[i].link;
    slot->idle[i] = slot->idle[--slot->n_idle];
    link_read_stop(l);
    struct link_shutdown *s = malloc(sizeof(*s));
    if (s == NULL || link_shutdown(l, s, on_idle_shut) != 0) {
        free(s);
        link_close(l, on_idle_closed);
    }
}

/* An idle link heard from the exit: it is closing it, or out of step. Session tickets are
 * taken by OpenSSL and read as nothing. */
static void pool_idle_alloc(struct link *l, uv_buf_t *buf)
{
    static _Thread_local char scrap[256];
    (void)l;
    *buf = uv_buf_init(scrap, sizeof(scrap));
}

static void pool_idle_read(struct link *l, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread == 0)
        return;
    struct tls_pool *pool = l->data;
    for (size_t s = 0; s < CONFIG_MAX_UPSTREAMS; s++)
        for (size_t i = 0; i < pool->slots[s].n_idle; i++)
            if (pool->slots[s].idle[i].link == l) {
                pool_drop_idle(&pool->slots[s], i);
                return;
            }
}

static void pool_sweep(uv_timer_t *t);

static void pool_arm_sweep(struct tls_pool *pool)
{
    if (pool->open && !uv_is_active((uv_handle_t *)&pool->sweep))
        uv_timer_start(&pool->sweep, pool_sweep, TLS_POOL_SWEEP_MS, TLS_POOL_SWEEP_MS);
}

static void pool_fill_unlink(struct tls_pool_fill *f)
{
    if (f->prev != NULL)
        f->prev->next = f->next;
    else
        f->pool->fills = f->next;
    if (f->next != NULL)
        f->next->prev = f->prev;
}

static void on_fill_done(void *arg, const struct upstream_result *r)
{
    struct tls_pool_fill *f = arg;
    struct tls_pool *pool = f->pool;
    pool_fill_unlink(f);
    struct tls_pool_slot *slot = pool_slot(pool, f->u->name, false);
    if (slot != NULL && slot->filling > 0)
        slot->filling--;
    if (r->status == OUTBOUND_OK) {
        struct link *l = r->link;
        bool keep = slot != NULL && slot->ctx == (const void *)f->u->tls &&
                    slot->n_idle < TLS_POOL_PER_UPSTREAM_MAX;
        l->data = pool;
        if (keep && link_read_start(l, pool_idle_alloc, pool_idle_read) == 0) {
            struct tls_pool_idle *idle = &slot->idle[slot->n_idle++];
            idle->link = l;
            idle->since_ms = uv_now(pool->loop);
            memcpy(&idle->peer, r->peer,
                   r->peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in));
            pool_arm_sweep(pool);
        } else {
            link_close(l, on_idle_closed);
        }
    }
    policy_snapshot_release(f->snap);
    free(f);
}

static void pool_fill(struct tls_pool *pool, struct tls_pool_slot *slot,
                      struct policy_snapshot *snap, const struct config_upstream *u)
{
    const struct config *cfg = policy_snapshot_config(snap);
    unsigned want = u->pool < TLS_POOL_PER_UPSTREAM_MAX ? u->pool : TLS_POOL_PER_UPSTREAM_MAX;
    while (pool->open && slot->n_idle + slot->filling < want) {
        struct tls_pool_fill *f = calloc(1, sizeof(*f));
        if (f == NULL)
            return;
        *f = (struct tls_pool_fill){.pool = pool, .snap = policy_snapshot_acquire(snap), .u = u};
        struct upstream_params p = {
            .loop = pool->loop,
            .resolver = pool->resolver,
            .sessions = pool->sessions,
            .metrics = pool->metrics,
            .cfg = cfg,
            .via = u,
            .ask = UPSTREAM_ASK_HANDSHAKE,
            .timeout_ms = cfg->timeouts.connect_ms,
        };
        f->req = upstream_request(&p, on_fill_done, f);
        if (f->req == NULL) {
            policy_snapshot_release(f->snap);
            free(f);
            return;
        }
        f->next = pool->fills;
        if (pool->fills != NULL)
            pool->fills->prev = f;
        pool->fills = f;
        slot->filling++;
    }
}

struct link *tls_pool_take(struct tls_pool *pool, const struct config_upstream *u,
                           struct sockaddr_storage *peer)
{
    if (!pool->open || u->kind != UPSTREAM_TLS || u->pool == 0)
        return NULL;
    struct tls_pool_slot *slot = pool_slot(pool, u->name, true);
    if (slot == NULL)
        return NULL;
    if (slot->ctx != (const void *)u->tls) { /* a reload made a new context: start afresh */
        while (slot->n_idle > 0)
            pool_drop_idle(slot, 0);
        slot->ctx = u->tls;
    }
    uint64_t now = uv_now(pool->loop);
    struct link *taken = NULL;
    while (taken == NULL && slot->n_idle > 0) {
        struct tls_pool_idle *idle = &slot->idle[slot->n_idle - 1]; /* the freshest */
        if (now - idle->since_ms >= TLS_POOL_IDLE_MS) {
            pool_drop_idle(slot, slot->n_idle - 1);
            continue;
        }
        taken = idle->link;
        *peer = idle->peer;
        slot->n_idle--;
        link_read_stop(taken);
        taken->data = NULL;
    }
    return taken;
}

static void slot_clear_due(struct tls_pool_slot *slot)
{
    policy_snapshot_release(slot->due_snap);
    slot->due_snap = NULL;
    slot->due = NULL;
}

static void on_refill_due(uv_timer_t *t)
{
    struct tls_pool *pool = t->data;
    for (size_t s = 0; s < CONFIG_MAX_UPSTREAMS; s++) {
        struct tls_pool_slot *slot = &pool->slots[s];
        if (slot->due == NULL)
            continue;
        if (slot->ctx == (const void *)slot->due->tls)
            pool_fill(pool, slot, slot->due_snap, slot->due);
        slot_clear_due(slot);
    }
}

void tls_pool_refill(struct tls_pool *pool, struct policy_snapshot *snap,
                     const struct config_upstream *u)
{
    if (!pool->open || u->kind != UPSTREAM_TLS || u->pool == 0)
        return;
    struct tls_pool_slot *slot = pool_slot(pool, u->name, true);
    if (slot == NULL || slot->ctx != (const void *)u->tls)
        return;
    if (slot->due != u) {
        slot_clear_due(slot);
        slot->due_snap = policy_snapshot_acquire(snap);
        slot->due = u;
    }
    if (!uv_is_active((uv_handle_t *)&pool->refill))
        uv_timer_start(&pool->refill, on_refill_due, TLS_POOL_REFILL_DELAY_MS, 0);
}

/* Drops links about to be too old for the exit. */
static void pool_sweep(uv_timer_t *t)
{
    struct tls_pool *pool = t->data;
    uint64_t now = uv_now(pool->loop);
    bool busy = pool->fills != NULL;
    for (size_t s = 0; s < CONFIG_MAX_UPSTREAMS; s++) {
        struct tls_pool_slot *slot = &pool->slots[s];
        for (size_t i = slot->n_idle; i-- > 0;)
            if (now - slot->idle[i].since_ms >= TLS_POOL_IDLE_MS)
                pool_drop_idle(slot, i);
        busy = busy || slot->n_idle > 0;
    }
    if (!busy)
        uv_timer_stop(&pool->sweep);
}

int tls_pool_init(struct tls_pool *pool, uv_loop_t *loop, struct resolver *resolver,
                  struct tls_session_cache *sessions, struct worker_metrics *metrics)
{
    memset(pool, 0, sizeof(*pool));
    pool->loop = loop;
    pool->resolver = resolver;
    pool->sessions = sessions;
    pool->metrics = metrics;
    int err = uv_timer_init(loop, &pool->sweep);
    if (err != 0)
        return err;
    pool->sweep.data = pool;
    uv_timer_init(loop, &pool->refill);
    pool->refill.data = pool;
    pool->open = true;
    return 0;
}

void tls_pool_close(struct tls_pool *pool)
{
    if (!pool->open)
        return;
    pool->open = false;
    while (pool->fills != NULL) {
        struct tls_pool_fill *f = pool->fills;
        pool_fill_unlink(f);
        upstream_cancel(f->req);
        policy_snapshot_release(f->snap);
        free(f);
    }
    for (size_t s = 0; s < CONFIG_MAX_UPSTREAMS; s++) {
        slot_clear_due(&pool->slots[s]);
        while (pool->slots[s].n_idle > 0)
            pool_drop_idle(&pool->slots[s], 0);
    }
    uv_close((uv_handle_t *)&pool->sweep, NULL);
    uv_close((uv_handle_t *)&pool->refill, NULL);
}
