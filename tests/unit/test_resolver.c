/* proxy/resolver.c and proxy/resolver_cache.c: the pure parts table-driven, the resolver against
 * a real dnsmasq on 127.0.0.1 (started here on a free port, no upstream: it answers only the
 * names configured below). No traffic leaves loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "proxy/resolver.h"
#include "proxy/resolver_cache.h"

extern char **environ;

#define DNSMASQ_BIN "/usr/sbin/dnsmasq"

/* ---- the dnsmasq fixture ---- */

struct dnsmasq {
    pid_t pid;
    uint16_t port;
    char dir[64];
    char log_path[96];
    unsigned barrier_seq;
};

static struct dnsmasq dns = {.pid = -1};

static void addr4(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof(*ss));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
}

/* A UDP and TCP port on 127.0.0.1 that nothing uses right now. */
static uint16_t free_port(void)
{
    for (int tries = 0; tries < 50; tries++) {
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        int t = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        addr4(&ss, "127.0.0.1", 0);
        uint16_t port = 0;
        if (bind(u, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) == 0 &&
            getsockname(u, (struct sockaddr *)&ss, &len) == 0 &&
            bind(t, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) == 0)
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        close(u);
        close(t);
        if (port != 0)
            return port;
    }
    return 0;
}

/* Sends one A query for 'name' and waits up to 200 ms for any answer. */
static bool dns_probe(uint16_t port, const char *name)
{
    uint8_t pkt[300] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
    size_t n = 12;
    const char *p = name;
    while (*p != '\0') {
        const char *dot = strchr(p, '.');
        size_t label = dot != NULL ? (size_t)(dot - p) : strlen(p);
        pkt[n++] = (uint8_t)label;
        memcpy(pkt + n, p, label);
        n += label;
        p += label + (dot != NULL ? 1 : 0);
    }
    pkt[n++] = 0;
    pkt[n++] = 0, pkt[n++] = 1; /* A */
    pkt[n++] = 0, pkt[n++] = 1; /* IN */

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_storage ss;
    addr4(&ss, "127.0.0.1", port);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    bool ok = connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) == 0 &&
              send(fd, pkt, n, 0) == (ssize_t)n && recv(fd, pkt, sizeof(pkt), 0) > 0;
    close(fd);
    return ok;
}

/* How many lines of dnsmasq's log contain 'needle'. */
static int log_count(const char *needle)
{
    FILE *f = fopen(dns.log_path, "r");
    if (f == NULL)
        return 0;
    char line[512];
    int count = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        count += strstr(line, needle) != NULL;
    fclose(f);
    return count;
}

/* Counts the A queries dnsmasq logged for 'name' after making sure every earlier line is in
 * the file: a probe for a fresh name is logged after them, so wait for its line first. */
static int dns_queries_for(const char *name)
{
    char barrier[64], needle[300];
    snprintf(barrier, sizeof(barrier), "barrier%u.test", ++dns.barrier_seq);
    snprintf(needle, sizeof(needle), "query[A] %s ", barrier);
    assert_true(dns_probe(dns.port, barrier));
    for (int i = 0; i < 200 && log_count(needle) == 0; i++)
        usleep(10000);
    assert_int_equal(log_count(needle), 1);
    snprintf(needle, sizeof(needle), "query[A] %s ", name);
    return log_count(needle);
}

static int dnsmasq_start(void **state)
{
    if (access(DNSMASQ_BIN, X_OK) != 0)
        return 0; /* the tests that need it skip */
    snprintf(dns.dir, sizeof(dns.dir), "/tmp/geoproxy-dns-XXXXXX");
    if (mkdtemp(dns.dir) == NULL)
        return -1;
    snprintf(dns.log_path, sizeof(dns.log_path), "%s/dnsmasq.log", dns.dir);
    dns.port = free_port();
    if (dns.port == 0)
        return -1;

    char port_arg[32], log_arg[128];
    snprintf(port_arg, sizeof(port_arg), "--port=%u", dns.port);
    snprintf(log_arg, sizeof(log_arg), "--log-facility=%s", dns.log_path);
    char *argv[] = {
        DNSMASQ_BIN, "--keep-in-foreground", port_arg, "--listen-address=127.0.0.1",
        "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
        "--pid-file=", "--log-queries", log_arg, "--cache-size=0", "--local-ttl=60",
        /* names under test/ come only from here; anything else is REFUSED (no upstream) */
        "--local=/test/", "--address=/a.test/127.0.0.2", "--address=/c.test/127.0.0.4",
        "--address=/s.test/127.0.0.5", "--address=/ds.test/127.0.0.3", "--address=/ds.test/::1",
        "--address=/v6.test/::1", geteuid() == 0 ? "--user=root" : NULL, NULL};

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    int err = posix_spawn(&dns.pid, DNSMASQ_BIN, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err != 0) {
        dns.pid = -1;
        return -1;
    }
    for (int i = 0; i < 50; i++) {
        if (dns_probe(dns.port, "a.test"))
            return 0;
        usleep(100000);
    }
    fprintf(stderr, "dnsmasq did not answer on 127.0.0.1:%u\n", dns.port);
    return -1;
}

static int dnsmasq_stop(void **state)
{
    if (dns.pid > 0) {
        kill(dns.pid, SIGTERM);
        waitpid(dns.pid, NULL, 0);
        dns.pid = -1;
    }
    if (dns.dir[0] != '\0') {
        unlink(dns.log_path);
        rmdir(dns.dir);
    }
    return 0;
}

#define REQUIRE_DNSMASQ()                                                                          \
    do {                                                                                           \
        if (dns.pid <= 0)                                                                          \
            skip();                                                                                \
    } while (0)

/* ---- loop helpers ---- */

struct result {
    int calls;
    enum outbound_status status;
    struct resolver_answer answer;
    /* what the callback does besides recording */
    struct resolver *resolver;
    const char *resolve_name; /* resolve this name into *nested */
    struct result *nested;
    bool free_resolver;
};

static void on_result(void *arg, enum outbound_status status, const struct resolver_answer *a)
{
    struct result *res = arg;
    res->calls++;
    res->status = status;
    res->answer = *a;
    if (res->resolve_name != NULL)
        resolver_resolve(res->resolver, res->resolve_name, on_result, res->nested);
    if (res->free_resolver)
        resolver_free(res->resolver);
}

static bool guard_fired;

static void on_guard(uv_timer_t *t)
{
    guard_fired = true;
}

/* Runs the loop until *calls > 0 or max_ms passed (then returns anyway). */
static void run_until(uv_loop_t *loop, const int *calls, uint64_t max_ms)
{
    uv_timer_t guard;
    uv_timer_init(loop, &guard);
    guard_fired = false;
    uv_timer_start(&guard, on_guard, max_ms, 0);
    while ((calls == NULL || *calls == 0) && !guard_fired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* Frees the resolver, lets the loop close everything, and checks nothing is left. */
static void finish(uv_loop_t *loop, struct resolver *r)
{
    resolver_free(r);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static struct resolver *make_resolver(uv_loop_t *loop, uint16_t port, uint32_t timeout_ms,
                                      uint32_t cache_entries)
{
    static struct sockaddr_storage server;
    addr4(&server, "127.0.0.1", port);
    struct resolver_options opts = {
        .servers = &server,
        .n_servers = 1,
        .timeout_ms = timeout_ms,
        .cache_entries = cache_entries,
    };
    struct resolver *r = NULL;
    assert_int_equal(resolver_new(loop, &opts, &r), 0);
    assert_non_null(r);
    return r;
}

static void assert_addr(const struct sockaddr_storage *ss, int family, const char *ip)
{
    char buf[INET6_ADDRSTRLEN];
    assert_int_equal(ss->ss_family, family);
    const void *a = family == AF_INET ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
                                      : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
    assert_non_null(inet_ntop(family, a, buf, sizeof(buf)));
    assert_string_equal(buf, ip);
}

/* Resolves 'name' and runs the loop until the answer. */
static void resolve_wait(uv_loop_t *loop, struct resolver *r, const char *name, struct result *res)
{
    memset(res, 0, sizeof(*res));
    resolver_resolve(r, name, on_result, res);
    run_until(loop, &res->calls, 5000);
    assert_int_equal(res->calls, 1);
}

/* ---- pure parts ---- */

static void test_name_normalize(void **state)
{
    char label63[64], label64[65], long_name[260];
    memset(label63, 'a', 63);
    label63[63] = '\0';
    memset(label64, 'a', 64);
    label64[64] = '\0';
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    for (size_t i = 50; i < sizeof(long_name) - 1; i += 51)
        long_name[i] = '.';
    char name253[254];
    memcpy(name253, long_name, 253);
    name253[253] = '\0';
    char name254[255];
    memcpy(name254, long_name, 254);
    name254[254] = '\0';

    static const struct {
        const char *in;
        const char *out; /* NULL: rejected */
    } cases[] = {
        {"Example.COM", "example.com"},
        {"example.com.", "example.com"},
        {"a", "a"},
        {"_srv.x-y.test", "_srv.x-y.test"},
        {"", NULL},
        {".", NULL},
        {"a..b", NULL},
        {".a", NULL},
        {"a b", NULL},
        {"a\tb", NULL},
        {"a\\.b", NULL},
        {"a..", NULL},
    };
    char out[TARGET_HOST_MAX];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = resolver_name_normalize(cases[i].in, out, sizeof(out));
        if (cases[i].out == NULL) {
            assert_int_equal(n, -1);
        } else {
            assert_int_equal(n, (int)strlen(cases[i].out));
            assert_string_equal(out, cases[i].out);
        }
    }
    assert_int_equal(resolver_name_normalize(label63, out, sizeof(out)), 63);
    assert_int_equal(resolver_name_normalize(label64, out, sizeof(out)), -1);
    assert_int_equal(resolver_name_normalize(name253, out, sizeof(out)), 253);
    assert_int_equal(resolver_name_normalize(name254, out, sizeof(out)), -1);
    assert_int_equal(resolver_name_normalize("abcdef", out, 6), -1); /* no room for NUL */
}

static void test_addrs_order(void **state)
{
    static const struct {
        const char *in[20];
        const char *out[RESOLVER_MAX_ADDRS + 1];
    } cases[] = {
        {{"10.0.0.1", "10.0.0.2", "2001:db8::1", "2001:db8::2", "10.0.0.3"},
         {"2001:db8::1", "10.0.0.1", "2001:db8::2", "10.0.0.2", "10.0.0.3"}},
        {{"10.0.0.1", "10.0.0.2"}, {"10.0.0.1", "10.0.0.2"}},
        {{"2001:db8::2", "2001:db8::1"}, {"2001:db8::2", "2001:db8::1"}},
        {{"10.0.0.1", "10.0.0.1", "::1", "::1"}, {"::1", "10.0.0.1"}},
        {{NULL}, {NULL}},
        /* 12 + 8: 16 kept, alternating while both last */
        {{"::1",     "::2",     "::3",     "::4",     "::5",     "::6",     "::7",
          "::8",     "::9",     "::a",     "::b",     "::c",     "1.0.0.1", "1.0.0.2",
          "1.0.0.3", "1.0.0.4", "1.0.0.5", "1.0.0.6", "1.0.0.7", "1.0.0.8"},
         {"::1", "1.0.0.1", "::2", "1.0.0.2", "::3", "1.0.0.3", "::4", "1.0.0.4", "::5", "1.0.0.5",
          "::6", "1.0.0.6", "::7", "1.0.0.7", "::8", "1.0.0.8"}},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct sockaddr_storage in[20];
        size_t n = 0;
        for (; n < 20 && cases[c].in[n] != NULL; n++) {
            memset(&in[n], 0, sizeof(in[n]));
            struct sockaddr_in *sin = (struct sockaddr_in *)&in[n];
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&in[n];
            if (inet_pton(AF_INET, cases[c].in[n], &sin->sin_addr) == 1) {
                sin->sin_family = AF_INET;
            } else {
                assert_int_equal(inet_pton(AF_INET6, cases[c].in[n], &sin6->sin6_addr), 1);
                sin6->sin6_family = AF_INET6;
            }
        }
        struct resolver_answer out;
        resolver_addrs_order(in, n, &out);
        size_t want = 0;
        while (want <= RESOLVER_MAX_ADDRS && cases[c].out[want] != NULL)
            want++;
        assert_int_equal(out.n_addrs, want);
        for (size_t i = 0; i < want; i++)
            assert_addr(&out.addrs[i], strchr(cases[c].out[i], ':') ? AF_INET6 : AF_INET,
                        cases[c].out[i]);
    }
}

static const uint8_t test_key[16] = {7, 7, 7};

static struct resolver_answer answer_of(const char *ip)
{
    struct resolver_answer a = {.n_addrs = 1};
    memset(&a.addrs[0], 0, sizeof(a.addrs[0]));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.addrs[0];
        sin6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &sin6->sin6_addr);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&a.addrs[0];
        sin->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &sin->sin_addr);
    }
    return a;
}

static void test_cache_hit_expiry_replace(void **state)
{
    struct resolver_cache *c = resolver_cache_new(4, test_key);
    struct resolver_answer a = answer_of("192.0.2.1"), b = answer_of("2001:db8::5"), got;
    enum outbound_status st;

    assert_false(resolver_cache_get(c, "x.test", 0, &st, &got));
    assert_int_equal(resolver_cache_put(c, "x.test", OUTBOUND_OK, &a, 1000), 0);
    assert_true(resolver_cache_get(c, "x.test", 999, &st, &got));
    assert_int_equal(st, OUTBOUND_OK);
    assert_int_equal(got.n_addrs, 1);
    assert_addr(&got.addrs[0], AF_INET, "192.0.2.1");
    assert_false(resolver_cache_get(c, "y.test", 999, &st, &got));

    /* replacing keeps one entry */
    assert_int_equal(resolver_cache_put(c, "x.test", OUTBOUND_OK, &b, 2000), 0);
    assert_int_equal(resolver_cache_count(c), 1);
    assert_true(resolver_cache_get(c, "x.test", 1500, &st, &got));
    assert_addr(&got.addrs[0], AF_INET6, "2001:db8::5");

    /* expired entries are dropped when looked up */
    assert_false(resolver_cache_get(c, "x.test", 2000, &st, &got));
    assert_int_equal(resolver_cache_count(c), 0);

    /* negative entries */
    assert_int_equal(resolver_cache_put(c, "nx.test", OUTBOUND_DNS_NOT_FOUND, NULL, 500), 0);
    assert_true(resolver_cache_get(c, "nx.test", 100, &st, &got));
    assert_int_equal(st, OUTBOUND_DNS_NOT_FOUND);
    assert_int_equal(got.n_addrs, 0);
    resolver_cache_free(c);
    resolver_cache_free(NULL);
}

static void test_cache_evicts_least_recently_used(void **state)
{
    struct resolver_cache *c = resolver_cache_new(3, test_key);
    struct resolver_answer a = answer_of("192.0.2.1"), got;
    enum outbound_status st;

    assert_int_equal(resolver_cache_put(c, "a", OUTBOUND_OK, &a, 100), 0);
    assert_int_equal(resolver_cache_put(c, "b", OUTBOUND_OK, &a, 100), 0);
    assert_int_equal(resolver_cache_put(c, "c", OUTBOUND_OK, &a, 100), 0);
    assert_true(resolver_cache_get(c, "a", 0, &st, &got)); /* a is now the most recent */
    assert_int_equal(resolver_cache_put(c, "d", OUTBOUND_OK, &a, 100), 0);
    assert_int_equal(resolver_cache_count(c), 3);
    assert_false(resolver_cache_get(c, "b", 0, &st, &got));
    assert_true(resolver_cache_get(c, "a", 0, &st, &got));
    assert_true(resolver_cache_get(c, "c", 0, &st, &got));
    assert_true(resolver_cache_get(c, "d", 0, &st, &got));

    /* many names through a small cache stay bounded and findable */
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "n%d.test", i);
        assert_int_equal(resolver_cache_put(c, name, OUTBOUND_OK, &a, 100), 0);
        assert_true(resolver_cache_get(c, name, 0, &st, &got));
    }
    assert_int_equal(resolver_cache_count(c), 3);
    assert_true(resolver_cache_get(c, "n999.test", 0, &st, &got));
    assert_false(resolver_cache_get(c, "n996.test", 0, &st, &got));
    resolver_cache_free(c);

    /* capacity 0 stores nothing */
    c = resolver_cache_new(0, test_key);
    assert_int_equal(resolver_cache_put(c, "a", OUTBOUND_OK, &a, 100), 0);
    assert_false(resolver_cache_get(c, "a", 0, &st, &got));
    resolver_cache_free(c);
}

/* ---- the resolver without DNS ---- */

static void test_literals_answer_synchronously(void **state)
{
    static const struct {
        const char *host;
        int family;
        const char *ip;
    } cases[] = {
        {"127.0.0.1", AF_INET, "127.0.0.1"},
        {"192.0.2.77", AF_INET, "192.0.2.77"},
        {"::1", AF_INET6, "::1"},
        {"[2001:db8::1]", AF_INET6, "2001:db8::1"},
    };
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct resolver *r = make_resolver(&loop, 9, 500, 16);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct result res = {0};
        assert_null(resolver_resolve(r, cases[i].host, on_result, &res));
        assert_int_equal(res.calls, 1); /* before returning */
        assert_int_equal(res.status, OUTBOUND_OK);
        assert_int_equal(res.answer.n_addrs, 1);
        assert_addr(&res.answer.addrs[0], cases[i].family, cases[i].ip);
    }
    finish(&loop, r);
}

static void test_invalid_names_are_not_found(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct resolver *r = make_resolver(&loop, 9, 500, 16);
    static const char *names[] = {"", "a..b", "has space.test", "."};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct result res = {0};
        assert_null(resolver_resolve(r, names[i], on_result, &res));
        assert_int_equal(res.calls, 1);
        assert_int_equal(res.status, OUTBOUND_DNS_NOT_FOUND);
    }
    finish(&loop, r);
}

static void test_localhost_is_loopback_without_dns(void **state)
{
    REQUIRE_DNSMASQ(); /* any stray query goes to our dnsmasq, never to resolv.conf's server */
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct resolver *r = make_resolver(&loop, dns.port, 2000, 16);
    struct result res;
    resolve_wait(&loop, r, "localhost", &res);
    assert_int_equal(res.status, OUTBOUND_OK);
    bool has_loopback = false;
    for (size_t i = 0; i < res.answer.n_addrs; i++) {
        char buf[INET6_ADDRSTRLEN];
        const struct sockaddr_storage *ss = &res.answer.addrs[i];
        if (ss->ss_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, sizeof(buf));
        else
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, sizeof(buf));
        has_loopback |= strcmp(buf, "127.0.0.1") == 0 || strcmp(buf, "::1") == 0;
    }
    assert_true(has_loopback);
    assert_int_equal(dns_queries_for("localhost"), 0);

    /* RFC 6761: names under .localhost are loopback too, with no DNS query */
    resolve_wait(&loop, r, "App.LOCALHOST.", &res);
    assert_int_equal(res.status, OUTBOUND_OK);
    assert_int_equal(res.answer.n_addrs, 2);
    assert_int_equal(res.answer.addrs[0].ss_family, AF_INET6);
    assert_int_equal(res.answer.addrs[1].ss_family, AF_INET);
    assert_int_equal(dns_queries_for("app.localhost"), 0);
    assert_int_equal(dns_queries_for("App.LOCALHOST"), 0);
    finish(&loop, r);
}

/* A UDP socket that receives queries and never answers. */
static int silent_server(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    addr4(&ss, "127.0.0.1", 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static void test_silent_server_times_out(void **state)
{
    uint16_t port;
    int fd = silent_server(&port);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct resolver *r = make_resolver(&loop, port, 300, 16);

    uint64_t start = uv_hrtime();
    struct result res;
    resolve_wait(&loop, r, "slow.test", &res);
    uint64_t elapsed_ms = (uv_hrtime() - start) / 1000000;
    assert_int_equal(res.status, OUTBOUND_DNS_TIMEOUT);
    assert_true(elapsed_ms >= 250);
    assert_true(elapsed_ms < 3000);

    /* timeouts are not cached: the next query waits again */
    memset(&res, 0, sizeof(res));
    assert_non_null(resolver_resolve(r, "slow.test", on_result, &res));
    assert_int_equal(res.calls, 0);
    run_until(&loop, &res.calls, 5000);
    assert_int_equal(res.status, OUTBOUND_DNS_TIMEOUT);
    finish(&loop, r);
    close(fd);
}

/* Nothing listens on the server's port: the kernel's port-unreachable reaches c-ares as
 * ECONNREFUSED, a resolver error (DNS_FAILED) rather than a timeout. */
static void test_closed_server_port_is_dns_failed(void **state)
{
    uint16_t port;
    int fd = silent_server(&port);
    close(fd);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct resolver *r = make_resolver(&loop, port, 2000, 16);
    struct result res;
    resolve_wait(&loop, r, "x.test", &res);
    assert_int_equal(res.status, OUTBOUND_DNS_FAILED);
    finish(&loop, r);
}

static void test_free_with_queries_in_flight(void **state)
{
    uint16_t port;
    int fd = silent_server(&port);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct resolver *r = make_resolver(&loop, port, 300, 16);
    struct result res[3] = {0};
    assert_non_null(resolver_resolve(r, "one.test", on_result, &res[0]));
    assert_non_null(resolver_resolve(r, "one.test", on_result, &res[1]));
    assert_non_null(resolver_resolve(r, "two.test", on_result, &res[2]));
    uv_run(&loop, UV_RUN_NOWAIT);
    finish(&loop, r);
    for (int i = 0; i < 3; i++)
        assert_int_equal(res[i].calls, 0);
    close(fd);
}

static void test_cancel_then_timeout_passes(void **state)
{
    uint16_t port;
    int fd = silent_server(&port);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct resolver *r = make_resolver(&loop, port, 200, 16);
    struct result cancelled = {0}, kept = {0};
    struct resolver_query *q = resolver_resolve(r, "x.test", on_result, &cancelled);
    assert_non_null(resolver_resolve(r, "x.test", on_result, &kept));
    assert_non_null(q);
    resolver_cancel(q);
    run_until(&loop, &kept.calls, 3000);
    assert_int_equal(kept.status, OUTBOUND_DNS_TIMEOUT);
    run_until(&loop, NULL, 300); /* c-ares' own retries end too */
    assert_int_equal(cancelled.calls, 0);
    finish(&loop, r);
    close(fd);
}

/* ---- against dnsmasq ---- */

static void test_resolves_a_record(void **state)
{
    REQUIRE_DNSMASQ();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct resolver *r = make_resolver(&loop, dns.port, 2000, 16);
    struct result res;
    resolve_wait(&loop, r, "a.test", &res);
    assert_int_equal(res.status, OUTBOUND_OK);
    assert_int_equal(res.answer.n_addrs, 1);
    assert_addr(&res.answer.addrs[0], AF_INET, "127.0.0.2");
    assert_int_equal(((struct sockaddr_in *)&res.answer.addrs[0])->sin_port, 0);
    finish(&loop, r);
}

static void test_dual_stack_gives_ipv6_first(void **state)
{
    REQUIRE_DNSMASQ();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct resolver *r = make_resolver(&loop, dns.port, 2000, 16);
    struct result res;
    resolve_wait(&loop, r, "DS.test", &res);
    assert_int_equal(res.status, OUTBOUND_OK);
    assert_int_equal(res.answer.n_addrs, 2);
    assert_addr(&res.answer.addrs[0], AF_INET6, "::1");
    assert_addr(&res.answer.addrs[1], AF_INET, "127.0.0.3");

    resolve_wait(&loop, r, "v6.test", &res);
    assert_int_equal(res.status, OUTBOUND_OK);
    assert_int_equal(res.answer.n_addrs, 1);
    assert_addr(&res.answer.addrs[0], AF_INET6, "::1");
    finish(&loop, r);
}

static void test_nxdomain_is_not_found_and_cached(void **state)
{
    REQUIRE_DNSMASQ();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct resolver *r = make_resolver(&loop, dns.port, 2000, 16);
    struct result res;
    int before = dns_queries_for("nope.test");
    resolve_wait(&loop, r, "nope.test", &res);
    assert_int_equal(res.status, OUTBOUND_DNS_NOT_FOUND);
    assert_int_equal(res.answer.n_addrs, 0);

    memset(&res, 0, sizeof(res));
    assert_null(resolver_resolve(r, "nope.test", on_result, &res));
    assert_int_equal(res.calls, 1);
    assert_int_equal(res.status, OUTBOUND_DNS_NOT_FOUND);
    assert_int_equal(dns_queries_for("nope.test"), before + 1);
    finish(&loop, r);
}

/* dnsmasq without upstream servers answers REFUSED for names outside its own: the resolver
 * answered with an error, which is DNS_FAILED (not NOT_FOUND: the name may well exist). */
static void test_refused_is_dns_failed(void **state)
{
    REQUIRE_DNSMASQ();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct resolver *r = make_resolver(&loop, dns.port, 2000, 16);
    struct result res;
    resolve_wait(&loop, r, "unknown.example", &res);
    assert_int_equal(res.status, OUTBOUND_DNS_FAILED);

    /* failures are not cached */
    memset(&res, 0, sizeof(res));
    assert_non_null(resolver_resolve(r, "unknown.example", on_result, &res));
    run_until(&loop, &res.calls, 5000);
    assert_int_equal(res.status, OUTBOUND_DNS_FAILED);
    finish(&loop, r);
}

static void test_cache_answers_without_query(void **state)
{
    REQUIRE_DNSMASQ();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct resolver *r = make_resolver(&loop, dns.port, 2000, 16);
    int before = dns_queries_for("c.test");
    struct result res;
    resolve_wait(&loop, r, "c.test", &res);
    assert_int_equal(res.status, OUTBOUND_OK);

    memset(&res, 0, sizeof(res));
    assert_null(resolver_resolve(r, "C.Test.", on_result, &res)); /* same key */
    assert_int_equal(res.calls, 1);
    assert_int_equal(res.status, OUTBOUND_OK);
    assert_addr(&res.answer.addrs[0], AF_INET, "127.0.0.4");
    assert_int_equal(dns_queries_for("c.test"), before + 1);
    finish(&loop, r);

    /* without a cache the same two lookups make two queries: the count above can fail */
    uv_loop_init(&loop);
    r = make_resolver(&loop, dns.port, 2000, 0);
    before = dns_queries_for("c.test");
    resolve_wait(&loop, r, "c.test", &res);
    resolve_wait(&loop, r, "c.test", &res);
    assert_int_equal(res.status, OUTBOUND_OK);
    assert_int_equal(dns_queries_for("c.test"), before + 2);
    finish(&loop, r);
}

static void test_concurrent_queries_share_a_lookup(void **state)
{
    REQUIRE_DNSMASQ();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct resolver *r = make_resolver(&loop, dns.port, 2000, 0);
    int before = dns_queries_for("s.test");
    struct result res[3] = {0};
    for (int i = 0; i < 3; i++)
        assert_non_null(resolver_resolve(r, "s.test", on_result, &res[i]));
    for (int i = 0; i < 3; i++) {
        run_until(&loop, &res[i].calls, 5000);
        assert_int_equal(res[i].calls, 1);
        assert_int_equal(res[i].status, OUTBOUND_OK);
        assert_addr(&res[i].answer.addrs[0], AF_INET, "127.0.0.5");
    }
    assert_int_equal(dns_queries_for("s.test"), before + 1);
    finish(&loop, r);
}

static void test_cancel_prevents_callback(void **state)
{
    REQUIRE_DNSMASQ();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct resolver *r = make_resolver(&loop, dns.port, 2000, 16);
    struct result cancelled = {0}, other = {0}, later = {0};
    struct resolver_query *q = resolver_resolve(r, "a.test", on_result, &cancelled);
    assert_non_null(q);
    assert_non_null(resolver_resolve(r, "a.test", on_result, &other));
    resolver_cancel(q);
    run_until(&loop, &other.calls, 5000);
    assert_int_equal(other.status, OUTBOUND_OK);
    assert_int_equal(cancelled.calls, 0);

    /* the only waiter cancelled: the answer still arrives and is cached, silently */
    q = resolver_resolve(r, "ds.test", on_result, &cancelled);
    assert_non_null(q);
    resolver_cancel(q);
    run_until(&loop, NULL, 300);
    assert_int_equal(cancelled.calls, 0);
    assert_null(resolver_resolve(r, "ds.test", on_result, &later));
    assert_int_equal(later.calls, 1);
    finish(&loop, r);
}

static void test_reentrant_callbacks(void **state)
{
    REQUIRE_DNSMASQ();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct resolver *r = make_resolver(&loop, dns.port, 2000, 16);

    /* a callback that starts another lookup */
    struct result nested = {0};
    struct result first = {.resolver = r, .resolve_name = "v6.test", .nested = &nested};
    resolver_resolve(r, "a.test", on_result, &first);
    run_until(&loop, &nested.calls, 5000);
    assert_int_equal(first.status, OUTBOUND_OK);
    assert_int_equal(nested.status, OUTBOUND_OK);

    /* a callback that frees the resolver while another query waits on the same lookup */
    struct result freeing = {.resolver = r, .free_resolver = true}, dropped = {0};
    assert_non_null(resolver_resolve(r, "s.test", on_result, &freeing));
    assert_non_null(resolver_resolve(r, "s.test", on_result, &dropped));
    run_until(&loop, &freeing.calls, 5000);
    assert_int_equal(freeing.calls, 1); /* first come, first called */
    assert_int_equal(dropped.calls, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);

    /* a synchronous (cache hit) callback that frees the resolver */
    uv_loop_init(&loop);
    r = make_resolver(&loop, dns.port, 2000, 16);
    struct result warm;
    resolve_wait(&loop, r, "a.test", &warm);
    struct result sync_free = {.resolver = r, .free_resolver = true};
    assert_null(resolver_resolve(r, "a.test", on_result, &sync_free));
    assert_int_equal(sync_free.calls, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_normalize),
        cmocka_unit_test(test_addrs_order),
        cmocka_unit_test(test_cache_hit_expiry_replace),
        cmocka_unit_test(test_cache_evicts_least_recently_used),
        cmocka_unit_test(test_literals_answer_synchronously),
        cmocka_unit_test(test_invalid_names_are_not_found),
        cmocka_unit_test(test_silent_server_times_out),
        cmocka_unit_test(test_closed_server_port_is_dns_failed),
        cmocka_unit_test(test_free_with_queries_in_flight),
        cmocka_unit_test(test_cancel_then_timeout_passes),
        cmocka_unit_test(test_localhost_is_loopback_without_dns),
        cmocka_unit_test(test_resolves_a_record),
        cmocka_unit_test(test_dual_stack_gives_ipv6_first),
        cmocka_unit_test(test_nxdomain_is_not_found_and_cached),
        cmocka_unit_test(test_refused_is_dns_failed),
        cmocka_unit_test(test_cache_answers_without_query),
        cmocka_unit_test(test_concurrent_queries_share_a_lookup),
        cmocka_unit_test(test_cancel_prevents_callback),
        cmocka_unit_test(test_reentrant_callbacks),
    };
    return cmocka_run_group_tests(tests, dnsmasq_start, dnsmasq_stop);
}
