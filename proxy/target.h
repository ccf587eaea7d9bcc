/* Types shared by the inbound protocols, the outbound connector and the connection: where a
 * client wants to go, and how an attempt to get there ended. Nothing else lives here. */
#ifndef GEOPROXY_PROXY_TARGET_H
#define GEOPROXY_PROXY_TARGET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define TARGET_HOST_MAX 256 /* a DNS name is at most 253 characters; SOCKS allows 255 */

/* A destination: either a name to resolve or a literal address, and a port. */
struct target {
    char host[TARGET_HOST_MAX];   /* NUL-terminated name; "" when 'addr' holds a literal */
    struct sockaddr_storage addr; /* literal IPv4/IPv6 address (port not set) when host is "" */
    uint16_t port;                /* host byte order */
};

/* How an outbound connection attempt ended. Each inbound protocol maps these to its own reply
 * codes (SOCKS5 REP, SOCKS4 CD, HTTP status plus Proxy-Status error). */
enum outbound_status {
    OUTBOUND_OK,
    OUTBOUND_NOT_ALLOWED,   /* refused by policy: never attempted */
    OUTBOUND_FAILED,        /* anything else: out of memory, too many open files, ... */
    OUTBOUND_NET_UNREACH,   /* ENETUNREACH on every address */
    OUTBOUND_HOST_UNREACH,  /* EHOSTUNREACH, or no address of a usable family */
    OUTBOUND_DNS_NOT_FOUND, /* the name does not exist or has no address */
    OUTBOUND_DNS_FAILED,    /* the resolver answered with an error (SERVFAIL, refused, ...) */
    OUTBOUND_DNS_TIMEOUT,   /* the resolver did not answer in time */
    OUTBOUND_REFUSED,       /* ECONNREFUSED on the last address tried */
    OUTBOUND_TIMEOUT,       /* the connect timeout fired */
};

/* A short constant name for logs: "ok", "refused", "dns-not-found", ... */
const char *outbound_status_name(enum outbound_status st);

/* True when the target is a literal address rather than a name. */
static inline bool target_is_literal(const struct target *t)
{
    return t->host[0] == '\0';
}

/* The host alone: the name, or the address literal (IPv6 without brackets); buf should hold
 * TARGET_HOST_MAX bytes. */
const char *target_host_text(const struct target *t, char *buf, size_t len);

/* Formats the target as "host:port", "1.2.3.4:port" or "[::1]:port" into buf. */
const char *target_format(const struct target *t, char *buf, size_t len);

#endif
