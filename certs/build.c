/* Building blocks shared by the CA and the issuer: keys, certificate skeletons with random
 * serials, extensions, signatures, and writing the key and certificate files. */
#include <errno.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "certs/build.h"
#include "certs/error.h"
#include "certs/file.h"

#define BUILD_SERIAL_BITS 128
#define BUILD_SECONDS_PER_DAY 86400

int certs_build_validity(int days, int default_days, time_t not_before, time_t *nb_out,
                         time_t *na_out, char *err, size_t err_len)
{
    if (days == 0)
        days = default_days;
    if (days < 1 || days > CERTS_DAYS_MAX)
        return certs_error_set(-EINVAL, err, err_len,
                               "a validity of %d days is out of range (1 to %d)", days,
                               CERTS_DAYS_MAX);
    if (not_before == 0)
        not_before = time(NULL) - CERTS_BACKDATE_SECONDS;
    *nb_out = not_before;
    *na_out = not_before + (time_t)days * BUILD_SECONDS_PER_DAY;
    return 0;
}

int certs_build_key(enum certs_key_type type, EVP_PKEY **out, char *err, size_t err_len)
{
    switch (type) {
    case CERTS_KEY_EC_P256:
        *out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        break;
    case CERTS_KEY_ED25519:
        *out = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        break;
    default:
        *out = NULL;
        return certs_error_set(-EINVAL, err, err_len, "unknown key type %d", (int)type);
    }
    if (*out == NULL)
        return certs_error_set_ssl(-EIO, err, err_len, "cannot generate a key");
    return 0;
}

static int build_set_serial(X509 *cert, char *err, size_t err_len)
{
    BIGNUM *bn = BN_new();
    int ret = -1;

    if (bn == NULL)
        return certs_error_set(-ENOMEM, err, err_len, "out of memory");
    do {
        if (!BN_rand(bn, BUILD_SERIAL_BITS, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY)) {
            ret = certs_error_set_ssl(-EIO, err, err_len, "cannot draw a random serial");
            goto out;
        }
    } while (BN_is_zero(bn));
    if (BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) == NULL) {
        ret = certs_error_set_ssl(-EIO, err, err_len, "cannot set the serial");
        goto out;
    }
    ret = 0;
out:
    BN_free(bn);
    return ret;
}

int certs_build_new(EVP_PKEY *key, time_t not_before, time_t not_after, X509 **out, char *err,
                    size_t err_len)
{
    X509 *cert = X509_new();
    int ret = -1;

    *out = NULL;
    if (cert == NULL)
        return certs_error_set(-ENOMEM, err, err_len, "out of memory");
    if (!X509_set_version(cert, X509_VERSION_3) ||
        ASN1_TIME_set(X509_getm_notBefore(cert), not_before) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(cert), not_after) == NULL || !X509_set_pubkey(cert, key)) {
        ret = certs_error_set_ssl(-EIO, err, err_len, "cannot fill in the certificate");
        goto out;
    }
    ret = build_set_serial(cert, err, err_len);
    if (ret != 0)
        goto out;
    *out = cert;
    cert = NULL;
out:
    X509_free(cert);
    return ret;
}

int certs_build_set_names(X509 *cert, const char *cn, const X509 *issuer, char *err, size_t err_len)
{
    X509_NAME *name = X509_NAME_new();
    int ret = -1;

    if (name == NULL)
        return certs_error_set(-ENOMEM, err, err_len, "out of memory");
    if (!X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn,
                                    -1, -1, 0) ||
        !X509_set_subject_name(cert, name) ||
        !X509_set_issuer_name(cert, issuer != NULL ? X509_get_subject_name(issuer) : name)) {
        ret = certs_error_set_ssl(-EIO, err, err_len, "cannot set the name '%s'", cn);
        goto out;
    }
    ret = 0;
out:
    X509_NAME_free(name);
    return ret;
}

int certs_build_add_ext(X509 *cert, X509 *issuer, int nid, const char *value, char *err,
                        size_t err_len)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, issuer != NULL ? issuer : cert, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return certs_error_set_ssl(-EIO, err, err_len, "cannot make the %s extension '%s'",
                                   OBJ_nid2sn(nid), value);
    ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    if (!ok)
        return certs_error_set_ssl(-EIO, err, err_len, "cannot add the %s extension",
                                   OBJ_nid2sn(nid));
    return 0;
}

int certs_build_sign(X509 *cert, EVP_PKEY *key, char *err, size_t err_len)
{
    /* Ed25519 signs the message itself: no separate digest. */
    const EVP_MD *md =
        EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448") ? NULL : EVP_sha256();
    if (X509_sign(cert, key, md) <= 0)
        return certs_error_set_ssl(-EIO, err, err_len, "cannot sign the certificate");
    return 0;
}

/* Writes what a BIO holds to a new file. */
static int build_write_bio(BIO *bio, const char *path, mode_t mode, char *err, size_t err_len)
{
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);

    if (len <= 0 || data == NULL)
        return certs_error_set_ssl(-EIO, err, err_len, "%s: nothing to write", path);
    return certs_file_write_new(path, data, (size_t)len, mode, err, err_len);
}

int certs_build_write(const char *cert_path, const X509 *cert, const char *key_path,
                      const EVP_PKEY *key, char *err, size_t err_len)
{
    /* Secure memory for the key's text: wiped when freed. */
    BIO *key_bio = BIO_new(BIO_s_secmem());
    BIO *cert_bio = BIO_new(BIO_s_mem());
    int ret = -1;

    if (key_bio == NULL || cert_bio == NULL) {
        ret = certs_error_set(-ENOMEM, err, err_len, "out of memory");
        goto out;
    }
    if (certs_file_exists(key_path) || certs_file_exists(cert_path)) {
        ret = certs_error_set(-EEXIST, err, err_len, "%s: already exists; refusing to overwrite it",
                              certs_file_exists(key_path) ? key_path : cert_path);
        goto out;
    }
    /* PEM_write_bio_PrivateKey without a cipher writes unencrypted PKCS#8 ("PRIVATE KEY"). */
    if (!PEM_write_bio_PrivateKey(key_bio, key, NULL, NULL, 0, NULL, NULL)) {
        ret = certs_error_set_ssl(-EIO, err, err_len, "%s: cannot encode the key", key_path);
        goto out;
    }
    if (!PEM_write_bio_X509(cert_bio, cert)) {
        ret =
            certs_error_set_ssl(-EIO, err, err_len, "%s: cannot encode the certificate", cert_path);
        goto out;
    }
    ret = build_write_bio(key_bio, key_path, 0600, err, err_len);
    if (ret != 0)
        goto out;
    ret = build_write_bio(cert_bio, cert_path, 0644, err, err_len);
    if (ret != 0)
        unlink(key_path); /* ours: created exclusively a moment ago */
out:
    BIO_free(cert_bio);
    BIO_free(key_bio);
    return ret;
}
