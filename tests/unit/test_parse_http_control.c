/* The exit's control requests, both sides (proxy/http_control_parse.h). Table-driven: DNS names,
 * request targets, Geoproxy-Egress and Geoproxy-Addresses values. Builders are checked against
 * exact text and every buffer too small (-ENOBUFS), and end to end: a request the entry builds is
 * parsed by the server side's request parser and recognised by http_control_classify; a reply the
 * exit builds is parsed by http_client_parse_response and its fields read back to the addresses
 * it was built from. */
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
#include <sys/un.h>

#include "proxy/http_client_parse.h"
#include "proxy/http_control_parse.h"
#include "test_support.h"

#define HEAD_MAX 16384
#define OUT_MAX 4096

/* A name of n bytes: labels of 'label' letters separated by dots (the last may be shorter). */
static void make_name(char *out, size_t n, size_t label)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = (i + 1) % (label + 1) == 0 ? '.' : 'a';
    }
    out[n] = '\0';
}

struct name_case {
    const char *name;
    bool valid;
};

static const struct name_case name_cases[] = {
    {"example.com", true},
    {"EXAMPLE.com", true},
    {"a", true},
    {"a-b.c-d", true},
    {"xn--bcher-kva.ch", true},
    {"1.2.3.4", true},
    {"0a.b1", true},
    {"", false},
    {".", false},
    {"example.com.", false},
    {".example.com", false},
    {"a..b", false},
    {"-a.b", false},
    {"a-.b", false},
    {"a.-b", false},
    {"a.b-", false},
    {"a_b.c", false},
    {"a b", false},
    {"a%2eb", false},
    {"a/b", false},
    {"a:b", false},
    {"a\r\nb", false},
    {"b\xc3\xbc.ch", false},
    {"a&b", false},
};

static void test_name_table(void **state)
{
    char name[300];

    (void)state;
    for (size_t i = 0; i < N_ELEMS(name_cases); i++) {
        const struct name_case *nc = &name_cases[i];
        if (http_control_name_is_valid(nc->name, strlen(nc->name)) != nc->valid) {
            fail_msg("'%s': want %s", nc->name, nc->valid ? "valid" : "invalid");
        }
    }
    make_name(name, 253, 63);
    assert_true(http_control_name_is_valid(name, 253));
    make_name(name, 254, 63);
    assert_false(http_control_name_is_valid(name, 254));
    make_name(name, 63, 63);
    assert_true(http_control_name_is_valid(name, 63));
    make_name(name, 64, 64);
    assert_false(http_control_name_is_valid(name, 64));
    /* the length is authoritative: a NUL inside is a byte like any other */
    assert_false(http_control_name_is_valid("ab\0c", 4));
}

struct classify_case {
    const char *target;
    enum http_control expect;
    const char *name; /* on RESOLVE */
};

static const struct classify_case classify_cases[] = {
    {"/.well-known/geoproxy/egress", HTTP_CONTROL_EGRESS, ""},
    {"/.well-known/geoproxy/resolve?name=example.com", HTTP_CONTROL_RESOLVE, "example.com"},
    {"/.well-known/geoproxy/resolve?name=WWW.Example.COM", HTTP_CONTROL_RESOLVE, "www.example.com"},
    {"/.well-known/geoproxy/resolve?name=a", HTTP_CONTROL_RESOLVE, "a"},

    {"/", HTTP_CONTROL_NONE, ""},
    {"/index.html", HTTP_CONTROL_NONE, ""},
    {"/.well-known/geoproxy/", HTTP_CONTROL_NONE, ""},
    {"/.well-known/geoproxy/egress/", HTTP_CONTROL_NONE, ""},
    {"/.well-known/geoproxy/egressx", HTTP_CONTROL_NONE, ""},
    {"/.well-known/geoproxy/resolver?name=a", HTTP_CONTROL_NONE, ""},
    {"/.well-known/geoproxy/resolve/x", HTTP_CONTROL_NONE, ""},
    {"/.well-known/geoproxy/Egress", HTTP_CONTROL_NONE, ""},
    {"/.well-known/geoproxy", HTTP_CONTROL_NONE, ""},
    {"", HTTP_CONTROL_NONE, ""},

    {"/.well-known/geoproxy/egress?", HTTP_CONTROL_INVALID, ""},
    {"/.well-known/geoproxy/egress?x=1", HTTP_CONTROL_INVALID, ""},
    {"/.well-known/geoproxy/resolve", HTTP_CONTROL_INVALID, ""},
    {"/.well-known/geoproxy/resolve?", HTTP_CONTROL_INVALID, ""},
    {"/.well-known/geoproxy/resolve?name=", HTTP_CONTROL_INVALID, ""},
    {"/.well-known/geoproxy/resolve?name", HTTP_CONTROL_INVALID, ""},
    {"/.well-known/geoproxy/resolve?host=example.com", HTTP_CONTROL_INVALID, ""},
    {"/.well-known/geoproxy/resolve?name=example.com&x=1", HTTP_CONTROL_INVALID, ""},
    {"/.well-known/geoproxy/resolve?x=1&name=example.com", HTTP_CONTROL_INVALID, ""},
    {"/.well-known/geoproxy/resolve?name=a%2eb", HTTP_CONTROL_INVALID, ""},
    {"/.well-known/geoproxy/resolve?name=a..b", HTTP_CONTROL_INVALID, ""},
    {"/.well-known/geoproxy/resolve?name=example.com.", HTTP_CONTROL_INVALID, ""},
    {"/.well-known/geoproxy/resolve?name=a_b", HTTP_CONTROL_INVALID, ""},
    {"/.well-known/geoproxy/resolve?name=a#frag", HTTP_CONTROL_INVALID, ""},
    {"/.well-known/geoproxy/resolve?NAME=a", HTTP_CONTROL_INVALID, ""},
};

static enum http_control classify_exact(const char *target, size_t len, char *name)
{
    char *copy = malloc(len + 1); /* exactly len bytes are read: ASan sees one more */
    assert_non_null(copy);
    memcpy(copy, target, len);
    enum http_control c = http_control_classify(copy, len, name);
    free(copy);
    return c;
}

static void test_classify_table(void **state)
{
    char name[HTTP_CONTROL_NAME_MAX + 1];
    char target[512];

    (void)state;
    for (size_t i = 0; i < N_ELEMS(classify_cases); i++) {
        const struct classify_case *cc = &classify_cases[i];
        memset(name, 'x', sizeof(name));
        enum http_control c = classify_exact(cc->target, strlen(cc->target), name);
        if (c != cc->expect || strcmp(name, cc->name) != 0) {
            fail_msg("'%s': %d name '%.20s', want %d '%s'", cc->target, (int)c, name,
                     (int)cc->expect, cc->name);
        }
    }

    /* the longest name fits 'name' exactly; one byte more is INVALID */
    size_t prefix = (size_t)snprintf(target, sizeof(target), "%s?name=", HTTP_CONTROL_RESOLVE_PATH);
    make_name(target + prefix, HTTP_CONTROL_NAME_MAX, 63);
    assert_int_equal(classify_exact(target, strlen(target), name), HTTP_CONTROL_RESOLVE);
    assert_string_equal(name, target + prefix);
    make_name(target + prefix, HTTP_CONTROL_NAME_MAX + 1, 63);
    assert_int_equal(classify_exact(target, strlen(target), name), HTTP_CONTROL_INVALID);
    assert_string_equal(name, "");
}

static void addr_text(const struct sockaddr_storage *ss, char *text)
{
    if (ss->ss_family == AF_INET) {
        assert_int_equal(((const struct sockaddr_in *)ss)->sin_port, 0);
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, text, INET6_ADDRSTRLEN);
    } else if (ss->ss_family == AF_INET6) {
        assert_int_equal(((const struct sockaddr_in6 *)ss)->sin6_port, 0);
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, text, INET6_ADDRSTRLEN);
    } else {
        assert_int_equal(ss->ss_family, AF_UNSPEC);
        snprintf(text, INET6_ADDRSTRLEN, "unknown");
    }
}

struct value_case {
    const char *value;
    const char *expect; /* addresses as text, separated by one space; NULL: -EINVAL */
};

static const struct value_case egress_cases[] = {
    {"127.0.5.1", "127.0.5.1"},
    {"2001:db8::1", "2001:db8::1"},
    {"::ffff:10.0.0.1", "::ffff:10.0.0.1"},
    {"unknown", "unknown"},
    {"UNKNOWN", "unknown"},
    {"", NULL},
    {"unknow", NULL},
    {"unknown!", NULL},
    {"[::1]", NULL},
    {"127.0.5.1:80", NULL},
    {"127.0.5.1, 127.0.5.2", NULL},
    {"127.0.5", NULL},
    {"fe80::1%eth0", NULL},
    {"localhost", NULL},
    {"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255x", NULL},
};

static void test_egress_values(void **state)
{
    struct sockaddr_storage ss, list[HTTP_CONTROL_ADDRESSES_MAX];
    char text[INET6_ADDRSTRLEN];
    size_t n;

    (void)state;
    /* lengths are authoritative: a NUL does not end a value early */
    assert_int_equal(http_control_parse_egress("127.0.5.1\0junk", 14, &ss), -EINVAL);
    assert_int_equal(http_control_parse_egress("unknown\0", 8, &ss), -EINVAL);
    assert_int_equal(http_control_parse_addresses("::1\0x, 10.0.0.1", 15, list, &n), -EINVAL);
    for (size_t i = 0; i < N_ELEMS(egress_cases); i++) {
        const struct value_case *vc = &egress_cases[i];
        memset(&ss, 0xEE, sizeof(ss));
        int ret = http_control_parse_egress(vc->value, strlen(vc->value), &ss);
        if (vc->expect == NULL) {
            if (ret != -EINVAL) {
                fail_msg("'%s': %d, want -EINVAL", vc->value, ret);
            }
            continue;
        }
        assert_int_equal(ret, 0);
        addr_text(&ss, text);
        if (strcmp(text, vc->expect) != 0) {
            fail_msg("'%s': '%s', want '%s'", vc->value, text, vc->expect);
        }
    }
}

static const struct value_case address_cases[] = {
    {"192.0.2.1, 2001:db8::1", "192.0.2.1 2001:db8::1"},
    {"192.0.2.1", "192.0.2.1"},
    {"::1,127.0.0.1", "::1 127.0.0.1"},
    {" \t192.0.2.1 ,\t::1\t ", "192.0.2.1 ::1"},
    {"192.0.2.1, 192.0.2.1", "192.0.2.1 192.0.2.1"},
    {"", NULL},
    {" ", NULL},
    {",", NULL},
    {"192.0.2.1,", NULL},
    {",192.0.2.1", NULL},
    {"192.0.2.1,,::1", NULL},
    {"192.0.2.1 ::1", NULL},
    {"192.0.2.1;::1", NULL},
    {"unknown", NULL},
    {"example.com", NULL},
    {"[::1]", NULL},
    {"192.0.2.1:53", NULL},
};

static void check_addresses(const char *value, const char *expect)
{
    struct sockaddr_storage out[HTTP_CONTROL_ADDRESSES_MAX];
    char got[DESC_MAX] = "", text[INET6_ADDRSTRLEN];
    size_t n = 99;

    int ret = http_control_parse_addresses(value, strlen(value), out, &n);
    if (expect == NULL) {
        if (ret != -EINVAL || n != 0) {
            fail_msg("'%s': %d n=%zu, want -EINVAL", value, ret, n);
        }
        return;
    }
    assert_int_equal(ret, 0);
    for (size_t i = 0; i < n; i++) {
        addr_text(&out[i], text);
        desc_append(got, "%s%s", i > 0 ? " " : "", text);
    }
    if (strcmp(got, expect) != 0) {
        fail_msg("'%s': '%s', want '%s'", value, got, expect);
    }
}

static void test_address_values(void **state)
{
    char list[DESC_MAX] = "", expect[DESC_MAX] = "";

    (void)state;
    for (size_t i = 0; i < N_ELEMS(address_cases); i++) {
        check_addresses(address_cases[i].value, address_cases[i].expect);
    }
    /* 16 addresses are the most */
    for (unsigned i = 1; i <= HTTP_CONTROL_ADDRESSES_MAX; i++) {
        desc_append(list, "%s10.0.0.%u", i > 1 ? ", " : "", i);
        desc_append(expect, "%s10.0.0.%u", i > 1 ? " " : "", i);
    }
    check_addresses(list, expect);
    desc_append(list, ", 10.0.0.17");
    check_addresses(list, NULL);
}

struct request_case {
    const char *name; /* NULL: the egress probe */
    const char *text; /* NULL: -EINVAL */
};

static const struct request_case request_cases[] = {
    {NULL, "GET /.well-known/geoproxy/egress HTTP/1.1\r\nHost: geoproxy\r\n\r\n"},
    {"example.com",
     "GET /.well-known/geoproxy/resolve?name=example.com HTTP/1.1\r\nHost: geoproxy\r\n\r\n"},
    {"Mixed.Case", "GET /.well-known/geoproxy/resolve?name=Mixed.Case HTTP/1.1\r\nHost: "
                   "geoproxy\r\n\r\n"},
    {"", NULL},
    {"a b", NULL},
    {"a\r\nHost: evil", NULL},
    {"a&name=b", NULL},
    {"a..b", NULL},
    {"example.com.", NULL},
};

static int build_request(const struct request_case *rc, char *out, size_t out_len)
{
    if (rc->name == NULL) {
        return http_control_build_egress_request(out, out_len);
    }
    return http_control_build_resolve_request(out, out_len, rc->name);
}

/* Exact bytes; -ENOBUFS for every buffer too small; and the exit recognises what the entry
 * sends, through the same request parser the exit runs. */
static void test_request_builders(void **state)
{
    static char out[OUT_MAX];
    static struct http_request req;
    char name[HTTP_CONTROL_NAME_MAX + 1], lower[HTTP_CONTROL_NAME_MAX + 1];
    size_t consumed;

    (void)state;
    for (size_t i = 0; i < N_ELEMS(request_cases); i++) {
        const struct request_case *rc = &request_cases[i];
        int n = build_request(rc, out, sizeof(out));
        if (rc->text == NULL) {
            assert_int_equal(n, -EINVAL);
            continue;
        }
        assert_int_equal(n, strlen(rc->text));
        assert_memory_equal(out, rc->text, (size_t)n);
        for (size_t cap = 0; cap <= (size_t)n; cap++) {
            assert_int_equal(build_request(rc, cap > 0 ? out : NULL, cap), -ENOBUFS);
        }
        assert_int_equal(build_request(rc, out, (size_t)n + 1), n);

        assert_int_equal(
            http_parse_request((const uint8_t *)out, (size_t)n, HEAD_MAX, &req, &consumed),
            PARSE_DONE);
        assert_int_equal(req.form, HTTP_FORM_ORIGIN);
        enum http_control c = http_control_classify(req.path, req.path_len, name);
        if (rc->name == NULL) {
            assert_int_equal(c, HTTP_CONTROL_EGRESS);
            continue;
        }
        assert_int_equal(c, HTTP_CONTROL_RESOLVE);
        for (size_t j = 0; j <= strlen(rc->name); j++) {
            char ch = rc->name[j];
            lower[j] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
        }
        assert_string_equal(name, lower);
    }
}

static struct sockaddr_storage make_addr(const char *text)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, text, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_port = htons(4321); /* ports are not sent */
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
        ss.ss_family = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(4321);
    }
    return ss;
}

/* Parses a reply the exit built, as the entry does, and checks the body is Content-Length long. */
static const struct http_client_response *parse_reply(const char *out, size_t n)
{
    static struct http_client_response r;
    size_t consumed;

    assert_int_equal(
        http_client_parse_response((const uint8_t *)out, n, HEAD_MAX, false, &r, &consumed),
        PARSE_DONE);
    assert_int_equal(r.head.body, HTTP_BODY_LENGTH);
    assert_int_equal(consumed + r.head.content_length, n);
    return &r;
}

/* -ENOBUFS for every buffer too small, and the same length with exactly enough. */
#define CHECK_TOO_SMALL(n, call_with_cap)                                                          \
    do {                                                                                           \
        for (size_t cap = 0; cap <= (size_t)(n); cap++) {                                          \
            char *buf = cap > 0 ? out : NULL;                                                      \
            assert_int_equal((call_with_cap), -ENOBUFS);                                           \
            (void)buf;                                                                             \
        }                                                                                          \
        size_t cap = (size_t)(n) + 1;                                                              \
        char *buf = out;                                                                           \
        assert_int_equal((call_with_cap), (n));                                                    \
    } while (0)

static void test_egress_reply(void **state)
{
    static char out[OUT_MAX];
    struct sockaddr_storage ss = make_addr("127.0.5.1"), parsed;
    const char *expect = "HTTP/1.1 200 OK\r\nGeoproxy-Egress: 127.0.5.1\r\nContent-Type: "
                         "application/json\r\nContent-Length: 22\r\n\r\n{\"egress\":\"127.0.5.1\"}";

    (void)state;
    int n = http_control_build_egress_reply(out, sizeof(out), (const struct sockaddr *)&ss);
    assert_int_equal(n, strlen(expect));
    assert_memory_equal(out, expect, (size_t)n);
    CHECK_TOO_SMALL(n, http_control_build_egress_reply(buf, cap, (const struct sockaddr *)&ss));
    const struct http_client_response *r = parse_reply(out, (size_t)n);
    assert_int_equal(http_control_parse_egress(r->egress, r->egress_len, &parsed), 0);
    assert_int_equal(parsed.ss_family, AF_INET);
    assert_memory_equal(&((struct sockaddr_in *)&parsed)->sin_addr,
                        &((struct sockaddr_in *)&ss)->sin_addr, 4);

    /* IPv6, and "unknown" for NULL and for a family that is not an IP address */
    ss = make_addr("2001:db8::5");
    n = http_control_build_egress_reply(out, sizeof(out), (const struct sockaddr *)&ss);
    r = parse_reply(out, (size_t)n);
    assert_int_equal(http_control_parse_egress(r->egress, r->egress_len, &parsed), 0);
    assert_int_equal(parsed.ss_family, AF_INET6);
    assert_non_null(strstr(out, "{\"egress\":\"2001:db8::5\"}"));

    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    const struct sockaddr *unknowns[] = {NULL, (const struct sockaddr *)&sun};
    for (size_t i = 0; i < N_ELEMS(unknowns); i++) {
        n = http_control_build_egress_reply(out, sizeof(out), unknowns[i]);
        r = parse_reply(out, (size_t)n);
        assert_int_equal(http_control_parse_egress(r->egress, r->egress_len, &parsed), 0);
        assert_int_equal(parsed.ss_family, AF_UNSPEC);
        assert_non_null(strstr(out, "\r\n\r\n{\"egress\":null}"));
    }
}

static void test_resolve_reply(void **state)
{
    static char out[OUT_MAX];
    struct sockaddr_storage addrs[HTTP_CONTROL_ADDRESSES_MAX + 1],
        parsed[HTTP_CONTROL_ADDRESSES_MAX];
    size_t n_parsed;
    const char *expect =
        "HTTP/1.1 200 OK\r\nGeoproxy-Addresses: 192.0.2.1, 2001:db8::1\r\nContent-Type: "
        "application/json\r\nContent-Length: 41\r\n\r\n{\"addresses\":[\"192.0.2.1\","
        "\"2001:db8::1\"]}";

    (void)state;
    addrs[0] = make_addr("192.0.2.1");
    addrs[1] = make_addr("2001:db8::1");
    int n = http_control_build_resolve_reply(out, sizeof(out), addrs, 2);
    assert_int_equal(n, strlen(expect));
    assert_memory_equal(out, expect, (size_t)n);
    CHECK_TOO_SMALL(n, http_control_build_resolve_reply(buf, cap, addrs, 2));
    const struct http_client_response *r = parse_reply(out, (size_t)n);
    assert_int_equal(
        http_control_parse_addresses(r->addresses, r->addresses_len, parsed, &n_parsed), 0);
    assert_int_equal(n_parsed, 2);

    /* sixteen of the longest addresses */
    for (size_t i = 0; i < HTTP_CONTROL_ADDRESSES_MAX; i++) {
        char text[INET6_ADDRSTRLEN];
        snprintf(text, sizeof(text), "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.%zu", 240 + i);
        addrs[i] = make_addr(text);
    }
    n = http_control_build_resolve_reply(out, sizeof(out), addrs, HTTP_CONTROL_ADDRESSES_MAX);
    assert_true(n > 0);
    r = parse_reply(out, (size_t)n);
    assert_int_equal(
        http_control_parse_addresses(r->addresses, r->addresses_len, parsed, &n_parsed), 0);
    assert_int_equal(n_parsed, HTTP_CONTROL_ADDRESSES_MAX);
    for (size_t i = 0; i < n_parsed; i++) {
        assert_memory_equal(&((struct sockaddr_in6 *)&parsed[i])->sin6_addr,
                            &((struct sockaddr_in6 *)&addrs[i])->sin6_addr, 16);
    }

    addrs[HTTP_CONTROL_ADDRESSES_MAX] = make_addr("10.0.0.1");
    assert_int_equal(
        http_control_build_resolve_reply(out, sizeof(out), addrs, HTTP_CONTROL_ADDRESSES_MAX + 1),
        -EINVAL);
    assert_int_equal(http_control_build_resolve_reply(out, sizeof(out), addrs, 0), -EINVAL);
    memset(&addrs[1], 0, sizeof(addrs[1]));
    addrs[1].ss_family = AF_UNIX;
    assert_int_equal(http_control_build_resolve_reply(out, sizeof(out), addrs, 2), -EINVAL);
}

static void test_resolve_failure(void **state)
{
    static char out[OUT_MAX];

    (void)state;
    int n = http_control_build_resolve_failure(out, sizeof(out), "NXDOMAIN for example.invalid");
    assert_true(n > 0);
    CHECK_TOO_SMALL(n,
                    http_control_build_resolve_failure(buf, cap, "NXDOMAIN for example.invalid"));
    const struct http_client_response *r = parse_reply(out, (size_t)n);
    assert_int_equal(r->head.status, 502);
    assert_true(r->head.keep_alive);
    assert_non_null(r->proxy_status);
    const char *want = "geoproxy; error=dns_error; details=\"NXDOMAIN for example.invalid\"";
    assert_int_equal(r->proxy_status_len, strlen(want));
    assert_memory_equal(r->proxy_status, want, strlen(want));
    assert_null(r->addresses);

    n = http_control_build_resolve_failure(out, sizeof(out), NULL);
    r = parse_reply(out, (size_t)n);
    assert_int_equal(r->proxy_status_len, strlen("geoproxy; error=dns_error"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_table),       cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_egress_values),    cmocka_unit_test(test_address_values),
        cmocka_unit_test(test_request_builders), cmocka_unit_test(test_egress_reply),
        cmocka_unit_test(test_resolve_reply),    cmocka_unit_test(test_resolve_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
