#include "proxy/event_filter.h"

#include <stdio.h>
#include <string.h>

#include "proxy/hex.h"
#include "proxy/json_flat.h"

/* Percent-decodes s[0..len) into out (cap bytes with the NUL); -1 when bad or too long. */
static int query_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = hex_digit_value(s[i + 1]);
            int lo = hex_digit_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (n + 1 >= cap || c == '\0')
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

int event_filter_parse(const char *query, size_t len, struct event_filter *f, char *err,
                       size_t err_len)
{
    memset(f, 0, sizeof *f);
    f->format = EVENT_FORMAT_JSON;
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && query[end] != '&')
            end++;
        const char *eq = memchr(query + i, '=', end - i);
        char key[32], value[EVENT_FILTER_VALUE_MAX];
        size_t key_len = eq != NULL ? (size_t)(eq - (query + i)) : end - i;
        if (query_decode(query + i, key_len, key, sizeof key) != 0 ||
            (eq != NULL &&
             query_decode(eq + 1, (size_t)(query + end - eq - 1), value, sizeof value) != 0)) {
            snprintf(err, err_len, "bad query parameter");
            return -1;
        }
        if (eq == NULL)
            value[0] = '\0';
        if (strcmp(key, "format") == 0) {
            if (strcmp(value, "json") == 0)
                f->format = EVENT_FORMAT_JSON;
            else if (strcmp(value, "text") == 0)
                f->format = EVENT_FORMAT_TEXT;
            else if (strcmp(value, "sse") == 0)
                f->format = EVENT_FORMAT_SSE;
            else {
                snprintf(err, err_len, "format must be json, text or sse");
                return -1;
            }
        } else if (strcmp(key, "action") == 0) {
            memcpy(f->action, value, sizeof value);
        } else if (strcmp(key, "rule") == 0) {
            memcpy(f->rule, value, sizeof value);
        } else if (strcmp(key, "region") == 0) {
            memcpy(f->region, value, sizeof value);
        } else if (key[0] != '\0') {
            bool shown = true; /* the message goes back to the client: one printable line */
            for (const char *k = key; *k != '\0'; k++)
                shown &= (unsigned char)*k >= 0x20 && *k != 0x7f;
            snprintf(err, err_len, "unknown parameter%s%s%s (format, action, rule, region)",
                     shown ? " '" : "", shown ? key : "", shown ? "'" : "");
            return -1;
        }
        i = end + 1;
    }
    return 0;
}

/* True if list ("EU,EEA") holds item. */
static bool list_has(const char *list, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = list; p != NULL && *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, item, n) == 0)
            return true;
        p = comma != NULL ? comma + 1 : NULL;
    }
    return false;
}

static bool str_is(const char *value, const char *want)
{
    return value != NULL && strcmp(value, want) == 0;
}

static bool event_passes(const struct event_filter *f, const struct json_flat *j)
{
    if (f->action[0] != '\0' && !str_is(json_flat_str(j, "action"), f->action))
        return false;
    if (f->rule[0] != '\0' && !str_is(json_flat_str(j, "rule"), f->rule))
        return false;
    if (f->region[0] != '\0' && !str_is(json_flat_str(j, "from"), f->region) &&
        !str_is(json_flat_str(j, "to"), f->region) &&
        !list_has(json_flat_str(j, "from_regions"), f->region) &&
        !list_has(json_flat_str(j, "to_regions"), f->region))
        return false;
    return true;
}

/* geoproxy's own keys are words; anything else is left out of a text line rather than written
 * as it is (a control byte in a key would break the line). */
static bool key_is_word(const char *key)
{
    if (*key == '\0')
        return false;
    for (; *key != '\0'; key++)
        if (!(*key >= 'a' && *key <= 'z') && !(*key >= 'A' && *key <= 'Z') &&
            !(*key >= '0' && *key <= '9') && *key != '_' && *key != '-')
            return false;
    return true;
}

/* The event again as a log text line: its fields after ts, level and event. */
static void event_render_text(const struct json_flat *j, struct strbuf *out)
{
    struct log_field fields[JSON_FLAT_FIELDS_MAX];
    size_t n = 0;
    const char *event = json_flat_str(j, "event");
    for (size_t i = 0; i < j->n; i++) {
        const struct json_flat_field *jf = &j->fields[i];
        if (strcmp(jf->key, "ts") == 0 || strcmp(jf->key, "level") == 0 ||
            strcmp(jf->key, "event") == 0 || !key_is_word(jf->key))
            continue;
        fields[n++] =
            jf->str != NULL ? LOG_FIELD_STR(jf->key, jf->str) : LOG_FIELD_NUM(jf->key, jf->num);
    }
    char line[LOG_LINE_MAX];
    size_t len = log_event_format(line, sizeof line, LOG_FORMAT_TEXT, LOG_INFO,
                                  event != NULL && key_is_word(event) ? event : "event", fields, n);
    strbuf_append(out, line, len);
}

void event_filter_render(const struct event_filter *f, const char *line, size_t len,
                         struct strbuf *out)
{
    char buf[LOG_LINE_MAX];
    struct json_flat j;
    bool parsed = len < sizeof buf && json_flat_parse(line, len, buf, &j) == 0;
    bool filtering = f->action[0] != '\0' || f->rule[0] != '\0' || f->region[0] != '\0';

    if (filtering && (!parsed || !event_passes(f, &j)))
        return;
    switch (f->format) {
    case EVENT_FORMAT_TEXT:
        if (parsed)
            event_render_text(&j, out);
        return;
    case EVENT_FORMAT_SSE:
        strbuf_puts(out, "data: ");
        strbuf_append(out, line, len);
        strbuf_puts(out, "\n");
        return;
    case EVENT_FORMAT_JSON:
        strbuf_append(out, line, len);
        return;
    }
}
