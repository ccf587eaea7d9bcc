/* proxy/dir_watch.c: what wakes a watcher of a configuration directory, on a real directory.
 * inotify queues its events when the system call that causes them returns, in order, so a
 * marker file written last shows that everything before it has been reported (or never will
 * be): no timing is involved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "proxy/dir_watch.h"

#define EVENTS_MAX 64

struct seen {
    char names[EVENTS_MAX][64]; /* "" for an event about the directory itself */
    size_t n;
};

struct fixture {
    uv_loop_t loop;
    struct dir_watch *watch;
    char dir[64];
    struct seen seen;
};

static void on_event(void *arg, const char *dir, const char *name)
{
    struct fixture *f = arg;
    assert_string_equal(dir, f->dir);
    if (f->seen.n < EVENTS_MAX)
        snprintf(f->seen.names[f->seen.n++], sizeof(f->seen.names[0]), "%s",
                 name != NULL ? name : "");
}

static void path_in(const struct fixture *f, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", f->dir, name);
}

static void write_file(const struct fixture *f, const char *name, const char *text)
{
    char path[128];
    path_in(f, name, path, sizeof(path));
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static bool seen_name(const struct fixture *f, const char *name)
{
    for (size_t i = 0; i < f->seen.n; i++)
        if (strcmp(f->seen.names[i], name) == 0)
            return true;
    return false;
}

/* Writes a new marker file and runs the loop until its event arrived (bounded). */
static void settle(struct fixture *f)
{
    static int markers;
    char name[32];
    snprintf(name, sizeof(name), "marker-%d", ++markers);
    write_file(f, name, "m");
    for (int i = 0; i < 200 && !seen_name(f, name); i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (!seen_name(f, name))
            usleep(10 * 1000);
    }
    assert_true(seen_name(f, name));
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/geoproxy-dirwatch-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(dir_watch_new(&f->loop, on_event, f, &f->watch), 0);
    assert_int_equal(dir_watch_add(f->watch, f->dir), 0);
    assert_true(dir_watch_has(f->watch, f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    dir_watch_close(f->watch);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void test_appends_to_an_open_file_wake_nothing(void **state)
{
    struct fixture *f = *state;
    write_file(f, "geoproxy.log", ""); /* created and closed: reported */
    settle(f);
    f->seen.n = 0;
    char path[128];
    path_in(f, "geoproxy.log", path, sizeof(path));
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    for (int i = 0; i < 500; i++)
        assert_int_equal(write(fd, "a log line\n", 11), 11);
    settle(f);
    assert_false(seen_name(f, "geoproxy.log"));
    for (size_t i = 0; i < f->seen.n; i++) /* the marker's own events only */
        assert_int_equal(strncmp(f->seen.names[i], "marker-", 7), 0);
    close(fd); /* the writer is done: now it counts */
    settle(f);
    assert_true(seen_name(f, "geoproxy.log"));
}

static void test_edits_are_reported_by_name(void **state)
{
    struct fixture *f = *state;
    write_file(f, "policy.conf", "rule default pass\n"); /* written in place */
    settle(f);
    assert_true(seen_name(f, "policy.conf"));

    f->seen.n = 0;
    write_file(f, ".policy.conf.swp", "x"); /* an editor's way: a new file renamed over it */
    char from[128], to[128];
    path_in(f, ".policy.conf.swp", from, sizeof(from));
    path_in(f, "policy.conf", to, sizeof(to));
    assert_int_equal(rename(from, to), 0);
    settle(f);
    assert_true(seen_name(f, "policy.conf"));

    f->seen.n = 0;
    assert_int_equal(chmod(to, 0600), 0); /* attributes: a key file made private */
    assert_int_equal(unlink(to), 0);      /* and removed */
    settle(f);
    size_t count = 0;
    for (size_t i = 0; i < f->seen.n; i++)
        count += strcmp(f->seen.names[i], "policy.conf") == 0;
    assert_int_equal(count, 2);
}

static bool keep_none(const char *dir, void *arg)
{
    (void)dir;
    (void)arg;
    return false;
}

static void test_a_dropped_directory_is_silent(void **state)
{
    struct fixture *f = *state;
    dir_watch_keep_only(f->watch, keep_none, NULL);
    assert_false(dir_watch_has(f->watch, f->dir));
    write_file(f, "policy.conf", "rule default pass\n");
    for (int i = 0; i < 5; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->seen.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_appends_to_an_open_file_wake_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edits_are_reported_by_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_dropped_directory_is_silent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
