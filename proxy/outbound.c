/* Direct outbound connections, Happy Eyeballs (RFC 8305 §5).
 *
 * Each attempt is a non-blocking socket of our own whose connect() is in progress, watched by
 * a uv_poll_t for writability; SO_ERROR then tells the outcome. The 'step' timer starts the
 * next address OUTBOUND_ATTEMPT_DELAY_MS after the previous one (at once when an attempt
 * fails) and also delivers results decided before outbound_connect returned, so the callback
 * never runs under the caller. The 'deadline' timer bounds the whole request.
 *
 * The winner's poll handle is stopped and closed before its fd is handed over, so the caller can
 * uv_tcp_open() it at once (libuv allows one watcher per fd). Everything else closes; the
 * request is freed in the last close callback. */
#include "proxy/outbound.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/container_of.h"

/* Errors seen on the attempts, folded into one status when all have failed. */
#define OUTBOUND_SEEN_REFUSED (1u << 0)
#define OUTBOUND_SEEN_TIMEDOUT (1u << 1)
#define OUTBOUND_SEEN_HOST_UNREACH (1u << 2)
#define OUTBOUND_SEEN_NET_UNREACH (1u << 3)
#define OUTBOUND_SEEN_OTHER (1u << 4)

struct outbound_attempt {
    uv_poll_t poll;
    uv_os_sock_t fd; /* -1: none, or handed to the caller */
    bool poll_open;  /* initialised and not yet closed */
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
    size_t next;   /* index of the next address to try */
    size_t active; /* attempts in progress */
    int pending_closes;
    unsigned seen; /* OUTBOUND_SEEN_* */
    enum outbound_status early_status;
    bool has_early_status;
    bool resolving;
    bool done; /* the callback ran or the request was cancelled: closing */
    uint16_t port;
};

static void outbound_on_step(uv_timer_t *t);

static void outbound_on_close(uv_handle_t *h)
{
    struct outbound_req *req = h->data;
    if (--req->pending_closes == 0 && req->done)
        free(req);
}

static void outbound_attempt_close(struct outbound_req *req, struct outbound_attempt *a)
{
    if (!a->poll_open)
        return;
    a->poll_open = false;
    req->active--;
    req->pending_closes++;
    uv_close((uv_handle_t *)&a->poll, outbound_on_close); /* stops watching the fd */
    if (a->fd >= 0) {
        close(a->fd);
        a->fd = -1;
    }
}

/* Marks the request done and releases everything but a handed-over fd. */
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
    uv_close((uv_handle_t *)&req->deadline, outbound_on_close);
    uv_close((uv_handle_t *)&req->step, outbound_on_close);
}

static void outbound_finish(struct outbound_req *req, enum outbound_status status, uv_os_sock_t fd,
                            const struct sockaddr *peer)
{
    outbound_teardown(req);
    /* 'peer' points into req, which stays allocated until the close callbacks. */
    req->cb(req->arg, status, fd, peer);
}

static void outbound_note_error(struct outbound_req *req, int err)
{
    switch (err) {
    case ECONNREFUSED:
        req->seen |= OUTBOUND_SEEN_REFUSED;
        break;
    case ETIMEDOUT:
        req->seen |= OUTBOUND_SEEN_TIMEDOUT;
        break;
    case EHOSTUNREACH:
    case EADDRNOTAVAIL:
    case EAFNOSUPPORT:
        req->seen |= OUTBOUND_SEEN_HOST_UNREACH;
        break;
    case ENETUNREACH:
        req->seen |= OUTBOUND_SEEN_NET_UNREACH;
        break;
    default: /* EMFILE, ENFILE, ENOBUFS, EPERM, ... */
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

static void outbound_win(struct outbound_req *req, size_t i, uv_os_sock_t fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    outbound_finish(req, OUTBOUND_OK, fd, (const struct sockaddr *)&req->addrs.addrs[i]);
}

static void outbound_attempt_next(struct outbound_req *req);

static void outbound_on_writable(uv_poll_t *h, int status, int events)
{
    struct outbound_attempt *a = container_of(h, struct outbound_attempt, poll);
    struct outbound_req *req = h->data;
    int err = 0;

    /* libuv reports POLLERR as UV_EBADF: the socket's own error says what happened. */
    socklen_t len = sizeof(err);
    if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err == 0 && status < 0)
        err = -status;
    /* A hang-up without an error (reset right after the handshake) is no connection either. */
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    if (err == 0 && getpeername(a->fd, (struct sockaddr *)&ss, &sslen) != 0)
        err = errno;
    if (err == 0) {
        uv_os_sock_t fd = a->fd;
        uv_poll_stop(&a->poll);
        a->fd = -1; /* handed over: outbound_attempt_close leaves it open */
        outbound_win(req, (size_t)(a - req->attempts), fd);
        return;
    }
    outbound_note_error(req, err);
    outbound_attempt_close(req, a);
    uv_timer_stop(&req->step);
    outbound_attempt_next(req); /* RFC 8305 §5: a failure starts the next attempt at once */
}

/* Starts connecting to address i. Returns 0 when the attempt is in progress, 1 when it
 * connected at once (the request is then finished), -1 when it failed (error noted). */
static int outbound_attempt_start(struct outbound_req *req, size_t i)
{
    const struct sockaddr *sa = (const struct sockaddr *)&req->addrs.addrs[i];
    struct outbound_attempt *a = &req->attempts[i];
    socklen_t len;

    if (sa->sa_family == AF_INET) {
        len = sizeof(struct sockaddr_in);
    } else if (sa->sa_family == AF_INET6) {
        len = sizeof(struct sockaddr_in6);
    } else {
        outbound_note_error(req, EAFNOSUPPORT);
        return -1;
    }
    uv_os_sock_t fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        outbound_note_error(req, errno);
        return -1;
    }
    if (connect(fd, sa, len) == 0) {
        outbound_win(req, i, fd);
        return 1;
    }
    /* EINTR: the connection goes on in the background, like EINPROGRESS. */
    int err = errno;
    if (err == EINPROGRESS || err == EINTR)
        err = -uv_poll_init_socket(req->loop, &a->poll, fd); /* libuv errors are -errno */
    if (err != 0) {
        close(fd);
        outbound_note_error(req, err);
        return -1;
    }
    a->poll.data = req;
    a->fd = fd;
    a->poll_open = true;
    req->active++;
    uv_poll_start(&a->poll, UV_WRITABLE, outbound_on_writable);
    return 0;
}

/* Starts the next address that does not fail at once, or reports when nothing is left. */
static void outbound_attempt_next(struct outbound_req *req)
{
    while (req->next < req->addrs.n_addrs) {
        int rc = outbound_attempt_start(req, req->next++);
        if (rc == 0 && req->next < req->addrs.n_addrs)
            uv_timer_start(&req->step, outbound_on_step, OUTBOUND_ATTEMPT_DELAY_MS, 0);
        if (rc >= 0)
            return;
    }
    if (req->active == 0)
        outbound_finish(req, outbound_status_from_errors(req->seen), -1, NULL);
}

static void outbound_on_step(uv_timer_t *t)
{
    struct outbound_req *req = container_of(t, struct outbound_req, step);
    if (req->has_early_status)
        outbound_finish(req, req->early_status, -1, NULL);
    else
        outbound_attempt_next(req);
}

static void outbound_on_deadline(uv_timer_t *t)
{
    struct outbound_req *req = container_of(t, struct outbound_req, deadline);
    if (req->has_early_status)
        outbound_finish(req, req->early_status, -1, NULL);
    else
        outbound_finish(req, req->resolving ? OUTBOUND_DNS_TIMEOUT : OUTBOUND_TIMEOUT, -1, NULL);
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

static struct outbound_req *outbound_req_new(uv_loop_t *loop, uint32_t timeout_ms, outbound_cb cb,
                                             void *arg)
{
    struct outbound_req *req = calloc(1, sizeof(*req));
    if (req == NULL)
        return NULL;
    req->loop = loop;
    req->cb = cb;
    req->arg = arg;
    for (size_t i = 0; i < RESOLVER_MAX_ADDRS; i++)
        req->attempts[i].fd = -1;
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
                                            uint16_t port, uint32_t timeout_ms, outbound_cb cb,
                                            void *arg)
{
    struct outbound_req *req = outbound_req_new(loop, timeout_ms, cb, arg);
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
                                      const struct target *t, uint32_t timeout_ms, outbound_cb cb,
                                      void *arg)
{
    struct outbound_req *req = outbound_req_new(loop, timeout_ms, cb, arg);
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
