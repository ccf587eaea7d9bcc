/* Unit tests for the tunnel directives (listen tunnel, upstream, health-check, external, tunnel
 * rules, resolve via): every malformed input with its exact message and position, the fields of
 * a good configuration, tunnel verdicts and policy_egress_matches. Certificates are made with
 * certs/ in a temporary directory that the configurations name relative to it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "certs/certs.h"
#include "geo/mmdb_writer.h"
#include "policy/config.h"
#include "policy/policy.h"
#include "test_support.h"

#define DAY 86400
/* Line 1 a listener named main, line 2 no country database: a case's own text starts at line 3. */
#define HEAD "listen mixed 127.0.0.1:1080 name main\ngeoip country none\n"
#define TLS_FILES "ca ca/ca.pem cert ca/entry.pem key ca/entry.key"
#define UP "upstream exit-ch tls exit.example:443 " TLS_FILES
#define GROUP "upstream tor socks5 127.0.0.1:9050\nupstream g group failover exit-ch tor\n"

static char dir[64];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void put_file(const char *name, const char *text, mode_t mode)
{
    char path[PATH_MAX];
    int fd;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static char *slurp(const char *name)
{
    static char text[8192];
    char path[PATH_MAX];
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

static int group_setup(void **state)
{
    struct certs_ca_params ca = {.name = "Test CA", .not_before = time(NULL) - 30 * DAY};
    const char *names[] = {"exit", "entry", "expired"};
    char err[CERTS_ERR_MAX], path[PATH_MAX];

    snprintf(dir, sizeof dir, "/tmp/geoproxy-test-tunnel-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ca", dir);
    if (certs_ca_create(path, &ca, err, sizeof err) != 0)
        fail_msg("%s", err);
    for (size_t i = 0; i < N_ELEMS(names); i++) {
        struct certs_issue_params p = {.name = names[i]};

        if (i == 2) {
            p.not_before = time(NULL) - 20 * DAY;
            p.days = 1;
        }
        if (certs_issue(path, &p, err, sizeof err) != 0)
            fail_msg("%s", err);
    }
    put_file("ca/loose.key", slurp("ca/entry.key"), 0644);
    put_file("tor.pw", "  s3cret pass \r\nsecond line\n", 0600);
    put_file("loose.pw", "s3cret\n", 0644);
    put_file("empty.pw", "\n", 0600);
    return 0;
}

static int group_teardown(void **state)
{
    nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* Every diagnostic as "E text\n" or "W text\n", with the temporary directory shown as DIR. */
static char *diags_text(const struct config_diags *d)
{
    static char out[CONFIG_MAX_DIAGS * (CONFIG_DIAG_TEXT_MAX + 4)];
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < d->count; i++) {
        const char *t = d->items[i].text;

        used += (size_t)snprintf(out + used, sizeof out - used, "%c ",
                                 d->items[i].severity == CONFIG_ERROR ? 'E' : 'W');
        for (const char *at; (at = strstr(t, dir)) != NULL; t = at + strlen(dir))
            used += (size_t)snprintf(out + used, sizeof out - used, "%.*sDIR", (int)(at - t), t);
        used += (size_t)snprintf(out + used, sizeof out - used, "%s\n", t);
    }
    return out;
}

/* An expectation ending in "...\n" is the start of the text (dates change). */
static bool diags_are(const struct config_diags *d, const char *expected)
{
    const char *got = diags_text(d);
    size_t n = strlen(expected);

    if (n > 4 && strcmp(expected + n - 4, "...\n") == 0)
        return strncmp(got, expected, n - 4) == 0;
    return strcmp(got, expected) == 0;
}

static struct config *load(const char *text, const char *expected)
{
    struct config_diags d;
    struct config *cfg = NULL;
    int rc = config_load_string("t.conf", text, dir, &cfg, &d);

    if (!diags_are(&d, expected))
        fail_msg("input:\n%s\ngot:\n%s\nexpected:\n%s", text, diags_text(&d), expected);
    assert_int_equal(rc, d.errors > 0 ? -1 : 0);
    return cfg;
}

struct error_case {
    const char *text;
    const char *diags;
};

static const struct error_case error_cases[] = {
    /* upstream: name, kind, address */
    {HEAD "upstream\n", "E t.conf:3:9: missing upstream name\n"},
    {HEAD "upstream x\n",
     "E t.conf:3:11: missing upstream kind after the name (expected tls, socks5, http or group)\n"},
    {HEAD "upstream x! tls a:1\n",
     "E t.conf:3:10: invalid upstream name 'x!' (use 1 to 63 letters, digits, '.', '_' or '-', "
     "starting with a letter or digit)\n"},
    {HEAD "upstream x tsl a:1\n", "E t.conf:3:12: unknown upstream kind 'tsl' (did you mean "
                                  "'tls'?)\n"},
    {HEAD "upstream x socks5\n", "E t.conf:3:18: missing upstream address (expected HOST:PORT)\n"},
    {HEAD "upstream x socks5 tor\n", "E t.conf:3:22: missing port (expected HOST:PORT)\n"},
    {HEAD "upstream x socks5 2001:db8::1:443\n",
     "E t.conf:3:19: IPv6 addresses must be written in brackets, e.g. [2001:db8::1]:443\n"},
    {HEAD "upstream x socks5 bad_host!:1\n",
     "E t.conf:3:19: invalid host 'bad_host!' (expected an IPv4 address, an IPv6 address in "
     "brackets or a DNS name)\n"},
    {HEAD "upstream x socks5 10.0.0.256:1\n",
     "E t.conf:3:19: invalid host '10.0.0.256' (expected an IPv4 address, an IPv6 address in "
     "brackets or a DNS name)\n"},
    {HEAD "upstream x socks5 127.0.0.1:0\n",
     "E t.conf:3:29: port must be between 1 and 65535, got '0'\n"},
    {HEAD "upstream x socks5 [::1\n", "E t.conf:3:19: missing ']' after IPv6 address '[::1'\n"},
    /* options by kind */
    {HEAD "upstream x socks5 127.0.0.1:9050 egress CH\n",
     "E t.conf:3:34: egress can only be verified on a tls upstream\n"},
    {HEAD "upstream x http 127.0.0.1:3128 pin sha256//x\n",
     "E t.conf:3:32: 'pin' is only allowed on tls upstreams\n"},
    {HEAD "upstream x tls 127.0.0.1:443 user a password-file p\n",
     "E t.conf:3:30: 'user' is only allowed on socks5 and http upstreams\n"},
    {HEAD "upstream x socks5 127.0.0.1:9050 user a\n",
     "E t.conf:3:34: 'user' needs 'password-file FILE'\n"},
    {HEAD "upstream x socks5 127.0.0.1:9050 password-file tor.pw\n",
     "E t.conf:3:34: 'password-file' needs 'user NAME'\n"},
    {HEAD "upstream x http 127.0.0.1:3128 user a:b password-file tor.pw\n",
     "E t.conf:3:37: invalid user name 'a:b' (1 to 255 bytes; no ':' for an http upstream)\n"},
    {HEAD "upstream x socks5 127.0.0.1:9050 user a password-file loose.pw\n",
     "E t.conf:3:55: refusing a password file that group or others can access (mode 0644): run "
     "'chmod 600 DIR/loose.pw'\n"},
    {HEAD "upstream x socks5 127.0.0.1:9050 user a password-file empty.pw\n",
     "E t.conf:3:55: password file DIR/empty.pw must hold a password of 1 to 255 bytes on its "
     "first line\n"},
    {HEAD "upstream x socks5 127.0.0.1:9050 user a password-file none.pw\n",
     "E t.conf:3:55: cannot read password file none.pw: No such file or directory\n"},
    {HEAD "upstream x socks5 127.0.0.1:9050 colour red\n",
     "E t.conf:3:34: unknown option 'colour' for 'upstream' (expected ca, cert, key, pin, "
     "server-name, egress, pool, mux, optimistic, user or password-file)\n"},
    /* tls */
    {HEAD "upstream x tls 127.0.0.1:443 ca ca/ca.pem cert ca/entry.pem\n",
     "E t.conf:3:60: missing 'key FILE' (a tls upstream needs ca, cert and key)\n"},
    {HEAD UP " pin sha256//AAAA\n",
     "E t.conf:3:91: invalid pin 'sha256//AAAA' (expected sha256// and the 44 base64 characters "
     "of a SHA-256, as 'geoproxy certs inspect' shows)\n"},
    {HEAD UP " mux maybe\n", "E t.conf:3:91: 'mux' must be on or off, got 'maybe'\n"},
    {HEAD UP " mux off optimistic on\n",
     "E t.conf:3:95: 'optimistic on' needs the mux (it is off here: 'mux off')\n"},
    {HEAD UP " egress fiveeyes\n",
     "E t.conf:3:94: unknown region 'fiveeyes' (did you mean 'FIVE_EYES'?)\n"},
    {HEAD UP " egress Atlantis\n", "E t.conf:3:94: unknown egress 'Atlantis' (expected a country "
                                   "code such as CH or a region name)\n"},
    {HEAD UP " pool 65\n", "E t.conf:3:92: 'pool' must be a number from 0 to 64, got '65'\n"},
    {HEAD UP " server-name *.example\n",
     "E t.conf:3:99: invalid server name '*.example' (expected a DNS name or an IP address)\n"},
    {HEAD "upstream x tls h:443 ca ca/ca.pem cert ca/expired.pem key ca/expired.key\n",
     "E t.conf:3:40: DIR/ca/expired.pem: certificate 'CN=expired' expired at ...\n"},
    {HEAD "upstream x tls h:443 ca ca/ca.pem cert ca/entry.pem key ca/loose.key\n",
     "E t.conf:3:57: DIR/ca/loose.key: refusing a private key that group or others can access "
     "(mode 0644): run 'chmod 600 DIR/ca/loose.key'\n"},
    {HEAD "upstream x tls h:443 ca ca/ca.pem cert ca/entry.pem key ca/exit.key\n",
     "E t.conf:3:57: DIR/ca/exit.key does not belong to DIR/ca/entry.pem: ...\n"},
    {HEAD "upstream x tls h:443 ca ca/entry.pem cert ca/entry.pem key ca/entry.key\n",
     "E t.conf:3:25: DIR/ca/entry.pem: not a CA certificate (no basicConstraints CA:TRUE): give "
     "the CA's certificate, ca.pem\n"},
    {HEAD UP "\n" UP "\n",
     "E t.conf:4:10: duplicate upstream name 'exit-ch' (first defined at t.conf:3)\n"},
    /* groups */
    {HEAD UP "\nupstream g group\n",
     "E t.conf:4:17: missing strategy after 'group' (expected failover or round-robin)\n"},
    {HEAD UP "\nupstream g group failover\n",
     "E t.conf:4:26: missing members after 'failover' (expected 1 to 16 upstream names)\n"},
    {HEAD UP "\nupstream g group random exit-ch\n",
     "E t.conf:4:18: unknown group strategy 'random' (expected failover or round-robin)\n"},
    {HEAD UP "\nupstream g group failover exit-cj\n",
     "E t.conf:4:27: unknown upstream 'exit-cj' (did you mean 'exit-ch'?)\n"},
    {HEAD UP "\nupstream g group failover tor\n",
     "E t.conf:4:27: unknown upstream 'tor' (upstreams must be defined before the lines that use "
     "them)\n"},
    {HEAD UP "\n" GROUP "upstream h group round-robin g\n",
     "E t.conf:6:30: 'g' is a group: a group cannot contain a group (list its members "
     "instead)\n"},
    {HEAD UP "\nupstream g group failover exit-ch exit-ch\n",
     "E t.conf:4:35: upstream 'exit-ch' is listed twice in group 'g'\n"},
    /* listen tunnel */
    {HEAD "listen tunnel 127.0.0.1:8443 cert ca/exit.pem key ca/exit.key\n",
     "E t.conf:3:62: missing 'ca FILE' (a tunnel listener needs cert, key and ca)\n"},
    {HEAD "listen tunnel 127.0.0.1:8443 users u " TLS_FILES "\n",
     "E t.conf:3:30: tunnel listeners cannot have users: entries authenticate with their client "
     "certificates\n"},
    {HEAD "listen http 127.0.0.1:3128 cert ca/exit.pem\n",
     "E t.conf:3:28: 'cert' is only allowed on tunnel listeners (listen tunnel ADDRESS:PORT cert "
     "FILE key FILE ca FILE)\n"},
    {HEAD "listen tunnel 127.0.0.1:8443 cert ca/expired.pem key ca/expired.key ca ca/ca.pem\n",
     "E t.conf:3:35: DIR/ca/expired.pem: certificate 'CN=expired' expired at ...\n"},
    {HEAD "listen tunnel 127.0.0.1:8443 cert ca/exit.pem key ca/exit.key ca nope.pem\n",
     "E t.conf:3:66: DIR/nope.pem: cannot open: No such file or directory\n"},
    /* rules */
    {HEAD "rule a tunnel via exit-ch\n",
     "E t.conf:3:19: unknown upstream 'exit-ch' (no upstream is defined before this line)\n"},
    {HEAD UP "\nrule a tunnel via exit-cj\n",
     "E t.conf:4:19: unknown upstream 'exit-cj' (did you mean 'exit-ch'?)\n"},
    {HEAD UP "\nrule a tunnel exit-ch\n", "E t.conf:4:15: expected 'via UPSTREAM' after "
                                          "'tunnel'\n"},
    {HEAD UP "\nrule a tunnel via exit-ch reason \"no\"\n",
     "E t.conf:4:27: 'reason' is only allowed on block rules\n"},
    {HEAD UP "\n" GROUP "rule a pass to CN resolve via g\n",
     "E t.conf:6:31: resolve via needs a tls upstream ('g' is a group)\n"},
    {HEAD UP "\n" GROUP "rule a pass to CN resolve via tor\n",
     "E t.conf:6:31: resolve via needs a tls upstream ('tor' is a socks5 upstream)\n"},
    {HEAD UP "\nrule a pass to CN no-resolve resolve via exit-ch\n",
     "E t.conf:4:30: 'resolve via' and 'no-resolve' cannot be combined\n"},
    {HEAD UP "\nrule a pass to CN resolve\n",
     "E t.conf:4:26: expected 'via UPSTREAM' after 'resolve'\n"},
    {HEAD UP "\nrule a pass to CN resolve via\n",
     "E t.conf:4:30: missing upstream name after 'via'\n"},
    /* health-check, external */
    {HEAD "health-check\n",
     "E t.conf:3:13: missing 'every DURATION' or 'timeout DURATION' after 'health-check'\n"},
    {HEAD "health-check every 0\n",
     "E t.conf:3:20: 'health-check every' must be from 1ms to 24h, got '0'\n"},
    {HEAD "health-check every 5s every 3s\n", "E t.conf:3:23: option 'every' given twice\n"},
    {HEAD "health-check timeout 1s\nhealth-check every 2s\n",
     "E t.conf:4:1: 'health-check' is already set at t.conf:3\n"},
    {HEAD "external 192.0.2.10:80\n",
     "E t.conf:3:10: '192.0.2.10:80' is not an IP address (expected an address without a port, "
     "e.g. 192.0.2.10 or 2001:db8::10)\n"},
    {HEAD "external 192.0.2.10\nexternal 192.0.2.11\n",
     "E t.conf:4:1: 'external' is already set at t.conf:3\n"},
    {HEAD "external 192.0.2.10 x\n",
     "E t.conf:3:21: unexpected extra argument 'x' for 'external'\n"},
    /* warnings */
    {HEAD UP "\nrule a tunnel via exit-ch resolve via exit-ch\n",
     "W t.conf:4:27: warning: 'resolve via' has no effect: rule 'a' has no 'to' value that needs "
     "the "
     "destination's address\n"},
};

static void test_errors(void **state)
{
    size_t failed = 0;

    for (size_t i = 0; i < N_ELEMS(error_cases); i++) {
        const struct error_case *c = &error_cases[i];
        struct config_diags d;
        struct config *cfg = NULL;
        int rc = config_load_string("t.conf", c->text, dir, &cfg, &d);

        if (!diags_are(&d, c->diags) || rc != (d.errors > 0 ? -1 : 0)) {
            print_error("input:\n%s\ngot:\n%s\nexpected:\n%s\n", c->text, diags_text(&d), c->diags);
            failed++;
        }
        config_free(cfg);
    }
    assert_int_equal(failed, 0);
}

static bool has_source(const struct config *cfg, const char *name)
{
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s/%s", dir, name);
    for (size_t i = 0; i < cfg->n_sources; i++)
        if (strcmp(cfg->sources[i], path) == 0)
            return true;
    return false;
}

#define GOOD                                                                                       \
    "listen mixed 127.0.0.1:1080 name main\n"                                                      \
    "listen tunnel 0.0.0.0:8443 name exit cert ca/exit.pem key ca/exit.key ca ca/ca.pem\n"         \
    "geoip country none\n"                                                                         \
    "upstream exit-ch tls [2001:db8::7]:8443 " TLS_FILES " egress ch pool 0\n"                     \
    "upstream exit-eu tls exit.example:443 " TLS_FILES " egress eu server-name exit-1.example "    \
    "pin sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"                                   \
    "upstream tor socks5 127.0.0.1:9050 user alice password-file tor.pw\n"                         \
    "upstream parent http proxy.example:3128\n"                                                    \
    "upstream exits group round-robin exit-ch exit-eu tor\n"                                       \
    "health-check every 10s\n"                                                                     \
    "external 2001:db8::10\n"                                                                      \
    "rule onion tunnel via tor to .onion\n"                                                        \
    "rule cn tunnel via exits to CN resolve via exit-ch log full\n"                                \
    "rule rest pass\n"                                                                             \
    "expect from 127.0.0.1 to x.onion:80 -> onion\n"

static void test_good_configuration(void **state)
{
    struct config *cfg = load(GOOD, "W t.conf:12:1: warning: rule 'cn' names countries or regions, "
                                    "but there is no country database: every public address is "
                                    "'unknown' (see 'geoip country')\n");
    const struct config_upstream *u;

    assert_non_null(cfg);
    assert_int_equal(cfg->n_listeners, 2);
    assert_int_equal(cfg->listeners[1].kind, LISTENER_TUNNEL);
    assert_non_null(cfg->listeners[1].tls);
    assert_true(cfg->listeners[1].cert_not_after > time(NULL) + 800L * DAY);
    assert_string_equal(config_listener_kind_name(LISTENER_TUNNEL), "tunnel");
    assert_int_equal(cfg->n_upstreams, 5);
    u = &cfg->upstreams[0];
    assert_string_equal(u->host, "2001:db8::7");
    assert_int_equal(u->port, 8443);
    assert_string_equal(u->server_name, "2001:db8::7");
    assert_string_equal(u->egress, "CH");
    assert_int_equal(u->pool, 0);
    assert_null(u->pin);
    assert_non_null(u->tls);
    assert_true(u->cert_not_after > time(NULL));
    u = &cfg->upstreams[1];
    assert_string_equal(u->egress, "EU");
    assert_int_equal(u->pool, 2);
    assert_string_equal(u->server_name, "exit-1.example");
    assert_string_equal(u->pin, "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    u = &cfg->upstreams[2];
    assert_int_equal(u->kind, UPSTREAM_SOCKS5);
    assert_string_equal(u->user, "alice");
    assert_string_equal(u->password, "s3cret pass");
    assert_null(u->tls);
    u = &cfg->upstreams[3];
    assert_int_equal(u->kind, UPSTREAM_HTTP);
    assert_string_equal(u->host, "proxy.example");
    assert_null(u->user);
    u = &cfg->upstreams[4];
    assert_int_equal(u->kind, UPSTREAM_GROUP);
    assert_int_equal(u->strategy, UPSTREAM_ROUND_ROBIN);
    assert_int_equal(u->n_members, 3);
    assert_int_equal(u->members[0], 0);
    assert_int_equal(u->members[2], 2);
    assert_int_equal(u->index, 4);
    assert_int_equal(cfg->health.interval_ms, 10000);
    assert_int_equal(cfg->health.timeout_ms, 3000);
    assert_true(cfg->has_external);
    assert_int_equal(cfg->external.ss_family, AF_INET6);
    assert_int_equal(cfg->rules[0].action, RULE_TUNNEL);
    assert_ptr_equal(cfg->rules[0].via, &cfg->upstreams[2]);
    assert_null(cfg->rules[0].resolve_via);
    assert_ptr_equal(cfg->rules[1].via, &cfg->upstreams[4]);
    assert_ptr_equal(cfg->rules[1].resolve_via, &cfg->upstreams[0]);
    assert_null(cfg->rules[2].via);
    const char *sources[] = {"ca/exit.pem",  "ca/exit.key",  "ca/ca.pem",
                             "ca/entry.pem", "ca/entry.key", "tor.pw"};
    for (size_t i = 0; i < N_ELEMS(sources); i++)
        if (!has_source(cfg, sources[i]))
            fail_msg("%s is not among the sources", sources[i]);
    config_free(cfg);

    /* defaults without any tunnel line */
    cfg = load(HEAD, "W t.conf: warning: no rule: every connection will be blocked (fail "
                     "closed)\n");
    assert_int_equal(cfg->health.interval_ms, 5000);
    assert_int_equal(cfg->health.timeout_ms, 3000);
    assert_false(cfg->has_external);
    assert_int_equal(cfg->n_upstreams, 0);
    config_free(cfg);
}

static const struct sockaddr *ip(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (inet_pton(AF_INET, text, &((struct sockaddr_in *)ss)->sin_addr) == 1)
        ss->ss_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1)
        ss->ss_family = AF_INET6;
    else
        fail_msg("not an address: %s", text);
    return (const struct sockaddr *)ss;
}

struct verdict_case {
    const char *client;
    const char *host; /* or NULL */
    const char *dest; /* or NULL: not resolved */
    uint16_t port;
    enum policy_outcome outcome;
    enum verdict_action action;
    const char *rule;
    const char *via;         /* upstream name, or NULL */
    const char *resolve_via; /* upstream name, or NULL */
};

static const struct verdict_case verdict_cases[] = {
    {"192.0.2.1", "abc.onion", NULL, 80, POLICY_DECIDED, VERDICT_TUNNEL, "onion", "tor", NULL},
    {"192.0.2.1", "www.example.cn", NULL, 443, POLICY_NEED_ADDRESS, 0, NULL, NULL, "exit-ch"},
    {"192.0.2.1", "www.example.cn", "127.0.2.9", 443, POLICY_DECIDED, VERDICT_TUNNEL, "cn", "g",
     NULL},
    /* a local destination is refused to a remote client when passed, not when tunnelled */
    {"192.0.2.1", NULL, "127.0.0.1", 80, POLICY_DECIDED, VERDICT_BLOCK, "(local destination)", NULL,
     NULL},
    {"192.0.2.1", NULL, "127.0.9.1", 80, POLICY_DECIDED, VERDICT_TUNNEL, "lan", "exit-ch", NULL},
    {"127.0.0.1", NULL, "198.51.100.1", 80, POLICY_DECIDED, VERDICT_PASS, "rest", NULL, NULL},
};

#define EGRESS_CONF                                                                                \
    "listen mixed 127.0.0.1:1080 name main\n"                                                      \
    "geoip country fixture.mmdb\n"                                                                 \
    "region ALPS = CH AT\n"                                                                        \
    "upstream exit-ch tls 127.0.3.1:8443 " TLS_FILES " egress CH\n"                                \
    "upstream exit-alps tls 127.0.3.2:8443 " TLS_FILES " egress alps\n"                            \
    "upstream exit-eu tls 127.0.3.3:8443 " TLS_FILES " egress EU\n"                                \
    "upstream exit-any tls 127.0.3.4:8443 " TLS_FILES "\n"                                         \
    "upstream exits group failover exit-ch exit-eu\n"

static void write_fixture_countries(void)
{
    /* 127.0.1.0/24 HK, 127.0.2.0/24 CN, 127.0.3.0/24 CH, 127.0.4.0/24 DE */
    static const char codes[][3] = {"HK", "CN", "CH", "DE"};
    struct mmdb_writer *w = NULL;
    char path[PATH_MAX], net[32], err[256];
    struct sockaddr_storage ss;

    assert_int_equal(mmdb_writer_new(6, "geoproxy-test", "tunnel fixtures", 1, &w), 0);
    for (size_t i = 0; i < N_ELEMS(codes); i++) {
        snprintf(net, sizeof net, "127.0.%zu.0", i + 1);
        assert_int_equal(mmdb_writer_insert(w, ip(net, &ss), 24, codes[i], err, sizeof err), 0);
    }
    snprintf(path, sizeof path, "%s/fixture.mmdb", dir);
    assert_int_equal(mmdb_writer_write(w, path, err, sizeof err), 0);
    mmdb_writer_free(w);
}

static void test_verdicts(void **state)
{
    struct config *cfg;
    struct policy_snapshot *snap;

    write_fixture_countries();
    cfg = load("listen mixed 127.0.0.1:1080 name main\n"
               "geoip country fixture.mmdb\n" UP "\n" GROUP "rule onion tunnel via tor to .onion\n"
               "rule cn tunnel via g to CN resolve via exit-ch\n"
               "rule lan tunnel via exit-ch to 127.0.9.0/24\n"
               "rule rest pass\n"
               "expect from 192.0.2.1 to CN:443 -> cn\n",
               "");
    snap = policy_snapshot_new(cfg, 1);
    assert_non_null(snap);
    for (size_t i = 0; i < N_ELEMS(verdict_cases); i++) {
        const struct verdict_case *c = &verdict_cases[i];
        struct sockaddr_storage client, dest;
        struct policy_request req = {.listener = "main", .host = c->host, .port = c->port};
        struct policy_verdict v;

        memset(&v, 0xa5, sizeof v); /* every field the outcome promises must be written */
        req.client = ip(c->client, &client);
        policy_classify(snap, req.client, &req.client_geo);
        if (c->dest != NULL) {
            req.dest = ip(c->dest, &dest);
            policy_classify(snap, req.dest, &req.dest_geo);
        }
        assert_int_equal(policy_decide(snap, &req, &v), c->outcome);
        if (c->resolve_via != NULL) {
            assert_non_null(v.resolve_via);
            assert_string_equal(v.resolve_via->name, c->resolve_via);
        } else
            assert_null(v.resolve_via);
        if (c->outcome == POLICY_NEED_ADDRESS)
            continue;
        assert_int_equal(v.action, c->action);
        assert_string_equal(v.rule, c->rule);
        if (c->via != NULL) {
            assert_non_null(v.via);
            assert_string_equal(v.via->name, c->via);
        } else
            assert_null(v.via);
        assert_string_equal(policy_action_name(v.action), c->action == VERDICT_TUNNEL ? "tunnel"
                                                          : c->action == VERDICT_PASS ? "pass"
                                                                                      : "block");
    }
    policy_snapshot_release(snap);
}

struct egress_case {
    const char *upstream;
    const char *address; /* or NULL */
    bool matches;
};

static const struct egress_case egress_cases[] = {
    {"exit-ch", "127.0.3.9", true},   {"exit-ch", "127.0.4.9", false},
    {"exit-alps", "127.0.3.9", true}, {"exit-alps", "127.0.4.9", false},
    {"exit-eu", "127.0.4.9", true},   {"exit-eu", "127.0.3.9", false},
    {"exit-ch", "127.0.9.9", false}, /* local, no country */
    {"exit-ch", "192.0.2.1", false}, /* unknown */
    {"exit-ch", NULL, false},         {"exit-any", "192.0.2.1", true},
    {"exits", "127.0.3.9", true}, /* a group declares no egress of its own */
};

static void test_egress(void **state)
{
    struct policy_snapshot *snap;
    struct config *cfg;

    write_fixture_countries();
    cfg = load(EGRESS_CONF, "W t.conf: warning: no rule: every connection will be blocked "
                            "(fail closed)\n");
    snap = policy_snapshot_new(cfg, 1);
    assert_non_null(snap);
    for (size_t i = 0; i < N_ELEMS(egress_cases); i++) {
        const struct egress_case *c = &egress_cases[i];
        const struct config_upstream *u = NULL;
        struct sockaddr_storage ss;

        for (size_t k = 0; k < cfg->n_upstreams; k++)
            if (strcmp(cfg->upstreams[k].name, c->upstream) == 0)
                u = &cfg->upstreams[k];
        assert_non_null(u);
        if (policy_egress_matches(snap, u, c->address != NULL ? ip(c->address, &ss) : NULL) !=
            c->matches)
            fail_msg("egress of %s at %s: expected %s", c->upstream,
                     c->address ? c->address : "(none)", c->matches ? "a match" : "no match");
    }
    policy_snapshot_release(snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_good_configuration),
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_egress),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
