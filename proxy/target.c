#include "proxy/target.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

const char *outbound_status_name(enum outbound_status st)
{
    switch (st) {
    case OUTBOUND_OK:
        return "ok";
    case OUTBOUND_NOT_ALLOWED:
        return "not-allowed";
    case OUTBOUND_FAILED:
        return "failed";
    case OUTBOUND_NET_UNREACH:
        return "net-unreachable";
    case OUTBOUND_HOST_UNREACH:
        return "host-unreachable";
    case OUTBOUND_DNS_NOT_FOUND:
        return "dns-not-found";
    case OUTBOUND_DNS_FAILED:
        return "dns-failed";
    case OUTBOUND_DNS_TIMEOUT:
        return "dns-timeout";
    case OUTBOUND_REFUSED:
        return "refused";
    case OUTBOUND_TIMEOUT:
        return "timeout";
    }
    return "unknown";
}

const char *target_format(const struct target *t, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];

    if (len == 0)
        return buf;
    if (!target_is_literal(t)) {
        snprintf(buf, len, "%.*s:%u", (int)strnlen(t->host, sizeof(t->host)), t->host,
                 (unsigned)t->port);
    } else if (t->addr.ss_family == AF_INET &&
               inet_ntop(AF_INET, &((const struct sockaddr_in *)&t->addr)->sin_addr, ip,
                         sizeof(ip)) != NULL) {
        snprintf(buf, len, "%s:%u", ip, (unsigned)t->port);
    } else if (t->addr.ss_family == AF_INET6 &&
               inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&t->addr)->sin6_addr, ip,
                         sizeof(ip)) != NULL) {
        snprintf(buf, len, "[%s]:%u", ip, (unsigned)t->port);
    } else {
        snprintf(buf, len, "?:%u", (unsigned)t->port);
    }
    return buf;
}
