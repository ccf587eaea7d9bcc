/* SOCKS4 and SOCKS4a inbound: one request, one reply sent once the outcome of the connect is
 * known. SOCKS4 has no passwords, so the USERID is ignored, and a listener that requires users
 * (a mixed listener with a users file) refuses SOCKS4 clients with 0x5B. The whole
 * per-connection state is the step in c->proto_step: nothing is allocated. */
#include "proxy/conn.h"
#include "proxy/inbound.h"
#include "proxy/socks_parse.h"

enum socks4_step {
    SOCKS4_STEP_REQUEST = 0, /* waiting for VN CD DSTPORT DSTIP USERID [HOST] (a new conn is 0) */
    SOCKS4_STEP_CONNECTING,  /* conn_connect() in progress */
    SOCKS4_STEP_DONE,        /* replied: relaying, or closing */
};

/* Ends the handshake: nothing more is parsed and unparsed bytes are dropped. With a CD the
 * reply (DSTPORT and DSTIP zero) is sent and the connection closes once it is out; with 0 it
 * closes now. */
static void socks4_finish_error(struct conn *c, uint8_t cd, const char *reason)
{
    uint8_t msg[SOCKS4_REPLY_LEN];
    size_t n;

    c->proto_step = SOCKS4_STEP_DONE;
    conn_hs_consume(c, c->hs_len);
    if (cd == 0) {
        conn_close_because(c, reason);
        return;
    }
    n = socks4_build_reply(msg, sizeof(msg), cd, NULL);
    if (conn_send(c, CONN_CLIENT, msg, n, NULL) == 0) {
        conn_close_after_send(c, reason);
    }
}

static void socks4_on_data(struct conn *c)
{
    struct socks4_request req;
    size_t consumed;

    if (c->proto_step != SOCKS4_STEP_REQUEST || c->hs_len == 0 || conn_is_closing(c)) {
        return; /* bytes after the request wait for the outcome, then go to the relay */
    }
    switch (socks4_parse_request(c->hs, c->hs_len, &req, &consumed)) {
    case PARSE_NEED_MORE:
        if (c->hs_len >= c->hs_cap) {
            socks4_finish_error(c, SOCKS4_CD_REJECTED, "handshake-too-large");
        }
        return;
    case PARSE_INVALID:
        socks4_finish_error(c, req.reply, "protocol-error");
        return;
    case PARSE_DONE:
        break;
    }
    conn_hs_consume(c, consumed);
    if (c->listener->users != NULL) {
        socks4_finish_error(c, SOCKS4_CD_REJECTED, "auth-required");
        return;
    }
    if (req.cmd != SOCKS4_CMD_CONNECT) { /* BIND */
        socks4_finish_error(c, SOCKS4_CD_REJECTED, "command-not-supported");
        return;
    }
    c->target = req.target;
    c->proto_step = SOCKS4_STEP_CONNECTING;
    conn_connect(c); /* bytes after the request stay in c->hs for the relay */
}

static void socks4_on_connect_done(struct conn *c, enum outbound_status status)
{
    uint8_t msg[SOCKS4_REPLY_LEN];
    size_t n;

    if (c->proto_step != SOCKS4_STEP_CONNECTING) {
        conn_close_because(c, "internal-error");
        return;
    }
    if (status != OUTBOUND_OK) {
        socks4_finish_error(c, socks4_cd_from_outbound(status),
                            status == OUTBOUND_NOT_ALLOWED ? "blocked" : "connect-failed");
        return;
    }
    c->proto_step = SOCKS4_STEP_DONE;
    struct sockaddr_storage bound;
    conn_upstream_local(c, &bound);
    n = socks4_build_reply(msg, sizeof(msg), SOCKS4_CD_GRANTED, (const struct sockaddr *)&bound);
    if (conn_send(c, CONN_CLIENT, msg, n, NULL) != 0) {
        return;
    }
    conn_relay_start(c);
}

/* SOCKS4 never asks for a password check; being called means a bug elsewhere. */
static void socks4_on_auth_done(struct conn *c, bool ok)
{
    (void)ok;
    conn_close_because(c, "internal-error");
}

const struct inbound_ops inbound_socks4_ops = {
    .name = "socks4",
    .on_data = socks4_on_data,
    .on_connect_done = socks4_on_connect_done,
    .on_auth_done = socks4_on_auth_done,
    .on_free = NULL,
};
