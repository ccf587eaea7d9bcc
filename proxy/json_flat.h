/* Reads one flat JSON object, the shape of geoproxy's own event lines:
 * {"key":"string","key":123,...}, no nesting. Strings are unescaped into the caller's buffer
 * (\uXXXX below 0x80 only; others become '?'). For filtering and re-rendering events. */
#ifndef GEOPROXY_PROXY_JSON_FLAT_H
#define GEOPROXY_PROXY_JSON_FLAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_FLAT_FIELDS_MAX 32

struct json_flat_field {
    const char *key;
    const char *str; /* NULL for a number */
    int64_t num;
};

struct json_flat {
    struct json_flat_field fields[JSON_FLAT_FIELDS_MAX];
    size_t n;
};

/* Parses text[0..len) into out, using buf (at least len + 1 bytes) for the unescaped strings.
 * Returns 0, or -1 when it is not a flat object of strings and integers (or has too many). */
int json_flat_parse(const char *text, size_t len, char *buf, struct json_flat *out);

/* The string value of key, or NULL (absent, or a number). */
const char *json_flat_str(const struct json_flat *j, const char *key);

#endif
