/* Unit tests for certs/: a CA and certificates made in a temporary directory, checked with
 * OpenSSL's own verifier and accessors rather than with the library that made them: chains,
 * names, key usages, file modes, refusals to overwrite, pins, validity, key checks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"

#define DAY 86400

struct fixture {
    char dir[64];         /* the test's temporary directory */
    char ca[PATH_MAX];    /* dir/ca */
    char nodes[PATH_MAX]; /* dir/nodes */
    char err[CERTS_ERR_MAX];
};

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/geoproxy-test-certs-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->ca, sizeof f->ca, "%s/ca", f->dir);
    snprintf(f->nodes, sizeof f->nodes, "%s/nodes", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    nftw(f->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void path_in(char *out, const char *dir, const char *file)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, file);
    assert_true(n > 0 && n < PATH_MAX);
}

static X509 *read_cert(const char *dir, const char *file)
{
    char path[PATH_MAX];
    path_in(path, dir, file);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        fail_msg("%s: %s", path, strerror(errno));
    X509 *cert = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(cert);
    return cert;
}

/* The whole file, NUL-terminated (small files only). */
static char *read_text(const char *dir, const char *file)
{
    char path[PATH_MAX];
    static char text[16384];
    path_in(path, dir, file);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        fail_msg("%s: %s", path, strerror(errno));
    size_t n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[n] = '\0';
    return text;
}

static mode_t file_mode(const char *dir, const char *file)
{
    char path[PATH_MAX];
    struct stat st;
    path_in(path, dir, file);
    if (stat(path, &st) != 0)
        fail_msg("%s: %s", path, strerror(errno));
    return st.st_mode & 07777;
}

static bool file_exists(const char *dir, const char *file)
{
    char path[PATH_MAX];
    path_in(path, dir, file);
    return access(path, F_OK) == 0;
}

static size_t count(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* X509_verify_cert against a store holding only 'ca', for 'purpose', at time 'at' (0: now).
 * Returns the verify error (X509_V_OK when the chain is good). */
static int verify(X509 *ca, X509 *leaf, int purpose, time_t at)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int rc;

    assert_non_null(store);
    assert_non_null(ctx);
    assert_int_equal(X509_STORE_add_cert(store, ca), 1);
    assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
    assert_int_equal(X509_STORE_CTX_set_purpose(ctx, purpose), 1);
    if (at != 0)
        X509_STORE_CTX_set_time(ctx, 0, at);
    rc = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return rc;
}

static bool ext_is_critical(X509 *cert, int nid)
{
    int idx = X509_get_ext_by_NID(cert, nid, -1);
    assert_true(idx >= 0);
    return X509_EXTENSION_get_critical(X509_get_ext(cert, idx)) == 1;
}

/* The pin computed without the library: the certificate's own SubjectPublicKeyInfo structure
 * in DER, SHA-256, base64 through a BIO. */
static void independent_pin(X509 *cert, char *out, size_t out_len)
{
    unsigned char *der = NULL, md[SHA256_DIGEST_LENGTH];
    int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    assert_true(len > 0);
    SHA256(der, (size_t)len, md);
    OPENSSL_free(der);

    BIO *b64 = BIO_new(BIO_f_base64()), *mem = BIO_new(BIO_s_mem());
    BIO_set_flags(b64, BIO_FLAGS_BASE64_NO_NL);
    BIO_push(b64, mem);
    assert_int_equal(BIO_write(b64, md, sizeof md), (int)sizeof md);
    assert_int_equal(BIO_flush(b64), 1);
    char *data;
    long n = BIO_get_mem_data(mem, &data);
    snprintf(out, out_len, "sha256//%.*s", (int)n, data);
    BIO_free_all(b64);
}

static void make_ca(struct fixture *f, enum certs_key_type type)
{
    struct certs_ca_params p = {.key_type = type};
    if (certs_ca_create(f->ca, &p, f->err, sizeof f->err) != 0)
        fail_msg("certs_ca_create: %s", f->err);
}

static void issue(struct fixture *f, const char *name, const char *const *sans, size_t n_sans,
                  enum certs_key_type type)
{
    struct certs_issue_params p = {
        .name = name, .sans = sans, .n_sans = n_sans, .key_type = type, .out_dir = f->nodes};
    if (certs_issue(f->ca, &p, f->err, sizeof f->err) != 0)
        fail_msg("certs_issue %s: %s", name, f->err);
}

/* One CA and one node of each key type pair: the chain verifies for both TLS roles, and the
 * certificates carry exactly the extensions promised. */
static void check_chain(struct fixture *f, enum certs_key_type ca_type,
                        enum certs_key_type leaf_type)
{
    static const char *const sans[] = {"exit1.example.net", "192.0.2.7", "2001:db8::7"};
    make_ca(f, ca_type);
    issue(f, "exit1", sans, 3, leaf_type);
    X509 *ca = read_cert(f->ca, "ca.pem");
    X509 *leaf = read_cert(f->nodes, "exit1.pem");

    assert_int_equal(verify(ca, leaf, X509_PURPOSE_SSL_SERVER, 0), X509_V_OK);
    assert_int_equal(verify(ca, leaf, X509_PURPOSE_SSL_CLIENT, 0), X509_V_OK);

    /* The CA: CA:TRUE (critical), keyCertSign and cRLSign (critical), a key identifier. */
    assert_int_equal(X509_check_ca(ca), 1);
    assert_true(ext_is_critical(ca, NID_basic_constraints));
    assert_true(ext_is_critical(ca, NID_key_usage));
    assert_int_equal(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    assert_non_null(X509_get0_subject_key_id(ca));
    assert_int_equal(X509_check_issued(ca, ca), X509_V_OK);
    assert_int_equal(X509_verify(ca, X509_get0_pubkey(ca)), 1);

    /* The leaf: not a CA, digitalSignature, serverAuth + clientAuth, names, AKI = CA's SKI. */
    assert_int_equal(X509_check_ca(leaf), 0);
    assert_true(ext_is_critical(leaf, NID_basic_constraints));
    assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER | XKU_SSL_CLIENT);
    assert_non_null(X509_get0_authority_key_id(leaf));
    assert_int_equal(
        ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf), X509_get0_subject_key_id(ca)), 0);
    assert_int_equal(X509_check_host(leaf, "exit1.example.net", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(leaf, "exit2.example.net", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(leaf, "192.0.2.7", 0), 1);
    assert_int_equal(X509_check_ip_asc(leaf, "2001:db8::7", 0), 1);
    assert_int_equal(X509_check_ip_asc(leaf, "192.0.2.8", 0), 0);
    assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(ca)), 0);

    /* Serials: positive, at most 128 bits, different. */
    BIGNUM *s1 = ASN1_INTEGER_to_BN(X509_get0_serialNumber(ca), NULL);
    BIGNUM *s2 = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
    assert_true(BN_num_bits(s1) <= 128 && BN_num_bits(s1) > 64);
    assert_false(BN_is_negative(s1) || BN_is_zero(s1));
    assert_int_not_equal(BN_cmp(s1, s2), 0);
    BN_free(s1);
    BN_free(s2);

    /* What certs_inspect reads back. */
    struct certs_info info;
    assert_int_equal(certs_inspect(leaf, &info, f->err, sizeof f->err), 0);
    assert_string_equal(info.subject, "CN=exit1");
    assert_string_equal(info.sans, "DNS:exit1.example.net, IP:192.0.2.7, IP:2001:db8::7");
    assert_string_equal(info.usage, "serverAuth, clientAuth");
    assert_string_equal(info.key_type, leaf_type == CERTS_KEY_ED25519 ? "Ed25519" : "EC P-256");
    assert_false(info.is_ca);
    assert_int_equal(info.not_after - info.not_before, (time_t)CERTS_LEAF_DAYS_DEFAULT * DAY);
    assert_int_equal(certs_inspect(ca, &info, f->err, sizeof f->err), 0);
    assert_true(info.is_ca);
    assert_string_equal(info.sans, "");
    assert_int_equal(strncmp(info.subject, "CN=geoproxy CA ", 15), 0);
    assert_int_equal(strlen(info.subject), 15 + 8); /* and 8 hex digits of the key id */
    assert_int_equal(info.not_after - info.not_before, (time_t)CERTS_CA_DAYS_DEFAULT * DAY);
    assert_string_equal(info.key_type, ca_type == CERTS_KEY_ED25519 ? "Ed25519" : "EC P-256");

    /* The key loads (mode 0600) and matches. */
    char cert_path[PATH_MAX], key_path[PATH_MAX];
    X509 *c = NULL;
    EVP_PKEY *k = NULL;
    path_in(cert_path, f->nodes, "exit1.pem");
    path_in(key_path, f->nodes, "exit1.key");
    if (certs_load_pair(cert_path, key_path, &c, &k, f->err, sizeof f->err) != 0)
        fail_msg("certs_load_pair: %s", f->err);
    X509_free(c);
    EVP_PKEY_free(k);
    X509_free(leaf);
    X509_free(ca);
}

static void test_chain_ec(void **state)
{
    check_chain(*state, CERTS_KEY_EC_P256, CERTS_KEY_EC_P256);
}

static void test_chain_ed25519(void **state)
{
    check_chain(*state, CERTS_KEY_ED25519, CERTS_KEY_ED25519);
}

static void test_chain_mixed(void **state)
{
    check_chain(*state, CERTS_KEY_EC_P256, CERTS_KEY_ED25519);
}

/* Another CA's certificate does not verify against this one. */
static void test_foreign_ca(void **state)
{
    struct fixture *f = *state;
    char other[PATH_MAX];
    struct certs_ca_params p = {0};
    struct certs_issue_params ip = {.name = "exit1"};

    make_ca(f, CERTS_KEY_EC_P256);
    path_in(other, f->dir, "other");
    assert_int_equal(certs_ca_create(other, &p, f->err, sizeof f->err), 0);
    assert_int_equal(certs_issue(other, &ip, f->err, sizeof f->err), 0);
    X509 *ca = read_cert(f->ca, "ca.pem");
    X509 *foreign = read_cert(other, "exit1.pem");
    assert_int_not_equal(verify(ca, foreign, X509_PURPOSE_SSL_CLIENT, 0), X509_V_OK);
    X509_free(foreign);
    X509_free(ca);
}

/* Key files are created 0600 whatever the umask; the key is PKCS#8; a leaf file holds the leaf
 * alone. */
static void test_files(void **state)
{
    struct fixture *f = *state;
    mode_t old = umask(0); /* the most permissive umask: modes come from open() alone */

    make_ca(f, CERTS_KEY_EC_P256);
    issue(f, "exit1", NULL, 0, CERTS_KEY_EC_P256);
    umask(old);
    assert_int_equal(file_mode(f->ca, "ca.key"), 0600);
    assert_int_equal(file_mode(f->nodes, "exit1.key"), 0600);
    assert_int_equal(file_mode(f->ca, "ca.pem"), 0644);
    assert_int_equal(file_mode(f->nodes, "exit1.pem"), 0644);
    assert_int_equal(file_mode(f->dir, "ca"), 0700);
    const char *key = read_text(f->nodes, "exit1.key");
    assert_int_equal(strncmp(key, "-----BEGIN PRIVATE KEY-----\n", 28), 0);
    assert_int_equal(count(read_text(f->ca, "ca.key"), "-----BEGIN PRIVATE KEY-----"), 1);
    const char *pem = read_text(f->nodes, "exit1.pem");
    assert_int_equal(count(pem, "-----BEGIN"), 1);
    assert_int_equal(count(pem, "-----BEGIN CERTIFICATE-----"), 1);
}

/* Nothing is overwritten: a second CA, a second certificate of the same name, or a name whose
 * key alone exists; and a refusal leaves no new file. */
static void test_no_overwrite(void **state)
{
    struct fixture *f = *state;
    struct certs_ca_params cp = {0};
    struct certs_issue_params ip = {.name = "exit1", .out_dir = f->nodes};
    char before[16384], path[PATH_MAX];

    make_ca(f, CERTS_KEY_EC_P256);
    snprintf(before, sizeof before, "%s", read_text(f->ca, "ca.key"));
    assert_int_equal(certs_ca_create(f->ca, &cp, f->err, sizeof f->err), -EEXIST);
    assert_non_null(strstr(f->err, "ca.pem: already exists"));
    assert_string_equal(read_text(f->ca, "ca.key"), before);

    /* Only the key of a CA left: still refused. */
    path_in(path, f->ca, "ca.pem");
    assert_int_equal(unlink(path), 0);
    assert_int_equal(certs_ca_create(f->ca, &cp, f->err, sizeof f->err), -EEXIST);
    assert_non_null(strstr(f->err, "ca.key: already exists"));
    assert_false(file_exists(f->ca, "ca.pem"));
    assert_string_equal(read_text(f->ca, "ca.key"), before);

    nftw(f->ca, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    make_ca(f, CERTS_KEY_EC_P256);
    issue(f, "exit1", NULL, 0, CERTS_KEY_EC_P256);
    snprintf(before, sizeof before, "%s", read_text(f->nodes, "exit1.pem"));
    assert_int_equal(certs_issue(f->ca, &ip, f->err, sizeof f->err), -EEXIST);
    assert_non_null(strstr(f->err, "exit1.pem: already exists"));
    assert_string_equal(read_text(f->nodes, "exit1.pem"), before);

    /* exit2.key exists (say, from an aborted copy): exit2.pem is not made either. */
    path_in(path, f->nodes, "exit2.key");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    ip.name = "exit2";
    assert_int_equal(certs_issue(f->ca, &ip, f->err, sizeof f->err), -EEXIST);
    assert_non_null(strstr(f->err, "exit2.key: already exists"));
    assert_false(file_exists(f->nodes, "exit2.pem"));
}

/* The pin: certs_pin_of_cert and certs_inspect agree with one computed independently, and the
 * key file gives the same pin as its certificate. */
static void test_pin(void **state)
{
    struct fixture *f = *state;
    char expected[CERTS_PIN_MAX + 16], pin[CERTS_PIN_MAX], path[PATH_MAX];
    struct certs_info info;
    EVP_PKEY *key = NULL;

    make_ca(f, CERTS_KEY_EC_P256);
    issue(f, "exit1", NULL, 0, CERTS_KEY_EC_P256);
    issue(f, "exit2", NULL, 0, CERTS_KEY_ED25519);
    const char *names[] = {"exit1.pem", "exit2.pem"};
    for (size_t i = 0; i < 2; i++) {
        X509 *cert = read_cert(f->nodes, names[i]);
        independent_pin(cert, expected, sizeof expected);
        assert_int_equal(strlen(expected), 8 + 44);
        assert_int_equal(certs_pin_of_cert(cert, pin), 0);
        assert_string_equal(pin, expected);
        assert_int_equal(certs_inspect(cert, &info, f->err, sizeof f->err), 0);
        assert_string_equal(info.pin, expected);
        X509_free(cert);
    }
    path_in(path, f->nodes, "exit1.key");
    assert_int_equal(certs_load_key(path, &key, f->err, sizeof f->err), 0);
    assert_int_equal(certs_pin_of_key(key, pin), 0);
    X509 *cert = read_cert(f->nodes, "exit1.pem");
    independent_pin(cert, expected, sizeof expected);
    assert_string_equal(pin, expected);
    X509_free(cert);
    EVP_PKEY_free(key);
}

/* Validity: a certificate issued in the past is reported expired, with its date; one issued in
 * the future is not valid yet; the verifier agrees; the boundaries are notBefore and notAfter
 * inclusive. */
static void test_validity(void **state)
{
    struct fixture *f = *state;
    time_t now = time(NULL);
    struct certs_issue_params old = {
        .name = "old", .out_dir = f->nodes, .not_before = now - 40 * DAY, .days = 10};
    struct certs_issue_params future = {
        .name = "future", .out_dir = f->nodes, .not_before = now + 2 * DAY, .days = 10};
    char when[CERTS_TIME_MAX];
    long days = 0;

    make_ca(f, CERTS_KEY_EC_P256);
    assert_int_equal(certs_issue(f->ca, &old, f->err, sizeof f->err), 0);
    assert_int_equal(certs_issue(f->ca, &future, f->err, sizeof f->err), 0);
    X509 *ca = read_cert(f->ca, "ca.pem");
    X509 *expired = read_cert(f->nodes, "old.pem");
    X509 *early = read_cert(f->nodes, "future.pem");

    assert_int_equal(certs_check_validity(expired, now, &days, f->err, sizeof f->err),
                     CERTS_E_EXPIRED);
    assert_int_equal(days, -30);
    certs_format_time(now - 30 * DAY, when);
    assert_non_null(strstr(f->err, "CN=old"));
    assert_non_null(strstr(f->err, "expired at"));
    assert_non_null(strstr(f->err, when));
    assert_non_null(strstr(f->err, "30 day(s) ago"));
    assert_int_equal(verify(ca, expired, X509_PURPOSE_SSL_CLIENT, 0), X509_V_ERR_CERT_HAS_EXPIRED);

    assert_int_equal(certs_check_validity(early, now, &days, f->err, sizeof f->err),
                     CERTS_E_NOT_YET_VALID);
    assert_int_equal(days, 12);
    certs_format_time(now + 2 * DAY, when);
    assert_non_null(strstr(f->err, "not valid yet"));
    assert_non_null(strstr(f->err, when));
    assert_int_equal(verify(ca, early, X509_PURPOSE_SSL_CLIENT, 0), X509_V_ERR_CERT_NOT_YET_VALID);

    /* Boundaries, against the verifier's own idea of them. */
    time_t nb = now + 2 * DAY, na = nb + 10 * DAY;
    assert_int_equal(certs_check_validity(early, nb, &days, f->err, sizeof f->err), 0);
    assert_int_equal(days, 10);
    assert_int_equal(certs_check_validity(early, nb - 1, NULL, f->err, sizeof f->err),
                     CERTS_E_NOT_YET_VALID);
    assert_int_equal(certs_check_validity(early, na, &days, f->err, sizeof f->err), 0);
    assert_int_equal(days, 0);
    assert_int_equal(certs_check_validity(early, na + 1, &days, f->err, sizeof f->err),
                     CERTS_E_EXPIRED);
    assert_int_equal(days, -1);
    assert_int_equal(verify(ca, early, X509_PURPOSE_SSL_CLIENT, nb + DAY), X509_V_OK);

    X509_free(early);
    X509_free(expired);
    X509_free(ca);
}

/* A key that is not the certificate's is refused, naming both files and both pins. */
static void test_key_mismatch(void **state)
{
    struct fixture *f = *state;
    char cert_path[PATH_MAX], key_path[PATH_MAX], pin_a[CERTS_PIN_MAX], pin_b[CERTS_PIN_MAX];
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;

    make_ca(f, CERTS_KEY_EC_P256);
    issue(f, "a", NULL, 0, CERTS_KEY_EC_P256);
    issue(f, "b", NULL, 0, CERTS_KEY_EC_P256);
    path_in(cert_path, f->nodes, "a.pem");
    path_in(key_path, f->nodes, "b.key");
    assert_int_equal(certs_load_pair(cert_path, key_path, &cert, &key, f->err, sizeof f->err),
                     CERTS_E_KEY_MISMATCH);
    assert_null(cert);
    assert_null(key);
    X509 *a = read_cert(f->nodes, "a.pem"), *b = read_cert(f->nodes, "b.pem");
    assert_int_equal(certs_pin_of_cert(a, pin_a), 0);
    assert_int_equal(certs_pin_of_cert(b, pin_b), 0);
    assert_non_null(strstr(f->err, cert_path));
    assert_non_null(strstr(f->err, key_path));
    assert_non_null(strstr(f->err, "does not belong to"));
    assert_non_null(strstr(f->err, pin_a));
    assert_non_null(strstr(f->err, pin_b));
    X509_free(a);
    X509_free(b);

    /* An Ed25519 key for an EC certificate: also a mismatch, not a crash. */
    issue(f, "c", NULL, 0, CERTS_KEY_ED25519);
    path_in(key_path, f->nodes, "c.key");
    assert_int_equal(certs_load_pair(cert_path, key_path, &cert, &key, f->err, sizeof f->err),
                     CERTS_E_KEY_MISMATCH);
}

/* Key files that group or others can access are refused with the file and the mode; 0400 is
 * fine; a CA whose key is exposed issues nothing. */
static void test_key_mode(void **state)
{
    struct fixture *f = *state;
    static const mode_t refused[] = {0640, 0604, 0660, 0644, 0610, 0601};
    char path[PATH_MAX], mode_text[16];
    EVP_PKEY *key = NULL;

    make_ca(f, CERTS_KEY_EC_P256);
    issue(f, "exit1", NULL, 0, CERTS_KEY_EC_P256);
    path_in(path, f->nodes, "exit1.key");
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_int_equal(chmod(path, refused[i]), 0);
        assert_int_equal(certs_load_key(path, &key, f->err, sizeof f->err), CERTS_E_KEY_EXPOSED);
        assert_null(key);
        snprintf(mode_text, sizeof mode_text, "(mode %04o)", (unsigned)refused[i]);
        assert_non_null(strstr(f->err, path));
        assert_non_null(strstr(f->err, mode_text));
        assert_non_null(strstr(f->err, "chmod 600"));
    }
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(certs_load_key(path, &key, f->err, sizeof f->err), 0);
    EVP_PKEY_free(key);

    path_in(path, f->ca, "ca.key");
    assert_int_equal(chmod(path, 0640), 0);
    struct certs_issue_params ip = {.name = "exit2", .out_dir = f->nodes};
    assert_int_equal(certs_issue(f->ca, &ip, f->err, sizeof f->err), CERTS_E_KEY_EXPOSED);
    assert_non_null(strstr(f->err, "ca.key"));
    assert_false(file_exists(f->nodes, "exit2.pem"));
    assert_false(file_exists(f->nodes, "exit2.key"));
}

/* Bad input is refused before anything is written, with a message saying what was wrong. */
static void test_refusals(void **state)
{
    struct fixture *f = *state;
    static const char *const bad_san[] = {"good.example", "bad_name.example"};
    struct certs_issue_params ip = {.name = "x", .out_dir = f->nodes};
    struct certs_ca_params cp = {.days = -1};
    char other[PATH_MAX];

    path_in(other, f->dir, "other");
    assert_int_equal(certs_ca_create(other, &cp, f->err, sizeof f->err), -EINVAL);
    assert_non_null(strstr(f->err, "-1 days"));
    cp.days = CERTS_DAYS_MAX + 1;
    assert_int_equal(certs_ca_create(other, &cp, f->err, sizeof f->err), -EINVAL);
    assert_false(file_exists(f->dir, "other"));

    /* No CA yet. */
    assert_int_equal(certs_issue(f->ca, &ip, f->err, sizeof f->err), -ENOENT);
    assert_non_null(strstr(f->err, "ca.pem: cannot open"));

    cp.days = 30;
    assert_int_equal(certs_ca_create(f->ca, &cp, f->err, sizeof f->err), 0);
    ip.name = "../escape";
    assert_int_equal(certs_issue(f->ca, &ip, f->err, sizeof f->err), -EINVAL);
    assert_non_null(strstr(f->err, "'../escape' cannot name a certificate"));
    ip.name = "x";
    ip.sans = bad_san;
    ip.n_sans = 2;
    assert_int_equal(certs_issue(f->ca, &ip, f->err, sizeof f->err), -EINVAL);
    assert_non_null(strstr(f->err, "'bad_name.example'"));
    ip.n_sans = 0;
    ip.days = 31; /* outlives the CA */
    assert_int_equal(certs_issue(f->ca, &ip, f->err, sizeof f->err), -EINVAL);
    assert_non_null(strstr(f->err, "after its CA expires"));
    /* 30 days, or 29 when a second passed between making the CA and this */
    assert_true(strstr(f->err, "at most 30 days") != NULL ||
                strstr(f->err, "at most 29 days") != NULL);
    assert_false(file_exists(f->dir, "nodes"));

    /* An expired CA signs nothing. */
    struct certs_ca_params old = {.not_before = time(NULL) - 20 * DAY, .days = 10};
    assert_int_equal(certs_ca_create(other, &old, f->err, sizeof f->err), 0);
    ip.days = 1;
    assert_int_equal(certs_issue(other, &ip, f->err, sizeof f->err), CERTS_E_EXPIRED);
    assert_non_null(strstr(f->err, "ca.pem: certificate"));
    assert_non_null(strstr(f->err, "expired"));

    /* A leaf is not a CA. */
    char leaf_as_ca[PATH_MAX], src[PATH_MAX], dst[PATH_MAX];
    ip.days = 0;
    ip.out_dir = NULL;
    ip.name = "leaf";
    assert_int_equal(certs_issue(f->ca, &ip, f->err, sizeof f->err), -EINVAL); /* 825 > 30 */
    ip.days = 5;
    assert_int_equal(certs_issue(f->ca, &ip, f->err, sizeof f->err), 0);
    path_in(leaf_as_ca, f->dir, "leafca");
    assert_int_equal(mkdir(leaf_as_ca, 0700), 0);
    path_in(src, f->ca, "leaf.pem");
    path_in(dst, leaf_as_ca, "ca.pem");
    assert_int_equal(rename(src, dst), 0);
    path_in(src, f->ca, "leaf.key");
    path_in(dst, leaf_as_ca, "ca.key");
    assert_int_equal(rename(src, dst), 0);
    ip.name = "y";
    assert_int_equal(certs_issue(leaf_as_ca, &ip, f->err, sizeof f->err), CERTS_E_NOT_CA);
    assert_non_null(strstr(f->err, "not a CA certificate"));
}

/* Names: without --san, the name itself when it is a host name or an address; nothing when it
 * is neither. */
static void test_default_sans(void **state)
{
    struct fixture *f = *state;
    struct certs_info info;

    make_ca(f, CERTS_KEY_EC_P256);
    issue(f, "exit1.example.net", NULL, 0, CERTS_KEY_EC_P256);
    issue(f, "192.0.2.1", NULL, 0, CERTS_KEY_EC_P256);
    issue(f, "alice_1", NULL, 0, CERTS_KEY_EC_P256);
    const struct {
        const char *file, *sans;
    } cases[] = {
        {"exit1.example.net.pem", "DNS:exit1.example.net"},
        {"192.0.2.1.pem", "IP:192.0.2.1"},
        {"alice_1.pem", ""},
    };
    for (size_t i = 0; i < 3; i++) {
        X509 *cert = read_cert(f->nodes, cases[i].file);
        assert_int_equal(certs_inspect(cert, &info, f->err, sizeof f->err), 0);
        assert_string_equal(info.sans, cases[i].sans);
        X509_free(cert);
    }
    X509 *alice = read_cert(f->nodes, "alice_1.pem");
    assert_int_equal(X509_get_ext_by_NID(alice, NID_subject_alt_name, -1), -1);
    X509_free(alice);
}

/* Loading: encrypted keys, files without a certificate, DER certificates, non-regular files. */
static void test_load_formats(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX];
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;

    make_ca(f, CERTS_KEY_EC_P256);
    issue(f, "exit1", NULL, 0, CERTS_KEY_EC_P256);

    /* An encrypted copy of the key. */
    path_in(path, f->nodes, "exit1.key");
    assert_int_equal(certs_load_key(path, &key, f->err, sizeof f->err), 0);
    path_in(path, f->nodes, "enc.key");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    assert_int_equal(PEM_write_PrivateKey(fp, key, EVP_aes_256_cbc(), NULL, 0, NULL, "secret"), 1);
    fclose(fp);
    EVP_PKEY_free(key);
    key = NULL;
    assert_int_equal(certs_load_key(path, &key, f->err, sizeof f->err), CERTS_E_FORMAT);
    assert_non_null(strstr(f->err, "encrypted"));

    /* A certificate where a key is expected, and the other way round. */
    path_in(path, f->nodes, "exit1.pem");
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(certs_load_key(path, &key, f->err, sizeof f->err), CERTS_E_FORMAT);
    assert_non_null(strstr(f->err, "no private key found"));
    path_in(path, f->nodes, "exit1.key");
    assert_int_equal(certs_load_cert(path, &cert, f->err, sizeof f->err), CERTS_E_FORMAT);
    assert_non_null(strstr(f->err, "holds a private key, not a certificate"));

    /* DER. */
    X509 *pem = read_cert(f->nodes, "exit1.pem");
    unsigned char *der = NULL;
    int len = i2d_X509(pem, &der);
    assert_true(len > 0);
    path_in(path, f->nodes, "exit1.der");
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(der, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    OPENSSL_free(der);
    assert_int_equal(certs_load_cert(path, &cert, f->err, sizeof f->err), 0);
    assert_int_equal(X509_cmp(cert, pem), 0);
    X509_free(cert);
    X509_free(pem);

    /* A directory is not a key file. */
    assert_int_equal(certs_load_key(f->nodes, &key, f->err, sizeof f->err), -EINVAL);
    assert_non_null(strstr(f->err, "not a regular file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chain_ec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_ed25519, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_mixed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_sans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_formats, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
