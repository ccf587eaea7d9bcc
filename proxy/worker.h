/* A worker: one thread, one libuv loop, its own SO_REUSEPORT listening sockets, its own DNS
 * resolver and buffer pool, and the connections it accepted. Workers share nothing but the
 * runtime (the current policy snapshot and the global connection count). */
#ifndef GEOPROXY_PROXY_WORKER_H
#define GEOPROXY_PROXY_WORKER_H

#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <uv.h>

#include "policy/config.h"
#include "proxy/bufpool.h"
#include "proxy/mux_pool.h"
#include "proxy/tls_pool.h"
#include "proxy/tls_session_cache.h"
#include "proxy/metrics.h"

struct runtime;
struct conn;
struct resolver;
struct worker;
struct inspection;

struct worker_listener {
    uv_tcp_t tcp;
    struct worker *worker;
    char name[CONFIG_NAME_MAX]; /* looked up in the connection's snapshot at accept */
    /* After an accept error such as EMFILE the handle is closed (libuv would otherwise retry
     * accept at once, forever) and reopened from a duplicate of the socket, kept from the
     * start so that no descriptor is needed to pause, when the resume timer fires. */
    uv_timer_t resume_timer;
    int spare_fd; /* the listening socket, duplicated; -1 when none */
    bool paused;
};

struct worker {
    struct runtime *rt;
    unsigned id;
    uv_loop_t loop;
    uv_thread_t thread;
    bool thread_started;
    uv_async_t wakeup;        /* another thread asked for something (stop) */
    uv_timer_t drain_timer;   /* forced close at the end of the drain time */
    uv_prepare_t log_flusher; /* writes the thread's batched log lines before each wait */
    struct worker_listener listeners[CONFIG_MAX_LISTENERS];
    size_t n_listeners;
    uv_tcp_t reject;  /* takes a connection there is no memory for, to close it */
    bool reject_busy; /* 'reject' is still closing */
    struct bufpool relay_bufs;
    struct tls_session_cache tls_sessions; /* resumption with exits, this thread's */
    struct tls_pool tls_pool;              /* handshakes done ahead with exits */
    struct mux_pool mux_pool;              /* sessions with exits, many tunnels each */
    struct resolver *resolver;
    struct conn *conns; /* live connections, for draining */
    size_t n_conns;
    atomic_bool stop_requested;
    atomic_bool reevaluate_requested; /* a reload asks live connections to be decided again */
    _Atomic(struct inspection *) inspection; /* the admin's question, answered on wakeup */
    size_t index;                            /* this worker's answer slot */
    atomic_bool finished;                    /* the thread's loop has ended */
    bool draining;
    struct worker_metrics metrics; /* written by this worker's thread only */
};

/* Prepares worker 'id': its loop, resolver and one listening socket per configured listener.
 * Runs on the main thread so that a bind error stops the start-up. Returns 0 or a libuv error
 * (logged with the listener's address). */
int worker_init(struct worker *w, struct runtime *rt, unsigned id, const struct config *cfg);

/* Starts the worker's thread. */
int worker_start(struct worker *w);

/* Asks the worker to stop accepting and drain (thread-safe, async). */
void worker_request_stop(struct worker *w);

/* Asks the worker to decide its live connections again under the policy now in force and
 * close those it blocks (on-reload reevaluate; thread-safe, async). */
void worker_request_reevaluate(struct worker *w);

/* Asks the worker to answer an admin question about its connections (thread-safe, async). */
void worker_request_inspection(struct worker *w, struct inspection *q);

/* Waits for the thread to end, then releases what worker_init made. */
void worker_join(struct worker *w);

/* Accepts the pending connection on 'server' and closes it at once: libuv stops watching a
 * listening socket until its pending connection is accepted. For when memory ran out. */
void worker_reject_connection(struct worker *w, uv_stream_t *server);

/* Bookkeeping of live connections, called by conn.c. */
void worker_add_conn(struct worker *w, struct conn *c);
void worker_remove_conn(struct worker *w, struct conn *c);

#endif
