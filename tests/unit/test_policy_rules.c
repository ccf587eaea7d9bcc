/* Unit tests for the rule language: geoip and region directives, matcher values and their errors
 * (each with its exact position), and the evaluation of rules by policy_decide(). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "geo/mmdb_writer.h"
#include "policy/config.h"
#include "policy/policy.h"
#include "test_support.h"

/* Line 1 a listener named main, line 2 no country database: a case's own text starts at line 3. */
#define HEAD "listen mixed 127.0.0.1:1080 name main\ngeoip country none\n"

static char *diags_join(const struct config_diags *d)
{
    size_t cap = CONFIG_MAX_DIAGS * (CONFIG_DIAG_TEXT_MAX + 4) + 1;
    char *out = malloc(cap);
    size_t used = 0;

    assert_non_null(out);
    out[0] = '\0';
    for (size_t i = 0; i < d->count; i++) {
        int n = snprintf(out + used, cap - used, "%c %s\n",
                         d->items[i].severity == CONFIG_ERROR ? 'E' : 'W', d->items[i].text);
        assert_true(n > 0);
        used += (size_t)n;
    }
    return out;
}

static struct config *load(const char *text, const char *dir, const char *expected_diags)
{
    struct config_diags d;
    struct config *cfg = NULL;
    int rc = config_load_string("t.conf", text, dir, &cfg, &d);
    char *all = diags_join(&d);

    if (strcmp(all, expected_diags) != 0)
        print_error("input:\n%s", text);
    assert_string_equal(all, expected_diags);
    free(all);
    assert_int_equal(rc, d.errors > 0 ? -1 : 0);
    return cfg;
}

/* ---- errors ------------------------------------------------------------------------------ */

struct error_case {
    const char *text;
    const char *diags;
};

#define PLACE_EXP "a country code, region, local, unknown, address, network or AS number"
#define TO_EXP                                                                                     \
    PLACE_EXP ", domain or :PORT; a host name of one label needs a final dot, e.g. 'localhost.'"

static const struct error_case error_cases[] = {
    /* region */
    {HEAD "region\n", "E t.conf:3:7: missing region name after 'region'\n"},
    {HEAD "region eu = DE\n",
     "E t.conf:3:8: region name 'eu' clashes with the built-in region 'EU'\n"},
    {HEAD "region Five_Eyes = US\n",
     "E t.conf:3:8: region name 'Five_Eyes' clashes with the built-in region 'FIVE_EYES'\n"},
    {HEAD "region EUROPE = DE FR\nregion europe = DE\n",
     "E t.conf:4:8: duplicate region name 'europe' (first defined at t.conf:3)\n"},
    {HEAD "region local = DE\n",
     "E t.conf:3:8: 'local' cannot name a region: it is a matcher keyword\n"},
    {HEAD "region unknown = DE\n",
     "E t.conf:3:8: 'unknown' cannot name a region: it is a matcher keyword\n"},
    {HEAD "region UK = GB\n", "E t.conf:3:8: region name 'UK' would hide the country code UK (use "
                              "a name of three or more characters)\n"},
    {HEAD "region bad.name = DE\n",
     "E t.conf:3:8: invalid region name 'bad.name' (use 1 to 63 letters, digits, '_' or '-')\n"},
    {HEAD "region X\n",
     "E t.conf:3:9: missing '=' after the region name (expected region NAME = CC CC ...)\n"},
    {HEAD "region X =\n",
     "E t.conf:3:11: missing country codes after '=' (e.g. region NAME = DE FR)\n"},
    {HEAD "region X DE\n", "E t.conf:3:10: expected '=' after the region name, got 'DE'\n"},
    {HEAD "region NORDIC = DK SE NO FI IS XYZ\n",
     "E t.conf:3:32: invalid country code 'XYZ' (expected two letters such as DE)\n"},
    {HEAD "region NORDIC = DK 12\n",
     "E t.conf:3:20: invalid country code '12' (expected two letters such as DE)\n"},
    /* geoip */
    {HEAD "geoip\n",
     "E t.conf:3:6: missing database kind after 'geoip' (expected country or asn)\n"},
    {HEAD "geoip city x\n",
     "E t.conf:3:7: unknown geoip database 'city' (expected country or asn)\n"},
    {HEAD "geoip countyr x\n", "E t.conf:3:7: unknown geoip database 'countyr' (did you mean "
                               "'country'?)\n"},
    {HEAD "geoip asn\n", "E t.conf:3:10: missing path after 'geoip asn' (expected FILE or none)\n"},
    {HEAD "geoip asn a b\n", "E t.conf:3:13: unexpected extra argument 'b' for 'geoip'\n"},
    {HEAD "geoip asn /nonexistent.mmdb\n",
     "E t.conf:3:11: /nonexistent.mmdb: cannot open GeoIP database: Error opening the specified "
     "MaxMind DB file (No such file or directory)\n"},
    {HEAD "geoip country none\n", "E t.conf:3:1: 'geoip country' is already set at t.conf:2\n"},
    {HEAD "geoip asn \"\"\n", "E t.conf:3:11: empty database path\n"},
    /* matcher values */
    {HEAD "rule a pass from CX1\n",
     "E t.conf:3:18: unknown value 'CX1' in 'from' (expected " PLACE_EXP ")\n"},
    {HEAD "rule a pass from fiveeyes\n",
     "E t.conf:3:18: unknown region 'fiveeyes' (did you mean 'FIVE_EYES'?)\n"},
    {HEAD "region NORDIC = DK SE\nrule a pass to nordik\n",
     "E t.conf:4:16: unknown region 'nordik' (did you mean 'NORDIC'?)\n"},
    {HEAD "rule a pass to localhost\n",
     "E t.conf:3:16: unknown value 'localhost' in 'to' (expected " TO_EXP ")\n"},
    {HEAD "rule a pass from lokal\n",
     "E t.conf:3:18: unknown value 'lokal' in 'from' (did you mean 'local'?)\n"},
    {HEAD "rule a pass from CN fromm HK\n",
     "E t.conf:3:21: unknown value 'fromm' in 'from' (did you mean 'from'?)\n"},
    {HEAD "rule a pass from example.com\n",
     "E t.conf:3:18: domain names are only for 'to' ('example.com' in 'from')\n"},
    {HEAD "rule a pass from :443\n", "E t.conf:3:18: ports are only for 'to' (':443' in 'from')\n"},
    {HEAD "rule a pass to :0\n", "E t.conf:3:17: port must be between 1 and 65535, got '0'\n"},
    {HEAD "rule a pass to :443-70000\n",
     "E t.conf:3:21: port must be between 1 and 65535, got '70000'\n"},
    {HEAD "rule a pass to :9000-8000\n", "E t.conf:3:16: port range ':9000-8000' runs backwards\n"},
    {HEAD "rule a pass to :abc\n", "E t.conf:3:17: invalid port ':abc' (expected :PORT or "
                                   ":FIRST-LAST, e.g. :443 or :8000-9000)\n"},
    {HEAD "rule a pass to 10.1.0.0/8\n", "E t.conf:3:16: network '10.1.0.0/8' has bits set past "
                                         "its prefix length (did you mean 10.0.0.0/8?)\n"},
    {HEAD "rule a pass from ::ffff:1.2.3.0/100\n",
     "E t.conf:3:18: network '::ffff:1.2.3.0/100' has bits set past its prefix length (did you "
     "mean ::ffff:0.0.0.0/100?)\n"},
    {HEAD "rule a pass to 10.0.0.0/33\n",
     "E t.conf:3:25: invalid prefix length '/33' (expected 0 to 32)\n"},
    {HEAD "rule a pass to 2001:db8::/129\n",
     "E t.conf:3:27: invalid prefix length '/129' (expected 0 to 128)\n"},
    {HEAD "rule a pass to 1.2.3\n", "E t.conf:3:16: invalid IPv4 address '1.2.3'\n"},
    {HEAD "rule a pass to !2001:db8::zz\n", "E t.conf:3:17: invalid IPv6 address '2001:db8::zz'\n"},
    {HEAD "rule a pass to example..com\n",
     "E t.conf:3:24: invalid domain name 'example..com' (empty label)\n"},
    {HEAD "rule a pass to exa$mple.com\n",
     "E t.conf:3:19: invalid domain name 'exa$mple.com' (use letters, digits, '-', '_' and '.')\n"},
    {HEAD "rule a pass to .\n", "E t.conf:3:16: '.' is not a domain name\n"},
    {HEAD "rule a pass to example.com:443\n",
     "E t.conf:3:16: 'example.com:443' joins a host and a port: write them as two values, e.g. "
     "'to example.com :443'\n"},
    {HEAD "rule a pass to AS0\n",
     "E t.conf:3:16: AS number must be from 1 to 4294967295, got 'AS0'\n"},
    {HEAD "rule a pass to AS99999999999\n",
     "E t.conf:3:16: AS number must be from 1 to 4294967295, got 'AS99999999999'\n"},
    {HEAD "rule a pass listener mian\n",
     "E t.conf:3:22: unknown listener 'mian' (did you mean 'main'?)\n"},
    {HEAD "rule a pass listener !other\n", "E t.conf:3:23: unknown listener 'other' (listeners "
                                           "must be defined before the rules that name them)\n"},
    {HEAD "rule a pass to !\n", "E t.conf:3:17: missing value after '!'\n"},
    {HEAD "rule a pass to !!CN\n", "E t.conf:3:17: a second '!' after '!'\n"},
    {HEAD "rule a pass to \"\"\n", "E t.conf:3:16: empty value in 'to'\n"},
    {HEAD "rule a pass user \"\"\n", "E t.conf:3:18: empty value in 'user'\n"},
    /* options */
    {HEAD "rule a pass from\n", "E t.conf:3:17: missing value after 'from'\n"},
    {HEAD "rule a pass from CN to\n", "E t.conf:3:23: missing value after 'to'\n"},
    {HEAD "rule a pass from CN from HK\n", "E t.conf:3:21: option 'from' given twice\n"},
    {HEAD "rule a pass no-resolve to CN no-resolve\n",
     "E t.conf:3:30: option 'no-resolve' given twice\n"},
    {HEAD "rule a pass to CN log\n", "E t.conf:3:22: missing value after 'log'\n"},
    {HEAD "rule a block log full colour red\n", "E t.conf:3:23: unknown option 'colour' for "
                                                "'rule' (expected from, to, user, listener, "
                                                "no-resolve, resolve, reason or log)\n"},
    {HEAD "rule a block from CN reason\n", "E t.conf:3:28: missing value after 'reason'\n"},
    {HEAD "rule a block lgo full\n",
     "E t.conf:3:14: unknown option 'lgo' for 'rule' (did you mean 'log'?)\n"},
    {HEAD "rule a pass to .example.com no-resolve\n",
     "W t.conf:3:29: warning: 'no-resolve' has no effect: rule 'a' has no 'to' value that needs "
     "the destination's address\n"
     "W t.conf:3:1: warning: last rule 'a' is not a catch-all: connections it does not match will "
     "be blocked (fail closed)\n"},
    /* tunnel */
    {HEAD "rule a tunnel via exit-ch\n",
     "E t.conf:3:19: unknown upstream 'exit-ch' (no upstream is defined before this line)\n"},
    {HEAD "rule a tunnel\n", "E t.conf:3:14: expected 'via UPSTREAM' after 'tunnel'\n"},
    {HEAD "rule a tunnel through x\n", "E t.conf:3:15: expected 'via UPSTREAM' after 'tunnel'\n"},
    {HEAD "rule a tunnel via\n", "E t.conf:3:18: missing upstream name after 'via'\n"},
    {HEAD "rule a tunel via x\n",
     "E t.conf:3:8: unknown action 'tunel' (did you mean 'tunnel'?)\n"},
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(error_cases); i++) {
        struct config *cfg = load(error_cases[i].text, NULL, error_cases[i].diags);

        config_free(cfg);
    }
}

/* ---- evaluation -------------------------------------------------------------------------- */

/* One request. Geography is written by hand (no database): "HK" a country, "-" unknown, "L" a
 * local address with no country, "L+HK" a local address a fixture overlay gives HK; "/AS64500"
 * adds an AS number. */
struct eval_case {
    const char *client;
    const char *client_geo;
    const char *host; /* NULL: the client gave an address */
    const char *dest; /* NULL: not resolved yet */
    const char *dest_geo;
    uint16_t port;
    const char *user;
    const char *listener; /* NULL: "main" */
    const char *expect;   /* a rule name, "(no rule)", or "NEED" for POLICY_NEED_ADDRESS */
};

struct eval_table {
    const char *rules; /* lines after HEAD and "listen ... name side" */
    struct eval_case cases[12];
};

static const struct sockaddr *addr_of(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (text == NULL)
        return NULL;
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

        sin6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;

        sin->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, text, &sin->sin_addr), 1);
    }
    return (const struct sockaddr *)ss;
}

static void geo_of(const char *spec, struct geo_result *g)
{
    const char *as;

    memset(g, 0, sizeof *g);
    g->cls = GEO_CLASS_UNKNOWN;
    if (spec == NULL)
        return;
    as = strstr(spec, "/AS");
    if (as != NULL)
        g->asn = (uint32_t)strtoul(as + 3, NULL, 10);
    if (spec[0] == 'L') {
        g->local = true;
        g->cls = GEO_CLASS_LOCAL;
        g->asn = 0;
        spec += spec[1] == '+' ? 2 : 1;
    }
    if (spec[0] >= 'A' && spec[0] <= 'Z' && spec[1] >= 'A' && spec[1] <= 'Z') {
        g->cls = GEO_CLASS_COUNTRY;
        memcpy(g->country, spec, 2);
    }
}

static const char *decide(const struct policy_snapshot *snap, const struct eval_case *c,
                          struct policy_verdict *v)
{
    struct sockaddr_storage client, dest;
    struct policy_request req = {
        .client = addr_of(c->client, &client),
        .listener = c->listener != NULL ? c->listener : "main",
        .user = c->user,
        .host = c->host,
        .dest = addr_of(c->dest, &dest),
        .port = c->port,
    };

    geo_of(c->client_geo, &req.client_geo);
    geo_of(c->dest != NULL ? c->dest_geo : NULL, &req.dest_geo);
    memset(v, 0, sizeof *v);
    if (policy_decide(snap, &req, v) == POLICY_NEED_ADDRESS)
        return "NEED";
    return v->rule;
}

static void run_table(const struct eval_table *t)
{
    char text[4096];
    struct config_diags d;
    struct config *cfg = NULL;
    struct policy_snapshot *snap;

    snprintf(text, sizeof text, HEAD "listen socks5 127.0.0.1:1081 name side\n%s", t->rules);
    if (config_load_string("t.conf", text, NULL, &cfg, &d) != 0) {
        char *all = diags_join(&d);

        fail_msg("rules do not load:\n%s\n%s", text, all);
    }
    snap = policy_snapshot_new(cfg, 1);
    assert_non_null(snap);
    for (size_t i = 0; t->cases[i].expect != NULL; i++) {
        const struct eval_case *c = &t->cases[i];
        struct policy_verdict v;
        const char *got = decide(snap, c, &v);

        if (strcmp(got, c->expect) != 0)
            fail_msg("rules:\n%scase %zu (%s %s -> %s %s %s :%u user %s): got %s, want %s",
                     t->rules, i, c->client, c->client_geo ? c->client_geo : "-",
                     c->host ? c->host : "-", c->dest ? c->dest : "-",
                     c->dest_geo ? c->dest_geo : "-", c->port, c->user ? c->user : "-", got,
                     c->expect);
    }
    policy_snapshot_release(snap);
}

static const struct eval_table eval_tables[] = {
    /* built-in refusals: 0.0.0.0 and :: never; local destinations for clients outside the
     * local ranges only through a rule that names them (to local, or a network) */
    {"rule lan pass to 10.0.0.0/8\nrule home pass to local :8080\nrule rest pass\n",
     {
         {"127.0.0.1", "L", NULL, "0.0.0.0", "L", 80, NULL, NULL, "(unspecified destination)"},
         {"127.0.0.1", "L", NULL, "::", "L", 80, NULL, NULL, "(unspecified destination)"},
         {"127.0.0.1", "L", NULL, "::ffff:0.0.0.0", "L", 80, NULL, NULL,
          "(unspecified destination)"},
         {"203.0.113.1", "HK", NULL, "192.168.1.1", "L", 80, NULL, NULL, "(local destination)"},
         {"203.0.113.1", "HK", NULL, "127.0.0.1", "L", 22, NULL, NULL, "(local destination)"},
         {"203.0.113.1", "HK", "intranet.example", "10.1.2.3", "L", 80, NULL, NULL, "lan"},
         {"203.0.113.1", "HK", NULL, "192.168.1.1", "L", 8080, NULL, NULL, "home"},
         {"203.0.113.1", "HK", NULL, "198.51.100.1", "CN", 80, NULL, NULL, "rest"},
         {"192.168.1.7", "L", NULL, "192.168.1.1", "L", 80, NULL, NULL, "rest"},
         {"203.0.113.1", "HK", "router.example", NULL, NULL, 80, NULL, NULL, "NEED"},
         {0},
     }},
    /* the example: a client in HK may not reach CN; every other pair passes */
    {"rule hk-cn block from HK to CN reason \"not from HK to CN\"\nrule others pass\n",
     {
         {"127.0.1.5", "L+HK", NULL, "127.0.2.9", "L+CN", 443, NULL, NULL, "hk-cn"},
         {"127.0.1.5", "L+HK", NULL, "127.0.3.9", "L+CH", 443, NULL, NULL, "others"},
         {"127.0.4.5", "L+DE", NULL, "127.0.2.9", "L+CN", 443, NULL, NULL, "others"},
         {"203.0.113.1", "HK", NULL, "198.51.100.1", "CN", 80, NULL, NULL, "hk-cn"},
         {"203.0.113.1", "HK", "www.example.cn", NULL, NULL, 443, NULL, NULL, "NEED"},
         {"203.0.113.1", "HK", "www.example.cn", "198.51.100.1", "CN", 443, NULL, NULL, "hk-cn"},
         {"203.0.113.1", "HK", "www.example.ch", "198.51.100.2", "CH", 443, NULL, NULL, "others"},
         {"203.0.113.1", "DE", "www.example.cn", NULL, NULL, 443, NULL, NULL, "others"},
         {0},
     }},
    /* regions, built-in and the configuration's own; a region name wins over a code */
    {"region NORDIC = DK SE NO FI IS\nrule eu pass from EU to nordic\nrule last block\n",
     {
         {"192.0.2.1", "DE", NULL, "198.51.100.1", "SE", 443, NULL, NULL, "eu"},
         {"192.0.2.1", "DE", NULL, "198.51.100.1", "NO", 443, NULL, NULL, "eu"},
         {"192.0.2.1", "CH", NULL, "198.51.100.1", "NO", 443, NULL, NULL, "last"},
         {"192.0.2.1", "DE", NULL, "198.51.100.1", "DE", 443, NULL, NULL, "last"},
         {"192.0.2.1", "-", NULL, "198.51.100.1", "SE", 443, NULL, NULL, "last"},
         {0},
     }},
    /* domains: exact, suffix (the domain itself and below), case, final dot; never a literal */
    {"rule exact pass to example.com\nrule suffix block to .Blocked.ORG.\n",
     {
         {"192.0.2.1", "-", "example.com", NULL, NULL, 443, NULL, NULL, "exact"},
         {"192.0.2.1", "-", "EXAMPLE.com.", NULL, NULL, 443, NULL, NULL, "exact"},
         {"192.0.2.1", "-", "www.example.com", NULL, NULL, 443, NULL, NULL, "(no rule)"},
         {"192.0.2.1", "-", "blocked.org", NULL, NULL, 443, NULL, NULL, "suffix"},
         {"192.0.2.1", "-", "a.b.blocked.org", NULL, NULL, 443, NULL, NULL, "suffix"},
         {"192.0.2.1", "-", "notblocked.org", NULL, NULL, 443, NULL, NULL, "(no rule)"},
         {"192.0.2.1", "-", "blocked.org.uk", NULL, NULL, 443, NULL, NULL, "(no rule)"},
         {"192.0.2.1", "-", NULL, "93.184.216.34", "US", 443, NULL, NULL, "(no rule)"},
         {"192.0.2.1", "-", "example.com", "93.184.216.34", "US", 443, NULL, NULL, "exact"},
         {0},
     }},
    /* ports and ranges; host and port values are two conditions */
    {"rule web pass to .example.com :80 :443\nrule range pass to :8000-9000 !:8080\n"
     "rule all-but-smtp pass to !:25 !.onion\n",
     {
         {"192.0.2.1", "-", "www.example.com", NULL, NULL, 443, NULL, NULL, "web"},
         {"192.0.2.1", "-", "www.example.com", NULL, NULL, 22, NULL, NULL, "all-but-smtp"},
         {"192.0.2.1", "-", "www.example.org", NULL, NULL, 443, NULL, NULL, "all-but-smtp"},
         {"192.0.2.1", "-", "x.org", NULL, NULL, 8000, NULL, NULL, "range"},
         {"192.0.2.1", "-", "x.org", NULL, NULL, 9000, NULL, NULL, "range"},
         {"192.0.2.1", "-", "x.org", NULL, NULL, 8080, NULL, NULL, "all-but-smtp"},
         {"192.0.2.1", "-", "x.org", NULL, NULL, 25, NULL, NULL, "(no rule)"},
         {"192.0.2.1", "-", "abc.onion", NULL, NULL, 443, NULL, NULL, "(no rule)"},
         {0},
     }},
    /* networks: IPv4, IPv6, IPv4-mapped IPv6 as IPv4, longest and shortest prefixes */
    {"rule v4 block from 192.0.2.0/24\nrule v6 block from 2001:db8::/32\n"
     "rule host pass to 198.51.100.7 ::ffff:203.0.113.0/120\nrule all4 pass to 0.0.0.0/0\n",
     {
         {"192.0.2.77", "-", NULL, "8.8.8.8", "US", 443, NULL, NULL, "v4"},
         {"::ffff:192.0.2.77", "-", NULL, "8.8.8.8", "US", 443, NULL, NULL, "v4"},
         {"2001:db8:1::5", "-", NULL, "8.8.8.8", "US", 443, NULL, NULL, "v6"},
         {"2001:db9::5", "-", NULL, "2001:db8::1", "-", 443, NULL, NULL, "(no rule)"},
         {"192.0.3.1", "-", NULL, "198.51.100.7", "-", 443, NULL, NULL, "host"},
         {"192.0.3.1", "-", NULL, "::ffff:198.51.100.7", "-", 443, NULL, NULL, "host"},
         {"192.0.3.1", "-", NULL, "203.0.113.9", "-", 443, NULL, NULL, "host"},
         {"192.0.3.1", "-", NULL, "198.51.100.8", "-", 443, NULL, NULL, "all4"},
         {"192.0.3.1", "-", "x.org", NULL, NULL, 443, NULL, NULL, "NEED"},
         {0},
     }},
    /* AS numbers, users, listeners */
    {"rule asn block to AS64500\nrule users pass user alice bob\nrule side pass listener side\n"
     "rule not-carol pass user !carol to .example.com\n",
     {
         {"192.0.2.1", "-", NULL, "198.51.100.1", "US/AS64500", 443, "alice", NULL, "asn"},
         {"192.0.2.1", "-", NULL, "198.51.100.1", "US/AS64501", 443, "alice", NULL, "users"},
         {"192.0.2.1", "-", NULL, "198.51.100.1", "US", 443, "bob", NULL, "users"},
         {"192.0.2.1", "-", NULL, "198.51.100.1", "US", 443, "Alice", NULL, "(no rule)"},
         {"192.0.2.1", "-", NULL, "198.51.100.1", "US", 443, NULL, "side", "side"},
         {"192.0.2.1", "-", "example.com", "198.51.100.1", "US", 443, NULL, NULL, "not-carol"},
         {"192.0.2.1", "-", "example.com", "198.51.100.1", "US", 443, "carol", NULL, "(no rule)"},
         {0},
     }},
    /* negation: every positive value or none, and no negated value */
    {"rule not-hk-cn pass from !HK !CN\nrule cn-but-lan pass from CN !10.0.0.0/8\n",
     {
         {"192.0.2.1", "DE", NULL, "198.51.100.1", "US", 443, NULL, NULL, "not-hk-cn"},
         {"192.0.2.1", "HK", NULL, "198.51.100.1", "US", 443, NULL, NULL, "(no rule)"},
         {"192.0.2.1", "CN", NULL, "198.51.100.1", "US", 443, NULL, NULL, "cn-but-lan"},
         {"10.1.2.3", "L+CN", NULL, "198.51.100.1", "US", 443, NULL, NULL, "(no rule)"},
         {"192.0.2.1", "-", NULL, "198.51.100.1", "US", 443, NULL, NULL, "not-hk-cn"},
         {0},
     }},
    /* local is the address range, even when a fixture gives it a country; unknown is no country */
    {"rule lan pass from local\nrule unknown-destinations block to unknown\nrule hk pass from HK\n",
     {
         {"127.0.1.5", "L+HK", NULL, "198.51.100.1", "-", 443, NULL, NULL, "lan"},
         {"10.0.0.1", "L", NULL, "198.51.100.1", "-", 443, NULL, NULL, "lan"},
         {"203.0.113.1", "HK", NULL, "198.51.100.1", "-", 443, NULL, NULL, "unknown-destinations"},
         {"203.0.113.1", "HK", NULL, "198.51.100.1", "US", 443, NULL, NULL, "hk"},
         {"203.0.113.1", "HK", NULL, "10.0.0.1", "L", 443, NULL, NULL, "(local destination)"},
         {"203.0.113.1", "-", NULL, "198.51.100.1", "US", 443, NULL, NULL, "(no rule)"},
         {0},
     }},
    /* lazy resolution: rules on the name alone decide without an address; no-resolve skips */
    {"rule by-name block to .ads.example\nrule by-port pass to :22\n"
     "rule cn-skip block to CN no-resolve\nrule cn block to CN\nrule rest pass\n",
     {
         {"192.0.2.1", "-", "x.ads.example", NULL, NULL, 443, NULL, NULL, "by-name"},
         {"192.0.2.1", "-", "example.org", NULL, NULL, 22, NULL, NULL, "by-port"},
         {"192.0.2.1", "-", "example.org", NULL, NULL, 443, NULL, NULL, "NEED"},
         {"192.0.2.1", "-", "example.org", "198.51.100.1", "CN", 443, NULL, NULL, "cn-skip"},
         {"192.0.2.1", "-", "example.org", "198.51.100.1", "US", 443, NULL, NULL, "rest"},
         {"192.0.2.1", "-", NULL, "198.51.100.1", "US", 443, NULL, NULL, "rest"},
         {0},
     }},
    {"rule cn-skip block to CN no-resolve\nrule rest pass\n",
     {
         {"192.0.2.1", "-", "example.org", NULL, NULL, 443, NULL, NULL, "rest"},
         {"192.0.2.1", "-", NULL, "198.51.100.1", "CN", 443, NULL, NULL, "cn-skip"},
         {0},
     }},
    /* a negated address value needs the address too; a domain hit decides without it */
    {"rule not-cn pass to .example.com !CN\nrule rest block\n",
     {
         {"192.0.2.1", "-", "www.example.com", NULL, NULL, 443, NULL, NULL, "NEED"},
         {"192.0.2.1", "-", "www.example.org", NULL, NULL, 443, NULL, NULL, "rest"},
         {"192.0.2.1", "-", "www.example.com", "198.51.100.1", "CN", 443, NULL, NULL, "rest"},
         {"192.0.2.1", "-", "www.example.com", "198.51.100.1", "US", 443, NULL, NULL, "not-cn"},
         {0},
     }},
    /* first match wins; no rule matching is a block */
    {"rule first pass to :443\nrule second block to :443\n",
     {
         {"192.0.2.1", "-", "a.org", NULL, NULL, 443, NULL, NULL, "first"},
         {"192.0.2.1", "-", "a.org", NULL, NULL, 80, NULL, NULL, "(no rule)"},
         {0},
     }},
};

static void test_eval(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(eval_tables); i++)
        run_table(&eval_tables[i]);
}

static void test_verdict_fields(void **state)
{
    static const struct eval_table t = {"rule hk block from HK reason \"not from HK\" log full\n",
                                        {{0}}};
    struct eval_case c = {"192.0.2.1", "HK", NULL, "198.51.100.1", "US", 443, NULL, NULL, "hk"};
    char text[512];
    struct config *cfg = NULL;
    struct policy_snapshot *snap;
    struct policy_verdict v;

    (void)state;
    snprintf(text, sizeof text, HEAD "%s", t.rules);
    assert_int_equal(config_load_string("t.conf", text, NULL, &cfg, NULL), 0);
    snap = policy_snapshot_new(cfg, 1);
    assert_string_equal(decide(snap, &c, &v), "hk");
    assert_int_equal(v.action, VERDICT_BLOCK);
    assert_string_equal(v.reason, "not from HK");
    assert_int_equal(v.log, LOG_LEVEL_FULL);
    assert_string_equal(v.file, "t.conf");
    assert_int_equal(v.line, 3);
    c.client_geo = "DE";
    assert_string_equal(decide(snap, &c, &v), "(no rule)");
    assert_int_equal(v.action, VERDICT_BLOCK);
    assert_null(v.file);
    assert_int_equal(v.line, 0);
    policy_snapshot_release(snap);
}

/* ---- checks ------------------------------------------------------------------------------ */

static const struct error_case check_cases[] = {
    {HEAD "rule all pass\nrule late block to :25\nrule later pass\n",
     "W t.conf:4:1: warning: rule 'late' can never match: rule 'all' (t.conf:3) before it matches "
     "every connection\n"
     "W t.conf:5:1: warning: rule 'later' can never match: rule 'all' (t.conf:3) before it "
     "matches every connection\n"},
    {HEAD "rule web pass to .example.com :80 :443\nrule www block to www.example.com :443\n"
          "rule other block to www.example.com :8443\nrule rest pass\n",
     "W t.conf:4:1: warning: rule 'www' can never match: rule 'web' (t.conf:3) before it matches "
     "every connection it could match\n"},
    {HEAD "region NORDIC = DK SE\nrule eu block from EU 10.0.0.0/8\n"
          "rule se block from SE 10.1.0.0/16 user bob\nrule no pass from NO\nrule neg pass from "
          "!CN\nrule de pass from DE !10.0.0.0/8\nrule rest pass\n",
     "W t.conf:4:1: warning: rule 'eu' and 4 more name countries or regions, but there is no "
     "country database: every public address is 'unknown' (see 'geoip country')\n"
     "W t.conf:5:1: warning: rule 'se' can never match: rule 'eu' (t.conf:4) before it matches "
     "every connection it could match\n"
     "W t.conf:8:1: warning: rule 'de' can never match: rule 'eu' (t.conf:4) before it matches "
     "every connection it could match\n"},
    /* a negation or a matcher the later rule leaves open is not coverage */
    {HEAD "rule not-cn pass to !.cn\nrule x block to .example.com\nrule u pass user alice\n"
          "rule v pass to :443\nrule rest pass\n",
     ""},
    {HEAD "rule only block to :25\n",
     "W t.conf:3:1: warning: last rule 'only' is not a catch-all: connections it does not match "
     "will be blocked (fail closed)\n"},
    {HEAD, "W t.conf: warning: no rule: every connection will be blocked (fail closed)\n"},
};

static void test_checks(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(check_cases); i++)
        config_free(load(check_cases[i].text, NULL, check_cases[i].diags));
}

/* ---- geoip databases and sources --------------------------------------------------------- */

static char *write_file(const char *dir, const char *name, const char *text)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *path = malloc(len);
    FILE *f;

    assert_non_null(path);
    snprintf(path, len, "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* A country database mapping the loopback fixtures 127.0.1.0/24 to HK and 127.0.2.0/24 to CN. */
static char *write_fixture_db(const char *dir)
{
    static const struct {
        const char *net;
        const char *cc;
    } nets[] = {{"127.0.1.0", "HK"}, {"127.0.2.0", "CN"}, {"127.0.3.0", "CH"}};
    size_t len = strlen(dir) + 16;
    char *path = malloc(len);
    struct mmdb_writer *w = NULL;
    char err[256];

    assert_non_null(path);
    snprintf(path, len, "%s/fixture.mmdb", dir);
    assert_int_equal(mmdb_writer_new(6, "geoproxy-test", "policy fixtures", 1, &w), 0);
    for (size_t i = 0; i < N_ELEMS(nets); i++) {
        struct sockaddr_storage ss;

        assert_int_equal(
            mmdb_writer_insert(w, addr_of(nets[i].net, &ss), 24, nets[i].cc, err, sizeof err), 0);
    }
    assert_int_equal(mmdb_writer_write(w, path, err, sizeof err), 0);
    mmdb_writer_free(w);
    return path;
}

static bool has_source(const struct config *cfg, const char *path)
{
    for (size_t i = 0; i < cfg->n_sources; i++)
        if (strcmp(cfg->sources[i], path) == 0)
            return true;
    return false;
}

static void test_geoip_database(void **state)
{
    char dir[] = "/tmp/geoproxy-test-rules-XXXXXX";
    char *db, *top, *inc;
    struct config *cfg = NULL;
    struct config_diags d;
    struct policy_snapshot *snap;
    struct sockaddr_storage client, dest;
    struct policy_request req;
    struct policy_verdict v;

    (void)state;
    assert_non_null(mkdtemp(dir));
    db = write_fixture_db(dir);
    inc = write_file(dir, "rules.conf",
                     "rule hk-cn block from HK to CN\nrule hk-cn-again block from HK to CN\n"
                     "rule rest pass\n");
    top = write_file(dir, "main.conf",
                     "listen mixed 127.0.0.1:1080\ngeoip country fixture.mmdb\ninclude rules.conf\n"
                     "include rules.conf\n");
    /* the same file included twice is one source; its rules count twice (duplicate names) */
    assert_int_equal(config_load_file(top, &cfg, &d), -1);
    free(write_file(
        dir, "main.conf",
        "listen mixed 127.0.0.1:1080\ngeoip country fixture.mmdb\ninclude rules.conf\n"));
    assert_int_equal(config_load_file(top, &cfg, &d), 0);
    assert_int_equal(d.errors, 0);
    assert_non_null(cfg->geoip.country);
    assert_null(cfg->geoip.asn);
    assert_false(cfg->geoip.country_is_default);
    assert_string_equal(cfg->geoip.country_path, db);
    assert_int_equal(cfg->n_sources, 3);
    assert_true(has_source(cfg, top));
    assert_true(has_source(cfg, inc));
    assert_true(has_source(cfg, db));

    snap = policy_snapshot_new(cfg, 1);
    memset(&req, 0, sizeof req);
    req.client = addr_of("127.0.1.5", &client);
    req.dest = addr_of("127.0.2.9", &dest);
    req.listener = "mixed-127.0.0.1:1080";
    req.port = 443;
    policy_classify(snap, req.client, &req.client_geo);
    policy_classify(snap, req.dest, &req.dest_geo);
    assert_string_equal(req.client_geo.country, "HK");
    assert_true(req.client_geo.local);
    assert_int_equal(policy_decide(snap, &req, &v), POLICY_DECIDED);
    assert_string_equal(v.rule, "hk-cn");
    assert_string_equal(v.file, inc);
    assert_int_equal(v.line, 1);
    req.dest = addr_of("127.0.3.9", &dest);
    policy_classify(snap, req.dest, &req.dest_geo);
    assert_int_equal(policy_decide(snap, &req, &v), POLICY_DECIDED);
    assert_string_equal(v.rule, "rest");
    policy_snapshot_release(snap);

    /* without a geoip line: the built-in default when it was built, else no database */
    assert_int_equal(config_load_string("t.conf", "listen mixed 127.0.0.1:1080\n", dir, &cfg, &d),
                     0);
    if (cfg->geoip.country != NULL) {
        assert_true(cfg->geoip.country_is_default);
        assert_true(has_source(cfg, cfg->geoip.country_path));
    } else {
        assert_null(cfg->geoip.country_path);
        assert_int_equal(cfg->n_sources, 0);
    }
    config_free(cfg);

    /* a file that is not a database is an error at its word */
    free(write_file(dir, "main.conf", "listen mixed 127.0.0.1:1080\ngeoip asn   rules.conf\n"));
    assert_int_equal(config_load_file(top, &cfg, &d), -1);
    assert_true(d.count >= 1);
    assert_non_null(strstr(d.items[0].text, "main.conf:2:13: "));
    assert_non_null(strstr(d.items[0].text, "rules.conf: not a valid MaxMind DB file"));

    unlink(db);
    unlink(inc);
    unlink(top);
    rmdir(dir);
    free(db);
    free(inc);
    free(top);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),         cmocka_unit_test(test_eval),
        cmocka_unit_test(test_verdict_fields), cmocka_unit_test(test_checks),
        cmocka_unit_test(test_geoip_database),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
