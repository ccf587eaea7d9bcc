/* Users files: one "name:hash" per line, '#' comments. Passwords are stored only as salted
 * PBKDF2-HMAC-SHA256 hashes: "$pbkdf2-sha256$ITERATIONS$SALT_B64$HASH_B64". `geoproxy passwd`
 * prints such a line. Pure library: no sockets, no printing. */
#ifndef GEOPROXY_POLICY_USERDB_H
#define GEOPROXY_POLICY_USERDB_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/config.h"

#define USERDB_NAME_MAX 255     /* RFC 1929 limit */
#define USERDB_PASSWORD_MAX 255 /* RFC 1929 limit */
#define USERDB_DEFAULT_ITERATIONS 100000

struct userdb;

/* Loads a users file. A file that others can read or write is refused (it holds password hashes).
 * Returns 0 and a new userdb, or -1 with errors "file:line:col: message" added to diags. Diags are
 * appended to, not cleared; a file with no users loads with a warning. */
int userdb_load(const char *path, struct userdb **out, struct config_diags *diags);

/* Frees a userdb. userdb_free(NULL) is a no-op. */
void userdb_free(struct userdb *db);

/* Number of users. */
size_t userdb_count(const struct userdb *db);

/* True when 'user' exists and 'password' matches its hash. Costs one PBKDF2 run (tens of
 * milliseconds): call it off the event loop. Comparison is constant-time; an unknown user costs
 * the same as a wrong password. Lengths allow names and passwords with NUL bytes to be refused. */
bool userdb_verify(const struct userdb *db, const char *user, size_t user_len, const char *password,
                   size_t password_len);

/* Hashes 'password' with a fresh random salt into out as the stored form ("$pbkdf2-sha256$...").
 * Returns 0, or -1 when out is too small (128 bytes is enough) or randomness failed, and also for
 * what userdb_load or userdb_verify would refuse: iterations outside 1000..10000000, a password
 * over USERDB_PASSWORD_MAX bytes or with a NUL byte. */
int userdb_hash_password(const char *password, size_t password_len, unsigned iterations, char *out,
                         size_t out_len);

#endif
