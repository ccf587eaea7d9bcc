/* Direct outbound connections: resolve a target (proxy/resolver.h) and connect to its addresses
 * Happy-Eyeballs style (RFC 8305): attempts start 250 ms apart, alternating families, the first
 * to connect wins and the others are abandoned; one deadline bounds the whole thing. The result
 * is a connected uv_tcp_t that the caller takes over. */
#ifndef GEOPROXY_PROXY_OUTBOUND_H
#define GEOPROXY_PROXY_OUTBOUND_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "proxy/link.h"
#include "proxy/resolver.h"
#include "proxy/target.h"

#define OUTBOUND_ATTEMPT_DELAY_MS 250

struct outbound_req;

/* Called exactly once per request unless it was cancelled first. On OUTBOUND_OK, 'link' is a
 * connected plain link (proxy/link.h) on the loop, allocated with malloc(), TCP_NODELAY set,
 * not reading; the callee owns it from then on: it must link_close() it and free() it in its
 * closed callback. 'peer' is its remote address. Otherwise link and peer are NULL. Never
 * called before outbound_connect returns. */
typedef void (*outbound_cb)(void *arg, enum outbound_status status, struct link *link,
                            const struct sockaddr *peer);

/* Resolves t (when it is a name) with 'resolver' and connects to it within timeout_ms, from
 * the source address 'bind' (port 0; NULL: the kernel chooses; used for the addresses of its
 * family only). Returns the request, or NULL on allocation failure (the callback is then not
 * called). */
struct outbound_req *outbound_connect(uv_loop_t *loop, struct resolver *resolver,
                                      const struct target *t, uint32_t timeout_ms,
                                      const struct sockaddr *bind, outbound_cb cb, void *arg);

/* Connects to already-resolved addresses (ports not set; 'port' is used). Same contract. */
struct outbound_req *outbound_connect_addrs(uv_loop_t *loop, const struct resolver_answer *addrs,
                                            uint16_t port, uint32_t timeout_ms,
                                            const struct sockaddr *bind, outbound_cb cb, void *arg);

/* Abandons a request: connects in progress are closed, the callback is not called. Safe to call
 * from inside any other callback; the memory is released once libuv has closed its handles. */
void outbound_cancel(struct outbound_req *req);

#endif
