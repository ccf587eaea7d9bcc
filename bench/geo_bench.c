/* Geo classification benchmark: geo_classify + region_list_for_country per address, single
 * threaded, compared with libmaxminddb's raw MMDB_lookup_sockaddr on the same addresses (lookup
 * only, no data decoding), so the cost of decoding + regions shows as a ratio.
 *
 * usage: geo_bench [-n N] [-r RUNS] [-s SEED] DB.mmdb
 *
 * Each run times both loops over all N addresses in slices of SLICE addresses, alternating which
 * loop goes first, so a noisy neighbour on a shared machine slows both alike; the figures are
 * medians over the runs, and classify_over_raw is the median of the per-run ratios. open_ms is
 * the median of OPEN_RUNS geo_db_open + geo_db_free, mmdb_open_ms the same for libmaxminddb's
 * MMDB_open + MMDB_close alone.
 *
 * The addresses (half IPv4, half IPv6; all public per geo_is_local) are generated before any
 * timing with a fixed-seed xorshift generator. IPv4 addresses are uniform over 1.0.0.0 to
 * 223.255.255.255 minus the local ranges; IPv6 addresses are uniform inside the RIR blocks
 * 2001::/16, 2400::/12, 2600::/12, 2800::/12, 2a00::/12 and 2c00::/12 (uniform over 2000::/3
 * would almost never hit an allocated range). Output is one "key=value" line per figure. */
#define _POSIX_C_SOURCE 200809L

#include "geo/geo.h"
#include "geo/region.h"

#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <maxminddb.h>

#define MAX_RUNS 15
#define SLICE 50000
#define OPEN_RUNS 11

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* xorshift64* */
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static void gen_v4(struct sockaddr_in *sin)
{
    for (;;) {
        uint32_t a = (uint32_t)(rng_next() >> 32);
        uint32_t first = a >> 24;
        if (first == 0 || first >= 224) {
            continue; /* "this network", multicast, reserved */
        }
        memset(sin, 0, sizeof *sin);
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(a);
        if (!geo_is_local((const struct sockaddr *)sin)) {
            return;
        }
    }
}

static void gen_v6(struct sockaddr_in6 *sin6)
{
    static const uint16_t blocks[] = {0x2001, 0x2400, 0x2600, 0x2800, 0x2a00, 0x2c00};
    for (;;) {
        uint64_t r0 = rng_next();
        uint64_t r1 = rng_next();
        uint16_t top = blocks[r0 % (sizeof blocks / sizeof blocks[0])];
        if (top != 0x2001) {
            top |= (uint16_t)((r0 >> 8) & 0x0f); /* a /12 */
        }
        memset(sin6, 0, sizeof *sin6);
        sin6->sin6_family = AF_INET6;
        uint8_t *b = sin6->sin6_addr.s6_addr;
        b[0] = (uint8_t)(top >> 8);
        b[1] = (uint8_t)(top & 0xff);
        for (int i = 2; i < 8; i++) {
            b[i] = (uint8_t)(r0 >> (8 * i));
        }
        for (int i = 8; i < 16; i++) {
            b[i] = (uint8_t)(r1 >> (8 * (i - 8)));
        }
        if (!geo_is_local((const struct sockaddr *)sin6)) {
            return;
        }
    }
}

struct counts {
    size_t country;
    size_t country_v4;
    size_t country_v6;
    size_t regions; /* sum of region counts, so the work cannot be optimized away */
};

static void run_classify(const struct geo_db *db, const struct sockaddr_storage *addrs, size_t n,
                         struct counts *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < n; i++) {
        struct geo_result res;
        const struct region *regs[16];
        geo_classify(db, NULL, (const struct sockaddr *)&addrs[i], &res);
        if (res.cls == GEO_CLASS_COUNTRY) {
            c->country++;
            if (addrs[i].ss_family == AF_INET) {
                c->country_v4++;
            } else {
                c->country_v6++;
            }
            c->regions += region_list_for_country(res.country, NULL, 0, regs, 16);
        }
    }
}

/* Median wall time in ms of OPEN_RUNS geo_db_open (mmdb == NULL) or MMDB_open (otherwise). */
static double time_open(const char *path, bool libmaxminddb)
{
    double t[OPEN_RUNS];
    char err[512];

    for (int i = 0; i < OPEN_RUNS; i++) {
        struct geo_db *db = NULL;
        MMDB_s mmdb;
        double t0 = now_sec();
        int rc = libmaxminddb ? MMDB_open(path, MMDB_MODE_MMAP, &mmdb)
                              : geo_db_open(path, &db, err, sizeof err);
        t[i] = now_sec() - t0;
        if (rc != 0) {
            fprintf(stderr, "geo_bench: cannot open %s\n", path);
            exit(1);
        }
        if (libmaxminddb) {
            MMDB_close(&mmdb);
        } else {
            geo_db_free(db);
        }
    }
    return median(t, OPEN_RUNS) * 1e3;
}

static size_t run_raw(MMDB_s *mmdb, const struct sockaddr_storage *addrs, size_t n)
{
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        int mmdb_error;
        MMDB_lookup_result_s r =
            MMDB_lookup_sockaddr(mmdb, (const struct sockaddr *)&addrs[i], &mmdb_error);
        if (mmdb_error == MMDB_SUCCESS && r.found_entry) {
            found++;
        }
    }
    return found;
}

static void usage(void)
{
    fprintf(stderr, "usage: geo_bench [-n N] [-r RUNS] [-s SEED] DB.mmdb\n");
    exit(2);
}

int main(int argc, char **argv)
{
    size_t n = 2000000;
    int runs = 3;
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    const char *path = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            n = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 0);
        } else if (argv[i][0] == '-') {
            usage();
        } else if (path == NULL) {
            path = argv[i];
        } else {
            usage();
        }
    }
    if (path == NULL || n == 0 || runs < 1 || runs > MAX_RUNS || seed == 0) {
        usage();
    }

    char err[512];
    struct geo_db *db = NULL;
    int rc = geo_db_open(path, &db, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "geo_bench: %s\n", err);
        return 1;
    }
    MMDB_s mmdb;
    int mrc = MMDB_open(path, MMDB_MODE_MMAP, &mmdb);
    if (mrc != MMDB_SUCCESS) {
        fprintf(stderr, "geo_bench: %s: %s\n", path, MMDB_strerror(mrc));
        geo_db_free(db);
        return 1;
    }

    struct sockaddr_storage *addrs = calloc(n, sizeof *addrs);
    if (addrs == NULL) {
        fprintf(stderr, "geo_bench: out of memory for %zu addresses\n", n);
        return 1;
    }
    rng_state = seed;
    size_t n_v4 = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % 2 == 0) {
            gen_v4((struct sockaddr_in *)&addrs[i]);
            n_v4++;
        } else {
            gen_v6((struct sockaddr_in6 *)&addrs[i]);
        }
    }
    size_t n_v6 = n - n_v4;

    /* Warm-up pass (page in the mmap'd tree, caches), not timed. */
    struct counts c;
    run_classify(db, addrs, n, &c);
    size_t found = run_raw(&mmdb, addrs, n);

    double t_classify[MAX_RUNS];
    double t_raw[MAX_RUNS];
    double ratio[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        struct counts slice;
        t_classify[r] = t_raw[r] = 0;
        memset(&c, 0, sizeof c);
        found = 0;
        for (size_t i = 0; i < n; i += SLICE) {
            size_t len = n - i < SLICE ? n - i : SLICE;
            bool classify_first = (i / SLICE + (size_t)r) % 2 == 0;
            for (int k = 0; k < 2; k++) {
                double t0 = now_sec();
                if ((k == 0) == classify_first) {
                    run_classify(db, addrs + i, len, &slice);
                    t_classify[r] += now_sec() - t0;
                    c.country += slice.country;
                    c.country_v4 += slice.country_v4;
                    c.country_v6 += slice.country_v6;
                    c.regions += slice.regions;
                } else {
                    found += run_raw(&mmdb, addrs + i, len);
                    t_raw[r] += now_sec() - t0;
                }
            }
        }
        ratio[r] = t_classify[r] / t_raw[r];
    }
    double mc = median(t_classify, runs);
    double mr = median(t_raw, runs);
    double open_ms = time_open(path, false);
    double mmdb_open_ms = time_open(path, true);

    printf("db=%s\n", path);
    printf("db_type=%s\n", geo_db_type(db));
    printf("addresses=%zu ipv4=%zu ipv6=%zu seed=0x%llx runs=%d\n", n, n_v4, n_v6,
           (unsigned long long)seed, runs);
    printf("classify_median_s=%.4f\n", mc);
    printf("classify_lookups_per_s=%.0f\n", (double)n / mc);
    printf("classify_ns_per_lookup=%.1f\n", mc * 1e9 / (double)n);
    printf("raw_mmdb_median_s=%.4f\n", mr);
    printf("raw_mmdb_lookups_per_s=%.0f\n", (double)n / mr);
    printf("raw_mmdb_ns_per_lookup=%.1f\n", mr * 1e9 / (double)n);
    printf("classify_over_raw=%.2f\n", median(ratio, runs));
    printf("open_ms=%.3f\n", open_ms);
    printf("mmdb_open_ms=%.3f\n", mmdb_open_ms);
    printf("country_share=%.4f\n", (double)c.country / (double)n);
    printf("country_share_v4=%.4f\n", n_v4 ? (double)c.country_v4 / (double)n_v4 : 0.0);
    printf("country_share_v6=%.4f\n", n_v6 ? (double)c.country_v6 / (double)n_v6 : 0.0);
    printf("raw_found_share=%.4f\n", (double)found / (double)n);
    printf("regions_total=%zu\n", c.regions);

    free(addrs);
    MMDB_close(&mmdb);
    geo_db_free(db);
    return 0;
}
