/* Helpers shared by the directive parsers: looking at words, reporting errors at them. */
#include "policy/config_parser.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/config_file.h"
#include "policy/config_value.h"

const char *config_parser_file(const struct config_parser *p)
{
    if (p->depth == 0) {
        return p->cfg->path; /* before the top file is open */
    }
    return p->frames[p->depth - 1].name;
}

const char *config_parser_dir(const struct config_parser *p)
{
    if (p->depth == 0) {
        return ".";
    }
    return p->frames[p->depth - 1].dir;
}

void config_parser_error(struct config_parser *p, unsigned col, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    config_diag_vadd(p->diags, CONFIG_ERROR, config_parser_file(p), p->line, col, fmt, ap);
    va_end(ap);
}

void config_parser_out_of_memory(struct config_parser *p, unsigned col)
{
    if (!p->out_of_memory) {
        config_parser_error(p, col, "out of memory");
    }
    p->out_of_memory = true;
}

const char *config_parser_keep(struct config_parser *p, char *s)
{
    if (s == NULL) {
        return NULL;
    }
    if (p->n_strings == p->cap_strings) {
        size_t cap = p->cap_strings == 0 ? 16 : p->cap_strings * 2;
        char **grown = realloc(p->strings, cap * sizeof *grown);

        if (grown == NULL) {
            free(s);
            return NULL;
        }
        p->strings = grown;
        p->cap_strings = cap;
    }
    p->strings[p->n_strings++] = s;
    return s;
}

const char *config_token_clip(const struct config_token *t, char buf[CONFIG_CLIP_SIZE])
{
    return config_clip(t->text, t->len, buf);
}

bool config_word_is(const struct config_token *t, const char *s)
{
    return strcmp(t->text, s) == 0; /* the lexer refuses NUL bytes, so text has none inside */
}

int config_word_index(const struct config_token *t, const char *const *list)
{
    int i;

    for (i = 0; list[i] != NULL; i++) {
        if (config_word_is(t, list[i])) {
            return i;
        }
    }
    return -1;
}

unsigned config_word_col_at(const struct config_token *t, size_t offset)
{
    return t->quoted ? t->col : t->col + (unsigned)offset;
}

bool config_expect_end(struct config_parser *p, const struct config_line *w, size_t n,
                       const char *directive)
{
    char shown[CONFIG_CLIP_SIZE];

    if (w->count <= n) {
        return true;
    }
    config_parser_error(p, w->tokens[n].col, "unexpected extra argument '%s' for '%s'",
                        config_token_clip(&w->tokens[n], shown), directive);
    return false;
}

bool config_check_once(struct config_parser *p, const struct config_origin *at, unsigned col,
                       const char *what)
{
    if (at->file == NULL) {
        return true;
    }
    config_parser_error(p, col, "%s is already set at %s:%u", what, at->file, at->line);
    return false;
}

void config_mark_set(struct config_parser *p, struct config_origin *at)
{
    at->file = config_parser_file(p);
    at->line = p->line;
}

void config_error_unknown_word(struct config_parser *p, const struct config_token *t,
                               const char *what, const char *context, const char *const *candidates,
                               const char *expected)
{
    char shown[CONFIG_CLIP_SIZE];
    const char *suggestion = config_suggest(t->text, t->len, candidates);

    if (suggestion != NULL) {
        config_parser_error(p, t->col, "unknown %s '%s'%s (did you mean '%s'?)", what,
                            config_token_clip(t, shown), context, suggestion);
    } else {
        config_parser_error(p, t->col, "unknown %s '%s'%s (%s)", what, config_token_clip(t, shown),
                            context, expected);
    }
}

static const struct config_option_slot *option_slot_find(const struct config_token *t,
                                                         const struct config_option_slot *slots,
                                                         size_t n_slots)
{
    for (size_t k = 0; k < n_slots; k++)
        if (config_word_is(t, slots[k].name))
            return &slots[k];
    return NULL;
}

int config_parse_option_pairs(struct config_parser *p, const struct config_line *w, size_t first,
                              const struct config_option_spec *spec,
                              const struct config_option_slot *slots, size_t n_slots)
{
    for (size_t k = 0; k < n_slots; k++)
        *slots[k].option = *slots[k].value = NULL;
    for (size_t i = first; i < w->count; i += 2) {
        const struct config_token *opt = &w->tokens[i];
        if (spec->planned != NULL && config_word_index(opt, spec->planned) >= 0) {
            config_parser_error(p, opt->col, "'%s' " CONFIG_NOT_YET, opt->text);
            return -1;
        }
        const struct config_option_slot *slot = option_slot_find(opt, slots, n_slots);
        if (slot == NULL) {
            config_error_unknown_word(p, opt, "option", spec->context, spec->names, spec->expected);
            return -1;
        }
        if (*slot->option != NULL) {
            config_parser_error(p, opt->col, "option '%s' given twice", opt->text);
            return -1;
        }
        if (i + 1 >= w->count) {
            config_parser_error(p, opt->end_col, "missing value after '%s'", opt->text);
            return -1;
        }
        *slot->option = opt;
        *slot->value = &w->tokens[i + 1];
    }
    return 0;
}

int config_add_source(struct config_parser *p, const char *path, unsigned col)
{
    struct config *cfg = p->cfg;
    char *copy;

    for (size_t i = 0; i < cfg->n_sources; i++)
        if (strcmp(cfg->sources[i], path) == 0)
            return 0;
    if (cfg->n_sources == p->sources_cap) {
        size_t cap = p->sources_cap == 0 ? 8 : p->sources_cap * 2;
        char **grown = realloc(cfg->sources, cap * sizeof *grown);

        if (grown == NULL) {
            config_parser_out_of_memory(p, col);
            return -1;
        }
        cfg->sources = grown;
        p->sources_cap = cap;
    }
    copy = strdup(path);
    if (copy == NULL) {
        config_parser_out_of_memory(p, col);
        return -1;
    }
    cfg->sources[cfg->n_sources++] = copy;
    return 0;
}

char *config_join_path(struct config_parser *p, const struct config_token *t, const char *what)
{
    char *path;

    if (t->len == 0) {
        config_parser_error(p, t->col, "empty %s path", what);
        return NULL;
    }
    path = config_path_join(config_parser_dir(p), t->text);
    if (path == NULL && errno == ENAMETOOLONG)
        config_parser_error(p, t->col, "%s path is too long", what);
    else if (path == NULL)
        config_parser_out_of_memory(p, t->col);
    return path;
}
