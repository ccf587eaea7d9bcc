/* Values in the configuration language: numbers, durations, addresses, names, and the "did you
 * mean" suggestion for misspelt keywords. Internal to policy/; pure functions over bytes. */
#ifndef GEOPROXY_POLICY_CONFIG_VALUE_H
#define GEOPROXY_POLICY_CONFIG_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONFIG_VALUE_MESSAGE_MAX 320
#define CONFIG_DURATION_MAX_MS (24u * 60u * 60u * 1000u)

enum config_number_result {
    CONFIG_NUMBER_OK,
    CONFIG_NUMBER_INVALID,   /* empty, or not only decimal digits */
    CONFIG_NUMBER_TOO_LARGE, /* does not fit in 64 bits */
};

/* Decimal digits only: no sign, no blanks, no base prefix. */
enum config_number_result config_parse_number(const char *s, size_t len, uint64_t *out);

/* A duration: decimal digits followed by "ms", "s", "m", "h" or nothing (seconds). Stores
 * milliseconds; CONFIG_NUMBER_TOO_LARGE when that overflows 64 bits. */
enum config_number_result config_parse_duration(const char *s, size_t len, uint64_t *ms);

struct config_value_error {
    size_t offset; /* byte offset in the value where the problem is */
    char message[CONFIG_VALUE_MESSAGE_MAX];
};

/* An IP address with a port: "1.2.3.4:80" or "[2001:db8::1]:80". Host names are refused. When
 * default_port is 0 the port is required; otherwise it is optional and default_port is used.
 * Returns 0 with *out set, or -1 with err set. */
int config_parse_address(const char *s, size_t len, uint16_t default_port,
                         struct sockaddr_storage *out, struct config_value_error *err);

/* "HOST:PORT" where HOST is an IPv4 address, an IPv6 address in brackets or a DNS name; the port
 * is required. Stores the host without brackets in host (CONFIG_HOST_MAX bytes). Returns 0, or
 * -1 with err set. */
int config_parse_host_port(const char *s, size_t len, char *host, uint16_t *port,
                           struct config_value_error *err);

/* An IP address without a port: "192.0.2.10", "2001:db8::10" or "[2001:db8::10]". Returns 0
 * with *out set (port 0), or -1 with err set. */
int config_parse_ip(const char *s, size_t len, struct sockaddr_storage *out,
                    struct config_value_error *err);

/* True for a DNS name (no wildcard) or an IP address, as certificates name hosts. */
bool config_host_is_valid(const char *host);

/* True for a name of 1 to CONFIG_NAME_MAX - 1 bytes of letters, digits, '.', '_' and '-' that
 * starts with a letter or a digit. */
bool config_name_is_valid(const char *s, size_t len);

/* The candidate closest to 'word' by edit distance (insert, delete, replace, swap two neighbours)
 * when that distance is 1 or 2, else NULL. 'candidates' ends with NULL. */
const char *config_suggest(const char *word, size_t len, const char *const *candidates);

/* True when both addresses have the same family, address and port. */
/* True for 127.0.0.0/8 and ::1 (the port is ignored). */
bool config_address_is_loopback(const struct sockaddr_storage *addr);

bool config_address_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* True when binding both would conflict: same family and port, and the same address or either is
 * the wildcard (0.0.0.0 or ::). */
bool config_address_overlaps(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#endif
