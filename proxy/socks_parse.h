/* SOCKS wire formats: parsers for what a client sends (SOCKS5 per RFC 1928, its username/password
 * sub-negotiation per RFC 1929, SOCKS4 and the 4a extension) and builders for what the proxy
 * answers. Pure functions over bytes: no sockets, no allocation, no libuv.
 *
 * Every parser takes (buf, len, out, consumed), reads at most len bytes of buf, and returns
 * PARSE_DONE with *consumed = the length of the one message parsed (bytes after it, pipelined by
 * the client, are left alone), PARSE_NEED_MORE when buf is a valid prefix, or PARSE_INVALID when
 * no further bytes can make it valid. *consumed is 0 unless the result is PARSE_DONE. 'out' is
 * cleared first and filled on PARSE_DONE; on PARSE_INVALID only its 'reply' field (where it has
 * one) is meaningful. buf may be NULL when len is 0. */
#ifndef GEOPROXY_PROXY_SOCKS_PARSE_H
#define GEOPROXY_PROXY_SOCKS_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proxy/parse_result.h"
#include "proxy/target.h"

#define SOCKS5_VERSION 0x05
#define SOCKS5_AUTH_VERSION 0x01 /* RFC 1929 sub-negotiation */
#define SOCKS4_VERSION 0x04
#define SOCKS4_REPLY_VERSION 0x00

#define SOCKS5_AUTH_FIELD_MAX 255 /* RFC 1929 ULEN and PLEN */
#define SOCKS4_USERID_MAX 255     /* bytes before the NUL */
#define SOCKS4A_HOST_MAX 255      /* bytes before the NUL */

/* Longest messages the builders produce. */
#define SOCKS5_METHOD_REPLY_LEN 2
#define SOCKS5_AUTH_REPLY_LEN 2
#define SOCKS5_REPLY_MAX 22 /* VER REP RSV ATYP + 16-byte IPv6 address + port */
#define SOCKS4_REPLY_LEN 8

/* SOCKS5 authentication methods (greeting METHODS, selection reply METHOD). */
enum socks5_method {
    SOCKS5_METHOD_NO_AUTH = 0x00,
    SOCKS5_METHOD_GSSAPI = 0x01,
    SOCKS5_METHOD_USERPASS = 0x02,
    SOCKS5_METHOD_NONE_ACCEPTABLE = 0xFF,
};

/* RFC 1929 status: zero is success, anything else is failure and the server closes. */
enum socks5_auth_status {
    SOCKS5_AUTH_OK = 0x00,
    SOCKS5_AUTH_FAILURE = 0x01,
};

enum socks5_cmd {
    SOCKS5_CMD_CONNECT = 0x01,
    SOCKS5_CMD_BIND = 0x02,
    SOCKS5_CMD_UDP_ASSOCIATE = 0x03,
};

enum socks5_atyp {
    SOCKS5_ATYP_IPV4 = 0x01,
    SOCKS5_ATYP_DOMAIN = 0x03,
    SOCKS5_ATYP_IPV6 = 0x04,
};

/* SOCKS5 REP values. */
enum socks5_rep {
    SOCKS5_REP_SUCCEEDED = 0x00,
    SOCKS5_REP_GENERAL_FAILURE = 0x01,
    SOCKS5_REP_NOT_ALLOWED = 0x02,
    SOCKS5_REP_NET_UNREACH = 0x03,
    SOCKS5_REP_HOST_UNREACH = 0x04,
    SOCKS5_REP_REFUSED = 0x05,
    SOCKS5_REP_TTL_EXPIRED = 0x06,
    SOCKS5_REP_CMD_NOT_SUPPORTED = 0x07,
    SOCKS5_REP_ATYP_NOT_SUPPORTED = 0x08,
};

/* SOCKS4 CD values: commands in requests, results in replies. */
enum socks4_cd {
    SOCKS4_CMD_CONNECT = 0x01,
    SOCKS4_CMD_BIND = 0x02,
    SOCKS4_CD_GRANTED = 0x5A,
    SOCKS4_CD_REJECTED = 0x5B,        /* rejected or failed */
    SOCKS4_CD_NO_IDENTD = 0x5C,       /* client's identd unreachable */
    SOCKS4_CD_IDENTD_MISMATCH = 0x5D, /* identd and USERID disagree */
};

/* SOCKS5 greeting: VER=5, NMETHODS (at least 1), METHODS. */
struct socks5_greeting {
    uint8_t n_methods;   /* NMETHODS as sent (duplicates counted) */
    uint8_t offered[32]; /* bit m set: method m was offered; see socks5_greeting_has_method */
};

/* RFC 1929 username/password request: VER=1, ULEN (1..255), UNAME, PLEN (1..255), PASSWD.
 * The lengths are authoritative (the fields may hold NUL bytes); each is also NUL-terminated. */
struct socks5_auth {
    char user[SOCKS5_AUTH_FIELD_MAX + 1];
    size_t user_len;
    char password[SOCKS5_AUTH_FIELD_MAX + 1];
    size_t password_len;
};

/* SOCKS5 request: VER=5, CMD, RSV=0, ATYP, DST.ADDR, DST.PORT. */
struct socks5_request {
    uint8_t cmd;          /* SOCKS5_CMD_*: CONNECT, BIND and UDP ASSOCIATE all parse */
    uint8_t atyp;         /* SOCKS5_ATYP_* as sent */
    struct target target; /* name (ATYP 3, NUL-terminated) or literal address, and port */
    uint8_t reply;        /* on PARSE_INVALID: the REP to answer with; 0: close without reply */
};

/* SOCKS4 request: VN=4, CD, DSTPORT, DSTIP, USERID NUL; SOCKS4a (DSTIP 0.0.0.x, x != 0) adds
 * a host name and a NUL. */
struct socks4_request {
    uint8_t cmd;                        /* SOCKS4_CMD_CONNECT or SOCKS4_CMD_BIND */
    bool is_4a;                         /* target.host holds the name the client sent */
    struct target target;               /* 4a: name; else the IPv4 literal DSTIP */
    char userid[SOCKS4_USERID_MAX + 1]; /* NUL-terminated, possibly "" */
    size_t userid_len;                  /* bytes before the NUL */
    uint8_t reply; /* on PARSE_INVALID: the CD to answer with; 0: close without reply */
};

/* Parses a SOCKS5 greeting. INVALID when VER is not 5 or NMETHODS is 0 (close without reply). */
enum parse_result socks5_parse_greeting(const uint8_t *buf, size_t len, struct socks5_greeting *out,
                                        size_t *consumed);

/* True when the greeting offered 'method'. */
bool socks5_greeting_has_method(const struct socks5_greeting *g, uint8_t method);

/* Parses an RFC 1929 username/password request. INVALID when VER is not 1 or either length is
 * 0; the caller then answers SOCKS5_AUTH_FAILURE and closes. */
enum parse_result socks5_parse_auth(const uint8_t *buf, size_t len, struct socks5_auth *out,
                                    size_t *consumed);

/* Parses a SOCKS5 request. On INVALID, out->reply is SOCKS5_REP_ATYP_NOT_SUPPORTED for an
 * unknown ATYP, SOCKS5_REP_CMD_NOT_SUPPORTED for a CMD other than 1, 2, 3, 0 for a VER other
 * than 5 (close without reply) and SOCKS5_REP_GENERAL_FAILURE otherwise (RSV not 0, a domain
 * name that is empty or holds a NUL byte). Faults are judged in wire order. */
enum parse_result socks5_parse_request(const uint8_t *buf, size_t len, struct socks5_request *out,
                                       size_t *consumed);

/* Parses a SOCKS4 or SOCKS4a request. On INVALID, out->reply is 0 for a VN other than 4 (close
 * without reply) and SOCKS4_CD_REJECTED otherwise (CD neither CONNECT nor BIND, a USERID or host
 * longer than 255 bytes, an empty 4a host). NEED_MORE while a NUL is missing but the field could
 * still end within its limit. */
enum parse_result socks4_parse_request(const uint8_t *buf, size_t len, struct socks4_request *out,
                                       size_t *consumed);

/* The SOCKS5 REP for how an outbound connection ended: OK 0x00, NOT_ALLOWED 0x02, NET_UNREACH
 * 0x03, HOST_UNREACH and every DNS failure 0x04, REFUSED 0x05, TIMEOUT 0x06, anything else 0x01. */
uint8_t socks5_rep_from_outbound(enum outbound_status st);

/* The SOCKS4 CD for how an outbound connection ended: OK 0x5A, anything else 0x5B. */
uint8_t socks4_cd_from_outbound(enum outbound_status st);

/* The builders write one message into out and return its length, or 0 (nothing written) when
 * out_len is too small. A 'bound' of family AF_INET or AF_INET6 must point to a whole
 * sockaddr_in or sockaddr_in6 (a sockaddr_storage always does). */

/* SOCKS5 method selection: VER=5, METHOD (SOCKS5_METHOD_NONE_ACCEPTABLE to refuse). */
size_t socks5_build_method_reply(uint8_t *out, size_t out_len, uint8_t method);

/* RFC 1929 status reply: VER=1, STATUS. */
size_t socks5_build_auth_reply(uint8_t *out, size_t out_len, uint8_t status);

/* SOCKS5 reply: VER=5, REP, RSV=0, then BND.ADDR and BND.PORT from 'bound' as ATYP 1 (AF_INET)
 * or 4 (AF_INET6), or 0.0.0.0:0 when bound is NULL or of another family. 10 or 22 bytes. */
size_t socks5_build_reply(uint8_t *out, size_t out_len, uint8_t rep, const struct sockaddr *bound);

/* SOCKS4 reply: VN=0, CD, DSTPORT and DSTIP from 'bound' when it is AF_INET, else zeros. */
size_t socks4_build_reply(uint8_t *out, size_t out_len, uint8_t cd, const struct sockaddr *bound);

#endif
