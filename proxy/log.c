#include "proxy/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#include "proxy/hex.h"

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

/* A bounded line builder: appends never overflow; what does not fit is cut and 'cut' says so.
 * The last two bytes are kept for the closing "}" of JSON and the newline. */
struct line {
    char buf[LOG_LINE_MAX];
    size_t len;
    bool cut;
    enum log_format format;
};

#define LINE_LIMIT (LOG_LINE_MAX - 2)

static void line_append(struct line *l, const char *s, size_t n)
{
    size_t room = LINE_LIMIT - l->len;
    if (n > room) {
        n = room;
        l->cut = true;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void line_puts(struct line *l, const char *s)
{
    line_append(l, s, strlen(s));
}

/* Appends s as the inside of a JSON string: quotes, backslashes and control bytes (DEL too)
 * escaped.
 * A string longer than max_out bytes (or than the line has room for) is shortened between
 * escapes, leaving room for its closing quote, so the line stays valid JSON. */
static void line_json_string_max(struct line *l, const char *s, size_t max_out)
{
    size_t limit = l->len + max_out < LINE_LIMIT ? l->len + max_out : LINE_LIMIT;
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[6];
        size_t n = 0;
        if (ch == '"' || ch == '\\') {
            esc[n++] = '\\';
            esc[n++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            memcpy(esc, "\\u00", 4);
            n = 4;
            esc[n++] = hex_digit(ch >> 4);
            esc[n++] = hex_digit(ch & 0xf);
        } else {
            esc[n++] = (char)ch;
        }
        if (l->len + n + 1 > limit)
            return;
        line_append(l, esc, n);
    }
}

/* A field value takes at most a quarter of the line, so the fields after it still fit. */
#define LOG_VALUE_MAX (LOG_LINE_MAX / 4)

static void line_json_string(struct line *l, const char *s)
{
    line_json_string_max(l, s, LOG_VALUE_MAX);
}

/* Appends a text-format value, quoted when it holds a blank, a quote or a control byte. */
static void line_text_value(struct line *l, const char *s)
{
    if (s[0] != '\0' && strpbrk(s, " \t\"=") == NULL) {
        const char *p = s;
        while (*p != '\0' && (unsigned char)*p >= 0x20 && *p != 0x7f)
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

/* Appends n in decimal (every event line has a few numbers: no printf for them). */
static void line_number(struct line *l, long long n)
{
    char digits[24];
    size_t at = sizeof(digits);
    unsigned long long u = n < 0 ? 0ull - (unsigned long long)n : (unsigned long long)n;
    do {
        digits[--at] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (n < 0)
        digits[--at] = '-';
    line_append(l, digits + at, sizeof(digits) - at);
}

/* "2026-12-06T21:55:08.142Z": the part up to the seconds is formatted once a second per thread. */
static void line_timestamp(struct line *l)
{
    static _Thread_local time_t second = -1;
    static _Thread_local char upto_seconds[32];
    static _Thread_local size_t upto_len;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != second) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        int n = snprintf(upto_seconds, sizeof(upto_seconds), "%04d-%02d-%02dT%02d:%02d:%02d",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec);
        upto_len = n > 0 && (size_t)n < sizeof(upto_seconds) ? (size_t)n : 0;
        second = ts.tv_sec;
    }
    long ms = ts.tv_nsec / 1000000;
    char tail[6] = {
        '.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z', '\0'};
    line_append(l, upto_seconds, upto_len);
    line_append(l, tail, 5);
}

static void line_begin(struct line *l, enum log_severity sev, enum log_format format)
{
    l->len = 0;
    l->cut = false;
    l->format = format;
    if (format == LOG_FORMAT_JSON) {
        line_puts(l, "{\"ts\":\"");
        line_timestamp(l);
        line_puts(l, "\",\"level\":\"");
        line_puts(l, severity_names[sev]);
        line_puts(l, "\"");
    } else {
        line_timestamp(l);
        static const char pad[] = "      ";
        size_t name_len = strlen(severity_names[sev]);
        line_puts(l, " ");
        line_append(l, severity_names[sev], name_len);
        line_append(l, pad, name_len < 5 ? 6 - name_len : 1); /* "%-5s " */
    }
}

static void line_field(struct line *l, const struct log_field *f)
{
    if (!f->is_num && f->str == NULL)
        return;
    size_t mark = l->len;
    l->cut = false;
    if (l->format == LOG_FORMAT_JSON) {
        line_puts(l, ",\"");
        line_json_string(l, f->key);
        line_puts(l, "\":");
        if (f->is_num) {
            line_number(l, (long long)f->num);
        } else {
            line_puts(l, "\"");
            line_json_string(l, f->str);
            line_puts(l, "\"");
        }
        if (l->cut) /* a field that does not fit is left out whole */
            l->len = mark;
        return;
    }
    line_puts(l, " ");
    line_puts(l, f->key);
    line_puts(l, "=");
    if (f->is_num)
        line_number(l, (long long)f->num);
    else
        line_text_value(l, f->str);
}

/* Where lines go: stderr, or a file that log_reopen() swaps in place (dup2 onto the same
 * descriptor number, so writers on other threads never see a closed one). */
static int log_fd = STDERR_FILENO;
static char *log_file_path;
static atomic_uint_fast64_t log_errors;

static void write_all(const char *p, size_t left)
{
    while (left > 0) {
        ssize_t n = write(log_fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* A full disk or a closed stderr: nowhere to report it but the counter, which
             * counts the lines lost (a batch holds many). */
            uint64_t lines = 0;
            for (size_t i = 0; i < left; i++)
                lines += p[i] == '\n';
            atomic_fetch_add_explicit(&log_errors, lines > 0 ? lines : 1, memory_order_relaxed);
            return;
        }
        p += n;
        left -= (size_t)n;
    }
}

static int log_open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

int log_open_file(const char *path)
{
    int fd = log_open_path(path);
    if (fd < 0)
        return -errno;
    char *copy = strdup(path);
    if (copy == NULL) {
        close(fd);
        return -ENOMEM;
    }
    free(log_file_path);
    log_file_path = copy;
    log_fd = fd;
    return 0;
}

int log_reopen(void)
{
    if (log_file_path == NULL)
        return 0;
    int fd = log_open_path(log_file_path);
    if (fd < 0)
        return -errno;
    int rc = dup2(fd, log_fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

const char *log_file(void)
{
    return log_file_path;
}

uint64_t log_write_errors(void)
{
    return atomic_load_explicit(&log_errors, memory_order_relaxed);
}

struct batch {
    bool enabled;
    size_t len;
    char buf[LOG_BATCH_BYTES];
};

static _Thread_local struct batch *thread_batch;

void log_buffer_thread(void)
{
    if (thread_batch == NULL)
        thread_batch = calloc(1, sizeof(*thread_batch)); /* NULL: lines go out one by one */
}

/* Writes whole lines in pieces of at most PIPE_BUF bytes: a pipe keeps such writes atomic, so
 * batches from several threads never cut into each other's lines. */
void log_flush(void)
{
    struct batch *b = thread_batch;
    if (b == NULL)
        return;
    size_t start = 0;
    while (start < b->len) {
        size_t end = b->len - start <= PIPE_BUF ? b->len : start + PIPE_BUF;
        if (end < b->len) {
            while (end > start && b->buf[end - 1] != '\n')
                end--;
            if (end == start) /* a line longer than PIPE_BUF: it goes out as it is */
                end = start + PIPE_BUF;
        }
        write_all(b->buf + start, end - start);
        start = end;
    }
    b->len = 0;
}

void log_release_thread(void)
{
    log_flush();
    free(thread_batch);
    thread_batch = NULL;
}

static void line_end(struct line *l)
{
    if (l->format == LOG_FORMAT_JSON)
        l->buf[l->len++] = '}'; /* LINE_LIMIT kept room for it and the newline */
    l->buf[l->len++] = '\n';
}

/* Writes a finished line now, or into the thread's batch. */
static void log_write_line(const char *line, size_t len)
{
    struct batch *b = thread_batch;
    if (b == NULL) {
        write_all(line, len);
        return;
    }
    if (b->len + len > sizeof(b->buf))
        log_flush();
    memcpy(b->buf + b->len, line, len);
    b->len += len;
}

static void line_end_and_write(struct line *l)
{
    line_end(l);
    log_write_line(l->buf, l->len);
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
    line_begin(&l, sev, log_format_in_use);
    if (log_format_in_use == LOG_FORMAT_JSON) {
        line_puts(&l, ",\"msg\":\"");
        line_json_string_max(&l, msg, LINE_LIMIT);
        line_puts(&l, "\"");
    } else {
        line_puts(&l, msg);
    }
    line_end_and_write(&l);
}

/* The event line in l's format. */
static void line_event(struct line *l, enum log_severity sev, enum log_format format,
                       const char *event, const struct log_field *fields, size_t n_fields)
{
    line_begin(l, sev, format);
    if (format == LOG_FORMAT_JSON) {
        line_puts(l, ",\"event\":\"");
        line_json_string(l, event);
        line_puts(l, "\"");
    } else {
        line_puts(l, event);
    }
    for (size_t i = 0; i < n_fields; i++)
        line_field(l, &fields[i]);
    line_end(l);
}

void log_event(enum log_severity sev, const char *event, const struct log_field *fields,
               size_t n_fields)
{
    if (sev < log_min_severity)
        return;
    struct line l;
    line_event(&l, sev, log_format_in_use, event, fields, n_fields);
    log_write_line(l.buf, l.len);
}

size_t log_event_format(char *out, size_t cap, enum log_format format, enum log_severity sev,
                        const char *event, const struct log_field *fields, size_t n_fields)
{
    struct line l;
    line_event(&l, sev, format, event, fields, n_fields);
    if (l.len > cap)
        return 0;
    memcpy(out, l.buf, l.len);
    return l.len;
}
