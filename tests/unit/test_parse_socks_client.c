/* SOCKS5 client builders and parsers (proxy/socks_client_parse.h). Table-driven: each valid
 * server message is parsed whole, as every shorter prefix (NEED_MORE, nothing consumed) and with
 * tunnel bytes behind it (only the message consumed); each invalid one stays INVALID whatever
 * follows it and no prefix of it is DONE. Builders are checked against their exact bytes, with a
 * buffer one byte short (-ENOBUFS, nothing written), and the CONNECT request against the server
 * side's parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include "proxy/socks_client_parse.h"
#include "test_support.h"

#define BYTES(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

#define MSG_MAX 1024

enum msg_kind {
    MSG_METHOD,          /* greeting offered no-auth only */
    MSG_METHOD_USERPASS, /* greeting offered no-auth and username/password */
    MSG_AUTH_REPLY,
    MSG_REPLY,
};

struct outcome {
    enum parse_result res;
    size_t consumed;
    char desc[DESC_MAX];
};

static void desc_append_target(char *desc, const struct target *t)
{
    char text[INET6_ADDRSTRLEN];

    if (t->host[0] != '\0') {
        assert_int_equal(t->addr.ss_family, AF_UNSPEC);
        desc_append(desc, "host=%s", t->host);
    } else if (t->addr.ss_family == AF_INET) {
        assert_non_null(inet_ntop(AF_INET, &((const struct sockaddr_in *)&t->addr)->sin_addr, text,
                                  sizeof(text)));
        desc_append(desc, "ipv4=%s", text);
    } else if (t->addr.ss_family == AF_INET6) {
        assert_non_null(inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&t->addr)->sin6_addr,
                                  text, sizeof(text)));
        desc_append(desc, "ipv6=%s", text);
    } else {
        desc_append(desc, "no-address");
    }
    desc_append(desc, " port=%u", (unsigned)t->port);
}

/* Runs the parser for 'kind' and checks the promises every parser makes about 'consumed'. */
static struct outcome parse_any(enum msg_kind kind, const uint8_t *buf, size_t len)
{
    struct outcome o;
    struct socks5_client_reply reply;
    uint8_t code = 0xEE;

    memset(&o, 0, sizeof(o));
    o.consumed = 12345; /* must be overwritten */
    switch (kind) {
    case MSG_METHOD:
    case MSG_METHOD_USERPASS:
        o.res =
            socks5_client_parse_method(buf, len, kind == MSG_METHOD_USERPASS, &code, &o.consumed);
        if (o.res == PARSE_DONE) {
            desc_append(o.desc, "method=%u", (unsigned)code);
        }
        break;
    case MSG_AUTH_REPLY:
        o.res = socks5_client_parse_auth_reply(buf, len, &code, &o.consumed);
        if (o.res == PARSE_DONE) {
            desc_append(o.desc, "status=%u", (unsigned)code);
        }
        break;
    case MSG_REPLY:
        o.res = socks5_client_parse_reply(buf, len, &reply, &o.consumed);
        if (o.res == PARSE_DONE) {
            desc_append(o.desc, "rep=%u atyp=%u ", (unsigned)reply.rep, (unsigned)reply.atyp);
            desc_append_target(o.desc, &reply.bound);
        } else {
            static const struct socks5_client_reply zero;
            assert_memory_equal(&reply, &zero, sizeof(reply));
        }
        break;
    }
    if (o.res == PARSE_DONE) {
        assert_true(o.consumed > 0 && o.consumed <= len);
    } else {
        assert_int_equal(o.consumed, 0);
    }
    return o;
}

/* A heap copy of exactly n bytes (NULL for 0), so that a read past the end shows under ASan. */
static struct outcome parse_exact(enum msg_kind kind, const uint8_t *bytes, size_t n)
{
    uint8_t *copy = NULL;

    if (n > 0) {
        copy = malloc(n);
        assert_non_null(copy);
        memcpy(copy, bytes, n);
    }
    struct outcome o = parse_any(kind, copy, n);
    free(copy);
    return o;
}

/* Tunnel bytes the server may send right behind its reply. */
static const uint8_t trailer[] = {0x05, 0x00, 0x01, 'H', 'T', 'T', 'P', '/', 0xFF};

static struct outcome parse_pipelined(enum msg_kind kind, const uint8_t *bytes, size_t len)
{
    static uint8_t with_trailer[MSG_MAX + sizeof(trailer)];

    assert_true(len <= MSG_MAX);
    memcpy(with_trailer, bytes, len);
    memcpy(with_trailer + len, trailer, sizeof(trailer));
    return parse_any(kind, with_trailer, len + sizeof(trailer));
}

static void check_valid(const char *name, enum msg_kind kind, const uint8_t *bytes, size_t len,
                        const char *expect_desc)
{
    struct outcome o = parse_exact(kind, bytes, len);

    if (o.res != PARSE_DONE || o.consumed != len || strcmp(o.desc, expect_desc) != 0) {
        fail_msg("%s: res=%d consumed=%zu/%zu desc '%s', want '%s'", name, (int)o.res, o.consumed,
                 len, o.desc, expect_desc);
    }
    for (size_t n = 0; n < len; n++) {
        o = parse_exact(kind, bytes, n);
        if (o.res != PARSE_NEED_MORE) {
            fail_msg("%s: prefix of %zu/%zu bytes gave %d, want NEED_MORE", name, n, len,
                     (int)o.res);
        }
    }
    o = parse_pipelined(kind, bytes, len);
    if (o.res != PARSE_DONE || o.consumed != len || strcmp(o.desc, expect_desc) != 0) {
        fail_msg("%s: pipelined: res=%d consumed=%zu/%zu desc '%s'", name, (int)o.res, o.consumed,
                 len, o.desc);
    }
}

static void check_invalid(const char *name, enum msg_kind kind, const uint8_t *bytes, size_t len)
{
    if (parse_exact(kind, bytes, len).res != PARSE_INVALID) {
        fail_msg("%s: not INVALID", name);
    }
    if (parse_pipelined(kind, bytes, len).res != PARSE_INVALID) {
        fail_msg("%s: with more bytes: not INVALID", name);
    }
    for (size_t n = 0; n < len; n++) {
        if (parse_exact(kind, bytes, n).res == PARSE_DONE) {
            fail_msg("%s: prefix of %zu bytes gave DONE", name, n);
        }
    }
}

struct valid_case {
    const char *name;
    enum msg_kind kind;
    const uint8_t *bytes;
    size_t len;
    const char *desc;
};

static const struct valid_case valid_cases[] = {
    {"method no-auth", MSG_METHOD, BYTES(0x05, 0x00), "method=0"},
    {"method none acceptable", MSG_METHOD, BYTES(0x05, 0xFF), "method=255"},
    {"method userpass offered, no-auth chosen", MSG_METHOD_USERPASS, BYTES(0x05, 0x00), "method=0"},
    {"method userpass chosen", MSG_METHOD_USERPASS, BYTES(0x05, 0x02), "method=2"},
    {"method userpass offered, none acceptable", MSG_METHOD_USERPASS, BYTES(0x05, 0xFF),
     "method=255"},

    {"auth ok", MSG_AUTH_REPLY, BYTES(0x01, 0x00), "status=0"},
    {"auth failure", MSG_AUTH_REPLY, BYTES(0x01, 0x01), "status=1"},
    {"auth failure 0xFF", MSG_AUTH_REPLY, BYTES(0x01, 0xFF), "status=255"},

    {"reply ipv4", MSG_REPLY, BYTES(0x05, 0x00, 0x00, 0x01, 192, 0, 2, 7, 0x1F, 0x90),
     "rep=0 atyp=1 ipv4=192.0.2.7 port=8080"},
    {"reply Tor's 0.0.0.0:0", MSG_REPLY, BYTES(0x05, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0),
     "rep=0 atyp=1 ipv4=0.0.0.0 port=0"},
    {"reply ipv6", MSG_REPLY,
     BYTES(0x05, 0x00, 0x00, 0x04, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x09,
           0xFF, 0xFF),
     "rep=0 atyp=4 ipv6=2001:db8::9 port=65535"},
    {"reply name", MSG_REPLY,
     BYTES(0x05, 0x00, 0x00, 0x03, 0x09, 'p', 'r', 'o', 'x', 'y', '.', 'l', 'a', 'n', 0x04, 0x38),
     "rep=0 atyp=3 host=proxy.lan port=1080"},
    {"reply one-letter name", MSG_REPLY, BYTES(0x05, 0x04, 0x00, 0x03, 0x01, 'x', 0x00, 0x01),
     "rep=4 atyp=3 host=x port=1"},
    {"reply refused over ipv6", MSG_REPLY,
     BYTES(0x05, 0x05, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
     "rep=5 atyp=4 ipv6=:: port=0"},
};

static void test_valid_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(valid_cases); i++) {
        const struct valid_case *vc = &valid_cases[i];
        check_valid(vc->name, vc->kind, vc->bytes, vc->len, vc->desc);
    }
}

/* Every REP, assigned or not, is DONE and reported as sent, over every ATYP. */
static void test_reply_every_code(void **state)
{
    static const uint8_t ipv4[] = {0x01, 10, 1, 2, 3, 0x00, 0x50};
    static const uint8_t name[] = {0x03, 0x03, 'a', '.', 'b', 0x00, 0x50};
    static const uint8_t ipv6[] = {0x04, 0, 0, 0, 0, 0, 0, 0,    0,   0,
                                   0,    0, 0, 0, 0, 0, 1, 0x00, 0x50};
    static const struct {
        const uint8_t *tail;
        size_t len;
        const char *desc;
    } atyps[] = {
        {ipv4, sizeof(ipv4), "atyp=1 ipv4=10.1.2.3 port=80"},
        {name, sizeof(name), "atyp=3 host=a.b port=80"},
        {ipv6, sizeof(ipv6), "atyp=4 ipv6=::1 port=80"},
    };
    uint8_t msg[3 + sizeof(ipv6)];
    char name_buf[64], desc[DESC_MAX];

    (void)state;
    for (unsigned rep = 0; rep <= 0xFF; rep++) {
        for (size_t a = 0; a < N_ELEMS(atyps); a++) {
            msg[0] = 0x05;
            msg[1] = (uint8_t)rep;
            msg[2] = 0x00;
            memcpy(msg + 3, atyps[a].tail, atyps[a].len);
            snprintf(name_buf, sizeof(name_buf), "rep 0x%02x atyp %zu", rep, a);
            desc[0] = '\0';
            desc_append(desc, "rep=%u %s", rep, atyps[a].desc);
            check_valid(name_buf, MSG_REPLY, msg, 3 + atyps[a].len, desc);
        }
    }
}

struct invalid_case {
    const char *name;
    enum msg_kind kind;
    const uint8_t *bytes;
    size_t len;
};

static const struct invalid_case invalid_cases[] = {
    {"method version 4", MSG_METHOD, BYTES(0x04, 0x00)},
    {"method version 1", MSG_METHOD, BYTES(0x01, 0x00)},
    {"method is HTTP", MSG_METHOD, BYTES('H', 'T', 'T', 'P', '/')},
    {"method userpass not offered", MSG_METHOD, BYTES(0x05, 0x02)},
    {"method gssapi not offered", MSG_METHOD, BYTES(0x05, 0x01)},
    {"method gssapi not offered with userpass", MSG_METHOD_USERPASS, BYTES(0x05, 0x01)},
    {"method private not offered", MSG_METHOD_USERPASS, BYTES(0x05, 0x80)},

    {"auth reply version 5", MSG_AUTH_REPLY, BYTES(0x05, 0x00)},
    {"auth reply version 0", MSG_AUTH_REPLY, BYTES(0x00, 0x00)},

    {"reply version 4", MSG_REPLY, BYTES(0x04, 0x00, 0x00, 0x01, 1, 2, 3, 4, 0, 80)},
    {"reply version 0", MSG_REPLY, BYTES(0x00)},
    {"reply SOCKS4 granted", MSG_REPLY, BYTES(0x00, 0x5A, 0x00, 0x50, 1, 2, 3, 4)},
    {"reply reserved 1", MSG_REPLY, BYTES(0x05, 0x00, 0x01, 0x01, 1, 2, 3, 4, 0, 80)},
    {"reply reserved 0xFF", MSG_REPLY, BYTES(0x05, 0x00, 0xFF)},
    {"reply atyp 0", MSG_REPLY, BYTES(0x05, 0x00, 0x00, 0x00, 1, 2, 3, 4, 0, 80)},
    {"reply atyp 2", MSG_REPLY, BYTES(0x05, 0x00, 0x00, 0x02)},
    {"reply atyp 5", MSG_REPLY, BYTES(0x05, 0x00, 0x00, 0x05, 1, 2, 3, 4, 0, 80)},
    {"reply atyp 0xFF", MSG_REPLY, BYTES(0x05, 0x01, 0x00, 0xFF)},
    {"reply empty name", MSG_REPLY, BYTES(0x05, 0x00, 0x00, 0x03, 0x00, 0x00, 0x50)},
    {"reply NUL in name", MSG_REPLY, BYTES(0x05, 0x00, 0x00, 0x03, 0x03, 'a', 0x00, 'b', 0, 80)},
};

static void test_invalid_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(invalid_cases); i++) {
        const struct invalid_case *ic = &invalid_cases[i];
        check_invalid(ic->name, ic->kind, ic->bytes, ic->len);
    }
}

static void fill_letters(uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        buf[i] = (uint8_t)('a' + i % 26);
    }
}

/* The longest reply, a 255-byte bound name, and garbage of every length. */
static void test_reply_limits_and_garbage(void **state)
{
    uint8_t msg[SOCKS5_CLIENT_REPLY_MAX];
    uint8_t noise[600];
    char desc[DESC_MAX] = "rep=0 atyp=3 host=";

    (void)state;
    assert_int_equal(sizeof(msg), 4 + 1 + 255 + 2);
    msg[0] = 0x05;
    msg[1] = 0x00;
    msg[2] = 0x00;
    msg[3] = 0x03;
    msg[4] = 255;
    fill_letters(msg + 5, 255);
    msg[5 + 255] = 0x01;
    msg[6 + 255] = 0xBB;
    desc_append(desc, "%.*s port=443", 255, (const char *)msg + 5);
    check_valid("reply 255-byte name", MSG_REPLY, msg, sizeof(msg), desc);

    memset(noise, 0xFF, sizeof(noise));
    for (enum msg_kind k = MSG_METHOD; k <= MSG_REPLY; k++) {
        for (size_t n = 1; n <= sizeof(noise); n += 37) {
            assert_int_equal(parse_exact(k, noise, n).res, PARSE_INVALID);
        }
        assert_int_equal(parse_any(k, NULL, 0).res, PARSE_NEED_MORE);
    }
}

enum builder {
    BUILD_GREETING,
    BUILD_GREETING_USERPASS,
    BUILD_AUTH,
    BUILD_CONNECT,
};

struct build_case {
    const char *name;
    enum builder builder;
    const char *text;  /* CONNECT: host; auth: user */
    const char *text2; /* auth: password */
    uint16_t port;
    int expect; /* a length, or -EINVAL */
    const uint8_t *bytes;
    size_t len;
};

#define REFUSED(name, builder, text, text2, port)                                                  \
    {                                                                                              \
        name, builder, text, text2, port, -EINVAL, NULL, 0                                         \
    }

static const struct build_case build_cases[] = {
    {"greeting", BUILD_GREETING, NULL, NULL, 0, 3, BYTES(0x05, 0x01, 0x00)},
    {"greeting with userpass", BUILD_GREETING_USERPASS, NULL, NULL, 0, 4,
     BYTES(0x05, 0x02, 0x00, 0x02)},

    {"auth alice", BUILD_AUTH, "alice", "secret", 0, 14,
     BYTES(0x01, 0x05, 'a', 'l', 'i', 'c', 'e', 0x06, 's', 'e', 'c', 'r', 'e', 't')},
    {"auth one byte each", BUILD_AUTH, "u", "p", 0, 5, BYTES(0x01, 0x01, 'u', 0x01, 'p')},
    REFUSED("auth empty user", BUILD_AUTH, "", "p", 0),
    REFUSED("auth empty password", BUILD_AUTH, "u", "", 0),

    {"connect ipv4", BUILD_CONNECT, "192.0.2.1", NULL, 443, 10,
     BYTES(0x05, 0x01, 0x00, 0x01, 192, 0, 2, 1, 0x01, 0xBB)},
    {"connect ipv6", BUILD_CONNECT, "2001:db8::1", NULL, 80, 22,
     BYTES(0x05, 0x01, 0x00, 0x04, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
           0x00, 0x50)},
    {"connect bracketed ipv6", BUILD_CONNECT, "[::1]", NULL, 22, 22,
     BYTES(0x05, 0x01, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x00, 0x16)},
    {"connect name unresolved", BUILD_CONNECT, "example.com", NULL, 80, 18,
     BYTES(0x05, 0x01, 0x00, 0x03, 0x0B, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm',
           0x00, 0x50)},
    {"connect onion name", BUILD_CONNECT, "abc.onion", NULL, 0xFFFF, 16,
     BYTES(0x05, 0x01, 0x00, 0x03, 0x09, 'a', 'b', 'c', '.', 'o', 'n', 'i', 'o', 'n', 0xFF, 0xFF)},
    {"connect almost a literal is a name", BUILD_CONNECT, "1.2.3.256", NULL, 1, 16,
     BYTES(0x05, 0x01, 0x00, 0x03, 0x09, '1', '.', '2', '.', '3', '.', '2', '5', '6', 0x00, 0x01)},
    REFUSED("connect port 0", BUILD_CONNECT, "example.com", NULL, 0),
    REFUSED("connect empty host", BUILD_CONNECT, "", NULL, 80),
    REFUSED("connect space in name", BUILD_CONNECT, "exa mple.com", NULL, 80),
    REFUSED("connect CR LF in name", BUILD_CONNECT, "a\r\nb", NULL, 80),
    REFUSED("connect TAB in name", BUILD_CONNECT, "a\tb", NULL, 80),
    REFUSED("connect DEL in name", BUILD_CONNECT, "a\x7f", NULL, 80),
    REFUSED("connect brackets around ipv4", BUILD_CONNECT, "[192.0.2.1]", NULL, 80),
    REFUSED("connect brackets around a name", BUILD_CONNECT, "[example.com]", NULL, 80),
    REFUSED("connect unclosed bracket", BUILD_CONNECT, "[::1", NULL, 80),
    REFUSED("connect empty brackets", BUILD_CONNECT, "[]", NULL, 80),
};

static int run_builder(const struct build_case *bc, uint8_t *out, size_t out_len)
{
    switch (bc->builder) {
    case BUILD_GREETING:
    case BUILD_GREETING_USERPASS:
        return socks5_client_build_greeting(out, out_len, bc->builder == BUILD_GREETING_USERPASS);
    case BUILD_AUTH:
        return socks5_client_build_auth(out, out_len, bc->text, strlen(bc->text), bc->text2,
                                        strlen(bc->text2));
    case BUILD_CONNECT:
        return socks5_client_build_connect(out, out_len, bc->text, bc->port);
    }
    return 0;
}

static void assert_untouched(const uint8_t *out, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        assert_int_equal(out[j], 0xEE);
    }
}

static void test_builders(void **state)
{
    uint8_t out[SOCKS5_CLIENT_AUTH_MAX + 8];

    (void)state;
    for (size_t i = 0; i < N_ELEMS(build_cases); i++) {
        const struct build_case *bc = &build_cases[i];
        memset(out, 0xEE, sizeof(out));
        int n = run_builder(bc, out, sizeof(out));
        if (n != bc->expect || (n > 0 && memcmp(out, bc->bytes, bc->len) != 0)) {
            fail_msg("%s: returned %d, want %d (or wrong bytes)", bc->name, n, bc->expect);
        }
        if (n < 0) {
            assert_untouched(out, sizeof(out));
            continue;
        }
        assert_int_equal((size_t)n, bc->len);
        assert_int_equal(out[n], 0xEE);

        /* exactly big enough works; one byte short is -ENOBUFS and writes nothing */
        memset(out, 0xEE, sizeof(out));
        assert_int_equal(run_builder(bc, out, bc->len), bc->expect);
        memset(out, 0xEE, sizeof(out));
        assert_int_equal(run_builder(bc, out, bc->len - 1), -ENOBUFS);
        assert_untouched(out, sizeof(out));
    }
}

/* Lengths 1..255 go; 0 and 256 do not. NUL bytes are data. The builder's output parses back
 * with the server side's parser. */
static void test_auth_lengths(void **state)
{
    char field[256];
    uint8_t out[SOCKS5_CLIENT_AUTH_MAX];
    struct socks5_auth parsed;
    size_t consumed;

    (void)state;
    fill_letters((uint8_t *)field, sizeof(field));
    field[3] = '\0';
    assert_int_equal(socks5_client_build_auth(out, sizeof(out), field, 255, field, 255),
                     SOCKS5_CLIENT_AUTH_MAX);
    assert_int_equal(socks5_parse_auth(out, sizeof(out), &parsed, &consumed), PARSE_DONE);
    assert_int_equal(consumed, sizeof(out));
    assert_int_equal(parsed.user_len, 255);
    assert_memory_equal(parsed.user, field, 255);
    assert_memory_equal(parsed.password, field, 255);
    assert_int_equal(socks5_client_build_auth(out, sizeof(out), field, 256, field, 1), -EINVAL);
    assert_int_equal(socks5_client_build_auth(out, sizeof(out), field, 1, field, 256), -EINVAL);
    assert_int_equal(socks5_client_build_auth(out, sizeof(out), field, 0, field, 1), -EINVAL);
}

/* Names of 255 bytes go as ATYP 3; 256 are refused. Every CONNECT the builder writes is one the
 * server side parses to the same target. */
static void test_connect_round_trip(void **state)
{
    static const char *const hosts[] = {"192.0.2.1", "::ffff:192.0.2.1",      "[2001:db8::5]",
                                        "localhost", "xn--bcher-kva.example", "a-b_c.d"};
    char name[257];
    uint8_t out[SOCKS5_CLIENT_CONNECT_MAX];
    struct socks5_request req;
    size_t consumed;
    char text[INET6_ADDRSTRLEN];

    (void)state;
    fill_letters((uint8_t *)name, sizeof(name));
    name[255] = '\0';
    assert_int_equal(socks5_client_build_connect(out, sizeof(out), name, 443),
                     SOCKS5_CLIENT_CONNECT_MAX);
    assert_int_equal(socks5_parse_request(out, sizeof(out), &req, &consumed), PARSE_DONE);
    assert_string_equal(req.target.host, name);
    assert_int_equal(req.target.port, 443);
    name[255] = 'x';
    name[256] = '\0';
    assert_int_equal(socks5_client_build_connect(out, sizeof(out), name, 443), -EINVAL);

    for (size_t i = 0; i < N_ELEMS(hosts); i++) {
        int n = socks5_client_build_connect(out, sizeof(out), hosts[i], 8080);
        assert_true(n > 0);
        assert_int_equal(socks5_parse_request(out, (size_t)n, &req, &consumed), PARSE_DONE);
        assert_int_equal(consumed, (size_t)n);
        assert_int_equal(req.cmd, SOCKS5_CMD_CONNECT);
        assert_int_equal(req.target.port, 8080);
        if (req.atyp == SOCKS5_ATYP_DOMAIN) {
            assert_string_equal(req.target.host, hosts[i]);
            continue;
        }
        if (req.atyp == SOCKS5_ATYP_IPV4) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&req.target.addr)->sin_addr, text,
                      sizeof(text));
        } else {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&req.target.addr)->sin6_addr, text,
                      sizeof(text));
        }
        assert_true(strstr(hosts[i], text) != NULL);
    }
}

static void test_outbound_from_rep(void **state)
{
    static const struct {
        uint8_t rep;
        enum outbound_status status;
    } cases[] = {
        {0x00, OUTBOUND_OK},          {0x01, OUTBOUND_FAILED},       {0x02, OUTBOUND_NOT_ALLOWED},
        {0x03, OUTBOUND_NET_UNREACH}, {0x04, OUTBOUND_HOST_UNREACH}, {0x05, OUTBOUND_REFUSED},
        {0x06, OUTBOUND_TIMEOUT},     {0x07, OUTBOUND_FAILED},       {0x08, OUTBOUND_FAILED},
        {0x09, OUTBOUND_FAILED},      {0xF0, OUTBOUND_FAILED},       {0xFF, OUTBOUND_FAILED},
    };

    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        if (socks5_client_outbound_from_rep(cases[i].rep) != cases[i].status) {
            fail_msg("rep 0x%02x: %d, want %d", cases[i].rep,
                     (int)socks5_client_outbound_from_rep(cases[i].rep), (int)cases[i].status);
        }
        /* and the server side's mapping goes back to the same REP where one exists */
        if (cases[i].status != OUTBOUND_FAILED) {
            assert_int_equal(socks5_rep_from_outbound(cases[i].status), cases[i].rep);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_table),        cmocka_unit_test(test_reply_every_code),
        cmocka_unit_test(test_invalid_table),      cmocka_unit_test(test_reply_limits_and_garbage),
        cmocka_unit_test(test_builders),           cmocka_unit_test(test_auth_lengths),
        cmocka_unit_test(test_connect_round_trip), cmocka_unit_test(test_outbound_from_rep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
