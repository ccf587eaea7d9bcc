#include "proxy/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/hex.h"

void strbuf_init(struct strbuf *sb, size_t max)
{
    memset(sb, 0, sizeof *sb);
    sb->max = max;
}

void strbuf_free(struct strbuf *sb)
{
    free(sb->data);
    memset(sb, 0, sizeof *sb);
}

/* Makes room for n more bytes and the NUL; false when over the cap or out of memory. */
static bool strbuf_reserve(struct strbuf *sb, size_t n)
{
    if (sb->failed || n > sb->max - sb->len)
        return !(sb->failed = true);
    if (sb->len + n + 1 <= sb->cap)
        return true;
    size_t cap = sb->cap == 0 ? 4096 : sb->cap;
    while (cap < sb->len + n + 1)
        cap *= 2;
    char *grown = realloc(sb->data, cap);
    if (grown == NULL)
        return !(sb->failed = true);
    sb->data = grown;
    sb->cap = cap;
    return true;
}

void strbuf_append(struct strbuf *sb, const char *s, size_t n)
{
    if (!strbuf_reserve(sb, n))
        return;
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

void strbuf_puts(struct strbuf *sb, const char *s)
{
    strbuf_append(sb, s, strlen(s));
}

void strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !strbuf_reserve(sb, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

void strbuf_json_string(struct strbuf *sb, const char *s)
{
    strbuf_append(sb, "\"", 1);
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            strbuf_append(sb, esc, 2);
        } else if (ch < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex_digit(ch >> 4), hex_digit(ch & 0xf)};
            strbuf_append(sb, esc, 6);
        } else {
            strbuf_append(sb, p, 1);
        }
    }
    strbuf_append(sb, "\"", 1);
}
