/* Issuing node and client certificates signed by a CA directory's key: one certificate for
 * both TLS roles (serverAuth and clientAuth), with the names the caller gives. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "certs/build.h"
#include "certs/certs.h"
#include "certs/error.h"
#include "certs/file.h"

#define ISSUE_SECONDS_PER_DAY 86400

/* One subjectAltName entry from text of a known kind. */
static GENERAL_NAME *issue_general_name(const char *text, enum certs_san_kind kind)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    unsigned char addr[sizeof(struct in6_addr)];
    ASN1_STRING *value = NULL;

    if (gn == NULL)
        return NULL;
    if (kind == CERTS_SAN_DNS) {
        value = ASN1_IA5STRING_new();
        if (value == NULL || !ASN1_STRING_set(value, text, (int)strlen(text)))
            goto fail;
        GENERAL_NAME_set0_value(gn, GEN_DNS, value);
        return gn;
    }
    int af = kind == CERTS_SAN_IPV4 ? AF_INET : AF_INET6;
    int len = kind == CERTS_SAN_IPV4 ? 4 : 16;
    value = ASN1_OCTET_STRING_new();
    if (value == NULL || inet_pton(af, text, addr) != 1 || !ASN1_OCTET_STRING_set(value, addr, len))
        goto fail;
    GENERAL_NAME_set0_value(gn, GEN_IPADD, value);
    return gn;
fail:
    ASN1_STRING_free(value);
    GENERAL_NAME_free(gn);
    return NULL;
}

/* Checks every entry before anything is generated, so that a typo costs nothing. */
static int issue_check_sans(const struct certs_issue_params *p, char *err, size_t err_len)
{
    if (p->n_sans > CERTS_SANS_MAX)
        return certs_error_set(-EINVAL, err, err_len,
                               "%zu subjectAltNames are too many (at most %d)", p->n_sans,
                               CERTS_SANS_MAX);
    for (size_t i = 0; i < p->n_sans; i++) {
        if (certs_san_kind_of(p->sans[i]) == CERTS_SAN_INVALID)
            return certs_error_set(-EINVAL, err, err_len,
                                   "subjectAltName '%s' is neither an IP address nor a valid "
                                   "host name",
                                   p->sans[i] != NULL ? p->sans[i] : "(null)");
    }
    return 0;
}

/* Adds the subjectAltName extension: the given entries, or else the name itself when it is an
 * address or a host name, or else none (a client certificate named "alice_1"). */
static int issue_add_sans(X509 *cert, const struct certs_issue_params *p, char *err, size_t err_len)
{
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    const char *const *list = p->sans;
    size_t n = p->n_sans;
    int ret = -1;

    if (names == NULL)
        return certs_error_set(-ENOMEM, err, err_len, "out of memory");
    if (n == 0) {
        if (certs_san_kind_of(p->name) == CERTS_SAN_INVALID) {
            ret = 0;
            goto out;
        }
        list = &p->name;
        n = 1;
    }
    for (size_t i = 0; i < n; i++) {
        GENERAL_NAME *gn = issue_general_name(list[i], certs_san_kind_of(list[i]));
        if (gn == NULL || !sk_GENERAL_NAME_push(names, gn)) {
            GENERAL_NAME_free(gn);
            ret = certs_error_set_ssl(-EIO, err, err_len, "cannot encode subjectAltName '%s'",
                                      list[i]);
            goto out;
        }
    }
    if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) != 1) {
        ret = certs_error_set_ssl(-EIO, err, err_len, "cannot add the subjectAltNames");
        goto out;
    }
    ret = 0;
out:
    GENERAL_NAMES_free(names);
    return ret;
}

/* Loads the CA of ca_dir and checks that it can sign now. */
static int issue_load_ca(const char *ca_dir, X509 **ca, EVP_PKEY **ca_key, time_t *ca_not_after,
                         char *err, size_t err_len)
{
    char cert_path[PATH_MAX], key_path[PATH_MAX], why[CERTS_ERR_MAX];
    struct certs_info info;
    int ret;

    if ((ret = certs_file_join(cert_path, sizeof cert_path, ca_dir, CERTS_CA_CERT_FILE, "", err,
                               err_len)) != 0 ||
        (ret = certs_file_join(key_path, sizeof key_path, ca_dir, CERTS_CA_KEY_FILE, "", err,
                               err_len)) != 0)
        return ret;
    ret = certs_load_pair(cert_path, key_path, ca, ca_key, err, err_len);
    if (ret != 0)
        return ret;
    if (X509_check_ca(*ca) != 1) {
        ret = certs_error_set(CERTS_E_NOT_CA, err, err_len,
                              "%s: not a CA certificate (no basicConstraints CA:TRUE with "
                              "keyCertSign)",
                              cert_path);
        goto fail;
    }
    ret = certs_check_validity(*ca, time(NULL), NULL, why, sizeof why);
    if (ret != 0) {
        certs_error_set(ret, err, err_len, "%s: %s; a new CA is needed (docs/CERTS.md, rotation)",
                        cert_path, why);
        goto fail;
    }
    ret = certs_inspect(*ca, &info, err, err_len);
    if (ret != 0)
        goto fail;
    *ca_not_after = info.not_after;
    return 0;
fail:
    X509_free(*ca);
    EVP_PKEY_free(*ca_key);
    *ca = NULL;
    *ca_key = NULL;
    return ret;
}

int certs_issue(const char *ca_dir, const struct certs_issue_params *p, char *err, size_t err_len)
{
    const char *out_dir = p->out_dir != NULL ? p->out_dir : ca_dir;
    char cert_path[PATH_MAX], key_path[PATH_MAX], until[CERTS_TIME_MAX], ca_until[CERTS_TIME_MAX];
    X509 *ca = NULL, *cert = NULL;
    EVP_PKEY *ca_key = NULL, *key = NULL;
    time_t nb = 0, na = 0, ca_na = 0;
    int ret;

    if (!certs_name_is_valid(p->name))
        return certs_error_set(-EINVAL, err, err_len,
                               "'%s' cannot name a certificate: use 1 to %d letters, digits, "
                               "'.', '_', '-' or '@', not starting with '.' or '-'",
                               p->name != NULL ? p->name : "", CERTS_NAME_MAX);
    if ((ret = issue_check_sans(p, err, err_len)) != 0 ||
        (ret = certs_build_validity(p->days, CERTS_LEAF_DAYS_DEFAULT, p->not_before, &nb, &na, err,
                                    err_len)) != 0 ||
        (ret = certs_file_join(cert_path, sizeof cert_path, out_dir, p->name, ".pem", err,
                               err_len)) != 0 ||
        (ret = certs_file_join(key_path, sizeof key_path, out_dir, p->name, ".key", err,
                               err_len)) != 0)
        return ret;
    if (certs_file_exists(cert_path) || certs_file_exists(key_path))
        return certs_error_set(-EEXIST, err, err_len,
                               "%s: already exists; refusing to overwrite it (remove the old "
                               "%s.pem and %s.key first, or choose another name)",
                               certs_file_exists(cert_path) ? cert_path : key_path, p->name,
                               p->name);
    ret = issue_load_ca(ca_dir, &ca, &ca_key, &ca_na, err, err_len);
    if (ret != 0)
        return ret;
    if (na > ca_na) {
        certs_format_time(na, until);
        certs_format_time(ca_na, ca_until);
        long room = (long)((ca_na - nb) / ISSUE_SECONDS_PER_DAY);
        ret = certs_error_set(-EINVAL, err, err_len,
                              "'%s' would be valid until %s, after its CA expires (%s): ask for "
                              "at most %ld days, or rotate the CA",
                              p->name, until, ca_until, room);
        goto out;
    }
    ret = certs_file_make_dir(out_dir, err, err_len);
    if (ret != 0)
        goto out;

    if ((ret = certs_build_key(p->key_type, &key, err, err_len)) != 0 ||
        (ret = certs_build_new(key, nb, na, &cert, err, err_len)) != 0 ||
        (ret = certs_build_set_names(cert, p->name, ca, err, err_len)) != 0 ||
        (ret = certs_build_add_ext(cert, ca, NID_basic_constraints, "critical,CA:FALSE", err,
                                   err_len)) != 0 ||
        (ret = certs_build_add_ext(cert, ca, NID_key_usage, "critical,digitalSignature", err,
                                   err_len)) != 0 ||
        (ret = certs_build_add_ext(cert, ca, NID_ext_key_usage, "serverAuth,clientAuth", err,
                                   err_len)) != 0 ||
        (ret = certs_build_add_ext(cert, ca, NID_subject_key_identifier, "hash", err, err_len)) !=
            0 ||
        (ret = certs_build_add_ext(cert, ca, NID_authority_key_identifier, "keyid:always", err,
                                   err_len)) != 0 ||
        (ret = issue_add_sans(cert, p, err, err_len)) != 0 ||
        (ret = certs_build_sign(cert, ca_key, err, err_len)) != 0)
        goto out;
    ret = certs_build_write(cert_path, cert, key_path, key, err, err_len);
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    X509_free(ca);
    return ret;
}
