/* HTTP/1.x heads, framing and Basic credentials: see http_parse.h (the writing side is in
 * http_build_parse.c). llhttp tokenises; what it lets through is checked again where a proxy
 * must be stricter than an origin server (header names, line folding, request-line spacing, the
 * request-target), since whatever is accepted here is forwarded to a server that may read it
 * differently. */
#include "proxy/http_parse.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proxy/container_of.h"

/* ---- bytes and tokens ------------------------------------------------------------------------ */

static bool is_alpha(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_ows(unsigned char ch)
{
    return ch == ' ' || ch == '\t';
}

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(unsigned char ch)
{
    return is_alpha(ch) || is_digit(ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static bool is_token(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

static bool text_equals(const char *s, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(s, name, len) == 0;
}

static void trim_ows(const char **s, size_t *len)
{
    while (*len > 0 && is_ows((unsigned char)(*s)[0])) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_ows((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

/* True when the comma-separated list holds 'tok' (compared without regard to case). */
static bool list_has_token(const char *list, size_t len, const char *tok, size_t tok_len)
{
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && list[i] != ',')
            i++;
        const char *elem = list + start;
        size_t elem_len = i - start;
        trim_ows(&elem, &elem_len);
        if (elem_len == tok_len && strncasecmp(elem, tok, tok_len) == 0)
            return true;
        i++; /* past the comma */
    }
    return false;
}

bool http_header_has_token(const struct http_header *headers, size_t n, const char *field,
                           const char *token, size_t token_len)
{
    for (size_t i = 0; i < n; i++)
        if (text_equals(headers[i].name, headers[i].name_len, field) &&
            list_has_token(headers[i].value, headers[i].value_len, token, token_len))
            return true;
    return false;
}

const struct http_header *http_find_header(const struct http_header *headers, size_t n,
                                           const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (text_equals(headers[i].name, headers[i].name_len, name))
            return &headers[i];
    return NULL;
}

/* Persistence per RFC 9112 §9.3: 1.1 unless "close", 1.0 only with "keep-alive". */
static bool fields_keep_alive(const struct http_header *h, size_t n, uint8_t minor)
{
    if (http_header_has_token(h, n, "Connection", "close", 5))
        return false;
    return minor >= 1 || http_header_has_token(h, n, "Connection", "keep-alive", 10);
}

/* ---- running llhttp over a head -------------------------------------------------------------- */

enum span_last {
    SPAN_NONE,
    SPAN_FIELD,
    SPAN_VALUE,
};

/* What the llhttp callbacks collect. */
struct head_ctx {
    struct http_header *headers;
    size_t n_headers;
    enum span_last last;
    const char *method, *url, *version, *status;
    size_t method_len, url_len, version_len, status_len;
    const char *error;
    unsigned error_status;
};

static struct head_ctx *ctx_of(llhttp_t *p)
{
    return p->data;
}

static int on_method(llhttp_t *p, const char *at, size_t len)
{
    ctx_of(p)->method = at;
    ctx_of(p)->method_len = len;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    ctx_of(p)->url = at;
    ctx_of(p)->url_len = len;
    return 0;
}

static int on_version(llhttp_t *p, const char *at, size_t len)
{
    ctx_of(p)->version = at;
    ctx_of(p)->version_len = len;
    return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
    ctx_of(p)->status = at;
    ctx_of(p)->status_len = len;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct head_ctx *ctx = ctx_of(p);
    if (ctx->last == SPAN_FIELD) { /* llhttp splits spans only at the end of the input */
        ctx->error = "header name split";
        return -1;
    }
    if (ctx->n_headers == HTTP_HEADERS_MAX) {
        ctx->error = "more than 100 header fields";
        ctx->error_status = 431;
        return -1;
    }
    struct http_header *h = &ctx->headers[ctx->n_headers++];
    *h = (struct http_header){.name = at, .name_len = len, .value = at + len, .value_len = 0};
    ctx->last = SPAN_FIELD;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct head_ctx *ctx = ctx_of(p);
    if (ctx->last != SPAN_FIELD) { /* a second value span: obs-fold (RFC 9112 §5.2) */
        ctx->error = "obsolete line folding in a header field";
        return -1;
    }
    struct http_header *h = &ctx->headers[ctx->n_headers - 1];
    trim_ows(&at, &len);
    h->value = at;
    h->value_len = len;
    ctx->last = SPAN_VALUE;
    return 0;
}

static int on_head_complete(llhttp_t *p)
{
    return HPE_PAUSED; /* stop right after the empty line: the body is not ours to parse */
}

static const llhttp_settings_t head_settings = {
    .on_method = on_method,
    .on_url = on_url,
    .on_version = on_version,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_head_complete,
};

/* Runs llhttp over at most max_head bytes and stops after the head. */
static enum parse_result head_run(llhttp_t *p, struct head_ctx *ctx, const uint8_t *buf, size_t len,
                                  size_t max_head, size_t *head_len)
{
    size_t n = len < max_head ? len : max_head;
    if (n == 0)
        return len >= max_head ? PARSE_INVALID : PARSE_NEED_MORE;
    llhttp_errno_t err = llhttp_execute(p, (const char *)buf, n);
    if (err == HPE_PAUSED) {
        *head_len = (size_t)(llhttp_get_error_pos(p) - (const char *)buf);
        return PARSE_DONE;
    }
    if (err == HPE_OK) {
        if (len < max_head)
            return PARSE_NEED_MORE;
        ctx->error = "head larger than the configured limit";
        ctx->error_status = 431;
        return PARSE_INVALID;
    }
    if (ctx->error == NULL)
        ctx->error = llhttp_get_error_reason(p);
    if (ctx->error == NULL)
        ctx->error = "malformed head";
    return PARSE_INVALID;
}

/* RFC 9112 §6.1: the body is chunked when the last coding named by the Transfer-Encoding
 * fields, taken together, is "chunked" (elements trimmed of whitespace, empty ones ignored). */
static bool fields_end_in_chunked(const struct http_header *h, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        if (!text_equals(h[i].name, h[i].name_len, "Transfer-Encoding"))
            continue;
        const char *end = h[i].value + h[i].value_len;
        while (end > h[i].value) {
            const char *start = end;
            while (start > h[i].value && start[-1] != ',')
                start--;
            const char *elem = start;
            size_t elem_len = (size_t)(end - start);
            trim_ows(&elem, &elem_len);
            if (elem_len > 0)
                return text_equals(elem, elem_len, "chunked");
            end = start > h[i].value ? start - 1 : start; /* before the comma */
        }
    }
    return false;
}

/* What both kinds of head must satisfy beyond llhttp's checks. Framing is taken from llhttp;
 * where its reading of Transfer-Encoding differs from the RFC's (it takes "chunked<TAB>" for
 * another coding, and a field without a coding for no field at all, framing by Content-Length
 * what a recipient may take for chunked), the head is refused: nobody may frame it otherwise. */
static const char *check_fields(const llhttp_t *p, const struct http_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_token(h[i].name, h[i].name_len))
            return "header name is not a token";
    if (!(p->flags & F_TRANSFER_ENCODING) && http_find_header(h, n, "Transfer-Encoding") != NULL)
        return "Transfer-Encoding without a coding";
    if ((p->flags & F_TRANSFER_ENCODING) &&
        fields_end_in_chunked(h, n) != ((p->flags & F_CHUNKED) != 0))
        return "ambiguous Transfer-Encoding";
    return NULL;
}

/* ---- requests -------------------------------------------------------------------------------- */

/* "host:port", "[v6]:port", "host" (default_port != 0) into t. Returns an error or NULL. */
static const char *parse_authority(const char *s, size_t len, uint16_t default_port,
                                   struct target *t)
{
    const char *host = s, *rest;
    size_t host_len;
    bool v6 = len > 0 && s[0] == '[';

    if (memchr(s, '@', len) != NULL)
        return "user information in the request-target is not supported";
    if (v6) {
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return "unterminated IPv6 literal";
        host = s + 1;
        host_len = (size_t)(close - host);
        rest = close + 1;
    } else {
        const char *colon = memchr(s, ':', len);
        host_len = colon != NULL ? (size_t)(colon - s) : len;
        rest = s + host_len;
    }
    size_t rest_len = (size_t)(s + len - rest);
    if (host_len == 0)
        return "empty host";

    uint32_t port = default_port;
    if (rest_len > 0 && rest[0] != ':')
        return "malformed host:port";
    if (rest_len > 1) {
        if (rest_len - 1 > 5)
            return "port out of range";
        port = 0;
        for (size_t i = 1; i < rest_len; i++) {
            if (!is_digit((unsigned char)rest[i]))
                return "port is not a number";
            port = port * 10 + (uint32_t)(rest[i] - '0');
        }
        if (port == 0 || port > 65535)
            return "port out of range";
    }
    if (port == 0)
        return "CONNECT needs host:port";
    t->port = (uint16_t)port;

    if (v6) {
        char text[INET6_ADDRSTRLEN];
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&t->addr;
        if (host_len >= sizeof(text))
            return "malformed IPv6 literal";
        memcpy(text, host, host_len);
        text[host_len] = '\0';
        if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1)
            return "malformed IPv6 literal";
        sin6->sin6_family = AF_INET6;
        return NULL;
    }
    if (host_len >= TARGET_HOST_MAX)
        return "host name too long";
    for (size_t i = 0; i < host_len; i++) {
        unsigned char ch = (unsigned char)host[i];
        if (!is_alpha(ch) && !is_digit(ch) && ch != '-' && ch != '.' && ch != '_')
            return "host name holds a character that is not allowed";
        t->host[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
    }
    t->host[host_len] = '\0';
    struct sockaddr_in *sin = (struct sockaddr_in *)&t->addr;
    if (inet_pton(AF_INET, t->host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        t->host[0] = '\0';
    }
    return NULL;
}

/* Absolute-form "scheme://authority[path][?query][#fragment]". */
static const char *parse_absolute(struct http_request *out)
{
    const char *uri = out->uri, *end = out->uri + out->uri_len;
    const char *colon = memchr(uri, ':', out->uri_len);

    if (colon == NULL || colon == uri || !is_alpha((unsigned char)uri[0]) || end - colon < 3 ||
        memcmp(colon, "://", 3) != 0)
        return "request-target is neither a path nor an absolute URI";
    for (const char *p = uri; p < colon; p++)
        if (!is_alpha((unsigned char)*p) && !is_digit((unsigned char)*p) && !strchr("+-.", *p))
            return "request-target is neither a path nor an absolute URI";
    if (text_equals(uri, (size_t)(colon - uri), "https"))
        return "https:// URIs are not forwarded: use CONNECT host:443";
    if (!text_equals(uri, (size_t)(colon - uri), "http"))
        return "only http:// URIs can be forwarded";

    const char *auth = colon + 3, *p = auth;
    while (p < end && *p != '/' && *p != '?' && *p != '#')
        p++;
    out->authority = auth;
    out->authority_len = (size_t)(p - auth);
    const char *hash = memchr(p, '#', (size_t)(end - p));
    out->path = p;
    out->path_len = (size_t)((hash != NULL ? hash : end) - p);
    out->form = HTTP_FORM_ABSOLUTE;
    return parse_authority(out->authority, out->authority_len, 80, &out->target);
}

static const char *parse_request_target(struct http_request *out)
{
    for (size_t i = 0; i < out->uri_len; i++) {
        unsigned char ch = (unsigned char)out->uri[i];
        if (ch < 0x21 || ch > 0x7E)
            return "request-target holds a byte that is not visible ASCII";
    }
    if (out->method == HTTP_CONNECT) {
        out->form = HTTP_FORM_AUTHORITY;
        out->authority = out->uri;
        out->authority_len = out->uri_len;
        return parse_authority(out->uri, out->uri_len, 0, &out->target);
    }
    if (out->uri[0] == '/') {
        out->form = HTTP_FORM_ORIGIN;
        out->path = out->uri;
        out->path_len = out->uri_len;
        return NULL;
    }
    if (out->uri_len == 1 && out->uri[0] == '*') {
        out->form = HTTP_FORM_ASTERISK;
        return NULL;
    }
    return parse_absolute(out);
}

/* Exactly "METHOD SP request-target SP HTTP/x.y": llhttp tolerates more spaces. */
static bool request_line_is_strict(const struct head_ctx *ctx)
{
    if (ctx->method == NULL || ctx->url == NULL || ctx->version == NULL || ctx->url_len == 0)
        return false;
    const char *after_url = ctx->url + ctx->url_len;
    return ctx->url == ctx->method + ctx->method_len + 1 && ctx->method[ctx->method_len] == ' ' &&
           after_url[0] == ' ' && memcmp(after_url + 1, "HTTP/", 5) == 0 &&
           ctx->version == after_url + 6;
}

/* Everything that can be judged once llhttp has taken the head. */
static const char *check_request(llhttp_t *p, const struct head_ctx *ctx, struct http_request *out)
{
    const char *err;
    if (!request_line_is_strict(ctx))
        return "malformed request line";
    out->method = llhttp_get_method(p);
    out->method_name = ctx->method;
    out->method_len = ctx->method_len;
    out->uri = ctx->url;
    out->uri_len = ctx->url_len;
    out->version_major = llhttp_get_http_major(p);
    out->version_minor = llhttp_get_http_minor(p) >= 1 ? 1 : 0;
    if (out->version_major != 1) {
        out->error_status = out->version_major >= 2 ? 505 : 400;
        return "HTTP version not supported (only HTTP/1.0 and HTTP/1.1)";
    }
    if ((err = check_fields(p, out->headers, out->n_headers)) != NULL)
        return err;
    if ((p->flags & F_TRANSFER_ENCODING) && out->version_minor == 0)
        return "Transfer-Encoding in an HTTP/1.0 request";
    if ((p->flags & F_TRANSFER_ENCODING) && !(p->flags & F_CHUNKED))
        return "Transfer-Encoding does not end in chunked";
    if ((p->flags & F_TRANSFER_ENCODING) && (p->flags & F_CONTENT_LENGTH))
        return "both Content-Length and Transfer-Encoding";
    if ((err = parse_request_target(out)) != NULL)
        return err;
    if (out->method == HTTP_CONNECT)
        out->body = HTTP_BODY_NONE;
    else if (p->flags & F_CHUNKED)
        out->body = HTTP_BODY_CHUNKED;
    else if ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0)
        out->body = HTTP_BODY_LENGTH;
    if (out->body == HTTP_BODY_LENGTH)
        out->content_length = p->content_length;
    out->keep_alive = fields_keep_alive(out->headers, out->n_headers, out->version_minor);
    out->proxy_authorization =
        http_find_header(out->headers, out->n_headers, "Proxy-Authorization");
    return NULL;
}

enum parse_result http_parse_request(const uint8_t *buf, size_t len, size_t max_head,
                                     struct http_request *out, size_t *consumed)
{
    struct head_ctx ctx = {.headers = out->headers};
    llhttp_t p;
    size_t head_len = 0;

    memset(out, 0, sizeof(*out));
    *consumed = 0;
    llhttp_init(&p, HTTP_REQUEST, &head_settings);
    p.data = &ctx;
    enum parse_result res = head_run(&p, &ctx, buf, len, max_head, &head_len);
    out->n_headers = ctx.n_headers;
    if (res == PARSE_DONE) {
        ctx.error = check_request(&p, &ctx, out);
        res = ctx.error == NULL ? PARSE_DONE : PARSE_INVALID;
    }
    if (res == PARSE_INVALID) {
        unsigned status = out->error_status != 0 ? out->error_status : ctx.error_status;
        memset(out, 0, sizeof(*out));
        out->error = ctx.error;
        out->error_status = status != 0 ? status : 400;
        return PARSE_INVALID;
    }
    if (res == PARSE_DONE)
        *consumed = head_len;
    return res;
}

/* ---- responses ------------------------------------------------------------------------------- */

static enum http_body response_body(const llhttp_t *p, unsigned status, bool head_request)
{
    if (head_request || status / 100 == 1 || status == 204 || status == 304)
        return HTTP_BODY_NONE;
    if (p->flags & F_CHUNKED)
        return HTTP_BODY_CHUNKED;
    if (p->flags & F_TRANSFER_ENCODING)
        return HTTP_BODY_UNTIL_CLOSE; /* RFC 9112 §6.3 item 4 */
    if (p->flags & F_CONTENT_LENGTH)
        return p->content_length > 0 ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
    return HTTP_BODY_UNTIL_CLOSE;
}

static const char *check_response(llhttp_t *p, const struct head_ctx *ctx, bool head_request,
                                  struct http_response *out)
{
    const char *err;
    out->version_major = llhttp_get_http_major(p);
    out->version_minor = llhttp_get_http_minor(p) >= 1 ? 1 : 0;
    if (out->version_major != 1)
        return "HTTP version not supported (only HTTP/1.0 and HTTP/1.1)";
    out->status = (unsigned)llhttp_get_status_code(p);
    if (out->status < 100 || out->status > 599)
        return "status code out of range";
    out->reason = ctx->status != NULL ? ctx->status : "";
    out->reason_len = ctx->status != NULL ? ctx->status_len : 0;
    for (size_t i = 0; i < out->reason_len; i++) {
        unsigned char ch = (unsigned char)out->reason[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7F)
            return "control character in the reason phrase";
    }
    if ((err = check_fields(p, out->headers, out->n_headers)) != NULL)
        return err;
    out->body = response_body(p, out->status, head_request);
    if (out->body == HTTP_BODY_LENGTH)
        out->content_length = p->content_length;
    out->keep_alive = out->body != HTTP_BODY_UNTIL_CLOSE &&
                      fields_keep_alive(out->headers, out->n_headers, out->version_minor);
    return NULL;
}

enum parse_result http_parse_response(const uint8_t *buf, size_t len, size_t max_head,
                                      bool head_request, struct http_response *out,
                                      size_t *consumed)
{
    struct head_ctx ctx = {.headers = out->headers};
    llhttp_t p;
    size_t head_len = 0;

    memset(out, 0, sizeof(*out));
    *consumed = 0;
    llhttp_init(&p, HTTP_RESPONSE, &head_settings);
    p.data = &ctx;
    enum parse_result res = head_run(&p, &ctx, buf, len, max_head, &head_len);
    out->n_headers = ctx.n_headers;
    if (res == PARSE_DONE) {
        ctx.error = check_response(&p, &ctx, head_request, out);
        res = ctx.error == NULL ? PARSE_DONE : PARSE_INVALID;
    }
    if (res == PARSE_INVALID) {
        memset(out, 0, sizeof(*out));
        out->error = ctx.error;
        out->head_too_large = ctx.error_status == 431;
        return PARSE_INVALID;
    }
    if (res == PARSE_DONE)
        *consumed = head_len;
    return res;
}

/* ---- framing --------------------------------------------------------------------------------- */

static int framer_skip_body(llhttp_t *p)
{
    return 1; /* no body, whatever the fields say */
}

static int framer_message_complete(llhttp_t *p)
{
    return HPE_PAUSED;
}

/* Scans the bytes of a chunked body outside chunk data, from f->scan up to 'end' in the feed
 * under way: false at the first that breaks RFC 9112 §7.1, which llhttp 8.1 lets through:
 * - right after a chunk's data, exactly CRLF (f->crlf_want): llhttp skips whatever two bytes
 *   come there (fixed in 9.1), reading "3\r\nabc\n10\r\n\r\n" as a 3-byte chunk and the last
 *   chunk, where a server that takes a bare LF for CRLF reads a 16-byte chunk;
 * - elsewhere, LF after every CR: llhttp skips whatever byte follows the CR that ends a
 *   chunk-size line (extensions and the last chunk's included), the trailer section, or a
 *   trailer field with an empty or blank value ("3\rXabc" is a 3-byte chunk to it).
 * Either way the two would end the message in different places. f->cr and f->crlf_want carry
 * over from one feed to the next. */
static bool framer_scan(struct http_framer *f, const uint8_t *end)
{
    for (const uint8_t *b = f->scan; b < end; b++) {
        if (f->crlf_want > 0 && *b != (f->crlf_want-- == 2 ? '\r' : '\n'))
            return false;
        if (f->cr && *b != '\n')
            return false;
        f->cr = *b == '\r';
    }
    f->scan = end;
    return true;
}

/* Pauses where a chunked body starts, so that http_framer_feed knows from where to scan it
 * whether or not the head came in a feed of its own. */
static int framer_on_headers_complete(llhttp_t *p)
{
    if ((p->flags & F_CHUNKED) == 0)
        return 0; /* a Content-Length or until-close body: not scanned */
    container_of(p, struct http_framer, parser)->chunked = true;
    return HPE_PAUSED;
}

/* A piece of chunk data from 'at': the bytes of the feed before it are the chunk lines (or a
 * previous chunk's CRLF) and are scanned here; the piece itself is skipped. A CR right before
 * data is bare too (llhttp always eats a byte after a chunk size's CR, so this is a safeguard).
 * llhttp lowers content_length before it reports a piece of body, so 0 here means the piece
 * ends the chunk's data: its CRLF comes next, in this feed or a later one. */
static int framer_on_body(llhttp_t *p, const char *at, size_t length)
{
    struct http_framer *f = container_of(p, struct http_framer, parser);
    if (f->scan == NULL)
        return 0; /* a Content-Length or until-close body: not scanned */
    if (!framer_scan(f, (const uint8_t *)at) || (f->cr && length > 0))
        return -1;
    f->scan = (const uint8_t *)at + length;
    if (p->content_length == 0)
        f->crlf_want = 2;
    return 0;
}

static const llhttp_settings_t framer_settings = {
    .on_headers_complete = framer_on_headers_complete,
    .on_body = framer_on_body,
    .on_message_complete = framer_message_complete,
};

static const llhttp_settings_t framer_no_body_settings = {
    .on_headers_complete = framer_skip_body,
    .on_message_complete = framer_message_complete,
};

/* Runs llhttp over the feed. When framer_on_headers_complete pauses it (the only pause before
 * a chunked body has a scan position), points f->scan at the body's first byte and resumes. */
static llhttp_errno_t framer_execute(struct http_framer *f, const uint8_t *buf, size_t len)
{
    llhttp_errno_t err = llhttp_execute(&f->parser, (const char *)buf, len);
    if (err != HPE_PAUSED || !f->chunked || f->scan != NULL)
        return err;
    f->scan = (const uint8_t *)llhttp_get_error_pos(&f->parser);
    llhttp_resume(&f->parser);
    return llhttp_execute(&f->parser, (const char *)f->scan, len - (size_t)(f->scan - buf));
}

void http_framer_init(struct http_framer *f, bool response, bool no_body)
{
    memset(f, 0, sizeof(*f));
    llhttp_init(&f->parser, response ? HTTP_RESPONSE : HTTP_REQUEST,
                no_body ? &framer_no_body_settings : &framer_settings);
}

enum parse_result http_framer_feed(struct http_framer *f, const uint8_t *buf, size_t len,
                                   size_t *consumed)
{
    *consumed = 0;
    if (f->failed)
        return PARSE_INVALID;
    if (f->done)
        return PARSE_DONE;
    if (len == 0)
        return PARSE_NEED_MORE;
    f->scan = f->chunked ? buf : NULL;
    llhttp_errno_t err = framer_execute(f, buf, len);
    bool ended = err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE;
    const uint8_t *end = ended ? (const uint8_t *)llhttp_get_error_pos(&f->parser) : buf + len;
    /* The bytes after the last chunk data of the feed, up to its end or the message's, are
     * scanned here (before any is reported consumed); and a message never ends on a CR (llhttp
     * eats a byte after each) or inside a chunk's CRLF. */
    bool ok = (err == HPE_OK || ended) &&
              (f->scan == NULL || (framer_scan(f, end) && !(ended && (f->cr || f->crlf_want))));
    f->scan = NULL;
    if (!ok) {
        f->failed = true;
        return PARSE_INVALID;
    }
    if (ended) {
        f->done = true;
        *consumed = (size_t)(end - buf);
        return PARSE_DONE;
    }
    *consumed = len;
    return PARSE_NEED_MORE;
}

enum parse_result http_framer_finish(struct http_framer *f)
{
    if (f->done)
        return PARSE_DONE;
    if (f->failed)
        return PARSE_INVALID;
    /* HPE_PAUSED: on_message_complete ran, the close ended the body. HPE_OK: no message had
     * started, which is not a complete one either. */
    if (llhttp_finish(&f->parser) == HPE_PAUSED) {
        f->done = true;
        return PARSE_DONE;
    }
    f->failed = true;
    return PARSE_INVALID;
}

/* ---- Basic credentials ----------------------------------------------------------------------- */

static int base64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

/* RFC 4648 base64, padding optional but never misplaced. */
static bool base64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t pad = 0;
    while (len > 0 && in[len - 1] == '=' && pad < 2) {
        len--;
        pad++;
    }
    if (len % 4 == 1 || (pad > 0 && (len + pad) % 4 != 0))
        return false;
    if (len / 4 * 3 + (len % 4 != 0 ? len % 4 - 1 : 0) > cap)
        return false;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = base64_value((unsigned char)in[i]);
        if (v < 0)
            return false;
        acc = (acc << 6 | (uint32_t)v) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    *out_len = n;
    return true;
}

enum parse_result http_parse_basic_credentials(const char *value, size_t len,
                                               struct http_credentials *out)
{
    uint8_t plain[2 * HTTP_CREDENTIAL_MAX + 1];
    size_t plain_len = 0;
    enum parse_result res = PARSE_INVALID;

    memset(out, 0, sizeof(*out));
    trim_ows(&value, &len);
    if (len < 6 || strncasecmp(value, "Basic", 5) != 0 || value[5] != ' ')
        return PARSE_INVALID;
    value += 6;
    len -= 6;
    trim_ows(&value, &len);
    if (len == 0 || !base64_decode(value, len, plain, sizeof(plain), &plain_len))
        goto out;
    const uint8_t *colon = memchr(plain, ':', plain_len);
    if (colon == NULL)
        goto out;
    size_t user_len = (size_t)(colon - plain), password_len = plain_len - user_len - 1;
    if (user_len > HTTP_CREDENTIAL_MAX || password_len > HTTP_CREDENTIAL_MAX)
        goto out;
    memcpy(out->user, plain, user_len);
    out->user_len = user_len;
    memcpy(out->password, colon + 1, password_len);
    out->password_len = password_len;
    res = PARSE_DONE;
out:
    explicit_bzero(plain, sizeof(plain));
    return res;
}
