/* Diagnostics for the configuration language and the users file: adding a "file:line:col: message"
 * to a struct config_diags, and quoting user input safely inside a message. Internal to policy/. */
#ifndef GEOPROXY_POLICY_CONFIG_DIAG_H
#define GEOPROXY_POLICY_CONFIG_DIAG_H

#include <stdarg.h>
#include <stddef.h>

#include "policy/config.h"

/* Large enough for config_clip's output: 48 shown bytes, each at most 4 characters, and "...". */
#define CONFIG_CLIP_SIZE 200

/* Appends one diagnostic. line == 0 gives "file: message" (about the whole file), otherwise
 * "file:line:col: message". Errors are counted in diags->errors whether or not they fit; a
 * diagnostic that does not fit is counted in diags->dropped. diags == NULL is a no-op. */
void config_diag_add(struct config_diags *diags, enum config_severity severity, const char *file,
                     unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

void config_diag_vadd(struct config_diags *diags, enum config_severity severity, const char *file,
                      unsigned line, unsigned col, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));

/* Copies s[0..len) into buf (CONFIG_CLIP_SIZE bytes) for quoting in a message: printable ASCII as
 * is, any other byte as \xNN, cut after 48 bytes with "...". Returns buf. */
const char *config_clip(const char *s, size_t len, char *buf);

#endif
