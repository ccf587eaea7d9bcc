#include "proxy/pseudonym.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "proxy/hex.h"
#include "proxy/siphash.h"

int pseudonym_key_init(struct pseudonym_key *key)
{
    return RAND_bytes(key->secret, sizeof key->secret) == 1 ? 0 : -1;
}

/* The bytes that identify the client: 4 for IPv4 (mapped or not), 16 for IPv6; 0 otherwise. */
static size_t pseudonym_address_bytes(const struct sockaddr *addr, uint8_t out[16])
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (addr->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)addr)->sin_addr, 4);
        return 4;
    }
    if (addr->sa_family != AF_INET6)
        return 0;
    const uint8_t *a = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;
    if (memcmp(a, v4mapped, sizeof v4mapped) == 0) {
        memcpy(out, a + 12, 4);
        return 4;
    }
    memcpy(out, a, 16);
    return 16;
}

void pseudonym_of(const struct pseudonym_key *key, const struct sockaddr *addr, uint64_t unix_day,
                  char out[PSEUDONYM_LEN + 1])
{
    uint8_t msg[8 + 16];
    size_t n = pseudonym_address_bytes(addr, msg + 8);
    if (n == 0) {
        snprintf(out, PSEUDONYM_LEN + 1, "c-unknown");
        return;
    }
    for (int i = 0; i < 8; i++)
        msg[i] = (uint8_t)(unix_day >> (56 - 8 * i));
    uint64_t h = siphash24(key->secret, msg, 8 + n) >> 16; /* 48 bits: 12 digits */
    out[0] = 'c';
    out[1] = '-';
    for (int i = PSEUDONYM_LEN - 1; i >= 2; i--, h >>= 4)
        out[i] = hex_digit((unsigned)h);
    out[PSEUDONYM_LEN] = '\0';
}
