/* `geoproxy certs init-ca|issue|show`: a private CA, node and client certificates signed by it,
 * and what a certificate says (with the SPKI pin to paste into a configuration). The work is in
 * certs/; this file parses arguments and prints. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certs/certs.h"
#include "proxy/cli.h"

static const char certs_usage_text[] =
    "usage: geoproxy certs init-ca DIR [--ed25519] [--days N]\n"
    "       geoproxy certs issue --ca DIR NAME [--san NAME-OR-IP]... [--days N] [--out DIR]\n"
    "                            [--ed25519]\n"
    "       geoproxy certs show FILE\n"
    "\n"
    "init-ca  a private CA in DIR: ca.pem (certificate) and ca.key (private key, mode 0600);\n"
    "         EC P-256 unless --ed25519; valid 3650 days unless --days\n"
    "issue    NAME.pem and NAME.key (mode 0600) in --out DIR (default: the CA directory),\n"
    "         signed by the CA; good for both TLS server and client; every --san is a DNS\n"
    "         name or an IP address (without --san: NAME, when it is one); 825 days unless\n"
    "         --days\n"
    "show     subject, issuer, names, validity, key type and the SPKI pin of a certificate,\n"
    "         one 'key: value' per line\n"
    "\n"
    "Nothing is ever overwritten. Exit status: 0 done, 1 failed, 2 usage error.\n"
    "See docs/CERTS.md.\n";

/* Parses --days: a whole number 1..CERTS_DAYS_MAX. */
static int certs_parse_days(const char *text, int *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < 1 || v > CERTS_DAYS_MAX) {
        fprintf(stderr,
                "geoproxy certs: --days takes a whole number of days from 1 to %d, not '%s'\n",
                CERTS_DAYS_MAX, text);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* Reads back a certificate just written, for the summary lines. */
static int certs_load_info(const char *path, struct certs_info *info)
{
    char err[CERTS_ERR_MAX];
    X509 *cert = NULL;
    int rc = certs_load_cert(path, &cert, err, sizeof err);

    if (rc == 0)
        rc = certs_inspect(cert, info, err, sizeof err);
    X509_free(cert);
    if (rc != 0)
        fprintf(stderr, "geoproxy certs: written, but cannot be read back: %s\n", err);
    return rc;
}

static int certs_command_init_ca(int argc, char **argv)
{
    enum { OPT_ED25519 = 256, OPT_DAYS };
    static const struct option long_options[] = {
        {"ed25519", no_argument, NULL, OPT_ED25519},
        {"days", required_argument, NULL, OPT_DAYS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct certs_ca_params params = {.key_type = CERTS_KEY_EC_P256};
    char err[CERTS_ERR_MAX], path[PATH_MAX];
    struct certs_info info;
    int ch;

    optind = 0; /* glibc: restart option scanning */
    while ((ch = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        switch (ch) {
        case OPT_ED25519:
            params.key_type = CERTS_KEY_ED25519;
            break;
        case OPT_DAYS:
            if (certs_parse_days(optarg, &params.days) != 0)
                return 2;
            break;
        case 'h':
            fputs(certs_usage_text, stdout);
            return 0;
        default:
            fputs(certs_usage_text, stderr);
            return 2;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "geoproxy certs init-ca: expected one directory\n\n%s", certs_usage_text);
        return 2;
    }
    const char *dir = argv[optind];
    if (certs_ca_create(dir, &params, err, sizeof err) != 0) {
        fprintf(stderr, "geoproxy certs init-ca: %s\n", err);
        return 1;
    }
    snprintf(path, sizeof path, "%s/%s", dir, CERTS_CA_CERT_FILE);
    if (certs_load_info(path, &info) != 0)
        return 1;
    printf("%s: CA '%s' (%s), valid until %s\n", path, info.subject, info.key_type,
           info.not_after_text);
    printf("%s/%s: its private key (mode 0600): only 'certs issue' needs it; keep it off the "
           "nodes\n",
           dir, CERTS_CA_KEY_FILE);
    return 0;
}

static int certs_command_issue(int argc, char **argv)
{
    enum { OPT_CA = 256, OPT_SAN, OPT_DAYS, OPT_OUT, OPT_ED25519 };
    static const struct option long_options[] = {
        {"ca", required_argument, NULL, OPT_CA},
        {"san", required_argument, NULL, OPT_SAN},
        {"days", required_argument, NULL, OPT_DAYS},
        {"out", required_argument, NULL, OPT_OUT},
        {"ed25519", no_argument, NULL, OPT_ED25519},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct certs_issue_params params = {.key_type = CERTS_KEY_EC_P256};
    const char **sans = calloc((size_t)argc + 1, sizeof *sans);
    const char *ca_dir = NULL;
    char err[CERTS_ERR_MAX], path[PATH_MAX];
    struct certs_info info;
    int ch, ret = 2;

    if (sans == NULL) {
        fprintf(stderr, "geoproxy certs issue: out of memory\n");
        return 1;
    }
    optind = 0;
    while ((ch = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        switch (ch) {
        case OPT_CA:
            ca_dir = optarg;
            break;
        case OPT_SAN:
            sans[params.n_sans++] = optarg;
            break;
        case OPT_DAYS:
            if (certs_parse_days(optarg, &params.days) != 0)
                goto out;
            break;
        case OPT_OUT:
            params.out_dir = optarg;
            break;
        case OPT_ED25519:
            params.key_type = CERTS_KEY_ED25519;
            break;
        case 'h':
            fputs(certs_usage_text, stdout);
            ret = 0;
            goto out;
        default:
            fputs(certs_usage_text, stderr);
            goto out;
        }
    }
    if (ca_dir == NULL || argc - optind != 1) {
        fprintf(stderr, "geoproxy certs issue: --ca DIR and one NAME are required\n\n%s",
                certs_usage_text);
        goto out;
    }
    params.name = argv[optind];
    params.sans = sans;
    if (certs_issue(ca_dir, &params, err, sizeof err) != 0) {
        fprintf(stderr, "geoproxy certs issue: %s\n", err);
        ret = 1;
        goto out;
    }
    const char *out_dir = params.out_dir != NULL ? params.out_dir : ca_dir;
    snprintf(path, sizeof path, "%s/%s.pem", out_dir, params.name);
    ret = 1;
    if (certs_load_info(path, &info) != 0)
        goto out;
    printf("%s: '%s' (%s; %s), signed by '%s', valid until %s\n", path, info.subject,
           info.sans[0] ? info.sans : "no subjectAltName", info.key_type, info.issuer,
           info.not_after_text);
    printf("%s/%s.key: its private key (mode 0600)\n", out_dir, params.name);
    printf("pin: %s\n", info.pin);
    ret = 0;
out:
    free(sans);
    return ret;
}

static int certs_command_show(int argc, char **argv)
{
    char err[CERTS_ERR_MAX];
    struct certs_info info;
    X509 *cert = NULL;
    long days_left = 0;
    int rc, ret = 1;

    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(certs_usage_text, stdout);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "geoproxy certs show: expected one FILE\n\n%s", certs_usage_text);
        return 2;
    }
    const char *path = argv[1];
    if (certs_load_cert(path, &cert, err, sizeof err) != 0 ||
        certs_inspect(cert, &info, err, sizeof err) != 0) {
        fprintf(stderr, "geoproxy certs show: %s\n", err);
        goto out;
    }
    rc = certs_check_validity(cert, time(NULL), &days_left, err, sizeof err);
    printf("file: %s\n", path);
    printf("subject: %s\n", info.subject);
    printf("issuer: %s\n", info.issuer);
    printf("serial: %s\n", info.serial);
    printf("ca: %s\n", info.is_ca ? "yes" : "no");
    printf("sans: %s\n", info.sans[0] ? info.sans : "-");
    printf("usage: %s\n", info.usage[0] ? info.usage : "-");
    printf("not_before: %s\n", info.not_before_text);
    printf("not_after: %s\n", info.not_after_text);
    printf("days_left: %ld\n", days_left);
    printf("status: %s\n", rc == CERTS_E_EXPIRED         ? "expired"
                           : rc == CERTS_E_NOT_YET_VALID ? "not yet valid"
                           : rc == 0                     ? "valid"
                                                         : "unknown");
    printf("key_type: %s\n", info.key_type);
    printf("pin: %s\n", info.pin);
    ret = 0;
out:
    X509_free(cert);
    return ret;
}

int cli_certs(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "init-ca") == 0)
        return certs_command_init_ca(argc, argv);
    if (argc >= 1 && strcmp(argv[0], "issue") == 0)
        return certs_command_issue(argc, argv);
    if (argc >= 1 && strcmp(argv[0], "show") == 0)
        return certs_command_show(argc, argv);
    if (argc >= 1 && (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0)) {
        fputs(certs_usage_text, stdout);
        return 0;
    }
    fprintf(stderr, "geoproxy certs: expected 'init-ca', 'issue' or 'show'\n\n%s",
            certs_usage_text);
    return 2;
}
