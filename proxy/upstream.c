/* The upstream client (proxy/upstream.h). One request walks its candidates: connect, TLS when
 * the upstream is a tls exit, then one protocol exchange (steps below), reading replies into a
 * bounded buffer and parsing them with the pure parsers (socks_client_parse.h,
 * http_client_parse.h, http_control_parse.h).
 *
 * Ownership: the request owns its deadline timer and the link of the member being tried; a
 * finished CONNECT hands the link over. The request's memory goes in the last close callback
 * (the timer's or a link's), never under a callback that still uses it. */
#include "proxy/upstream.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "certs/tls_context.h"
#include "proxy/container_of.h"
#include "proxy/http_client_parse.h"
#include "proxy/http_control_parse.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/mux.h"
#include "proxy/mux_pool.h"
#include "proxy/outbound.h"
#include "proxy/socks_client_parse.h"
#include "proxy/tls_pool.h"
#include "proxy/tls_session_cache.h"
#include "proxy/upstream_health.h"

#define UPSTREAM_REPLY_MAX 8192 /* the longest reply head accepted from an upstream */
#define UPSTREAM_DETAIL_MAX 256
#define UPSTREAM_REQUEST_MAX 1024 /* the longest message we send */
/* Mux streams an exit may refuse to one tunnel (draining, or full) before it counts as failed. */
#define UPSTREAM_REFUSALS_MAX 2

enum upstream_step {
    STEP_CONNECT,      /* TCP connect to the member */
    STEP_TLS,          /* TLS handshake with a tls member */
    STEP_SOCKS_METHOD, /* greeting sent, waiting for the method */
    STEP_SOCKS_AUTH,   /* login sent */
    STEP_SOCKS_REPLY,  /* CONNECT sent */
    STEP_HTTP_REPLY,   /* CONNECT or a control request sent */
};

struct upstream_req {
    struct upstream_params p;
    struct target target;
    upstream_cb cb;
    void *arg;
    const struct config_upstream *cands[CONFIG_GROUP_MEMBERS_MAX];
    size_t n_cands;
    size_t next;
    const struct config_upstream *cur;
    struct outbound_req *connecting;
    struct link *link; /* of the member being tried */
    struct sockaddr_storage peer;
    uv_timer_t deadline;
    enum upstream_step step;
    uint64_t started_ms;
    enum outbound_status last_failure;
    int pending_closes; /* handles closing and writes in flight: freed at 0 once done */
    bool done;
    struct link_write write;
    char out[UPSTREAM_REQUEST_MAX];
    uint8_t in[UPSTREAM_REPLY_MAX];
    size_t in_len;
    char detail[UPSTREAM_DETAIL_MAX];
    char egress[64];
    const char *tls;   /* see upstream_result.tls */
    bool over_mux;     /* the link is a stream of a mux session */
    unsigned refusals; /* streams the exit refused to this request (UPSTREAM_REFUSALS_MAX) */
};

static void upstream_try_next(struct upstream_req *req);

static void upstream_release(struct upstream_req *req)
{
    if (--req->pending_closes == 0 && req->done)
        free(req);
}

static void on_deadline_closed(uv_handle_t *h)
{
    upstream_release(h->data);
}

static void on_link_closed(struct link *l)
{
    struct upstream_req *req = l->data;
    free(l);
    upstream_release(req);
}

static void upstream_drop_link(struct upstream_req *req)
{
    if (req->connecting != NULL) {
        outbound_cancel(req->connecting);
        req->connecting = NULL;
    }
    if (req->link == NULL)
        return;
    req->link->data = req;
    req->pending_closes++;
    link_close(req->link, on_link_closed);
    req->link = NULL;
}

/* Ends the request: the callback runs once; everything not handed over is closed. */
static void upstream_finish(struct upstream_req *req, struct upstream_result *r)
{
    req->done = true;
    if (req->p.pool != NULL && req->cur != NULL && r->status == OUTBOUND_OK && !req->over_mux)
        tls_pool_refill(req->p.pool, req->p.snap, req->cur);
    r->used = req->cur;
    r->detail = r->detail != NULL ? r->detail : req->detail;
    r->tls = req->tls;
    r->latency_us = (uv_now(req->p.loop) - req->started_ms) * 1000u;
    if (r->link == NULL)
        upstream_drop_link(req);
    uv_timer_stop(&req->deadline);
    uv_close((uv_handle_t *)&req->deadline, on_deadline_closed);
    req->cb(req->arg, r);
}

static void upstream_fail(struct upstream_req *req, enum outbound_status status, bool refused)
{
    struct upstream_result r = {.status = status, .upstream_refused = refused};
    upstream_finish(req, &r);
}

/* The member itself failed (unreachable, bad TLS, nonsense reply): mark it down, try the next.
 * The message names the member: fmt's first %s is its name. */
static void upstream_member_failed(struct upstream_req *req, enum outbound_status status,
                                   const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void upstream_member_failed(struct upstream_req *req, enum outbound_status status,
                                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(req->detail, sizeof(req->detail), fmt, ap);
    va_end(ap);
    req->last_failure = status;
    if (req->p.health != NULL && req->p.ask != UPSTREAM_ASK_EGRESS &&
        upstream_health_report(req->p.health, req->cur, false, req->detail, NULL, 0))
        log_msg(LOG_WARN, "upstream %s is down: %s", req->cur->name, req->detail);
    upstream_drop_link(req);
    upstream_try_next(req);
}

/* ---- writing and reading -------------------------------------------------------------------- */

/* A write holds the request (its buffer and request are in it) until it completed: an
 * optimistic CONNECT is handed over before that. */
static void on_request_written(struct link_write *w, int status)
{
    struct upstream_req *req = w->data;
    if (!req->done && status != 0 && status != UV_ECANCELED)
        upstream_member_failed(req, OUTBOUND_FAILED, "cannot write to upstream %s: %s",
                               req->cur->name, uv_strerror(status));
    upstream_release(req);
}

static void upstream_send(struct upstream_req *req, int len)
{
    if (len < 0) {
        upstream_member_failed(req, OUTBOUND_FAILED, "cannot build a request for upstream %s: %s",
                               req->cur->name, uv_strerror(len));
        return;
    }
    req->write.data = req;
    int err = link_write(req->link, &req->write, req->out, (size_t)len, on_request_written);
    if (err != 0)
        upstream_member_failed(req, OUTBOUND_FAILED, "cannot write to upstream %s: %s",
                               req->cur->name, uv_strerror(err));
    else
        req->pending_closes++; /* released by on_request_written */
}

static void upstream_send_socks_connect(struct upstream_req *req)
{
    req->step = STEP_SOCKS_REPLY;
    char host[TARGET_HOST_MAX];
    target_host_text(&req->target, host, sizeof(host));
    upstream_send(req, socks5_client_build_connect((uint8_t *)req->out, sizeof(req->out), host,
                                                   req->target.port));
}

/* Maps the Proxy-Status error of a refused CONNECT (RFC 9209 §2.3) to what the client hears. */
static enum outbound_status upstream_status_from_proxy_status(unsigned code, const char *ps,
                                                              size_t len)
{
    static const struct {
        const char *error;
        enum outbound_status status;
    } map[] = {
        {"error=dns_error", OUTBOUND_DNS_NOT_FOUND},
        {"error=dns_timeout", OUTBOUND_DNS_TIMEOUT},
        {"error=connection_refused", OUTBOUND_REFUSED},
        {"error=connection_timeout", OUTBOUND_TIMEOUT},
        {"error=destination_ip_unroutable", OUTBOUND_NET_UNREACH},
        {"error=destination_unavailable", OUTBOUND_HOST_UNREACH},
        {"error=destination_not_found", OUTBOUND_DNS_NOT_FOUND},
    };
    if (code == 403)
        return OUTBOUND_NOT_ALLOWED;
    for (size_t i = 0; ps != NULL && i < sizeof(map) / sizeof(map[0]); i++) {
        size_t n = strlen(map[i].error);
        for (size_t at = 0; at + n <= len; at++)
            if (memcmp(ps + at, map[i].error, n) == 0)
                return map[i].status;
    }
    return code == 504 ? OUTBOUND_TIMEOUT : OUTBOUND_FAILED;
}

/* Copies the details="..." parameter of Proxy-Status (or the whole value) into req->detail. */
static void upstream_note_proxy_status(struct upstream_req *req, const char *ps, size_t len)
{
    static const char key[] = "details=\"";
    const char *start = ps, *end = ps + len;
    for (size_t at = 0; ps != NULL && at + sizeof(key) - 1 <= len; at++) {
        if (memcmp(ps + at, key, sizeof(key) - 1) == 0) {
            start = ps + at + sizeof(key) - 1;
            end = memchr(start, '"', (size_t)(ps + len - start));
            end = end != NULL ? end : ps + len;
            break;
        }
    }
    if (ps == NULL)
        start = end = "";
    snprintf(req->detail, sizeof(req->detail), "upstream %s: %.*s", req->cur->name,
             (int)(end - start), start);
}

static void upstream_http_reply(struct upstream_req *req, const struct http_client_response *resp,
                                size_t consumed)
{
    unsigned code = resp->head.status;
    struct upstream_result r = {.status = OUTBOUND_OK};
    if (code == 407) {
        upstream_member_failed(req, OUTBOUND_FAILED, "upstream %s asks for credentials",
                               req->cur->name);
        return;
    }
    if (code < 200 || code > 299) {
        upstream_note_proxy_status(req, resp->proxy_status, resp->proxy_status_len);
        upstream_fail(
            req,
            upstream_status_from_proxy_status(code, resp->proxy_status, resp->proxy_status_len),
            code == 403);
        return;
    }
    switch (req->p.ask) {
    case UPSTREAM_ASK_CONNECT:
        r.link = req->link;
        r.peer = (const struct sockaddr *)&req->peer;
        r.early = (const char *)req->in + consumed;
        r.early_len = req->in_len - consumed;
        if (req->p.sessions != NULL && link_ssl(req->link) != NULL)
            tls_session_cache_put(req->p.sessions, req->cur->name, req->cur->tls,
                                  SSL_get1_session(link_ssl(req->link)));
        link_read_stop(req->link);
        req->link->data = NULL;
        req->link = NULL;
        break;
    case UPSTREAM_ASK_EGRESS:
        snprintf(req->egress, sizeof(req->egress), "%.*s", (int)resp->egress_len,
                 resp->egress != NULL ? resp->egress : "");
        r.egress = resp->egress != NULL ? req->egress : NULL;
        break;
    case UPSTREAM_ASK_RESOLVE:
        r.addresses = resp->addresses;
        r.addresses_len = resp->addresses_len;
        break;
    case UPSTREAM_ASK_HANDSHAKE: /* finished after TLS, never here */
        break;
    }
    upstream_finish(req, &r);
}

/* Parses what has been read for the current step; false when more is needed. */
static void upstream_parse(struct upstream_req *req)
{
    size_t used = 0;
    enum parse_result res = PARSE_INVALID;
    uint8_t value = 0;
    switch (req->step) {
    case STEP_SOCKS_METHOD: {
        bool login = req->cur->user != NULL;
        res = socks5_client_parse_method(req->in, req->in_len, login, &value, &used);
        if (res != PARSE_DONE)
            break;
        if (value == SOCKS5_METHOD_NONE_ACCEPTABLE) {
            upstream_member_failed(req, OUTBOUND_FAILED,
                                   "upstream %s accepts none of our SOCKS5 methods",
                                   req->cur->name);
            return;
        }
        memmove(req->in, req->in + used, req->in_len - used);
        req->in_len -= used;
        if (req->p.ask == UPSTREAM_ASK_EGRESS) {
            upstream_fail(req, OUTBOUND_OK, false);
            return;
        }
        if (value == SOCKS5_METHOD_USERPASS) {
            req->step = STEP_SOCKS_AUTH;
            upstream_send(req,
                          socks5_client_build_auth((uint8_t *)req->out, sizeof(req->out),
                                                   req->cur->user, strlen(req->cur->user),
                                                   req->cur->password, strlen(req->cur->password)));
        } else {
            upstream_send_socks_connect(req);
        }
        return;
    }
    case STEP_SOCKS_AUTH:
        res = socks5_client_parse_auth_reply(req->in, req->in_len, &value, &used);
        if (res != PARSE_DONE)
            break;
        if (value != SOCKS5_AUTH_OK) {
            upstream_member_failed(req, OUTBOUND_FAILED,
                                   "upstream %s refused our user name and password",
                                   req->cur->name);
            return;
        }
        memmove(req->in, req->in + used, req->in_len - used);
        req->in_len -= used;
        upstream_send_socks_connect(req);
        return;
    case STEP_SOCKS_REPLY: {
        struct socks5_client_reply reply;
        res = socks5_client_parse_reply(req->in, req->in_len, &reply, &used);
        if (res != PARSE_DONE)
            break;
        if (reply.rep != SOCKS5_REP_SUCCEEDED) {
            snprintf(req->detail, sizeof(req->detail), "upstream %s: SOCKS5 reply 0x%02x",
                     req->cur->name, reply.rep);
            upstream_fail(req, socks5_client_outbound_from_rep(reply.rep),
                          reply.rep == SOCKS5_REP_NOT_ALLOWED);
            return;
        }
        struct upstream_result r = {
            .status = OUTBOUND_OK,
            .link = req->link,
            .peer = (const struct sockaddr *)&req->peer,
            .early = (const char *)req->in + used,
            .early_len = req->in_len - used,
        };
        link_read_stop(req->link);
        req->link->data = NULL;
        req->link = NULL;
        upstream_finish(req, &r);
        return;
    }
    case STEP_HTTP_REPLY: {
        struct http_client_response resp;
        res = http_client_parse_response(req->in, req->in_len, sizeof(req->in),
                                         req->p.ask == UPSTREAM_ASK_CONNECT, &resp, &used);
        if (res == PARSE_DONE) {
            upstream_http_reply(req, &resp, used);
            return;
        }
        break;
    }
    case STEP_CONNECT:
    case STEP_TLS:
        return;
    }
    if (res == PARSE_INVALID)
        upstream_member_failed(req, OUTBOUND_FAILED, "upstream %s sent a malformed reply",
                               req->cur->name);
    else if (req->in_len == sizeof(req->in))
        upstream_member_failed(req, OUTBOUND_FAILED, "upstream %s sent a reply too long",
                               req->cur->name);
}

static void upstream_alloc(struct link *l, uv_buf_t *buf)
{
    struct upstream_req *req = l->data;
    *buf = uv_buf_init((char *)req->in + req->in_len, (unsigned)(sizeof(req->in) - req->in_len));
}

/* The exit refused the stream unread (mux.h): a SYN that crossed its GO_AWAY, or met its session
 * full. Not a failure of the exit's: the tunnel tries the same exit again, the exit stays up.
 * The session that refused takes no new stream of ours (said GO_AWAY, or we say it now: it is
 * full), so the next try is a stream of another session or a new connection. */
static void upstream_stream_refused(struct upstream_req *req)
{
    mux_session_go_away(link_stream_session(req->link));
    req->refusals++;
    log_msg(LOG_INFO, "upstream %s refused a mux stream (draining or full): trying again",
            req->cur->name);
    upstream_drop_link(req);
    req->next--; /* the same member */
    upstream_try_next(req);
}

static void upstream_read(struct link *l, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct upstream_req *req = l->data;
    if (nread == 0)
        return;
    if (nread == UV_ECONNREFUSED && req->over_mux && req->refusals < UPSTREAM_REFUSALS_MAX) {
        upstream_stream_refused(req);
        return;
    }
    if (nread < 0) {
        upstream_member_failed(req, OUTBOUND_FAILED, "upstream %s closed the connection: %s",
                               req->cur->name,
                               nread == UV_EOF ? "end of stream" : uv_strerror((int)nread));
        return;
    }
    req->in_len += (size_t)nread;
    upstream_parse(req);
}

/* ---- the steps ---------------------------------------------------------------------------- */

/* An optimistic CONNECT is sent: the stream is the tunnel now (the exit answers nothing when it
 * connects, and resets the stream when it cannot). An exit that refuses the stream (draining or
 * full: upstream_stream_refused) is not tried again then: the client has its reply, and the bytes
 * it sent since are gone with the stream's writes, which keep no copy; the relay resets it. */
static void upstream_finish_optimistic(struct upstream_req *req)
{
    struct upstream_result r = {
        .status = OUTBOUND_OK,
        .link = req->link,
        .peer = (const struct sockaddr *)&req->peer,
    };
    link_read_stop(req->link);
    req->link->data = NULL;
    req->link = NULL;
    upstream_finish(req, &r);
}

static void upstream_speak(struct upstream_req *req)
{
    const struct config_upstream *u = req->cur;
    if (u->kind == UPSTREAM_HTTP && req->p.ask == UPSTREAM_ASK_EGRESS) {
        upstream_fail(req, OUTBOUND_OK, false); /* reachable is all a plain parent can show */
        return;
    }
    req->in_len = 0;
    int err = link_read_start(req->link, upstream_alloc, upstream_read);
    if (err != 0) {
        upstream_member_failed(req, OUTBOUND_FAILED, "cannot read from upstream %s: %s",
                               req->cur->name, uv_strerror(err));
        return;
    }
    if (u->kind == UPSTREAM_SOCKS5) {
        req->step = STEP_SOCKS_METHOD;
        upstream_send(req, socks5_client_build_greeting((uint8_t *)req->out, sizeof(req->out),
                                                        u->user != NULL));
        return;
    }
    req->step = STEP_HTTP_REPLY;
    if (req->p.ask == UPSTREAM_ASK_EGRESS) {
        upstream_send(req, http_control_build_egress_request(req->out, sizeof(req->out)));
    } else if (req->p.ask == UPSTREAM_ASK_RESOLVE) {
        upstream_send(
            req, http_control_build_resolve_request(req->out, sizeof(req->out), req->target.host));
    } else {
        char host[TARGET_HOST_MAX];
        target_host_text(&req->target, host, sizeof(host));
        struct http_credentials creds = {.user_len = 0};
        if (u->user != NULL) {
            creds.user_len = (size_t)snprintf(creds.user, sizeof(creds.user), "%s", u->user);
            creds.password_len =
                (size_t)snprintf(creds.password, sizeof(creds.password), "%s", u->password);
        }
        bool optimistic = req->over_mux && u->optimistic && req->p.ask == UPSTREAM_ASK_CONNECT;
        upstream_send(req,
                      http_client_build_connect(req->out, sizeof(req->out), host, req->target.port,
                                                u->user != NULL ? &creds : NULL, optimistic));
        if (optimistic && !req->done && req->link != NULL)
            upstream_finish_optimistic(req);
    }
}

/* The exit took the mux: the connection becomes a session of the pool's, and the tunnel its
 * first stream. */
static void upstream_adopt_mux(struct upstream_req *req, struct link *l)
{
    if (req->p.sessions != NULL)
        tls_session_cache_put(req->p.sessions, req->cur->name, req->cur->tls,
                              SSL_get1_session(link_ssl(l)));
    req->link = NULL; /* the pool's from here */
    struct link *stream =
        mux_pool_adopt(req->p.mux, req->cur, l, (const struct sockaddr *)&req->peer);
    if (stream == NULL) {
        upstream_member_failed(req, OUTBOUND_FAILED, "cannot open a mux stream to upstream %s",
                               req->cur->name);
        return;
    }
    req->link = stream;
    stream->data = req;
    req->over_mux = true;
    upstream_speak(req);
}

static void on_tls_done(struct link *l, int status)
{
    struct upstream_req *req = l->data;
    if (status != 0) {
        if (req->p.metrics != NULL)
            metrics_count_tls_failure(
                req->p.metrics, metrics_tls_failure_of(SSL_get_verify_result(link_ssl(l)), true));
        upstream_member_failed(req, OUTBOUND_FAILED, "TLS with upstream %s failed: %s",
                               req->cur->name, link_tls_error(l));
        return;
    }
    if (req->cur->pin != NULL && !certs_ssl_peer_matches_pin(link_ssl(l), req->cur->pin)) {
        if (req->p.metrics != NULL)
            metrics_count_tls_failure(req->p.metrics, METRICS_TLS_PIN_MISMATCH);
        upstream_member_failed(req, OUTBOUND_FAILED,
                               "upstream %s presented a key that does not match its pin %s",
                               req->cur->name, req->cur->pin);
        return;
    }
    req->tls = SSL_session_reused(link_ssl(l)) ? "resumed" : "full";
    if (req->p.mux != NULL && link_tls_alpn_is(l, MUX_ALPN)) {
        upstream_adopt_mux(req, l);
        return;
    }
    if (req->p.ask == UPSTREAM_ASK_HANDSHAKE) {
        struct upstream_result r = {
            .status = OUTBOUND_OK, .link = l, .peer = (const struct sockaddr *)&req->peer};
        if (req->p.sessions != NULL)
            tls_session_cache_put(req->p.sessions, req->cur->name, req->cur->tls,
                                  SSL_get1_session(link_ssl(l)));
        l->data = NULL;
        req->link = NULL;
        upstream_finish(req, &r);
        return;
    }
    upstream_speak(req);
}

static void on_member_connected(void *arg, enum outbound_status status, struct link *link,
                                const struct sockaddr *peer)
{
    struct upstream_req *req = arg;
    req->connecting = NULL;
    if (status != OUTBOUND_OK) {
        upstream_member_failed(req, status, "cannot connect to upstream %s: %s", req->cur->name,
                               outbound_status_name(status));
        return;
    }
    req->link = link;
    link->data = req;
    memcpy(&req->peer, peer,
           peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    if (req->cur->kind != UPSTREAM_TLS) {
        upstream_speak(req);
        return;
    }
    req->step = STEP_TLS;
    SSL_SESSION *resume =
        req->p.sessions != NULL
            ? tls_session_cache_get(req->p.sessions, req->cur->name, req->cur->tls)
            : NULL;
    const char *alpn = req->p.mux != NULL && req->p.ask == UPSTREAM_ASK_CONNECT && !req->cur->no_mux
                           ? MUX_ALPN
                           : NULL;
    int err = link_tls_start(link, req->cur->tls, false, req->cur->server_name, resume, alpn,
                             on_tls_done);
    if (err != 0)
        upstream_member_failed(
            req, OUTBOUND_FAILED, "TLS with upstream %s failed: %s", req->cur->name,
            link_tls_error(link)[0] != '\0' ? link_tls_error(link) : uv_strerror(err));
}

/* The member's own address as a target: a literal when it is one, else a name to resolve. */
static void upstream_member_target(const struct config_upstream *u, struct target *t)
{
    memset(t, 0, sizeof(*t));
    t->port = u->port;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&t->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&t->addr;
    if (inet_pton(AF_INET, u->host, &in4->sin_addr) == 1)
        in4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, u->host, &in6->sin6_addr) == 1)
        in6->sin6_family = AF_INET6;
    else
        snprintf(t->host, sizeof(t->host), "%s", u->host);
}

static void upstream_try_next(struct upstream_req *req)
{
    uint64_t elapsed = uv_now(req->p.loop) - req->started_ms;
    if (req->next >= req->n_cands || elapsed >= req->p.timeout_ms) {
        if (req->n_cands == 0)
            snprintf(req->detail, sizeof(req->detail), "%s %s is down",
                     req->p.via->kind == UPSTREAM_GROUP ? "every member of group" : "upstream",
                     req->p.via->name);
        upstream_fail(req, req->n_cands == 0 ? OUTBOUND_HOST_UNREACH : req->last_failure, false);
        return;
    }
    req->cur = req->cands[req->next++];
    req->over_mux = false;
    if (req->p.mux != NULL && req->p.ask == UPSTREAM_ASK_CONNECT &&
        req->cur->kind == UPSTREAM_TLS && !req->cur->no_mux) {
        req->link = mux_pool_open(req->p.mux, req->cur, &req->peer);
        if (req->link != NULL) { /* a stream of a session: no connect, no handshake */
            req->tls = "mux";
            req->over_mux = true;
            req->link->data = req;
            upstream_speak(req);
            return;
        }
    }
    if (req->p.pool != NULL && req->p.ask == UPSTREAM_ASK_CONNECT) {
        req->link = tls_pool_take(req->p.pool, req->cur, &req->peer);
        if (req->link != NULL) { /* handshake done already */
            req->tls = "pooled";
            req->link->data = req;
            upstream_speak(req);
            return;
        }
    }
    req->step = STEP_CONNECT;
    struct target t;
    upstream_member_target(req->cur, &t);
    req->connecting =
        outbound_connect(req->p.loop, req->p.resolver, &t, (uint32_t)(req->p.timeout_ms - elapsed),
                         NULL, on_member_connected, req);
    if (req->connecting == NULL)
        upstream_member_failed(req, OUTBOUND_FAILED, "cannot connect to upstream %s: %s",
                               req->cur->name, "out of memory");
}

static void on_deadline(uv_timer_t *t)
{
    struct upstream_req *req = t->data;
    if (req->cur != NULL)
        snprintf(req->detail, sizeof(req->detail), "upstream %s did not answer in time",
                 req->cur->name);
    /* A stream that got no answer may ride a connection that died unseen (a NAT forgot it): its
     * session takes no new tunnel; the next one makes a connection of its own. */
    struct mux_session *session = req->link != NULL ? link_stream_session(req->link) : NULL;
    if (session != NULL)
        mux_session_go_away(session);
    upstream_fail(req, OUTBOUND_TIMEOUT, false);
}

static void on_start(uv_timer_t *t)
{
    struct upstream_req *req = t->data;
    uv_timer_start(&req->deadline, on_deadline, req->p.timeout_ms, 0);
    upstream_try_next(req);
}

struct upstream_req *upstream_request(const struct upstream_params *p, upstream_cb cb, void *arg)
{
    struct upstream_req *req = calloc(1, sizeof(*req));
    if (req == NULL)
        return NULL;
    req->p = *p;
    if (p->target != NULL)
        req->target = *p->target;
    req->p.target = &req->target;
    req->cb = cb;
    req->arg = arg;
    req->last_failure = OUTBOUND_HOST_UNREACH;
    req->started_ms = uv_now(p->loop);
    if (p->health != NULL) {
        req->n_cands = upstream_health_candidates(p->health, p->cfg, p->via, req->cands,
                                                  CONFIG_GROUP_MEMBERS_MAX);
    } else {
        req->cands[0] = p->via;
        req->n_cands = 1;
    }
    uv_timer_init(p->loop, &req->deadline);
    req->deadline.data = req;
    req->pending_closes = 1;
    uv_timer_start(&req->deadline, on_start, 0, 0); /* the callback never runs under the caller */
    return req;
}

void upstream_cancel(struct upstream_req *req)
{
    if (req == NULL || req->done)
        return;
    req->done = true;
    upstream_drop_link(req);
    uv_timer_stop(&req->deadline);
    uv_close((uv_handle_t *)&req->deadline, on_deadline_closed);
}
