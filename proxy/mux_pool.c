#include "proxy/mux_pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/log.h"
#include "proxy/mux.h"

#define MUX_POOL_SWEEP_MS 1000

/* One TLS connection to an exit and the session over it. */
struct mux_pool_carrier {
    struct mux_pool *pool;
    struct mux_pool_carrier *next;
    struct link *link; /* owned; NULL once closing */
    struct mux_session *session;
    char name[CONFIG_NAME_MAX];
    const void *ctx; /* the upstream's TLS context it was made with (compared only) */
    struct sockaddr_storage peer;
    uint64_t idle_since_ms; /* when its last stream ended, or 0 while it carries some */
};

/* Ciphertext is read here and handed to the session before the callback returns. */
static _Thread_local char carrier_buf[64 * 1024];

static void on_carrier_closed(struct link *l)
{
    free(l);
}

/* Ends a carrier: its streams are reset, its connection closed, and it leaves the list. It says
 * GO_AWAY first (nothing when the session broke): an exit then takes the end of a session that
 * carried nothing more for an orderly one, not for a reset (mux_session_peer_left). */
static void carrier_end(struct mux_pool_carrier *c)
{
    struct mux_pool *pool = c->pool;
    for (struct mux_pool_carrier **p = &pool->carriers; *p != NULL; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    mux_session_go_away(c->session);
    mux_session_close(c->session);
    link_close(c->link, on_carrier_closed);
    free(c);
}

static int carrier_write(void *owner, struct mux_frame *f)
{
    struct mux_pool_carrier *c = owner;
    return mux_frame_write(f, c->link);
}

static void carrier_alloc(struct link *l, uv_buf_t *buf)
{
    (void)l;
    *buf = uv_buf_init(carrier_buf, sizeof(carrier_buf));
}

static void carrier_read(struct link *l, ssize_t nread, const uv_buf_t *buf)
{
    struct mux_pool_carrier *c = l->data;
    if (nread > 0) {
        mux_session_input(c->session, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    if (nread == 0)
        return;
    log_msg(LOG_INFO, "upstream %s: mux connection ended: %s", c->name,
            nread == UV_EOF ? "closed by the exit" : uv_strerror((int)nread));
    mux_session_carrier_ended(c->session);
    carrier_end(c);
}

static void carrier_read_enable(void *owner, bool enable)
{
    struct mux_pool_carrier *c = owner;
    if (!enable)
        link_read_stop(c->link);
    else if (link_read_start(c->link, carrier_alloc, carrier_read) != 0)
        carrier_end(c);
}

static void carrier_accept(void *owner, struct mux_stream *stream)
{
    (void)owner;
    (void)stream; /* an exit does not open streams: left, it is reset */
}

static void carrier_ended(void *owner, const char *why)
{
    struct mux_pool_carrier *c = owner;
    log_msg(why == MUX_ENDED_GO_AWAY ? LOG_INFO : LOG_WARN, "upstream %s: mux session ended: %s",
            c->name, why);
    carrier_end(c);
}

static const struct mux_carrier carrier_ops = {
    .write = carrier_write,
    .read_enable = carrier_read_enable,
    .accept = carrier_accept,
    .ended = carrier_ended,
};

/* A stream on c, with the exit's address. */
static struct link *carrier_open(struct mux_pool_carrier *c, struct sockaddr_storage *peer)
{
    struct link *l = mux_session_open(c->session);
    if (l == NULL)
        return NULL;
    c->idle_since_ms = 0;
    if (peer != NULL)
        *peer = c->peer;
    return l;
}

struct link *mux_pool_open(struct mux_pool *pool, const struct config_upstream *u,
                           struct sockaddr_storage *peer)
{
    for (struct mux_pool_carrier *c = pool->carriers; c != NULL; c = c->next) {
        if (strcmp(c->name, u->name) != 0 || c->ctx != (const void *)u->tls ||
            mux_session_draining(c->session))
            continue;
        struct link *l = carrier_open(c, peer);
        if (l != NULL)
            return l;
    }
    return NULL;
}

struct link *mux_pool_adopt(struct mux_pool *pool, const struct config_upstream *u,
                            struct link *tls, const struct sockaddr *peer)
{
    struct mux_pool_carrier *c = pool->open ? calloc(1, sizeof(*c)) : NULL;
    struct sockaddr_storage local;
    int local_len = sizeof(local);
    if (c == NULL || link_local_address(tls, (struct sockaddr *)&local, &local_len) != 0 ||
        (c->session = mux_session_new(pool->loop, true, &carrier_ops, c,
                                      (const struct sockaddr *)&local)) == NULL) {
        free(c);
        link_close(tls, on_carrier_closed);
        return NULL;
    }
    c->pool = pool;
    c->link = tls;
    tls->data = c;
    c->ctx = u->tls;
    snprintf(c->name, sizeof(c->name), "%s", u->name);
    memcpy(&c->peer, peer,
           peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    c->next = pool->carriers;
    pool->carriers = c;
    if (link_read_start(tls, carrier_alloc, carrier_read) != 0) {
        carrier_end(c);
        return NULL;
    }
    return carrier_open(c, NULL);
}

/* Closes sessions that carried nothing for MUX_POOL_IDLE_MS, and stale ones once empty. */
static void on_sweep(uv_timer_t *t)
{
    struct mux_pool *pool = t->data;
    uint64_t now = uv_now(pool->loop);
    for (struct mux_pool_carrier *c = pool->carriers, *next; c != NULL; c = next) {
        next = c->next;
        if (mux_session_streams(c->session) > 0) {
            c->idle_since_ms = 0;
            continue;
        }
        if (c->idle_since_ms == 0)
            c->idle_since_ms = now;
        if (mux_session_draining(c->session) || now - c->idle_since_ms >= MUX_POOL_IDLE_MS)
            carrier_end(c);
    }
}

int mux_pool_init(struct mux_pool *pool, uv_loop_t *loop)
{
    memset(pool, 0, sizeof(*pool));
    pool->loop = loop;
    int err = uv_timer_init(loop, &pool->sweep);
    if (err != 0)
        return err;
    pool->sweep.data = pool;
    uv_timer_start(&pool->sweep, on_sweep, MUX_POOL_SWEEP_MS, MUX_POOL_SWEEP_MS);
    uv_unref((uv_handle_t *)&pool->sweep);
    pool->open = true;
    return 0;
}

void mux_pool_close(struct mux_pool *pool)
{
    if (!pool->open)
        return;
    pool->open = false;
    while (pool->carriers != NULL)
        carrier_end(pool->carriers);
    uv_close((uv_handle_t *)&pool->sweep, NULL);
}
