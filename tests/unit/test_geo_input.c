/* Unit tests for the `geoproxy geodb build` line parsers (geo/geodb_input.c): every format,
 * valid and malformed lines, with the exact messages. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <netinet/in.h>

#include "geo/geodb_input.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

#define T4 GEODB_FORMAT_TOR4
#define T6 GEODB_FORMAT_TOR6
#define TOR GEODB_FORMAT_TOR
#define CSV GEODB_FORMAT_CSV
#define CIDR GEODB_FORMAT_CIDR

struct line_case {
    enum geodb_format fmt;
    const char *line;
    int rc;               /* 0 entry, 1 skip, -1 error */
    const char *first;    /* rc 0: the expected range and code */
    const char *last;     /* rc 0 */
    const char *country;  /* rc 0 */
    enum geodb_skip skip; /* rc 1 */
    const char *err;      /* rc -1: the exact message */
};

#define OK(f, l, a, b, c)                                                                          \
    {                                                                                              \
        f, l, 0, a, b, c, 0, NULL                                                                  \
    }
#define SKIP(f, l, why)                                                                            \
    {                                                                                              \
        f, l, 1, NULL, NULL, NULL, why, NULL                                                       \
    }
#define BAD(f, l, msg)                                                                             \
    {                                                                                              \
        f, l, -1, NULL, NULL, NULL, 0, msg                                                         \
    }

static const struct line_case cases[] = {
    /* blank and comments, every format */
    SKIP(T4, "", GEODB_SKIP_BLANK),
    SKIP(T4, "\n", GEODB_SKIP_BLANK),
    SKIP(T6, "   \t\r\n", GEODB_SKIP_BLANK),
    SKIP(CSV, "# comment, with, commas", GEODB_SKIP_BLANK),
    SKIP(CIDR, "  # 127.0.1.0/24 HK", GEODB_SKIP_BLANK),

    /* Tor geoip (IPv4 as integers) */
    OK(T4, "16777216,16777471,AU\n", "1.0.0.0", "1.0.0.255", "AU"),
    OK(T4, "16777216,16777471,AU\r\n", "1.0.0.0", "1.0.0.255", "AU"),
    OK(T4, "0,0,us", "0.0.0.0", "0.0.0.0", "US"),
    OK(T4, "4294967295,4294967295,DE", "255.255.255.255", "255.255.255.255", "DE"),
    OK(T4, " 16777216 , 16777471 , AU ", "1.0.0.0", "1.0.0.255", "AU"),
    SKIP(T4, "16777472,16777727,??", GEODB_SKIP_NOT_COUNTRY),
    SKIP(T4, "16777472,16777727,A1", GEODB_SKIP_NOT_COUNTRY),
    SKIP(T4, "16777472,16777727,", GEODB_SKIP_NOT_COUNTRY),
    SKIP(T4, "16777472,16777727,USA", GEODB_SKIP_NOT_COUNTRY),
    BAD(T4, "16777216,16777471", "expected 'LOW,HIGH,CC' (3 fields), found 2 fields"),
    BAD(T4, "16777216", "expected 'LOW,HIGH,CC' (3 fields), found 1 field"),
    BAD(T4, "16777216,16777471,AU,x", "expected 'LOW,HIGH,CC' (3 fields), found 4 fields"),
    BAD(T4, "4294967296,4294967296,AU",
        "'4294967296' is not an IPv4 address as an integer (0..4294967295)"),
    BAD(T4, "1.0.0.0,16777471,AU",
        "'1.0.0.0' is not an IPv4 address as an integer (0..4294967295)"),
    BAD(T4, "16777216,-1,AU", "'-1' is not an IPv4 address as an integer (0..4294967295)"),
    BAD(T4, ",16777471,AU", "'' is not an IPv4 address as an integer (0..4294967295)"),
    BAD(T4, "16777471,16777216,AU", "range start '16777471' is after its end '16777216'"),

    /* Tor geoip6 */
    OK(T6, "2001:200::,2001:200:ffff:ffff:ffff:ffff:ffff:ffff,JP",
       "2001:200::", "2001:200:ffff:ffff:ffff:ffff:ffff:ffff", "JP"),
    OK(T6, "::,::,ZZ", "::", "::", "ZZ"),
    SKIP(T6, "2001:200::,2001:200::1,??", GEODB_SKIP_NOT_COUNTRY),
    BAD(T6, "1.0.0.0,1.0.0.255,AU", "'1.0.0.0' is an IPv4 address; this file takes IPv6 addresses"),
    BAD(T6, "2001:200::,2001:200:::1,JP", "'2001:200:::1' is not an IPv6 address"),
    BAD(T6, "2001:200::1,2001:200::,JP", "range start '2001:200::1' is after its end '2001:200::'"),
    BAD(T6, "\"2001:200::\",2001:200::1,JP", "'\"2001:200::\"' is not an IPv6 address"),

    /* --tor: either kind, per line */
    OK(TOR, "16777216,16777471,AU", "1.0.0.0", "1.0.0.255", "AU"),
    OK(TOR, "2001:200::,2001:200::ff,JP", "2001:200::", "2001:200::ff", "JP"),
    BAD(TOR, "16777216,2001:200::ff,JP", "'16777216' is not an IPv6 address"),

    /* CSV ranges */
    OK(CSV, "1.0.0.0,1.0.0.255,AU", "1.0.0.0", "1.0.0.255", "AU"),
    OK(CSV, "\"1.0.0.0\",\"1.0.0.255\",\"AU\"", "1.0.0.0", "1.0.0.255", "AU"),
    OK(CSV, "1.0.0.0,1.0.0.255,AU,\"Queensland, Brisbane\",x", "1.0.0.0", "1.0.0.255", "AU"),
    OK(CSV, "2001:db8::,2001:db8::ffff,de", "2001:db8::", "2001:db8::ffff", "DE"),
    OK(CSV, " \"8.8.8.0\" , 8.8.8.255 ,US\r\n", "8.8.8.0", "8.8.8.255", "US"),
    SKIP(CSV, "1.0.0.0,1.0.0.255,ZZZ", GEODB_SKIP_NOT_COUNTRY),
    SKIP(CSV, "1.0.0.0,1.0.0.255,\"\"", GEODB_SKIP_NOT_COUNTRY),
    BAD(CSV, "1.0.0.0,1.0.0.255", "expected 'START,END,CC' (3 or more fields), found 2 fields"),
    BAD(CSV, "\"1.0.0.0,1.0.0.255,AU", "unterminated quoted field 1"),
    BAD(CSV, "\"1.0.0.0\"x,1.0.0.255,AU", "unexpected text after the closing quote of field 1"),
    BAD(CSV, "1.0.0.0,::ff,AU", "range '1.0.0.0' to '::ff' mixes IPv4 and IPv6"),
    BAD(CSV, "2001:db8::,1.0.0.255,AU", "range '2001:db8::' to '1.0.0.255' mixes IPv4 and IPv6"),
    BAD(CSV, "1.0.0.9,1.0.0.1,AU", "range start '1.0.0.9' is after its end '1.0.0.1'"),
    BAD(CSV, "1.0.0,1.0.0.255,AU", "'1.0.0' is not an IP address"),
    BAD(CSV, "16777216,16777471,AU", "'16777216' is not an IP address"),
    BAD(CSV, ",1.0.0.255,AU", "missing address"),
    BAD(CSV, "1.0.0.0\x01,1.0.0.255,AU", "'1.0.0.0?' is not an IP address"),
    BAD(CSV,
        "1.0.0.0000000000000000000000000000000000000000000000000000000000000000000,1.0.0.255,AU",
        "'1.0.0.000000000000000000000000000000000000000000...' is not an IP address"),

    /* CIDR overlays */
    OK(CIDR, "127.0.1.0/24 HK", "127.0.1.0", "127.0.1.255", "HK"),
    OK(CIDR, "127.0.2.0/24\tch   # Switzerland\n", "127.0.2.0", "127.0.2.255", "CH"),
    OK(CIDR, "10.1.2.3 DE", "10.1.2.3", "10.1.2.3", "DE"),
    OK(CIDR, "0.0.0.0/0 US", "0.0.0.0", "255.255.255.255", "US"),
    OK(CIDR, "2001:db8::/32 NL", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "NL"),
    OK(CIDR, "2001:db8::1/128 NL", "2001:db8::1", "2001:db8::1", "NL"),
    OK(CIDR, "10.0.0.0/9 FR", "10.0.0.0", "10.127.255.255", "FR"),
    BAD(CIDR, "127.0.1.0/24", "expected 'CIDR CC', found 1 field"),
    BAD(CIDR, "127.0.1.0/24 HK extra", "expected 'CIDR CC', found 3 fields"),
    BAD(CIDR, "127.0.1.0/33 HK", "prefix length '33' is not in 0..32"),
    BAD(CIDR, "2001:db8::/129 HK", "prefix length '129' is not in 0..128"),
    BAD(CIDR, "127.0.1.0/ HK", "prefix length '' is not in 0..32"),
    BAD(CIDR, "127.0.1.0/2x HK", "prefix length '2x' is not in 0..32"),
    BAD(CIDR, "127.0.1.5/24 HK",
        "'127.0.1.5/24' has bits set past the prefix (the network is 127.0.1.0/24)"),
    BAD(CIDR, "2001:db8::1/64 HK",
        "'2001:db8::1/64' has bits set past the prefix (the network is 2001:db8::/64)"),
    BAD(CIDR, "127.0.1.0/24 H1", "'H1' is not a two-letter country code"),
    BAD(CIDR, "127.0.1.0/24 ??", "'\?\?' is not a two-letter country code"),
    BAD(CIDR, "127.0.1/24 HK", "'127.0.1' is not an IP address"),
    BAD(CIDR, "/24 HK", "missing address"),
};

/* The address of ss as text. */
static void addr_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)len);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)len);
    else
        snprintf(out, len, "family %d", (int)ss->ss_family);
}

static void test_parse_lines(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const struct line_case *c = &cases[i];
        struct geodb_entry e;
        char err[256] = "untouched", first[INET6_ADDRSTRLEN + 16], last[INET6_ADDRSTRLEN + 16];

        int rc = geodb_parse_line(c->fmt, c->line, strlen(c->line), &e, err, sizeof err);
        if (rc != c->rc)
            fail_msg("case %zu %s '%s': rc %d, want %d (err '%s')", i, geodb_format_name(c->fmt),
                     c->line, rc, c->rc, err);
        if (rc == 0) {
            addr_text(&e.first, first, sizeof first);
            addr_text(&e.last, last, sizeof last);
            if (strcmp(first, c->first) != 0 || strcmp(last, c->last) != 0 ||
                strcmp(e.country, c->country) != 0)
                fail_msg("case %zu '%s': got %s..%s %s, want %s..%s %s", i, c->line, first, last,
                         e.country, c->first, c->last, c->country);
            if (e.first.ss_family != e.last.ss_family)
                fail_msg("case %zu '%s': families differ", i, c->line);
        } else if (rc == 1) {
            if (e.skip != c->skip)
                fail_msg("case %zu '%s': skip %d, want %d", i, c->line, (int)e.skip, (int)c->skip);
        } else if (strcmp(err, c->err) != 0) {
            fail_msg("case %zu '%s': message\n  got  '%s'\n  want '%s'", i, c->line, err, c->err);
        }
    }
}

/* The length given is what is parsed: the line need not be NUL-terminated. */
static void test_parse_uses_len(void **state)
{
    (void)state;
    static const char buf[] = "127.0.1.0/24 HKXX";
    struct geodb_entry e;
    char err[128];

    assert_int_equal(geodb_parse_line(CIDR, buf, sizeof buf - 3, &e, err, sizeof err), 0);
    assert_string_equal(e.country, "HK");
    assert_int_equal(geodb_parse_line(CIDR, buf, sizeof buf - 1, &e, err, sizeof err), -1);
    assert_string_equal(err, "'HKXX' is not a two-letter country code");
    /* A NUL inside the line is an error, not the end of it. */
    static const char nul[] = "1.0.0.0\0,1.0.0.255,AU";
    assert_int_equal(geodb_parse_line(CSV, nul, sizeof nul - 1, &e, err, sizeof err), -1);
    assert_string_equal(err, "'1.0.0.0?' is not an IP address");
}

/* A small error buffer gets a truncated, terminated message. */
static void test_parse_small_err(void **state)
{
    (void)state;
    struct geodb_entry e;
    char err[8];

    assert_int_equal(geodb_parse_line(CIDR, "x", 1, &e, err, sizeof err), -1);
    assert_string_equal(err, "expecte");
}

struct path_case {
    const char *path;
    enum geodb_format fmt;
};

static void test_format_for_path(void **state)
{
    (void)state;
    static const struct path_case paths[] = {
        {"geoip", T4},
        {"/usr/share/tor/geoip", T4},
        {"/usr/share/tor/geoip6", T6},
        {"dbip-country-lite.csv", CSV},
        {"dir.csv/overlay", CIDR},
        {".csv", CIDR},
        {"geoip.txt", CIDR},
        {"overlay", CIDR},
    };
    for (size_t i = 0; i < N_ELEMS(paths); i++) {
        if (geodb_format_for_path(paths[i].path) != paths[i].fmt)
            fail_msg("%s: %s, want %s", paths[i].path,
                     geodb_format_name(geodb_format_for_path(paths[i].path)),
                     geodb_format_name(paths[i].fmt));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_lines),
        cmocka_unit_test(test_parse_uses_len),
        cmocka_unit_test(test_parse_small_err),
        cmocka_unit_test(test_format_for_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
