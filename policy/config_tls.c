/* The TLS material of a tunnel listener or a tls upstream, loaded while the configuration loads:
 * the three files resolved like every path, the context built by certs/tls_context.c, and a
 * problem reported at the word of the file it is about. */
#include "policy/config_parser.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ssl.h>

#include "certs/certs.h"
#include "certs/tls_context.h"

static void tls_files_forget(struct config_tls_files *f)
{
    free(f->cert_path);
    free(f->key_path);
    free(f->ca_path);
    f->cert_path = f->key_path = f->ca_path = NULL;
}

/* certs/tls_context.c starts every message with the path of the file at fault. */
static bool tls_message_is_about(const char *err, const char *path)
{
    size_t len = strlen(path);

    return strncmp(err, path, len) == 0 && (err[len] == ':' || err[len] == ' ');
}

static const struct config_token *tls_word_at_fault(const struct config_tls_files *f,
                                                    const char *err)
{
    if (tls_message_is_about(err, f->key_path))
        return f->key;
    if (tls_message_is_about(err, f->ca_path))
        return f->ca;
    return f->cert;
}

int config_tls_load(struct config_parser *p, bool server, struct config_tls_files *f,
                    struct ssl_ctx_st **ctx, int64_t *not_after)
{
    char err[CERTS_ERR_MAX];
    time_t until = 0;
    int rc;

    *ctx = NULL;
    *not_after = 0;
    f->cert_path = config_join_path(p, f->cert, "certificate file");
    f->key_path = f->cert_path != NULL ? config_join_path(p, f->key, "key file") : NULL;
    f->ca_path = f->key_path != NULL ? config_join_path(p, f->ca, "CA file") : NULL;
    if (f->ca_path == NULL)
        goto fail;
    if (server)
        rc = certs_tls_server_context(f->cert_path, f->key_path, f->ca_path, time(NULL), ctx,
                                      &until, err, sizeof err);
    else
        rc = certs_tls_client_context(f->ca_path, f->cert_path, f->key_path, time(NULL), ctx,
                                      &until, err, sizeof err);
    if (rc != 0) {
        config_parser_error(p, tls_word_at_fault(f, err)->col, "%s", err);
        goto fail;
    }
    if (config_add_source(p, f->cert_path, f->cert->col) != 0 ||
        config_add_source(p, f->key_path, f->key->col) != 0 ||
        config_add_source(p, f->ca_path, f->ca->col) != 0) {
        SSL_CTX_free(*ctx);
        *ctx = NULL;
        goto fail;
    }
    *not_after = (int64_t)until;
    return 0;
fail:
    tls_files_forget(f);
    return -1;
}
