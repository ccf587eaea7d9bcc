/* Unit tests for the configuration language (policy/config.c and its helpers). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/config.h"
#include "policy/userdb.h"

#define BASE "listen mixed 127.0.0.1:1080\nrule all pass\n"

/* ---- helpers ---- */

static char *tmpdir_new(void)
{
    char *dir = strdup("/tmp/geoproxy-test-config-XXXXXX");

    assert_non_null(dir);
    assert_non_null(mkdtemp(dir));
    return dir;
}

static int tmpdir_remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void tmpdir_free(char *dir)
{
    nftw(dir, tmpdir_remove_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static char *path_in(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *path = malloc(len);

    assert_non_null(path);
    snprintf(path, len, "%s/%s", dir, name);
    return path;
}

static void write_bytes(const char *dir, const char *name, const char *data, size_t len,
                        mode_t mode)
{
    char *path = path_in(dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
    free(path);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    write_bytes(dir, name, text, strlen(text), 0600);
}

/* All diagnostics as "E text\n" / "W text\n" lines, for one readable comparison. */
static char *diags_join(const struct config_diags *d)
{
    size_t cap = CONFIG_MAX_DIAGS * (CONFIG_DIAG_TEXT_MAX + 4) + 1;
    char *out = malloc(cap);
    size_t used = 0;
    size_t i;

    assert_non_null(out);
    out[0] = '\0';
    for (i = 0; i < d->count; i++) {
        int n = snprintf(out + used, cap - used, "%c %s\n",
                         d->items[i].severity == CONFIG_ERROR ? 'E' : 'W', d->items[i].text);

        assert_true(n > 0);
        used += (size_t)n;
    }
    return out;
}

static void assert_diags(const struct config_diags *d, const char *expected)
{
    char *actual = diags_join(d);

    assert_string_equal(actual, expected);
    free(actual);
}

static void assert_diags_for(const struct config_diags *d, const char *expected, const char *input)
{
    char *actual = diags_join(d);

    if (strcmp(actual, expected) != 0) {
        print_error("input:\n%s", input);
    }
    assert_string_equal(actual, expected);
    free(actual);
}

static struct config *load_ok(const char *text)
{
    struct config_diags diags;
    struct config *cfg = NULL;
    int rc = config_load_string("t.conf", text, NULL, &cfg, &diags);

    if (rc != 0) {
        char *all = diags_join(&diags);

        print_error("unexpected diagnostics:\n%s", all);
        free(all);
    }
    assert_int_equal(rc, 0);
    assert_non_null(cfg);
    assert_int_equal(diags.errors, 0);
    return cfg;
}

static uint16_t addr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    }
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static const char *addr_text(const struct sockaddr_storage *ss, char *buf)
{
    return config_format_addr(ss, buf, 64);
}

/* ---- good configurations ---- */

static void test_defaults(void **state)
{
    struct config *cfg = load_ok(BASE);
    char buf[64];

    (void)state;
    assert_string_equal(cfg->path, "t.conf");
    assert_int_equal(cfg->workers, 0);
    assert_int_equal(cfg->timeouts.handshake_ms, 10000);
    assert_int_equal(cfg->timeouts.connect_ms, 10000);
    assert_int_equal(cfg->timeouts.dns_ms, 5000);
    assert_int_equal(cfg->timeouts.idle_ms, 300000);
    assert_int_equal(cfg->timeouts.drain_ms, 30000);
    assert_int_equal(cfg->limits.connections, 10000);
    assert_int_equal(cfg->limits.header_bytes, 16384);
    assert_int_equal(cfg->limits.dns_cache_entries, 4096);
    assert_int_equal(cfg->limits.per_client_connections, 256);
    assert_int_equal(cfg->limits.per_client_rate, 0);
    assert_string_equal(cfg->run_user, "");
    assert_string_equal(cfg->run_group, "");
    assert_int_equal(cfg->n_resolvers, 0);
    assert_int_equal(cfg->n_listeners, 1);
    assert_string_equal(cfg->listeners[0].name, "mixed-127.0.0.1:1080");
    assert_int_equal(cfg->listeners[0].kind, LISTENER_MIXED);
    assert_string_equal(addr_text(&cfg->listeners[0].addr, buf), "127.0.0.1:1080");
    assert_null(cfg->listeners[0].users);
    assert_null(cfg->listeners[0].users_path);
    assert_int_equal(cfg->n_rules, 1);
    assert_string_equal(cfg->rules[0].name, "all");
    assert_int_equal(cfg->rules[0].action, RULE_PASS);
    assert_int_equal(cfg->rules[0].log, LOG_LEVEL_META);
    assert_null(cfg->rules[0].reason);
    assert_string_equal(cfg->rules[0].file, "t.conf");
    assert_int_equal(cfg->rules[0].line, 2);
    config_free(cfg);
}

static void test_every_directive(void **state)
{
    static const char text[] =
        "# geoproxy test configuration\r\n"
        "workers 4\r\n"
        "\n"
        "listen mixed 127.0.0.1:1080 name main   # the default listener\n"
        "listen\tsocks5 [::1]:1081\n"
        "listen socks4 127.0.0.2:1082 name legacy\n"
        "listen http [::1]:8080 name web\n"
        "resolver 1.1.1.1 9.9.9.9:5353 [2001:4860:4860::8888] [::1]:5300\n"
        "timeout handshake 250ms\n"
        "timeout connect 3s\n"
        "timeout dns 2\n"
        "timeout idle 5m\n"
        "timeout drain 1h\n"
        "limit connections 500\n"
        "limit header-bytes 1024\n"
        "limit dns-cache 0\n"
        "rule local-block block reason \"say \\\"no\\\" \\\\ # not a comment\" log full\n"
        "rule quiet block log none\n"
        "\"rule\" \"all\" pass log meta\n";
    struct config *cfg = load_ok(text);
    const struct sockaddr_in6 *v6;
    char buf[64];

    (void)state;
    assert_int_equal(cfg->workers, 4);
    assert_int_equal(cfg->n_listeners, 4);
    assert_string_equal(cfg->listeners[0].name, "main");
    assert_string_equal(cfg->listeners[1].name, "socks5-[::1]:1081");
    assert_int_equal(cfg->listeners[1].kind, LISTENER_SOCKS5);
    assert_int_equal(cfg->listeners[1].addr.ss_family, AF_INET6);
    v6 = (const struct sockaddr_in6 *)&cfg->listeners[1].addr;
    assert_true(IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr));
    assert_int_equal(addr_port(&cfg->listeners[1].addr), 1081);
    assert_string_equal(cfg->listeners[2].name, "legacy");
    assert_int_equal(cfg->listeners[2].kind, LISTENER_SOCKS4);
    assert_string_equal(cfg->listeners[3].name, "web");
    assert_int_equal(cfg->listeners[3].kind, LISTENER_HTTP);
    assert_string_equal(addr_text(&cfg->listeners[3].addr, buf), "[::1]:8080");

    assert_int_equal(cfg->n_resolvers, 4);
    assert_string_equal(addr_text(&cfg->resolvers[0], buf), "1.1.1.1:53");
    assert_string_equal(addr_text(&cfg->resolvers[1], buf), "9.9.9.9:5353");
    assert_string_equal(addr_text(&cfg->resolvers[2], buf), "[2001:4860:4860::8888]:53");
    assert_string_equal(addr_text(&cfg->resolvers[3], buf), "[::1]:5300");

    assert_int_equal(cfg->timeouts.handshake_ms, 250);
    assert_int_equal(cfg->timeouts.connect_ms, 3000);
    assert_int_equal(cfg->timeouts.dns_ms, 2000);
    assert_int_equal(cfg->timeouts.idle_ms, 300000);
    assert_int_equal(cfg->timeouts.drain_ms, 3600000);
    assert_int_equal(cfg->limits.connections, 500);
    assert_int_equal(cfg->limits.header_bytes, 1024);
    assert_int_equal(cfg->limits.dns_cache_entries, 0);

    assert_int_equal(cfg->n_rules, 3);
    assert_string_equal(cfg->rules[0].name, "local-block");
    assert_int_equal(cfg->rules[0].action, RULE_BLOCK);
    assert_string_equal(cfg->rules[0].reason, "say \"no\" \\ # not a comment");
    assert_int_equal(cfg->rules[0].log, LOG_LEVEL_FULL);
    assert_int_equal(cfg->rules[0].line, 17);
    assert_string_equal(cfg->rules[1].name, "quiet");
    assert_null(cfg->rules[1].reason);
    assert_int_equal(cfg->rules[1].log, LOG_LEVEL_NONE);
    assert_string_equal(cfg->rules[2].name, "all");
    assert_int_equal(cfg->rules[2].action, RULE_PASS);
    assert_int_equal(cfg->rules[2].log, LOG_LEVEL_META);
    config_free(cfg);
}

static void test_durations(void **state)
{
    static const struct {
        const char *value;
        uint32_t ms;
    } cases[] = {
        {"1ms", 1},          {"250ms", 250},           {"1s", 1000},     {"10s", 10000},
        {"7", 7000},         {"5m", 300000},           {"1h", 3600000},  {"24h", 86400000},
        {"86400", 86400000}, {"86400000ms", 86400000}, {"0010s", 10000}, {"1440m", 86400000},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        struct config *cfg;

        snprintf(text, sizeof text, BASE "timeout idle %s\n", cases[i].value);
        cfg = load_ok(text);
        assert_int_equal(cfg->timeouts.idle_ms, cases[i].ms);
        config_free(cfg);
    }
}

static void test_workers(void **state)
{
    static const struct {
        const char *value;
        unsigned workers;
    } cases[] = {{"auto", 0}, {"0", 0}, {"1", 1}, {"16", 16}, {"256", 256}};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        struct config *cfg;

        snprintf(text, sizeof text, "workers %s\n" BASE, cases[i].value);
        cfg = load_ok(text);
        assert_int_equal(cfg->workers, cases[i].workers);
        config_free(cfg);
    }
}

static void test_resolver_system_and_limits(void **state)
{
    struct config *cfg =
        load_ok(BASE "resolver system\nlimit connections 1000000\nlimit header-bytes 1048576\n"
                     "limit dns-cache 1000000\n");

    (void)state;
    assert_int_equal(cfg->n_resolvers, 0);
    assert_int_equal(cfg->limits.connections, 1000000);
    assert_int_equal(cfg->limits.header_bytes, 1048576);
    assert_int_equal(cfg->limits.dns_cache_entries, 1000000);
    config_free(cfg);
}

static void test_per_client_limits_and_account(void **state)
{
    static const struct {
        const char *text;
        uint32_t conns, rate;
    } cases[] = {
        {"limit per-client-connections 0\n", 0, 0},
        {"limit per-client-connections 1000000\n", 1000000, 0},
        {"limit per-client-rate 1/s\n", 256, 1},
        {"limit per-client-rate 1000000/s\n", 256, 1000000},
        {"limit per-client-rate off\nlimit per-client-connections 8\n", 8, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, BASE "%s", cases[i].text);
        struct config *cfg = load_ok(text);
        assert_int_equal(cfg->limits.per_client_connections, cases[i].conns);
        assert_int_equal(cfg->limits.per_client_rate, cases[i].rate);
        config_free(cfg);
    }
    struct config *cfg = load_ok("user nobody\ngroup nogroup\n" BASE);
    assert_string_equal(cfg->run_user, "nobody");
    assert_string_equal(cfg->run_group, "nogroup");
    config_free(cfg);
    cfg = load_ok(BASE "user _geo-proxy.1\n");
    assert_string_equal(cfg->run_user, "_geo-proxy.1");
    assert_string_equal(cfg->run_group, "");
    config_free(cfg);
}

static void test_wildcard_listeners_on_other_ports(void **state)
{
    struct config *cfg = load_ok("listen mixed 127.0.0.1:1080\nlisten mixed [::1]:1080\n"
                                 "listen http 127.0.0.2:8080\nrule r pass\n");

    (void)state;
    assert_int_equal(cfg->n_listeners, 3);
    assert_string_equal(cfg->listeners[1].name, "mixed-[::1]:1080");
    config_free(cfg);
}

static void test_kind_names_and_format(void **state)
{
    struct sockaddr_storage ss;
    char buf[64];

    (void)state;
    assert_string_equal(config_listener_kind_name(LISTENER_MIXED), "mixed");
    assert_string_equal(config_listener_kind_name(LISTENER_SOCKS5), "socks5");
    assert_string_equal(config_listener_kind_name(LISTENER_SOCKS4), "socks4");
    assert_string_equal(config_listener_kind_name(LISTENER_HTTP), "http");
    memset(&ss, 0, sizeof ss);
    assert_string_equal(config_format_addr(&ss, buf, sizeof buf), "(no address)");
    config_free(NULL);
}

/* ---- diagnostics ---- */

struct bad_case {
    const char *text;
    const char *expected; /* every diagnostic, "E " or "W " then the text, one per line */
};

static const struct bad_case bad_cases[] = {
    /* directives */
    {"workers 2\nrule r pass\nlisten sock5 127.0.0.1:1080\n",
     "E t.conf:3:8: unknown listener kind 'sock5' (expected mixed, socks5, socks4, http or "
     "tunnel)\n"},
    {BASE "lisen mixed 127.0.0.1:1081\n",
     "E t.conf:3:1: unknown directive 'lisen' (did you mean 'listen'?)\n"},
    {BASE "  Listen mixed 127.0.0.1:1081\n",
     "E t.conf:3:3: unknown directive 'Listen' (did you mean 'listen'?)\n"},
    {BASE "rlue r2 pass\n", "E t.conf:3:1: unknown directive 'rlue' (did you mean 'rule'?)\n"},
    {BASE "timeuot idle 5s\n",
     "E t.conf:3:1: unknown directive 'timeuot' (did you mean 'timeout'?)\n"},
    {BASE "frobnicate 1\n", "E t.conf:3:1: unknown directive 'frobnicate'\n"},
    {BASE "upstrem x\n", "E t.conf:3:1: unknown directive 'upstrem' (did you mean 'upstream'?)\n"},

    /* listen */
    {BASE "listen\n", "E t.conf:3:7: missing listener kind (expected mixed, socks5, socks4, "
                      "http or tunnel)\n"},
    {BASE "listen mixed\n", "E t.conf:3:13: missing listen address (expected ADDRESS:PORT)\n"},
    {BASE "listen mixed 127.0.0.1\n", "E t.conf:3:23: missing port (expected ADDRESS:PORT)\n"},
    {BASE "listen mixed 127.0.0.1:\n", "E t.conf:3:24: missing port after ':'\n"},
    {BASE "listen mixed 127.0.0.1:0\n",
     "E t.conf:3:24: port must be between 1 and 65535, got '0'\n"},
    {BASE "listen mixed 127.0.0.1:65536\n",
     "E t.conf:3:24: port must be between 1 and 65535, got '65536'\n"},
    {BASE "listen mixed 127.0.0.1:99999999999999999999999\n",
     "E t.conf:3:24: port must be between 1 and 65535, got '99999999999999999999999'\n"},
    {BASE "listen mixed 127.0.0.1:http\n", "E t.conf:3:24: invalid port 'http'\n"},
    {BASE "listen mixed :1081\n", "E t.conf:3:14: missing IP address before ':'\n"},
    {BASE "listen mixed localhost:1081\n",
     "E t.conf:3:14: 'localhost' is not an IP address (host names are not allowed here)\n"},
    {BASE "listen mixed 1.2.3:1081\n",
     "E t.conf:3:14: '1.2.3' is not an IP address (host names are not allowed here)\n"},
    {BASE "listen mixed ::1:1081\n",
     "E t.conf:3:14: IPv6 addresses must be written in brackets, e.g. [::1]:1080\n"},
    {BASE "listen mixed [::1\n", "E t.conf:3:14: missing ']' after IPv6 address '[::1'\n"},
    {BASE "listen mixed [::g]:1081\n", "E t.conf:3:15: invalid IPv6 address '::g'\n"},
    {BASE "listen mixed []:1081\n", "E t.conf:3:15: invalid IPv6 address ''\n"},
    {BASE "listen mixed [::1]\n", "E t.conf:3:19: missing port (expected [IPv6]:PORT)\n"},
    {BASE "listen mixed [::1]x\n", "E t.conf:3:19: expected ':' and a port after ']', got 'x'\n"},
    {BASE "listen mixed 127.0.0.1:1081 nmae x\n",
     "E t.conf:3:29: unknown option 'nmae' for 'listen' (did you mean 'name'?)\n"},
    {BASE "listen mixed 127.0.0.1:1081 color x\n",
     "E t.conf:3:29: unknown option 'color' for 'listen' (expected name, users, cert, key or "
     "ca)\n"},
    {BASE "listen mixed 127.0.0.1:1081 name a name b\n",
     "E t.conf:3:36: option 'name' given twice\n"},
    {BASE "listen mixed 127.0.0.1:1081 name\n", "E t.conf:3:33: missing value after 'name'\n"},
    {BASE "listen mixed 127.0.0.1:1081 name \"a b\"\n",
     "E t.conf:3:34: invalid listener name 'a b' (use 1 to 63 letters, digits, '.', '_' or '-', "
     "starting with a letter or digit)\n"},
    {BASE "listen mixed 127.0.0.1:1081 name -x\n",
     "E t.conf:3:34: invalid listener name '-x' (use 1 to 63 letters, digits, '.', '_' or '-', "
     "starting with a letter or digit)\n"},
    {BASE "listen mixed 127.0.0.1:1081 name "
          "a234567890123456789012345678901234567890123456789012345678901234\n",
     "E t.conf:3:34: invalid listener name "
     "'a23456789012345678901234567890123456789012345678...' (use 1 to 63 letters, digits, '.', "
     "'_' or '-', starting with a letter or digit)\n"},
    {BASE "listen socks4 127.0.0.1:1081 users u.txt\n",
     "E t.conf:3:30: socks4 listeners cannot have users: SOCKS4 has no passwords (use socks5 or "
     "mixed)\n"},
    {BASE "listen mixed 127.0.0.1:1081 users \"\"\n", "E t.conf:3:35: empty users file path\n"},
    {"listen mixed 127.0.0.1:1080 name main\nlisten http 127.0.0.1:8080 name main\nrule r pass\n",
     "E t.conf:2:33: duplicate listener name 'main' (first defined at t.conf:1)\n"},
    {BASE "listen http 127.0.0.1:1080\n",
     "E t.conf:3:13: listener address 127.0.0.1:1080 is already used by listener "
     "'mixed-127.0.0.1:1080' (t.conf:1)\n"},
    /* open proxies: a non-loopback listener needs users */
    {BASE "listen http 0.0.0.0:3128\n",
     "E t.conf:3:13: a listener on 0.0.0.0:3128 without 'users FILE' is an open proxy for anyone "
     "who can reach it: add 'users FILE' or listen on a loopback address\n"},
    {BASE "listen socks5 [2001:db8::1]:1080 name pub\n",
     "E t.conf:3:15: a listener on [2001:db8::1]:1080 without 'users FILE' is an open proxy for "
     "anyone who can reach it: add 'users FILE' or listen on a loopback address\n"},
    {BASE "listen http 0.0.0.0:1080\n",
     "E t.conf:3:13: listener address 0.0.0.0:1080 overlaps 127.0.0.1:1080 of listener "
     "'mixed-127.0.0.1:1080' (t.conf:1)\n"},
    {"listen mixed [::]:1080\nlisten http [::1]:1080 name x\nrule r pass\n",
     "E t.conf:1:14: a listener on [::]:1080 without 'users FILE' is an open proxy for anyone "
     "who can reach it: add 'users FILE' or listen on a loopback address\n"},

    /* workers */
    {BASE "workers\n",
     "E t.conf:3:8: missing value after 'workers' (expected auto or a number from 1 to 256)\n"},
    {BASE "workers many\n",
     "E t.conf:3:9: expected 'auto' or a number for 'workers', got 'many'\n"},
    {BASE "workers -1\n", "E t.conf:3:9: expected 'auto' or a number for 'workers', got '-1'\n"},
    {BASE "workers 257\n",
     "E t.conf:3:9: 'workers' must be 'auto' or a number from 1 to 256, got '257'\n"},
    {BASE "workers 4 5\n", "E t.conf:3:11: unexpected extra argument '5' for 'workers'\n"},
    {BASE "workers 2\nworkers 3\n", "E t.conf:4:1: 'workers' is already set at t.conf:3\n"},

    /* timeout */
    {BASE "timeout\n", "E t.conf:3:8: missing timeout name (expected handshake, connect, dns, "
                       "idle or drain)\n"},
    {BASE "timeout conect 5s\n",
     "E t.conf:3:9: unknown timeout 'conect' (did you mean 'connect'?)\n"},
    {BASE "timeout read 5s\n", "E t.conf:3:9: unknown timeout 'read' (expected handshake, "
                               "connect, dns, idle or drain)\n"},
    {BASE "timeout idle\n", "E t.conf:3:13: missing duration after 'timeout idle' (e.g. 10s)\n"},
    {BASE "timeout idle 5x\n", "E t.conf:3:14: invalid duration '5x' (expected a number with ms, "
                               "s, m or h, e.g. 10s)\n"},
    {BASE "timeout idle 1.5s\n", "E t.conf:3:14: invalid duration '1.5s' (expected a number with "
                                 "ms, s, m or h, e.g. 10s)\n"},
    {BASE "timeout idle s\n", "E t.conf:3:14: invalid duration 's' (expected a number with ms, "
                              "s, m or h, e.g. 10s)\n"},
    {BASE "timeout idle 10S\n", "E t.conf:3:14: invalid duration '10S' (expected a number with "
                                "ms, s, m or h, e.g. 10s)\n"},
    {BASE "timeout idle 0\n", "E t.conf:3:14: 'timeout idle' must be from 1ms to 24h, got '0'\n"},
    {BASE "timeout idle 0ms\n",
     "E t.conf:3:14: 'timeout idle' must be from 1ms to 24h, got '0ms'\n"},
    {BASE "timeout idle 25h\n",
     "E t.conf:3:14: 'timeout idle' must be from 1ms to 24h, got '25h'\n"},
    {BASE "timeout idle 86400001ms\n",
     "E t.conf:3:14: 'timeout idle' must be from 1ms to 24h, got '86400001ms'\n"},
    {BASE "timeout idle 99999999999999999999h\n",
     "E t.conf:3:14: 'timeout idle' must be from 1ms to 24h, got '99999999999999999999h'\n"},
    {BASE "timeout idle 10s 5s\n", "E t.conf:3:18: unexpected extra argument '5s' for 'timeout'\n"},
    {BASE "timeout dns 1s\ntimeout dns 2s\n",
     "E t.conf:4:1: 'timeout dns' is already set at t.conf:3\n"},

    /* limit */
    {BASE "limit\n", "E t.conf:3:6: missing limit name (expected connections, header-bytes, "
                     "dns-cache, per-client-connections or per-client-rate)\n"},
    {BASE "limit conections 5\n",
     "E t.conf:3:7: unknown limit 'conections' (did you mean 'connections'?)\n"},
    {BASE "limit connections\n", "E t.conf:3:18: missing number after 'limit connections'\n"},
    {BASE "limit connections x\n",
     "E t.conf:3:19: expected a number for 'limit connections', got 'x'\n"},
    {BASE "limit connections 0\n",
     "E t.conf:3:19: 'limit connections' must be a number from 1 to 1000000, got '0'\n"},
    {BASE "limit connections 1000001\n",
     "E t.conf:3:19: 'limit connections' must be a number from 1 to 1000000, got '1000001'\n"},
    {BASE "limit header-bytes 1023\n",
     "E t.conf:3:20: 'limit header-bytes' must be a number from 1024 to 1048576, got '1023'\n"},
    {BASE "limit dns-cache 1000001\n",
     "E t.conf:3:17: 'limit dns-cache' must be a number from 0 to 1000000, got '1000001'\n"},
    {BASE "limit dns-cache 1 2\n", "E t.conf:3:19: unexpected extra argument '2' for 'limit'\n"},
    {BASE "limit dns-cache 1\nlimit dns-cache 2\n",
     "E t.conf:4:1: 'limit dns-cache' is already set at t.conf:3\n"},
    {BASE "limit per-client-connections 1000001\n",
     "E t.conf:3:30: 'limit per-client-connections' must be a number from 0 to 1000000, got "
     "'1000001'\n"},
    {BASE "limit per-client-conections 5\n", "E t.conf:3:7: unknown limit 'per-client-conections' "
                                             "(did you mean 'per-client-connections'?)\n"},
    {BASE "limit per-client-rate\n",
     "E t.conf:3:22: missing rate (e.g. 20/s) after 'limit per-client-rate'\n"},
    {BASE "limit per-client-rate 20\n",
     "E t.conf:3:23: expected a rate like 20/s (new connections per second) or 'off' for "
     "'limit per-client-rate', got '20'\n"},
    {BASE "limit per-client-rate /s\n",
     "E t.conf:3:23: expected a rate like 20/s (new connections per second) or 'off' for "
     "'limit per-client-rate', got '/s'\n"},
    {BASE "limit per-client-rate x/s\n",
     "E t.conf:3:23: expected a number before '/s' for 'limit per-client-rate', got 'x/s'\n"},
    {BASE "limit per-client-rate 0/s\n",
     "E t.conf:3:23: 'limit per-client-rate' must be a rate from 1/s to 1000000/s, got '0/s'\n"},
    {BASE "limit per-client-rate 5/s\nlimit per-client-rate off\n",
     "E t.conf:4:1: 'limit per-client-rate' is already set at t.conf:3\n"},

    /* user, group */
    {BASE "user\n", "E t.conf:3:5: missing user name after 'user'\n"},
    {BASE "user a b\n", "E t.conf:3:8: unexpected extra argument 'b' for 'user'\n"},
    {BASE "user -root\n", "E t.conf:3:6: invalid user name '-root' (1 to 32 letters, digits, "
                          "'.', '_' or '-', not starting with '-')\n"},
    {BASE "user a/b\n", "E t.conf:3:6: invalid user name 'a/b' (1 to 32 letters, digits, '.', "
                        "'_' or '-', not starting with '-')\n"},
    {BASE "user abcdefghijklmnopqrstuvwxyz0123456\n",
     "E t.conf:3:6: invalid user name 'abcdefghijklmnopqrstuvwxyz0123456' (1 to 32 letters, "
     "digits, '.', '_' or '-', not starting with '-')\n"},
    {BASE "user a\nuser b\n", "E t.conf:4:1: 'user' is already set at t.conf:3\n"},
    {BASE "group\n", "E t.conf:3:6: missing group name after 'group'\n"},
    {BASE "group g\ngroup g\n", "E t.conf:4:1: 'group' is already set at t.conf:3\n"},

    /* resolver */
    {BASE "resolver\n", "E t.conf:3:9: missing value after 'resolver' (expected system or "
                        "ADDRESS[:PORT] ...)\n"},
    {BASE "resolver system 1.1.1.1\n",
     "E t.conf:3:17: 'system' cannot be combined with resolver addresses\n"},
    {BASE "resolver 1.1.1.1 system\n",
     "E t.conf:3:18: 'system' cannot be combined with resolver addresses\n"},
    {BASE "resolver 1.1.1.1 1.0.0.1 8.8.8.8 8.8.4.4 9.9.9.9\n",
     "E t.conf:3:42: too many resolvers (at most 4)\n"},
    {BASE "resolver 1.1.1.1 1.1.1.1:53\n", "E t.conf:3:18: duplicate resolver '1.1.1.1:53'\n"},
    {BASE "resolver dns.google\n",
     "E t.conf:3:10: 'dns.google' is not an IP address (host names are not allowed here)\n"},
    {BASE "resolver 1.1.1.1:0\n", "E t.conf:3:18: port must be between 1 and 65535, got '0'\n"},
    {BASE "resolver [::1]:x\n", "E t.conf:3:16: invalid port 'x'\n"},
    {BASE "resolver system\nresolver 1.1.1.1\n",
     "E t.conf:4:1: 'resolver' is already set at t.conf:3\n"},

    /* rule */
    {BASE "rule\n", "E t.conf:3:5: missing rule name\n"},
    {BASE "rule r2\n",
     "E t.conf:3:8: missing action after the rule name (expected pass, block or tunnel)\n"},
    {BASE "rule r2 alow\n",
     "E t.conf:3:9: unknown action 'alow' (expected pass, block or tunnel)\n"},
    {BASE "rule r2 bock\n", "E t.conf:3:9: unknown action 'bock' (did you mean 'block'?)\n"},
    {BASE "rule r2/x pass\n", "E t.conf:3:6: invalid rule name 'r2/x' (use 1 to 63 letters, "
                              "digits, '.', '_' or '-', starting with a letter or digit)\n"},
    {BASE "rule r2 pass reason \"x\"\n",
     "E t.conf:3:14: 'reason' is only allowed on block rules\n"},
    {BASE "rule r2 block reason \"\"\n", "E t.conf:3:22: empty reason\n"},
    {BASE "rule r2 block reason\n", "E t.conf:3:21: missing value after 'reason'\n"},
    {BASE "rule r2 block log loud\n",
     "E t.conf:3:19: unknown log level 'loud' (expected none, meta or full)\n"},
    {BASE "rule r2 block log ful\n",
     "E t.conf:3:19: unknown log level 'ful' (did you mean 'full'?)\n"},
    {BASE "rule r2 block log\n", "E t.conf:3:18: missing value after 'log'\n"},
    {BASE "rule r2 block log none log full\n", "E t.conf:3:24: option 'log' given twice\n"},
    {BASE "rule r2 block reason a reason b\n", "E t.conf:3:24: option 'reason' given twice\n"},
    {BASE "rule r2 pass colour red\n",
     "E t.conf:3:14: unknown option 'colour' for 'rule' (expected from, to, user, listener, "
     "no-resolve, resolve, reason or log)\n"},
    {BASE "rule r2 pass lgo none\n",
     "E t.conf:3:14: unknown option 'lgo' for 'rule' (did you mean 'log'?)\n"},
    {BASE "rule all block\n",
     "E t.conf:3:6: duplicate rule name 'all' (first defined at t.conf:2)\n"},

    /* admin and on-reload */
    {BASE "admin 127.0.0.1:9090 token admin.token\n",
     "E t.conf:3:28: cannot read token file admin.token: No such file or directory\n"},
    /* found by fuzz_config: a second admin line after a failed one leaked the first path */
    {BASE "admin 127.0.0.1:9090 token a.token\nadmin 127.0.0.1:9091 token b.token\n",
     "E t.conf:3:28: cannot read token file a.token: No such file or directory\n"
     "E t.conf:4:28: cannot read token file b.token: No such file or directory\n"},
    {BASE "admin\n", "E t.conf:3:6: missing address after 'admin' (for example 127.0.0.1:9090, "
                     "unix:/run/geoproxy/admin.sock, or off)\n"},
    {BASE "admin 0.0.0.0:9090\n",
     "E t.conf:3:7: an admin listener on a non-loopback address needs 'token FILE' (anyone who "
     "reaches it could reload the policy and read metrics)\n"},
    {BASE "admin 127.0.0.1:9090 tokn x\n",
     "E t.conf:3:22: unknown option 'tokn' for 'admin' (did you mean 'token'?)\n"},
    {BASE "admin 127.0.0.1:9090\nadmin off\n",
     "E t.conf:4:1: 'admin' is already set at t.conf:3\n"},
    {BASE "admin unix:\n", "E t.conf:3:12: empty admin socket path\n"},
    {BASE "admin unix:/run/g.sock mode\n", "E t.conf:3:28: missing value after 'mode'\n"},
    {BASE "admin unix:/run/g.sock mode 0x66\n",
     "E t.conf:3:29: 'mode' takes octal permission bits such as 0600 or 0660, got '0x66'\n"},
    {BASE "admin unix:/run/g.sock mode 04660\n",
     "E t.conf:3:29: 'mode' takes octal permission bits such as 0600 or 0660, got '04660'\n"},
    {BASE "admin unix:/run/g.sock mode 1660\n",
     "E t.conf:3:29: 'mode' takes octal permission bits such as 0600 or 0660, got '1660'\n"},
    {BASE "admin unix:/run/g.sock mode 0460\n",
     "E t.conf:3:29: mode 0460 locks the owner out of the admin socket (connecting needs read "
     "and write: use 0600, or 0660 for a group)\n"},
    {BASE "admin unix:/run/g.sock mode 0666\n",
     "E t.conf:3:29: an admin socket that every local user can connect to (mode 0666) needs "
     "'token FILE'\n"},
    {BASE "admin unix:/run/g.sock mod 0660\n",
     "E t.conf:3:24: unknown option 'mod' for 'admin' (did you mean 'mode'?)\n"},
    {BASE "admin unix:/run/g.sock group adm\n",
     "E t.conf:3:24: unknown option 'group' for 'admin' (expected token or mode)\n"},
    {BASE "admin 127.0.0.1:9090 mode 0600\n",
     "E t.conf:3:22: 'mode' is for an admin listener on a unix socket (admin unix:PATH mode "
     "0660)\n"},
    {BASE "admin unix:/run/geoproxy/a-rather-long-directory-name/another-rather-lo"
          "ng-directory-name/one-more-level-nearly/adm.sock\n",
     "E t.conf:3:12: admin socket path is too long: 108 bytes once resolved, and a unix socket's "
     "path can have at most 107\n"},
    {BASE "on-reload\n",
     "E t.conf:3:10: missing mode after 'on-reload' (expected keep or reevaluate)\n"},
    {BASE "on-reload reevaluat\n",
     "E t.conf:3:11: unknown on-reload mode 'reevaluat' (did you mean 'reevaluate'?)\n"},

    /* planned directives */
    {BASE "upstream exit-ch tls 192.0.2.1:443 ca ca.pem cert c.pem key k.pem\n",
     "E t.conf:3:51: c.pem: cannot open: No such file or directory\n"},
    /* expect */
    {BASE "expect from CN to example.com:443 -> other\n",
     "E t.conf:3:1: expectation failed: from CN to example.com:443 is decided by rule 'all' "
     "(t.conf:2, pass), not 'other'\n"},
    {BASE "expect from CN to example.com -> all\n",
     "E t.conf:3:19: expected HOST:PORT after 'to' (a port from 1 to 65535; an IPv6 address in "
     "brackets)\n"},
    {BASE "expect from CN to [::1]:0 -> all\n",
     "E t.conf:3:25: expected HOST:PORT after 'to' (a port from 1 to 65535; an IPv6 address in "
     "brackets)\n"},
    {BASE "expect from nowhere to 10.0.0.1:80 -> all\n",
     "E t.conf:3:1: expect: 'nowhere' is neither an IP address nor a country code\n"},
    {BASE "expect from CN to 10.0.0.1:80 all rules\n",
     "E t.conf:3:31: expected 'user', 'listener' or '->' in an expect line\n"},
    {BASE "expect from CN to 10.0.0.1:80 user bob\n",
     "E t.conf:3:39: expected '-> RULE' at the end of the expect line\n"},
    {BASE "expect to CN:80 -> all\n",
     "E t.conf:3:1: expected 'expect from ADDRESS-or-COUNTRY to HOST:PORT [user U] [listener L] "
     "-> RULE'\n"},

    /* include */
    {BASE "include\n", "E t.conf:3:8: missing path after 'include'\n"},
    {BASE "include a.conf b.conf\n",
     "E t.conf:3:16: unexpected extra argument 'b.conf' for 'include'\n"},
    {BASE "include \"\"\n", "E t.conf:3:9: empty include path\n"},
    {BASE "include /nonexistent/geoproxy.conf\n",
     "E t.conf:3:9: cannot include '/nonexistent/geoproxy.conf': No such file or directory\n"},
    {BASE "include \"/tmp/a\tb.conf\"\n",
     "E t.conf:3:9: cannot include '/tmp/a\\x09b.conf': control characters in a path\n"},

    /* words */
    {BASE "rule r2 block reason \"open\n", "E t.conf:3:22: unterminated string\n"},
    {BASE "rule r2 block reason \"ends in \\\n", "E t.conf:3:22: unterminated string\n"},
    {BASE "rule r2 block reason \"a\\nb\"\n",
     "E t.conf:3:24: unknown escape '\\n' (only \\\" and \\\\ are allowed in strings)\n"},
    /* found by fuzz_config: a tab after a backslash is shown as \x09, never raw */
    {BASE "rule r2 block reason \"a\\\tb\"\n",
     "E t.conf:3:24: unknown escape '\\\\x09' (only \\\" and \\\\ are allowed in strings)\n"},
    {BASE "rule r2 block reason \"x\"y\n",
     "E t.conf:3:25: expected a blank after the closing quote\n"},
    {BASE "rule r\"2\" pass\n",
     "E t.conf:3:7: unexpected '\"' inside a word (quote the whole word)\n"},
    {BASE "rule r2 pass \x01\n", "E t.conf:3:14: control character 0x01 is not allowed\n"},
    {BASE "rule r2 block reason \"bell\x07\"\n",
     "E t.conf:3:27: control character 0x07 is not allowed\n"},
    {BASE "rule r2\rpass\n", "E t.conf:3:8: control character 0x0d is not allowed\n"},
    {BASE "\xef\xbb\xbflisten mixed 127.0.0.1:1081\n",
     "E t.conf:3:1: unknown directive '\\xef\\xbb\\xbflisten'\n"},

    /* the configuration as a whole */
    {"rule r pass\n", "E t.conf: no listener configured\n"},
    {"", "E t.conf: no listener configured\n"},
    {"# only a comment\n", "E t.conf: no listener configured\n"},
    {"listen mixed 127.0.0.1:0\nrule r pass\n",
     "E t.conf:1:24: port must be between 1 and 65535, got '0'\n"},
    {"bogus\nlisten mixed 127.0.0.1:1080\nworkers 999\nrule r pass\nrule r block\n",
     "E t.conf:1:1: unknown directive 'bogus'\n"
     "E t.conf:3:9: 'workers' must be 'auto' or a number from 1 to 256, got '999'\n"
     "E t.conf:5:6: duplicate rule name 'r' (first defined at t.conf:4)\n"},
};

static void test_bad_inputs(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        struct config_diags diags;
        struct config *cfg = (struct config *)&diags; /* must be reset to NULL */
        int rc = config_load_string("t.conf", bad_cases[i].text, NULL, &cfg, &diags);

        assert_diags_for(&diags, bad_cases[i].expected, bad_cases[i].text);
        assert_int_equal(rc, -1);
        assert_null(cfg);
        assert_true(diags.errors >= 1);
        assert_int_equal(diags.dropped, 0);
    }
}

static void test_no_rule_warning(void **state)
{
    struct config_diags diags;
    struct config *cfg = NULL;

    (void)state;
    assert_int_equal(
        config_load_string("t.conf", "listen mixed 127.0.0.1:1080\n", NULL, &cfg, &diags), 0);
    assert_non_null(cfg);
    assert_int_equal(diags.errors, 0);
    assert_diags(&diags,
                 "W t.conf: warning: no rule: every connection will be blocked (fail closed)\n");
    assert_int_equal(cfg->n_rules, 0);
    config_free(cfg);
}

static void test_diags_are_bounded(void **state)
{
    char text[2048];
    struct config_diags diags;
    struct config *cfg = NULL;
    size_t used;
    int i;

    (void)state;
    used = (size_t)snprintf(text, sizeof text, BASE);
    for (i = 0; i < 40; i++) {
        used += (size_t)snprintf(text + used, sizeof text - used, "bogus%d\n", i);
    }
    assert_int_equal(config_load_string("t.conf", text, NULL, &cfg, &diags), -1);
    assert_null(cfg);
    assert_int_equal(diags.count, CONFIG_MAX_DIAGS);
    assert_int_equal(diags.errors, 40);
    assert_int_equal(diags.dropped, 40 - CONFIG_MAX_DIAGS);
    assert_string_equal(diags.items[0].text, "t.conf:3:1: unknown directive 'bogus0'");
    assert_string_equal(diags.items[CONFIG_MAX_DIAGS - 1].text,
                        "t.conf:34:1: unknown directive 'bogus31'");
}

static void test_too_many_words(void **state)
{
    char text[512];
    struct config_diags diags;
    struct config *cfg = NULL;
    size_t used = (size_t)snprintf(text, sizeof text, BASE "rule r2 pass");
    int i;

    (void)state;
    for (i = 0; i < 62; i++) { /* 3 + 62 = 65 words */
        used += (size_t)snprintf(text + used, sizeof text - used, " x");
    }
    snprintf(text + used, sizeof text - used, "\n");
    assert_int_equal(config_load_string("t.conf", text, NULL, &cfg, &diags), -1);
    assert_diags(&diags, "E t.conf:3:136: too many words on one line (at most 64)\n");
}

static void test_long_line(void **state)
{
    size_t len = strlen(BASE) + 4097 + 1;
    char *text = malloc(len + 1);
    struct config_diags diags;
    struct config *cfg = NULL;

    (void)state;
    assert_non_null(text);
    memcpy(text, BASE, strlen(BASE));
    memset(text + strlen(BASE), '#', 4097);
    text[len - 1] = '\n';
    text[len] = '\0';
    assert_int_equal(config_load_string("t.conf", text, NULL, &cfg, &diags), -1);
    assert_diags(&diags, "E t.conf:3:4097: line is longer than 4096 bytes\n");
    /* exactly 4096 bytes is fine */
    text[strlen(BASE) + 4096] = '\n';
    text[strlen(BASE) + 4097] = '\0';
    assert_int_equal(config_load_string("t.conf", text, NULL, &cfg, &diags), 0);
    config_free(cfg);
    free(text);
}

static void test_oversized_text(void **state)
{
    size_t len = 1024 * 1024 + 1;
    char *text = malloc(len + 1);
    struct config_diags diags;
    struct config *cfg = NULL;

    (void)state;
    assert_non_null(text);
    memset(text, '\n', len);
    text[len] = '\0';
    assert_int_equal(config_load_string("t.conf", text, NULL, &cfg, &diags), -1);
    assert_diags(&diags, "E t.conf: text is larger than 1 MiB\n");
    free(text);
}

/* ---- files and includes ---- */

static void test_includes_are_relative(void **state)
{
    char *dir = tmpdir_new();
    char *sub = path_in(dir, "sub");
    char *top = path_in(dir, "main.conf");
    char *expected_b;
    struct config_diags diags;
    struct config *cfg = NULL;

    (void)state;
    assert_int_equal(mkdir(sub, 0700), 0);
    write_text(dir, "main.conf", "include sub/a.conf\nrule last pass\n");
    write_text(dir, "sub/a.conf",
               "include b.conf # relative to sub/\nlisten mixed 127.0.0.1:1080\n");
    write_text(dir, "sub/b.conf", "\n\nrule first block to :25 reason \"from b\"\n");
    assert_int_equal(config_load_file(top, &cfg, &diags), 0);
    assert_int_equal(diags.count, 0);
    assert_string_equal(cfg->path, top);
    assert_int_equal(cfg->n_listeners, 1);
    assert_int_equal(cfg->n_rules, 2);
    assert_string_equal(cfg->rules[0].name, "first");
    expected_b = path_in(dir, "sub/b.conf");
    assert_string_equal(cfg->rules[0].file, expected_b);
    assert_int_equal(cfg->rules[0].line, 3);
    assert_string_equal(cfg->rules[1].name, "last");
    assert_string_equal(cfg->rules[1].file, top);
    assert_int_equal(cfg->rules[1].line, 2);
    config_free(cfg);

    /* text in memory resolves includes against base_dir */
    assert_int_equal(config_load_string("mem", "include sub/a.conf\n", dir, &cfg, &diags), 0);
    assert_int_equal(cfg->n_rules, 1);
    assert_string_equal(cfg->rules[0].file, expected_b);
    config_free(cfg);

    /* an absolute include ignores the including file's directory */
    {
        char text[512];

        snprintf(text, sizeof text, "include %s\n", expected_b);
        write_text(dir, "sub/abs.conf", text);
        assert_int_equal(config_load_string("mem",
                                            "include sub/abs.conf\nlisten http "
                                            "127.0.0.1:8080\n",
                                            dir, &cfg, &diags),
                         0);
        assert_int_equal(cfg->n_rules, 1);
        config_free(cfg);
    }
    free(expected_b);
    free(top);
    free(sub);
    tmpdir_free(dir);
}

static void test_include_errors_point_into_the_included_file(void **state)
{
    char *dir = tmpdir_new();
    char *top = path_in(dir, "main.conf");
    char expected[1024];
    struct config_diags diags;
    struct config *cfg = NULL;

    (void)state;
    write_text(dir, "main.conf", BASE "include other.conf\nworkers x\n");
    write_text(dir, "other.conf", "# other\nlisten mixed 127.0.0.1:1080\n");
    assert_int_equal(config_load_file(top, &cfg, &diags), -1);
    snprintf(expected, sizeof expected,
             "E %s/other.conf:2:14: listener address 127.0.0.1:1080 is already used by listener "
             "'mixed-127.0.0.1:1080' (%s:1)\n"
             "E %s:4:9: expected 'auto' or a number for 'workers', got 'x'\n",
             dir, top, top);
    assert_diags(&diags, expected);
    free(top);
    tmpdir_free(dir);
}

static void test_include_cycle(void **state)
{
    char *dir = tmpdir_new();
    char *a = path_in(dir, "a.conf");
    char expected[1024];
    struct config_diags diags;
    struct config *cfg = NULL;

    (void)state;
    write_text(dir, "a.conf", BASE "include b.conf\n");
    write_text(dir, "b.conf", "include a.conf\n");
    assert_int_equal(config_load_file(a, &cfg, &diags), -1);
    assert_null(cfg);
    snprintf(expected, sizeof expected, "E %s/b.conf:1:9: include cycle: %s -> %s/b.conf -> %s\n",
             dir, a, dir, a);
    assert_diags(&diags, expected);

    write_text(dir, "self.conf", BASE "include ./self.conf\n");
    free(a);
    a = path_in(dir, "self.conf");
    assert_int_equal(config_load_file(a, &cfg, &diags), -1);
    snprintf(expected, sizeof expected, "E %s:3:9: include cycle: %s -> %s/./self.conf\n", a, a,
             dir);
    assert_diags(&diags, expected);
    free(a);
    tmpdir_free(dir);
}

static void test_include_depth(void **state)
{
    char *dir = tmpdir_new();
    char *top = path_in(dir, "f0.conf");
    char name[32];
    char text[64];
    char expected[1024];
    struct config_diags diags;
    struct config *cfg = NULL;
    int i;

    (void)state;
    /* f0 includes f1 ... includes f8: eight levels of include are allowed */
    for (i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "f%d.conf", i);
        snprintf(text, sizeof text, "include f%d.conf\n", i + 1);
        write_text(dir, name, text);
    }
    write_text(dir, "f8.conf", BASE);
    assert_int_equal(config_load_file(top, &cfg, &diags), 0);
    config_free(cfg);

    /* a ninth is refused at the include that asks for it */
    write_text(dir, "f8.conf", BASE "include f9.conf\n");
    write_text(dir, "f9.conf", "workers 1\n");
    assert_int_equal(config_load_file(top, &cfg, &diags), -1);
    snprintf(expected, sizeof expected, "E %s/f8.conf:3:9: includes are nested more than 8 deep\n",
             dir);
    assert_diags(&diags, expected);
    free(top);
    tmpdir_free(dir);
}

static void test_file_errors(void **state)
{
    static const char nul_text[] = "listen mixed 127.0.0.1:1080\nrule a\0 pass\n";
    char *dir = tmpdir_new();
    char *path;
    char *big;
    char expected[1024];
    struct config_diags diags;
    struct config *cfg = NULL;
    size_t big_len = 1024 * 1024 + 1;

    (void)state;
    path = path_in(dir, "missing.conf");
    assert_int_equal(config_load_file(path, &cfg, &diags), -1);
    snprintf(expected, sizeof expected, "E %s: No such file or directory\n", path);
    assert_diags(&diags, expected);
    free(path);

    assert_int_equal(config_load_file(dir, &cfg, &diags), -1);
    snprintf(expected, sizeof expected, "E %s: not a regular file\n", dir);
    assert_diags(&diags, expected);

    write_bytes(dir, "nul.conf", nul_text, sizeof nul_text - 1, 0600);
    path = path_in(dir, "nul.conf");
    assert_int_equal(config_load_file(path, &cfg, &diags), -1);
    snprintf(expected, sizeof expected, "E %s:2:7: NUL byte is not allowed\n", path);
    assert_diags(&diags, expected);
    free(path);

    big = malloc(big_len);
    assert_non_null(big);
    memset(big, '\n', big_len);
    write_bytes(dir, "big.conf", big, big_len, 0600);
    write_bytes(dir, "exact.conf", big, big_len - 1, 0600);
    free(big);
    path = path_in(dir, "big.conf");
    assert_int_equal(config_load_file(path, &cfg, &diags), -1);
    snprintf(expected, sizeof expected, "E %s: file is larger than 1 MiB\n", path);
    assert_diags(&diags, expected);
    free(path);
    assert_int_equal(config_load_string("t.conf", BASE "include big.conf\n", dir, &cfg, &diags),
                     -1);
    snprintf(expected, sizeof expected,
             "E t.conf:3:9: cannot include '%s/big.conf': file is larger than 1 MiB\n", dir);
    assert_diags(&diags, expected);
    assert_int_equal(config_load_string("t.conf", BASE "include exact.conf\n", dir, &cfg, &diags),
                     0);
    config_free(cfg);
    tmpdir_free(dir);
}

static void test_listener_users(void **state)
{
    char *dir = tmpdir_new();
    char *users = path_in(dir, "users.txt");
    char *top = path_in(dir, "main.conf");
    char hash[128];
    char line[512];
    char expected[1024];
    struct config_diags diags;
    struct config *cfg = NULL;

    (void)state;
    assert_int_equal(userdb_hash_password("secret", 6, 1000, hash, sizeof hash), 0);
    snprintf(line, sizeof line, "alice:%s\n", hash);
    write_text(dir, "users.txt", line);
    write_text(dir, "main.conf",
               "listen socks5 127.0.0.1:1080 users users.txt name s5\n"
               "listen http 127.0.0.1:8080 users \"users.txt\"\n"
               "rule r pass\n");
    assert_int_equal(config_load_file(top, &cfg, &diags), 0);
    assert_int_equal(diags.count, 0);
    assert_int_equal(cfg->n_listeners, 2);
    assert_string_equal(cfg->listeners[0].name, "s5");
    assert_string_equal(cfg->listeners[0].users_path, users);
    assert_non_null(cfg->listeners[0].users);
    assert_int_equal(userdb_count(cfg->listeners[0].users), 1);
    assert_true(userdb_verify(cfg->listeners[0].users, "alice", 5, "secret", 6));
    assert_false(userdb_verify(cfg->listeners[0].users, "alice", 5, "secreT", 6));
    assert_non_null(cfg->listeners[1].users);
    config_free(cfg);

    /* a users file others can read is refused, and the listen line says which word failed */
    assert_int_equal(chmod(users, 0644), 0);
    assert_int_equal(config_load_file(top, &cfg, &diags), -1);
    snprintf(expected, sizeof expected,
             "E %s: refusing a users file that group or others can access (mode 0644): run "
             "'chmod 600 %s'\n"
             "E %s:1:36: cannot load users file 'users.txt'\n"
             "E %s: refusing a users file that group or others can access (mode 0644): run "
             "'chmod 600 %s'\n"
             "E %s:2:34: cannot load users file 'users.txt'\n",
             users, users, top, users, users, top);
    assert_diags(&diags, expected);

    /* a missing one too */
    assert_int_equal(config_load_string("t.conf",
                                        BASE "listen socks5 127.0.0.1:1081 users nobody.txt\n", dir,
                                        &cfg, &diags),
                     -1);
    snprintf(expected, sizeof expected,
             "E %s/nobody.txt: No such file or directory\n"
             "E t.conf:3:36: cannot load users file 'nobody.txt'\n",
             dir);
    assert_diags(&diags, expected);
    free(top);
    free(users);
    tmpdir_free(dir);
}

static void test_admin_listener(void **state)
{
    char *dir = tmpdir_new();
    char *top = path_in(dir, "main.conf");
    char *sock = path_in(dir, "admin.sock");
    struct config_diags diags;
    struct config *cfg;
    char buf[64];

    (void)state;
    cfg = load_ok(BASE "admin 127.0.0.1\n");
    assert_true(cfg->admin.enabled);
    assert_string_equal(addr_text(&cfg->admin.addr, buf), "127.0.0.1:9090");
    assert_string_equal(cfg->admin.unix_path, "");
    assert_null(cfg->admin.token);
    config_free(cfg);

    /* a unix socket: no token needed, mode 0600 unless told */
    cfg = load_ok(BASE "admin unix:/run/geoproxy/admin.sock\n");
    assert_true(cfg->admin.enabled);
    assert_string_equal(cfg->admin.unix_path, "/run/geoproxy/admin.sock");
    assert_int_equal(cfg->admin.unix_mode, 0600);
    assert_null(cfg->admin.token);
    config_free(cfg);
    cfg = load_ok(BASE "admin unix:/run/geoproxy/a-rather-long-directory-name/another-rather-lo"
                       "ng-directory-name/one-more-level-nearly/ad.sock\n"); /* 107 bytes: the most
                                                                                there is room for */
    assert_int_equal(strlen(cfg->admin.unix_path), 107);
    config_free(cfg);
    cfg = load_ok(BASE "admin \"unix:/run/geoproxy/admin.sock\" mode 660\n");
    assert_int_equal(cfg->admin.unix_mode, 0660);
    config_free(cfg);

    /* a relative path resolves against the configuration's directory, like other paths */
    write_text(dir, "main.conf", BASE "admin unix:admin.sock mode 0640\n");
    assert_int_equal(config_load_file(top, &cfg, &diags), 0);
    assert_string_equal(cfg->admin.unix_path, sock);
    assert_int_equal(cfg->admin.unix_mode, 0640);
    config_free(cfg);

    /* with a token, every local user may be let in */
    write_text(dir, "admin.token", "0123456789abcdef-token\n");
    write_text(dir, "main.conf", BASE "admin unix:admin.sock token admin.token mode 0666\n");
    assert_int_equal(config_load_file(top, &cfg, &diags), 0);
    assert_int_equal(cfg->admin.unix_mode, 0666);
    assert_string_equal(cfg->admin.token, "0123456789abcdef-token");
    config_free(cfg);
    free(sock);
    free(top);
    tmpdir_free(dir);
}

/* Random damage to a good configuration must never crash or leak (run under valgrind/ASan). */
static void test_never_crashes(void **state)
{
    static const char seed[] =
        "workers 4\nlisten mixed 127.0.0.1:1080 name main\nlisten socks5 [::1]:1081\n"
        "resolver 1.1.1.1 [::1]:53\ntimeout idle 5m\nlimit connections 10\n"
        "rule a block reason \"x \\\" y\" log full\nrule b pass # c\ninclude /nonexistent\n";
    static const char alphabet[] = " \t\n\"\\#:[]0123456789abcdefgilmnoprstuwx.-\x01\xff";
    char text[sizeof seed + 64];
    uint32_t rng = 12345;
    int round;

    (void)state;
    for (round = 0; round < 3000; round++) {
        struct config_diags diags;
        struct config *cfg = NULL;
        size_t len = sizeof seed - 1;
        int edits = 1 + round % 8;
        int e;

        memcpy(text, seed, sizeof seed);
        for (e = 0; e < edits; e++) {
            size_t at;

            rng = rng * 1103515245u + 12345u;
            at = (rng >> 8) % len;
            rng = rng * 1103515245u + 12345u;
            if ((rng >> 16) % 3 == 0 && len + 1 < sizeof text) {
                memmove(text + at + 1, text + at, len - at + 1);
                len++;
            } else if ((rng >> 16) % 3 == 1 && len > 1) {
                memmove(text + at, text + at + 1, len - at);
                len--;
                continue;
            }
            text[at] = alphabet[(rng >> 20) % (sizeof alphabet - 1)];
        }
        text[len] = '\0';
        if (config_load_string("fuzz.conf", text, "/nonexistent", &cfg, &diags) == 0) {
            assert_non_null(cfg);
        } else {
            assert_null(cfg);
            assert_true(diags.errors > 0);
        }
        config_free(cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_directive),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_workers),
        cmocka_unit_test(test_resolver_system_and_limits),
        cmocka_unit_test(test_per_client_limits_and_account),
        cmocka_unit_test(test_wildcard_listeners_on_other_ports),
        cmocka_unit_test(test_kind_names_and_format),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_no_rule_warning),
        cmocka_unit_test(test_diags_are_bounded),
        cmocka_unit_test(test_too_many_words),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_oversized_text),
        cmocka_unit_test(test_includes_are_relative),
        cmocka_unit_test(test_include_errors_point_into_the_included_file),
        cmocka_unit_test(test_include_cycle),
        cmocka_unit_test(test_include_depth),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_listener_users),
        cmocka_unit_test(test_admin_listener),
        cmocka_unit_test(test_never_crashes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
