/* SOCKS4/4a/5 wire formats: see socks_parse.h. Every read goes through the bounds-checked reader
 * below; nothing here looks at a byte at or past 'len'. */
#include "proxy/socks_parse.h"

#include <netinet/in.h>
#include <string.h>

/* A cursor over received bytes. The read functions return false, and leave the cursor where it
 * was, when fewer bytes remain than asked for. */
struct reader {
    const uint8_t *buf;
    size_t len;
    size_t pos;
};

static struct reader reader_init(const uint8_t *buf, size_t len)
{
    struct reader r = {.buf = buf, .len = buf != NULL ? len : 0, .pos = 0};
    return r;
}

static size_t reader_left(const struct reader *r)
{
    return r->len - r->pos;
}

static bool reader_u8(struct reader *r, uint8_t *out)
{
    if (reader_left(r) < 1) {
        return false;
    }
    *out = r->buf[r->pos];
    r->pos += 1;
    return true;
}

static bool reader_u16be(struct reader *r, uint16_t *out)
{
    if (reader_left(r) < 2) {
        return false;
    }
    *out = (uint16_t)((unsigned)r->buf[r->pos] << 8 | r->buf[r->pos + 1]);
    r->pos += 2;
    return true;
}

static bool reader_bytes(struct reader *r, void *out, size_t n)
{
    if (reader_left(r) < n) {
        return false;
    }
    if (n > 0) {
        memcpy(out, r->buf + r->pos, n);
    }
    r->pos += n;
    return true;
}

/* Reads a NUL-terminated string of at most 'max' bytes (plus the NUL) into out, which has room
 * for max + 1. NEED_MORE while no NUL is in sight and the field could still end in time;
 * INVALID once max bytes have been seen without a NUL. */
static enum parse_result reader_cstring(struct reader *r, char *out, size_t max, size_t *out_len)
{
    size_t avail = reader_left(r);
    size_t scan = avail < max + 1 ? avail : max + 1;
    const uint8_t *start = r->buf + r->pos;
    const uint8_t *nul = scan > 0 ? memchr(start, 0, scan) : NULL;

    if (nul == NULL) {
        return scan == max + 1 ? PARSE_INVALID : PARSE_NEED_MORE;
    }
    *out_len = (size_t)(nul - start);
    memcpy(out, start, *out_len);
    out[*out_len] = '\0';
    r->pos += *out_len + 1;
    return PARSE_DONE;
}

static void set_ipv4(struct sockaddr_storage *ss, const uint8_t ip[4])
{
    struct sockaddr_in sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    memcpy(&sin.sin_addr, ip, 4);
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, &sin, sizeof(sin));
}

static void set_ipv6(struct sockaddr_storage *ss, const uint8_t ip[16])
{
    struct sockaddr_in6 sin6;

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    memcpy(&sin6.sin6_addr, ip, 16);
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, &sin6, sizeof(sin6));
}

enum parse_result socks5_parse_greeting(const uint8_t *buf, size_t len, struct socks5_greeting *out,
                                        size_t *consumed)
{
    struct reader r = reader_init(buf, len);
    uint8_t ver, n_methods, methods[255];

    *consumed = 0;
    memset(out, 0, sizeof(*out));
    if (!reader_u8(&r, &ver)) {
        return PARSE_NEED_MORE;
    }
    if (ver != SOCKS5_VERSION) {
        return PARSE_INVALID;
    }
    if (!reader_u8(&r, &n_methods)) {
        return PARSE_NEED_MORE;
    }
    if (n_methods == 0) {
        return PARSE_INVALID;
    }
    if (!reader_bytes(&r, methods, n_methods)) {
        return PARSE_NEED_MORE;
    }
    for (unsigned i = 0; i < n_methods; i++) {
        out->offered[methods[i] / 8] |= (uint8_t)(1u << (methods[i] % 8));
    }
    out->n_methods = n_methods;
    *consumed = r.pos;
    return PARSE_DONE;
}

bool socks5_greeting_has_method(const struct socks5_greeting *g, uint8_t method)
{
    return (g->offered[method / 8] & (1u << (method % 8))) != 0;
}

enum parse_result socks5_parse_auth(const uint8_t *buf, size_t len, struct socks5_auth *out,
                                    size_t *consumed)
{
    struct reader r = reader_init(buf, len);
    uint8_t ver, ulen, plen;

    *consumed = 0;
    memset(out, 0, sizeof(*out));
    if (!reader_u8(&r, &ver)) {
        return PARSE_NEED_MORE;
    }
    if (ver != SOCKS5_AUTH_VERSION) {
        return PARSE_INVALID;
    }
    if (!reader_u8(&r, &ulen)) {
        return PARSE_NEED_MORE;
    }
    if (ulen == 0) {
        return PARSE_INVALID;
    }
    if (!reader_bytes(&r, out->user, ulen)) {
        goto need_more;
    }
    if (!reader_u8(&r, &plen)) {
        goto need_more;
    }
    if (plen == 0) {
        memset(out, 0, sizeof(*out));
        return PARSE_INVALID;
    }
    if (!reader_bytes(&r, out->password, plen)) {
        goto need_more;
    }
    out->user[ulen] = '\0';
    out->user_len = ulen;
    out->password[plen] = '\0';
    out->password_len = plen;
    *consumed = r.pos;
    return PARSE_DONE;

need_more:
    memset(out, 0, sizeof(*out));
    return PARSE_NEED_MORE;
}

/* Reads ATYP, DST.ADDR and DST.PORT of a SOCKS5 request into out. */
static enum parse_result socks5_parse_address(struct reader *r, struct socks5_request *out)
{
    uint8_t atyp, ip[16], name_len;
    struct target *t = &out->target;

    if (!reader_u8(r, &atyp)) {
        return PARSE_NEED_MORE;
    }
    out->atyp = atyp;
    switch (atyp) {
    case SOCKS5_ATYP_IPV4:
        if (!reader_bytes(r, ip, 4)) {
            return PARSE_NEED_MORE;
        }
        set_ipv4(&t->addr, ip);
        break;
    case SOCKS5_ATYP_IPV6:
        if (!reader_bytes(r, ip, 16)) {
            return PARSE_NEED_MORE;
        }
        set_ipv6(&t->addr, ip);
        break;
    case SOCKS5_ATYP_DOMAIN: {
        if (!reader_u8(r, &name_len)) {
            return PARSE_NEED_MORE;
        }
        if (name_len == 0) {
            out->reply = SOCKS5_REP_GENERAL_FAILURE;
            return PARSE_INVALID;
        }
        /* A NUL in the part received so far already makes the name invalid. */
        size_t avail = reader_left(r);
        size_t seen = avail < name_len ? avail : name_len;
        if (seen > 0 && memchr(r->buf + r->pos, 0, seen) != NULL) {
            out->reply = SOCKS5_REP_GENERAL_FAILURE;
            return PARSE_INVALID;
        }
        if (!reader_bytes(r, t->host, name_len)) {
            return PARSE_NEED_MORE;
        }
        t->host[name_len] = '\0';
        break;
    }
    default:
        out->reply = SOCKS5_REP_ATYP_NOT_SUPPORTED;
        return PARSE_INVALID;
    }
    if (!reader_u16be(r, &t->port)) {
        return PARSE_NEED_MORE;
    }
    return PARSE_DONE;
}

enum parse_result socks5_parse_request(const uint8_t *buf, size_t len, struct socks5_request *out,
                                       size_t *consumed)
{
    struct reader r = reader_init(buf, len);
    uint8_t ver, cmd, rsv;
    enum parse_result res;

    *consumed = 0;
    memset(out, 0, sizeof(*out));
    if (!reader_u8(&r, &ver)) {
        return PARSE_NEED_MORE;
    }
    if (ver != SOCKS5_VERSION) {
        return PARSE_INVALID; /* reply 0: not a SOCKS5 client, answer nothing */
    }
    if (!reader_u8(&r, &cmd)) {
        return PARSE_NEED_MORE;
    }
    if (cmd != SOCKS5_CMD_CONNECT && cmd != SOCKS5_CMD_BIND && cmd != SOCKS5_CMD_UDP_ASSOCIATE) {
        out->reply = SOCKS5_REP_CMD_NOT_SUPPORTED;
        return PARSE_INVALID;
    }
    if (!reader_u8(&r, &rsv)) {
        return PARSE_NEED_MORE;
    }
    if (rsv != 0) {
        out->reply = SOCKS5_REP_GENERAL_FAILURE;
        return PARSE_INVALID;
    }
    res = socks5_parse_address(&r, out);
    if (res != PARSE_DONE) {
        uint8_t reply = out->reply;
        memset(out, 0, sizeof(*out));
        out->reply = res == PARSE_INVALID ? reply : 0;
        return res;
    }
    out->cmd = cmd;
    *consumed = r.pos;
    return PARSE_DONE;
}

enum parse_result socks4_parse_request(const uint8_t *buf, size_t len, struct socks4_request *out,
                                       size_t *consumed)
{
    struct reader r = reader_init(buf, len);
    uint8_t vn, cd, ip[4];
    uint16_t port;
    enum parse_result res;
    bool is_4a;

    *consumed = 0;
    memset(out, 0, sizeof(*out));
    if (!reader_u8(&r, &vn)) {
        return PARSE_NEED_MORE;
    }
    if (vn != SOCKS4_VERSION) {
        return PARSE_INVALID; /* reply 0: not a SOCKS4 client, answer nothing */
    }
    if (!reader_u8(&r, &cd)) {
        return PARSE_NEED_MORE;
    }
    if (cd != SOCKS4_CMD_CONNECT && cd != SOCKS4_CMD_BIND) {
        out->reply = SOCKS4_CD_REJECTED;
        return PARSE_INVALID;
    }
    if (!reader_u16be(&r, &port) || !reader_bytes(&r, ip, 4)) {
        return PARSE_NEED_MORE;
    }
    /* SOCKS4a: DSTIP 0.0.0.x with x != 0 means "a host name follows the USERID". */
    is_4a = ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] != 0;

    res = reader_cstring(&r, out->userid, SOCKS4_USERID_MAX, &out->userid_len);
    if (res == PARSE_DONE && is_4a) {
        size_t host_len = 0;
        res = reader_cstring(&r, out->target.host, SOCKS4A_HOST_MAX, &host_len);
        if (res == PARSE_DONE && host_len == 0) {
            res = PARSE_INVALID;
        }
    }
    if (res != PARSE_DONE) {
        memset(out, 0, sizeof(*out));
        out->reply = res == PARSE_INVALID ? SOCKS4_CD_REJECTED : 0;
        return res;
    }
    if (!is_4a) {
        set_ipv4(&out->target.addr, ip);
    }
    out->target.port = port;
    out->cmd = cd;
    out->is_4a = is_4a;
    *consumed = r.pos;
    return PARSE_DONE;
}

uint8_t socks5_rep_from_outbound(enum outbound_status st)
{
    switch (st) {
    case OUTBOUND_OK:
        return SOCKS5_REP_SUCCEEDED;
    case OUTBOUND_NOT_ALLOWED:
        return SOCKS5_REP_NOT_ALLOWED;
    case OUTBOUND_NET_UNREACH:
        return SOCKS5_REP_NET_UNREACH;
    case OUTBOUND_HOST_UNREACH:
    case OUTBOUND_DNS_NOT_FOUND:
    case OUTBOUND_DNS_FAILED:
    case OUTBOUND_DNS_TIMEOUT:
        return SOCKS5_REP_HOST_UNREACH;
    case OUTBOUND_REFUSED:
        return SOCKS5_REP_REFUSED;
    case OUTBOUND_TIMEOUT:
        return SOCKS5_REP_TTL_EXPIRED;
    case OUTBOUND_FAILED:
        break;
    }
    return SOCKS5_REP_GENERAL_FAILURE;
}

uint8_t socks4_cd_from_outbound(enum outbound_status st)
{
    return st == OUTBOUND_OK ? SOCKS4_CD_GRANTED : SOCKS4_CD_REJECTED;
}

size_t socks5_build_method_reply(uint8_t *out, size_t out_len, uint8_t method)
{
    if (out_len < SOCKS5_METHOD_REPLY_LEN) {
        return 0;
    }
    out[0] = SOCKS5_VERSION;
    out[1] = method;
    return SOCKS5_METHOD_REPLY_LEN;
}

size_t socks5_build_auth_reply(uint8_t *out, size_t out_len, uint8_t status)
{
    if (out_len < SOCKS5_AUTH_REPLY_LEN) {
        return 0;
    }
    out[0] = SOCKS5_AUTH_VERSION;
    out[1] = status;
    return SOCKS5_AUTH_REPLY_LEN;
}

static void put_u16be(uint8_t *out, uint16_t v)
{
    out[0] = (uint8_t)(v >> 8);
    out[1] = (uint8_t)(v & 0xFF);
}

size_t socks5_build_reply(uint8_t *out, size_t out_len, uint8_t rep, const struct sockaddr *bound)
{
    uint8_t addr[16] = {0};
    uint16_t port = 0;
    size_t addr_len = 4;
    uint8_t atyp = SOCKS5_ATYP_IPV4;

    if (bound != NULL && bound->sa_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, bound, sizeof(sin));
        memcpy(addr, &sin.sin_addr, 4);
        port = ntohs(sin.sin_port);
    } else if (bound != NULL && bound->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, bound, sizeof(sin6));
        memcpy(addr, &sin6.sin6_addr, 16);
        port = ntohs(sin6.sin6_port);
        addr_len = 16;
        atyp = SOCKS5_ATYP_IPV6;
    }
    if (out_len < 4 + addr_len + 2) {
        return 0;
    }
    out[0] = SOCKS5_VERSION;
    out[1] = rep;
    out[2] = 0x00;
    out[3] = atyp;
    memcpy(out + 4, addr, addr_len);
    put_u16be(out + 4 + addr_len, port);
    return 4 + addr_len + 2;
}

size_t socks4_build_reply(uint8_t *out, size_t out_len, uint8_t cd, const struct sockaddr *bound)
{
    uint8_t addr[4] = {0};
    uint16_t port = 0;

    if (out_len < SOCKS4_REPLY_LEN) {
        return 0;
    }
    if (bound != NULL && bound->sa_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, bound, sizeof(sin));
        memcpy(addr, &sin.sin_addr, 4);
        port = ntohs(sin.sin_port);
    }
    out[0] = SOCKS4_REPLY_VERSION;
    out[1] = cd;
    put_u16be(out + 2, port);
    memcpy(out + 4, addr, 4);
    return SOCKS4_REPLY_LEN;
}
