/* The configuration language: reading files and includes, dispatching each line to its
 * directive, and the checks on the configuration as a whole. Words come from config_lexer.c,
 * directives are parsed in config_settings.c, config_listen.c, config_upstream.c, config_rule.c
 * and the other config_*.c files. */
#include "policy/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "geo/geo.h"
#include "policy/config_diag.h"
#include "policy/config_file.h"
#include "policy/config_lexer.h"
#include "policy/config_parser.h"
#include "policy/config_value.h"
#include "policy/rule_index.h"
#include "policy/rule_match.h"
#include "policy/userdb.h"

#define CONFIG_FILES_MAX 128 /* files read for one configuration, the top file included */
#define CONFIG_CYCLE_TEXT_MAX 400

struct directive {
    const char *name;
    void (*parse)(struct config_parser *p, const struct config_line *w); /* NULL: planned */
};

static void parse_file(struct config_parser *p, char *path, unsigned include_col);

static void parse_include(struct config_parser *p, const struct config_line *w)
{
    const struct config_token *t = &w->tokens[1];
    char *path;

    if (w->count < 2) {
        config_parser_error(p, w->tokens[0].end_col, "missing path after 'include'");
        return;
    }
    if (!config_expect_end(p, w, 2, "include")) {
        return;
    }
    if (t->len == 0) {
        config_parser_error(p, t->col, "empty include path");
        return;
    }
    path = config_path_join(config_parser_dir(p), t->text);
    if (path == NULL) {
        if (errno == ENAMETOOLONG) {
            config_parser_error(p, t->col, "include path is too long");
        } else {
            config_parser_out_of_memory(p, t->col);
        }
        return;
    }
    parse_file(p, path, t->col); /* reuses p->words: w is stale from here on */
}

static const struct directive directives[] = {
    {"include", parse_include},
    {"workers", config_parse_workers},
    {"listen", config_parse_listen},
    {"resolver", config_parse_resolver},
    {"timeout", config_parse_timeout},
    {"limit", config_parse_limit},
    {"user", config_parse_user},
    {"group", config_parse_group},
    {"rule", config_parse_rule},
    {"geoip", config_parse_geoip},
    {"region", config_parse_region},
    {"admin", config_parse_admin},
    {"upstream", config_parse_upstream},
    {"health-check", config_parse_health_check},
    {"external", config_parse_external},
    {"expect", config_parse_expect},
    {"on-reload", config_parse_on_reload},
};

#define N_DIRECTIVES (sizeof directives / sizeof directives[0])

static void parse_directive(struct config_parser *p, const struct config_line *w)
{
    const struct config_token *d = &w->tokens[0];
    const char *names[N_DIRECTIVES + 1];
    char shown[CONFIG_CLIP_SIZE];
    const char *suggestion;
    size_t i;

    for (i = 0; i < N_DIRECTIVES; i++) {
        if (!config_word_is(d, directives[i].name)) {
            names[i] = directives[i].name;
            continue;
        }
        if (directives[i].parse == NULL) {
            config_parser_error(p, d->col, "'%s' " CONFIG_NOT_YET, directives[i].name);
        } else {
            directives[i].parse(p, w);
        }
        return;
    }
    names[N_DIRECTIVES] = NULL;
    suggestion = config_suggest(d->text, d->len, names);
    if (suggestion != NULL) {
        config_parser_error(p, d->col, "unknown directive '%s' (did you mean '%s'?)",
                            config_token_clip(d, shown), suggestion);
    } else {
        config_parser_error(p, d->col, "unknown directive '%s'", config_token_clip(d, shown));
    }
}

static void parse_text(struct config_parser *p, const char *text, size_t len)
{
    struct config_lex_error err;
    const char *line;
    size_t line_len;
    size_t pos = 0;
    unsigned lineno = 0;

    while (!p->out_of_memory && config_lex_next_line(text, len, &pos, &line, &line_len)) {
        p->line = ++lineno;
        if (config_lex_line(line, line_len, &p->words, &err) != 0) {
            config_parser_error(p, err.col, "%s", err.message);
            continue;
        }
        if (p->words.count > 0) {
            parse_directive(p, &p->words);
        }
    }
}

/* "a.conf -> b.conf -> a.conf" from the frame that is included again. */
static void include_describe_cycle(const struct config_parser *p, size_t from, const char *again,
                                   char *buf, size_t len)
{
    size_t used = 0;
    size_t i;

    buf[0] = '\0';
    for (i = from; i < p->depth && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s -> ", p->frames[i].name);

        used += n < 0 ? 0 : (size_t)n;
    }
    if (used < len) {
        snprintf(buf + used, len - used, "%s", again);
    }
}

static bool config_has_control_byte(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return true;
    return false;
}

/* Reads and parses one file. include_col is the column of the include's PATH word, or 0 for the
 * top file. Takes ownership of path. */
static void parse_file(struct config_parser *p, char *path, unsigned include_col)
{
    char err[CONFIG_FILE_ERROR_MAX];
    char cycle[CONFIG_CYCLE_TEXT_MAX];
    struct config_frame *frame;
    const char *name = config_parser_keep(p, path);
    char *text = NULL;
    size_t len;
    struct stat st;
    unsigned saved_line = p->line;
    size_t i;

    if (name == NULL) {
        config_parser_out_of_memory(p, include_col);
        return;
    }
    if (include_col != 0 && config_has_control_byte(name)) {
        /* Its name would be in messages and log lines: one line each, nothing forged. */
        char shown[CONFIG_CLIP_SIZE];
        config_parser_error(p, include_col, "cannot include '%s': control characters in a path",
                            config_clip(name, strlen(name), shown));
        return;
    }
    if (include_col != 0 && p->depth > CONFIG_INCLUDE_DEPTH_MAX) {
        config_parser_error(p, include_col, "includes are nested more than %u deep",
                            (unsigned)CONFIG_INCLUDE_DEPTH_MAX);
        return;
    }
    if (p->files_read == CONFIG_FILES_MAX) {
        config_parser_error(p, include_col, "too many included files (at most %u)",
                            (unsigned)CONFIG_FILES_MAX);
        return;
    }
    if (config_file_read(name, CONFIG_FILE_MAX_BYTES, &text, &len, &st, err) != 0) {
        if (include_col != 0) {
            config_parser_error(p, include_col, "cannot include '%s': %s", name, err);
        } else {
            config_diag_add(p->diags, CONFIG_ERROR, name, 0, 0, "%s", err);
        }
        return;
    }
    for (i = 0; i < p->depth; i++) {
        if (p->frames[i].has_id && p->frames[i].dev == st.st_dev && p->frames[i].ino == st.st_ino) {
            include_describe_cycle(p, i, name, cycle, sizeof cycle);
            config_parser_error(p, include_col, "include cycle: %s", cycle);
            goto out;
        }
    }
    if (config_add_source(p, name, include_col) != 0) {
        goto out;
    }
    p->files_read++;
    frame = &p->frames[p->depth];
    frame->name = name;
    frame->dir = config_parser_keep(p, config_path_dir(name));
    frame->dev = st.st_dev;
    frame->ino = st.st_ino;
    frame->has_id = true;
    if (frame->dir == NULL) {
        config_parser_out_of_memory(p, include_col);
        goto out;
    }
    p->depth++;
    parse_text(p, text, len);
    p->depth--;
out:
    p->line = saved_line;
    free(text);
}

static int parse_compile(struct config_parser *p)
{
    const char *top = p->frames[0].name;
    int rc = rule_index_build(p->cfg, &p->cfg->index);

    if (rc == -E2BIG) {
        config_diag_add(p->diags, CONFIG_ERROR, top, 0, 0,
                        "the rules need more than %u MiB once compiled: use fewer values or "
                        "rules",
                        RULE_INDEX_MAX_BYTES / (1024u * 1024u));
    } else if (rc != 0) {
        config_diag_add(p->diags, CONFIG_ERROR, top, 0, 0, "out of memory compiling the rules");
    }
    return rc;
}

/* Checks on the configuration as a whole, reported against the top file. A listen line with an
 * error still counts as a listener here, so its error is not followed by a second one. */
static void parse_finish(struct config_parser *p)
{
    const char *top = p->frames[0].name;

    if (p->listen_seen == 0) {
        config_diag_add(p->diags, CONFIG_ERROR, top, 0, 0, "no listener configured");
    }
    if (p->diags->errors > 0) {
        return; /* warnings about a configuration that is refused anyway would be noise */
    }
    config_geoip_finish(p);
    if (p->diags->errors > 0 || parse_compile(p) != 0) {
        return;
    }
    config_check_rules(p);
    config_check_expectations(p);
}

static struct config *config_new(const char *path)
{
    struct config *cfg = calloc(1, sizeof *cfg);

    if (cfg == NULL) {
        return NULL;
    }
    cfg->path = strdup(path);
    if (cfg->path == NULL) {
        free(cfg);
        return NULL;
    }
    cfg->workers = 0;
    cfg->timeouts.handshake_ms = 10 * 1000;
    cfg->timeouts.connect_ms = 10 * 1000;
    cfg->timeouts.dns_ms = 5 * 1000;
    cfg->timeouts.idle_ms = 300 * 1000;
    cfg->timeouts.drain_ms = 30 * 1000;
    cfg->limits.connections = 10000;
    cfg->limits.header_bytes = 16384;
    cfg->limits.dns_cache_entries = 4096;
    cfg->limits.per_client_connections = 256;
    cfg->limits.per_client_rate = 0;
    cfg->health.interval_ms = 5 * 1000;
    cfg->health.timeout_ms = 3 * 1000;
    return cfg;
}

void config_free(struct config *cfg)
{
    size_t i;

    if (cfg == NULL) {
        return;
    }
    for (i = 0; i < cfg->n_listeners; i++) {
        free(cfg->listeners[i].users_path);
        userdb_free(cfg->listeners[i].users);
        free(cfg->listeners[i].cert_path);
        free(cfg->listeners[i].key_path);
        free(cfg->listeners[i].ca_path);
        SSL_CTX_free(cfg->listeners[i].tls);
    }
    for (i = 0; i < cfg->n_upstreams; i++) {
        config_upstream_clear(&cfg->upstreams[i]);
    }
    free(cfg->upstreams);
    for (i = 0; i < cfg->n_rules; i++) {
        free(cfg->rules[i].reason);
        free(cfg->rules[i].file);
        rule_match_free(cfg->rules[i].match);
    }
    free(cfg->rules);
    rule_index_free(cfg->index);
    free(cfg->geoip.country_path);
    free(cfg->geoip.asn_path);
    geo_db_free(cfg->geoip.country);
    geo_db_free(cfg->geoip.asn);
    free(cfg->regions);
    for (i = 0; i < cfg->n_expects; i++) {
        free(cfg->expects[i].from);
        free(cfg->expects[i].to_host);
        free(cfg->expects[i].user);
        free(cfg->expects[i].listener);
        free(cfg->expects[i].file);
    }
    free(cfg->expects);
    free(cfg->admin.token_path);
    if (cfg->admin.token != NULL) {
        OPENSSL_cleanse(cfg->admin.token, strlen(cfg->admin.token));
        free(cfg->admin.token);
    }
    for (i = 0; i < cfg->n_sources; i++) {
        free(cfg->sources[i]);
    }
    free(cfg->sources);
    free(cfg->path);
    free(cfg);
}

static void parser_free(struct config_parser *p)
{
    size_t i;

    if (p == NULL) {
        return;
    }
    for (i = 0; i < p->n_strings; i++) {
        free(p->strings[i]);
    }
    free(p->strings);
    key_map_free(&p->rule_names);
    config_free(p->cfg);
    free(p);
}

static struct config_parser *parser_new(const char *name, struct config_diags *diags)
{
    struct config_parser *p = calloc(1, sizeof *p);

    if (p == NULL) {
        return NULL;
    }
    p->diags = diags;
    p->cfg = config_new(name);
    if (p->cfg == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

/* Hands the config over when the parse found no error. */
static int parser_finish(struct config_parser *p, struct config **out)
{
    if (p->diags->errors > 0) {
        return -1;
    }
    *out = p->cfg;
    p->cfg = NULL;
    return 0;
}

int config_load_file(const char *path, struct config **out, struct config_diags *diags)
{
    struct config_diags scratch;
    struct config_parser *p = NULL;
    char *top = NULL;
    int ret = -1;

    if (diags == NULL) {
        diags = &scratch;
    }
    memset(diags, 0, sizeof *diags);
    *out = NULL;
    if (path == NULL || path[0] == '\0') {
        config_diag_add(diags, CONFIG_ERROR, "<config>", 0, 0, "no configuration file given");
        goto out;
    }
    p = parser_new(path, diags);
    top = strdup(path);
    if (p == NULL || top == NULL) {
        config_diag_add(diags, CONFIG_ERROR, path, 0, 0, "out of memory");
        free(top);
        goto out;
    }
    parse_file(p, top, 0);
    if (p->files_read == 0) {
        goto out; /* the top file could not be read: that is the only thing to say */
    }
    parse_finish(p);
    ret = parser_finish(p, out);
out:
    parser_free(p);
    return ret;
}

int config_load_string(const char *name, const char *text, const char *base_dir,
                       struct config **out, struct config_diags *diags)
{
    struct config_diags scratch;
    struct config_parser *p = NULL;
    const char *dir;
    size_t len;
    int ret = -1;

    if (diags == NULL) {
        diags = &scratch;
    }
    memset(diags, 0, sizeof *diags);
    *out = NULL;
    if (name == NULL) {
        name = "<string>";
    }
    if (text == NULL) {
        config_diag_add(diags, CONFIG_ERROR, name, 0, 0, "no configuration text given");
        goto out;
    }
    len = strnlen(text, CONFIG_FILE_MAX_BYTES + 1);
    if (len > CONFIG_FILE_MAX_BYTES) {
        config_diag_add(diags, CONFIG_ERROR, name, 0, 0, "text is larger than %u MiB",
                        CONFIG_FILE_MAX_BYTES / (1024u * 1024u));
        goto out;
    }
    p = parser_new(name, diags);
    if (p == NULL) {
        config_diag_add(diags, CONFIG_ERROR, name, 0, 0, "out of memory");
        goto out;
    }
    p->frames[0].name = config_parser_keep(p, strdup(name));
    dir = config_parser_keep(p, strdup(base_dir != NULL ? base_dir : "."));
    if (p->frames[0].name == NULL || dir == NULL) {
        config_diag_add(diags, CONFIG_ERROR, name, 0, 0, "out of memory");
        goto out;
    }
    p->frames[0].dir = dir;
    p->depth = 1;
    p->files_read = 1;
    parse_text(p, text, len);
    parse_finish(p);
    ret = parser_finish(p, out);
out:
    parser_free(p);
    return ret;
}

const char *config_listener_kind_name(enum listener_kind kind)
{
    switch (kind) {
    case LISTENER_MIXED:
        return "mixed";
    case LISTENER_SOCKS5:
        return "socks5";
    case LISTENER_SOCKS4:
        return "socks4";
    case LISTENER_HTTP:
        return "http";
    case LISTENER_TUNNEL:
        return "tunnel";
    }
    return "unknown";
}

const char *config_format_addr(const struct sockaddr_storage *addr, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];

    if (len == 0) {
        return buf;
    }
    if (addr != NULL && addr->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;

        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
        snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(sin->sin_port));
    } else if (addr != NULL && addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;

        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
        snprintf(buf, len, "[%s]:%u", host, (unsigned)ntohs(sin6->sin6_port));
    } else {
        snprintf(buf, len, "(no address)");
    }
    return buf;
}
