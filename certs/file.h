/* Files of the certs library (internal): bounded reads that check key file modes, and writes that
 * never replace an existing file. */
#ifndef GEOPROXY_CERTS_FILE_H
#define GEOPROXY_CERTS_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Largest certificate file and key file read. */
#define CERTS_FILE_CERT_MAX (1024 * 1024)
#define CERTS_FILE_KEY_MAX (64 * 1024)

/* Reads the regular file at 'path' (at most max_bytes) into a new NUL-terminated buffer *out of
 * *len bytes. With 'secret', refuses (CERTS_E_KEY_EXPOSED) a file that group or others can
 * access, before reading it; free the buffer with certs_file_free(). */
int certs_file_read(const char *path, size_t max_bytes, bool secret, char **out, size_t *len,
                    char *err, size_t err_len);

/* Frees a buffer from certs_file_read(), wiping it first. NULL is a no-op. */
void certs_file_free(char *buf, size_t len);

/* Creates 'path' with O_CREAT|O_EXCL and 'mode' (so a key is never readable by others, not even
 * for a moment) and writes data to it. -EEXIST when it exists; on any failure after creating
 * it, the file is removed. */
int certs_file_write_new(const char *path, const void *data, size_t len, mode_t mode, char *err,
                         size_t err_len);

/* Makes directory 'dir' (mode 0700) unless it is one already. */
int certs_file_make_dir(const char *dir, char *err, size_t err_len);

/* out = dir "/" name suffix; -ENAMETOOLONG when it does not fit. */
int certs_file_join(char *out, size_t out_len, const char *dir, const char *name,
                    const char *suffix, char *err, size_t err_len);

/* Whether something (file, link, anything) exists at 'path'; errors other than ENOENT count as
 * existing, so that callers refuse rather than overwrite. */
bool certs_file_exists(const char *path);

#endif
