/* Evaluating one rule's matchers against a request (three-valued, for lazy DNS), the coverage test
 * behind the unreachable-rule warning, and freeing. */
#include "policy/rule_match.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

void match_net_from_sockaddr(const struct sockaddr *sa, struct match_net *out)
{
    memset(out, 0, sizeof *out);
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

        out->family = MATCH_V4;
        memcpy(out->addr, &sin->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            out->family = MATCH_V4;
            memcpy(out->addr, sin6->sin6_addr.s6_addr + 12, 4);
        } else {
            out->family = MATCH_V6;
            memcpy(out->addr, sin6->sin6_addr.s6_addr, 16);
        }
    }
}

bool match_net_contains(const struct match_net *n, const struct match_net *a)
{
    unsigned full = n->prefix / 8;
    unsigned rest = n->prefix % 8;

    if (n->family != a->family || n->family == MATCH_NONE)
        return false;
    if (memcmp(n->addr, a->addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    return ((n->addr[full] ^ a->addr[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

int match_host_normalize(const char *host, char *buf)
{
    size_t len = strnlen(host, MATCH_DOMAIN_MAX + 2);

    if (len > 0 && host[len - 1] == '.')
        len--;
    if (len == 0 || len > MATCH_DOMAIN_MAX)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = host[i];
        buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    buf[len] = '\0';
    return (int)len;
}

/* True if the address a with classification g matches one value of pl. */
static bool place_has(const struct match_place *pl, const struct match_net *a,
                      const struct geo_result *g)
{
    if (g->cls == GEO_CLASS_COUNTRY && country_set_has(&pl->countries, g->country))
        return true;
    if (pl->local && (g->local || g->cls == GEO_CLASS_LOCAL))
        return true;
    if (pl->unknown && g->cls == GEO_CLASS_UNKNOWN)
        return true;
    for (size_t i = 0; g->asn != 0 && i < pl->n_asns; i++)
        if (pl->asns[i] == g->asn)
            return true;
    for (size_t i = 0; i < pl->n_nets; i++)
        if (match_net_contains(&pl->nets[i], a))
            return true;
    return false;
}

static bool domain_matches(const char *value, const char *host, size_t host_len)
{
    size_t len;

    if (value[0] != '.') {
        len = strlen(value);
        return len == host_len && memcmp(value, host, len) == 0;
    }
    value++;
    len = strlen(value);
    if (host_len == len)
        return memcmp(value, host, len) == 0;
    return host_len > len && host[host_len - len - 1] == '.' &&
           memcmp(host + host_len - len, value, len) == 0;
}

static bool names_have_domain(const struct match_names *d, const char *host, size_t host_len)
{
    for (size_t i = 0; host != NULL && i < d->n; i++)
        if (domain_matches(d->names[i], host, host_len))
            return true;
    return false;
}

static bool names_have(const struct match_names *n, const char *name)
{
    for (size_t i = 0; name != NULL && i < n->n; i++)
        if (strcmp(n->names[i], name) == 0)
            return true;
    return false;
}

static bool ports_have(const struct match_ports *p, size_t n, uint16_t port)
{
    for (size_t i = 0; i < n; i++)
        if (port >= p[i].lo && port <= p[i].hi)
            return true;
    return false;
}

static enum match_result tri_and(enum match_result a, enum match_result b)
{
    if (a == MATCH_NO || b == MATCH_NO)
        return MATCH_NO;
    return a == MATCH_NEED || b == MATCH_NEED ? MATCH_NEED : MATCH_YES;
}

static enum match_result tri_not(enum match_result a)
{
    return a == MATCH_NEED ? MATCH_NEED : (a == MATCH_YES ? MATCH_NO : MATCH_YES);
}

static enum match_result tri_of(bool b)
{
    return b ? MATCH_YES : MATCH_NO;
}

/* Does a destination value of one polarity match: domains against the name, places against the
 * address when it is known, else NEED when a name could be resolved. */
static enum match_result to_values_hit(const struct match_place *pl, const struct match_names *d,
                                       const struct match_request *r)
{
    if (names_have_domain(d, r->host, r->host_len))
        return MATCH_YES;
    if (match_place_is_empty(pl))
        return MATCH_NO;
    if (r->dest_known)
        return tri_of(place_has(pl, &r->dest, r->dest_geo));
    return r->named ? MATCH_NEED : MATCH_NO;
}

static enum match_result match_to_host(const struct rule_match *m, const struct match_request *r)
{
    const struct match_place *pos = &m->to[MATCH_POS];
    enum match_result hit = MATCH_YES;

    if (!match_place_is_empty(pos) || m->domains[MATCH_POS].n > 0)
        hit = to_values_hit(pos, &m->domains[MATCH_POS], r);
    return tri_and(hit, tri_not(to_values_hit(&m->to[MATCH_NEG], &m->domains[MATCH_NEG], r)));
}

static bool match_from(const struct rule_match *m, const struct match_request *r)
{
    const struct match_place *pos = &m->from[MATCH_POS];

    if (!match_place_is_empty(pos) && !place_has(pos, &r->client, r->client_geo))
        return false;
    return !place_has(&m->from[MATCH_NEG], &r->client, r->client_geo);
}

static bool match_port(const struct rule_match *m, uint16_t port)
{
    if (m->n_ports[MATCH_POS] > 0 && !ports_have(m->ports[MATCH_POS], m->n_ports[MATCH_POS], port))
        return false;
    return !ports_have(m->ports[MATCH_NEG], m->n_ports[MATCH_NEG], port);
}

static bool match_name(const struct match_names n[2], const char *name)
{
    if (n[MATCH_POS].n > 0 && !names_have(&n[MATCH_POS], name))
        return false;
    return !names_have(&n[MATCH_NEG], name);
}

enum match_result rule_match_eval(const struct rule_match *m, const struct match_request *r)
{
    if (m == NULL)
        return MATCH_YES;
    if (!match_from(m, r) || !match_port(m, r->port) || !match_name(m->users, r->user) ||
        !match_name(m->listeners, r->listener))
        return MATCH_NO;
    return match_to_host(m, r);
}

bool rule_match_needs_address(const struct rule_match *m)
{
    return m != NULL &&
           (!match_place_is_empty(&m->to[MATCH_POS]) || !match_place_is_empty(&m->to[MATCH_NEG]));
}

bool rule_match_uses_countries(const struct rule_match *m)
{
    if (m == NULL)
        return false;
    for (int i = 0; i < 2; i++)
        if (m->from[i].has_countries || m->to[i].has_countries)
            return true;
    return false;
}

/* ---- coverage ---------------------------------------------------------------------------- */

static bool country_subset(const struct country_set *x, const struct country_set *y)
{
    for (size_t i = 0; i < COUNTRY_SET_WORDS; i++)
        if ((x->bits[i] & ~y->bits[i]) != 0)
            return false;
    return true;
}

static bool place_subset(const struct match_place *x, const struct match_place *y)
{
    if (!country_subset(&x->countries, &y->countries) || (x->local && !y->local) ||
        (x->unknown && !y->unknown))
        return false;
    for (size_t i = 0; i < x->n_asns; i++) {
        size_t j = 0;

        while (j < y->n_asns && y->asns[j] != x->asns[i])
            j++;
        if (j == y->n_asns)
            return false;
    }
    for (size_t i = 0; i < x->n_nets; i++) {
        size_t j = 0;

        while (j < y->n_nets && !(y->nets[j].prefix <= x->nets[i].prefix &&
                                  match_net_contains(&y->nets[j], &x->nets[i])))
            j++;
        if (j == y->n_nets)
            return false;
    }
    return true;
}

/* Every name the domain value x matches is matched by one of ys. */
static bool domains_subset(const struct match_names *x, const struct match_names *ys)
{
    for (size_t i = 0; i < x->n; i++) {
        const char *v = x->names[i];
        const char *name = v[0] == '.' ? v + 1 : v;
        size_t j = 0;

        while (j < ys->n && !((ys->names[j][0] == '.' || v[0] != '.') &&
                              domain_matches(ys->names[j], name, strlen(name))))
            j++;
        if (j == ys->n)
            return false;
    }
    return true;
}

static bool names_subset(const struct match_names *x, const struct match_names *y)
{
    for (size_t i = 0; i < x->n; i++)
        if (!names_have(y, x->names[i]))
            return false;
    return true;
}

static bool ports_subset(const struct rule_match *b, const struct rule_match *a)
{
    for (size_t i = 0; i < b->n_ports[MATCH_POS]; i++) {
        const struct match_ports *x = &b->ports[MATCH_POS][i];
        size_t j = 0;

        while (j < a->n_ports[MATCH_POS] &&
               !(a->ports[MATCH_POS][j].lo <= x->lo && x->hi <= a->ports[MATCH_POS][j].hi))
            j++;
        if (j == a->n_ports[MATCH_POS])
            return false;
    }
    return true;
}

static bool from_covers(const struct rule_match *a, const struct rule_match *b)
{
    if (match_place_is_empty(&a->from[MATCH_POS]) && match_place_is_empty(&a->from[MATCH_NEG]))
        return true;
    if (!match_place_is_empty(&a->from[MATCH_NEG]) || match_place_is_empty(&b->from[MATCH_POS]))
        return false;
    return place_subset(&b->from[MATCH_POS], &a->from[MATCH_POS]);
}

static bool host_covers(const struct rule_match *a, const struct rule_match *b)
{
    bool a_pos = !match_place_is_empty(&a->to[MATCH_POS]) || a->domains[MATCH_POS].n > 0;
    bool a_neg = !match_place_is_empty(&a->to[MATCH_NEG]) || a->domains[MATCH_NEG].n > 0;
    bool b_pos = !match_place_is_empty(&b->to[MATCH_POS]) || b->domains[MATCH_POS].n > 0;

    if (!a_pos && !a_neg)
        return true;
    if (a_neg || !b_pos)
        return false;
    return place_subset(&b->to[MATCH_POS], &a->to[MATCH_POS]) &&
           domains_subset(&b->domains[MATCH_POS], &a->domains[MATCH_POS]);
}

static bool port_covers(const struct rule_match *a, const struct rule_match *b)
{
    if (a->n_ports[MATCH_POS] == 0 && a->n_ports[MATCH_NEG] == 0)
        return true;
    if (a->n_ports[MATCH_NEG] > 0 || b->n_ports[MATCH_POS] == 0)
        return false;
    return ports_subset(b, a);
}

static bool name_covers(const struct match_names a[2], const struct match_names b[2])
{
    if (a[MATCH_POS].n == 0 && a[MATCH_NEG].n == 0)
        return true;
    if (a[MATCH_NEG].n > 0 || b[MATCH_POS].n == 0)
        return false;
    return names_subset(&b[MATCH_POS], &a[MATCH_POS]);
}

bool rule_match_covers(const struct rule_match *a, const struct rule_match *b)
{
    static const struct rule_match none;

    if (a == NULL)
        return true;
    if (b == NULL)
        b = &none;
    return from_covers(a, b) && host_covers(a, b) && port_covers(a, b) &&
           name_covers(a->users, b->users) && name_covers(a->listeners, b->listeners);
}

/* ---- lifetime ---------------------------------------------------------------------------- */

struct rule_match *rule_match_new(void)
{
    return calloc(1, sizeof(struct rule_match));
}

static void names_free(struct match_names *n)
{
    for (size_t i = 0; i < n->n; i++)
        free(n->names[i]);
    free(n->names);
}

void rule_match_free(struct rule_match *m)
{
    if (m == NULL)
        return;
    for (int i = 0; i < 2; i++) {
        free(m->from[i].nets);
        free(m->from[i].asns);
        free(m->to[i].nets);
        free(m->to[i].asns);
        free(m->ports[i]);
        names_free(&m->domains[i]);
        names_free(&m->users[i]);
        names_free(&m->listeners[i]);
    }
    free(m);
}
