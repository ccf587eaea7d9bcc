/* Forwarding one absolute-form exchange after another for the HTTP inbound (see
 * proxy/inbound_http.c for the whole picture and proxy/http_forward.h for the split). */
#include "proxy/http_forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_HIGH_WATER (256 * 1024)       /* queued bytes before reading the other side stops */
#define HTTP_RESPONSE_HEAD_MAX (64 * 1024) /* largest response head accepted from upstream */
#define HTTP_SMALL_HEAD 4096 /* rewritten heads up to this size are built on the stack */

static void http_on_client_read(struct conn *c, enum conn_side side, const char *data, ssize_t n);
static void http_on_upstream_read(struct conn *c, enum conn_side side, const char *data, ssize_t n);

/* ---- reading --------------------------------------------------------------------------------- */

void http_set_reading(struct conn *c, enum conn_side side, bool on)
{
    struct http_state *s = c->proto_state;
    if (s->reading[side] == on || conn_is_closing(c))
        return;
    s->reading[side] = on;
    if (!on) {
        conn_read_stop(c, side);
        return;
    }
    conn_read_fn fn = side == CONN_CLIENT ? http_on_client_read : http_on_upstream_read;
    if (conn_read_start(c, side, fn) != 0)
        conn_close(c);
}

/* Reads what can be handled now: the client while there is room for its bytes (and, during a
 * request body, while the upstream keeps up), the upstream while the client keeps up. */
void http_forward_update_reads(struct conn *c)
{
    struct http_state *s = c->proto_state;
    if (!s->forwarding || conn_is_closing(c) || s->phase == HTTP_PH_DONE)
        return;
    bool room = s->pend_len == 0 && c->hs_len < c->hs_cap && !s->client_eof;
    bool client = false;
    if (s->phase == HTTP_PH_HEAD)
        client = room;
    else if (s->phase == HTTP_PH_EXCHANGE)
        client =
            room && (s->req_body_done || conn_send_queue_size(c, CONN_UPSTREAM) <= HTTP_HIGH_WATER);
    bool upstream = s->up == HTTP_UP_OPEN && !s->up_eof &&
                    (s->phase == HTTP_PH_HEAD || s->phase == HTTP_PH_EXCHANGE) &&
                    conn_send_queue_size(c, CONN_CLIENT) <= HTTP_HIGH_WATER;
    http_set_reading(c, CONN_CLIENT, client);
    http_set_reading(c, CONN_UPSTREAM, upstream);
}

/* ---- the request ----------------------------------------------------------------------------- */

static void http_begin_exchange(struct conn *c, bool body_done)
{
    struct http_state *s = c->proto_state;
    s->phase = HTTP_PH_EXCHANGE;
    s->req_body_done = body_done;
    s->resp = HTTP_RESP_HEAD;
    s->resp_seen = false;
    s->resp_len = 0;
    s->forwarding = true;
}

/* RFC 9110 §9.2.2. A proxy must not send a non-idempotent request again on its own (RFC 9112
 * §9.3.1.1): the first may have had its effect before the connection ended. */
static bool http_method_is_idempotent(uint8_t method)
{
    switch (method) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_OPTIONS:
    case HTTP_TRACE:
    case HTTP_PUT:
    case HTTP_DELETE:
        return true;
    default:
        return false;
    }
}

/* Rewrites the head at the start of c->hs, sends it upstream and consumes it. */
void http_forward_request(struct conn *c, const struct http_request *req, size_t head_len)
{
    struct http_state *s = c->proto_state;
    size_t cap = head_len + HTTP_REWRITE_SLACK, used = 0;
    char *head = malloc(cap);
    if (head == NULL) {
        conn_close(c);
        return;
    }
    enum http_connection conn =
        req->version_minor == 0 ? HTTP_CONNECTION_KEEP_ALIVE : HTTP_CONNECTION_NONE;
    size_t n = http_rewrite_request(head, cap, req, conn);
    http_framer_init(&s->req_framer, false, req->body == HTTP_BODY_NONE);
    enum parse_result framed = http_framer_feed(&s->req_framer, c->hs, head_len, &used);
    if (n == 0 || framed == PARSE_INVALID) { /* cannot happen: the head parsed */
        free(head);
        conn_close(c);
        return;
    }
    if (!http_send(c, CONN_UPSTREAM, head, n)) {
        free(head);
        return;
    }
    if (s->up_reused && req->body == HTTP_BODY_NONE && http_method_is_idempotent(req->method)) {
        s->retry_head = head; /* kept until the first response byte */
        s->retry_len = n;
    } else {
        free(head);
    }
    conn_hs_consume(c, head_len);
    http_begin_exchange(c, framed == PARSE_DONE);
}

void http_forward_resend(struct conn *c)
{
    struct http_state *s = c->proto_state;
    bool sent = http_send(c, CONN_UPSTREAM, s->retry_head, s->retry_len);
    free(s->retry_head);
    s->retry_head = NULL;
    if (sent)
        http_begin_exchange(c, true);
}

/* ---- the request body, and client bytes ------------------------------------------------------ */

/* Sends what of data belongs to the request body upstream; returns how much that was. */
static size_t http_forward_body(struct conn *c, const uint8_t *data, size_t len)
{
    struct http_state *s = c->proto_state;
    size_t used = 0;
    enum parse_result res = http_framer_feed(&s->req_framer, data, len, &used);
    if (res == PARSE_INVALID) {
        if (s->resp == HTTP_RESP_HEAD)
            http_fail(c, 400, "http_request_error", "malformed chunked request body",
                      "geoproxy: bad request: malformed chunked body\n");
        else
            http_finish(c);
        return 0;
    }
    if (!http_send(c, CONN_UPSTREAM, data, used))
        return 0;
    if (res == PARSE_DONE)
        s->req_body_done = true;
    return used;
}

/* Moves bytes waiting in s->pend into c->hs as far as there is room. */
static void http_refill_hs(struct conn *c)
{
    struct http_state *s = c->proto_state;
    size_t n = conn_hs_append(c, s->pend, s->pend_len);
    if (n == 0)
        return;
    memmove(s->pend, s->pend + n, s->pend_len - n);
    s->pend_len -= n;
    if (s->pend_len == 0) {
        free(s->pend);
        s->pend = NULL;
    }
}

/* Keeps client bytes for later: in c->hs while there is room, the rest in s->pend. */
static bool http_hold_client(struct conn *c, const uint8_t *data, size_t len)
{
    struct http_state *s = c->proto_state;
    if (s->pend_len == 0) {
        size_t n = conn_hs_append(c, data, len);
        data += n;
        len -= n;
    }
    if (len == 0)
        return true;
    uint8_t *grown = realloc(s->pend, s->pend_len + len);
    if (grown == NULL) {
        conn_close(c);
        return false;
    }
    memcpy(grown + s->pend_len, data, len);
    s->pend = grown;
    s->pend_len += len;
    return true;
}

/* True when the client's bytes held start with a whole request, head and body (or a head that
 * does not parse, which gets its 400): after the client's end of file, the only kind worth
 * starting, as one cut short would reach the origin cut. */
static bool http_next_request_whole(struct conn *c)
{
    struct http_state *s = c->proto_state;
    struct http_request req;
    size_t head_len, used;
    enum parse_result head = http_parse_request(c->hs, c->hs_len, c->hs_cap, &req, &head_len);
    if (head != PARSE_DONE)
        return head == PARSE_INVALID;
    struct http_framer f;
    http_framer_init(&f, false, req.body == HTTP_BODY_NONE);
    enum parse_result r = http_framer_feed(&f, c->hs, c->hs_len, &used);
    if (r == PARSE_NEED_MORE && s->pend_len > 0)
        r = http_framer_feed(&f, s->pend, s->pend_len, &used);
    return r == PARSE_DONE;
}

/* Works through the client bytes held: body bytes go upstream, a head is taken when no
 * exchange is in progress. Then adjusts reading, or ends a connection whose client ended
 * before completing another request. */
void http_forward_drain(struct conn *c)
{
    struct http_state *s = c->proto_state;
    while (!conn_is_closing(c)) {
        http_refill_hs(c);
        if (s->phase == HTTP_PH_EXCHANGE && !s->req_body_done && c->hs_len > 0) {
            size_t used = http_forward_body(c, c->hs, c->hs_len);
            if (conn_is_closing(c) || s->phase == HTTP_PH_DONE)
                return;
            conn_hs_consume(c, used);
            continue;
        }
        if (s->phase == HTTP_PH_HEAD && c->hs_len > 0 && http_take_head(c))
            continue;
        break;
    }
    /* The client ended, and what it sent after its last answered request is no whole one:
     * the answers queued for it go out, then the end. */
    if (s->client_eof && !conn_is_closing(c) &&
        (s->phase == HTTP_PH_HEAD || (s->phase == HTTP_PH_EXCHANGE && !s->req_body_done))) {
        http_finish(c);
        return;
    }
    http_forward_update_reads(c);
}

/* The kept upstream connection has ended in order: the client's end follows. */
static void http_end_after_upstream(struct conn *c)
{
    struct http_state *s = c->proto_state;
    conn_close_because(c, s->client_end);
}

static void http_on_client_read(struct conn *c, enum conn_side side, const char *data, ssize_t n)
{
    struct http_state *s = c->proto_state;
    const uint8_t *p = (const uint8_t *)data;

    if (conn_is_closing(c) || s->phase == HTTP_PH_DONE)
        return;
    if (n < 0 && n != UV_EOF) { /* a reset (or a failure): it will not read an answer */
        const char *why = n == UV_ECONNRESET ? "client-reset" : "client-error";
        if (s->phase == HTTP_PH_HEAD && c->hs_len == 0 && s->up == HTTP_UP_OPEN) {
            /* Between requests no exchange is cut: the kept upstream connection ends in order
             * (a client's reset passes on as a reset only when it cuts one). */
            s->phase = HTTP_PH_DONE;
            s->up = HTTP_UP_RESETTING;
            s->client_end = why;
            conn_upstream_reset(c, http_end_after_upstream);
            return;
        }
        conn_close_because(c, why);
        return;
    }
    if (n < 0) {
        s->client_eof = true;
        s->reading[CONN_CLIENT] = false;
        /* A client may half-close after its request: answer it, then close. Between requests,
         * what is queued for it still goes; inside a request body, the request is cut. */
        if (s->phase == HTTP_PH_HEAD)
            http_finish(c);
        else if (s->phase != HTTP_PH_EXCHANGE || !s->req_body_done)
            conn_close(c);
        return;
    }
    size_t len = (size_t)n;
    if (s->phase == HTTP_PH_EXCHANGE && !s->req_body_done && c->hs_len == 0 &&
        s->pend_len == 0) { /* the common case: body bytes straight through */
        size_t used = http_forward_body(c, p, len);
        if (conn_is_closing(c) || s->phase == HTTP_PH_DONE)
            return;
        p += used;
        len -= used;
    }
    if (http_hold_client(c, p, len))
        http_forward_drain(c);
}

/* ---- responses ------------------------------------------------------------------------------- */

/* The response is complete: keep or drop the upstream, then read the next request or close. */
static void http_response_done(struct conn *c)
{
    struct http_state *s = c->proto_state;
    s->resp = HTTP_RESP_DONE;
    free(s->retry_head);
    s->retry_head = NULL;
    /* A client that half-closed after pipelining requests gets them all answered. */
    if (!s->client_keep_alive || !s->req_body_done ||
        (s->client_eof && !http_next_request_whole(c))) {
        http_finish(c);
        return;
    }
    s->phase = HTTP_PH_HEAD;
    s->up_reusable = s->up_keep_alive && s->up == HTTP_UP_OPEN && !s->up_eof;
    /* A server that closes after its answer without saying so (or resets, or failed a write
     * of ours) leaves its end right behind the answer: taken now, it is an idle connection's
     * end (http_on_upstream_eof), and a pipelined request goes on a new connection instead of
     * meeting that end, which an upload could not survive (it is never sent twice). */
    if (s->up_reusable)
        link_read_end_now(conn_side_link(c, CONN_UPSTREAM));
    if (conn_is_closing(c))
        return;
    if (!s->up_reusable)
        http_reset_upstream(c);
    http_forward_drain(c);
}

/* Upstream trouble before a response head reached the client: 502. */
static void http_bad_gateway(struct conn *c, const char *error, const char *details)
{
    char dest[TARGET_HOST_MAX + 16], body[HTTP_TEXT_MAX];
    snprintf(body, sizeof(body), "geoproxy: bad response from %s: %s\n",
             target_format(&c->target, dest, sizeof(dest)), details);
    http_fail(c, 502, error, details, body);
}

bool http_forward_idle_timeout(struct conn *c)
{
    struct http_state *s = c->proto_state;
    /* Only a request that went out whole and got nothing back: then the origin is the one
     * that went quiet (a client that stalls in its own body is closed as idle). */
    if (s->phase != HTTP_PH_EXCHANGE || !s->req_body_done || s->resp != HTTP_RESP_HEAD ||
        !s->reading[CONN_UPSTREAM]) /* not read: the client is slow, not the origin */
        return false;
    char dest[TARGET_HOST_MAX + 16], body[HTTP_TEXT_MAX];
    snprintf(body, sizeof(body), "geoproxy: no response from %s within the idle timeout\n",
             target_format(&c->target, dest, sizeof(dest)));
    http_fail(c, 504, "http_response_timeout", "no response within the idle timeout", body);
    return true;
}

static bool http_send_response_head(struct conn *c, const struct http_response *resp,
                                    size_t head_len, enum http_connection conn)
{
    char small[HTTP_SMALL_HEAD];
    size_t cap = head_len + HTTP_REWRITE_SLACK;
    char *out = cap <= sizeof(small) ? small : malloc(cap);
    if (out == NULL) {
        conn_close(c);
        return false;
    }
    size_t n = http_rewrite_response(out, cap, resp, conn);
    bool ok = n > 0 && http_send(c, CONN_CLIENT, out, n);
    if (n == 0)
        conn_close(c);
    if (out != small)
        free(out);
    return ok;
}

/* A complete response head in head[0, head_len). False when the exchange ended. */
static bool http_forward_response_head(struct conn *c, const struct http_response *resp,
                                       const uint8_t *head, size_t head_len)
{
    struct http_state *s = c->proto_state;
    if (resp->status == 101) {
        http_bad_gateway(c, "http_protocol_error", "101 Switching Protocols not asked for");
        return false;
    }
    if (resp->status / 100 == 1) /* interim: HTTP/1.0 clients do not get them */
        return s->req_minor == 0 ||
               http_send_response_head(c, resp, head_len, HTTP_CONNECTION_NONE);
    if (resp->body == HTTP_BODY_CHUNKED && s->req_minor == 0) {
        /* RFC 9112 §6.1: never chunked to HTTP/1.0, which would keep the chunks' framing as
         * body (the request went out as HTTP/1.0: the origin broke the rule) */
        http_bad_gateway(c, "http_protocol_error", "chunked response to an HTTP/1.0 request");
        return false;
    }
    s->client_keep_alive = s->req_keep_alive && resp->body != HTTP_BODY_UNTIL_CLOSE &&
                           s->req_body_done && (!s->client_eof || http_next_request_whole(c));
    s->up_keep_alive = resp->keep_alive;
    enum http_connection conn =
        s->client_keep_alive ? HTTP_CONNECTION_KEEP_ALIVE : HTTP_CONNECTION_CLOSE;
    if (!http_send_response_head(c, resp, head_len, conn))
        return false;
    size_t used = 0;
    http_framer_init(&s->resp_framer, true, resp->body == HTTP_BODY_NONE);
    enum parse_result framed = http_framer_feed(&s->resp_framer, head, head_len, &used);
    if (framed == PARSE_INVALID) { /* cannot happen: the head parsed */
        http_finish(c);
        return false;
    }
    s->resp = framed == PARSE_DONE ? HTTP_RESP_DONE : HTTP_RESP_BODY;
    return true;
}

/* Takes response head bytes from data; *used says how many. False when the exchange ended. */
static bool http_take_response_head(struct conn *c, const uint8_t *data, size_t len, size_t *used)
{
    struct http_state *s = c->proto_state;
    struct http_response resp;
    const uint8_t *buf = data;
    size_t buf_len = len, before = s->resp_len, head_len = 0;

    if (before > 0) { /* continuing a head that came in pieces */
        size_t n = len < HTTP_RESPONSE_HEAD_MAX - before ? len : HTTP_RESPONSE_HEAD_MAX - before;
        memcpy(s->resp_buf + before, data, n);
        s->resp_len += n;
        buf = s->resp_buf;
        buf_len = s->resp_len;
    }
    enum parse_result res =
        http_parse_response(buf, buf_len, HTTP_RESPONSE_HEAD_MAX, s->req_head, &resp, &head_len);
    if (res == PARSE_NEED_MORE) {
        if (before == 0) {
            if (s->resp_buf == NULL && (s->resp_buf = malloc(HTTP_RESPONSE_HEAD_MAX)) == NULL) {
                conn_close(c);
                return false;
            }
            memcpy(s->resp_buf, data, len);
            s->resp_len = len;
        }
        *used = len;
        return true;
    }
    if (res == PARSE_INVALID) {
        http_bad_gateway(
            c, resp.head_too_large ? "http_response_header_section_size" : "http_protocol_error",
            resp.error);
        return false;
    }
    *used = head_len - before;
    bool ok = http_forward_response_head(c, &resp, buf, head_len);
    s->resp_len = 0;
    free(s->resp_buf);
    s->resp_buf = NULL;
    return ok;
}

static void http_feed_response(struct conn *c, const uint8_t *data, size_t len)
{
    struct http_state *s = c->proto_state;
    while (len > 0 && !conn_is_closing(c) && s->phase == HTTP_PH_EXCHANGE) {
        size_t used = 0;
        if (s->resp == HTTP_RESP_HEAD) {
            if (!http_take_response_head(c, data, len, &used))
                return;
        } else {
            enum parse_result res = http_framer_feed(&s->resp_framer, data, len, &used);
            if (res == PARSE_INVALID) {
                http_finish(c); /* the client sees a cut-short body */
                return;
            }
            if (!http_send(c, CONN_CLIENT, data, used))
                return;
        }
        data += used;
        len -= used;
        if (s->resp_framer.done && s->resp != HTTP_RESP_HEAD) {
            if (len > 0) /* bytes after the response: the upstream is out of step */
                s->up_keep_alive = false;
            http_response_done(c);
            return;
        }
    }
}

static void http_on_upstream_eof(struct conn *c, ssize_t err)
{
    struct http_state *s = c->proto_state;
    s->reading[CONN_UPSTREAM] = false;
    s->up_eof = true;
    s->up_reusable = false;
    if (s->phase != HTTP_PH_EXCHANGE) { /* an idle kept connection closed */
        http_reset_upstream(c);
        return;
    }
    /* A reset after the origin's own end (it closed with our bytes unread) reads as EPIPE, not
     * ECONNRESET: what it sent ended in order, as a body delimited by the close does. */
    if (err == UV_EPIPE)
        err = UV_EOF;
    if (s->resp == HTTP_RESP_BODY) {
        if (err == UV_EOF && http_framer_finish(&s->resp_framer) == PARSE_DONE) {
            s->up_keep_alive = false;
            http_response_done(c);
        } else if (err == UV_EOF) {
            http_finish(c); /* the client sees a cut-short body (its length or chunks say so) */
        } else {
            /* A reset cuts the body: passed on as one, or a body delimited by the close would
             * reach the client as complete. */
            s->phase = HTTP_PH_DONE;
            conn_close_because(c, "upstream-reset");
        }
        return;
    }
    if (s->retry_head != NULL && !s->resp_seen) { /* closed while idle, as we sent: resend */
        s->up_reused = false;
        http_connect_upstream(c);
        return;
    }
    if (s->resp_seen)
        http_bad_gateway(c, "http_response_incomplete", "connection closed in the response head");
    else
        http_bad_gateway(c, "connection_terminated", "connection closed without a response");
}

static void http_on_upstream_read(struct conn *c, enum conn_side side, const char *data, ssize_t n)
{
    struct http_state *s = c->proto_state;
    if (conn_is_closing(c) || s->phase == HTTP_PH_DONE)
        return;
    if (n < 0) {
        http_on_upstream_eof(c, n);
        return;
    }
    if (s->phase != HTTP_PH_EXCHANGE || s->resp == HTTP_RESP_DONE) {
        http_reset_upstream(c); /* bytes nobody asked for: the connection is out of step */
        http_forward_update_reads(c);
        return;
    }
    s->resp_seen = true;
    free(s->retry_head);
    s->retry_head = NULL;
    http_feed_response(c, (const uint8_t *)data, (size_t)n);
    http_forward_update_reads(c);
}
