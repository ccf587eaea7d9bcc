/* Files of the certs library: bounded reads that check key file modes first, and exclusive
 * creation so that nothing is ever overwritten and keys are 0600 from the first byte. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "certs/certs.h"
#include "certs/error.h"
#include "certs/file.h"

int certs_file_read(const char *path, size_t max_bytes, bool secret, char **out, size_t *len,
                    char *err, size_t err_len)
{
    struct stat st;
    char *buf = NULL;
    size_t used = 0;
    int ret = -1;
    /* O_NONBLOCK: a FIFO must not block the open; fstat() refuses it right after. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    *out = NULL;
    *len = 0;
    if (fd < 0)
        return certs_error_set(-errno, err, err_len, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        ret = certs_error_set(-errno, err, err_len, "%s: cannot stat: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        ret = certs_error_set(-EINVAL, err, err_len, "%s: not a regular file", path);
        goto out;
    }
    if (secret && (st.st_mode & 077) != 0) {
        ret = certs_error_set(CERTS_E_KEY_EXPOSED, err, err_len,
                              "%s: refusing a private key that group or others can access "
                              "(mode %04o): run 'chmod 600 %s'",
                              path, (unsigned)(st.st_mode & 07777), path);
        goto out;
    }
    if ((size_t)st.st_size > max_bytes) {
        ret = certs_error_set(-EFBIG, err, err_len, "%s: larger than %zu bytes (%lld)", path,
                              max_bytes, (long long)st.st_size);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        ret = certs_error_set(-ENOMEM, err, err_len, "%s: out of memory", path);
        goto out;
    }
    while (used < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + used, (size_t)st.st_size - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret =
                certs_error_set(-errno, err, err_len, "%s: read error: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break; /* shrank while reading: take what is there */
        used += (size_t)n;
    }
    buf[used] = '\0';
    *out = buf;
    *len = used;
    buf = NULL;
    ret = 0;
out:
    certs_file_free(buf, used);
    close(fd);
    return ret;
}

void certs_file_free(char *buf, size_t len)
{
    if (buf == NULL)
        return;
    OPENSSL_cleanse(buf, len);
    free(buf);
}

int certs_file_write_new(const char *path, const void *data, size_t len, mode_t mode, char *err,
                         size_t err_len)
{
    const char *p = data;
    size_t done = 0;
    int ret = -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, mode);

    if (fd < 0 && errno == EEXIST)
        return certs_error_set(-EEXIST, err, err_len,
                               "%s: already exists; refusing to overwrite it", path);
    if (fd < 0)
        return certs_error_set(-errno, err, err_len, "%s: cannot create: %s", path,
                               strerror(errno));
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret =
                certs_error_set(-errno, err, err_len, "%s: write error: %s", path, strerror(errno));
            goto fail;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0) {
        ret = certs_error_set(-errno, err, err_len, "%s: fsync: %s", path, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        ret = certs_error_set(-errno, err, err_len, "%s: close: %s", path, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(path);
    return ret;
}

int certs_file_make_dir(const char *dir, char *err, size_t err_len)
{
    struct stat st;

    if (mkdir(dir, 0700) == 0)
        return 0;
    if (errno != EEXIST)
        return certs_error_set(-errno, err, err_len, "%s: cannot create the directory: %s", dir,
                               strerror(errno));
    if (stat(dir, &st) != 0)
        return certs_error_set(-errno, err, err_len, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return certs_error_set(-ENOTDIR, err, err_len, "%s: exists and is not a directory", dir);
    return 0;
}

int certs_file_join(char *out, size_t out_len, const char *dir, const char *name,
                    const char *suffix, char *err, size_t err_len)
{
    int n = snprintf(out, out_len, "%s/%s%s", dir, name, suffix);
    if (n < 0 || (size_t)n >= out_len)
        return certs_error_set(-ENAMETOOLONG, err, err_len, "%s/%s%s: path too long", dir, name,
                               suffix);
    return 0;
}

bool certs_file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 || errno != ENOENT;
}
