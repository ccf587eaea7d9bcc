/* Unit tests for the pure parts of certs/: what kind of subjectAltName a string is, which
 * certificate names are acceptable, days until expiry and the time format. Table-driven. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "certs/certs.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define DAY 86400

static void test_san_kind(void **state)
{
    static const struct {
        const char *text;
        enum certs_san_kind kind;
    } cases[] = {
        {"exit1.example.net", CERTS_SAN_DNS},
        {"localhost", CERTS_SAN_DNS},
        {"a-b.c-d.example", CERTS_SAN_DNS},
        {"*.example.net", CERTS_SAN_DNS},
        {"xn--bcher-kva.example", CERTS_SAN_DNS},
        {"3com.com", CERTS_SAN_DNS},
        {"127.0.0.1", CERTS_SAN_IPV4},
        {"192.0.2.255", CERTS_SAN_IPV4},
        {"::1", CERTS_SAN_IPV6},
        {"2001:db8::7", CERTS_SAN_IPV6},
        {"::ffff:192.0.2.1", CERTS_SAN_IPV6},
        {"", CERTS_SAN_INVALID},
        {"10.0.0.256", CERTS_SAN_INVALID}, /* a bad address, not a name */
        {"1.2.3", CERTS_SAN_INVALID},      /* all-digit last label */
        {"fe80::1%eth0", CERTS_SAN_INVALID},
        {"-lead.example", CERTS_SAN_INVALID},
        {"trail-.example", CERTS_SAN_INVALID},
        {"a..b", CERTS_SAN_INVALID},
        {"example.", CERTS_SAN_INVALID},
        {".example", CERTS_SAN_INVALID},
        {"under_score.example", CERTS_SAN_INVALID},
        {"sp ace.example", CERTS_SAN_INVALID},
        {"a.*.example", CERTS_SAN_INVALID},
        {"*", CERTS_SAN_INVALID},
        {"*.", CERTS_SAN_INVALID},
        {"comma,example", CERTS_SAN_INVALID},
        {"DNS:example.net", CERTS_SAN_INVALID},
        {"1234567890123456789012345678901234567890123456789012345678901234.x",
         CERTS_SAN_INVALID}, /* a 64-character label */
    };
    char long_name[300];

    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        enum certs_san_kind got = certs_san_kind_of(cases[i].text);
        if (got != cases[i].kind)
            fail_msg("'%s': kind %d, expected %d", cases[i].text, (int)got, (int)cases[i].kind);
    }
    assert_int_equal(certs_san_kind_of(NULL), CERTS_SAN_INVALID);
    /* 63-character labels are fine up to 253 characters in all. */
    memset(long_name, 'a', sizeof long_name);
    for (size_t i = 63; i < sizeof long_name; i += 64)
        long_name[i] = '.';
    long_name[253] = '\0';
    assert_int_equal(certs_san_kind_of(long_name), CERTS_SAN_DNS);
    long_name[253] = 'a';
    long_name[254] = '\0';
    assert_int_equal(certs_san_kind_of(long_name), CERTS_SAN_INVALID);
}

static void test_name_is_valid(void **state)
{
    static const struct {
        const char *name;
        bool valid;
    } cases[] = {
        {"exit1", true},
        {"exit1.example.net", true},
        {"alice_1", true},
        {"alice@example.org", true},
        {"192.0.2.1", true},
        {"A-Z", true},
        {"", false},
        {".hidden", false},
        {"-option", false},
        {"../escape", false},
        {"a/b", false},
        {"sp ace", false},
        {"new\nline", false},
        {"star*", false},
        {"1234567890123456789012345678901234567890123456789012345678901234", true}, /* 64 */
        {"12345678901234567890123456789012345678901234567890123456789012345", false},
    };

    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        if (certs_name_is_valid(cases[i].name) != cases[i].valid)
            fail_msg("'%s': expected %s", cases[i].name, cases[i].valid ? "valid" : "invalid");
    }
    assert_false(certs_name_is_valid(NULL));
}

static void test_days_left(void **state)
{
    static const struct {
        long long not_after, now;
        long days;
    } cases[] = {
        {10 * DAY, 0, 10},        {10 * DAY, 1, 9},
        {10 * DAY, 10 * DAY, 0},  {10 * DAY, 10 * DAY + 1, -1},
        {10 * DAY, 11 * DAY, -1}, {10 * DAY, 11 * DAY + 1, -2},
        {0, 30 * DAY, -30},       {DAY - 1, 0, 0},
    };

    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        long got = certs_days_left((time_t)cases[i].not_after, (time_t)cases[i].now);
        if (got != cases[i].days)
            fail_msg("not_after %lld now %lld: %ld days, expected %ld", cases[i].not_after,
                     cases[i].now, got, cases[i].days);
    }
}

static void test_format_time(void **state)
{
    char out[CERTS_TIME_MAX];

    (void)state;
    certs_format_time(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    certs_format_time(1772706000, out);
    assert_string_equal(out, "2026-03-05T10:20:00Z");
    certs_format_time(2524608000, out); /* past 2049: GeneralizedTime in certificates */
    assert_string_equal(out, "2050-01-01T00:00:00Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_san_kind),
        cmocka_unit_test(test_name_is_valid),
        cmocka_unit_test(test_days_left),
        cmocka_unit_test(test_format_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
