#include "proxy/exit_control.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/conn.h"
#include "proxy/http_control_parse.h"
#include "proxy/resolver.h"
#include "proxy/worker.h"

#define EXIT_CONTROL_REPLY_MAX 2048

/* Where the kernel would send traffic from towards the public internet: the source address a
 * UDP socket gets when "connected" to a public address (no packet is sent). False when there is
 * no route. */
static bool exit_route_source(struct sockaddr_storage *out)
{
    struct sockaddr_in probe = {.sin_family = AF_INET, .sin_port = htons(9)};
    probe.sin_addr.s_addr = htonl(0xC0000201u); /* 192.0.2.1: never contacted */
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    socklen_t len = sizeof(*out);
    bool ok = connect(fd, (struct sockaddr *)&probe, sizeof(probe)) == 0 &&
              getsockname(fd, (struct sockaddr *)out, &len) == 0;
    close(fd);
    return ok;
}

static void exit_control_reply(struct conn *c, const char *reply, int len)
{
    if (len < 0 || conn_send(c, CONN_CLIENT, reply, (size_t)len, NULL) != 0) {
        conn_close_because(c, "control-reply-failed");
        return;
    }
    c->bytes_down += (uint64_t)len;
    conn_close_after_send(c, "control-request");
}

/* The egress: the "external" address when one is set (outbound connections bind it), else the
 * kernel's route source, else unknown. */
static void exit_answer_egress(struct conn *c)
{
    const struct config *cfg = policy_snapshot_config(c->snap);
    struct sockaddr_storage egress = {.ss_family = AF_UNSPEC};
    if (cfg->has_external)
        egress = cfg->external;
    else if (!exit_route_source(&egress))
        egress.ss_family = AF_UNSPEC;
    char reply[EXIT_CONTROL_REPLY_MAX];
    exit_control_reply(
        c, reply,
        http_control_build_egress_reply(reply, sizeof(reply), (const struct sockaddr *)&egress));
}

static void on_exit_resolved(void *arg, enum outbound_status status,
                             const struct resolver_answer *answer)
{
    struct conn *c = arg;
    char reply[EXIT_CONTROL_REPLY_MAX];
    c->resolving = NULL;
    if (status != OUTBOUND_OK || answer->n_addrs == 0) {
        exit_control_reply(
            c, reply,
            http_control_build_resolve_failure(reply, sizeof(reply), outbound_status_name(status)));
        return;
    }
    size_t n =
        answer->n_addrs < HTTP_CONTROL_ADDRESSES_MAX ? answer->n_addrs : HTTP_CONTROL_ADDRESSES_MAX;
    exit_control_reply(c, reply,
                       http_control_build_resolve_reply(reply, sizeof(reply), answer->addrs, n));
}

bool exit_control_answer(struct conn *c, const struct http_request *req)
{
    char name[HTTP_CONTROL_NAME_MAX + 1];
    char reply[EXIT_CONTROL_REPLY_MAX];
    conn_hs_consume(c, c->hs_len); /* one question per connection */
    switch (http_control_classify(req->path, req->path_len, name)) {
    case HTTP_CONTROL_NONE:
        return false;
    case HTTP_CONTROL_INVALID: {
        struct http_reply r = {.status = 400,
                               .error = "http_request_error",
                               .details = "malformed control request",
                               .body = "geoproxy: malformed control request\n"};
        size_t n = http_build_reply(reply, sizeof(reply), &r);
        exit_control_reply(c, reply, n > 0 ? (int)n : -1);
        return true;
    }
    case HTTP_CONTROL_EGRESS:
        exit_answer_egress(c);
        return true;
    case HTTP_CONTROL_RESOLVE:
        c->resolving = resolver_resolve(c->worker->resolver, name, on_exit_resolved, c);
        return true;
    }
    return false;
}
