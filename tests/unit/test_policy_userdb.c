/* Unit tests for users files (policy/userdb.c). Iterations stay at the minimum so they run fast. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/userdb.h"

#define ITER 1000
#define SALT0 "AAAAAAAAAAAAAAAAAAAAAA=="                     /* 16 zero bytes */
#define HASH0 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" /* 32 zero bytes */
#define H "$pbkdf2-sha256$1000$" SALT0 "$" HASH0             /* well formed, matches nothing */

struct fixture {
    char *dir;
    char *path; /* dir/users */
};

static int tmpdir_remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    f->dir = strdup("/tmp/geoproxy-test-userdb-XXXXXX");
    assert_non_null(f->dir);
    assert_non_null(mkdtemp(f->dir));
    f->path = malloc(strlen(f->dir) + sizeof "/users");
    assert_non_null(f->path);
    snprintf(f->path, strlen(f->dir) + sizeof "/users", "%s/users", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    nftw(f->dir, tmpdir_remove_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f->path);
    free(f->dir);
    free(f);
    return 0;
}

static void write_users(const struct fixture *f, const char *data, size_t len, mode_t mode)
{
    int fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void write_users_text(const struct fixture *f, const char *text)
{
    write_users(f, text, strlen(text), 0600);
}

/* Expected diagnostics are written without the file's path: each line starts right after it. */
static void assert_diags_at(const struct config_diags *d, const char *path, const char *expected)
{
    char want[4096];
    char got[4096];
    size_t used = 0;
    const char *line = expected;
    size_t i;

    want[0] = '\0';
    while (*line != '\0') {
        const char *end = strchr(line, '\n');
        size_t n = end != NULL ? (size_t)(end - line) : strlen(line);

        used += (size_t)snprintf(want + used, sizeof want - used, "%s%.*s\n", path, (int)n, line);
        line += n + (end != NULL ? 1 : 0);
    }
    used = 0;
    got[0] = '\0';
    for (i = 0; i < d->count; i++) {
        used += (size_t)snprintf(got + used, sizeof got - used, "%s\n", d->items[i].text);
    }
    assert_string_equal(got, want);
}

static struct userdb *load_ok(const struct fixture *f, struct config_diags *diags)
{
    struct userdb *db = NULL;

    memset(diags, 0, sizeof *diags);
    assert_int_equal(userdb_load(f->path, &db, diags), 0);
    assert_non_null(db);
    assert_int_equal(diags->errors, 0);
    return db;
}

static void test_hash_format(void **state)
{
    char a[128];
    char b[128];

    (void)state;
    assert_int_equal(userdb_hash_password("pw", 2, ITER, a, sizeof a), 0);
    assert_int_equal(userdb_hash_password("pw", 2, ITER, b, sizeof b), 0);
    assert_memory_equal(a, "$pbkdf2-sha256$1000$", 20);
    assert_int_equal(strlen(a), 20 + 24 + 1 + 44);
    assert_int_equal(a[20 + 22], '=');
    assert_int_equal(a[20 + 24], '$');
    assert_int_equal(a[strlen(a) - 1], '=');
    assert_string_not_equal(a, b); /* a fresh salt every time */
}

static void test_hash_refusals(void **state)
{
    char out[128];
    char big[300];

    (void)state;
    memset(big, 'p', sizeof big);
    memset(out, 'x', sizeof out);
    assert_int_equal(userdb_hash_password("pw", 2, ITER, out, 64), -1);
    assert_int_equal(out[0], '\0');
    assert_int_equal(userdb_hash_password("pw", 2, ITER, out, 89), -1); /* no room for the NUL */
    assert_int_equal(userdb_hash_password("pw", 2, ITER, out, 90), 0);
    assert_int_equal(userdb_hash_password("pw", 2, 999, out, sizeof out), -1);
    assert_int_equal(userdb_hash_password("pw", 2, 10000001, out, sizeof out), -1);
    assert_int_equal(userdb_hash_password("p\0w", 3, ITER, out, sizeof out), -1);
    assert_int_equal(userdb_hash_password(big, 256, ITER, out, sizeof out), -1);
    assert_int_equal(userdb_hash_password(big, 255, ITER, out, sizeof out), 0);
    assert_int_equal(userdb_hash_password(NULL, 1, ITER, out, sizeof out), -1);
    assert_int_equal(userdb_hash_password("pw", 2, ITER, NULL, 0), -1);
}

static void test_hash_then_verify(void **state)
{
    struct fixture *f = *state;
    struct config_diags diags;
    struct userdb *db;
    char big[300];
    char text[1024];
    char alice[128];
    char bob[128];
    char carol[128];

    memset(big, 'p', sizeof big);
    assert_int_equal(userdb_hash_password("correct horse", 13, ITER, alice, sizeof alice), 0);
    assert_int_equal(userdb_hash_password(big, 255, 2000, bob, sizeof bob), 0);
    assert_int_equal(userdb_hash_password("", 0, ITER, carol, sizeof carol), 0);
    snprintf(text, sizeof text, "alice:%s\nbob:%s\ncarol:%s\n", alice, bob, carol);
    write_users_text(f, text);
    db = load_ok(f, &diags);
    assert_int_equal(diags.count, 0);
    assert_int_equal(userdb_count(db), 3);

    assert_true(userdb_verify(db, "alice", 5, "correct horse", 13));
    assert_false(userdb_verify(db, "alice", 5, "correct horsE", 13));
    assert_false(userdb_verify(db, "alice", 5, "correct horse ", 14));
    assert_false(userdb_verify(db, "alice", 5, "correct hors", 12));
    assert_false(userdb_verify(db, "alice", 5, "", 0));
    assert_false(userdb_verify(db, "alic", 4, "correct horse", 13));
    assert_false(userdb_verify(db, "alicex", 6, "correct horse", 13));
    assert_false(userdb_verify(db, "Alice", 5, "correct horse", 13));
    assert_false(userdb_verify(db, "mallory", 7, "correct horse", 13));
    assert_false(userdb_verify(db, "", 0, "correct horse", 13));
    assert_false(userdb_verify(db, NULL, 0, "correct horse", 13));
    assert_false(userdb_verify(NULL, "alice", 5, "correct horse", 13));

    /* NUL bytes never match, in the password or in the name */
    assert_false(userdb_verify(db, "alice", 5, "correct horse\0", 14));
    assert_false(userdb_verify(db, "alice\0", 6, "correct horse", 13));

    /* 255 bytes is the longest password; one more never matches even with the right prefix */
    assert_true(userdb_verify(db, "bob", 3, big, 255));
    assert_false(userdb_verify(db, "bob", 3, big, 256));
    assert_false(userdb_verify(db, "bob", 3, big, 254));

    assert_true(userdb_verify(db, "carol", 5, "", 0));
    assert_true(userdb_verify(db, "carol", 5, NULL, 0));
    assert_false(userdb_verify(db, "carol", 5, "x", 1));
    userdb_free(db);
    userdb_free(NULL);
    assert_int_equal(userdb_count(NULL), 0);
}

static void test_file_layout(void **state)
{
    struct fixture *f = *state;
    struct config_diags diags;
    struct userdb *db;
    char hash[128];
    char text[2048];
    char longname[256];

    memset(longname, 'n', 255);
    longname[255] = '\0';
    assert_int_equal(userdb_hash_password("pw", 2, ITER, hash, sizeof hash), 0);
    snprintf(text, sizeof text,
             "# users for the test\r\n"
             "\r\n"
             "   # an indented comment\n"
             "\t\n"
             "alice:%s  \t\r\n"
             "b#b:%s\n"
             "%s:%s\n"
             "\xc3\xa9milie:%s",
             hash, hash, longname, hash, hash);
    write_users_text(f, text);
    db = load_ok(f, &diags);
    assert_int_equal(diags.count, 0);
    assert_int_equal(userdb_count(db), 4);
    assert_true(userdb_verify(db, "alice", 5, "pw", 2));
    assert_true(userdb_verify(db, "b#b", 3, "pw", 2));
    assert_true(userdb_verify(db, longname, 255, "pw", 2));
    assert_true(userdb_verify(db, "\xc3\xa9milie", 7, "pw", 2));
    userdb_free(db);
}

static void test_empty_file_warns(void **state)
{
    struct fixture *f = *state;
    struct config_diags diags;
    struct userdb *db;

    write_users_text(f, "# nobody yet\n");
    db = load_ok(f, &diags);
    assert_int_equal(userdb_count(db), 0);
    assert_diags_at(&diags, f->path, ": warning: no users: every login will fail");
    assert_false(userdb_verify(db, "alice", 5, "pw", 2));
    userdb_free(db);
}

struct bad_file {
    const char *text;
    const char *expected; /* each line follows the file's path */
};

static const struct bad_file bad_files[] = {
    {"alice\n", ":1:6: missing ':' after the user name (expected NAME:HASH)"},
    {":" H "\n", ":1:1: empty user name"},
    {"al ice:" H "\n", ":1:3: user names cannot contain blanks"},
    {" alice:" H "\n", ":1:1: user names cannot contain blanks"},
    {"alice:$pbkdf2-sha1$1000$" SALT0 "$" HASH0 "\n",
     ":1:7: unsupported password hash (expected $pbkdf2-sha256$ITERATIONS$SALT$HASH, as printed "
     "by 'geoproxy passwd')"},
    {"alice:" HASH0 "\n", ":1:7: unsupported password hash (expected "
                          "$pbkdf2-sha256$ITERATIONS$SALT$HASH, as printed by 'geoproxy passwd')"},
    {"alice:$pbkdf2-sha256$999$" SALT0 "$" HASH0 "\n",
     ":1:22: iteration count must be from 1000 to 10000000, got '999'"},
    {"alice:$pbkdf2-sha256$10000001$" SALT0 "$" HASH0 "\n",
     ":1:22: iteration count must be from 1000 to 10000000, got '10000001'"},
    {"alice:$pbkdf2-sha256$99999999999999999999999$" SALT0 "$" HASH0 "\n",
     ":1:22: iteration count must be from 1000 to 10000000, got '99999999999999999999999'"},
    {"alice:$pbkdf2-sha256$x1$" SALT0 "$" HASH0 "\n", ":1:22: invalid iteration count 'x1'"},
    {"alice:$pbkdf2-sha256$$" SALT0 "$" HASH0 "\n", ":1:22: invalid iteration count ''"},
    {"alice:$pbkdf2-sha256$1000\n", ":1:26: missing '$' after the iteration count"},
    {"alice:$pbkdf2-sha256$1000$" SALT0 "\n", ":1:51: missing '$' after the salt"},
    {"alice:$pbkdf2-sha256$1000$AAAAAAAAAAAA*AAAAAAAAA==$" HASH0 "\n",
     ":1:39: invalid base64 in the salt"},
    {"alice:$pbkdf2-sha256$1000$AAAAAAAAAAA$" HASH0 "\n", ":1:38: invalid base64 in the salt"},
    {"alice:$pbkdf2-sha256$1000$AAAAAAAAAAAAAAA=A===$" HASH0 "\n",
     ":1:42: invalid base64 in the salt"},
    {"alice:$pbkdf2-sha256$1000$AAAAAAAA$" HASH0 "\n", ":1:27: salt must be 8 to 64 bytes, got 6"},
    {"alice:$pbkdf2-sha256$1000$" SALT0 "$AAAA\n", ":1:52: hash must be 32 bytes, got 3"},
    {"alice:$pbkdf2-sha256$1000$" SALT0 "$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
     ":1:52: hash must be 32 bytes, got 36"},
    {"alice:$pbkdf2-sha256$1000$" SALT0 "$" HASH0 "AAAA\n", ":1:95: invalid base64 in the hash"},
    {"alice:" H "$extra\n", ":1:96: invalid base64 in the hash"},
    {"alice:" H " trailing\n", ":1:96: invalid base64 in the hash"},
    {"alice:\x01" H "\n", ":1:7: control character 0x01 is not allowed"},
    {"bob:" H "\nalice:" H "\n\n# x\nbob:" H "\n", ":5:1: duplicate user 'bob' (first at line 1)"},
    {"bob:" H "\nbob:" H "\nbob:" H "\n",
     ":2:1: duplicate user 'bob' (first at line 1)\n:3:1: duplicate user 'bob' (first at line 1)"},
    {"alice\nbob:" H "\ncarol:" H "x\n",
     ":1:6: missing ':' after the user name (expected NAME:HASH)\n"
     ":3:95: invalid base64 in the hash"},
};

static void test_bad_files(void **state)
{
    struct fixture *f = *state;
    size_t i;

    for (i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
        struct config_diags diags;
        struct userdb *db = (struct userdb *)&diags; /* must be reset to NULL */

        memset(&diags, 0, sizeof diags);
        write_users_text(f, bad_files[i].text);
        assert_int_equal(userdb_load(f->path, &db, &diags), -1);
        assert_null(db);
        assert_true(diags.errors > 0);
        assert_diags_at(&diags, f->path, bad_files[i].expected);
    }
}

static void test_nul_long_and_long_name(void **state)
{
    static const char nul[] = "alice:" H "\nbob:\0" H "\n";
    struct fixture *f = *state;
    struct config_diags diags;
    struct userdb *db = NULL;
    char text[5000];
    size_t n;

    write_users(f, nul, sizeof nul - 1, 0600);
    memset(&diags, 0, sizeof diags);
    assert_int_equal(userdb_load(f->path, &db, &diags), -1);
    assert_diags_at(&diags, f->path, ":2:5: NUL byte is not allowed");

    memset(text, 'a', 4097);
    text[4097] = '\n';
    write_users(f, text, 4098, 0600);
    memset(&diags, 0, sizeof diags);
    assert_int_equal(userdb_load(f->path, &db, &diags), -1);
    assert_diags_at(&diags, f->path, ":1:4097: line is longer than 4096 bytes");

    memset(text, 'n', 256);
    n = 256 + (size_t)snprintf(text + 256, sizeof text - 256, ":%s\n", H);
    write_users(f, text, n, 0600);
    memset(&diags, 0, sizeof diags);
    assert_int_equal(userdb_load(f->path, &db, &diags), -1);
    assert_diags_at(&diags, f->path, ":1:1: user name is longer than 255 bytes");
}

static void test_permissions(void **state)
{
    static const mode_t refused[] = {0644, 0640, 0604, 0620, 0602, 0660, 0601, 0610};
    static const mode_t accepted[] = {0600, 0400};
    struct fixture *f = *state;
    char expected[1024];
    char line[256];
    size_t i;

    snprintf(line, sizeof line, "alice:%s\n", H);
    for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        struct config_diags diags;
        struct userdb *db = NULL;

        write_users(f, line, strlen(line), refused[i]);
        memset(&diags, 0, sizeof diags);
        assert_int_equal(userdb_load(f->path, &db, &diags), -1);
        assert_null(db);
        snprintf(expected, sizeof expected,
                 ": refusing a users file that group or others can access (mode %04o): run "
                 "'chmod 600 %s'",
                 (unsigned)refused[i], f->path);
        assert_diags_at(&diags, f->path, expected);
    }
    for (i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        struct config_diags diags;
        struct userdb *db;

        write_users(f, line, strlen(line), accepted[i]);
        db = load_ok(f, &diags);
        assert_int_equal(userdb_count(db), 1);
        userdb_free(db);
        assert_int_equal(chmod(f->path, 0600), 0);
    }
}

static void test_missing_and_not_regular(void **state)
{
    struct fixture *f = *state;
    struct config_diags diags;
    struct userdb *db = NULL;

    memset(&diags, 0, sizeof diags);
    assert_int_equal(userdb_load(f->path, &db, &diags), -1);
    assert_diags_at(&diags, f->path, ": No such file or directory");
    memset(&diags, 0, sizeof diags);
    assert_int_equal(userdb_load(f->dir, &db, &diags), -1);
    assert_diags_at(&diags, f->dir, ": not a regular file");
    /* diagnostics append: the loader is also called in the middle of a configuration parse */
    assert_int_equal(userdb_load(f->path, &db, &diags), -1);
    assert_int_equal(diags.count, 2);
    assert_int_equal(diags.errors, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_format),
        cmocka_unit_test(test_hash_refusals),
        cmocka_unit_test_setup_teardown(test_hash_then_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file_warns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_long_and_long_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_not_regular, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
