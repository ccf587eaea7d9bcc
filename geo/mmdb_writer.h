/* MaxMind DB writer: builds a country database in memory and writes it as a .mmdb file
 * (MaxMind DB format 2.0) that libmaxminddb and mmdblookup read. Used by `geoproxy geodb build`.
 *
 * Each network maps to the record {"country": {"iso_code": "CC"}}; identical records are stored
 * once. Inserts are applied in order and a later insert overrides what earlier ones said for its
 * range (overlay files are inserted last). Pure library: no printing, no sockets.
 *
 * Errors are 0 or a negative errno value (the same numbers as libuv's UV_E* on Unix):
 * -EINVAL bad input, -ENOMEM out of memory, -E2BIG a configured limit was reached, -EIO and other
 * errno values for file errors. Functions taking err/err_len fill err with a message. */
#ifndef GEOPROXY_GEO_MMDB_WRITER_H
#define GEOPROXY_GEO_MMDB_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Default cap on search-tree nodes held in memory (about 128 MiB of nodes). */
#define MMDB_WRITER_DEFAULT_MAX_NODES (16u * 1024u * 1024u)
/* Longest database_type or description accepted by mmdb_writer_new(), in bytes. */
#define MMDB_WRITER_MAX_TEXT 1024u

struct mmdb_writer;

/* Creates an empty writer. ip_version 4 builds a 32-bit tree that only takes IPv4 networks;
 * ip_version 6 builds a 128-bit tree in which IPv4 networks are placed both under ::/96 (where
 * libmaxminddb looks IPv4 addresses up) and under ::ffff:0:0/96 (IPv4-mapped lookups).
 * database_type and description_en must be non-empty UTF-8 text of at most MMDB_WRITER_MAX_TEXT
 * bytes. Returns 0 and sets *out, or -EINVAL / -ENOMEM. */
int mmdb_writer_new(int ip_version, const char *database_type, const char *description_en,
                    uint64_t build_epoch, struct mmdb_writer **out);

/* Frees the writer; NULL is a no-op. */
void mmdb_writer_free(struct mmdb_writer *w);

/* Sets the cap on tree nodes (default MMDB_WRITER_DEFAULT_MAX_NODES, at most 2^31 - 1). An
 * insert that would need more nodes fails with -E2BIG. Returns 0 or -EINVAL. */
int mmdb_writer_set_max_nodes(struct mmdb_writer *w, uint32_t max_nodes);

/* Assigns country_code (two ASCII letters, stored upper-case) to every address of the network
 * network_addr/prefix_len (AF_INET: sockaddr_in, AF_INET6: sockaddr_in6), overriding earlier
 * inserts for that range. The address must have no bits set past the prefix. Returns 0, -EINVAL
 * (message in err), -ENOMEM or -E2BIG. */
int mmdb_writer_insert(struct mmdb_writer *w, const struct sockaddr *network_addr,
                       unsigned prefix_len, const char *country_code, char *err, size_t err_len);

/* Splits the inclusive range first..last (same family, first <= last) into the minimal set of
 * CIDR blocks and inserts each with mmdb_writer_insert(). On error, blocks inserted before the
 * failure stay inserted. Returns as mmdb_writer_insert(). */
int mmdb_writer_insert_range(struct mmdb_writer *w, const struct sockaddr *first,
                             const struct sockaddr *last, const char *country_code, char *err,
                             size_t err_len);

/* Writes the database to path: to a temporary file in the same directory, flushed with fsync(),
 * then rename()d over path, so readers see either the old file or the complete new one. The
 * record size (24, 28 or 32 bits) is the smallest that fits. The writer stays usable. Returns 0
 * or a negative errno value with a message in err; on error path is untouched. */
int mmdb_writer_write(struct mmdb_writer *w, const char *path, char *err, size_t err_len);

#endif
