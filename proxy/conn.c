#include "proxy/conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "proxy/bufpool.h"
#include "proxy/conn_log.h"
#include "proxy/conn_internal.h"
#include "proxy/container_of.h"
#include "proxy/http_control_parse.h"
#include "proxy/inbound.h"
#include "proxy/log.h"
#include "proxy/mux.h"
#include "proxy/outbound.h"
#include "proxy/runtime.h"
#include "proxy/upstream.h"
#include "proxy/worker.h"

#define LINGER_MS 2000 /* after an error reply: time to flush it and read the client's EOF */

enum {
    CONN_F_CLIENT_OPEN = 1u << 0,   /* client handle initialised, not yet closing */
    CONN_F_UPSTREAM_OPEN = 1u << 1, /* upstream handle initialised, not yet closing */
    CONN_F_TIMER_OPEN = 1u << 2,
    CONN_F_CLOSING = 1u << 3,
    CONN_F_ADMITTED = 1u << 4,        /* counted in the global connection limit */
    CONN_F_LINGERING = 1u << 5,       /* conn_close_after_send() in progress */
    CONN_F_DEFERRED_RESULT = 1u << 6, /* on_connect_done due from the timer */
    CONN_F_AUTHING = 1u << 7,         /* conn_verify_user() work in flight */
    CONN_F_RESET_CLIENT = 1u << 8,    /* close the client with a reset */
};

static void on_timer(uv_timer_t *timer);
static void conn_defer_result(struct conn *c, enum outbound_status status);

const struct config *conn_config(const struct conn *c)
{
    return policy_snapshot_config(c->snap);
}

struct link *conn_side_link(struct conn *c, enum conn_side side)
{
    return side == CONN_CLIENT ? &c->client : c->upstream;
}

static bool conn_side_open(const struct conn *c, enum conn_side side)
{
    return c->flags & (side == CONN_CLIENT ? CONN_F_CLIENT_OPEN : CONN_F_UPSTREAM_OPEN);
}

static void conn_maybe_free(struct conn *c)
{
    if (!(c->flags & CONN_F_CLOSING) || c->pending_closes > 0 || c->refs > 0)
        return;
    if (c->proto != NULL && c->proto->on_free != NULL)
        c->proto->on_free(c);
    relay_release(c);
    free(c->hs);
    free(c->early);
    worker_remove_conn(c->worker, c);
    if (c->flags & CONN_F_ADMITTED)
        runtime_release_conn(c->worker->rt, (struct sockaddr *)&c->client_addr);
    policy_snapshot_release(c->snap);
    free(c);
}

static void on_handle_closed(uv_handle_t *handle)
{
    struct conn *c = handle->data;
    c->pending_closes--;
    conn_maybe_free(c);
}

static void conn_close_handle(struct conn *c, uv_handle_t *handle)
{
    handle->data = c;
    c->pending_closes++;
    uv_close(handle, on_handle_closed);
}

static void on_client_closed(struct link *l)
{
    struct conn *c = l->data;
    c->pending_closes--;
    conn_maybe_free(c);
}

/* The upstream link was allocated by proxy/outbound.c and is ours to free. */
static void on_upstream_closed(struct link *l)
{
    struct conn *c = l->data;
    free(l);
    c->pending_closes--;
    conn_maybe_free(c);
}

/* Closes the upstream link, if any, with 'closed' (which frees it); with a reset when the client
 * reset its side. */
static void conn_close_upstream(struct conn *c, link_closed_fn closed)
{
    if (!(c->flags & CONN_F_UPSTREAM_OPEN))
        return;
    c->flags &= ~CONN_F_UPSTREAM_OPEN;
    c->pending_closes++;
    if (c->end_reason != NULL && strcmp(c->end_reason, "client-reset") == 0)
        link_close_reset(c->upstream, closed);
    else
        link_close(c->upstream, closed);
    c->upstream = NULL;
}

/* Abandons a destination lookup or connect in progress: no callback of theirs will run. */
static void conn_cancel_outbound(struct conn *c)
{
    if (c->resolving != NULL) {
        resolver_cancel(c->resolving);
        c->resolving = NULL;
    }
    if (c->connecting != NULL) {
        outbound_cancel(c->connecting);
        c->connecting = NULL;
    }
    if (c->tunneling != NULL) {
        upstream_cancel(c->tunneling);
        c->tunneling = NULL;
    }
}

void conn_close_because(struct conn *c, const char *reason)
{
    if (c->end_reason == NULL)
        c->end_reason = reason;
    conn_close(c);
}

void conn_close_resetting_client(struct conn *c, const char *reason)
{
    c->flags |= CONN_F_RESET_CLIENT;
    conn_close_because(c, reason);
}

void conn_close(struct conn *c)
{
    if (c->flags & CONN_F_CLOSING)
        return;
    c->flags |= CONN_F_CLOSING;
    c->phase = CONN_PHASE_CLOSING;
    conn_cancel_outbound(c);
    conn_log_close(c);
    if (c->mux != NULL) {
        mux_session_close(c->mux);
        c->mux = NULL;
    }
    if (c->flags & CONN_F_CLIENT_OPEN) {
        /* A stream cut on the way (the upstream reset it) is cut for the client too: an end of
         * file would pass a truncated transfer off as a complete one. */
        c->flags &= ~CONN_F_CLIENT_OPEN;
        c->pending_closes++;
        if ((c->flags & CONN_F_RESET_CLIENT) ||
            (c->end_reason != NULL && strcmp(c->end_reason, "upstream-reset") == 0))
            link_close_reset(&c->client, on_client_closed);
        else
            link_close(&c->client, on_client_closed);
    }
    conn_close_upstream(c, on_upstream_closed);
    if (c->flags & CONN_F_TIMER_OPEN) {
        c->flags &= ~CONN_F_TIMER_OPEN;
        conn_close_handle(c, (uv_handle_t *)&c->timer);
    }
    conn_maybe_free(c);
}

void conn_ref(struct conn *c)
{
    c->refs++;
}

bool conn_request_done(struct conn *c)
{
    c->refs--;
    if (!conn_is_closing(c))
        return true;
    conn_maybe_free(c);
    return false;
}

bool conn_is_closing(const struct conn *c)
{
    return (c->flags & CONN_F_CLOSING) != 0;
}

void conn_touch(struct conn *c)
{
    c->last_activity_ms = uv_now(&c->worker->loop);
}

/* ---- handshake reading ---------------------------------------------------------------- */

static void on_hs_alloc(struct link *l, uv_buf_t *buf)
{
    struct conn *c = l->data;
    *buf = uv_buf_init((char *)c->hs + c->hs_len, (unsigned)(c->hs_cap - c->hs_len));
}

/* A mixed listener tells the protocol from the first byte: SOCKS versions 5 and 4, or an
 * HTTP method (an upper-case letter). */
static const struct inbound_ops *conn_pick_protocol(const struct conn *c)
{
    uint8_t first = c->hs[0];
    switch (c->listener->kind) {
    case LISTENER_SOCKS5:
        return first == 5 ? &inbound_socks5_ops : NULL;
    case LISTENER_SOCKS4:
        return first == 4 ? &inbound_socks4_ops : NULL;
    case LISTENER_HTTP:
    case LISTENER_TUNNEL:
        return &inbound_http_ops;
    case LISTENER_MIXED:
        if (first == 5)
            return &inbound_socks5_ops;
        if (first == 4)
            return &inbound_socks4_ops;
        if (first >= 'A' && first <= 'Z')
            return &inbound_http_ops;
        return NULL;
    }
    return NULL;
}

static void conn_hs_dispatch(struct conn *c)
{
    if (c->proto == NULL) {
        c->proto = conn_pick_protocol(c);
        if (c->proto == NULL) {
            conn_close_because(c, "unknown-protocol");
            return;
        }
    }
    c->proto->on_data(c);
    if (conn_is_closing(c) || c->phase != CONN_PHASE_HANDSHAKE ||
        (c->flags & (CONN_F_LINGERING | CONN_F_AUTHING)))
        return;
    if (c->hs_len == c->hs_cap) /* the protocol should have answered a full buffer */
        conn_close_because(c, "handshake-too-large");
}

static void on_hs_read(struct link *l, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = l->data;
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        conn_close_because(c, nread == UV_EOF ? "client-eof-in-handshake" : "client-error");
        return;
    }
    c->hs_len += (size_t)nread;
    conn_touch(c);
    conn_hs_dispatch(c);
}

void conn_hs_read_start(struct conn *c)
{
    if (!(c->flags & CONN_F_CLIENT_OPEN))
        return;
    int err = link_read_start(&c->client, on_hs_alloc, on_hs_read);
    if (err != 0)
        conn_close_because(c, "client-error");
}

void conn_hs_consume(struct conn *c, size_t n)
{
    if (n >= c->hs_len) {
        c->hs_len = 0;
        return;
    }
    memmove(c->hs, c->hs + n, c->hs_len - n);
    c->hs_len -= n;
}

size_t conn_hs_append(struct conn *c, const void *data, size_t len)
{
    size_t room = c->hs_cap - c->hs_len;
    size_t n = len < room ? len : room;
    if (n == 0)
        return 0;
    memcpy(c->hs + c->hs_len, data, n);
    c->hs_len += n;
    return n;
}

/* ---- accept ------------------------------------------------------------------------------ */

static const struct config_listener *find_listener(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_listeners; i++)
        if (strcmp(cfg->listeners[i].name, name) == 0)
            return &cfg->listeners[i];
    return NULL;
}

const char *conn_setup(struct conn *c, const char *listener_name)
{
    struct worker *w = c->worker;
    const struct config *cfg = conn_config(c);
    c->listener = find_listener(cfg, listener_name);
    if (c->listener == NULL)
        return "listener-removed";
    if (w->draining)
        return "shutting-down";
    int len = sizeof(c->client_addr);
    if (c->client.stream == NULL) /* a stream has its carrier's address already */
        uv_tcp_getpeername(&c->client.tcp, (struct sockaddr *)&c->client_addr, &len);
    /* Admission: the global cap, then the client's own (proxy/client_limits.h). A tunnel
     * listener's clients are entries, each carrying many users: no per-client cap for them. */
    struct config_limits limits = cfg->limits;
    if (c->listener->kind == LISTENER_TUNNEL)
        limits.per_client_connections = limits.per_client_rate = 0;
    bool warn;
    switch (runtime_admit_conn(w->rt, &limits, (struct sockaddr *)&c->client_addr, &warn)) {
    case RUNTIME_ADMITTED:
        if (warn)
            log_msg(LOG_WARN, "per-client table full: admitting new clients uncounted");
        break;
    case RUNTIME_REFUSED_TOTAL:
        log_msg(LOG_WARN, "connection limit (%u) reached: refusing a connection on %s",
                cfg->limits.connections, listener_name);
        return "connection-limit";
    case RUNTIME_REFUSED_PER_CLIENT:
        if (warn)
            log_msg(LOG_WARN,
                    "client %s has %u connections open (limit per-client-connections): "
                    "refusing more on %s",
                    conn_log_client_id(c), cfg->limits.per_client_connections, listener_name);
        return "per-client-limit";
    case RUNTIME_REFUSED_RATE:
        if (warn)
            log_msg(LOG_WARN,
                    "client %s opens more than %u connections/s (limit per-client-rate): "
                    "refusing on %s",
                    conn_log_client_id(c), cfg->limits.per_client_rate, listener_name);
        return "per-client-rate";
    }
    c->flags |= CONN_F_ADMITTED;
    policy_classify(c->snap, (const struct sockaddr *)&c->client_addr, &c->client_geo);
    c->client_classified = true;
    if (c->client.stream == NULL)
        uv_tcp_nodelay(&c->client.tcp, 1);
    c->hs_cap = cfg->limits.header_bytes;
    c->hs = malloc(c->hs_cap);
    if (c->hs == NULL)
        return "out-of-memory";
    return NULL;
}

/* A tunnel client whose TLS handshake failed: say why (the client as a pseudonym only). */
static void conn_tunnel_refuse(struct conn *c)
{
    /* A client that sent no certificate passes verification (there was nothing to verify):
     * only the handshake's state tells it from one that does not speak TLS at all. */
    SSL *ssl = link_ssl(&c->client);
    metrics_count_tls_failure(
        &c->worker->metrics,
        ssl == NULL ? METRICS_TLS_HANDSHAKE
                    : metrics_tls_failure_of(SSL_get_verify_result(ssl),
                                             SSL_get_state(ssl) != TLS_ST_SR_CERT ||
                                                 SSL_get0_peer_certificate(ssl) != NULL));
    log_msg(LOG_WARN, "listener %s: refused a TLS client (%s): %s", c->listener->name,
            conn_log_client_id(c), link_tls_error(&c->client));
    conn_close_because(c, "tls-refused");
}

/* The client certificate's common name is the user its tunnel requests are decided as. */
static void on_tunnel_handshake(struct link *l, int status)
{
    struct conn *c = l->data;
    if (status != 0) {
        conn_tunnel_refuse(c);
        return;
    }
    X509 *peer = SSL_get0_peer_certificate(link_ssl(l));
    if (peer == NULL || X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName,
                                                  c->user, sizeof(c->user)) <= 0)
        c->user[0] = '\0';
    if (link_tls_alpn_is(l, MUX_ALPN)) {
        conn_mux_start(c);
        return;
    }
    conn_hs_read_start(c);
}

void conn_set_client_open(struct conn *c)
{
    c->flags |= CONN_F_CLIENT_OPEN;
}

struct conn *conn_new(struct worker *w)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->worker = w;
    c->snap = runtime_acquire_snapshot(w->rt);
    c->id = atomic_fetch_add_explicit(&w->rt->next_conn_id, 1, memory_order_relaxed);
    c->phase = CONN_PHASE_HANDSHAKE;
    c->accepted_ms = c->last_activity_ms = uv_now(&w->loop);
    worker_add_conn(w, c);
    uv_timer_init(&w->loop, &c->timer);
    c->flags |= CONN_F_TIMER_OPEN;
    return c;
}

void conn_accept(struct worker *w, uv_stream_t *server, const char *listener_name)
{
    struct conn *c = conn_new(w);
    if (c == NULL) {
        log_msg(LOG_ERROR, "out of memory: refusing a connection on %s", listener_name);
        worker_reject_connection(w, server);
        return;
    }
    link_init(&w->loop, &c->client, AF_UNSPEC);
    c->client.data = c;
    c->flags |= CONN_F_CLIENT_OPEN;
    if (uv_accept(server, (uv_stream_t *)&c->client.tcp) != 0) {
        conn_close_because(c, "accept-failed");
        return;
    }
    const char *refused = conn_setup(c, listener_name);
    if (refused != NULL) {
        conn_close_because(c, refused);
        return;
    }
    switch (c->listener->kind) {
    case LISTENER_SOCKS5:
    case LISTENER_SOCKS4:
    case LISTENER_MIXED:
        break; /* chosen from the first byte */
    case LISTENER_HTTP:
    case LISTENER_TUNNEL:
        c->proto = &inbound_http_ops;
        break;
    }
    conn_arm_deadline(c); /* the handshake deadline covers TLS too */
    if (c->listener->kind == LISTENER_TUNNEL) {
        if (link_tls_start(&c->client, c->listener->tls, true, NULL, NULL, NULL,
                           on_tunnel_handshake) != 0)
            conn_tunnel_refuse(c);
        return;
    }
    conn_hs_read_start(c);
    /* Clients speak first, and what they sent with the connection is usually here already:
     * answering it now, not a poll later, also puts it before the work this loop turn left for
     * its end (the last connection's close, when a client opens its next one). */
    if (!conn_is_closing(c))
        link_read_now(&c->client);
}

/* ---- deadlines --------------------------------------------------------------------------- */

/* The time the connection must have done something by, or 0 for none. */
static uint64_t conn_deadline(const struct conn *c)
{
    const struct config_timeouts *t = &conn_config(c)->timeouts;
    if (c->flags & CONN_F_LINGERING)
        return c->linger_until_ms;
    switch (c->phase) {
    case CONN_PHASE_HANDSHAKE:
        return c->accepted_ms + t->handshake_ms;
    case CONN_PHASE_RELAY:
    case CONN_PHASE_FORWARD:
        return c->last_activity_ms + t->idle_ms;
    case CONN_PHASE_MUX:
        return conn_mux_deadline(c);
    case CONN_PHASE_CONNECTING: /* the outbound request has its own deadline */
    case CONN_PHASE_CLOSING:
        break;
    }
    return 0;
}

void conn_arm_deadline(struct conn *c)
{
    if (!(c->flags & CONN_F_TIMER_OPEN) || (c->flags & CONN_F_DEFERRED_RESULT))
        return;
    uint64_t deadline = conn_deadline(c);
    if (deadline == 0) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = uv_now(&c->worker->loop);
    uv_timer_start(&c->timer, on_timer, deadline > now ? deadline - now : 0, 0);
}

static void conn_deliver_connect_result(struct conn *c)
{
    c->proto->on_connect_done(c, c->outbound);
    if (!conn_is_closing(c))
        conn_arm_deadline(c);
}

static void on_timer(uv_timer_t *timer)
{
    struct conn *c = container_of(timer, struct conn, timer);
    if (c->flags & CONN_F_DEFERRED_RESULT) {
        c->flags &= ~CONN_F_DEFERRED_RESULT;
        conn_deliver_connect_result(c);
        return;
    }
    if (c->phase == CONN_PHASE_MUX) {
        conn_mux_tick(c);
        return;
    }
    uint64_t deadline = conn_deadline(c);
    if (deadline == 0)
        return;
    if (uv_now(&c->worker->loop) < deadline) {
        conn_arm_deadline(c); /* there was activity since the timer was set */
        return;
    }
    if (c->phase == CONN_PHASE_RELAY && !(c->flags & CONN_F_LINGERING) &&
        relay_write_progressed(c)) {
        conn_touch(c); /* a slow reader is draining what we wrote */
        conn_arm_deadline(c);
        return;
    }
    if (c->flags & CONN_F_LINGERING)
        conn_close_because(c, "error-reply-sent");
    else if (c->phase == CONN_PHASE_HANDSHAKE)
        conn_close_because(c, "handshake-timeout");
    else if (c->phase != CONN_PHASE_FORWARD || c->proto->on_idle_timeout == NULL ||
             !c->proto->on_idle_timeout(c))
        conn_close_because(c, "idle-timeout");
}

/* ---- policy decision and outbound connect ----------------------------------------------- */

/* Records how long the step that started at c->step_started_ms took. */
static void conn_observe_since(struct conn *c, enum metrics_latency which)
{
    uint64_t now = uv_now(&c->worker->loop);
    uint64_t ms = now > c->step_started_ms ? now - c->step_started_ms : 0;
    metrics_observe(&c->worker->metrics, which, ms * 1000u);
}

/* Takes over a connected upstream link. */
static void conn_take_upstream(struct conn *c, struct link *link, const struct sockaddr *peer)
{
    c->upstream = link;
    link->data = c;
    c->flags |= CONN_F_UPSTREAM_OPEN;
    socklen_t plen =
        peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    memcpy(&c->upstream_peer, peer, plen);
}

void conn_upstream_local(struct conn *c, struct sockaddr_storage *out)
{
    int len = sizeof(*out);
    memset(out, 0, sizeof(*out));
    if (c->upstream != NULL && link_local_address(c->upstream, (struct sockaddr *)out, &len) != 0)
        memset(out, 0, sizeof(*out)); /* a failed call may have written part of it */
}

/* A tunnel through the verdict's upstream is open, or it failed. The destination is where the
 * exit connects: it is not classified with the exit's address. */
static void on_tunnel_done(void *arg, const struct upstream_result *r)
{
    struct conn *c = arg;
    c->tunneling = NULL;
    conn_observe_since(c, METRICS_CONNECT);
    c->via = r->used;
    c->via_tls = r->tls;
    if (r->status == OUTBOUND_OK) {
        conn_take_upstream(c, r->link, r->peer);
        if (r->early_len > 0) {
            c->early = malloc(r->early_len);
            if (c->early == NULL) {
                conn_close_because(c, "out-of-memory");
                return;
            }
            memcpy(c->early, r->early, r->early_len);
            c->early_len = r->early_len;
        }
    } else {
        snprintf(c->tunnel_detail, sizeof(c->tunnel_detail), "%s", r->detail);
    }
    c->outbound = r->status;
    conn_deliver_connect_result(c);
}

/* Asks 'via' about c->target with the worker's resources (proxy/upstream.h). */
static struct upstream_req *conn_ask_upstream(struct conn *c, const struct config_upstream *via,
                                              enum upstream_ask ask, uint32_t timeout_ms,
                                              upstream_cb cb)
{
    struct upstream_params p = {
        .loop = &c->worker->loop,
        .resolver = c->worker->resolver,
        .health = &c->worker->rt->health,
        .sessions = &c->worker->tls_sessions,
        .pool = &c->worker->tls_pool,
        .mux = &c->worker->mux_pool,
        .snap = c->snap,
        .metrics = &c->worker->metrics,
        .cfg = conn_config(c),
        .via = via,
        .ask = ask,
        .target = &c->target,
        .timeout_ms = timeout_ms,
    };
    return upstream_request(&p, cb, c);
}

static void conn_tunnel(struct conn *c)
{
    c->tunnel_detail[0] = '\0';
    c->tunneling = conn_ask_upstream(c, c->verdict.via, UPSTREAM_ASK_CONNECT,
                                     conn_config(c)->timeouts.connect_ms, on_tunnel_done);
    if (c->tunneling == NULL)
        conn_defer_result(c, OUTBOUND_FAILED);
}

static void on_outbound_done(void *arg, enum outbound_status status, struct link *link,
                             const struct sockaddr *peer)
{
    struct conn *c = arg;
    c->connecting = NULL;
    conn_observe_since(c, METRICS_CONNECT);
    if (status == OUTBOUND_OK) {
        conn_take_upstream(c, link, peer);
        if (!c->dest_classified) { /* decided on the name alone: classify for the logs */
            policy_classify(c->snap, peer, &c->dest_geo);
            c->dest_classified = true;
        }
    }
    c->outbound = status;
    conn_deliver_connect_result(c);
}

static void conn_defer_result(struct conn *c, enum outbound_status status)
{
    c->outbound = status;
    c->flags |= CONN_F_DEFERRED_RESULT;
    uv_timer_start(&c->timer, on_timer, 0, 0);
}

static void conn_request_init(const struct conn *c, struct policy_request *req)
{
    *req = (struct policy_request){
        .client = (const struct sockaddr *)&c->client_addr,
        .client_geo = c->client_geo,
        .listener = c->listener->name,
        .user = c->user[0] != '\0' ? c->user : NULL,
        .host = target_is_literal(&c->target) ? NULL : c->target.host,
        .port = c->target.port,
    };
}

/* Acts on c->verdict: refuses, or connects to the target (resolving it when 'addrs' is NULL) or
 * to the resolved addresses the verdict holds for. */
static void conn_apply_verdict(struct conn *c, const struct resolver_answer *addrs)
{
    conn_log_decision(c);
    if (c->verdict.action == VERDICT_BLOCK) {
        conn_defer_result(c, OUTBOUND_NOT_ALLOWED);
        return;
    }
    const struct config *cfg = conn_config(c);
    conn_arm_deadline(c);
    c->step_started_ms = uv_now(&c->worker->loop);
    if (c->verdict.action == VERDICT_TUNNEL) {
        conn_tunnel(c);
        return;
    }
    uv_loop_t *loop = &c->worker->loop;
    const struct sockaddr *bind =
        cfg->has_external ? (const struct sockaddr *)&cfg->external : NULL;
    c->connecting =
        addrs != NULL ? outbound_connect_addrs(loop, addrs, c->target.port,
                                               cfg->timeouts.connect_ms, bind, on_outbound_done, c)
                      : outbound_connect(loop, c->worker->resolver, &c->target,
                                         cfg->timeouts.connect_ms, bind, on_outbound_done, c);
    if (c->connecting == NULL)
        conn_defer_result(c, OUTBOUND_FAILED);
}

/* The policy needed the destination's address: decide once per resolved address. The verdict
 * is the one of the first address the policy lets through (so a name with addresses in several
 * countries reaches an allowed one whatever order the resolver gives them in), or, when none
 * is let through, the first address's refusal. Only the addresses that the same rule decides
 * are connected to: no address another rule would treat differently is ever tried. */
static void on_dest_resolved(void *arg, enum outbound_status status,
                             const struct resolver_answer *answer)
{
    struct conn *c = arg;
    struct policy_verdict verdicts[RESOLVER_MAX_ADDRS];
    struct geo_result geos[RESOLVER_MAX_ADDRS];
    bool decided[RESOLVER_MAX_ADDRS] = {false};
    struct resolver_answer same_rule = {.n_addrs = 0};
    struct policy_request req;
    size_t chosen = RESOLVER_MAX_ADDRS;

    c->resolving = NULL;
    conn_observe_since(c, METRICS_DNS);
    if (status != OUTBOUND_OK) {
        conn_defer_result(c, status);
        return;
    }
    conn_request_init(c, &req);
    for (size_t i = 0; i < answer->n_addrs && i < RESOLVER_MAX_ADDRS; i++) {
        req.dest = (const struct sockaddr *)&answer->addrs[i];
        policy_classify(c->snap, req.dest, &req.dest_geo);
        geos[i] = req.dest_geo;
        /* An address always decides; never connect anywhere undecided. */
        decided[i] = policy_decide(c->snap, &req, &verdicts[i]) == POLICY_DECIDED;
        if (!decided[i])
            continue;
        if (chosen == RESOLVER_MAX_ADDRS ||
            (verdicts[chosen].action != VERDICT_PASS && verdicts[i].action == VERDICT_PASS))
            chosen = i;
    }
    if (chosen == RESOLVER_MAX_ADDRS) {
        conn_defer_result(c, OUTBOUND_FAILED);
        return;
    }
    c->verdict = verdicts[chosen];
    c->dest_geo = geos[chosen];
    c->dest_classified = true;
    for (size_t i = 0; i < answer->n_addrs && i < RESOLVER_MAX_ADDRS; i++)
        if (decided[i] && verdicts[i].rule == c->verdict.rule)
            same_rule.addrs[same_rule.n_addrs++] = answer->addrs[i];
    conn_apply_verdict(c, &same_rule);
}

/* The exit answered a "resolve via" question: decide with its addresses as with ours. */
static void on_exit_resolved(void *arg, const struct upstream_result *r)
{
    struct conn *c = arg;
    struct sockaddr_storage addrs[HTTP_CONTROL_ADDRESSES_MAX];
    size_t n = 0;
    c->tunneling = NULL;
    if (r->status != OUTBOUND_OK) {
        on_dest_resolved(c, r->status == OUTBOUND_NOT_ALLOWED ? OUTBOUND_DNS_FAILED : r->status,
                         NULL);
        return;
    }
    if (r->addresses == NULL ||
        http_control_parse_addresses(r->addresses, r->addresses_len, addrs, &n) != 0) {
        log_msg(LOG_WARN, "upstream %s answered a resolution without usable addresses",
                r->used->name);
        on_dest_resolved(c, OUTBOUND_DNS_FAILED, NULL);
        return;
    }
    struct resolver_answer answer = {.n_addrs = 0};
    for (size_t i = 0; i < n && i < RESOLVER_MAX_ADDRS; i++)
        answer.addrs[answer.n_addrs++] = addrs[i];
    on_dest_resolved(c, OUTBOUND_OK, &answer);
}

/* The rule that needs the destination's address says "resolve via": the exit resolves the name
 * in its own jurisdiction, over the tunnel; our resolver never sees it. */
static void conn_resolve_via(struct conn *c, const struct config_upstream *u)
{
    c->step_started_ms = uv_now(&c->worker->loop);
    c->tunneling = conn_ask_upstream(c, u, UPSTREAM_ASK_RESOLVE, conn_config(c)->timeouts.dns_ms,
                                     on_exit_resolved);
    if (c->tunneling == NULL)
        conn_defer_result(c, OUTBOUND_DNS_FAILED);
}

void conn_connect(struct conn *c)
{
    if (conn_is_closing(c) || c->upstream_reset_done != NULL || c->connecting != NULL ||
        c->resolving != NULL || c->tunneling != NULL)
        return; /* a protocol bug: the connection is not in a state to connect */
    conn_read_stop(c, CONN_CLIENT);
    if (c->phase == CONN_PHASE_HANDSHAKE) {
        c->step_started_ms = c->accepted_ms;
        conn_observe_since(c, METRICS_HANDSHAKE);
    }
    c->phase = CONN_PHASE_CONNECTING;
    c->dest_classified = false;
    c->via = NULL;
    c->via_tls = NULL;

    struct policy_request req;
    conn_request_init(c, &req);
    if (target_is_literal(&c->target)) {
        req.dest = (const struct sockaddr *)&c->target.addr;
        policy_classify(c->snap, req.dest, &c->dest_geo);
        c->dest_classified = true;
        req.dest_geo = c->dest_geo;
    }
    enum policy_outcome outcome = policy_decide(c->snap, &req, &c->verdict);
    /* A client outside the local ranges may only reach local destinations a rule names: a
     * name it is let through to is resolved here, so the policy sees where it really leads. */
    bool check_addresses = outcome == POLICY_DECIDED && c->verdict.action == VERDICT_PASS &&
                           !target_is_literal(&c->target) && !c->client_geo.local;
    if (outcome == POLICY_NEED_ADDRESS && c->verdict.resolve_via != NULL) {
        conn_resolve_via(c, c->verdict.resolve_via);
        return;
    }
    if (outcome == POLICY_NEED_ADDRESS || check_addresses) {
        c->step_started_ms = uv_now(&c->worker->loop);
        struct resolver_query *q =
            resolver_resolve(c->worker->resolver, c->target.host, on_dest_resolved, c);
        if (q != NULL) /* NULL: answered already (cache, literal) or failed, callback ran */
            c->resolving = q;
        return;
    }
    conn_apply_verdict(c, NULL);
}

bool conn_decide_again(const struct conn *c, const struct policy_snapshot *snap,
                       struct policy_verdict *out)
{
    if (conn_is_closing(c) || (c->flags & CONN_F_LINGERING) ||
        (c->phase != CONN_PHASE_RELAY && c->phase != CONN_PHASE_FORWARD) || c->upstream == NULL)
        return false;
    struct policy_request req;
    conn_request_init(c, &req);
    policy_classify(snap, (const struct sockaddr *)&c->client_addr, &req.client_geo);
    /* Through a tunnel the destination is where the exit connects: known here only when the
     * client gave an address. */
    if (c->via == NULL)
        req.dest = (const struct sockaddr *)&c->upstream_peer;
    else if (target_is_literal(&c->target))
        req.dest = (const struct sockaddr *)&c->target.addr;
    if (req.dest != NULL)
        policy_classify(snap, req.dest, &req.dest_geo);
    return policy_decide(snap, &req, out) == POLICY_DECIDED;
}

enum conn_reevaluate_result conn_reevaluate(struct conn *c, const struct policy_snapshot *snap)
{
    struct policy_verdict v;
    if (!conn_decide_again(c, snap, &v))
        return CONN_REEVALUATE_SKIPPED;
    if (v.action != VERDICT_BLOCK)
        return CONN_REEVALUATE_KEPT;
    /* The events name the rule that blocks it now; its strings live in 'snap', which the
     * caller holds while the close event is written (conn_close logs at once). */
    c->verdict = v;
    conn_log_decision(c);
    conn_close_because(c, "policy-reload");
    return CONN_REEVALUATE_CLOSED;
}

/* ---- user verification, off the loop ----------------------------------------------------- */

struct auth_work {
    uv_work_t req;
    struct conn *c;
    size_t user_len;
    size_t password_len;
    bool ok;
    char user[USERDB_NAME_MAX + 1];
    char password[USERDB_PASSWORD_MAX + 1];
};

static void auth_work_run(uv_work_t *req)
{
    struct auth_work *a = container_of(req, struct auth_work, req);
    a->ok =
        userdb_verify(a->c->listener->users, a->user, a->user_len, a->password, a->password_len);
}

/* Reports a verification to the protocol, then resumes the handshake unless the protocol moved
 * on, closed, or started another verification. 'deliver_buffered': run on_data for bytes that
 * arrived with the credentials (not when called from inside on_data). */
static void conn_auth_finish(struct conn *c, bool ok, bool deliver_buffered)
{
    c->proto->on_auth_done(c, ok);
    if (conn_is_closing(c) || c->phase != CONN_PHASE_HANDSHAKE ||
        (c->flags & (CONN_F_LINGERING | CONN_F_AUTHING)))
        return;
    conn_hs_read_start(c);
    if (deliver_buffered && c->hs_len > 0)
        c->proto->on_data(c);
}

static void auth_work_done(uv_work_t *req, int status)
{
    struct auth_work *a = container_of(req, struct auth_work, req);
    struct conn *c = a->c;
    bool ok = status == 0 && a->ok;
    if (ok) {
        memcpy(c->user, a->user, a->user_len);
        c->user[a->user_len] = '\0';
    }
    explicit_bzero(a->password, sizeof(a->password));
    free(a);
    c->flags &= ~CONN_F_AUTHING;
    if (conn_request_done(c))
        conn_auth_finish(c, ok, true);
}

void conn_verify_user(struct conn *c, const char *user, size_t user_len, const char *password,
                      size_t password_len)
{
    conn_read_stop(c, CONN_CLIENT);
    struct auth_work *a = calloc(1, sizeof(*a));
    bool usable = c->listener->users != NULL && user_len <= USERDB_NAME_MAX &&
                  password_len <= USERDB_PASSWORD_MAX;
    if (a != NULL && usable) {
        a->c = c;
        memcpy(a->user, user, user_len);
        a->user_len = user_len;
        memcpy(a->password, password, password_len);
        a->password_len = password_len;
        if (uv_queue_work(&c->worker->loop, &a->req, auth_work_run, auth_work_done) == 0) {
            c->refs++;
            c->flags |= CONN_F_AUTHING;
            return;
        }
        explicit_bzero(a->password, sizeof(a->password));
    }
    free(a);
    conn_auth_finish(c, false, false);
}

/* ---- writes ------------------------------------------------------------------------------ */

struct send_req {
    struct link_write req;
    struct conn *c;
    conn_sent_fn sent;
    enum conn_side side;
    char data[];
};

static void conn_linger_start(struct conn *c);

const char *conn_write_failure(enum conn_side side, int status)
{
    if (status == UV_ECONNRESET)
        return side == CONN_CLIENT ? "client-reset" : "upstream-reset";
    return side == CONN_CLIENT ? "client-write-error" : "upstream-write-error";
}

void conn_read_last_bytes(struct conn *c, enum conn_side side, conn_take_fn take)
{
    char *buf = bufpool_get(&c->worker->relay_bufs);
    if (buf == NULL)
        return;
    size_t size = c->worker->relay_bufs.buf_size;
    for (size_t taken = 0;
         taken < CONN_LAST_BYTES_MAX && conn_side_open(c, side) && !conn_is_closing(c);) {
        ssize_t n = link_recv_now(conn_side_link(c, side), buf, size);
        if (n <= 0 || !take(c, side, buf, (size_t)n))
            break;
        taken += (size_t)n;
    }
    bufpool_put(&c->worker->relay_bufs, buf);
}

static bool give_to_reader(struct conn *c, enum conn_side side, const char *data, size_t n)
{
    conn_touch(c);
    c->readers[side](c, side, data, (ssize_t)n);
    return c->readers[side] != NULL; /* it may have closed the side (or all: the loop checks) */
}

/* A queued write to 'side' failed. When a protocol reads the upstream (HTTP forwarding), it
 * gets what the upstream sent before it went, then the failure as the end of its bytes, and
 * decides what the client hears (a server's early answer to an upload, or a 502). The error can
 * come ahead of bytes that were not read: those of a paused side (the client was slow), or of a
 * TLS link or a tunnel's stream, which hold none in a socket of their own. A client that cannot
 * be written to cannot be answered: the connection closes. */
static void conn_send_failed(struct conn *c, enum conn_side side, int status)
{
    if (side == CONN_CLIENT || c->readers[side] == NULL) {
        conn_close_because(c, conn_write_failure(side, status));
        return;
    }
    conn_read_last_bytes(c, side, give_to_reader);
    if (!conn_is_closing(c) && conn_side_open(c, side) && c->readers[side] != NULL)
        c->readers[side](c, side, NULL, status);
}

static void on_send_done(struct link_write *req, int status)
{
    struct send_req *s = container_of(req, struct send_req, req);
    struct conn *c = s->c;
    conn_sent_fn sent = s->sent;
    enum conn_side side = s->side;
    const struct link *link = req->link;
    free(s);
    c->sends_in_flight[side]--;
    if (!conn_request_done(c))
        return;
    if (status == UV_ECANCELED)
        return; /* the upstream was reset on purpose (HTTP forwarding, lingering close) */
    if (status < 0) {
        /* A link closed on purpose (HTTP forwarding's retry on a new upstream) reports a write
         * that had failed before with that error, not with UV_ECANCELED; its side is closed by
         * then (a link's write callbacks run before its close callback, proxy/link.h). */
        if (conn_side_open(c, side) && link == conn_side_link(c, side))
            conn_send_failed(c, side, status);
        return;
    }
    conn_touch(c);
    if (sent != NULL)
        sent(c, 0);
    if (!conn_is_closing(c) && (c->flags & CONN_F_LINGERING) && side == CONN_CLIENT &&
        c->sends_in_flight[CONN_CLIENT] == 0)
        conn_linger_start(c);
}

int conn_send(struct conn *c, enum conn_side side, const void *data, size_t len, conn_sent_fn sent)
{
    if (conn_is_closing(c) || !conn_side_open(c, side))
        return UV_ECANCELED;
    struct link *link = conn_side_link(c, side);
    if (sent == NULL && link_write_queue_size(link) == 0) {
        /* Most replies fit in the socket buffer: write them now, without a request. */
        int written = link_try_write(link, data, len);
        if (written == (int)len) {
            conn_touch(c);
            return 0;
        }
        if (written < 0 && written != UV_EAGAIN) {
            conn_close_because(c, "write-error");
            return written;
        }
        if (written > 0) {
            data = (const char *)data + written;
            len -= (size_t)written;
        }
    }
    struct send_req *s = malloc(sizeof(*s) + len);
    if (s == NULL) {
        conn_close_because(c, "out-of-memory");
        return UV_ENOMEM;
    }
    s->c = c;
    s->sent = sent;
    s->side = side;
    memcpy(s->data, data, len);
    int err = link_write(link, &s->req, s->data, len, on_send_done);
    if (err != 0) {
        free(s);
        conn_close_because(c, "write-error");
        return err;
    }
    c->refs++;
    c->sends_in_flight[side]++;
    return 0;
}

size_t conn_send_queue_size(const struct conn *c, enum conn_side side)
{
    if (!conn_side_open(c, side))
        return 0;
    return link_write_queue_size(side == CONN_CLIENT ? &c->client : c->upstream);
}

/* ---- closing after an error reply (lingering close) -------------------------------------- */

static void on_linger_read(struct link *l, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = l->data;
    bufpool_put(&c->worker->relay_bufs, buf->base); /* what the client still sends is dropped */
    if (nread < 0)
        conn_close_because(c, "error-reply-sent");
}

static void on_linger_shutdown(struct link_shutdown *req, int status)
{
    struct conn *c = req->data;
    free(req);
    if (!conn_request_done(c))
        return;
    if (status < 0 || link_read_start(&c->client, conn_alloc_buffer, on_linger_read))
        conn_close_because(c, "error-reply-sent");
}

/* The reply is in the kernel: send FIN, then read until the client's EOF so that closing does
 * not turn into a reset that destroys the reply before the client has read it. */
static void conn_linger_start(struct conn *c)
{
    struct link_shutdown *req = malloc(sizeof(*req));
    if (req == NULL || !(c->flags & CONN_F_CLIENT_OPEN)) {
        free(req);
        conn_close_because(c, "error-reply-sent");
        return;
    }
    req->data = c;
    if (link_shutdown(&c->client, req, on_linger_shutdown) != 0) {
        free(req);
        conn_close_because(c, "error-reply-sent");
        return;
    }
    c->refs++;
}

void conn_close_after_send(struct conn *c, const char *reason)
{
    if (conn_is_closing(c) || (c->flags & CONN_F_LINGERING))
        return;
    if (c->end_reason == NULL)
        c->end_reason = reason;
    c->flags |= CONN_F_LINGERING;
    if (c->flags & CONN_F_CLIENT_OPEN)
        link_read_stop(&c->client);
    conn_cancel_outbound(c);
    conn_close_upstream(c, on_upstream_closed); /* only the reply to the client matters now */
    c->linger_until_ms = uv_now(&c->worker->loop) + LINGER_MS;
    conn_arm_deadline(c);
    if (c->sends_in_flight[CONN_CLIENT] == 0)
        conn_linger_start(c);
}

/* ---- relay and forwarding ---------------------------------------------------------------- */

void conn_relay_start(struct conn *c)
{
    if (conn_is_closing(c))
        return;
    link_read_stop(&c->client);
    c->readers[CONN_CLIENT] = c->readers[CONN_UPSTREAM] = NULL;
    c->phase = CONN_PHASE_RELAY;
    conn_touch(c);
    conn_arm_deadline(c);
    if (c->early_len > 0) { /* the destination spoke first, through the upstream */
        c->bytes_down += c->early_len;
        if (conn_send(c, CONN_CLIENT, c->early, c->early_len, NULL) != 0)
            return;
        free(c->early);
        c->early = NULL;
        c->early_len = 0;
    }
    relay_start(c, c->hs, c->hs_len);
    free(c->hs);
    c->hs = NULL;
    c->hs_len = c->hs_cap = 0;
}

void conn_alloc_buffer(struct link *l, uv_buf_t *buf)
{
    struct conn *c = l->data;
    char *mem = bufpool_get(&c->worker->relay_bufs);
    *buf = uv_buf_init(mem, mem != NULL ? (unsigned)c->worker->relay_bufs.buf_size : 0);
}

static void conn_side_read(struct conn *c, enum conn_side side, ssize_t nread, const uv_buf_t *buf)
{
    if (nread > 0)
        conn_touch(c);
    if (nread != 0 && c->readers[side] != NULL)
        c->readers[side](c, side, buf->base, nread);
    bufpool_put(&c->worker->relay_bufs, buf->base);
}

static void on_side_read(struct link *l, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = l->data;
    conn_side_read(c, l == &c->client ? CONN_CLIENT : CONN_UPSTREAM, nread, buf);
}

void conn_forward_begin(struct conn *c)
{
    if (c->phase != CONN_PHASE_FORWARD && c->phase != CONN_PHASE_MUX) {
        c->phase = CONN_PHASE_FORWARD;
        conn_arm_deadline(c);
    }
}

int conn_read_start(struct conn *c, enum conn_side side, conn_read_fn fn)
{
    if (conn_is_closing(c) || !conn_side_open(c, side))
        return UV_ECANCELED;
    struct link *link = conn_side_link(c, side);
    c->readers[side] = fn;
    conn_forward_begin(c);
    int err = link_read_start(link, conn_alloc_buffer, on_side_read);
    if (err != 0)
        conn_close_because(c, "read-error");
    return err;
}

void conn_read_stop(struct conn *c, enum conn_side side)
{
    if (conn_side_open(c, side))
        link_read_stop(conn_side_link(c, side));
}

static void on_upstream_reset_closed(struct link *l)
{
    struct conn *c = l->data;
    free(l);
    c->pending_closes--;
    if (conn_is_closing(c)) {
        conn_maybe_free(c);
        return;
    }
    void (*done)(struct conn *) = c->upstream_reset_done;
    c->upstream_reset_done = NULL;
    if (done != NULL)
        done(c);
}

void conn_upstream_reset(struct conn *c, void (*done)(struct conn *c))
{
    if (conn_is_closing(c))
        return;
    c->readers[CONN_UPSTREAM] = NULL;
    if (!(c->flags & CONN_F_UPSTREAM_OPEN)) {
        done(c);
        return;
    }
    c->upstream_reset_done = done;
    conn_close_upstream(c, on_upstream_reset_closed);
}
