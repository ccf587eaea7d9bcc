/* The parser's state while a configuration is read, and the helpers every directive parser uses
 * to look at words and report errors at them. Internal to policy/: config.c reads files and
 * dispatches lines; config_settings.c, config_listen.c and config_rule.c parse directives. */
#ifndef GEOPROXY_POLICY_CONFIG_PARSER_H
#define GEOPROXY_POLICY_CONFIG_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy/config.h"
#include "policy/config_diag.h"
#include "policy/config_lexer.h"
#include "policy/key_map.h"

#define CONFIG_NOT_YET "is not available in this version yet (see docs/CONFIG.md)"
#define CONFIG_NAME_RULES                                                                          \
    "use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"

enum config_timeout_kind {
    CONFIG_TIMEOUT_HANDSHAKE,
    CONFIG_TIMEOUT_CONNECT,
    CONFIG_TIMEOUT_DNS,
    CONFIG_TIMEOUT_IDLE,
    CONFIG_TIMEOUT_DRAIN,
    CONFIG_TIMEOUT_COUNT
};

enum config_limit_kind {
    CONFIG_LIMIT_CONNECTIONS,
    CONFIG_LIMIT_HEADER_BYTES,
    CONFIG_LIMIT_DNS_CACHE,
    CONFIG_LIMIT_PER_CLIENT_CONNECTIONS,
    CONFIG_LIMIT_PER_CLIENT_RATE,
    CONFIG_LIMIT_COUNT
};

/* Where a setting was made, for "already set at FILE:LINE" messages. */
struct config_origin {
    const char *file; /* owned by the parser's string list; NULL: not set yet */
    unsigned line;
};

/* One file being read; frames[0] is the top file. */
struct config_frame {
    const char *name; /* the path as shown in messages */
    const char *dir;  /* where relative paths in this file resolve */
    dev_t dev;
    ino_t ino;
    bool has_id; /* false for text given in memory */
};

struct config_parser {
    struct config *cfg;
    struct config_diags *diags;
    struct config_frame frames[CONFIG_INCLUDE_DEPTH_MAX + 1];
    size_t depth;
    unsigned line; /* current line of frames[depth - 1] */
    size_t files_read;
    char **strings; /* file names and directories kept until the parse ends */
    size_t n_strings;
    size_t cap_strings;
    bool out_of_memory;
    size_t listen_seen; /* listen lines, good or bad */
    size_t rules_cap;
    struct config_origin workers_at;
    struct config_origin resolver_at;
    struct config_origin timeout_at[CONFIG_TIMEOUT_COUNT];
    struct config_origin limit_at[CONFIG_LIMIT_COUNT];
    struct config_origin listener_at[CONFIG_MAX_LISTENERS];
    struct config_origin geoip_at[2]; /* "geoip country", "geoip asn" */
    bool geoip_country_none;          /* "geoip country none" */
    struct config_origin region_at[CONFIG_MAX_REGIONS];
    size_t sources_cap;
    size_t match_values;       /* values in every rule's matchers so far */
    struct key_map rule_names; /* rule name -> its index (number) */
    struct config_origin admin_at;
    struct config_origin on_reload_at;
    struct config_origin health_at;
    struct config_origin external_at;
    struct config_origin user_at;
    struct config_origin group_at;
    struct config_line words;
};

/* The file being read, as shown in messages. */
const char *config_parser_file(const struct config_parser *p);

/* The directory relative paths in the current file resolve against. */
const char *config_parser_dir(const struct config_parser *p);

/* Adds an error at 'col' of the current line of the current file. */
void config_parser_error(struct config_parser *p, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reports running out of memory once and stops the parse. */
void config_parser_out_of_memory(struct config_parser *p, unsigned col);

/* Records that the configuration was read from 'path' (a copy is kept in cfg->sources, once per
 * distinct path). Returns 0, or -1 after reporting out of memory at 'col'. */
int config_add_source(struct config_parser *p, const char *path, unsigned col);

/* The path in word t resolved against the current file's directory, as a new string. NULL after
 * reporting at t: an empty word ("empty WHAT path"), a path too long ("WHAT path is too long"),
 * or out of memory. 'what' names the file: "users file". */
char *config_join_path(struct config_parser *p, const struct config_token *t, const char *what);

/* Reads the file named by word t, which must be private to its owner (no bit of 077 in its
 * mode), whole: at most max bytes. 'what' names it in messages ("token file"). Records it in
 * cfg->sources. Returns 0 with *path (resolved), *text and *len, which the caller cleanses and
 * frees; or -1 after reporting at t. */
int config_read_private_file(struct config_parser *p, const struct config_token *t,
                             const char *what, size_t max, char **path, char **text, size_t *len);

/* A duration word for 'what' ("'timeout dns'"): 1ms to 24h. Returns 0, or -1 after reporting. */
int config_parse_duration_word(struct config_parser *p, const struct config_token *t,
                               const char *what, uint32_t *ms);

/* The TLS files of a tunnel listener or a tls upstream: the words that name them and, once
 * loaded, their resolved paths (owned by the caller). */
struct config_tls_files {
    const struct config_token *cert, *key, *ca;
    char *cert_path, *key_path, *ca_path;
};

/* Resolves the three paths, builds the server (tunnel listener) or client (tls upstream) context
 * with certs/tls_context.h at the current time, and records the files in cfg->sources. A
 * problem is reported at the word of the file at fault. Returns 0 with *ctx and *not_after, or
 * -1 with every path freed and NULL. */
int config_tls_load(struct config_parser *p, bool server, struct config_tls_files *f,
                    struct ssl_ctx_st **ctx, int64_t *not_after);

/* The upstream named name, or NULL. */
const struct config_upstream *config_upstream_find(const struct config *cfg, const char *name);

/* The upstream named by word t; NULL after reporting "unknown upstream 'X'" at t, with a "did
 * you mean" when one is close. Upstreams must be defined before the lines that name them. */
const struct config_upstream *config_upstream_lookup(struct config_parser *p,
                                                     const struct config_token *t);

/* Frees what an upstream owns (its strings, its TLS context); u itself is not freed. */
void config_upstream_clear(struct config_upstream *u);

/* Takes ownership of s and keeps it until the parse ends. NULL when s is NULL or out of memory. */
const char *config_parser_keep(struct config_parser *p, char *s);

/* The word made safe for quoting in a message (see config_clip). */
const char *config_token_clip(const struct config_token *t, char buf[CONFIG_CLIP_SIZE]);

bool config_word_is(const struct config_token *t, const char *s);

/* Index of the word in a NULL-terminated list, or -1. */
int config_word_index(const struct config_token *t, const char *const *list);

/* Column of byte 'offset' inside a word; inside quotes only the word's start is known. */
unsigned config_word_col_at(const struct config_token *t, size_t offset);

/* False, with an error at the first extra word, when the line has more than n words. */
bool config_expect_end(struct config_parser *p, const struct config_line *w, size_t n,
                       const char *directive);

/* False, with an error, when the setting was already made; 'what' names it: "'timeout dns'". */
bool config_check_once(struct config_parser *p, const struct config_origin *at, unsigned col,
                       const char *what);

/* Records that a setting is made on the current line. */
void config_mark_set(struct config_parser *p, struct config_origin *at);

/* "unknown WHAT 'word'CONTEXT (did you mean 'x'?)", or with 'expected' when nothing is close. */
void config_error_unknown_word(struct config_parser *p, const struct config_token *t,
                               const char *what, const char *context, const char *const *candidates,
                               const char *expected);

/* One "NAME VALUE" option of a directive: where its option word and its value go. */
struct config_option_slot {
    const char *name;
    const struct config_token **option;
    const struct config_token **value;
};

/* What a directive accepts after its fixed words, for messages. */
struct config_option_spec {
    const char *context;        /* " for 'listen'" */
    const char *const *names;   /* every option word, for "did you mean", NULL-terminated */
    const char *const *planned; /* words refused as not available yet, or NULL */
    const char *expected;       /* "expected name or users" */
};

/* Reads "NAME VALUE" pairs from word 'first' to the end of the line into the slots (cleared
 * first). A planned word, an unknown word, an option given twice and an option without a value
 * are errors. Returns 0, or -1 after reporting the error. */
int config_parse_option_pairs(struct config_parser *p, const struct config_line *w, size_t first,
                              const struct config_option_spec *spec,
                              const struct config_option_slot *slots, size_t n_slots);

/* Directive parsers: each gets one line whose first word is its directive, reports at most one
 * error, and changes the configuration only when the whole line is good. */
void config_parse_workers(struct config_parser *p, const struct config_line *w);
void config_parse_timeout(struct config_parser *p, const struct config_line *w);
void config_parse_limit(struct config_parser *p, const struct config_line *w);
void config_parse_user(struct config_parser *p, const struct config_line *w);
void config_parse_group(struct config_parser *p, const struct config_line *w);
void config_parse_resolver(struct config_parser *p, const struct config_line *w);
void config_parse_listen(struct config_parser *p, const struct config_line *w);
void config_parse_rule(struct config_parser *p, const struct config_line *w);
void config_parse_admin(struct config_parser *p, const struct config_line *w);
void config_parse_on_reload(struct config_parser *p, const struct config_line *w);
void config_parse_expect(struct config_parser *p, const struct config_line *w);
void config_parse_upstream(struct config_parser *p, const struct config_line *w);
void config_parse_health_check(struct config_parser *p, const struct config_line *w);
void config_parse_external(struct config_parser *p, const struct config_line *w);

/* Runs every expect line against the finished, compiled configuration; a failed one is an
 * error at its line. */
void config_check_expectations(struct config_parser *p);
void config_parse_geoip(struct config_parser *p, const struct config_line *w);
void config_parse_region(struct config_parser *p, const struct config_line *w);

/* The region named name (built-in or defined so far), compared case-insensitively, or NULL. */
const struct region *config_region_find(const struct config *cfg, const char *name);

/* The name of the region closest to word (case-insensitively, within two edits), or NULL. */
const char *config_region_suggest(const struct config *cfg, const char *word, size_t len);

struct rule_match; /* policy/rule_match.h */

enum config_matcher {
    CONFIG_MATCH_FROM,
    CONFIG_MATCH_TO,
    CONFIG_MATCH_USER,
    CONFIG_MATCH_LISTENER,
};

/* "from", "to", "user", "listener". */
const char *config_matcher_name(enum config_matcher which);

/* Adds the n value words of one matcher of a rule to m (config_rule_match.c). Returns 0, or -1
 * after reporting the first bad value at its column. */
int config_rule_match_parse(struct config_parser *p, enum config_matcher which,
                            const struct config_token *values, size_t n, struct rule_match *m);

/* Warnings about the rules of a configuration without errors (config_check.c). */
void config_check_rules(struct config_parser *p);

/* After every file is read: opens the default country database when no "geoip country" line
 * named one (config_geoip.c). Errors are reported against the top file. */
void config_geoip_finish(struct config_parser *p);

#endif
