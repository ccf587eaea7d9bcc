/* libFuzzer target for the HTTP parsers and writers (proxy/http_parse.h). The input is read as
 * a request head, as a response head and as a framed message; whatever is accepted is
 * rewritten, and the rewritten head must parse again to the same request without any
 * hop-by-hop field; the proxy's own replies are built from the input's bytes and parsed back.
 * Any broken promise traps. Built by tests/fuzz/CMakeLists.txt (GEOPROXY_FUZZ=ON), or by hand:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. \
 *       -I/usr/share/include/llhttp tests/fuzz/fuzz_http.c proxy/http_parse.c \
 *       proxy/http_build_parse.c /usr/share/llhttp/llhttp.c /usr/share/llhttp/api.c \
 *       /usr/share/llhttp/http.c -o fuzz_http
 *   ./fuzz_http -max_len=20000 tests/fuzz/corpus/http
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http_parse.h"

#define FUZZ_HEAD_MAX 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static const char *const hop_by_hop[] = {
    "Connection", "Proxy-Connection",   "Keep-Alive", "Proxy-Authorization",
    "TE",         "Proxy-Authenticate", "Trailer",    "Upgrade",
};

/* No hop-by-hop field but the one Connection the rewriter was asked to add. */
static void check_no_hop_by_hop(const struct http_header *h, size_t n, size_t connections)
{
    size_t seen = 0;
    for (size_t i = 0; i < n; i++)
        if (http_find_header(&h[i], 1, "Connection") != NULL)
            seen++;
    CHECK(seen == connections);
    for (size_t i = 1; i < sizeof(hop_by_hop) / sizeof(hop_by_hop[0]); i++)
        CHECK(http_find_header(h, n, hop_by_hop[i]) == NULL);
}

/* "Via: 1.x geoproxy", as the rewriters add it. */
static bool is_own_via(const struct http_header *h)
{
    static const char tail[] = " " HTTP_PROXY_NAME;
    size_t n = sizeof(tail) - 1;

    return http_find_header(h, 1, "Via") != NULL && h->value_len == 3 + n &&
           memcmp(h->value, "1.", 2) == 0 && (h->value[2] == '0' || h->value[2] == '1') &&
           memcmp(h->value + 3, tail, n) == 0;
}

/* The rewritten head of an accepted absolute-form request parses to the same request. */
static void check_rewrite(const struct http_request *req, size_t head_len)
{
    static char out[FUZZ_HEAD_MAX + HTTP_REWRITE_SLACK];
    static struct http_request again;
    size_t consumed = 0;

    size_t n = http_rewrite_request(out, head_len + HTTP_REWRITE_SLACK, req, HTTP_CONNECTION_NONE);
    if (req->form != HTTP_FORM_ABSOLUTE) {
        CHECK(n == 0);
        return;
    }
    CHECK(n > 0);
    if (req->n_headers + 2 > HTTP_HEADERS_MAX) /* Host and Via added: may be too many to parse */
        return;
    CHECK(http_parse_request((const uint8_t *)out, n, sizeof(out), &again, &consumed) ==
          PARSE_DONE);
    CHECK(consumed == n);
    CHECK(again.form == HTTP_FORM_ORIGIN || again.form == HTTP_FORM_ASTERISK);
    CHECK(again.method == req->method);
    CHECK(again.version_minor == req->version_minor);
    CHECK(again.body == req->body && again.content_length == req->content_length);
    CHECK(again.proxy_authorization == NULL);
    const struct http_header *host = http_find_header(again.headers, again.n_headers, "Host");
    CHECK(host != NULL && host->value_len == req->authority_len);
    CHECK(memcmp(host->value, req->authority, req->authority_len) == 0);
    /* No field the client's Connection named, but the framing fields, Host and the proxy's own
     * Via (the client's Via is dropped when Connection names it). */
    for (size_t i = 0; i < again.n_headers; i++)
        CHECK(!http_header_has_token(req->headers, req->n_headers, "Connection",
                                     again.headers[i].name, again.headers[i].name_len) ||
              http_find_header(&again.headers[i], 1, "Content-Length") != NULL ||
              http_find_header(&again.headers[i], 1, "Transfer-Encoding") != NULL ||
              http_find_header(&again.headers[i], 1, "Host") != NULL ||
              is_own_via(&again.headers[i]));
    check_no_hop_by_hop(again.headers, again.n_headers, 0);
}

static void fuzz_request(const uint8_t *data, size_t size, size_t max_head)
{
    static struct http_request req;
    struct http_credentials cred;
    size_t consumed = 1;

    enum parse_result res = http_parse_request(data, size, max_head, &req, &consumed);
    if (res != PARSE_DONE) {
        CHECK(consumed == 0);
        if (res == PARSE_INVALID)
            CHECK(req.error != NULL &&
                  (req.error_status == 400 || req.error_status == 431 || req.error_status == 505));
        if (res == PARSE_NEED_MORE)
            CHECK(size < max_head);
        return;
    }
    CHECK(consumed > 0 && consumed <= size && consumed <= max_head);
    CHECK(req.version_major == 1 && req.version_minor <= 1);
    CHECK(req.n_headers <= HTTP_HEADERS_MAX);
    CHECK(strlen(req.target.host) < TARGET_HOST_MAX);
    if (req.form == HTTP_FORM_ABSOLUTE || req.form == HTTP_FORM_AUTHORITY)
        CHECK(req.target.port != 0);
    size_t head_len = consumed;
    if (req.proxy_authorization != NULL &&
        http_parse_basic_credentials(req.proxy_authorization->value,
                                     req.proxy_authorization->value_len, &cred) == PARSE_DONE)
        CHECK(cred.user_len <= HTTP_CREDENTIAL_MAX && cred.password_len <= HTTP_CREDENTIAL_MAX);
    check_rewrite(&req, head_len);

    /* One byte short of the head is a valid prefix. */
    CHECK(http_parse_request(data, head_len - 1, max_head, &req, &consumed) == PARSE_NEED_MORE);
}

static void fuzz_response(const uint8_t *data, size_t size, bool head_request)
{
    static struct http_response resp;
    static char out[FUZZ_HEAD_MAX + HTTP_REWRITE_SLACK];
    size_t consumed = 1;

    enum parse_result res =
        http_parse_response(data, size, FUZZ_HEAD_MAX, head_request, &resp, &consumed);
    if (res != PARSE_DONE) {
        CHECK(consumed == 0);
        return;
    }
    CHECK(consumed > 0 && consumed <= size);
    CHECK(resp.status >= 100 && resp.status <= 599);
    if (head_request)
        CHECK(resp.body == HTTP_BODY_NONE);
    size_t n =
        http_rewrite_response(out, consumed + HTTP_REWRITE_SLACK, &resp, HTTP_CONNECTION_CLOSE);
    CHECK(n > 0);
    if (resp.n_headers + 2 > HTTP_HEADERS_MAX) /* Connection and Via added */
        return;
    static struct http_response again;
    CHECK(http_parse_response((const uint8_t *)out, n, sizeof(out), head_request, &again,
                              &consumed) == PARSE_DONE);
    CHECK(consumed == n && again.status == resp.status && again.body == resp.body);
    check_no_hop_by_hop(again.headers, again.n_headers, 1);
}

/* The framer finds the same end whether it gets the bytes whole or split in two. */
static void fuzz_framer(const uint8_t *data, size_t size, bool response, bool no_body, size_t split)
{
    struct http_framer whole, parts;
    size_t used_whole = 0, used_a = 0, used_b = 0;

    http_framer_init(&whole, response, no_body);
    enum parse_result r1 = http_framer_feed(&whole, data, size, &used_whole);
    CHECK(used_whole <= size);
    if (r1 == PARSE_NEED_MORE)
        CHECK(used_whole == size);

    http_framer_init(&parts, response, no_body);
    enum parse_result r2 = http_framer_feed(&parts, data, split, &used_a);
    if (r2 == PARSE_NEED_MORE)
        r2 = http_framer_feed(&parts, data + split, size - split, &used_b);
    CHECK(r1 == r2);
    if (r1 == PARSE_DONE)
        CHECK(used_a + used_b == used_whole);
    if (r1 == PARSE_NEED_MORE)
        CHECK(http_framer_finish(&whole) == http_framer_finish(&parts));
}

/* The proxy's own replies: whatever the details (any bytes) and the body, the reply is one
 * well-formed response with a one-line Proxy-Status of printable ASCII and exactly the body
 * given; a buffer too small by any amount gets nothing. */
static void fuzz_reply(const uint8_t *data, size_t size)
{
    static const unsigned statuses[] = {200, 400, 403, 404, 405, 407, 408, 431,
                                        500, 501, 502, 503, 504, 505, 599};
    static const char *const errors[] = {NULL, "dns_error", "destination_ip_prohibited",
                                         "connection_refused"};
    static char details[512], body[1024], out[2048];
    static struct http_response resp;
    struct http_reply r;
    size_t consumed = 0, half = (size - 1) / 2;
    size_t n_details = half < sizeof(details) - 1 ? half : sizeof(details) - 1;
    size_t n_body = size - 1 - half < sizeof(body) - 1 ? size - 1 - half : sizeof(body) - 1;

    memcpy(details, data + 1, n_details);
    details[n_details] = '\0';
    memcpy(body, data + 1 + half, n_body);
    body[n_body] = '\0';
    memset(&r, 0, sizeof(r));
    r.status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
    r.error = errors[(data[0] >> 4) & 3];
    r.details = data[0] & 0x08 ? NULL : details;
    r.body = data[size - 1] & 0x02 ? NULL : body;
    r.keep_alive = (data[0] & 0x40) != 0;
    r.auth_challenge = (data[0] & 0x80) != 0;
    r.omit_body = (data[size - 1] & 0x01) != 0;
    size_t body_len = r.body != NULL ? strlen(r.body) : 0;

    size_t n = http_build_reply(out, sizeof(out), &r);
    CHECK(n > 0);
    CHECK(http_parse_response((const uint8_t *)out, n, sizeof(out), r.omit_body, &resp,
                              &consumed) == PARSE_DONE);
    CHECK(resp.status == r.status);
    CHECK(resp.content_length == body_len || resp.body == HTTP_BODY_NONE);
    CHECK(consumed + (r.omit_body ? 0 : body_len) == n);
    CHECK(body_len == 0 || r.omit_body || memcmp(out + consumed, r.body, body_len) == 0);
    const struct http_header *ps = http_find_header(resp.headers, resp.n_headers, "Proxy-Status");
    CHECK(ps != NULL && ps->value_len >= strlen(HTTP_PROXY_NAME));
    CHECK(memcmp(ps->value, HTTP_PROXY_NAME, strlen(HTTP_PROXY_NAME)) == 0);
    for (size_t i = 0; i < ps->value_len; i++)
        CHECK(ps->value[i] >= 0x20 && ps->value[i] < 0x7f);
    CHECK((http_find_header(resp.headers, resp.n_headers, "Proxy-Authenticate") != NULL) ==
          r.auth_challenge);

    size_t small = n > 1 ? data[size - 1] % n : 0; /* exactly that many bytes: ASan sees more */
    char *buf = malloc(small > 0 ? small : 1);
    CHECK(buf != NULL);
    CHECK(http_build_reply(buf, small, &r) == 0);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t small_max = 16 + (size_t)data[0] * 8;
    fuzz_request(data, size, FUZZ_HEAD_MAX);
    fuzz_request(data, size, small_max);
    fuzz_response(data, size, false);
    fuzz_response(data, size, true);
    size_t split = data[size - 1] % (size + 1);
    fuzz_framer(data, size, false, false, split);
    fuzz_framer(data, size, true, false, split);
    fuzz_framer(data, size, true, true, split);
    fuzz_reply(data, size);
    return 0;
}
