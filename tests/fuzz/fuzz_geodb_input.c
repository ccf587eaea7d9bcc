/* libFuzzer target for the line parsers of `geoproxy geodb build` (geo/geodb_input.h): Tor
 * geoip and geoip6, CSV ranges and CIDR overlays.
 *
 * Input layout: the first byte picks the format (its value modulo 5: tor4, tor6, tor, csv, cidr)
 * and the size of the error buffer (its high bits); the rest is a file, split on '\n' and parsed
 * line by line, each line copied to a buffer of exactly its length (the parser takes lengths,
 * not C strings, so ASan sees any read past one). Promises checked, a broken one is a crash:
 *   - the result is 0, 1 or -1; on 1 out->skip says why; on -1 the message is one line of
 *     printable ASCII that fits the buffer; a 0-byte buffer is never written;
 *   - an entry has one family (the one the format takes), first <= last, port 0 and a code of
 *     two upper-case letters; a CIDR entry is a whole network (first has no host bits, last
 *     has them all);
 *   - the same line followed by "\r\n" parses the same;
 *   - an entry written back as a CSV line ("FIRST,LAST,CC" with inet_ntop addresses), or as a
 *     CIDR line, parses to the same entry.
 * Seeds: tests/fuzz/corpus/geodb_input/; dictionary: tests/fuzz/geodb_input.dict. */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "geo/geodb_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_geodb_input: check failed at %s:%d: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define N_FORMATS 5
#define ERR_MAX 256
#define LINES_MAX 64 /* lines parsed per input: more only slows the fuzzer down */

static const enum geodb_format formats[N_FORMATS] = {
    GEODB_FORMAT_TOR4, GEODB_FORMAT_TOR6, GEODB_FORMAT_TOR, GEODB_FORMAT_CSV, GEODB_FORMAT_CIDR,
};

/* The address bytes of ss and their count (4 or 16). */
static size_t addr_bytes(const struct sockaddr_storage *ss, uint8_t out[16])
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)ss;
        CHECK(in4->sin_port == 0);
        memcpy(out, &in4->sin_addr, 4);
        return 4;
    }
    CHECK(ss->ss_family == AF_INET6);
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    CHECK(in6->sin6_port == 0);
    memcpy(out, &in6->sin6_addr, 16);
    return 16;
}

static bool same_entry(const struct geodb_entry *a, const struct geodb_entry *b)
{
    uint8_t a1[16], a2[16], b1[16], b2[16];
    size_t n = addr_bytes(&a->first, a1);

    if (a->first.ss_family != b->first.ss_family || a->last.ss_family != b->last.ss_family) {
        return false;
    }
    addr_bytes(&a->last, a2);
    addr_bytes(&b->first, b1);
    addr_bytes(&b->last, b2);
    return memcmp(a1, b1, n) == 0 && memcmp(a2, b2, n) == 0 &&
           memcmp(a->country, b->country, sizeof a->country) == 0;
}

/* The prefix length of [first, last] when it is one whole network, or -1. */
static int network_prefix(const uint8_t *first, const uint8_t *last, size_t n)
{
    int prefix = 0;
    bool in_host = false;

    for (size_t i = 0; i < n * 8; i++) {
        unsigned bit = 0x80u >> (i % 8);
        bool f = (first[i / 8] & bit) != 0, l = (last[i / 8] & bit) != 0;

        if (!in_host && f == l) {
            prefix++;
            continue;
        }
        in_host = true;
        if (f || !l) {
            return -1; /* a host bit set in first or clear in last */
        }
    }
    return prefix;
}

static void check_entry(enum geodb_format fmt, const struct geodb_entry *e)
{
    uint8_t first[16], last[16];
    size_t n = addr_bytes(&e->first, first);

    CHECK(e->last.ss_family == e->first.ss_family);
    addr_bytes(&e->last, last);
    CHECK(memcmp(first, last, n) <= 0);
    CHECK(e->country[0] >= 'A' && e->country[0] <= 'Z');
    CHECK(e->country[1] >= 'A' && e->country[1] <= 'Z');
    CHECK(e->country[2] == '\0');
    if (fmt == GEODB_FORMAT_TOR4) {
        CHECK(n == 4);
    }
    if (fmt == GEODB_FORMAT_TOR6) {
        CHECK(n == 16);
    }
    if (fmt == GEODB_FORMAT_CIDR) {
        CHECK(network_prefix(first, last, n) >= 0);
    }
}

static void check_message(const char *err, size_t err_len)
{
    size_t len;

    if (err_len == 0) {
        return;
    }
    len = strnlen(err, err_len);
    CHECK(len < err_len);
    CHECK(len > 0 || err_len == 1);
    for (size_t i = 0; i < len; i++) {
        CHECK(err[i] >= 0x20 && err[i] < 0x7f);
    }
}

static int parse(enum geodb_format fmt, const char *line, size_t len, size_t err_len,
                 struct geodb_entry *out)
{
    /* Exactly err_len bytes (one when 0, filled with a canary that must survive). */
    char *err = malloc(err_len > 0 ? err_len : 1);
    int rc;

    CHECK(err != NULL);
    err[0] = 'Z';
    rc = geodb_parse_line(fmt, line, len, out, err, err_len);
    CHECK(rc == 0 || rc == 1 || rc == -1);
    if (rc == 0) {
        check_entry(fmt, out);
    } else if (rc == 1) {
        CHECK(out->skip == GEODB_SKIP_BLANK || out->skip == GEODB_SKIP_NOT_COUNTRY);
    } else {
        check_message(err, err_len);
    }
    if (err_len == 0) {
        CHECK(err[0] == 'Z');
    }
    free(err);
    return rc;
}

/* Writes the entry back in a format and parses that line again: the same entry comes out. */
static void check_round_trip(const struct geodb_entry *e)
{
    char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN], line[2 * INET6_ADDRSTRLEN + 16];
    uint8_t first[16], last[16];
    struct geodb_entry again;
    size_t n = addr_bytes(&e->first, first);
    int family = n == 4 ? AF_INET : AF_INET6;
    int len;

    addr_bytes(&e->last, last);
    CHECK(inet_ntop(family, first, a, sizeof a) != NULL);
    CHECK(inet_ntop(family, last, b, sizeof b) != NULL);
    len = snprintf(line, sizeof line, "%s,%s,%s", a, b, e->country);
    CHECK(len > 0 && (size_t)len < sizeof line);
    CHECK(parse(GEODB_FORMAT_CSV, line, (size_t)len, ERR_MAX, &again) == 0);
    CHECK(same_entry(e, &again));

    int prefix = network_prefix(first, last, n);
    if (prefix >= 0) {
        len = snprintf(line, sizeof line, "%s/%d %s", a, prefix, e->country);
        CHECK(len > 0 && (size_t)len < sizeof line);
        CHECK(parse(GEODB_FORMAT_CIDR, line, (size_t)len, ERR_MAX, &again) == 0);
        CHECK(same_entry(e, &again));
    }
}

static void check_line(enum geodb_format fmt, const uint8_t *p, size_t len, size_t err_len)
{
    struct geodb_entry entry, crlf_entry;
    char *line = malloc(len > 0 ? len : 1);
    char *crlf = malloc(len + 2);
    int rc, crlf_rc;

    CHECK(line != NULL && crlf != NULL);
    if (len > 0) {
        memcpy(line, p, len);
        memcpy(crlf, p, len);
    }
    crlf[len] = '\r';
    crlf[len + 1] = '\n';

    rc = parse(fmt, line, len, err_len, &entry);
    crlf_rc = parse(fmt, crlf, len + 2, ERR_MAX, &crlf_entry);
    CHECK(rc == crlf_rc);
    if (rc == 0) {
        CHECK(same_entry(&entry, &crlf_entry));
        check_round_trip(&entry);
    }
    if (rc == 1) {
        CHECK(entry.skip == crlf_entry.skip);
    }
    free(crlf);
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum geodb_format fmt;
    size_t err_len, start = 1, lines = 0;

    if (size == 0) {
        return 0;
    }
    fmt = formats[data[0] % N_FORMATS];
    /* Mostly a roomy buffer; sometimes 0..7 bytes, to check truncation. */
    err_len = data[0] / N_FORMATS >= 44 ? (size_t)(data[0] / N_FORMATS - 44) : ERR_MAX;
    CHECK(strcmp(geodb_format_name(fmt), "invalid") != 0);

    for (size_t i = 1; i <= size && lines < LINES_MAX; i++) {
        if (i == size || data[i] == '\n') {
            check_line(fmt, data + start, i - start, err_len);
            start = i + 1;
            lines++;
        }
    }
    return 0;
}
