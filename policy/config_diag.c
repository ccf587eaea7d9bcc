/* Diagnostics: formatting "file:line:col: message" into a bounded list. */
#include "policy/config_diag.h"

#include <stdio.h>

#define CLIP_SHOWN_MAX 48

void config_diag_vadd(struct config_diags *diags, enum config_severity severity, const char *file,
                      unsigned line, unsigned col, const char *fmt, va_list ap)
{
    struct config_diag *diag;
    size_t used;
    int n;

    if (diags == NULL) {
        return;
    }
    if (severity == CONFIG_ERROR) {
        diags->errors++;
    }
    if (diags->count >= CONFIG_MAX_DIAGS) {
        diags->dropped++;
        return;
    }
    diag = &diags->items[diags->count++];
    diag->severity = severity;
    if (file == NULL) {
        file = "<config>";
    }
    const char *label = severity == CONFIG_WARNING ? "warning: " : "";
    if (line == 0) {
        n = snprintf(diag->text, sizeof diag->text, "%s: %s", file, label);
    } else {
        n = snprintf(diag->text, sizeof diag->text, "%s:%u:%u: %s", file, line, col, label);
    }
    used = n < 0 ? 0 : (size_t)n;
    if (used >= sizeof diag->text) {
        return; /* the location alone filled the buffer; snprintf already terminated it */
    }
    vsnprintf(diag->text + used, sizeof diag->text - used, fmt, ap);
}

void config_diag_add(struct config_diags *diags, enum config_severity severity, const char *file,
                     unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    config_diag_vadd(diags, severity, file, line, col, fmt, ap);
    va_end(ap);
}

const char *config_clip(const char *s, size_t len, char *buf)
{
    static const char hex[] = "0123456789abcdef";
    size_t out = 0;
    size_t i;

    for (i = 0; i < len && i < CLIP_SHOWN_MAX; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x20 && c < 0x7f) {
            buf[out++] = (char)c;
        } else {
            buf[out++] = '\\';
            buf[out++] = 'x';
            buf[out++] = hex[c >> 4];
            buf[out++] = hex[c & 0x0f];
        }
    }
    if (i < len) {
        buf[out++] = '.';
        buf[out++] = '.';
        buf[out++] = '.';
    }
    buf[out] = '\0';
    return buf;
}
