/* MaxMind DB writer, written from the MaxMind DB File Format Specification v2.0
 * (https://maxmind.github.io/MaxMind-DB/).
 *
 * In memory the search tree is a binary trie of nodes, each with two 32-bit records: 0 is "no
 * data", a record with REC_DATA set carries a country index, anything else is a node index (the
 * root is node 0 and never anyone's child). Writing compacts the trie (drops nodes orphaned by
 * overrides, folds nodes whose halves hold the same data) and lays it out as the spec says:
 * search tree, 16 zero bytes, data section, "\xAB\xCD\xEFMaxMind.com", metadata map. */
#include "geo/mmdb_writer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REC_EMPTY 0u
#define REC_DATA 0x80000000u
#define MAX_NODES_LIMIT 0x7fffffffu
#define MAX_COUNTRIES (26 * 26)
#define DATA_SEPARATOR_LEN 16

/* Data field types (spec: "Output Data Section"). */
enum mmdb_type {
    MMDB_T_STRING = 2,
    MMDB_T_UINT16 = 5,
    MMDB_T_UINT32 = 6,
    MMDB_T_MAP = 7,
    MMDB_T_UINT64 = 9,
    MMDB_T_ARRAY = 11,
};

static const uint8_t metadata_marker[] = {0xAB, 0xCD, 0xEF, 'M', 'a', 'x', 'M',
                                          'i',  'n',  'd',  '.', 'c', 'o', 'm'};

struct mmdb_node {
    uint32_t child[2];
};

struct mmdb_writer {
    int ip_version;
    unsigned tree_bits; /* 32 or 128 */
    char *database_type;
    char *description_en;
    uint64_t build_epoch;
    struct mmdb_node *nodes;
    uint32_t node_count;
    uint32_t node_cap;
    uint32_t max_nodes;
    char countries[MAX_COUNTRIES][2];
    uint32_t country_count;
};

/* A bounded, growable byte buffer for the encoded file. */
struct mmdb_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

static void err_set(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_set(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || err_len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

static char *text_dup(const char *s)
{
    size_t n = strlen(s);
    char *copy = malloc(n + 1);

    if (copy != NULL)
        memcpy(copy, s, n + 1);
    return copy;
}

static bool text_is_valid(const char *s)
{
    if (s == NULL)
        return false;
    size_t n = strnlen(s, MMDB_WRITER_MAX_TEXT + 1);
    return n > 0 && n <= MMDB_WRITER_MAX_TEXT;
}

int mmdb_writer_new(int ip_version, const char *database_type, const char *description_en,
                    uint64_t build_epoch, struct mmdb_writer **out)
{
    struct mmdb_writer *w;

    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if ((ip_version != 4 && ip_version != 6) || !text_is_valid(database_type) ||
        !text_is_valid(description_en))
        return -EINVAL;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->ip_version = ip_version;
    w->tree_bits = ip_version == 4 ? 32 : 128;
    w->build_epoch = build_epoch;
    w->max_nodes = MMDB_WRITER_DEFAULT_MAX_NODES;
    w->database_type = text_dup(database_type);
    w->description_en = text_dup(description_en);
    w->node_cap = 64;
    w->nodes = calloc(w->node_cap, sizeof(*w->nodes));
    if (w->database_type == NULL || w->description_en == NULL || w->nodes == NULL) {
        mmdb_writer_free(w);
        return -ENOMEM;
    }
    w->node_count = 1; /* the root, both records empty */
    *out = w;
    return 0;
}

void mmdb_writer_free(struct mmdb_writer *w)
{
    if (w == NULL)
        return;
    free(w->database_type);
    free(w->description_en);
    free(w->nodes);
    free(w);
}

int mmdb_writer_set_max_nodes(struct mmdb_writer *w, uint32_t max_nodes)
{
    if (w == NULL || max_nodes < 1 || max_nodes > MAX_NODES_LIMIT)
        return -EINVAL;
    w->max_nodes = max_nodes;
    return 0;
}

/* ---- tree ---- */

static unsigned addr_bit(const uint8_t *addr, unsigned i)
{
    return (addr[i / 8] >> (7 - i % 8)) & 1u;
}

static bool rec_is_node(uint32_t rec)
{
    return rec != REC_EMPTY && (rec & REC_DATA) == 0;
}

/* Copies the subtree behind src record rec into dst (post-order, from *dst_count on), folding
 * nodes whose two records are the same data. Returns the record that replaces rec. */
static uint32_t tree_compact_rec(const struct mmdb_node *src, uint32_t rec, struct mmdb_node *dst,
                                 uint32_t *dst_count)
{
    if (!rec_is_node(rec))
        return rec;
    uint32_t left = tree_compact_rec(src, src[rec].child[0], dst, dst_count);
    uint32_t right = tree_compact_rec(src, src[rec].child[1], dst, dst_count);
    if (left == right && !rec_is_node(left))
        return left;
    uint32_t idx = (*dst_count)++;
    dst[idx].child[0] = left;
    dst[idx].child[1] = right;
    return idx;
}

/* Rebuilds the node array with only reachable, non-redundant nodes. Recursion depth is bounded
 * by the tree depth (at most 128). */
static int tree_compact(struct mmdb_writer *w)
{
    struct mmdb_node *dst = calloc(w->node_cap, sizeof(*dst));
    uint32_t count = 1;

    if (dst == NULL)
        return -ENOMEM;
    dst[0].child[0] = tree_compact_rec(w->nodes, w->nodes[0].child[0], dst, &count);
    dst[0].child[1] = tree_compact_rec(w->nodes, w->nodes[0].child[1], dst, &count);
    free(w->nodes);
    w->nodes = dst;
    w->node_count = count;
    return 0;
}

/* Makes room for extra more nodes, compacting first if the cap would be exceeded, so that an
 * insert never fails half-way. */
static int tree_reserve(struct mmdb_writer *w, uint32_t extra)
{
    if ((uint64_t)w->node_count + extra > w->max_nodes) {
        int rc = tree_compact(w);
        if (rc != 0)
            return rc;
        if ((uint64_t)w->node_count + extra > w->max_nodes)
            return -E2BIG;
    }
    uint64_t need = (uint64_t)w->node_count + extra;
    if (need <= w->node_cap)
        return 0;
    uint64_t cap = w->node_cap;
    while (cap < need)
        cap *= 2;
    if (cap > w->max_nodes)
        cap = w->max_nodes;
    if (cap > SIZE_MAX / sizeof(struct mmdb_node))
        return -ENOMEM;
    struct mmdb_node *grown = realloc(w->nodes, (size_t)cap * sizeof(struct mmdb_node));
    if (grown == NULL)
        return -ENOMEM;
    w->nodes = grown;
    w->node_cap = (uint32_t)cap;
    return 0;
}

/* Sets every address under addr/plen (tree bits) to value. Room for plen - 1 new nodes must have
 * been reserved. */
static void tree_assign(struct mmdb_writer *w, const uint8_t *addr, unsigned plen, uint32_t value)
{
    uint32_t node = 0;

    if (plen == 0) {
        w->nodes[0].child[0] = value;
        w->nodes[0].child[1] = value;
        return;
    }
    for (unsigned i = 0; i + 1 < plen; i++) {
        unsigned bit = addr_bit(addr, i);
        uint32_t next = w->nodes[node].child[bit];
        if (!rec_is_node(next)) {
            uint32_t fresh = w->node_count++;
            w->nodes[fresh].child[0] = next; /* the split range keeps what it had */
            w->nodes[fresh].child[1] = next;
            w->nodes[node].child[bit] = fresh;
            next = fresh;
        }
        node = next;
    }
    w->nodes[node].child[addr_bit(addr, plen - 1)] = value;
}

/* ---- insert ---- */

static int country_intern(struct mmdb_writer *w, const char *cc, uint32_t *index)
{
    char up[2];

    for (int i = 0; i < 2; i++) {
        char c = cc[i];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (c < 'A' || c > 'Z')
            return -EINVAL;
        up[i] = c;
    }
    if (cc[2] != '\0')
        return -EINVAL;
    for (uint32_t i = 0; i < w->country_count; i++) {
        if (memcmp(w->countries[i], up, 2) == 0) {
            *index = i;
            return 0;
        }
    }
    if (w->country_count >= MAX_COUNTRIES)
        return -E2BIG; /* unreachable: there are only 676 letter pairs */
    memcpy(w->countries[w->country_count], up, 2);
    *index = w->country_count++;
    return 0;
}

/* Reads the address of sa into a 16-byte big-endian buffer; *bits is 32 or 128. */
static int addr_from_sockaddr(const struct sockaddr *sa, uint8_t out[16], unsigned *bits)
{
    memset(out, 0, 16);
    if (sa == NULL)
        return -EINVAL;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        memcpy(out, &sin->sin_addr, 4);
        *bits = 32;
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        memcpy(out, &sin6->sin6_addr, 16);
        *bits = 128;
        return 0;
    }
    return -EINVAL;
}

static void addr_format(const uint8_t addr[16], unsigned bits, char *buf, size_t len)
{
    if (inet_ntop(bits == 32 ? AF_INET : AF_INET6, addr, buf, (socklen_t)len) == NULL)
        snprintf(buf, len, "?");
}

static bool addr_has_host_bits(const uint8_t addr[16], unsigned bits, unsigned plen)
{
    for (unsigned i = plen; i < bits; i++) {
        if (addr_bit(addr, i))
            return true;
    }
    return false;
}

int mmdb_writer_insert(struct mmdb_writer *w, const struct sockaddr *network_addr,
                       unsigned prefix_len, const char *country_code, char *err, size_t err_len)
{
    uint8_t addr[16];
    char text[INET6_ADDRSTRLEN];
    unsigned bits;
    uint32_t country;
    int rc;

    if (w == NULL || country_code == NULL) {
        err_set(err, err_len, "missing writer or country code");
        return -EINVAL;
    }
    if (addr_from_sockaddr(network_addr, addr, &bits) != 0) {
        err_set(err, err_len, "network address is neither IPv4 nor IPv6");
        return -EINVAL;
    }
    addr_format(addr, bits, text, sizeof(text));
    if (prefix_len > bits) {
        err_set(err, err_len, "%s/%u: prefix length %u is out of range for IPv%d (0-%u)", text,
                prefix_len, prefix_len, bits == 32 ? 4 : 6, bits);
        return -EINVAL;
    }
    if (bits == 128 && w->ip_version == 4) {
        err_set(err, err_len, "%s/%u: IPv6 network in an IPv4 database", text, prefix_len);
        return -EINVAL;
    }
    if (addr_has_host_bits(addr, bits, prefix_len)) {
        err_set(err, err_len, "%s/%u: address has bits set past the prefix length", text,
                prefix_len);
        return -EINVAL;
    }
    if (strnlen(country_code, 3) != 2 || country_intern(w, country_code, &country) != 0) {
        err_set(err, err_len, "%s/%u: invalid country code '%.8s' (expected two letters)", text,
                prefix_len, country_code);
        return -EINVAL;
    }
    uint32_t value = REC_DATA | country;

    if (bits == 128 || w->ip_version == 4) {
        rc = tree_reserve(w, prefix_len > 0 ? prefix_len - 1 : 0);
        if (rc == 0)
            tree_assign(w, addr, prefix_len, value);
    } else {
        /* IPv4 in an IPv6 tree: ::a.b.c.d (libmaxminddb's IPv4 subtree) and ::ffff:a.b.c.d. */
        uint8_t compat[16] = {0}, mapped[16] = {0};
        memcpy(compat + 12, addr, 4);
        memcpy(mapped + 12, addr, 4);
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        rc = tree_reserve(w, 2 * (96 + prefix_len - 1));
        if (rc == 0) {
            tree_assign(w, compat, 96 + prefix_len, value);
            tree_assign(w, mapped, 96 + prefix_len, value);
        }
    }
    if (rc == -E2BIG)
        err_set(err, err_len, "%s/%u: search tree would exceed %u nodes", text, prefix_len,
                (unsigned)w->max_nodes);
    else if (rc != 0)
        err_set(err, err_len, "%s/%u: out of memory", text, prefix_len);
    return rc;
}

/* ---- ranges ---- */

struct u128 {
    uint64_t hi;
    uint64_t lo;
};

static struct u128 u128_from_addr(const uint8_t addr[16], unsigned bits)
{
    struct u128 v = {0, 0};
    unsigned nbytes = bits / 8;

    for (unsigned i = 0; i < nbytes; i++) {
        v.hi = (v.hi << 8) | (v.lo >> 56);
        v.lo = (v.lo << 8) | addr[i];
    }
    return v;
}

static void u128_to_addr(struct u128 v, unsigned bits, uint8_t addr[16])
{
    unsigned nbytes = bits / 8;

    memset(addr, 0, 16);
    for (unsigned i = nbytes; i-- > 0;) {
        addr[i] = (uint8_t)(v.lo & 0xff);
        v.lo = (v.lo >> 8) | (v.hi << 56);
        v.hi >>= 8;
    }
}

static int u128_cmp(struct u128 a, struct u128 b)
{
    if (a.hi != b.hi)
        return a.hi < b.hi ? -1 : 1;
    if (a.lo != b.lo)
        return a.lo < b.lo ? -1 : 1;
    return 0;
}

static unsigned u128_ctz(struct u128 v)
{
    unsigned n = 0;

    if (v.lo == 0 && v.hi == 0)
        return 128;
    if (v.lo == 0) {
        n = 64;
        v.lo = v.hi;
    }
    while ((v.lo & 1u) == 0) {
        v.lo >>= 1;
        n++;
    }
    return n;
}

/* The low k bits set (0 <= k <= 128). */
static struct u128 u128_mask(unsigned k)
{
    struct u128 m = {0, 0};

    if (k >= 128) {
        m.hi = UINT64_MAX;
        m.lo = UINT64_MAX;
    } else if (k >= 64) {
        m.hi = k == 64 ? 0 : (UINT64_C(1) << (k - 64)) - 1;
        m.lo = UINT64_MAX;
    } else {
        m.lo = k == 0 ? 0 : (UINT64_C(1) << k) - 1;
    }
    return m;
}

static struct u128 u128_or(struct u128 a, struct u128 b)
{
    struct u128 r = {a.hi | b.hi, a.lo | b.lo};
    return r;
}

static struct u128 u128_inc(struct u128 v)
{
    v.lo++;
    if (v.lo == 0)
        v.hi++;
    return v;
}

static int range_insert_block(struct mmdb_writer *w, struct u128 start, unsigned bits,
                              unsigned prefix_len, const char *cc, char *err, size_t err_len)
{
    uint8_t addr[16];
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;

    u128_to_addr(start, bits, addr);
    if (bits == 32) {
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        memcpy(&sin.sin_addr, addr, 4);
        return mmdb_writer_insert(w, (const struct sockaddr *)&sin, prefix_len, cc, err, err_len);
    }
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    memcpy(&sin6.sin6_addr, addr, 16);
    return mmdb_writer_insert(w, (const struct sockaddr *)&sin6, prefix_len, cc, err, err_len);
}

int mmdb_writer_insert_range(struct mmdb_writer *w, const struct sockaddr *first,
                             const struct sockaddr *last, const char *country_code, char *err,
                             size_t err_len)
{
    uint8_t a[16], b[16];
    unsigned bits_a, bits_b;

    if (w == NULL || addr_from_sockaddr(first, a, &bits_a) != 0 ||
        addr_from_sockaddr(last, b, &bits_b) != 0) {
        err_set(err, err_len, "range ends are not IPv4 or IPv6 addresses");
        return -EINVAL;
    }
    if (bits_a != bits_b) {
        err_set(err, err_len, "range mixes IPv4 and IPv6 addresses");
        return -EINVAL;
    }
    struct u128 cur = u128_from_addr(a, bits_a);
    struct u128 end = u128_from_addr(b, bits_b);
    if (u128_cmp(cur, end) > 0) {
        char ta[INET6_ADDRSTRLEN], tb[INET6_ADDRSTRLEN];
        addr_format(a, bits_a, ta, sizeof(ta));
        addr_format(b, bits_b, tb, sizeof(tb));
        err_set(err, err_len, "range %s-%s: first address is after the last", ta, tb);
        return -EINVAL;
    }
    for (;;) {
        /* The largest aligned block starting at cur that does not pass end. */
        unsigned k = u128_ctz(cur);
        if (k > bits_a)
            k = bits_a;
        struct u128 block_last = u128_or(cur, u128_mask(k));
        while (k > 0 && u128_cmp(block_last, end) > 0) {
            k--;
            block_last = u128_or(cur, u128_mask(k));
        }
        int rc = range_insert_block(w, cur, bits_a, bits_a - k, country_code, err, err_len);
        if (rc != 0)
            return rc;
        if (u128_cmp(block_last, end) == 0)
            return 0;
        cur = u128_inc(block_last); /* block_last < end, so no wrap */
    }
}

/* ---- encoding ---- */

static int buf_put(struct mmdb_buf *b, const void *bytes, size_t n)
{
    if (n > SIZE_MAX - b->len)
        return -ENOMEM;
    if (b->len + n > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 256;
        while (cap < b->len + n) {
            if (cap > SIZE_MAX / 2)
                return -ENOMEM;
            cap *= 2;
        }
        uint8_t *grown = realloc(b->data, cap);
        if (grown == NULL)
            return -ENOMEM;
        b->data = grown;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->data + b->len, bytes, n);
    b->len += n;
    return 0;
}

static int buf_put_be(struct mmdb_buf *b, uint64_t v, unsigned nbytes)
{
    uint8_t tmp[8];

    for (unsigned i = 0; i < nbytes; i++)
        tmp[i] = (uint8_t)(v >> (8 * (nbytes - 1 - i)));
    return buf_put(b, tmp, nbytes);
}

/* Control byte(s): type in the top 3 bits (0 = extended, type - 7 in the next byte), then the
 * payload size in the low 5 bits with 1-3 extra size bytes for sizes from 29 on. */
static int enc_ctrl(struct mmdb_buf *b, enum mmdb_type type, size_t size)
{
    uint8_t head[5];
    size_t n = 0;
    unsigned code = type <= 7 ? (unsigned)type : 0;
    uint8_t size_bytes[3];
    size_t size_len = 0;
    unsigned low;

    if (size < 29) {
        low = (unsigned)size;
    } else if (size < 29 + 256) {
        low = 29;
        size_bytes[0] = (uint8_t)(size - 29);
        size_len = 1;
    } else if (size < 285 + 65536) {
        low = 30;
        size -= 285;
        size_bytes[0] = (uint8_t)(size >> 8);
        size_bytes[1] = (uint8_t)size;
        size_len = 2;
    } else if (size < 65821 + (1u << 24)) {
        low = 31;
        size -= 65821;
        size_bytes[0] = (uint8_t)(size >> 16);
        size_bytes[1] = (uint8_t)(size >> 8);
        size_bytes[2] = (uint8_t)size;
        size_len = 3;
    } else {
        return -E2BIG;
    }
    head[n++] = (uint8_t)((code << 5) | low);
    if (code == 0)
        head[n++] = (uint8_t)(type - 7);
    memcpy(head + n, size_bytes, size_len);
    return buf_put(b, head, n + size_len);
}

static int enc_string(struct mmdb_buf *b, const char *s, size_t len)
{
    int rc = enc_ctrl(b, MMDB_T_STRING, len);
    return rc != 0 ? rc : buf_put(b, s, len);
}

static int enc_cstring(struct mmdb_buf *b, const char *s)
{
    return enc_string(b, s, strlen(s));
}

/* Unsigned integers are big-endian with leading zero bytes dropped (0 has no payload). */
static int enc_uint(struct mmdb_buf *b, enum mmdb_type type, uint64_t v)
{
    unsigned nbytes = 0;

    for (uint64_t t = v; t != 0; t >>= 8)
        nbytes++;
    int rc = enc_ctrl(b, type, nbytes);
    return rc != 0 ? rc : buf_put_be(b, v, nbytes);
}

static int enc_country(struct mmdb_buf *b, const char cc[2])
{
    int rc = enc_ctrl(b, MMDB_T_MAP, 1);
    if (rc == 0)
        rc = enc_cstring(b, "country");
    if (rc == 0)
        rc = enc_ctrl(b, MMDB_T_MAP, 1);
    if (rc == 0)
        rc = enc_cstring(b, "iso_code");
    if (rc == 0)
        rc = enc_string(b, cc, 2);
    return rc;
}

static int enc_metadata(struct mmdb_buf *b, const struct mmdb_writer *w, unsigned record_size)
{
    int rc = buf_put(b, metadata_marker, sizeof(metadata_marker));
    if (rc == 0)
        rc = enc_ctrl(b, MMDB_T_MAP, 9);
    if (rc == 0)
        rc = enc_cstring(b, "binary_format_major_version");
    if (rc == 0)
        rc = enc_uint(b, MMDB_T_UINT16, 2);
    if (rc == 0)
        rc = enc_cstring(b, "binary_format_minor_version");
    if (rc == 0)
        rc = enc_uint(b, MMDB_T_UINT16, 0);
    if (rc == 0)
        rc = enc_cstring(b, "build_epoch");
    if (rc == 0)
        rc = enc_uint(b, MMDB_T_UINT64, w->build_epoch);
    if (rc == 0)
        rc = enc_cstring(b, "database_type");
    if (rc == 0)
        rc = enc_cstring(b, w->database_type);
    if (rc == 0)
        rc = enc_cstring(b, "description");
    if (rc == 0)
        rc = enc_ctrl(b, MMDB_T_MAP, 1);
    if (rc == 0)
        rc = enc_cstring(b, "en");
    if (rc == 0)
        rc = enc_cstring(b, w->description_en);
    if (rc == 0)
        rc = enc_cstring(b, "ip_version");
    if (rc == 0)
        rc = enc_uint(b, MMDB_T_UINT16, (uint64_t)w->ip_version);
    if (rc == 0)
        rc = enc_cstring(b, "languages");
    if (rc == 0)
        rc = enc_ctrl(b, MMDB_T_ARRAY, 1);
    if (rc == 0)
        rc = enc_cstring(b, "en");
    if (rc == 0)
        rc = enc_cstring(b, "node_count");
    if (rc == 0)
        rc = enc_uint(b, MMDB_T_UINT32, w->node_count);
    if (rc == 0)
        rc = enc_cstring(b, "record_size");
    if (rc == 0)
        rc = enc_uint(b, MMDB_T_UINT16, record_size);
    return rc;
}

/* Turns an in-memory record into its file value: node index, node_count for "no data", or
 * node_count + 16 + data offset. */
static uint32_t rec_file_value(const struct mmdb_writer *w, const uint32_t *offsets, uint32_t rec)
{
    if (rec == REC_EMPTY)
        return w->node_count;
    if (rec & REC_DATA)
        return w->node_count + DATA_SEPARATOR_LEN + offsets[rec & ~REC_DATA];
    return rec;
}

static int enc_tree(struct mmdb_buf *b, const struct mmdb_writer *w, const uint32_t *offsets,
                    unsigned record_size)
{
    for (uint32_t i = 0; i < w->node_count; i++) {
        uint32_t l = rec_file_value(w, offsets, w->nodes[i].child[0]);
        uint32_t r = rec_file_value(w, offsets, w->nodes[i].child[1]);
        uint8_t node[8];
        size_t n;
        if (record_size == 24) {
            uint8_t p[6] = {(uint8_t)(l >> 16), (uint8_t)(l >> 8), (uint8_t)l,
                            (uint8_t)(r >> 16), (uint8_t)(r >> 8), (uint8_t)r};
            memcpy(node, p, sizeof(p));
            n = sizeof(p);
        } else if (record_size == 28) {
            /* The middle byte holds the top nibbles: left's high, right's low. */
            uint8_t p[7] = {
                (uint8_t)(l >> 16), (uint8_t)(l >> 8),
                (uint8_t)l,         (uint8_t)((((l >> 24) & 0x0f) << 4) | ((r >> 24) & 0x0f)),
                (uint8_t)(r >> 16), (uint8_t)(r >> 8),
                (uint8_t)r};
            memcpy(node, p, sizeof(p));
            n = sizeof(p);
        } else {
            uint8_t p[8] = {(uint8_t)(l >> 24), (uint8_t)(l >> 16), (uint8_t)(l >> 8), (uint8_t)l,
                            (uint8_t)(r >> 24), (uint8_t)(r >> 16), (uint8_t)(r >> 8), (uint8_t)r};
            memcpy(node, p, sizeof(p));
            n = sizeof(p);
        }
        int rc = buf_put(b, node, n);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Encodes the whole file into out. */
static int writer_encode(struct mmdb_writer *w, struct mmdb_buf *out, char *err, size_t err_len)
{
    struct mmdb_buf data = {0};
    uint32_t offsets[MAX_COUNTRIES];
    static const uint8_t separator[DATA_SEPARATOR_LEN] = {0};
    int rc = tree_compact(w);

    for (uint32_t i = 0; rc == 0 && i < w->country_count; i++) {
        offsets[i] = (uint32_t)data.len;
        rc = enc_country(&data, w->countries[i]);
    }
    if (rc != 0) {
        err_set(err, err_len, "out of memory encoding the data section");
        goto out;
    }
    /* The largest record value must fit the record size. */
    uint64_t max_value = (uint64_t)w->node_count + DATA_SEPARATOR_LEN + data.len;
    unsigned record_size = max_value < (UINT64_C(1) << 24)   ? 24
                           : max_value < (UINT64_C(1) << 28) ? 28
                           : max_value < (UINT64_C(1) << 32) ? 32
                                                             : 0;
    if (record_size == 0) {
        err_set(err, err_len, "database too large for 32-bit records");
        rc = -E2BIG;
        goto out;
    }
    rc = enc_tree(out, w, offsets, record_size);
    if (rc == 0)
        rc = buf_put(out, separator, sizeof(separator));
    if (rc == 0)
        rc = buf_put(out, data.data, data.len);
    if (rc == 0)
        rc = enc_metadata(out, w, record_size);
    if (rc != 0)
        err_set(err, err_len, "out of memory encoding the database");
out:
    free(data.data);
    return rc;
}

/* ---- file ---- */

static int file_write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int mmdb_writer_write(struct mmdb_writer *w, const char *path, char *err, size_t err_len)
{
    struct mmdb_buf file = {0};
    char tmp[4096];
    int fd = -1;
    int rc;

    if (w == NULL || path == NULL || path[0] == '\0') {
        err_set(err, err_len, "missing writer or path");
        return -EINVAL;
    }
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        err_set(err, err_len, "%.200s: path too long", path);
        return -ENAMETOOLONG;
    }
    rc = writer_encode(w, &file, err, err_len);
    if (rc != 0)
        goto out;
    fd = mkstemp(tmp);
    if (fd < 0) {
        rc = -errno;
        err_set(err, err_len, "%s: cannot create temporary file: %s", tmp, strerror(errno));
        goto out;
    }
    rc = file_write_all(fd, file.data, file.len);
    if (rc == 0 && fchmod(fd, 0644) != 0)
        rc = -errno;
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    fd = -1;
    if (rc != 0) {
        err_set(err, err_len, "%s: write failed: %s", tmp, strerror(-rc));
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        rc = -errno;
        err_set(err, err_len, "%s: cannot rename into place: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
out:
    free(file.data);
    return rc;
}
