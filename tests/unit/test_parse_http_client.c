/* HTTP CONNECT as a client (proxy/http_client_parse.h). Table-driven: each valid response head is
 * parsed whole, as every shorter prefix (NEED_MORE, nothing consumed) and with tunnel bytes behind
 * it (only the head consumed); each invalid one stays INVALID whatever follows it and no prefix
 * of it is DONE. The CONNECT builder is checked against exact text, against every buffer too small
 * (-ENOBUFS), and against the server side's own parser, which must read back the same target and
 * credentials. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>

#include "proxy/http_client_parse.h"
#include "test_support.h"

#define HEAD_MAX 16384
#define OUT_MAX 2048

struct outcome {
    enum parse_result res;
    size_t consumed;
    char desc[DESC_MAX];
};

static const char *body_name(enum http_body body)
{
    switch (body) {
    case HTTP_BODY_NONE:
        return "none";
    case HTTP_BODY_LENGTH:
        return "length";
    case HTTP_BODY_CHUNKED:
        return "chunked";
    case HTTP_BODY_UNTIL_CLOSE:
        return "close";
    }
    return "?";
}

static void desc_append_field(char *desc, const char *label, const char *value, size_t len)
{
    if (value == NULL) {
        assert_int_equal(len, 0);
        desc_append(desc, " %s=-", label);
    } else {
        desc_append(desc, " %s='%.*s'", label, (int)len, value);
    }
}

static struct outcome parse_any(bool answers_connect, const uint8_t *buf, size_t len,
                                size_t max_head)
{
    static struct http_client_response r;
    struct outcome o;

    memset(&o, 0, sizeof(o));
    o.consumed = 12345;
    o.res = http_client_parse_response(buf, len, max_head, answers_connect, &r, &o.consumed);
    if (o.res == PARSE_DONE) {
        assert_true(o.consumed > 0 && o.consumed <= len);
        assert_null(r.error);
        desc_append(o.desc, "%u '%.*s' body=%s", r.head.status, (int)r.head.reason_len,
                    r.head.reason, body_name(r.head.body));
        if (r.head.body == HTTP_BODY_LENGTH) {
            desc_append(o.desc, " %llu", (unsigned long long)r.head.content_length);
        }
        desc_append_field(o.desc, "status", r.proxy_status, r.proxy_status_len);
        desc_append_field(o.desc, "egress", r.egress, r.egress_len);
        desc_append_field(o.desc, "addresses", r.addresses, r.addresses_len);
    } else {
        assert_int_equal(o.consumed, 0);
        if (o.res == PARSE_INVALID) {
            assert_non_null(r.error);
            desc_append(o.desc, "%s", r.error);
        }
    }
    return o;
}

static struct outcome parse_exact(bool answers_connect, const char *text, size_t n)
{
    uint8_t *copy = NULL;

    if (n > 0) {
        copy = malloc(n);
        assert_non_null(copy);
        memcpy(copy, text, n);
    }
    struct outcome o = parse_any(answers_connect, copy, n, HEAD_MAX);
    free(copy);
    return o;
}

/* The first bytes of a TLS ClientHello, as a tunnel would carry right behind the head. */
static const char tunnel[] = "\x16\x03\x01\x02\x00\x01HTTP/1.1 200 OK\r\n\r\n";

static struct outcome parse_pipelined(bool answers_connect, const char *text, size_t len)
{
    static char buf[OUT_MAX + sizeof(tunnel)];

    assert_true(len <= OUT_MAX);
    memcpy(buf, text, len);
    memcpy(buf + len, tunnel, sizeof(tunnel) - 1);
    return parse_any(answers_connect, (const uint8_t *)buf, len + sizeof(tunnel) - 1, HEAD_MAX);
}

struct response_case {
    const char *name;
    bool answers_connect;
    const char *text;
    const char *desc; /* NULL: INVALID */
};

static const struct response_case response_cases[] = {
    {"connect ok", true, "HTTP/1.1 200 Connection established\r\n\r\n",
     "200 'Connection established' body=none status=- egress=- addresses=-"},
    {"connect ok, HTTP/1.0", true, "HTTP/1.0 200 OK\r\n\r\n",
     "200 'OK' body=none status=- egress=- addresses=-"},
    {"connect ok, empty reason", true, "HTTP/1.1 200 \r\n\r\n",
     "200 '' body=none status=- egress=- addresses=-"},
    {"connect ok: Content-Length ignored", true,
     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nVia: 1.1 squid\r\n\r\n",
     "200 'OK' body=none status=- egress=- addresses=-"},
    {"connect ok: Transfer-Encoding ignored", true,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
     "200 'OK' body=none status=- egress=- addresses=-"},
    {"connect 407 with a body", true,
     "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic "
     "realm=\"x\"\r\nContent-Length: 12\r\n\r\n",
     "407 'Proxy Authentication Required' body=length 12 status=- egress=- addresses=-"},
    {"connect 502 with Proxy-Status", true,
     "HTTP/1.1 502 Bad Gateway\r\nProxy-Status: geoproxy; error=dns_error; "
     "details=\"NXDOMAIN\"\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
     "502 'Bad Gateway' body=none status='geoproxy; error=dns_error; details=\"NXDOMAIN\"' "
     "egress=- addresses=-"},
    {"connect 403 until close", true, "HTTP/1.1 403 Forbidden\r\n\r\n",
     "403 'Forbidden' body=close status=- egress=- addresses=-"},
    {"names without regard to case", true,
     "HTTP/1.1 200 OK\r\nPROXY-STATUS: exit\r\ngeoproxy-egress: 127.0.5.1\r\nGeoProxy-Addresses: "
     "::1\r\n\r\n",
     "200 'OK' body=none status='exit' egress='127.0.5.1' addresses='::1'"},
    {"Proxy-Status repeated: the first", true,
     "HTTP/1.1 502 Bad Gateway\r\nProxy-Status: parent; error=connection_refused\r\nVia: 1.1 "
     "x\r\nProxy-Status: geoproxy\r\nContent-Length: 0\r\n\r\n",
     "502 'Bad Gateway' body=none status='parent; error=connection_refused' egress=- addresses=-"},
    {"value whitespace trimmed", true,
     "HTTP/1.1 200 OK\r\nGeoproxy-Egress: \t 127.0.5.1 \t\r\n\r\n",
     "200 'OK' body=none status=- egress='127.0.5.1' addresses=-"},
    {"empty value", true, "HTTP/1.1 200 OK\r\nGeoproxy-Egress:\r\n\r\n",
     "200 'OK' body=none status=- egress='' addresses=-"},
    {"egress probe answer", false,
     "HTTP/1.1 200 OK\r\nGeoproxy-Egress: 127.0.5.1\r\nContent-Type: "
     "application/json\r\nContent-Length: 22\r\n\r\n",
     "200 'OK' body=length 22 status=- egress='127.0.5.1' addresses=-"},
    {"resolve answer", false,
     "HTTP/1.1 200 OK\r\nGeoproxy-Addresses: 192.0.2.1, 2001:db8::1\r\nContent-Length: "
     "44\r\n\r\n",
     "200 'OK' body=length 44 status=- egress=- addresses='192.0.2.1, 2001:db8::1'"},
    {"get answer chunked", false, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
     "200 'OK' body=chunked status=- egress=- addresses=-"},
    {"interim 100", true, "HTTP/1.1 100 Continue\r\n\r\n",
     "100 'Continue' body=none status=- egress=- addresses=-"},

    {"folded field", true, "HTTP/1.1 200 OK\r\nProxy-Status: geoproxy;\r\n error=x\r\n\r\n", NULL},
    {"folded egress", true, "HTTP/1.1 200 OK\r\nGeoproxy-Egress:\r\n\t127.0.5.1\r\n\r\n", NULL},
    {"egress repeated", true,
     "HTTP/1.1 200 OK\r\nGeoproxy-Egress: 127.0.5.1\r\nGeoproxy-Egress: 127.0.6.1\r\n\r\n", NULL},
    {"egress repeated, other case", false,
     "HTTP/1.1 200 OK\r\nGeoproxy-Egress: 127.0.5.1\r\ngeoproxy-EGRESS: 127.0.5.1\r\n\r\n", NULL},
    {"addresses repeated", false,
     "HTTP/1.1 200 OK\r\nGeoproxy-Addresses: ::1\r\nGeoproxy-Addresses: ::2\r\n\r\n", NULL},
    {"space before colon", true, "HTTP/1.1 200 OK\r\nGeoproxy-Egress : 127.0.5.1\r\n\r\n", NULL},
    {"name not a token", true, "HTTP/1.1 200 OK\r\nGeoproxy(Egress): 1.2.3.4\r\n\r\n", NULL},
    {"HTTP/2", true, "HTTP/2.0 200 OK\r\n\r\n", NULL},
    {"status 99", true, "HTTP/1.1 099 Low\r\n\r\n", NULL},
    {"status 600", true, "HTTP/1.1 600 High\r\n\r\n", NULL},
    {"a request, not a response", true, "CONNECT example.com:443 HTTP/1.1\r\n\r\n", NULL},
    {"SSH banner", true, "SSH-2.0-OpenSSH_9.2\r\n", NULL},
    {"SOCKS5 reply", true, "\x05\x00\x00\x01", NULL},
    {"NUL in reason", true, "HTTP/1.1 200 O\x01K\r\n\r\n", NULL},
    {"Content-Length twice", false,
     "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", NULL},
};

static void test_response_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(response_cases); i++) {
        const struct response_case *rc = &response_cases[i];
        size_t len = strlen(rc->text);
        struct outcome o = parse_exact(rc->answers_connect, rc->text, len);
        if (rc->desc == NULL) {
            if (o.res != PARSE_INVALID ||
                parse_pipelined(rc->answers_connect, rc->text, len).res != PARSE_INVALID) {
                fail_msg("%s: res=%d '%s', want INVALID", rc->name, (int)o.res, o.desc);
            }
            for (size_t n = 0; n < len; n++) {
                if (parse_exact(rc->answers_connect, rc->text, n).res == PARSE_DONE) {
                    fail_msg("%s: prefix of %zu bytes is DONE", rc->name, n);
                }
            }
            continue;
        }
        if (o.res != PARSE_DONE || o.consumed != len || strcmp(o.desc, rc->desc) != 0) {
            fail_msg("%s: res=%d consumed=%zu/%zu\n  got  '%s'\n  want '%s'", rc->name, (int)o.res,
                     o.consumed, len, o.desc, rc->desc);
        }
        for (size_t n = 0; n < len; n++) {
            o = parse_exact(rc->answers_connect, rc->text, n);
            if (o.res != PARSE_NEED_MORE) {
                fail_msg("%s: prefix of %zu/%zu bytes gave %d '%s'", rc->name, n, len, (int)o.res,
                         o.desc);
            }
        }
        o = parse_pipelined(rc->answers_connect, rc->text, len);
        if (o.res != PARSE_DONE || o.consumed != len || strcmp(o.desc, rc->desc) != 0) {
            fail_msg("%s: with tunnel bytes: res=%d consumed=%zu/%zu '%s'", rc->name, (int)o.res,
                     o.consumed, len, o.desc);
        }
    }
}

/* A head that does not fit in max_head is INVALID as soon as max_head bytes are in; one that
 * fits exactly is DONE. */
static void test_response_head_limit(void **state)
{
    static char text[HEAD_MAX + 64];
    const char *start = "HTTP/1.1 200 OK\r\nX-Pad: ";
    size_t len;

    (void)state;
    snprintf(text, sizeof(text), "%s", start);
    len = strlen(text);
    memset(text + len, 'p', 1000);
    len += 1000;
    memcpy(text + len, "\r\n\r\n", 4);
    len += 4;

    struct outcome o = parse_any(true, (const uint8_t *)text, len, len);
    assert_int_equal(o.res, PARSE_DONE);
    assert_int_equal(o.consumed, len);
    o = parse_any(true, (const uint8_t *)text, len, len - 1);
    assert_int_equal(o.res, PARSE_INVALID);
    o = parse_any(true, (const uint8_t *)text, len - 1, len - 1);
    assert_int_equal(o.res, PARSE_INVALID);
    o = parse_any(true, (const uint8_t *)text, len - 2, len - 1);
    assert_int_equal(o.res, PARSE_NEED_MORE);

    /* an endless header line from a broken parent */
    memset(text, 'A', sizeof(text));
    memcpy(text, start, strlen(start));
    o = parse_any(true, (const uint8_t *)text, sizeof(text), HEAD_MAX);
    assert_int_equal(o.res, PARSE_INVALID);
    assert_non_null(strstr(o.desc, "limit"));
}

/* Garbage of many lengths is never DONE. */
static void test_response_garbage(void **state)
{
    char noise[600];

    (void)state;
    memset(noise, 0xFF, sizeof(noise));
    for (size_t n = 1; n <= sizeof(noise); n += 37) {
        assert_int_equal(parse_exact(true, noise, n).res, PARSE_INVALID);
    }
    assert_int_equal(parse_any(true, NULL, 0, HEAD_MAX).res, PARSE_NEED_MORE);
}

struct connect_case {
    const char *name;
    const char *host;
    uint16_t port;
    const char *user; /* NULL: no credentials */
    const char *password;
    const char *text; /* NULL: -EINVAL */
};

static const struct connect_case connect_cases[] = {
    {"name", "example.com", 443, NULL, NULL,
     "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"},
    {"ipv4", "192.0.2.1", 8443, NULL, NULL,
     "CONNECT 192.0.2.1:8443 HTTP/1.1\r\nHost: 192.0.2.1:8443\r\n\r\n"},
    {"ipv6 gets brackets", "2001:db8::1", 443, NULL, NULL,
     "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n"},
    {"ipv6 bracketed already", "[::1]", 1, NULL, NULL,
     "CONNECT [::1]:1 HTTP/1.1\r\nHost: [::1]:1\r\n\r\n"},
    {"ipv4-mapped ipv6", "::ffff:192.0.2.1", 65535, NULL, NULL,
     "CONNECT [::ffff:192.0.2.1]:65535 HTTP/1.1\r\nHost: [::ffff:192.0.2.1]:65535\r\n\r\n"},
    {"underscore and dash", "a_b-c.example", 80, NULL, NULL,
     "CONNECT a_b-c.example:80 HTTP/1.1\r\nHost: a_b-c.example:80\r\n\r\n"},
    {"credentials", "example.com", 443, "alice", "secret",
     "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic "
     "YWxpY2U6c2VjcmV0\r\n\r\n"},
    {"credentials, one padding", "h", 1, "ab", "c",
     "CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nProxy-Authorization: Basic YWI6Yw==\r\n\r\n"},
    {"credentials, two padding", "h", 1, "a", "bcd",
     "CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nProxy-Authorization: Basic YTpiY2Q=\r\n\r\n"},
    {"credentials, empty", "h", 1, "", "",
     "CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nProxy-Authorization: Basic Og==\r\n\r\n"},
    {"credentials, colon in password", "h", 1, "u", "p:w",
     "CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nProxy-Authorization: Basic dTpwOnc=\r\n\r\n"},

    {"port 0", "example.com", 0, NULL, NULL, NULL},
    {"empty host", "", 443, NULL, NULL, NULL},
    {"space", "example.com HTTP/1.0", 443, NULL, NULL, NULL},
    {"CR LF", "example.com\r\nX-Evil: 1", 443, NULL, NULL, NULL},
    {"LF", "a\nb", 443, NULL, NULL, NULL},
    {"TAB", "a\tb", 443, NULL, NULL, NULL},
    {"DEL", "a\x7f", 443, NULL, NULL, NULL},
    {"byte outside ASCII",
     "b\xc3\xbc"
     "cher.example",
     443, NULL, NULL, NULL},
    {"slash", "example.com/x", 443, NULL, NULL, NULL},
    {"user information", "user@example.com", 443, NULL, NULL, NULL},
    {"port in host", "example.com:80", 443, NULL, NULL, NULL},
    {"ipv6 with a zone", "fe80::1%eth0", 443, NULL, NULL, NULL},
    {"brackets around ipv4", "[192.0.2.1]", 443, NULL, NULL, NULL},
    {"brackets around a name", "[example.com]", 443, NULL, NULL, NULL},
    {"unclosed bracket", "[::1", 443, NULL, NULL, NULL},
    {"empty brackets", "[]", 443, NULL, NULL, NULL},
    {"colon in user", "h", 1, "a:b", "c", NULL},
};

static int build_connect(const struct connect_case *cc, char *out, size_t out_len)
{
    struct http_credentials creds;

    if (cc->user == NULL) {
        return http_client_build_connect(out, out_len, cc->host, cc->port, NULL, false);
    }
    memset(&creds, 0, sizeof(creds));
    creds.user_len = strlen(cc->user);
    memcpy(creds.user, cc->user, creds.user_len);
    creds.password_len = strlen(cc->password);
    memcpy(creds.password, cc->password, creds.password_len);
    return http_client_build_connect(out, out_len, cc->host, cc->port, &creds, false);
}

/* The server side reads the request back to the same target and credentials. */
static void check_round_trip(const struct connect_case *cc, const char *out, size_t n)
{
    static struct http_request req;
    struct http_credentials creds;
    size_t consumed;

    assert_int_equal(http_parse_request((const uint8_t *)out, n, HEAD_MAX, &req, &consumed),
                     PARSE_DONE);
    assert_int_equal(consumed, n);
    assert_int_equal(req.form, HTTP_FORM_AUTHORITY);
    assert_int_equal(req.target.port, cc->port);
    if (!target_is_literal(&req.target)) {
        assert_string_equal(req.target.host, cc->host);
    }
    if (cc->user == NULL) {
        assert_null(req.proxy_authorization);
        return;
    }
    assert_non_null(req.proxy_authorization);
    assert_int_equal(http_parse_basic_credentials(req.proxy_authorization->value,
                                                  req.proxy_authorization->value_len, &creds),
                     PARSE_DONE);
    assert_int_equal(creds.user_len, strlen(cc->user));
    assert_memory_equal(creds.user, cc->user, creds.user_len);
    assert_int_equal(creds.password_len, strlen(cc->password));
    assert_memory_equal(creds.password, cc->password, creds.password_len);
}

static void test_connect_table(void **state)
{
    static char out[OUT_MAX];

    (void)state;
    for (size_t i = 0; i < N_ELEMS(connect_cases); i++) {
        const struct connect_case *cc = &connect_cases[i];
        int n = build_connect(cc, out, sizeof(out));
        if (cc->text == NULL) {
            if (n != -EINVAL) {
                fail_msg("%s: returned %d, want -EINVAL", cc->name, n);
            }
            continue;
        }
        if (n < 0 || (size_t)n != strlen(cc->text) || memcmp(out, cc->text, (size_t)n) != 0) {
            fail_msg("%s: returned %d '%.*s'\n  want '%s'", cc->name, n, n > 0 ? n : 0, out,
                     cc->text);
        }
        check_round_trip(cc, out, (size_t)n);

        /* every buffer too small, down to none at all: -ENOBUFS */
        for (size_t cap = 0; cap <= (size_t)n; cap++) {
            memset(out, 'z', sizeof(out));
            assert_int_equal(build_connect(cc, cap > 0 ? out : NULL, cap), -ENOBUFS);
            assert_int_equal(out[cap], 'z');
        }
        assert_int_equal(build_connect(cc, out, (size_t)n + 1), n);
    }
}

/* The longest name and the longest credentials fit; a name of TARGET_HOST_MAX bytes does not. */
static void test_connect_limits(void **state)
{
    static char out[OUT_MAX];
    char host[TARGET_HOST_MAX + 1];
    struct http_credentials creds;

    (void)state;
    memset(host, 'h', sizeof(host));
    host[TARGET_HOST_MAX - 1] = '\0';
    char user[HTTP_CREDENTIAL_MAX + 1], password[HTTP_CREDENTIAL_MAX + 1];
    memset(user, 'u', HTTP_CREDENTIAL_MAX);
    user[HTTP_CREDENTIAL_MAX] = '\0';
    memset(password, '\xff', HTTP_CREDENTIAL_MAX);
    password[HTTP_CREDENTIAL_MAX] = '\0';
    struct connect_case cc = {"longest", host, 65535, user, password, ""};
    int n = build_connect(&cc, out, sizeof(out));
    assert_true(n > 0);
    check_round_trip(&cc, out, (size_t)n);

    host[TARGET_HOST_MAX - 1] = 'h';
    host[TARGET_HOST_MAX] = '\0';
    assert_int_equal(http_client_build_connect(out, sizeof(out), host, 1, NULL, false), -EINVAL);
    memset(&creds, 0, sizeof(creds));
    creds.user_len = HTTP_CREDENTIAL_MAX + 1;
    assert_int_equal(http_client_build_connect(out, sizeof(out), "h", 1, &creds, false), -EINVAL);
}

/* An optimistic CONNECT says so in one field, after the others, and the head still ends. */
static void test_connect_optimistic(void **state)
{
    (void)state;
    char out[256];
    int n = http_client_build_connect(out, sizeof(out), "example.com", 443, NULL, true);
    assert_true(n > 0);
    assert_string_equal(out, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
                             "Geoproxy-Optimistic: 1\r\n\r\n");
    assert_int_equal(n, (int)strlen(out));
    assert_int_equal(http_client_build_connect(out, 40, "example.com", 443, NULL, true), -ENOBUFS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_response_table),   cmocka_unit_test(test_response_head_limit),
        cmocka_unit_test(test_response_garbage), cmocka_unit_test(test_connect_table),
        cmocka_unit_test(test_connect_limits),   cmocka_unit_test(test_connect_optimistic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
