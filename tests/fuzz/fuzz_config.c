/* libFuzzer target for the configuration language (policy/config.h), through its public entry
 * config_load_string: lexer, directives, values, includes, the whole-configuration checks and
 * config_free. The promises of the header are checked, so a broken one is a crash:
 *   - 0 with a config and no error diagnostic, or -1 with NULL and at least one error;
 *   - every diagnostic is NUL-terminated inside its buffer and names the file it is about;
 *   - an accepted configuration has 1..CONFIG_MAX_LISTENERS listeners, names that fit, and
 *     addresses config_format_addr can print;
 *   - nothing leaks (LeakSanitizer runs at the end of each input when libFuzzer is asked to).
 *
 * Files. 'include', 'users FILE' and 'geoip country|asn FILE' open files, so an input could make
 * the parser read anything on the machine. Two guards keep every path inside an empty directory
 * that this target makes at start (mkdtemp under $TMPDIR) and removes at exit:
 *   - base_dir is that directory, so a relative path names nothing that exists and every
 *     include or users file fails cleanly ("cannot include ...: No such file or directory");
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
#include <unistd.h>

#include "policy/config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_config: check failed at %s:%d: %s\n", __FILE__, __LINE__,        \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define FUZZ_NAME "fuzz.conf"

static char base_dir[4096];

#ifdef GEOPROXY_DEFAULT_GEOIP_COUNTRY
static const char default_geoip[] = GEOPROXY_DEFAULT_GEOIP_COUNTRY;
#else
static const char default_geoip[] = "<no default country database>";
#endif

static void remove_base_dir(void)
{
    if (base_dir[0] != '\0') {
        rmdir(base_dir); /* empty unless the parser created something: then it stays to be seen */
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
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
            CHECK((unsigned char)d->text[k] >= 0x20 && d->text[k] != 0x7f);
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
        CHECK(l->users == NULL); /* no users file exists under base_dir */
    }
    for (size_t i = 0; i < cfg->n_resolvers; i++) {
        config_format_addr(&cfg->resolvers[i], addr, sizeof addr);
        CHECK(strnlen(addr, sizeof addr) < sizeof addr);
    }
    for (size_t i = 0; i < cfg->n_rules; i++) {
        const struct config_rule *r = &cfg->rules[i];

        CHECK(strnlen(r->name, sizeof r->name) > 0);
        CHECK(strnlen(r->name, sizeof r->name) < sizeof r->name);
        CHECK(r->action == RULE_PASS || r->action == RULE_BLOCK);
        CHECK(r->reason == NULL || r->action == RULE_BLOCK);
    }
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
    } else {
        CHECK(ret == -1);
        CHECK(cfg == NULL);
        CHECK(diags.errors >= 1 && diags.count >= 1);
    }
    config_free(cfg);
    free(text);
    return 0;
}
