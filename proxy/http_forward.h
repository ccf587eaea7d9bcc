/* The HTTP inbound's two halves (proxy/inbound_http.c: requests, authentication, CONNECT,
 * replies; proxy/http_forward.c: forwarding an absolute-form exchange) and the state they
 * share. Internal to the HTTP inbound: nothing else includes this. */
#ifndef GEOPROXY_PROXY_HTTP_FORWARD_H
#define GEOPROXY_PROXY_HTTP_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "proxy/conn.h"
#include "proxy/http_parse.h"

#define HTTP_TEXT_MAX 640 /* bodies and details of the proxy's own replies */

enum http_phase {
    HTTP_PH_HEAD,     /* waiting for a request head in c->hs */
    HTTP_PH_AUTH,     /* conn_verify_user() in flight; the head stays in c->hs */
    HTTP_PH_CONNECT,  /* the upstream is being reset and/or connected */
    HTTP_PH_EXCHANGE, /* request head sent; request body and response in progress */
    HTTP_PH_DONE,     /* tunnel handed to the relay, or closing */
};

enum http_resp {
    HTTP_RESP_HEAD, /* waiting for a (final) response head */
    HTTP_RESP_BODY,
    HTTP_RESP_DONE,
};

enum http_up {
    HTTP_UP_CLOSED,
    HTTP_UP_OPEN,
    HTTP_UP_RESETTING, /* conn_upstream_reset() in flight */
};

struct http_state {
    enum http_phase phase;
    bool forwarding; /* the client is read through conn_read_start() */
    bool reading[2]; /* what was asked of conn_read_start/stop, by side */
    bool client_eof;
    const char *client_end; /* why the client went, while its kept upstream ends in order */
    uint8_t *pend;          /* client bytes that did not fit into c->hs */
    size_t pend_len;

    /* The request being handled. */
    bool tunnel;     /* CONNECT */
    bool optimistic; /* an entry's optimistic CONNECT in a mux stream: no reply on success, a
                        reset on failure (HTTP_OPTIMISTIC_FIELD) */
    bool req_head;   /* method HEAD: responses have no body, nor do our replies */
    bool req_keep_alive;
    uint8_t req_minor;
    bool req_body_done;
    struct http_framer req_framer;
    char *retry_head; /* sent on a reused upstream without body: resent if it closed unused */
    size_t retry_len;

    /* Its response. */
    enum http_resp resp;
    bool resp_seen; /* any upstream byte for this request */
    bool client_keep_alive;
    bool up_keep_alive;
    struct http_framer resp_framer;
    uint8_t *resp_buf; /* a response head arriving in pieces */
    size_t resp_len;

    /* The upstream connection. */
    enum http_up up;
    bool up_eof;
    bool up_reusable; /* idle and fit for another request */
    bool up_reused;   /* the current request went over a kept connection */
    struct target up_target;
    char up_user[sizeof(((struct conn *)0)->user)];

    /* Credentials accepted on this connection (a digest, not the password). */
    bool auth_ok;
    unsigned auth_failures;
    unsigned char auth_digest[EVP_MAX_MD_SIZE];
    unsigned char auth_pending[EVP_MAX_MD_SIZE];
};

/* ---- proxy/inbound_http.c ---- */

/* Queues bytes for a side; false when the connection is closing. */
bool http_send(struct conn *c, enum conn_side side, const void *data, size_t len);

/* The exchange cannot go on: flush what is queued for the client, then close. */
void http_finish(struct conn *c);

/* Replies with an error (Proxy-Status error type, details, one-line body) and closes. */
void http_fail(struct conn *c, unsigned status, const char *error, const char *details,
               const char *body);

/* Parses the request head at the start of c->hs and acts on it (reply, authentication,
 * connect, or forwarding over the kept upstream). False when more bytes are needed. */
bool http_take_head(struct conn *c);

/* Closes an open upstream connection; a pending connect starts once it is closed. */
void http_reset_upstream(struct conn *c);

/* Connects to c->target (policy decision included), after closing the current upstream. */
void http_connect_upstream(struct conn *c);

/* ---- proxy/http_forward.c ---- */

/* Rewrites the request head at the start of c->hs, sends it upstream, consumes it, and
 * starts the exchange. */
void http_forward_request(struct conn *c, const struct http_request *req, size_t head_len);

/* Sends s->retry_head again over a new upstream (the kept one closed unused) and starts the
 * exchange. */
void http_forward_resend(struct conn *c);

/* Works through the client bytes held (body bytes go upstream, a head is taken between
 * exchanges), then adjusts reading. */
void http_forward_drain(struct conn *c);

/* Starts or stops reading each side as the state and the write queues allow. */
void http_forward_update_reads(struct conn *c);

/* Asks for reading a side on or off through conn_read_start/stop, remembering it. */
void http_set_reading(struct conn *c, enum conn_side side, bool on);

/* inbound_ops.on_idle_timeout: a 504 (Proxy-Status http_response_timeout) for a request sent
 * whole that got no answer before the idle deadline; false in any other state. */
bool http_forward_idle_timeout(struct conn *c);

#endif
