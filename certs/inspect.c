/* Reading certificates: names, subjectAltNames, dates, key type, the SPKI pin, and whether a
 * certificate is valid now. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "certs/certs.h"
#include "certs/error.h"

#define INSPECT_SECONDS_PER_DAY 86400
#define INSPECT_PIN_PREFIX "sha256//"

void certs_format_time(time_t t, char out[CERTS_TIME_MAX])
{
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(out, CERTS_TIME_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, CERTS_TIME_MAX, "@%lld", (long long)t);
}

long certs_days_left(time_t not_after, time_t now)
{
    long long diff = (long long)not_after - (long long)now;

    if (diff >= 0)
        return (long)(diff / INSPECT_SECONDS_PER_DAY);
    return -(long)((-diff + INSPECT_SECONDS_PER_DAY - 1) / INSPECT_SECONDS_PER_DAY);
}

static int inspect_time(const ASN1_TIME *t, time_t *out)
{
    struct tm tm;

    memset(&tm, 0, sizeof tm);
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return -EINVAL;
    *out = timegm(&tm);
    return 0;
}

int certs_pin_of_key(const EVP_PKEY *key, char out[CERTS_PIN_MAX])
{
    unsigned char *der = NULL, *p;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int len, ret = -EIO;
    size_t prefix = strlen(INSPECT_PIN_PREFIX);

    out[0] = '\0';
    len = key != NULL ? i2d_PUBKEY(key, NULL) : -1;
    if (len <= 0)
        goto out;
    der = malloc((size_t)len);
    if (der == NULL) {
        ret = -ENOMEM;
        goto out;
    }
    p = der;
    if (i2d_PUBKEY(key, &p) != len ||
        !EVP_Digest(der, (size_t)len, md, &md_len, EVP_sha256(), NULL))
        goto out;
    /* 32 bytes are 44 base64 characters; the buffer holds the prefix, those and the NUL. */
    memcpy(out, INSPECT_PIN_PREFIX, prefix);
    EVP_EncodeBlock((unsigned char *)out + prefix, md, (int)md_len);
    ret = 0;
out:
    free(der);
    ERR_clear_error();
    return ret;
}

int certs_pin_of_cert(const X509 *cert, char out[CERTS_PIN_MAX])
{
    return certs_pin_of_key(X509_get0_pubkey(cert), out);
}

/* The subject as one line: RFC 2253 ("CN=exit1,O=example"), control characters escaped. */
static void inspect_name(const X509_NAME *name, char *out, size_t out_len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long len;

    snprintf(out, out_len, "?");
    if (bio == NULL)
        return;
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
        len = BIO_get_mem_data(bio, &data);
        if (len >= 0 && data != NULL)
            snprintf(out, out_len, "%.*s", (int)len, data);
    }
    BIO_free(bio);
}

/* Appends "sep" and text to out, replacing anything that is not printable ASCII by '?', so that
 * a hostile certificate cannot break a one-line output; marks a cut with "...". */
static void inspect_append(char *out, size_t out_len, const char *sep, const char *prefix,
                           const unsigned char *text, size_t len)
{
    size_t used = strlen(out);
    size_t need = (used > 0 ? strlen(sep) : 0) + strlen(prefix) + len;

    if (used + need + 4 > out_len) {
        if (used + 4 <= out_len && (used < 3 || strcmp(out + used - 3, "...") != 0))
            snprintf(out + used, out_len - used, "...");
        return;
    }
    used += (size_t)snprintf(out + used, out_len - used, "%s%s", used > 0 ? sep : "", prefix);
    for (size_t i = 0; i < len; i++)
        out[used++] = text[i] >= 0x20 && text[i] < 0x7f ? (char)text[i] : '?';
    out[used] = '\0';
}

static void inspect_sans(const X509 *cert, char *out, size_t out_len)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    char ip[INET6_ADDRSTRLEN];

    out[0] = '\0';
    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        const ASN1_STRING *s = NULL;
        const char *prefix = NULL;
        switch (gn->type) {
        case GEN_DNS:
            s = gn->d.dNSName, prefix = "DNS:";
            break;
        case GEN_EMAIL:
            s = gn->d.rfc822Name, prefix = "email:";
            break;
        case GEN_URI:
            s = gn->d.uniformResourceIdentifier, prefix = "URI:";
            break;
        case GEN_IPADD: {
            int len = ASN1_STRING_length(gn->d.iPAddress);
            const unsigned char *a = ASN1_STRING_get0_data(gn->d.iPAddress);
            int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : AF_UNSPEC;
            if (af == AF_UNSPEC || inet_ntop(af, a, ip, sizeof ip) == NULL)
                snprintf(ip, sizeof ip, "(%d bytes)", len);
            inspect_append(out, out_len, ", ", "IP:", (const unsigned char *)ip, strlen(ip));
            continue;
        }
        default:
            inspect_append(out, out_len, ", ", "other:", (const unsigned char *)"", 0);
            continue;
        }
        inspect_append(out, out_len, ", ", prefix, ASN1_STRING_get0_data(s),
                       (size_t)ASN1_STRING_length(s));
    }
    GENERAL_NAMES_free(names);
}

static void inspect_usage(const X509 *cert, char *out, size_t out_len)
{
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(cert, NID_ext_key_usage, NULL, NULL);
    char oid[80];

    out[0] = '\0';
    for (int i = 0; eku != NULL && i < sk_ASN1_OBJECT_num(eku); i++) {
        const ASN1_OBJECT *obj = sk_ASN1_OBJECT_value(eku, i);
        int nid = OBJ_obj2nid(obj);
        const char *name = nid != NID_undef ? OBJ_nid2sn(nid) : NULL;
        if (name == NULL) {
            OBJ_obj2txt(oid, sizeof oid, obj, 1);
            name = oid;
        }
        inspect_append(out, out_len, ", ", "", (const unsigned char *)name, strlen(name));
    }
    EXTENDED_KEY_USAGE_free(eku);
}

static void inspect_key_type(const EVP_PKEY *key, char *out, size_t out_len)
{
    char group[64] = "";

    if (key == NULL) {
        snprintf(out, out_len, "unknown");
        return;
    }
    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC:
        EVP_PKEY_get_group_name(key, group, sizeof group, NULL);
        if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
            snprintf(out, out_len, "EC P-256");
        else if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
            snprintf(out, out_len, "EC P-384");
        else if (strcmp(group, "secp521r1") == 0 || strcmp(group, "P-521") == 0)
            snprintf(out, out_len, "EC P-521");
        else
            snprintf(out, out_len, "EC %s", group[0] ? group : "(unknown curve)");
        break;
    case EVP_PKEY_ED25519:
        snprintf(out, out_len, "Ed25519");
        break;
    case EVP_PKEY_ED448:
        snprintf(out, out_len, "Ed448");
        break;
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
        snprintf(out, out_len, "RSA %d", EVP_PKEY_get_bits(key));
        break;
    default: {
        const char *name = EVP_PKEY_get0_type_name(key);
        snprintf(out, out_len, "%s", name != NULL ? name : "unknown");
    }
    }
}

static void inspect_serial(const X509 *cert, char *out, size_t out_len)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;

    snprintf(out, out_len, "%s", hex != NULL ? hex : "?");
    OPENSSL_free(hex);
    BN_free(bn);
}

int certs_inspect(const X509 *cert, struct certs_info *info, char *err, size_t err_len)
{
    BASIC_CONSTRAINTS *bc;

    memset(info, 0, sizeof *info);
    if (inspect_time(X509_get0_notBefore(cert), &info->not_before) != 0 ||
        inspect_time(X509_get0_notAfter(cert), &info->not_after) != 0)
        return certs_error_set(-EINVAL, err, err_len, "the certificate's dates are unreadable");
    certs_format_time(info->not_before, info->not_before_text);
    certs_format_time(info->not_after, info->not_after_text);
    inspect_name(X509_get_subject_name(cert), info->subject, sizeof info->subject);
    inspect_name(X509_get_issuer_name(cert), info->issuer, sizeof info->issuer);
    inspect_serial(cert, info->serial, sizeof info->serial);
    inspect_sans(cert, info->sans, sizeof info->sans);
    inspect_usage(cert, info->usage, sizeof info->usage);
    inspect_key_type(X509_get0_pubkey(cert), info->key_type, sizeof info->key_type);
    if (certs_pin_of_cert(cert, info->pin) != 0)
        return certs_error_set(-EIO, err, err_len, "cannot compute the public key's pin");
    bc = X509_get_ext_d2i(cert, NID_basic_constraints, NULL, NULL);
    info->is_ca = bc != NULL && bc->ca;
    BASIC_CONSTRAINTS_free(bc);
    ERR_clear_error();
    return 0;
}

int certs_check_validity(const X509 *cert, time_t now, long *days_left, char *err, size_t err_len)
{
    time_t nb, na;
    char subject[256], when[CERTS_TIME_MAX];
    long days;

    if (inspect_time(X509_get0_notBefore(cert), &nb) != 0 ||
        inspect_time(X509_get0_notAfter(cert), &na) != 0)
        return certs_error_set(-EINVAL, err, err_len, "the certificate's dates are unreadable");
    days = certs_days_left(na, now);
    if (days_left != NULL)
        *days_left = days;
    inspect_name(X509_get_subject_name(cert), subject, sizeof subject);
    if (now < nb) {
        certs_format_time(nb, when);
        return certs_error_set(CERTS_E_NOT_YET_VALID, err, err_len,
                               "certificate '%s' is not valid yet: it starts at %s, %ld day(s) "
                               "from now (is this machine's clock right?)",
                               subject, when, certs_days_left(nb, now));
    }
    if (now > na) {
        certs_format_time(na, when);
        return certs_error_set(CERTS_E_EXPIRED, err, err_len,
                               "certificate '%s' expired at %s, %ld day(s) ago", subject, when,
                               certs_days_left(now, na));
    }
    return 0;
}
