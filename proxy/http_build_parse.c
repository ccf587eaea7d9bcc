/* Writing HTTP/1.x for the proxy: heads rewritten for forwarding and the replies the proxy
 * makes itself (proxy/http_parse.h). Named *_parse.c to live in the pure parser library: no
 * sockets, no allocation. Every write goes through the bounded buffer below. */
#include "proxy/http_parse.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool text_equals(const char *s, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(s, name, len) == 0;
}

/* ---- the bounded buffer ---------------------------------------------------------------------- */

/* A bounded output buffer; once something did not fit, nothing more is written. */
struct out {
    char *buf;
    size_t cap;
    size_t len;
    bool full;
};

static void out_put(struct out *o, const char *s, size_t n)
{
    if (o->full || n > o->cap - o->len) {
        o->full = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void out_str(struct out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

static void out_uint(struct out *o, unsigned long long v)
{
    char text[24];
    int n = snprintf(text, sizeof(text), "%llu", v);
    out_put(o, text, (size_t)n);
}

static size_t out_done(const struct out *o)
{
    return o->full ? 0 : o->len;
}

/* RFC 9110 §7.6.1; Trailer as well, as RFC 7230 had it. */
static const char *const hop_by_hop_fields[] = {
    "Connection", "Proxy-Connection",   "Keep-Alive", "Proxy-Authorization",
    "TE",         "Proxy-Authenticate", "Trailer",    "Upgrade",
};

static bool field_is_hop_by_hop(const struct http_header *h, const struct http_header *all,
                                size_t n)
{
    for (size_t i = 0; i < sizeof(hop_by_hop_fields) / sizeof(hop_by_hop_fields[0]); i++)
        if (text_equals(h->name, h->name_len, hop_by_hop_fields[i]))
            return true;
    /* The body passes through as it came: its framing stays whatever Connection says. */
    if (text_equals(h->name, h->name_len, "Content-Length") ||
        text_equals(h->name, h->name_len, "Transfer-Encoding"))
        return false;
    return http_header_has_token(all, n, "Connection", h->name, h->name_len);
}

static void out_fields(struct out *o, const struct http_header *h, size_t n, bool drop_host)
{
    for (size_t i = 0; i < n; i++) {
        if (field_is_hop_by_hop(&h[i], h, n))
            continue;
        if (drop_host && text_equals(h[i].name, h[i].name_len, "Host"))
            continue;
        out_put(o, h[i].name, h[i].name_len);
        out_put(o, ": ", 2);
        out_put(o, h[i].value, h[i].value_len);
        out_put(o, "\r\n", 2);
    }
}

static void out_tail(struct out *o, enum http_connection conn, uint8_t minor)
{
    if (conn == HTTP_CONNECTION_KEEP_ALIVE)
        out_str(o, "Connection: keep-alive\r\n");
    else if (conn == HTTP_CONNECTION_CLOSE)
        out_str(o, "Connection: close\r\n");
    out_str(o,
            minor == 0 ? "Via: 1.0 " HTTP_PROXY_NAME "\r\n" : "Via: 1.1 " HTTP_PROXY_NAME "\r\n");
    out_str(o, "\r\n");
}

size_t http_rewrite_request(char *out, size_t out_len, const struct http_request *req,
                            enum http_connection conn)
{
    struct out o = {.buf = out, .cap = out_len};
    if (req->form != HTTP_FORM_ABSOLUTE)
        return 0;
    out_put(&o, req->method_name, req->method_len);
    out_put(&o, " ", 1);
    if (req->path_len == 0)
        out_str(&o, req->method == HTTP_OPTIONS ? "*" : "/");
    else if (req->path[0] != '/')
        out_put(&o, "/", 1); /* "http://host?q" asks for "/?q" */
    out_put(&o, req->path, req->path_len);
    out_str(&o, req->version_minor == 0 ? " HTTP/1.0\r\nHost: " : " HTTP/1.1\r\nHost: ");
    out_put(&o, req->authority, req->authority_len);
    out_put(&o, "\r\n", 2);
    out_fields(&o, req->headers, req->n_headers, true);
    out_tail(&o, conn, req->version_minor);
    return out_done(&o);
}

size_t http_rewrite_response(char *out, size_t out_len, const struct http_response *resp,
                             enum http_connection conn)
{
    struct out o = {.buf = out, .cap = out_len};
    out_str(&o, "HTTP/1.1 ");
    out_uint(&o, resp->status);
    out_put(&o, " ", 1);
    out_put(&o, resp->reason, resp->reason_len);
    out_put(&o, "\r\n", 2);
    out_fields(&o, resp->headers, resp->n_headers, false);
    out_tail(&o, conn, resp->version_minor);
    return out_done(&o);
}

/* ---- the proxy's own replies ----------------------------------------------------------------- */

const char *http_status_reason(unsigned status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

#define DETAILS_MAX 256 /* characters of Proxy-Status details written at most */

/* An RFC 8941 sf-string: printable ASCII only, '"' and '\' escaped. */
static void out_sf_string(struct out *o, const char *s)
{
    out_put(o, "\"", 1);
    for (size_t i = 0; s[i] != '\0' && i < DETAILS_MAX; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            out_put(o, "\\", 1);
        out_put(o, ch >= 0x20 && ch < 0x7F ? &s[i] : "?", 1);
    }
    out_put(o, "\"", 1);
}

size_t http_build_reply(char *out, size_t out_len, const struct http_reply *r)
{
    struct out o = {.buf = out, .cap = out_len};
    const char *body = r->body != NULL ? r->body : "";
    size_t body_len = strlen(body);

    out_str(&o, "HTTP/1.1 ");
    out_uint(&o, r->status);
    out_put(&o, " ", 1);
    out_str(&o, http_status_reason(r->status));
    out_str(&o, "\r\nProxy-Status: " HTTP_PROXY_NAME);
    if (r->error != NULL) {
        out_str(&o, "; error=");
        out_str(&o, r->error);
    }
    if (r->details != NULL) {
        out_str(&o, "; details=");
        out_sf_string(&o, r->details);
    }
    out_str(&o, "\r\n");
    if (r->auth_challenge)
        out_str(&o, "Proxy-Authenticate: Basic realm=\"" HTTP_PROXY_NAME "\"\r\n");
    out_str(&o, "Content-Type: text/plain\r\nContent-Length: ");
    out_uint(&o, body_len);
    out_str(&o,
            r->keep_alive ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n");
    if (!r->omit_body)
        out_put(&o, body, body_len);
    return out_done(&o);
}
