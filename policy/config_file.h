/* Reading configuration and users files, and resolving paths written in them. Internal to
 * policy/: used by the configuration parser and by the users file loader. */
#ifndef GEOPROXY_POLICY_CONFIG_FILE_H
#define GEOPROXY_POLICY_CONFIG_FILE_H

#include <stddef.h>
#include <sys/stat.h>

#define CONFIG_FILE_MAX_BYTES (1024u * 1024u) /* a configuration file, 1 MiB */
#define CONFIG_FILE_ERROR_MAX 128

/* Reads the regular file at 'path' whole into a new NUL-terminated buffer (the text itself may
 * hold NUL bytes: use *len). Refuses anything but a regular file and files over max_bytes. Never
 * blocks on a FIFO. Returns 0 with *text, *len and *st set, or -1 with a short reason in err
 * ("No such file or directory", "file is larger than 1 MiB"). */
int config_file_read(const char *path, size_t max_bytes, char **text, size_t *len, struct stat *st,
                     char err[CONFIG_FILE_ERROR_MAX]);

/* Resolves 'rel' against directory 'dir' (NULL or ".": the current directory) into a new string;
 * absolute paths stay as they are. Returns NULL with errno ENOMEM, or ENAMETOOLONG when the result
 * would be PATH_MAX bytes or longer. */
char *config_path_join(const char *dir, const char *rel);

/* The directory part of 'path' as a new string: "." when there is none. NULL when out of memory. */
char *config_path_dir(const char *path);

#endif
