/* What proxy/conn.c shares with proxy/conn_mux.c (a tunnel listener's mux carriers, whose
 * streams become connections of their own); nothing else includes this. */
#ifndef GEOPROXY_PROXY_CONN_INTERNAL_H
#define GEOPROXY_PROXY_CONN_INTERNAL_H

#include <stdint.h>

#include "proxy/conn.h"

/* conn.c */
const struct config *conn_config(const struct conn *c);

/* A new connection in the worker's list, its timer initialised; the client link is the caller's
 * to set up (CONN_F_CLIENT_OPEN is set by conn_set_client_open). NULL when out of memory. */
struct conn *conn_new(struct worker *w);

/* Marks the client link as initialised (it is closed with the connection). */
void conn_set_client_open(struct conn *c);

/* Everything a new connection needs before it reads (listener, admission, classification,
 * handshake buffer); returns the reason to refuse it, or NULL. client_addr is read from the
 * socket unless the client is a stream (then the caller set it). */
const char *conn_setup(struct conn *c, const char *listener_name);

/* Starts reading the client into the handshake buffer for c->proto. */
void conn_hs_read_start(struct conn *c);

/* Sets the timer to the deadline of the connection's phase. */
void conn_arm_deadline(struct conn *c);

/* conn_mux.c */

/* The tunnel client chose the mux by ALPN: the connection becomes its carrier. */
void conn_mux_start(struct conn *c);

/* A carrier's deadline: when it looks at its streams again, or closes idle. */
uint64_t conn_mux_deadline(const struct conn *c);

/* A carrier's timer ran out: it closes once it carries no stream and is idle or draining. */
void conn_mux_tick(struct conn *c);

#endif
