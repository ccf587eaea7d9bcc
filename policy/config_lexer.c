/* Tokenizer for the configuration language. */
#include "policy/config_lexer.h"

#include <stdio.h>
#include <string.h>

static bool lex_is_blank(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static bool lex_is_control(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

static int lex_fail(struct config_lex_error *err, size_t offset, const char *message)
{
    err->col = (unsigned)offset + 1;
    snprintf(err->message, sizeof err->message, "%s", message);
    return -1;
}

static int lex_fail_control(struct config_lex_error *err, size_t offset, unsigned char c)
{
    err->col = (unsigned)offset + 1;
    if (c == 0) {
        snprintf(err->message, sizeof err->message, "NUL byte is not allowed");
    } else {
        snprintf(err->message, sizeof err->message, "control character 0x%02x is not allowed",
                 (unsigned)c);
    }
    return -1;
}

bool config_lex_next_line(const char *text, size_t len, size_t *pos, const char **line,
                          size_t *line_len)
{
    const char *start;
    const char *newline;
    size_t n;

    if (*pos >= len) {
        return false;
    }
    start = text + *pos;
    newline = memchr(start, '\n', len - *pos);
    if (newline == NULL) {
        n = len - *pos;
        *pos = len;
    } else {
        n = (size_t)(newline - start);
        *pos += n + 1;
    }
    if (n > 0 && start[n - 1] == '\r') {
        n--;
    }
    *line = start;
    *line_len = n;
    return true;
}

/* Reads a quoted word starting at src[*i] == '"' into storage; leaves *i after the closing
 * quote. */
static int lex_quoted(const char *src, size_t len, size_t *i, char *storage, size_t *out,
                      struct config_lex_error *err)
{
    size_t open = *i;
    size_t k = *i + 1;

    for (;;) {
        unsigned char c;

        if (k >= len) {
            return lex_fail(err, open, "unterminated string");
        }
        c = (unsigned char)src[k];
        if (c == '"') {
            k++;
            break;
        }
        if (c == '\\') {
            unsigned char e;

            if (k + 1 >= len) {
                return lex_fail(err, open, "unterminated string");
            }
            e = (unsigned char)src[k + 1];
            if (e != '"' && e != '\\') {
                if (lex_is_control(e)) {
                    return lex_fail_control(err, k + 1, e);
                }
                err->col = (unsigned)k + 1;
                if (e > 0x20 && e < 0x7f) {
                    snprintf(err->message, sizeof err->message,
                             "unknown escape '\\%c' (only \\\" and \\\\ are allowed in strings)",
                             e);
                } else {
                    snprintf(
                        err->message, sizeof err->message,
                        "unknown escape '\\\\x%02x' (only \\\" and \\\\ are allowed in strings)",
                        (unsigned)e);
                }
                return -1;
            }
            storage[(*out)++] = (char)e;
            k += 2;
            continue;
        }
        if (lex_is_control(c)) {
            return lex_fail_control(err, k, c);
        }
        storage[(*out)++] = (char)c;
        k++;
    }
    if (k < len && !lex_is_blank((unsigned char)src[k]) && src[k] != '#') {
        return lex_fail(err, k, "expected a blank after the closing quote");
    }
    *i = k;
    return 0;
}

/* Reads a bare word starting at src[*i] into storage; leaves *i on the byte after it. */
static int lex_bare(const char *src, size_t len, size_t *i, char *storage, size_t *out,
                    struct config_lex_error *err)
{
    size_t k = *i;

    while (k < len) {
        unsigned char c = (unsigned char)src[k];

        if (lex_is_blank(c) || c == '#') {
            break;
        }
        if (c == '"') {
            return lex_fail(err, k, "unexpected '\"' inside a word (quote the whole word)");
        }
        if (lex_is_control(c)) {
            return lex_fail_control(err, k, c);
        }
        storage[(*out)++] = (char)c;
        k++;
    }
    *i = k;
    return 0;
}

int config_lex_line(const char *src, size_t len, struct config_line *out,
                    struct config_lex_error *err)
{
    size_t i = 0;
    size_t used = 0;

    out->count = 0;
    if (len > CONFIG_LINE_MAX) {
        err->col = CONFIG_LINE_MAX + 1;
        snprintf(err->message, sizeof err->message, "line is longer than %u bytes",
                 (unsigned)CONFIG_LINE_MAX);
        return -1;
    }
    /* Each word of n source bytes needs at most n + 1 bytes of storage (its NUL takes the place of
     * the blank, '#' or closing quote after it, or of the line's end), so len + 1 is enough. */
    while (i < len) {
        unsigned char c = (unsigned char)src[i];
        struct config_token *tok;
        size_t start;
        int rc;

        if (lex_is_blank(c)) {
            i++;
            continue;
        }
        if (c == '#') {
            break;
        }
        if (lex_is_control(c)) {
            return lex_fail_control(err, i, c);
        }
        if (out->count == CONFIG_LINE_WORDS_MAX) {
            err->col = (unsigned)i + 1;
            snprintf(err->message, sizeof err->message, "too many words on one line (at most %u)",
                     (unsigned)CONFIG_LINE_WORDS_MAX);
            return -1;
        }
        tok = &out->tokens[out->count];
        tok->col = (unsigned)i + 1;
        tok->quoted = c == '"';
        start = used;
        if (tok->quoted) {
            rc = lex_quoted(src, len, &i, out->storage, &used, err);
        } else {
            rc = lex_bare(src, len, &i, out->storage, &used, err);
        }
        if (rc != 0) {
            return -1;
        }
        out->storage[used++] = '\0';
        tok->text = out->storage + start;
        tok->len = used - start - 1;
        tok->end_col = (unsigned)i + 1;
        out->count++;
    }
    return 0;
}
