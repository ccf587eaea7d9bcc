/* Building blocks shared by the CA and the issuer (internal): keys, certificate skeletons,
 * extensions, signatures, and writing a key and certificate pair. */
#ifndef GEOPROXY_CERTS_BUILD_H
#define GEOPROXY_CERTS_BUILD_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "certs/certs.h"

/* Resolves the validity of a new certificate: days (0: default_days; else 1..CERTS_DAYS_MAX)
 * from not_before (0: now - CERTS_BACKDATE_SECONDS). */
int certs_build_validity(int days, int default_days, time_t not_before, time_t *nb_out,
                         time_t *na_out, char *err, size_t err_len);

/* A new private key of 'type'. */
int certs_build_key(enum certs_key_type type, EVP_PKEY **out, char *err, size_t err_len);

/* A new X.509 v3 certificate for 'key' (public half) with a random 128-bit serial and the given
 * validity; no names, no extensions, not signed. */
int certs_build_new(EVP_PKEY *key, time_t not_before, time_t not_after, X509 **out, char *err,
                    size_t err_len);

/* Sets the subject to CN=cn, and the issuer to the subject of 'issuer' (NULL: self-signed). */
int certs_build_set_names(X509 *cert, const char *cn, const X509 *issuer, char *err,
                          size_t err_len);

/* Adds extension 'nid' written in OpenSSL's configuration syntax ("critical,CA:TRUE"), with
 * 'issuer' (NULL: the certificate itself) for the authority key identifier. */
int certs_build_add_ext(X509 *cert, X509 *issuer, int nid, const char *value, char *err,
                        size_t err_len);

/* Signs 'cert' with 'key': ECDSA with SHA-256, or pure Ed25519. */
int certs_build_sign(X509 *cert, EVP_PKEY *key, char *err, size_t err_len);

/* Refuses (-EEXIST) when cert_path or key_path exists; then writes the key (PKCS#8 PEM,
 * created 0600) and the certificate (PEM, 0644). When the certificate cannot be written the key
 * just written is removed. */
int certs_build_write(const char *cert_path, const X509 *cert, const char *key_path,
                      const EVP_PKEY *key, char *err, size_t err_len);

#endif
