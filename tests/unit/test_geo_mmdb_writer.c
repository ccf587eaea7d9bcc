/* The MaxMind DB writer, checked by reading what it writes with libmaxminddb and mmdblookup. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <maxminddb.h>

#include "geo/mmdb_writer.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define EPOCH UINT64_C(1700000000)

struct fixture {
    char dir[64];
    char path[128];
    MMDB_s mmdb;
    int opened;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/geo-mmdbw-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/test.mmdb", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->opened)
        MMDB_close(&f->mmdb);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static struct sockaddr_storage addr_parse(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
        sin6->sin6_family = AF_INET6;
    }
    return ss;
}

static int insert(struct mmdb_writer *w, const char *net, unsigned plen, const char *cc, char *err,
                  size_t err_len)
{
    struct sockaddr_storage ss = addr_parse(net);
    return mmdb_writer_insert(w, (const struct sockaddr *)&ss, plen, cc, err, err_len);
}

static void insert_ok(struct mmdb_writer *w, const char *net, unsigned plen, const char *cc)
{
    char err[256] = "";
    int rc = insert(w, net, plen, cc, err, sizeof(err));
    if (rc != 0)
        fail_msg("insert %s/%u %s: %d %s", net, plen, cc, rc, err);
}

static void range_ok(struct mmdb_writer *w, const char *first, const char *last, const char *cc)
{
    char err[256] = "";
    struct sockaddr_storage a = addr_parse(first), b = addr_parse(last);
    int rc = mmdb_writer_insert_range(w, (const struct sockaddr *)&a, (const struct sockaddr *)&b,
                                      cc, err, sizeof(err));
    if (rc != 0)
        fail_msg("range %s-%s %s: %d %s", first, last, cc, rc, err);
}

/* Writes w to the fixture's path, frees it, and opens the file with libmaxminddb. */
static void write_and_open(struct fixture *f, struct mmdb_writer *w)
{
    char err[256] = "";
    int rc = mmdb_writer_write(w, f->path, err, sizeof(err));
    if (rc != 0)
        fail_msg("write: %d %s", rc, err);
    mmdb_writer_free(w);
    if (f->opened)
        MMDB_close(&f->mmdb);
    f->opened = 0;
    rc = MMDB_open(f->path, MMDB_MODE_MMAP, &f->mmdb);
    if (rc != MMDB_SUCCESS)
        fail_msg("MMDB_open: %s", MMDB_strerror(rc));
    f->opened = 1;
}

/* Looks ip up; returns 1 and the country in cc, or 0 when the address has no data. Any lookup
 * or decoding error fails the test. *netmask gets the prefix length libmaxminddb reports. */
static int lookup(struct fixture *f, const char *ip, char cc[3], uint16_t *netmask)
{
    int gai_error = 0, mmdb_error = 0;
    MMDB_lookup_result_s res = MMDB_lookup_string(&f->mmdb, ip, &gai_error, &mmdb_error);
    if (gai_error != 0 || mmdb_error != MMDB_SUCCESS)
        fail_msg("lookup %s: gai %d, mmdb %s", ip, gai_error, MMDB_strerror(mmdb_error));
    if (netmask != NULL)
        *netmask = res.netmask;
    if (!res.found_entry)
        return 0;
    MMDB_entry_data_s data;
    int rc = MMDB_get_value(&res.entry, &data, "country", "iso_code", NULL);
    if (rc != MMDB_SUCCESS || !data.has_data || data.type != MMDB_DATA_TYPE_UTF8_STRING ||
        data.data_size != 2)
        fail_msg("lookup %s: no country.iso_code (%s)", ip, MMDB_strerror(rc));
    memcpy(cc, data.utf8_string, 2);
    cc[2] = '\0';
    return 1;
}

/* Asserts the country of ip; expect NULL means "not found". */
static void expect(struct fixture *f, const char *ip, const char *want)
{
    char cc[3] = "";
    int found = lookup(f, ip, cc, NULL);
    if (want == NULL && found)
        fail_msg("%s: expected no data, got %s", ip, cc);
    if (want != NULL && (!found || strcmp(cc, want) != 0))
        fail_msg("%s: expected %s, got %s", ip, want, found ? cc : "(not found)");
}

static void expect_netmask(struct fixture *f, const char *ip, const char *want, uint16_t mask)
{
    char cc[3] = "";
    uint16_t got = 0;
    int found = lookup(f, ip, cc, &got);
    if (!found || strcmp(cc, want) != 0 || got != mask)
        fail_msg("%s: expected %s/%u, got %s/%u", ip, want, mask, found ? cc : "-", got);
}

static struct mmdb_writer *writer_new(int ip_version)
{
    struct mmdb_writer *w = NULL;
    assert_int_equal(mmdb_writer_new(ip_version, "GeoProxy-Country", "test db", EPOCH, &w), 0);
    assert_non_null(w);
    return w;
}

static void test_ipv4_in_ipv6_db(void **state)
{
    struct fixture *f = *state;
    struct mmdb_writer *w = writer_new(6);
    insert_ok(w, "1.2.0.0", 16, "DE");
    insert_ok(w, "127.0.1.0", 24, "hk"); /* lower case is stored upper case */
    write_and_open(f, w);

    expect(f, "1.2.0.0", "DE");
    expect(f, "1.2.3.4", "DE");
    expect(f, "1.2.255.255", "DE");
    expect(f, "::ffff:1.2.3.4", "DE");
    expect(f, "::1.2.3.4", "DE");
    expect(f, "127.0.1.5", "HK");
    expect(f, "::ffff:127.0.1.5", "HK");
    expect(f, "1.1.255.255", NULL);
    expect(f, "1.3.0.0", NULL);
    expect(f, "127.0.2.9", NULL);
    expect(f, "2001:db8::1", NULL);
}

static void test_ipv6_networks(void **state)
{
    struct fixture *f = *state;
    struct mmdb_writer *w = writer_new(6);
    insert_ok(w, "2001:db8::", 32, "FR");
    insert_ok(w, "2001:db8:1::", 48, "IT");
    insert_ok(w, "2a00::1", 128, "CH");
    write_and_open(f, w);

    expect(f, "2001:db8::", "FR");
    expect(f, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "FR");
    expect(f, "2001:db8:1::", "IT");
    expect(f, "2001:db8:1:ffff::1", "IT");
    expect(f, "2001:db8:2::", "FR");
    expect(f, "2001:db8:0:ffff::", "FR");
    expect(f, "2a00::1", "CH");
    expect(f, "2a00::", NULL);
    expect(f, "2a00::2", NULL);
    expect(f, "2001:db9::", NULL);
    expect(f, "2001:db7:ffff::", NULL);
    expect(f, "1.2.3.4", NULL);
}

static void test_overrides(void **state)
{
    struct fixture *f = *state;
    struct mmdb_writer *w = writer_new(6);
    insert_ok(w, "10.0.0.0", 16, "US");
    insert_ok(w, "10.0.5.0", 24, "CA");
    insert_ok(w, "10.1.0.0", 24, "MX");
    insert_ok(w, "10.1.0.0", 16, "GB"); /* later and wider: covers the MX /24 too */
    write_and_open(f, w);

    expect(f, "10.0.0.0", "US");
    expect(f, "10.0.4.255", "US");
    expect(f, "10.0.5.0", "CA");
    expect(f, "10.0.5.128", "CA");
    expect(f, "10.0.5.255", "CA");
    expect(f, "::ffff:10.0.5.1", "CA");
    expect(f, "10.0.6.0", "US");
    expect(f, "10.0.255.255", "US");
    expect(f, "10.1.0.1", "GB");
    expect(f, "::ffff:10.1.0.1", "GB");
    expect(f, "10.2.0.0", NULL);
    expect(f, "9.255.255.255", NULL);
}

static void test_range_single_block(void **state)
{
    struct fixture *f = *state;
    struct mmdb_writer *w = writer_new(4);
    range_ok(w, "1.0.0.0", "1.0.3.255", "AU");
    write_and_open(f, w);

    expect_netmask(f, "1.0.0.0", "AU", 22);
    expect_netmask(f, "1.0.3.255", "AU", 22);
    expect(f, "0.255.255.255", NULL);
    expect(f, "1.0.4.0", NULL);
}

static void test_range_split(void **state)
{
    struct fixture *f = *state;
    struct mmdb_writer *w = writer_new(4);
    range_ok(w, "1.0.0.1", "1.0.0.6", "JP");
    range_ok(w, "255.255.255.250", "255.255.255.255", "NZ"); /* ends at the top: no wrap */
    range_ok(w, "9.9.9.9", "9.9.9.9", "CH");
    write_and_open(f, w);

    expect(f, "1.0.0.0", NULL);
    expect_netmask(f, "1.0.0.1", "JP", 32);
    expect_netmask(f, "1.0.0.2", "JP", 31);
    expect_netmask(f, "1.0.0.3", "JP", 31);
    expect_netmask(f, "1.0.0.4", "JP", 31);
    expect_netmask(f, "1.0.0.5", "JP", 31);
    expect_netmask(f, "1.0.0.6", "JP", 32);
    expect(f, "1.0.0.7", NULL);
    expect(f, "255.255.255.249", NULL);
    expect_netmask(f, "255.255.255.250", "NZ", 31);
    expect_netmask(f, "255.255.255.252", "NZ", 30);
    expect_netmask(f, "255.255.255.255", "NZ", 30);
    expect_netmask(f, "9.9.9.9", "CH", 32);
    expect(f, "9.9.9.8", NULL);
    expect(f, "9.9.9.10", NULL);
}

static void test_range_ipv6_and_whole_space(void **state)
{
    struct fixture *f = *state;
    struct mmdb_writer *w = writer_new(6);
    range_ok(w, "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ZZ");
    range_ok(w, "2001:db8::", "2001:db8::ff", "SE");
    range_ok(w, "2001:db8::100", "2001:db8::17f", "NO");
    range_ok(w, "5.0.0.0", "5.0.0.255", "FI"); /* IPv4 range in the IPv6 tree */
    write_and_open(f, w);

    expect(f, "::", "ZZ");
    expect(f, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ZZ");
    expect(f, "2001:db8::", "SE");
    expect(f, "2001:db8::ff", "SE");
    expect(f, "2001:db8::100", "NO");
    expect(f, "2001:db8::17f", "NO");
    expect(f, "2001:db8::180", "ZZ");
    expect(f, "5.0.0.0", "FI");
    expect(f, "::ffff:5.0.0.255", "FI");
    expect(f, "5.0.1.0", "ZZ");
}

static void test_metadata(void **state)
{
    struct fixture *f = *state;
    struct mmdb_writer *w = writer_new(6);
    insert_ok(w, "1.2.0.0", 16, "DE");
    insert_ok(w, "1.3.0.0", 16, "DE"); /* same data: stored once */
    insert_ok(w, "2001:db8::", 32, "FR");
    write_and_open(f, w);

    const MMDB_metadata_s *m = &f->mmdb.metadata;
    assert_string_equal(m->database_type, "GeoProxy-Country");
    assert_true(m->build_epoch == EPOCH);
    assert_int_equal(m->ip_version, 6);
    assert_int_equal(m->binary_format_major_version, 2);
    assert_int_equal(m->binary_format_minor_version, 0);
    assert_int_equal(m->record_size, 24);
    assert_true(m->node_count > 96);
    assert_int_equal(m->description.count, 1);
    assert_string_equal(m->description.descriptions[0]->language, "en");
    assert_string_equal(m->description.descriptions[0]->description, "test db");
    assert_int_equal(m->languages.count, 1);
    assert_string_equal(m->languages.names[0], "en");
    /* Two countries, 22 bytes each: map, "country", map, "iso_code", "CC". */
    /* The data section runs from after the 16-byte separator to the metadata marker (14 bytes). */
    ptrdiff_t data_len = f->mmdb.metadata_section - f->mmdb.data_section - 14;
    assert_int_equal(data_len, 2 * 22);
}

static void test_mmdblookup_reads_file(void **state)
{
    struct fixture *f = *state;
    const char *tool = "/usr/bin/mmdblookup";
    if (access(tool, X_OK) != 0)
        skip();
    struct mmdb_writer *w = writer_new(6);
    insert_ok(w, "1.2.0.0", 16, "DE");
    insert_ok(w, "2001:db8::", 32, "FR");
    write_and_open(f, w);

    static const struct {
        const char *ip;
        const char *want;
    } cases[] = {{"1.2.3.4", "\"DE\" <utf8_string>"},
                 {"2001:db8::5", "\"FR\" <utf8_string>"},
                 {"1.3.0.0", "Could not find an entry"}};
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char cmd[512], out[2048] = "";
        snprintf(cmd, sizeof(cmd), "%s --file %s --ip %s country iso_code 2>&1", tool, f->path,
                 cases[i].ip);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        size_t n = fread(out, 1, sizeof(out) - 1, p);
        out[n] = '\0';
        pclose(p);
        if (strstr(out, cases[i].want) == NULL)
            fail_msg("mmdblookup %s: expected '%s' in:\n%s", cases[i].ip, cases[i].want, out);
    }
}

/* Random networks against a reference model (the last insert covering an address wins), in an
 * IPv4 and an IPv6 database; every lookup in the sweep must succeed without errors. */
struct model_net {
    uint32_t net;
    unsigned plen;
    char cc[3];
};

static uint32_t rng_next(uint64_t *s)
{
    *s = *s * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    return (uint32_t)(*s >> 32);
}

static const char *model_lookup(const struct model_net *nets, size_t n, uint32_t ip)
{
    for (size_t i = n; i-- > 0;) {
        uint32_t mask = nets[i].plen == 0 ? 0 : UINT32_MAX << (32 - nets[i].plen);
        if ((ip & mask) == nets[i].net)
            return nets[i].cc;
    }
    return NULL;
}

static void sweep(int ip_version, void **state)
{
    struct fixture *f = *state;
    enum { NETS = 300, PROBES = 20000 };
    static struct model_net nets[NETS];
    static const char *codes[] = {"US", "DE", "FR", "CN", "BR", "IN"};
    uint64_t seed = 42;
    struct mmdb_writer *w = writer_new(ip_version);

    for (size_t i = 0; i < NETS; i++) {
        unsigned plen = 8 + rng_next(&seed) % 25;
        uint32_t net = (rng_next(&seed) & 0x0f0fffffu) & (UINT32_MAX << (32 - plen));
        nets[i].net = net;
        nets[i].plen = plen;
        memcpy(nets[i].cc, codes[rng_next(&seed) % N_ELEMS(codes)], 3);
        struct in_addr a = {htonl(net)};
        char text[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &a, text, sizeof(text));
        insert_ok(w, text, plen, nets[i].cc);
    }
    write_and_open(f, w);

    for (size_t i = 0; i < PROBES; i++) {
        /* Half the probes land near a network's edges, half anywhere. */
        uint32_t ip;
        if (i % 2 == 0) {
            const struct model_net *n = &nets[rng_next(&seed) % NETS];
            uint32_t size = n->plen == 0 ? UINT32_MAX : (UINT32_C(1) << (32 - n->plen)) - 1;
            ip = (i % 4 == 0) ? n->net + size + (rng_next(&seed) % 3) - 1
                              : n->net - 1 + rng_next(&seed) % 3;
        } else {
            ip = rng_next(&seed);
        }
        struct in_addr a = {htonl(ip)};
        char text[INET_ADDRSTRLEN], mapped[64];
        inet_ntop(AF_INET, &a, text, sizeof(text));
        const char *want = model_lookup(nets, NETS, ip);
        expect(f, text, want);
        if (ip_version == 6 && i % 8 == 1) {
            snprintf(mapped, sizeof(mapped), "::ffff:%s", text);
            expect(f, mapped, want);
        }
    }
    if (ip_version == 6) {
        for (size_t i = 0; i < 2000; i++) {
            char text[INET6_ADDRSTRLEN];
            uint8_t b[16];
            for (size_t j = 0; j < 16; j += 4) {
                uint32_t r = rng_next(&seed);
                memcpy(b + j, &r, 4);
            }
            b[0] |= 0x20; /* outside ::/8, where no data was inserted */
            inet_ntop(AF_INET6, b, text, sizeof(text));
            expect(f, text, NULL);
        }
    }
}

static void test_sweep_ipv4_db(void **state)
{
    sweep(4, state);
}

static void test_sweep_ipv6_db(void **state)
{
    sweep(6, state);
}

static void test_invalid_input_refused(void **state)
{
    (void)state;
    struct mmdb_writer *w4 = writer_new(4), *w6 = writer_new(6);
    static const struct {
        int v6db;
        const char *net;
        unsigned plen;
        const char *cc;
        const char *msg;
    } cases[] = {
        {1, "1.2.0.0", 16, "D", "invalid country code 'D'"},
        {1, "1.2.0.0", 16, "DEU", "invalid country code 'DEU'"},
        {1, "1.2.0.0", 16, "1A", "invalid country code '1A'"},
        {1, "1.2.0.0", 16, "", "invalid country code ''"},
        {1, "1.2.0.0", 16, "D-", "invalid country code 'D-'"},
        {1, "1.2.0.0", 33, "DE", "1.2.0.0/33: prefix length 33 is out of range for IPv4"},
        {1, "2001:db8::", 129, "DE", "prefix length 129 is out of range for IPv6"},
        {1, "1.2.3.4", 16, "DE", "1.2.3.4/16: address has bits set past the prefix"},
        {0, "2001:db8::", 32, "DE", "IPv6 network in an IPv4 database"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char err[256] = "";
        int rc = insert(cases[i].v6db ? w6 : w4, cases[i].net, cases[i].plen, cases[i].cc, err,
                        sizeof(err));
        assert_int_equal(rc, -EINVAL);
        if (strstr(err, cases[i].msg) == NULL)
            fail_msg("case %zu: expected '%s' in '%s'", i, cases[i].msg, err);
    }

    char err[256] = "";
    struct sockaddr_storage a = addr_parse("1.0.0.9"), b = addr_parse("1.0.0.1");
    struct sockaddr_storage c = addr_parse("::1");
    assert_int_equal(mmdb_writer_insert_range(w6, (const struct sockaddr *)&a,
                                              (const struct sockaddr *)&b, "DE", err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "first address is after the last"));
    assert_int_equal(mmdb_writer_insert_range(w6, (const struct sockaddr *)&a,
                                              (const struct sockaddr *)&c, "DE", err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "mixes IPv4 and IPv6"));

    struct mmdb_writer *bad = NULL;
    assert_int_equal(mmdb_writer_new(5, "t", "d", 0, &bad), -EINVAL);
    assert_null(bad);
    assert_int_equal(mmdb_writer_new(6, "", "d", 0, &bad), -EINVAL);
    assert_null(bad);
    mmdb_writer_free(w4);
    mmdb_writer_free(w6);
    mmdb_writer_free(NULL);
}

static void test_node_cap(void **state)
{
    (void)state;
    struct mmdb_writer *w = writer_new(6);
    char err[256] = "";
    assert_int_equal(mmdb_writer_set_max_nodes(w, 200), 0);
    assert_int_equal(insert(w, "2001:db8::1", 128, "DE", err, sizeof(err)), 0);
    /* A second /128 far away needs ~127 more nodes: over the cap. */
    assert_int_equal(insert(w, "3001:db8::1", 128, "DE", err, sizeof(err)), -E2BIG);
    assert_non_null(strstr(err, "exceed 200 nodes"));
    /* Overriding frees the first path's nodes: compaction makes room again. */
    assert_int_equal(insert(w, "2000::", 3, "FR", err, sizeof(err)), 0);
    assert_int_equal(insert(w, "3001:db8::1", 128, "DE", err, sizeof(err)), 0);
    mmdb_writer_free(w);
}

static void test_write_replaces_atomically(void **state)
{
    struct fixture *f = *state;
    struct mmdb_writer *w = writer_new(4);
    insert_ok(w, "1.0.0.0", 8, "AA");
    write_and_open(f, w);
    expect(f, "1.2.3.4", "AA");

    w = writer_new(4);
    insert_ok(w, "1.0.0.0", 8, "BB");
    write_and_open(f, w);
    expect(f, "1.2.3.4", "BB");

    /* No temporary file is left next to the database. */
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    int entries = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            entries++;
    }
    closedir(d);
    assert_int_equal(entries, 1);

    /* A failed write leaves the old file alone. */
    char err[256] = "", bad[256];
    w = writer_new(4);
    snprintf(bad, sizeof(bad), "%s/missing-dir/x.mmdb", f->dir);
    assert_true(mmdb_writer_write(w, bad, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "missing-dir"));
    mmdb_writer_free(w);
    expect(f, "1.2.3.4", "BB");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ipv4_in_ipv6_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_networks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overrides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_single_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_ipv6_and_whole_space, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mmdblookup_reads_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_ipv4_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_ipv6_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_input_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_replaces_atomically, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
