/* GeoIP classification over libmaxminddb: local ranges, country and ASN lookups. */
#include "geo/geo.h"
#include "geo/geo_index.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <maxminddb.h>
#include <netinet/in.h>
#include <sys/stat.h>

struct geo_db {
    MMDB_s mmdb;
    struct geo_index *index; /* built by geo_db_open, read-only afterwards */
};

/* An address as looked up: 4 bytes (IPv4, also for an IPv4-mapped IPv6 address) or 16. */
struct geo_addr {
    bool ipv4;
    uint8_t bytes[16];
};

/* One local range: the first `bits` bits of addr (4 bytes for IPv4, 16 for IPv6). */
struct geo_prefix {
    sa_family_t family;
    uint8_t bits;
    uint8_t addr[16];
};

static const struct geo_prefix geo_local_prefixes[] = {
    {AF_INET, 32, {0, 0, 0, 0}},  /* unspecified */
    {AF_INET, 8, {10}},           /* RFC 1918 */
    {AF_INET, 10, {100, 64}},     /* CGNAT, RFC 6598 */
    {AF_INET, 8, {127}},          /* loopback */
    {AF_INET, 16, {169, 254}},    /* link-local, RFC 3927 */
    {AF_INET, 12, {172, 16}},     /* RFC 1918 */
    {AF_INET, 16, {192, 168}},    /* RFC 1918 */
    {AF_INET6, 128, {0}},         /* unspecified :: */
    {AF_INET6, 128, {[15] = 1}},  /* loopback ::1 */
    {AF_INET6, 7, {0xfc}},        /* unique local, RFC 4193 */
    {AF_INET6, 10, {0xfe, 0x80}}, /* link-local */
};

static bool geo_prefix_matches(const struct geo_prefix *p, const uint8_t *addr)
{
    unsigned full = p->bits / 8u, rest = p->bits % 8u;

    for (unsigned i = 0; i < full; i++) {
        if (addr[i] != p->addr[i])
            return false;
    }
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8u - rest));
    return (addr[full] & mask) == (p->addr[full] & mask);
}

/* The prefix length of the local range holding the raw address (4 or 16 bytes of the given
 * family), or -1 when it is in none. */
static int geo_range_local_bits(sa_family_t family, const uint8_t *addr)
{
    for (size_t i = 0; i < sizeof geo_local_prefixes / sizeof geo_local_prefixes[0]; i++) {
        if (geo_local_prefixes[i].family == family &&
            geo_prefix_matches(&geo_local_prefixes[i], addr))
            return geo_local_prefixes[i].bits;
    }
    return -1;
}

/* Reads addr into *ga, turning an IPv4-mapped IPv6 address into plain IPv4. Returns false for
 * NULL or a family other than AF_INET / AF_INET6. */
static bool geo_addr_parse(const struct sockaddr *addr, struct geo_addr *ga)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (addr == NULL)
        return false;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)addr;
        ga->ipv4 = true;
        memcpy(ga->bytes, &in4->sin_addr, 4);
        return true;
    }
    if (addr->sa_family != AF_INET6)
        return false;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
    memcpy(ga->bytes, in6->sin6_addr.s6_addr, 16);
    ga->ipv4 = memcmp(ga->bytes, v4mapped, sizeof v4mapped) == 0;
    if (ga->ipv4)
        memmove(ga->bytes, ga->bytes + 12, 4);
    return true;
}

/* The prefix length of the local range holding ga, or -1 when it is in none. */
static int geo_addr_local_bits(const struct geo_addr *ga)
{
    return geo_range_local_bits(ga->ipv4 ? AF_INET : AF_INET6, ga->bytes);
}

bool geo_is_local(const struct sockaddr *addr)
{
    struct geo_addr ga;

    if (!geo_addr_parse(addr, &ga))
        return false;
    return geo_addr_local_bits(&ga) >= 0;
}

static uint16_t geo_country_answer(const MMDB_s *mmdb, uint32_t offset);

int geo_db_open(const char *path, struct geo_db **out, char *err, size_t err_len)
{
    int ret = -ENOMEM;
    struct geo_db *db = NULL;

    *out = NULL;
    if (err_len > 0)
        err[0] = '\0';
    if (path == NULL || path[0] == '\0') {
        snprintf(err, err_len, "no GeoIP database file given");
        return -EINVAL;
    }
    db = calloc(1, sizeof *db);
    if (db == NULL) {
        snprintf(err, err_len, "%s: cannot open GeoIP database: out of memory", path);
        goto out;
    }

    errno = 0;
    int status = MMDB_open(path, MMDB_MODE_MMAP, &db->mmdb);
    if (status != MMDB_SUCCESS) {
        int saved_errno = errno;
        struct stat st;
        switch (status) {
        case MMDB_FILE_OPEN_ERROR:
            ret = saved_errno > 0 ? -saved_errno : -ENOENT;
            snprintf(err, err_len, "%s: cannot open GeoIP database: %s (%s)", path,
                     MMDB_strerror(status), strerror(-ret));
            break;
        case MMDB_IO_ERROR:
            /* libmaxminddb cannot mmap an empty file; say what is really wrong. */
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0) {
                ret = -EINVAL;
                snprintf(err, err_len, "%s: not a valid MaxMind DB file: the file is empty", path);
                break;
            }
            ret = -EIO;
            snprintf(err, err_len, "%s: cannot read GeoIP database: %s", path,
                     MMDB_strerror(status));
            break;
        case MMDB_OUT_OF_MEMORY_ERROR:
            ret = -ENOMEM;
            snprintf(err, err_len, "%s: cannot open GeoIP database: %s", path,
                     MMDB_strerror(status));
            break;
        default:
            ret = -EINVAL;
            snprintf(err, err_len, "%s: not a valid MaxMind DB file: %s", path,
                     MMDB_strerror(status));
            break;
        }
        goto free_db; /* MMDB_open cleans up after itself on failure */
    }
    ret = geo_index_new(&db->mmdb, geo_country_answer, &db->index);
    if (ret != 0) {
        snprintf(err, err_len, "%s: cannot open GeoIP database: out of memory", path);
        goto close_mmdb;
    }

    *out = db;
    return 0;

close_mmdb:
    MMDB_close(&db->mmdb);
free_db:
    free(db);
out:
    return ret;
}

void geo_db_free(struct geo_db *db)
{
    if (db == NULL)
        return;
    geo_index_free(db->index);
    MMDB_close(&db->mmdb);
    free(db);
}

const char *geo_db_type(const struct geo_db *db)
{
    const char *type = db->mmdb.metadata.database_type;
    return type != NULL ? type : "";
}

uint64_t geo_db_build_epoch(const struct geo_db *db)
{
    return db->mmdb.metadata.build_epoch;
}

unsigned geo_db_ip_version(const struct geo_db *db)
{
    return db->mmdb.metadata.ip_version;
}

/* libmaxminddb's own lookup of ga: what the index answers must equal. */
static MMDB_lookup_result_s geo_db_lookup_library(const struct geo_db *db,
                                                  const struct geo_addr *ga, int *mmdb_error)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof ss);
    if (ga->ipv4) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
        in4->sin_family = AF_INET;
        memcpy(&in4->sin_addr, ga->bytes, 4);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        memcpy(in6->sin6_addr.s6_addr, ga->bytes, 16);
    }
    /* MMDB_lookup_sockaddr takes a non-const MMDB_s but only reads it. */
    return MMDB_lookup_sockaddr((MMDB_s *)&db->mmdb, (const struct sockaddr *)&ss, mmdb_error);
}

/* Looks ga up in db and sets *offset to its record's data-section offset; false when the address
 * has no record or the lookup failed, and false too when the record's network is shorter than
 * min_bits (a prefix length in the address's own family): a record for a wider network does not
 * count inside a local range. The index answers as MMDB_lookup_sockaddr would, or defers to it. */
static bool geo_db_lookup(const struct geo_db *db, const struct geo_addr *ga, int min_bits,
                          uint32_t *offset)
{
    unsigned netmask;
    enum geo_index_status st = geo_index_lookup(db->index, ga->bytes, ga->ipv4, offset, &netmask);

    if (st == GEO_INDEX_NOT_FOUND)
        return false;
    if (st == GEO_INDEX_ASK_LIBRARY) {
        int mmdb_error = MMDB_SUCCESS;
        MMDB_lookup_result_s res = geo_db_lookup_library(db, ga, &mmdb_error);
        if (mmdb_error != MMDB_SUCCESS || !res.found_entry)
            return false;
        netmask = res.netmask;
        *offset = res.entry.offset;
    }
    if (min_bits > 0) {
        /* An IPv4 address found in an IPv6 tree has its netmask counted in IPv6 bits. */
        int bits = (int)netmask;
        if (ga->ipv4 && db->mmdb.metadata.ip_version == 6)
            bits -= 96;
        if (bits < min_bits)
            return false;
    }
    return true;
}

static bool geo_is_ascii_letter(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static char geo_ascii_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* Reads the country code of entry into cc. Returns false if no field is present or the first
 * present one is not exactly two ASCII letters. */
static bool geo_entry_country(MMDB_entry_s *entry, char cc[3])
{
    static const char *const paths[][3] = {
        {"country", "iso_code", NULL},
        {"registered_country", "iso_code", NULL},
        {"country_code", NULL, NULL},
    };

    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        MMDB_entry_data_s data;
        if (MMDB_aget_value(entry, &data, paths[i]) != MMDB_SUCCESS || !data.has_data)
            continue;
        if (data.type != MMDB_DATA_TYPE_UTF8_STRING || data.data_size != 2 ||
            !geo_is_ascii_letter(data.utf8_string[0]) || !geo_is_ascii_letter(data.utf8_string[1]))
            return false;
        cc[0] = geo_ascii_upper(data.utf8_string[0]);
        cc[1] = geo_ascii_upper(data.utf8_string[1]);
        cc[2] = '\0';
        return true;
    }
    return false;
}

/* The index's answer for the record at offset: 0 when geo_entry_country finds no valid code,
 * else 1 + the code's index AA = 0 .. ZZ = 675. */
static uint16_t geo_country_answer(const MMDB_s *mmdb, uint32_t offset)
{
    MMDB_entry_s entry = {.mmdb = mmdb, .offset = offset};
    char cc[3];

    if (!geo_entry_country(&entry, cc))
        return 0;
    return (uint16_t)(1 + (cc[0] - 'A') * 26 + (cc[1] - 'A'));
}

/* The country of db's record at offset, from the index when it holds the record. */
static bool geo_db_country(const struct geo_db *db, uint32_t offset, char cc[3])
{
    int answer = geo_index_answer(db->index, offset);

    if (answer < 0) {
        MMDB_entry_s entry = {.mmdb = &db->mmdb, .offset = offset};
        return geo_entry_country(&entry, cc);
    }
    if (answer == 0)
        return false;
    cc[0] = (char)('A' + (answer - 1) / 26);
    cc[1] = (char)('A' + (answer - 1) % 26);
    cc[2] = '\0';
    return true;
}

/* Copies an organisation name of len bytes into out (GEO_AS_ORG_MAX), cutting on a UTF-8
 * character boundary and replacing control bytes so the name is safe in a log line. */
static void geo_copy_org(const char *src, size_t len, char *out)
{
    if (len > GEO_AS_ORG_MAX - 1) {
        len = GEO_AS_ORG_MAX - 1;
        while (len > 0 && ((unsigned char)src[len] & 0xc0u) == 0x80u)
            len--;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        out[i] = (c < 0x20u || c == 0x7fu) ? '?' : (char)c;
    }
    out[len] = '\0';
}

static void geo_entry_asn(MMDB_entry_s *entry, struct geo_result *out)
{
    MMDB_entry_data_s data;

    if (MMDB_get_value(entry, &data, "autonomous_system_number", NULL) == MMDB_SUCCESS &&
        data.has_data) {
        if (data.type == MMDB_DATA_TYPE_UINT32)
            out->asn = data.uint32;
        else if (data.type == MMDB_DATA_TYPE_UINT16)
            out->asn = data.uint16;
    }
    if (MMDB_get_value(entry, &data, "autonomous_system_organization", NULL) == MMDB_SUCCESS &&
        data.has_data && data.type == MMDB_DATA_TYPE_UTF8_STRING)
        geo_copy_org(data.utf8_string, data.data_size, out->as_org);
}

void geo_classify(const struct geo_db *country_db, const struct geo_db *asn_db,
                  const struct sockaddr *addr, struct geo_result *out)
{
    struct geo_addr ga;
    uint32_t offset;

    memset(out, 0, sizeof *out);
    out->cls = GEO_CLASS_UNKNOWN;
    if (!geo_addr_parse(addr, &ga))
        return;
    int local_bits = geo_addr_local_bits(&ga);
    out->local = local_bits >= 0;
    if (country_db != NULL && geo_db_lookup(country_db, &ga, local_bits, &offset) &&
        geo_db_country(country_db, offset, out->country))
        out->cls = GEO_CLASS_COUNTRY;
    else
        out->country[0] = '\0';
    if (out->cls != GEO_CLASS_COUNTRY && out->local)
        out->cls = GEO_CLASS_LOCAL;
    if (asn_db != NULL && geo_db_lookup(asn_db, &ga, local_bits, &offset)) {
        MMDB_entry_s entry = {.mmdb = &asn_db->mmdb, .offset = offset};
        geo_entry_asn(&entry, out);
    }
}

bool geo_lookup_country(const struct geo_db *db, const struct sockaddr *addr, char cc[3])
{
    struct geo_addr ga;
    uint32_t offset;

    cc[0] = '\0';
    if (db == NULL || !geo_addr_parse(addr, &ga))
        return false;
    if (geo_db_lookup(db, &ga, 0, &offset) && geo_db_country(db, offset, cc))
        return true;
    cc[0] = '\0';
    return false;
}

const char *geo_class_name(enum geo_class cls)
{
    switch (cls) {
    case GEO_CLASS_LOCAL:
        return "local";
    case GEO_CLASS_UNKNOWN:
        return "unknown";
    case GEO_CLASS_COUNTRY:
        return "country";
    }
    return "invalid";
}
