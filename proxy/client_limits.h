/* Per-client admission: how many connections each client address has open (all workers) and a
 * token bucket of new connections per second. A fixed table, shared by every worker thread,
 * bounds the memory whatever the number of clients: CLIENT_TABLE_SLOTS addresses, in stripes
 * that each have their own lock, placed by a keyed hash (SipHash-2-4 under a random per-process
 * key) so that no client can choose which stripe it lands in.
 *
 * An IPv4 client is one address; an IPv6 client is its /64 (one subscriber usually holds a whole
 * /64, and per-address counting would give it 2^64 budgets). An IPv4-mapped IPv6 address counts
 * as its IPv4 address.
 *
 * An entry lives while its client has connections open or its bucket is not full again; then it
 * is dropped. When a client's stripe is full of live entries, it is admitted without being
 * counted (fail open; CLIENT_ADMIT_UNTRACKED): the global connection limit still applies, and
 * refusing newcomers would let whoever fills the table lock everyone else out. */
#ifndef GEOPROXY_PROXY_CLIENT_LIMITS_H
#define GEOPROXY_PROXY_CLIENT_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CLIENT_TABLE_STRIPES 64
#define CLIENT_STRIPE_SLOTS 128
#define CLIENT_TABLE_SLOTS (CLIENT_TABLE_STRIPES * CLIENT_STRIPE_SLOTS)
#define CLIENT_WARN_INTERVAL_MS 10000 /* at most one refusal warning per client this often */

struct client_table;

/* What a client may do now. */
struct client_limits {
    uint32_t max_conns;  /* concurrent connections per client; 0: no cap */
    uint32_t rate_per_s; /* new connections per second, burst as large; 0: no rate limit */
};

enum client_admit_result {
    CLIENT_ADMITTED,          /* counted: client_table_release() it when it closes */
    CLIENT_ADMIT_UNTRACKED,   /* the table is full: admitted without being counted */
    CLIENT_REFUSED_CONNS,     /* max_conns already open */
    CLIENT_REFUSED_RATE,      /* no token left in the bucket */
    CLIENT_ADMIT_UNSUPPORTED, /* not an IPv4 or IPv6 address: admitted, not counted */
};

/* A new empty table hashed under 'key' (16 bytes). NULL when out of memory. */
struct client_table *client_table_new(const uint8_t key[16]);

/* Frees the table; NULL is a no-op. */
void client_table_free(struct client_table *t);

/* Decides whether the client at 'addr' may open one more connection at time 'now_ms' (any
 * monotonic clock in milliseconds, the same for every call) and counts it when admitted.
 * *warn is set when a refusal should be logged: once per client per CLIENT_WARN_INTERVAL_MS,
 * and for CLIENT_ADMIT_UNTRACKED once per interval for the whole table. */
enum client_admit_result client_table_admit(struct client_table *t, const struct sockaddr *addr,
                                            const struct client_limits *limits, uint64_t now_ms,
                                            bool *warn);

/* Uncounts one connection of the client at 'addr' (admitted with CLIENT_ADMITTED). A client
 * that is not in the table (admitted untracked) changes nothing. */
void client_table_release(struct client_table *t, const struct sockaddr *addr, uint64_t now_ms);

/* The client's open connections as counted, 0 when it has no entry. For tests and status. */
uint32_t client_table_conns(struct client_table *t, const struct sockaddr *addr);

/* How many clients have an entry (locks each stripe in turn). */
size_t client_table_entries(struct client_table *t);

#endif
