/* libFuzzer target for proxy/socks_parse.h: every SOCKS parser runs over the input, and the
 * promises of the header are checked, so a violation is a crash the fuzzer reports:
 *   - *consumed is 0 unless DONE, and within 1..len when DONE;
 *   - a DONE parse is unchanged by bytes after the message (pipelining), and every shorter
 *     prefix of the message is NEED_MORE;
 *   - NEED_MORE never carries a reply code; names and user fields are NUL-terminated where the
 *     header says so and a SOCKS5 domain holds no NUL;
 *   - the reply builders never write past the buffer they are given.
 * Build: clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_socks.c
 *        proxy/socks_parse.c. Seeds: tests/fuzz/corpus/socks/. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "proxy/socks_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

/* Longer inputs only make the prefix checks slower: no SOCKS message exceeds 8 + 256 + 256. */
#define PREFIX_CHECK_MAX 1024

enum kind {
    KIND_GREETING,
    KIND_AUTH,
    KIND_SOCKS5_REQUEST,
    KIND_SOCKS4_REQUEST,
    KIND_COUNT,
};

static enum parse_result run(enum kind k, const uint8_t *buf, size_t len, size_t *consumed,
                             uint8_t *reply)
{
    struct socks5_greeting greeting;
    struct socks5_auth auth;
    struct socks5_request req5;
    struct socks4_request req4;
    enum parse_result res = PARSE_INVALID;

    *reply = 0;
    switch (k) {
    case KIND_GREETING:
        res = socks5_parse_greeting(buf, len, &greeting, consumed);
        if (res == PARSE_DONE) {
            CHECK(greeting.n_methods > 0);
            CHECK(*consumed == 2u + greeting.n_methods);
        }
        break;
    case KIND_AUTH:
        res = socks5_parse_auth(buf, len, &auth, consumed);
        if (res == PARSE_DONE) {
            CHECK(auth.user_len >= 1 && auth.user_len <= SOCKS5_AUTH_FIELD_MAX);
            CHECK(auth.password_len >= 1 && auth.password_len <= SOCKS5_AUTH_FIELD_MAX);
            CHECK(auth.user[auth.user_len] == '\0');
            CHECK(auth.password[auth.password_len] == '\0');
            CHECK(*consumed == 3 + auth.user_len + auth.password_len);
        }
        break;
    case KIND_SOCKS5_REQUEST:
        res = socks5_parse_request(buf, len, &req5, consumed);
        *reply = req5.reply;
        if (res == PARSE_DONE) {
            CHECK(req5.cmd >= SOCKS5_CMD_CONNECT && req5.cmd <= SOCKS5_CMD_UDP_ASSOCIATE);
            if (req5.atyp == SOCKS5_ATYP_DOMAIN) {
                size_t n = strnlen(req5.target.host, sizeof(req5.target.host));
                CHECK(n >= 1 && n <= 255);
                CHECK(*consumed == 4 + 1 + n + 2);
            } else {
                CHECK(target_is_literal(&req5.target));
                CHECK(req5.target.addr.ss_family ==
                      (req5.atyp == SOCKS5_ATYP_IPV4 ? AF_INET : AF_INET6));
            }
        }
        break;
    case KIND_SOCKS4_REQUEST:
        res = socks4_parse_request(buf, len, &req4, consumed);
        *reply = req4.reply;
        if (res == PARSE_DONE) {
            CHECK(req4.cmd == SOCKS4_CMD_CONNECT || req4.cmd == SOCKS4_CMD_BIND);
            CHECK(req4.userid_len <= SOCKS4_USERID_MAX && req4.userid[req4.userid_len] == '\0');
            size_t n = strnlen(req4.target.host, sizeof(req4.target.host));
            CHECK(n < sizeof(req4.target.host));
            CHECK(req4.is_4a ? n >= 1 : n == 0);
            CHECK(*consumed == 8 + req4.userid_len + 1 + (req4.is_4a ? n + 1 : 0));
        }
        break;
    case KIND_COUNT:
        break;
    }
    if (res == PARSE_DONE) {
        CHECK(*consumed >= 1 && *consumed <= len);
        CHECK(*reply == 0);
    } else {
        CHECK(*consumed == 0);
    }
    if (res == PARSE_NEED_MORE) {
        CHECK(*reply == 0);
    }
    return res;
}

static void check_parser(enum kind k, const uint8_t *data, size_t size)
{
    size_t consumed, again;
    uint8_t reply, reply_again;
    enum parse_result res = run(k, data, size, &consumed, &reply);

    if (res != PARSE_DONE || size > PREFIX_CHECK_MAX) {
        return;
    }
    /* The message alone parses the same; each shorter prefix is NEED_MORE. Copies of exactly
     * the prefix length let ASan see a read past 'len'. */
    for (size_t n = 0; n <= consumed; n++) {
        uint8_t *copy = n > 0 ? malloc(n) : NULL;
        CHECK(n == 0 || copy != NULL);
        if (n > 0) {
            memcpy(copy, data, n);
        }
        enum parse_result r = run(k, copy, n, &again, &reply_again);
        free(copy);
        if (n < consumed) {
            CHECK(r == PARSE_NEED_MORE);
        } else {
            CHECK(r == PARSE_DONE && again == consumed);
        }
    }
}

static void check_builders(const uint8_t *data, size_t size)
{
    uint8_t out[SOCKS5_REPLY_MAX];
    struct sockaddr_storage ss;
    size_t room = size > 0 ? data[0] % (sizeof(out) + 1) : sizeof(out);
    uint8_t code = size > 1 ? data[1] : 0;

    /* A bound address from the input: the family picked by a byte, the rest raw. */
    memset(&ss, 0, sizeof(ss));
    if (size > 2) {
        size_t n = size - 3 < sizeof(ss) ? size - 3 : sizeof(ss);
        memcpy(&ss, data + 3, n);
        ss.ss_family = data[2] % 3 == 0 ? AF_INET : data[2] % 3 == 1 ? AF_INET6 : AF_UNSPEC;
    }
    /* The builders get exactly 'room' bytes: ASan catches a write past them. */
    uint8_t *buf = malloc(room > 0 ? room : 1);
    CHECK(buf != NULL);
    size_t n = socks5_build_reply(buf, room, code, (const struct sockaddr *)&ss);
    CHECK(n == 0 || n == 10 || n == 22);
    CHECK(n <= room);
    n = socks4_build_reply(buf, room, code, (const struct sockaddr *)&ss);
    CHECK(n == 0 || (n == SOCKS4_REPLY_LEN && room >= SOCKS4_REPLY_LEN));
    n = socks5_build_method_reply(buf, room, code);
    CHECK(n == (room >= 2 ? 2u : 0u));
    n = socks5_build_auth_reply(buf, room, code);
    CHECK(n == (room >= 2 ? 2u : 0u));
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int k = 0; k < KIND_COUNT; k++) {
        check_parser((enum kind)k, data, size);
    }
    check_builders(data, size);
    return 0;
}
