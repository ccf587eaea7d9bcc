/* The policy snapshot and the decision. A snapshot is an immutable, reference-counted view of one
 * loaded configuration; every connection holds a reference from accept to free, so a reload never
 * changes what a connection in flight sees. Pure library: no sockets, no printing. */
#ifndef GEOPROXY_POLICY_POLICY_H
#define GEOPROXY_POLICY_POLICY_H

#include <stdint.h>
#include <sys/socket.h>

#include "policy/config.h"

struct policy_snapshot;

/* Wraps a loaded config (taking ownership) into a snapshot with one reference and the given
 * generation number. Returns NULL on out-of-memory (the config is freed then). */
struct policy_snapshot *policy_snapshot_new(struct config *cfg, uint64_t generation);

/* Takes one more reference; returns snap. Thread-safe. */
struct policy_snapshot *policy_snapshot_acquire(struct policy_snapshot *snap);

/* Drops one reference; the last one frees the snapshot and its config. NULL is a no-op. */
void policy_snapshot_release(struct policy_snapshot *snap);

const struct config *policy_snapshot_config(const struct policy_snapshot *snap);
uint64_t policy_snapshot_generation(const struct policy_snapshot *snap);

enum verdict_action {
    VERDICT_PASS,
    VERDICT_BLOCK,
};

/* What is known about a connection when it is decided. */
struct policy_request {
    const struct sockaddr *client; /* the client's address */
    const char *listener;          /* the listener's name */
    const char *user;              /* authenticated user, or NULL */
    const char *host;              /* destination name as the client gave it, or NULL */
    const struct sockaddr *dest;   /* destination address when known (literal), or NULL */
    uint16_t port;                 /* destination port */
};

struct policy_verdict {
    enum verdict_action action;
    const char *rule;   /* the matched rule's name; "(no rule)" when none matched */
    const char *reason; /* block reason for the client, or NULL */
    enum log_level log;
};

/* First matching rule wins; when no rule matches the connection is blocked (fail closed). The
 * strings in the verdict live as long as the snapshot. */
void policy_decide(const struct policy_snapshot *snap, const struct policy_request *req,
                   struct policy_verdict *out);

const char *policy_action_name(enum verdict_action action);

#endif
