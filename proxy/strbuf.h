/* A growable text buffer with a hard cap, for admin responses (metrics, status JSON). Appends
 * past the cap or past available memory are dropped and remembered in 'failed', so a caller
 * checks once at the end. */
#ifndef GEOPROXY_PROXY_STRBUF_H
#define GEOPROXY_PROXY_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
    char *data; /* NUL-terminated while not failed */
    size_t len;
    size_t cap;
    size_t max; /* the cap on len */
    bool failed;
};

/* An empty buffer that may grow to max bytes. */
void strbuf_init(struct strbuf *sb, size_t max);
void strbuf_free(struct strbuf *sb);

void strbuf_append(struct strbuf *sb, const char *s, size_t n);
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends s as a JSON string, quotes included (quotes, backslashes, control bytes escaped). */
void strbuf_json_string(struct strbuf *sb, const char *s);

#endif
