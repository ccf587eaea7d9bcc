/* The admin listener: a small HTTP/1.1 server on the main thread's loop for operators and
 * admins. GET / (dashboard), /status (JSON), /metrics (Prometheus text), /connections (JSON),
 * /events (live JSON lines, or server-sent events for Accept: text/event-stream); POST /reload
 * and POST /dry-run (body: the path of a candidate configuration). When the policy in force has
 * an admin token, every request must carry "Authorization: Bearer TOKEN" (the token reloads with
 * the policy; the address is bound once, at start). It listens on TCP or on a unix socket; both
 * serve the same endpoints with the same limits. */
#ifndef GEOPROXY_PROXY_ADMIN_H
#define GEOPROXY_PROXY_ADMIN_H

#include <sys/socket.h>
#include <uv.h>

#include "policy/config.h"
#include "proxy/reload.h"
#include "proxy/runtime.h"

#define ADMIN_HEAD_MAX 16384
#define ADMIN_BODY_MAX 65536
#define ADMIN_CONNS_MAX 64         /* admin clients at once */
#define ADMIN_STREAM_BACKLOG 65536 /* unsent event bytes before a follower is skipped ahead */

struct worker;
struct admin_server;

/* What the admin endpoints read and act on; all of it outlives the server. */
struct admin_deps {
    struct runtime *rt;
    struct worker *workers;
    unsigned n_workers;
    struct reloader *reloader;
};

/* Listens on cfg's TCP address, or creates its unix socket with cfg->unix_mode: a stale socket
 * file (nothing listens on it) is replaced; a path that is not a socket, or that a live process
 * listens on, is refused. Returns 0 and sets *out, or a libuv error (logged with the address
 * and the reason). */
int admin_start(uv_loop_t *loop, const struct config_admin *cfg, const struct admin_deps *deps,
                struct admin_server **out);

/* Stops listening and closes every admin connection; a unix socket's file is removed. The
 * memory goes once libuv has closed the handles (run the loop). NULL is a no-op. */
void admin_close(struct admin_server *a);

#endif
