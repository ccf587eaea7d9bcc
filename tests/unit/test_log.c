/* The log writer: lines stay whole and JSON lines stay valid JSON whatever they carry. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/log.h"

/* Runs fn with stderr sent to a temporary file; returns what was written (malloc'd). */
static char *capture_stderr(void (*fn)(void))
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    long size = ftell(tmp) >= 0 ? lseek(fileno(tmp), 0, SEEK_END) : 0;
    char *out = calloc(1, (size_t)size + 1);
    assert_non_null(out);
    assert_int_equal(pread(fileno(tmp), out, (size_t)size, 0), size);
    fclose(tmp);
    return out;
}

/* A minimal JSON object check: one line, braces outside strings balanced, strings closed,
 * no raw control byte inside a string. */
static void assert_valid_json_line(const char *line, size_t len)
{
    assert_true(len >= 2);
    assert_int_equal(line[0], '{');
    assert_int_equal(line[len - 1], '}');
    int depth = 0;
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)line[i];
        if (in_string) {
            assert_true(ch >= 0x20);
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_string = 0;
        } else if (ch == '"') {
            in_string = 1;
        } else if (ch == '{') {
            depth++;
        } else if (ch == '}') {
            depth--;
        }
    }
    assert_false(in_string);
    assert_int_equal(depth, 0);
}

static void assert_json_lines(const char *out, size_t expected_lines)
{
    size_t lines = 0;
    for (const char *p = out; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_true((size_t)(nl - p) < 4096);
        assert_valid_json_line(p, (size_t)(nl - p));
        lines++;
        p = nl + 1;
    }
    assert_int_equal(lines, expected_lines);
}

static void log_awkward_values(void)
{
    char huge[3000];
    for (size_t i = 0; i < sizeof(huge) - 1; i++)
        huge[i] = "\"\\\x01x"[i % 4]; /* every byte needs escaping but one in four */
    huge[sizeof(huge) - 1] = '\0';
    log_msg(LOG_WARN, "%s", huge);
    struct log_field fields[] = {
        LOG_FIELD_STR("quote", "say \"hi\"\n"),
        LOG_FIELD_STR("huge", huge),
        LOG_FIELD_NUM("n", -42),
        LOG_FIELD_STR("after", "kept"),
    };
    log_event(LOG_INFO, "ev\"ent", fields, 4);
}

static void test_json_lines_stay_valid(void **state)
{
    log_configure(LOG_FORMAT_JSON, LOG_DEBUG);
    char *out = capture_stderr(log_awkward_values);
    assert_json_lines(out, 2);
    assert_non_null(strstr(out, "\"n\":-42"));
    assert_non_null(strstr(out, "\"after\":\"kept\""));
    assert_non_null(strstr(out, "\"quote\":\"say \\\"hi\\\"\\u000a\""));
    free(out);
}

static void log_del(void)
{
    struct log_field fields[] = {LOG_FIELD_STR("k", "a\x7f"
                                                    "b")};
    log_event(LOG_INFO, "ev", fields, 1);
}

/* DEL is a control byte like the others: escaped in JSON, and quoted and escaped in text. */
static void test_del_is_escaped(void **state)
{
    (void)state;
    log_configure(LOG_FORMAT_JSON, LOG_DEBUG);
    char *out = capture_stderr(log_del);
    assert_non_null(strstr(out, "\"k\":\"a\\u007fb\""));
    assert_null(strchr(out, 0x7f));
    free(out);
    log_configure(LOG_FORMAT_TEXT, LOG_DEBUG);
    out = capture_stderr(log_del);
    assert_non_null(strstr(out, "k=\"a\\u007fb\""));
    assert_null(strchr(out, 0x7f));
    free(out);
}

static void log_batched(void)
{
    log_buffer_thread();
    for (int i = 0; i < 500; i++)
        log_msg(LOG_INFO, "batched line %d", i);
    log_release_thread();
}

static void test_batched_lines_all_arrive_in_order(void **state)
{
    log_configure(LOG_FORMAT_TEXT, LOG_INFO);
    char *out = capture_stderr(log_batched);
    const char *p = out;
    for (int i = 0; i < 500; i++) {
        char needle[32];
        snprintf(needle, sizeof(needle), "batched line %d\n", i);
        const char *at = strstr(p, needle);
        assert_non_null(at);
        p = at + strlen(needle);
    }
    free(out);
}

static void log_below_threshold(void)
{
    log_msg(LOG_INFO, "hidden");
    log_msg(LOG_ERROR, "shown");
}

static void test_severity_threshold(void **state)
{
    log_configure(LOG_FORMAT_TEXT, LOG_WARN);
    char *out = capture_stderr(log_below_threshold);
    assert_null(strstr(out, "hidden"));
    assert_non_null(strstr(out, "error shown"));
    free(out);
}

static void log_line_head(void)
{
    struct log_field fields[] = {LOG_FIELD_NUM("n", 1234567), LOG_FIELD_NUM("neg", -5),
                                 LOG_FIELD_NUM("zero", 0)};
    log_event(LOG_WARN, "ev", fields, 3);
}

/* A text line: the UTC time to the millisecond, the severity padded to five, then the event and
 * its numbers as written. */
static void test_text_line_head(void **state)
{
    log_configure(LOG_FORMAT_TEXT, LOG_INFO);
    char *out = capture_stderr(log_line_head);
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ warn  ev n=1234567 neg=-5 zero=0\n";
    assert_int_equal(strlen(out), strlen(shape));
    for (size_t i = 0; shape[i] != '\0'; i++) {
        if (shape[i] == 'd')
            assert_true(out[i] >= '0' && out[i] <= '9');
        else
            assert_int_equal(out[i], shape[i]);
    }
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_lines_stay_valid),
        cmocka_unit_test(test_del_is_escaped),
        cmocka_unit_test(test_batched_lines_all_arrive_in_order),
        cmocka_unit_test(test_severity_threshold),
        cmocka_unit_test(test_text_line_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
