/* SOCKS4/4a/5 parsers and reply builders (proxy/socks_parse.h). Table-driven: each valid message
 * is parsed whole, as every shorter prefix (NEED_MORE, nothing consumed) and with pipelined bytes
 * behind it (only the message consumed); each invalid one must stay INVALID with the same reply
 * code whatever follows it, and none of its prefixes may parse as DONE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "proxy/socks_parse.h"
#include "test_support.h"

enum msg_kind {
    MSG_GREETING,
    MSG_AUTH,
    MSG_SOCKS5_REQUEST,
    MSG_SOCKS4_REQUEST,
};

#define BYTES(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

#define MSG_MAX 1024

/* What a parser said, with what it parsed written out as text so tables can state it. */
struct outcome {
    enum parse_result res;
    size_t consumed;
    uint8_t reply; /* INVALID reply code (SOCKS5 request, SOCKS4 request), else 0 */
    char desc[DESC_MAX];
};

/* Appends bytes, printable ASCII as is and anything else as \xNN. */
static void desc_append_bytes(char *desc, const char *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)bytes[i];
        if (ch >= 0x20 && ch < 0x7F && ch != '\\') {
            desc_append(desc, "%c", ch);
        } else {
            desc_append(desc, "\\x%02x", ch);
        }
    }
}

static void desc_append_target(char *desc, const struct target *t)
{
    char text[INET6_ADDRSTRLEN];

    if (t->host[0] != '\0') {
        assert_int_equal(t->addr.ss_family, AF_UNSPEC);
        desc_append(desc, "host=");
        desc_append_bytes(desc, t->host, strlen(t->host));
    } else if (t->addr.ss_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, &t->addr, sizeof(sin));
        assert_int_equal(sin.sin_port, 0);
        assert_non_null(inet_ntop(AF_INET, &sin.sin_addr, text, sizeof(text)));
        desc_append(desc, "ipv4=%s", text);
    } else if (t->addr.ss_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, &t->addr, sizeof(sin6));
        assert_int_equal(sin6.sin6_port, 0);
        assert_non_null(inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof(text)));
        desc_append(desc, "ipv6=%s", text);
    } else {
        desc_append(desc, "no-address");
    }
    desc_append(desc, " port=%u", (unsigned)t->port);
}

static void describe_greeting(char *desc, const struct socks5_greeting *g)
{
    const char *sep = "";

    desc_append(desc, "n=%u methods=", (unsigned)g->n_methods);
    for (unsigned m = 0; m < 256; m++) {
        if (socks5_greeting_has_method(g, (uint8_t)m)) {
            desc_append(desc, "%s%u", sep, m);
            sep = ",";
        }
    }
}

static void describe_auth(char *desc, const struct socks5_auth *a)
{
    assert_int_equal(a->user[a->user_len], '\0');
    assert_int_equal(a->password[a->password_len], '\0');
    desc_append(desc, "user=");
    desc_append_bytes(desc, a->user, a->user_len);
    desc_append(desc, " pass=");
    desc_append_bytes(desc, a->password, a->password_len);
}

static void describe_socks5_request(char *desc, const struct socks5_request *r)
{
    desc_append(desc, "cmd=%u atyp=%u ", (unsigned)r->cmd, (unsigned)r->atyp);
    desc_append_target(desc, &r->target);
}

static void describe_socks4_request(char *desc, const struct socks4_request *r)
{
    assert_int_equal(r->userid[r->userid_len], '\0');
    desc_append(desc, "cmd=%u%s ", (unsigned)r->cmd, r->is_4a ? " 4a" : "");
    desc_append_target(desc, &r->target);
    desc_append(desc, " userid=");
    desc_append_bytes(desc, r->userid, r->userid_len);
}

/* Runs the parser for 'kind' and checks the promises every parser makes about 'consumed'. */
static struct outcome parse_any(enum msg_kind kind, const uint8_t *buf, size_t len)
{
    struct outcome o;
    struct socks5_greeting greeting;
    struct socks5_auth auth;
    struct socks5_request req5;
    struct socks4_request req4;

    memset(&o, 0, sizeof(o));
    o.consumed = 12345; /* must be overwritten */
    switch (kind) {
    case MSG_GREETING:
        o.res = socks5_parse_greeting(buf, len, &greeting, &o.consumed);
        if (o.res == PARSE_DONE) {
            describe_greeting(o.desc, &greeting);
        }
        break;
    case MSG_AUTH:
        o.res = socks5_parse_auth(buf, len, &auth, &o.consumed);
        if (o.res == PARSE_DONE) {
            describe_auth(o.desc, &auth);
        }
        break;
    case MSG_SOCKS5_REQUEST:
        o.res = socks5_parse_request(buf, len, &req5, &o.consumed);
        o.reply = req5.reply;
        if (o.res == PARSE_DONE) {
            assert_int_equal(req5.reply, 0);
            describe_socks5_request(o.desc, &req5);
        }
        break;
    case MSG_SOCKS4_REQUEST:
        o.res = socks4_parse_request(buf, len, &req4, &o.consumed);
        o.reply = req4.reply;
        if (o.res == PARSE_DONE) {
            assert_int_equal(req4.reply, 0);
            describe_socks4_request(o.desc, &req4);
        }
        break;
    }
    if (o.res == PARSE_DONE) {
        assert_true(o.consumed > 0 && o.consumed <= len);
    } else {
        assert_int_equal(o.consumed, 0);
    }
    if (o.res == PARSE_NEED_MORE) {
        assert_int_equal(o.reply, 0);
    }
    return o;
}

/* A heap copy of exactly n bytes (NULL for 0), so that a read past the end shows under ASan
 * (cmocka's test_malloc pads its blocks, which would hide it). */
static uint8_t *dup_exact(const uint8_t *bytes, size_t n)
{
    uint8_t *copy;

    if (n == 0) {
        return NULL;
    }
    copy = malloc(n);
    assert_non_null(copy);
    memcpy(copy, bytes, n);
    return copy;
}

/* Bytes a client might pipeline behind a message. */
static const uint8_t trailer[] = {0x05, 0x01, 0x00, 0x03, 0x00, 'G', 'E', 'T', ' ', 0xFF};

/* Parses a heap copy of exactly the first n bytes, so that a read past the end shows under ASan. */
static struct outcome parse_exact(enum msg_kind kind, const uint8_t *bytes, size_t n)
{
    uint8_t *copy = dup_exact(bytes, n);
    struct outcome o = parse_any(kind, copy, n);

    free(copy);
    return o;
}

/* Parses the len bytes with the trailer pipelined behind them. */
static struct outcome parse_pipelined(enum msg_kind kind, const uint8_t *bytes, size_t len)
{
    static uint8_t with_trailer[MSG_MAX + sizeof(trailer)];

    assert_true(len <= MSG_MAX);
    memcpy(with_trailer, bytes, len);
    memcpy(with_trailer + len, trailer, sizeof(trailer));
    return parse_any(kind, with_trailer, len + sizeof(trailer));
}

/* A valid message: DONE consuming all of it, NEED_MORE for every shorter prefix, and the same
 * parse with pipelined bytes after it, which are not consumed. Each input is a heap block of
 * exactly its length. */
static void check_valid(const char *name, enum msg_kind kind, const uint8_t *bytes, size_t len,
                        const char *expect_desc)
{
    struct outcome o;

    assert_true(len <= MSG_MAX);
    o = parse_exact(kind, bytes, len);
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

/* An invalid message: INVALID with 'reply' as it is and with more bytes after it; no prefix
 * parses as DONE, and a prefix that is already INVALID reports the same reply. */
static void check_invalid(const char *name, enum msg_kind kind, const uint8_t *bytes, size_t len,
                          uint8_t reply)
{
    struct outcome o;

    assert_true(len <= MSG_MAX);
    o = parse_exact(kind, bytes, len);
    if (o.res != PARSE_INVALID || o.reply != reply) {
        fail_msg("%s: res=%d reply=0x%02x, want INVALID 0x%02x", name, (int)o.res, o.reply, reply);
    }
    o = parse_pipelined(kind, bytes, len);
    if (o.res != PARSE_INVALID || o.reply != reply) {
        fail_msg("%s: with more bytes: res=%d reply=0x%02x, want INVALID 0x%02x", name, (int)o.res,
                 o.reply, reply);
    }
    for (size_t n = 0; n < len; n++) {
        o = parse_exact(kind, bytes, n);
        if (o.res == PARSE_DONE || (o.res == PARSE_INVALID && o.reply != reply)) {
            fail_msg("%s: prefix of %zu bytes gave res=%d reply=0x%02x", name, n, (int)o.res,
                     o.reply);
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
    /* SOCKS5 greetings */
    {"greeting no-auth", MSG_GREETING, BYTES(0x05, 0x01, 0x00), "n=1 methods=0"},
    {"greeting userpass", MSG_GREETING, BYTES(0x05, 0x01, 0x02), "n=1 methods=2"},
    {"greeting three", MSG_GREETING, BYTES(0x05, 0x03, 0x00, 0x01, 0x02), "n=3 methods=0,1,2"},
    {"greeting duplicate and private methods", MSG_GREETING,
     BYTES(0x05, 0x04, 0x80, 0x02, 0x02, 0xFE), "n=4 methods=2,128,254"},
    {"greeting 0xFF offered", MSG_GREETING, BYTES(0x05, 0x01, 0xFF), "n=1 methods=255"},

    /* RFC 1929 */
    {"auth alice", MSG_AUTH,
     BYTES(0x01, 0x05, 'a', 'l', 'i', 'c', 'e', 0x06, 's', 'e', 'c', 'r', 'e', 't'),
     "user=alice pass=secret"},
    {"auth one byte each", MSG_AUTH, BYTES(0x01, 0x01, 'u', 0x01, 'p'), "user=u pass=p"},
    {"auth NUL bytes kept with lengths", MSG_AUTH, BYTES(0x01, 0x02, 'a', 0x00, 0x02, 0x00, 'b'),
     "user=a\\x00 pass=\\x00b"},

    /* SOCKS5 requests */
    {"connect ipv4", MSG_SOCKS5_REQUEST,
     BYTES(0x05, 0x01, 0x00, 0x01, 0xC0, 0x00, 0x02, 0x01, 0x01, 0xBB),
     "cmd=1 atyp=1 ipv4=192.0.2.1 port=443"},
    {"connect ipv4 port 0 and 65535", MSG_SOCKS5_REQUEST,
     BYTES(0x05, 0x01, 0x00, 0x01, 0x7F, 0x00, 0x00, 0x01, 0xFF, 0xFF),
     "cmd=1 atyp=1 ipv4=127.0.0.1 port=65535"},
    {"connect ipv6", MSG_SOCKS5_REQUEST,
     BYTES(0x05, 0x01, 0x00, 0x04, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
           0x00, 0x50),
     "cmd=1 atyp=4 ipv6=2001:db8::1 port=80"},
    {"connect domain", MSG_SOCKS5_REQUEST,
     BYTES(0x05, 0x01, 0x00, 0x03, 0x0B, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm',
           0x00, 0x50),
     "cmd=1 atyp=3 host=example.com port=80"},
    {"connect one-letter domain", MSG_SOCKS5_REQUEST,
     BYTES(0x05, 0x01, 0x00, 0x03, 0x01, 'x', 0x1F, 0x90), "cmd=1 atyp=3 host=x port=8080"},
    {"bind parses", MSG_SOCKS5_REQUEST,
     BYTES(0x05, 0x02, 0x00, 0x01, 0x0A, 0x00, 0x00, 0x01, 0x00, 0x15),
     "cmd=2 atyp=1 ipv4=10.0.0.1 port=21"},
    {"udp associate parses", MSG_SOCKS5_REQUEST,
     BYTES(0x05, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00),
     "cmd=3 atyp=1 ipv4=0.0.0.0 port=0"},

    /* SOCKS4 and 4a */
    {"socks4 connect no userid", MSG_SOCKS4_REQUEST,
     BYTES(0x04, 0x01, 0x00, 0x50, 0xC6, 0x33, 0x64, 0x07, 0x00),
     "cmd=1 ipv4=198.51.100.7 port=80 userid="},
    {"socks4 connect userid", MSG_SOCKS4_REQUEST,
     BYTES(0x04, 0x01, 0x01, 0xBB, 0x0A, 0x01, 0x02, 0x03, 'b', 'o', 'b', 0x00),
     "cmd=1 ipv4=10.1.2.3 port=443 userid=bob"},
    {"socks4 bind parses", MSG_SOCKS4_REQUEST,
     BYTES(0x04, 0x02, 0x00, 0x15, 0x0A, 0x01, 0x02, 0x03, 0x00),
     "cmd=2 ipv4=10.1.2.3 port=21 userid="},
    {"socks4 0.0.0.0 is a literal, not 4a", MSG_SOCKS4_REQUEST,
     BYTES(0x04, 0x01, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00),
     "cmd=1 ipv4=0.0.0.0 port=80 userid="},
    {"socks4 0.0.1.1 is a literal, not 4a", MSG_SOCKS4_REQUEST,
     BYTES(0x04, 0x01, 0x00, 0x50, 0x00, 0x00, 0x01, 0x01, 0x00),
     "cmd=1 ipv4=0.0.1.1 port=80 userid="},
    {"socks4a host", MSG_SOCKS4_REQUEST,
     BYTES(0x04, 0x01, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 'e', 'x', 'a', 'm', 'p', 'l', 'e',
           '.', 'o', 'r', 'g', 0x00),
     "cmd=1 4a host=example.org port=80 userid="},
    {"socks4a host and userid, DSTIP 0.0.0.255", MSG_SOCKS4_REQUEST,
     BYTES(0x04, 0x01, 0x1F, 0x90, 0x00, 0x00, 0x00, 0xFF, 'u', 's', 'r', 0x00, 'h', 0x00),
     "cmd=1 4a host=h port=8080 userid=usr"},
};

static void test_valid_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(valid_cases); i++) {
        const struct valid_case *vc = &valid_cases[i];
        check_valid(vc->name, vc->kind, vc->bytes, vc->len, vc->desc);
    }
}

struct invalid_case {
    const char *name;
    enum msg_kind kind;
    const uint8_t *bytes;
    size_t len;
    uint8_t reply;
};

static const struct invalid_case invalid_cases[] = {
    /* SOCKS5 greetings: always closed without a reply */
    {"greeting version 4", MSG_GREETING, BYTES(0x04, 0x01, 0x00), 0},
    {"greeting version 0", MSG_GREETING, BYTES(0x00, 0x01, 0x00), 0},
    {"greeting is HTTP", MSG_GREETING, BYTES('G', 'E', 'T', ' ', '/'), 0},
    {"greeting zero methods", MSG_GREETING, BYTES(0x05, 0x00), 0},

    /* RFC 1929 */
    {"auth version 5", MSG_AUTH, BYTES(0x05, 0x01, 'u', 0x01, 'p'), 0},
    {"auth version 0", MSG_AUTH, BYTES(0x00, 0x01, 'u', 0x01, 'p'), 0},
    {"auth empty user", MSG_AUTH, BYTES(0x01, 0x00, 0x01, 'p'), 0},
    {"auth empty password", MSG_AUTH, BYTES(0x01, 0x01, 'u', 0x00), 0},

    /* SOCKS5 requests */
    {"request version 4", MSG_SOCKS5_REQUEST, BYTES(0x04, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0, 80), 0},
    {"request version 0", MSG_SOCKS5_REQUEST, BYTES(0x00), 0},
    {"request cmd 0", MSG_SOCKS5_REQUEST, BYTES(0x05, 0x00, 0x00, 0x01, 1, 2, 3, 4, 0, 80), 0x07},
    {"request cmd 4", MSG_SOCKS5_REQUEST, BYTES(0x05, 0x04, 0x00, 0x01, 1, 2, 3, 4, 0, 80), 0x07},
    {"request cmd 0xFF", MSG_SOCKS5_REQUEST, BYTES(0x05, 0xFF), 0x07},
    {"request reserved 1", MSG_SOCKS5_REQUEST, BYTES(0x05, 0x01, 0x01, 0x01, 1, 2, 3, 4, 0, 80),
     0x01},
    {"request reserved 0x80", MSG_SOCKS5_REQUEST, BYTES(0x05, 0x01, 0x80), 0x01},
    {"request atyp 0", MSG_SOCKS5_REQUEST, BYTES(0x05, 0x01, 0x00, 0x00, 1, 2, 3, 4, 0, 80), 0x08},
    {"request atyp 2", MSG_SOCKS5_REQUEST, BYTES(0x05, 0x01, 0x00, 0x02, 1, 2, 3, 4, 0, 80), 0x08},
    {"request atyp 5", MSG_SOCKS5_REQUEST, BYTES(0x05, 0x01, 0x00, 0x05), 0x08},
    {"request atyp 0xFF", MSG_SOCKS5_REQUEST, BYTES(0x05, 0x01, 0x00, 0xFF), 0x08},
    {"request bad cmd before bad atyp", MSG_SOCKS5_REQUEST, BYTES(0x05, 0x09, 0x00, 0x09), 0x07},
    {"request bad rsv before bad atyp", MSG_SOCKS5_REQUEST, BYTES(0x05, 0x01, 0x02, 0x09), 0x01},
    {"request empty domain", MSG_SOCKS5_REQUEST, BYTES(0x05, 0x01, 0x00, 0x03, 0x00, 0x00, 0x50),
     0x01},
    {"request NUL inside domain", MSG_SOCKS5_REQUEST,
     BYTES(0x05, 0x01, 0x00, 0x03, 0x05, 'a', 'b', 0x00, 'c', 'd', 0x00, 0x50), 0x01},
    {"request NUL first in domain", MSG_SOCKS5_REQUEST,
     BYTES(0x05, 0x01, 0x00, 0x03, 0x03, 0x00, 'a', 'b', 0x00, 0x50), 0x01},
    {"request NUL last in domain", MSG_SOCKS5_REQUEST,
     BYTES(0x05, 0x01, 0x00, 0x03, 0x03, 'a', 'b', 0x00, 0x00, 0x50), 0x01},

    /* SOCKS4 and 4a */
    {"socks4 version 5", MSG_SOCKS4_REQUEST, BYTES(0x05, 0x01, 0x00, 0x50, 1, 2, 3, 4, 0x00), 0},
    {"socks4 version 0", MSG_SOCKS4_REQUEST, BYTES(0x00), 0},
    {"socks4 cd 0", MSG_SOCKS4_REQUEST, BYTES(0x04, 0x00, 0x00, 0x50, 1, 2, 3, 4, 0x00), 0x5B},
    {"socks4 cd 3", MSG_SOCKS4_REQUEST, BYTES(0x04, 0x03, 0x00, 0x50, 1, 2, 3, 4, 0x00), 0x5B},
    {"socks4 cd 0x5A", MSG_SOCKS4_REQUEST, BYTES(0x04, 0x5A), 0x5B},
    {"socks4a empty host", MSG_SOCKS4_REQUEST,
     BYTES(0x04, 0x01, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 'u', 0x00, 0x00), 0x5B},
};

static void test_invalid_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(invalid_cases); i++) {
        const struct invalid_case *ic = &invalid_cases[i];
        check_invalid(ic->name, ic->kind, ic->bytes, ic->len, ic->reply);
    }
}

/* Fills buf[0..n) with printable letters. */
static void fill_letters(uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        buf[i] = (uint8_t)('a' + i % 26);
    }
}

static void test_greeting_all_methods(void **state)
{
    uint8_t msg[2 + 255];
    struct socks5_greeting g;
    size_t consumed;

    (void)state;
    msg[0] = 0x05;
    msg[1] = 255;
    for (unsigned i = 0; i < 255; i++) {
        msg[2 + i] = (uint8_t)i;
    }
    assert_int_equal(socks5_parse_greeting(msg, sizeof(msg), &g, &consumed), PARSE_DONE);
    assert_int_equal(consumed, sizeof(msg));
    assert_int_equal(g.n_methods, 255);
    for (unsigned m = 0; m < 255; m++) {
        assert_true(socks5_greeting_has_method(&g, (uint8_t)m));
    }
    assert_false(socks5_greeting_has_method(&g, 0xFF));

    /* the prefix and pipelining checks over the long form */
    char desc[DESC_MAX] = "n=255 methods=";
    for (unsigned m = 0; m < 255; m++) {
        desc_append(desc, "%s%u", m == 0 ? "" : ",", m);
    }
    check_valid("greeting 255 methods", MSG_GREETING, msg, sizeof(msg), desc);
}

static void test_auth_longest(void **state)
{
    uint8_t msg[1 + 1 + 255 + 1 + 255];
    struct socks5_auth a;
    size_t consumed;

    (void)state;
    msg[0] = 0x01;
    msg[1] = 255;
    fill_letters(msg + 2, 255);
    msg[2 + 255] = 255;
    memset(msg + 3 + 255, 'P', 255);
    assert_int_equal(socks5_parse_auth(msg, sizeof(msg), &a, &consumed), PARSE_DONE);
    assert_int_equal(consumed, sizeof(msg));
    assert_int_equal(a.user_len, 255);
    assert_int_equal(a.password_len, 255);
    assert_memory_equal(a.user, msg + 2, 255);
    assert_int_equal(a.user[255], '\0');
    assert_int_equal(a.password[0], 'P');
    assert_int_equal(a.password[254], 'P');
    assert_int_equal(a.password[255], '\0');

    char desc[DESC_MAX] = "user=";
    desc_append_bytes(desc, (const char *)msg + 2, 255);
    desc_append(desc, " pass=");
    desc_append_bytes(desc, (const char *)msg + 3 + 255, 255);
    check_valid("auth 255/255", MSG_AUTH, msg, sizeof(msg), desc);
}

/* A NEED_MORE or INVALID auth parse leaves no part of the password in 'out'. */
static void test_auth_partial_leaves_nothing(void **state)
{
    const uint8_t msg[] = {0x01, 0x01, 'u', 0x06, 's', 'e', 'c', 'r', 'e'};
    struct socks5_auth a;
    size_t consumed;
    static const struct socks5_auth zero;

    (void)state;
    assert_int_equal(socks5_parse_auth(msg, sizeof(msg), &a, &consumed), PARSE_NEED_MORE);
    assert_memory_equal(&a, &zero, sizeof(a));
}

static void test_request_longest_domain(void **state)
{
    uint8_t msg[4 + 1 + 255 + 2];
    struct socks5_request r;
    size_t consumed;

    (void)state;
    msg[0] = 0x05;
    msg[1] = 0x01;
    msg[2] = 0x00;
    msg[3] = 0x03;
    msg[4] = 255;
    fill_letters(msg + 5, 255);
    msg[5 + 255] = 0x01;
    msg[6 + 255] = 0xBB;
    assert_int_equal(socks5_parse_request(msg, sizeof(msg), &r, &consumed), PARSE_DONE);
    assert_int_equal(consumed, sizeof(msg));
    assert_int_equal(strlen(r.target.host), 255);
    assert_memory_equal(r.target.host, msg + 5, 255);
    assert_int_equal(r.target.port, 443);
    assert_int_equal(r.cmd, SOCKS5_CMD_CONNECT);
    assert_true(target_is_literal(&r.target) == false);

    char desc[DESC_MAX] = "cmd=1 atyp=3 host=";
    desc_append_bytes(desc, (const char *)msg + 5, 255);
    desc_append(desc, " port=443");
    check_valid("domain 255", MSG_SOCKS5_REQUEST, msg, sizeof(msg), desc);
}

/* A literal target has an empty host and the address without a port. */
static void test_request_literal_fields(void **state)
{
    const uint8_t msg[] = {0x05, 0x01, 0x00, 0x04, 0, 0, 0, 0, 0, 0,    0,
                           0,    0,    0,    0,    0, 0, 0, 0, 1, 0x00, 0x16};
    struct socks5_request r;
    struct sockaddr_in6 sin6;
    size_t consumed;

    (void)state;
    assert_int_equal(socks5_parse_request(msg, sizeof(msg), &r, &consumed), PARSE_DONE);
    assert_true(target_is_literal(&r.target));
    assert_int_equal(r.atyp, SOCKS5_ATYP_IPV6);
    assert_int_equal(r.target.addr.ss_family, AF_INET6);
    memcpy(&sin6, &r.target.addr, sizeof(sin6));
    assert_true(IN6_IS_ADDR_LOOPBACK(&sin6.sin6_addr));
    assert_int_equal(sin6.sin6_port, 0);
    assert_int_equal(r.target.port, 22);
}

/* SOCKS4: a USERID of 255 bytes is the longest; the 256th byte without a NUL is INVALID; 255
 * bytes without a NUL yet is NEED_MORE. Same for the 4a host name. */
static void test_socks4_field_limits(void **state)
{
    uint8_t msg[8 + 257 + 257];
    struct outcome o;
    char desc[DESC_MAX];

    (void)state;
    const uint8_t head[] = {0x04, 0x01, 0x00, 0x50, 0x0A, 0x00, 0x00, 0x01};
    memcpy(msg, head, sizeof(head));
    fill_letters(msg + 8, 256);

    msg[8 + 255] = 0x00; /* 255-byte userid */
    snprintf(desc, sizeof(desc), "cmd=1 ipv4=10.0.0.1 port=80 userid=");
    desc_append_bytes(desc, (const char *)msg + 8, 255);
    check_valid("socks4 userid 255", MSG_SOCKS4_REQUEST, msg, 8 + 256, desc);

    msg[8 + 255] = 'x'; /* 256 bytes, no NUL */
    o = parse_any(MSG_SOCKS4_REQUEST, msg, 8 + 255);
    assert_int_equal(o.res, PARSE_NEED_MORE);
    check_invalid("socks4 userid 256", MSG_SOCKS4_REQUEST, msg, 8 + 256, SOCKS4_CD_REJECTED);

    /* 4a */
    const uint8_t head4a[] = {0x04, 0x01, 0x00, 0x50, 0x00, 0x00, 0x00, 0x07, 'u', 0x00};
    memcpy(msg, head4a, sizeof(head4a));
    fill_letters(msg + 10, 256);
    msg[10 + 255] = 0x00; /* 255-byte host */
    snprintf(desc, sizeof(desc), "cmd=1 4a host=");
    desc_append_bytes(desc, (const char *)msg + 10, 255);
    desc_append(desc, " port=80 userid=u");
    check_valid("socks4a host 255", MSG_SOCKS4_REQUEST, msg, 10 + 256, desc);

    msg[10 + 255] = 'x';
    o = parse_any(MSG_SOCKS4_REQUEST, msg, 10 + 255);
    assert_int_equal(o.res, PARSE_NEED_MORE);
    check_invalid("socks4a host 256", MSG_SOCKS4_REQUEST, msg, 10 + 256, SOCKS4_CD_REJECTED);

    /* longest userid and longest host together */
    memcpy(msg, head4a, 8);
    fill_letters(msg + 8, 255);
    msg[8 + 255] = 0x00;
    fill_letters(msg + 8 + 256, 255);
    msg[8 + 256 + 255] = 0x00;
    o = parse_any(MSG_SOCKS4_REQUEST, msg, 8 + 256 + 256);
    assert_int_equal(o.res, PARSE_DONE);
    assert_int_equal(o.consumed, 8 + 256 + 256);
}

/* Oversized or garbage input of any length: never DONE, never reads past len (ASan). */
static void test_garbage(void **state)
{
    static const enum msg_kind kinds[] = {MSG_GREETING, MSG_AUTH, MSG_SOCKS5_REQUEST,
                                          MSG_SOCKS4_REQUEST};
    uint8_t noise[600];

    (void)state;
    memset(noise, 0xFF, sizeof(noise));
    for (size_t k = 0; k < N_ELEMS(kinds); k++) {
        for (size_t n = 1; n <= sizeof(noise); n += 37) {
            enum parse_result res = parse_exact(kinds[k], noise, n).res;
            assert_int_equal(res, PARSE_INVALID);
        }
        /* no bytes at all, even with a NULL buffer */
        assert_int_equal(parse_any(kinds[k], NULL, 0).res, PARSE_NEED_MORE);
    }
}

struct reply_case {
    const char *name;
    enum { BUILD_SOCKS5, BUILD_SOCKS4, BUILD_METHOD, BUILD_AUTH } builder;
    uint8_t code;
    int family; /* AF_INET, AF_INET6, AF_UNSPEC (zeroed storage), -1 for NULL */
    const char *addr;
    uint16_t port;
    const uint8_t *bytes;
    size_t len;
};

static const struct reply_case reply_cases[] = {
    {"socks5 ok ipv4", BUILD_SOCKS5, 0x00, AF_INET, "192.0.2.10", 0xC001,
     BYTES(0x05, 0x00, 0x00, 0x01, 192, 0, 2, 10, 0xC0, 0x01)},
    {"socks5 ok ipv6", BUILD_SOCKS5, 0x00, AF_INET6, "2001:db8::2", 443,
     BYTES(0x05, 0x00, 0x00, 0x04, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
           0x01, 0xBB)},
    {"socks5 refused, no address", BUILD_SOCKS5, 0x05, -1, NULL, 0,
     BYTES(0x05, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0)},
    {"socks5 unspec address", BUILD_SOCKS5, 0x02, AF_UNSPEC, NULL, 0,
     BYTES(0x05, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0)},
    {"socks5 atyp not supported", BUILD_SOCKS5, 0x08, -1, NULL, 0,
     BYTES(0x05, 0x08, 0x00, 0x01, 0, 0, 0, 0, 0, 0)},
    {"socks4 granted ipv4", BUILD_SOCKS4, 0x5A, AF_INET, "10.9.8.7", 0x1234,
     BYTES(0x00, 0x5A, 0x12, 0x34, 10, 9, 8, 7)},
    {"socks4 granted over ipv6: zeros", BUILD_SOCKS4, 0x5A, AF_INET6, "::1", 80,
     BYTES(0x00, 0x5A, 0, 0, 0, 0, 0, 0)},
    {"socks4 rejected", BUILD_SOCKS4, 0x5B, -1, NULL, 0, BYTES(0x00, 0x5B, 0, 0, 0, 0, 0, 0)},
    {"socks4 identd", BUILD_SOCKS4, 0x5C, AF_UNSPEC, NULL, 0, BYTES(0x00, 0x5C, 0, 0, 0, 0, 0, 0)},
    {"method no-auth", BUILD_METHOD, 0x00, -1, NULL, 0, BYTES(0x05, 0x00)},
    {"method userpass", BUILD_METHOD, 0x02, -1, NULL, 0, BYTES(0x05, 0x02)},
    {"method none acceptable", BUILD_METHOD, 0xFF, -1, NULL, 0, BYTES(0x05, 0xFF)},
    {"auth ok", BUILD_AUTH, 0x00, -1, NULL, 0, BYTES(0x01, 0x00)},
    {"auth failure", BUILD_AUTH, 0x01, -1, NULL, 0, BYTES(0x01, 0x01)},
};

static size_t run_builder(const struct reply_case *rc, uint8_t *out, size_t out_len)
{
    struct sockaddr_storage ss;
    const struct sockaddr *bound = NULL;

    memset(&ss, 0, sizeof(ss));
    if (rc->family == AF_INET) {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(rc->port)};
        assert_int_equal(inet_pton(AF_INET, rc->addr, &sin.sin_addr), 1);
        memcpy(&ss, &sin, sizeof(sin));
    } else if (rc->family == AF_INET6) {
        struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(rc->port)};
        assert_int_equal(inet_pton(AF_INET6, rc->addr, &sin6.sin6_addr), 1);
        memcpy(&ss, &sin6, sizeof(sin6));
    }
    if (rc->family != -1) {
        bound = (const struct sockaddr *)&ss;
    }
    switch (rc->builder) {
    case BUILD_SOCKS5:
        return socks5_build_reply(out, out_len, rc->code, bound);
    case BUILD_SOCKS4:
        return socks4_build_reply(out, out_len, rc->code, bound);
    case BUILD_METHOD:
        return socks5_build_method_reply(out, out_len, rc->code);
    case BUILD_AUTH:
        return socks5_build_auth_reply(out, out_len, rc->code);
    }
    return 0;
}

static void test_reply_builders(void **state)
{
    uint8_t out[64];

    (void)state;
    for (size_t i = 0; i < N_ELEMS(reply_cases); i++) {
        const struct reply_case *rc = &reply_cases[i];
        memset(out, 0xEE, sizeof(out));
        size_t n = run_builder(rc, out, sizeof(out));
        if (n != rc->len || memcmp(out, rc->bytes, rc->len) != 0) {
            fail_msg("%s: wrong bytes (length %zu, want %zu)", rc->name, n, rc->len);
        }
        assert_int_equal(out[n], 0xEE);
        assert_true(n <= SOCKS5_REPLY_MAX);

        /* exactly big enough works; one byte short writes nothing */
        memset(out, 0xEE, sizeof(out));
        assert_int_equal(run_builder(rc, out, rc->len), rc->len);
        memset(out, 0xEE, sizeof(out));
        assert_int_equal(run_builder(rc, out, rc->len - 1), 0);
        for (size_t j = 0; j < sizeof(out); j++) {
            assert_int_equal(out[j], 0xEE);
        }
    }
}

struct status_case {
    enum outbound_status status;
    uint8_t rep;
    uint8_t cd;
};

static const struct status_case status_cases[] = {
    {OUTBOUND_OK, 0x00, 0x5A},           {OUTBOUND_NOT_ALLOWED, 0x02, 0x5B},
    {OUTBOUND_FAILED, 0x01, 0x5B},       {OUTBOUND_NET_UNREACH, 0x03, 0x5B},
    {OUTBOUND_HOST_UNREACH, 0x04, 0x5B}, {OUTBOUND_DNS_NOT_FOUND, 0x04, 0x5B},
    {OUTBOUND_DNS_FAILED, 0x04, 0x5B},   {OUTBOUND_DNS_TIMEOUT, 0x04, 0x5B},
    {OUTBOUND_REFUSED, 0x05, 0x5B},      {OUTBOUND_TIMEOUT, 0x06, 0x5B},
};

static void test_outbound_status_codes(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(status_cases); i++) {
        const struct status_case *sc = &status_cases[i];
        if (socks5_rep_from_outbound(sc->status) != sc->rep ||
            socks4_cd_from_outbound(sc->status) != sc->cd) {
            fail_msg("status %d: rep 0x%02x cd 0x%02x, want 0x%02x 0x%02x", (int)sc->status,
                     socks5_rep_from_outbound(sc->status), socks4_cd_from_outbound(sc->status),
                     sc->rep, sc->cd);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_table),
        cmocka_unit_test(test_invalid_table),
        cmocka_unit_test(test_greeting_all_methods),
        cmocka_unit_test(test_auth_longest),
        cmocka_unit_test(test_auth_partial_leaves_nothing),
        cmocka_unit_test(test_request_longest_domain),
        cmocka_unit_test(test_request_literal_fields),
        cmocka_unit_test(test_socks4_field_limits),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_reply_builders),
        cmocka_unit_test(test_outbound_status_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
