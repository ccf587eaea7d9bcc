/* Lookup accelerator for one opened MaxMind DB: root tables, a specialised tree walk and an
 * offset -> answer table (see geo_index.h). */
#include "geo/geo_index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The 16 bytes between the search tree and the data section (MaxMind DB spec). */
#define GEO_INDEX_SEPARATOR 16u
/* Bits resolved by each root table, and its number of entries. Measured on the Tor database
 * (bench/geo_bench.c, classify time over the raw libmaxminddb walk): 1.07 without tables, 0.89
 * with 12 bits, 0.80 with 16. */
#define GEO_INDEX_ROOT_BITS 16u
#define GEO_INDEX_ROOT_SIZE (1u << GEO_INDEX_ROOT_BITS)

/* Where a walk stands after the first GEO_INDEX_ROOT_BITS bits under one start node: the record
 * value reached and the absolute bit position (libmaxminddb's current_bit) it was reached at. */
struct geo_index_root {
    uint32_t *value;
    uint8_t *bit;      /* only differs from bit_next where the walk ended earlier */
    unsigned bit_next; /* start bit + GEO_INDEX_ROOT_BITS */
};

/* One slot of the offset -> answer table; key 0 marks an empty slot. */
struct geo_index_slot {
    uint32_t key; /* data-section offset + 1 */
    uint16_t answer;
};

struct geo_index {
    bool usable;           /* false: every lookup answers GEO_INDEX_ASK_LIBRARY */
    const uint8_t *tree;   /* mmdb->file_content */
    uint32_t node_count;   /* metadata.node_count */
    unsigned record_bytes; /* 6, 7 or 8 bytes per node */
    unsigned depth;        /* 32 (IPv4 tree) or 128 (IPv6 tree) */
    uint32_t data_size;    /* mmdb->data_section_size */
    uint32_t v4_start;     /* libmaxminddb's IPv4 start node (0, bit 0 in an IPv4 tree) */
    unsigned v4_start_bit; /* its netmask */
    struct geo_index_slot *slots;
    uint32_t slot_mask; /* number of slots - 1 (a power of two minus one) */
    uint32_t n_answers;
    struct geo_index_root root4; /* NULL value when the IPv4 start is not at bit 96 (or 0) */
    struct geo_index_root root6; /* NULL value in an IPv4 tree */
};

static inline uint32_t geo_index_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The left (right == 0) or right record of node. A 24-bit record is read with the byte after it,
 * which is always in the file: the next record, or the data section separator. */
static inline uint32_t geo_index_record(const uint8_t *node, unsigned record_bytes, unsigned right)
{
    switch (record_bytes) {
    case 6:
        return geo_index_be32(node + 3u * right) >> 8;
    case 7: {
        uint32_t x = geo_index_be32(node + 3u * right);
        uint32_t left = (x >> 8) | ((x & 0xf0u) << 20);
        return right ? (x & 0x0fffffffu) : left;
    }
    default:
        return geo_index_be32(node + 4u * right);
    }
}

/* libmaxminddb's search loop (find_address_in_search_tree) from value at bit *bitp, for one
 * record size; the caller's switch makes record_bytes a constant in each inlined copy. */
static inline uint32_t geo_index_walk_n(const struct geo_index *idx, unsigned record_bytes,
                                        const uint8_t *addr, uint32_t value, unsigned *bitp)
{
    const uint8_t *tree = idx->tree;
    uint32_t node_count = idx->node_count;
    unsigned depth = idx->depth, bit = *bitp;

    for (; bit < depth && value < node_count; bit++) {
        unsigned right = (addr[bit >> 3] >> (7u - (bit & 7u))) & 1u;
        value = geo_index_record(tree + (size_t)value * record_bytes, record_bytes, right);
    }
    *bitp = bit;
    return value;
}

static uint32_t geo_index_walk(const struct geo_index *idx, const uint8_t *addr, uint32_t value,
                               unsigned *bitp)
{
    switch (idx->record_bytes) {
    case 6:
        return geo_index_walk_n(idx, 6, addr, value, bitp);
    case 7:
        return geo_index_walk_n(idx, 7, addr, value, bitp);
    default:
        return geo_index_walk_n(idx, 8, addr, value, bitp);
    }
}

/* Fills the entries of root for the addresses whose table bits start with the level bits of
 * prefix, the walk standing at value and absolute bit. Recursion depth <= GEO_INDEX_ROOT_BITS. */
static void geo_index_fill(const struct geo_index *idx, struct geo_index_root *root, uint32_t value,
                           unsigned bit, unsigned level, uint32_t prefix)
{
    if (level == GEO_INDEX_ROOT_BITS || bit >= idx->depth || value >= idx->node_count) {
        uint32_t first = prefix << (GEO_INDEX_ROOT_BITS - level);
        uint32_t n = 1u << (GEO_INDEX_ROOT_BITS - level);
        for (uint32_t i = first; i < first + n; i++) {
            root->value[i] = value;
            root->bit[i] = (uint8_t)bit;
        }
        return;
    }
    const uint8_t *node = idx->tree + (size_t)value * idx->record_bytes;
    for (unsigned right = 0; right < 2; right++)
        geo_index_fill(idx, root, geo_index_record(node, idx->record_bytes, right), bit + 1,
                       level + 1, prefix << 1 | right);
}

static int geo_index_root_build(const struct geo_index *idx, struct geo_index_root *root,
                                uint32_t start, unsigned start_bit)
{
    root->value = malloc(GEO_INDEX_ROOT_SIZE * sizeof root->value[0]);
    root->bit = malloc(GEO_INDEX_ROOT_SIZE * sizeof root->bit[0]);
    if (root->value == NULL || root->bit == NULL)
        return -ENOMEM;
    root->bit_next = start_bit + GEO_INDEX_ROOT_BITS;
    geo_index_fill(idx, root, start, start_bit, 0, 0);
    return 0;
}

static void geo_index_root_free(struct geo_index_root *root)
{
    free(root->value);
    free(root->bit);
}

/* True when libmaxminddb, whatever its version, reports value as a data record: past the
 * separator and before the end of the data section (1.7 checks value < node_count + data size,
 * later versions offset < data size; both hold here). */
static bool geo_index_is_data(const struct geo_index *idx, uint32_t value, uint32_t *offset)
{
    uint64_t v = value, base = (uint64_t)idx->node_count + GEO_INDEX_SEPARATOR;

    if (v < base || v >= (uint64_t)idx->node_count + idx->data_size)
        return false;
    *offset = (uint32_t)(v - base);
    return true;
}

static inline uint32_t geo_index_hash(uint32_t key, uint32_t mask)
{
    return (key * 2654435761u >> 7) & mask;
}

/* The slot holding offset, or the empty slot where it would go. */
static struct geo_index_slot *geo_index_slot_of(struct geo_index_slot *slots, uint32_t mask,
                                                uint32_t offset)
{
    uint32_t key = offset + 1u;

    for (uint32_t i = geo_index_hash(key, mask);; i = (i + 1u) & mask) {
        if (slots[i].key == key || slots[i].key == 0)
            return &slots[i];
    }
}

/* Adds offset -> answer (offset not yet present), doubling the table past half full. */
static int geo_index_insert(struct geo_index *idx, uint32_t offset, uint16_t answer)
{
    if ((idx->n_answers + 1u) * 2u > idx->slot_mask + 1u) {
        uint32_t n = (idx->slot_mask + 1u) * 2u;
        struct geo_index_slot *slots = calloc(n, sizeof *slots), *old = idx->slots;
        uint32_t old_n = idx->slot_mask + 1u;
        if (slots == NULL)
            return -ENOMEM;
        for (uint32_t i = 0; i < old_n; i++) {
            if (old[i].key != 0)
                *geo_index_slot_of(slots, n - 1u, old[i].key - 1u) = old[i];
        }
        free(old);
        idx->slots = slots;
        idx->slot_mask = n - 1u;
    }
    struct geo_index_slot *s = geo_index_slot_of(idx->slots, idx->slot_mask, offset);
    s->key = offset + 1u;
    s->answer = answer;
    idx->n_answers++;
    return 0;
}

/* The offset just past the data item at off (MaxMind DB spec, "Output Data Section"), a pointer
 * counting as its own bytes; 0 when the item is malformed, runs past size or nests deeper than
 * depth allows. */
static uint32_t geo_index_item_end(const uint8_t *d, uint32_t size, uint32_t off, unsigned depth)
{
    if (off >= size || depth == 0)
        return 0;
    uint8_t ctrl = d[off++];
    unsigned type = ctrl >> 5;
    uint64_t len = ctrl & 0x1fu, end;

    if (type == 1) /* pointer: 1 to 4 more bytes, whatever the size bits say */
        return (uint64_t)off + ((ctrl >> 3) & 3u) + 1u <= size ? off + ((ctrl >> 3) & 3u) + 1u : 0;
    if (type == 0) { /* extended type in the next byte */
        if (off >= size)
            return 0;
        type = 7u + d[off++];
    }
    if (len >= 29) {
        unsigned n = (unsigned)len - 28u; /* 1, 2 or 3 size bytes */
        static const uint32_t base[] = {0, 29, 285, 65821};
        if ((uint64_t)off + n > size)
            return 0;
        uint32_t v = 0;
        for (unsigned i = 0; i < n; i++)
            v = v << 8 | d[off + i];
        off += n;
        len = (uint64_t)base[n] + v;
    }
    switch (type) {
    case 7:  /* map: len key/value pairs */
    case 11: /* array: len values */
        for (uint64_t i = 0; i < (type == 7 ? 2u * len : len); i++) {
            off = geo_index_item_end(d, size, off, depth - 1u);
            if (off == 0)
                return 0;
        }
        return off;
    case 14: /* boolean: the value is the size */
        return off;
    case 2:
    case 3:
    case 4:
    case 5:
    case 6:
    case 8:
    case 9:
    case 10:
    case 15:
        end = off + (type == 3 ? 8u : type == 15 ? 4u : len);
        return end <= size ? (uint32_t)end : 0;
    default: /* data cache container, end marker, unknown */
        return 0;
    }
}

/* Reads the data section front to back, one top-level item after another (the records, as the
 * writers lay them out), and stores the answer of each, until GEO_INDEX_MAX_ANSWERS records or
 * GEO_INDEX_MAX_SCAN bytes. An item this scan cannot size ends it. */
static int geo_index_collect(struct geo_index *idx, const MMDB_s *mmdb, geo_index_answer_fn answer)
{
    uint32_t size = mmdb->data_section_size;
    uint32_t limit = size < GEO_INDEX_MAX_SCAN ? size : GEO_INDEX_MAX_SCAN;

    for (uint32_t off = 0; off < limit && idx->n_answers < GEO_INDEX_MAX_ANSWERS;) {
        uint32_t next = geo_index_item_end(mmdb->data_section, size, off, 32);
        if (next <= off)
            break;
        int ret = geo_index_insert(idx, off, answer(mmdb, off));
        if (ret != 0)
            return ret;
        off = next;
    }
    return 0;
}

int geo_index_new(const MMDB_s *mmdb, geo_index_answer_fn answer, struct geo_index **out)
{
    int ret = -ENOMEM;
    struct geo_index *idx = calloc(1, sizeof *idx);

    *out = NULL;
    if (idx == NULL)
        return -ENOMEM;
    idx->slots = calloc(256, sizeof idx->slots[0]);
    if (idx->slots == NULL)
        goto fail;
    idx->slot_mask = 255;

    unsigned record_bytes = mmdb->full_record_byte_size;
    uint64_t tree_size = (uint64_t)mmdb->metadata.node_count * record_bytes;
    /* The walk reads nodes below node_count (and a 24-bit record's next byte) in place: the tree
     * and the separator must lie in the mapped file, as MMDB_open has checked. */
    if ((record_bytes != 6 && record_bytes != 7 && record_bytes != 8) ||
        mmdb->metadata.node_count == 0 || mmdb->data_section < mmdb->file_content ||
        (uint64_t)(mmdb->data_section - mmdb->file_content) < tree_size + GEO_INDEX_SEPARATOR ||
        (mmdb->depth != 32 && mmdb->depth != 128)) {
        *out = idx; /* usable == false */
        return 0;
    }
    idx->tree = mmdb->file_content;
    idx->node_count = mmdb->metadata.node_count;
    idx->record_bytes = record_bytes;
    idx->depth = mmdb->depth;
    idx->data_size = mmdb->data_section_size;
    if (idx->depth == 128) {
        idx->v4_start = mmdb->ipv4_start_node.node_value;
        idx->v4_start_bit = mmdb->ipv4_start_node.netmask;
        if (geo_index_root_build(idx, &idx->root6, 0, 0) != 0)
            goto fail;
    }
    /* The IPv4 table is indexed by the first bits of the IPv4 address: only where the IPv4 start
     * is where those bits begin (always, unless the tree ends above ::/96). */
    if (idx->v4_start_bit == idx->depth - 32 &&
        geo_index_root_build(idx, &idx->root4, idx->v4_start, idx->v4_start_bit) != 0)
        goto fail;
    ret = geo_index_collect(idx, mmdb, answer);
    if (ret != 0)
        goto fail;
    idx->usable = true;
    *out = idx;
    return 0;

fail:
    geo_index_free(idx);
    return ret;
}

void geo_index_free(struct geo_index *idx)
{
    if (idx == NULL)
        return;
    geo_index_root_free(&idx->root4);
    geo_index_root_free(&idx->root6);
    free(idx->slots);
    free(idx);
}

enum geo_index_status geo_index_lookup(const struct geo_index *idx, const uint8_t *addr, bool ipv4,
                                       uint32_t *offset, unsigned *netmask)
{
    uint8_t mapped[16];
    const struct geo_index_root *root;
    uint32_t value = 0;
    unsigned bit = 0;

    if (!idx->usable)
        return GEO_INDEX_ASK_LIBRARY;
    if (ipv4) {
        if (idx->depth == 128) {
            /* libmaxminddb looks an IPv4 address up as ::a.b.c.d from its IPv4 start node. */
            memset(mapped, 0, 12);
            memcpy(mapped + 12, addr, 4);
            addr = mapped;
        }
        root = &idx->root4;
        value = idx->v4_start;
        bit = idx->v4_start_bit;
    } else {
        if (idx->depth != 128)
            return GEO_INDEX_ASK_LIBRARY; /* libmaxminddb: IPv6 lookup in an IPv4 database */
        root = &idx->root6;
    }
    if (root->value != NULL) {
        unsigned first = (root->bit_next - GEO_INDEX_ROOT_BITS) / 8u; /* byte 0 or 12 */
        unsigned i = ((unsigned)addr[first] << 8 | addr[first + 1u]) >> (16u - GEO_INDEX_ROOT_BITS);
        value = root->value[i];
        bit = value < idx->node_count ? root->bit_next : root->bit[i];
    }
    value = geo_index_walk(idx, addr, value, &bit);
    *netmask = bit;
    if (value == idx->node_count)
        return GEO_INDEX_NOT_FOUND;
    if (geo_index_is_data(idx, value, offset))
        return GEO_INDEX_FOUND;
    return GEO_INDEX_ASK_LIBRARY;
}

int geo_index_answer(const struct geo_index *idx, uint32_t offset)
{
    const struct geo_index_slot *s = geo_index_slot_of(idx->slots, idx->slot_mask, offset);

    return s->key != 0 ? s->answer : -1;
}
