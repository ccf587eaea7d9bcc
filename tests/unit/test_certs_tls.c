/* Unit tests for certs/tls_context.c: the tunnel's TLS contexts built from files made by
 * certs_ca_create/certs_issue in a temporary directory, the refusals with their messages, and
 * whole TLS 1.3 handshakes between a server and a client context over memory BIOs (no sockets):
 * good client, client of another CA, expired client, no client certificate, resumption. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "certs/certs.h"
#include "certs/tls_context.h"
#include "test_support.h"

#define DAY 86400

struct fixture {
    char dir[64];
    char ca[PATH_MAX];  /* dir/ca: CA "Test CA" with exit, client1, expired */
    char ca2[PATH_MAX]; /* dir/ca2: another CA with client2 */
    time_t now;
    char err[CERTS_ERR_MAX];
};

static struct fixture *fx; /* one set of files for every test: making keys takes a while */

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void issue(const char *ca_dir, const char *name, time_t not_before, int days)
{
    struct certs_issue_params p = {.name = name, .not_before = not_before, .days = days};

    if (certs_issue(ca_dir, &p, fx->err, sizeof fx->err) != 0)
        fail_msg("certs_issue %s: %s", name, fx->err);
}

static int group_setup(void **state)
{
    struct certs_ca_params ca = {.name = "Test CA"};
    struct certs_ca_params ca2 = {.name = "Other CA"};

    fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->now = time(NULL);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/geoproxy-test-tls-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->ca, sizeof fx->ca, "%s/ca", fx->dir);
    snprintf(fx->ca2, sizeof fx->ca2, "%s/ca2", fx->dir);
    ca.not_before = fx->now - 30 * DAY;
    assert_int_equal(certs_ca_create(fx->ca, &ca, fx->err, sizeof fx->err), 0);
    assert_int_equal(certs_ca_create(fx->ca2, &ca2, fx->err, sizeof fx->err), 0);
    issue(fx->ca, "exit", 0, 0);
    issue(fx->ca, "client1", 0, 0);
    issue(fx->ca, "expired", fx->now - 20 * DAY, 1);
    issue(fx->ca2, "client2", 0, 0);
    return 0;
}

static int group_teardown(void **state)
{
    nftw(fx->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* A file of the fixture: path("ca", "exit.pem"). */
static const char *path(const char *sub, const char *file)
{
    static char buf[4][PATH_MAX];
    static int next;
    char *out = buf[next++ % 4];

    if (file == NULL)
        return NULL;
    snprintf(out, PATH_MAX, "%s/%s/%s", fx->dir, sub, file);
    return out;
}

/* ---- building contexts ---------------------------------------------------------------------- */

struct context_case {
    const char *what;
    bool server;
    const char *cert, *key, *ca; /* files under dir/ca unless they start with "ca2/" */
    long now_offset;             /* seconds added to now */
    int code;
    const char *message; /* what follows the path of the file at fault */
    const char *message_file;
};

static const char *fixture_path(const char *spec)
{
    if (spec == NULL)
        return NULL;
    if (strncmp(spec, "ca2/", 4) == 0)
        return path("ca2", spec + 4);
    return path("ca", spec);
}

static const struct context_case context_cases[] = {
    {"server builds", true, "exit.pem", "exit.key", "ca.pem", 0, 0, NULL, NULL},
    {"client builds", false, "client1.pem", "client1.key", "ca.pem", 0, 0, NULL, NULL},
    {"client without certificate", false, NULL, NULL, "ca.pem", 0, 0, NULL, NULL},
    {"expired server certificate", true, "expired.pem", "expired.key", "ca.pem", 0, CERTS_E_EXPIRED,
     ": certificate 'CN=expired' expired at ", "expired.pem"},
    {"not yet valid client certificate", false, "client1.pem", "client1.key", "ca.pem", -40L * DAY,
     CERTS_E_NOT_YET_VALID, ": certificate 'CN=client1' is not valid yet: it starts at ",
     "client1.pem"},
    {"key of another certificate", true, "exit.pem", "client1.key", "ca.pem", 0,
     CERTS_E_KEY_MISMATCH, " does not belong to ", "client1.key"},
    {"leaf given as the CA", false, "client1.pem", "client1.key", "exit.pem", 0, CERTS_E_NOT_CA,
     ": not a CA certificate (no basicConstraints CA:TRUE): give the CA's certificate, ca.pem",
     "exit.pem"},
    {"missing CA file", true, "exit.pem", "exit.key", "nope.pem", 0, -ENOENT,
     ": cannot open: No such file or directory", "nope.pem"},
    {"certificate without key", false, "client1.pem", NULL, "ca.pem", 0, -EINVAL,
     ": a certificate needs its key, and a key its certificate", "client1.pem"},
};

static void test_contexts(void **state)
{
    for (size_t i = 0; i < N_ELEMS(context_cases); i++) {
        const struct context_case *c = &context_cases[i];
        const char *cert = fixture_path(c->cert), *key = fixture_path(c->key);
        const char *ca = fixture_path(c->ca);
        char expected[PATH_MAX + 256];
        SSL_CTX *ctx = (SSL_CTX *)1;
        time_t not_after = 1;
        int rc;

        fx->err[0] = '\0';
        if (c->server)
            rc = certs_tls_server_context(cert, key, ca, fx->now + c->now_offset, &ctx, &not_after,
                                          fx->err, sizeof fx->err);
        else
            rc = certs_tls_client_context(ca, cert, key, fx->now + c->now_offset, &ctx, &not_after,
                                          fx->err, sizeof fx->err);
        if (rc != c->code)
            fail_msg(": rc %d, expected %d (%s)", c->what, rc, c->code, fx->err);
        assert_int_equal(ERR_peek_error(), 0);
        if (c->code == 0) {
            assert_non_null(ctx);
            assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
            assert_int_equal(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
            if (c->server) {
                assert_int_equal(SSL_CTX_get_verify_mode(ctx),
                                 SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
                assert_int_equal(sk_X509_NAME_num(SSL_CTX_get_client_CA_list(ctx)), 1);
                assert_int_equal(SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET, 0);
            } else {
                assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
                assert_true(SSL_CTX_get_session_cache_mode(ctx) & SSL_SESS_CACHE_CLIENT);
            }
            if (cert != NULL)
                assert_true(not_after > fx->now + 800L * DAY && not_after < fx->now + 830L * DAY);
            else
                assert_int_equal(not_after, 0);
            SSL_CTX_free(ctx);
            continue;
        }
        assert_null(ctx);
        assert_int_equal(not_after, 0);
        snprintf(expected, sizeof expected, "%s%s", fixture_path(c->message_file), c->message);
        if (strncmp(fx->err, expected, strlen(expected)) != 0)
            fail_msg("%s:\n got      '%s'\n expected '%s...'", c->what, fx->err, expected);
    }
}

static void test_key_file_mode(void **state)
{
    const char *key = path("ca", "client1.key");
    char expected[PATH_MAX * 2 + 128];
    SSL_CTX *ctx = NULL;

    assert_int_equal(chmod(key, 0644), 0);
    int rc = certs_tls_client_context(path("ca", "ca.pem"), path("ca", "client1.pem"), key, fx->now,
                                      &ctx, NULL, fx->err, sizeof fx->err);
    assert_int_equal(chmod(key, 0600), 0);
    assert_int_equal(rc, CERTS_E_KEY_EXPOSED);
    assert_null(ctx);
    snprintf(expected, sizeof expected,
             "%s: refusing a private key that group or others can access (mode 0644): run "
             "'chmod 600 %s'",
             key, key);
    assert_string_equal(fx->err, expected);
}

/* ---- handshakes ----------------------------------------------------------------------------- */

struct tls_pair {
    SSL *server, *client;
};

static SSL *ssl_over_memory(SSL_CTX *ctx, bool server)
{
    SSL *ssl = SSL_new(ctx);
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());

    assert_non_null(ssl);
    assert_non_null(in);
    assert_non_null(out);
    BIO_set_mem_eof_return(in, -1); /* empty means "not yet", not end of stream */
    SSL_set_bio(ssl, in, out);
    if (server)
        SSL_set_accept_state(ssl);
    else
        SSL_set_connect_state(ssl);
    return ssl;
}

/* Moves what 'from' wrote into what 'to' reads. */
static void ssl_pump(SSL *from, SSL *to)
{
    char buf[4096];
    int n;

    while ((n = BIO_read(SSL_get_wbio(from), buf, sizeof buf)) > 0)
        assert_int_equal(BIO_write(SSL_get_rbio(to), buf, n), n);
}

/* One handshake step: 1 done, 0 wants more bytes, -1 failed. */
static int ssl_step(SSL *ssl)
{
    int rc;

    if (SSL_is_init_finished(ssl))
        return 1;
    rc = SSL_do_handshake(ssl);
    if (rc == 1)
        return 1;
    rc = SSL_get_error(ssl, rc);
    return rc == SSL_ERROR_WANT_READ || rc == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

/* Runs a handshake; true when both ends finished it. The client then reads what the server sent
 * after it (session tickets, or the alert that refuses its certificate). */
static bool handshake(SSL_CTX *server_ctx, SSL_CTX *client_ctx, SSL_SESSION *resume,
                      struct tls_pair *p)
{
    int s = 0, c = 0;
    char byte;

    p->server = ssl_over_memory(server_ctx, true);
    p->client = ssl_over_memory(client_ctx, false);
    if (resume != NULL)
        assert_int_equal(SSL_set_session(p->client, resume), 1);
    for (int round = 0; round < 16 && (s != 1 || c != 1) && s >= 0 && c >= 0; round++) {
        c = ssl_step(p->client);
        ssl_pump(p->client, p->server);
        s = ssl_step(p->server);
        ssl_pump(p->server, p->client);
    }
    if (c == 1)
        c = SSL_read(p->client, &byte, 1) > 0 || SSL_get_error(p->client, -1) == SSL_ERROR_WANT_READ
                ? 1
                : -1;
    ERR_clear_error();
    return s == 1 && c == 1;
}

/* Closes with close_notify: an SSL freed without it marks its session not resumable. */
static void tls_pair_free(struct tls_pair *p)
{
    if (SSL_is_init_finished(p->client))
        SSL_shutdown(p->client);
    if (SSL_is_init_finished(p->server))
        SSL_shutdown(p->server);
    ERR_clear_error();
    SSL_free(p->server);
    SSL_free(p->client);
}

static SSL_CTX *server_ctx(void)
{
    SSL_CTX *ctx = NULL;

    if (certs_tls_server_context(path("ca", "exit.pem"), path("ca", "exit.key"),
                                 path("ca", "ca.pem"), fx->now, &ctx, NULL, fx->err,
                                 sizeof fx->err) != 0)
        fail_msg("server context: %s", fx->err);
    return ctx;
}

struct handshake_case {
    const char *what;
    const char *cert, *key; /* client certificate (fixture_path), or NULL */
    long now_offset;        /* when the client's context is built */
    bool ok;
    const char *described; /* the start of certs_describe_verify_failure on the server */
};

static const struct handshake_case handshake_cases[] = {
    {"good client", "client1.pem", "client1.key", 0, true, "ok (CN=client1, notAfter "},
    {"client of another CA", "ca2/client2.pem", "ca2/client2.key", 0, false,
     "unable to get local issuer certificate (CN=client2, notAfter "},
    {"expired client", "expired.pem", "expired.key", -20L * DAY + DAY / 2, false,
     "certificate has expired (CN=expired, notAfter "},
    {"no client certificate", NULL, NULL, 0, false, "no certificate presented"},
};

static void test_handshakes(void **state)
{
    SSL_CTX *server = server_ctx();

    for (size_t i = 0; i < N_ELEMS(handshake_cases); i++) {
        const struct handshake_case *c = &handshake_cases[i];
        char text[512];
        SSL_CTX *client = NULL;
        struct tls_pair p;

        if (certs_tls_client_context(path("ca", "ca.pem"), fixture_path(c->cert),
                                     fixture_path(c->key), fx->now + c->now_offset, &client, NULL,
                                     fx->err, sizeof fx->err) != 0)
            fail_msg(": client context: %s", c->what, fx->err);
        if (handshake(server, client, NULL, &p) != c->ok)
            fail_msg(": the handshake %s", c->what, c->ok ? "failed" : "succeeded");
        certs_describe_verify_failure(p.server, text, sizeof text);
        if (strncmp(text, c->described, strlen(c->described)) != 0)
            fail_msg(": described as '%s', expected '%s...'", c->what, text, c->described);
        if (strcmp(c->described, "no certificate presented") != 0)
            assert_string_equal(text + strlen(text) - 2, "Z)");
        /* the client saw the server's certificate, and it verified */
        assert_int_equal(SSL_get_verify_result(p.client), X509_V_OK);
        certs_describe_verify_failure(p.client, text, sizeof text);
        assert_true(strncmp(text, "ok (CN=exit, notAfter ", 22) == 0);
        tls_pair_free(&p);
        SSL_CTX_free(client);
    }
    SSL_CTX_free(server);
}

static void test_resumption_with_client_certificate(void **state)
{
    SSL_CTX *server = server_ctx();
    SSL_CTX *client = NULL;
    SSL_SESSION *session;
    struct tls_pair p;

    assert_int_equal(certs_tls_client_context(path("ca", "ca.pem"), path("ca", "client1.pem"),
                                              path("ca", "client1.key"), fx->now, &client, NULL,
                                              fx->err, sizeof fx->err),
                     0);
    assert_true(handshake(server, client, NULL, &p));
    assert_int_equal(SSL_session_reused(p.client), 0);
    session = SSL_get1_session(p.client);
    assert_non_null(session);
    assert_true(SSL_SESSION_is_resumable(session));
    tls_pair_free(&p);

    fprintf(stderr, "has_ticket %d ticket_lifetime %lu\n", SSL_SESSION_has_ticket(session),
            SSL_SESSION_get_ticket_lifetime_hint(session));
    assert_true(handshake(server, client, session, &p));
    fprintf(stderr, "num_tickets %zu srv reused %d hits %ld misses %ld timeouts %ld cb %ld\n",
            SSL_CTX_get_num_tickets(server), SSL_session_reused(p.server),
            SSL_CTX_sess_hits(server), SSL_CTX_sess_misses(server), SSL_CTX_sess_timeouts(server),
            SSL_CTX_sess_cb_hits(server));
    assert_int_equal(SSL_session_reused(p.client), 1);
    assert_int_equal(SSL_session_reused(p.server), 1);
    /* the resumed session still knows who the client is */
    assert_non_null(SSL_get0_peer_certificate(p.server));
    tls_pair_free(&p);
    SSL_SESSION_free(session);
    SSL_CTX_free(client);
    SSL_CTX_free(server);
}

static void test_pins(void **state)
{
    SSL_CTX *server = server_ctx();
    SSL_CTX *client = NULL;
    char exit_pin[CERTS_PIN_MAX], other_pin[CERTS_PIN_MAX];
    X509 *cert = NULL;
    struct tls_pair p;

    assert_int_equal(certs_load_cert(path("ca", "exit.pem"), &cert, fx->err, sizeof fx->err), 0);
    assert_int_equal(certs_pin_of_cert(cert, exit_pin), 0);
    X509_free(cert);
    assert_int_equal(certs_load_cert(path("ca", "client1.pem"), &cert, fx->err, sizeof fx->err), 0);
    assert_int_equal(certs_pin_of_cert(cert, other_pin), 0);
    X509_free(cert);
    assert_int_equal(certs_tls_client_context(path("ca", "ca.pem"), path("ca", "client1.pem"),
                                              path("ca", "client1.key"), fx->now, &client, NULL,
                                              fx->err, sizeof fx->err),
                     0);
    /* before any handshake there is no peer: nothing matches */
    p.client = SSL_new(client);
    assert_false(certs_ssl_peer_matches_pin(p.client, exit_pin));
    SSL_free(p.client);

    assert_true(handshake(server, client, NULL, &p));
    assert_true(certs_ssl_peer_matches_pin(p.client, exit_pin));
    assert_false(certs_ssl_peer_matches_pin(p.client, other_pin));
    assert_false(certs_ssl_peer_matches_pin(p.client, "sha256//AAAA"));
    assert_false(certs_ssl_peer_matches_pin(p.client, NULL));
    assert_true(certs_ssl_peer_matches_pin(p.server, other_pin)); /* the client's own */
    tls_pair_free(&p);
    SSL_CTX_free(client);
    SSL_CTX_free(server);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contexts),
        cmocka_unit_test(test_key_file_mode),
        cmocka_unit_test(test_handshakes),
        cmocka_unit_test(test_resumption_with_client_certificate),
        cmocka_unit_test(test_pins),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
