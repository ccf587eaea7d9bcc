/* The listen directive: "listen KIND ADDRESS:PORT [name NAME] [users FILE]", and for the exit
 * side of tunnels "listen tunnel ADDRESS:PORT cert FILE key FILE ca FILE [name NAME]". */
#include "policy/config_parser.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "policy/config_file.h"
#include "policy/config_value.h"
#include "policy/userdb.h"

#define KINDS_EXPECTED "expected mixed, socks5, socks4, http or tunnel"

static const char *const kind_names[] = {"mixed", "socks5", "socks4", "http", "tunnel", NULL};
static const char *const listen_option_names[] = {"name", "users", "cert", "key", "ca", NULL};

/* The words of a listen line after kind and address, checked for form only. */
struct listen_options {
    const struct config_token *name_opt;
    const struct config_token *name;
    const struct config_token *users_opt;
    const struct config_token *users;
    const struct config_token *cert_opt, *cert;
    const struct config_token *key_opt, *key;
    const struct config_token *ca_opt, *ca;
};

static int listen_parse_options(struct config_parser *p, const struct config_line *w,
                                struct listen_options *o)
{
    static const struct config_option_spec spec = {
        .context = " for 'listen'",
        .names = listen_option_names,
        .expected = "expected name, users, cert, key or ca",
    };
    const struct config_option_slot slots[] = {
        {"name", &o->name_opt, &o->name}, {"users", &o->users_opt, &o->users},
        {"cert", &o->cert_opt, &o->cert}, {"key", &o->key_opt, &o->key},
        {"ca", &o->ca_opt, &o->ca},
    };
    return config_parse_option_pairs(p, w, 3, &spec, slots, sizeof(slots) / sizeof(slots[0]));
}

/* Refuses a listener whose name or address another listener already has. */
static int listen_check_unique(struct config_parser *p, const struct config_listener *l,
                               const struct config_token *name_word,
                               const struct config_token *addr_word)
{
    const struct config *cfg = p->cfg;
    char a[64];
    char b[64];
    size_t i;

    for (i = 0; i < cfg->n_listeners; i++) {
        const struct config_listener *other = &cfg->listeners[i];
        const struct config_origin *at = &p->listener_at[i];

        if (config_address_equal(&other->addr, &l->addr)) {
            config_parser_error(
                p, addr_word->col, "listener address %s is already used by listener '%s' (%s:%u)",
                config_format_addr(&l->addr, a, sizeof a), other->name, at->file, at->line);
            return -1;
        }
        if (config_address_overlaps(&other->addr, &l->addr)) {
            config_parser_error(
                p, addr_word->col, "listener address %s overlaps %s of listener '%s' (%s:%u)",
                config_format_addr(&l->addr, a, sizeof a),
                config_format_addr(&other->addr, b, sizeof b), other->name, at->file, at->line);
            return -1;
        }
    }
    for (i = 0; i < cfg->n_listeners; i++) {
        const struct config_origin *at = &p->listener_at[i];

        if (strcmp(cfg->listeners[i].name, l->name) == 0) {
            config_parser_error(p, name_word->col,
                                "duplicate listener name '%s' (first defined at %s:%u)", l->name,
                                at->file, at->line);
            return -1;
        }
    }
    return 0;
}

/* Loads the users file into l; errors go to the file's own lines and to the FILE word. */
static int listen_load_users(struct config_parser *p, struct config_listener *l,
                             const struct config_token *users)
{
    char shown[CONFIG_CLIP_SIZE];

    l->users_path = config_join_path(p, users, "users file");
    if (l->users_path == NULL) {
        return -1;
    }
    if (userdb_load(l->users_path, &l->users, p->diags) != 0) {
        config_parser_error(p, users->col, "cannot load users file '%s'",
                            config_token_clip(users, shown));
        free(l->users_path);
        l->users_path = NULL;
        return -1;
    }
    if (config_add_source(p, l->users_path, users->col) != 0) {
        userdb_free(l->users);
        free(l->users_path);
        l->users = NULL;
        l->users_path = NULL;
        return -1;
    }
    return 0;
}

/* cert, key and ca: required on a tunnel listener, refused on the others; users refused on a
 * tunnel listener. */
static int listen_check_tls_options(struct config_parser *p, const struct config_line *w,
                                    const struct config_listener *l, const struct listen_options *o)
{
    const struct config_token *opts[] = {o->cert_opt, o->key_opt, o->ca_opt};
    static const char *const names[] = {"cert", "key", "ca"};

    if (l->kind != LISTENER_TUNNEL) {
        for (size_t i = 0; i < 3; i++) {
            if (opts[i] != NULL) {
                config_parser_error(p, opts[i]->col,
                                    "'%s' is only allowed on tunnel listeners (listen tunnel "
                                    "ADDRESS:PORT cert FILE key FILE ca FILE)",
                                    names[i]);
                return -1;
            }
        }
        return 0;
    }
    if (o->users_opt != NULL) {
        config_parser_error(p, o->users_opt->col,
                            "tunnel listeners cannot have users: entries authenticate with their "
                            "client certificates");
        return -1;
    }
    for (size_t i = 0; i < 3; i++) {
        if (opts[i] == NULL) {
            config_parser_error(p, w->tokens[w->count - 1].end_col,
                                "missing '%s FILE' (a tunnel listener needs cert, key and ca)",
                                names[i]);
            return -1;
        }
    }
    return 0;
}

static int listen_load_tls(struct config_parser *p, struct config_listener *l,
                           const struct listen_options *o)
{
    struct config_tls_files f = {.cert = o->cert, .key = o->key, .ca = o->ca};

    if (config_tls_load(p, true, &f, &l->tls, &l->cert_not_after) != 0)
        return -1;
    l->cert_path = f.cert_path;
    l->key_path = f.key_path;
    l->ca_path = f.ca_path;
    return 0;
}

void config_parse_listen(struct config_parser *p, const struct config_line *w)
{
    struct config_listener l;
    struct listen_options o;
    struct config_value_error err;
    char shown[CONFIG_CLIP_SIZE];
    char addr[64];
    int kind;

    p->listen_seen++;
    memset(&l, 0, sizeof l);
    if (w->count < 2) {
        config_parser_error(p, w->tokens[0].end_col, "missing listener kind (" KINDS_EXPECTED ")");
        return;
    }
    kind = config_word_index(&w->tokens[1], kind_names);
    if (kind < 0) {
        config_parser_error(p, w->tokens[1].col, "unknown listener kind '%s' (" KINDS_EXPECTED ")",
                            config_token_clip(&w->tokens[1], shown));
        return;
    }
    l.kind = (enum listener_kind)kind;
    if (w->count < 3) {
        config_parser_error(p, w->tokens[1].end_col,
                            "missing listen address (expected ADDRESS:PORT)");
        return;
    }
    if (config_parse_address(w->tokens[2].text, w->tokens[2].len, 0, &l.addr, &err) != 0) {
        config_parser_error(p, config_word_col_at(&w->tokens[2], err.offset), "%s", err.message);
        return;
    }
    if (listen_parse_options(p, w, &o) != 0) {
        return;
    }
    if (o.name != NULL && !config_name_is_valid(o.name->text, o.name->len)) {
        config_parser_error(p, o.name->col, "invalid listener name '%s' (" CONFIG_NAME_RULES ")",
                            config_token_clip(o.name, shown));
        return;
    }
    if (listen_check_tls_options(p, w, &l, &o) != 0) {
        return;
    }
    if (o.users != NULL && l.kind == LISTENER_SOCKS4) {
        config_parser_error(p, o.users_opt->col,
                            "socks4 listeners cannot have users: SOCKS4 has no passwords "
                            "(use socks5 or mixed)");
        return;
    }
    if (o.name != NULL) {
        memcpy(l.name, o.name->text, o.name->len + 1);
    } else {
        snprintf(l.name, sizeof l.name, "%s-%s", kind_names[kind],
                 config_format_addr(&l.addr, addr, sizeof addr));
    }
    if (p->cfg->n_listeners == CONFIG_MAX_LISTENERS) {
        config_parser_error(p, w->tokens[0].col, "too many listeners (at most %u)",
                            (unsigned)CONFIG_MAX_LISTENERS);
        return;
    }
    if (listen_check_unique(p, &l, o.name != NULL ? o.name : &w->tokens[2], &w->tokens[2]) != 0) {
        return;
    }
    /* A tunnel listener authenticates its clients by their certificates (mutual TLS). */
    if (o.users == NULL && l.kind != LISTENER_TUNNEL && !config_address_is_loopback(&l.addr)) {
        config_parser_error(p, w->tokens[2].col,
                            "a listener on %s without 'users FILE' is an open proxy for anyone "
                            "who can reach it: add 'users FILE' or listen on a loopback address",
                            config_format_addr(&l.addr, addr, sizeof addr));
        return;
    }
    if (o.users != NULL && listen_load_users(p, &l, o.users) != 0) {
        return;
    }
    if (l.kind == LISTENER_TUNNEL && listen_load_tls(p, &l, &o) != 0) {
        return;
    }
    config_mark_set(p, &p->listener_at[p->cfg->n_listeners]);
    p->cfg->listeners[p->cfg->n_listeners++] = l;
}
