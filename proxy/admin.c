/* The admin listener's connections: reading requests, routing, writing replies and event
 * streams. What the endpoints say is built in admin_routes.c. */
#include "proxy/admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "policy/config.h"
#include "proxy/admin_routes.h"
#include "proxy/container_of.h"
#include "proxy/event_filter.h"
#include "proxy/events.h"
#include "proxy/http_parse.h"
#include "proxy/inspect.h"
#include "proxy/log.h"
#include "proxy/worker.h"

_Static_assert(CONFIG_ADMIN_PATH_MAX <= sizeof(((struct sockaddr_un *)0)->sun_path),
               "an admin socket path fits in sockaddr_un");

struct admin_conn;

/* The listener's and each connection's stream: TCP or a unix socket. Everything past the bind
 * and the handle's init goes through .stream, so both kinds share one code path. */
union admin_stream {
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
};

/* A candidate policy being loaded off the loop for a dry run. */
struct admin_load {
    uv_work_t work;
    struct admin_server *srv;
    struct admin_conn *conn; /* NULL once the client went away */
    char path[1024];
    struct config *cfg;
    struct config_diags diags;
};

struct admin_conn {
    union admin_stream io;
    struct admin_server *srv;
    struct admin_conn *prev, *next;
    char in[ADMIN_HEAD_MAX + ADMIN_BODY_MAX];
    size_t in_len;
    bool keep_alive;
    bool busy;      /* an answer is being prepared off this callback */
    bool following; /* /events */
    struct event_filter filter;
    bool closing;
    bool close_after_write; /* Connection: close was answered */
    bool head_only;         /* a HEAD request: the reply has no body */
    unsigned writes;        /* in flight */
    uint64_t cursor;
    struct admin_load *load;
};

struct admin_server {
    uv_loop_t *loop;
    union admin_stream listener;
    bool on_unix; /* the listener (and so every connection) is a uv_pipe_t */
    uv_async_t events_wake;
    uv_async_t inspect_done;
    struct admin_deps deps;
    struct admin_status_info info;
    struct metrics_exposition expo;
    struct admin_conn *conns;
    size_t n_conns;
    struct inspection *inspection;  /* the question out to the workers, or NULL */
    struct admin_conn *inspect_for; /* who asked it (NULL: gone) */
    int open_handles;
    bool closing;
};

struct admin_write {
    uv_write_t req;
    struct admin_conn *conn;
    struct strbuf data;
};

static void admin_stream_init(const struct admin_server *a, union admin_stream *s)
{
    if (a->on_unix)
        uv_pipe_init(a->loop, &s->pipe, 0);
    else
        uv_tcp_init(a->loop, &s->tcp);
}

static void admin_conn_close(struct admin_conn *ac);
static void admin_conn_process(struct admin_conn *ac);
static void admin_feed(struct admin_conn *ac);

/* ---- writing ------------------------------------------------------------------------------- */

static void on_admin_write(uv_write_t *req, int status)
{
    struct admin_write *w = container_of(req, struct admin_write, req);
    struct admin_conn *ac = w->conn;
    strbuf_free(&w->data);
    free(w);
    ac->writes--;
    if (status < 0 || (ac->close_after_write && ac->writes == 0))
        admin_conn_close(ac);
    else if (ac->following)
        admin_feed(ac); /* room again: send what waited */
}

/* Queues sb's bytes (taking them over; sb is left empty). */
static void admin_send(struct admin_conn *ac, struct strbuf *sb)
{
    if (ac->closing || sb->failed || sb->len == 0) {
        strbuf_free(sb);
        return;
    }
    struct admin_write *w = malloc(sizeof *w);
    if (w == NULL) {
        strbuf_free(sb);
        admin_conn_close(ac);
        return;
    }
    w->conn = ac;
    w->data = *sb;
    memset(sb, 0, sizeof *sb);
    uv_buf_t buf = uv_buf_init(w->data.data, (unsigned)w->data.len);
    if (uv_write(&w->req, &ac->io.stream, &buf, 1, on_admin_write) != 0) {
        strbuf_free(&w->data);
        free(w);
        admin_conn_close(ac);
        return;
    }
    ac->writes++;
}

/* A whole response with Content-Length (no body for HEAD). */
static void admin_reply(struct admin_conn *ac, unsigned status, const char *reason,
                        const char *ctype, const char *extra_headers, const char *body, size_t len)
{
    struct strbuf sb;
    strbuf_init(&sb, len + 1024);
    strbuf_printf(&sb,
                  "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                  "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s"
                  "Connection: %s\r\n\r\n",
                  status, reason, ctype, len, extra_headers != NULL ? extra_headers : "",
                  ac->keep_alive ? "keep-alive" : "close");
    if (!ac->head_only)
        strbuf_append(&sb, body, len);
    ac->head_only = false;
    admin_send(ac, &sb);
    ac->busy = false;
    if (!ac->keep_alive) {
        ac->close_after_write = true;
        if (ac->writes == 0)
            admin_conn_close(ac);
    } else if (ac->in_len > 0) {
        admin_conn_process(ac); /* a pipelined request */
    }
}

/* A JSON response; takes the strbuf over. */
static void admin_reply_json(struct admin_conn *ac, unsigned status, const char *reason,
                             struct strbuf *json)
{
    if (json->failed) {
        static const char msg[] = "{\"error\":\"reply too large or out of memory\"}\n";
        admin_reply(ac, 500, "Internal Server Error", "application/json", NULL, msg,
                    sizeof msg - 1);
    } else {
        admin_reply(ac, status, reason, "application/json", NULL, json->data, json->len);
    }
    strbuf_free(json);
}

static void admin_reply_error(struct admin_conn *ac, unsigned status, const char *reason,
                              const char *extra_headers, const char *message)
{
    struct strbuf sb;
    strbuf_init(&sb, 4096);
    strbuf_puts(&sb, "{\"error\":");
    strbuf_json_string(&sb, message);
    strbuf_puts(&sb, "}\n");
    if (sb.failed) {
        strbuf_free(&sb);
        admin_conn_close(ac);
        return;
    }
    admin_reply(ac, status, reason, "application/json", extra_headers, sb.data, sb.len);
    strbuf_free(&sb);
}

/* ---- closing ------------------------------------------------------------------------------- */

static void admin_maybe_free(struct admin_server *a)
{
    if (a->closing && a->open_handles == 0 && a->conns == NULL && a->inspection == NULL)
        free(a);
}

static void on_admin_conn_closed(uv_handle_t *h)
{
    struct admin_conn *ac = container_of(h, struct admin_conn, io);
    struct admin_server *a = ac->srv;
    if (ac->prev != NULL)
        ac->prev->next = ac->next;
    else
        a->conns = ac->next;
    if (ac->next != NULL)
        ac->next->prev = ac->prev;
    a->n_conns--;
    free(ac);
    admin_maybe_free(a);
}

static void admin_conn_close(struct admin_conn *ac)
{
    if (ac->closing)
        return;
    ac->closing = true;
    struct admin_server *a = ac->srv;
    if (ac->following)
        events_unfollow(&a->deps.rt->events);
    if (a->inspect_for == ac)
        a->inspect_for = NULL;
    if (ac->load != NULL)
        ac->load->conn = NULL;
    reloader_forget(a->deps.reloader, ac);
    uv_close((uv_handle_t *)&ac->io, on_admin_conn_closed);
}

/* ---- asynchronous answers ------------------------------------------------------------------ */

static void on_reload_done(void *arg, bool ok, uint64_t generation, const char *error)
{
    struct admin_conn *ac = arg;
    struct strbuf sb;
    strbuf_init(&sb, 4096);
    strbuf_printf(&sb, "{\"ok\":%s,\"generation\":%llu,\"error\":", ok ? "true" : "false",
                  (unsigned long long)generation);
    strbuf_json_string(&sb, error);
    strbuf_puts(&sb, "}\n");
    if (ok)
        admin_reply_json(ac, 200, "OK", &sb);
    else
        admin_reply_json(ac, 422, "Unprocessable Content", &sb);
}

/* Sends a question to every worker; the answer arrives on inspect_done. */
static void admin_ask_workers(struct admin_conn *ac, enum inspect_kind kind,
                              struct policy_snapshot *candidate)
{
    struct admin_server *a = ac->srv;
    if (a->inspection != NULL) {
        policy_snapshot_release(candidate);
        admin_reply_error(ac, 503, "Service Unavailable", "Retry-After: 1\r\n",
                          "another connection listing is being answered; try again");
        return;
    }
    a->inspection = inspection_new(kind, candidate, a->deps.n_workers, &a->inspect_done);
    if (a->inspection == NULL) {
        admin_reply_error(ac, 500, "Internal Server Error", NULL, "out of memory");
        return;
    }
    a->inspect_for = ac;
    ac->busy = true;
    for (unsigned i = 0; i < a->deps.n_workers; i++)
        worker_request_inspection(&a->deps.workers[i], a->inspection);
}

static void on_admin_handle_closed(uv_handle_t *h);

static void on_inspect_done(uv_async_t *async)
{
    struct admin_server *a = container_of(async, struct admin_server, inspect_done);
    struct inspection *q = a->inspection;
    if (q == NULL || !inspection_is_complete(q))
        return;
    a->inspection = NULL;
    if (a->closing) /* it was kept open for this answer */
        uv_close((uv_handle_t *)&a->inspect_done, on_admin_handle_closed);
    struct admin_conn *ac = a->inspect_for;
    a->inspect_for = NULL;
    if (ac != NULL && !ac->closing) {
        struct strbuf sb;
        admin_render_inspection(q, &sb);
        admin_reply_json(ac, 200, "OK", &sb);
    }
    inspection_free(q);
    admin_maybe_free(a);
}

static void admin_load_run(uv_work_t *work)
{
    struct admin_load *l = container_of(work, struct admin_load, work);
    config_load_file(l->path, &l->cfg, &l->diags);
}

static void admin_load_done(uv_work_t *work, int status)
{
    struct admin_load *l = container_of(work, struct admin_load, work);
    struct admin_conn *ac = l->conn;
    struct admin_server *a = l->srv;
    a->open_handles--; /* the work item kept the server alive */
    if (ac != NULL) {
        ac->load = NULL;
        if (l->cfg == NULL) {
            struct strbuf sb;
            admin_render_diags(l->path, &l->diags, &sb);
            admin_reply_json(ac, 422, "Unprocessable Content", &sb);
        } else if (a->closing) {
            config_free(l->cfg);
        } else {
            struct policy_snapshot *candidate = policy_snapshot_new(l->cfg, 0);
            if (candidate == NULL)
                admin_reply_error(ac, 500, "Internal Server Error", NULL, "out of memory");
            else
                admin_ask_workers(ac, INSPECT_DRY_RUN, candidate);
        }
        l->cfg = NULL;
    }
    config_free(l->cfg);
    free(l);
    admin_maybe_free(a);
}

static void admin_start_dry_run(struct admin_conn *ac, const char *body, size_t len)
{
    while (len > 0 && (body[len - 1] == '\n' || body[len - 1] == '\r' || body[len - 1] == ' '))
        len--;
    if (len == 0 || len >= sizeof(((struct admin_load *)0)->path) || memchr(body, 0, len)) {
        admin_reply_error(ac, 400, "Bad Request", NULL,
                          "POST /dry-run takes the path of a candidate configuration file as "
                          "its body");
        return;
    }
    struct admin_load *l = calloc(1, sizeof *l);
    if (l == NULL) {
        admin_reply_error(ac, 500, "Internal Server Error", NULL, "out of memory");
        return;
    }
    memcpy(l->path, body, len);
    l->srv = ac->srv;
    l->conn = ac;
    if (uv_queue_work(ac->srv->loop, &l->work, admin_load_run, admin_load_done) != 0) {
        free(l);
        admin_reply_error(ac, 500, "Internal Server Error", NULL, "cannot start the load");
        return;
    }
    ac->srv->open_handles++;
    ac->load = l;
    ac->busy = true;
}

/* ---- event streams ------------------------------------------------------------------------- */

static void admin_follow(struct admin_conn *ac, const struct event_filter *filter)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
                               "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
    static const char *const types[] = {
        [EVENT_FORMAT_JSON] = "application/x-ndjson",
        [EVENT_FORMAT_TEXT] = "text/plain; charset=utf-8",
        [EVENT_FORMAT_SSE] = "text/event-stream",
    };
    /* Followed before the head goes out (uv_write may send it at once): an event published
     * after the client has read the head is then always in its stream. */
    events_follow(&ac->srv->deps.rt->events, &ac->cursor);
    ac->following = true;
    struct strbuf sb;
    strbuf_init(&sb, 512);
    strbuf_printf(&sb, head, types[filter->format]);
    if (filter->format == EVENT_FORMAT_SSE)
        strbuf_puts(&sb, ": geoproxy events\n\n");
    ac->filter = *filter;
    ac->keep_alive = false;
    admin_send(ac, &sb);
}

static void admin_feed_lines(struct admin_conn *ac, const char *lines, size_t n, uint64_t lost);

/* Sends a follower what arrived since its cursor, as long as it keeps up with reading. */
static void admin_feed(struct admin_conn *ac)
{
    static char lines[EVENTS_LINE_MAX * 16];
    uint64_t lost = 0;
    size_t n = 0;
    for (;;) {
        if (ac->closing || uv_stream_get_write_queue_size(&ac->io.stream) > ADMIN_STREAM_BACKLOG)
            return; /* the next write completion feeds it again */
        n = events_read(&ac->srv->deps.rt->events, &ac->cursor, lines, sizeof lines, &lost);
        if (n == 0 && lost == 0)
            return;
        admin_feed_lines(ac, lines, n, lost);
    }
}

/* Writes lines (JSON, one per line) in the follower's format, after a note of lost ones. */
static void admin_feed_lines(struct admin_conn *ac, const char *lines, size_t n, uint64_t lost)
{
    struct strbuf sb;
    strbuf_init(&sb, n * 2 + 256);
    if (lost > 0) {
        char note[64];
        int len = snprintf(note, sizeof note, "{\"event\":\"lost\",\"count\":%llu}\n",
                           (unsigned long long)lost);
        event_filter_render(&ac->filter, note, (size_t)len, &sb);
    }
    for (size_t start = 0; start < n;) {
        const char *nl = memchr(lines + start, '\n', n - start);
        size_t end = nl != NULL ? (size_t)(nl - lines) + 1 : n;
        event_filter_render(&ac->filter, lines + start, end - start, &sb);
        start = end;
    }
    admin_send(ac, &sb);
}

static void on_events_wake(uv_async_t *async)
{
    struct admin_server *a = container_of(async, struct admin_server, events_wake);
    for (struct admin_conn *ac = a->conns; ac != NULL; ac = ac->next)
        if (ac->following)
            admin_feed(ac);
}

/* ---- requests ------------------------------------------------------------------------------ */

static bool admin_authorized(const struct admin_server *a, const struct http_request *req)
{
    struct policy_snapshot *snap = runtime_acquire_snapshot(a->deps.rt);
    const char *token = policy_snapshot_config(snap)->admin.token;
    bool ok = token == NULL;
    if (!ok) {
        const struct http_header *h =
            http_find_header(req->headers, req->n_headers, "authorization");
        size_t tlen = strlen(token);
        ok = h != NULL && h->value_len == 7 + tlen && strncmp(h->value, "Bearer ", 7) == 0 &&
             CRYPTO_memcmp(h->value + 7, token, tlen) == 0;
    }
    policy_snapshot_release(snap);
    return ok;
}

static bool path_is(const char *path, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(path, want, len) == 0;
}

static void admin_route(struct admin_conn *ac, const struct http_request *req, const char *body,
                        size_t body_len)
{
    struct admin_server *a = ac->srv;
    size_t path_len = req->uri_len;
    const char *q = memchr(req->uri, '?', req->uri_len);
    if (q != NULL)
        path_len = (size_t)(q - req->uri);
    const char *path = req->uri;
    bool get = req->method == HTTP_GET, post = req->method == HTTP_POST;
    if (req->method == HTTP_HEAD) { /* as GET without the body (admin_reply leaves it out) */
        get = true;
        ac->head_only = true;
    }
    struct strbuf sb;

    if (!admin_authorized(a, req)) {
        admin_reply_error(ac, 401, "Unauthorized",
                          "WWW-Authenticate: Bearer realm=\"geoproxy\"\r\n",
                          "this admin listener needs 'Authorization: Bearer TOKEN'");
        return;
    }
    if (get && path_is(path, path_len, "/favicon.ico")) {
        admin_reply(ac, 204, "No Content", "image/x-icon", NULL, "", 0);
    } else if (get && path_is(path, path_len, "/events") && ac->head_only) {
        admin_reply(ac, 200, "OK", "application/x-ndjson", NULL, "", 0);
    } else if (get && path_is(path, path_len, "/")) {
        size_t len;
        const char *page = admin_dashboard_page(&len);
        admin_reply(ac, 200, "OK", "text/html; charset=utf-8",
                    "Content-Security-Policy: default-src 'self'; style-src 'unsafe-inline'; "
                    "script-src 'unsafe-inline'\r\n",
                    page, len);
    } else if (get && path_is(path, path_len, "/status")) {
        if (q != NULL && strncmp(q, "?format=text", 12) == 0) {
            admin_render_status_text(&a->info, &sb);
            admin_reply(ac, 200, "OK", "text/plain; charset=utf-8", NULL, sb.data, sb.len);
            strbuf_free(&sb);
            return;
        }
        admin_render_status(&a->info, &sb);
        admin_reply_json(ac, 200, "OK", &sb);
    } else if (get && path_is(path, path_len, "/metrics")) {
        admin_render_metrics(&a->info, &a->expo, &sb);
        if (sb.failed)
            admin_reply_error(ac, 500, "Internal Server Error", NULL, "metrics too large");
        else
            admin_reply(ac, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL, sb.data,
                        sb.len);
        strbuf_free(&sb);
    } else if (get && path_is(path, path_len, "/connections")) {
        admin_ask_workers(ac, INSPECT_LIST, NULL);
    } else if (get && path_is(path, path_len, "/events")) {
        struct event_filter filter;
        char err[128];
        const char *query = q != NULL ? q + 1 : "";
        size_t query_len = q != NULL ? req->uri_len - path_len - 1 : 0;
        if (event_filter_parse(query, query_len, &filter, err, sizeof err) != 0) {
            admin_reply_error(ac, 400, "Bad Request", NULL, err);
            return;
        }
        const struct http_header *accept = http_find_header(req->headers, req->n_headers, "accept");
        if (accept != NULL && accept->value_len >= 17 &&
            memmem(accept->value, accept->value_len, "text/event-stream", 17) != NULL)
            filter.format = EVENT_FORMAT_SSE;
        admin_follow(ac, &filter);
    } else if (post && path_is(path, path_len, "/reload")) {
        if (reloader_request_then(a->deps.reloader, "admin", on_reload_done, ac) != 0)
            admin_reply_error(ac, 503, "Service Unavailable", "Retry-After: 1\r\n",
                              "too many reload requests are waiting");
        else
            ac->busy = true;
    } else if (post && path_is(path, path_len, "/dry-run")) {
        admin_start_dry_run(ac, body, body_len);
    } else if (path_is(path, path_len, "/") || path_is(path, path_len, "/status") ||
               path_is(path, path_len, "/metrics") || path_is(path, path_len, "/connections") ||
               path_is(path, path_len, "/events")) {
        admin_reply_error(ac, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n", "use GET");
    } else if (path_is(path, path_len, "/reload") || path_is(path, path_len, "/dry-run")) {
        admin_reply_error(ac, 405, "Method Not Allowed", "Allow: POST\r\n", "use POST");
    } else {
        admin_reply_error(ac, 404, "Not Found", NULL,
                          "no such endpoint (/, /status, /metrics, /connections, /events, "
                          "/reload, /dry-run)");
    }
}

/* Parses and answers the request at the start of ac->in, if it is complete. */
static void admin_conn_process(struct admin_conn *ac)
{
    struct http_request req;
    size_t head_len = 0;

    if (ac->busy || ac->following || ac->closing || ac->in_len == 0)
        return;
    enum parse_result r =
        http_parse_request((const uint8_t *)ac->in, ac->in_len, ADMIN_HEAD_MAX, &req, &head_len);
    if (r == PARSE_NEED_MORE)
        return;
    ac->keep_alive = false;
    if (r == PARSE_INVALID) {
        ac->in_len = 0;
        ac->keep_alive = false;
        admin_reply_error(ac, req.error_status,
                          req.error_status == 431 ? "Too Large" : "Bad Request", NULL, req.error);
        return;
    }
    if (req.form != HTTP_FORM_ORIGIN || req.body == HTTP_BODY_CHUNKED ||
        (req.body == HTTP_BODY_LENGTH && req.content_length > ADMIN_BODY_MAX)) {
        ac->in_len = 0;
        admin_reply_error(ac, 400, "Bad Request", NULL,
                          "the admin listener takes origin-form requests with a body of at most "
                          "64 KiB and a Content-Length");
        return;
    }
    size_t body_len = req.body == HTTP_BODY_LENGTH ? (size_t)req.content_length : 0;
    if (ac->in_len < head_len + body_len)
        return; /* the rest of the body is on its way */
    char body[ADMIN_BODY_MAX + 1];
    memcpy(body, ac->in + head_len, body_len);
    body[body_len] = '\0';
    ac->keep_alive = req.keep_alive;
    /* The request is consumed before it is answered (an answer may go on to a pipelined
     * request), so its slices are moved to a copy of the head. */
    struct http_request parsed = req;
    char head_copy[ADMIN_HEAD_MAX];
    memcpy(head_copy, ac->in, head_len);
    parsed.uri = head_copy + (req.uri - ac->in);
    for (size_t i = 0; i < parsed.n_headers; i++) {
        parsed.headers[i].name = head_copy + (req.headers[i].name - ac->in);
        parsed.headers[i].value = head_copy + (req.headers[i].value - ac->in);
    }
    memmove(ac->in, ac->in + head_len + body_len, ac->in_len - head_len - body_len);
    ac->in_len -= head_len + body_len;
    admin_route(ac, &parsed, body, body_len);
}

static void on_admin_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct admin_conn *ac = container_of(h, struct admin_conn, io);
    buf->base = ac->in + ac->in_len;
    buf->len = sizeof ac->in - ac->in_len;
}

static void on_admin_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct admin_conn *ac = container_of(s, struct admin_conn, io);
    if (nread < 0) {
        admin_conn_close(ac);
        return;
    }
    ac->in_len += (size_t)nread;
    if (ac->following) { /* a follower has nothing more to say */
        ac->in_len = 0;
        return;
    }
    if (ac->in_len == sizeof ac->in && !ac->busy) {
        ac->in_len = 0;
        ac->keep_alive = false;
        admin_reply_error(ac, 431, "Too Large", NULL, "request too large");
        return;
    }
    admin_conn_process(ac);
}

static void on_admin_connection(uv_stream_t *server, int status)
{
    struct admin_server *a = container_of(server, struct admin_server, listener);
    if (status < 0 || a->closing)
        return;
    struct admin_conn *ac = calloc(1, sizeof *ac);
    if (ac == NULL)
        return;
    admin_stream_init(a, &ac->io);
    ac->srv = a;
    ac->next = a->conns;
    if (a->conns != NULL)
        a->conns->prev = ac;
    a->conns = ac;
    a->n_conns++;
    if (uv_accept(server, &ac->io.stream) != 0 || a->n_conns > ADMIN_CONNS_MAX) {
        admin_conn_close(ac);
        return;
    }
    uv_read_start(&ac->io.stream, on_admin_alloc, on_admin_read);
}

/* ---- the server ---------------------------------------------------------------------------- */

static void on_admin_handle_closed(uv_handle_t *h)
{
    struct admin_server *a = h->data;
    a->open_handles--;
    admin_maybe_free(a);
}

/* Makes way for a unix socket at path: nothing is there, or a socket nothing listens on any more
 * (left by a geoproxy that died), which is removed. A file that is not a socket, or a socket a
 * live process listens on, is refused: a libuv error, with the reason in why when errno's text
 * would not say it. */
static int admin_claim_socket_path(const char *path, char *why, size_t why_len)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : uv_translate_sys_error(errno);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(why, why_len,
                 "the path exists and is not a socket (remove it, or choose another path)");
        return UV_EEXIST;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, path, strlen(path) + 1);
    int probe = connect(fd, (const struct sockaddr *)&sun, sizeof sun) == 0 ? 0 : errno;
    close(fd);
    if (probe == ECONNREFUSED) { /* a socket file without a listener */
        if (unlink(path) != 0 && errno != ENOENT) {
            int e = errno;
            snprintf(why, why_len, "cannot remove the stale socket: %s", strerror(e));
            return uv_translate_sys_error(e);
        }
        log_msg(LOG_INFO, "admin listener: replaced the stale socket %s (nothing listened on it)",
                path);
        return 0;
    }
    if (probe == ENOENT) /* removed meanwhile */
        return 0;
    if (probe == 0 || probe == EAGAIN) { /* accepted, or a full backlog: someone listens */
        snprintf(why, why_len,
                 "another process is listening on it (is geoproxy already running with it?)");
        return UV_EADDRINUSE;
    }
    return uv_translate_sys_error(probe);
}

/* Binds the listener to the TCP address or the socket file, whose mode is set before
 * uv_listen: until then every connect to it is refused, whatever the mode. */
static int admin_bind(struct admin_server *a, const struct config_admin *cfg, char *why,
                      size_t why_len)
{
    if (!a->on_unix)
        return uv_tcp_bind(&a->listener.tcp, (const struct sockaddr *)&cfg->addr, 0);
    int err = admin_claim_socket_path(cfg->unix_path, why, why_len);
    if (err == 0)
        err = uv_pipe_bind(&a->listener.pipe, cfg->unix_path);
    if (err == UV_EACCES) { /* libuv reports a missing directory as EACCES too */
        char dir[CONFIG_ADMIN_PATH_MAX];
        struct stat st;
        memcpy(dir, cfg->unix_path, sizeof dir);
        char *slash = strrchr(dir, '/');
        if (slash != NULL)
            *(slash == dir ? slash + 1 : slash) = '\0';
        if (slash != NULL && stat(dir, &st) != 0 && errno == ENOENT)
            snprintf(why, why_len, "the directory %s does not exist", dir);
    }
    if (err == 0 && chmod(cfg->unix_path, cfg->unix_mode) != 0)
        err = uv_translate_sys_error(errno);
    return err;
}

int admin_start(uv_loop_t *loop, const struct config_admin *cfg, const struct admin_deps *deps,
                struct admin_server **out)
{
    char shown[CONFIG_ADMIN_PATH_MAX + 16], why[CONFIG_ADMIN_PATH_MAX + 128] = "";
    struct admin_server *a = calloc(1, sizeof *a);
    if (a == NULL)
        return UV_ENOMEM;
    a->loop = loop;
    a->deps = *deps;
    a->on_unix = cfg->unix_path[0] != '\0';
    if (a->on_unix)
        snprintf(shown, sizeof shown, "unix:%s", cfg->unix_path);
    else
        config_format_addr(&cfg->addr, shown, sizeof shown);
    admin_status_info_init(&a->info, deps);
    admin_stream_init(a, &a->listener);
    uv_async_init(loop, &a->events_wake, on_events_wake);
    uv_async_init(loop, &a->inspect_done, on_inspect_done);
    a->listener.stream.data = a->events_wake.data = a->inspect_done.data = a;
    a->open_handles = 3;
    int err = admin_bind(a, cfg, why, sizeof why);
    if (err == 0)
        err = uv_listen(&a->listener.stream, 64, on_admin_connection);
    if (err != 0) {
        log_msg(LOG_ERROR, "admin listener: cannot listen on %s: %s", shown,
                why[0] != '\0' ? why : uv_strerror(err));
        a->closing = true;
        uv_close((uv_handle_t *)&a->listener, on_admin_handle_closed);
        uv_close((uv_handle_t *)&a->events_wake, on_admin_handle_closed);
        uv_close((uv_handle_t *)&a->inspect_done, on_admin_handle_closed);
        return err;
    }
    events_hub_set_wake(&deps->rt->events, &a->events_wake);
    if (a->on_unix)
        log_msg(LOG_INFO, "admin listener on %s (mode %04o, %s)", shown, cfg->unix_mode,
                cfg->token != NULL ? "bearer token required" : "no token: the mode guards it");
    else
        log_msg(LOG_INFO, "admin listener on http://%s/ (%s)", shown,
                cfg->token != NULL ? "bearer token required" : "no token: loopback only");
    *out = a;
    return 0;
}

/* Closing a bound uv_pipe_t also removes its socket file (libuv unlinks it before closing the
 * descriptor), so a stopped geoproxy leaves no socket behind. */
void admin_close(struct admin_server *a)
{
    if (a == NULL || a->closing)
        return;
    a->closing = true;
    events_hub_set_wake(&a->deps.rt->events, NULL);
    uv_close((uv_handle_t *)&a->listener, on_admin_handle_closed);
    uv_close((uv_handle_t *)&a->events_wake, on_admin_handle_closed);
    if (a->inspection == NULL) /* else workers still answer into it: closed once they have */
        uv_close((uv_handle_t *)&a->inspect_done, on_admin_handle_closed);
    for (struct admin_conn *ac = a->conns; ac != NULL; ac = ac->next)
        admin_conn_close(ac);
}
