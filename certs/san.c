/* Names: what kind of subjectAltName a string is, and which certificate names are acceptable
 * (they become file names). Pure functions. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "certs/certs.h"

#define SAN_LABEL_MAX 63
#define SAN_HOST_MAX 253

static bool san_is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Checks one label of a host name: [A-Za-z0-9] and inner '-', 1..63 characters. Sets *all_digits.
 */
static bool san_label_is_valid(const char *label, size_t len, bool *all_digits)
{
    if (len == 0 || len > SAN_LABEL_MAX || label[0] == '-' || label[len - 1] == '-')
        return false;
    *all_digits = true;
    for (size_t i = 0; i < len; i++) {
        char c = label[i];
        if (!san_is_alnum(c) && c != '-')
            return false;
        if (c < '0' || c > '9')
            *all_digits = false;
    }
    return true;
}

static bool san_host_is_valid(const char *text)
{
    size_t len = strlen(text);
    bool all_digits = false;

    if (len == 0 || len > SAN_HOST_MAX)
        return false;
    if (strncmp(text, "*.", 2) == 0) { /* a wildcard, as the first label only */
        text += 2;
        if (*text == '\0')
            return false;
    }
    for (const char *label = text;;) {
        const char *dot = strchr(label, '.');
        size_t n = dot != NULL ? (size_t)(dot - label) : strlen(label);
        if (!san_label_is_valid(label, n, &all_digits))
            return false;
        if (dot == NULL)
            break;
        label = dot + 1;
    }
    return !all_digits; /* the last label: "10.0.0.256" is a bad address, not a name */
}

enum certs_san_kind certs_san_kind_of(const char *text)
{
    unsigned char addr[sizeof(struct in6_addr)];

    if (text == NULL)
        return CERTS_SAN_INVALID;
    if (inet_pton(AF_INET, text, addr) == 1)
        return CERTS_SAN_IPV4;
    if (inet_pton(AF_INET6, text, addr) == 1)
        return CERTS_SAN_IPV6;
    return san_host_is_valid(text) ? CERTS_SAN_DNS : CERTS_SAN_INVALID;
}

bool certs_name_is_valid(const char *name)
{
    size_t len = name != NULL ? strlen(name) : 0;

    if (len == 0 || len > CERTS_NAME_MAX || name[0] == '.' || name[0] == '-')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!san_is_alnum(c) && c != '.' && c != '_' && c != '-' && c != '@')
            return false;
    }
    return true;
}
