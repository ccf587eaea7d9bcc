/* Loading certificates and private keys, with the checks every loader must make: key files
 * private to their owner, unencrypted keys, and the key matching its certificate. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "certs/certs.h"
#include "certs/error.h"
#include "certs/file.h"

int certs_load_cert(const char *path, X509 **out, char *err, size_t err_len)
{
    char *text = NULL;
    size_t len = 0;
    BIO *bio = NULL;
    X509 *cert = NULL;
    int ret;

    *out = NULL;
    ret = certs_file_read(path, CERTS_FILE_CERT_MAX, false, &text, &len, err, err_len);
    if (ret != 0)
        return ret;
    if (strstr(text, "-----BEGIN ") != NULL) {
        bio = BIO_new_mem_buf(text, (int)len);
        if (bio != NULL)
            cert = PEM_read_bio_X509(bio, NULL, NULL, NULL); /* skips other PEM blocks */
    } else {
        const unsigned char *p = (const unsigned char *)text;
        cert = d2i_X509(NULL, &p, (long)len);
    }
    if (cert == NULL && strstr(text, "PRIVATE KEY-----") != NULL) {
        ret = certs_error_set(CERTS_E_FORMAT, err, err_len,
                              "%s: holds a private key, not a certificate", path);
        goto out;
    }
    if (cert == NULL) {
        ret = certs_error_set(CERTS_E_FORMAT, err, err_len,
                              "%s: no certificate found (expected a PEM block "
                              "'-----BEGIN CERTIFICATE-----' or DER)",
                              path);
        goto out;
    }
    *out = cert;
    ret = 0;
out:
    BIO_free(bio);
    certs_file_free(text, len);
    return ret;
}

/* OpenSSL's pass phrase callback: there is no one to ask, so note that a key wanted one. */
static int load_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    *(bool *)u = true;
    return -1;
}

int certs_load_key(const char *path, EVP_PKEY **out, char *err, size_t err_len)
{
    char *text = NULL;
    size_t len = 0;
    BIO *bio = NULL;
    EVP_PKEY *key = NULL;
    bool encrypted = false;
    int ret;

    *out = NULL;
    ret = certs_file_read(path, CERTS_FILE_KEY_MAX, true, &text, &len, err, err_len);
    if (ret != 0)
        return ret;
    bio = BIO_new_mem_buf(text, (int)len);
    if (bio == NULL) {
        ret = certs_error_set(-ENOMEM, err, err_len, "%s: out of memory", path);
        goto out;
    }
    key = PEM_read_bio_PrivateKey(bio, NULL, load_no_passphrase, &encrypted);
    if (key == NULL && encrypted) {
        ret = certs_error_set(CERTS_E_FORMAT, err, err_len,
                              "%s: the private key is encrypted; geoproxy needs it unencrypted "
                              "(decrypt it with 'openssl pkey -in %s -out NEW.key' and keep "
                              "NEW.key mode 0600)",
                              path, path);
        goto out;
    }
    if (key == NULL) {
        ret = certs_error_set_ssl(CERTS_E_FORMAT, err, err_len,
                                  "%s: no private key found (expected a PEM block "
                                  "'-----BEGIN PRIVATE KEY-----')",
                                  path);
        goto out;
    }
    *out = key;
    ret = 0;
out:
    BIO_free(bio);
    certs_file_free(text, len);
    return ret;
}

int certs_load_pair(const char *cert_path, const char *key_path, X509 **cert_out,
                    EVP_PKEY **key_out, char *err, size_t err_len)
{
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    char cert_pin[CERTS_PIN_MAX], key_pin[CERTS_PIN_MAX];
    int ret;

    *cert_out = NULL;
    *key_out = NULL;
    ret = certs_load_cert(cert_path, &cert, err, err_len);
    if (ret != 0)
        goto out;
    ret = certs_load_key(key_path, &key, err, err_len);
    if (ret != 0)
        goto out;
    if (EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1) {
        if (certs_pin_of_cert(cert, cert_pin) != 0)
            snprintf(cert_pin, sizeof cert_pin, "(unknown)");
        if (certs_pin_of_key(key, key_pin) != 0)
            snprintf(key_pin, sizeof key_pin, "(unknown)");
        ret = certs_error_set(CERTS_E_KEY_MISMATCH, err, err_len,
                              "%s does not belong to %s: the key's public key is %s, the "
                              "certificate's is %s (was one of them replaced without the other?)",
                              key_path, cert_path, key_pin, cert_pin);
        goto out;
    }
    *cert_out = cert;
    *key_out = key;
    cert = NULL;
    key = NULL;
    ret = 0;
out:
    EVP_PKEY_free(key);
    X509_free(cert);
    return ret;
}
