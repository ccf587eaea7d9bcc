/* Keyed pseudonyms for client addresses, for events at log level meta: one client keeps the
 * same pseudonym for a UTC day (so an operator can tell one busy client from many), gets another
 * the next day, and without the key, which is random per process and kept in memory only, no one
 * can tell which address a pseudonym stands for (SipHash-2-4, a keyed pseudorandom function, over
 * the day and the address: cheap enough for every connection's log line). */
#ifndef GEOPROXY_PROXY_PSEUDONYM_H
#define GEOPROXY_PROXY_PSEUDONYM_H

#include <stdint.h>
#include <sys/socket.h>

#define PSEUDONYM_KEY_BYTES 16 /* SipHash's key */
#define PSEUDONYM_LEN 14       /* "c-" and 12 hex digits */

struct pseudonym_key {
    uint8_t secret[PSEUDONYM_KEY_BYTES];
};

/* Draws a new random key. Returns 0, or -1 when the system has no randomness to give. */
int pseudonym_key_init(struct pseudonym_key *key);

/* Writes the pseudonym of addr's IP address (the port is ignored; an IPv4-mapped IPv6 address
 * counts as its IPv4 address) on day 'unix_day' (seconds since the epoch / 86400) into out.
 * Another family gives "c-unknown". */
void pseudonym_of(const struct pseudonym_key *key, const struct sockaddr *addr, uint64_t unix_day,
                  char out[PSEUDONYM_LEN + 1]);

#endif
