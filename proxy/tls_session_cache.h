/* TLS sessions kept for resumption with each exit: one per upstream name, per thread (each
 * worker and the health checker has its own; not thread-safe). A session is kept with the
 * client context it was made with, and only offered to that context. */
#ifndef GEOPROXY_PROXY_TLS_SESSION_CACHE_H
#define GEOPROXY_PROXY_TLS_SESSION_CACHE_H

#include <openssl/ssl.h>

#include "policy/config.h"

struct tls_session_slot {
    char name[CONFIG_NAME_MAX];
    SSL_CTX *ctx;         /* compared only, never dereferenced */
    SSL_SESSION *session; /* one reference */
};

struct tls_session_cache {
    struct tls_session_slot slots[CONFIG_MAX_UPSTREAMS];
};

/* The session to offer to 'name' with 'ctx', or NULL (borrowed: SSL_set_session takes its own
 * reference). */
SSL_SESSION *tls_session_cache_get(struct tls_session_cache *cache, const char *name,
                                   const SSL_CTX *ctx);

/* Keeps 'session' (taking the caller's reference) for 'name' when it can be resumed, replacing
 * the one kept before; otherwise frees it. NULL is a no-op. */
void tls_session_cache_put(struct tls_session_cache *cache, const char *name, SSL_CTX *ctx,
                           SSL_SESSION *session);

/* Frees every session. */
void tls_session_cache_clear(struct tls_session_cache *cache);

#endif
