#include "proxy/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static enum log_format log_format_in_use = LOG_FORMAT_TEXT;
static enum log_severity log_min_severity = LOG_INFO;

static const char *const severity_names[] = {"debug", "info", "warn", "error"};

void log_configure(enum log_format format, enum log_severity min_severity)
{
    log_format_in_use = format;
    log_min_severity = min_severity;
}

int log_parse_format(const char *name, enum log_format *out)
{
    if (strcmp(name, "text") == 0) {
        *out = LOG_FORMAT_TEXT;
        return 0;
    }
    if (strcmp(name, "json") == 0) {
        *out = LOG_FORMAT_JSON;
        return 0;
    }
    return -1;
}

/* A bounded line builder: appends never overflow; a line that does not fit is cut short. */
struct line {
    char buf[LOG_LINE_MAX];
    size_t len;
};

static void line_append(struct line *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 1 - l->len; /* keep one byte for the newline */
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void line_puts(struct line *l, const char *s)
{
    line_append(l, s, strlen(s));
}

static void line_printf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void line_printf(struct line *l, const char *fmt, ...)
{
    size_t room = sizeof(l->buf) - 1 - l->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->buf + l->len, room + 1, fmt, ap);
    va_end(ap);
    if (n > 0)
        l->len += (size_t)n > room ? room : (size_t)n;
}

/* Appends s as the inside of a JSON string: quotes, backslashes and control bytes escaped. */
static void line_json_string(struct line *l, const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            line_append(l, esc, 2);
        } else if (ch < 0x20) {
            line_printf(l, "\\u%04x", ch);
        } else {
            line_append(l, (const char *)&ch, 1);
        }
    }
}

/* Appends a text-format value, quoted when it holds a blank, a quote or a control byte. */
static void line_text_value(struct line *l, const char *s)
{
    if (s[0] != '\0' && strpbrk(s, " \t\"=") == NULL) {
        const char *p = s;
        while (*p != '\0' && (unsigned char)*p >= 0x20)
            p++;
        if (*p == '\0') {
            line_puts(l, s);
            return;
        }
    }
    line_puts(l, "\"");
    line_json_string(l, s);
    line_puts(l, "\"");
}

static void line_timestamp(struct line *l)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    line_printf(l, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

static void line_begin(struct line *l, enum log_severity sev)
{
    l->len = 0;
    if (log_format_in_use == LOG_FORMAT_JSON) {
        line_puts(l, "{\"ts\":\"");
        line_timestamp(l);
        line_printf(l, "\",\"level\":\"%s\"", severity_names[sev]);
    } else {
        line_timestamp(l);
        line_printf(l, " %-5s ", severity_names[sev]);
    }
}

static void line_field(struct line *l, const struct log_field *f)
{
    if (!f->is_num && f->str == NULL)
        return;
    if (log_format_in_use == LOG_FORMAT_JSON) {
        line_puts(l, ",\"");
        line_json_string(l, f->key);
        line_puts(l, "\":");
        if (f->is_num) {
            line_printf(l, "%lld", (long long)f->num);
        } else {
            line_puts(l, "\"");
            line_json_string(l, f->str);
            line_puts(l, "\"");
        }
        return;
    }
    line_puts(l, " ");
    line_puts(l, f->key);
    line_puts(l, "=");
    if (f->is_num)
        line_printf(l, "%lld", (long long)f->num);
    else
        line_text_value(l, f->str);
}

static void line_end_and_write(struct line *l)
{
    if (log_format_in_use == LOG_FORMAT_JSON) {
        if (l->len > sizeof(l->buf) - 3) /* cut JSON: still close it */
            l->len = sizeof(l->buf) - 3;
        line_puts(l, "}");
    }
    l->buf[l->len++] = '\n';
    const char *p = l->buf;
    size_t left = l->len;
    while (left > 0) {
        ssize_t n = write(STDERR_FILENO, p, left);
        if (n <= 0)
            return; /* nowhere to report a failing stderr */
        p += n;
        left -= (size_t)n;
    }
}

void log_msg(enum log_severity sev, const char *fmt, ...)
{
    if (sev < log_min_severity)
        return;
    char msg[LOG_LINE_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct line l;
    line_begin(&l, sev);
    if (log_format_in_use == LOG_FORMAT_JSON) {
        line_puts(&l, ",\"msg\":\"");
        line_json_string(&l, msg);
        line_puts(&l, "\"");
    } else {
        line_puts(&l, msg);
    }
    line_end_and_write(&l);
}

void log_event(enum log_severity sev, const char *event, const struct log_field *fields,
               size_t n_fields)
{
    if (sev < log_min_severity)
        return;
    struct line l;
    line_begin(&l, sev);
    if (log_format_in_use == LOG_FORMAT_JSON) {
        line_puts(&l, ",\"event\":\"");
        line_json_string(&l, event);
        line_puts(&l, "\"");
    } else {
        line_puts(&l, event);
    }
    for (size_t i = 0; i < n_fields; i++)
        line_field(&l, &fields[i]);
    line_end_and_write(&l);
}
