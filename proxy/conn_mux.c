/* A tunnel listener's client that chose the mux (proxy/mux.h) by ALPN: the connection becomes a
 * carrier that owns the session over its TLS link, reads the link into the session and writes
 * the session's frames; each stream the entry opens becomes a connection of its own (same
 * listener, the entry's address, its certificate's name as the user) that speaks HTTP/1.1
 * CONNECT inside the stream. The carrier closes when the entry leaves, when it carried nothing
 * for the idle time, or, once the worker drains, with its last stream (GO_AWAY first). */
#include <stdlib.h>
#include <string.h>

#include "proxy/conn_internal.h"
#include "proxy/conn_log.h"
#include "proxy/inbound.h"
#include "proxy/log.h"
#include "proxy/mux.h"
#include "proxy/worker.h"

#define MUX_CARRIER_DRAIN_CHECK_MS 100 /* how often a draining carrier looks at its streams */

/* A stream the carrier's peer opened: a connection of its own on the carrier's listener, from
 * the carrier's address and as its user, speaking HTTP/1.1 CONNECT inside the stream. */
static void conn_accept_stream(void *owner, struct mux_stream *stream)
{
    struct conn *carrier = owner;
    if (carrier->worker->draining)
        return; /* left: the stream is reset */
    struct conn *c = conn_new(carrier->worker);
    if (c == NULL)
        return;
    link_init_stream(&c->client, stream);
    c->client.data = c;
    conn_set_client_open(c);
    c->client_addr = carrier->client_addr;
    memcpy(c->user, carrier->user, sizeof(c->user));
    const char *refused = conn_setup(c, carrier->listener->name);
    if (refused != NULL) {
        conn_close_because(c, refused);
        return;
    }
    c->proto = &inbound_http_ops;
    conn_arm_deadline(c);
    conn_hs_read_start(c);
}

static int conn_carrier_write(void *owner, struct mux_frame *f)
{
    struct conn *c = owner;
    return mux_frame_write(f, &c->client);
}

static void on_carrier_read(struct conn *c, enum conn_side side, const char *data, ssize_t n)
{
    (void)side;
    if (c->mux == NULL)
        return;
    if (n > 0) {
        mux_session_input(c->mux, (const uint8_t *)data, (size_t)n);
        return;
    }
    /* An entry closing an idle session says GO_AWAY, then closes without close_notify: an end,
     * not a reset, when nothing was cut */
    bool in_order = n == UV_EOF || mux_session_peer_left(c->mux);
    mux_session_carrier_ended(c->mux);
    conn_close_because(c, in_order ? "done" : "client-reset");
}

static void conn_carrier_read_enable(void *owner, bool enable)
{
    struct conn *c = owner;
    if (!enable)
        conn_read_stop(c, CONN_CLIENT);
    else
        conn_read_start(c, CONN_CLIENT, on_carrier_read);
}

static void conn_carrier_ended(void *owner, const char *why)
{
    struct conn *c = owner;
    if (why == MUX_ENDED_GO_AWAY) { /* the entry left in order */
        conn_close_because(c, "done");
        return;
    }
    log_msg(LOG_WARN, "listener %s: mux session with %s ended: %s", c->listener->name,
            conn_log_client_id(c), why);
    conn_close_because(c, "mux-error");
}

static const struct mux_carrier conn_carrier_ops = {
    .write = conn_carrier_write,
    .read_enable = conn_carrier_read_enable,
    .accept = conn_accept_stream,
    .ended = conn_carrier_ended,
};

/* The tunnel client chose the mux: from here on this connection carries a session, whose
 * streams are the tunnels. It ends when the client closes it, or when it carried nothing for
 * the idle time (or, draining, at once). */
void conn_mux_start(struct conn *c)
{
    struct sockaddr_storage local;
    int len = sizeof(local);
    link_local_address(&c->client, (struct sockaddr *)&local, &len);
    c->mux = mux_session_new(&c->worker->loop, false, &conn_carrier_ops, c,
                             (const struct sockaddr *)&local);
    if (c->mux == NULL) {
        conn_close_because(c, "out-of-memory");
        return;
    }
    free(c->hs); /* the streams have their own */
    c->hs = NULL;
    c->hs_cap = c->hs_len = 0;
    c->phase = CONN_PHASE_MUX;
    conn_touch(c);
    conn_arm_deadline(c);
    conn_read_start(c, CONN_CLIENT, on_carrier_read);
}

/* The carrier's timer: it closes once it carries no stream and is idle, or draining. */
void conn_mux_tick(struct conn *c)
{
    bool draining = c->worker->draining;
    if (draining)
        mux_session_go_away(c->mux);
    if (mux_session_streams(c->mux) == 0 &&
        (draining ||
         uv_now(&c->worker->loop) >= c->last_activity_ms + conn_config(c)->timeouts.idle_ms)) {
        conn_close_because(c, draining ? "shutting-down" : "idle-timeout");
        return;
    }
    conn_arm_deadline(c);
}

void conn_drain(struct conn *c)
{
    if (c->phase == CONN_PHASE_MUX && !conn_is_closing(c))
        conn_mux_tick(c);
}

uint64_t conn_mux_deadline(const struct conn *c)
{
    uint64_t now = uv_now(&c->worker->loop);
    uint64_t idle_ms = conn_config(c)->timeouts.idle_ms;
    if (c->worker->draining)
        return now + MUX_CARRIER_DRAIN_CHECK_MS;
    if (mux_session_streams(c->mux) > 0) /* looked at again while it carries streams */
        return now + idle_ms;
    return c->last_activity_ms + idle_ms;
}
