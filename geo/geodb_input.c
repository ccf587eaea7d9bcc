/* Line parsers for `geoproxy geodb build` inputs (see geodb_input.h). */
#include "geo/geodb_input.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <netinet/in.h>

/* Longest field copied for address parsing (an IPv6 address is at most 45 characters). */
#define GEODB_FIELD_MAX 64
/* Fields of a line that are looked at; later ones are counted but not kept. */
#define GEODB_FIELDS_KEPT 3
/* Longest part of a field quoted back in a message. */
#define GEODB_QUOTE_MAX 48

struct geodb_field {
    const char *p;
    size_t len;
};

static bool geodb_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static bool geodb_is_letter(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static char geodb_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

static struct geodb_field geodb_trim(const char *p, size_t len)
{
    while (len > 0 && geodb_is_space(*p)) {
        p++;
        len--;
    }
    while (len > 0 && geodb_is_space(p[len - 1]))
        len--;
    return (struct geodb_field){p, len};
}

/* Writes field f into out as printable text (control and non-ASCII bytes become '?'), cut to
 * GEODB_QUOTE_MAX bytes with "..." so a message stays one readable line. */
static void geodb_quote(struct geodb_field f, char *out, size_t out_len)
{
    size_t n = f.len > GEODB_QUOTE_MAX ? GEODB_QUOTE_MAX : f.len;
    size_t i = 0;

    if (out_len == 0)
        return;
    for (; i < n && i + 1 < out_len; i++) {
        unsigned char c = (unsigned char)f.p[i];
        out[i] = (c < 0x20u || c >= 0x7fu) ? '?' : (char)c;
    }
    out[i] = '\0';
    if (f.len > n && i + 4 <= out_len)
        memcpy(out + i, "...", 4);
}

/* Splits [p, p+len) on commas, trimming whitespace. With quotes, a field starting with '"'
 * runs to the closing quote ("" inside is a quote character; the field then keeps its doubled
 * quotes, which no address or country code contains). Keeps the first GEODB_FIELDS_KEPT fields
 * in f and returns how many there are, or -1 with a message for an unterminated quote. */
static long geodb_split_commas(const char *p, size_t len, bool quotes,
                               struct geodb_field f[GEODB_FIELDS_KEPT], char *err, size_t err_len)
{
    size_t n = 0, i = 0;

    for (;;) {
        size_t start = i;
        while (i < len && geodb_is_space(p[i]))
            i++;
        struct geodb_field field;
        if (quotes && i < len && p[i] == '"') {
            size_t q = ++i;
            for (;;) {
                if (i >= len) {
                    snprintf(err, err_len, "unterminated quoted field %zu", n + 1);
                    return -1;
                }
                if (p[i] == '"' && i + 1 < len && p[i + 1] == '"') {
                    i += 2;
                    continue;
                }
                if (p[i] == '"')
                    break;
                i++;
            }
            field = (struct geodb_field){p + q, i - q};
            i++; /* the closing quote */
            while (i < len && geodb_is_space(p[i]))
                i++;
            if (i < len && p[i] != ',') {
                snprintf(err, err_len, "unexpected text after the closing quote of field %zu",
                         n + 1);
                return -1;
            }
        } else {
            while (i < len && p[i] != ',')
                i++;
            field = geodb_trim(p + start, i - start);
        }
        if (n < GEODB_FIELDS_KEPT)
            f[n] = field;
        n++;
        if (i >= len)
            break;
        i++; /* the comma */
    }
    return (long)n;
}

/* Copies f into buf (GEODB_FIELD_MAX) as a C string; false if it is too long or has a NUL. */
static bool geodb_field_cstr(struct geodb_field f, char buf[GEODB_FIELD_MAX])
{
    if (f.len >= GEODB_FIELD_MAX || memchr(f.p, '\0', f.len) != NULL)
        return false;
    memcpy(buf, f.p, f.len);
    buf[f.len] = '\0';
    return true;
}

static void geodb_set_v4(struct sockaddr_storage *ss, const uint8_t bytes[4])
{
    struct sockaddr_in in4;
    memset(&in4, 0, sizeof in4);
    in4.sin_family = AF_INET;
    memcpy(&in4.sin_addr, bytes, 4);
    memset(ss, 0, sizeof *ss);
    memcpy(ss, &in4, sizeof in4);
}

static void geodb_set_v6(struct sockaddr_storage *ss, const uint8_t bytes[16])
{
    struct sockaddr_in6 in6;
    memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    memcpy(&in6.sin6_addr, bytes, 16);
    memset(ss, 0, sizeof *ss);
    memcpy(ss, &in6, sizeof in6);
}

/* The address bytes of ss (4 or 16 of them) and their count. */
static size_t geodb_addr_bytes(const struct sockaddr_storage *ss, uint8_t out[16])
{
    if (ss->ss_family == AF_INET) {
        struct sockaddr_in in4;
        memcpy(&in4, ss, sizeof in4);
        memcpy(out, &in4.sin_addr, 4);
        return 4;
    }
    struct sockaddr_in6 in6;
    memcpy(&in6, ss, sizeof in6);
    memcpy(out, &in6.sin6_addr, 16);
    return 16;
}

/* Parses a textual address of the families allowed (AF_UNSPEC: either). */
static int geodb_parse_addr(struct geodb_field f, int family, struct sockaddr_storage *out,
                            char *err, size_t err_len)
{
    char buf[GEODB_FIELD_MAX], quoted[GEODB_QUOTE_MAX + 4];
    uint8_t bytes[16];

    geodb_quote(f, quoted, sizeof quoted);
    if (f.len == 0) {
        snprintf(err, err_len, "missing address");
        return -1;
    }
    if (geodb_field_cstr(f, buf)) {
        if (family != AF_INET6 && inet_pton(AF_INET, buf, bytes) == 1) {
            geodb_set_v4(out, bytes);
            return 0;
        }
        if (family != AF_INET && inet_pton(AF_INET6, buf, bytes) == 1) {
            geodb_set_v6(out, bytes);
            return 0;
        }
        if (family == AF_INET6 && inet_pton(AF_INET, buf, bytes) == 1) {
            snprintf(err, err_len, "'%s' is an IPv4 address; this file takes IPv6 addresses",
                     quoted);
            return -1;
        }
    }
    snprintf(err, err_len, "'%s' is not an %s address", quoted, family == AF_INET6 ? "IPv6" : "IP");
    return -1;
}

/* Parses a decimal IPv4 address as Tor writes it (16777216 = 1.0.0.0). */
static int geodb_parse_int_addr(struct geodb_field f, struct sockaddr_storage *out, char *err,
                                size_t err_len)
{
    uint64_t v = 0;
    bool ok = f.len > 0 && f.len <= 10;

    for (size_t i = 0; ok && i < f.len; i++) {
        if (f.p[i] < '0' || f.p[i] > '9')
            ok = false;
        else
            v = v * 10u + (uint64_t)(f.p[i] - '0');
    }
    if (!ok || v > UINT32_MAX) {
        char quoted[GEODB_QUOTE_MAX + 4];
        geodb_quote(f, quoted, sizeof quoted);
        snprintf(err, err_len, "'%s' is not an IPv4 address as an integer (0..4294967295)", quoted);
        return -1;
    }
    uint8_t bytes[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    geodb_set_v4(out, bytes);
    return 0;
}

static bool geodb_field_is_digits(struct geodb_field f)
{
    if (f.len == 0)
        return false;
    for (size_t i = 0; i < f.len; i++) {
        if (f.p[i] < '0' || f.p[i] > '9')
            return false;
    }
    return true;
}

/* True and the upper-case code in cc when f is two ASCII letters. */
static bool geodb_country(struct geodb_field f, char cc[3])
{
    if (f.len != 2 || !geodb_is_letter(f.p[0]) || !geodb_is_letter(f.p[1]))
        return false;
    cc[0] = geodb_upper(f.p[0]);
    cc[1] = geodb_upper(f.p[1]);
    cc[2] = '\0';
    return true;
}

/* Checks that first and last are one family and first <= last. */
static int geodb_check_range(const struct geodb_entry *e, struct geodb_field lo,
                             struct geodb_field hi, char *err, size_t err_len)
{
    char qlo[GEODB_QUOTE_MAX + 4], qhi[GEODB_QUOTE_MAX + 4];
    uint8_t a[16], b[16];

    geodb_quote(lo, qlo, sizeof qlo);
    geodb_quote(hi, qhi, sizeof qhi);
    if (e->first.ss_family != e->last.ss_family) {
        snprintf(err, err_len, "range '%s' to '%s' mixes IPv4 and IPv6", qlo, qhi);
        return -1;
    }
    size_t n = geodb_addr_bytes(&e->first, a);
    geodb_addr_bytes(&e->last, b);
    if (memcmp(a, b, n) > 0) {
        snprintf(err, err_len, "range start '%s' is after its end '%s'", qlo, qhi);
        return -1;
    }
    return 0;
}

static int geodb_parse_range(enum geodb_format fmt, const char *line, size_t len,
                             struct geodb_entry *out, char *err, size_t err_len)
{
    struct geodb_field f[GEODB_FIELDS_KEPT];
    bool csv = fmt == GEODB_FORMAT_CSV;
    long n = geodb_split_commas(line, len, csv, f, err, err_len);

    if (n < 0)
        return -1;
    if (csv ? n < 3 : n != 3) {
        snprintf(err, err_len, "expected %s, found %ld field%s",
                 csv ? "'START,END,CC' (3 or more fields)" : "'LOW,HIGH,CC' (3 fields)", n,
                 n == 1 ? "" : "s");
        return -1;
    }

    bool as_int =
        fmt == GEODB_FORMAT_TOR4 ||
        (fmt == GEODB_FORMAT_TOR && geodb_field_is_digits(f[0]) && geodb_field_is_digits(f[1]));
    for (int i = 0; i < 2; i++) {
        struct sockaddr_storage *ss = i == 0 ? &out->first : &out->last;
        int rc = as_int ? geodb_parse_int_addr(f[i], ss, err, err_len)
                        : geodb_parse_addr(f[i], csv ? AF_UNSPEC : AF_INET6, ss, err, err_len);
        if (rc != 0)
            return -1;
    }
    if (geodb_check_range(out, f[0], f[1], err, err_len) != 0)
        return -1;
    if (!geodb_country(f[2], out->country)) {
        out->skip = GEODB_SKIP_NOT_COUNTRY;
        return 1;
    }
    return 0;
}

/* Sets last to the highest address of first/prefix; false if first has host bits set. */
static bool geodb_prefix_range(struct geodb_entry *e, unsigned prefix)
{
    uint8_t a[16], b[16];
    size_t n = geodb_addr_bytes(&e->first, a);
    bool clean = true;

    for (size_t i = 0; i < n; i++) {
        unsigned bit0 = (unsigned)i * 8u;
        uint8_t host_mask;
        if (prefix >= bit0 + 8u)
            host_mask = 0;
        else if (prefix <= bit0)
            host_mask = 0xffu;
        else
            host_mask = (uint8_t)(0xffu >> (prefix - bit0));
        if (a[i] & host_mask)
            clean = false;
        a[i] = (uint8_t)(a[i] & ~host_mask);
        b[i] = (uint8_t)(a[i] | host_mask);
    }
    if (n == 4) {
        geodb_set_v4(&e->first, a);
        geodb_set_v4(&e->last, b);
    } else {
        geodb_set_v6(&e->first, a);
        geodb_set_v6(&e->last, b);
    }
    return clean;
}

static int geodb_parse_cidr(const char *line, size_t len, struct geodb_entry *out, char *err,
                            size_t err_len)
{
    struct geodb_field tok[2];
    size_t n = 0, i = 0;
    char quoted[GEODB_QUOTE_MAX + 4];

    for (;;) {
        while (i < len && geodb_is_space(line[i]))
            i++;
        if (i >= len || line[i] == '#') /* end, or a comment after the fields */
            break;
        size_t start = i;
        while (i < len && !geodb_is_space(line[i]))
            i++;
        if (n < 2)
            tok[n] = (struct geodb_field){line + start, i - start};
        n++;
    }
    if (n != 2) {
        snprintf(err, err_len, "expected 'CIDR CC', found %zu field%s", n, n == 1 ? "" : "s");
        return -1;
    }

    const char *slash = memchr(tok[0].p, '/', tok[0].len);
    struct geodb_field addr = tok[0];
    if (slash != NULL)
        addr.len = (size_t)(slash - tok[0].p);
    if (geodb_parse_addr(addr, AF_UNSPEC, &out->first, err, err_len) != 0)
        return -1;
    unsigned max = out->first.ss_family == AF_INET ? 32u : 128u, prefix = max;
    if (slash != NULL) {
        struct geodb_field pf = {slash + 1, tok[0].len - addr.len - 1};
        unsigned v = 0;
        bool ok = pf.len > 0 && pf.len <= 3 && geodb_field_is_digits(pf);
        for (size_t k = 0; ok && k < pf.len; k++)
            v = v * 10u + (unsigned)(pf.p[k] - '0');
        if (!ok || v > max) {
            geodb_quote(pf, quoted, sizeof quoted);
            snprintf(err, err_len, "prefix length '%s' is not in 0..%u", quoted, max);
            return -1;
        }
        prefix = v;
    }
    if (!geodb_prefix_range(out, prefix)) {
        char net[INET6_ADDRSTRLEN];
        uint8_t bytes[16];
        geodb_addr_bytes(&out->first, bytes);
        inet_ntop(out->first.ss_family, bytes, net, sizeof net);
        geodb_quote(tok[0], quoted, sizeof quoted);
        snprintf(err, err_len, "'%s' has bits set past the prefix (the network is %s/%u)", quoted,
                 net, prefix);
        return -1;
    }
    if (!geodb_country(tok[1], out->country)) {
        geodb_quote(tok[1], quoted, sizeof quoted);
        snprintf(err, err_len, "'%s' is not a two-letter country code", quoted);
        return -1;
    }
    return 0;
}

enum geodb_format geodb_format_for_path(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    size_t len = strlen(base);

    if (strcmp(base, "geoip") == 0)
        return GEODB_FORMAT_TOR4;
    if (strcmp(base, "geoip6") == 0)
        return GEODB_FORMAT_TOR6;
    if (len > 4 && strcmp(base + len - 4, ".csv") == 0)
        return GEODB_FORMAT_CSV;
    return GEODB_FORMAT_CIDR;
}

const char *geodb_format_name(enum geodb_format fmt)
{
    switch (fmt) {
    case GEODB_FORMAT_TOR4:
        return "tor4";
    case GEODB_FORMAT_TOR6:
        return "tor6";
    case GEODB_FORMAT_TOR:
        return "tor";
    case GEODB_FORMAT_CSV:
        return "csv";
    case GEODB_FORMAT_CIDR:
        return "cidr";
    }
    return "invalid";
}

int geodb_parse_line(enum geodb_format fmt, const char *line, size_t len, struct geodb_entry *out,
                     char *err, size_t err_len)
{
    if (err_len > 0)
        err[0] = '\0';
    memset(out, 0, sizeof *out);
    struct geodb_field t = geodb_trim(line, len);
    if (t.len == 0 || t.p[0] == '#') {
        out->skip = GEODB_SKIP_BLANK;
        return 1;
    }
    switch (fmt) {
    case GEODB_FORMAT_TOR4:
    case GEODB_FORMAT_TOR6:
    case GEODB_FORMAT_TOR:
    case GEODB_FORMAT_CSV:
        return geodb_parse_range(fmt, t.p, t.len, out, err, err_len);
    case GEODB_FORMAT_CIDR:
        return geodb_parse_cidr(t.p, t.len, out, err, err_len);
    }
    snprintf(err, err_len, "unknown input format %d", (int)fmt);
    return -1;
}
