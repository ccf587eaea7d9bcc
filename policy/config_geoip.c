/* The geoip directive: "geoip country FILE|none" and "geoip asn FILE|none", and the default
 * country database used when no "geoip country" line names one. */
#include "policy/config_parser.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "geo/geo.h"
#include "policy/config_file.h"

#ifndef GEOPROXY_DEFAULT_GEOIP_COUNTRY
#define GEOPROXY_DEFAULT_GEOIP_COUNTRY ""
#endif

#define GEOIP_ERROR_MAX 512
#define KINDS_EXPECTED "expected country or asn"

enum geoip_kind { GEOIP_COUNTRY, GEOIP_ASN };

static const char *const geoip_kinds[] = {"country", "asn", NULL};

/* Opens the database at path (owned by the caller) into the config. Returns 0 or -1 after an
 * error at col. */
static int geoip_open(struct config_parser *p, enum geoip_kind kind, const char *path, unsigned col)
{
    struct config_geoip *g = &p->cfg->geoip;
    char err[GEOIP_ERROR_MAX];
    struct geo_db *db = NULL;
    char *copy;

    if (geo_db_open(path, &db, err, sizeof err) != 0) {
        config_parser_error(p, col, "%s", err);
        return -1;
    }
    copy = strdup(path);
    if (copy == NULL || config_add_source(p, path, col) != 0) {
        if (copy == NULL)
            config_parser_out_of_memory(p, col);
        free(copy);
        geo_db_free(db);
        return -1;
    }
    if (kind == GEOIP_COUNTRY) {
        g->country_path = copy;
        g->country = db;
    } else {
        g->asn_path = copy;
        g->asn = db;
    }
    return 0;
}

void config_parse_geoip(struct config_parser *p, const struct config_line *w)
{
    const struct config_token *t;
    char what[32];
    char *path;
    int kind;

    if (w->count < 2) {
        config_parser_error(p, w->tokens[0].end_col,
                            "missing database kind after 'geoip' (" KINDS_EXPECTED ")");
        return;
    }
    kind = config_word_index(&w->tokens[1], geoip_kinds);
    if (kind < 0) {
        config_error_unknown_word(p, &w->tokens[1], "geoip database", "", geoip_kinds,
                                  KINDS_EXPECTED);
        return;
    }
    snprintf(what, sizeof what, "'geoip %s'", geoip_kinds[kind]);
    if (w->count < 3) {
        config_parser_error(p, w->tokens[1].end_col,
                            "missing path after %s (expected FILE or none)", what);
        return;
    }
    if (!config_expect_end(p, w, 3, "geoip") ||
        !config_check_once(p, &p->geoip_at[kind], w->tokens[0].col, what)) {
        return;
    }
    t = &w->tokens[2];
    if (t->len == 0) {
        config_parser_error(p, t->col, "empty database path");
        return;
    }
    if (config_word_is(t, "none")) {
        if (kind == GEOIP_COUNTRY)
            p->geoip_country_none = true;
        config_mark_set(p, &p->geoip_at[kind]);
        return;
    }
    path = config_path_join(config_parser_dir(p), t->text);
    if (path == NULL) {
        if (errno == ENAMETOOLONG)
            config_parser_error(p, t->col, "database path is too long");
        else
            config_parser_out_of_memory(p, t->col);
        return;
    }
    if (geoip_open(p, (enum geoip_kind)kind, path, t->col) == 0)
        config_mark_set(p, &p->geoip_at[kind]);
    free(path);
}

void config_geoip_finish(struct config_parser *p)
{
    const char *path = GEOPROXY_DEFAULT_GEOIP_COUNTRY;
    const char *top = p->frames[0].name;
    char err[GEOIP_ERROR_MAX];
    struct geo_db *db = NULL;
    char *copy;

    if (p->geoip_at[GEOIP_COUNTRY].file != NULL || path[0] == '\0' || access(path, F_OK) != 0)
        return;
    if (geo_db_open(path, &db, err, sizeof err) != 0) {
        config_diag_add(p->diags, CONFIG_ERROR, top, 0, 0,
                        "default country database: %s (name one with 'geoip country FILE', or "
                        "write 'geoip country none')",
                        err);
        return;
    }
    copy = strdup(path);
    if (copy == NULL || config_add_source(p, path, 0) != 0) {
        if (copy == NULL)
            config_diag_add(p->diags, CONFIG_ERROR, top, 0, 0, "out of memory");
        free(copy);
        geo_db_free(db);
        return;
    }
    p->cfg->geoip.country_path = copy;
    p->cfg->geoip.country = db;
    p->cfg->geoip.country_is_default = true;
}
