#include "proxy/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/conn.h"
#include "proxy/container_of.h"
#include "proxy/inspect.h"
#include "proxy/log.h"
#include "proxy/resolver.h"
#include "proxy/runtime.h"

#define LISTEN_BACKLOG 4096
#define RELAY_BUFS_KEPT_IDLE 64

/* How long a worker stops accepting on a listener after an accept error it cannot clear. */
#define ACCEPT_PAUSE_MS 500

static void on_new_connection(uv_stream_t *server, int status);

static void on_listener_resume(uv_timer_t *timer);

static void on_listener_paused(uv_handle_t *handle)
{
    struct worker_listener *wl = container_of(handle, struct worker_listener, tcp);
    if (!wl->worker->draining)
        uv_timer_start(&wl->resume_timer, on_listener_resume, ACCEPT_PAUSE_MS, 0);
}

/* Takes the listening socket out of the loop for ACCEPT_PAUSE_MS. libuv reports an accept error
 * it could not clear itself (EMFILE once its reserve descriptor is gone, ENFILE, ENOBUFS) and
 * then calls accept again at once, in the same loop iteration, for as long as the condition
 * lasts: a busy loop that starves the worker's own connections and floods the log. Closing the
 * handle is the only way out of that loop; the socket itself stays open in spare_fd, with the
 * connections queued on it, so no descriptor is needed here. */
static void listener_pause(struct worker_listener *wl, int status)
{
    log_msg(LOG_WARN,
            "accept on %s failed: %s; worker %u stops accepting there for %d ms "
            "(if this repeats, raise the open files limit: ulimit -n, LimitNOFILE)",
            wl->name, uv_strerror(status), wl->worker->id, ACCEPT_PAUSE_MS);
    wl->paused = true;
    uv_close((uv_handle_t *)&wl->tcp, on_listener_paused);
}

static void on_listener_resume(uv_timer_t *timer)
{
    struct worker_listener *wl = container_of(timer, struct worker_listener, resume_timer);
    struct worker *w = wl->worker;
    if (w->draining || wl->spare_fd < 0)
        return;
    int fd = fcntl(wl->spare_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) { /* still no descriptor free: wait again */
        uv_timer_start(&wl->resume_timer, on_listener_resume, ACCEPT_PAUSE_MS, 0);
        return;
    }
    int err = uv_tcp_init(&w->loop, &wl->tcp);
    if (err != 0) {
        close(fd);
        uv_timer_start(&wl->resume_timer, on_listener_resume, ACCEPT_PAUSE_MS, 0);
        return;
    }
    err = uv_tcp_open(&wl->tcp, fd);
    if (err != 0)
        close(fd); /* not the handle's yet */
    else
        err = uv_listen((uv_stream_t *)&wl->tcp, LISTEN_BACKLOG, on_new_connection);
    if (err != 0) {
        log_msg(LOG_WARN, "listener %s: worker %u cannot accept again yet: %s", wl->name, w->id,
                uv_strerror(err));
        uv_close((uv_handle_t *)&wl->tcp, on_listener_paused);
        return;
    }
    wl->paused = false;
    log_msg(LOG_INFO, "listener %s: worker %u accepts again", wl->name, w->id);
}

static bool accept_error_is_exhaustion(int status)
{
    return status == UV_EMFILE || status == UV_ENFILE || status == UV_ENOBUFS ||
           status == UV_ENOMEM;
}

static void on_new_connection(uv_stream_t *server, int status)
{
    struct worker_listener *wl = container_of(server, struct worker_listener, tcp);
    if (status < 0) {
        if (accept_error_is_exhaustion(status) && wl->spare_fd >= 0 && !wl->worker->draining)
            listener_pause(wl, status);
        else
            log_msg(LOG_WARN, "accept on %s failed: %s", wl->name, uv_strerror(status));
        return;
    }
    conn_accept(wl->worker, server, wl->name);
}

/* Closes a listener's handles and its spare socket (idempotent). */
static void listener_close(struct worker_listener *wl)
{
    if (wl->tcp.loop != NULL && !uv_is_closing((uv_handle_t *)&wl->tcp))
        uv_close((uv_handle_t *)&wl->tcp, NULL);
    if (wl->resume_timer.loop != NULL && !uv_is_closing((uv_handle_t *)&wl->resume_timer))
        uv_close((uv_handle_t *)&wl->resume_timer, NULL);
    if (wl->spare_fd >= 0) {
        close(wl->spare_fd);
        wl->spare_fd = -1;
    }
}

/* Binds one SO_REUSEPORT socket of a listener on the worker's loop. */
static int listener_bind(struct worker *w, struct worker_listener *wl,
                         const struct config_listener *cl)
{
    char addr[64];
    config_format_addr(&cl->addr, addr, sizeof(addr));
    wl->spare_fd = -1;
    wl->worker = w;
    int err = uv_timer_init(&w->loop, &wl->resume_timer);
    if (err != 0)
        return err;
    err = uv_tcp_init_ex(&w->loop, &wl->tcp, cl->addr.ss_family);
    if (err != 0)
        return err;
    snprintf(wl->name, sizeof(wl->name), "%s", cl->name);

    uv_os_fd_t fd;
    int one = 1;
    err = uv_fileno((uv_handle_t *)&wl->tcp, &fd);
    if (err == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        err = uv_translate_sys_error(errno);
    if (err == 0)
        err = uv_tcp_bind(&wl->tcp, (const struct sockaddr *)&cl->addr, 0);
    if (err == 0)
        err = uv_listen((uv_stream_t *)&wl->tcp, LISTEN_BACKLOG, on_new_connection);
    if (err == 0 && (wl->spare_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
        err = uv_translate_sys_error(errno);
    if (err != 0)
        log_msg(LOG_ERROR, "listener %s: cannot listen on %s: %s", cl->name, addr,
                uv_strerror(err));
    return err;
}

/* SO_REUSEPORT lets a second process bind the same address silently and steal half of the
 * connections. Binding once without it first turns that into an honest "address in use". */
static int listener_check_free(const struct config_listener *cl)
{
    int fd = socket(cl->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    int err = 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    socklen_t len =
        cl->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (const struct sockaddr *)&cl->addr, len) != 0)
        err = uv_translate_sys_error(errno);
    close(fd);
    if (err != 0) {
        char addr[64];
        log_msg(LOG_ERROR, "listener %s: cannot listen on %s: %s", cl->name,
                config_format_addr(&cl->addr, addr, sizeof(addr)), uv_strerror(err));
    }
    return err;
}

static void on_wakeup(uv_async_t *async);
static void on_drain_timeout(uv_timer_t *timer);

static void close_handle_if_open(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int worker_init(struct worker *w, struct runtime *rt, unsigned id, const struct config *cfg)
{
    memset(w, 0, sizeof(*w));
    w->rt = rt;
    w->id = id;
    w->index = id;
    atomic_init(&w->inspection, NULL);
    atomic_init(&w->stop_requested, false);
    atomic_init(&w->reevaluate_requested, false);
    atomic_init(&w->finished, false);
    bufpool_init(&w->relay_bufs, RELAY_BUF_SIZE, RELAY_BUFS_KEPT_IDLE);
    int err = uv_loop_init(&w->loop);
    if (err != 0)
        return err;
    err = uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    if (err == 0)
        err = uv_timer_init(&w->loop, &w->drain_timer);
    if (err == 0)
        err = uv_prepare_init(&w->loop, &w->log_flusher);
    if (err != 0)
        goto fail;

    struct resolver_options ropts = {
        .servers = cfg->resolvers,
        .n_servers = cfg->n_resolvers,
        .timeout_ms = cfg->timeouts.dns_ms,
        .cache_entries = cfg->limits.dns_cache_entries,
    };
    err = resolver_new(&w->loop, &ropts, &w->resolver);
    if (err != 0) {
        log_msg(LOG_ERROR, "cannot start the DNS resolver: %s", uv_strerror(err));
        goto fail;
    }
    err = tls_pool_init(&w->tls_pool, &w->loop, w->resolver, &w->tls_sessions, &w->metrics);
    if (err == 0)
        err = mux_pool_init(&w->mux_pool, &w->loop);
    if (err != 0)
        goto fail;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        if (id == 0 && (err = listener_check_free(&cfg->listeners[i])) != 0)
            goto fail;
        err = listener_bind(w, &w->listeners[i], &cfg->listeners[i]);
        w->n_listeners = i + 1;
        if (err != 0)
            goto fail;
    }
    return 0;

fail:
    worker_join(w);
    return err;
}

/* A line is in the file before the loop waits again: tests, `geoproxy tail` and operators see
 * what happened in the order it happened. */
static void on_log_flush(uv_prepare_t *prepare)
{
    (void)prepare;
    log_flush();
}

static void worker_thread_main(void *arg)
{
    struct worker *w = arg;
    log_buffer_thread();
    uv_prepare_start(&w->log_flusher, on_log_flush);
    uv_unref((uv_handle_t *)&w->log_flusher); /* flushing alone keeps no loop alive */
    uv_run(&w->loop, UV_RUN_DEFAULT);
    log_release_thread();
    atomic_store(&w->finished, true);
}

int worker_start(struct worker *w)
{
    int err = uv_thread_create(&w->thread, worker_thread_main, w);
    w->thread_started = err == 0;
    return err;
}

void worker_request_stop(struct worker *w)
{
    atomic_store(&w->stop_requested, true);
    uv_async_send(&w->wakeup);
}

/* Closes the loop's own handles once nothing else keeps the worker alive. */
static void worker_finish_if_drained(struct worker *w)
{
    if (!w->draining || w->conns != NULL)
        return;
    close_handle_if_open((uv_handle_t *)&w->wakeup);
    close_handle_if_open((uv_handle_t *)&w->drain_timer);
    close_handle_if_open((uv_handle_t *)&w->log_flusher);
    tls_pool_close(&w->tls_pool);
    mux_pool_close(&w->mux_pool);
    resolver_free(w->resolver);
    w->resolver = NULL;
}

static void worker_begin_drain(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    for (size_t i = 0; i < w->n_listeners; i++)
        listener_close(&w->listeners[i]);
    struct policy_snapshot *snap = runtime_acquire_snapshot(w->rt);
    uint64_t drain_ms = policy_snapshot_config(snap)->timeouts.drain_ms;
    policy_snapshot_release(snap);
    if (w->conns != NULL)
        log_msg(LOG_INFO, "worker %u: draining %zu connection(s) for up to %llu ms", w->id,
                w->n_conns, (unsigned long long)drain_ms);
    for (struct conn *c = w->conns, *next; c != NULL; c = next) {
        next = c->next; /* conn_drain may close (never frees under us) */
        conn_drain(c);
    }
    uv_timer_start(&w->drain_timer, on_drain_timeout, drain_ms, 0);
    worker_finish_if_drained(w);
}

void worker_request_reevaluate(struct worker *w)
{
    atomic_store(&w->reevaluate_requested, true);
    uv_async_send(&w->wakeup);
}

static void worker_reevaluate(struct worker *w)
{
    struct policy_snapshot *snap = runtime_acquire_snapshot(w->rt);
    size_t closed = 0, checked = 0;
    struct conn *c = w->conns;
    while (c != NULL) {
        struct conn *next = c->next; /* conn_reevaluate may close (never frees under us) */
        if (conn_reevaluate(c, snap) == CONN_REEVALUATE_CLOSED)
            closed++;
        checked++;
        c = next;
    }
    if (checked > 0)
        log_msg(LOG_INFO,
                "worker %u: policy generation %llu reevaluated %zu connection(s), "
                "closed %zu now blocked",
                w->id, (unsigned long long)policy_snapshot_generation(snap), checked, closed);
    policy_snapshot_release(snap);
}

void worker_request_inspection(struct worker *w, struct inspection *q)
{
    atomic_store(&w->inspection, q);
    uv_async_send(&w->wakeup);
}

static void on_wakeup(uv_async_t *async)
{
    struct worker *w = container_of(async, struct worker, wakeup);
    struct inspection *q = atomic_exchange(&w->inspection, NULL);
    if (q != NULL)
        inspection_answer(q, w->index, w);
    if (atomic_exchange(&w->reevaluate_requested, false) && !w->draining)
        worker_reevaluate(w);
    if (atomic_load(&w->stop_requested))
        worker_begin_drain(w);
}

static void on_drain_timeout(uv_timer_t *timer)
{
    struct worker *w = container_of(timer, struct worker, drain_timer);
    if (w->conns != NULL)
        log_msg(LOG_WARN, "worker %u: drain time over, closing %zu connection(s)", w->id,
                w->n_conns);
    struct conn *c = w->conns;
    while (c != NULL) {
        struct conn *next = c->next;
        conn_close(c);
        c = next;
    }
}

static void on_reject_closed(uv_handle_t *handle)
{
    struct worker *w = container_of(handle, struct worker, reject);
    w->reject_busy = false;
}

void worker_reject_connection(struct worker *w, uv_stream_t *server)
{
    if (w->reject_busy || uv_tcp_init(&w->loop, &w->reject) != 0)
        return;
    w->reject_busy = true;
    uv_accept(server, (uv_stream_t *)&w->reject);
    uv_close((uv_handle_t *)&w->reject, on_reject_closed);
}

void worker_add_conn(struct worker *w, struct conn *c)
{
    c->prev = NULL;
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    w->n_conns++;
}

void worker_remove_conn(struct worker *w, struct conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    w->n_conns--;
    worker_finish_if_drained(w);
}

void worker_join(struct worker *w)
{
    if (w->thread_started)
        uv_thread_join(&w->thread);
    w->thread_started = false;
    /* After the thread (or a failed init): close whatever is left and let the loop finish. */
    for (size_t i = 0; i < w->n_listeners; i++)
        listener_close(&w->listeners[i]);
    if (w->wakeup.loop != NULL)
        close_handle_if_open((uv_handle_t *)&w->wakeup);
    if (w->drain_timer.loop != NULL)
        close_handle_if_open((uv_handle_t *)&w->drain_timer);
    if (w->log_flusher.loop != NULL)
        close_handle_if_open((uv_handle_t *)&w->log_flusher);
    tls_pool_close(&w->tls_pool);
    mux_pool_close(&w->mux_pool);
    resolver_free(w->resolver);
    w->resolver = NULL;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    bufpool_destroy(&w->relay_bufs);
    tls_session_cache_clear(&w->tls_sessions);
}
