/* SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed pseudorandom function for short inputs.
 * Used wherever an outsider must not predict or invert a hash: the client table's and the
 * resolver cache's bucket choice (so chosen addresses or names cannot pile into one bucket) and
 * the clients' daily pseudonyms. Little-endian, as specified; the key is 16 bytes. */
#ifndef GEOPROXY_PROXY_SIPHASH_H
#define GEOPROXY_PROXY_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_BYTES 16

uint64_t siphash24(const uint8_t key[SIPHASH_KEY_BYTES], const void *msg, size_t len);

#endif
