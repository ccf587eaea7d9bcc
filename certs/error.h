/* Error messages of the certs library (internal). */
#ifndef GEOPROXY_CERTS_ERROR_H
#define GEOPROXY_CERTS_ERROR_H

#include <stddef.h>

/* Writes the printf-formatted message into err (when err_len > 0) and empties the OpenSSL error
 * queue. Returns 'code', so that callers can write `return certs_error_set(...)`. */
int certs_error_set(int code, char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* As certs_error_set(), followed by ": " and the reason of the oldest OpenSSL error in the queue
 * (when there is one), then empties the queue. */
int certs_error_set_ssl(int code, char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
