/* HTTP/1.1 client side of a tunnel: see http_client_parse.h. The response head is read by
 * http_parse_response (http_parse.c: llhttp and the proxy's own checks, one place for both); this
 * file only writes the CONNECT request and picks out what a tunnel's client needs. */
#include "proxy/http_client_parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* "host:port", or "[v6]:port" for an IPv6 literal given with or without brackets. */
#define AUTHORITY_MAX (TARGET_HOST_MAX + sizeof("[]:65535"))

/* Longest Basic credentials: base64 of "user:password", with padding and a NUL. */
#define BASIC_MAX (4 * ((2 * HTTP_CREDENTIAL_MAX + 1 + 2) / 3) + 1)

static bool is_name_byte(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_';
}

/* Writes the authority for host and port into buf (AUTHORITY_MAX bytes); -EINVAL for a host
 * that cannot be one (see http_client_build_connect). */
static int format_authority(const char *host, uint16_t port, char *buf)
{
    size_t len = strnlen(host, TARGET_HOST_MAX);
    const char *inner = host;
    size_t inner_len = len;
    char v6[INET6_ADDRSTRLEN];
    struct in6_addr addr6;

    if (port == 0 || len == 0 || len == TARGET_HOST_MAX) {
        return -EINVAL;
    }
    bool bracketed = host[0] == '[';
    if (bracketed) {
        if (len < 3 || host[len - 1] != ']') {
            return -EINVAL;
        }
        inner = host + 1;
        inner_len = len - 2;
    }
    if (inner_len < sizeof(v6)) {
        memcpy(v6, inner, inner_len);
        v6[inner_len] = '\0';
        if (inet_pton(AF_INET6, v6, &addr6) == 1) {
            return snprintf(buf, AUTHORITY_MAX, "[%s]:%u", v6, (unsigned)port);
        }
    }
    if (bracketed) {
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_name_byte((unsigned char)host[i])) {
            return -EINVAL;
        }
    }
    return snprintf(buf, AUTHORITY_MAX, "%s:%u", host, (unsigned)port);
}

static const char base64_digits[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* RFC 4648 base64 of in[0..len), padded, NUL-terminated; out has room for 4 * ((len + 2) / 3)
 * characters and the NUL. */
static void base64_encode(const uint8_t *in, size_t len, char *out)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i += 3) {
        size_t left = len - i;
        uint32_t group = (uint32_t)in[i] << 16;
        if (left > 1) {
            group |= (uint32_t)in[i + 1] << 8;
        }
        if (left > 2) {
            group |= in[i + 2];
        }
        for (size_t k = 0; k < 4; k++) {
            out[n++] = k <= left ? base64_digits[group >> (18 - 6 * k) & 63] : '=';
        }
    }
    out[n] = '\0';
}

/* "Basic base64(user:password)" without the scheme, into out (BASIC_MAX bytes). */
static int format_basic(const struct http_credentials *creds, char *out)
{
    uint8_t plain[2 * HTTP_CREDENTIAL_MAX + 1];

    if (creds->user_len > HTTP_CREDENTIAL_MAX || creds->password_len > HTTP_CREDENTIAL_MAX ||
        memchr(creds->user, ':', creds->user_len) != NULL) {
        return -EINVAL;
    }
    memcpy(plain, creds->user, creds->user_len);
    plain[creds->user_len] = ':';
    memcpy(plain + creds->user_len + 1, creds->password, creds->password_len);
    base64_encode(plain, creds->user_len + 1 + creds->password_len, out);
    explicit_bzero(plain, sizeof(plain));
    return 0;
}

int http_client_build_connect(char *out, size_t out_len, const char *host, uint16_t port,
                              const struct http_credentials *creds, bool optimistic)
{
    char authority[AUTHORITY_MAX];
    char basic[BASIC_MAX] = "";
    int ret = format_authority(host, port, authority);

    if (ret < 0) {
        return ret;
    }
    if (creds != NULL && (ret = format_basic(creds, basic)) < 0) {
        return ret;
    }
    int n =
        snprintf(out, out_len, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s%s%s%s\r\n", authority,
                 authority, creds != NULL ? "Proxy-Authorization: Basic " : "", basic,
                 creds != NULL ? "\r\n" : "", optimistic ? HTTP_OPTIMISTIC_FIELD ": 1\r\n" : "");
    explicit_bzero(basic, sizeof(basic));
    if (n < 0 || (size_t)n >= out_len) {
        if (out_len > 0) {
            explicit_bzero(out, out_len); /* the credentials may be in the part that fitted */
        }
        return -ENOBUFS;
    }
    return n;
}

/* Notes the field 'h' in *value if it is named 'name'; false when it was noted before and
 * 'once' says it may not be repeated. */
static bool pick_field(const struct http_header *h, const char *name, bool once, const char **value,
                       size_t *value_len)
{
    if (http_find_header(h, 1, name) == NULL) {
        return true;
    }
    if (*value != NULL) {
        return !once;
    }
    *value = h->value;
    *value_len = h->value_len;
    return true;
}

/* True when a line break separates the field's name from its value: obsolete line folding
 * after an empty first line ("Name:" CRLF SP "value"), which http_parse_response lets through
 * because llhttp reports the value as one span. */
static bool field_is_folded(const struct http_header *h)
{
    const char *name_end = h->name + h->name_len;

    return h->value_len > 0 && h->value > name_end &&
           memchr(name_end, '\n', (size_t)(h->value - name_end)) != NULL;
}

/* Picks out the fields the client acts on; an error, or NULL. */
static const char *pick_fields(struct http_client_response *out)
{
    for (size_t i = 0; i < out->head.n_headers; i++) {
        const struct http_header *h = &out->head.headers[i];
        if (field_is_folded(h)) {
            return "obsolete line folding in a header field";
        }
        pick_field(h, "Proxy-Status", false, &out->proxy_status, &out->proxy_status_len);
        if (!pick_field(h, HTTP_EGRESS_FIELD, true, &out->egress, &out->egress_len)) {
            return HTTP_EGRESS_FIELD " field repeated";
        }
        if (!pick_field(h, HTTP_ADDRESSES_FIELD, true, &out->addresses, &out->addresses_len)) {
            return HTTP_ADDRESSES_FIELD " field repeated";
        }
    }
    return NULL;
}

enum parse_result http_client_parse_response(const uint8_t *buf, size_t len, size_t max_head,
                                             bool answers_connect, struct http_client_response *out,
                                             size_t *consumed)
{
    enum parse_result res = http_parse_response(buf, len, max_head, false, &out->head, consumed);
    const char *error = out->head.error;

    out->proxy_status = out->egress = out->addresses = NULL;
    out->proxy_status_len = out->egress_len = out->addresses_len = 0;
    out->error = NULL;
    if (res == PARSE_DONE && (error = pick_fields(out)) != NULL) {
        res = PARSE_INVALID;
    }
    if (res == PARSE_INVALID) {
        memset(out, 0, sizeof(*out));
        out->error = error;
        *consumed = 0;
        return PARSE_INVALID;
    }
    if (res == PARSE_DONE && answers_connect && out->head.status / 100 == 2) {
        out->head.body = HTTP_BODY_NONE; /* RFC 9110 §9.3.6: the tunnel starts here */
        out->head.content_length = 0;
    }
    return res;
}
