/* Dropping root after binding (`user NAME`, `group NAME`): the account is looked up before
 * anything is bound, so that a wrong name stops the start early; the switch happens once every
 * socket is bound and before any worker thread runs; then the process checks that it cannot
 * become root again. Blocking calls (the account database): for start-up only, never on a loop. */
#ifndef GEOPROXY_PROXY_PRIVDROP_H
#define GEOPROXY_PROXY_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "policy/config.h"

struct privdrop {
    bool wanted;    /* 'user' is set */
    bool do_switch; /* running as root: setgid/initgroups/setuid are due */
    char user[CONFIG_ACCOUNT_NAME_MAX + 1];
    uid_t uid;
    gid_t gid;
};

/* Looks up cfg->run_user (and cfg->run_group, else the user's primary group) into *pd. Fails
 * (-1, with a message in err) when an account does not exist, when 'group' is set without
 * 'user', or when not running as root and 'user' is another account than the one running. */
int privdrop_prepare(const struct config *cfg, struct privdrop *pd, char *err, size_t err_len);

/* Switches to the prepared account (nothing when not wanted, or already running as it), then
 * checks that the real, effective and saved ids are the account's and that setuid(0) fails.
 * Returns 0, or -1 with a message in err: the process must then stop. */
int privdrop_apply(const struct privdrop *pd, char *err, size_t err_len);

/* The first of cfg's source files (configuration, included, users, token, key, certificate and
 * GeoIP files) that the process cannot read, or NULL: a reload would fail on it. */
const char *privdrop_unreadable_source(const struct config *cfg);

#endif
