/* HTTP/1.1 as a client speaks it to a parent proxy: the CONNECT request that opens a tunnel (to
 * an HTTP proxy, or over TLS to another geoproxy, the exit) and the response head that answers
 * it or one of the exit's control requests (http_control_parse.h). Pure functions over bytes: no
 * sockets, no allocation, no libuv.
 *
 * The response head is parsed by http_parse_response (llhttp in response mode, with the checks a
 * proxy adds: header names are tokens, no obsolete line folding, no ambiguous Transfer-Encoding,
 * a size cap). What is added here is what a client of a proxy needs from it: a CONNECT's 2xx has
 * no body whatever its fields say (RFC 9110 §9.3.6), so the tunnel starts right after the head,
 * and the fields that say why a tunnel failed (Proxy-Status, RFC 9209) or carry the exit's
 * answers (Geoproxy-Egress, Geoproxy-Addresses) are picked out.
 *
 * Builders write into a caller buffer, NUL-terminated (so out_len must exceed the length by
 * one), and return the length, or a negative errno (equal to libuv's UV_E* on Unix): -EINVAL for
 * arguments the request cannot carry, -ENOBUFS when out_len
 * is too small. Nothing is truncated silently: on error, out holds nothing usable. */
#ifndef GEOPROXY_PROXY_HTTP_CLIENT_PARSE_H
#define GEOPROXY_PROXY_HTTP_CLIENT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/http_control_parse.h"
#include "proxy/http_parse.h"
#include "proxy/parse_result.h"

/* What the response head says. The slices point into the parsed buffer, valid as long as it is;
 * a field that is absent is NULL with length 0. */
struct http_client_response {
    /* Status, reason, every field, and how the body ends: for a 2xx answer to CONNECT always
     * HTTP_BODY_NONE (the next byte is the tunnel's); otherwise as the fields say, with
     * content_length set for HTTP_BODY_LENGTH. */
    struct http_response head;
    const char *proxy_status; /* the first Proxy-Status field (later ones: see head.headers) */
    size_t proxy_status_len;
    const char *egress; /* Geoproxy-Egress: see http_control_parse_egress */
    size_t egress_len;
    const char *addresses; /* Geoproxy-Addresses: see http_control_parse_addresses */
    size_t addresses_len;
    const char *error; /* on PARSE_INVALID: a constant sentence saying what was wrong */
};

/* Writes "CONNECT host:port HTTP/1.1", "Host: host:port", "Proxy-Authorization: Basic ..."
 * when creds is not NULL (RFC 7617; user and password as their lengths say, the user without a
 * colon), and "Geoproxy-Optimistic: 1" when 'optimistic' (HTTP_OPTIMISTIC_FIELD: inside a mux
 * stream, the exit answers nothing on success and resets the stream on failure, so that the
 * client's bytes may follow the request at once). 'host' is a name, an IPv4 literal or an IPv6
 * literal, bracketed or not; IPv6 is always sent bracketed. -EINVAL for port 0, an empty host or
 * one of TARGET_HOST_MAX bytes or more, a name holding anything but letters, digits, '-', '.' and
 * '_' (what geoproxy's own HTTP parser accepts; so never CR, LF, space, a control byte or a byte
 * that changes the request line), brackets around something other than an IPv6 literal, or a colon
 * in the user name. */
int http_client_build_connect(char *out, size_t out_len, const char *host, uint16_t port,
                              const struct http_credentials *creds, bool optimistic);

/* Parses a response head from a parent proxy or the exit. 'answers_connect': the request was a
 * CONNECT. PARSE_DONE with *consumed = the head's length (the bytes after it are the tunnel's,
 * or the body's); PARSE_NEED_MORE while buf is a valid prefix shorter than max_head; PARSE_INVALID
 * for what http_parse_response refuses (including a head that does not fit in max_head bytes),
 * and for a Geoproxy-Egress or Geoproxy-Addresses field that appears more than once (the exit
 * sends each once; two would be ambiguous). Folded fields are refused, and field names are
 * matched without regard to case. */
enum parse_result http_client_parse_response(const uint8_t *buf, size_t len, size_t max_head,
                                             bool answers_connect, struct http_client_response *out,
                                             size_t *consumed);

#endif
