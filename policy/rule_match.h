/* The matchers of one rule (from, to, user, listener) as parsed from its line, and their
 * evaluation against one request. Internal to policy/: config_rule_match.c fills a struct
 * rule_match from the words of a rule, rule_match.c evaluates it, rule_index.c compiles many of
 * them for speed. Pure: no I/O; evaluation never allocates. */
#ifndef GEOPROXY_POLICY_RULE_MATCH_H
#define GEOPROXY_POLICY_RULE_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "geo/geo.h"
#include "geo/region.h"

#define MATCH_DOMAIN_MAX 253 /* longest domain name, without a final dot */
#define MATCH_USER_MAX 255   /* longest user name (the SOCKS5 limit) */

/* An address family as the matchers see it: IPv4-mapped IPv6 is IPv4. */
enum match_family { MATCH_NONE = 0, MATCH_V4 = 4, MATCH_V6 = 6 };

/* An address or network: IPv4 in addr[0..3], IPv6 in addr[0..15]; bits past prefix are zero. */
struct match_net {
    uint8_t family; /* enum match_family */
    uint8_t prefix; /* 0..32 or 0..128 */
    uint8_t addr[16];
};

struct match_ports {
    uint16_t lo, hi; /* inclusive */
};

/* Values about one address (the client's, or the destination's once it is known), all of one
 * polarity: any of them matching is enough. */
struct match_place {
    struct country_set countries; /* country codes, and the countries of regions */
    bool local;                   /* "local": the address is in a local range */
    bool unknown;                 /* "unknown": no country for a public address */
    struct match_net *nets;
    size_t n_nets;
    uint32_t *asns;
    size_t n_asns;
    size_t n_values;    /* every value above as written (a region counts once) */
    bool has_countries; /* a country code or region is among them */
};

/* Names of one polarity: domains (lower case, no final dot; ".example.com" is the domain and
 * every subdomain), user names, or listener names. */
struct match_names {
    char **names;
    size_t n;
};

enum match_polarity { MATCH_POS = 0, MATCH_NEG = 1 };

enum match_matcher_bit {
    MATCH_HAS_FROM = 1u << 0,
    MATCH_HAS_TO = 1u << 1,
    MATCH_HAS_USER = 1u << 2,
    MATCH_HAS_LISTENER = 1u << 3,
};

/* A matcher matches when (it has no positive value or a positive value matches) and no negated
 * value matches. 'to' is two such conditions that must both hold: its host-side values (place
 * and domains) and its ports. Index [MATCH_POS] holds the positive values, [MATCH_NEG] the
 * values written with '!'. */
struct rule_match {
    unsigned present; /* enum match_matcher_bit: the matchers written on the line */
    struct match_place from[2];
    struct match_place to[2];
    struct match_names domains[2];
    struct match_ports *ports[2];
    size_t n_ports[2];
    struct match_names users[2];
    struct match_names listeners[2];
};

/* A request as the matchers see it: addresses reduced to struct match_net (prefix unused, family
 * MATCH_NONE when absent) and the host name lower-cased without a final dot. */
struct match_request {
    struct match_net client;
    const struct geo_result *client_geo;
    bool dest_known; /* the destination address is known (a literal, or resolved) */
    struct match_net dest;
    const struct geo_result *dest_geo;
    bool named;       /* the client gave a name (it may be resolved later) */
    const char *host; /* the name, or NULL: a literal, or a name too long to be a domain */
    size_t host_len;
    uint16_t port;
    const char *user;     /* NULL: no authenticated user */
    const char *listener; /* NULL: unknown */
};

/* True if pl has no value. */
static inline bool match_place_is_empty(const struct match_place *pl)
{
    return pl->n_values == 0;
}

/* Three-valued: a rule can match, not match, or need the destination's address to tell. */
enum match_result { MATCH_NO = 0, MATCH_YES = 1, MATCH_NEED = 2 };

/* Reduces a socket address to a match_net (IPv4-mapped IPv6 becomes IPv4); NULL or another family
 * gives family MATCH_NONE. */
void match_net_from_sockaddr(const struct sockaddr *sa, struct match_net *out);

/* True if the address a (prefix ignored) lies in network n. */
bool match_net_contains(const struct match_net *n, const struct match_net *a);

/* Lower-cases host into buf (MATCH_DOMAIN_MAX + 2 bytes) without a final dot; returns its length,
 * or -1 when it is empty or longer than any domain name. */
int match_host_normalize(const char *host, char *buf);

/* Evaluates one rule's matchers; m == NULL (no matcher) always matches. The straightforward
 * reference the compiled index (rule_index.h) is tested against. */
enum match_result rule_match_eval(const struct rule_match *m, const struct match_request *r);

/* True if the rule has a value that needs the destination's address: a to-value that is a
 * country, region, local, unknown, address, network or AS number. */
bool rule_match_needs_address(const struct rule_match *m);

/* True if from or to names a country or region. */
bool rule_match_uses_countries(const struct rule_match *m);

/* True when every connection rule b matches is certainly matched by rule a (a sound, simple
 * test: it may answer false for some rules that are covered). NULL is the catch-all. */
bool rule_match_covers(const struct rule_match *a, const struct rule_match *b);

struct rule_match *rule_match_new(void);

/* Frees m and everything it owns; NULL is a no-op. */
void rule_match_free(struct rule_match *m);

#endif
