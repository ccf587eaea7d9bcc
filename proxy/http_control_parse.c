/* The exit's control requests, both sides: see http_control_parse.h. Messages are written with
 * snprintf into the caller's buffer and refused whole when they do not fit; the 502 is
 * http_build_reply's, so that every reply the proxy makes itself carries the same Proxy-Status. */
#include "proxy/http_control_parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define LABEL_MAX 63
#define LIST_MAX (HTTP_CONTROL_ADDRESSES_MAX * (INET6_ADDRSTRLEN + 3) + 32)

static bool is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

bool http_control_name_is_valid(const char *name, size_t len)
{
    size_t label = 0;

    if (len == 0 || len > HTTP_CONTROL_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (ch == '.') {
            if (label == 0 || name[i - 1] == '-') {
                return false;
            }
            label = 0;
            continue;
        }
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && (ch != '-' || label == 0)) {
            return false;
        }
        if (++label > LABEL_MAX) {
            return false;
        }
    }
    return label > 0 && name[len - 1] != '-';
}

/* snprintf's result as a builder's: the length, or -ENOBUFS (out cleared) when it did not fit. */
static int written(char *out, size_t out_len, int n)
{
    if (n < 0 || (size_t)n >= out_len) {
        if (out_len > 0) {
            out[0] = '\0';
        }
        return -ENOBUFS;
    }
    return n;
}

int http_control_build_egress_request(char *out, size_t out_len)
{
    return written(out, out_len,
                   snprintf(out, out_len,
                            "GET " HTTP_CONTROL_EGRESS_PATH " HTTP/1.1\r\nHost: " HTTP_CONTROL_HOST
                            "\r\n\r\n"));
}

int http_control_build_resolve_request(char *out, size_t out_len, const char *name)
{
    size_t len = strnlen(name, HTTP_CONTROL_NAME_MAX + 1);

    if (!http_control_name_is_valid(name, len)) {
        return -EINVAL;
    }
    return written(out, out_len,
                   snprintf(out, out_len,
                            "GET " HTTP_CONTROL_RESOLVE_PATH
                            "?name=%s HTTP/1.1\r\nHost: " HTTP_CONTROL_HOST "\r\n\r\n",
                            name));
}

/* An IPv4 or IPv6 literal, exactly len bytes, into *out with port 0. */
static bool parse_literal(const char *s, size_t len, struct sockaddr_storage *out)
{
    char text[INET6_ADDRSTRLEN];

    memset(out, 0, sizeof(*out));
    if (len == 0 || len >= sizeof(text) || memchr(s, '\0', len) != NULL) {
        return false; /* inet_pton would stop at a NUL and ignore what follows */
    }
    memcpy(text, s, len);
    text[len] = '\0';
    if (inet_pton(AF_INET, text, &((struct sockaddr_in *)out)->sin_addr) == 1) {
        out->ss_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)out)->sin6_addr) == 1) {
        out->ss_family = AF_INET6;
        return true;
    }
    memset(out, 0, sizeof(*out));
    return false;
}

int http_control_parse_egress(const char *value, size_t len, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 7 && strncasecmp(value, "unknown", 7) == 0) {
        return 0;
    }
    return parse_literal(value, len, out) ? 0 : -EINVAL;
}

int http_control_parse_addresses(const char *value, size_t len,
                                 struct sockaddr_storage out[HTTP_CONTROL_ADDRESSES_MAX], size_t *n)
{
    size_t i = 0;

    *n = 0;
    do {
        size_t start = i;
        while (i < len && value[i] != ',') {
            i++;
        }
        size_t end = i;
        while (start < end && is_ows(value[start])) {
            start++;
        }
        while (end > start && is_ows(value[end - 1])) {
            end--;
        }
        if (*n == HTTP_CONTROL_ADDRESSES_MAX ||
            !parse_literal(value + start, end - start, &out[*n])) {
            *n = 0;
            return -EINVAL;
        }
        (*n)++;
    } while (i++ < len); /* past the comma; a trailing comma leaves an empty, invalid element */
    return 0;
}

enum http_control http_control_classify(const char *target, size_t len,
                                        char name[HTTP_CONTROL_NAME_MAX + 1])
{
    static const char egress[] = HTTP_CONTROL_EGRESS_PATH;
    static const char resolve[] = HTTP_CONTROL_RESOLVE_PATH "?name=";
    const size_t egress_len = sizeof(egress) - 1, path_len = sizeof(HTTP_CONTROL_RESOLVE_PATH) - 1;
    const size_t prefix_len = sizeof(resolve) - 1;

    name[0] = '\0';
    if (len >= egress_len && memcmp(target, egress, egress_len) == 0) {
        if (len == egress_len) {
            return HTTP_CONTROL_EGRESS;
        }
        return target[egress_len] == '?' ? HTTP_CONTROL_INVALID : HTTP_CONTROL_NONE;
    }
    if (len < path_len || memcmp(target, resolve, path_len) != 0) {
        return HTTP_CONTROL_NONE;
    }
    if (len > path_len && target[path_len] != '?') {
        return HTTP_CONTROL_NONE; /* another path that merely starts the same */
    }
    if (len < prefix_len || memcmp(target, resolve, prefix_len) != 0 ||
        !http_control_name_is_valid(target + prefix_len, len - prefix_len)) {
        return HTTP_CONTROL_INVALID;
    }
    for (size_t i = prefix_len; i < len; i++) {
        char ch = target[i];
        name[i - prefix_len] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
    }
    name[len - prefix_len] = '\0';
    return HTTP_CONTROL_RESOLVE;
}

/* The text of an AF_INET or AF_INET6 address; false for other families. */
static bool address_text(const struct sockaddr *sa, char text[INET6_ADDRSTRLEN])
{
    if (sa == NULL) {
        return false;
    }
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof(sin));
        return inet_ntop(AF_INET, &sin.sin_addr, text, INET6_ADDRSTRLEN) != NULL;
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, sa, sizeof(sin6));
        return inet_ntop(AF_INET6, &sin6.sin6_addr, text, INET6_ADDRSTRLEN) != NULL;
    }
    return false;
}

/* 200 with one Geoproxy field and a JSON body. */
static int build_json_reply(char *out, size_t out_len, const char *field, const char *value,
                            const char *body)
{
    return written(out, out_len,
                   snprintf(out, out_len,
                            "HTTP/1.1 200 %s\r\n%s: %s\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\n\r\n%s",
                            http_status_reason(200), field, value, strlen(body), body));
}

int http_control_build_egress_reply(char *out, size_t out_len, const struct sockaddr *egress)
{
    char text[INET6_ADDRSTRLEN];
    char body[INET6_ADDRSTRLEN + 16];

    if (!address_text(egress, text)) {
        return build_json_reply(out, out_len, HTTP_EGRESS_FIELD, "unknown", "{\"egress\":null}");
    }
    snprintf(body, sizeof(body), "{\"egress\":\"%s\"}", text);
    return build_json_reply(out, out_len, HTTP_EGRESS_FIELD, text, body);
}

int http_control_build_resolve_reply(char *out, size_t out_len,
                                     const struct sockaddr_storage *addrs, size_t n)
{
    char list[LIST_MAX], body[LIST_MAX];
    size_t list_len = 0, body_len = 0;

    if (n == 0 || n > HTTP_CONTROL_ADDRESSES_MAX) {
        return -EINVAL;
    }
    body_len = (size_t)snprintf(body, sizeof(body), "{\"addresses\":[");
    for (size_t i = 0; i < n; i++) {
        char text[INET6_ADDRSTRLEN];
        if (!address_text((const struct sockaddr *)&addrs[i], text)) {
            return -EINVAL;
        }
        /* Both fit: LIST_MAX holds the longest address, its quotes and separator 16 times. */
        list_len += (size_t)snprintf(list + list_len, sizeof(list) - list_len, "%s%s",
                                     i > 0 ? ", " : "", text);
        body_len += (size_t)snprintf(body + body_len, sizeof(body) - body_len, "%s\"%s\"",
                                     i > 0 ? "," : "", text);
    }
    snprintf(body + body_len, sizeof(body) - body_len, "]}");
    return build_json_reply(out, out_len, HTTP_ADDRESSES_FIELD, list, body);
}

int http_control_build_resolve_failure(char *out, size_t out_len, const char *details)
{
    const struct http_reply reply = {
        .status = 502,
        .error = "dns_error",
        .details = details,
        .body = "name resolution failed\n",
        .keep_alive = true,
    };
    size_t n = out_len > 0 ? http_build_reply(out, out_len - 1, &reply) : 0;

    if (n == 0) {
        return written(out, out_len, -1);
    }
    out[n] = '\0';
    return (int)n;
}
