/* Line parsers for the inputs of `geoproxy geodb build`: Tor's geoip and geoip6 files, CSV
 * range files (ip-location-db / DB-IP lite layout) and CIDR overlay files.
 *
 * Pure functions over bytes: no I/O, no printing. The caller reads the file line by line and
 * prefixes messages with file:line. */
#ifndef GEOPROXY_GEO_GEODB_INPUT_H
#define GEOPROXY_GEO_GEODB_INPUT_H

#include <stddef.h>
#include <sys/socket.h>

enum geodb_format {
    GEODB_FORMAT_TOR4, /* Tor geoip: INTIP_LOW,INTIP_HIGH,CC (decimal IPv4 integers) */
    GEODB_FORMAT_TOR6, /* Tor geoip6: IPV6_LOW,IPV6_HIGH,CC */
    GEODB_FORMAT_TOR,  /* either of the two, decided per line (--tor FILE) */
    GEODB_FORMAT_CSV,  /* START,END,CC[,...] with textual addresses, fields optionally quoted */
    GEODB_FORMAT_CIDR, /* CIDR CC, whitespace-separated; an overlay applied after the ranges */
};

/* Why geodb_parse_line() skipped a line. */
enum geodb_skip {
    GEODB_SKIP_BLANK,       /* empty, only whitespace, or a '#' comment */
    GEODB_SKIP_NOT_COUNTRY, /* a range whose code is '??' or not two letters (A1, empty, ...) */
};

struct geodb_entry {
    struct sockaddr_storage first; /* AF_INET or AF_INET6, port 0 */
    struct sockaddr_storage last;  /* same family, first <= last */
    char country[3];               /* two upper-case ASCII letters */
    enum geodb_skip skip;          /* set when the parser returns 1 */
};

/* The format `geoproxy geodb build` assumes for an input given without --tor/--csv/--cidr,
 * from its file name: "geoip" tor4, "geoip6" tor6, "*.csv" csv, anything else cidr. */
enum geodb_format geodb_format_for_path(const char *path);

/* "tor4", "tor6", "tor", "csv" or "cidr". */
const char *geodb_format_name(enum geodb_format fmt);

/* Parses one line of len bytes (need not be NUL-terminated; a trailing "\n" or "\r\n" is
 * ignored). Returns 0 and fills *out for an entry, 1 for a line to skip (out->skip says why),
 * or -1 with a message in err (no file or line prefix) for a malformed line. */
int geodb_parse_line(enum geodb_format fmt, const char *line, size_t len, struct geodb_entry *out,
                     char *err, size_t err_len);

#endif
