/* The region directive: "region NAME = CC CC ...", and looking regions up by name for rules. */
#include "policy/config_parser.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "geo/region.h"
#include "policy/config_value.h"

#define REGION_NAME_RULES "use 1 to 63 letters, digits, '_' or '-'"

static bool region_name_ok(const struct config_token *t)
{
    if (t->len == 0 || t->len > REGION_NAME_MAX)
        return false;
    for (size_t i = 0; i < t->len; i++) {
        char c = t->text[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

        if (!alnum && c != '_' && c != '-')
            return false;
    }
    return true;
}

static bool is_two_letters(const char *s, size_t len)
{
    return len == 2 && country_code_index(s) >= 0;
}

const struct region *config_region_find(const struct config *cfg, const char *name)
{
    const struct region *r = region_builtin_find(name);

    if (r != NULL)
        return r;
    for (size_t i = 0; i < cfg->n_regions; i++)
        if (strcasecmp(cfg->regions[i].name, name) == 0)
            return &cfg->regions[i];
    return NULL;
}

const char *config_region_suggest(const struct config *cfg, const char *word, size_t len)
{
    char upper[REGION_NAME_MAX + 1];
    char names[CONFIG_MAX_REGIONS + 8][REGION_NAME_MAX + 1];
    const char *list[CONFIG_MAX_REGIONS + 9];
    const char *real[CONFIG_MAX_REGIONS + 8];
    const char *found;
    size_t n = 0;

    if (len > REGION_NAME_MAX)
        return NULL;
    for (size_t i = 0; i < len; i++)
        upper[i] = (word[i] >= 'a' && word[i] <= 'z') ? (char)(word[i] - 'a' + 'A') : word[i];
    upper[len] = '\0';
    for (size_t i = 0; i < region_builtin_count() + cfg->n_regions && n < CONFIG_MAX_REGIONS + 8;
         i++) {
        const struct region *r = i < region_builtin_count()
                                     ? region_builtin_at(i)
                                     : &cfg->regions[i - region_builtin_count()];
        size_t k;

        for (k = 0; r->name[k] != '\0'; k++) {
            char c = r->name[k];
            names[n][k] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
        }
        names[n][k] = '\0';
        list[n] = names[n];
        real[n] = r->name;
        n++;
    }
    list[n] = NULL;
    found = config_suggest(upper, len, list);
    for (size_t i = 0; found != NULL && i < n; i++)
        if (list[i] == found)
            return real[i];
    return NULL;
}

static int region_check_name(struct config_parser *p, const struct config_token *t)
{
    const struct config *cfg = p->cfg;
    const struct region *builtin;
    char shown[CONFIG_CLIP_SIZE];

    if (!region_name_ok(t)) {
        config_parser_error(p, t->col, "invalid region name '%s' (" REGION_NAME_RULES ")",
                            config_token_clip(t, shown));
        return -1;
    }
    if (strcmp(t->text, "local") == 0 || strcmp(t->text, "unknown") == 0) {
        config_parser_error(p, t->col, "'%s' cannot name a region: it is a matcher keyword",
                            t->text);
        return -1;
    }
    builtin = region_builtin_find(t->text);
    if (builtin != NULL) {
        config_parser_error(p, t->col, "region name '%s' clashes with the built-in region '%s'",
                            t->text, builtin->name);
        return -1;
    }
    if (is_two_letters(t->text, t->len)) {
        config_parser_error(p, t->col,
                            "region name '%s' would hide the country code %c%c (use a name of "
                            "three or more characters)",
                            t->text, t->text[0] & ~0x20, t->text[1] & ~0x20);
        return -1;
    }
    for (size_t i = 0; i < cfg->n_regions; i++) {
        if (strcasecmp(cfg->regions[i].name, t->text) == 0) {
            config_parser_error(p, t->col, "duplicate region name '%s' (first defined at %s:%u)",
                                t->text, p->region_at[i].file, p->region_at[i].line);
            return -1;
        }
    }
    return 0;
}

void config_parse_region(struct config_parser *p, const struct config_line *w)
{
    struct config *cfg = p->cfg;
    const char *codes[CONFIG_LINE_WORDS_MAX];
    char shown[CONFIG_CLIP_SIZE];
    char err[256];
    struct region r;
    size_t n = 0;

    if (w->count < 2) {
        config_parser_error(p, w->tokens[0].end_col, "missing region name after 'region'");
        return;
    }
    if (region_check_name(p, &w->tokens[1]) != 0)
        return;
    if (w->count < 3 || !config_word_is(&w->tokens[2], "=")) {
        if (w->count < 3)
            config_parser_error(p, w->tokens[1].end_col,
                                "missing '=' after the region name (expected region NAME = CC "
                                "CC ...)");
        else
            config_parser_error(p, w->tokens[2].col, "expected '=' after the region name, got '%s'",
                                config_token_clip(&w->tokens[2], shown));
        return;
    }
    if (w->count < 4) {
        config_parser_error(p, w->tokens[2].end_col,
                            "missing country codes after '=' (e.g. region NAME = DE FR)");
        return;
    }
    for (size_t i = 3; i < w->count; i++) {
        const struct config_token *t = &w->tokens[i];

        if (!is_two_letters(t->text, t->len)) {
            config_parser_error(p, t->col,
                                "invalid country code '%s' (expected two letters such as DE)",
                                config_token_clip(t, shown));
            return;
        }
        codes[n++] = t->text;
    }
    if (cfg->n_regions == CONFIG_MAX_REGIONS) {
        config_parser_error(p, w->tokens[0].col, "too many regions (at most %u)",
                            (unsigned)CONFIG_MAX_REGIONS);
        return;
    }
    if (region_init(&r, w->tokens[1].text, codes, n, err, sizeof err) != 0) {
        config_parser_error(p, w->tokens[1].col, "%s", err); /* checked above: not expected */
        return;
    }
    if (cfg->regions == NULL) {
        cfg->regions = calloc(CONFIG_MAX_REGIONS, sizeof *cfg->regions);
        if (cfg->regions == NULL) {
            config_parser_out_of_memory(p, w->tokens[0].col);
            return;
        }
    }
    config_mark_set(p, &p->region_at[cfg->n_regions]);
    cfg->regions[cfg->n_regions++] = r;
}
