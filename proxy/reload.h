/* Live reload of the policy. Three triggers lead to the same path: SIGHUP (cli_run forwards
 * it), a change to any file the configuration was read from (the top file, included files,
 * users files, GeoIP databases: their directories are watched, so editors that save by rename
 * and Kubernetes ConfigMap symlink swaps are seen), and an admin request later.
 *
 * A reload parses the configuration, opens its databases and builds a whole new snapshot on the
 * thread pool, then publishes it on the loop that owns the reloader; connections in flight keep
 * the snapshot they were accepted with. A failed reload logs every problem as
 * "file:line:col: message", says which generation stays in force, and is counted: there is
 * never a moment without a policy. File events are debounced, and a change that arrives while
 * a reload runs starts another one when it ends. */
#ifndef GEOPROXY_PROXY_RELOAD_H
#define GEOPROXY_PROXY_RELOAD_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "policy/config.h"
#include "proxy/runtime.h"

#define RELOAD_DEBOUNCE_MS 50

struct dir_watch;
struct reload_stamps;
struct reload_listener;

#define RELOAD_WAITERS_MAX 16
#define RELOAD_ERROR_MAX 512

/* Told how a requested reload ended: ok, the generation in force, and when it failed the first
 * problem ("file:line:col: message"). */
typedef void (*reload_done_fn)(void *arg, bool ok, uint64_t generation, const char *error);

struct reload_waiter {
    reload_done_fn fn;
    void *arg;
};

/* Called on the reloader's loop after a new policy was published. */
typedef void (*reload_published_fn)(void *arg, const struct config *cfg);

struct reloader {
    uv_loop_t *loop;
    reload_published_fn published;
    void *published_arg;
    struct runtime *rt;
    char *config_path;                 /* NULL: the embedded default configuration */
    struct reload_listener *listeners; /* what the workers bound: a reload must keep it */
    struct config_admin admin;         /* the admin listener as bound (token fields unset) */
    bool admin_token;                  /* it was started with a token */
    size_t n_listeners;
    unsigned workers; /* the running worker count, to warn when a reload changes it */

    uv_timer_t debounce;
    struct dir_watch *watch;      /* the directories of the sources (proxy/dir_watch.h) */
    struct reload_stamps *stamps; /* what the current generation's source files looked like */

    bool running;        /* a load is on the thread pool */
    bool again;          /* a trigger arrived meanwhile: reload once more, forced */
    bool closing;        /* reloader_close() was called */
    uint64_t generation; /* of the snapshot in force */
    uint64_t reloads_ok;
    uint64_t reloads_failed;
    int64_t loaded_at;                 /* Unix time the generation in force was loaded */
    char last_error[RELOAD_ERROR_MAX]; /* the last failed reload's first problem, or "" */

    struct reload_waiter waiting[RELOAD_WAITERS_MAX]; /* for the next load to start */
    size_t n_waiting;
    struct reload_waiter in_job[RELOAD_WAITERS_MAX]; /* for the load running now */
    size_t n_in_job;
};

/* Starts watching the sources of 'running' (the configuration in force, generation 1, loaded
 * from config_path or, when NULL, from the embedded default). 'published' (may be NULL) runs
 * after each successful reload. Returns 0 or a libuv error. */
int reloader_start(struct reloader *r, uv_loop_t *loop, struct runtime *rt, const char *config_path,
                   const struct config *running, reload_published_fn published,
                   void *published_arg);

/* Reloads now, whether or not a file changed; 'trigger' ("SIGHUP", ...) is logged. */
void reloader_request(struct reloader *r, const char *trigger);

/* The same, and 'done' is called once that reload has ended (also when the reloader closes
 * first: ok false). Returns 0, or UV_EBUSY when too many requests wait already. */
int reloader_request_then(struct reloader *r, const char *trigger, reload_done_fn done, void *arg);

/* Forgets a waiter whose object goes away before its reload ended. */
void reloader_forget(struct reloader *r, void *arg);

/* Stops watching, closes the handles and frees what the reloader holds; a load in flight is
 * discarded when it ends. The loop must run until the handles are closed and the load ended.
 * A reloader whose start failed (or that never started, zeroed) is left alone. */
void reloader_close(struct reloader *r);

#endif
