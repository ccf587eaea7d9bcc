/* Bounded reads of configuration and users files; path resolution for include and users. */
#include "policy/config_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void file_describe_errno(int err_no, char err[CONFIG_FILE_ERROR_MAX])
{
    char buf[CONFIG_FILE_ERROR_MAX];
    const char *text = strerror_r(err_no, buf, sizeof buf); /* GNU variant: _GNU_SOURCE */

    snprintf(err, CONFIG_FILE_ERROR_MAX, "%s", text);
}

static void file_describe_size(size_t max_bytes, char err[CONFIG_FILE_ERROR_MAX])
{
    if (max_bytes % (1024u * 1024u) == 0) {
        snprintf(err, CONFIG_FILE_ERROR_MAX, "file is larger than %zu MiB",
                 max_bytes / (1024u * 1024u));
    } else {
        snprintf(err, CONFIG_FILE_ERROR_MAX, "file is larger than %zu bytes", max_bytes);
    }
}

int config_file_read(const char *path, size_t max_bytes, char **text, size_t *len, struct stat *st,
                     char err[CONFIG_FILE_ERROR_MAX])
{
    int ret = -1;
    int fd;
    char *buf = NULL;
    size_t size;
    size_t got = 0;

    *text = NULL;
    *len = 0;
    err[0] = '\0';
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        file_describe_errno(errno, err);
        goto out;
    }
    if (fstat(fd, st) != 0) {
        file_describe_errno(errno, err);
        goto out_close;
    }
    if (!S_ISREG(st->st_mode)) {
        snprintf(err, CONFIG_FILE_ERROR_MAX, "not a regular file");
        goto out_close;
    }
    if (st->st_size < 0 || (unsigned long long)st->st_size > max_bytes) {
        file_describe_size(max_bytes, err);
        goto out_close;
    }
    size = (size_t)st->st_size;
    buf = malloc(size + 1);
    if (buf == NULL) {
        file_describe_errno(ENOMEM, err);
        goto out_close;
    }
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            file_describe_errno(errno, err);
            goto out_free;
        }
        if (n == 0) {
            break; /* the file shrank while we read it: take what is there */
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *text = buf;
    *len = got;
    buf = NULL;
    ret = 0;
out_free:
    free(buf);
out_close:
    close(fd);
out:
    return ret;
}

char *config_path_join(const char *dir, const char *rel)
{
    size_t dir_len;
    size_t rel_len = strlen(rel);
    int slash;
    char *out;

    if (rel[0] == '/' || dir == NULL || strcmp(dir, ".") == 0) {
        if (rel_len >= PATH_MAX) {
            errno = ENAMETOOLONG;
            return NULL;
        }
        return strdup(rel);
    }
    dir_len = strlen(dir);
    slash = dir_len > 0 && dir[dir_len - 1] != '/';
    if (dir_len + (size_t)slash + rel_len >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    out = malloc(dir_len + (size_t)slash + rel_len + 1);
    if (out == NULL) {
        return NULL;
    }
    memcpy(out, dir, dir_len);
    if (slash) {
        out[dir_len] = '/';
    }
    memcpy(out + dir_len + (size_t)slash, rel, rel_len + 1);
    return out;
}

char *config_path_dir(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL) {
        return strdup(".");
    }
    if (slash == path) {
        return strdup("/");
    }
    return strndup(path, (size_t)(slash - path));
}
