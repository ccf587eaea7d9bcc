/* The directives of the entry side of tunnels:
 *   upstream NAME tls HOST:PORT ca FILE cert FILE key FILE [pin sha256//BASE64]
 *            [server-name NAME] [egress CC-or-REGION] [pool N] [mux on|off]
 *            [optimistic on|off]
 *   upstream NAME socks5|http HOST:PORT [user NAME password-file FILE]
 *   upstream NAME group failover|round-robin MEMBER...
 *   health-check [every DURATION] [timeout DURATION]
 *   external ADDRESS
 * An upstream is defined before the lines that name it (groups, rules). */
#include "policy/config_parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "geo/region.h"
#include "policy/config_value.h"

#define UPSTREAM_POOL_MAX 64
#define UPSTREAM_POOL_DEFAULT 2
#define UPSTREAM_USER_MAX 255     /* the SOCKS5 limit */
#define UPSTREAM_PASSWORD_MAX 255 /* the SOCKS5 limit */
#define UPSTREAM_PASSWORD_FILE_MAX 4096
#define PIN_PREFIX "sha256//"
#define PIN_BASE64_LEN 44 /* a SHA-256 in base64, with its one '=' */
#define KINDS_EXPECTED "expected tls, socks5, http or group"

static const char *const upstream_kinds[] = {"tls", "socks5", "http", "group", NULL};
static const char *const strategies[] = {"failover", "round-robin", NULL};

enum upstream_option {
    U_CA,
    U_CERT,
    U_KEY,
    U_PIN,
    U_SERVER_NAME,
    U_EGRESS,
    U_POOL,
    U_MUX,
    U_OPTIMISTIC,
    U_USER,
    U_PASS
};
#define U_OPTIONS 11
#define U_TLS_ONLY_LAST U_OPTIMISTIC
static const char *const option_names[] = {"ca",          "cert",   "key",           "pin",
                                           "server-name", "egress", "pool",          "mux",
                                           "optimistic",  "user",   "password-file", NULL};

struct upstream_words {
    const struct config_token *opt[U_OPTIONS];
    const struct config_token *val[U_OPTIONS];
};

const struct config_upstream *config_upstream_find(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_upstreams; i++)
        if (strcmp(cfg->upstreams[i].name, name) == 0)
            return &cfg->upstreams[i];
    return NULL;
}

const struct config_upstream *config_upstream_lookup(struct config_parser *p,
                                                     const struct config_token *t)
{
    const struct config *cfg = p->cfg;
    const struct config_upstream *u = config_upstream_find(cfg, t->text);
    const char *names[CONFIG_MAX_UPSTREAMS + 1];

    if (u != NULL)
        return u;
    for (size_t i = 0; i < cfg->n_upstreams; i++)
        names[i] = cfg->upstreams[i].name;
    names[cfg->n_upstreams] = NULL;
    config_error_unknown_word(p, t, "upstream", "", names,
                              cfg->n_upstreams == 0
                                  ? "no upstream is defined before this line"
                                  : "upstreams must be defined before the lines that use them");
    return NULL;
}

void config_upstream_clear(struct config_upstream *u)
{
    free(u->ca_path);
    free(u->cert_path);
    free(u->key_path);
    free(u->pin);
    free(u->server_name);
    SSL_CTX_free(u->tls);
    free(u->user);
    if (u->password != NULL)
        OPENSSL_cleanse(u->password, strlen(u->password));
    free(u->password);
    free(u->file);
    memset(u, 0, sizeof *u);
}

static int upstream_check_name(struct config_parser *p, const struct config_token *t)
{
    const struct config_upstream *first;
    char shown[CONFIG_CLIP_SIZE];

    if (!config_name_is_valid(t->text, t->len)) {
        config_parser_error(p, t->col, "invalid upstream name '%s' (" CONFIG_NAME_RULES ")",
                            config_token_clip(t, shown));
        return -1;
    }
    first = config_upstream_find(p->cfg, t->text);
    if (first != NULL) {
        config_parser_error(p, t->col, "duplicate upstream name '%s' (first defined at %s:%u)",
                            t->text, first->file, first->line);
        return -1;
    }
    if (p->cfg->n_upstreams == CONFIG_MAX_UPSTREAMS) {
        config_parser_error(p, t->col, "too many upstreams (at most %u)",
                            (unsigned)CONFIG_MAX_UPSTREAMS);
        return -1;
    }
    return 0;
}

/* "group failover|round-robin MEMBER...": 1 to 16 distinct upstreams defined above, no group. */
static int upstream_parse_group(struct config_parser *p, const struct config_line *w,
                                struct config_upstream *u)
{
    int strategy;

    if (w->count < 4) {
        config_parser_error(p, w->tokens[2].end_col,
                            "missing strategy after 'group' (expected failover or round-robin)");
        return -1;
    }
    strategy = config_word_index(&w->tokens[3], strategies);
    if (strategy < 0) {
        config_error_unknown_word(p, &w->tokens[3], "group strategy", "", strategies,
                                  "expected failover or round-robin");
        return -1;
    }
    u->strategy = strategy == 0 ? UPSTREAM_FAILOVER : UPSTREAM_ROUND_ROBIN;
    if (w->count < 5) {
        config_parser_error(p, w->tokens[3].end_col,
                            "missing members after '%s' (expected 1 to %u upstream names)",
                            w->tokens[3].text, (unsigned)CONFIG_GROUP_MEMBERS_MAX);
        return -1;
    }
    for (size_t i = 4; i < w->count; i++) {
        const struct config_token *t = &w->tokens[i];
        const struct config_upstream *m;

        if (u->n_members == CONFIG_GROUP_MEMBERS_MAX) {
            config_parser_error(p, t->col, "too many members in group '%s' (at most %u)", u->name,
                                (unsigned)CONFIG_GROUP_MEMBERS_MAX);
            return -1;
        }
        m = config_upstream_lookup(p, t);
        if (m == NULL)
            return -1;
        if (m->kind == UPSTREAM_GROUP) {
            config_parser_error(p, t->col,
                                "'%s' is a group: a group cannot contain a group (list its "
                                "members instead)",
                                m->name);
            return -1;
        }
        for (size_t k = 0; k < u->n_members; k++) {
            if (u->members[k] == m->index) {
                config_parser_error(p, t->col, "upstream '%s' is listed twice in group '%s'",
                                    m->name, u->name);
                return -1;
            }
        }
        u->members[u->n_members++] = m->index;
    }
    return 0;
}

static int upstream_split_options(struct config_parser *p, const struct config_line *w,
                                  struct upstream_words *o)
{
    static const struct config_option_spec spec = {
        .context = " for 'upstream'",
        .names = option_names,
        .expected = "expected ca, cert, key, pin, server-name, egress, pool, mux, optimistic, "
                    "user or password-file",
    };
    struct config_option_slot slots[U_OPTIONS];

    for (size_t k = 0; k < U_OPTIONS; k++) {
        slots[k].name = option_names[k];
        slots[k].option = &o->opt[k];
        slots[k].value = &o->val[k];
    }
    return config_parse_option_pairs(p, w, 4, &spec, slots, U_OPTIONS);
}

/* The options a kind does not take. */
static int upstream_check_kind_options(struct config_parser *p, enum upstream_kind kind,
                                       const struct upstream_words *o)
{
    for (size_t k = 0; k < U_OPTIONS; k++) {
        const struct config_token *t = o->opt[k];
        bool tls_only = k <= U_TLS_ONLY_LAST;

        if (t == NULL || tls_only == (kind == UPSTREAM_TLS))
            continue;
        if (k == U_EGRESS)
            config_parser_error(p, t->col, "egress can only be verified on a tls upstream");
        else
            config_parser_error(p, t->col, "'%s' is only allowed on %s upstreams", t->text,
                                tls_only ? "tls" : "socks5 and http");
        return -1;
    }
    return 0;
}

static bool pin_is_valid(const struct config_token *t)
{
    const char *b64 = t->text + strlen(PIN_PREFIX);

    if (t->len != strlen(PIN_PREFIX) + PIN_BASE64_LEN ||
        strncmp(t->text, PIN_PREFIX, strlen(PIN_PREFIX)) != 0 || b64[PIN_BASE64_LEN - 1] != '=')
        return false;
    for (size_t i = 0; i < PIN_BASE64_LEN - 1; i++) {
        char c = b64[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return false;
    }
    return true;
}

/* "egress CC-or-REGION": a region (stored in its own spelling) or a country code (upper-case). */
static int upstream_parse_egress(struct config_parser *p, const struct config_token *t,
                                 struct config_upstream *u)
{
    char shown[CONFIG_CLIP_SIZE];
    const struct region *r;
    const char *close;

    r = t->len <= REGION_NAME_MAX ? config_region_find(p->cfg, t->text) : NULL;
    if (r != NULL) { /* first, as rules do: EU is a region before it is a code */
        snprintf(u->egress, sizeof u->egress, "%s", r->name);
        return 0;
    }
    if (t->len == 2 && country_code_index(t->text) >= 0) {
        u->egress[0] = (char)(t->text[0] & ~0x20);
        u->egress[1] = (char)(t->text[1] & ~0x20);
        u->egress[2] = '\0';
        return 0;
    }
    close = config_region_suggest(p->cfg, t->text, t->len);
    if (close != NULL)
        config_parser_error(p, t->col, "unknown region '%s' (did you mean '%s'?)",
                            config_token_clip(t, shown), close);
    else
        config_parser_error(p, t->col,
                            "unknown egress '%s' (expected a country code such as CH or a region "
                            "name)",
                            config_token_clip(t, shown));
    return -1;
}

/* An "on|off" option, when given, into *value. */
static int upstream_parse_switch(struct config_parser *p, const struct upstream_words *o,
                                 enum upstream_option k, bool *value)
{
    const struct config_token *t = o->val[k];
    char shown[CONFIG_CLIP_SIZE];
    if (t == NULL)
        return 0;
    if (strcmp(t->text, "on") != 0 && strcmp(t->text, "off") != 0) {
        config_parser_error(p, t->col, "'%s' must be on or off, got '%s'", option_names[k],
                            config_token_clip(t, shown));
        return -1;
    }
    *value = strcmp(t->text, "on") == 0;
    return 0;
}

static int upstream_parse_tls(struct config_parser *p, const struct config_line *w,
                              const struct upstream_words *o, struct config_upstream *u)
{
    static const char *const required[] = {"ca", "cert", "key"};
    char shown[CONFIG_CLIP_SIZE];
    const struct config_token *t;
    uint64_t pool = UPSTREAM_POOL_DEFAULT;

    for (size_t k = U_CA; k <= U_KEY; k++) {
        if (o->opt[k] == NULL) {
            config_parser_error(p, w->tokens[w->count - 1].end_col,
                                "missing '%s FILE' (a tls upstream needs ca, cert and key)",
                                required[k]);
            return -1;
        }
    }
    t = o->val[U_PIN];
    if (t != NULL && !pin_is_valid(t)) {
        config_parser_error(p, t->col,
                            "invalid pin '%s' (expected sha256// and the 44 base64 characters "
                            "of a SHA-256, as 'geoproxy certs inspect' shows)",
                            config_token_clip(t, shown));
        return -1;
    }
    t = o->val[U_SERVER_NAME];
    if (t != NULL && (t->len >= CONFIG_HOST_MAX || !config_host_is_valid(t->text))) {
        config_parser_error(p, t->col,
                            "invalid server name '%s' (expected a DNS name or an IP address)",
                            config_token_clip(t, shown));
        return -1;
    }
    if (o->val[U_EGRESS] != NULL && upstream_parse_egress(p, o->val[U_EGRESS], u) != 0)
        return -1;
    t = o->val[U_POOL];
    if (t != NULL && (config_parse_number(t->text, t->len, &pool) != CONFIG_NUMBER_OK ||
                      pool > UPSTREAM_POOL_MAX)) {
        config_parser_error(p, t->col, "'pool' must be a number from 0 to %u, got '%s'",
                            (unsigned)UPSTREAM_POOL_MAX, config_token_clip(t, shown));
        return -1;
    }
    u->pool = (unsigned)pool;
    bool mux = true;
    if (upstream_parse_switch(p, o, U_MUX, &mux) != 0 ||
        upstream_parse_switch(p, o, U_OPTIMISTIC, &u->optimistic) != 0)
        return -1;
    u->no_mux = !mux;
    if (u->optimistic && u->no_mux) {
        config_parser_error(p, o->opt[U_OPTIMISTIC]->col,
                            "'optimistic on' needs the mux (it is off here: 'mux off')");
        return -1;
    }
    u->pin = o->val[U_PIN] != NULL ? strdup(o->val[U_PIN]->text) : NULL;
    u->server_name = strdup(o->val[U_SERVER_NAME] != NULL ? o->val[U_SERVER_NAME]->text : u->host);
    if (u->server_name == NULL || (o->val[U_PIN] != NULL && u->pin == NULL)) {
        config_parser_out_of_memory(p, w->tokens[0].col);
        return -1;
    }
    struct config_tls_files f = {.cert = o->val[U_CERT], .key = o->val[U_KEY], .ca = o->val[U_CA]};
    if (config_tls_load(p, false, &f, &u->tls, &u->cert_not_after) != 0)
        return -1;
    u->cert_path = f.cert_path;
    u->key_path = f.key_path;
    u->ca_path = f.ca_path;
    return 0;
}

/* The password is the first line of a private file, without blanks around it. */
static int upstream_load_password(struct config_parser *p, const struct config_token *t,
                                  struct config_upstream *u)
{
    char *path = NULL, *text = NULL;
    size_t len = 0, start = 0, end;
    int ret = -1;

    if (config_read_private_file(p, t, "password file", UPSTREAM_PASSWORD_FILE_MAX, &path, &text,
                                 &len) != 0)
        return -1;
    for (end = 0; end < len && text[end] != '\n'; end++)
        ;
    while (end > 0 && (text[end - 1] == ' ' || text[end - 1] == '\t' || text[end - 1] == '\r'))
        end--;
    while (start < end && (text[start] == ' ' || text[start] == '\t'))
        start++;
    if (start == end || end - start > UPSTREAM_PASSWORD_MAX ||
        memchr(text + start, '\0', end - start) != NULL) {
        config_parser_error(p, t->col,
                            "password file %s must hold a password of 1 to %u bytes "
                            "on its first line",
                            path, (unsigned)UPSTREAM_PASSWORD_MAX);
        goto out;
    }
    u->password = strndup(text + start, end - start);
    if (u->password == NULL) {
        config_parser_out_of_memory(p, t->col);
        goto out;
    }
    ret = 0;
out:
    OPENSSL_cleanse(text, len);
    free(text);
    free(path);
    return ret;
}

static int upstream_parse_proxy(struct config_parser *p, const struct upstream_words *o,
                                struct config_upstream *u)
{
    const struct config_token *user = o->val[U_USER];
    char shown[CONFIG_CLIP_SIZE];

    if (user == NULL && o->opt[U_PASS] == NULL)
        return 0;
    if (user == NULL || o->opt[U_PASS] == NULL) {
        const struct config_token *t = user != NULL ? o->opt[U_USER] : o->opt[U_PASS];

        config_parser_error(p, t->col, "'%s' needs '%s'", t->text,
                            user != NULL ? "password-file FILE" : "user NAME");
        return -1;
    }
    if (user->len == 0 || user->len > UPSTREAM_USER_MAX ||
        (u->kind == UPSTREAM_HTTP && memchr(user->text, ':', user->len) != NULL)) {
        config_parser_error(p, user->col,
                            "invalid user name '%s' (1 to %u bytes; no ':' for an http upstream)",
                            config_token_clip(user, shown), (unsigned)UPSTREAM_USER_MAX);
        return -1;
    }
    u->user = strdup(user->text);
    if (u->user == NULL) {
        config_parser_out_of_memory(p, user->col);
        return -1;
    }
    return upstream_load_password(p, o->val[U_PASS], u);
}

/* "tls|socks5|http HOST:PORT [options]". */
static int upstream_parse_endpoint(struct config_parser *p, const struct config_line *w,
                                   struct config_upstream *u)
{
    struct config_value_error err;
    struct upstream_words o;

    if (w->count < 4) {
        config_parser_error(p, w->tokens[2].end_col,
                            "missing upstream address (expected "
                            "HOST:PORT)");
        return -1;
    }
    if (config_parse_host_port(w->tokens[3].text, w->tokens[3].len, u->host, &u->port, &err) != 0) {
        config_parser_error(p, config_word_col_at(&w->tokens[3], err.offset), "%s", err.message);
        return -1;
    }
    if (upstream_split_options(p, w, &o) != 0 || upstream_check_kind_options(p, u->kind, &o) != 0)
        return -1;
    if (u->kind == UPSTREAM_TLS)
        return upstream_parse_tls(p, w, &o, u);
    return upstream_parse_proxy(p, &o, u);
}

void config_parse_upstream(struct config_parser *p, const struct config_line *w)
{
    static const enum upstream_kind kinds[] = {UPSTREAM_TLS, UPSTREAM_SOCKS5, UPSTREAM_HTTP,
                                               UPSTREAM_GROUP};
    struct config *cfg = p->cfg;
    struct config_upstream u;
    int kind;
    int rc;

    memset(&u, 0, sizeof u);
    if (w->count < 2) {
        config_parser_error(p, w->tokens[0].end_col, "missing upstream name");
        return;
    }
    if (upstream_check_name(p, &w->tokens[1]) != 0)
        return;
    if (w->count < 3) {
        config_parser_error(p, w->tokens[1].end_col,
                            "missing upstream kind after the name (" KINDS_EXPECTED ")");
        return;
    }
    kind = config_word_index(&w->tokens[2], upstream_kinds);
    if (kind < 0) {
        config_error_unknown_word(p, &w->tokens[2], "upstream kind", "", upstream_kinds,
                                  KINDS_EXPECTED);
        return;
    }
    memcpy(u.name, w->tokens[1].text, w->tokens[1].len + 1);
    u.kind = kinds[kind];
    u.index = (unsigned)cfg->n_upstreams;
    if (u.kind == UPSTREAM_GROUP)
        rc = upstream_parse_group(p, w, &u);
    else
        rc = upstream_parse_endpoint(p, w, &u);
    if (rc != 0)
        goto fail;
    u.file = strdup(config_parser_file(p));
    u.line = p->line;
    if (cfg->upstreams == NULL)
        cfg->upstreams = calloc(CONFIG_MAX_UPSTREAMS, sizeof *cfg->upstreams);
    if (u.file == NULL || cfg->upstreams == NULL) {
        config_parser_out_of_memory(p, w->tokens[0].col);
        goto fail;
    }
    cfg->upstreams[cfg->n_upstreams++] = u;
    return;
fail:
    config_upstream_clear(&u);
}

void config_parse_health_check(struct config_parser *p, const struct config_line *w)
{
    static const char *const names[] = {"every", "timeout", NULL};
    static const struct config_option_spec spec = {
        .context = " for 'health-check'",
        .names = names,
        .expected = "expected every or timeout",
    };
    const struct config_token *every_opt, *every, *timeout_opt, *timeout;
    const struct config_option_slot slots[] = {{"every", &every_opt, &every},
                                               {"timeout", &timeout_opt, &timeout}};
    struct config_health h = p->cfg->health;

    if (w->count < 2) {
        config_parser_error(p, w->tokens[0].end_col,
                            "missing 'every DURATION' or 'timeout DURATION' after 'health-check'");
        return;
    }
    if (!config_check_once(p, &p->health_at, w->tokens[0].col, "'health-check'") ||
        config_parse_option_pairs(p, w, 1, &spec, slots, 2) != 0)
        return;
    if (every != NULL &&
        config_parse_duration_word(p, every, "'health-check every'", &h.interval_ms) != 0)
        return;
    if (timeout != NULL &&
        config_parse_duration_word(p, timeout, "'health-check timeout'", &h.timeout_ms) != 0)
        return;
    p->cfg->health = h;
    config_mark_set(p, &p->health_at);
}

void config_parse_external(struct config_parser *p, const struct config_line *w)
{
    struct config_value_error err;
    struct sockaddr_storage addr;

    if (w->count < 2) {
        config_parser_error(p, w->tokens[0].end_col,
                            "missing address after 'external' (e.g. 192.0.2.10)");
        return;
    }
    if (!config_expect_end(p, w, 2, "external") ||
        !config_check_once(p, &p->external_at, w->tokens[0].col, "'external'"))
        return;
    if (config_parse_ip(w->tokens[1].text, w->tokens[1].len, &addr, &err) != 0) {
        config_parser_error(p, w->tokens[1].col, "%s", err.message);
        return;
    }
    p->cfg->external = addr;
    p->cfg->has_external = true;
    config_mark_set(p, &p->external_at);
}
