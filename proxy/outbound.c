/* Direct outbound connections, Happy Eyeballs (RFC 8305 §5).
 *
 * Each attempt is a link of its own (malloc'd, so the winner can outlive the request) with
 * a uv_tcp_connect in progress. The 'step' timer starts the next address
 * OUTBOUND_ATTEMPT_DELAY_MS after the previous one (at once when an attempt fails) and also
 * delivers results decided before outbound_connect returned, so the callback never runs under
 * the caller. The 'deadline' timer bounds the whole request.
 *
 * The winner is detached from the request and handed over as it is; every other handle closes
 * (a connect in progress then completes with UV_ECANCELED before its close callback). Attempt
 * handles are freed in their close callbacks, and the request in the last close callback of all,
 * which may come after the callback ran. */
#include "proxy/outbound.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/container_of.h"

/* Errors seen on the attempts, folded into one status when all have failed. */
#define OUTBOUND_SEEN_REFUSED (1u << 0)
#define OUTBOUND_SEEN_TIMEDOUT (1u << 1)
#define OUTBOUND_SEEN_HOST_UNREACH (1u << 2)
#define OUTBOUND_SEEN_NET_UNREACH (1u << 3)
#define OUTBOUND_SEEN_OTHER (1u << 4)

struct outbound_attempt {
    uv_connect_t connect; /* data: the request */
    struct link *link;    /* NULL: not started, closing, or handed over */
};

struct outbound_req {
    uv_loop_t *loop;
    outbound_cb cb;
    void *arg;
    struct resolver_query *dnsq; /* while resolving */
    uv_timer_t deadline;
    uv_timer_t step;              /* next attempt, or a result decided early */
    struct resolver_answer addrs; /* ports set */
    struct outbound_attempt attempts[RESOLVER_MAX_ADDRS];
    size_t next;        /* index of the next address to try */
    size_t active;      /* attempts in progress */
    int pending_closes; /* timers and attempt handles not yet closed */
    unsigned seen;      /* OUTBOUND_SEEN_* */
    enum outbound_status early_status;
    bool has_early_status;
    bool resolving;
    bool done; /* the callback ran or the request was cancelled: closing */
    uint16_t port;
    const struct sockaddr *bind; /* &bind_addr, or NULL */
    struct sockaddr_storage bind_addr;
};

static void outbound_on_step(uv_timer_t *t);

static void outbound_release(struct outbound_req *req)
{
    if (--req->pending_closes == 0 && req->done)
        free(req);
}

static void outbound_on_timer_close(uv_handle_t *h)
{
    outbound_release(h->data);
}

static void outbound_on_link_close(struct link *l)
{
    struct outbound_req *req = l->data;
    free(l);
    outbound_release(req);
}

/* Closes an initialised attempt link; it is freed in its close callback. */
static void outbound_link_close(struct outbound_req *req, struct link *l)
{
    req->pending_closes++;
    link_close(l, outbound_on_link_close);
}

static void outbound_attempt_close(struct outbound_req *req, struct outbound_attempt *a)
{
    if (a->link == NULL)
        return;
    outbound_link_close(req, a->link);
    a->link = NULL;
    req->active--;
}

/* Marks the request done and releases everything but a handed-over handle. */
static void outbound_teardown(struct outbound_req *req)
{
    req->done = true;
    if (req->dnsq != NULL) {
        resolver_cancel(req->dnsq);
        req->dnsq = NULL;
    }
    for (size_t i = 0; i < RESOLVER_MAX_ADDRS; i++)
        outbound_attempt_close(req, &req->attempts[i]);
    req->pending_closes += 2;
    uv_close((uv_handle_t *)&req->deadline, outbound_on_timer_close);
    uv_close((uv_handle_t *)&req->step, outbound_on_timer_close);
}

static void outbound_finish(struct outbound_req *req, enum outbound_status status,
                            struct link *link, const struct sockaddr *peer)
{
    outbound_teardown(req);
    /* 'peer' points into req, which stays allocated until the close callbacks. */
    req->cb(req->arg, status, link, peer);
}

/* 'err' is a libuv error (negative). */
static void outbound_note_error(struct outbound_req *req, int err)
{
    switch (err) {
    case UV_ECONNREFUSED:
        req->seen |= OUTBOUND_SEEN_REFUSED;
        break;
    case UV_ETIMEDOUT:
        req->seen |= OUTBOUND_SEEN_TIMEDOUT;
        break;
    case UV_EHOSTUNREACH:
    case UV_EADDRNOTAVAIL:
    case UV_EAFNOSUPPORT:
        req->seen |= OUTBOUND_SEEN_HOST_UNREACH;
        break;
    case UV_ENETUNREACH:
        req->seen |= OUTBOUND_SEEN_NET_UNREACH;
        break;
    default: /* EMFILE, ENFILE, ENOBUFS, ENOMEM, EPERM, ... */
        req->seen |= OUTBOUND_SEEN_OTHER;
        break;
    }
}

/* The outcome when every attempt failed: a refusal anywhere wins (the host is there, the port
 * is closed), NET_UNREACH only when it is all we saw, and no address at all is HOST_UNREACH. */
static enum outbound_status outbound_status_from_errors(unsigned seen)
{
    if (seen & OUTBOUND_SEEN_REFUSED)
        return OUTBOUND_REFUSED;
    if (seen & OUTBOUND_SEEN_TIMEDOUT)
        return OUTBOUND_TIMEOUT;
    if (seen & OUTBOUND_SEEN_HOST_UNREACH)
        return OUTBOUND_HOST_UNREACH;
    if (seen & OUTBOUND_SEEN_OTHER)
        return OUTBOUND_FAILED;
    if (seen & OUTBOUND_SEEN_NET_UNREACH)
        return OUTBOUND_NET_UNREACH;
    return OUTBOUND_HOST_UNREACH;
}

/* Hands the attempt's handle to the caller; the request no longer owns it. */
static void outbound_win(struct outbound_req *req, struct outbound_attempt *a)
{
    struct link *link = a->link;
    const struct sockaddr *peer = (const struct sockaddr *)&req->addrs.addrs[a - req->attempts];
    a->link = NULL;
    req->active--;
    link->data = NULL;
    outbound_finish(req, OUTBOUND_OK, link, peer);
}

static void outbound_attempt_next(struct outbound_req *req);

static void outbound_on_connect(uv_connect_t *c, int status)
{
    /* Only after uv_close(): the attempt lost, or the request is being torn down. */
    if (status == UV_ECANCELED)
        return;
    struct outbound_attempt *a = container_of(c, struct outbound_attempt, connect);
    struct outbound_req *req = c->data;
    if (status == 0) {
        outbound_win(req, a);
        return;
    }
    outbound_note_error(req, status);
    outbound_attempt_close(req, a);
    uv_timer_stop(&req->step);
    outbound_attempt_next(req); /* RFC 8305 §5: a failure starts the next attempt at once */
}

/* Starts connecting to address i. Returns 0 when the attempt is in progress, -1 when it failed
 * at once (error noted). The outcome always comes later, from outbound_on_connect. */
static int outbound_attempt_start(struct outbound_req *req, size_t i)
{
    const struct sockaddr *sa = (const struct sockaddr *)&req->addrs.addrs[i];
    struct outbound_attempt *a = &req->attempts[i];
    struct link *link = NULL;
    int err = UV_EAFNOSUPPORT;

    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
        goto fail;
    err = UV_ENOMEM;
    link = malloc(sizeof(*link));
    if (link == NULL)
        goto fail;
    /* Creates the socket now (EMFILE shows here), so TCP_NODELAY below is set at once. */
    err = link_init(req->loop, link, sa->sa_family);
    if (err != 0)
        goto fail_free; /* a failed init leaves nothing on the loop to close */
    link->data = req;
    err = uv_tcp_nodelay(&link->tcp, 1);
    if (err == 0 && req->bind != NULL && req->bind->sa_family == sa->sa_family)
        err = uv_tcp_bind(&link->tcp, req->bind, 0);
    if (err != 0)
        goto fail_close;
    a->connect.data = req;
    err = uv_tcp_connect(&a->connect, &link->tcp, sa, outbound_on_connect);
    if (err != 0)
        goto fail_close;
    a->link = link;
    req->active++;
    return 0;

fail_close:
    outbound_link_close(req, link); /* freed in its close callback */
    link = NULL;
fail_free:
    free(link);
fail:
    outbound_note_error(req, err);
    return -1;
}

/* Starts the next address that does not fail at once, or reports when nothing is left. */
static void outbound_attempt_next(struct outbound_req *req)
{
    while (req->next < req->addrs.n_addrs) {
        if (outbound_attempt_start(req, req->next++) == 0) {
            if (req->next < req->addrs.n_addrs)
                uv_timer_start(&req->step, outbound_on_step, OUTBOUND_ATTEMPT_DELAY_MS, 0);
            return;
        }
    }
    if (req->active == 0)
        outbound_finish(req, outbound_status_from_errors(req->seen), NULL, NULL);
}

static void outbound_on_step(uv_timer_t *t)
{
    struct outbound_req *req = container_of(t, struct outbound_req, step);
    if (req->has_early_status)
        outbound_finish(req, req->early_status, NULL, NULL);
    else
        outbound_attempt_next(req);
}

static void outbound_on_deadline(uv_timer_t *t)
{
    struct outbound_req *req = container_of(t, struct outbound_req, deadline);
    if (req->has_early_status)
        outbound_finish(req, req->early_status, NULL, NULL);
    else
        outbound_finish(req, req->resolving ? OUTBOUND_DNS_TIMEOUT : OUTBOUND_TIMEOUT, NULL, NULL);
}

/* Connects to req->addrs, or reports 'status', from the next loop iteration. */
static void outbound_schedule(struct outbound_req *req, enum outbound_status status)
{
    if (status != OUTBOUND_OK) {
        req->early_status = status;
        req->has_early_status = true;
    }
    uv_timer_start(&req->step, outbound_on_step, 0, 0);
}

static void outbound_set_addrs(struct outbound_req *req, const struct resolver_answer *addrs,
                               uint16_t port)
{
    req->addrs.n_addrs = 0;
    for (size_t i = 0; i < addrs->n_addrs && i < RESOLVER_MAX_ADDRS; i++) {
        struct sockaddr_storage *ss = &req->addrs.addrs[req->addrs.n_addrs++];
        *ss = addrs->addrs[i];
        if (ss->ss_family == AF_INET)
            ((struct sockaddr_in *)ss)->sin_port = htons(port);
        else if (ss->ss_family == AF_INET6)
            ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    }
}

static struct outbound_req *outbound_req_new(uv_loop_t *loop, uint32_t timeout_ms,
                                             const struct sockaddr *bind, outbound_cb cb, void *arg)
{
    struct outbound_req *req = calloc(1, sizeof(*req));
    if (req == NULL)
        return NULL;
    if (bind != NULL) {
        memcpy(&req->bind_addr, bind,
               bind->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                           : sizeof(struct sockaddr_in));
        req->bind = (const struct sockaddr *)&req->bind_addr;
    }
    req->loop = loop;
    req->cb = cb;
    req->arg = arg;
    uv_timer_init(loop, &req->deadline);
    uv_timer_init(loop, &req->step);
    req->deadline.data = req;
    req->step.data = req;
    /* 0: no deadline of ours; the kernel's SYN retries still end each attempt. */
    if (timeout_ms > 0)
        uv_timer_start(&req->deadline, outbound_on_deadline, timeout_ms, 0);
    return req;
}

struct outbound_req *outbound_connect_addrs(uv_loop_t *loop, const struct resolver_answer *addrs,
                                            uint16_t port, uint32_t timeout_ms,
                                            const struct sockaddr *bind, outbound_cb cb, void *arg)
{
    struct outbound_req *req = outbound_req_new(loop, timeout_ms, bind, cb, arg);
    if (req == NULL)
        return NULL;
    outbound_set_addrs(req, addrs, port);
    outbound_schedule(req, OUTBOUND_OK);
    return req;
}

static void outbound_on_resolved(void *arg, enum outbound_status status,
                                 const struct resolver_answer *answer)
{
    struct outbound_req *req = arg;
    req->dnsq = NULL;
    req->resolving = false;
    if (status == OUTBOUND_OK)
        outbound_set_addrs(req, answer, req->port);
    outbound_schedule(req, status);
}

struct outbound_req *outbound_connect(uv_loop_t *loop, struct resolver *resolver,
                                      const struct target *t, uint32_t timeout_ms,
                                      const struct sockaddr *bind, outbound_cb cb, void *arg)
{
    struct outbound_req *req = outbound_req_new(loop, timeout_ms, bind, cb, arg);
    if (req == NULL)
        return NULL;
    if (target_is_literal(t)) {
        struct resolver_answer one = {.n_addrs = 1};
        one.addrs[0] = t->addr;
        outbound_set_addrs(req, &one, t->port);
        outbound_schedule(req, OUTBOUND_OK);
        return req;
    }
    if (resolver == NULL) {
        outbound_schedule(req, OUTBOUND_DNS_FAILED);
        return req;
    }
    req->port = t->port;
    req->resolving = true;
    struct resolver_query *q = resolver_resolve(resolver, t->host, outbound_on_resolved, req);
    if (req->resolving)
        req->dnsq = q;
    return req;
}

void outbound_cancel(struct outbound_req *req)
{
    if (req == NULL || req->done)
        return;
    outbound_teardown(req);
}
