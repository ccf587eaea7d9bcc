/* Numbers, durations, addresses, names and spelling suggestions for the configuration language. */
#include "policy/config_value.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "certs/certs.h"
#include "policy/config.h"
#include "policy/config_diag.h"

#define SUGGEST_WORD_MAX 32
#define SUGGEST_DISTANCE_MAX 2

enum config_number_result config_parse_number(const char *s, size_t len, uint64_t *out)
{
    uint64_t value = 0;
    size_t i;

    if (len == 0) {
        return CONFIG_NUMBER_INVALID;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return CONFIG_NUMBER_INVALID;
        }
    }
    for (i = 0; i < len; i++) {
        unsigned digit = (unsigned)(s[i] - '0');

        if (value > (UINT64_MAX - digit) / 10) {
            return CONFIG_NUMBER_TOO_LARGE;
        }
        value = value * 10 + digit;
    }
    *out = value;
    return CONFIG_NUMBER_OK;
}

enum config_number_result config_parse_duration(const char *s, size_t len, uint64_t *ms)
{
    static const struct {
        const char *suffix;
        uint64_t factor;
    } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}, {"", 1000},
    };
    size_t digits = 0;
    size_t i;
    uint64_t value;
    enum config_number_result rc;

    while (digits < len && s[digits] >= '0' && s[digits] <= '9') {
        digits++;
    }
    for (i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t suffix_len = strlen(units[i].suffix);

        if (len - digits != suffix_len || memcmp(s + digits, units[i].suffix, suffix_len) != 0) {
            continue;
        }
        rc = config_parse_number(s, digits, &value);
        if (rc != CONFIG_NUMBER_OK) {
            return rc;
        }
        if (value > UINT64_MAX / units[i].factor) {
            return CONFIG_NUMBER_TOO_LARGE;
        }
        *ms = value * units[i].factor;
        return CONFIG_NUMBER_OK;
    }
    return CONFIG_NUMBER_INVALID;
}

static int address_fail(struct config_value_error *err, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int address_fail(struct config_value_error *err, size_t offset, const char *fmt, ...)
{
    va_list ap;

    err->offset = offset;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

static int address_parse_port(const char *s, size_t len, size_t offset, uint16_t *port,
                              struct config_value_error *err)
{
    char shown[CONFIG_CLIP_SIZE];
    uint64_t value = 0;
    enum config_number_result rc;

    if (len == 0) {
        err->offset = offset;
        snprintf(err->message, sizeof err->message, "missing port after ':'");
        return -1;
    }
    rc = config_parse_number(s, len, &value);
    if (rc == CONFIG_NUMBER_INVALID) {
        return address_fail(err, offset, "invalid port '%s'", config_clip(s, len, shown));
    }
    if (rc == CONFIG_NUMBER_TOO_LARGE || value == 0 || value > 65535) {
        return address_fail(err, offset, "port must be between 1 and 65535, got '%s'",
                            config_clip(s, len, shown));
    }
    *port = (uint16_t)value;
    return 0;
}

static int address_parse_ipv6(const char *s, size_t len, uint16_t default_port,
                              struct sockaddr_storage *out, struct config_value_error *err)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
    const char *close = memchr(s, ']', len);
    char host[INET6_ADDRSTRLEN];
    char shown[CONFIG_CLIP_SIZE];
    size_t host_len;
    size_t after;
    uint16_t port = default_port;

    if (close == NULL) {
        return address_fail(err, 0, "missing ']' after IPv6 address '%s'",
                            config_clip(s, len, shown));
    }
    host_len = (size_t)(close - s) - 1;
    if (host_len == 0 || host_len >= sizeof host) {
        return address_fail(err, 1, "invalid IPv6 address '%s'",
                            config_clip(s + 1, host_len, shown));
    }
    memcpy(host, s + 1, host_len);
    host[host_len] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
        return address_fail(err, 1, "invalid IPv6 address '%s'",
                            config_clip(s + 1, host_len, shown));
    }
    after = (size_t)(close - s) + 1;
    if (after < len) {
        if (s[after] != ':') {
            return address_fail(err, after, "expected ':' and a port after ']', got '%s'",
                                config_clip(s + after, len - after, shown));
        }
        if (address_parse_port(s + after + 1, len - after - 1, after + 1, &port, err) != 0) {
            return -1;
        }
    } else if (default_port == 0) {
        err->offset = len;
        snprintf(err->message, sizeof err->message, "missing port (expected [IPv6]:PORT)");
        return -1;
    }
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    return 0;
}

static int address_parse_ipv4(const char *s, size_t len, uint16_t default_port,
                              struct sockaddr_storage *out, struct config_value_error *err)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)out;
    const char *colon = memchr(s, ':', len);
    char host[INET_ADDRSTRLEN];
    char shown[CONFIG_CLIP_SIZE];
    size_t host_len = colon != NULL ? (size_t)(colon - s) : len;
    uint16_t port = default_port;

    if (colon != NULL && memchr(colon + 1, ':', len - host_len - 1) != NULL) {
        err->offset = 0;
        snprintf(err->message, sizeof err->message,
                 "IPv6 addresses must be written in brackets, e.g. [::1]:1080");
        return -1;
    }
    if (host_len == 0) {
        err->offset = 0;
        snprintf(err->message, sizeof err->message, "missing IP address before ':'");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (host_len >= sizeof host) {
        return address_fail(err, 0, "'%s' is not an IP address (host names are not allowed here)",
                            config_clip(s, host_len, shown));
    }
    memcpy(host, s, host_len);
    host[host_len] = '\0';
    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
        return address_fail(err, 0, "'%s' is not an IP address (host names are not allowed here)",
                            config_clip(s, host_len, shown));
    }
    if (colon != NULL) {
        if (address_parse_port(colon + 1, len - host_len - 1, host_len + 1, &port, err) != 0) {
            return -1;
        }
    } else if (default_port == 0) {
        err->offset = len;
        snprintf(err->message, sizeof err->message, "missing port (expected ADDRESS:PORT)");
        return -1;
    }
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    return 0;
}

int config_parse_address(const char *s, size_t len, uint16_t default_port,
                         struct sockaddr_storage *out, struct config_value_error *err)
{
    if (len > 0 && s[0] == '[') {
        return address_parse_ipv6(s, len, default_port, out, err);
    }
    return address_parse_ipv4(s, len, default_port, out, err);
}

bool config_host_is_valid(const char *host)
{
    enum certs_san_kind kind = certs_san_kind_of(host);

    return kind == CERTS_SAN_IPV4 || kind == CERTS_SAN_IPV6 ||
           (kind == CERTS_SAN_DNS && host[0] != '*');
}

int config_parse_host_port(const char *s, size_t len, char *host, uint16_t *port,
                           struct config_value_error *err)
{
    struct sockaddr_storage ss;
    char shown[CONFIG_CLIP_SIZE];
    const char *colon = len > 0 ? memrchr(s, ':', len) : NULL;
    size_t host_len;

    if (len > 0 && s[0] == '[') {
        if (address_parse_ipv6(s, len, 0, &ss, err) != 0)
            return -1;
        host_len = (size_t)((const char *)memchr(s, ']', len) - s) - 1;
        memcpy(host, s + 1, host_len);
        host[host_len] = '\0';
        *port = ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
        return 0;
    }
    if (colon == NULL)
        return address_fail(err, len, "missing port (expected HOST:PORT)");
    host_len = (size_t)(colon - s);
    if (memchr(s, ':', host_len) != NULL)
        return address_fail(err, 0,
                            "IPv6 addresses must be written in brackets, e.g. [2001:db8::1]:443");
    if (host_len == 0)
        return address_fail(err, 0, "missing host before ':'");
    if (host_len < CONFIG_HOST_MAX) {
        memcpy(host, s, host_len);
        host[host_len] = '\0';
    }
    if (host_len >= CONFIG_HOST_MAX || !config_host_is_valid(host))
        return address_fail(err, 0,
                            "invalid host '%s' (expected an IPv4 address, an IPv6 address in "
                            "brackets or a DNS name)",
                            config_clip(s, host_len, shown));
    return address_parse_port(colon + 1, len - host_len - 1, host_len + 1, port, err);
}

int config_parse_ip(const char *s, size_t len, struct sockaddr_storage *out,
                    struct config_value_error *err)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
    char text[INET6_ADDRSTRLEN];
    char shown[CONFIG_CLIP_SIZE];
    size_t skip = len > 1 && s[0] == '[' && s[len - 1] == ']' ? 1 : 0;

    memset(out, 0, sizeof *out);
    if (len - 2 * skip < sizeof text) {
        memcpy(text, s + skip, len - 2 * skip);
        text[len - 2 * skip] = '\0';
        if (skip == 0 && inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
            in4->sin_family = AF_INET;
            return 0;
        }
        if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
            in6->sin6_family = AF_INET6;
            return 0;
        }
    }
    return address_fail(err, 0,
                        "'%s' is not an IP address (expected an address without a port, e.g. "
                        "192.0.2.10 or 2001:db8::10)",
                        config_clip(s, len, shown));
}

bool config_name_is_valid(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len >= CONFIG_NAME_MAX) {
        return false;
    }
    for (i = 0; i < len; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) {
            return false;
        }
    }
    return true;
}

static size_t min3(size_t a, size_t b, size_t c)
{
    size_t m = a < b ? a : b;

    return m < c ? m : c;
}

/* Optimal string alignment distance; both lengths are at most SUGGEST_WORD_MAX. */
static size_t suggest_distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t d[SUGGEST_WORD_MAX + 1][SUGGEST_WORD_MAX + 1];
    size_t i;
    size_t j;

    for (i = 0; i <= la; i++) {
        d[i][0] = i;
    }
    for (j = 0; j <= lb; j++) {
        d[0][j] = j;
    }
    for (i = 1; i <= la; i++) {
        for (j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;

            d[i][j] = min3(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < d[i][j]) {
                d[i][j] = d[i - 2][j - 2] + 1;
            }
        }
    }
    return d[la][lb];
}

const char *config_suggest(const char *word, size_t len, const char *const *candidates)
{
    const char *best = NULL;
    size_t best_distance = SUGGEST_DISTANCE_MAX + 1;
    size_t i;

    if (len > SUGGEST_WORD_MAX) {
        return NULL;
    }
    for (i = 0; candidates[i] != NULL; i++) {
        size_t clen = strlen(candidates[i]);
        size_t distance;

        if (clen > SUGGEST_WORD_MAX) {
            continue;
        }
        distance = suggest_distance(word, len, candidates[i], clen);
        /* A distance as large as the candidate itself is a rewrite, not a typo. */
        if (distance > 0 && distance < best_distance && distance < clen) {
            best = candidates[i];
            best_distance = distance;
        }
    }
    return best;
}

static bool address_is_wildcard(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) {
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    }
    if (a->ss_family == AF_INET6) {
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
    }
    return false;
}

static uint16_t address_port(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *)a)->sin_port);
    }
    if (a->ss_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
    }
    return 0;
}

bool config_address_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family || address_port(a) != address_port(b)) {
        return false;
    }
    if (a->ss_family == AF_INET) {
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    }
    return false;
}

bool config_address_overlaps(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family || address_port(a) != address_port(b)) {
        return false;
    }
    return config_address_equal(a, b) || address_is_wildcard(a) || address_is_wildcard(b);
}

bool config_address_is_loopback(const struct sockaddr_storage *addr)
{
    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)addr;
        return (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
    }
    if (addr->ss_family != AF_INET6)
        return false;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
    return memcmp(&in6->sin6_addr, &in6addr_loopback, sizeof in6addr_loopback) == 0;
}
