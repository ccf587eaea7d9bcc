/* The values of a rule's matchers: "from V...", "to V...", "user NAME...", "listener NAME...",
 * each value optionally negated with '!'. Turns words into a struct rule_match, with every error
 * at the word (or the part of it) that is wrong. */
#include "policy/config_parser.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "geo/region.h"
#include "policy/config_value.h"
#include "policy/rule_match.h"

#define PLACE_EXPECTED "a country code, region, local, unknown, address, network or AS number"
#define TO_EXPECTED                                                                                \
    PLACE_EXPECTED ", domain or :PORT; a host name of one label needs a final dot, e.g. "          \
                   "'localhost.'"

/* One value word with its '!' removed; col points past the '!'. */
struct value_word {
    struct config_token t;
    enum match_polarity pol;
};

static bool is_digits(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static void *grow(void **array, size_t n, size_t size)
{
    void *grown = realloc(*array, (n + 1) * size);

    if (grown != NULL)
        *array = grown;
    return grown;
}

static int add_name(struct config_parser *p, struct match_names *names, const char *text,
                    size_t len, unsigned col)
{
    char *copy = strndup(text, len);

    if (copy == NULL || grow((void **)&names->names, names->n, sizeof(char *)) == NULL) {
        free(copy);
        config_parser_out_of_memory(p, col);
        return -1;
    }
    names->names[names->n++] = copy;
    return 0;
}

/* ---- ports ------------------------------------------------------------------------------- */

static int parse_port_number(struct config_parser *p, const struct config_token *t, size_t off,
                             size_t len, uint16_t *out)
{
    char shown[CONFIG_CLIP_SIZE];
    uint64_t n;
    enum config_number_result rc = config_parse_number(t->text + off, len, &n);

    if (rc == CONFIG_NUMBER_INVALID) {
        config_parser_error(p, config_word_col_at(t, off),
                            "invalid port '%s' (expected :PORT or :FIRST-LAST, e.g. :443 or "
                            ":8000-9000)",
                            config_token_clip(t, shown));
        return -1;
    }
    if (rc == CONFIG_NUMBER_TOO_LARGE || n == 0 || n > 65535) {
        config_parser_error(p, config_word_col_at(t, off),
                            "port must be between 1 and 65535, got '%s'",
                            config_clip(t->text + off, len, shown));
        return -1;
    }
    *out = (uint16_t)n;
    return 0;
}

static int parse_ports(struct config_parser *p, const struct value_word *v, struct rule_match *m)
{
    const struct config_token *t = &v->t;
    const char *dash = memchr(t->text, '-', t->len);
    size_t first_len = dash != NULL ? (size_t)(dash - t->text) - 1 : t->len - 1;
    char shown[CONFIG_CLIP_SIZE];
    struct match_ports r;

    if (parse_port_number(p, t, 1, first_len, &r.lo) != 0)
        return -1;
    r.hi = r.lo;
    if (dash != NULL) {
        size_t off = (size_t)(dash - t->text) + 1;

        if (parse_port_number(p, t, off, t->len - off, &r.hi) != 0)
            return -1;
        if (r.hi < r.lo) {
            config_parser_error(p, t->col, "port range '%s' runs backwards",
                                config_token_clip(t, shown));
            return -1;
        }
    }
    if (grow((void **)&m->ports[v->pol], m->n_ports[v->pol], sizeof r) == NULL) {
        config_parser_out_of_memory(p, t->col);
        return -1;
    }
    m->ports[v->pol][m->n_ports[v->pol]++] = r;
    return 0;
}

/* ---- addresses and networks -------------------------------------------------------------- */

static int parse_net(struct config_parser *p, const struct config_token *t, struct match_net *out)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char host[INET6_ADDRSTRLEN];
    char shown[CONFIG_CLIP_SIZE];
    const char *slash = memchr(t->text, '/', t->len);
    size_t host_len = slash != NULL ? (size_t)(slash - t->text) : t->len;
    bool v6 = memchr(t->text, ':', host_len) != NULL;
    unsigned max = v6 ? 128 : 32;
    uint64_t prefix = max;

    memset(out, 0, sizeof *out);
    if (host_len == 0 || host_len >= sizeof host) {
        config_parser_error(p, t->col, "invalid %s address '%s'", v6 ? "IPv6" : "IPv4",
                            config_clip(t->text, host_len, shown));
        return -1;
    }
    memcpy(host, t->text, host_len);
    host[host_len] = '\0';
    if (inet_pton(v6 ? AF_INET6 : AF_INET, host, out->addr) != 1) {
        config_parser_error(p, t->col, "invalid %s address '%s'", v6 ? "IPv6" : "IPv4",
                            config_clip(host, host_len, shown));
        return -1;
    }
    if (slash != NULL) {
        size_t off = host_len + 1;

        if (config_parse_number(t->text + off, t->len - off, &prefix) != CONFIG_NUMBER_OK ||
            prefix > max) {
            config_parser_error(p, config_word_col_at(t, off),
                                "invalid prefix length '/%s' (expected 0 to %u)",
                                config_clip(t->text + off, t->len - off, shown), max);
            return -1;
        }
    }
    out->family = v6 ? MATCH_V6 : MATCH_V4;
    out->prefix = (uint8_t)prefix;
    for (unsigned bit = out->prefix; bit < (out->family == MATCH_V4 ? 32u : 128u); bit++) {
        if (out->addr[bit / 8] & (0x80u >> (bit % 8))) {
            struct match_net fixed = *out;
            char text[INET6_ADDRSTRLEN];

            for (unsigned b = out->prefix; b < 128; b++)
                fixed.addr[b / 8] &= (uint8_t) ~(0x80u >> (b % 8));
            inet_ntop(fixed.family == MATCH_V4 ? AF_INET : AF_INET6, fixed.addr, text, sizeof text);
            config_parser_error(p, t->col,
                                "network '%s' has bits set past its prefix length (did you mean "
                                "%s/%u?)",
                                config_token_clip(t, shown), text, (unsigned)out->prefix);
            return -1;
        }
    }
    if (v6 && prefix >= 96 && memcmp(out->addr, v4mapped, sizeof v4mapped) == 0) {
        memmove(out->addr, out->addr + 12, 4); /* ::ffff:a.b.c.d/n is an IPv4 network */
        memset(out->addr + 4, 0, 12);
        out->family = MATCH_V4;
        out->prefix = (uint8_t)(prefix - 96);
    }
    return 0;
}

static bool looks_like_address(const struct config_token *t)
{
    bool dot = false, digit = false;

    if (memchr(t->text, ':', t->len) != NULL)
        return true;
    for (size_t i = 0; i < t->len; i++) {
        char c = t->text[i];

        if (c == '.')
            dot = true;
        else if (c >= '0' && c <= '9')
            digit = true;
        else if (c != '/')
            return false;
    }
    return dot && digit;
}

/* "example.com:443" or "1.2.3.4:443": a '.' before the only ':', digits after it. */
static bool is_host_and_port(const struct config_token *t)
{
    const char *colon = memchr(t->text, ':', t->len);
    size_t k = colon != NULL ? (size_t)(colon - t->text) : 0;

    return colon != NULL && k > 0 && memchr(t->text, '.', k) != NULL &&
           memchr(colon + 1, ':', t->len - k - 1) == NULL && is_digits(colon + 1, t->len - k - 1);
}

/* ---- domains ----------------------------------------------------------------------------- */

static bool domain_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Checks a domain value and stores it lower-cased, with its leading '.' and without a final one. */
static int parse_domain(struct config_parser *p, const struct value_word *v, struct rule_match *m)
{
    const struct config_token *t = &v->t;
    char shown[CONFIG_CLIP_SIZE];
    char buf[MATCH_DOMAIN_MAX + 2];
    size_t start = t->text[0] == '.' ? 1 : 0;
    size_t end = t->len;
    size_t label = 0;

    if (end > start && t->text[end - 1] == '.')
        end--;
    if (end <= start) {
        config_parser_error(p, t->col, "'%s' is not a domain name", config_token_clip(t, shown));
        return -1;
    }
    if (end - start > MATCH_DOMAIN_MAX) {
        config_parser_error(p, t->col, "domain name '%s' is longer than %u bytes",
                            config_token_clip(t, shown), (unsigned)MATCH_DOMAIN_MAX);
        return -1;
    }
    for (size_t i = start; i <= end; i++) {
        if (i == end || t->text[i] == '.') {
            if (label == 0 || label > 63) {
                config_parser_error(p, config_word_col_at(t, i - label),
                                    "invalid domain name '%s' (%s)", config_token_clip(t, shown),
                                    label == 0 ? "empty label" : "a label is longer than 63 bytes");
                return -1;
            }
            label = 0;
            continue;
        }
        if (!domain_char_ok(t->text[i])) {
            config_parser_error(p, config_word_col_at(t, i),
                                "invalid domain name '%s' (use letters, digits, '-', '_' and '.')",
                                config_token_clip(t, shown));
            return -1;
        }
        label++;
    }
    for (size_t i = 0; i < end; i++) {
        char c = t->text[i];
        buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    return add_name(p, &m->domains[v->pol], buf, end, t->col);
}

/* ---- from / to values -------------------------------------------------------------------- */

static int add_net(struct config_parser *p, struct match_place *pl, const struct match_net *n,
                   unsigned col)
{
    if (grow((void **)&pl->nets, pl->n_nets, sizeof *n) == NULL) {
        config_parser_out_of_memory(p, col);
        return -1;
    }
    pl->nets[pl->n_nets++] = *n;
    return 0;
}

static int add_asn(struct config_parser *p, struct match_place *pl, const struct config_token *t)
{
    char shown[CONFIG_CLIP_SIZE];
    uint64_t n;

    if (config_parse_number(t->text + 2, t->len - 2, &n) != CONFIG_NUMBER_OK || n == 0 ||
        n > UINT32_MAX) {
        config_parser_error(p, t->col, "AS number must be from 1 to 4294967295, got '%s'",
                            config_token_clip(t, shown));
        return -1;
    }
    if (grow((void **)&pl->asns, pl->n_asns, sizeof(uint32_t)) == NULL) {
        config_parser_out_of_memory(p, t->col);
        return -1;
    }
    pl->asns[pl->n_asns++] = (uint32_t)n;
    return 0;
}

static void error_unknown_place(struct config_parser *p, const struct config_token *t, bool to)
{
    static const char *const keywords[] = {"local",  "unknown",  "from",       "to",
                                           "user",   "listener", "no-resolve", "resolve",
                                           "reason", "log",      NULL};
    char shown[CONFIG_CLIP_SIZE];
    const char *s = config_region_suggest(p->cfg, t->text, t->len);

    if (s != NULL) {
        config_parser_error(p, t->col, "unknown region '%s' (did you mean '%s'?)",
                            config_token_clip(t, shown), s);
        return;
    }
    s = config_suggest(t->text, t->len, keywords);
    if (s != NULL)
        config_parser_error(p, t->col, "unknown value '%s' in '%s' (did you mean '%s'?)",
                            config_token_clip(t, shown), to ? "to" : "from", s);
    else
        config_parser_error(p, t->col, "unknown value '%s' in '%s' (expected %s)",
                            config_token_clip(t, shown), to ? "to" : "from",
                            to ? TO_EXPECTED : PLACE_EXPECTED);
}

static int parse_place_word(struct config_parser *p, const struct value_word *v, bool to,
                            struct rule_match *m)
{
    const struct config_token *t = &v->t;
    struct match_place *pl = to ? &m->to[v->pol] : &m->from[v->pol];
    char shown[CONFIG_CLIP_SIZE];
    const struct region *r;
    struct match_net net;

    if (config_word_is(t, "local")) {
        pl->local = true;
        return 0;
    }
    if (config_word_is(t, "unknown")) {
        pl->unknown = true;
        return 0;
    }
    if (t->text[0] == ':' && t->len > 1 && t->text[1] != ':') {
        if (to)
            return parse_ports(p, v, m);
        config_parser_error(p, t->col, "ports are only for 'to' ('%s' in 'from')",
                            config_token_clip(t, shown));
        return -1;
    }
    if (t->len > 2 && (t->text[0] == 'A' || t->text[0] == 'a') &&
        (t->text[1] == 'S' || t->text[1] == 's') && is_digits(t->text + 2, t->len - 2))
        return add_asn(p, pl, t);
    if (is_host_and_port(t)) {
        config_parser_error(p, t->col,
                            "'%s' joins a host and a port: write them as two values, e.g. "
                            "'to example.com :443'",
                            config_token_clip(t, shown));
        return -1;
    }
    if (looks_like_address(t))
        return parse_net(p, t, &net) != 0 ? -1 : add_net(p, pl, &net, t->col);
    r = t->len <= REGION_NAME_MAX ? config_region_find(p->cfg, t->text) : NULL;
    if (r != NULL) {
        for (size_t i = 0; i < COUNTRY_SET_WORDS; i++)
            pl->countries.bits[i] |= r->countries.bits[i];
        pl->has_countries = true;
        return 0;
    }
    if (t->len == 2 && country_code_index(t->text) >= 0) {
        pl->has_countries = true;
        return country_set_add(&pl->countries, t->text);
    }
    if (memchr(t->text, '.', t->len) != NULL) {
        if (to)
            return parse_domain(p, v, m);
        config_parser_error(p, t->col, "domain names are only for 'to' ('%s' in 'from')",
                            config_token_clip(t, shown));
        return -1;
    }
    error_unknown_place(p, t, to);
    return -1;
}

static int parse_place_value(struct config_parser *p, const struct value_word *v, bool to,
                             struct rule_match *m)
{
    struct match_place *pl = to ? &m->to[v->pol] : &m->from[v->pol];
    size_t domains = m->domains[v->pol].n, ports = m->n_ports[v->pol];
    int rc = parse_place_word(p, v, to, m);

    if (rc == 0 && domains == m->domains[v->pol].n && ports == m->n_ports[v->pol])
        pl->n_values++; /* neither a domain nor a port: a value about the address */
    return rc;
}

/* ---- user / listener --------------------------------------------------------------------- */

static int parse_listener_value(struct config_parser *p, const struct value_word *v,
                                struct rule_match *m)
{
    const struct config *cfg = p->cfg;
    const char *names[CONFIG_MAX_LISTENERS + 1];

    for (size_t i = 0; i < cfg->n_listeners; i++) {
        if (config_word_is(&v->t, cfg->listeners[i].name))
            return add_name(p, &m->listeners[v->pol], v->t.text, v->t.len, v->t.col);
        names[i] = cfg->listeners[i].name;
    }
    names[cfg->n_listeners] = NULL;
    config_error_unknown_word(p, &v->t, "listener", "", names,
                              "listeners must be defined before the rules that name them");
    return -1;
}

static int parse_user_value(struct config_parser *p, const struct value_word *v,
                            struct rule_match *m)
{
    if (v->t.len > MATCH_USER_MAX) {
        config_parser_error(p, v->t.col, "user name is longer than %u bytes",
                            (unsigned)MATCH_USER_MAX);
        return -1;
    }
    return add_name(p, &m->users[v->pol], v->t.text, v->t.len, v->t.col);
}

int config_rule_match_parse(struct config_parser *p, enum config_matcher which,
                            const struct config_token *values, size_t n, struct rule_match *m)
{
    static const unsigned bits[] = {MATCH_HAS_FROM, MATCH_HAS_TO, MATCH_HAS_USER,
                                    MATCH_HAS_LISTENER};

    m->present |= bits[which];
    for (size_t i = 0; i < n; i++) {
        struct value_word v = {values[i], MATCH_POS};
        int rc;

        if (v.t.len > 0 && v.t.text[0] == '!') {
            v.pol = MATCH_NEG;
            v.t.text++;
            v.t.len--;
            v.t.col = config_word_col_at(&values[i], 1);
            if (v.t.len == 0 || v.t.text[0] == '!') {
                config_parser_error(p, v.t.col, "%s after '!'",
                                    v.t.len == 0 ? "missing value" : "a second '!'");
                return -1;
            }
        }
        if (v.t.len == 0) {
            config_parser_error(p, v.t.col, "empty value in '%s'", config_matcher_name(which));
            return -1;
        }
        switch (which) {
        case CONFIG_MATCH_FROM:
        case CONFIG_MATCH_TO:
            rc = parse_place_value(p, &v, which == CONFIG_MATCH_TO, m);
            break;
        case CONFIG_MATCH_USER:
            rc = parse_user_value(p, &v, m);
            break;
        case CONFIG_MATCH_LISTENER:
        default:
            rc = parse_listener_value(p, &v, m);
            break;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

const char *config_matcher_name(enum config_matcher which)
{
    static const char *const names[] = {"from", "to", "user", "listener"};

    return names[which];
}
