/* SOCKS5 as a client speaks it to a parent proxy (Tor, microsocks, another geoproxy): builders
 * for the greeting, the RFC 1929 username/password request and the CONNECT request, and parsers
 * for the server's method selection, authentication status and CONNECT reply. The server side of
 * the same wire formats, and their constants, are in socks_parse.h. Pure functions over bytes: no
 * sockets, no allocation, no libuv.
 *
 * Parsers take (buf, len, out, consumed) with the promises of socks_parse.h: PARSE_DONE with
 * *consumed = the length of the one message (bytes after it are left alone: after a CONNECT reply
 * they are the tunnel's), PARSE_NEED_MORE for a valid prefix, PARSE_INVALID when no further bytes
 * can make it valid; *consumed is 0 unless DONE. buf may be NULL when len is 0.
 *
 * Builders write one message into out and return its length, or a negative errno (equal to
 * libuv's UV_E* on Unix): -EINVAL for arguments the message cannot carry, -ENOBUFS when out_len
 * is too small. On error nothing is written. */
#ifndef GEOPROXY_PROXY_SOCKS_CLIENT_PARSE_H
#define GEOPROXY_PROXY_SOCKS_CLIENT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/parse_result.h"
#include "proxy/socks_parse.h"
#include "proxy/target.h"

#define SOCKS5_DOMAIN_NAME_MAX 255 /* ATYP 3 names carry a one-byte length */

/* Longest messages the builders produce, and the longest CONNECT reply. */
#define SOCKS5_CLIENT_GREETING_MAX 4                                   /* VER NMETHODS 0x00 0x02 */
#define SOCKS5_CLIENT_AUTH_MAX (3 + 2 * SOCKS5_AUTH_FIELD_MAX)         /* RFC 1929 request */
#define SOCKS5_CLIENT_CONNECT_MAX (4 + 1 + SOCKS5_DOMAIN_NAME_MAX + 2) /* ATYP 3, longest name */
#define SOCKS5_CLIENT_REPLY_MAX SOCKS5_CLIENT_CONNECT_MAX              /* same layout */

/* A CONNECT reply: VER=5, REP, RSV=0, ATYP, BND.ADDR, BND.PORT. */
struct socks5_client_reply {
    uint8_t rep;         /* REP as sent; anything but SOCKS5_REP_SUCCEEDED is a failure */
    uint8_t atyp;        /* SOCKS5_ATYP_* of the bound address */
    struct target bound; /* BND.ADDR as a name (ATYP 3) or literal, and BND.PORT */
};

/* Greeting: VER=5 and the methods offered, SOCKS5_METHOD_NO_AUTH and, when 'userpass' (the
 * upstream has credentials configured), SOCKS5_METHOD_USERPASS. Returns 3 or 4. */
int socks5_client_build_greeting(uint8_t *out, size_t out_len, bool userpass);

/* Parses the method selection (VER=5, METHOD). DONE with *method the server's choice, which may
 * be SOCKS5_METHOD_NONE_ACCEPTABLE (the server closes next). INVALID when VER is not 5 or the
 * method is one the greeting did not offer ('userpass': as passed to the greeting builder). */
enum parse_result socks5_client_parse_method(const uint8_t *buf, size_t len, bool userpass,
                                             uint8_t *method, size_t *consumed);

/* RFC 1929 request: VER=1, ULEN, UNAME, PLEN, PASSWD. -EINVAL unless both lengths are within
 * 1..SOCKS5_AUTH_FIELD_MAX (the fields are bytes: NUL is allowed). */
int socks5_client_build_auth(uint8_t *out, size_t out_len, const char *user, size_t user_len,
                             const char *password, size_t password_len);

/* Parses the RFC 1929 reply (VER=1, STATUS). DONE with *status as sent: SOCKS5_AUTH_OK (0x00)
 * is success, any other value failure. INVALID when VER is not 1. */
enum parse_result socks5_client_parse_auth_reply(const uint8_t *buf, size_t len, uint8_t *status,
                                                 size_t *consumed);

/* CONNECT request for 'host' and 'port'. An IPv4 literal goes as ATYP 1, an IPv6 literal (with
 * or without brackets) as ATYP 4, anything else unresolved as a name, ATYP 3, so that the parent
 * proxy resolves it. -EINVAL for port 0, an empty host, a name longer than
 * SOCKS5_DOMAIN_NAME_MAX, a name holding a space or a control byte, or brackets around something
 * other than an IPv6 literal. */
int socks5_client_build_connect(uint8_t *out, size_t out_len, const char *host, uint16_t port);

/* Parses the CONNECT reply. Every REP value is DONE and reported as sent: 0x00..0x08 are RFC
 * 1928's, others are unassigned there but real servers send them (Tor's ExtendedErrors use
 * 0xF0..0xF7), and the caller handles every non-zero REP the same way, as a failure; refusing
 * the reply would only lose the server's reason. INVALID when VER is not 5, RSV is not 0, ATYP
 * is not 1, 3 or 4, or a bound name is empty or holds a NUL byte. */
enum parse_result socks5_client_parse_reply(const uint8_t *buf, size_t len,
                                            struct socks5_client_reply *out, size_t *consumed);

/* How a CONNECT attempt through the parent ended, for events and for the client's own reply:
 * the inverse of socks5_rep_from_outbound (0x04 is HOST_UNREACH; 0x07, 0x08 and codes RFC 1928
 * does not assign are FAILED). */
enum outbound_status socks5_client_outbound_from_rep(uint8_t rep);

#endif
