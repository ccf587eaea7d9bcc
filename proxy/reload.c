#include "proxy/reload.h"

#include <errno.h>
#include <stdio.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "geo/geo.h"
#include "policy/policy.h"
#include "proxy/cli.h"
#include "proxy/container_of.h"
#include "proxy/dir_watch.h"
#include "proxy/log.h"

/* What a source file looked like when it was last read: a reload triggered by a file event
 * only runs when one of these changed (stat follows symlinks, so a ConfigMap swap shows). */
struct reload_stamp {
    char *path;
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    bool symlink; /* the path itself is a symlink (a change may come through another name) */
};

struct reload_stamps {
    size_t n;
    struct reload_stamp items[];
};

/* A listener as the workers bound it. */
struct reload_listener {
    char name[CONFIG_NAME_MAX];
    enum listener_kind kind;
    struct sockaddr_storage addr;
};

/* A load on the thread pool. */
struct reload_job {
    uv_work_t work;
    struct reloader *r;
    const char *trigger;
    bool forced;
    const struct reload_stamps *previous; /* the reloader's stamps: read-only while running */
    bool unchanged;
    struct config *cfg;
    struct reload_stamps *stamps; /* of the files just read (or, on failure, of the old ones) */
    struct config_diags diags;
};

static void reload_stamps_free(struct reload_stamps *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->items[i].path);
    free(s);
}

static void reload_stamp_read(struct reload_stamp *st)
{
    struct stat sb;
    st->symlink = lstat(st->path, &sb) == 0 && S_ISLNK(sb.st_mode);
    st->exists = stat(st->path, &sb) == 0;
    if (!st->exists)
        return;
    st->dev = sb.st_dev;
    st->ino = sb.st_ino;
    st->size = sb.st_size;
    st->mtime = sb.st_mtim;
}

/* Stats every path; NULL on out-of-memory. Blocking: thread pool only. */
static struct reload_stamps *reload_stamps_take(char *const *paths, size_t n)
{
    struct reload_stamps *s = calloc(1, sizeof *s + n * sizeof s->items[0]);
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        s->items[i].path = strdup(paths[i]);
        if (s->items[i].path == NULL) {
            reload_stamps_free(s);
            return NULL;
        }
        s->n = i + 1;
        reload_stamp_read(&s->items[i]);
    }
    return s;
}

static bool reload_stamp_same(const struct reload_stamp *a, const struct reload_stamp *b)
{
    if (a->exists != b->exists)
        return false;
    return !a->exists ||
           (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
            a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec);
}

/* True when every file still looks as recorded. Blocking: thread pool only. */
static bool reload_stamps_unchanged(const struct reload_stamps *s)
{
    for (size_t i = 0; i < s->n; i++) {
        struct reload_stamp now = {.path = s->items[i].path};
        reload_stamp_read(&now);
        if (!reload_stamp_same(&now, &s->items[i]))
            return false;
    }
    return true;
}

static char **reload_stamp_paths(const struct reload_stamps *s)
{
    char **paths = calloc(s->n + 1, sizeof *paths);
    if (paths != NULL)
        for (size_t i = 0; i < s->n; i++)
            paths[i] = s->items[i].path;
    return paths;
}

/* ---- logging ----------------------------------------------------------------------------- */

/* trigger: what caused a reload, NULL for the first load. */
static void reload_log_policy(const struct config *cfg, uint64_t generation, const char *trigger)
{
    const struct config_geoip *g = &cfg->geoip;
    log_msg(LOG_INFO, "policy generation %llu loaded%s%s%s: %zu rule(s) from %s",
            (unsigned long long)generation, trigger != NULL ? " (" : "",
            trigger != NULL ? trigger : "", trigger != NULL ? ")" : "", cfg->n_rules, cfg->path);
    if (g->country == NULL) {
        log_msg(LOG_WARN, "no GeoIP country database: public addresses classify as 'unknown' "
                          "(see docs/GEO.md)");
        return;
    }
    time_t built = (time_t)geo_db_build_epoch(g->country);
    struct tm tm;
    char date[32] = "?";
    if (gmtime_r(&built, &tm) != NULL)
        strftime(date, sizeof date, "%Y-%m-%d", &tm);
    long age_days = (long)((time(NULL) - built) / 86400);
    log_msg(LOG_INFO, "GeoIP country database%s: %s (%s, built %s, %ld day(s) old)",
            g->country_is_default ? " (default)" : "", g->country_path, geo_db_type(g->country),
            date, age_days < 0 ? 0 : age_days);
    if (g->asn != NULL)
        log_msg(LOG_INFO, "GeoIP ASN database: %s (%s)", g->asn_path, geo_db_type(g->asn));
}

static void reload_log_diags(const struct config_diags *d)
{
    for (size_t i = 0; i < d->count; i++)
        log_msg(d->items[i].severity == CONFIG_ERROR ? LOG_ERROR : LOG_WARN, "%s",
                d->items[i].text);
    if (d->dropped > 0)
        log_msg(LOG_ERROR, "(%zu more problem(s) not shown)", d->dropped);
}

/* ---- watching ---------------------------------------------------------------------------- */

static void reload_start_job(struct reloader *r, const char *trigger, bool forced);

static void on_debounce(uv_timer_t *timer)
{
    struct reloader *r = container_of(timer, struct reloader, debounce);
    if (r->running)
        r->again = true; /* the load in flight may have read the file before this change */
    else
        reload_start_job(r, "file change", false);
}

/* Whether an event about 'name' in 'dir' may concern a source: it names one, or a source there
 * is a symlink (a Kubernetes ConfigMap swaps "..data", not the file's own name). Other files
 * there do not start a reload. */
static bool reload_event_matters(const struct reloader *r, const char *dir, const char *name)
{
    const struct reload_stamps *s = r->stamps;
    if (name == NULL || s == NULL)
        return true;
    size_t dir_len = strlen(dir);
    for (size_t i = 0; i < s->n; i++) {
        const char *path = s->items[i].path;
        const char *base = strrchr(path, '/');
        size_t path_dir_len = base != NULL ? (size_t)(base - path) : 1;
        base = base != NULL ? base + 1 : path;
        bool in_dir = base != path ? path_dir_len == dir_len && memcmp(path, dir, dir_len) == 0
                                   : strcmp(dir, ".") == 0;
        if (in_dir && (s->items[i].symlink || strcmp(base, name) == 0))
            return true;
    }
    return false;
}

static void on_dir_event(void *arg, const char *dir, const char *name)
{
    struct reloader *r = arg;
    if (!r->closing && reload_event_matters(r, dir, name))
        uv_timer_start(&r->debounce, on_debounce, RELOAD_DEBOUNCE_MS, 0);
}

/* The paths of the sources, for reload_dir_is_needed. */
struct reload_paths {
    char *const *paths;
    size_t n;
};

/* True if one of the paths lies directly in dir. */
static bool reload_dir_is_needed(const char *dir, void *arg)
{
    const struct reload_paths *p = arg;
    for (size_t i = 0; i < p->n; i++) {
        char *copy = strdup(p->paths[i]);
        bool same = copy != NULL && strcmp(dirname(copy), dir) == 0;
        free(copy);
        if (same)
            return true;
    }
    return false;
}

/* Watches the directory of every source; the directories, not the files, so that a file
 * replaced by rename or a swapped symlink is still seen (proxy/dir_watch.h). Watches that are
 * still needed are kept as they are: closing and opening them again would lose a change made in
 * between. */
static void reload_watch_sources(struct reloader *r, char *const *paths, size_t n)
{
    if (r->watch == NULL) {
        int err = dir_watch_new(r->loop, on_dir_event, r, &r->watch);
        if (err != 0) {
            log_msg(LOG_WARN,
                    "cannot watch the policy's files for changes (%s); SIGHUP still "
                    "reloads",
                    uv_strerror(err));
            return;
        }
    }
    struct reload_paths keep = {paths, n};
    dir_watch_keep_only(r->watch, reload_dir_is_needed, &keep);
    for (size_t i = 0; i < n; i++) {
        char *copy = strdup(paths[i]);
        if (copy == NULL)
            continue;
        const char *dir = dirname(copy);
        int err = dir_watch_add(r->watch, dir); /* a no-op when watched */
        if (err == UV_ENOSPC)
            log_msg(LOG_WARN,
                    "not watching %s: at most %d directories are watched (SIGHUP still "
                    "reloads)",
                    dir, DIR_WATCH_MAX);
        else if (err != 0)
            log_msg(LOG_WARN, "cannot watch %s for policy changes (%s); SIGHUP still reloads", dir,
                    uv_strerror(err));
        free(copy);
    }
}

/* ---- loading ----------------------------------------------------------------------------- */

static void reload_job_run(uv_work_t *work)
{
    struct reload_job *job = container_of(work, struct reload_job, work);
    if (!job->forced && job->previous != NULL && reload_stamps_unchanged(job->previous)) {
        job->unchanged = true;
        return;
    }
    if (cli_config_load(job->r->config_path, &job->cfg, &job->diags) == 0)
        job->stamps = reload_stamps_take(job->cfg->sources, job->cfg->n_sources);
    else if (job->previous != NULL) {
        /* Remember the broken files as they are, so only a further edit retries. */
        char **paths = reload_stamp_paths(job->previous);
        if (paths != NULL)
            job->stamps = reload_stamps_take(paths, job->previous->n);
        free(paths);
    }
}

static const struct reload_listener *reload_find_listener(const struct reload_listener *list,
                                                          size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].name, name) == 0)
            return &list[i];
    return NULL;
}

/* The workers bound the listeners at start; a policy with other listeners cannot be served. */
static bool reload_listeners_kept(const struct reloader *r, const struct config *cfg)
{
    if (cfg->n_listeners != r->n_listeners) {
        log_msg(LOG_ERROR,
                "%s: the listeners changed (%zu instead of %zu); listeners take "
                "effect only at start: restart geoproxy to apply this",
                cfg->path, cfg->n_listeners, r->n_listeners);
        return false;
    }
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct config_listener *l = &cfg->listeners[i];
        const struct reload_listener *was =
            reload_find_listener(r->listeners, r->n_listeners, l->name);
        if (was == NULL || was->kind != l->kind ||
            memcmp(&was->addr, &l->addr, sizeof l->addr) != 0) {
            log_msg(LOG_ERROR,
                    "%s: listener '%s' is new or changed; listeners take effect "
                    "only at start: restart geoproxy to apply this",
                    cfg->path, l->name);
            return false;
        }
    }
    return true;
}

/* The admin listener is bound at start too; and a reload may not take its token away (a
 * listener that needs one would be left open). Rotating the token file's content is fine. */
static bool reload_admin_kept(const struct reloader *r, const struct config *cfg)
{
    const struct config_admin *a = &cfg->admin;
    bool same = a->enabled == r->admin.enabled && a->unix_mode == r->admin.unix_mode &&
                strcmp(a->unix_path, r->admin.unix_path) == 0 &&
                memcmp(&a->addr, &r->admin.addr, sizeof a->addr) == 0 &&
                (a->token_path != NULL) == r->admin_token;
    if (!same)
        log_msg(LOG_ERROR,
                "%s: the admin line changed (address, socket, mode, or whether it has a "
                "token); it takes effect only at start: restart geoproxy to apply this",
                cfg->path);
    return same;
}

static void reload_publish(struct reloader *r, struct reload_job *job)
{
    struct config *cfg = job->cfg;
    job->cfg = NULL;
    if (cfg->workers != r->workers)
        log_msg(LOG_WARN, "%s: 'workers' changes take effect at the next start", cfg->path);
    struct policy_snapshot *snap = policy_snapshot_new(cfg, r->generation + 1);
    if (snap == NULL) {
        r->reloads_failed++;
        log_msg(LOG_ERROR, "reload (%s) failed: out of memory; keeping policy generation %llu",
                job->trigger, (unsigned long long)r->generation);
        return;
    }
    const struct config *published = policy_snapshot_config(snap);
    r->generation++;
    r->reloads_ok++;
    r->loaded_at = (int64_t)time(NULL);
    r->last_error[0] = '\0';
    /* Published and watched before it is announced: whoever reads the log line gets the new
     * policy, and a change made after it is seen. Our reference goes to the runtime, which
     * only this loop replaces: 'published' stays valid. */
    runtime_publish_snapshot(r->rt, snap);
    reload_watch_sources(r, published->sources, published->n_sources);
    reload_log_policy(published, r->generation, job->trigger);
    if (r->published != NULL)
        r->published(r->published_arg, published);
}

/* Frees what the reloader holds once nothing uses it any more. */
static void reload_release(struct reloader *r)
{
    reload_stamps_free(r->stamps);
    r->stamps = NULL;
    free(r->listeners);
    r->listeners = NULL;
    free(r->config_path);
    r->config_path = NULL;
}

static void reload_note_first_error(struct reloader *r, const struct config_diags *d)
{
    for (size_t i = 0; i < d->count; i++) {
        if (d->items[i].severity == CONFIG_ERROR) {
            snprintf(r->last_error, sizeof r->last_error, "%s", d->items[i].text);
            return;
        }
    }
}

/* Tells everyone waiting for the load that just ended. */
static void reload_tell_waiters(struct reloader *r, bool ok)
{
    size_t n = r->n_in_job;
    struct reload_waiter told[RELOAD_WAITERS_MAX];
    memcpy(told, r->in_job, n * sizeof told[0]);
    r->n_in_job = 0;
    for (size_t i = 0; i < n; i++)
        told[i].fn(told[i].arg, ok, r->generation, ok ? "" : r->last_error);
}

static void reload_job_done(uv_work_t *work, int status)
{
    struct reload_job *job = container_of(work, struct reload_job, work);
    struct reloader *r = job->r;
    uint64_t generation_before = r->generation;

    r->running = false;
    if (r->closing) {
        config_free(job->cfg);
        reload_stamps_free(job->stamps);
        free(job);
        reload_release(r);
        return;
    }
    if (status == 0 && !job->unchanged) {
        if (job->stamps != NULL) {
            reload_stamps_free(r->stamps);
            r->stamps = job->stamps;
            job->stamps = NULL;
        }
        reload_log_diags(&job->diags);
        reload_note_first_error(r, &job->diags);
        if (job->cfg != NULL && reload_listeners_kept(r, job->cfg) &&
            reload_admin_kept(r, job->cfg)) {
            reload_publish(r, job);
        } else {
            r->reloads_failed++;
            log_msg(LOG_ERROR, "reload (%s) failed: keeping policy generation %llu", job->trigger,
                    (unsigned long long)r->generation);
        }
    }
    bool unchanged = job->unchanged;
    config_free(job->cfg);
    reload_stamps_free(job->stamps);
    free(job);
    reload_tell_waiters(r, unchanged || r->generation != generation_before);
    if (r->again) {
        r->again = false;
        reload_start_job(r, "file change", true);
    }
}

static void reload_start_job(struct reloader *r, const char *trigger, bool forced)
{
    if (r->closing)
        return;
    if (r->running) {
        r->again = true;
        return;
    }
    struct reload_job *job = calloc(1, sizeof *job);
    if (job == NULL) {
        log_msg(LOG_ERROR, "reload (%s) failed: out of memory; keeping policy generation %llu",
                trigger, (unsigned long long)r->generation);
        return;
    }
    job->r = r;
    job->trigger = trigger;
    job->forced = forced;
    job->previous = r->stamps;
    if (r->n_in_job == 0) { /* the waiters so far get this load's result */
        memcpy(r->in_job, r->waiting, r->n_waiting * sizeof r->waiting[0]);
        r->n_in_job = r->n_waiting;
        r->n_waiting = 0;
    }
    int err = uv_queue_work(r->loop, &job->work, reload_job_run, reload_job_done);
    if (err != 0) {
        snprintf(r->last_error, sizeof r->last_error, "cannot start a reload: %s",
                 uv_strerror(err));
        log_msg(LOG_ERROR, "reload (%s) failed: %s; keeping policy generation %llu", trigger,
                uv_strerror(err), (unsigned long long)r->generation);
        free(job);
        reload_tell_waiters(r, false);
        return;
    }
    r->running = true;
}

/* ---- public ------------------------------------------------------------------------------ */

int reloader_start(struct reloader *r, uv_loop_t *loop, struct runtime *rt, const char *config_path,
                   const struct config *running, reload_published_fn published, void *published_arg)
{
    memset(r, 0, sizeof *r); /* r->loop stays NULL until it started: reloader_close skips it */
    r->published = published;
    r->published_arg = published_arg;
    r->rt = rt;
    r->generation = 1;
    r->workers = running->workers;
    if (config_path != NULL && (r->config_path = strdup(config_path)) == NULL)
        return UV_ENOMEM;
    r->listeners = calloc(running->n_listeners + 1, sizeof *r->listeners);
    if (r->listeners == NULL) {
        free(r->config_path);
        return UV_ENOMEM;
    }
    for (size_t i = 0; i < running->n_listeners; i++) {
        const struct config_listener *l = &running->listeners[i];
        memcpy(r->listeners[i].name, l->name, sizeof l->name);
        r->listeners[i].kind = l->kind;
        r->listeners[i].addr = l->addr;
    }
    r->n_listeners = running->n_listeners;
    r->admin = running->admin;
    r->admin.token_path = r->admin.token = NULL; /* owned by 'running' */
    r->admin_token = running->admin.token_path != NULL;
    /* The first stamps are taken now: startup may block; the loop serves nothing yet. */
    r->stamps = reload_stamps_take(running->sources, running->n_sources);
    r->loop = loop;
    uv_timer_init(loop, &r->debounce);
    r->loaded_at = (int64_t)time(NULL);
    reload_log_policy(running, r->generation, NULL);
    reload_watch_sources(r, running->sources, running->n_sources);
    return 0;
}

void reloader_request(struct reloader *r, const char *trigger)
{
    reload_start_job(r, trigger, true);
}

int reloader_request_then(struct reloader *r, const char *trigger, reload_done_fn done, void *arg)
{
    if (r->closing || r->n_waiting == RELOAD_WAITERS_MAX)
        return UV_EBUSY;
    r->waiting[r->n_waiting++] = (struct reload_waiter){done, arg};
    reload_start_job(r, trigger, true);
    return 0;
}

static void reload_forget_in(struct reload_waiter *list, size_t *n, void *arg)
{
    size_t kept = 0;
    for (size_t i = 0; i < *n; i++)
        if (list[i].arg != arg)
            list[kept++] = list[i];
    *n = kept;
}

void reloader_forget(struct reloader *r, void *arg)
{
    reload_forget_in(r->waiting, &r->n_waiting, arg);
    reload_forget_in(r->in_job, &r->n_in_job, arg);
}

void reloader_close(struct reloader *r)
{
    if (r->closing || r->loop == NULL)
        return;
    r->closing = true;
    dir_watch_close(r->watch);
    r->watch = NULL;
    uv_close((uv_handle_t *)&r->debounce, NULL);
    if (!r->running) /* else the job in flight still reads r->stamps: it releases them */
        reload_release(r);
}
