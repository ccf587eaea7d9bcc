/* SOCKS5 client side: see socks_client_parse.h. The CONNECT reply has the request's layout with
 * REP where the request has CMD (RFC 1928 §4 and §6), so its address is read by the server side's
 * socks5_parse_request, over a copy whose CMD byte says CONNECT: one reader of ATYP 1/3/4 for both
 * directions. */
#include "proxy/socks_client_parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

int socks5_client_build_greeting(uint8_t *out, size_t out_len, bool userpass)
{
    size_t n = userpass ? 4 : 3;

    if (out_len < n) {
        return -ENOBUFS;
    }
    out[0] = SOCKS5_VERSION;
    out[1] = (uint8_t)(n - 2);
    out[2] = SOCKS5_METHOD_NO_AUTH;
    if (userpass) {
        out[3] = SOCKS5_METHOD_USERPASS;
    }
    return (int)n;
}

/* Two-byte replies, VER and one code: DONE once both are here and VER is 'version'. */
static enum parse_result parse_two_bytes(const uint8_t *buf, size_t len, uint8_t version,
                                         uint8_t *code, size_t *consumed)
{
    *consumed = 0;
    *code = 0;
    if (len < 1 || buf == NULL) {
        return PARSE_NEED_MORE;
    }
    if (buf[0] != version) {
        return PARSE_INVALID;
    }
    if (len < 2) {
        return PARSE_NEED_MORE;
    }
    *code = buf[1];
    *consumed = 2;
    return PARSE_DONE;
}

enum parse_result socks5_client_parse_method(const uint8_t *buf, size_t len, bool userpass,
                                             uint8_t *method, size_t *consumed)
{
    enum parse_result res = parse_two_bytes(buf, len, SOCKS5_VERSION, method, consumed);

    if (res != PARSE_DONE) {
        return res;
    }
    if (*method == SOCKS5_METHOD_NO_AUTH || *method == SOCKS5_METHOD_NONE_ACCEPTABLE ||
        (userpass && *method == SOCKS5_METHOD_USERPASS)) {
        return PARSE_DONE;
    }
    *method = 0;
    *consumed = 0;
    return PARSE_INVALID; /* a method we never offered */
}

int socks5_client_build_auth(uint8_t *out, size_t out_len, const char *user, size_t user_len,
                             const char *password, size_t password_len)
{
    if (user_len < 1 || user_len > SOCKS5_AUTH_FIELD_MAX || password_len < 1 ||
        password_len > SOCKS5_AUTH_FIELD_MAX) {
        return -EINVAL;
    }
    size_t n = 3 + user_len + password_len;
    if (out_len < n) {
        return -ENOBUFS;
    }
    out[0] = SOCKS5_AUTH_VERSION;
    out[1] = (uint8_t)user_len;
    memcpy(out + 2, user, user_len);
    out[2 + user_len] = (uint8_t)password_len;
    memcpy(out + 3 + user_len, password, password_len);
    return (int)n;
}

enum parse_result socks5_client_parse_auth_reply(const uint8_t *buf, size_t len, uint8_t *status,
                                                 size_t *consumed)
{
    return parse_two_bytes(buf, len, SOCKS5_AUTH_VERSION, status, consumed);
}

/* The bytes of an address literal: 4 for IPv4, 16 for IPv6 (brackets allowed), 0 for a name,
 * -EINVAL for brackets around something else. */
static int literal_bytes(const char *host, size_t host_len, uint8_t addr[16])
{
    char text[INET6_ADDRSTRLEN];

    if (host[0] == '[') {
        if (host_len < 3 || host[host_len - 1] != ']' || host_len - 2 >= sizeof(text)) {
            return -EINVAL;
        }
        memcpy(text, host + 1, host_len - 2);
        text[host_len - 2] = '\0';
        return inet_pton(AF_INET6, text, addr) == 1 ? 16 : -EINVAL;
    }
    if (inet_pton(AF_INET, host, addr) == 1) {
        return 4;
    }
    return inet_pton(AF_INET6, host, addr) == 1 ? 16 : 0;
}

int socks5_client_build_connect(uint8_t *out, size_t out_len, const char *host, uint16_t port)
{
    size_t host_len = strnlen(host, SOCKS5_DOMAIN_NAME_MAX + 1);
    uint8_t addr[16];
    size_t n;

    if (port == 0 || host_len == 0 || host_len > SOCKS5_DOMAIN_NAME_MAX) {
        return -EINVAL;
    }
    int literal = literal_bytes(host, host_len, addr);
    if (literal < 0) {
        return literal;
    }
    if (literal == 0) {
        for (size_t i = 0; i < host_len; i++) {
            unsigned char ch = (unsigned char)host[i];
            if (ch <= 0x20 || ch == 0x7F) {
                return -EINVAL;
            }
        }
    }
    n = 4 + (literal != 0 ? (size_t)literal : 1 + host_len) + 2;
    if (out_len < n) {
        return -ENOBUFS;
    }
    out[0] = SOCKS5_VERSION;
    out[1] = SOCKS5_CMD_CONNECT;
    out[2] = 0x00;
    if (literal == 4 || literal == 16) {
        out[3] = literal == 4 ? SOCKS5_ATYP_IPV4 : SOCKS5_ATYP_IPV6;
        memcpy(out + 4, addr, (size_t)literal);
    } else {
        out[3] = SOCKS5_ATYP_DOMAIN;
        out[4] = (uint8_t)host_len;
        memcpy(out + 5, host, host_len);
    }
    out[n - 2] = (uint8_t)(port >> 8);
    out[n - 1] = (uint8_t)(port & 0xFF);
    return (int)n;
}

enum parse_result socks5_client_parse_reply(const uint8_t *buf, size_t len,
                                            struct socks5_client_reply *out, size_t *consumed)
{
    uint8_t copy[SOCKS5_CLIENT_REPLY_MAX];
    size_t n = len < sizeof(copy) ? len : sizeof(copy);
    struct socks5_request as_request;

    *consumed = 0;
    memset(out, 0, sizeof(*out));
    if (buf == NULL || n == 0) {
        return PARSE_NEED_MORE;
    }
    memcpy(copy, buf, n);
    if (n >= 2) {
        copy[1] = SOCKS5_CMD_CONNECT; /* REP's place: any value is a reply */
    }
    enum parse_result res = socks5_parse_request(copy, n, &as_request, consumed);
    if (res != PARSE_DONE) {
        return res;
    }
    out->rep = buf[1];
    out->atyp = as_request.atyp;
    out->bound = as_request.target;
    return PARSE_DONE;
}

enum outbound_status socks5_client_outbound_from_rep(uint8_t rep)
{
    switch (rep) {
    case SOCKS5_REP_SUCCEEDED:
        return OUTBOUND_OK;
    case SOCKS5_REP_NOT_ALLOWED:
        return OUTBOUND_NOT_ALLOWED;
    case SOCKS5_REP_NET_UNREACH:
        return OUTBOUND_NET_UNREACH;
    case SOCKS5_REP_HOST_UNREACH:
        return OUTBOUND_HOST_UNREACH;
    case SOCKS5_REP_REFUSED:
        return OUTBOUND_REFUSED;
    case SOCKS5_REP_TTL_EXPIRED:
        return OUTBOUND_TIMEOUT;
    default:
        return OUTBOUND_FAILED;
    }
}
