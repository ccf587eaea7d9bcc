/* The pure parts of the resolver (proxy/resolver.c): name normalisation, RFC 8305 address
 * ordering, and a bounded answer cache. No libuv, no c-ares, no clock: the caller passes the
 * time, so all of it is testable without sockets. Not thread-safe: one cache per resolver. */
#ifndef GEOPROXY_PROXY_RESOLVER_CACHE_H
#define GEOPROXY_PROXY_RESOLVER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proxy/resolver.h"
#include "proxy/target.h"

struct resolver_cache;

/* Writes the cache key for 'host' into out: ASCII lower-cased, one trailing dot removed.
 * Returns its length, or -1 when 'host' cannot be a DNS name (empty, longer than 253
 * characters, an empty label or one longer than 63, a space or control character) or does
 * not fit in 'len'. */
int resolver_name_normalize(const char *host, char *out, size_t len);

/* Orders addresses as RFC 8305 §4: the first address family is IPv6 when there is any, then
 * the families alternate, each family keeping its given order. Exact duplicates and other
 * families are dropped; at most RESOLVER_MAX_ADDRS are kept. Ports are left as given. */
void resolver_addrs_order(const struct sockaddr_storage *in, size_t n, struct resolver_answer *out);

/* Creates a cache of at most 'capacity' names; 'hash_key' seeds the table's hash. Returns NULL
 * when memory is exhausted. */
struct resolver_cache *resolver_cache_new(uint32_t capacity, const uint8_t hash_key[16]);

/* Frees every entry. NULL is a no-op. */
void resolver_cache_free(struct resolver_cache *c);

/* Looks up a normalised name. When an entry exists and has not expired at 'now_ms', fills
 * *status (OUTBOUND_OK or OUTBOUND_DNS_NOT_FOUND) and, for OUTBOUND_OK, *answer, marks the
 * entry most recently used and returns true. An expired entry is dropped. */
bool resolver_cache_get(struct resolver_cache *c, const char *name, uint64_t now_ms,
                        enum outbound_status *status, struct resolver_answer *answer);

/* Stores the outcome for a normalised name until 'expires_ms', replacing an older entry for
 * the same name. 'answer' is needed for OUTBOUND_OK only. When the cache is full, the least
 * recently used entry goes. Returns 0, or UV_ENOMEM (the cache is then unchanged). */
int resolver_cache_put(struct resolver_cache *c, const char *name, enum outbound_status status,
                       const struct resolver_answer *answer, uint64_t expires_ms);

/* Number of entries held (expired ones included until they are looked up or evicted). */
size_t resolver_cache_count(const struct resolver_cache *c);

#endif
