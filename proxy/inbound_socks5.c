/* SOCKS5 inbound (RFC 1928) with username/password authentication (RFC 1929).
 *
 *   GREETING --(method 0x02)--> AUTH --> AUTH_WAIT --(ok)--> REQUEST --> CONNECTING --> DONE
 *       \--------(method 0x00)-------------------------------^
 *
 * Messages a client pipelines are parsed in turn from c->hs. The reply to a request is sent only
 * once the outcome of the connect is known, so a refusal reaches the client as a refusal. The
 * whole per-connection state is the step in c->proto_step: nothing is allocated. */
#include <string.h>

#include "proxy/conn.h"
#include "proxy/inbound.h"
#include "proxy/socks_parse.h"

enum socks5_step {
    SOCKS5_STEP_GREETING = 0, /* waiting for VER NMETHODS METHODS (a new conn is zeroed) */
    SOCKS5_STEP_AUTH,         /* method 0x02 chosen: waiting for the RFC 1929 request */
    SOCKS5_STEP_AUTH_WAIT,    /* conn_verify_user() in progress */
    SOCKS5_STEP_REQUEST,      /* waiting for VER CMD RSV ATYP DST.ADDR DST.PORT */
    SOCKS5_STEP_CONNECTING,   /* conn_connect() in progress */
    SOCKS5_STEP_DONE,         /* replied: relaying, or closing */
};

/* Ends the handshake: nothing more is parsed and unparsed bytes are dropped. With a message, it
 * is sent and the connection closes once it is out; without one, it closes now. */
static void socks5_finish_error(struct conn *c, const uint8_t *msg, size_t len, const char *reason)
{
    c->proto_step = SOCKS5_STEP_DONE;
    conn_hs_consume(c, c->hs_len);
    if (len == 0) {
        conn_close_because(c, reason);
        return;
    }
    if (conn_send(c, CONN_CLIENT, msg, len, NULL) == 0) {
        conn_close_after_send(c, reason);
    }
}

/* Answers a request with REP (never success) and BND 0.0.0.0:0, then closes. */
static void socks5_fail_request(struct conn *c, uint8_t rep, const char *reason)
{
    uint8_t msg[SOCKS5_REPLY_MAX];
    size_t n = socks5_build_reply(msg, sizeof(msg), rep, NULL);

    socks5_finish_error(c, msg, n, reason);
}

/* A buffer that is full while the parser still wants more can never complete: give up. */
static void socks5_check_full(struct conn *c)
{
    if (c->hs_len < c->hs_cap) {
        return;
    }
    if (c->proto_step == SOCKS5_STEP_REQUEST) {
        socks5_fail_request(c, SOCKS5_REP_GENERAL_FAILURE, "handshake-too-large");
    } else {
        socks5_finish_error(c, NULL, 0, "handshake-too-large");
    }
}

/* Each step handler returns true when it consumed a message and the next may be parsed. */

static bool socks5_on_greeting(struct conn *c)
{
    struct socks5_greeting greeting;
    uint8_t msg[SOCKS5_METHOD_REPLY_LEN];
    size_t consumed, n;

    switch (socks5_parse_greeting(c->hs, c->hs_len, &greeting, &consumed)) {
    case PARSE_NEED_MORE:
        socks5_check_full(c);
        return false;
    case PARSE_INVALID:
        socks5_finish_error(c, NULL, 0, "protocol-error");
        return false;
    case PARSE_DONE:
        break;
    }
    conn_hs_consume(c, consumed);

    uint8_t method = c->listener->users != NULL ? SOCKS5_METHOD_USERPASS : SOCKS5_METHOD_NO_AUTH;
    if (!socks5_greeting_has_method(&greeting, method)) {
        n = socks5_build_method_reply(msg, sizeof(msg), SOCKS5_METHOD_NONE_ACCEPTABLE);
        socks5_finish_error(c, msg, n, "no-acceptable-auth-method");
        return false;
    }
    n = socks5_build_method_reply(msg, sizeof(msg), method);
    if (conn_send(c, CONN_CLIENT, msg, n, NULL) != 0) {
        return false;
    }
    c->proto_step = method == SOCKS5_METHOD_USERPASS ? SOCKS5_STEP_AUTH : SOCKS5_STEP_REQUEST;
    return true;
}

static bool socks5_on_auth(struct conn *c)
{
    struct socks5_auth auth;
    uint8_t msg[SOCKS5_AUTH_REPLY_LEN];
    size_t consumed, n;

    switch (socks5_parse_auth(c->hs, c->hs_len, &auth, &consumed)) {
    case PARSE_NEED_MORE:
        socks5_check_full(c);
        return false;
    case PARSE_INVALID:
        /* RFC 1929: a non-zero status, then the server closes. */
        n = socks5_build_auth_reply(msg, sizeof(msg), SOCKS5_AUTH_FAILURE);
        socks5_finish_error(c, msg, n, "protocol-error");
        return false;
    case PARSE_DONE:
        break;
    }
    /* The password stays neither in the handshake buffer nor on the stack. */
    explicit_bzero(c->hs, consumed);
    conn_hs_consume(c, consumed);
    c->proto_step = SOCKS5_STEP_AUTH_WAIT;
    /* May call on_auth_done before returning (on failure); it continues from there. */
    conn_verify_user(c, auth.user, auth.user_len, auth.password, auth.password_len);
    explicit_bzero(&auth, sizeof(auth));
    return false;
}

static bool socks5_on_request(struct conn *c)
{
    struct socks5_request req;
    size_t consumed;

    switch (socks5_parse_request(c->hs, c->hs_len, &req, &consumed)) {
    case PARSE_NEED_MORE:
        socks5_check_full(c);
        return false;
    case PARSE_INVALID:
        if (req.reply == 0) {
            socks5_finish_error(c, NULL, 0, "protocol-error");
        } else {
            socks5_fail_request(c, req.reply, "protocol-error");
        }
        return false;
    case PARSE_DONE:
        break;
    }
    conn_hs_consume(c, consumed);
    if (req.cmd != SOCKS5_CMD_CONNECT) { /* BIND, UDP ASSOCIATE */
        socks5_fail_request(c, SOCKS5_REP_CMD_NOT_SUPPORTED, "command-not-supported");
        return false;
    }
    c->target = req.target;
    c->proto_step = SOCKS5_STEP_CONNECTING;
    conn_connect(c); /* bytes after the request stay in c->hs for the relay */
    return false;
}

/* Parses every complete message buffered for the current step. */
static void socks5_pump(struct conn *c)
{
    bool again = true;

    while (again && c->hs_len > 0 && !conn_is_closing(c)) {
        switch ((enum socks5_step)c->proto_step) {
        case SOCKS5_STEP_GREETING:
            again = socks5_on_greeting(c);
            break;
        case SOCKS5_STEP_AUTH:
            again = socks5_on_auth(c);
            break;
        case SOCKS5_STEP_REQUEST:
            again = socks5_on_request(c);
            break;
        case SOCKS5_STEP_AUTH_WAIT:
        case SOCKS5_STEP_CONNECTING:
        case SOCKS5_STEP_DONE:
            again = false; /* bytes wait for the outcome, or belong to the relay */
            break;
        }
    }
}

static void socks5_on_data(struct conn *c)
{
    socks5_pump(c);
}

static void socks5_on_auth_done(struct conn *c, bool ok)
{
    uint8_t msg[SOCKS5_AUTH_REPLY_LEN];
    size_t n;

    if (c->proto_step != SOCKS5_STEP_AUTH_WAIT) {
        conn_close_because(c, "internal-error");
        return;
    }
    if (!ok) {
        n = socks5_build_auth_reply(msg, sizeof(msg), SOCKS5_AUTH_FAILURE);
        socks5_finish_error(c, msg, n, "auth-failed");
        return;
    }
    n = socks5_build_auth_reply(msg, sizeof(msg), SOCKS5_AUTH_OK);
    if (conn_send(c, CONN_CLIENT, msg, n, NULL) != 0) {
        return;
    }
    c->proto_step = SOCKS5_STEP_REQUEST;
    socks5_pump(c); /* a request pipelined behind the credentials */
}

static void socks5_on_connect_done(struct conn *c, enum outbound_status status)
{
    uint8_t msg[SOCKS5_REPLY_MAX];
    size_t n;

    if (c->proto_step != SOCKS5_STEP_CONNECTING) {
        conn_close_because(c, "internal-error");
        return;
    }
    if (status != OUTBOUND_OK) {
        socks5_fail_request(c, socks5_rep_from_outbound(status),
                            status == OUTBOUND_NOT_ALLOWED ? "blocked" : "connect-failed");
        return;
    }
    c->proto_step = SOCKS5_STEP_DONE;
    struct sockaddr_storage bound;
    conn_upstream_local(c, &bound);
    n = socks5_build_reply(msg, sizeof(msg), SOCKS5_REP_SUCCEEDED, (const struct sockaddr *)&bound);
    if (conn_send(c, CONN_CLIENT, msg, n, NULL) != 0) {
        return;
    }
    conn_relay_start(c);
}

const struct inbound_ops inbound_socks5_ops = {
    .name = "socks5",
    .on_data = socks5_on_data,
    .on_connect_done = socks5_on_connect_done,
    .on_auth_done = socks5_on_auth_done,
    .on_free = NULL,
};
