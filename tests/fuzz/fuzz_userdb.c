/* libFuzzer target for users files (policy/userdb.h): the input is written, mode 0600, to
 * "users" in a directory this target makes at start (mkdtemp under $TMPDIR) and removes at exit,
 * then loaded with userdb_load, the way 'listen ... users FILE' loads it. Promises checked, a
 * broken one is a crash:
 *   - 0 with a userdb and no error, or -1 with NULL and at least one error;
 *   - at most one user per line;
 *   - every diagnostic is one line (no control byte), NUL-terminated, about that file;
 *   - nothing leaks.
 * userdb_verify is left out: it runs PBKDF2 with the file's iteration count (up to 10 million),
 * seconds per call, which only a benchmark wants.
 * Seeds: tests/fuzz/corpus/userdb/; dictionary: tests/fuzz/userdb.dict. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sanitizer/common_interface_defs.h>

#include "policy/config.h"
#include "policy/userdb.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void remove_dir(void);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_userdb: check failed at %s:%d: %s\n", __FILE__, __LINE__,        \
                    #cond);                                                                        \
            remove_dir();                                                                          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static char dir[4096];
static char path[4096 + 8];

static void remove_dir(void)
{
    if (dir[0] != '\0') {
        unlink(path);
        rmdir(dir);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    int n;

    (void)argc;
    (void)argv;
    if (tmp == NULL || tmp[0] != '/') {
        tmp = "/tmp";
    }
    n = snprintf(dir, sizeof dir, "%s/geoproxy-fuzz-userdb.XXXXXX", tmp);
    CHECK(n > 0 && (size_t)n < sizeof dir);
    CHECK(mkdtemp(dir) != NULL);
    n = snprintf(path, sizeof path, "%s/users", dir);
    CHECK(n > 0 && (size_t)n < sizeof path);
    atexit(remove_dir);
    __sanitizer_set_death_callback(remove_dir);
    return 0;
}

static void write_file(const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t done = 0;

    CHECK(fd >= 0);
    CHECK(fchmod(fd, 0600) == 0); /* whatever the umask */
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);

        CHECK(n > 0);
        done += (size_t)n;
    }
    CHECK(close(fd) == 0);
}

static void check_diags(const struct config_diags *diags)
{
    CHECK(diags->count <= CONFIG_MAX_DIAGS);
    for (size_t i = 0; i < diags->count; i++) {
        const struct config_diag *d = &diags->items[i];
        size_t len = strnlen(d->text, sizeof d->text);

        CHECK(len > 0 && len < sizeof d->text);
        CHECK(strncmp(d->text, path, strlen(path)) == 0);
        for (size_t k = 0; k < len; k++) {
            unsigned char c = (unsigned char)d->text[k];

            CHECK(c >= 0x20 && c != 0x7f);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config_diags diags;
    struct userdb *db = NULL;
    size_t lines = 1;
    int ret;

    write_file(data, size);
    memset(&diags, 0, sizeof diags);
    ret = userdb_load(path, &db, &diags);
    check_diags(&diags);
    for (size_t i = 0; i < size; i++) {
        lines += data[i] == '\n';
    }
    if (ret == 0) {
        CHECK(db != NULL);
        CHECK(diags.errors == 0);
        CHECK(userdb_count(db) <= lines);
    } else {
        CHECK(ret == -1);
        CHECK(db == NULL);
        CHECK(diags.errors >= 1 && diags.count >= 1);
    }
    userdb_free(db);
    return 0;
}
