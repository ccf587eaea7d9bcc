/* The HTTP proxy inbound (struct inbound_ops, proxy/conn.h): CONNECT tunnels (RFC 9110 §9.3.6)
 * handed to the relay, and absolute-form requests (RFC 9112 §3.2.2) forwarded here, one
 * exchange after the other on a persistent client connection.
 *
 * Forwarding drives both sides itself: the request head is rewritten (proxy/http_parse.h) and
 * sent, the request body follows byte for byte as far as the request's framing goes, the
 * response head is rewritten and its body passed on as framed, then the next request is read.
 * An upstream connection is kept for the next request to the same destination, by the same
 * user, when both ends allow it. Reading a side stops while the other side has more than
 * HTTP_HIGH_WATER bytes queued, and resumes when writes complete.
 *
 * Client bytes that cannot be handled yet (a pipelined request, a body while the upstream is
 * being connected) wait in c->hs, which this protocol owns once it reads the client itself; what
 * one read brings beyond c->hs_cap waits in s->pend, and no further read is made until it has
 * moved on. Every reply the proxy makes itself carries Proxy-Status (RFC 9209).
 *
 * This file takes requests (parsing, authentication, CONNECT, connecting, replies);
 * proxy/http_forward.c runs the exchanges; proxy/http_forward.h holds what they share. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "proxy/conn.h"
#include "proxy/exit_control.h"
#include "proxy/http_control_parse.h"
#include "proxy/http_forward.h"
#include "proxy/http_parse.h"
#include "proxy/inbound.h"

#define HTTP_AUTH_FAILURES_MAX 3 /* wrong credentials before the connection closes */
#define HTTP_REPLY_MAX 2048

static void http_start_request(struct conn *c, const struct http_request *req, size_t head_len);

/* ---- small services -------------------------------------------------------------------------- */

static void http_on_sent(struct conn *c, int status)
{
    struct http_state *s = c->proto_state;
    if (status != 0 || conn_is_closing(c) || s == NULL)
        return;
    http_forward_update_reads(c); /* a queue went below the high-water mark */
}

/* Queues bytes for a side; false when the connection is closing. */
bool http_send(struct conn *c, enum conn_side side, const void *data, size_t len)
{
    if (len == 0)
        return !conn_is_closing(c);
    if (conn_send(c, side, data, len, http_on_sent) == 0) {
        if (side == CONN_UPSTREAM)
            c->bytes_up += len;
        else
            c->bytes_down += len;
        return true;
    }
    conn_close(c);
    return false;
}

/* The exchange cannot go on: flush what is queued for the client, then close. */
void http_finish(struct conn *c)
{
    struct http_state *s = c->proto_state;
    s->phase = HTTP_PH_DONE;
    conn_close_after_send(c, NULL);
}

static void http_send_reply(struct conn *c, const struct http_reply *r)
{
    struct http_state *s = c->proto_state;
    char buf[HTTP_REPLY_MAX];
    size_t n = http_build_reply(buf, sizeof(buf), r);
    if (n == 0) {
        conn_close(c);
        return;
    }
    if (!r->keep_alive)
        conn_hs_consume(c, c->hs_len); /* nothing more will be read from this client */
    if (!http_send(c, CONN_CLIENT, buf, n))
        return;
    if (!r->keep_alive) {
        s->phase = HTTP_PH_DONE;
        conn_close_after_send(c, NULL);
    }
}

/* Replies with an error and closes. */
void http_fail(struct conn *c, unsigned status, const char *error, const char *details,
               const char *body)
{
    struct http_state *s = c->proto_state;
    struct http_reply r = {
        .status = status,
        .error = error,
        .details = details,
        .body = body,
        .omit_body = s->req_head,
    };
    http_send_reply(c, &r);
}

/* ---- the upstream connection ----------------------------------------------------------------- */

static bool http_target_equal(const struct target *a, const struct target *b)
{
    if (a->port != b->port || target_is_literal(a) != target_is_literal(b))
        return false;
    if (!target_is_literal(a))
        return strcmp(a->host, b->host) == 0;
    if (a->addr.ss_family != b->addr.ss_family)
        return false;
    if (a->addr.ss_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)&a->addr)->sin_addr,
                      &((const struct sockaddr_in *)&b->addr)->sin_addr,
                      sizeof(struct in_addr)) == 0;
    return memcmp(&((const struct sockaddr_in6 *)&a->addr)->sin6_addr,
                  &((const struct sockaddr_in6 *)&b->addr)->sin6_addr,
                  sizeof(struct in6_addr)) == 0;
}

static void http_on_upstream_reset(struct conn *c)
{
    struct http_state *s = c->proto_state;
    s->up = HTTP_UP_CLOSED;
    s->up_eof = false;
    if (s->phase == HTTP_PH_CONNECT)
        conn_connect(c);
}

/* Closes an open upstream connection; a pending connect starts once it is closed. */
void http_reset_upstream(struct conn *c)
{
    struct http_state *s = c->proto_state;
    if (s->up != HTTP_UP_OPEN)
        return;
    s->up = HTTP_UP_RESETTING;
    s->up_reusable = false;
    s->reading[CONN_UPSTREAM] = false;
    conn_upstream_reset(c, http_on_upstream_reset);
}

/* Connects to c->target (policy decision included), after closing the current upstream. */
void http_connect_upstream(struct conn *c)
{
    struct http_state *s = c->proto_state;
    s->phase = HTTP_PH_CONNECT;
    http_set_reading(c, CONN_CLIENT, false);
    s->reading[CONN_CLIENT] = false; /* conn_connect() stops the client reader in any case */
    if (s->up == HTTP_UP_OPEN) {
        http_reset_upstream(c); /* its callback connects */
        return;
    }
    if (s->up == HTTP_UP_RESETTING)
        return;
    conn_connect(c);
}

/* ---- replies for refused or failed connections ----------------------------------------------- */

struct http_failure {
    enum outbound_status status;
    unsigned code;
    const char *error; /* RFC 9209 */
    const char *before, *after;
};

static const struct http_failure http_failures[] = {
    {OUTBOUND_DNS_NOT_FOUND, 502, "dns_error", "cannot resolve", "(no such name)"},
    {OUTBOUND_DNS_FAILED, 502, "dns_error", "cannot resolve", "(DNS error)"},
    {OUTBOUND_DNS_TIMEOUT, 504, "dns_timeout", "cannot resolve", "(DNS timeout)"},
    {OUTBOUND_REFUSED, 502, "connection_refused", "connection refused by", ""},
    {OUTBOUND_TIMEOUT, 504, "connection_timeout", "connection timed out to", ""},
    {OUTBOUND_NET_UNREACH, 502, "destination_ip_unroutable", "no route to",
     "(network unreachable)"},
    {OUTBOUND_HOST_UNREACH, 502, "destination_unavailable", "no route to", "(host unreachable)"},
    {OUTBOUND_FAILED, 502, "proxy_internal_error", "cannot connect to", "(internal error)"},
};

/* The reply for a failed connect (the last entry for anything unlisted). */
static const struct http_failure *http_failure_of(enum outbound_status status)
{
    const struct http_failure *f = &http_failures[sizeof(http_failures) / sizeof(*f) - 1];
    for (size_t i = 0; i < sizeof(http_failures) / sizeof(*f); i++)
        if (http_failures[i].status == status)
            f = &http_failures[i];
    return f;
}

static void http_reply_connect_failure(struct conn *c, enum outbound_status status)
{
    char dest[TARGET_HOST_MAX + 16], details[HTTP_TEXT_MAX], body[HTTP_TEXT_MAX + 16];
    target_format(&c->target, dest, sizeof(dest));

    if (c->tunnel_detail[0] != '\0') { /* the upstream said why, or none could be reached */
        const struct http_failure *f = http_failure_of(status);
        snprintf(body, sizeof(body), "geoproxy: %s: %s\n", dest, c->tunnel_detail);
        http_fail(c, status == OUTBOUND_NOT_ALLOWED ? 403 : f->code,
                  status == OUTBOUND_NOT_ALLOWED ? "http_request_denied" : f->error,
                  c->tunnel_detail, body);
        return;
    }
    if (status == OUTBOUND_NOT_ALLOWED) {
        const char *rule = c->verdict.rule != NULL ? c->verdict.rule : "(no rule)";
        const char *reason = c->verdict.reason != NULL ? c->verdict.reason : "not allowed";
        snprintf(details, sizeof(details), "blocked by rule '%s': %s", rule, reason);
        snprintf(body, sizeof(body), "geoproxy: %s is blocked by rule '%s': %s\n", dest, rule,
                 reason);
        http_fail(c, 403, "http_request_denied", details, body);
        return;
    }
    const struct http_failure *f = http_failure_of(status);
    const char *space = f->after[0] != '\0' ? " " : "";
    snprintf(details, sizeof(details), "%s %s%s%s", f->before, dest, space, f->after);
    snprintf(body, sizeof(body), "geoproxy: %s\n", details);
    http_fail(c, f->code, f->error, details, body);
}

/* ---- requests -------------------------------------------------------------------------------- */

static void http_reject_request(struct conn *c, const struct http_request *req)
{
    char body[HTTP_TEXT_MAX];
    snprintf(body, sizeof(body), "geoproxy: %s: %s\n",
             req->error_status == 431 ? "request head too large" : "bad request", req->error);
    http_fail(c, req->error_status, "http_request_error", req->error, body);
}

/* 407. A client that sent no body may retry on the same connection, a few times. */
static void http_challenge(struct conn *c, const struct http_request *req, size_t head_len,
                           bool wrong)
{
    struct http_state *s = c->proto_state;
    if (wrong)
        s->auth_failures++;
    struct http_reply r = {
        .status = 407,
        .error = "http_request_denied",
        .details = wrong ? "wrong proxy credentials" : "proxy authentication required",
        .body = wrong ? "geoproxy: wrong user name or password\n"
                      : "geoproxy: proxy authentication required\n",
        .keep_alive = req->keep_alive && req->body == HTTP_BODY_NONE &&
                      s->auth_failures < HTTP_AUTH_FAILURES_MAX && !s->client_eof,
        .auth_challenge = true,
        .omit_body = s->req_head,
    };
    http_send_reply(c, &r);
    if (r.keep_alive && !conn_is_closing(c))
        conn_hs_consume(c, head_len);
}

static void http_digest(const char *value, size_t len, unsigned char *out)
{
    unsigned int n = 0;
    memset(out, 0, EVP_MAX_MD_SIZE);
    EVP_Digest(value, len, out, &n, EVP_sha256(), NULL);
}

/* True when the request may go on now. Otherwise a 407 went out, or the credentials are being
 * verified and http_on_auth_done() resumes. */
static bool http_check_auth(struct conn *c, const struct http_request *req, size_t head_len)
{
    struct http_state *s = c->proto_state;
    const struct http_header *h = req->proxy_authorization;
    struct http_credentials cred;

    if (c->listener->users == NULL)
        return true;
    if (h == NULL) {
        http_challenge(c, req, head_len, false);
        return false;
    }
    http_digest(h->value, h->value_len, s->auth_pending);
    if (s->auth_ok && CRYPTO_memcmp(s->auth_pending, s->auth_digest, EVP_MAX_MD_SIZE) == 0)
        return true; /* the credentials verified earlier on this connection */
    if (http_parse_basic_credentials(h->value, h->value_len, &cred) != PARSE_DONE) {
        http_challenge(c, req, head_len, true);
        return false;
    }
    s->phase = HTTP_PH_AUTH;
    http_set_reading(c, CONN_CLIENT, false);
    s->reading[CONN_CLIENT] = false; /* conn_verify_user() stops the client reader */
    conn_verify_user(c, cred.user, cred.user_len, cred.password, cred.password_len);
    explicit_bzero(&cred, sizeof(cred));
    return false;
}

static void http_on_auth_done(struct conn *c, bool ok)
{
    struct http_state *s = c->proto_state;
    struct http_request req;
    size_t head_len;

    if (s == NULL || s->phase != HTTP_PH_AUTH || conn_is_closing(c))
        return;
    s->phase = HTTP_PH_HEAD;
    if (http_parse_request(c->hs, c->hs_len, c->hs_cap, &req, &head_len) != PARSE_DONE) {
        conn_close(c); /* the head parsed before and is still there: cannot happen */
        return;
    }
    if (!ok) {
        http_challenge(c, &req, head_len, true);
    } else {
        s->auth_ok = true;
        memcpy(s->auth_digest, s->auth_pending, sizeof(s->auth_digest));
        http_start_request(c, &req, head_len);
    }
    if (!conn_is_closing(c))
        http_forward_drain(c);
}

/* Parses the request head at the start of c->hs and acts on it. False: more bytes needed. */
bool http_take_head(struct conn *c)
{
    struct http_state *s = c->proto_state;
    struct http_request req;
    size_t head_len;

    s->req_head = false;
    enum parse_result res = http_parse_request(c->hs, c->hs_len, c->hs_cap, &req, &head_len);
    if (res == PARSE_NEED_MORE)
        return false;
    if (res == PARSE_INVALID) {
        http_reject_request(c, &req);
        return true;
    }
    s->req_head = req.method == HTTP_HEAD;
    if (req.form == HTTP_FORM_ORIGIN && c->listener->kind == LISTENER_TUNNEL &&
        exit_control_answer(c, &req))
        return true;
    if (req.form == HTTP_FORM_ORIGIN || req.form == HTTP_FORM_ASTERISK) {
        http_fail(c, 400, "http_request_error", "request-target is not an absolute URI",
                  "geoproxy: this is a proxy: ask for absolute URIs (GET http://host/path "
                  "HTTP/1.1) or open tunnels with CONNECT host:port\n");
        return true;
    }
    if (http_check_auth(c, &req, head_len))
        http_start_request(c, &req, head_len);
    return true;
}

static void http_start_request(struct conn *c, const struct http_request *req, size_t head_len)
{
    struct http_state *s = c->proto_state;
    c->target = req->target;
    s->tunnel = req->method == HTTP_CONNECT;
    s->optimistic = s->tunnel && c->listener->kind == LISTENER_TUNNEL && c->client.stream != NULL &&
                    http_find_header(req->headers, req->n_headers, HTTP_OPTIMISTIC_FIELD) != NULL;
    if (s->tunnel) {
        conn_hs_consume(c, head_len); /* what follows goes through the tunnel */
        if (s->pend_len > 0) {        /* more than the relay can be handed: give up */
            conn_close(c);
            return;
        }
        http_connect_upstream(c);
        return;
    }
    s->req_keep_alive = req->keep_alive;
    s->req_minor = req->version_minor;
    free(s->retry_head);
    s->retry_head = NULL;
    if (s->up == HTTP_UP_OPEN && s->up_reusable && !s->up_eof &&
        http_target_equal(&s->up_target, &c->target) && strcmp(s->up_user, c->user) == 0) {
        s->up_reused = true;
        s->up_reusable = false;
        http_forward_request(c, req, head_len);
        return;
    }
    s->up_reused = false;
    http_connect_upstream(c);
}

static void http_on_connect_done(struct conn *c, enum outbound_status status)
{
    struct http_state *s = c->proto_state;
    struct http_request req;
    size_t head_len;

    if (s == NULL || s->phase != HTTP_PH_CONNECT || conn_is_closing(c))
        return;
    if (status != OUTBOUND_OK && s->optimistic) { /* the entry answered its client already */
        conn_close_resetting_client(c, "refused-optimistic");
        return;
    }
    if (status != OUTBOUND_OK) {
        http_reply_connect_failure(c, status);
        return;
    }
    s->up = HTTP_UP_OPEN;
    s->up_eof = false;
    s->up_reusable = false;
    conn_forward_begin(c); /* idle deadline even if neither side is read (a slow client) */
    s->up_target = c->target;
    memcpy(s->up_user, c->user, sizeof(s->up_user));
    if (s->tunnel) {
        s->phase = HTTP_PH_DONE;
        if (s->optimistic || http_send(c, CONN_CLIENT, HTTP_CONNECT_OK, strlen(HTTP_CONNECT_OK)))
            conn_relay_start(c); /* bytes sent after the CONNECT head go first */
        return;
    }
    if (s->retry_head != NULL) { /* the kept connection closed unused: same head again */
        http_forward_resend(c);
    } else if (http_parse_request(c->hs, c->hs_len, c->hs_cap, &req, &head_len) == PARSE_DONE) {
        http_forward_request(c, &req, head_len);
    } else {
        conn_close(c); /* the head parsed before and is still there: cannot happen */
    }
    if (!conn_is_closing(c))
        http_forward_drain(c);
}

static void http_on_data(struct conn *c)
{
    if (c->proto_state == NULL) {
        c->proto_state = calloc(1, sizeof(struct http_state));
        if (c->proto_state == NULL) {
            conn_close(c);
            return;
        }
    }
    http_forward_drain(c);
}

static void http_on_free(struct conn *c)
{
    struct http_state *s = c->proto_state;
    if (s == NULL)
        return;
    free(s->pend);
    free(s->resp_buf);
    free(s->retry_head);
    explicit_bzero(s, sizeof(*s));
    free(s);
    c->proto_state = NULL;
}

const struct inbound_ops inbound_http_ops = {
    .name = "http",
    .on_data = http_on_data,
    .on_connect_done = http_on_connect_done,
    .on_auth_done = http_on_auth_done,
    .on_free = http_on_free,
    .on_idle_timeout = http_forward_idle_timeout,
};
