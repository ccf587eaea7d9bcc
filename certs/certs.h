/* certs/: the TLS material of tunnels. A private CA, node and client certificates signed by it,
 * and the checks the TLS layers run on what they load (validity, key match, key file mode, the
 * SPKI pin).
 *
 * A pure library over OpenSSL 3: files in and out, no sockets, no printing. Every function that
 * can fail returns 0 or a negative code (-errno, or one of enum certs_error) and writes into the
 * caller's err buffer (err_len bytes, always NUL-terminated) a message that names the file or
 * the certificate and says what is wrong. The OpenSSL error queue is left empty. */
#ifndef GEOPROXY_CERTS_CERTS_H
#define GEOPROXY_CERTS_CERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* A comfortable size for err buffers. */
#define CERTS_ERR_MAX 1024
/* "sha256//" + 44 base64 characters + NUL, with room to spare. */
#define CERTS_PIN_MAX 64
/* "2026-03-05T10:00:00Z" and NUL, with room for years past 9999. */
#define CERTS_TIME_MAX 32
/* Longest certificate name (the CN's upper bound in RFC 5280). */
#define CERTS_NAME_MAX 64
/* Most subjectAltName entries one certificate may get. */
#define CERTS_SANS_MAX 64

#define CERTS_CA_DAYS_DEFAULT 3650
#define CERTS_LEAF_DAYS_DEFAULT 825
#define CERTS_DAYS_MAX 36500
/* Certificates start this long before the moment they are made, so that a peer whose clock is
 * a little behind does not see them as not yet valid. */
#define CERTS_BACKDATE_SECONDS 3600

/* The files of a CA directory. */
#define CERTS_CA_CERT_FILE "ca.pem"
#define CERTS_CA_KEY_FILE "ca.key"

enum certs_key_type {
    CERTS_KEY_EC_P256 = 0, /* ECDSA over P-256 with SHA-256 (the default) */
    CERTS_KEY_ED25519,
};

/* Outcomes beyond errno values. Other failures are -errno: -EEXIST (refusing to overwrite),
 * -ENOENT, -EACCES, -EINVAL (bad input), -ENOMEM, -EIO (OpenSSL refused). */
enum certs_error {
    CERTS_E_EXPIRED = -1001,       /* now is after notAfter */
    CERTS_E_NOT_YET_VALID = -1002, /* now is before notBefore */
    CERTS_E_KEY_MISMATCH = -1003,  /* the private key is not the certificate's */
    CERTS_E_KEY_EXPOSED = -1004,   /* a key file that group or others can access */
    CERTS_E_NOT_CA = -1005,        /* a certificate used as a CA that is not one */
    CERTS_E_FORMAT = -1006,        /* no certificate / key in the file, or unreadable */
};

/* What certs_ca_create() makes. Zero-initialised fields take the defaults. */
struct certs_ca_params {
    enum certs_key_type key_type;
    int days;          /* validity from not_before, 1..CERTS_DAYS_MAX; 0: CERTS_CA_DAYS_DEFAULT */
    time_t not_before; /* 0: now - CERTS_BACKDATE_SECONDS */
    const char *name;  /* the CN; NULL: "geoproxy CA " and 8 hex digits of the key identifier */
};

/* What certs_issue() makes. Zero-initialised fields take the defaults. */
struct certs_issue_params {
    const char *name;        /* the CN and the file stem; see certs_name_is_valid() */
    const char *const *sans; /* DNS names and IP addresses (see certs_san_kind_of()) */
    size_t n_sans;           /* 0: 'name' itself when it is an IP address or a host name */
    enum certs_key_type key_type;
    int days;            /* 1..CERTS_DAYS_MAX; 0: CERTS_LEAF_DAYS_DEFAULT */
    time_t not_before;   /* 0: now - CERTS_BACKDATE_SECONDS; may be in the past (tests) */
    const char *out_dir; /* where NAME.pem and NAME.key go; NULL: the CA directory */
};

/* What a certificate says, as certs_inspect() reads it. Strings are NUL-terminated; the lists
 * are cut (ending in "...") when they do not fit. */
struct certs_info {
    char subject[256]; /* RFC 2253 form: "CN=exit1" */
    char issuer[256];
    char serial[64];         /* upper-case hex */
    char sans[1024];         /* "DNS:exit1.example, IP:192.0.2.1"; "" when there are none */
    char usage[128];         /* extended key usage: "serverAuth, clientAuth"; "" when absent */
    char key_type[32];       /* "EC P-256", "Ed25519", "RSA 2048", ... */
    char pin[CERTS_PIN_MAX]; /* see certs_pin_of_key() */
    char not_before_text[CERTS_TIME_MAX]; /* see certs_format_time() */
    char not_after_text[CERTS_TIME_MAX];
    time_t not_before;
    time_t not_after;
    bool is_ca; /* basicConstraints CA:TRUE */
};

enum certs_san_kind {
    CERTS_SAN_INVALID = 0,
    CERTS_SAN_DNS,  /* a host name, optionally with "*." as its first label */
    CERTS_SAN_IPV4, /* dotted quad */
    CERTS_SAN_IPV6, /* any form inet_pton(AF_INET6) takes; no zone index */
};

/* --- names (san.c) */

/* What kind of subjectAltName 'text' is: IP addresses first, then host names (labels of
 * letters, digits and inner hyphens, 1-63 characters each, 253 in all, the last one not all
 * digits, so that "10.0.0.256" is not taken for a name). */
enum certs_san_kind certs_san_kind_of(const char *text);

/* Whether 'name' can name a certificate: 1..CERTS_NAME_MAX characters out of letters, digits,
 * '.', '_', '-' and '@', not starting with '.' or '-' (it becomes a file name). */
bool certs_name_is_valid(const char *name);

/* --- making (ca.c, issue.c) */

/* Creates a private CA in 'dir' (made 0700 when missing): a new key, and a self-signed
 * certificate with basicConstraints CA:TRUE (critical), keyUsage keyCertSign and cRLSign
 * (critical), a subjectKeyIdentifier and a random 128-bit serial. Writes dir/ca.key (PKCS#8
 * PEM, created 0600) and dir/ca.pem. Refuses (-EEXIST) when either file exists; on failure no
 * new file is left behind. */
int certs_ca_create(const char *dir, const struct certs_ca_params *params, char *err,
                    size_t err_len);

/* Issues a certificate for params->name signed by the CA in ca_dir (its key must pass
 * certs_load_key()): CN=name, the subjectAltNames, basicConstraints CA:FALSE (critical),
 * keyUsage digitalSignature (critical), extendedKeyUsage serverAuth and clientAuth, subject and
 * authority key identifiers, a random 128-bit serial. Writes out_dir/NAME.key (PKCS#8 PEM,
 * created 0600) and out_dir/NAME.pem (that certificate alone). Refuses (-EEXIST) when either
 * file exists, when the CA is expired or not yet valid, and when the certificate would outlive
 * the CA; on failure no new file is left behind. */
int certs_issue(const char *ca_dir, const struct certs_issue_params *params, char *err,
                size_t err_len);

/* --- loading (load.c) */

/* Reads the first certificate of a PEM file (or a DER file) at 'path' into *out. */
int certs_load_cert(const char *path, X509 **out, char *err, size_t err_len);

/* Reads an unencrypted private key (PEM: PKCS#8 or traditional) at 'path' into *out. Refuses
 * with CERTS_E_KEY_EXPOSED a file that group or others can access (mode must be 0600 or
 * stricter), and anything that is not a regular file. */
int certs_load_key(const char *path, EVP_PKEY **out, char *err, size_t err_len);

/* certs_load_cert() and certs_load_key(), and checks that the key is the certificate's
 * (CERTS_E_KEY_MISMATCH, with both pins in the message). On success the caller owns both. */
int certs_load_pair(const char *cert_path, const char *key_path, X509 **cert_out,
                    EVP_PKEY **key_out, char *err, size_t err_len);

/* --- reading (inspect.c) */

/* Fills *info from 'cert'. */
int certs_inspect(const X509 *cert, struct certs_info *info, char *err, size_t err_len);

/* The SPKI pin of a public key: "sha256//" and the base64 of the SHA-256 of its DER
 * SubjectPublicKeyInfo, the form curl's --pinnedpubkey takes. */
int certs_pin_of_key(const EVP_PKEY *key, char out[CERTS_PIN_MAX]);
int certs_pin_of_cert(const X509 *cert, char out[CERTS_PIN_MAX]);

/* Whether 'cert' is valid at 'now': 0, CERTS_E_EXPIRED or CERTS_E_NOT_YET_VALID (the message
 * names the certificate's subject and the date), or -EINVAL for unreadable dates. *days_left
 * (when not NULL) gets the whole days until notAfter, negative once it has passed. */
int certs_check_validity(const X509 *cert, time_t now, long *days_left, char *err, size_t err_len);

/* Whole days from 'now' until 'not_after', rounded down: -1 one second after expiry. */
long certs_days_left(time_t not_after, time_t now);

/* 't' as UTC ISO 8601: "2026-03-05T10:00:00Z". */
void certs_format_time(time_t t, char out[CERTS_TIME_MAX]);

#endif
