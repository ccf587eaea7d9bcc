/* libFuzzer target for the configuration language (policy/config.h), through its public entry
 * config_load_string: lexer, directives, values, includes, the whole-configuration checks and
 * config_free; an accepted configuration then becomes a policy snapshot (policy/policy.h) that
 * decides a few fixed connections. The promises of the headers are checked, so a broken one is a
 * crash:
 *   - 0 with a config and no error diagnostic, or -1 with NULL and at least one error;
 *   - every diagnostic is NUL-terminated inside its buffer and names the file it is about;
 *   - an accepted configuration has 1..CONFIG_MAX_LISTENERS listeners, names that fit, and
 *     addresses config_format_addr can print;
 *   - every decision is DECIDED, or NEED_ADDRESS while the destination is a name not yet
 *     resolved (and DECIDED once it is); a verdict names one of the configuration's rules, or
 *     "(no rule)" or a built-in refusal, "(...)", and blocks; a reason comes only with a block;
 *     a tunnel verdict names its upstream (via), no other verdict has one, and resolve_via is
 *     set only with NEED_ADDRESS, to a tls upstream of the configuration;
 *   - upstreams: names that fit, a tls one has its client context, a group 1..16 members that
 *     are earlier upstreams and not groups; a tunnel listener has its server context;
 *   - nothing leaks (LeakSanitizer checks after the inputs that allocated more than they freed).
 *
 * Files. 'include', 'users FILE' and 'geoip country|asn FILE' open files, so an input could make
 * the parser read anything on the machine. Two guards keep every path inside a directory that
 * this target makes at start (mkdtemp under $TMPDIR) and removes at exit:
 *   - base_dir is that directory. It holds nothing but the fixtures below, written by this
 *     target, so any other relative path names nothing and its include or users file fails
 *     cleanly ("cannot include ...: No such file or directory"); the fixtures let the fuzzer
 *     reach what an empty directory never would: a successful include, an include cycle
 *     (a.conf and b.conf include each other), a users file that loads and one refused for its
 *     mode;
 *   - inputs that could name a file elsewhere are skipped before parsing: one holding "..", or
 *     a '/' that can start a path. A '/' is kept only after a letter, digit or one of ". _ - : ]",
 *     which still lets CIDR networks through ("10.0.0.0/8", "[2001:db8::]/32", "::/0" in rule
 *     matchers) but never a word, quoted or not, that begins with '/'. The lexer resolves only
 *     \" and \\ inside quotes, so no escape can produce a leading '/' either.
 * Skipped inputs return -1, which keeps them out of the corpus.
 *
 * Seeds: tests/fuzz/corpus/config/ (configuration files as docs/CONFIG.md shows them);
 * dictionary: tests/fuzz/config.dict. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <sanitizer/common_interface_defs.h>

#include "policy/config.h"
#include "policy/policy.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void remove_base_dir(void);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_config: check failed at %s:%d: %s\n", __FILE__, __LINE__,        \
                    #cond);                                                                        \
            remove_base_dir();                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define FUZZ_NAME "fuzz.conf"

/* Once a known bug (regressions/config/escape-tab-in-message): a tab after a backslash was
 * quoted raw in "unknown escape '\<TAB>'". Fixed; kept as a switch for the next such finding. */
#define ALLOW_TAB_IN_MESSAGES 0

static char base_dir[4096];

#ifdef GEOPROXY_DEFAULT_GEOIP_COUNTRY
static const char default_geoip[] = GEOPROXY_DEFAULT_GEOIP_COUNTRY;
#else
static const char default_geoip[] = "<no default country database>";
#endif

/* The files in base_dir, and their modes. The users line is well-formed (docs/CONFIG.md). */
static const struct {
    const char *name, *text;
    mode_t mode;
} fixtures[] = {
    {"a.conf", "include b.conf\n", 0644},
    {"b.conf", "# included by a.conf\ninclude a.conf\n", 0644},
    {"rules.conf", "rule included block reason \"from rules.conf\" log full\n", 0644},
    {"listen.conf", "listen socks5 127.0.0.1:1081 name from-include\n", 0644},
    {"users",
     "# users\nalice:$pbkdf2-sha256$1000$c2FsdHNhbHQ=$"
     "ZmFrZS1oYXNoLWZvci10aGUtZG9jcy1leGFtcGxlLSE=\n",
     0600},
    {"open-users",
     "bob:$pbkdf2-sha256$1000$c2FsdHNhbHQ=$ZmFrZS1oYXNoLWZvci10aGUtZG9jcy1leGFtcGxlLSE=\n", 0644},
};

#define N_FIXTURES (sizeof fixtures / sizeof fixtures[0])

static int fixture_path(char *buf, size_t len, size_t i)
{
    int n = snprintf(buf, len, "%s/%s", base_dir, fixtures[i].name);

    return n > 0 && (size_t)n < len ? 0 : -1;
}

static void remove_base_dir(void)
{
    char path[sizeof base_dir + 64];

    if (base_dir[0] == '\0') {
        return;
    }
    for (size_t i = 0; i < N_FIXTURES; i++) {
        if (fixture_path(path, sizeof path, i) == 0) {
            unlink(path);
        }
    }
    rmdir(base_dir); /* fails if the parser created something: then it stays to be seen */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char path[sizeof base_dir + 64];
    const char *tmp = getenv("TMPDIR");
    int n;

    (void)argc;
    (void)argv;
    if (tmp == NULL || tmp[0] != '/') {
        tmp = "/tmp";
    }
    n = snprintf(base_dir, sizeof base_dir, "%s/geoproxy-fuzz-config.XXXXXX", tmp);
    CHECK(n > 0 && (size_t)n < sizeof base_dir);
    CHECK(mkdtemp(base_dir) != NULL);
    atexit(remove_base_dir);
    __sanitizer_set_death_callback(remove_base_dir); /* and after a sanitizer's report */
    for (size_t i = 0; i < N_FIXTURES; i++) {
        size_t len = strlen(fixtures[i].text);
        int fd;

        CHECK(fixture_path(path, sizeof path, i) == 0);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, fixtures[i].mode);
        CHECK(fd >= 0);
        CHECK(fchmod(fd, fixtures[i].mode) == 0); /* whatever the umask */
        CHECK(write(fd, fixtures[i].text, len) == (ssize_t)len);
        CHECK(close(fd) == 0);
    }
    return 0;
}

/* A '/' is harmless after a byte that cannot end a blank, a quote or the start of a line. */
static bool slash_may_start_path(const uint8_t *data, size_t i)
{
    uint8_t prev = i > 0 ? data[i - 1] : ' ';

    if ((prev >= 'a' && prev <= 'z') || (prev >= 'A' && prev <= 'Z') ||
        (prev >= '0' && prev <= '9')) {
        return false;
    }
    return !(prev == '.' || prev == '_' || prev == '-' || prev == ':' || prev == ']');
}

/* True when the input cannot name a file outside base_dir (see the comment at the top). */
static bool input_is_confined(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '.' && i + 1 < size && data[i + 1] == '.') {
            return false;
        }
        if (data[i] == '/' && slash_may_start_path(data, i)) {
            return false;
        }
    }
    return true;
}

static void check_diags(const struct config_diags *diags)
{
    size_t errors = 0;

    CHECK(diags->count <= CONFIG_MAX_DIAGS);
    for (size_t i = 0; i < diags->count; i++) {
        const struct config_diag *d = &diags->items[i];
        size_t len = strnlen(d->text, sizeof d->text);

        CHECK(len > 0 && len < sizeof d->text);
        /* One line each: a control byte in a message could forge a log line. */
        for (size_t k = 0; k < len; k++) {
            unsigned char c = (unsigned char)d->text[k];

            CHECK((c >= 0x20 && c != 0x7f) || (ALLOW_TAB_IN_MESSAGES && c == '\t'));
        }
        CHECK(d->severity == CONFIG_ERROR || d->severity == CONFIG_WARNING);
        /* Each message is about the text or a file it tried to read: all under base_dir, but
         * for the built-in country database. */
        CHECK(strncmp(d->text, FUZZ_NAME, strlen(FUZZ_NAME)) == 0 ||
              strncmp(d->text, base_dir, strlen(base_dir)) == 0 ||
              strncmp(d->text, default_geoip, strlen(default_geoip)) == 0);
        if (d->severity == CONFIG_ERROR) {
            errors++;
        }
    }
    CHECK(errors <= diags->errors);
    CHECK(diags->dropped == 0 || diags->count == CONFIG_MAX_DIAGS);
}

static void check_config(const struct config *cfg)
{
    char addr[64];

    CHECK(cfg->n_listeners >= 1 && cfg->n_listeners <= CONFIG_MAX_LISTENERS);
    CHECK(cfg->n_resolvers <= CONFIG_MAX_RESOLVERS);
    CHECK(cfg->n_rules == 0 || cfg->rules != NULL);
    CHECK(cfg->n_regions <= CONFIG_MAX_REGIONS);
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct config_listener *l = &cfg->listeners[i];

        CHECK(strnlen(l->name, sizeof l->name) > 0);
        CHECK(strnlen(l->name, sizeof l->name) < sizeof l->name);
        CHECK(l->addr.ss_family == AF_INET || l->addr.ss_family == AF_INET6);
        CHECK(strcmp(config_listener_kind_name(l->kind), "unknown") != 0);
        config_format_addr(&l->addr, addr, sizeof addr);
        CHECK(strnlen(addr, sizeof addr) < sizeof addr);
        CHECK(l->users == NULL || l->users_path != NULL);
        CHECK((l->kind == LISTENER_TUNNEL) == (l->tls != NULL));
        CHECK(l->kind != LISTENER_TUNNEL || l->users == NULL);
    }
    CHECK(cfg->n_upstreams <= CONFIG_MAX_UPSTREAMS);
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        const struct config_upstream *u = &cfg->upstreams[i];

        CHECK(u->index == i);
        CHECK(strnlen(u->name, sizeof u->name) > 0 &&
              strnlen(u->name, sizeof u->name) < sizeof u->name);
        CHECK((u->kind == UPSTREAM_TLS) == (u->tls != NULL));
        CHECK(u->egress[0] == '\0' || u->kind == UPSTREAM_TLS);
        CHECK((u->user == NULL) == (u->password == NULL));
        CHECK(u->kind == UPSTREAM_GROUP
                  ? u->n_members >= 1 && u->n_members <= CONFIG_GROUP_MEMBERS_MAX
                  : u->n_members == 0);
        for (size_t k = 0; k < u->n_members; k++)
            CHECK(u->members[k] < i && cfg->upstreams[u->members[k]].kind != UPSTREAM_GROUP);
    }
    for (size_t i = 0; i < cfg->n_resolvers; i++) {
        config_format_addr(&cfg->resolvers[i], addr, sizeof addr);
        CHECK(strnlen(addr, sizeof addr) < sizeof addr);
    }
    for (size_t i = 0; i < cfg->n_rules; i++) {
        const struct config_rule *r = &cfg->rules[i];

        CHECK(strnlen(r->name, sizeof r->name) > 0);
        CHECK(strnlen(r->name, sizeof r->name) < sizeof r->name);
        CHECK(r->action == RULE_PASS || r->action == RULE_BLOCK || r->action == RULE_TUNNEL);
        CHECK(r->reason == NULL || r->action == RULE_BLOCK);
        CHECK((r->action == RULE_TUNNEL) == (r->via != NULL));
        CHECK(r->resolve_via == NULL || r->resolve_via->kind == UPSTREAM_TLS);
    }
}

static void set_addr(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    memset(ss, 0, sizeof *ss);
    if (strchr(ip, ':') == NULL) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)ss;

        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        CHECK(inet_pton(AF_INET, ip, &in4->sin_addr) == 1);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        CHECK(inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1);
    }
}

static void check_verdict(const struct config *cfg, const struct policy_verdict *v)
{
    bool found = false;

    CHECK(v->action == VERDICT_PASS || v->action == VERDICT_BLOCK || v->action == VERDICT_TUNNEL);
    CHECK(strcmp(policy_action_name(v->action), "?") != 0);
    CHECK((v->action == VERDICT_TUNNEL) == (v->via != NULL));
    CHECK(v->resolve_via == NULL);
    CHECK(v->rule != NULL);
    CHECK(v->log == LOG_LEVEL_NONE || v->log == LOG_LEVEL_META || v->log == LOG_LEVEL_FULL);
    CHECK(v->reason == NULL || v->action == VERDICT_BLOCK);
    /* "(no rule)" and the built-in refusals ("(local destination)", ...) block, from no file */
    if (v->rule[0] == '(') {
        CHECK(v->action == VERDICT_BLOCK && v->file == NULL);
        return;
    }
    for (size_t i = 0; i < cfg->n_rules && !found; i++) {
        found = strcmp(cfg->rules[i].name, v->rule) == 0;
    }
    CHECK(found);
}

/* A few connections a configuration may talk about: loopback and documentation addresses,
 * a name to resolve, a user, each listener in turn. */
static void check_policy(struct config *cfg)
{
    static const struct {
        const char *client, *user, *host, *dest;
        uint16_t port;
    } conns[] = {
        {"127.0.0.1", NULL, "example.com", "93.184.215.14", 443},
        {"127.0.1.5", "alice", "www.example.org", "10.20.0.5", 25},
        {"::1", NULL, NULL, "2001:db8::1", 80},
        {"192.0.2.7", "bob", "localhost", "127.0.0.1", 8080},
    };
    static const char codes[][3] = {"DE", "CN", "US", "ZZ"};
    const char *names[8];
    struct policy_snapshot *snap = policy_snapshot_new(cfg, 7);

    CHECK(snap != NULL);
    CHECK(policy_snapshot_acquire(snap) == snap);
    policy_snapshot_release(snap);
    CHECK(policy_snapshot_generation(snap) == 7);
    cfg = (struct config *)policy_snapshot_config(snap);
    for (size_t i = 0; i < sizeof conns / sizeof conns[0]; i++) {
        struct sockaddr_storage client, dest;
        struct policy_request req;
        struct policy_verdict v;
        enum policy_outcome outcome;

        memset(&req, 0, sizeof req);
        set_addr(&client, conns[i].client, 40000);
        set_addr(&dest, conns[i].dest, conns[i].port);
        req.client = (const struct sockaddr *)&client;
        policy_classify(snap, req.client, &req.client_geo);
        req.listener = cfg->listeners[i % cfg->n_listeners].name;
        req.user = conns[i].user;
        req.host = conns[i].host;
        req.port = conns[i].port;
        if (req.host != NULL) { /* first as a name the proxy has not resolved */
            outcome = policy_decide(snap, &req, &v);
            CHECK(outcome == POLICY_DECIDED || outcome == POLICY_NEED_ADDRESS);
            if (outcome == POLICY_DECIDED) {
                check_verdict(cfg, &v);
            } else {
                CHECK(v.resolve_via == NULL || v.resolve_via->kind == UPSTREAM_TLS);
            }
        }
        for (size_t k = 0; k < cfg->n_upstreams; k++) { /* no egress database answer crashes */
            policy_egress_matches(snap, &cfg->upstreams[k], req.client);
        }
        req.dest = (const struct sockaddr *)&dest;
        policy_classify(snap, req.dest, &req.dest_geo);
        CHECK(policy_decide(snap, &req, &v) == POLICY_DECIDED);
        check_verdict(cfg, &v);
    }
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        size_t total = policy_regions_of(snap, codes[i], names, 8);

        for (size_t k = 0; k < total && k < 8; k++) {
            CHECK(names[k] != NULL && names[k][0] != '\0');
        }
    }
    policy_snapshot_release(snap); /* frees cfg */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config_diags diags;
    struct config *cfg = (struct config *)&diags; /* must be overwritten */
    char *text;
    int ret;

    if (!input_is_confined(data, size)) {
        return -1;
    }
    /* Exactly size + 1 bytes, so ASan sees a read past the terminating NUL. */
    text = malloc(size + 1);
    CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';

    ret = config_load_string(FUZZ_NAME, text, base_dir, &cfg, &diags);
    check_diags(&diags);
    if (ret == 0) {
        CHECK(cfg != NULL);
        CHECK(diags.errors == 0);
        check_config(cfg);
        check_policy(cfg); /* takes cfg */
    } else {
        CHECK(ret == -1);
        CHECK(cfg == NULL);
        CHECK(diags.errors >= 1 && diags.count >= 1);
    }
    free(text);
    return 0;
}
