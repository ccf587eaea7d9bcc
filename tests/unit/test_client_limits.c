/* The per-client table: connection caps and rate buckets per client, what counts as one client,
 * eviction of entries that say nothing, fail-open when full, and counts that stay exact when
 * several threads admit and release at once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <uv.h>

#include "proxy/client_limits.h"
#include "test_support.h"

static const uint8_t key[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static enum client_admit_result admit(struct client_table *t, const char *ip, uint32_t max_conns,
                                      uint32_t rate, uint64_t now_ms, bool *warn)
{
    struct sockaddr_storage ss;
    struct client_limits limits = {.max_conns = max_conns, .rate_per_s = rate};
    bool ignored;
    return client_table_admit(t, sockaddr_of(ip, 40000, &ss), &limits, now_ms,
                              warn != NULL ? warn : &ignored);
}

static void release(struct client_table *t, const char *ip, uint64_t now_ms)
{
    struct sockaddr_storage ss;
    client_table_release(t, sockaddr_of(ip, 40001, &ss), now_ms);
}

static uint32_t conns_of(struct client_table *t, const char *ip)
{
    struct sockaddr_storage ss;
    return client_table_conns(t, sockaddr_of(ip, 1, &ss));
}

/* The N+1st concurrent connection of a client is refused; others are not concerned; a close
 * makes room again; one warning per client per interval. */
static void test_connection_cap(void **state)
{
    (void)state;
    struct client_table *t = client_table_new(key);
    bool warn;
    assert_non_null(t);
    for (int i = 0; i < 3; i++)
        assert_int_equal(admit(t, "127.0.0.5", 3, 0, 0, NULL), CLIENT_ADMITTED);
    assert_int_equal(admit(t, "127.0.0.5", 3, 0, 1, &warn), CLIENT_REFUSED_CONNS);
    assert_true(warn);
    assert_int_equal(admit(t, "127.0.0.5", 3, 0, 2, &warn), CLIENT_REFUSED_CONNS);
    assert_false(warn); /* within the interval */
    assert_int_equal(admit(t, "127.0.0.6", 3, 0, 2, NULL), CLIENT_ADMITTED);
    assert_int_equal(conns_of(t, "127.0.0.5"), 3);
    release(t, "127.0.0.5", 3);
    assert_int_equal(admit(t, "127.0.0.5", 3, 0, 4, NULL), CLIENT_ADMITTED);
    assert_int_equal(admit(t, "127.0.0.5", 3, 0, 2 + CLIENT_WARN_INTERVAL_MS, &warn),
                     CLIENT_REFUSED_CONNS);
    assert_true(warn);                                                       /* a new interval */
    assert_int_equal(admit(t, "127.0.0.5", 0, 0, 5, NULL), CLIENT_ADMITTED); /* 0: no cap */
    assert_int_equal(conns_of(t, "127.0.0.5"), 4);
    client_table_free(t);
}

struct rate_step {
    uint64_t at_ms;
    unsigned admitted; /* this many admitted in a row at at_ms, then one refused */
};

/* A bucket of 'rate' tokens refilled at 'rate' per second: a burst of 'rate', then one every
 * 1000/rate ms. Closing a connection gives no token back. */
static void test_rate_bucket(void **state)
{
    (void)state;
    static const struct rate_step steps[] = {
        {0, 5},    /* the full burst */
        {100, 0},  /* half a token */
        {200, 1},  /* one token refilled */
        {999, 3},  /* 799 ms: 3.995 tokens */
        {5000, 5}, /* long quiet: the bucket is full, and no fuller */
    };
    struct client_table *t = client_table_new(key);
    assert_non_null(t);
    for (size_t i = 0; i < N_ELEMS(steps); i++) {
        for (unsigned n = 0; n < steps[i].admitted; n++) {
            assert_int_equal(admit(t, "127.0.0.5", 0, 5, steps[i].at_ms, NULL), CLIENT_ADMITTED);
            release(t, "127.0.0.5", steps[i].at_ms);
        }
        assert_int_equal(admit(t, "127.0.0.5", 0, 5, steps[i].at_ms, NULL), CLIENT_REFUSED_RATE);
        assert_int_equal(admit(t, "127.0.0.6", 0, 5, steps[i].at_ms, NULL), CLIENT_ADMITTED);
        release(t, "127.0.0.6", steps[i].at_ms);
    }
    /* A reload that turns the rate off lets it in at once; one that lowers it caps the bucket. */
    assert_int_equal(admit(t, "127.0.0.5", 0, 0, 5000, NULL), CLIENT_ADMITTED);
    assert_int_equal(admit(t, "127.0.0.7", 0, 10, 6000, NULL), CLIENT_ADMITTED);
    assert_int_equal(admit(t, "127.0.0.7", 0, 1, 6000, NULL), CLIENT_ADMITTED);
    assert_int_equal(admit(t, "127.0.0.7", 0, 1, 6000, NULL), CLIENT_REFUSED_RATE);
    client_table_free(t);
}

struct same_client_row {
    const char *a, *b;
    bool same;
};

/* The port never matters; IPv4-mapped IPv6 is IPv4; IPv6 is counted per /64. */
static void test_what_is_one_client(void **state)
{
    (void)state;
    static const struct same_client_row rows[] = {
        {"198.51.100.7", "::ffff:198.51.100.7", true},
        {"198.51.100.7", "198.51.100.8", false},
        {"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
        {"2001:db8:1:2::1", "2001:db8:1:3::1", false},
        {"::1", "::2", true},
        {"::1", "127.0.0.1", false},
    };
    for (size_t i = 0; i < N_ELEMS(rows); i++) {
        struct client_table *t = client_table_new(key);
        assert_non_null(t);
        assert_int_equal(admit(t, rows[i].a, 1, 0, 0, NULL), CLIENT_ADMITTED);
        enum client_admit_result want = rows[i].same ? CLIENT_REFUSED_CONNS : CLIENT_ADMITTED;
        if (admit(t, rows[i].b, 1, 0, 0, NULL) != want)
            fail_msg("%s and %s should %sbe one client", rows[i].a, rows[i].b,
                     rows[i].same ? "" : "not ");
        client_table_free(t);
    }
    struct client_table *t = client_table_new(key);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct client_limits limits = {.max_conns = 1};
    bool warn;
    assert_int_equal(client_table_admit(t, (struct sockaddr *)&un, &limits, 0, &warn),
                     CLIENT_ADMIT_UNSUPPORTED);
    client_table_free(t);
}

static void ip_of(unsigned i, char out[32])
{
    snprintf(out, 32, "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
}

/* Entries go when they say nothing (no connection, full bucket); a full table admits newcomers
 * uncounted (fail open) and warns once per interval; it takes clients again once it empties. */
static void test_eviction_and_full_table(void **state)
{
    (void)state;
    enum { CLIENTS = CLIENT_TABLE_SLOTS * 3 };
    struct client_table *t = client_table_new(key);
    char ip[32];
    unsigned tracked = 0, untracked = 0, warnings = 0;
    bool warn;
    assert_non_null(t);

    admit(t, "127.0.0.5", 0, 0, 0, NULL);
    release(t, "127.0.0.5", 0);
    assert_int_equal(client_table_entries(t), 0); /* no bucket, no connection: gone at once */

    for (unsigned i = 0; i < CLIENTS; i++) {
        ip_of(i, ip);
        enum client_admit_result r = admit(t, ip, 0, 5, 0, &warn);
        tracked += r == CLIENT_ADMITTED;
        untracked += r == CLIENT_ADMIT_UNTRACKED;
        warnings += warn;
    }
    assert_int_equal(tracked, CLIENT_TABLE_SLOTS);
    assert_int_equal(untracked, CLIENTS - CLIENT_TABLE_SLOTS);
    assert_int_equal(warnings, 1);
    assert_int_equal(client_table_entries(t), CLIENT_TABLE_SLOTS);

    /* Closed, but their buckets are not full yet: the entries stay, and the table is full. */
    for (unsigned i = 0; i < CLIENTS; i++) {
        ip_of(i, ip);
        release(t, ip, 10);
    }
    assert_int_equal(client_table_entries(t), CLIENT_TABLE_SLOTS);
    assert_int_equal(admit(t, "127.0.0.5", 0, 5, 10, NULL), CLIENT_ADMIT_UNTRACKED);
    /* A second later every bucket is full again: a newcomer's stripe is swept for it. */
    assert_int_equal(admit(t, "127.0.0.5", 0, 5, 1010, NULL), CLIENT_ADMITTED);
    assert_true(client_table_entries(t) < CLIENT_TABLE_SLOTS);
    /* Entries that went stale in other stripes never hide a live one: every chain is intact. */
    assert_int_equal(conns_of(t, "127.0.0.5"), 1);
    client_table_free(t);
}

#define THREADS 4
#define ROUNDS 20000

static void hammer(void *arg)
{
    struct client_table *t = arg;
    char ip[32];
    for (unsigned i = 0; i < ROUNDS; i++) {
        ip_of(i % 300, ip);
        if (admit(t, ip, 0, 0, i, NULL) == CLIENT_ADMITTED)
            release(t, ip, i);
    }
}

static void test_threads_keep_counts_exact(void **state)
{
    (void)state;
    struct client_table *t = client_table_new(key);
    uv_thread_t threads[THREADS];
    assert_non_null(t);
    assert_int_equal(admit(t, "10.0.0.1", 0, 0, 0, NULL), CLIENT_ADMITTED); /* one kept open */
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(uv_thread_create(&threads[i], hammer, t), 0);
    for (int i = 0; i < THREADS; i++)
        uv_thread_join(&threads[i]);
    assert_int_equal(conns_of(t, "10.0.0.1"), 1);
    assert_int_equal(client_table_entries(t), 1);
    client_table_free(t);
    client_table_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connection_cap),
        cmocka_unit_test(test_rate_bucket),
        cmocka_unit_test(test_what_is_one_client),
        cmocka_unit_test(test_eviction_and_full_table),
        cmocka_unit_test(test_threads_keep_counts_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
