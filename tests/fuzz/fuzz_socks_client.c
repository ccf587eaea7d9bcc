/* libFuzzer target for proxy/socks_client_parse.h: the input is read by every SOCKS5 client
 * parser as what a parent proxy sent, and drives the builders. Broken promises abort:
 *   - *consumed is 0 unless DONE, and within 1..len when DONE; a DONE parse is unchanged by the
 *     bytes after the message, and every shorter prefix is NEED_MORE;
 *   - the method parser only reports a method the greeting offered, or 0xFF;
 *   - a CONNECT reply's bound name is NUL-terminated, 1..255 bytes without NUL; a literal has the
 *     family its ATYP says;
 *   - the builders never write past the exact buffer they are given, return -ENOBUFS (writing
 *     nothing) when it is one byte short, and what they build parses with the server side's
 *     parsers (socks_parse.h) to the same fields.
 * Build: tests/fuzz/CMakeLists.txt (GEOPROXY_FUZZ=ON). Seeds: tests/fuzz/corpus/socks_client/. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "proxy/socks_client_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

/* No server message exceeds SOCKS5_CLIENT_REPLY_MAX: longer inputs only slow the prefix checks. */
#define PREFIX_CHECK_MAX 512

enum kind {
    KIND_METHOD,
    KIND_METHOD_USERPASS,
    KIND_AUTH_REPLY,
    KIND_REPLY,
    KIND_COUNT,
};

static enum parse_result run(enum kind k, const uint8_t *buf, size_t len, size_t *consumed)
{
    struct socks5_client_reply reply;
    enum parse_result res = PARSE_INVALID;
    uint8_t code = 0;

    switch (k) {
    case KIND_METHOD:
    case KIND_METHOD_USERPASS:
        res = socks5_client_parse_method(buf, len, k == KIND_METHOD_USERPASS, &code, consumed);
        if (res == PARSE_DONE) {
            CHECK(code == SOCKS5_METHOD_NO_AUTH || code == SOCKS5_METHOD_NONE_ACCEPTABLE ||
                  (k == KIND_METHOD_USERPASS && code == SOCKS5_METHOD_USERPASS));
            CHECK(*consumed == 2);
        }
        break;
    case KIND_AUTH_REPLY:
        res = socks5_client_parse_auth_reply(buf, len, &code, consumed);
        CHECK(res != PARSE_DONE || *consumed == 2);
        break;
    case KIND_REPLY:
        res = socks5_client_parse_reply(buf, len, &reply, consumed);
        if (res == PARSE_DONE) {
            CHECK(reply.rep == buf[1]);
            if (reply.atyp == SOCKS5_ATYP_DOMAIN) {
                size_t n = strnlen(reply.bound.host, sizeof(reply.bound.host));
                CHECK(n >= 1 && n <= SOCKS5_DOMAIN_NAME_MAX);
                CHECK(*consumed == 4 + 1 + n + 2);
            } else {
                CHECK(target_is_literal(&reply.bound));
                CHECK(reply.atyp == SOCKS5_ATYP_IPV4 || reply.atyp == SOCKS5_ATYP_IPV6);
                CHECK(reply.bound.addr.ss_family ==
                      (reply.atyp == SOCKS5_ATYP_IPV4 ? AF_INET : AF_INET6));
                CHECK(*consumed == (reply.atyp == SOCKS5_ATYP_IPV4 ? 10u : 22u));
            }
            (void)socks5_client_outbound_from_rep(reply.rep);
        }
        break;
    case KIND_COUNT:
        break;
    }
    if (res == PARSE_DONE) {
        CHECK(*consumed >= 1 && *consumed <= len);
    } else {
        CHECK(*consumed == 0);
    }
    return res;
}

static void check_parser(enum kind k, const uint8_t *data, size_t size)
{
    size_t consumed, again;

    if (run(k, data, size, &consumed) != PARSE_DONE || size > PREFIX_CHECK_MAX) {
        return;
    }
    for (size_t n = 0; n <= consumed; n++) {
        uint8_t *copy = n > 0 ? malloc(n) : NULL;
        CHECK(n == 0 || copy != NULL);
        if (n > 0) {
            memcpy(copy, data, n);
        }
        enum parse_result r = run(k, copy, n, &again);
        free(copy);
        CHECK(n < consumed ? r == PARSE_NEED_MORE : (r == PARSE_DONE && again == consumed));
    }
}

/* Calls a builder with exactly 'room' bytes of heap, so that ASan sees a write past them. */
typedef int (*build_fn)(uint8_t *out, size_t out_len, const void *arg);

static int build_exact(build_fn fn, const void *arg, size_t room, uint8_t *copy_out)
{
    uint8_t *buf = malloc(room > 0 ? room : 1);
    CHECK(buf != NULL);
    memset(buf, 0xEE, room);
    int n = fn(room > 0 ? buf : NULL, room, arg);
    if (n > 0) {
        CHECK((size_t)n <= room);
        memcpy(copy_out, buf, (size_t)n);
    } else {
        for (size_t i = 0; i < room; i++) {
            CHECK(buf[i] == 0xEE);
        }
    }
    free(buf);
    return n;
}

/* Builds with a generous buffer, then exactly enough and one byte short. */
static int build_checked(build_fn fn, const void *arg, uint8_t *out)
{
    int n = build_exact(fn, arg, SOCKS5_CLIENT_AUTH_MAX, out);
    CHECK(n == -EINVAL || (n > 0 && n <= SOCKS5_CLIENT_AUTH_MAX));
    if (n > 0) {
        uint8_t again[SOCKS5_CLIENT_AUTH_MAX];
        CHECK(build_exact(fn, arg, (size_t)n, again) == n && memcmp(again, out, (size_t)n) == 0);
        CHECK(build_exact(fn, arg, (size_t)n - 1, again) == -ENOBUFS);
    }
    return n;
}

struct auth_arg {
    const char *user, *password;
    size_t user_len, password_len;
};

static int build_auth(uint8_t *out, size_t out_len, const void *arg)
{
    const struct auth_arg *a = arg;
    return socks5_client_build_auth(out, out_len, a->user, a->user_len, a->password,
                                    a->password_len);
}

struct connect_arg {
    const char *host;
    uint16_t port;
};

static int build_connect(uint8_t *out, size_t out_len, const void *arg)
{
    const struct connect_arg *c = arg;
    return socks5_client_build_connect(out, out_len, c->host, c->port);
}

/* Input: two length bytes, then user and password for the auth builder; the same bytes up to
 * the first NUL (at most 300) as a host for CONNECT, with the first two bytes as its port. */
static void check_builders(const uint8_t *data, size_t size)
{
    uint8_t out[SOCKS5_CLIENT_AUTH_MAX];
    size_t consumed;

    if (size < 2) {
        return;
    }
    struct auth_arg a = {(const char *)data + 2, NULL, data[0], data[1]};
    if (a.user_len + a.password_len <= size - 2) {
        a.password = a.user + a.user_len;
        if (build_checked(build_auth, &a, out) > 0) {
            struct socks5_auth parsed;
            CHECK(socks5_parse_auth(out, SOCKS5_CLIENT_AUTH_MAX, &parsed, &consumed) == PARSE_DONE);
            CHECK(parsed.user_len == a.user_len && parsed.password_len == a.password_len);
            CHECK(memcmp(parsed.user, a.user, a.user_len) == 0);
            CHECK(memcmp(parsed.password, a.password, a.password_len) == 0);
        }
    }

    char host[301];
    size_t host_len = 0;
    while (host_len < size - 2 && host_len < sizeof(host) - 1 && data[2 + host_len] != 0) {
        host[host_len] = (char)data[2 + host_len];
        host_len++;
    }
    host[host_len] = '\0';
    struct connect_arg c = {host, (uint16_t)(data[0] << 8 | data[1])};
    int n = build_checked(build_connect, &c, out);
    if (n > 0) {
        struct socks5_request req;
        CHECK(socks5_parse_request(out, (size_t)n, &req, &consumed) == PARSE_DONE);
        CHECK(consumed == (size_t)n && req.cmd == SOCKS5_CMD_CONNECT && req.target.port == c.port);
        CHECK(req.atyp != SOCKS5_ATYP_DOMAIN || strcmp(req.target.host, host) == 0);
    }

    for (int userpass = 0; userpass < 2; userpass++) {
        n = socks5_client_build_greeting(out, data[0] % 5, userpass);
        CHECK(n == (data[0] % 5 >= 3 + userpass ? 3 + userpass : -ENOBUFS));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int k = 0; k < KIND_COUNT; k++) {
        check_parser((enum kind)k, data, size);
    }
    check_builders(data, size);
    return 0;
}
