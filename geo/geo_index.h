/* Lookup accelerator for one opened MaxMind DB, internal to geo/ (geo.c builds one per
 * struct geo_db in geo_db_open(); nothing outside geo/ includes this header).
 *
 * A struct geo_index is built once and read-only afterwards, so any number of threads may use it
 * at the same time. It gives the answers libmaxminddb's MMDB_lookup_sockaddr() gives (the same
 * record, the same netmask), only faster:
 *
 * - the search tree is walked in place by code specialised for the record size (24, 28 or 32
 *   bits) that picks the left or right record without a branch and without a call per bit;
 * - two tables of 65,536 entries (320 KiB each) record where that walk stands after the first
 *   16 bits of an IPv4 address (from libmaxminddb's own IPv4 start node) and of an IPv6 address
 *   (from the root), so the top of the tree is not walked at lookup time. Filling them reads at
 *   most 2 x 65,535 nodes whatever the size of the database;
 * - a hash table maps data-section offsets to a small answer computed by a caller-supplied
 *   function (geo.c: the country of the record, decoded exactly as without the index). It is
 *   filled by reading the data section front to back, one record after another, and stops after
 *   GEO_INDEX_MAX_SCAN bytes or GEO_INDEX_MAX_ANSWERS records, so building stays bounded for
 *   large City or ASN databases (country databases have a few hundred to a few thousand
 *   records); offsets it does not hold are decoded at lookup time as before.
 *
 * Where a walk ends anywhere but on an empty record or a data record inside the data section (a
 * corrupt tree), the lookup answers GEO_INDEX_ASK_LIBRARY and the caller asks libmaxminddb, so
 * even corrupt files give exactly libmaxminddb's answer. */
#ifndef GEOPROXY_GEO_GEO_INDEX_H
#define GEOPROXY_GEO_GEO_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include <maxminddb.h>

/* Bounds on the work geo_index_new() does besides the root tables: bytes of the data section
 * read, records decoded. */
#define GEO_INDEX_MAX_SCAN (4u * 1024u * 1024u)
#define GEO_INDEX_MAX_ANSWERS 8192u

struct geo_index;

/* Computes the answer stored for the data record at offset (MMDB_entry_s.offset): any value in
 * 0..UINT16_MAX. Called only while the index is built. */
typedef uint16_t (*geo_index_answer_fn)(const MMDB_s *mmdb, uint32_t offset);

/* Builds the index for mmdb (opened, and kept open and unchanged while the index lives), storing
 * answer(mmdb, offset) for the data records met. Returns 0 and sets *out, or -ENOMEM. A database
 * whose layout the index does not handle gets an index that answers GEO_INDEX_ASK_LIBRARY to
 * every lookup. */
int geo_index_new(const MMDB_s *mmdb, geo_index_answer_fn answer, struct geo_index **out);

/* Frees the index; NULL is a no-op. */
void geo_index_free(struct geo_index *idx);

enum geo_index_status {
    GEO_INDEX_FOUND,       /* *offset and *netmask are what MMDB_lookup_sockaddr gives */
    GEO_INDEX_NOT_FOUND,   /* libmaxminddb answers MMDB_SUCCESS without an entry */
    GEO_INDEX_ASK_LIBRARY, /* the index cannot tell: call MMDB_lookup_sockaddr */
};

/* Looks up an address of 4 bytes (ipv4) or 16 bytes, network order. *netmask is counted as
 * libmaxminddb counts it (in IPv6 bits for an IPv4 address in an IPv6 tree). */
enum geo_index_status geo_index_lookup(const struct geo_index *idx, const uint8_t *addr, bool ipv4,
                                       uint32_t *offset, unsigned *netmask);

/* The stored answer for the data record at offset, or -1 when the index holds none. */
int geo_index_answer(const struct geo_index *idx, uint32_t offset);

#endif
