/* HTTP/1.x for a forwarding proxy: request and response heads parsed with llhttp into bounded
 * structs, the end of a message found by llhttp so that bodies pass through byte for byte,
 * heads rewritten for forwarding (RFC 9110 §7.6.1, RFC 9112 §3.2.2), Basic proxy credentials
 * (RFC 7617), and the replies the proxy writes itself with a Proxy-Status header (RFC 9209).
 * Pure functions over bytes: no sockets, no allocation, no libuv, no printing.
 *
 * The head parsers take (buf, len, max_head, out, consumed) and return PARSE_DONE with
 * *consumed = the length of the head (request line or status line, header fields and the empty
 * line; body and pipelined bytes behind it are left alone), PARSE_NEED_MORE while buf is a
 * valid prefix shorter than max_head, or PARSE_INVALID with out->error saying what was wrong.
 * *consumed is 0 unless the result is PARSE_DONE. The header slices in 'out' point into buf and
 * are valid as long as buf is. buf may be NULL when len is 0. */
#ifndef GEOPROXY_PROXY_HTTP_PARSE_H
#define GEOPROXY_PROXY_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "proxy/parse_result.h"
#include "proxy/target.h"

#define HTTP_HEADERS_MAX 100       /* header fields in one head; more is a 431 */
#define HTTP_CREDENTIAL_MAX 255    /* user name and password in Basic credentials, each */
#define HTTP_REWRITE_SLACK 512     /* a rewritten head is at most this much longer than the input */
#define HTTP_PROXY_NAME "geoproxy" /* in Via and Proxy-Status */

/* The reply to a CONNECT whose tunnel is open; the client's next bytes go to the destination. */
#define HTTP_CONNECT_OK "HTTP/1.1 200 Connection established\r\n\r\n"

/* One header field. The value has no leading or trailing whitespace. Neither holds CR or LF. */
struct http_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* How the request names its target (RFC 9112 §3.2). */
enum http_target_form {
    HTTP_FORM_ORIGIN,    /* "/path?query": meant for an origin server, not for a proxy */
    HTTP_FORM_ABSOLUTE,  /* "http://host[:port]/path?query" */
    HTTP_FORM_AUTHORITY, /* "host:port", CONNECT only */
    HTTP_FORM_ASTERISK,  /* "*" */
};

/* How the end of a message body is found (RFC 9112 §6.3). */
enum http_body {
    HTTP_BODY_NONE,
    HTTP_BODY_LENGTH,      /* Content-Length bytes */
    HTTP_BODY_CHUNKED,     /* Transfer-Encoding ending in chunked */
    HTTP_BODY_UNTIL_CLOSE, /* responses only: the body ends when the server closes */
};

/* The Connection field a rewritten head gets. */
enum http_connection {
    HTTP_CONNECTION_NONE, /* none (the version's default applies; and for 1xx responses) */
    HTTP_CONNECTION_KEEP_ALIVE,
    HTTP_CONNECTION_CLOSE,
};

struct http_request {
    uint8_t method; /* enum llhttp_method */
    const char *method_name;
    size_t method_len;
    const char *uri; /* the request-target as sent */
    size_t uri_len;
    uint8_t version_major; /* always 1 on PARSE_DONE */
    uint8_t version_minor; /* 0 or 1 (a later 1.x is reported as 1) */
    struct http_header headers[HTTP_HEADERS_MAX];
    size_t n_headers;

    enum http_target_form form;
    /* CONNECT and absolute-form: the destination. A name is lower-cased; IPv4 and IPv6
     * literals are in target.addr with target.host "". Absolute-form without port: 80. */
    struct target target;
    const char *authority; /* CONNECT and absolute-form: "host[:port]" as sent, for Host */
    size_t authority_len;
    const char *path; /* absolute-form: path and query as sent, fragment dropped; may be "" */
    size_t path_len;  /* origin-form: the whole request-target */

    enum http_body body; /* NONE, LENGTH or CHUNKED (CONNECT: always NONE) */
    uint64_t content_length;
    bool keep_alive; /* HTTP/1.1 unless "Connection: close"; 1.0 only with "keep-alive" */
    const struct http_header *proxy_authorization; /* into headers[], or NULL */

    unsigned error_status; /* on PARSE_INVALID: 400, 431 (head too large) or 505 (version) */
    const char *error;     /* on PARSE_INVALID: a constant sentence saying what was wrong */
};

struct http_response {
    unsigned status; /* 100..599 */
    const char *reason;
    size_t reason_len;
    uint8_t version_major; /* always 1 on PARSE_DONE */
    uint8_t version_minor; /* 0 or 1 */
    struct http_header headers[HTTP_HEADERS_MAX];
    size_t n_headers;
    enum http_body body; /* NONE for 1xx, 204, 304 and responses to HEAD */
    uint64_t content_length;
    /* The server keeps the connection open after this response: its version and Connection
     * field allow it and the body does not end with the connection. */
    bool keep_alive;
    const char *error;   /* on PARSE_INVALID */
    bool head_too_large; /* on PARSE_INVALID: over max_head bytes or 100 fields */
};

/* Parses a request head. INVALID (error_status 400) for anything llhttp refuses (bad request
 * line, bad header value, Content-Length together with Transfer-Encoding, repeated
 * Content-Length, Transfer-Encoding not ending in chunked), Transfer-Encoding in HTTP/1.0, a
 * Transfer-Encoding llhttp reads differently from RFC 9112 ("chunked<TAB>"), a header name that
 * is not a token, obsolete line folding, more than one space between the parts of the request
 * line, a request-target that is not visible ASCII, an absolute URI whose scheme is not http
 * (https:// included: those go through CONNECT) or that has user information, a malformed host
 * or port, CONNECT without host:port; error_status 431 when no complete head fits in max_head
 * bytes or it has more than HTTP_HEADERS_MAX fields; 505 for HTTP versions other than 1.x. */
enum parse_result http_parse_request(const uint8_t *buf, size_t len, size_t max_head,
                                     struct http_request *out, size_t *consumed);

/* Parses a response head; 'head_request' says it answers HEAD (no body then). INVALID for
 * what llhttp refuses, bad header names, folding, an ambiguous Transfer-Encoding (as above), a
 * status outside 100..599, a version other than 1.x, or when no complete head fits in max_head
 * bytes. */
enum parse_result http_parse_response(const uint8_t *buf, size_t len, size_t max_head,
                                      bool head_request, struct http_response *out,
                                      size_t *consumed);

/* The first header named 'name' (compared without regard to case), or NULL. */
const struct http_header *http_find_header(const struct http_header *headers, size_t n,
                                           const char *name);

/* True when a field named 'field' (any of them, if repeated) holds 'token' in its
 * comma-separated list; both compared without regard to case. For Connection options. */
bool http_header_has_token(const struct http_header *headers, size_t n, const char *field,
                           const char *token, size_t token_len);

/* Finds where one message ends in a byte stream, the way llhttp frames it: Content-Length,
 * chunked (with extensions and trailers) or, for responses, the end of the connection; and,
 * stricter than llhttp 8.1, in a chunked body exactly CRLF after each chunk's data and LF after
 * every CR outside chunk data (chunk lines and trailer fields end in CRLF, RFC 9112 §7.1). Feed
 * it the head, then the bytes that follow, in pieces of any size (the head may share a feed with
 * body bytes); it keeps no bytes. Do not copy an initialised one (llhttp's callbacks find it
 * from its parser). */
struct http_framer {
    llhttp_t parser;
    const uint8_t *scan; /* chunked body: next byte of the feed under way to scan, or NULL */
    bool chunked;        /* past the head of a chunked message: bytes outside data are scanned */
    bool cr;             /* the last byte scanned was a CR: the next one must be LF */
    uint8_t crlf_want;   /* bytes of the CRLF after a chunk's data still to come: 0 to 2 */
    bool done;
    bool failed;
};

/* Prepares to frame one request or response. 'no_body': the message ends with its head
 * whatever its fields say; pass the parsed head's (body == HTTP_BODY_NONE), which covers
 * responses to HEAD and 1xx/204/304 (llhttp 8.1 would wait for a 304's Content-Length). */
void http_framer_init(struct http_framer *f, bool response, bool no_body);

/* Consumes bytes of the message. PARSE_DONE: the message ended after *consumed bytes of buf
 * (later bytes belong to the next message); PARSE_NEED_MORE: all len bytes belong to the
 * message (*consumed == len); PARSE_INVALID: the framing is broken somewhere in buf (a bad
 * chunk size, chunk data not followed by CRLF, a bare CR in a chunk line or the trailers),
 * *consumed is 0 and every later call is INVALID too. So the bytes a caller forwards never reach
 * past a broken frame. */
enum parse_result http_framer_feed(struct http_framer *f, const uint8_t *buf, size_t len,
                                   size_t *consumed);

/* The connection ended: PARSE_DONE when that completes the message (a response whose body
 * runs until the close, or a message already complete), PARSE_INVALID when it was cut short. */
enum parse_result http_framer_finish(struct http_framer *f);

/* Writes the head to send upstream for an absolute-form request: request line in origin-form
 * ("/" for an empty path, "*" for OPTIONS), the request's version; Host from the URI (replacing
 * any Host the client sent, RFC 9112 §3.2.2); the client's fields minus hop-by-hop ones
 * (Connection, every field Connection names, Proxy-Connection, Keep-Alive, TE, Trailer,
 * Upgrade, Proxy-Authorization, Proxy-Authenticate; Content-Length and Transfer-Encoding are
 * kept even when Connection names them, since the body is forwarded as it came); then
 * Connection as asked and "Via: 1.x geoproxy". Returns the length, or 0 when out_len is too
 * small or the request is not absolute-form. */
size_t http_rewrite_request(char *out, size_t out_len, const struct http_request *req,
                            enum http_connection conn);

/* Writes the head to send to the client for a response: "HTTP/1.1 status reason", the fields
 * minus hop-by-hop ones (as above), Connection as asked, "Via: 1.x geoproxy". Returns the
 * length, or 0 when out_len is too small. */
size_t http_rewrite_response(char *out, size_t out_len, const struct http_response *resp,
                             enum http_connection conn);

/* Basic credentials: user and password NUL-terminated; the lengths are authoritative (a NUL
 * inside is kept for the user database to refuse). */
struct http_credentials {
    char user[HTTP_CREDENTIAL_MAX + 1];
    size_t user_len;
    char password[HTTP_CREDENTIAL_MAX + 1];
    size_t password_len;
};

/* Decodes a Proxy-Authorization value "Basic base64(user:password)". PARSE_DONE or
 * PARSE_INVALID (another scheme, bad base64, no colon, a part longer than
 * HTTP_CREDENTIAL_MAX). Never NEED_MORE. */
enum parse_result http_parse_basic_credentials(const char *value, size_t len,
                                               struct http_credentials *out);

/* A reply the proxy writes itself. */
struct http_reply {
    unsigned status;     /* 400, 403, 407, 502, ... */
    const char *error;   /* RFC 9209 error type ("dns_error"), or NULL */
    const char *details; /* for Proxy-Status' details (escaped, bytes outside ASCII as '?') */
    const char *body;    /* text/plain, usually one line ending in "\n"; NULL: empty */
    bool keep_alive;     /* Connection: keep-alive rather than close */
    bool auth_challenge; /* adds Proxy-Authenticate: Basic realm="geoproxy" */
    bool omit_body;      /* answering HEAD: Content-Length of the body, but no body */
};

/* Writes status line, "Proxy-Status: geoproxy[; error=E][; details="D"]", optionally
 * Proxy-Authenticate, "Content-Type: text/plain", Content-Length, Connection, the body.
 * Returns the length, or 0 when out_len is too small. */
size_t http_build_reply(char *out, size_t out_len, const struct http_reply *r);

/* The reason phrase for a status code the proxy sends ("Bad Gateway"); "Error" for others. */
const char *http_status_reason(unsigned status);

#endif
