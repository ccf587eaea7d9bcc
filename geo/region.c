/* Regions: country bitsets, the built-in catalog and admin-defined regions. */
#include "geo/region.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The catalog is built at compile time from X-macro lists of codes: each list is expanded once
 * per 64-bit word, keeping only the bits that fall in that word. Sources: docs/GEO.md. */
#define CC_INDEX(a, b) (((a) - 'A') * 26 + ((b) - 'A'))
#define CC_BIT(w, a, b) | (CC_INDEX(a, b) / 64 == (w) ? UINT64_C(1) << (CC_INDEX(a, b) % 64) : 0)
#define CC_ONE(w, a, b) +1
#define SET_OF(LIST)                                                                               \
    {                                                                                              \
        {                                                                                          \
            0 LIST(CC_BIT, 0), 0 LIST(CC_BIT, 1), 0 LIST(CC_BIT, 2), 0 LIST(CC_BIT, 3),            \
                0 LIST(CC_BIT, 4), 0 LIST(CC_BIT, 5), 0 LIST(CC_BIT, 6), 0 LIST(CC_BIT, 7),        \
                0 LIST(CC_BIT, 8), 0 LIST(CC_BIT, 9), 0 LIST(CC_BIT, 10)                           \
        }                                                                                          \
    }
#define REGION_OF(NAME, LIST)                                                                      \
    {                                                                                              \
        NAME, SET_OF(LIST), (size_t)(0 LIST(CC_ONE, 0))                                            \
    }

/* The 27 member states of the European Union (2024). Greece is GR in ISO 3166-1 (EL in EU
 * documents). */
// clang-format off
#define EU_CODES(X, w)                                                                             \
    X(w, 'A', 'T') X(w, 'B', 'E') X(w, 'B', 'G') X(w, 'H', 'R') X(w, 'C', 'Y') X(w, 'C', 'Z')      \
    X(w, 'D', 'K') X(w, 'E', 'E') X(w, 'F', 'I') X(w, 'F', 'R') X(w, 'D', 'E') X(w, 'G', 'R')      \
    X(w, 'H', 'U') X(w, 'I', 'E') X(w, 'I', 'T') X(w, 'L', 'V') X(w, 'L', 'T') X(w, 'L', 'U')      \
    X(w, 'M', 'T') X(w, 'N', 'L') X(w, 'P', 'L') X(w, 'P', 'T') X(w, 'R', 'O') X(w, 'S', 'K')      \
    X(w, 'S', 'I') X(w, 'E', 'S') X(w, 'S', 'E')
/* European Economic Area: the EU plus the three EFTA states party to the EEA agreement. */
#define EEA_CODES(X, w)                                                                            \
    EU_CODES(X, w) X(w, 'I', 'S') X(w, 'L', 'I') X(w, 'N', 'O')
/* UKUSA agreement parties. */
#define FIVE_EYES_CODES(X, w)                                                                      \
    X(w, 'A', 'U') X(w, 'C', 'A') X(w, 'G', 'B') X(w, 'N', 'Z') X(w, 'U', 'S')
/* Nine and Fourteen Eyes (SIGINT Seniors Europe) as commonly reported; not published treaties. */
#define NINE_EYES_CODES(X, w)                                                                      \
    FIVE_EYES_CODES(X, w) X(w, 'D', 'K') X(w, 'F', 'R') X(w, 'N', 'L') X(w, 'N', 'O')
#define FOURTEEN_EYES_CODES(X, w)                                                                  \
    NINE_EYES_CODES(X, w) X(w, 'B', 'E') X(w, 'D', 'E') X(w, 'I', 'T') X(w, 'E', 'S')              \
    X(w, 'S', 'E')
// clang-format on

static const struct region region_catalog[] = {
    REGION_OF("EU", EU_CODES),
    REGION_OF("EEA", EEA_CODES),
    REGION_OF("FIVE_EYES", FIVE_EYES_CODES),
    REGION_OF("NINE_EYES", NINE_EYES_CODES),
    REGION_OF("FOURTEEN_EYES", FOURTEEN_EYES_CODES),
};

#define REGION_CATALOG_LEN (sizeof region_catalog / sizeof region_catalog[0])

static int ascii_letter_index(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    return -1;
}

int country_code_index(const char cc[2])
{
    if (cc == NULL)
        return -1;
    int hi = ascii_letter_index(cc[0]);
    if (hi < 0)
        return -1;
    int lo = ascii_letter_index(cc[1]);
    if (lo < 0)
        return -1;
    return hi * 26 + lo;
}

int country_set_add(struct country_set *set, const char cc[2])
{
    int i = country_code_index(cc);

    if (i < 0)
        return -EINVAL;
    set->bits[i / 64] |= UINT64_C(1) << (i % 64);
    return 0;
}

bool country_set_has(const struct country_set *set, const char cc[2])
{
    int i = country_code_index(cc);

    if (i < 0)
        return false;
    return (set->bits[i / 64] >> (i % 64)) & 1u;
}

size_t country_set_count(const struct country_set *set)
{
    size_t n = 0;

    for (size_t w = 0; w < COUNTRY_SET_WORDS; w++) {
        for (uint64_t v = set->bits[w]; v != 0; v &= v - 1)
            n++;
    }
    return n;
}

static bool region_name_is_valid(const char *name)
{
    size_t len = 0;

    for (; name[len] != '\0'; len++) {
        char c = name[len];
        if (len >= REGION_NAME_MAX)
            return false;
        if (!(ascii_letter_index(c) >= 0 || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return len > 0;
}

int region_init(struct region *r, const char *name, const char *const *codes, size_t n, char *err,
                size_t err_len)
{
    memset(r, 0, sizeof *r);
    if (err_len > 0)
        err[0] = '\0';
    if (name == NULL || !region_name_is_valid(name)) {
        snprintf(err, err_len,
                 "invalid region name '%.*s': expected 1 to %d of A-Z, a-z, 0-9, '_', '-'",
                 REGION_NAME_MAX + 1, name != NULL ? name : "(null)", REGION_NAME_MAX);
        return -EINVAL;
    }
    if (n == 0 || codes == NULL) {
        snprintf(err, err_len, "region '%s' has no countries", name);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *code = codes[i];
        if (code == NULL || strnlen(code, 3) != 2 || country_set_add(&r->countries, code) != 0) {
            snprintf(err, err_len,
                     "region '%s': invalid country code '%.8s' (entry %zu): expected two "
                     "letters such as 'DE'",
                     name, code != NULL ? code : "(null)", i + 1);
            memset(r, 0, sizeof *r);
            return -EINVAL;
        }
    }
    memcpy(r->name, name, strlen(name) + 1);
    r->n_countries = country_set_count(&r->countries);
    return 0;
}

bool region_has_country(const struct region *r, const char cc[2])
{
    return country_set_has(&r->countries, cc);
}

size_t region_builtin_count(void)
{
    return REGION_CATALOG_LEN;
}

const struct region *region_builtin_at(size_t i)
{
    return i < REGION_CATALOG_LEN ? &region_catalog[i] : NULL;
}

static bool ascii_equal_nocase(const char *a, const char *b)
{
    for (; *a != '\0' && *b != '\0'; a++, b++) {
        char ca = (*a >= 'a' && *a <= 'z') ? (char)(*a - 'a' + 'A') : *a;
        char cb = (*b >= 'a' && *b <= 'z') ? (char)(*b - 'a' + 'A') : *b;
        if (ca != cb)
            return false;
    }
    return *a == *b;
}

const struct region *region_builtin_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < REGION_CATALOG_LEN; i++) {
        if (ascii_equal_nocase(region_catalog[i].name, name))
            return &region_catalog[i];
    }
    return NULL;
}

size_t region_list_for_country(const char cc[2], const struct region *const *extra, size_t n_extra,
                               const struct region **out, size_t out_cap)
{
    size_t total = 0;
    int index = country_code_index(cc);

    if (index < 0)
        return 0;
    /* The code's word and bit, found once rather than once per region. */
    size_t word = (size_t)index / 64;
    uint64_t bit = UINT64_C(1) << (index % 64);
    for (size_t i = 0; i < REGION_CATALOG_LEN + n_extra; i++) {
        const struct region *r =
            i < REGION_CATALOG_LEN ? &region_catalog[i] : extra[i - REGION_CATALOG_LEN];
        if (r == NULL || (r->countries.bits[word] & bit) == 0)
            continue;
        if (total < out_cap)
            out[total] = r;
        total++;
    }
    return total;
}
