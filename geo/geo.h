/* GeoIP classification: which jurisdiction an IP address belongs to.
 *
 * A pure library over libmaxminddb: it never prints and never touches a socket. Opening a
 * database is blocking file I/O (mmap + metadata checks); callers run geo_db_open() off the
 * event loop and publish the result. A struct geo_db is read-only once opened, so one database
 * may be shared by any number of threads calling geo_classify(). */
#ifndef GEOPROXY_GEO_GEO_H
#define GEOPROXY_GEO_GEO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An opened MaxMind DB (.mmdb) file: GeoIP2/GeoLite2 Country or City, DB-IP, ip-location-db,
 * or an ASN database. Opaque. */
struct geo_db;

enum geo_class {
    GEO_CLASS_LOCAL,   /* local range (loopback, private, ...) that the database gives no country */
    GEO_CLASS_UNKNOWN, /* public address with no (valid) country in the database, or no database */
    GEO_CLASS_COUNTRY, /* the database gives a country: upper-case ISO 3166-1 alpha-2 code */
};

#define GEO_AS_ORG_MAX 128

struct geo_result {
    enum geo_class cls;
    bool local;                  /* the address is in a local range (geo_is_local), whatever cls */
    char country[3];             /* "DE" when cls == GEO_CLASS_COUNTRY, "" otherwise */
    uint32_t asn;                /* 0 when unknown (always 0 for GEO_CLASS_LOCAL) */
    char as_org[GEO_AS_ORG_MAX]; /* NUL-terminated, control bytes replaced by '?', "" if unknown */
};

/* Opens the MaxMind DB file at path. On success returns 0 and sets *out (free with
 * geo_db_free). On failure returns a negative errno-style code (-ENOENT, -EACCES, ... when the
 * file cannot be opened, -EIO on a read error, -EINVAL when the file is not a valid MaxMind DB
 * (empty, truncated, corrupt), -ENOMEM), leaves *out NULL and writes a message naming the file
 * and libmaxminddb's reason into err (always NUL-terminated when err_len > 0). Blocking. */
int geo_db_open(const char *path, struct geo_db **out, char *err, size_t err_len);

/* Closes the database. geo_db_free(NULL) is a no-op. */
void geo_db_free(struct geo_db *db);

/* The metadata database_type, e.g. "GeoIP2-Country" or "GeoLite2-ASN". Never NULL. */
const char *geo_db_type(const struct geo_db *db);

/* The metadata build_epoch: seconds since 1970-01-01 UTC when the database was built. */
uint64_t geo_db_build_epoch(const struct geo_db *db);

/* The metadata ip_version: 4 or 6. */
unsigned geo_db_ip_version(const struct geo_db *db);

/* True if addr (AF_INET or AF_INET6) is in one of the local ranges: loopback 127.0.0.0/8 and
 * ::1, RFC 1918 10/8, 172.16/12, 192.168/16, link-local 169.254/16 and fe80::/10, CGNAT
 * 100.64.0.0/10, ULA fc00::/7, unspecified 0.0.0.0 and ::. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) answers as the IPv4 address. Other families and NULL answer false. */
bool geo_is_local(const struct sockaddr *addr);

/* Classifies addr. The country comes from country_db (may be NULL): country.iso_code, else
 * registered_country.iso_code (MaxMind GeoIP2/GeoLite2, DB-IP), else top-level country_code
 * (ip-location-db); the first of these present decides, and it must be exactly two ASCII
 * letters (upper-cased into out->country). With a country the class is GEO_CLASS_COUNTRY;
 * without one it is GEO_CLASS_LOCAL for an address in a local range (geo_is_local) and
 * GEO_CLASS_UNKNOWN otherwise. Inside a local range only a database record for a network that
 * lies wholly within that range counts (an overlay such as 127.0.1.0/24 HK, not a wide range
 * that happens to cover 10/8), so admins can give internal networks and test fixtures a country
 * while local ranges stay local with ordinary databases; out->local tells either way.
 * asn_db (may be NULL) fills asn and as_org from autonomous_system_number /
 * autonomous_system_organization, under the same rule for local ranges. IPv4-mapped IPv6
 * addresses are looked up as IPv4. Never fails: lookup errors answer without a country. */
void geo_classify(const struct geo_db *country_db, const struct geo_db *asn_db,
                  const struct sockaddr *addr, struct geo_result *out);

/* Looks addr up in db whatever its class, local ranges included (for fixtures that map
 * 127.0.N.0/24 to countries, and for `geoproxy geodb lookup`). Returns true and fills cc with
 * the upper-case code when the database has a valid country for addr (same fields as
 * geo_classify), false otherwise (cc is then ""). IPv4-mapped IPv6 addresses are looked up as
 * IPv4. */
bool geo_lookup_country(const struct geo_db *db, const struct sockaddr *addr, char cc[3]);

/* "local", "unknown" or "country"; "invalid" for a value outside the enum. */
const char *geo_class_name(enum geo_class cls);

#endif
