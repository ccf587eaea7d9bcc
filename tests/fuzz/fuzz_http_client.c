/* libFuzzer target for proxy/http_client_parse.h and proxy/http_control_parse.h. The input is
 * read as a response head from a parent proxy (answering CONNECT, and answering a control GET),
 * as a request target the exit classifies, as Geoproxy-Egress and Geoproxy-Addresses values, and
 * as a host, credentials and a DNS name for the builders. Broken promises trap:
 *   - *consumed is 0 unless DONE, within 1..len when DONE, unchanged by bytes after the head, and
 *     every shorter prefix of a head is NEED_MORE; a 2xx answer to CONNECT has no body;
 *   - picked fields point inside the input, and repeated Geoproxy fields are never DONE;
 *   - a RESOLVE target yields a valid, lower-case name that builds a request classified the same;
 *   - addresses that parse build a reply that parses back to the same addresses;
 *   - a CONNECT the builder writes is read by the server side's request parser to the same port
 *     and credentials; builders never write past out_len and say -ENOBUFS when it is too small.
 * Build: tests/fuzz/CMakeLists.txt (GEOPROXY_FUZZ=ON). Seeds: tests/fuzz/corpus/http_client/. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "proxy/http_client_parse.h"
#include "proxy/http_control_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define FUZZ_HEAD_MAX 16384
#define PREFIX_CHECK_MAX 2048 /* every prefix is parsed: keep it quadratic in something small */
#define OUT_MAX 4096

static bool inside(const char *p, size_t len, const uint8_t *buf, size_t buf_len)
{
    return p == NULL ? len == 0
                     : (const uint8_t *)p >= buf && (const uint8_t *)p + len <= buf + buf_len;
}

static enum parse_result run_response(const uint8_t *buf, size_t len, bool answers_connect,
                                      size_t *consumed)
{
    static struct http_client_response r;
    enum parse_result res =
        http_client_parse_response(buf, len, FUZZ_HEAD_MAX, answers_connect, &r, consumed);

    if (res != PARSE_DONE) {
        CHECK(*consumed == 0);
        CHECK((res == PARSE_INVALID) == (r.error != NULL));
        return res;
    }
    CHECK(*consumed >= 1 && *consumed <= len);
    CHECK(r.head.status >= 100 && r.head.status <= 599);
    CHECK(!answers_connect || r.head.status / 100 != 2 || r.head.body == HTTP_BODY_NONE);
    CHECK(inside(r.proxy_status, r.proxy_status_len, buf, *consumed));
    CHECK(inside(r.egress, r.egress_len, buf, *consumed));
    CHECK(inside(r.addresses, r.addresses_len, buf, *consumed));
    size_t egress_fields = 0;
    for (size_t i = 0; i < r.head.n_headers; i++)
        egress_fields += http_find_header(&r.head.headers[i], 1, HTTP_EGRESS_FIELD) != NULL;
    CHECK(egress_fields <= 1 && (egress_fields == 1) == (r.egress != NULL));
    if (r.egress != NULL) {
        struct sockaddr_storage ss;
        (void)http_control_parse_egress(r.egress, r.egress_len, &ss);
    }
    return res;
}

static void check_response(const uint8_t *data, size_t size, bool answers_connect)
{
    size_t consumed, again;

    if (run_response(data, size, answers_connect, &consumed) != PARSE_DONE ||
        size > PREFIX_CHECK_MAX)
        return;
    for (size_t n = 0; n <= consumed; n++) {
        uint8_t *copy = n > 0 ? malloc(n) : NULL;
        CHECK(n == 0 || copy != NULL);
        if (n > 0)
            memcpy(copy, data, n);
        enum parse_result r = run_response(copy, n, answers_connect, &again);
        free(copy);
        CHECK(n < consumed ? r == PARSE_NEED_MORE : (r == PARSE_DONE && again == consumed));
    }
}

/* Runs a text builder with exactly 'room' bytes of heap. */
static int build_exact(int (*fn)(char *, size_t, const void *), const void *arg, size_t room,
                       char *copy_out)
{
    char *buf = malloc(room > 0 ? room : 1);
    CHECK(buf != NULL);
    int n = fn(room > 0 ? buf : NULL, room, arg);
    CHECK(n == -EINVAL || n == -ENOBUFS || (n >= 0 && (size_t)n < room && buf[n] == '\0'));
    if (n > 0)
        memcpy(copy_out, buf, (size_t)n + 1);
    free(buf);
    return n;
}

/* Generous, exact (length + NUL) and one byte short. */
static int build_checked(int (*fn)(char *, size_t, const void *), const void *arg, char *out)
{
    static char again[OUT_MAX];
    int n = build_exact(fn, arg, OUT_MAX, out);
    if (n > 0) {
        CHECK(build_exact(fn, arg, (size_t)n + 1, again) == n);
        CHECK(memcmp(again, out, (size_t)n) == 0);
        CHECK(build_exact(fn, arg, (size_t)n, again) == -ENOBUFS);
    }
    return n;
}

struct connect_arg {
    const char *host;
    uint16_t port;
    const struct http_credentials *creds;
};

static int build_connect(char *out, size_t out_len, const void *arg)
{
    const struct connect_arg *c = arg;
    return http_client_build_connect(out, out_len, c->host, c->port, c->creds, false);
}

static int build_resolve_request(char *out, size_t out_len, const void *arg)
{
    return http_control_build_resolve_request(out, out_len, arg);
}

struct addresses_arg {
    const struct sockaddr_storage *addrs;
    size_t n;
};

static int build_resolve_reply(char *out, size_t out_len, const void *arg)
{
    const struct addresses_arg *a = arg;
    return http_control_build_resolve_reply(out, out_len, a->addrs, a->n);
}

static void check_connect(const uint8_t *data, size_t size)
{
    static char out[OUT_MAX];
    static struct http_request req;
    static struct http_credentials creds, parsed;
    char host[TARGET_HOST_MAX + 2];
    size_t host_len = 0, consumed;

    if (size < 3)
        return;
    /* host: bytes up to the first NUL; credentials: the rest, split by the third byte */
    while (3 + host_len < size && host_len < sizeof(host) - 1 && data[3 + host_len] != 0) {
        host[host_len] = (char)data[3 + host_len];
        host_len++;
    }
    host[host_len] = '\0';
    size_t rest = size - 3 - host_len;
    const uint8_t *cred = data + 3 + host_len;
    memset(&creds, 0, sizeof(creds));
    creds.user_len = data[2] < rest ? data[2] : rest;
    creds.password_len =
        rest - creds.user_len > HTTP_CREDENTIAL_MAX ? HTTP_CREDENTIAL_MAX : rest - creds.user_len;
    memcpy(creds.user, cred, creds.user_len);
    memcpy(creds.password, cred + creds.user_len, creds.password_len);

    struct connect_arg c = {host, (uint16_t)(data[0] << 8 | data[1]), data[2] & 1 ? &creds : NULL};
    int n = build_checked(build_connect, &c, out);
    if (n <= 0)
        return;
    CHECK(http_parse_request((const uint8_t *)out, (size_t)n, sizeof(out), &req, &consumed) ==
          PARSE_DONE);
    CHECK(consumed == (size_t)n && req.form == HTTP_FORM_AUTHORITY && req.target.port == c.port);
    CHECK((req.proxy_authorization != NULL) == (c.creds != NULL));
    if (c.creds == NULL)
        return;
    CHECK(http_parse_basic_credentials(req.proxy_authorization->value,
                                       req.proxy_authorization->value_len, &parsed) == PARSE_DONE);
    CHECK(parsed.user_len == creds.user_len && parsed.password_len == creds.password_len);
    CHECK(memcmp(parsed.user, creds.user, creds.user_len) == 0);
    CHECK(memcmp(parsed.password, creds.password, creds.password_len) == 0);
}

static void check_control(const uint8_t *data, size_t size)
{
    static char out[OUT_MAX];
    static struct http_client_response r;
    char name[HTTP_CONTROL_NAME_MAX + 1], again[HTTP_CONTROL_NAME_MAX + 1];
    struct sockaddr_storage addrs[HTTP_CONTROL_ADDRESSES_MAX], back[HTTP_CONTROL_ADDRESSES_MAX];
    size_t n_addrs = 0, n_back = 0, consumed;
    const char *text = (const char *)data;

    enum http_control c = http_control_classify(text, size, name);
    CHECK(c == HTTP_CONTROL_RESOLVE ? http_control_name_is_valid(name, strlen(name))
                                    : name[0] == '\0');
    if (c == HTTP_CONTROL_RESOLVE) {
        for (size_t i = 0; name[i] != '\0'; i++)
            CHECK(!(name[i] >= 'A' && name[i] <= 'Z'));
        int n = build_checked(build_resolve_request, name, out);
        CHECK(n > 0);
        /* "GET " target " HTTP/1.1..." */
        const char *end = strchr(out + 4, ' ');
        CHECK(end != NULL);
        CHECK(http_control_classify(out + 4, (size_t)(end - out - 4), again) == c);
        CHECK(strcmp(again, name) == 0);
    }

    struct sockaddr_storage egress;
    if (http_control_parse_egress(text, size, &egress) == 0) {
        int n = http_control_build_egress_reply(out, sizeof(out), (struct sockaddr *)&egress);
        CHECK(n > 0);
        CHECK(http_client_parse_response((const uint8_t *)out, (size_t)n, FUZZ_HEAD_MAX, false, &r,
                                         &consumed) == PARSE_DONE);
        CHECK(http_control_parse_egress(r.egress, r.egress_len, &back[0]) == 0);
        CHECK(back[0].ss_family == egress.ss_family);
    }

    if (http_control_parse_addresses(text, size, addrs, &n_addrs) != 0) {
        CHECK(n_addrs == 0);
        return;
    }
    CHECK(n_addrs >= 1 && n_addrs <= HTTP_CONTROL_ADDRESSES_MAX);
    struct addresses_arg a = {addrs, n_addrs};
    int n = build_checked(build_resolve_reply, &a, out);
    CHECK(n > 0);
    CHECK(http_client_parse_response((const uint8_t *)out, (size_t)n, FUZZ_HEAD_MAX, false, &r,
                                     &consumed) == PARSE_DONE);
    CHECK(consumed + r.head.content_length == (size_t)n);
    CHECK(http_control_parse_addresses(r.addresses, r.addresses_len, back, &n_back) == 0);
    CHECK(n_back == n_addrs && memcmp(back, addrs, n_addrs * sizeof(addrs[0])) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_response(data, size, true);
    check_response(data, size, false);
    check_control(data, size);
    check_connect(data, size);
    return 0;
}
