/* The configuration language's tokenizer: splits a text into lines and one line into words.
 * Blanks (space, tab) separate words; '#' outside quotes starts a comment; "..." is one word with
 * \" and \\ as the only escapes. Internal to policy/; pure (no I/O, no allocation). */
#ifndef GEOPROXY_POLICY_CONFIG_LEXER_H
#define GEOPROXY_POLICY_CONFIG_LEXER_H

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_LINE_MAX 4096     /* bytes in one line, without its line ending */
#define CONFIG_LINE_WORDS_MAX 64 /* words in one line */
#define CONFIG_LEX_MESSAGE_MAX 160

struct config_token {
    const char *text; /* the word with quotes removed and escapes resolved, NUL-terminated */
    size_t len;
    unsigned col;     /* 1-based byte column of the word's first byte (the quote when quoted) */
    unsigned end_col; /* column just after the word's last byte */
    bool quoted;      /* written as "..." (columns inside no longer match text offsets) */
};

struct config_line {
    struct config_token tokens[CONFIG_LINE_WORDS_MAX];
    size_t count;
    char storage[CONFIG_LINE_MAX + 1]; /* backs every token's text */
};

struct config_lex_error {
    unsigned col;
    char message[CONFIG_LEX_MESSAGE_MAX];
};

/* Finds the line starting at *pos in text[0..len): sets *line and *line_len (without "\n" or
 * "\r\n") and moves *pos past the line ending. Returns false when there is no line left. */
bool config_lex_next_line(const char *text, size_t len, size_t *pos, const char **line,
                          size_t *line_len);

/* Splits one line into words. Returns 0, or -1 with err set: the line is longer than
 * CONFIG_LINE_MAX, holds a NUL or another control character (tab excepted), has more than
 * CONFIG_LINE_WORDS_MAX words, an unterminated string, an unknown escape, or a quote that does
 * not start or end a word. */
int config_lex_line(const char *src, size_t len, struct config_line *out,
                    struct config_lex_error *err);

#endif
