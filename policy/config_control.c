/* Directives about running geoproxy rather than deciding connections:
 *   admin ADDRESS [token FILE] | admin unix:PATH [token FILE] [mode MODE] | admin off
 *   on-reload keep | reevaluate */
#include "policy/config_parser.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "policy/config_file.h"
#include "policy/config_value.h"

static const char *const on_reload_modes[] = {"keep", "reevaluate", NULL};
static const char *const admin_option_names[] = {"token", "mode", NULL};

void config_parse_on_reload(struct config_parser *p, const struct config_line *w)
{
    if (w->count < 2) {
        config_parser_error(p, w->tokens[0].end_col,
                            "missing mode after 'on-reload' (expected keep or reevaluate)");
        return;
    }
    if (!config_expect_end(p, w, 2, "on-reload") ||
        !config_check_once(p, &p->on_reload_at, w->tokens[0].col, "'on-reload'"))
        return;
    int mode = config_word_index(&w->tokens[1], on_reload_modes);
    if (mode < 0) {
        config_error_unknown_word(p, &w->tokens[1], "on-reload mode", "", on_reload_modes,
                                  "expected keep or reevaluate");
        return;
    }
    p->cfg->on_reload = mode == 0 ? ON_RELOAD_KEEP : ON_RELOAD_REEVALUATE;
    config_mark_set(p, &p->on_reload_at);
}

static void admin_forget_token(struct config_admin *a)
{
    free(a->token_path);
    a->token_path = NULL;
    if (a->token != NULL) {
        OPENSSL_cleanse(a->token, strlen(a->token));
        free(a->token);
        a->token = NULL;
    }
}

int config_read_private_file(struct config_parser *p, const struct config_token *t,
                             const char *what, size_t max, char **path, char **text, size_t *len)
{
    char err[CONFIG_FILE_ERROR_MAX];
    char shown[CONFIG_CLIP_SIZE];
    struct stat st;

    *text = NULL;
    *len = 0;
    *path = config_join_path(p, t, what);
    if (*path == NULL)
        return -1;
    if (config_file_read(*path, max, text, len, &st, err) != 0) {
        config_parser_error(p, t->col, "cannot read %s %s: %s", what, config_token_clip(t, shown),
                            err);
        goto fail;
    }
    if ((st.st_mode & 077) != 0) {
        config_parser_error(p, t->col,
                            "refusing a %s that group or others can access (mode %04o): run "
                            "'chmod 600 %s'",
                            what, (unsigned)(st.st_mode & 07777), *path);
        goto fail;
    }
    if (config_add_source(p, *path, t->col) == 0)
        return 0;
fail:
    if (*text != NULL)
        OPENSSL_cleanse(*text, *len);
    free(*text);
    free(*path);
    *text = NULL;
    *path = NULL;
    *len = 0;
    return -1;
}

/* Reads the token file: private (mode 0600 or stricter), one line of printable ASCII. */
static int admin_load_token(struct config_parser *p, const struct config_token *file)
{
    struct config_admin *a = &p->cfg->admin;
    char *text = NULL;
    size_t len = 0;
    int ret = -1;

    if (config_read_private_file(p, file, "token file", CONFIG_TOKEN_MAX + 2, &a->token_path, &text,
                                 &len) != 0)
        return -1;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    for (size_t i = 0; i < len; i++) {
        if (text[i] <= ' ' || text[i] > '~') {
            config_parser_error(p, file->col,
                                "token file %s must hold one line of printable ASCII without "
                                "blanks",
                                a->token_path);
            goto out;
        }
    }
    if (len < CONFIG_TOKEN_MIN || len > CONFIG_TOKEN_MAX) {
        config_parser_error(p, file->col, "the token in %s must be %u to %u characters long",
                            a->token_path, CONFIG_TOKEN_MIN, CONFIG_TOKEN_MAX);
        goto out;
    }
    a->token = malloc(len + 1);
    if (a->token == NULL) {
        config_parser_out_of_memory(p, file->col);
        goto out;
    }
    memcpy(a->token, text, len);
    a->token[len] = '\0';
    ret = 0;
out:
    OPENSSL_cleanse(text, len);
    free(text);
    return ret;
}

/* "unix:PATH": the socket's path, resolved against the current file's directory like other
 * paths, into out. */
static int admin_parse_unix_path(struct config_parser *p, const struct config_token *addr,
                                 char out[CONFIG_ADMIN_PATH_MAX])
{
    struct config_token word = *addr;
    word.text += 5;
    word.len -= 5;
    word.col = config_word_col_at(addr, 5);
    char *path = config_join_path(p, &word, "admin socket");
    if (path == NULL)
        return -1;
    size_t len = strlen(path);
    int ret = -1;
    if (len >= CONFIG_ADMIN_PATH_MAX) {
        config_parser_error(p, word.col,
                            "admin socket path is too long: %zu bytes once resolved, and a unix "
                            "socket's path can have at most %u",
                            len, CONFIG_ADMIN_PATH_MAX - 1);
    } else {
        memcpy(out, path, len + 1);
        ret = 0;
    }
    free(path);
    return ret;
}

/* "mode 0660": octal permission bits for the socket file. Connecting needs write permission,
 * so the owner keeps read and write. */
static int admin_parse_mode(struct config_parser *p, const struct config_token *t, unsigned *mode)
{
    char shown[CONFIG_CLIP_SIZE];
    unsigned v = 0;
    bool ok = t->len >= 1 && t->len <= 4;
    for (size_t i = 0; ok && i < t->len; i++) {
        ok = t->text[i] >= '0' && t->text[i] <= '7';
        v = v * 8 + (unsigned)(t->text[i] - '0');
    }
    if (!ok || v > 0777) {
        config_parser_error(p, t->col,
                            "'mode' takes octal permission bits such as 0600 or 0660, got '%s'",
                            config_token_clip(t, shown));
        return -1;
    }
    if ((v & 0600) != 0600) {
        config_parser_error(p, t->col,
                            "mode %04o locks the owner out of the admin socket (connecting needs "
                            "read and write: use 0600, or 0660 for a group)",
                            v);
        return -1;
    }
    *mode = v;
    return 0;
}

void config_parse_admin(struct config_parser *p, const struct config_line *w)
{
    struct config_admin *a = &p->cfg->admin;
    struct config_value_error verr;
    const struct config_token *token_opt = NULL, *token = NULL, *mode_opt = NULL, *mode = NULL;
    char unix_path[CONFIG_ADMIN_PATH_MAX] = "";
    unsigned unix_mode = CONFIG_ADMIN_UNIX_MODE;

    if (w->count < 2) {
        config_parser_error(p, w->tokens[0].end_col,
                            "missing address after 'admin' (for example 127.0.0.1:%u, "
                            "unix:/run/geoproxy/admin.sock, or off)",
                            CONFIG_ADMIN_DEFAULT_PORT);
        return;
    }
    if (!config_check_once(p, &p->admin_at, w->tokens[0].col, "'admin'"))
        return;
    admin_forget_token(a); /* an earlier admin line that failed may have left one */
    const struct config_token *addr = &w->tokens[1];
    if (config_word_is(addr, "off")) {
        if (config_expect_end(p, w, 2, "admin off"))
            config_mark_set(p, &p->admin_at);
        return;
    }
    bool on_unix = addr->len >= 5 && memcmp(addr->text, "unix:", 5) == 0;
    if (on_unix) {
        if (admin_parse_unix_path(p, addr, unix_path) != 0)
            return;
    } else if (config_parse_address(addr->text, addr->len, CONFIG_ADMIN_DEFAULT_PORT, &a->addr,
                                    &verr) != 0) {
        config_parser_error(p, config_word_col_at(addr, verr.offset), "%s", verr.message);
        return;
    }
    static const struct config_option_spec spec = {
        .context = " for 'admin'",
        .names = admin_option_names,
        .planned = NULL,
        .expected = "expected token or mode",
    };
    const struct config_option_slot slots[] = {{"token", &token_opt, &token},
                                               {"mode", &mode_opt, &mode}};
    if (config_parse_option_pairs(p, w, 2, &spec, slots, 2) != 0)
        return;
    if (mode != NULL && !on_unix) {
        config_parser_error(p, mode_opt->col,
                            "'mode' is for an admin listener on a unix socket (admin unix:PATH "
                            "mode 0660)");
        return;
    }
    if (mode != NULL && admin_parse_mode(p, mode, &unix_mode) != 0)
        return;
    if (token != NULL && admin_load_token(p, token) != 0)
        return;
    if (token == NULL && mode != NULL && (unix_mode & 0002) != 0) {
        config_parser_error(p, mode->col,
                            "an admin socket that every local user can connect to (mode %04o) "
                            "needs 'token FILE'",
                            unix_mode);
        return;
    }
    if (token == NULL && !on_unix && !config_address_is_loopback(&a->addr)) {
        config_parser_error(p, addr->col,
                            "an admin listener on a non-loopback address needs 'token FILE' "
                            "(anyone who reaches it could reload the policy and read metrics)");
        return;
    }
    memcpy(a->unix_path, unix_path, sizeof a->unix_path);
    a->unix_mode = on_unix ? unix_mode : 0;
    a->enabled = true;
    config_mark_set(p, &p->admin_at);
}
