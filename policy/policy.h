/* The policy snapshot and the decision. A snapshot is an immutable, reference-counted view of one
 * loaded configuration; every connection holds a reference from accept to free, so a reload never
 * changes what a connection in flight sees. Pure library: no sockets, no printing. */
#ifndef GEOPROXY_POLICY_POLICY_H
#define GEOPROXY_POLICY_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "geo/geo.h"
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
    VERDICT_TUNNEL, /* through verdict.via */
};

/* What is known about a connection when it is decided. The caller classifies addresses with
 * policy_classify() (so the snapshot's own databases are used). */
struct policy_request {
    const struct sockaddr *client; /* the client's address */
    struct geo_result client_geo;  /* policy_classify(client) */
    const char *listener;          /* the listener's name */
    const char *user;              /* authenticated user, or NULL */
    const char *host;              /* destination name as the client gave it; NULL for a literal */
    const struct sockaddr *dest;   /* destination address: the literal, or one resolved address;
                                      NULL while a name is not resolved */
    struct geo_result dest_geo;    /* policy_classify(dest) when dest != NULL */
    uint16_t port;                 /* destination port */
};

struct policy_verdict {
    enum verdict_action action;
    const char *rule;   /* the matched rule's name; "(no rule)" when none matched */
    const char *reason; /* block reason for the client, or NULL */
    enum log_level log;
    const char *file; /* where the rule is written; NULL for "(no rule)" */
    unsigned line;
    const struct config_upstream *via; /* VERDICT_TUNNEL: the upstream or group; else NULL */
    /* With POLICY_NEED_ADDRESS: the rule that needs the address says "resolve via UPSTREAM";
     * NULL: use the local resolver. */
    const struct config_upstream *resolve_via;
};

enum policy_outcome {
    POLICY_DECIDED,      /* *out holds the verdict */
    POLICY_NEED_ADDRESS, /* req->dest is NULL and the first rule that may still match needs the
                            destination's address (a to-matcher on an address, network, country,
                            region, ASN, local or unknown) and is not no-resolve: resolve the
                            name, then decide again once per resolved address */
};

/* First matching rule wins; when no rule matches the connection is blocked (fail closed). Two
 * built-in refusals come after the rules, once the destination's address is known: rule
 * "(unspecified destination)" for 0.0.0.0 and ::, and rule "(local destination)" for a
 * destination in a local range asked by a client outside the local ranges, unless the deciding
 * rule names local destinations itself (to local, or a network or address). They do not apply
 * to a tunnel verdict: the exit reaches that destination, from its own network. A rule marked
 * no-resolve whose to-matcher needs an address it does not have is skipped (does not match)
 * instead of asking for one. With POLICY_NEED_ADDRESS, out->resolve_via is the upstream that
 * rule names with "resolve via" (NULL: the local resolver) and the rest of *out is unset. A
 * verdict's via is set for VERDICT_TUNNEL only; its resolve_via is NULL. The strings and
 * upstreams in the verdict live as long as the snapshot. Thread-safe; never blocks, never
 * allocates. */
enum policy_outcome policy_decide(const struct policy_snapshot *snap,
                                  const struct policy_request *req, struct policy_verdict *out);

/* Classifies addr with the snapshot's GeoIP databases (geo_classify; no database: every public
 * address is unknown). */
void policy_classify(const struct policy_snapshot *snap, const struct sockaddr *addr,
                     struct geo_result *out);

/* The names of every region (built-in ones first, then the configuration's own) that contains
 * country cc, for logs: stores up to cap of them and returns how many there are in total. */
size_t policy_regions_of(const struct policy_snapshot *snap, const char cc[2], const char **names,
                         size_t cap);

/* policy_decide on a configuration that is not wrapped in a snapshot yet (expect lines are
 * checked while it loads). */
enum policy_outcome policy_decide_config(const struct config *cfg, const struct policy_request *req,
                                         struct policy_verdict *out);

/* How one rule fared for a request, in the order they are tried (geoproxy explain). */
enum policy_step {
    POLICY_STEP_NO_MATCH,
    POLICY_STEP_MATCH,              /* this rule decides */
    POLICY_STEP_NEEDS_ADDRESS,      /* it needs the destination's address: decision stops here */
    POLICY_STEP_SKIPPED_NO_RESOLVE, /* it would need the address, and says no-resolve */
};

typedef void (*policy_step_fn)(void *arg, const struct config_rule *rule, enum policy_step step);

/* policy_decide, trying every rule in order and telling 'step' about each one tried. Gives the
 * same answer as policy_decide. */
enum policy_outcome policy_explain(const struct config *cfg, const struct policy_request *req,
                                   policy_step_fn step, void *arg, struct policy_verdict *out);

/* A connection described the way admins write one (expect lines, geoproxy explain). */
struct policy_probe {
    struct sockaddr_storage client_addr;
    struct sockaddr_storage dest_addr;
    char host[256];
    char user[256];
    char listener[CONFIG_NAME_MAX];
    struct policy_request req;
};

/* Fills p. 'from' is an IP address (classified with cfg's databases) or a country code (a
 * client somewhere in that country: address and network matchers do not match it). 'to_host' is
 * an IP address, a country code (a destination address in that country, unknown otherwise), or
 * a host name (not resolved: a rule that needs its address makes the decision stop there).
 * user and listener may be NULL. Returns 0, or -1 with a message in err. */
int policy_probe_init(struct policy_probe *p, const struct config *cfg, const char *from,
                      const char *to_host, uint16_t port, const char *user, const char *listener,
                      char *err, size_t err_len);

/* policy_regions_of on a configuration not wrapped in a snapshot (geoproxy explain). */
size_t policy_config_regions_of(const struct config *cfg, const char cc[2], const char **names,
                                size_t cap);

const char *policy_action_name(enum verdict_action action);

/* Whether 'egress' (an exit's reported egress address) lies in u->egress (a country code or a
 * region name) by the snapshot's databases. An upstream without a declared egress matches any
 * address; an unknown or local address matches no declared egress (fail closed). */
bool policy_egress_matches(const struct policy_snapshot *snap, const struct config_upstream *u,
                           const struct sockaddr *egress);

#endif
