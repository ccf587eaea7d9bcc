/* The exit's control requests: two GET requests that an entry sends over its authenticated
 * tunnel to another geoproxy (the exit), which answers them itself instead of forwarding them.
 *
 *   GET /.well-known/geoproxy/egress HTTP/1.1          200, "Geoproxy-Egress: 127.0.5.1" (or
 *   Host: geoproxy                                      "unknown"), JSON {"egress":"127.0.5.1"}
 *
 *   GET /.well-known/geoproxy/resolve?name=HOST ...    200, "Geoproxy-Addresses: 192.0.2.1,
 *   Host: geoproxy                                      2001:db8::1", JSON {"addresses":[...]};
 *                                                       502 with "Proxy-Status: geoproxy;
 *                                                       error=dns_error" when resolution failed
 *
 * Both sides are here: the entry's request builders and field parsers, and the exit's request
 * recogniser and reply builders. The reply head is parsed by http_client_parse_response. Pure
 * functions: no sockets, no allocation, no libuv.
 *
 * Builders write into a caller buffer, NUL-terminated (so out_len must exceed the length by
 * one), and return the length, or a negative errno (equal to libuv's UV_E* on Unix): -EINVAL for
 * arguments the message cannot carry, -ENOBUFS when out_len
 * is too small. Nothing is truncated silently: on error, out holds nothing usable. */
#ifndef GEOPROXY_PROXY_HTTP_CONTROL_PARSE_H
#define GEOPROXY_PROXY_HTTP_CONTROL_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "proxy/http_parse.h"

#define HTTP_CONTROL_EGRESS_PATH "/.well-known/geoproxy/egress"
#define HTTP_CONTROL_RESOLVE_PATH "/.well-known/geoproxy/resolve"
#define HTTP_CONTROL_HOST HTTP_PROXY_NAME /* the Host of both requests: "geoproxy" */
#define HTTP_CONTROL_NAME_MAX 253         /* a DNS name, without a trailing dot */
#define HTTP_CONTROL_ADDRESSES_MAX 16     /* addresses in one resolve answer */
#define HTTP_EGRESS_FIELD "Geoproxy-Egress"
#define HTTP_ADDRESSES_FIELD "Geoproxy-Addresses"
#define HTTP_OPTIMISTIC_FIELD "Geoproxy-Optimistic" /* see http_client_build_connect */

/* What an origin-form request target asks of the exit. */
enum http_control {
    HTTP_CONTROL_NONE,    /* not a control request: anything but the two paths below */
    HTTP_CONTROL_EGRESS,  /* exactly HTTP_CONTROL_EGRESS_PATH */
    HTTP_CONTROL_RESOLVE, /* HTTP_CONTROL_RESOLVE_PATH "?name=" and a valid DNS name */
    HTTP_CONTROL_INVALID, /* one of the two paths with a query it does not take or a bad name */
};

/* True for a DNS name geoproxy asks about: 1..HTTP_CONTROL_NAME_MAX bytes of letters, digits, '-'
 * and '.', in labels of 1..63 bytes that neither start nor end with '-' (no empty label, so no
 * leading, trailing or doubled dot). */
bool http_control_name_is_valid(const char *name, size_t len);

/* The egress probe: "GET " HTTP_CONTROL_EGRESS_PATH " HTTP/1.1", "Host: geoproxy". */
int http_control_build_egress_request(char *out, size_t out_len);

/* The resolve query for 'name'; -EINVAL unless http_control_name_is_valid. */
int http_control_build_resolve_request(char *out, size_t out_len, const char *name);

/* Reads a Geoproxy-Egress value: an IPv4 or IPv6 literal into *out (port 0), or the word
 * "unknown" (any case), which leaves out->ss_family AF_UNSPEC. 0, or -EINVAL for anything else. */
int http_control_parse_egress(const char *value, size_t len, struct sockaddr_storage *out);

/* Reads a Geoproxy-Addresses value: 1..HTTP_CONTROL_ADDRESSES_MAX IPv4 or IPv6 literals separated
 * by commas and optional spaces or tabs, into out[0..*n) (port 0). 0, or -EINVAL for an empty
 * list or element, anything but a literal, or more than HTTP_CONTROL_ADDRESSES_MAX. */
int http_control_parse_addresses(const char *value, size_t len,
                                 struct sockaddr_storage out[HTTP_CONTROL_ADDRESSES_MAX],
                                 size_t *n);

/* Recognises a control request by its origin-form target (the exit calls this on every request
 * that comes through a tunnel). On HTTP_CONTROL_RESOLVE, 'name' (HTTP_CONTROL_NAME_MAX + 1 bytes)
 * holds the name, lower-cased and NUL-terminated; otherwise it is "". The query is exactly
 * "name=" and the name: no other parameter, no percent-encoding (a DNS name never needs it). */
enum http_control http_control_classify(const char *target, size_t len,
                                        char name[HTTP_CONTROL_NAME_MAX + 1]);

/* The exit's answer to the egress probe: 200, "Geoproxy-Egress: ADDRESS", application/json body
 * {"egress":"ADDRESS"}. 'egress' NULL or of a family other than AF_INET or AF_INET6 (a whole
 * sockaddr_in or sockaddr_in6, as in socks_parse.h) is "unknown" in the field and null in JSON. */
int http_control_build_egress_reply(char *out, size_t out_len, const struct sockaddr *egress);

/* The exit's answer to a resolve query: 200, "Geoproxy-Addresses: A, B", application/json body
 * {"addresses":["A","B"]}. -EINVAL unless 1 <= n <= HTTP_CONTROL_ADDRESSES_MAX and every address
 * is AF_INET or AF_INET6. */
int http_control_build_resolve_reply(char *out, size_t out_len,
                                     const struct sockaddr_storage *addrs, size_t n);

/* The exit's answer when resolution failed: http_build_reply's 502 with "Proxy-Status: geoproxy;
 * error=dns_error" and 'details' (may be NULL), keeping the connection open. */
int http_control_build_resolve_failure(char *out, size_t out_len, const char *details);

#endif
