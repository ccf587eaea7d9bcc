/* One client connection from accept to free: its sockets, its timer, its policy snapshot, the
 * handshake buffer, and the services inbound protocols use (policy decision plus outbound
 * connect, user verification off the loop, replies, hand-over to the relay).
 *
 * Lifecycle: accept -> HANDSHAKE (the protocol's on_data parses c->hs) -> conn_connect()
 * -> on_connect_done() -> the protocol replies and calls conn_relay_start() (or, for HTTP
 * forwarding, drives both sides itself) -> close. Closing is idempotent and may be requested
 * from any callback; the memory goes away in the last close callback, never under a caller. */
#ifndef GEOPROXY_PROXY_CONN_H
#define GEOPROXY_PROXY_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "policy/config.h"
#include "policy/policy.h"
#include "policy/userdb.h"
#include "proxy/link.h"
#include "proxy/pseudonym.h"
#include "proxy/relay.h"
#include "proxy/target.h"

struct worker;
struct conn;
struct outbound_req;
struct mux_session;
struct mux_stream;

enum conn_side {
    CONN_CLIENT = 0,
    CONN_UPSTREAM = 1,
};

enum conn_phase {
    CONN_PHASE_HANDSHAKE, /* reading and answering the client's request */
    CONN_PHASE_CONNECTING,
    CONN_PHASE_RELAY,   /* bytes pumped both ways by proxy/relay.c */
    CONN_PHASE_FORWARD, /* a protocol drives both sides (HTTP absolute-form forwarding) */
    CONN_PHASE_MUX,     /* a tunnel listener's client speaks the mux (proxy/mux.h): each of
                           its streams is a connection of its own */
    CONN_PHASE_CLOSING,
};

/* What an inbound protocol provides. Every callback may call conn_close(). */
struct inbound_ops {
    const char *name; /* "socks5", "socks4", "http": in logs */
    /* New bytes were appended to c->hs. Parse, conn_hs_consume() what was used, reply with
     * conn_send(), and eventually call conn_connect() or conn_close(). */
    void (*on_data)(struct conn *c);
    /* conn_connect() finished. On OUTBOUND_OK the upstream socket is connected. On
     * OUTBOUND_NOT_ALLOWED c->verdict says which rule refused and why. */
    void (*on_connect_done)(struct conn *c, enum outbound_status status);
    /* conn_verify_user() finished; on success c->user holds the name. */
    void (*on_auth_done)(struct conn *c, bool ok);
    /* The connection is being freed: release c->proto_state. May be NULL. */
    void (*on_free)(struct conn *c);
    /* The idle deadline passed while the protocol forwards (CONN_PHASE_FORWARD): returns true
     * when it answered the client itself (the connection then ends once the answer is sent).
     * NULL, or false: the connection closes with idle-timeout. */
    bool (*on_idle_timeout)(struct conn *c);
};

/* Bytes read by a protocol that took over a side with conn_read_start(). n > 0: data (valid
 * during the call only); n < 0: UV_EOF or a libuv error, and no more reads will follow. */
typedef void (*conn_read_fn)(struct conn *c, enum conn_side side, const char *data, ssize_t n);

/* A conn_send() finished: status 0, or a libuv error (the connection is then closing). */
typedef void (*conn_sent_fn)(struct conn *c, int status);

struct conn {
    struct worker *worker;
    struct policy_snapshot *snap; /* one reference, held from accept to free */
    const struct config_listener *listener;
    uint64_t id; /* unique within the process, for logs */

    struct link client;      /* a socket, or a stream of a mux carrier's session */
    struct mux_session *mux; /* CONN_PHASE_MUX: the session over the client link, owned */
    struct link *upstream;   /* connected link from proxy/outbound.c (or an upstream), owned;
                                NULL when none */
    uv_timer_t timer;        /* handshake and idle deadlines */
    unsigned flags;          /* CONN_F_* in conn.c */
    int pending_closes;
    int refs; /* in-flight requests that point at the conn (writes, shutdowns, auth work) */
    unsigned sends_in_flight[2]; /* conn_send() writes not yet completed, per side */
    enum conn_phase phase;
    uint64_t accepted_ms;
    uint64_t last_activity_ms;
    uint64_t linger_until_ms; /* conn_close_after_send(): forced close time */
    uint64_t step_started_ms; /* when the DNS lookup or connect being timed began */
    const char *end_reason;   /* why it closed, for the close event */
    void (*upstream_reset_done)(struct conn *c);
    struct sockaddr_storage client_addr;

    const struct inbound_ops *proto;
    void *proto_state;
    unsigned proto_step; /* the protocol's own small state (an enum in its .c), 0 at accept */

    /* Handshake bytes read from the client and not yet consumed; capacity is the configured
     * header limit. Freed when the relay starts. */
    uint8_t *hs;
    size_t hs_len;
    size_t hs_cap;

    char user[USERDB_NAME_MAX + 1];        /* authenticated user, "" when none */
    struct target target;                  /* set by the protocol before conn_connect() */
    struct policy_verdict verdict;         /* set by conn_connect() */
    struct geo_result client_geo;          /* the client's classification, from accept */
    bool client_classified;                /* client_geo is set */
    char client_id[PSEUDONYM_LEN + 1];     /* its pseudonym once an event needed it, or "" */
    struct geo_result dest_geo;            /* the destination's, once dest_classified */
    bool dest_classified;                  /* a destination address has been classified */
    struct resolver_query *resolving;      /* the policy asked for the destination's address */
    enum outbound_status outbound;         /* how the last conn_connect() ended */
    struct sockaddr_storage upstream_peer; /* the address we connected to */
    struct outbound_req *connecting;
    struct upstream_req *tunneling;    /* a tunnel (or an exit's resolution) in progress */
    const struct config_upstream *via; /* the upstream that carries the tunnel, or NULL */
    const char *via_tls;               /* upstream_result.tls: how its TLS session began */
    char *early;                       /* the destination's bytes that came with the
                                          upstream's reply, for the client; or NULL */
    size_t early_len;
    char tunnel_detail[256]; /* why the upstream failed or refused, for the
                                client's reply only (it may name the host) */

    conn_read_fn readers[2]; /* side taken over by a protocol, else NULL */
    struct relay relay;
    uint64_t bytes_up;   /* client -> upstream */
    uint64_t bytes_down; /* upstream -> client */

    struct conn *prev, *next; /* the worker's list of live connections */
};

/* Accepts one pending connection on 'server', a socket of the listener named 'listener_name'
 * (looked up in the snapshot the connection takes). Used by proxy/worker.c. */
void conn_accept(struct worker *w, uv_stream_t *server, const char *listener_name);

/* Drops the first n bytes of the handshake buffer (they were parsed). */
void conn_hs_consume(struct conn *c, size_t n);

/* Appends client bytes to the handshake buffer, as far as it has room; returns how many were
 * taken. For protocols that read the client themselves (conn_read_start). */
size_t conn_hs_append(struct conn *c, const void *data, size_t len);

/* Decides c->target against the policy, then (when allowed) resolves and connects within the
 * configured timeouts. Stops reading the client (whoever reads it) until the outcome is known.
 * Calls proto->on_connect_done exactly once, unless the connection closes first. */
void conn_connect(struct conn *c);

/* Checks a user name and password against the listener's users file on the thread pool, then
 * calls proto->on_auth_done. On success the name is copied into c->user. Stops reading the
 * client meanwhile. The handshake deadline still counts from accept. */
void conn_verify_user(struct conn *c, const char *user, size_t user_len, const char *password,
                      size_t password_len);

/* Copies data and queues it for writing to a side. 'sent' (may be NULL) runs when it reached
 * the kernel. Returns 0 or a libuv error (the connection is then closing). */
int conn_send(struct conn *c, enum conn_side side, const void *data, size_t len, conn_sent_fn sent);

/* Why a write to 'side' failed, for conn_close_because(): a side that was reset is reset (the
 * other side then hears a reset too), anything else a write error. */
const char *conn_write_failure(enum conn_side side, int status);

/* Takes bytes that conn_read_last_bytes() read; returns false to stop reading. */
typedef bool (*conn_take_fn)(struct conn *c, enum conn_side side, const char *data, size_t n);

/* A write to a side has just failed (it reset or went away), but it may have sent bytes before
 * it went that still wait in its socket: a client's last request bytes before its reset, a
 * server's answer before it reset an upload it refused. Reads them now, while that side is being
 * read (not paused), handing each read to 'take', up to CONN_LAST_BYTES_MAX in all (checked
 * before each read). Best effort: a caller that then closes with a reset (SO_LINGER 0) discards
 * what the kernel had not sent yet, as the peer's own reset would have. */
#define CONN_LAST_BYTES_MAX (256 * 1024)
void conn_read_last_bytes(struct conn *c, enum conn_side side, conn_take_fn take);

/* Bytes queued for a side and not yet written: for backpressure. */
size_t conn_send_queue_size(const struct conn *c, enum conn_side side);

/* Hands the connected pair to the relay; handshake bytes not consumed yet go upstream first.
 * The protocol is done with the connection after this. Allowed from the HANDSHAKE and the
 * FORWARD phase (an HTTP CONNECT after plain requests). */
void conn_relay_start(struct conn *c);

/* Enters the FORWARD phase (its idle deadline), if not in it: a protocol that forwards, from
 * its first read or from an upstream connected while neither side may be read. */
void conn_forward_begin(struct conn *c);

/* Takes over reading a side from the handshake reader (client) or starts reading it
 * (upstream); enters the FORWARD phase. conn_read_stop() pauses it (backpressure). */
int conn_read_start(struct conn *c, enum conn_side side, conn_read_fn fn);
void conn_read_stop(struct conn *c, enum conn_side side);

/* Closes the upstream socket only (HTTP forwarding to another host); 'done' (not NULL) runs
 * once it is closed, at once when there was none, and conn_connect() may be called again. */
void conn_upstream_reset(struct conn *c, void (*done)(struct conn *c));

/* Records activity (resets the idle deadline); reads and writes through conn do it already. */
void conn_touch(struct conn *c);

/* Stops reading, lets queued writes reach the kernel, then closes (bounded by a short timer).
 * For error replies. 'reason' (a string constant, or NULL) is recorded as by
 * conn_close_because(). */
void conn_close_after_send(struct conn *c, const char *reason);

/* Closes everything now. Idempotent; memory is freed once every handle is closed. */
void conn_close(struct conn *c);

/* conn_close() recording why, for the close event ("client-reset", "protocol-error", ...).
 * The reason must be a string constant. */
void conn_close_because(struct conn *c, const char *reason);

/* The same, with a reset for the client instead of an orderly end: for a client that was told
 * the connection is open when it is not (an optimistic tunnel the exit could not open). */
void conn_close_resetting_client(struct conn *c, const char *reason);

bool conn_is_closing(const struct conn *c);

/* The worker is draining: a mux carrier takes no new stream (GO_AWAY) and closes once its last
 * one ended; other connections go on as they are. */
void conn_drain(struct conn *c);

/* How a connected connection would be decided if it were opened now under 'snap' (a newer or a
 * candidate policy, with its own databases: both ends are classified again). False when it is
 * not connected (handshake, connecting, closing): there is nothing to decide again. */
bool conn_decide_again(const struct conn *c, const struct policy_snapshot *snap,
                       struct policy_verdict *out);

enum conn_reevaluate_result {
    CONN_REEVALUATE_SKIPPED, /* not connected yet, or closing: nothing to decide again */
    CONN_REEVALUATE_KEPT,    /* the new policy still lets it through */
    CONN_REEVALUATE_CLOSED,  /* the new policy blocks it: logged and closed */
};

/* Decides a connected connection again under 'snap' (a newer policy, with its own databases:
 * both ends are classified again), as it would be decided if it were opened now. A connection
 * the new policy blocks is logged with the blocking rule and closed ("policy-reload"). The
 * connection keeps its own snapshot otherwise. Does not free c. */
enum conn_reevaluate_result conn_reevaluate(struct conn *c, const struct policy_snapshot *snap);

/* A link allocation callback handing out the worker's pool buffers (l->data is the
 * connection); the read callback must give the buffer back with bufpool_put(). */
void conn_alloc_buffer(struct link *l, uv_buf_t *buf);

/* The link of a side (the upstream one exists only once connected). */
struct link *conn_side_link(struct conn *c, enum conn_side side);

/* Our address on the upstream connection (the SOCKS replies' "bound address"), asked when a
 * reply needs it; all zero when it cannot be known. */
void conn_upstream_local(struct conn *c, struct sockaddr_storage *out);

/* Requests in flight that point at the connection (writes, shutdowns, work) hold a reference;
 * the memory is freed once the connection is closed and the last reference is dropped.
 * conn_request_done() drops it and returns false when the connection is closing: the caller
 * must not touch it any more (it may be gone). */
void conn_ref(struct conn *c);
bool conn_request_done(struct conn *c);

#endif
