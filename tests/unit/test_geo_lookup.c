/* Unit tests for GeoIP classification (geo/geo.c) on MaxMind's test databases and on a small
 * MaxMind DB built here byte by byte for the schemas those databases do not contain. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "geo/geo.h"
#include "geo/mmdb_writer.h"

#include <maxminddb.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define TESTDATA(name) GEOPROXY_MAXMIND_TESTDATA "/" name

#define GEOIP2_COUNTRY TESTDATA("GeoIP2-Country-Test.mmdb")
#define GEOLITE2_COUNTRY TESTDATA("GeoLite2-Country-Test.mmdb")
#define GEOLITE2_CITY TESTDATA("GeoLite2-City-Test.mmdb")
#define GEOLITE2_ASN TESTDATA("GeoLite2-ASN-Test.mmdb")

/* ---- helpers ---- */

/* Parses an IPv4 or IPv6 literal into *ss; fails the test on a typo in a table. */
static const struct sockaddr *addr_parse(const char *ip, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        return (const struct sockaddr *)ss;
    }
    if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        return (const struct sockaddr *)ss;
    }
    fail_msg("bad IP literal in test table: %s", ip);
    return NULL;
}

static struct geo_db *db_open_ok(const char *path)
{
    struct geo_db *db = NULL;
    char err[512];
    int ret = geo_db_open(path, &db, err, sizeof err);
    if (ret != 0)
        fail_msg("geo_db_open(%s) = %d: %s", path, ret, err);
    assert_non_null(db);
    return db;
}

/* Writes len bytes to a new file /tmp/geoproxy-test-geo-XXXXXX and returns its malloc'd path. */
static char *tmpfile_write(const void *bytes, size_t len)
{
    char *path = strdup("/tmp/geoproxy-test-geo-XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const uint8_t *p = bytes;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
    assert_int_equal(close(fd), 0);
    return path;
}

/* Reads a whole (small) file into a malloc'd buffer. */
static uint8_t *file_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    assert_true(size > 0 && size < 16 * 1024 * 1024);
    rewind(f);
    uint8_t *buf = malloc((size_t)size);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *len = (size_t)size;
    return buf;
}

/* ---- a MaxMind DB written by hand (format spec: maxmind.github.io/MaxMind-DB) ---- */

struct mmdb_buf {
    uint8_t bytes[4096];
    size_t len;
};

static void mb_put(struct mmdb_buf *b, const void *p, size_t n)
{
    assert_true(b->len + n <= sizeof b->bytes);
    memcpy(b->bytes + b->len, p, n);
    b->len += n;
}

static void mb_byte(struct mmdb_buf *b, uint8_t v)
{
    mb_put(b, &v, 1);
}

static void mb_uint_be(struct mmdb_buf *b, uint64_t v, unsigned n)
{
    for (unsigned i = n; i > 0; i--)
        mb_byte(b, (uint8_t)(v >> (8 * (i - 1))));
}

static void mb_str(struct mmdb_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (n < 29) {
        mb_byte(b, (uint8_t)(0x40 | n)); /* type 2, utf8_string */
    } else {
        assert_true(n < 29 + 256);
        mb_byte(b, 0x40 | 29);
        mb_byte(b, (uint8_t)(n - 29));
    }
    mb_put(b, s, n);
}

static void mb_map(struct mmdb_buf *b, unsigned n)
{
    mb_byte(b, (uint8_t)(0xe0 | n)); /* type 7, map */
}

static void mb_u16(struct mmdb_buf *b, uint16_t v)
{
    mb_byte(b, 0xa2); /* type 5, 2 bytes */
    mb_uint_be(b, v, 2);
}

static void mb_u32(struct mmdb_buf *b, uint32_t v)
{
    mb_byte(b, 0xc4); /* type 6, 4 bytes */
    mb_uint_be(b, v, 4);
}

static void mb_u64(struct mmdb_buf *b, uint64_t v)
{
    mb_byte(b, 0x08);  /* extended type, 8 bytes */
    mb_byte(b, 9 - 7); /* uint64 */
    mb_uint_be(b, v, 8);
}

#define CRAFTED_EPOCH UINT64_C(1700000000)
#define LONG_ORG_PREFIX 126 /* 'x' bytes before a two-byte UTF-8 character */

/* An IPv4 database of four /2 networks, one record each:
 *   0.0.0.0/2    {registered_country: {iso_code: "DE"}, AS 64512 "Evil\nOrg"}
 *   64.0.0.0/2   {country_code: "ch", AS 64513 "xxx...xé" (130 bytes)}    (ip-location-db)
 *   128.0.0.0/2  {country: {iso_code: "D1"}, registered_country: {iso_code: "DE"}}
 *   192.0.0.0/2  {country: {iso_code: "USA"}} */
static char *crafted_db_write(void)
{
    struct mmdb_buf data = {.len = 0}, out = {.len = 0};
    uint32_t off[4];
    const uint32_t node_count = 3;
    char long_org[LONG_ORG_PREFIX + 3];

    memset(long_org, 'x', LONG_ORG_PREFIX);
    memcpy(long_org + LONG_ORG_PREFIX, "\xc3\xa9", 3);

    off[0] = (uint32_t)data.len;
    mb_map(&data, 3);
    mb_str(&data, "registered_country");
    mb_map(&data, 1);
    mb_str(&data, "iso_code");
    mb_str(&data, "DE");
    mb_str(&data, "autonomous_system_number");
    mb_u32(&data, 64512);
    mb_str(&data, "autonomous_system_organization");
    mb_str(&data, "Evil\nOrg");

    off[1] = (uint32_t)data.len;
    mb_map(&data, 3);
    mb_str(&data, "country_code");
    mb_str(&data, "ch");
    mb_str(&data, "autonomous_system_number");
    mb_u32(&data, 64513);
    mb_str(&data, "autonomous_system_organization");
    mb_str(&data, long_org);

    off[2] = (uint32_t)data.len;
    mb_map(&data, 2);
    mb_str(&data, "country");
    mb_map(&data, 1);
    mb_str(&data, "iso_code");
    mb_str(&data, "D1");
    mb_str(&data, "registered_country");
    mb_map(&data, 1);
    mb_str(&data, "iso_code");
    mb_str(&data, "DE");

    off[3] = (uint32_t)data.len;
    mb_map(&data, 1);
    mb_str(&data, "country");
    mb_map(&data, 1);
    mb_str(&data, "iso_code");
    mb_str(&data, "USA");

    /* Search tree, 24-bit records: node 0 splits on bit 0, nodes 1 and 2 on bit 1. */
    const uint32_t base = node_count + 16;
    mb_uint_be(&out, 1, 3);
    mb_uint_be(&out, 2, 3);
    mb_uint_be(&out, base + off[0], 3);
    mb_uint_be(&out, base + off[1], 3);
    mb_uint_be(&out, base + off[2], 3);
    mb_uint_be(&out, base + off[3], 3);
    for (int i = 0; i < 16; i++)
        mb_byte(&out, 0); /* data section separator */
    mb_put(&out, data.bytes, data.len);

    mb_put(&out, "\xab\xcd\xefMaxMind.com", 14);
    mb_map(&out, 9);
    mb_str(&out, "binary_format_major_version");
    mb_u16(&out, 2);
    mb_str(&out, "binary_format_minor_version");
    mb_u16(&out, 0);
    mb_str(&out, "build_epoch");
    mb_u64(&out, CRAFTED_EPOCH);
    mb_str(&out, "database_type");
    mb_str(&out, "Geoproxy-Crafted-Test");
    mb_str(&out, "description");
    mb_map(&out, 1);
    mb_str(&out, "en");
    mb_str(&out, "geoproxy unit test database");
    mb_str(&out, "ip_version");
    mb_u16(&out, 4);
    mb_str(&out, "languages");
    mb_byte(&out, 0x01);   /* extended type, 1 element */
    mb_byte(&out, 11 - 7); /* array */
    mb_str(&out, "en");
    mb_str(&out, "node_count");
    mb_u32(&out, node_count);
    mb_str(&out, "record_size");
    mb_u16(&out, 24);

    return tmpfile_write(out.bytes, out.len);
}

/* ---- country lookups on MaxMind's databases ---- */

struct lookup_case {
    const char *db;
    const char *ip;
    enum geo_class cls;
    const char *country; /* "" unless GEO_CLASS_COUNTRY */
};

/* Picked with mmdblookup from the databases themselves. Where country and registered_country
 * differ (81.2.69.160: GB vs US, 89.160.20.112: SE vs DE, 67.43.156.1: BT vs RO), the answer
 * must be the country. */
static const struct lookup_case lookup_cases[] = {
    {GEOIP2_COUNTRY, "81.2.69.160", GEO_CLASS_COUNTRY, "GB"},
    {GEOIP2_COUNTRY, "2.125.160.216", GEO_CLASS_COUNTRY, "GB"},
    {GEOIP2_COUNTRY, "89.160.20.112", GEO_CLASS_COUNTRY, "SE"},
    {GEOIP2_COUNTRY, "216.160.83.56", GEO_CLASS_COUNTRY, "US"},
    {GEOIP2_COUNTRY, "67.43.156.1", GEO_CLASS_COUNTRY, "BT"},
    {GEOIP2_COUNTRY, "202.196.224.1", GEO_CLASS_COUNTRY, "PH"}, /* represented_country US */
    {GEOIP2_COUNTRY, "149.101.100.1", GEO_CLASS_COUNTRY, "US"},
    {GEOIP2_COUNTRY, "2001:218::1", GEO_CLASS_COUNTRY, "JP"},
    {GEOIP2_COUNTRY, "2001:220::1", GEO_CLASS_COUNTRY, "KR"},
    {GEOIP2_COUNTRY, "2a02:d9c0::1", GEO_CLASS_COUNTRY, "TR"},
    {GEOIP2_COUNTRY, "2a02:ffc0::1", GEO_CLASS_COUNTRY, "GI"},
    {GEOIP2_COUNTRY, "214.1.1.1", GEO_CLASS_UNKNOWN, ""},    /* record with traits only */
    {GEOIP2_COUNTRY, "2a02:d500::1", GEO_CLASS_UNKNOWN, ""}, /* record with continent only */
    {GEOIP2_COUNTRY, "1.1.1.1", GEO_CLASS_UNKNOWN, ""},      /* not in the database */
    {GEOIP2_COUNTRY, "1.128.0.1", GEO_CLASS_UNKNOWN, ""},
    {GEOIP2_COUNTRY, "2001:480::1", GEO_CLASS_UNKNOWN, ""},
    {GEOLITE2_COUNTRY, "81.2.69.160", GEO_CLASS_COUNTRY, "GB"},
    {GEOLITE2_COUNTRY, "2001:480::1", GEO_CLASS_COUNTRY, "US"},
    {GEOLITE2_COUNTRY, "111.235.160.1", GEO_CLASS_COUNTRY, "CN"},
    {GEOLITE2_COUNTRY, "149.101.100.1", GEO_CLASS_UNKNOWN, ""},
    {GEOLITE2_COUNTRY, "2a02:ec80::1", GEO_CLASS_UNKNOWN, ""},
    {GEOLITE2_CITY, "81.2.69.160", GEO_CLASS_COUNTRY, "GB"},
    {GEOLITE2_CITY, "2001:218::1", GEO_CLASS_COUNTRY, "JP"},
    {GEOLITE2_CITY, "1.1.1.1", GEO_CLASS_UNKNOWN, ""},
};

static void check_result(const char *what, const struct geo_result *got, enum geo_class cls,
                         const char *country)
{
    if (got->cls != cls || strcmp(got->country, country) != 0)
        fail_msg("%s: got %s '%s', want %s '%s'", what, geo_class_name(got->cls), got->country,
                 geo_class_name(cls), country);
}

static void test_lookup_country(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(lookup_cases); i++) {
        const struct lookup_case *c = &lookup_cases[i];
        struct geo_db *db = db_open_ok(c->db);
        struct sockaddr_storage ss;
        struct geo_result r;
        char what[600];

        geo_classify(db, NULL, addr_parse(c->ip, &ss), &r);
        snprintf(what, sizeof what, "%s in %s", c->ip, c->db);
        check_result(what, &r, c->cls, c->country);
        assert_int_equal(r.asn, 0);
        assert_string_equal(r.as_org, "");
        geo_db_free(db);
    }
}

/* ::ffff:a.b.c.d answers exactly as a.b.c.d, on every IPv4 row of the table. */
static void test_lookup_v4_mapped(void **state)
{
    (void)state;
    struct geo_db *asn = db_open_ok(GEOLITE2_ASN);
    size_t checked = 0;

    for (size_t i = 0; i < N_ELEMS(lookup_cases); i++) {
        const struct lookup_case *c = &lookup_cases[i];
        if (strchr(c->ip, ':') != NULL)
            continue;
        struct geo_db *db = db_open_ok(c->db);
        struct sockaddr_storage ss4, ss6;
        struct geo_result r4, r6;
        char mapped[64], what[600];

        snprintf(mapped, sizeof mapped, "::ffff:%s", c->ip);
        geo_classify(db, asn, addr_parse(c->ip, &ss4), &r4);
        geo_classify(db, asn, addr_parse(mapped, &ss6), &r6);
        snprintf(what, sizeof what, "%s in %s", mapped, c->db);
        check_result(what, &r6, c->cls, c->country);
        check_result(what, &r6, r4.cls, r4.country);
        assert_int_equal(r6.asn, r4.asn);
        assert_string_equal(r6.as_org, r4.as_org);
        geo_db_free(db);
        checked++;
    }
    assert_true(checked >= 10);
    geo_db_free(asn);
}

/* ---- local ranges, no database at all ---- */

struct local_case {
    const char *ip;
    bool local;
};

static const struct local_case local_cases[] = {
    {"0.0.0.0", true},
    {"0.0.0.1", false},
    {"9.255.255.255", false},
    {"10.0.0.0", true},
    {"10.255.255.255", true},
    {"11.0.0.0", false},
    {"100.63.255.255", false},
    {"100.64.0.0", true},
    {"100.127.255.255", true},
    {"100.128.0.0", false},
    {"126.255.255.255", false},
    {"127.0.0.1", true},
    {"127.255.255.255", true},
    {"128.0.0.0", false},
    {"169.253.255.255", false},
    {"169.254.0.1", true},
    {"169.254.255.255", true},
    {"169.255.0.0", false},
    {"172.15.255.255", false},
    {"172.16.0.0", true},
    {"172.31.255.255", true},
    {"172.32.0.0", false},
    {"192.167.255.255", false},
    {"192.168.0.0", true},
    {"192.168.255.255", true},
    {"192.169.0.0", false},
    {"8.8.8.8", false},
    {"255.255.255.255", false},
    {"::", true},
    {"::1", true},
    {"::2", false},
    {"fe80::1", true},
    {"febf:ffff::1", true},
    {"fec0::1", false},
    {"fe7f::1", false},
    {"fc00::1", true},
    {"fd00::1", true},
    {"fdff:ffff::1", true},
    {"fe00::1", false},
    {"fb00::1", false},
    {"2001:db8::1", false},
    {"::ffff:192.168.1.1", true},
    {"::ffff:127.0.0.1", true},
    {"::ffff:100.64.0.1", true},
    {"::ffff:0.0.0.0", true},
    {"::ffff:8.8.8.8", false},
    {"::ffff:11.0.0.0", false},
    {"::192.168.1.1", false}, /* IPv4-compatible, deprecated: not mapped */
};

static void test_local_ranges(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(local_cases); i++) {
        const struct local_case *c = &local_cases[i];
        struct sockaddr_storage ss;
        struct geo_result r;
        const struct sockaddr *sa = addr_parse(c->ip, &ss);

        if (geo_is_local(sa) != c->local)
            fail_msg("geo_is_local(%s) != %d", c->ip, c->local);
        geo_classify(NULL, NULL, sa, &r);
        check_result(c->ip, &r, c->local ? GEO_CLASS_LOCAL : GEO_CLASS_UNKNOWN, "");
    }
}

/* A database record for a network wider than the local range around an address does not
 * count there: the crafted database maps all of 0.0.0.0/2 (so 10/8 and 127/8 too) to DE and
 * AS 64512, yet those addresses stay local with no ASN. */
static void test_local_ignores_wide_records(void **state)
{
    (void)state;
    char *path = crafted_db_write();
    struct geo_db *db = db_open_ok(path);
    static const char *const ips[] = {"10.1.2.3", "127.0.0.1", "::ffff:10.0.0.1", "0.0.0.0"};

    for (size_t i = 0; i < N_ELEMS(ips); i++) {
        struct sockaddr_storage ss;
        struct geo_result r;
        geo_classify(db, db, addr_parse(ips[i], &ss), &r);
        check_result(ips[i], &r, GEO_CLASS_LOCAL, "");
        assert_true(r.local);
        assert_int_equal(r.asn, 0);
        assert_string_equal(r.as_org, "");
    }
    geo_db_free(db);
    unlink(path);
    free(path);
}

struct overlay_net {
    const char *net;
    unsigned bits;
    const char *cc;
};

struct overlay_case {
    const char *ip;
    enum geo_class cls;
    const char *country;
    bool local;
};

/* Overlays inside local ranges (internal networks, test fixtures) give those addresses a country
 * while they stay local; a record as wide as the local range itself (10.0.0.0/8) counts too, one
 * wider (100.0.0.0/8 around CGNAT's 100.64.0.0/10) does not. */
static void test_local_overlay_country(void **state)
{
    (void)state;
    static const struct overlay_net nets[] = {
        {"8.0.0.0", 7, "US"},        {"127.0.1.0", 24, "HK"}, {"127.0.2.0", 24, "CH"},
        {"10.0.0.0", 8, "DE"},       {"fd00::", 8, "JP"},     {"100.0.0.0", 8, "BR"},
        {"192.168.7.128", 25, "FR"},
    };
    static const struct overlay_case cases[] = {
        {"127.0.1.5", GEO_CLASS_COUNTRY, "HK", true},
        {"::ffff:127.0.1.200", GEO_CLASS_COUNTRY, "HK", true},
        {"127.0.2.9", GEO_CLASS_COUNTRY, "CH", true},
        {"127.0.3.1", GEO_CLASS_LOCAL, "", true},
        {"127.0.0.1", GEO_CLASS_LOCAL, "", true},
        {"10.200.0.1", GEO_CLASS_COUNTRY, "DE", true},
        {"100.64.0.1", GEO_CLASS_LOCAL, "", true},
        {"100.1.1.1", GEO_CLASS_COUNTRY, "BR", false},
        {"192.168.7.200", GEO_CLASS_COUNTRY, "FR", true},
        {"192.168.7.1", GEO_CLASS_LOCAL, "", true},
        {"fd12::1", GEO_CLASS_COUNTRY, "JP", true},
        {"fe80::1", GEO_CLASS_LOCAL, "", true},
        {"8.8.8.8", GEO_CLASS_COUNTRY, "US", false},
        {"9.9.9.9", GEO_CLASS_COUNTRY, "US", false},
        {"200.1.1.1", GEO_CLASS_UNKNOWN, "", false},
    };
    char path[] = "/tmp/geoproxy-overlay-XXXXXX";
    int fd = mkstemp(path);
    struct mmdb_writer *w = NULL;
    char err[256];

    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(mmdb_writer_new(6, "geoproxy-test", "overlay test", 1, &w), 0);
    for (size_t i = 0; i < N_ELEMS(nets); i++) {
        struct sockaddr_storage ss;
        assert_int_equal(mmdb_writer_insert(w, addr_parse(nets[i].net, &ss), nets[i].bits,
                                            nets[i].cc, err, sizeof err),
                         0);
    }
    assert_int_equal(mmdb_writer_write(w, path, err, sizeof err), 0);
    mmdb_writer_free(w);

    struct geo_db *db = db_open_ok(path);
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct sockaddr_storage ss;
        struct geo_result r;
        geo_classify(db, NULL, addr_parse(cases[i].ip, &ss), &r);
        check_result(cases[i].ip, &r, cases[i].cls, cases[i].country);
        if (r.local != cases[i].local)
            fail_msg("%s: local is %d, want %d", cases[i].ip, r.local, cases[i].local);
    }
    geo_db_free(db);
    unlink(path);
}

/* ---- ASN ---- */

struct asn_case {
    const char *ip;
    uint32_t asn;
    const char *org;
    enum geo_class cls; /* with GeoIP2-Country-Test as the country database */
    const char *country;
};

static const struct asn_case asn_cases[] = {
    {"1.128.0.1", 1221, "Telstra Pty Ltd", GEO_CLASS_UNKNOWN, ""},
    {"::ffff:1.128.0.1", 1221, "Telstra Pty Ltd", GEO_CLASS_UNKNOWN, ""},
    {"12.81.92.1", 7018, "AT&T Services", GEO_CLASS_UNKNOWN, ""},
    {"1.0.0.1", 15169, "Google Inc.", GEO_CLASS_UNKNOWN, ""},
    {"2600:6000::1", 237, "Merit Network Inc.", GEO_CLASS_UNKNOWN, ""},
    {"2001:1700::1", 6730, "Sunrise Communications AG", GEO_CLASS_UNKNOWN, ""},
    {"81.2.69.160", 0, "", GEO_CLASS_COUNTRY, "GB"}, /* not in the ASN database */
    {"192.168.1.1", 0, "", GEO_CLASS_LOCAL, ""},
};

static void test_asn(void **state)
{
    (void)state;
    struct geo_db *country = db_open_ok(GEOIP2_COUNTRY);
    struct geo_db *asn = db_open_ok(GEOLITE2_ASN);

    for (size_t i = 0; i < N_ELEMS(asn_cases); i++) {
        const struct asn_case *c = &asn_cases[i];
        struct sockaddr_storage ss;
        struct geo_result r;

        geo_classify(country, asn, addr_parse(c->ip, &ss), &r);
        check_result(c->ip, &r, c->cls, c->country);
        if (r.asn != c->asn || strcmp(r.as_org, c->org) != 0)
            fail_msg("%s: got AS%u '%s', want AS%u '%s'", c->ip, (unsigned)r.asn, r.as_org,
                     (unsigned)c->asn, c->org);
        /* The country database has no ASN fields and the ASN one no country. */
        geo_classify(NULL, asn, addr_parse(c->ip, &ss), &r);
        assert_int_equal(r.asn, c->asn);
        assert_int_not_equal(r.cls, GEO_CLASS_COUNTRY);
    }
    geo_db_free(asn);
    geo_db_free(country);
}

/* ---- schemas the MaxMind test databases lack ---- */

static void test_crafted_schemas(void **state)
{
    (void)state;
    char *path = crafted_db_write();
    struct geo_db *db = db_open_ok(path);
    static const struct {
        const char *ip;
        enum geo_class cls;
        const char *country;
    } cases[] = {
        {"1.2.3.4", GEO_CLASS_COUNTRY, "DE"},        /* registered_country only */
        {"::ffff:1.2.3.4", GEO_CLASS_COUNTRY, "DE"}, /* mapped, in an IPv4-only database */
        {"64.1.1.1", GEO_CLASS_COUNTRY, "CH"},       /* ip-location-db country_code, lower */
        {"130.1.1.1", GEO_CLASS_UNKNOWN, ""},        /* country.iso_code "D1" is not letters */
        {"200.1.1.1", GEO_CLASS_UNKNOWN, ""},        /* "USA" is not two letters */
        {"2001:db8::1", GEO_CLASS_UNKNOWN, ""},      /* IPv6 in an IPv4 database */
    };

    assert_string_equal(geo_db_type(db), "Geoproxy-Crafted-Test");
    assert_int_equal(geo_db_build_epoch(db), CRAFTED_EPOCH);
    assert_int_equal(geo_db_ip_version(db), 4);
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct sockaddr_storage ss;
        struct geo_result r;
        geo_classify(db, NULL, addr_parse(cases[i].ip, &ss), &r);
        check_result(cases[i].ip, &r, cases[i].cls, cases[i].country);
    }

    /* Organisation names are made safe for a log line and cut on a UTF-8 boundary. */
    struct sockaddr_storage ss;
    struct geo_result r;
    geo_classify(NULL, db, addr_parse("1.2.3.4", &ss), &r);
    assert_int_equal(r.cls, GEO_CLASS_UNKNOWN);
    assert_int_equal(r.asn, 64512);
    assert_string_equal(r.as_org, "Evil?Org");
    geo_classify(NULL, db, addr_parse("64.1.1.1", &ss), &r);
    assert_int_equal(r.asn, 64513);
    assert_int_equal(strlen(r.as_org), LONG_ORG_PREFIX);
    assert_int_equal(strspn(r.as_org, "x"), LONG_ORG_PREFIX);

    geo_db_free(db);
    unlink(path);
    free(path);
}

/* ---- the fast path against plain libmaxminddb ----
 *
 * geo_classify and geo_lookup_country answer from an index built at open time (geo/geo_index.c).
 * Here the same questions go to MMDB_lookup_sockaddr with the field decoding written out again
 * (ref_*), and the two answers must be byte-identical, on random IPv4, IPv6 and IPv4-mapped
 * addresses: uniform, steered down the database's own search tree so most of them hit records,
 * and inside every local range. */

struct ref_prefix {
    int family;
    unsigned bits;
    uint8_t addr[16];
};

/* docs/GEO.md, "Local ranges". */
static const struct ref_prefix ref_local[] = {
    {AF_INET, 32, {0, 0, 0, 0}}, {AF_INET, 8, {10}},           {AF_INET, 10, {100, 64}},
    {AF_INET, 8, {127}},         {AF_INET, 16, {169, 254}},    {AF_INET, 12, {172, 16}},
    {AF_INET, 16, {192, 168}},   {AF_INET6, 128, {0}},         {AF_INET6, 128, {[15] = 1}},
    {AF_INET6, 7, {0xfc}},       {AF_INET6, 10, {0xfe, 0x80}},
};

static int ref_local_bits(int family, const uint8_t *a)
{
    for (size_t i = 0; i < N_ELEMS(ref_local); i++) {
        const struct ref_prefix *p = &ref_local[i];
        bool match = p->family == family;
        for (unsigned b = 0; match && b < p->bits; b++)
            match = ((a[b / 8] ^ p->addr[b / 8]) & (0x80u >> (b % 8))) == 0;
        if (match)
            return (int)p->bits;
    }
    return -1;
}

/* The address as libmaxminddb gets it: IPv4-mapped IPv6 turned into IPv4. */
static void ref_normalize(const struct sockaddr *addr, struct sockaddr_storage *norm)
{
    memset(norm, 0, sizeof *norm);
    if (addr->sa_family == AF_INET) {
        memcpy(norm, addr, sizeof(struct sockaddr_in));
        return;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)norm;
        in4->sin_family = AF_INET;
        memcpy(&in4->sin_addr, in6->sin6_addr.s6_addr + 12, 4);
    } else {
        memcpy(norm, in6, sizeof *in6);
    }
}

static const uint8_t *ref_bytes(const struct sockaddr_storage *norm)
{
    if (norm->ss_family == AF_INET)
        return (const uint8_t *)&((const struct sockaddr_in *)norm)->sin_addr;
    return ((const struct sockaddr_in6 *)norm)->sin6_addr.s6_addr;
}

static bool ref_lookup(MMDB_s *mmdb, const struct sockaddr_storage *norm, int min_bits,
                       MMDB_entry_s *entry)
{
    int mmdb_error;
    MMDB_lookup_result_s res =
        MMDB_lookup_sockaddr(mmdb, (const struct sockaddr *)norm, &mmdb_error);
    if (mmdb_error != MMDB_SUCCESS || !res.found_entry)
        return false;
    int bits = res.netmask;
    if (norm->ss_family == AF_INET && mmdb->metadata.ip_version == 6)
        bits -= 96;
    if (min_bits > 0 && bits < min_bits)
        return false;
    *entry = res.entry;
    return true;
}

static bool ref_country(MMDB_entry_s *entry, char cc[3])
{
    static const char *const paths[][3] = {
        {"country", "iso_code", NULL},
        {"registered_country", "iso_code", NULL},
        {"country_code", NULL, NULL},
    };
    for (size_t i = 0; i < N_ELEMS(paths); i++) {
        MMDB_entry_data_s d;
        if (MMDB_aget_value(entry, &d, paths[i]) != MMDB_SUCCESS || !d.has_data)
            continue;
        if (d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size != 2)
            return false;
        for (int k = 0; k < 2; k++) {
            char c = d.utf8_string[k];
            if (c >= 'a' && c <= 'z')
                c = (char)(c - 'a' + 'A');
            if (c < 'A' || c > 'Z')
                return false;
            cc[k] = c;
        }
        cc[2] = '\0';
        return true;
    }
    return false;
}

static void ref_asn(MMDB_entry_s *entry, struct geo_result *out)
{
    MMDB_entry_data_s d;
    if (MMDB_get_value(entry, &d, "autonomous_system_number", NULL) == MMDB_SUCCESS && d.has_data) {
        if (d.type == MMDB_DATA_TYPE_UINT32)
            out->asn = d.uint32;
        else if (d.type == MMDB_DATA_TYPE_UINT16)
            out->asn = d.uint16;
    }
    if (MMDB_get_value(entry, &d, "autonomous_system_organization", NULL) != MMDB_SUCCESS ||
        !d.has_data || d.type != MMDB_DATA_TYPE_UTF8_STRING)
        return;
    size_t len = d.data_size;
    if (len > GEO_AS_ORG_MAX - 1) {
        len = GEO_AS_ORG_MAX - 1;
        while (len > 0 && ((unsigned char)d.utf8_string[len] & 0xc0u) == 0x80u)
            len--;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)d.utf8_string[i];
        out->as_org[i] = (c < 0x20u || c == 0x7fu) ? '?' : (char)c;
    }
    out->as_org[len] = '\0';
}

/* geo_classify(country, asn, addr) written over MMDB_lookup_sockaddr alone. */
static void ref_classify(MMDB_s *country, MMDB_s *asn, const struct sockaddr *addr,
                         struct geo_result *out)
{
    struct sockaddr_storage norm;
    MMDB_entry_s entry;

    memset(out, 0, sizeof *out);
    out->cls = GEO_CLASS_UNKNOWN;
    ref_normalize(addr, &norm);
    int local_bits = ref_local_bits(norm.ss_family, ref_bytes(&norm));
    out->local = local_bits >= 0;
    if (country != NULL && ref_lookup(country, &norm, local_bits, &entry) &&
        ref_country(&entry, out->country))
        out->cls = GEO_CLASS_COUNTRY;
    else
        out->country[0] = '\0';
    if (out->cls != GEO_CLASS_COUNTRY && out->local)
        out->cls = GEO_CLASS_LOCAL;
    if (asn != NULL && ref_lookup(asn, &norm, local_bits, &entry))
        ref_asn(&entry, out);
}

static uint64_t rng_state = UINT64_C(0x9E3779B97F4A7C15);

static uint64_t rng_next(void)
{
    uint64_t x = rng_state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

static void rng_fill(uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(rng_next() >> 56);
}

static void set_bit(uint8_t *a, unsigned bit, unsigned v)
{
    uint8_t m = (uint8_t)(0x80u >> (bit % 8));
    a[bit / 8] = (uint8_t)(v ? (a[bit / 8] | m) : (a[bit / 8] & ~m));
}

/* Random bits down the search tree from node at bit first, until a record that is not a node,
 * avoiding empty records: the address then lies in a record's network far more often
 * than a uniform one would in a sparse test database. */
static void steer(MMDB_s *mmdb, uint8_t *a, uint32_t node, unsigned first, unsigned depth)
{
    for (unsigned bit = first; bit < depth && node < mmdb->metadata.node_count; bit++) {
        MMDB_search_node_s n;
        if (MMDB_read_node(mmdb, node, &n) != MMDB_SUCCESS)
            return;
        uint64_t r = rng_next();
        unsigned right = (unsigned)(r >> 63);
        uint64_t chosen = right ? n.right_record : n.left_record;
        uint64_t other = right ? n.left_record : n.right_record;
        if (chosen == mmdb->metadata.node_count && other != chosen)
            right ^= 1u;
        set_bit(a, bit, right);
        node = (uint32_t)(right ? n.right_record : n.left_record);
    }
}

enum { ADDR_KINDS = 7 };

/* The i-th address of kind k for mmdb into ss. */
static const struct sockaddr *gen_addr(MMDB_s *mmdb, int kind, struct sockaddr_storage *ss)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    uint8_t a[16];

    memset(ss, 0, sizeof *ss);
    rng_fill(a, sizeof a);
    switch (kind) {
    case 0: /* IPv6 steered from the root (covers ::/96, ::ffff:0:0/96, 2002::/16 aliases) */
        if (mmdb->metadata.ip_version == 6)
            steer(mmdb, a, 0, 0, 128);
        break;
    case 1: /* IPv4 steered from the IPv4 start */
    case 2: /* the same as IPv4-mapped IPv6 */
        if (mmdb->metadata.ip_version == 6) {
            uint8_t m[16] = {0};
            memcpy(m + 12, a, 4);
            steer(mmdb, m, mmdb->ipv4_start_node.node_value, mmdb->ipv4_start_node.netmask, 128);
            memcpy(a, m + 12, 4);
        } else {
            steer(mmdb, a, 0, 0, 32);
        }
        break;
    case 3: /* inside a local range: IPv4 (half of them mapped) or IPv6 */
    case 4: {
        const struct ref_prefix *p = &ref_local[rng_next() % N_ELEMS(ref_local)];
        for (unsigned b = 0; b < p->bits; b++)
            set_bit(a, b, (p->addr[b / 8] >> (7 - b % 8)) & 1u);
        if (p->family == AF_INET6)
            kind = 6;
        break;
    }
    default: /* uniform IPv4 (5) or IPv6 (6) */
        break;
    }
    if (kind == 1 || kind == 3 || kind == 5) {
        in4->sin_family = AF_INET;
        memcpy(&in4->sin_addr, a, 4);
    } else if (kind == 2 || kind == 4) {
        in6->sin6_family = AF_INET6;
        in6->sin6_addr.s6_addr[10] = 0xff;
        in6->sin6_addr.s6_addr[11] = 0xff;
        memcpy(in6->sin6_addr.s6_addr + 12, a, 4);
    } else {
        in6->sin6_family = AF_INET6;
        memcpy(in6->sin6_addr.s6_addr, a, 16);
    }
    return (const struct sockaddr *)ss;
}

struct agree_counts {
    size_t country, local_country, local_only, unknown, asn;
};

/* Classifies n addresses of every kind with path as both the country and the ASN database,
 * through geo/ and through ref_classify, and fails on the first difference. */
static void expect_agreement(const char *path, size_t n, struct agree_counts *c)
{
    struct geo_db *db = db_open_ok(path);
    MMDB_s mmdb;

    memset(c, 0, sizeof *c);
    assert_int_equal(MMDB_open(path, MMDB_MODE_MMAP, &mmdb), MMDB_SUCCESS);
    for (int kind = 0; kind < ADDR_KINDS; kind++) {
        for (size_t i = 0; i < n; i++) {
            struct sockaddr_storage ss;
            const struct sockaddr *sa = gen_addr(&mmdb, kind, &ss);
            struct geo_result got, want;
            char cc[3], ref_cc[3] = "";
            char text[INET6_ADDRSTRLEN] = "?";

            geo_classify(db, db, sa, &got);
            ref_classify(&mmdb, &mmdb, sa, &want);
            bool found = geo_lookup_country(db, sa, cc);
            struct sockaddr_storage norm;
            MMDB_entry_s entry;
            ref_normalize(sa, &norm);
            bool ref_found = ref_lookup(&mmdb, &norm, 0, &entry) && ref_country(&entry, ref_cc);
            if (memcmp(&got, &want, sizeof got) != 0 || found != ref_found ||
                strcmp(cc, found ? ref_cc : "") != 0) {
                inet_ntop(sa->sa_family,
                          sa->sa_family == AF_INET
                              ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                              : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr,
                          text, sizeof text);
                fail_msg("%s: %s (kind %d): geo %s '%s' local=%d AS%u '%s' / lookup %d '%s'; "
                         "libmaxminddb %s '%s' local=%d AS%u '%s' / lookup %d '%s'",
                         path, text, kind, geo_class_name(got.cls), got.country, got.local,
                         (unsigned)got.asn, got.as_org, found, cc, geo_class_name(want.cls),
                         want.country, want.local, (unsigned)want.asn, want.as_org, ref_found,
                         ref_cc);
            }
            if (got.cls == GEO_CLASS_COUNTRY)
                c->country++;
            if (got.cls == GEO_CLASS_COUNTRY && got.local)
                c->local_country++;
            if (got.cls == GEO_CLASS_LOCAL && found)
                c->local_only++; /* a record in the database, but too wide to count */
            if (got.cls == GEO_CLASS_UNKNOWN)
                c->unknown++;
            if (got.asn != 0)
                c->asn++;
        }
    }
    MMDB_close(&mmdb);
    geo_db_free(db);
}

/* Copies the database at in (24-bit records) with its search tree re-encoded in record_bits
 * (28 or 32) bits; returns the new file's malloc'd path. */
static char *db_reencode(const char *in, unsigned record_bits)
{
    MMDB_s mmdb;
    size_t len;

    assert_int_equal(MMDB_open(in, MMDB_MODE_MMAP, &mmdb), MMDB_SUCCESS);
    assert_int_equal(mmdb.metadata.record_size, 24);
    uint32_t nodes = mmdb.metadata.node_count;
    MMDB_close(&mmdb);

    uint8_t *old = file_read(in, &len);
    size_t node_bytes = record_bits / 4, tree = (size_t)nodes * 6;
    size_t out_len = len - tree + (size_t)nodes * node_bytes;
    uint8_t *out = calloc(1, out_len);
    assert_non_null(out);
    for (uint32_t i = 0; i < nodes; i++) {
        const uint8_t *p = old + (size_t)i * 6;
        uint32_t l = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
        uint32_t r = (uint32_t)p[3] << 16 | (uint32_t)p[4] << 8 | p[5];
        uint8_t *q = out + (size_t)i * node_bytes;
        if (record_bits == 32) {
            for (int k = 0; k < 4; k++) {
                q[k] = (uint8_t)(l >> (24 - 8 * k));
                q[4 + k] = (uint8_t)(r >> (24 - 8 * k));
            }
        } else {
            q[0] = (uint8_t)(l >> 16);
            q[1] = (uint8_t)(l >> 8);
            q[2] = (uint8_t)l;
            q[3] = (uint8_t)(((l >> 24) & 0x0fu) << 4 | ((r >> 24) & 0x0fu));
            q[4] = (uint8_t)(r >> 16);
            q[5] = (uint8_t)(r >> 8);
            q[6] = (uint8_t)r;
        }
    }
    memcpy(out + (size_t)nodes * node_bytes, old + tree, len - tree);
    /* metadata "record_size": uint16 24 (0xa1 0x18) becomes 28 or 32 */
    static const char key[] = "\x4brecord_size\xa1\x18";
    uint8_t *k = memmem(out, out_len, key, sizeof key - 1);
    assert_non_null(k);
    k[sizeof key - 2] = (uint8_t)record_bits;
    char *path = tmpfile_write(out, out_len);
    free(out);
    free(old);
    return path;
}

/* Copies the database at in with n random search-tree records overwritten: 0, node numbers
 * (loops), the empty marker, values in the data section separator and past the data section.
 * Returns the new file's malloc'd path. */
static char *db_corrupt(const char *in, unsigned n)
{
    MMDB_s mmdb;
    size_t len;

    assert_int_equal(MMDB_open(in, MMDB_MODE_MMAP, &mmdb), MMDB_SUCCESS);
    assert_int_equal(mmdb.metadata.record_size, 24);
    uint32_t nodes = mmdb.metadata.node_count, data_size = mmdb.data_section_size;
    MMDB_close(&mmdb);
    uint8_t *b = file_read(in, &len);
    for (unsigned i = 0; i < n; i++) {
        uint8_t *rec = b + (rng_next() % ((uint64_t)nodes * 2)) * 3;
        uint32_t v;
        switch (rng_next() % 6) {
        case 0:
            v = 0;
            break;
        case 1:
            v = (uint32_t)(rng_next() % nodes);
            break;
        case 2:
            v = nodes;
            break;
        case 3:
            v = nodes + 1 + (uint32_t)(rng_next() % 15);
            break;
        case 4:
            v = nodes + 16 + data_size - 1 - (uint32_t)(rng_next() % 32);
            break;
        default:
            v = nodes + 16 + data_size + (uint32_t)(rng_next() % 1000);
            break;
        }
        rec[0] = (uint8_t)(v >> 16);
        rec[1] = (uint8_t)(v >> 8);
        rec[2] = (uint8_t)v;
    }
    char *path = tmpfile_write(b, len);
    free(b);
    return path;
}

/* A database from geo/mmdb_writer.h: random ranges all over both address families, a wide
 * range over 0.0.0.0/3 (so 0.0.0.0 lies in a record wider than its local range), overlays
 * inside 127/8, 10/8, 192.168/16, fd00::/8 and next to CGNAT, and records exactly as wide as a
 * local range or one bit wider. */
static char *writer_db(int ip_version)
{
    static const struct overlay_net overlays[] = {
        {"0.0.0.0", 3, "US"},      {"127.0.1.0", 24, "HK"},
        {"127.0.2.0", 24, "CH"},   {"127.9.0.0", 16, "DE"},
        {"10.20.0.0", 16, "DE"},   {"10.0.0.0", 9, "FR"},
        {"100.0.0.0", 8, "BR"},    {"192.168.7.128", 25, "FR"},
        {"172.0.0.0", 11, "IT"},   /* one bit wider than 172.16/12: does not count */
        {"169.254.0.0", 16, "NL"}, /* exactly the local range: counts */
        {"fd00::", 8, "JP"},       {"fe80::", 9, "SE"}, /* one bit wider than fe80::/10 */
        {"::1", 128, "NO"},
    };
    static const char *const ccs[] = {"DE", "GB", "us", "CN", "JP", "BR", "ZA", "AU"};
    struct mmdb_writer *w = NULL;
    char err[256];

    assert_int_equal(mmdb_writer_new(ip_version, "geoproxy-test", "agreement test", 1, &w), 0);
    for (int i = 0; i < 3000; i++) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        bool v6 = ip_version == 6 && (i % 2) == 1;
        unsigned bits = v6 ? 16 + (unsigned)(rng_next() % 49) : 8 + (unsigned)(rng_next() % 25);
        uint8_t a[16] = {0};
        rng_fill(a, v6 ? 16 : 4);
        if (v6)
            a[0] = (uint8_t)(0x20 | (a[0] & 0x0f)); /* 2000::/4 */
        for (unsigned b = bits; b < (v6 ? 128u : 32u); b++)
            set_bit(a, b, 0);
        if (v6) {
            ss.ss_family = AF_INET6;
            memcpy(((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr, a, 16);
        } else {
            ss.ss_family = AF_INET;
            memcpy(&((struct sockaddr_in *)&ss)->sin_addr, a, 4);
        }
        assert_int_equal(mmdb_writer_insert(w, (const struct sockaddr *)&ss, bits,
                                            ccs[rng_next() % N_ELEMS(ccs)], err, sizeof err),
                         0);
    }
    for (size_t i = 0; i < N_ELEMS(overlays); i++) {
        struct sockaddr_storage ss;
        const struct sockaddr *sa = addr_parse(overlays[i].net, &ss);
        if (sa->sa_family == AF_INET6 && ip_version == 4)
            continue;
        int ret = mmdb_writer_insert(w, sa, overlays[i].bits, overlays[i].cc, err, sizeof err);
        if (ret != 0)
            fail_msg("insert %s/%u: %s", overlays[i].net, overlays[i].bits, err);
    }
    char *path = strdup("/tmp/geoproxy-test-geo-XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(mmdb_writer_write(w, path, err, sizeof err), 0);
    mmdb_writer_free(w);
    return path;
}

static void test_fast_path_agrees(void **state)
{
    (void)state;
    static const char *const maxmind[] = {GEOIP2_COUNTRY, GEOLITE2_COUNTRY, GEOLITE2_CITY,
                                          GEOLITE2_ASN};
    struct agree_counts c;
    const size_t n = 4000;

    for (size_t i = 0; i < N_ELEMS(maxmind); i++) {
        expect_agreement(maxmind[i], n, &c);
        if (i < 3 && c.country < n)
            fail_msg("%s: only %zu addresses with a country", maxmind[i], c.country);
        if (i == 3 && c.asn < n)
            fail_msg("%s: only %zu addresses with an AS number", maxmind[i], c.asn);
    }

    char *crafted = crafted_db_write();
    expect_agreement(crafted, n, &c);
    assert_true(c.country > 0 && c.local_only > 0); /* 0.0.0.0/2 covers 10/8, too wide */

    for (int version = 4; version <= 6; version += 2) {
        char *v = writer_db(version);
        expect_agreement(v, n, &c);
        /* The local-range rule both ways: overlays count, the wide 0.0.0.0/3 does not. */
        if (c.local_country == 0 || c.local_only == 0)
            fail_msg("IPv%d writer database: %zu local with a country, %zu without", version,
                     c.local_country, c.local_only);
        for (unsigned bits = 28; bits <= 32; bits += 4) {
            char *re = db_reencode(v, bits);
            struct agree_counts c2;
            expect_agreement(re, n, &c2);
            assert_true(c2.country > 0 && c2.local_country > 0);
            unlink(re);
            free(re);
        }
        for (int k = 0; k < 8; k++) {
            char *bad = db_corrupt(v, 1 + (unsigned)k * 4);
            expect_agreement(bad, n / 4, &c);
            unlink(bad);
            free(bad);
        }
        unlink(v);
        free(v);
    }
    unlink(crafted);
    free(crafted);
}

/* ---- opening ---- */

static void expect_open_fails(const char *path, const char *reason_fragment)
{
    struct geo_db *db = (struct geo_db *)&db; /* must be reset to NULL */
    char err[512];

    memset(err, 'Z', sizeof err);
    int ret = geo_db_open(path, &db, err, sizeof err);
    if (ret >= 0)
        fail_msg("geo_db_open(%s) succeeded", path);
    assert_null(db);
    assert_non_null(memchr(err, '\0', sizeof err));
    if (strstr(err, path) == NULL)
        fail_msg("message does not name the file: %s", err);
    if (strstr(err, reason_fragment) == NULL)
        fail_msg("message lacks '%s': %s", reason_fragment, err);
}

static void test_open_errors(void **state)
{
    (void)state;
    size_t len;
    uint8_t *good = file_read(GEOIP2_COUNTRY, &len);
    char garbage[4096];
    char *paths[5];

    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (char)('a' + (i * 7) % 26);

    /* A missing file. */
    struct geo_db *db = NULL;
    char err[512];
    int ret = geo_db_open("/nonexistent/geoproxy/GeoIP2-Country.mmdb", &db, err, sizeof err);
    assert_int_equal(ret, -ENOENT);
    expect_open_fails("/nonexistent/geoproxy/GeoIP2-Country.mmdb", "No such file");

    paths[0] = tmpfile_write("", 0);          /* empty */
    paths[1] = tmpfile_write(good, len / 2);  /* truncated: metadata lost */
    paths[2] = tmpfile_write(good, len - 40); /* truncated inside the metadata */
    paths[3] = tmpfile_write(garbage, sizeof garbage);
    /* Garbage behind a valid metadata marker: the metadata itself does not decode. */
    memcpy(garbage + 2000, "\xab\xcd\xefMaxMind.com", 14);
    paths[4] = tmpfile_write(garbage, sizeof garbage);

    for (size_t i = 0; i < N_ELEMS(paths); i++) {
        ret = geo_db_open(paths[i], &db, err, sizeof err);
        if (ret != -EINVAL)
            fail_msg("file %zu: geo_db_open = %d (%s), want -EINVAL", i, ret, err);
        expect_open_fails(paths[i], "not a valid MaxMind DB file");
        unlink(paths[i]);
        free(paths[i]);
    }

    assert_int_equal(geo_db_open("", &db, err, sizeof err), -EINVAL);
    assert_null(db);
    assert_string_equal(err, "no GeoIP database file given");

    /* A tiny error buffer is still terminated. */
    char small[8];
    ret = geo_db_open("/nonexistent/x.mmdb", &db, small, sizeof small);
    assert_true(ret < 0);
    assert_int_equal(strlen(small), sizeof small - 1);
    free(good);
}

static void test_metadata(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        const char *type;
    } cases[] = {
        {GEOIP2_COUNTRY, "GeoIP2-Country"},
        {GEOLITE2_COUNTRY, "GeoLite2-Country"},
        {GEOLITE2_CITY, "GeoLite2-City"},
        {GEOLITE2_ASN, "GeoLite2-ASN"},
    };

    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct geo_db *db = db_open_ok(cases[i].path);
        assert_string_equal(geo_db_type(db), cases[i].type);
        /* mmdblookup --verbose: "Build epoch: 1770245369 (2026-02-04 22:49:29 UTC)" */
        assert_int_equal(geo_db_build_epoch(db), UINT64_C(1770245369));
        assert_int_equal(geo_db_ip_version(db), 6);
        geo_db_free(db);
    }
    geo_db_free(NULL);
}

static void test_misc(void **state)
{
    (void)state;
    struct geo_result r;
    struct sockaddr_storage ss;

    assert_string_equal(geo_class_name(GEO_CLASS_LOCAL), "local");
    assert_string_equal(geo_class_name(GEO_CLASS_UNKNOWN), "unknown");
    assert_string_equal(geo_class_name(GEO_CLASS_COUNTRY), "country");
    assert_string_equal(geo_class_name((enum geo_class)42), "invalid");

    /* Neither IPv4 nor IPv6, or no address: not local, unknown. */
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNIX;
    assert_false(geo_is_local((const struct sockaddr *)&ss));
    geo_classify(NULL, NULL, (const struct sockaddr *)&ss, &r);
    check_result("AF_UNIX", &r, GEO_CLASS_UNKNOWN, "");
    assert_false(geo_is_local(NULL));
    geo_classify(NULL, NULL, NULL, &r);
    check_result("NULL", &r, GEO_CLASS_UNKNOWN, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_country),
        cmocka_unit_test(test_lookup_v4_mapped),
        cmocka_unit_test(test_local_ranges),
        cmocka_unit_test(test_local_ignores_wide_records),
        cmocka_unit_test(test_local_overlay_country),
        cmocka_unit_test(test_asn),
        cmocka_unit_test(test_crafted_schemas),
        cmocka_unit_test(test_fast_path_agrees),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_misc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
