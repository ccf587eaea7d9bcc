/* `geoproxy run`: the main thread starts the workers, then waits for signals and reloads. SIGTERM
 * and SIGINT stop accepting and drain; a second one exits at once. SIGHUP reloads the policy. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "policy/policy.h"
#include "proxy/cli.h"
#include "proxy/container_of.h"
#include "proxy/admin.h"
#include "proxy/health_check.h"
#include "proxy/log.h"
#include "proxy/privdrop.h"
#include "proxy/reload.h"
#include "proxy/runtime.h"
#include "proxy/worker.h"

#define MAX_WORKERS 256
#define STOP_POLL_MS 50

struct server {
    uv_loop_t *loop;
    struct runtime rt;
    struct worker *workers;
    unsigned n_workers;
    uv_signal_t sigterm, sigint, sighup, sigusr1;
    uv_timer_t stop_poll;
    struct reloader reloader;
    struct admin_server *admin;
    struct health_checker health;
    struct privdrop drop; /* the account to run as once everything is bound */
    bool stopping;
};

static void server_close_handles(struct server *s)
{
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sighup, NULL);
    uv_close((uv_handle_t *)&s->sigusr1, NULL);
    uv_close((uv_handle_t *)&s->stop_poll, NULL);
}

static void on_stop_poll(uv_timer_t *timer)
{
    struct server *s = container_of(timer, struct server, stop_poll);
    for (unsigned i = 0; i < s->n_workers; i++)
        if (!atomic_load(&s->workers[i].finished))
            return;
    server_close_handles(s);
    reloader_close(&s->reloader);
}

static void on_stop_signal(uv_signal_t *sig, int signum)
{
    struct server *s = sig->data;
    if (s->stopping) {
        log_msg(LOG_WARN, "second %s: exiting without waiting", strsignal(signum));
        _exit(1); /* no atexit handlers while worker threads still run */
    }
    s->stopping = true;
    log_msg(LOG_INFO, "%s: no longer accepting; finishing the connections in flight",
            strsignal(signum));
    admin_close(s->admin); /* it asks workers questions: not while they stop */
    s->admin = NULL;
    health_checker_close(&s->health);
    for (unsigned i = 0; i < s->n_workers; i++)
        worker_request_stop(&s->workers[i]);
    uv_timer_start(&s->stop_poll, on_stop_poll, STOP_POLL_MS, STOP_POLL_MS);
}

static void on_sighup(uv_signal_t *sig, int signum)
{
    struct server *s = sig->data;
    if (!s->stopping)
        reloader_request(&s->reloader, "SIGHUP");
}

/* After a reload: with "on-reload reevaluate" every worker decides its connections again. */
static void on_policy_published(void *arg, const struct config *cfg)
{
    struct server *s = arg;
    if (s->stopping)
        return;
    if (strcmp(cfg->run_user, s->drop.wanted ? s->drop.user : "") != 0)
        log_msg(LOG_WARN, "'user' changed in the configuration: it takes effect at the next "
                          "start (still running as the account chosen at start)");
    health_checker_kick(&s->health); /* new upstreams, new addresses, new declared egress */
    if (cfg->on_reload != ON_RELOAD_REEVALUATE)
        return;
    for (unsigned i = 0; i < s->n_workers; i++)
        worker_request_reevaluate(&s->workers[i]);
}

static void on_sigusr1(uv_signal_t *sig, int signum)
{
    if (log_file() == NULL)
        return;
    int err = log_reopen();
    if (err != 0)
        log_msg(LOG_ERROR,
                "SIGUSR1: cannot reopen the log file %s: %s; still writing to the "
                "old one",
                log_file(), strerror(-err));
    else
        log_msg(LOG_INFO, "SIGUSR1: log file %s reopened", log_file());
}

static unsigned worker_count(const struct config *cfg)
{
    unsigned n = cfg->workers != 0 ? cfg->workers : uv_available_parallelism();
    if (n == 0)
        n = 1;
    return n > MAX_WORKERS ? MAX_WORKERS : n;
}

static void log_listeners(const struct config *cfg, unsigned n_workers)
{
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        char addr[64];
        const struct config_listener *l = &cfg->listeners[i];
        log_msg(LOG_INFO, "listening on %s (%s, listener %s, %s)",
                config_format_addr(&l->addr, addr, sizeof(addr)),
                config_listener_kind_name(l->kind), l->name,
                l->kind == LISTENER_TUNNEL ? "client certificates required"
                : l->users != NULL         ? "with authentication"
                                           : "no authentication");
    }
    log_msg(LOG_INFO, "geoproxy %s ready: %u worker thread(s)", GEOPROXY_VERSION, n_workers);
}

/* After every socket is bound and before any worker thread runs: become 'user', and make sure
 * every file a reload reads is still readable. */
static int server_drop_privileges(struct server *s, const struct config *cfg)
{
    char err[256];
    if (!s->drop.wanted)
        return 0;
    if (privdrop_apply(&s->drop, err, sizeof(err)) != 0) {
        log_msg(LOG_ERROR, "%s", err);
        return -1;
    }
    const char *unreadable = privdrop_unreadable_source(cfg);
    if (unreadable != NULL) {
        log_msg(LOG_ERROR,
                "user %s cannot read %s, which every reload reads: make it readable by that "
                "user (chown %s %s, keeping mode 600 for secrets)",
                s->drop.user, unreadable, s->drop.user, unreadable);
        return -1;
    }
    log_msg(LOG_INFO, "running as user %s (uid %u, gid %u)", s->drop.user, (unsigned)s->drop.uid,
            (unsigned)s->drop.gid);
    return 0;
}

static int server_start_workers(struct server *s, const struct config *cfg)
{
    unsigned bound;
    for (bound = 0; bound < s->n_workers; bound++)
        if (worker_init(&s->workers[bound], &s->rt, bound, cfg) != 0)
            break;
    if (bound < s->n_workers || server_drop_privileges(s, cfg) != 0) {
        for (unsigned j = 0; j < bound; j++)
            worker_join(&s->workers[j]);
        return -1;
    }
    for (unsigned i = 0; i < s->n_workers; i++) {
        if (worker_start(&s->workers[i]) != 0) {
            log_msg(LOG_ERROR, "cannot start worker thread %u", i);
            abort(); /* threads already running cannot be unwound cleanly */
        }
    }
    return 0;
}

static void server_watch_signals(struct server *s)
{
    uv_signal_init(s->loop, &s->sigterm);
    uv_signal_init(s->loop, &s->sigint);
    uv_signal_init(s->loop, &s->sighup);
    uv_signal_init(s->loop, &s->sigusr1);
    uv_timer_init(s->loop, &s->stop_poll);
    s->sigterm.data = s->sigint.data = s->sighup.data = s;
    uv_signal_start(&s->sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&s->sigint, on_stop_signal, SIGINT);
    uv_signal_start(&s->sighup, on_sighup, SIGHUP);
    uv_signal_start(&s->sigusr1, on_sigusr1, SIGUSR1);
}

int cli_run(struct config *cfg, const char *config_path)
{
    signal(SIGPIPE, SIG_IGN); /* a peer that went away is an error code, not a death */
    struct server s = {.loop = uv_default_loop()};
    s.n_workers = worker_count(cfg);
    char err[256];
    if (privdrop_prepare(cfg, &s.drop, err, sizeof(err)) != 0) {
        log_msg(LOG_ERROR, "%s; not started", err);
        config_free(cfg); /* ours: the snapshot would have taken it */
        return 1;
    }
    struct policy_snapshot *snap = policy_snapshot_new(cfg, 1);
    if (snap == NULL || runtime_init(&s.rt, snap) != 0) {
        log_msg(LOG_ERROR, "out of memory");
        policy_snapshot_release(snap);
        return 1;
    }
    /* Signals first: once a port accepts, SIGTERM must already mean "drain", not "die". */
    server_watch_signals(&s);
    s.workers = calloc(s.n_workers, sizeof(*s.workers));
    /* The reloader and the admin listener come before the workers: once a proxy port accepts,
     * the admin port does too, and a bind error stops the start like a listener's would. */
    struct admin_deps deps = {
        .rt = &s.rt,
        .workers = s.workers,
        .n_workers = s.n_workers,
        .reloader = &s.reloader,
    };
    bool started = s.workers != NULL && reloader_start(&s.reloader, s.loop, &s.rt, config_path, cfg,
                                                       on_policy_published, &s) == 0;
    if (started && cfg->admin.enabled && admin_start(s.loop, &cfg->admin, &deps, &s.admin) != 0)
        started = false;
    if (started && health_checker_start(&s.health, s.loop, &s.rt, cfg) != 0) {
        log_msg(LOG_ERROR, "cannot start the upstream health checker");
        started = false;
    }
    if (!started || server_start_workers(&s, cfg) != 0) {
        free(s.workers);
        admin_close(s.admin);
        health_checker_close(&s.health);
        reloader_close(&s.reloader);
        server_close_handles(&s);
        uv_run(s.loop, UV_RUN_DEFAULT);
        uv_loop_close(s.loop);
        runtime_destroy(&s.rt);
        log_msg(LOG_ERROR, "not started");
        return 1;
    }
    log_listeners(cfg, s.n_workers);
    uv_run(s.loop, UV_RUN_DEFAULT);

    for (unsigned i = 0; i < s.n_workers; i++)
        worker_join(&s.workers[i]);
    free(s.workers);
    runtime_destroy(&s.rt);
    uv_loop_close(s.loop);
    log_msg(LOG_INFO, "stopped");
    return 0;
}
