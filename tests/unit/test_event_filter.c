/* The event stream's query parser and filter (GET /events?...), and the flat JSON reader they
 * use: bad queries are refused with a message, filters pass exactly the matching events, and
 * malformed JSON is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "proxy/event_filter.h"
#include "proxy/json_flat.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const char block_hk_cn[] =
    "{\"event\":\"decision\",\"action\":\"block\",\"rule\":\"hk-cn\",\"from\":\"HK\","
    "\"to\":\"CN\",\"to_regions\":\"ASIA,BRICS\",\"conn\":7}\n";
static const char pass_de_us[] =
    "{\"event\":\"decision\",\"action\":\"pass\",\"rule\":\"rest\",\"from\":\"DE\","
    "\"from_regions\":\"EU,EEA\",\"to\":\"US\",\"conn\":8}\n";

static void test_query_errors(void **state)
{
    (void)state;
    static const struct {
        const char *query;
        const char *error;
    } bad[] = {
        {"format=xml", "format must be json, text or sse"},
        {"colour=red", "unknown parameter 'colour' (format, action, rule, region)"},
        {"rule=%zz", "bad query parameter"},
        {"rule=%4", "bad query parameter"},
        {"rule=a%00b", "bad query parameter"},
        /* the message goes back to the client: a parameter is named only when printable */
        {"col%0aour=red", "unknown parameter (format, action, rule, region)"},
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        struct event_filter f;
        char err[128] = "";
        assert_int_equal(
            event_filter_parse(bad[i].query, strlen(bad[i].query), &f, err, sizeof err), -1);
        assert_string_equal(err, bad[i].error);
    }
}

static size_t render(const char *query, const char *line)
{
    struct event_filter f;
    struct strbuf out;
    char err[128];
    assert_int_equal(event_filter_parse(query, strlen(query), &f, err, sizeof err), 0);
    strbuf_init(&out, 1 << 16);
    event_filter_render(&f, line, strlen(line), &out);
    size_t len = out.len;
    strbuf_free(&out);
    return len;
}

static void test_filters(void **state)
{
    (void)state;
    assert_true(render("", block_hk_cn) > 0);
    assert_true(render("action=block", block_hk_cn) > 0);
    assert_int_equal(render("action=block", pass_de_us), 0);
    assert_true(render("rule=rest", pass_de_us) > 0);
    assert_int_equal(render("rule=rest", block_hk_cn), 0);
    assert_true(render("region=ASIA", block_hk_cn) > 0); /* in to_regions */
    assert_true(render("region=EU", pass_de_us) > 0);    /* in from_regions */
    assert_true(render("region=HK", block_hk_cn) > 0);   /* a country code, either end */
    assert_int_equal(render("region=EU", block_hk_cn), 0);
    assert_int_equal(render("region=EE", pass_de_us), 0); /* whole names only */
    assert_int_equal(render("action=block&region=EU", pass_de_us), 0);
    assert_int_equal(render("action=pass", "not json\n"), 0); /* filtering needs fields */
}

static void test_formats(void **state)
{
    (void)state;
    struct event_filter f;
    struct strbuf out;
    char err[128];

    assert_int_equal(event_filter_parse("format=sse", 10, &f, err, sizeof err), 0);
    strbuf_init(&out, 1 << 16);
    event_filter_render(&f, pass_de_us, strlen(pass_de_us), &out);
    assert_int_equal(strncmp(out.data, "data: {", 7), 0);
    assert_int_equal(strcmp(out.data + out.len - 2, "\n\n"), 0);
    strbuf_free(&out);

    assert_int_equal(event_filter_parse("format=text&rule=hk-cn", 22, &f, err, sizeof err), 0);
    strbuf_init(&out, 1 << 16);
    event_filter_render(&f, block_hk_cn, strlen(block_hk_cn), &out);
    assert_non_null(strstr(out.data, " decision action=block rule=hk-cn from=HK to=CN "
                                     "to_regions=ASIA,BRICS conn=7\n"));
    strbuf_free(&out);
    /* A text line stays one line: a key or event name that is not a word is left out. */
    static const char odd[] = "{\"event\":\"x\\ny\",\"a\\tb\":\"1\",\"rule\":\"r\"}\n";
    assert_int_equal(event_filter_parse("format=text", 11, &f, err, sizeof err), 0);
    strbuf_init(&out, 1 << 16);
    event_filter_render(&f, odd, strlen(odd) - 1, &out);
    assert_non_null(strstr(out.data, " event rule=r\n"));
    assert_null(strchr(out.data, '\t'));
    assert_int_equal(strchr(out.data, '\n'), out.data + out.len - 1);
    strbuf_free(&out);
}

static void test_json_flat(void **state)
{
    (void)state;
    char buf[256];
    struct json_flat j;
    static const char good[] = " {\"a\":\"x\\\"y\\u0041\",\"n\":-12} ";
    assert_int_equal(json_flat_parse(good, strlen(good), buf, &j), 0);
    assert_int_equal(j.n, 2);
    assert_string_equal(json_flat_str(&j, "a"), "x\"yA");
    assert_null(json_flat_str(&j, "n"));
    assert_int_equal(j.fields[1].num, -12);
    assert_null(json_flat_str(&j, "missing"));

    static const char *const bad[] = {
        "",
        "[]",
        "{\"a\":{}}",
        "{\"a\":1.5}",
        "{\"a\":\"x}",
        "{\"a\" 1}",
        "{\"a\":1,}",
        "{\"a\":1} x",
        "{\"a\":\"\\q\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":99999999999999999999}",
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        if (json_flat_parse(bad[i], strlen(bad[i]), buf, &j) != -1)
            fail_msg("accepted %s", bad[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_errors),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_json_flat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
