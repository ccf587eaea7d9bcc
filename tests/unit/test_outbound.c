/* proxy/outbound.c and proxy/target.c: real sockets on loopback only. A "blackhole" is a
 * listening socket with backlog 0 whose one queue slot is taken: the kernel then drops further
 * SYNs, so a connect to it stays in progress. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "proxy/outbound.h"
#include "proxy/resolver.h"
#include "proxy/target.h"

/* ---- names and formatting ---- */

static void test_status_names(void **state)
{
    static const struct {
        enum outbound_status st;
        const char *name;
    } cases[] = {
        {OUTBOUND_OK, "ok"},
        {OUTBOUND_NOT_ALLOWED, "not-allowed"},
        {OUTBOUND_FAILED, "failed"},
        {OUTBOUND_NET_UNREACH, "net-unreachable"},
        {OUTBOUND_HOST_UNREACH, "host-unreachable"},
        {OUTBOUND_DNS_NOT_FOUND, "dns-not-found"},
        {OUTBOUND_DNS_FAILED, "dns-failed"},
        {OUTBOUND_DNS_TIMEOUT, "dns-timeout"},
        {OUTBOUND_REFUSED, "refused"},
        {OUTBOUND_TIMEOUT, "timeout"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(outbound_status_name(cases[i].st), cases[i].name);
    assert_non_null(outbound_status_name((enum outbound_status)99));
}

static void set_ip(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
    }
}

static void test_target_format(void **state)
{
    static const struct {
        const char *host; /* NULL: literal 'ip' */
        const char *ip;
        uint16_t port;
        size_t len;
        const char *want;
    } cases[] = {
        {"example.com", NULL, 443, 64, "example.com:443"},
        {NULL, "192.0.2.1", 80, 64, "192.0.2.1:80"},
        {NULL, "::1", 8080, 64, "[::1]:8080"},
        {NULL, "2001:db8::1", 65535, 64, "[2001:db8::1]:65535"},
        {"example.com", NULL, 443, 8, "example"},
        {NULL, "::1", 8080, 4, "[::"},
        {"example.com", NULL, 443, 1, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct target t = {.port = cases[i].port};
        if (cases[i].host != NULL)
            snprintf(t.host, sizeof(t.host), "%s", cases[i].host);
        else
            set_ip(&t.addr, cases[i].ip, 0);
        char buf[64];
        memset(buf, 'x', sizeof(buf));
        assert_ptr_equal(target_format(&t, buf, cases[i].len), buf);
        assert_string_equal(buf, cases[i].want);
    }
    /* len 0 writes nothing; a longest name still ends in NUL */
    struct target t = {.port = 1};
    char one = 'x';
    target_format(&t, &one, 0);
    assert_int_equal(one, 'x');
    memset(t.host, 'a', sizeof(t.host) - 1);
    char big[TARGET_HOST_MAX + 8];
    target_format(&t, big, sizeof(big));
    assert_int_equal(strlen(big), TARGET_HOST_MAX - 1 + 2);
}

/* ---- a loopback server on the test's loop ---- */

struct server {
    uv_tcp_t tcp;
    uv_tcp_t peer;
    bool has_peer;
    char got[64];
    size_t n_got;
    uint16_t port;
};

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct server *s = h->data;
    *buf = uv_buf_init(s->got + s->n_got, (unsigned)(sizeof(s->got) - 1 - s->n_got));
}

static void on_server_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct server *s = st->data;
    if (n > 0)
        s->n_got += (size_t)n;
    else if (n < 0)
        uv_read_stop(st);
}

static void on_server_connection(uv_stream_t *l, int status)
{
    struct server *s = l->data;
    assert_int_equal(status, 0);
    assert_false(s->has_peer);
    uv_tcp_init(l->loop, &s->peer);
    s->peer.data = s;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&s->peer), 0);
    s->has_peer = true;
    uv_read_start((uv_stream_t *)&s->peer, on_alloc, on_server_read);
}

static void server_start(uv_loop_t *loop, struct server *s, const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    memset(s, 0, sizeof(*s));
    set_ip(&ss, ip, port);
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    assert_int_equal(uv_tcp_bind(&s->tcp, (struct sockaddr *)&ss,
                                 ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0),
                     0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->tcp, 8, on_server_connection), 0);
    int len = sizeof(ss);
    uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port); /* same offset for IPv6 */
}

static void server_close(struct server *s)
{
    uv_close((uv_handle_t *)&s->tcp, NULL);
    if (s->has_peer)
        uv_close((uv_handle_t *)&s->peer, NULL);
}

/* A TCP socket bound on ip (port 0: any) and not listening: connects to it are refused. */
static int closed_port(const char *ip, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    set_ip(&ss, ip, *port);
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&ss, sizeof(ss)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* A listener on 127.0.0.1 whose accept queue is full: further connects hang. fds[0] listens,
 * fds[1] is the connection filling the queue. */
static uint16_t blackhole(int fds[2])
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    set_ip(&ss, "127.0.0.1", 0);
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fds[0], (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
    assert_int_equal(listen(fds[0], 0), 0);
    assert_int_equal(getsockname(fds[0], (struct sockaddr *)&ss, &len), 0);
    fds[1] = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fds[1], (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ---- the outcome of a request ---- */

struct outcome {
    int calls;
    enum outbound_status status;
    struct sockaddr_storage peer;
    uv_loop_t *loop;
    struct link *upstream; /* handed over in the callback; the test closes and frees it */
    uv_write_t write;
    int write_status;
    bool written;
    struct outbound_req *req; /* cancelled from inside the callback: must be harmless */
    bool close_at_once;       /* close the handle inside the callback instead of writing */
};

static void on_upstream_close(struct link *l)
{
    free(l);
}

static void outcome_close_upstream(struct outcome *o)
{
    if (o->upstream == NULL)
        return;
    link_close(o->upstream, on_upstream_close);
    o->upstream = NULL;
}

static socklen_t sockaddr_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* What the contract promises of a handed-over handle: on our loop, connected to 'peer', not
 * reading, TCP_NODELAY set. */
static void assert_handed_over(struct outcome *o, uv_tcp_t *tcp, const struct sockaddr *peer)
{
    assert_int_equal(tcp->type, UV_TCP);
    assert_ptr_equal(tcp->loop, o->loop);
    assert_false(uv_is_active((uv_handle_t *)tcp)); /* not reading */
    assert_false(uv_is_closing((uv_handle_t *)tcp));
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    assert_int_equal(uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len), 0);
    assert_int_equal(len, sockaddr_len(peer));
    assert_memory_equal(&ss, peer, sockaddr_len(peer));
    uv_os_fd_t fd;
    assert_int_equal(uv_fileno((uv_handle_t *)tcp, &fd), 0);
    int on = 0;
    socklen_t on_len = sizeof(on);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &on_len), 0);
    assert_int_not_equal(on, 0);
}

static void on_write(uv_write_t *w, int status)
{
    struct outcome *o = w->data;
    o->write_status = status;
    o->written = true;
}

static void on_outbound(void *arg, enum outbound_status status, struct link *link,
                        const struct sockaddr *peer)
{
    uv_tcp_t *tcp = link != NULL ? &link->tcp : NULL;
    struct outcome *o = arg;
    o->calls++;
    o->status = status;
    if (o->req != NULL)
        outbound_cancel(o->req);
    if (status != OUTBOUND_OK) {
        assert_null(tcp);
        assert_null(peer);
        return;
    }
    assert_non_null(tcp);
    assert_non_null(peer);
    memcpy(&o->peer, peer, sockaddr_len(peer));
    assert_handed_over(o, tcp, peer);
    o->upstream = link; /* ours now */
    if (o->close_at_once) {
        outcome_close_upstream(o);
        return;
    }
    static char ping[] = "ping";
    uv_buf_t buf = uv_buf_init(ping, 4);
    o->write.data = o;
    assert_int_equal(uv_write(&o->write, (uv_stream_t *)tcp, &buf, 1, on_write), 0);
}

static bool guard_fired;

static void on_guard(uv_timer_t *t)
{
    guard_fired = true;
}

/* Runs the loop until the predicate holds or max_ms passed. */
static void run_until(uv_loop_t *loop, bool (*done)(void *), void *arg, uint64_t max_ms)
{
    uv_timer_t guard;
    uv_timer_init(loop, &guard);
    guard_fired = false;
    uv_timer_start(&guard, on_guard, max_ms, 0);
    while (!guard_fired && (done == NULL || !done(arg)))
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static bool outcome_called(void *arg)
{
    return ((struct outcome *)arg)->calls > 0;
}

struct ping_wait {
    struct outcome *o;
    struct server *s;
};

static bool ping_arrived(void *arg)
{
    struct ping_wait *w = arg;
    return w->o->written && w->s->n_got >= 4;
}

static void finish_loop(uv_loop_t *loop, struct outcome *o)
{
    if (o != NULL)
        outcome_close_upstream(o);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void assert_peer(const struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    char buf[INET6_ADDRSTRLEN];
    const void *a = ss->ss_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    assert_non_null(inet_ntop(ss->ss_family, a, buf, sizeof(buf)));
    assert_string_equal(buf, ip);
    assert_int_equal(ntohs(((const struct sockaddr_in *)ss)->sin_port), port);
}

static struct resolver_answer answer_of(const char *const *ips)
{
    struct resolver_answer a = {.n_addrs = 0};
    for (; *ips != NULL; ips++)
        set_ip(&a.addrs[a.n_addrs++], *ips, 0);
    return a;
}

/* ---- tests ---- */

static void test_connects_and_hands_over_a_usable_handle(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server s;
    server_start(&loop, &s, "127.0.0.1", 0);
    struct outcome o = {.loop = &loop};
    struct resolver_answer a = answer_of((const char *[]){"127.0.0.1", NULL});

    struct outbound_req *req =
        outbound_connect_addrs(&loop, &a, s.port, 2000, NULL, on_outbound, &o);
    assert_non_null(req);
    assert_int_equal(o.calls, 0); /* never before returning */
    struct ping_wait w = {&o, &s};
    run_until(&loop, ping_arrived, &w, 3000);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, OUTBOUND_OK);
    assert_peer(&o.peer, "127.0.0.1", s.port);
    assert_int_equal(o.write_status, 0);
    assert_int_equal(s.n_got, 4);
    assert_memory_equal(s.got, "ping", 4);
    server_close(&s);
    finish_loop(&loop, &o);
}

/* Connects to a closed port on 127.0.0.1: the callback runs once, later, with REFUSED. With
 * cancel_in_callback the callback also cancels the request, which must be harmless. */
static void check_closed_port_is_refused(bool cancel_in_callback)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uint16_t port = 0;
    int fd = closed_port("127.0.0.1", &port);
    struct outcome o = {.loop = &loop};
    struct resolver_answer a = answer_of((const char *[]){"127.0.0.1", NULL});
    struct outbound_req *req = outbound_connect_addrs(&loop, &a, port, 2000, NULL, on_outbound, &o);
    assert_non_null(req);
    if (cancel_in_callback)
        o.req = req;
    assert_int_equal(o.calls, 0);
    run_until(&loop, outcome_called, &o, 3000);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, OUTBOUND_REFUSED);
    finish_loop(&loop, &o);
    close(fd);
}

static void test_closed_port_is_refused(void **state)
{
    check_closed_port_is_refused(false);
}

static void test_falls_back_after_a_refusal(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server s;
    server_start(&loop, &s, "127.0.0.1", 0);
    uint16_t port = s.port;
    int fd = closed_port("::1", &port); /* same port, other family: refused */
    struct outcome o = {.loop = &loop};
    struct resolver_answer a = answer_of((const char *[]){"::1", "127.0.0.1", NULL});
    uint64_t start = uv_hrtime();
    assert_non_null(outbound_connect_addrs(&loop, &a, s.port, 2000, NULL, on_outbound, &o));
    run_until(&loop, outcome_called, &o, 3000);
    /* the refusal started the next attempt at once, not after the attempt delay */
    assert_true((uv_hrtime() - start) / 1000000 < OUTBOUND_ATTEMPT_DELAY_MS);
    struct ping_wait w = {&o, &s};
    run_until(&loop, ping_arrived, &w, 3000);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, OUTBOUND_OK);
    assert_peer(&o.peer, "127.0.0.1", s.port);
    assert_memory_equal(s.got, "ping", 4);
    server_close(&s);
    finish_loop(&loop, &o);
    close(fd);
}

/* The first address hangs: the second starts after OUTBOUND_ATTEMPT_DELAY_MS and wins. */
static void test_next_attempt_starts_after_the_delay(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int bh[2];
    uint16_t port = blackhole(bh);
    struct server s;
    server_start(&loop, &s, "::1", port);
    struct outcome o = {.loop = &loop};
    struct resolver_answer a = answer_of((const char *[]){"127.0.0.1", "::1", NULL});

    uint64_t start = uv_hrtime();
    assert_non_null(outbound_connect_addrs(&loop, &a, port, 5000, NULL, on_outbound, &o));
    run_until(&loop, outcome_called, &o, 5000);
    uint64_t elapsed_ms = (uv_hrtime() - start) / 1000000;
    assert_int_equal(o.status, OUTBOUND_OK);
    assert_peer(&o.peer, "::1", port);
    assert_true(elapsed_ms >= OUTBOUND_ATTEMPT_DELAY_MS - 10);
    struct ping_wait w = {&o, &s};
    run_until(&loop, ping_arrived, &w, 3000);
    assert_memory_equal(s.got, "ping", 4);
    server_close(&s);
    finish_loop(&loop, &o);
    close(bh[1]);
    close(bh[0]);
}

static void test_deadline_gives_timeout(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int bh[2];
    uint16_t port = blackhole(bh);
    struct outcome o = {.loop = &loop};
    struct resolver_answer a = answer_of((const char *[]){"127.0.0.1", NULL});
    uint64_t start = uv_hrtime();
    assert_non_null(outbound_connect_addrs(&loop, &a, port, 300, NULL, on_outbound, &o));
    run_until(&loop, outcome_called, &o, 5000);
    uint64_t elapsed_ms = (uv_hrtime() - start) / 1000000;
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, OUTBOUND_TIMEOUT);
    assert_true(elapsed_ms >= 290);
    finish_loop(&loop, &o);
    close(bh[1]);
    close(bh[0]);
}

static void test_no_usable_address(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct outcome o = {.loop = &loop};
    struct resolver_answer none = {.n_addrs = 0};
    assert_non_null(outbound_connect_addrs(&loop, &none, 80, 1000, NULL, on_outbound, &o));
    assert_int_equal(o.calls, 0);
    run_until(&loop, outcome_called, &o, 2000);
    assert_int_equal(o.status, OUTBOUND_HOST_UNREACH);

    struct outcome o2 = {.loop = &loop};
    struct resolver_answer odd = {.n_addrs = 1};
    memset(&odd.addrs[0], 0, sizeof(odd.addrs[0]));
    odd.addrs[0].ss_family = AF_UNIX;
    assert_non_null(outbound_connect_addrs(&loop, &odd, 80, 1000, NULL, on_outbound, &o2));
    run_until(&loop, outcome_called, &o2, 2000);
    assert_int_equal(o2.status, OUTBOUND_HOST_UNREACH);
    finish_loop(&loop, NULL);
}

static void test_cancel_right_after_start(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server s;
    server_start(&loop, &s, "127.0.0.1", 0);
    int bh[2];
    uint16_t bh_port = blackhole(bh);
    struct resolver_answer a = answer_of((const char *[]){"127.0.0.1", NULL});

    /* before anything started */
    struct outcome o1 = {.loop = &loop};
    struct outbound_req *req =
        outbound_connect_addrs(&loop, &a, s.port, 2000, NULL, on_outbound, &o1);
    outbound_cancel(req);
    outbound_cancel(NULL);

    /* with a connect in progress */
    struct outcome o2 = {.loop = &loop};
    req = outbound_connect_addrs(&loop, &a, bh_port, 2000, NULL, on_outbound, &o2);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_run(&loop, UV_RUN_NOWAIT);
    outbound_cancel(req);

    run_until(&loop, NULL, NULL, 400);
    assert_int_equal(o1.calls, 0);
    assert_int_equal(o2.calls, 0);
    server_close(&s);
    finish_loop(&loop, NULL);
    close(bh[1]);
    close(bh[0]);
}

static void test_cancel_inside_callback_is_harmless(void **state)
{
    check_closed_port_is_refused(true);
}

/* The winner's callback cancels the request and closes the handle before returning. */
static void test_close_inside_callback_is_harmless(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct server s;
    server_start(&loop, &s, "127.0.0.1", 0);
    struct outcome o = {.loop = &loop, .close_at_once = true};
    struct resolver_answer a = answer_of((const char *[]){"127.0.0.1", NULL});
    o.req = outbound_connect_addrs(&loop, &a, s.port, 2000, NULL, on_outbound, &o);
    run_until(&loop, outcome_called, &o, 3000);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, OUTBOUND_OK);
    assert_null(o.upstream);
    run_until(&loop, NULL, NULL, 50);
    assert_int_equal(o.calls, 1);
    server_close(&s);
    finish_loop(&loop, &o);
}

/* No socket can be created (EMFILE): the attempt fails at once, the request reports FAILED
 * from the loop, not from under outbound_connect_addrs. */
static void test_no_socket_left_fails(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct outcome o = {.loop = &loop};
    struct resolver_answer a = answer_of((const char *[]){"127.0.0.1", "::1", NULL});
    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    int lowest = dup(0); /* every descriptor below the lowest free one is in use */
    assert_true(lowest >= 0);
    close(lowest);
    struct rlimit tight = {.rlim_cur = (rlim_t)lowest, .rlim_max = saved.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &tight), 0);
    /* no assertion until the limit is restored: a failure would leave it in place */
    struct outbound_req *req = outbound_connect_addrs(&loop, &a, 9, 2000, NULL, on_outbound, &o);
    int early_calls = o.calls;
    run_until(&loop, outcome_called, &o, 2000);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);

    assert_non_null(req);
    assert_int_equal(early_calls, 0);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, OUTBOUND_FAILED);
    finish_loop(&loop, &o);
}

/* ---- through the resolver (no DNS server needed: literals and /etc/hosts) ---- */

static struct resolver *make_resolver(uv_loop_t *loop, uint16_t dns_port, uint32_t timeout_ms)
{
    static struct sockaddr_storage server;
    set_ip(&server, "127.0.0.1", dns_port);
    struct resolver_options opts = {
        .servers = &server, .n_servers = 1, .timeout_ms = timeout_ms, .cache_entries = 16};
    struct resolver *r = NULL;
    assert_int_equal(resolver_new(loop, &opts, &r), 0);
    return r;
}

/* A UDP socket that swallows DNS queries: the resolver never hears back. */
static int silent_dns(uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    set_ip(&ss, "127.0.0.1", 0);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static void test_connect_to_targets(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uint16_t dns_port;
    int dns_fd = silent_dns(&dns_port);
    struct resolver *r = make_resolver(&loop, dns_port, 300);
    struct server s;
    server_start(&loop, &s, "127.0.0.1", 0);

    /* a literal target */
    struct target t = {.port = s.port};
    set_ip(&t.addr, "127.0.0.1", 0);
    struct outcome o = {.loop = &loop};
    assert_non_null(outbound_connect(&loop, r, &t, 2000, NULL, on_outbound, &o));
    assert_int_equal(o.calls, 0);
    struct ping_wait w1 = {&o, &s};
    run_until(&loop, ping_arrived, &w1, 3000);
    assert_int_equal(o.status, OUTBOUND_OK);
    assert_peer(&o.peer, "127.0.0.1", s.port);
    assert_memory_equal(s.got, "ping", 4);
    outcome_close_upstream(&o);
    uv_close((uv_handle_t *)&s.peer, NULL);
    s.has_peer = false;
    s.n_got = 0;
    memset(s.got, 0, sizeof(s.got));
    uv_run(&loop, UV_RUN_NOWAIT); /* let the closes finish before s.peer is reused */

    /* a name from /etc/hosts */
    struct target named = {.host = "localhost", .port = s.port};
    struct outcome o2 = {.loop = &loop};
    assert_non_null(outbound_connect(&loop, r, &named, 2000, NULL, on_outbound, &o2));
    assert_int_equal(o2.calls, 0); /* even when the resolver answers at once */
    struct ping_wait w = {&o2, &s};
    run_until(&loop, ping_arrived, &w, 3000);
    assert_int_equal(o2.status, OUTBOUND_OK);
    assert_memory_equal(s.got, "ping", 4);
    outcome_close_upstream(&o2);

    /* a name the DNS server never answers: the resolver's status comes straight through */
    struct target lost = {.host = "nowhere.test", .port = 80};
    struct outcome o3 = {.loop = &loop};
    assert_non_null(outbound_connect(&loop, r, &lost, 2000, NULL, on_outbound, &o3));
    run_until(&loop, outcome_called, &o3, 3000);
    assert_int_equal(o3.status, OUTBOUND_DNS_TIMEOUT);

    /* an impossible name */
    struct target bad = {.host = "a..b", .port = 80};
    struct outcome o4 = {.loop = &loop};
    assert_non_null(outbound_connect(&loop, r, &bad, 2000, NULL, on_outbound, &o4));
    assert_int_equal(o4.calls, 0);
    run_until(&loop, outcome_called, &o4, 3000);
    assert_int_equal(o4.status, OUTBOUND_DNS_NOT_FOUND);

    /* the connect deadline also bounds resolution */
    struct target slow = {.host = "slow.test", .port = 80};
    struct outcome o5 = {.loop = &loop};
    struct resolver *slow_r = make_resolver(&loop, dns_port, 5000);
    assert_non_null(outbound_connect(&loop, slow_r, &slow, 200, NULL, on_outbound, &o5));
    run_until(&loop, outcome_called, &o5, 3000);
    assert_int_equal(o5.status, OUTBOUND_DNS_TIMEOUT);

    /* cancelled while resolving */
    struct outcome o6 = {.loop = &loop};
    struct outbound_req *req = outbound_connect(&loop, slow_r, &slow, 2000, NULL, on_outbound, &o6);
    uv_run(&loop, UV_RUN_NOWAIT);
    outbound_cancel(req);
    run_until(&loop, NULL, NULL, 50);
    assert_int_equal(o6.calls, 0);

    resolver_free(slow_r);
    resolver_free(r);
    server_close(&s);
    finish_loop(&loop, NULL);
    close(dns_fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_target_format),
        cmocka_unit_test(test_connects_and_hands_over_a_usable_handle),
        cmocka_unit_test(test_closed_port_is_refused),
        cmocka_unit_test(test_falls_back_after_a_refusal),
        cmocka_unit_test(test_next_attempt_starts_after_the_delay),
        cmocka_unit_test(test_deadline_gives_timeout),
        cmocka_unit_test(test_no_usable_address),
        cmocka_unit_test(test_cancel_right_after_start),
        cmocka_unit_test(test_cancel_inside_callback_is_harmless),
        cmocka_unit_test(test_close_inside_callback_is_harmless),
        cmocka_unit_test(test_no_socket_left_fails),
        cmocka_unit_test(test_connect_to_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
