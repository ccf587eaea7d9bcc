/* Unit tests for regions (geo/region.c): the country bitset, the built-in catalog and
 * admin-defined regions. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "geo/region.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- bitset ---- */

struct code_case {
    const char *cc;
    int index; /* -1: refused */
};

static const struct code_case code_cases[] = {
    {"AA", 0},  {"AZ", 25}, {"BA", 26}, {"ZA", 650},      {"ZZ", 675}, {"aa", 0},  {"zZ", 675},
    {"DE", 82}, {"@A", -1}, {"A@", -1}, {"[A", -1},       {"A[", -1},  {"`a", -1}, {"a{", -1},
    {"1A", -1}, {"A1", -1}, {"  ", -1}, {"\xc3\x84", -1}, {"A", -1},   {"", -1},
};

static void test_country_code_index(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(code_cases); i++) {
        if (country_code_index(code_cases[i].cc) != code_cases[i].index)
            fail_msg("country_code_index('%s') = %d, want %d", code_cases[i].cc,
                     country_code_index(code_cases[i].cc), code_cases[i].index);
    }
    assert_int_equal(country_code_index(NULL), -1);
}

static void test_country_set(void **state)
{
    (void)state;
    struct country_set set = {{0}};

    assert_int_equal(country_set_count(&set), 0);
    for (size_t i = 0; i < N_ELEMS(code_cases); i++) {
        int ret = country_set_add(&set, code_cases[i].cc);
        assert_int_equal(ret, code_cases[i].index >= 0 ? 0 : -EINVAL);
    }
    /* AA, AZ, BA, ZA, ZZ, DE (aa and zZ are duplicates). */
    assert_int_equal(country_set_count(&set), 6);
    assert_true(country_set_has(&set, "AA"));
    assert_true(country_set_has(&set, "aa"));
    assert_true(country_set_has(&set, "ZZ"));
    assert_true(country_set_has(&set, "de"));
    assert_false(country_set_has(&set, "AB"));
    assert_false(country_set_has(&set, "ZY"));
    assert_false(country_set_has(&set, "@A"));
    assert_false(country_set_has(&set, "1A"));
    assert_false(country_set_has(&set, NULL));
    /* ZA (650) and ZZ (675, the last valid bit of 704) share the last word. */
    assert_int_equal(set.bits[COUNTRY_SET_WORDS - 1],
                     (UINT64_C(1) << (675 % 64)) | (UINT64_C(1) << (650 % 64)));
    assert_int_equal(COUNTRY_SET_WORDS, 11);
    assert_int_equal(set.bits[0] & 1u, 1);

    /* Every code fits, and each sets exactly one new bit. */
    struct country_set all = {{0}};
    for (char a = 'A'; a <= 'Z'; a++) {
        for (char b = 'A'; b <= 'Z'; b++) {
            char cc[2] = {a, b};
            assert_false(country_set_has(&all, cc));
            assert_int_equal(country_set_add(&all, cc), 0);
            assert_true(country_set_has(&all, cc));
        }
    }
    assert_int_equal(country_set_count(&all), 26 * 26);
}

/* ---- built-in catalog ---- */

struct catalog_case {
    const char *name;
    size_t size;
    const char *members;     /* space-separated, all listed */
    const char *non_members; /* space-separated */
};

static const struct catalog_case catalog_cases[] = {
    {"EU", 27, "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE",
     "GB NO IS LI CH US EL UK TR"},
    {"EEA", 30, "AT DE FR GR SE IS LI NO", "GB CH US"},
    {"FIVE_EYES", 5, "AU CA GB NZ US", "DE FR NO DK IE"},
    {"NINE_EYES", 9, "AU CA GB NZ US DK FR NL NO", "DE BE IT ES SE"},
    {"FOURTEEN_EYES", 14, "AU CA GB NZ US DK FR NL NO BE DE IT ES SE", "AT CH FI IS JP IL"},
};

/* Checks that each code of a space-separated list is (want) or is not in r; returns the count. */
static size_t for_each_code(const char *list, const struct region *r, bool want)
{
    size_t n = 0;
    for (const char *p = list; *p != '\0';) {
        if (*p == ' ') {
            p++;
            continue;
        }
        if (region_has_country(r, p) != want)
            fail_msg("%s: %.2s should%s be a member", r->name, p, want ? "" : " not");
        n++;
        p += 2;
    }
    return n;
}

static void test_catalog(void **state)
{
    (void)state;
    assert_int_equal(region_builtin_count(), N_ELEMS(catalog_cases));
    assert_null(region_builtin_at(region_builtin_count()));
    for (size_t i = 0; i < N_ELEMS(catalog_cases); i++) {
        const struct catalog_case *c = &catalog_cases[i];
        const struct region *r = region_builtin_at(i);

        assert_non_null(r);
        assert_string_equal(r->name, c->name);
        assert_ptr_equal(region_builtin_find(c->name), r);
        assert_int_equal(r->n_countries, c->size);
        assert_int_equal(country_set_count(&r->countries), c->size);
        for_each_code(c->members, r, true);
        for_each_code(c->non_members, r, false);
    }
    assert_int_equal(for_each_code(catalog_cases[0].members, region_builtin_find("EU"), true), 27);
}

/* Each wider alliance contains the narrower one; the EEA contains the EU. */
static void test_catalog_nesting(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"EU", "EEA"}, {"FIVE_EYES", "NINE_EYES"}, {"NINE_EYES", "FOURTEEN_EYES"}};

    for (size_t i = 0; i < N_ELEMS(pairs); i++) {
        const struct region *inner = region_builtin_find(pairs[i][0]);
        const struct region *outer = region_builtin_find(pairs[i][1]);
        assert_non_null(inner);
        assert_non_null(outer);
        for (size_t w = 0; w < COUNTRY_SET_WORDS; w++)
            assert_int_equal(inner->countries.bits[w] & ~outer->countries.bits[w], 0);
    }
}

static void test_builtin_find(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *want; /* NULL: not found */
    } cases[] = {
        {"EU", "EU"},
        {"eu", "EU"},
        {"Eea", "EEA"},
        {"five_eyes", "FIVE_EYES"},
        {"Fourteen_Eyes", "FOURTEEN_EYES"},
        {"FIVE-EYES", NULL},
        {"fiveeyes", NULL},
        {"EU ", NULL},
        {"E", NULL},
        {"", NULL},
        {"EUROPE", NULL},
    };

    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const struct region *r = region_builtin_find(cases[i].name);
        if (cases[i].want == NULL) {
            if (r != NULL)
                fail_msg("'%s' found %s", cases[i].name, r->name);
        } else {
            if (r == NULL)
                fail_msg("'%s' not found", cases[i].name);
            assert_string_equal(r->name, cases[i].want);
        }
    }
    assert_null(region_builtin_find(NULL));
}

/* ---- admin-defined regions ---- */

static void test_region_init_ok(void **state)
{
    (void)state;
    static const char *const codes[] = {"ch", "LI", "AT", "at"};
    struct region r;
    char err[256];
    char name63[64];

    assert_int_equal(region_init(&r, "dach-plus_1", codes, N_ELEMS(codes), err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_string_equal(r.name, "dach-plus_1");
    assert_int_equal(r.n_countries, 3);
    assert_true(region_has_country(&r, "CH"));
    assert_true(region_has_country(&r, "at"));
    assert_false(region_has_country(&r, "DE"));

    memset(name63, 'n', 63);
    name63[63] = '\0';
    assert_int_equal(region_init(&r, name63, codes, 1, err, sizeof err), 0);
    assert_string_equal(r.name, name63);
}

static void test_region_init_errors(void **state)
{
    (void)state;
    static const char *const good[] = {"DE", "FR"};
    static const char *const bad_digit[] = {"DE", "F1", "IT"};
    static const char *const bad_long[] = {"DE", "DEU"};
    static const char *const bad_short[] = {"D"};
    static const char *const bad_null[] = {"DE", NULL};
    char name64[65];
    memset(name64, 'n', 64);
    name64[64] = '\0';

    static const struct {
        const char *name;
        const char *const *codes;
        size_t n;
        const char *fragment;
    } cases[] = {
        {"", good, 2, "invalid region name ''"},
        {"has space", good, 2, "invalid region name 'has space'"},
        {"dot.name", good, 2, "invalid region name"},
        {"\xc3\xa9u", good, 2, "invalid region name"},
        {"ok", good, 0, "region 'ok' has no countries"},
        {"ok", NULL, 2, "region 'ok' has no countries"},
        {"ok", bad_digit, 3, "region 'ok': invalid country code 'F1' (entry 2)"},
        {"ok", bad_long, 2, "invalid country code 'DEU' (entry 2)"},
        {"ok", bad_short, 1, "invalid country code 'D' (entry 1)"},
        {"ok", bad_null, 2, "invalid country code '(null)' (entry 2)"},
    };

    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct region r;
        char err[256];
        memset(&r, 0xa5, sizeof r);
        int ret = region_init(&r, cases[i].name, cases[i].codes, cases[i].n, err, sizeof err);
        if (ret != -EINVAL || strstr(err, cases[i].fragment) == NULL)
            fail_msg("case %zu: ret %d, err '%s', want '%s'", i, ret, err, cases[i].fragment);
        assert_int_equal(r.n_countries, 0);
        assert_string_equal(r.name, "");
        assert_false(region_has_country(&r, "DE"));
    }

    struct region r;
    char err[256];
    assert_int_equal(region_init(&r, name64, good, 2, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "invalid region name"));
    assert_int_equal(region_init(&r, NULL, good, 2, err, sizeof err), -EINVAL);
}

/* ---- which regions contain a country ---- */

static void test_list_for_country(void **state)
{
    (void)state;
    static const char *const nordic_codes[] = {"DK", "FI", "IS", "NO", "SE"};
    static const char *const dach_codes[] = {"DE", "AT", "CH"};
    struct region nordic, dach;
    char err[256];

    assert_int_equal(region_init(&nordic, "nordic", nordic_codes, 5, err, sizeof err), 0);
    assert_int_equal(region_init(&dach, "dach", dach_codes, 3, err, sizeof err), 0);
    const struct region *const extra[] = {&nordic, &dach};

    static const struct {
        const char *cc;
        const char *want; /* region names in answer order */
    } cases[] = {
        {"NO", "EEA NINE_EYES FOURTEEN_EYES nordic"},
        {"DK", "EU EEA NINE_EYES FOURTEEN_EYES nordic"},
        {"GB", "FIVE_EYES NINE_EYES FOURTEEN_EYES"},
        {"us", "FIVE_EYES NINE_EYES FOURTEEN_EYES"},
        {"DE", "EU EEA FOURTEEN_EYES dach"},
        {"CH", "dach"},
        {"IS", "EEA nordic"},
        {"JP", ""},
        {"1X", ""},
    };

    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const struct region *out[16];
        char got[256] = "";
        size_t n = region_list_for_country(cases[i].cc, extra, N_ELEMS(extra), out, 16);
        for (size_t j = 0; j < n && j < 16; j++) {
            size_t used = strlen(got);
            snprintf(got + used, sizeof got - used, "%s%s", j ? " " : "", out[j]->name);
        }
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("%s: got '%s', want '%s'", cases[i].cc, got, cases[i].want);
    }

    /* A short output array: the total is still reported, only out_cap are written. */
    const struct region *out[2] = {NULL, NULL};
    assert_int_equal(region_list_for_country("DK", extra, 2, out, 1), 5);
    assert_string_equal(out[0]->name, "EU");
    assert_null(out[1]);
    assert_int_equal(region_list_for_country("DK", NULL, 0, NULL, 0), 4);

    /* Every code AA..ZZ in both cases, and a NULL among the extra regions: the list is exactly
     * the regions, in order, for which region_has_country answers true. */
    const struct region *const with_null[] = {&nordic, NULL, &dach};
    for (int a = 0; a < 26; a++) {
        for (int b = 0; b < 26; b++) {
            for (int lower = 0; lower < 2; lower++) {
                char cc[3] = {(char)((lower ? 'a' : 'A') + a), (char)('A' + b), '\0'};
                const struct region *got[16], *want[16];
                size_t n_want = 0;
                for (size_t i = 0; i < region_builtin_count(); i++) {
                    if (region_has_country(region_builtin_at(i), cc))
                        want[n_want++] = region_builtin_at(i);
                }
                for (size_t i = 0; i < N_ELEMS(with_null); i++) {
                    if (with_null[i] != NULL && region_has_country(with_null[i], cc))
                        want[n_want++] = with_null[i];
                }
                size_t n = region_list_for_country(cc, with_null, N_ELEMS(with_null), got, 16);
                assert_int_equal(n, n_want);
                for (size_t i = 0; i < n; i++)
                    assert_ptr_equal(got[i], want[i]);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_country_code_index),
        cmocka_unit_test(test_country_set),
        cmocka_unit_test(test_catalog),
        cmocka_unit_test(test_catalog_nesting),
        cmocka_unit_test(test_builtin_find),
        cmocka_unit_test(test_region_init_ok),
        cmocka_unit_test(test_region_init_errors),
        cmocka_unit_test(test_list_for_country),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
