/* Asynchronous DNS: one c-ares channel per resolver, driven by the resolver's libuv loop.
 *
 * c-ares tells us which sockets to watch (sock_state_cb): each gets a uv_poll_t, closed when
 * c-ares drops the socket. One timer follows ares_timeout() for c-ares' own retries. A name is
 * resolved by a "lookup" (one ares_getaddrinfo call); every resolver_query for that name while
 * the lookup runs waits on it. Lookups sit in a hash table (to be joined) and in a list ordered
 * by deadline (all share the same timeout, so appending keeps the order), watched by a second
 * timer: when a lookup's deadline passes its waiters get OUTBOUND_DNS_TIMEOUT even if c-ares
 * still retries; a late answer then only fills the cache.
 *
 * Re-entrancy: user callbacks run from inside c-ares (ares_process_fd, ares_getaddrinfo) and
 * from the deadline timer, and may call resolver_resolve, resolver_cancel or resolver_free.
 * 'busy' counts the frames of resolver code on the stack; resolver_free only marks the resolver
 * closing and cancels the waiters, and the channel is destroyed when the outermost frame
 * leaves. The memory goes in the last close callback. */
#include "proxy/resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "proxy/container_of.h"
#include "proxy/resolver_cache.h"
#include "proxy/siphash.h"

#define RESOLVER_DEFAULT_TIMEOUT_MS 5000
#define RESOLVER_TRIES 2
#define RESOLVER_TRY_MIN_MS 50
#define RESOLVER_TTL_MIN_MS 1000ULL
#define RESOLVER_TTL_MAX_MS 3600000ULL
#define RESOLVER_NEGATIVE_TTL_MS 5000ULL
#define RESOLVER_LOOKUP_BUCKETS 256 /* a power of two */

/* A socket c-ares asked us to watch. */
struct resolver_sock {
    uv_poll_t poll;
    struct resolver *r;
    ares_socket_t fd;
    int events;                 /* UV_READABLE | UV_WRITABLE, as c-ares last asked */
    struct resolver_sock *next; /* r->socks; unlinked when closing */
};

struct resolver_query {
    struct resolver_lookup *lookup; /* NULL once delivered */
    struct resolver_query *prev, *next;
    resolver_cb cb;
    void *arg;
    bool in_start;    /* resolver_resolve is still running and frees the query itself */
    bool in_callback; /* cancel is then a no-op */
    bool done;        /* delivered (or dropped by resolver_free) */
};

struct resolver_lookup {
    struct resolver *r;
    struct resolver_lookup *hash_next;           /* r->lookups[], while joinable */
    struct resolver_lookup *dl_prev, *dl_next;   /* r->dl_head list, while joinable */
    struct resolver_lookup *all_prev, *all_next; /* r->all, until freed */
    struct resolver_query *waiters;              /* first come, first called */
    struct resolver_query *waiters_tail;
    uint64_t hash;
    uint64_t deadline_ms;
    bool joinable;     /* new queries for the name may wait on it */
    bool ares_pending; /* c-ares still holds a pointer to it */
    bool starting;     /* inside ares_getaddrinfo() */
    bool delivering;   /* callbacks running */
    size_t name_len;
    char name[];
};

struct resolver {
    uv_loop_t *loop;
    ares_channel channel;
    uv_timer_t ares_timer;
    uv_timer_t deadline_timer;
    struct resolver_sock *socks;
    struct resolver_lookup *lookups[RESOLVER_LOOKUP_BUCKETS];
    struct resolver_lookup *dl_head, *dl_tail;
    struct resolver_lookup *all;  /* every lookup, joinable or not */
    struct resolver_cache *cache; /* NULL: no cache */
    uint8_t hash_key[16];
    uint32_t timeout_ms;
    int busy;
    int pending_closes;
    bool closing;   /* resolver_free was called */
    bool destroyed; /* the channel is gone and the handles are closing */
};

static pthread_once_t resolver_library_once = PTHREAD_ONCE_INIT;
static int resolver_library_status;

static void resolver_library_init(void)
{
    resolver_library_status = ares_library_init(ARES_LIB_INIT_ALL);
}

static void resolver_arm_ares_timer(struct resolver *r);
static void resolver_destroy(struct resolver *r);
static void resolver_on_deadline(uv_timer_t *t);

static void resolver_enter(struct resolver *r)
{
    r->busy++;
}

static void resolver_leave(struct resolver *r)
{
    r->busy--;
    if (r->destroyed)
        return;
    if (r->closing && r->busy == 0)
        resolver_destroy(r);
    else
        resolver_arm_ares_timer(r);
}

/* ---- handles ---- */

static void resolver_on_handle_closed(struct resolver *r)
{
    if (--r->pending_closes == 0 && r->destroyed)
        free(r);
}

static void resolver_on_timer_close(uv_handle_t *h)
{
    resolver_on_handle_closed(h->data);
}

static void resolver_on_sock_close(uv_handle_t *h)
{
    struct resolver_sock *s = container_of((uv_poll_t *)h, struct resolver_sock, poll);
    struct resolver *r = s->r;
    free(s);
    resolver_on_handle_closed(r);
}

static void resolver_sock_close(struct resolver *r, struct resolver_sock **link)
{
    struct resolver_sock *s = *link;
    *link = s->next;
    r->pending_closes++;
    uv_close((uv_handle_t *)&s->poll, resolver_on_sock_close);
}

static void resolver_on_poll(uv_poll_t *h, int status, int events)
{
    struct resolver_sock *s = container_of(h, struct resolver_sock, poll);
    struct resolver *r = s->r;
    ares_socket_t rfd = ARES_SOCKET_BAD;
    ares_socket_t wfd = ARES_SOCKET_BAD;

    /* On an error let c-ares read and write: it then sees the error and drops the socket. */
    if (status < 0 || (events & UV_READABLE))
        rfd = s->fd;
    if (status < 0 || (events & UV_WRITABLE))
        wfd = s->fd;
    resolver_enter(r);
    ares_process_fd(r->channel, rfd, wfd);
    if (status < 0 && !r->destroyed) {
        /* libuv stopped the handle; if c-ares kept the socket, keep watching it. */
        for (struct resolver_sock *it = r->socks; it != NULL; it = it->next)
            if (it == s)
                uv_poll_start(&s->poll, s->events, resolver_on_poll);
    }
    resolver_leave(r);
}

/* c-ares opened, changed or is about to close one of its sockets. The fd number of a socket
 * closed here may come back for a new socket at once: the old poll handle is unlinked before
 * it closes, so the new socket gets a handle of its own. */
static void resolver_on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct resolver *r = data;
    struct resolver_sock **link = &r->socks;
    while (*link != NULL && (*link)->fd != fd)
        link = &(*link)->next;
    struct resolver_sock *s = *link;

    if (!readable && !writable) {
        if (s != NULL)
            resolver_sock_close(r, link);
        return;
    }
    if (s == NULL) {
        if (r->destroyed)
            return;
        /* Without a handle c-ares never hears from this socket and its queries end by
         * timeout: degraded, but bounded. */
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return;
        if (uv_poll_init_socket(r->loop, &s->poll, fd) != 0) {
            free(s);
            return;
        }
        s->r = r;
        s->fd = fd;
        s->next = r->socks;
        r->socks = s;
    }
    s->events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
    uv_poll_start(&s->poll, s->events, resolver_on_poll);
}

static void resolver_on_ares_timer(uv_timer_t *t)
{
    struct resolver *r = container_of(t, struct resolver, ares_timer);
    resolver_enter(r);
    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    resolver_leave(r);
}

static void resolver_arm_ares_timer(struct resolver *r)
{
    struct timeval tv;
    if (ares_timeout(r->channel, NULL, &tv) == NULL) {
        uv_timer_stop(&r->ares_timer);
        return;
    }
    uint64_t ms = (uint64_t)tv.tv_sec * 1000 + ((uint64_t)tv.tv_usec + 999) / 1000;
    uv_timer_start(&r->ares_timer, resolver_on_ares_timer, ms, 0);
}

/* ---- lookups ---- */

static struct resolver_lookup *resolver_lookup_find(struct resolver *r, const char *name,
                                                    size_t len, uint64_t hash)
{
    struct resolver_lookup *lk = r->lookups[hash & (RESOLVER_LOOKUP_BUCKETS - 1)];
    while (lk != NULL &&
           !(lk->hash == hash && lk->name_len == len && memcmp(lk->name, name, len) == 0))
        lk = lk->hash_next;
    return lk;
}

static void resolver_arm_deadline(struct resolver *r)
{
    if (r->dl_head == NULL) {
        uv_timer_stop(&r->deadline_timer);
        return;
    }
    uint64_t now = uv_now(r->loop);
    uint64_t at = r->dl_head->deadline_ms;
    uv_timer_start(&r->deadline_timer, resolver_on_deadline, at > now ? at - now : 0, 0);
}

/* Makes the lookup unreachable for new queries. */
static void resolver_lookup_unlink(struct resolver_lookup *lk)
{
    struct resolver *r = lk->r;
    if (!lk->joinable)
        return;
    lk->joinable = false;

    struct resolver_lookup **link = &r->lookups[lk->hash & (RESOLVER_LOOKUP_BUCKETS - 1)];
    while (*link != lk)
        link = &(*link)->hash_next;
    *link = lk->hash_next;

    if (lk->dl_prev != NULL)
        lk->dl_prev->dl_next = lk->dl_next;
    else
        r->dl_head = lk->dl_next;
    if (lk->dl_next != NULL)
        lk->dl_next->dl_prev = lk->dl_prev;
    else
        r->dl_tail = lk->dl_prev;
    if (r->dl_head == NULL && !r->destroyed)
        uv_timer_stop(&r->deadline_timer);
}

static void resolver_lookup_maybe_free(struct resolver_lookup *lk)
{
    if (lk->ares_pending || lk->starting || lk->delivering || lk->waiters != NULL)
        return;
    resolver_lookup_unlink(lk);
    if (lk->all_prev != NULL)
        lk->all_prev->all_next = lk->all_next;
    else
        lk->r->all = lk->all_next;
    if (lk->all_next != NULL)
        lk->all_next->all_prev = lk->all_prev;
    free(lk);
}

static void resolver_waiter_remove(struct resolver_lookup *lk, struct resolver_query *q)
{
    if (q->prev != NULL)
        q->prev->next = q->next;
    else
        lk->waiters = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    else
        lk->waiters_tail = q->prev;
    q->prev = q->next = NULL;
    q->lookup = NULL;
}

static void resolver_waiter_add(struct resolver_lookup *lk, struct resolver_query *q)
{
    q->lookup = lk;
    q->next = NULL;
    q->prev = lk->waiters_tail;
    if (lk->waiters_tail != NULL)
        lk->waiters_tail->next = q;
    else
        lk->waiters = q;
    lk->waiters_tail = q;
}

/* Drops every waiter without calling it (resolver_free, c-ares destruction). */
static void resolver_lookup_drop_waiters(struct resolver_lookup *lk)
{
    struct resolver_query *q;
    while ((q = lk->waiters) != NULL) {
        resolver_waiter_remove(lk, q);
        q->done = true;
        if (!q->in_start)
            free(q);
    }
}

static void resolver_lookup_deliver(struct resolver_lookup *lk, enum outbound_status status,
                                    const struct resolver_answer *answer)
{
    struct resolver_query *q;
    lk->delivering = true;
    /* Take one waiter at a time: a callback may cancel the others. */
    while ((q = lk->waiters) != NULL) {
        resolver_waiter_remove(lk, q);
        q->done = true;
        q->in_callback = true;
        q->cb(q->arg, status, answer);
        q->in_callback = false;
        if (!q->in_start)
            free(q);
    }
    lk->delivering = false;
}

static uint64_t resolver_clamp_ttl(uint64_t ms)
{
    if (ms < RESOLVER_TTL_MIN_MS)
        return RESOLVER_TTL_MIN_MS;
    return ms > RESOLVER_TTL_MAX_MS ? RESOLVER_TTL_MAX_MS : ms;
}

/* Turns what ares_getaddrinfo returned into a status, an ordered answer and a cache lifetime
 * (0: do not cache). */
static enum outbound_status resolver_answer_from_ares(int status, const struct ares_addrinfo *res,
                                                      struct resolver_answer *answer,
                                                      uint64_t *ttl_ms)
{
    answer->n_addrs = 0;
    *ttl_ms = 0;
    switch (status) {
    case ARES_SUCCESS:
        break;
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
    case ARES_EBADNAME:
        *ttl_ms = RESOLVER_NEGATIVE_TTL_MS;
        return OUTBOUND_DNS_NOT_FOUND;
    case ARES_ETIMEOUT:
        return OUTBOUND_DNS_TIMEOUT;
    default:
        return OUTBOUND_DNS_FAILED;
    }

    struct sockaddr_storage found[2 * RESOLVER_MAX_ADDRS];
    size_t n = 0, n4 = 0, n6 = 0;
    int64_t min_ttl = -1;
    for (const struct ares_addrinfo_node *node = res != NULL ? res->nodes : NULL; node != NULL;
         node = node->ai_next) {
        if (node->ai_family == AF_INET && node->ai_addrlen >= sizeof(struct sockaddr_in)) {
            if (n4 >= RESOLVER_MAX_ADDRS)
                continue;
            n4++;
            memset(&found[n], 0, sizeof(found[n]));
            memcpy(&found[n], node->ai_addr, sizeof(struct sockaddr_in));
            ((struct sockaddr_in *)&found[n])->sin_port = 0;
        } else if (node->ai_family == AF_INET6 && node->ai_addrlen >= sizeof(struct sockaddr_in6)) {
            if (n6 >= RESOLVER_MAX_ADDRS)
                continue;
            n6++;
            memset(&found[n], 0, sizeof(found[n]));
            memcpy(&found[n], node->ai_addr, sizeof(struct sockaddr_in6));
            ((struct sockaddr_in6 *)&found[n])->sin6_port = 0;
        } else {
            continue;
        }
        n++;
        if (min_ttl < 0 || node->ai_ttl < min_ttl)
            min_ttl = node->ai_ttl < 0 ? 0 : node->ai_ttl;
    }
    resolver_addrs_order(found, n, answer);
    if (answer->n_addrs == 0) {
        *ttl_ms = RESOLVER_NEGATIVE_TTL_MS;
        return OUTBOUND_DNS_NOT_FOUND;
    }
    *ttl_ms = resolver_clamp_ttl((uint64_t)min_ttl * 1000);
    return OUTBOUND_OK;
}

static void resolver_on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct resolver_lookup *lk = arg;
    struct resolver *r = lk->r;
    lk->ares_pending = false;

    if (status == ARES_ECANCELLED || status == ARES_EDESTRUCTION || r->closing) {
        ares_freeaddrinfo(res);
        resolver_lookup_drop_waiters(lk);
        resolver_lookup_maybe_free(lk);
        return;
    }
    struct resolver_answer answer;
    uint64_t ttl_ms;
    enum outbound_status st = resolver_answer_from_ares(status, res, &answer, &ttl_ms);
    ares_freeaddrinfo(res);

    resolver_lookup_unlink(lk);
    if (r->cache != NULL && ttl_ms > 0)
        resolver_cache_put(r->cache, lk->name, st, &answer, uv_now(r->loop) + ttl_ms);
    resolver_lookup_deliver(lk, st, &answer);
    resolver_lookup_maybe_free(lk);
}

static void resolver_on_deadline(uv_timer_t *t)
{
    struct resolver *r = container_of(t, struct resolver, deadline_timer);
    struct resolver_answer empty = {.n_addrs = 0};
    uint64_t now = uv_now(r->loop);
    struct resolver_lookup *lk;

    resolver_enter(r);
    while ((lk = r->dl_head) != NULL && lk->deadline_ms <= now) {
        resolver_lookup_unlink(lk);
        resolver_lookup_deliver(lk, OUTBOUND_DNS_TIMEOUT, &empty);
        resolver_lookup_maybe_free(lk);
    }
    resolver_arm_deadline(r);
    resolver_leave(r);
}

/* ---- the public functions ---- */

static bool resolver_parse_literal(const char *host, struct resolver_answer *answer)
{
    struct sockaddr_storage *ss = &answer->addrs[0];
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    char inner[INET6_ADDRSTRLEN];
    size_t len = strnlen(host, sizeof(inner) + 2);

    memset(ss, 0, sizeof(*ss));
    answer->n_addrs = 1;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        return true;
    }
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']' && len - 2 < sizeof(inner)) {
        memcpy(inner, host + 1, len - 2);
        inner[len - 2] = '\0';
        host = inner;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        return true;
    }
    answer->n_addrs = 0;
    return false;
}

/* RFC 6761 §6.3: "localhost" and names under it are loopback, answered here and never sent to
 * a DNS server (some systems have no /etc/hosts entry for them). 'name' is normalized. */
static bool resolver_answer_localhost(const char *name, struct resolver_answer *answer)
{
    static const char suffix[] = ".localhost";
    size_t len = strlen(name);
    size_t slen = sizeof(suffix) - 1;
    if (strcmp(name, "localhost") != 0 && !(len > slen && strcmp(name + len - slen, suffix) == 0))
        return false;
    memset(answer->addrs, 0, 2 * sizeof(answer->addrs[0]));
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&answer->addrs[0];
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = in6addr_loopback;
    struct sockaddr_in *sin = (struct sockaddr_in *)&answer->addrs[1];
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    answer->n_addrs = 2;
    return true;
}

static int resolver_set_servers(struct resolver *r, const struct resolver_options *opts)
{
    struct ares_addr_port_node *nodes = calloc(opts->n_servers, sizeof(*nodes));
    if (nodes == NULL)
        return UV_ENOMEM;
    int err = 0;
    for (size_t i = 0; i < opts->n_servers && err == 0; i++) {
        const struct sockaddr_storage *ss = &opts->servers[i];
        uint16_t port = 0;
        nodes[i].family = ss->ss_family;
        if (ss->ss_family == AF_INET) {
            const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
            memcpy(&nodes[i].addr.addr4, &sin->sin_addr, sizeof(sin->sin_addr));
            port = ntohs(sin->sin_port);
        } else if (ss->ss_family == AF_INET6) {
            const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
            memcpy(&nodes[i].addr.addr6, &sin6->sin6_addr, sizeof(sin6->sin6_addr));
            port = ntohs(sin6->sin6_port);
        } else {
            err = UV_EINVAL;
        }
        nodes[i].udp_port = nodes[i].tcp_port = port != 0 ? port : 53;
        nodes[i].next = i + 1 < opts->n_servers ? &nodes[i + 1] : NULL;
    }
    if (err == 0 && ares_set_servers_ports(r->channel, nodes) != ARES_SUCCESS)
        err = UV_ENOMEM;
    free(nodes);
    return err;
}

static void resolver_make_hash_key(struct resolver *r)
{
    if (getrandom(r->hash_key, sizeof(r->hash_key), GRND_NONBLOCK) == (ssize_t)sizeof(r->hash_key))
        return;
    /* No entropy yet (early boot): still different per process and resolver. */
    uint64_t a = uv_hrtime();
    uint64_t b = (uint64_t)(uintptr_t)r ^ ((uint64_t)getpid() << 32);
    memcpy(r->hash_key, &a, sizeof(a));
    memcpy(r->hash_key + 8, &b, sizeof(b));
}

int resolver_new(uv_loop_t *loop, const struct resolver_options *opts, struct resolver **out)
{
    int ret = UV_ENOMEM;
    *out = NULL;
    pthread_once(&resolver_library_once, resolver_library_init);
    if (resolver_library_status != ARES_SUCCESS)
        return UV_EINVAL;

    struct resolver *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return UV_ENOMEM;
    r->loop = loop;
    r->timeout_ms = opts->timeout_ms != 0 ? opts->timeout_ms : RESOLVER_DEFAULT_TIMEOUT_MS;
    resolver_make_hash_key(r);
    if (opts->cache_entries > 0) {
        r->cache = resolver_cache_new(opts->cache_entries, r->hash_key);
        if (r->cache == NULL)
            goto fail_cache;
    }

    /* Two tries per server: c-ares doubles the per-try timeout on the second round, so the
     * rounds through all servers take about 3 * n * per_try, which fits the deadline. */
    size_t n_servers = opts->servers != NULL && opts->n_servers > 0 ? opts->n_servers : 1;
    uint64_t per_try = r->timeout_ms / (3 * n_servers);
    struct ares_options ao = {
        .flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES,
        .timeout = per_try < RESOLVER_TRY_MIN_MS ? RESOLVER_TRY_MIN_MS : (int)per_try,
        .tries = RESOLVER_TRIES,
        .sock_state_cb = resolver_on_sock_state,
        .sock_state_cb_data = r,
        .domains = NULL,
        .ndomains = 0,
    };
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB |
               ARES_OPT_DOMAINS;
    int status = ares_init_options(&r->channel, &ao, mask);
    if (status != ARES_SUCCESS) {
        ret = status == ARES_ENOMEM ? UV_ENOMEM : UV_EINVAL;
        goto fail_channel;
    }
    if (opts->servers != NULL && opts->n_servers > 0) {
        ret = resolver_set_servers(r, opts);
        if (ret != 0)
            goto fail_servers;
    }

    uv_timer_init(loop, &r->ares_timer);
    uv_timer_init(loop, &r->deadline_timer);
    r->ares_timer.data = r;
    r->deadline_timer.data = r;
    *out = r;
    return 0;

fail_servers:
    ares_destroy(r->channel);
fail_channel:
    resolver_cache_free(r->cache);
fail_cache:
    free(r);
    return ret;
}

static void resolver_destroy(struct resolver *r)
{
    r->destroyed = true;
    /* Ends every lookup with ARES_EDESTRUCTION and closes c-ares' sockets (sock_state_cb). */
    ares_destroy(r->channel);
    r->channel = NULL;
    while (r->socks != NULL)
        resolver_sock_close(r, &r->socks);
    resolver_cache_free(r->cache);
    r->cache = NULL;
    r->pending_closes += 2;
    uv_close((uv_handle_t *)&r->ares_timer, resolver_on_timer_close);
    uv_close((uv_handle_t *)&r->deadline_timer, resolver_on_timer_close);
}

void resolver_free(struct resolver *r)
{
    if (r == NULL || r->closing)
        return;
    r->closing = true;
    /* Lookups being delivered are no longer joinable but may still have waiters: walk all. */
    struct resolver_lookup *lk = r->all;
    while (lk != NULL) {
        struct resolver_lookup *next = lk->all_next;
        resolver_lookup_drop_waiters(lk);
        resolver_lookup_maybe_free(lk);
        lk = next;
    }
    if (r->busy == 0)
        resolver_destroy(r);
}

/* A new joinable lookup for a normalised name, its deadline from now. NULL: out of memory. */
static struct resolver_lookup *resolver_lookup_new(struct resolver *r, const char *name, size_t len,
                                                   uint64_t hash)
{
    struct resolver_lookup *lk = calloc(1, sizeof(*lk) + len + 1);
    if (lk == NULL)
        return NULL;
    lk->r = r;
    lk->hash = hash;
    lk->name_len = len;
    memcpy(lk->name, name, len + 1);
    lk->deadline_ms = uv_now(r->loop) + r->timeout_ms;
    lk->joinable = true;

    lk->all_next = r->all;
    if (r->all != NULL)
        r->all->all_prev = lk;
    r->all = lk;

    struct resolver_lookup **bucket = &r->lookups[hash & (RESOLVER_LOOKUP_BUCKETS - 1)];
    lk->hash_next = *bucket;
    *bucket = lk;

    /* Every lookup has the same timeout: appending keeps the list in deadline order. */
    lk->dl_prev = r->dl_tail;
    if (r->dl_tail != NULL)
        r->dl_tail->dl_next = lk;
    else
        r->dl_head = lk;
    r->dl_tail = lk;
    if (r->dl_head == lk)
        resolver_arm_deadline(r);
    return lk;
}

struct resolver_query *resolver_resolve(struct resolver *r, const char *host, resolver_cb cb,
                                        void *arg)
{
    struct resolver_answer answer;
    enum outbound_status status;
    char name[TARGET_HOST_MAX];

    if (resolver_parse_literal(host, &answer)) {
        cb(arg, OUTBOUND_OK, &answer);
        return NULL;
    }
    int len = resolver_name_normalize(host, name, sizeof(name));
    if (len < 0 || r->closing) {
        cb(arg, len < 0 ? OUTBOUND_DNS_NOT_FOUND : OUTBOUND_DNS_FAILED, &answer);
        return NULL;
    }
    if (resolver_answer_localhost(name, &answer)) {
        cb(arg, OUTBOUND_OK, &answer);
        return NULL;
    }
    if (r->cache != NULL && resolver_cache_get(r->cache, name, uv_now(r->loop), &status, &answer)) {
        cb(arg, status, &answer);
        return NULL;
    }

    struct resolver_query *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        cb(arg, OUTBOUND_DNS_FAILED, &answer);
        return NULL;
    }
    q->cb = cb;
    q->arg = arg;

    uint64_t hash = siphash24(r->hash_key, name, (size_t)len);
    struct resolver_lookup *lk = resolver_lookup_find(r, name, (size_t)len, hash);
    if (lk != NULL) {
        resolver_waiter_add(lk, q);
        return q;
    }

    lk = resolver_lookup_new(r, name, (size_t)len, hash);
    if (lk == NULL) {
        free(q);
        cb(arg, OUTBOUND_DNS_FAILED, &answer);
        return NULL;
    }
    resolver_waiter_add(lk, q);
    q->in_start = true;
    lk->starting = true;
    lk->ares_pending = true;

    /* May answer at once (/etc/hosts, "localhost", an error): then q is done. */
    struct ares_addrinfo_hints hints = {
        .ai_flags = ARES_AI_NOSORT,
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
    };
    resolver_enter(r);
    ares_getaddrinfo(r->channel, lk->name, NULL, &hints, resolver_on_addrinfo, lk);
    lk->starting = false;
    resolver_lookup_maybe_free(lk);

    q->in_start = false;
    if (q->done) {
        free(q);
        q = NULL;
    }
    resolver_leave(r);
    return q;
}

void resolver_cancel(struct resolver_query *q)
{
    if (q == NULL || q->in_callback || q->done)
        return;
    struct resolver_lookup *lk = q->lookup;
    resolver_waiter_remove(lk, q);
    free(q);
    resolver_lookup_maybe_free(lk);
}
