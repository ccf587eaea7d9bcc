/* Logging to stderr: readable text by default ("2026-11-27T20:59:47.123Z info  message"), or
 * one JSON object per line (--log-format json). Lines are written whole by single write(2)
 * calls, so lines from several worker threads never interleave. */
#ifndef GEOPROXY_PROXY_LOG_H
#define GEOPROXY_PROXY_LOG_H

#include <stddef.h>
#include <stdint.h>

#define LOG_LINE_MAX 4096 /* longest line, newline included; longer values are cut */

enum log_severity {
    LOG_DEBUG,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR,
};

enum log_format {
    LOG_FORMAT_TEXT,
    LOG_FORMAT_JSON,
};

/* A key and a value for log_event(): a string (NULL: omitted) or an integer. */
struct log_field {
    const char *key;
    const char *str;
    int64_t num;
    int is_num;
};

#define LOG_FIELD_STR(k, v) ((struct log_field){.key = (k), .str = (v)})
#define LOG_FIELD_NUM(k, v) ((struct log_field){.key = (k), .num = (int64_t)(v), .is_num = 1})

/* Worker threads batch their lines: log_buffer_thread() makes the calling thread keep lines in a
 * thread-local buffer (at most LOG_BATCH_BYTES) that log_flush() writes in one write(2), called
 * by the worker before its loop waits for I/O. Other threads write each line at once. */
#define LOG_BATCH_BYTES (32 * 1024)
void log_buffer_thread(void);
void log_flush(void);

/* Flushes and frees the calling thread's buffer (at thread exit). */
void log_release_thread(void);

/* Sends lines to the file at path (appended, created 0640) instead of stderr. Call before
 * starting threads. Returns 0 or a negative errno. */
int log_open_file(const char *path);

/* Opens the log file again under the same name (after logrotate moved it: SIGUSR1) and puts it
 * in place of the old one for every thread at once. Returns 0 (also when logging to stderr) or a
 * negative errno (the old file stays in use). */
int log_reopen(void);

/* The log file's path, or NULL for stderr. */
const char *log_file(void);

/* Lines that could not be written (a full disk, a closed stderr), since start. */
uint64_t log_write_errors(void);

/* Sets the format and the lowest severity written. Call before starting threads. */
void log_configure(enum log_format format, enum log_severity min_severity);

/* Parses "text" / "json"; returns 0 or -1. */
int log_parse_format(const char *name, enum log_format *out);

/* A free-form message. */
void log_msg(enum log_severity sev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A structured event: text "event key=value key=\"two words\"", JSON {"event":...,"key":...}. */
void log_event(enum log_severity sev, const char *event, const struct log_field *fields,
               size_t n_fields);

/* The same event as one line (with its newline) in the given format into out, whatever the log
 * format in use, for the admin event stream. Returns its length, or 0 when it does not fit. */
size_t log_event_format(char *out, size_t cap, enum log_format format, enum log_severity sev,
                        const char *event, const struct log_field *fields, size_t n_fields);

#endif
