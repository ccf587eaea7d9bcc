#include "proxy/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define ACCOUNT_BUF_SIZE 16384

static int lookup_user(const char *name, uid_t *uid, gid_t *gid, char *err, size_t err_len)
{
    char buf[ACCOUNT_BUF_SIZE];
    struct passwd pw, *found = NULL;
    int rc = getpwnam_r(name, &pw, buf, sizeof(buf), &found);
    if (found == NULL) {
        snprintf(err, err_len, "user %s: %s", name,
                 rc != 0 ? strerror(rc) : "no such user on this system (see getent passwd)");
        return -1;
    }
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    return 0;
}

static int lookup_group(const char *name, gid_t *gid, char *err, size_t err_len)
{
    char buf[ACCOUNT_BUF_SIZE];
    struct group gr, *found = NULL;
    int rc = getgrnam_r(name, &gr, buf, sizeof(buf), &found);
    if (found == NULL) {
        snprintf(err, err_len, "group %s: %s", name,
                 rc != 0 ? strerror(rc) : "no such group on this system (see getent group)");
        return -1;
    }
    *gid = gr.gr_gid;
    return 0;
}

int privdrop_prepare(const struct config *cfg, struct privdrop *pd, char *err, size_t err_len)
{
    memset(pd, 0, sizeof(*pd));
    if (cfg->run_user[0] == '\0') {
        if (cfg->run_group[0] == '\0')
            return 0;
        snprintf(err, err_len,
                 "'group %s' needs 'user NAME' too: geoproxy switches accounts only "
                 "with a user",
                 cfg->run_group);
        return -1;
    }
    pd->wanted = true;
    snprintf(pd->user, sizeof(pd->user), "%s", cfg->run_user);
    if (lookup_user(cfg->run_user, &pd->uid, &pd->gid, err, err_len) != 0)
        return -1;
    if (cfg->run_group[0] != '\0' && lookup_group(cfg->run_group, &pd->gid, err, err_len) != 0)
        return -1;
    if (pd->uid == 0) {
        snprintf(err, err_len, "'user %s' is root (uid 0): name an unprivileged account",
                 cfg->run_user);
        return -1;
    }
    if (geteuid() == 0) {
        pd->do_switch = true;
        return 0;
    }
    /* Not root: only "switching" to who we already are is possible. */
    if (getuid() == pd->uid && geteuid() == pd->uid && getegid() == pd->gid)
        return 0;
    snprintf(err, err_len,
             "'user %s' (uid %u, gid %u): geoproxy runs as uid %u, gid %u, not as root, and "
             "cannot switch accounts; start it as root or remove 'user'",
             cfg->run_user, (unsigned)pd->uid, (unsigned)pd->gid, (unsigned)geteuid(),
             (unsigned)getegid());
    return -1;
}

/* The real, effective and saved ids are all the account's, and root is out of reach. */
static int privdrop_verify(const struct privdrop *pd, char *err, size_t err_len)
{
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    if (getresuid(&ruid, &euid, &suid) != 0 || getresgid(&rgid, &egid, &sgid) != 0) {
        snprintf(err, err_len, "cannot read the process's ids: %s", strerror(errno));
        return -1;
    }
    if (ruid != pd->uid || euid != pd->uid || suid != pd->uid || rgid != pd->gid ||
        egid != pd->gid || sgid != pd->gid) {
        snprintf(err, err_len, "after switching to %s the ids are uid %u/%u/%u gid %u/%u/%u",
                 pd->user, (unsigned)ruid, (unsigned)euid, (unsigned)suid, (unsigned)rgid,
                 (unsigned)egid, (unsigned)sgid);
        return -1;
    }
    if (setuid(0) == 0 || seteuid(0) == 0) {
        snprintf(err, err_len, "after switching to %s the process could become root again",
                 pd->user);
        return -1;
    }
    return 0;
}

int privdrop_apply(const struct privdrop *pd, char *err, size_t err_len)
{
    if (!pd->wanted)
        return 0;
    if (pd->do_switch) {
        /* Groups first: once the uid is not 0 they can no longer be changed. */
        if (initgroups(pd->user, pd->gid) != 0) {
            snprintf(err, err_len, "cannot set the groups of %s: %s", pd->user, strerror(errno));
            return -1;
        }
        if (setgid(pd->gid) != 0) {
            snprintf(err, err_len, "cannot switch to gid %u: %s", (unsigned)pd->gid,
                     strerror(errno));
            return -1;
        }
        if (setuid(pd->uid) != 0) {
            snprintf(err, err_len, "cannot switch to user %s (uid %u): %s", pd->user,
                     (unsigned)pd->uid, strerror(errno));
            return -1;
        }
    }
    return privdrop_verify(pd, err, err_len);
}

const char *privdrop_unreadable_source(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_sources; i++)
        if (access(cfg->sources[i], R_OK) != 0)
            return cfg->sources[i];
    return NULL;
}
