/* The compiled rule index (policy/rule_index.c) against the straightforward reference that tries
 * every rule in order: thousands of random rule sets and requests must get the same answer. */
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

#include "policy/config.h"
#include "policy/rule_index.h"
#include "test_support.h"

#define TEXT_MAX (1024 * 1024)

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

#define PICK(a) (a)[rnd(N_ELEMS(a))]

static const char *const place_values[] = {
    "CN",
    "HK",
    "DE",
    "US",
    "FR",
    "SE",
    "GB",
    "JP",
    "EU",
    "FIVE_EYES",
    "NORDIC",
    "local",
    "unknown",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "192.0.2.0/24",
    "0.0.0.0/0",
    "2001:db8::/32",
    "2001:db8:1::/48",
    "::/0",
    "198.51.100.7",
    "::ffff:203.0.113.0/120",
    "AS1",
    "AS2",
    "AS3",
};
static const char *const domain_values[] = {
    "example.com", ".example.com", ".a.example.com", "b.example.com", ".org",
    ".onion",      "x.org",        ".com",           "other.net.",
};
static const char *const port_values[] = {":22", ":80", ":443", ":8000-9000", ":1-1024", ":8080"};
static const char *const users[] = {"alice", "bob", "carol"};
static const char *const listeners[] = {"main", "side"};

static void append(char *text, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void append(char *text, size_t *used, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(text + *used, TEXT_MAX - *used, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < TEXT_MAX - *used);
    *used += (size_t)n;
}

static void append_values(char *text, size_t *used, const char *const *pool, size_t n_pool)
{
    unsigned n = 1 + rnd(3);

    for (unsigned i = 0; i < n; i++)
        append(text, used, " %s%s", rnd(4) == 0 ? "!" : "", pool[rnd((uint32_t)n_pool)]);
}

static void append_rule(char *text, size_t *used, size_t i)
{
    append(text, used, "rule r%zu %s", i, rnd(2) ? "pass" : "block");
    if (rnd(2)) {
        append(text, used, " from");
        append_values(text, used, place_values, N_ELEMS(place_values));
    }
    if (rnd(3) != 0) {
        unsigned kind = rnd(4);

        append(text, used, " to");
        if (kind != 1)
            append_values(text, used, place_values, N_ELEMS(place_values));
        if (kind != 0)
            append_values(text, used, domain_values, N_ELEMS(domain_values));
        if (rnd(3) == 0)
            append_values(text, used, port_values, N_ELEMS(port_values));
    }
    if (rnd(6) == 0) {
        append(text, used, " user");
        append_values(text, used, users, N_ELEMS(users));
    }
    if (rnd(8) == 0) {
        append(text, used, " listener");
        append_values(text, used, listeners, N_ELEMS(listeners));
    }
    if (rnd(8) == 0)
        append(text, used, " no-resolve");
    append(text, used, "\n");
}

static const char *const client_addrs[] = {
    "10.1.2.3",    "10.9.9.9",        "192.0.2.5", "198.51.100.7", "2001:db8:1::1",
    "2001:db9::1", "::ffff:10.1.2.3", "8.8.8.8",   "203.0.113.77", "::ffff:203.0.113.1",
};
static const char *const countries[] = {"CN", "HK", "DE", "US", "SE", "BR", "NO", "GB"};
static const char *const hosts[] = {
    "example.com", "www.example.com", "a.example.com", "x.a.example.com", "b.example.com",
    "x.org",       "foo.onion",       "other.net",     "EXAMPLE.COM.",    "com",
};
static const uint16_t ports[] = {22, 80, 443, 8080, 8500, 9000, 9001, 25, 1, 1024, 1025};
static const char *const request_users[] = {"alice", "bob", "carol", "dave"};

static void addr_of(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

        sin6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;

        sin->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, text, &sin->sin_addr), 1);
    }
}

static void random_geo(struct geo_result *g)
{
    memset(g, 0, sizeof *g);
    switch (rnd(4)) {
    case 0:
        g->cls = GEO_CLASS_UNKNOWN;
        break;
    case 1:
        g->cls = GEO_CLASS_LOCAL;
        g->local = true;
        break;
    default:
        g->cls = GEO_CLASS_COUNTRY;
        g->local = rnd(4) == 0;
        memcpy(g->country, PICK(countries), 2);
        break;
    }
    g->asn = g->cls == GEO_CLASS_LOCAL ? 0 : rnd(5);
}

static void compare_requests(const struct config *cfg, unsigned n)
{
    for (unsigned k = 0; k < n; k++) {
        struct sockaddr_storage client, dest;
        struct policy_request req;
        struct match_request r;
        char host[MATCH_DOMAIN_MAX + 2];
        size_t a = SIZE_MAX, b = SIZE_MAX;
        enum rule_find fa, fb;

        memset(&req, 0, sizeof req);
        addr_of(PICK(client_addrs), &client);
        req.client = (const struct sockaddr *)&client;
        random_geo(&req.client_geo);
        req.host = rnd(3) != 0 ? PICK(hosts) : NULL;
        if (req.host == NULL || rnd(2)) {
            addr_of(PICK(client_addrs), &dest);
            req.dest = (const struct sockaddr *)&dest;
            random_geo(&req.dest_geo);
        }
        req.port = PICK(ports);
        req.user = rnd(2) ? PICK(request_users) : NULL;
        req.listener = rnd(2) ? "main" : "side";
        match_request_init(&r, &req, host);
        fa = rule_index_find(cfg->index, cfg, &r, &a);
        fb = rule_find_linear(cfg, &r, &b);
        if (fa != fb || (fa != RULE_NONE && a != b))
            fail_msg("index says %d rule %zu, reference %d rule %zu (request %u, host %s, port "
                     "%u)",
                     fa, a, fb, b, k, req.host ? req.host : "-", req.port);
    }
}

static void run_round(size_t n_rules, unsigned n_requests)
{
    char *text = malloc(TEXT_MAX);
    size_t used = 0;
    struct config_diags d;
    struct config *cfg = NULL;

    assert_non_null(text);
    append(text, &used,
           "listen mixed 127.0.0.1:1080 name main\nlisten mixed 127.0.0.1:1081 name side\n"
           "geoip country none\nregion NORDIC = DK SE NO FI IS\n");
    for (size_t i = 0; i < n_rules; i++)
        append_rule(text, &used, i);
    if (config_load_string("t.conf", text, NULL, &cfg, &d) != 0)
        fail_msg("random rules do not load: %s", d.count > 0 ? d.items[0].text : "?");
    assert_non_null(cfg->index);
    compare_requests(cfg, n_requests);
    config_free(cfg);
    free(text);
}

static void test_index_matches_reference(void **state)
{
    (void)state;
    rng_state = UINT64_C(0x9e3779b97f4a7c15);
    for (unsigned round = 0; round < 60; round++)
        run_round(1 + rnd(200), 300);
    run_round(3000, 3000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
