#include "proxy/tls_session_cache.h"

#include <stdio.h>
#include <string.h>

static struct tls_session_slot *cache_slot(struct tls_session_cache *cache, const char *name,
                                           bool add)
{
    struct tls_session_slot *free_slot = NULL;
    for (size_t i = 0; i < CONFIG_MAX_UPSTREAMS; i++) {
        struct tls_session_slot *s = &cache->slots[i];
        if (s->name[0] == '\0') {
            if (free_slot == NULL)
                free_slot = s;
        } else if (strcmp(s->name, name) == 0) {
            return s;
        }
    }
    if (add && free_slot == NULL)
        free_slot = &cache->slots[0]; /* more names than slots: forget the first */
    if (add && free_slot != NULL)
        snprintf(free_slot->name, sizeof(free_slot->name), "%s", name);
    return add ? free_slot : NULL;
}

SSL_SESSION *tls_session_cache_get(struct tls_session_cache *cache, const char *name,
                                   const SSL_CTX *ctx)
{
    struct tls_session_slot *s = cache_slot(cache, name, false);
    if (s == NULL || s->ctx != ctx || s->session == NULL)
        return NULL;
    return s->session;
}

void tls_session_cache_put(struct tls_session_cache *cache, const char *name, SSL_CTX *ctx,
                           SSL_SESSION *session)
{
    if (session == NULL)
        return;
    if (!SSL_SESSION_is_resumable(session)) {
        SSL_SESSION_free(session);
        return;
    }
    struct tls_session_slot *s = cache_slot(cache, name, true);
    SSL_SESSION_free(s->session);
    s->session = session;
    s->ctx = ctx;
}

void tls_session_cache_clear(struct tls_session_cache *cache)
{
    for (size_t i = 0; i < CONFIG_MAX_UPSTREAMS; i++) {
        SSL_SESSION_free(cache->slots[i].session);
        cache->slots[i] = (struct tls_session_slot){.session = NULL};
    }
}
