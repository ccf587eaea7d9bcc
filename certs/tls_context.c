/* TLS 1.3 contexts for the two ends of a tunnel, with mutual authentication against a private CA,
 * and what a failed verification is reported as. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"
#include "certs/error.h"
#include "certs/tls_context.h"

/* Sessions of a tunnel listener are only resumed by the listener that issued them. */
static const unsigned char tls_session_id_context[] = "geoproxy-tunnel";

/* An SSL's ex_data slot holding the certificate its verifier refused (a new reference). */
static CRYPTO_ONCE tls_refused_once = CRYPTO_ONCE_STATIC_INIT;
static int tls_refused_index = -1;

static void tls_refused_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                             void *argp)
{
    X509_free(ptr);
}

static void tls_refused_init(void)
{
    tls_refused_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_refused_free);
}

static int tls_refused_slot(void)
{
    if (!CRYPTO_THREAD_run_once(&tls_refused_once, tls_refused_init))
        return -1;
    return tls_refused_index;
}

/* Keeps the first certificate the verifier refuses, since OpenSSL does not keep the peer's
 * certificate of a failed handshake. Changes nothing about the outcome. */
static int tls_verify_record(int ok, X509_STORE_CTX *store)
{
    int slot = tls_refused_slot();
    SSL *ssl;
    X509 *cert;

    if (ok || slot < 0)
        return ok;
    ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    cert = X509_STORE_CTX_get_current_cert(store);
    if (ssl == NULL || cert == NULL || SSL_get_ex_data(ssl, slot) != NULL)
        return ok;
    if (X509_up_ref(cert) == 1 && SSL_set_ex_data(ssl, slot, cert) != 1)
        X509_free(cert);
    return ok;
}

/* Our certificate and key, checked (key file mode, key match, validity at now) and installed. */
static int tls_context_use_pair(SSL_CTX *ctx, const char *cert, const char *key, time_t now,
                                time_t *not_after, char *err, size_t err_len)
{
    struct certs_info info;
    char why[CERTS_ERR_MAX];
    X509 *x = NULL;
    EVP_PKEY *pkey = NULL;
    int ret;

    ret = certs_load_pair(cert, key, &x, &pkey, err, err_len);
    if (ret != 0)
        return ret;
    ret = certs_check_validity(x, now, NULL, why, sizeof why);
    if (ret != 0) {
        ret = certs_error_set(ret, err, err_len, "%s: %s", cert, why);
        goto out;
    }
    ret = certs_inspect(x, &info, why, sizeof why);
    if (ret != 0) {
        ret = certs_error_set(ret, err, err_len, "%s: %s", cert, why);
        goto out;
    }
    if (SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ret = certs_error_set_ssl(-EIO, err, err_len, "%s: OpenSSL refused the certificate", cert);
        goto out;
    }
    if (not_after != NULL)
        *not_after = info.not_after;
    ret = 0;
out:
    EVP_PKEY_free(pkey);
    X509_free(x);
    return ret;
}

/* The certificates of 'ca' as the trust store, and for a server as the CAs it names to clients. */
static int tls_context_trust(SSL_CTX *ctx, bool server, const char *ca, char *err, size_t err_len)
{
    STACK_OF(X509_NAME) * names;
    X509 *first = NULL;
    int ret;

    ret = certs_load_cert(ca, &first, err, err_len); /* readable messages for the common mistakes */
    if (ret != 0)
        return ret;
    if (X509_check_ca(first) == 0) {
        ret = certs_error_set(CERTS_E_NOT_CA, err, err_len,
                              "%s: not a CA certificate (no basicConstraints CA:TRUE): give the "
                              "CA's certificate, ca.pem",
                              ca);
        goto out;
    }
    if (SSL_CTX_load_verify_file(ctx, ca) != 1) {
        ret = certs_error_set_ssl(CERTS_E_FORMAT, err, err_len,
                                  "%s: cannot load the CA certificates", ca);
        goto out;
    }
    if (server) {
        names = SSL_load_client_CA_file(ca);
        if (names == NULL) {
            ret = certs_error_set_ssl(CERTS_E_FORMAT, err, err_len, "%s: cannot read the CA names",
                                      ca);
            goto out;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
    }
    ret = 0;
out:
    X509_free(first);
    return ret;
}

/* Picks the first of ours that the client offers; none offered or none in common: no ALPN, and
 * the connection speaks HTTP/1.1. */
static int tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                           const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char ours[] = "\x0e" CERTS_ALPN_MUX "\x08" CERTS_ALPN_HTTP1;
    (void)ssl;
    (void)arg;
    unsigned char *chosen;
    if (SSL_select_next_proto(&chosen, outlen, ours, sizeof(ours) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

static int tls_context_new(bool server, const char *cert, const char *key, const char *ca,
                           time_t now, SSL_CTX **out, time_t *not_after, char *err, size_t err_len)
{
    SSL_CTX *ctx;
    int ret;

    *out = NULL;
    if (not_after != NULL)
        *not_after = 0;
    if ((cert == NULL) != (key == NULL))
        return certs_error_set(-EINVAL, err, err_len,
                               "%s: a certificate needs its key, and a key "
                               "its certificate",
                               cert != NULL ? cert : key);
    if (tls_refused_slot() < 0)
        return certs_error_set_ssl(-ENOMEM, err, err_len, "%s: out of memory", ca);
    ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL)
        return certs_error_set_ssl(-ENOMEM, err, err_len, "%s: cannot make a TLS context", ca);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
        ret = certs_error_set_ssl(-EIO, err, err_len, "%s: TLS 1.3 is not available", ca);
        goto fail;
    }
    if (cert != NULL) {
        ret = tls_context_use_pair(ctx, cert, key, now, not_after, err, err_len);
        if (ret != 0)
            goto fail;
    }
    ret = tls_context_trust(ctx, server, ca, err, err_len);
    if (ret != 0)
        goto fail;
    SSL_CTX_set_read_ahead(ctx, 1); /* a record in one read of the BIO, not header then body */
    SSL_CTX_set_verify(ctx,
                       server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER,
                       tls_verify_record);
    if (server) {
        if (SSL_CTX_set_session_id_context(ctx, tls_session_id_context,
                                           sizeof tls_session_id_context - 1) != 1) {
            ret =
                certs_error_set_ssl(-EIO, err, err_len, "%s: cannot set the session context", cert);
            goto fail;
        }
        SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select, NULL);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
    }
    ERR_clear_error();
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    if (not_after != NULL)
        *not_after = 0;
    return ret;
}

int certs_tls_server_context(const char *cert, const char *key, const char *ca, time_t now,
                             SSL_CTX **out, time_t *not_after, char *err, size_t err_len)
{
    if (cert == NULL || key == NULL || ca == NULL) {
        *out = NULL;
        return certs_error_set(-EINVAL, err, err_len,
                               "a tunnel listener needs a certificate, a key and a CA");
    }
    return tls_context_new(true, cert, key, ca, now, out, not_after, err, err_len);
}

int certs_tls_client_context(const char *ca, const char *cert, const char *key, time_t now,
                             SSL_CTX **out, time_t *not_after, char *err, size_t err_len)
{
    if (ca == NULL) {
        *out = NULL;
        return certs_error_set(-EINVAL, err, err_len, "a tls upstream needs a CA");
    }
    return tls_context_new(false, cert, key, ca, now, out, not_after, err, err_len);
}

bool certs_ssl_peer_matches_pin(const SSL *ssl, const char *pin)
{
    char have[CERTS_PIN_MAX];
    X509 *peer = pin != NULL ? SSL_get0_peer_certificate(ssl) : NULL;

    return peer != NULL && certs_pin_of_cert(peer, have) == 0 && strcmp(have, pin) == 0;
}

void certs_describe_verify_failure(const SSL *ssl, char *out, size_t len)
{
    struct certs_info info;
    char ignored[CERTS_ERR_MAX];
    long result = SSL_get_verify_result(ssl);
    const char *reason = X509_verify_cert_error_string(result);
    int slot = tls_refused_slot();
    const X509 *cert = slot >= 0 ? SSL_get_ex_data(ssl, slot) : NULL;

    if (len == 0)
        return;
    if (cert == NULL)
        cert = SSL_get0_peer_certificate(ssl);
    if (cert == NULL) {
        snprintf(out, len, "%s", result == X509_V_OK ? "no certificate presented" : reason);
        return;
    }
    if (certs_inspect(cert, &info, ignored, sizeof ignored) != 0) {
        snprintf(out, len, "%s", reason);
        return;
    }
    snprintf(out, len, "%s (%s, notAfter %s)", reason, info.subject, info.not_after_text);
}
