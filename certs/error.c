/* Error messages of the certs library: the caller's buffer, and OpenSSL's error queue turned into
 * one readable reason. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "certs/error.h"

static void certs_error_vformat(char *err, size_t err_len, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void certs_error_vformat(char *err, size_t err_len, const char *fmt, va_list ap)
{
    if (err == NULL || err_len == 0)
        return;
    vsnprintf(err, err_len, fmt, ap);
}

int certs_error_set(int code, char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    certs_error_vformat(err, err_len, fmt, ap);
    va_end(ap);
    ERR_clear_error();
    return code;
}

int certs_error_set_ssl(int code, char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    unsigned long e = ERR_peek_error();

    va_start(ap, fmt);
    certs_error_vformat(err, err_len, fmt, ap);
    va_end(ap);
    if (e != 0 && err != NULL && err_len > 0) {
        const char *reason = ERR_reason_error_string(e);
        size_t used = strlen(err);
        if (reason != NULL)
            snprintf(err + used, err_len - used, ": %s", reason);
        else
            snprintf(err + used, err_len - used, ": OpenSSL error 0x%lx", e);
    }
    ERR_clear_error();
    return code;
}
