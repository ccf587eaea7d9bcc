/* Regions: named sets of countries (jurisdictions) such as EU or FIVE_EYES.
 *
 * A pure library: no I/O, no globals that change. The built-in catalog is constant data; an
 * admin-defined region is a struct region the caller owns, filled by region_init(). */
#ifndef GEOPROXY_GEO_REGION_H
#define GEOPROXY_GEO_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Number of possible two-letter codes AA..ZZ, and the 64-bit words that hold one bit each. */
#define COUNTRY_SET_SIZE (26 * 26)
#define COUNTRY_SET_WORDS ((COUNTRY_SET_SIZE + 63) / 64)

/* Longest region name, without the terminating NUL. */
#define REGION_NAME_MAX 63

/* A set of two-letter country codes: bit (c0-'A')*26 + (c1-'A'). Zero-initialize for empty. */
struct country_set {
    uint64_t bits[COUNTRY_SET_WORDS];
};

struct region {
    char name[REGION_NAME_MAX + 1]; /* [A-Za-z0-9_-]{1,63} */
    struct country_set countries;
    size_t n_countries; /* number of distinct codes in countries */
};

/* Index of a two-letter code (either case) in a country_set, or -1 if cc is not two ASCII
 * letters. cc need not be NUL-terminated; only cc[0] and cc[1] are read. */
int country_code_index(const char cc[2]);

/* Adds cc to set. Returns 0, or -EINVAL (set unchanged) if cc is not two ASCII letters. */
int country_set_add(struct country_set *set, const char cc[2]);

/* True if cc is in set; false for anything that is not two ASCII letters. */
bool country_set_has(const struct country_set *set, const char cc[2]);

/* Number of codes in set. */
size_t country_set_count(const struct country_set *set);

/* Fills r as an admin-defined region named name with the n codes (each exactly two ASCII
 * letters, either case; duplicates are allowed and counted once). Returns 0, or -EINVAL with
 * a message in err saying which name or code is wrong; r is then zeroed. n must be >= 1. */
int region_init(struct region *r, const char *name, const char *const *codes, size_t n, char *err,
                size_t err_len);

/* True if the region contains cc (two ASCII letters, either case). */
bool region_has_country(const struct region *r, const char cc[2]);

/* The built-in catalog: EU, EEA, FIVE_EYES, NINE_EYES, FOURTEEN_EYES (see docs/GEO.md). */
size_t region_builtin_count(void);

/* The i-th built-in region (catalog order), or NULL when i >= region_builtin_count(). */
const struct region *region_builtin_at(size_t i);

/* The built-in region named name, compared case-insensitively, or NULL. */
const struct region *region_builtin_find(const char *name);

/* Every region containing cc: first the built-ins in catalog order, then the n_extra regions
 * of extra in their order. Stores up to out_cap of them in out and returns how many there are
 * in total (like snprintf: a result > out_cap means out was too small). 0 for an invalid cc. */
size_t region_list_for_country(const char cc[2], const struct region *const *extra, size_t n_extra,
                               const struct region **out, size_t out_cap);

#endif
