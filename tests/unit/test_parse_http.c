/* HTTP parsers, framer, rewriters and reply builders (proxy/http_parse.h). Table-driven: each
 * valid head is parsed whole, as every shorter prefix (NEED_MORE, nothing consumed) and with
 * pipelined bytes behind it (only the head consumed); each invalid one stays INVALID with the
 * same status whatever follows it, and none of its prefixes parses as DONE. Framing is checked
 * whole, split at every byte and byte by byte; writers against their exact bytes and against
 * every buffer too small by one byte or more. */
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

#include "proxy/http_parse.h"
#include "test_support.h"

#define HEAD_MAX 16384
#define OUT_MAX 4096

static void desc_append_target(char *desc, const struct target *t)
{
    char text[INET6_ADDRSTRLEN];

    if (t->host[0] != '\0') {
        assert_int_equal(t->addr.ss_family, AF_UNSPEC);
        desc_append(desc, "%s", t->host);
    } else if (t->addr.ss_family == AF_INET) {
        assert_non_null(
            inet_ntop(AF_INET, &((const struct sockaddr_in *)&t->addr)->sin_addr, text, 64));
        desc_append(desc, "%s", text);
    } else if (t->addr.ss_family == AF_INET6) {
        assert_non_null(
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&t->addr)->sin6_addr, text, 64));
        desc_append(desc, "[%s]", text);
    } else {
        desc_append(desc, "-");
        return;
    }
    desc_append(desc, ":%u", (unsigned)t->port);
}

static const char *form_name(enum http_target_form form)
{
    switch (form) {
    case HTTP_FORM_ORIGIN:
        return "origin";
    case HTTP_FORM_ABSOLUTE:
        return "absolute";
    case HTTP_FORM_AUTHORITY:
        return "authority";
    case HTTP_FORM_ASTERISK:
        return "asterisk";
    }
    return "?";
}

static void desc_append_body(char *desc, enum http_body body, uint64_t length)
{
    switch (body) {
    case HTTP_BODY_NONE:
        desc_append(desc, "body=none");
        break;
    case HTTP_BODY_LENGTH:
        desc_append(desc, "body=length:%llu", (unsigned long long)length);
        break;
    case HTTP_BODY_CHUNKED:
        desc_append(desc, "body=chunked");
        break;
    case HTTP_BODY_UNTIL_CLOSE:
        desc_append(desc, "body=close");
        break;
    }
}

/* "METHOD form dest path=P body=B ka=K v=1.M auth=A n=N" */
static void describe_request(char *desc, const struct http_request *r)
{
    desc_append(desc, "%.*s %s ", (int)r->method_len, r->method_name, form_name(r->form));
    desc_append_target(desc, &r->target);
    desc_append(desc, " path=%.*s ", (int)r->path_len, r->path != NULL ? r->path : "");
    desc_append_body(desc, r->body, r->content_length);
    desc_append(desc, " ka=%d v=%u.%u auth=%d n=%zu", r->keep_alive, r->version_major,
                r->version_minor, r->proxy_authorization != NULL, r->n_headers);
}

/* ---- request heads ---------------------------------------------------------------------- */

struct request_case {
    const char *name;
    const char *bytes;
    enum parse_result res; /* PARSE_DONE or PARSE_INVALID */
    const char *want;      /* DONE: describe_request(); INVALID: the status, "400" */
    size_t max_head;       /* 0: HEAD_MAX */
};

static const struct request_case request_cases[] = {
    /* CONNECT */
    {"connect name", "CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n",
     PARSE_DONE, "CONNECT authority example.test:443 path= body=none ka=1 v=1.1 auth=0 n=1", 0},
    {"connect upper-case name", "CONNECT Example.TEST:443 HTTP/1.1\r\n\r\n", PARSE_DONE,
     "CONNECT authority example.test:443 path= body=none ka=1 v=1.1 auth=0 n=0", 0},
    {"connect ipv6", "CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n", PARSE_DONE,
     "CONNECT authority [2001:db8::1]:8443 path= body=none ka=1 v=1.1 auth=0 n=0", 0},
    {"connect ipv4 1.0", "CONNECT 192.0.2.7:22 HTTP/1.0\r\n\r\n", PARSE_DONE,
     "CONNECT authority 192.0.2.7:22 path= body=none ka=0 v=1.0 auth=0 n=0", 0},
    {"connect with credentials",
     "CONNECT a.test:443 HTTP/1.1\r\nProxy-Authorization: Basic dTpw\r\n\r\n", PARSE_DONE,
     "CONNECT authority a.test:443 path= body=none ka=1 v=1.1 auth=1 n=1", 0},
    {"connect max port", "CONNECT a.test:65535 HTTP/1.1\r\n\r\n", PARSE_DONE,
     "CONNECT authority a.test:65535 path= body=none ka=1 v=1.1 auth=0 n=0", 0},
    {"connect ignores content-length", "CONNECT a.test:443 HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
     PARSE_DONE, "CONNECT authority a.test:443 path= body=none ka=1 v=1.1 auth=0 n=1", 0},
    /* absolute-form */
    {"absolute with host", "GET http://example.test/ HTTP/1.1\r\nHost: example.test\r\n\r\n",
     PARSE_DONE, "GET absolute example.test:80 path=/ body=none ka=1 v=1.1 auth=0 n=1", 0},
    {"absolute port and query, no host",
     "GET http://example.test:8080/a/b?x=1&y=2 HTTP/1.1\r\nAccept: */*\r\n\r\n", PARSE_DONE,
     "GET absolute example.test:8080 path=/a/b?x=1&y=2 body=none ka=1 v=1.1 auth=0 n=1", 0},
    {"absolute no path", "GET http://example.test HTTP/1.1\r\n\r\n", PARSE_DONE,
     "GET absolute example.test:80 path= body=none ka=1 v=1.1 auth=0 n=0", 0},
    {"absolute query without path", "GET http://example.test?q=1 HTTP/1.1\r\n\r\n", PARSE_DONE,
     "GET absolute example.test:80 path=?q=1 body=none ka=1 v=1.1 auth=0 n=0", 0},
    {"absolute fragment dropped", "GET http://example.test/p?q#frag HTTP/1.1\r\n\r\n", PARSE_DONE,
     "GET absolute example.test:80 path=/p?q body=none ka=1 v=1.1 auth=0 n=0", 0},
    {"absolute empty port", "GET http://example.test:/ HTTP/1.1\r\n\r\n", PARSE_DONE,
     "GET absolute example.test:80 path=/ body=none ka=1 v=1.1 auth=0 n=0", 0},
    {"absolute scheme and host case", "GET HTTP://EXAMPLE.test/X HTTP/1.1\r\n\r\n", PARSE_DONE,
     "GET absolute example.test:80 path=/X body=none ka=1 v=1.1 auth=0 n=0", 0},
    {"absolute ipv6", "GET http://[::1]:8080/ HTTP/1.1\r\n\r\n", PARSE_DONE,
     "GET absolute [::1]:8080 path=/ body=none ka=1 v=1.1 auth=0 n=0", 0},
    {"absolute ipv4 1.0", "GET http://127.0.0.1/ HTTP/1.0\r\n\r\n", PARSE_DONE,
     "GET absolute 127.0.0.1:80 path=/ body=none ka=0 v=1.0 auth=0 n=0", 0},
    {"absolute underscore host", "HEAD http://a_b.test/ HTTP/1.1\r\n\r\n", PARSE_DONE,
     "HEAD absolute a_b.test:80 path=/ body=none ka=1 v=1.1 auth=0 n=0", 0},
    {"leading empty line", "\r\nGET http://a.test/ HTTP/1.1\r\n\r\n", PARSE_DONE,
     "GET absolute a.test:80 path=/ body=none ka=1 v=1.1 auth=0 n=0", 0},
    /* persistence */
    {"1.0 keep-alive", "GET http://a.test/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", PARSE_DONE,
     "GET absolute a.test:80 path=/ body=none ka=1 v=1.0 auth=0 n=1", 0},
    {"1.0 keep-alive in a list",
     "GET http://a.test/ HTTP/1.0\r\nConnection: foo, Keep-Alive\r\n\r\n", PARSE_DONE,
     "GET absolute a.test:80 path=/ body=none ka=1 v=1.0 auth=0 n=1", 0},
    {"1.0 keep-alive and close",
     "GET http://a.test/ HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", PARSE_DONE,
     "GET absolute a.test:80 path=/ body=none ka=0 v=1.0 auth=0 n=1", 0},
    {"1.1 close", "GET http://a.test/ HTTP/1.1\r\nConnection: close\r\n\r\n", PARSE_DONE,
     "GET absolute a.test:80 path=/ body=none ka=0 v=1.1 auth=0 n=1", 0},
    {"1.1 close in a second field",
     "GET http://a.test/ HTTP/1.1\r\nConnection: x-a\r\nConnection: x-b ,CLOSE\r\n\r\n", PARSE_DONE,
     "GET absolute a.test:80 path=/ body=none ka=0 v=1.1 auth=0 n=2", 0},
    {"1.1 closed is not close", "GET http://a.test/ HTTP/1.1\r\nConnection: closed\r\n\r\n",
     PARSE_DONE, "GET absolute a.test:80 path=/ body=none ka=1 v=1.1 auth=0 n=1", 0},
    /* bodies */
    {"content-length", "POST http://a.test/f HTTP/1.1\r\nContent-Length: 11\r\n\r\n", PARSE_DONE,
     "POST absolute a.test:80 path=/f body=length:11 ka=1 v=1.1 auth=0 n=1", 0},
    {"content-length zero", "POST http://a.test/f HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
     PARSE_DONE, "POST absolute a.test:80 path=/f body=none ka=1 v=1.1 auth=0 n=1", 0},
    {"chunked", "POST http://a.test/f HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", PARSE_DONE,
     "POST absolute a.test:80 path=/f body=chunked ka=1 v=1.1 auth=0 n=1", 0},
    {"gzip then chunked",
     "PUT http://a.test/f HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", PARSE_DONE,
     "PUT absolute a.test:80 path=/f body=chunked ka=1 v=1.1 auth=0 n=1", 0},
    {"chunked after an empty element",
     "PUT http://a.test/f HTTP/1.1\r\nTransfer-Encoding: ,chunked\r\n\r\n", PARSE_DONE,
     "PUT absolute a.test:80 path=/f body=chunked ka=1 v=1.1 auth=0 n=1", 0},
    {"chunked with a trailing space",
     "PUT http://a.test/f HTTP/1.1\r\nTransfer-Encoding: chunked \r\n\r\n", PARSE_DONE,
     "PUT absolute a.test:80 path=/f body=chunked ka=1 v=1.1 auth=0 n=1", 0},
    {"1.0 content-length", "POST http://a.test/f HTTP/1.0\r\nContent-Length: 3\r\n\r\n", PARSE_DONE,
     "POST absolute a.test:80 path=/f body=length:3 ka=0 v=1.0 auth=0 n=1", 0},
    /* forms the proxy answers itself */
    {"origin-form", "GET / HTTP/1.1\r\nHost: proxy.test\r\n\r\n", PARSE_DONE,
     "GET origin - path=/ body=none ka=1 v=1.1 auth=0 n=1", 0},
    {"asterisk", "OPTIONS * HTTP/1.1\r\n\r\n", PARSE_DONE,
     "OPTIONS asterisk - path= body=none ka=1 v=1.1 auth=0 n=0", 0},
    {"empty and padded values", "GET http://a.test/ HTTP/1.1\r\nX-Empty:\r\nX-Pad:  v  \r\n\r\n",
     PARSE_DONE, "GET absolute a.test:80 path=/ body=none ka=1 v=1.1 auth=0 n=2", 0},

    /* smuggling */
    {"content-length and chunked",
     "POST http://a.test/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
     PARSE_INVALID, "400", 0},
    {"chunked and content-length",
     "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
     PARSE_INVALID, "400", 0},
    {"two different lengths",
     "POST http://a.test/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
     PARSE_INVALID, "400", 0},
    {"two equal lengths",
     "POST http://a.test/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
     PARSE_INVALID, "400", 0},
    {"length list", "POST http://a.test/ HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", PARSE_INVALID,
     "400", 0},
    {"signed length", "POST http://a.test/ HTTP/1.1\r\nContent-Length: +5\r\n\r\n", PARSE_INVALID,
     "400", 0},
    {"negative length", "POST http://a.test/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n", PARSE_INVALID,
     "400", 0},
    {"huge length",
     "POST http://a.test/ HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
     PARSE_INVALID, "400", 0},
    {"gzip only", "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", PARSE_INVALID,
     "400", 0},
    {"chunked then gzip",
     "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", PARSE_INVALID,
     "400", 0},
    {"chunked then tab", "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\t\r\n\r\n",
     PARSE_INVALID, "400", 0},
    {"chunked twice",
     "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
     "Transfer-Encoding: chunked\r\n\r\n",
     PARSE_INVALID, "400", 0},
    {"chunked in 1.0", "POST http://a.test/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
     PARSE_INVALID, "400", 0},
    /* llhttp 8 takes no Transfer-Encoding from a field without a coding, and frames by length */
    {"empty Transfer-Encoding, length",
     "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: \r\nContent-Length: 5\r\n\r\n",
     PARSE_INVALID, "400", 0},
    {"tab as Transfer-Encoding, length",
     "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding:\t\r\nContent-Length: 5\r\n\r\n",
     PARSE_INVALID, "400", 0},
    {"empty Transfer-Encoding", "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
     PARSE_INVALID, "400", 0},
    {"space before colon", "POST http://a.test/ HTTP/1.1\r\nContent-Length : 5\r\n\r\n",
     PARSE_INVALID, "400", 0},
    /* targets */
    {"https absolute", "GET https://a.test/ HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"ftp absolute", "GET ftp://a.test/ HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"no scheme slashes", "GET http:a.test/ HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"userinfo", "GET http://user:pw@a.test/ HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"empty host", "GET http:///path HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"port zero", "GET http://a.test:0/ HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"port too big", "GET http://a.test:65536/ HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"port too long", "GET http://a.test:000080/ HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"port not a number", "GET http://a.test:8x/ HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"percent in host", "GET http://a%2eb/ HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"sub-delim in host", "GET http://a!b/ HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"unterminated ipv6", "GET http://[::1/ HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"bad ipv6", "GET http://[zz::1]/ HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"junk after ipv6", "GET http://[::1]x/ HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"non-ascii target", "GET http://a.test/\xc3\xa9 HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"connect without port", "CONNECT example.test HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"connect empty port", "CONNECT example.test: HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"connect port zero", "CONNECT example.test:0 HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"connect ipv6 without port", "CONNECT [::1] HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"connect with uri", "CONNECT http://a.test:443/ HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"connect userinfo", "CONNECT u@a.test:443 HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    /* request line */
    {"http/2", "GET http://a.test/ HTTP/2.0\r\n\r\n", PARSE_INVALID, "505", 0},
    {"http/0.9 version", "GET http://a.test/ HTTP/0.9\r\n\r\n", PARSE_INVALID, "400", 0},
    {"no version", "GET http://a.test/\r\n\r\n", PARSE_INVALID, "400", 0},
    {"two spaces before target", "GET  http://a.test/ HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"two spaces after target", "GET http://a.test/  HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"tab before version", "GET http://a.test/\tHTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"lower-case method", "get http://a.test/ HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"unknown method", "FROB http://a.test/ HTTP/1.1\r\n\r\n", PARSE_INVALID, "400", 0},
    {"bare LF", "GET http://a.test/ HTTP/1.1\nHost: a\n\n", PARSE_INVALID, "400", 0},
    {"TLS client hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", PARSE_INVALID, "400", 0},
    /* header fields */
    {"space in name", "GET http://a.test/ HTTP/1.1\r\nBad Name: x\r\n\r\n", PARSE_INVALID, "400",
     0},
    {"empty name", "GET http://a.test/ HTTP/1.1\r\n: x\r\n\r\n", PARSE_INVALID, "400", 0},
    {"slash in name", "GET http://a.test/ HTTP/1.1\r\nX/Y: x\r\n\r\n", PARSE_INVALID, "400", 0},
    {"folding", "GET http://a.test/ HTTP/1.1\r\nX-A: a\r\n folded\r\n\r\n", PARSE_INVALID, "400",
     0},
    {"space before first field", "GET http://a.test/ HTTP/1.1\r\n X: y\r\n\r\n", PARSE_INVALID,
     "400", 0},
    {"control in value",
     "GET http://a.test/ HTTP/1.1\r\nX: a\x01"
     "b\r\n\r\n",
     PARSE_INVALID, "400", 0},
    {"CR in value", "GET http://a.test/ HTTP/1.1\r\nX: a\rb\r\n\r\n", PARSE_INVALID, "400", 0},
    {"no colon", "GET http://a.test/ HTTP/1.1\r\nX\r\n\r\n", PARSE_INVALID, "400", 0},
    /* size */
    {"head over the limit", "GET http://a.test/ HTTP/1.1\r\nX-Long: 0123456789abcdef\r\n\r\n",
     PARSE_INVALID, "431", 40},
    {"head exactly at the limit", "GET http://a.test/ HTTP/1.1\r\nX: 0123\r\n\r\n", PARSE_DONE,
     "GET absolute a.test:80 path=/ body=none ka=1 v=1.1 auth=0 n=1", 40},
};

static enum parse_result parse_request_checked(const char *bytes, size_t len, size_t max_head,
                                               struct http_request *req, size_t *consumed)
{
    *consumed = 12345;
    enum parse_result res =
        http_parse_request((const uint8_t *)bytes, len, max_head, req, consumed);
    if (res != PARSE_DONE)
        assert_int_equal(*consumed, 0);
    if (res == PARSE_INVALID) {
        assert_non_null(req->error);
        assert_true(req->error[0] != '\0');
    }
    return res;
}

static void check_request_case(const struct request_case *tc)
{
    struct http_request req;
    size_t len = strlen(tc->bytes), consumed, max = tc->max_head != 0 ? tc->max_head : HEAD_MAX;
    char desc[DESC_MAX] = "";
    char with_more[HEAD_MAX];

    print_message("request: %s\n", tc->name);
    enum parse_result res = parse_request_checked(tc->bytes, len, max, &req, &consumed);
    assert_int_equal(res, tc->res);
    if (res == PARSE_DONE) {
        assert_int_equal(consumed, len);
        describe_request(desc, &req);
        assert_string_equal(desc, tc->want);
    } else {
        snprintf(desc, sizeof(desc), "%u", req.error_status);
        assert_string_equal(desc, tc->want);
    }
    unsigned want_status = req.error_status;

    /* pipelined bytes behind it change nothing */
    snprintf(with_more, sizeof(with_more), "%sGET http://b.test/ HTTP/1.1\r\n\r\n", tc->bytes);
    assert_int_equal(parse_request_checked(with_more, strlen(with_more), max, &req, &consumed),
                     tc->res);
    if (tc->res == PARSE_DONE)
        assert_int_equal(consumed, len);
    else
        assert_int_equal(req.error_status, want_status);

    /* every prefix of a valid head asks for more; no prefix of an invalid one is DONE */
    for (size_t i = 0; i < len; i++) {
        res = parse_request_checked(tc->bytes, i, max, &req, &consumed);
        if (tc->res == PARSE_DONE)
            assert_int_equal(res, PARSE_NEED_MORE);
        else
            assert_int_not_equal(res, PARSE_DONE);
    }
}

static void test_request_table(void **state)
{
    for (size_t i = 0; i < N_ELEMS(request_cases); i++)
        check_request_case(&request_cases[i]);
}

static void test_request_fields(void **state)
{
    static const char head[] = "GET http://a.test/ HTTP/1.1\r\nX-Empty:\r\nX-Pad: \t v 1 \t\r\n"
                               "Proxy-Authorization: Basic abc\r\n\r\n";
    struct http_request req;
    size_t consumed;

    assert_int_equal(parse_request_checked(head, strlen(head), HEAD_MAX, &req, &consumed),
                     PARSE_DONE);
    assert_int_equal(req.n_headers, 3);
    assert_int_equal(req.headers[0].value_len, 0);
    assert_int_equal(req.headers[1].value_len, 3);
    assert_memory_equal(req.headers[1].value, "v 1", 3);
    assert_ptr_equal(req.proxy_authorization, &req.headers[2]);
    assert_ptr_equal(http_find_header(req.headers, req.n_headers, "x-pad"), &req.headers[1]);
    assert_null(http_find_header(req.headers, req.n_headers, "X-Pa"));
    assert_int_equal(req.method, HTTP_GET);
    assert_int_equal(req.uri_len, strlen("http://a.test/"));
    assert_memory_equal(req.authority, "a.test", req.authority_len);
}

/* Exactly HTTP_HEADERS_MAX fields parse; one more is a 431. */
static void test_request_header_count(void **state)
{
    static char head[HEAD_MAX];
    struct http_request req;
    size_t consumed;

    for (size_t n = HTTP_HEADERS_MAX; n <= HTTP_HEADERS_MAX + 1; n++) {
        size_t len = (size_t)snprintf(head, sizeof(head), "GET http://a.test/ HTTP/1.1\r\n");
        for (size_t i = 0; i < n; i++)
            len += (size_t)snprintf(head + len, sizeof(head) - len, "X-%zu: v\r\n", i);
        len += (size_t)snprintf(head + len, sizeof(head) - len, "\r\n");
        enum parse_result res = parse_request_checked(head, len, HEAD_MAX, &req, &consumed);
        if (n == HTTP_HEADERS_MAX) {
            assert_int_equal(res, PARSE_DONE);
            assert_int_equal(req.n_headers, HTTP_HEADERS_MAX);
        } else {
            assert_int_equal(res, PARSE_INVALID);
            assert_int_equal(req.error_status, 431);
        }
    }
}

/* A head that never ends: NEED_MORE below the limit, 431 at it. */
static void test_request_head_limit(void **state)
{
    static char head[HEAD_MAX];
    struct http_request req;
    size_t consumed;

    size_t len = (size_t)snprintf(head, sizeof(head), "GET http://a.test/ HTTP/1.1\r\nX: ");
    memset(head + len, 'a', sizeof(head) - len);
    assert_int_equal(parse_request_checked(head, 1000, 1001, &req, &consumed), PARSE_NEED_MORE);
    assert_int_equal(parse_request_checked(head, 1001, 1001, &req, &consumed), PARSE_INVALID);
    assert_int_equal(req.error_status, 431);
    assert_int_equal(parse_request_checked(head, sizeof(head), 1001, &req, &consumed),
                     PARSE_INVALID);
    assert_int_equal(req.error_status, 431);
    assert_int_equal(parse_request_checked(NULL, 0, 1001, &req, &consumed), PARSE_NEED_MORE);
}

/* ---- rewriting request heads --------------------------------------------------------------- */

struct rewrite_case {
    const char *name;
    const char *in;
    enum http_connection conn;
    const char *want; /* NULL: not rewritable (0) */
};

static const struct rewrite_case request_rewrites[] = {
    {"plain",
     "GET http://example.test/a?b HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\n"
     "Accept: */*\r\n\r\n",
     HTTP_CONNECTION_NONE,
     "GET /a?b HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\nAccept: */*\r\n"
     "Via: 1.1 geoproxy\r\n\r\n"},
    {"host added", "GET http://example.test:8080 HTTP/1.1\r\nAccept: */*\r\n\r\n",
     HTTP_CONNECTION_NONE,
     "GET / HTTP/1.1\r\nHost: example.test:8080\r\nAccept: */*\r\nVia: 1.1 geoproxy\r\n\r\n"},
    {"host replaced", "GET http://right.test/ HTTP/1.1\r\nHost: wrong.test\r\nHOST: w2\r\n\r\n",
     HTTP_CONNECTION_NONE, "GET / HTTP/1.1\r\nHost: right.test\r\nVia: 1.1 geoproxy\r\n\r\n"},
    {"ipv6 host", "GET http://[::1]:81/x HTTP/1.1\r\n\r\n", HTTP_CONNECTION_NONE,
     "GET /x HTTP/1.1\r\nHost: [::1]:81\r\nVia: 1.1 geoproxy\r\n\r\n"},
    {"query without path", "GET http://a.test?x=1 HTTP/1.1\r\n\r\n", HTTP_CONNECTION_NONE,
     "GET /?x=1 HTTP/1.1\r\nHost: a.test\r\nVia: 1.1 geoproxy\r\n\r\n"},
    {"options without path", "OPTIONS http://a.test HTTP/1.1\r\n\r\n", HTTP_CONNECTION_NONE,
     "OPTIONS * HTTP/1.1\r\nHost: a.test\r\nVia: 1.1 geoproxy\r\n\r\n"},
    {"fragment dropped", "GET http://a.test/p#f HTTP/1.1\r\n\r\n", HTTP_CONNECTION_NONE,
     "GET /p HTTP/1.1\r\nHost: a.test\r\nVia: 1.1 geoproxy\r\n\r\n"},
    {"hop-by-hop stripped",
     "POST http://a.test/f HTTP/1.1\r\nConnection: keep-alive, X-Secret\r\n"
     "Proxy-Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-T\r\n"
     "Upgrade: websocket\r\nProxy-Authorization: Basic dTpw\r\nProxy-Authenticate: Basic\r\n"
     "X-Secret: 1\r\nx-secret: 2\r\nX-Secretive: kept\r\nCookie: a=b\r\n"
     "Transfer-Encoding: chunked\r\n\r\n",
     HTTP_CONNECTION_NONE,
     "POST /f HTTP/1.1\r\nHost: a.test\r\nX-Secretive: kept\r\nCookie: a=b\r\n"
     "Transfer-Encoding: chunked\r\nVia: 1.1 geoproxy\r\n\r\n"},
    {"framing kept when listed",
     "POST http://a.test/ HTTP/1.1\r\nConnection: Content-Length, Transfer-Encoding, Host\r\n"
     "Content-Length: 3\r\n\r\n",
     HTTP_CONNECTION_NONE,
     "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nVia: 1.1 geoproxy\r\n\r\n"},
    {"two connection fields",
     "GET http://a.test/ HTTP/1.1\r\nConnection: X-A\r\nX-A: 1\r\nX-B: 2\r\nConnection: "
     "x-b\r\n\r\n",
     HTTP_CONNECTION_NONE, "GET / HTTP/1.1\r\nHost: a.test\r\nVia: 1.1 geoproxy\r\n\r\n"},
    {"end-to-end kept in order",
     "GET http://a.test/ HTTP/1.1\r\nX-1:one\r\nVia: 1.1 other\r\nX-2:  two  \r\n\r\n",
     HTTP_CONNECTION_NONE,
     "GET / HTTP/1.1\r\nHost: a.test\r\nX-1: one\r\nVia: 1.1 other\r\nX-2: two\r\n"
     "Via: 1.1 geoproxy\r\n\r\n"},
    {"1.0 keep-alive upstream", "GET http://a.test/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
     HTTP_CONNECTION_KEEP_ALIVE,
     "GET / HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\nVia: 1.0 geoproxy\r\n\r\n"},
    {"close asked", "GET http://a.test/ HTTP/1.1\r\n\r\n", HTTP_CONNECTION_CLOSE,
     "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\nVia: 1.1 geoproxy\r\n\r\n"},
    {"connect is not rewritten", "CONNECT a.test:443 HTTP/1.1\r\n\r\n", HTTP_CONNECTION_NONE, NULL},
    {"origin-form is not rewritten", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_CONNECTION_NONE,
     NULL},
};

static void test_request_rewrite(void **state)
{
    struct http_request req;
    size_t consumed;
    char out[OUT_MAX];

    for (size_t i = 0; i < N_ELEMS(request_rewrites); i++) {
        const struct rewrite_case *tc = &request_rewrites[i];
        print_message("rewrite request: %s\n", tc->name);
        assert_int_equal(parse_request_checked(tc->in, strlen(tc->in), HEAD_MAX, &req, &consumed),
                         PARSE_DONE);
        size_t n = http_rewrite_request(out, sizeof(out), &req, tc->conn);
        if (tc->want == NULL) {
            assert_int_equal(n, 0);
            continue;
        }
        assert_int_equal(n, strlen(tc->want));
        assert_memory_equal(out, tc->want, n);
        assert_true(n <= strlen(tc->in) + HTTP_REWRITE_SLACK);
        for (size_t cap = 0; cap < n; cap++)
            assert_int_equal(http_rewrite_request(out, cap, &req, tc->conn), 0);
        assert_int_equal(http_rewrite_request(out, n, &req, tc->conn), n);
    }
}

/* ---- response heads ----------------------------------------------------------------------------
 */

struct response_case {
    const char *name;
    const char *bytes;
    bool head_request;
    enum parse_result res;
    const char *want; /* "status reason body ka v n" */
};

static const struct response_case response_cases[] = {
    {"length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false, PARSE_DONE,
     "200 OK body=length:3 ka=1 v=1.1 n=1"},
    {"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, PARSE_DONE,
     "200 OK body=chunked ka=1 v=1.1 n=1"},
    {"until close", "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", false, PARSE_DONE,
     "200 OK body=close ka=0 v=1.1 n=1"},
    {"gzip until close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, PARSE_DONE,
     "200 OK body=close ka=0 v=1.1 n=1"},
    {"answer to HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true, PARSE_DONE,
     "200 OK body=none ka=1 v=1.1 n=1"},
    {"answer to HEAD without length", "HTTP/1.1 200 OK\r\n\r\n", true, PARSE_DONE,
     "200 OK body=none ka=1 v=1.1 n=0"},
    {"204 with length", "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", false, PARSE_DONE,
     "204 No Content body=none ka=1 v=1.1 n=1"},
    {"304 with length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n", false, PARSE_DONE,
     "304 Not Modified body=none ka=1 v=1.1 n=1"},
    {"100 continue", "HTTP/1.1 100 Continue\r\n\r\n", false, PARSE_DONE,
     "100 Continue body=none ka=1 v=1.1 n=0"},
    {"zero length", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, PARSE_DONE,
     "200 OK body=none ka=1 v=1.1 n=1"},
    {"close", "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", false,
     PARSE_DONE, "404 Not Found body=length:1 ka=0 v=1.1 n=2"},
    {"1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
     false, PARSE_DONE, "200 OK body=length:1 ka=1 v=1.0 n=2"},
    {"1.0 default", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false, PARSE_DONE,
     "200 OK body=length:1 ka=0 v=1.0 n=1"},
    {"no reason", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false, PARSE_DONE,
     "200  body=none ka=1 v=1.1 n=1"},
    {"status out of range", "HTTP/1.1 999 X\r\nContent-Length: 0\r\n\r\n", false, PARSE_INVALID,
     NULL},
    {"http/2", "HTTP/2.0 200 OK\r\n\r\n", false, PARSE_INVALID, NULL},
    {"length and chunked",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", false,
     PARSE_INVALID, NULL},
    {"bad name", "HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n", false, PARSE_INVALID, NULL},
    {"empty Transfer-Encoding, length",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\nContent-Length: 5\r\n\r\n", false, PARSE_INVALID,
     NULL},
    {"chunked then tab", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n", false,
     PARSE_INVALID, NULL},
    {"chunked, then chunked and tab",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\t\r\n\r\n", false,
     PARSE_INVALID, NULL},
    {"gzip then chunked in two fields",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", false,
     PARSE_DONE, "200 OK body=chunked ka=1 v=1.1 n=2"},
    {"folding", "HTTP/1.1 200 OK\r\nX: 1\r\n 2\r\n\r\n", false, PARSE_INVALID, NULL},
    {"not http", "SSH-2.0-OpenSSH_9.2\r\n", false, PARSE_INVALID, NULL},
};

static void describe_response(char *desc, const struct http_response *r)
{
    desc_append(desc, "%u %.*s ", r->status, (int)r->reason_len, r->reason);
    desc_append_body(desc, r->body, r->content_length);
    desc_append(desc, " ka=%d v=%u.%u n=%zu", r->keep_alive, r->version_major, r->version_minor,
                r->n_headers);
}

static void test_response_table(void **state)
{
    struct http_response resp;
    size_t consumed;
    char more[OUT_MAX];

    for (size_t i = 0; i < N_ELEMS(response_cases); i++) {
        const struct response_case *tc = &response_cases[i];
        const uint8_t *bytes = (const uint8_t *)tc->bytes;
        size_t len = strlen(tc->bytes);
        char desc[DESC_MAX] = "";
        print_message("response: %s\n", tc->name);
        enum parse_result res =
            http_parse_response(bytes, len, HEAD_MAX, tc->head_request, &resp, &consumed);
        assert_int_equal(res, tc->res);
        if (res == PARSE_DONE) {
            assert_int_equal(consumed, len);
            describe_response(desc, &resp);
            assert_string_equal(desc, tc->want);
        } else {
            assert_int_equal(consumed, 0);
            assert_non_null(resp.error);
        }
        snprintf(more, sizeof(more), "%sabcHTTP/1.1 200 OK\r\n\r\n", tc->bytes);
        res = http_parse_response((const uint8_t *)more, strlen(more), HEAD_MAX, tc->head_request,
                                  &resp, &consumed);
        assert_int_equal(res, tc->res);
        if (res == PARSE_DONE)
            assert_int_equal(consumed, len);
        for (size_t cut = 0; cut < len; cut++) {
            res = http_parse_response(bytes, cut, HEAD_MAX, tc->head_request, &resp, &consumed);
            if (tc->res == PARSE_DONE)
                assert_int_equal(res, PARSE_NEED_MORE);
            else
                assert_int_not_equal(res, PARSE_DONE);
        }
    }
}

static void test_response_head_limit(void **state)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    struct http_response resp;
    size_t consumed;
    size_t len = strlen(head);

    assert_int_equal(
        http_parse_response((const uint8_t *)head, len - 1, len, false, &resp, &consumed),
        PARSE_NEED_MORE);
    assert_int_equal(http_parse_response((const uint8_t *)head, len, len, false, &resp, &consumed),
                     PARSE_DONE);
    assert_int_equal(
        http_parse_response((const uint8_t *)head, len, len - 1, false, &resp, &consumed),
        PARSE_INVALID);
    assert_true(resp.head_too_large); /* the 502 names http_response_header_section_size */
    static const char bad[] = "HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n";
    assert_int_equal(
        http_parse_response((const uint8_t *)bad, strlen(bad), 1024, false, &resp, &consumed),
        PARSE_INVALID);
    assert_false(resp.head_too_large);
}

static const struct rewrite_case response_rewrites[] = {
    {"hop-by-hop stripped",
     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Hop\r\n"
     "Keep-Alive: timeout=5\r\nX-Hop: 1\r\nProxy-Authenticate: Basic\r\nTrailer: X\r\n"
     "Upgrade: h2c\r\nSet-Cookie: a=b\r\n\r\n",
     HTTP_CONNECTION_KEEP_ALIVE,
     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: a=b\r\nConnection: keep-alive\r\n"
     "Via: 1.1 geoproxy\r\n\r\n"},
    {"1.0 closed", "HTTP/1.0 200 OK\r\nServer: x\r\n\r\n", HTTP_CONNECTION_CLOSE,
     "HTTP/1.1 200 OK\r\nServer: x\r\nConnection: close\r\nVia: 1.0 geoproxy\r\n\r\n"},
    {"chunked kept", "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n",
     HTTP_CONNECTION_CLOSE,
     "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
     "Via: 1.1 geoproxy\r\n\r\n"},
    {"interim", "HTTP/1.1 100 Continue\r\n\r\n", HTTP_CONNECTION_NONE,
     "HTTP/1.1 100 Continue\r\nVia: 1.1 geoproxy\r\n\r\n"},
    {"no reason", "HTTP/1.1 204\r\n\r\n", HTTP_CONNECTION_KEEP_ALIVE,
     "HTTP/1.1 204 \r\nConnection: keep-alive\r\nVia: 1.1 geoproxy\r\n\r\n"},
};

static void test_response_rewrite(void **state)
{
    struct http_response resp;
    size_t consumed;
    char out[OUT_MAX];

    for (size_t i = 0; i < N_ELEMS(response_rewrites); i++) {
        const struct rewrite_case *tc = &response_rewrites[i];
        print_message("rewrite response: %s\n", tc->name);
        assert_int_equal(http_parse_response((const uint8_t *)tc->in, strlen(tc->in), HEAD_MAX,
                                             false, &resp, &consumed),
                         PARSE_DONE);
        size_t n = http_rewrite_response(out, sizeof(out), &resp, tc->conn);
        assert_int_equal(n, strlen(tc->want));
        assert_memory_equal(out, tc->want, n);
        for (size_t cap = 0; cap < n; cap++)
            assert_int_equal(http_rewrite_response(out, cap, &resp, tc->conn), 0);
    }
}

/* ---- framing ----------------------------------------------------------------------------------
 */

struct framer_case {
    const char *name;
    const char *bytes; /* one message, then (maybe) bytes of the next */
    bool response;
    bool no_body;
    enum parse_result res; /* after feeding everything */
    size_t message_len;    /* DONE: where the message ends */
    enum parse_result at_eof;
};

#define REQ_POST "POST http://a.test/ HTTP/1.1\r\n"
#define RESP_OK "HTTP/1.1 200 OK\r\n"

static const struct framer_case framer_cases[] = {
    {"request without body", "GET http://a.test/ HTTP/1.1\r\n\r\nNEXT", false, true, PARSE_DONE, 31,
     PARSE_DONE},
    {"request length", REQ_POST "Content-Length: 5\r\n\r\nhelloNEXT", false, false, PARSE_DONE,
     30 + 19 + 2 + 5, PARSE_DONE},
    {"request chunked",
     REQ_POST "Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\nNEXT",
     false, false, PARSE_DONE, 30 + 28 + 2 + 9 + 7 + 3 + 8 + 2, PARSE_DONE},
    {"request length unfinished", REQ_POST "Content-Length: 5\r\n\r\nhel", false, false,
     PARSE_NEED_MORE, 0, PARSE_INVALID},
    {"request bad chunk size", REQ_POST "Transfer-Encoding: chunked\r\n\r\nzz\r\n", false, false,
     PARSE_INVALID, 0, PARSE_INVALID},
    {"response length", RESP_OK "Content-Length: 3\r\n\r\nabcHTTP", true, false, PARSE_DONE,
     17 + 19 + 2 + 3, PARSE_DONE},
    {"response chunked", RESP_OK "Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\nX", true,
     false, PARSE_DONE, 17 + 28 + 2 + 3 + 3 + 3 + 2, PARSE_DONE},
    {"response until close", RESP_OK "\r\nabcdef", true, false, PARSE_NEED_MORE, 0, PARSE_DONE},
    {"response cut short", RESP_OK "Content-Length: 9\r\n\r\nabc", true, false, PARSE_NEED_MORE, 0,
     PARSE_INVALID},
    {"response 304 with length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\nabc", true,
     true, PARSE_DONE, 27 + 19 + 2, PARSE_DONE},
    {"response to HEAD", RESP_OK "Content-Length: 3\r\n\r\nHTTP", true, true, PARSE_DONE,
     17 + 19 + 2, PARSE_DONE},
    {"response head only", RESP_OK "Content-Length: 3\r\n", true, false, PARSE_NEED_MORE, 0,
     PARSE_INVALID},
    {"request chunks with extension",
     REQ_POST "Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3;x=y\r\ncde\r\n0\r\n\r\nNEXT", false,
     false, PARSE_DONE, 30 + 28 + 2 + 3 + 4 + 7 + 5 + 3 + 2, PARSE_DONE},
    {"response chunks and trailer",
     RESP_OK "Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\nT: 1\r\n\r\nX", true,
     false, PARSE_DONE, 17 + 28 + 2 + 3 + 4 + 3 + 5 + 3 + 6 + 2, PARSE_DONE},
    /* Bare CRs inside chunk data are data; only the lines around it must end in CRLF. */
    {"request chunks with CRs in data, extensions and trailers",
     REQ_POST "Transfer-Encoding: chunked\r\n\r\n3;a=\"b c\";d\r\n\rX\r\r\n2;e\r\n\r\r\r\n0;f=1\r\n"
              "T: 1\r\nU:\r\nV: \r\n\r\nNEXT",
     false, false, PARSE_DONE, 30 + 28 + 2 + 13 + 5 + 5 + 4 + 7 + 6 + 4 + 5 + 2, PARSE_DONE},
    {"response chunks with CRs in data, extension and trailer",
     RESP_OK "Transfer-Encoding: chunked\r\n\r\n2;x=y\r\n\r\r\r\n1\r\n\r\r\n0\r\nT:\r\n\r\nX", true,
     false, PARSE_DONE, 17 + 28 + 2 + 7 + 4 + 3 + 3 + 3 + 4 + 2, PARSE_DONE},
    /* What follows the message is not its business, a bare CR included. */
    {"request chunked, next bytes start with a bare CR",
     REQ_POST "Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n\rX", false, false, PARSE_DONE,
     30 + 28 + 2 + 3 + 3 + 3 + 2, PARSE_DONE},
    /* Only chunked bodies have a CRLF after their data; this one is data that looks like it. */
    {"request length, chunk-like body", REQ_POST "Content-Length: 8\r\n\r\n3\r\nabcXXNEXT", false,
     false, PARSE_DONE, 30 + 19 + 2 + 8, PARSE_DONE},
};

/* Feeds bytes in pieces of 'step' bytes (0: all at once) until DONE or INVALID. */
static enum parse_result feed_in_pieces(struct http_framer *f, const char *bytes, size_t len,
                                        size_t step, size_t *total)
{
    enum parse_result res = PARSE_NEED_MORE;
    *total = 0;
    for (size_t off = 0; off < len && res == PARSE_NEED_MORE;) {
        size_t n = step == 0 || len - off < step ? len - off : step, used = 0;
        res = http_framer_feed(f, (const uint8_t *)bytes + off, n, &used);
        if (res == PARSE_NEED_MORE)
            assert_int_equal(used, n);
        if (res == PARSE_INVALID)
            assert_int_equal(used, 0);
        assert_true(used <= n);
        *total += used;
        off += n;
    }
    return res;
}

static void check_framer_split(const struct framer_case *tc, size_t split)
{
    struct http_framer f;
    size_t len = strlen(tc->bytes), a = 0, b = 0;

    http_framer_init(&f, tc->response, tc->no_body);
    enum parse_result res = feed_in_pieces(&f, tc->bytes, split, 0, &a);
    if (res == PARSE_NEED_MORE)
        res = feed_in_pieces(&f, tc->bytes + split, len - split, 0, &b);
    assert_int_equal(res, tc->res);
    if (res == PARSE_DONE)
        assert_int_equal(a + b, tc->message_len);
}

static void test_framer_table(void **state)
{
    for (size_t i = 0; i < N_ELEMS(framer_cases); i++) {
        const struct framer_case *tc = &framer_cases[i];
        size_t len = strlen(tc->bytes), total = 0;
        struct http_framer f;

        print_message("framer: %s\n", tc->name);
        for (size_t step = 0; step <= 1; step++) {
            http_framer_init(&f, tc->response, tc->no_body);
            assert_int_equal(feed_in_pieces(&f, tc->bytes, len, step, &total), tc->res);
            if (tc->res == PARSE_DONE)
                assert_int_equal(total, tc->message_len);
            if (tc->res != PARSE_INVALID)
                assert_int_equal(http_framer_finish(&f), tc->at_eof);
        }
        for (size_t split = 0; split <= len; split++)
            check_framer_split(tc, split);
    }
}

/* Chunk data not followed by exactly CRLF (RFC 9112 §7.1). llhttp 8.1 skips any two bytes
 * there, so a server that reads a bare LF or CR as the line end sees other chunks than the
 * proxy: 'good' is what the framer may accept, 'bad' starts with the byte it must refuse. */
struct crlf_case {
    const char *name;
    bool response;
    const char *good;
    const char *bad;
};

#define REQ_CHUNKED REQ_POST "Transfer-Encoding: chunked\r\n\r\n"
#define RESP_CHUNKED RESP_OK "Transfer-Encoding: chunked\r\n\r\n"

static const struct crlf_case crlf_cases[] = {
    {"req data then two other bytes", false, REQ_CHUNKED "3\r\nabc", "XX0\r\n\r\n"},
    {"req data then bare LF", false, REQ_CHUNKED "3\r\nabc", "\n10\r\n\r\n"},
    {"req data then bare CR", false, REQ_CHUNKED "3\r\nabc\r", "10\r\n\r\n"},
    {"req data then LF CR", false, REQ_CHUNKED "3\r\nabc", "\n\r0\r\n\r\n"},
    {"req second chunk then other bytes", false, REQ_CHUNKED "1\r\na\r\n2;e=1\r\nbc",
     "XY0\r\n\r\n"},
    {"resp data then two other bytes", true, RESP_CHUNKED "3\r\nabc", "XX0\r\n\r\n"},
    {"resp data then bare LF", true, RESP_CHUNKED "3\r\nabc", "\n10\r\n\r\n"},
    {"resp data then bare CR", true, RESP_CHUNKED "3\r\nabc\r", "10\r\n\r\n"},
};

/* Whole, byte by byte and split in two anywhere: INVALID, and never a byte accepted from 'bad'
 * on (callers forward what a feed says it consumed). */
static void check_framer_refuses(const struct crlf_case *tc)
{
    char bytes[256];
    size_t good = strlen(tc->good), len = good + strlen(tc->bad), total = 0, a = 0, b = 0;
    struct http_framer f;

    print_message("framer: %s\n", tc->name);
    assert_true(len < sizeof(bytes));
    snprintf(bytes, sizeof(bytes), "%s%s", tc->good, tc->bad);
    for (size_t step = 0; step <= 1; step++) {
        http_framer_init(&f, tc->response, false);
        assert_int_equal(feed_in_pieces(&f, bytes, len, step, &total), PARSE_INVALID);
        assert_int_equal(total, step == 0 ? 0 : good);
        assert_int_equal(http_framer_finish(&f), PARSE_INVALID);
    }
    for (size_t split = 0; split <= len; split++) {
        http_framer_init(&f, tc->response, false);
        enum parse_result res = feed_in_pieces(&f, bytes, split, 0, &a);
        b = 0;
        if (res == PARSE_NEED_MORE)
            res = feed_in_pieces(&f, bytes + split, len - split, 0, &b);
        assert_int_equal(res, PARSE_INVALID);
        assert_int_equal(a + b, split <= good ? split : 0);
    }
}

static void test_framer_chunk_crlf(void **state)
{
    for (size_t i = 0; i < N_ELEMS(crlf_cases); i++)
        check_framer_refuses(&crlf_cases[i]);
}

/* A CR outside chunk data not followed by LF: chunk lines and trailer fields end in CRLF (RFC
 * 9112 §7.1). llhttp 8.1 skips any byte after the CR that ends a chunk-size line (with or
 * without extensions, the last chunk's too), after the CR that ends the trailer section, and
 * after the CR behind a trailer field with an empty or blank value, so "3\rXabc" is a 3-byte
 * chunk to it and something else to a server that reads a bare CR differently. */
static const struct crlf_case bare_cr_cases[] = {
    {"req size CR X", false, REQ_CHUNKED "3\r", "Xabc\r\n0\r\n\r\n"},
    {"req size CR CR", false, REQ_CHUNKED "3\r", "\rabc\r\n0\r\n\r\n"},
    {"req extension name CR", false, REQ_CHUNKED "3;e\r", "Xabc\r\n0\r\n\r\n"},
    {"req extension value CR", false, REQ_CHUNKED "3;e=v\r", "Xabc\r\n0\r\n\r\n"},
    {"req quoted extension CR", false, REQ_CHUNKED "3;e=\"v\"\r", "Xabc\r\n0\r\n\r\n"},
    {"req second size CR", false, REQ_CHUNKED "1\r\na\r\n2\r", "Xbc\r\n0\r\n\r\n"},
    {"req last chunk CR", false, REQ_CHUNKED "3\r\nabc\r\n0\r", "X\r\n"},
    {"req last chunk extension CR", false, REQ_CHUNKED "0;e=1\r", "X\r\n"},
    {"req trailer section CR", false, REQ_CHUNKED "0\r\n\r", "X"},
    {"req trailer section CR after field", false, REQ_CHUNKED "0\r\nT: 1\r\n\r", "X"},
    {"req empty trailer value CR", false, REQ_CHUNKED "0\r\nT:\r", "XU: 1\r\n\r\n"},
    {"req blank trailer value CR", false, REQ_CHUNKED "0\r\nT: \r", "X\r\n\r\n"},
    {"resp size CR X", true, RESP_CHUNKED "3\r", "Xabc\r\n0\r\n\r\n"},
    {"resp extension CR", true, RESP_CHUNKED "3;e=v\r", "Xabc\r\n0\r\n\r\n"},
    {"resp last chunk CR", true, RESP_CHUNKED "3\r\nabc\r\n0\r", "X\r\n"},
    {"resp empty trailer value CR", true, RESP_CHUNKED "0\r\nT:\r", "XU: 1\r\n\r\n"},
    {"resp trailer section CR", true, RESP_CHUNKED "0\r\nT: 1\r\n\r", "X"},
};

static void test_framer_bare_cr(void **state)
{
    for (size_t i = 0; i < N_ELEMS(bare_cr_cases); i++)
        check_framer_refuses(&bare_cr_cases[i]);
}

struct feeds_case {
    const char *name;
    bool response;
    enum parse_result last;
    const char *feeds[6]; /* all but the last: NEED_MORE, wholly consumed */
};

static const struct feeds_case feeds_cases[] = {
    {"req data CR|LF", false, PARSE_DONE, {REQ_CHUNKED "5\r\nab", "cde\r", "\n0\r\n\r\n"}},
    {"req data|CR|LF|", false, PARSE_DONE, {REQ_CHUNKED "5\r\na", "bcde", "\r", "\n", "0\r\n\r\n"}},
    {"resp data CR|LF", true, PARSE_DONE, {RESP_CHUNKED "5\r\nab", "cde\r", "\n0\r\n\r\n"}},
    {"req data CR|X", false, PARSE_INVALID, {REQ_CHUNKED "5\r\nab", "cde\r", "X0\r\n\r\n"}},
    {"req data|CR|CR", false, PARSE_INVALID, {REQ_CHUNKED "5\r\nab", "cde", "\r", "\r10\r\n\r\n"}},
    {"resp data|LF", true, PARSE_INVALID, {RESP_CHUNKED "5\r\nab", "cde", "\n10\r\n\r\n"}},
};

/* A chunk's data over several feeds, its CRLF split between two more ('|' in a name: where one
 * feed ends). */
static void test_framer_crlf_feeds(void **state)
{
    for (size_t i = 0; i < N_ELEMS(feeds_cases); i++) {
        const struct feeds_case *tc = &feeds_cases[i];
        struct http_framer f;
        size_t n = 0, used = 99;

        print_message("framer: %s\n", tc->name);
        while (n < N_ELEMS(tc->feeds) && tc->feeds[n] != NULL)
            n++;
        http_framer_init(&f, tc->response, false);
        for (size_t k = 0; k < n; k++) {
            size_t len = strlen(tc->feeds[k]);
            enum parse_result res = http_framer_feed(&f, (const uint8_t *)tc->feeds[k], len, &used);
            assert_int_equal(res, k + 1 < n ? PARSE_NEED_MORE : tc->last);
            assert_int_equal(used, res == PARSE_INVALID ? 0 : len);
        }
    }
}

static void test_framer_after_done(void **state)
{
    struct http_framer f;
    size_t used = 99;

    http_framer_init(&f, true, false);
    assert_int_equal(http_framer_finish(&f), PARSE_INVALID); /* no message at all */
    http_framer_init(&f, false, true);
    assert_int_equal(http_framer_feed(&f, (const uint8_t *)"", 0, &used), PARSE_NEED_MORE);
    assert_int_equal(used, 0);
    const char *get = "GET http://a/ HTTP/1.1\r\n\r\n";
    assert_int_equal(http_framer_feed(&f, (const uint8_t *)get, strlen(get), &used), PARSE_DONE);
    assert_int_equal(used, strlen(get));
    assert_int_equal(http_framer_feed(&f, (const uint8_t *)get, strlen(get), &used), PARSE_DONE);
    assert_int_equal(used, 0);
}

/* ---- Basic credentials
 * --------------------------------------------------------------------------- */

struct cred_case {
    const char *value;
    enum parse_result res;
    const char *user;
    const char *password;
};

static const struct cred_case cred_cases[] = {
    {"Basic dXNlcjpwYXNz", PARSE_DONE, "user", "pass"},
    {"basic dXNlcjpwYXNz", PARSE_DONE, "user", "pass"},
    {"  BASIC   dXNlcjpwYXNz \t", PARSE_DONE, "user", "pass"},
    {"Basic dXNlcjpwYXNzOndpdGg6Y29sb25z", PARSE_DONE, "user", "pass:with:colons"},
    {"Basic OnBhc3M=", PARSE_DONE, "", "pass"},
    {"Basic dXNlcjo=", PARSE_DONE, "user", ""},
    {"Basic dXNlcjpwYQ", PARSE_DONE, "user", "pa"},
    {"Basic dXNlcjpwYQ==", PARSE_DONE, "user", "pa"},
    {"Basic w6lsw6g6bcO2dA==", PARSE_DONE, "\xc3\xa9l\xc3\xa8", "m\xc3\xb6t"},
    {"Basic dXNlcg==", PARSE_INVALID, NULL, NULL},      /* "user": no colon */
    {"Basic dXNl*jpwYXNz", PARSE_INVALID, NULL, NULL},  /* not base64 */
    {"Basic dXNlcjpwYXNz=", PARSE_INVALID, NULL, NULL}, /* misplaced padding */
    {"Basic dXNlcjpwYQ===", PARSE_INVALID, NULL, NULL}, /* three pads */
    {"Basic =dXNlcjpw", PARSE_INVALID, NULL, NULL},     /* padding first */
    {"Basic dXNlc", PARSE_INVALID, NULL, NULL},         /* one char too many */
    {"Basic dXNl cjpw", PARSE_INVALID, NULL, NULL},     /* space inside */
    {"Bearer dXNlcjpwYXNz", PARSE_INVALID, NULL, NULL}, /* other scheme */
    {"Basicx dXNlcjpwYXNz", PARSE_INVALID, NULL, NULL}, /* not "Basic" */
    {"Basic", PARSE_INVALID, NULL, NULL},
    {"Basic ", PARSE_INVALID, NULL, NULL},
    {"", PARSE_INVALID, NULL, NULL},
};

static void test_credentials_table(void **state)
{
    struct http_credentials cred;

    for (size_t i = 0; i < N_ELEMS(cred_cases); i++) {
        const struct cred_case *tc = &cred_cases[i];
        print_message("credentials: '%s'\n", tc->value);
        enum parse_result res = http_parse_basic_credentials(tc->value, strlen(tc->value), &cred);
        assert_int_equal(res, tc->res);
        if (res != PARSE_DONE)
            continue;
        assert_int_equal(cred.user_len, strlen(tc->user));
        assert_string_equal(cred.user, tc->user);
        assert_int_equal(cred.password_len, strlen(tc->password));
        assert_string_equal(cred.password, tc->password);
    }
}

static size_t base64_encode(const uint8_t *in, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[n++] = abc[v >> 18 & 63];
        out[n++] = abc[v >> 12 & 63];
        out[n++] = i + 1 < len ? abc[v >> 6 & 63] : '=';
        out[n++] = i + 2 < len ? abc[v & 63] : '=';
    }
    out[n] = '\0';
    return n;
}

/* Field lengths at the limit pass and one beyond fails; a NUL inside is kept. */
static void test_credentials_limits(void **state)
{
    uint8_t plain[600];
    char value[1000];
    struct http_credentials cred;

    for (size_t user_len = HTTP_CREDENTIAL_MAX; user_len <= HTTP_CREDENTIAL_MAX + 1; user_len++) {
        for (size_t pw_len = HTTP_CREDENTIAL_MAX; pw_len <= HTTP_CREDENTIAL_MAX + 1; pw_len++) {
            memset(plain, 'u', user_len);
            plain[user_len] = ':';
            memset(plain + user_len + 1, 'p', pw_len);
            memcpy(value, "Basic ", 6);
            size_t n = 6 + base64_encode(plain, user_len + 1 + pw_len, value + 6);
            enum parse_result want =
                user_len <= HTTP_CREDENTIAL_MAX && pw_len <= HTTP_CREDENTIAL_MAX ? PARSE_DONE
                                                                                 : PARSE_INVALID;
            assert_int_equal(http_parse_basic_credentials(value, n, &cred), want);
        }
    }
    static const uint8_t with_nul[] = {'u', 0, 'x', ':', 'p', 0, 'w'};
    memcpy(value, "Basic ", 6);
    size_t n = 6 + base64_encode(with_nul, sizeof(with_nul), value + 6);
    assert_int_equal(http_parse_basic_credentials(value, n, &cred), PARSE_DONE);
    assert_int_equal(cred.user_len, 3);
    assert_memory_equal(cred.user, "u\0x", 4);
    assert_int_equal(cred.password_len, 3);
    assert_memory_equal(cred.password, "p\0w", 4);
}

/* ---- the proxy's own replies
 * ----------------------------------------------------------------------- */

struct reply_case {
    const char *name;
    struct http_reply reply;
    const char *want;
};

static const struct reply_case reply_cases[] = {
    {"policy refusal",
     {.status = 403,
      .error = "http_request_denied",
      .details = "blocked by rule 'no-cn': destination in CN",
      .body = "geoproxy: example.test:443 is blocked by rule 'no-cn': destination in CN\n"},
     "HTTP/1.1 403 Forbidden\r\n"
     "Proxy-Status: geoproxy; error=http_request_denied; "
     "details=\"blocked by rule 'no-cn': destination in CN\"\r\n"
     "Content-Type: text/plain\r\nContent-Length: 73\r\nConnection: close\r\n\r\n"
     "geoproxy: example.test:443 is blocked by rule 'no-cn': destination in CN\n"},
    {"refused",
     {.status = 502,
      .error = "connection_refused",
      .details = "connection refused by example.test:80",
      .body = "geoproxy: connection refused by example.test:80\n"},
     "HTTP/1.1 502 Bad Gateway\r\n"
     "Proxy-Status: geoproxy; error=connection_refused; "
     "details=\"connection refused by example.test:80\"\r\n"
     "Content-Type: text/plain\r\nContent-Length: 48\r\nConnection: close\r\n\r\n"
     "geoproxy: connection refused by example.test:80\n"},
    {"challenge kept alive",
     {.status = 407,
      .error = "http_request_denied",
      .body = "auth\n",
      .keep_alive = true,
      .auth_challenge = true},
     "HTTP/1.1 407 Proxy Authentication Required\r\n"
     "Proxy-Status: geoproxy; error=http_request_denied\r\n"
     "Proxy-Authenticate: Basic realm=\"geoproxy\"\r\n"
     "Content-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nauth\n"},
    {"details escaped",
     {.status = 504, .error = "dns_timeout", .details = "a\"b\\c\xc3\xa9\n"},
     "HTTP/1.1 504 Gateway Timeout\r\n"
     "Proxy-Status: geoproxy; error=dns_timeout; details=\"a\\\"b\\\\c???\"\r\n"
     "Content-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
    {"answer to HEAD",
     {.status = 400, .error = "http_request_error", .body = "bad\n", .omit_body = true},
     "HTTP/1.1 400 Bad Request\r\nProxy-Status: geoproxy; error=http_request_error\r\n"
     "Content-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\n"},
    {"no error type",
     {.status = 431},
     "HTTP/1.1 431 Request Header Fields Too Large\r\nProxy-Status: geoproxy\r\n"
     "Content-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
    {"unknown status",
     {.status = 599},
     "HTTP/1.1 599 Error\r\nProxy-Status: geoproxy\r\n"
     "Content-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
};

static void test_reply_table(void **state)
{
    char out[OUT_MAX];

    for (size_t i = 0; i < N_ELEMS(reply_cases); i++) {
        const struct reply_case *tc = &reply_cases[i];
        print_message("reply: %s\n", tc->name);
        size_t n = http_build_reply(out, sizeof(out), &tc->reply);
        assert_int_equal(n, strlen(tc->want));
        assert_memory_equal(out, tc->want, n);
        for (size_t cap = 0; cap < n; cap++)
            assert_int_equal(http_build_reply(out, cap, &tc->reply), 0);
        assert_int_equal(http_build_reply(out, n, &tc->reply), n);
    }
    assert_int_equal(strlen(HTTP_CONNECT_OK), 39);
    assert_string_equal(HTTP_CONNECT_OK, "HTTP/1.1 200 Connection established\r\n\r\n");
}

static void test_reply_details_bounded(void **state)
{
    char details[1000], out[OUT_MAX];
    memset(details, 'd', sizeof(details) - 1);
    details[sizeof(details) - 1] = '\0';
    struct http_reply r = {.status = 502, .error = "proxy_internal_error", .details = details};
    size_t n = http_build_reply(out, sizeof(out), &r);
    assert_true(n > 0 && n < 500);
}

static void test_header_tokens(void **state)
{
    static const struct http_header h[] = {
        {"Connection", 10, "keep-alive,  Upgrade ,", 22},
        {"connection", 10, "x-a", 3},
        {"X-Other", 7, "close", 5},
    };
    assert_true(http_header_has_token(h, 3, "Connection", "upgrade", 7));
    assert_true(http_header_has_token(h, 3, "Connection", "KEEP-ALIVE", 10));
    assert_true(http_header_has_token(h, 3, "Connection", "X-A", 3));
    assert_false(http_header_has_token(h, 3, "Connection", "close", 5));
    assert_false(http_header_has_token(h, 3, "Connection", "keep", 4));
    assert_false(http_header_has_token(h, 3, "Connection", "", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_table),         cmocka_unit_test(test_request_fields),
        cmocka_unit_test(test_request_header_count),  cmocka_unit_test(test_request_head_limit),
        cmocka_unit_test(test_request_rewrite),       cmocka_unit_test(test_response_table),
        cmocka_unit_test(test_response_head_limit),   cmocka_unit_test(test_response_rewrite),
        cmocka_unit_test(test_framer_table),          cmocka_unit_test(test_framer_chunk_crlf),
        cmocka_unit_test(test_framer_bare_cr),        cmocka_unit_test(test_framer_crlf_feeds),
        cmocka_unit_test(test_framer_after_done),     cmocka_unit_test(test_credentials_table),
        cmocka_unit_test(test_credentials_limits),    cmocka_unit_test(test_reply_table),
        cmocka_unit_test(test_reply_details_bounded), cmocka_unit_test(test_header_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
