/* Policy benchmark: the cost of one decision (policy_decide, compiled index) with 1, 100 and
 * 10,000 rules, against trying every rule in order (the reference evaluator). The rules are a
 * mix of countries, regions, networks, AS numbers, domains, ports and users; the requests match
 * only the last rule, the worst case for first-match-wins. Single thread.
 *
 * usage: policy_bench [-n DECISIONS]   (built by bench/policy_bench.sh) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/config.h"
#include "policy/policy.h"
#include "policy/rule_index.h"

#define TEXT_MAX (1024u * 1024u)
#define N_REQUESTS 256

static const char *const countries[] = {
    "CN", "HK", "RU", "IR", "KP", "BY", "FR", "GB", "JP", "KR", "BR", "IN", "ZA", "NG", "EG",
    "TR", "SA", "AE", "IL", "UA", "PL", "IT", "ES", "NL", "BE", "SE", "NO", "FI", "DK", "CH",
    "AT", "CZ", "HU", "RO", "BG", "GR", "PT", "IE", "CA", "AU", "NZ", "MX", "AR", "CL", "CO",
    "PE", "VE", "TH", "VN", "MY", "SG", "ID", "PH", "PK", "BD", "LK", "NP", "KZ", "UZ", "MN",
};
static const char *const regions[] = {"EU", "FIVE_EYES", "NINE_EYES", "FOURTEEN_EYES", "EEA"};

static uint64_t rng_state = UINT64_C(0x2545f4914f6cdd1d);

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

#define PICK(a) (a)[rnd(sizeof(a) / sizeof((a)[0]))]

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* One rule that never matches the benchmark's requests (client DE, AS3320, 192.0.2.0/24 ->
 * www.target.example, 198.51.100.7 US AS15169, port 443, user alice) but often matches part of
 * them, so evaluation cannot stop early. */
static int rule_line(char *out, size_t cap, size_t i)
{
    switch (i % 8) {
    case 0:
        return snprintf(out, cap, "rule r%zu block from %s %s to %s\n", i, PICK(countries),
                        PICK(countries), PICK(countries));
    case 1:
        return snprintf(out, cap, "rule r%zu pass from %s to .d%zu.example :443\n", i,
                        PICK(regions), i);
    case 2:
        return snprintf(out, cap, "rule r%zu block from 10.%u.%u.0/24 to 172.16.%u.0/24\n", i,
                        rnd(256), rnd(256), rnd(256));
    case 3:
        return snprintf(out, cap, "rule r%zu pass to host%zu.example.org :8000-9000\n", i, i);
    case 4:
        return snprintf(out, cap, "rule r%zu block from AS%u to %s %s\n", i, 64512 + rnd(1000),
                        PICK(countries), PICK(regions));
    case 5:
        return snprintf(out, cap, "rule r%zu pass user u%zu to .example.net\n", i, i);
    case 6:
        return snprintf(out, cap, "rule r%zu block to 2001:db8:%x::/48 :%u\n", i, rnd(65536),
                        1 + rnd(1000));
    default:
        return snprintf(out, cap, "rule r%zu block from DE to %s !.target.example\n", i,
                        PICK(regions));
    }
}

static struct config *load_rules(size_t n_rules, double *load_ms)
{
    char *text = malloc(TEXT_MAX);
    size_t used = 0;
    struct config_diags d;
    struct config *cfg = NULL;
    double t0;

    if (text == NULL)
        return NULL;
    used += (size_t)snprintf(text, TEXT_MAX, "listen mixed 127.0.0.1:1080\ngeoip country none\n");
    for (size_t i = 0; i + 1 < n_rules; i++) {
        int n = rule_line(text + used, TEXT_MAX - used, i);

        if (n < 0 || (size_t)n >= TEXT_MAX - used) {
            fprintf(stderr, "rules do not fit in %u bytes\n", TEXT_MAX);
            free(text);
            return NULL;
        }
        used += (size_t)n;
    }
    snprintf(text + used, TEXT_MAX - used,
             "rule final pass from DE 192.0.2.0/24 to .target.example :443\n");
    t0 = now_ns();
    if (config_load_string("bench.conf", text, NULL, &cfg, &d) != 0) {
        fprintf(stderr, "rules do not load: %s\n", d.count > 0 ? d.items[0].text : "?");
        cfg = NULL;
    }
    *load_ms = (now_ns() - t0) / 1e6;
    free(text);
    return cfg;
}

struct request_storage {
    struct sockaddr_in client, dest;
    char host[64];
    struct policy_request req;
};

static void make_requests(struct request_storage *rs)
{
    for (size_t i = 0; i < N_REQUESTS; i++) {
        struct request_storage *s = &rs[i];

        memset(s, 0, sizeof *s);
        s->client.sin_family = AF_INET;
        s->client.sin_addr.s_addr = htonl(0xc0000200u | (uint32_t)(i & 0xff)); /* 192.0.2.x */
        s->dest.sin_family = AF_INET;
        s->dest.sin_addr.s_addr = htonl(0xc6336407u); /* 198.51.100.7 */
        snprintf(s->host, sizeof s->host, "h%zu.www.target.example", i);
        s->req.client = (const struct sockaddr *)&s->client;
        s->req.client_geo.cls = GEO_CLASS_COUNTRY;
        memcpy(s->req.client_geo.country, "DE", 3);
        s->req.client_geo.asn = 3320;
        s->req.listener = "mixed-127.0.0.1:1080";
        s->req.user = "alice";
        s->req.host = s->host;
        s->req.dest = (const struct sockaddr *)&s->dest;
        s->req.dest_geo.cls = GEO_CLASS_COUNTRY;
        memcpy(s->req.dest_geo.country, "US", 3);
        s->req.dest_geo.asn = 15169;
        s->req.port = 443;
    }
}

struct stats {
    double median, p99;
};

static double timer_overhead(void)
{
    double v[1001];

    for (int i = 0; i < 1001; i++) {
        double t0 = now_ns();
        v[i] = now_ns() - t0;
    }
    qsort(v, 1001, sizeof v[0], cmp_double);
    return v[500];
}

/* Times n decisions one by one (the clock's own cost taken off). linear: the reference. */
static int measure(const struct policy_snapshot *snap, const struct request_storage *rs, size_t n,
                   bool linear, struct stats *out)
{
    const struct config *cfg = policy_snapshot_config(snap);
    double *v = malloc(n * sizeof *v);
    double overhead = timer_overhead();
    size_t checked = 0;

    if (v == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const struct policy_request *req = &rs[i % N_REQUESTS].req;
        struct policy_verdict verdict;
        enum rule_find found;
        size_t rule = 0;
        double t0 = now_ns();

        if (linear) {
            char host[MATCH_DOMAIN_MAX + 2];
            struct match_request r;

            match_request_init(&r, req, host);
            found = rule_find_linear(cfg, &r, &rule);
            v[i] = now_ns() - t0 - overhead;
            checked += found == RULE_FOUND && rule + 1 == cfg->n_rules;
        } else {
            enum policy_outcome o = policy_decide(snap, req, &verdict);

            v[i] = now_ns() - t0 - overhead;
            checked += o == POLICY_DECIDED && strcmp(verdict.rule, "final") == 0;
        }
    }
    if (checked != n) {
        fprintf(stderr, "%zu of %zu decisions did not pick the last rule\n", n - checked, n);
        free(v);
        return -1;
    }
    qsort(v, n, sizeof v[0], cmp_double);
    out->median = v[n / 2] < 0 ? 0 : v[n / 2];
    out->p99 = v[n * 99 / 100];
    free(v);
    return 0;
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {1, 100, 10000};
    static struct request_storage rs[N_REQUESTS];
    size_t n = 200000;

    if (argc == 3 && strcmp(argv[1], "-n") == 0)
        n = strtoul(argv[2], NULL, 10);
    if (n < 100) {
        fprintf(stderr, "usage: policy_bench [-n DECISIONS >= 100]\n");
        return 2;
    }
    make_requests(rs);
    printf(
        "| rules  | load ms | index KiB | compiled median ns | compiled p99 ns | linear median ns "
        "| linear p99 ns |\n");
    printf(
        "|-------:|--------:|----------:|-------------------:|----------------:|-----------------"
        ":|--------------:|\n");
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        double load_ms = 0;
        struct config *cfg = load_rules(sizes[k], &load_ms);
        struct policy_snapshot *snap;
        struct stats fast, slow;
        size_t n_linear = sizes[k] >= 10000 ? n / 20 : n;

        if (cfg == NULL)
            return 1;
        snap = policy_snapshot_new(cfg, 1);
        if (snap == NULL || measure(snap, rs, n, false, &fast) != 0 ||
            measure(snap, rs, n_linear, true, &slow) != 0)
            return 1;
        printf("| %6zu | %7.1f | %9.1f | %18.0f | %15.0f | %16.0f | %13.0f |\n", sizes[k], load_ms,
               (double)rule_index_bytes(cfg->index) / 1024.0, fast.median, fast.p99, slow.median,
               slow.p99);
        printf("decisions_%zu=%zu median_ns_%zu=%.0f p99_ns_%zu=%.0f\n", sizes[k], n, sizes[k],
               fast.median, sizes[k], fast.p99);
        policy_snapshot_release(snap);
    }
    return 0;
}
