/* libFuzzer target for the admin listener's event stream (proxy/event_filter.h): what a follower
 * of GET /events?QUERY asks for, and each event line rendered for it. The input is the query
 * string, a newline, then one event line (the JSON geoproxy writes, or anything else).
 *
 * Checks: a refused query says why in one printable line; an accepted one holds NUL-terminated
 * values within their bounds; a rendered event is at most the line itself plus its framing, and
 * in the text format it is exactly one printable line (a value cannot forge a second one).
 * Built by tests/fuzz/CMakeLists.txt (GEOPROXY_FUZZ=ON). Seeds: tests/fuzz/corpus/event_filter/. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/event_filter.h"
#include "proxy/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

#define FUZZ_OUTPUT_MAX (64 * 1024)

static bool printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static void check_value(const char *v)
{
    CHECK(memchr(v, '\0', EVENT_FILTER_VALUE_MAX) != NULL);
}

static void check_rendered(const struct event_filter *f, const char *line, size_t len,
                           const struct strbuf *out)
{
    if (out->len == 0)
        return;
    switch (f->format) {
    case EVENT_FORMAT_JSON:
        CHECK(out->len == len && memcmp(out->data, line, len) == 0);
        break;
    case EVENT_FORMAT_SSE:
        CHECK(out->len == len + 7 && memcmp(out->data, "data: ", 6) == 0 &&
              out->data[out->len - 1] == '\n');
        break;
    case EVENT_FORMAT_TEXT:
        CHECK(out->data[out->len - 1] == '\n');
        CHECK(printable(out->data, out->len - 1));
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nl = memchr(text, '\n', size);
    size_t query_len = nl != NULL ? (size_t)(nl - text) : size;
    const char *line = nl != NULL ? nl + 1 : text + size;
    size_t line_len = size - (size_t)(line - text);

    struct event_filter f;
    memset(&f, 0xa5, sizeof(f)); /* the parser must set every field it promises */
    char err[128];
    memset(err, 0xa5, sizeof(err));
    if (event_filter_parse(text, query_len, &f, err, sizeof(err)) != 0) {
        size_t n = strnlen(err, sizeof(err));
        CHECK(n > 0 && n < sizeof(err) && printable(err, n));
        return 0;
    }
    CHECK(f.format == EVENT_FORMAT_JSON || f.format == EVENT_FORMAT_TEXT ||
          f.format == EVENT_FORMAT_SSE);
    check_value(f.action);
    check_value(f.rule);
    check_value(f.region);

    struct strbuf out;
    strbuf_init(&out, FUZZ_OUTPUT_MAX);
    event_filter_render(&f, line, line_len, &out);
    if (!out.failed)
        check_rendered(&f, line, line_len, &out);
    strbuf_free(&out);
    return 0;
}
