/* Users files: parsing "name:$pbkdf2-sha256$ITERATIONS$SALT$HASH" lines, and checking passwords
 * against them in constant time. */
#include "policy/userdb.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/config_diag.h"
#include "policy/config_file.h"
#include "policy/config_lexer.h"
#include "policy/config_value.h"

#define USERDB_FILE_MAX_BYTES (16u * 1024u * 1024u)
#define USERDB_SCHEME "$pbkdf2-sha256$"
#define USERDB_ITERATIONS_MIN 1000u
#define USERDB_ITERATIONS_MAX 10000000u
#define USERDB_SALT_LEN 16 /* what userdb_hash_password makes */
#define USERDB_SALT_MIN 8  /* what a users file may hold */
#define USERDB_SALT_MAX 64
#define USERDB_HASH_LEN 32

struct userdb_user {
    char *name;
    size_t name_len;
    unsigned iterations;
    unsigned char salt[USERDB_SALT_MAX];
    size_t salt_len;
    unsigned char hash[USERDB_HASH_LEN];
    unsigned line;
};

struct userdb {
    struct userdb_user *users; /* sorted by name */
    size_t count;
    size_t cap;
    unsigned dummy_iterations; /* what checking an unknown user costs: the first user's count */
};

/* One line's context for messages. */
struct userdb_line {
    const char *path;
    unsigned number;
    struct config_diags *diags;
};

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Writes standard base64 with '=' padding and a NUL; returns the length, or 0 when out is too
 * small. */
static size_t b64_encode(const unsigned char *in, size_t len, char *out, size_t out_len)
{
    size_t need = (len + 2) / 3 * 4;
    size_t i;
    size_t o = 0;

    if (out_len < need + 1) {
        return 0;
    }
    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = b64_alphabet[v >> 6 & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);

        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = i + 1 < len ? b64_alphabet[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

static int b64_value(char c)
{
    const char *at = c != '\0' ? strchr(b64_alphabet, c) : NULL;

    return at != NULL ? (int)(at - b64_alphabet) : -1;
}

/* Strict standard base64: groups of four, '=' only as one or two padding characters at the very
 * end. Returns 0 with *out_len set, or -1 with *bad the offset of the first wrong character (len
 * when the length is wrong or len / 4 * 3 bytes would not fit in out_max). */
static int b64_decode(const char *in, size_t len, unsigned char *out, size_t out_max,
                      size_t *out_len, size_t *bad)
{
    size_t pad = 0;
    size_t i;
    size_t o = 0;
    uint32_t v = 0;

    /* Foreign characters first, so the column points at stray text rather than at padding. */
    for (i = 0; i < len; i++) {
        if (in[i] != '=' && b64_value(in[i]) < 0) {
            *bad = i;
            return -1;
        }
    }
    for (i = 0; i < len; i++) {
        bool is_pad = in[i] == '=' && i + 2 >= len && (i + 1 == len || in[len - 1] == '=');

        if (is_pad) {
            pad++;
        } else if (in[i] == '=' || pad > 0) {
            *bad = i;
            return -1;
        }
    }
    if (len % 4 != 0 || len / 4 * 3 > out_max) { /* whole groups are written, padding too */
        *bad = len;
        return -1;
    }
    for (i = 0; i < len; i++) {
        int d = in[i] == '=' ? 0 : b64_value(in[i]);

        v = v << 6 | (uint32_t)d;
        if (i % 4 == 3) {
            out[o++] = (unsigned char)(v >> 16);
            out[o++] = (unsigned char)(v >> 8);
            out[o++] = (unsigned char)v;
            v = 0;
        }
    }
    *out_len = o - pad;
    return 0;
}

static int userdb_error(const struct userdb_line *at, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int userdb_error(const struct userdb_line *at, unsigned col, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    config_diag_vadd(at->diags, CONFIG_ERROR, at->path, at->number, col, fmt, ap);
    va_end(ap);
    return -1;
}

static int userdb_compare(const char *a, size_t a_len, const char *b, size_t b_len)
{
    int c = memcmp(a, b, a_len < b_len ? a_len : b_len);

    if (c != 0) {
        return c;
    }
    return a_len < b_len ? -1 : a_len > b_len;
}

static int userdb_compare_users(const void *a, const void *b)
{
    const struct userdb_user *x = a;
    const struct userdb_user *y = b;
    int c = userdb_compare(x->name, x->name_len, y->name, y->name_len);

    if (c != 0) {
        return c;
    }
    return x->line < y->line ? -1 : x->line > y->line;
}

static const struct userdb_user *userdb_find(const struct userdb *db, const char *name, size_t len)
{
    size_t lo = 0;
    size_t hi = db->count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = userdb_compare(name, len, db->users[mid].name, db->users[mid].name_len);

        if (c == 0) {
            return &db->users[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

/* Checks the bytes of a line: no NUL, no control character but tab. */
static int userdb_check_bytes(const struct userdb_line *at, const char *line, size_t len)
{
    size_t i;

    if (len > CONFIG_LINE_MAX) {
        return userdb_error(at, CONFIG_LINE_MAX + 1, "line is longer than %u bytes",
                            (unsigned)CONFIG_LINE_MAX);
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];

        if (c == 0) {
            return userdb_error(at, (unsigned)i + 1, "NUL byte is not allowed");
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return userdb_error(at, (unsigned)i + 1, "control character 0x%02x is not allowed",
                                (unsigned)c);
        }
    }
    return 0;
}

static int userdb_parse_name(const struct userdb_line *at, const char *name, size_t len,
                             struct userdb_user *u)
{
    size_t i;

    if (len == 0) {
        return userdb_error(at, 1, "empty user name");
    }
    if (len > USERDB_NAME_MAX) {
        return userdb_error(at, 1, "user name is longer than %u bytes", (unsigned)USERDB_NAME_MAX);
    }
    for (i = 0; i < len; i++) {
        if (name[i] == ' ' || name[i] == '\t') {
            return userdb_error(at, (unsigned)i + 1, "user names cannot contain blanks");
        }
    }
    u->name = malloc(len + 1);
    if (u->name == NULL) {
        return userdb_error(at, 1, "out of memory");
    }
    memcpy(u->name, name, len);
    u->name[len] = '\0';
    u->name_len = len;
    return 0;
}

/* Parses "$pbkdf2-sha256$ITERATIONS$SALT$HASH"; 'col' is the column of its first byte. */
static int userdb_parse_hash(const struct userdb_line *at, const char *s, size_t len, unsigned col,
                             struct userdb_user *u)
{
    char shown[CONFIG_CLIP_SIZE];
    size_t scheme_len = strlen(USERDB_SCHEME);
    const char *field = s + scheme_len;
    const char *end = s + len;
    const char *dollar;
    size_t field_len;
    unsigned char decoded[CONFIG_LINE_MAX / 4 * 3];
    size_t decoded_len;
    size_t bad;
    uint64_t iterations;
    enum config_number_result rc;

    if (len < scheme_len || memcmp(s, USERDB_SCHEME, scheme_len) != 0) {
        return userdb_error(at, col,
                            "unsupported password hash (expected " USERDB_SCHEME
                            "ITERATIONS$SALT$HASH, as printed by 'geoproxy passwd')");
    }
    dollar = memchr(field, '$', (size_t)(end - field));
    if (dollar == NULL) {
        return userdb_error(at, col + (unsigned)len, "missing '$' after the iteration count");
    }
    field_len = (size_t)(dollar - field);
    rc = config_parse_number(field, field_len, &iterations);
    if (rc == CONFIG_NUMBER_INVALID) {
        return userdb_error(at, col + (unsigned)scheme_len, "invalid iteration count '%s'",
                            config_clip(field, field_len, shown));
    }
    if (rc == CONFIG_NUMBER_TOO_LARGE || iterations < USERDB_ITERATIONS_MIN ||
        iterations > USERDB_ITERATIONS_MAX) {
        return userdb_error(
            at, col + (unsigned)scheme_len, "iteration count must be from %u to %u, got '%s'",
            USERDB_ITERATIONS_MIN, USERDB_ITERATIONS_MAX, config_clip(field, field_len, shown));
    }
    u->iterations = (unsigned)iterations;

    field = dollar + 1;
    dollar = memchr(field, '$', (size_t)(end - field));
    if (dollar == NULL) {
        return userdb_error(at, col + (unsigned)len, "missing '$' after the salt");
    }
    field_len = (size_t)(dollar - field);
    if (b64_decode(field, field_len, decoded, sizeof decoded, &decoded_len, &bad) != 0) {
        return userdb_error(at, col + (unsigned)(field - s) + (unsigned)bad,
                            "invalid base64 in the salt");
    }
    if (decoded_len < USERDB_SALT_MIN || decoded_len > USERDB_SALT_MAX) {
        return userdb_error(at, col + (unsigned)(field - s), "salt must be %u to %u bytes, got %zu",
                            USERDB_SALT_MIN, USERDB_SALT_MAX, decoded_len);
    }
    memcpy(u->salt, decoded, decoded_len);
    u->salt_len = decoded_len;

    field = dollar + 1;
    field_len = (size_t)(end - field);
    if (b64_decode(field, field_len, decoded, sizeof decoded, &decoded_len, &bad) != 0) {
        return userdb_error(at, col + (unsigned)(field - s) + (unsigned)bad,
                            "invalid base64 in the hash");
    }
    if (decoded_len != USERDB_HASH_LEN) {
        return userdb_error(at, col + (unsigned)(field - s), "hash must be %u bytes, got %zu",
                            USERDB_HASH_LEN, decoded_len);
    }
    memcpy(u->hash, decoded, decoded_len);
    return 0;
}

/* Parses one line into u. Returns 1 for a blank or comment line, 0 for a user, -1 on error. */
static int userdb_parse_line(const struct userdb_line *at, const char *line, size_t len,
                             struct userdb_user *u)
{
    const char *colon;
    size_t first = 0;

    memset(u, 0, sizeof *u);
    u->line = at->number;
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t')) {
        len--;
    }
    while (first < len && (line[first] == ' ' || line[first] == '\t')) {
        first++;
    }
    if (first == len || line[first] == '#') {
        return 1;
    }
    if (userdb_check_bytes(at, line, len) != 0) {
        return -1;
    }
    colon = memchr(line, ':', len);
    if (colon == NULL) {
        return userdb_error(at, (unsigned)len + 1,
                            "missing ':' after the user name (expected NAME:HASH)");
    }
    if (userdb_parse_name(at, line, (size_t)(colon - line), u) != 0) {
        return -1;
    }
    if (userdb_parse_hash(at, colon + 1, len - (size_t)(colon - line) - 1,
                          (unsigned)(colon - line) + 2, u) != 0) {
        free(u->name);
        u->name = NULL;
        return -1;
    }
    return 0;
}

static int userdb_add(struct userdb *db, const struct userdb_user *u)
{
    if (db->count == db->cap) {
        size_t cap = db->cap == 0 ? 16 : db->cap * 2;
        struct userdb_user *grown = realloc(db->users, cap * sizeof *grown);

        if (grown == NULL) {
            return -1;
        }
        db->users = grown;
        db->cap = cap;
    }
    db->users[db->count++] = *u;
    return 0;
}

/* Sorts by name and reports every name given twice. */
static int userdb_check_duplicates(struct userdb *db, const char *path, struct config_diags *diags)
{
    char shown[CONFIG_CLIP_SIZE];
    int ret = 0;
    size_t i;

    if (db->count > 1) {
        qsort(db->users, db->count, sizeof db->users[0], userdb_compare_users);
    }
    for (i = 1; i < db->count; i++) {
        const struct userdb_user *prev = &db->users[i - 1];
        const struct userdb_user *u = &db->users[i];

        if (userdb_compare(prev->name, prev->name_len, u->name, u->name_len) == 0) {
            const struct userdb_line at = {path, u->line, diags};
            size_t first = i - 1;

            while (first > 0 &&
                   userdb_compare(db->users[first - 1].name, db->users[first - 1].name_len, u->name,
                                  u->name_len) == 0) {
                first--;
            }
            ret = userdb_error(&at, 1, "duplicate user '%s' (first at line %u)",
                               config_clip(u->name, u->name_len, shown), db->users[first].line);
        }
    }
    return ret;
}

/* Parses every line; returns 0 when all were good. */
static int userdb_parse_text(struct userdb *db, const char *path, const char *text, size_t len,
                             struct config_diags *diags)
{
    struct userdb_line at = {path, 0, diags};
    struct userdb_user u;
    const char *line;
    size_t line_len;
    size_t pos = 0;
    int ret = 0;

    while (config_lex_next_line(text, len, &pos, &line, &line_len)) {
        int rc;

        at.number++;
        rc = userdb_parse_line(&at, line, line_len, &u);
        if (rc < 0) {
            ret = -1;
            continue;
        }
        if (rc > 0) {
            continue;
        }
        if (db->count == 0) {
            db->dummy_iterations = u.iterations;
        }
        if (userdb_add(db, &u) != 0) {
            free(u.name);
            return userdb_error(&at, 1, "out of memory");
        }
    }
    return ret;
}

int userdb_load(const char *path, struct userdb **out, struct config_diags *diags)
{
    char err[CONFIG_FILE_ERROR_MAX];
    struct userdb *db = NULL;
    char *text = NULL;
    size_t len;
    struct stat st;
    int ret = -1;

    *out = NULL;
    if (config_file_read(path, USERDB_FILE_MAX_BYTES, &text, &len, &st, err) != 0) {
        config_diag_add(diags, CONFIG_ERROR, path, 0, 0, "%s", err);
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        config_diag_add(diags, CONFIG_ERROR, path, 0, 0,
                        "refusing a users file that group or others can access (mode %04o): "
                        "run 'chmod 600 %s'",
                        (unsigned)(st.st_mode & 07777), path);
        goto out;
    }
    db = calloc(1, sizeof *db);
    if (db == NULL) {
        config_diag_add(diags, CONFIG_ERROR, path, 0, 0, "out of memory");
        goto out;
    }
    db->dummy_iterations = USERDB_DEFAULT_ITERATIONS;
    if (userdb_parse_text(db, path, text, len, diags) != 0 ||
        userdb_check_duplicates(db, path, diags) != 0) {
        goto out;
    }
    if (db->count == 0) {
        config_diag_add(diags, CONFIG_WARNING, path, 0, 0, "no users: every login will fail");
    }
    *out = db;
    db = NULL;
    ret = 0;
out:
    userdb_free(db);
    free(text);
    return ret;
}

void userdb_free(struct userdb *db)
{
    size_t i;

    if (db == NULL) {
        return;
    }
    for (i = 0; i < db->count; i++) {
        free(db->users[i].name);
    }
    OPENSSL_cleanse(db->users, db->count * sizeof db->users[0]);
    free(db->users);
    free(db);
}

size_t userdb_count(const struct userdb *db)
{
    return db != NULL ? db->count : 0;
}

static bool userdb_bytes_ok(const char *s, size_t len, size_t min, size_t max)
{
    if (len < min || len > max) {
        return false;
    }
    return len == 0 || (s != NULL && memchr(s, '\0', len) == NULL);
}

bool userdb_verify(const struct userdb *db, const char *user, size_t user_len, const char *password,
                   size_t password_len)
{
    static const unsigned char dummy_salt[USERDB_SALT_LEN];
    static const unsigned char dummy_hash[USERDB_HASH_LEN];
    const struct userdb_user *u = NULL;
    unsigned char computed[USERDB_HASH_LEN];
    const unsigned char *salt = dummy_salt;
    const unsigned char *expected = dummy_hash;
    size_t salt_len = sizeof dummy_salt;
    unsigned iterations;
    bool input_ok;
    bool match;
    int rc;

    if (db == NULL) {
        return false;
    }
    input_ok = userdb_bytes_ok(user, user_len, 1, USERDB_NAME_MAX) &&
               userdb_bytes_ok(password, password_len, 0, USERDB_PASSWORD_MAX);
    if (input_ok) {
        u = userdb_find(db, user, user_len);
    }
    iterations = db->dummy_iterations;
    if (u != NULL) {
        salt = u->salt;
        salt_len = u->salt_len;
        expected = u->hash;
        iterations = u->iterations;
    }
    /* Always one PBKDF2 run, so an unknown user or a refused password costs what a wrong
     * password costs. */
    if (password == NULL || password_len > USERDB_PASSWORD_MAX) {
        password = "";
        password_len = 0;
    }
    rc = PKCS5_PBKDF2_HMAC(password, (int)password_len, salt, (int)salt_len, (int)iterations,
                           EVP_sha256(), (int)sizeof computed, computed);
    match = rc == 1 && CRYPTO_memcmp(computed, expected, sizeof computed) == 0;
    OPENSSL_cleanse(computed, sizeof computed);
    return match && input_ok && u != NULL;
}

int userdb_hash_password(const char *password, size_t password_len, unsigned iterations, char *out,
                         size_t out_len)
{
    unsigned char salt[USERDB_SALT_LEN];
    unsigned char hash[USERDB_HASH_LEN];
    char salt_b64[USERDB_SALT_LEN * 2];
    char hash_b64[USERDB_HASH_LEN * 2];
    int ret = -1;
    int n;

    if (out == NULL || out_len == 0) {
        return -1;
    }
    out[0] = '\0';
    if (!userdb_bytes_ok(password, password_len, 0, USERDB_PASSWORD_MAX) ||
        iterations < USERDB_ITERATIONS_MIN || iterations > USERDB_ITERATIONS_MAX) {
        goto out;
    }
    if (password == NULL) {
        password = "";
    }
    if (RAND_bytes(salt, sizeof salt) != 1 ||
        PKCS5_PBKDF2_HMAC(password, (int)password_len, salt, (int)sizeof salt, (int)iterations,
                          EVP_sha256(), (int)sizeof hash, hash) != 1) {
        goto out;
    }
    if (b64_encode(salt, sizeof salt, salt_b64, sizeof salt_b64) == 0 ||
        b64_encode(hash, sizeof hash, hash_b64, sizeof hash_b64) == 0) {
        goto out;
    }
    n = snprintf(out, out_len, USERDB_SCHEME "%u$%s$%s", iterations, salt_b64, hash_b64);
    if (n < 0 || (size_t)n >= out_len) {
        out[0] = '\0';
        goto out;
    }
    ret = 0;
out:
    OPENSSL_cleanse(hash, sizeof hash);
    return ret;
}
