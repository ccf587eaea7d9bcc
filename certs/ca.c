/* Creating a private CA: a key and a self-signed certificate that may sign leaf certificates
 * only (pathlen 0), written once into its directory. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "certs/build.h"
#include "certs/certs.h"
#include "certs/error.h"
#include "certs/file.h"

/* "geoproxy CA " and the first 4 bytes of the key identifier in hex: two CAs made by geoproxy
 * have different names, which keeps trust bundles readable during a rotation. */
static void ca_default_name(const X509 *cert, char *out, size_t out_len)
{
    ASN1_OCTET_STRING *ski = X509_get_ext_d2i(cert, NID_subject_key_identifier, NULL, NULL);
    const unsigned char *id = ski != NULL ? ASN1_STRING_get0_data(ski) : NULL;

    if (id == NULL || ASN1_STRING_length(ski) < 4)
        snprintf(out, out_len, "geoproxy CA");
    else
        snprintf(out, out_len, "geoproxy CA %02x%02x%02x%02x", id[0], id[1], id[2], id[3]);
    ASN1_OCTET_STRING_free(ski);
}

int certs_ca_create(const char *dir, const struct certs_ca_params *params, char *err,
                    size_t err_len)
{
    char cert_path[PATH_MAX], key_path[PATH_MAX], name[CERTS_NAME_MAX + 1];
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    time_t nb, na;
    int ret;

    ret = certs_build_validity(params->days, CERTS_CA_DAYS_DEFAULT, params->not_before, &nb, &na,
                               err, err_len);
    if (ret != 0)
        return ret;
    if (params->name != NULL && (params->name[0] == '\0' || strlen(params->name) > CERTS_NAME_MAX))
        return certs_error_set(-EINVAL, err, err_len, "a CA name must have 1 to %d characters",
                               CERTS_NAME_MAX);
    if ((ret = certs_file_join(cert_path, sizeof cert_path, dir, CERTS_CA_CERT_FILE, "", err,
                               err_len)) != 0 ||
        (ret = certs_file_join(key_path, sizeof key_path, dir, CERTS_CA_KEY_FILE, "", err,
                               err_len)) != 0)
        return ret;
    if (certs_file_exists(cert_path) || certs_file_exists(key_path))
        return certs_error_set(-EEXIST, err, err_len,
                               "%s: already exists; refusing to overwrite a CA (choose another "
                               "directory for a new one)",
                               certs_file_exists(cert_path) ? cert_path : key_path);
    ret = certs_file_make_dir(dir, err, err_len);
    if (ret != 0)
        return ret;

    ret = certs_build_key(params->key_type, &key, err, err_len);
    if (ret != 0)
        goto out;
    ret = certs_build_new(key, nb, na, &cert, err, err_len);
    if (ret != 0)
        goto out;
    ret = certs_build_add_ext(cert, NULL, NID_subject_key_identifier, "hash", err, err_len);
    if (ret != 0)
        goto out;
    if (params->name != NULL)
        snprintf(name, sizeof name, "%s", params->name);
    else
        ca_default_name(cert, name, sizeof name);
    if ((ret = certs_build_set_names(cert, name, NULL, err, err_len)) != 0 ||
        (ret = certs_build_add_ext(cert, NULL, NID_basic_constraints, "critical,CA:TRUE,pathlen:0",
                                   err, err_len)) != 0 ||
        (ret = certs_build_add_ext(cert, NULL, NID_key_usage, "critical,keyCertSign,cRLSign", err,
                                   err_len)) != 0 ||
        (ret = certs_build_sign(cert, key, err, err_len)) != 0)
        goto out;
    ret = certs_build_write(cert_path, cert, key_path, key, err, err_len);
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    return ret;
}
