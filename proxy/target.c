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

const char *target_host_text(const struct target *t, char *buf, size_t len)
{
    if (len == 0)
        return buf;
    const void *raw = t->addr.ss_family == AF_INET
                          ? (const void *)&((const struct sockaddr_in *)&t->addr)->sin_addr
                          : (const void *)&((const struct sockaddr_in6 *)&t->addr)->sin6_addr;
    if (!target_is_literal(t))
        snprintf(buf, len, "%.*s", (int)strnlen(t->host, sizeof(t->host)), t->host);
    else if ((t->addr.ss_family != AF_INET && t->addr.ss_family != AF_INET6) ||
             len < INET6_ADDRSTRLEN ||
             inet_ntop(t->addr.ss_family, raw, buf, (socklen_t)len) == NULL)
        snprintf(buf, len, "?");
    return buf;
}

const char *target_format(const struct target *t, char *buf, size_t len)
{
    char host[TARGET_HOST_MAX];
    target_host_text(t, host, sizeof(host));
    bool bracket = target_is_literal(t) && t->addr.ss_family == AF_INET6;
    snprintf(buf, len, "%s%s%s:%u", bracket ? "[" : "", host, bracket ? "]" : "",
             (unsigned)t->port);
    return buf;
}
