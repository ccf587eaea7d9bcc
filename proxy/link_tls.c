/* TLS over a link's socket: OpenSSL works on two memory BIOs. Ciphertext read from the socket
 * is appended to the read BIO; whatever OpenSSL writes to the write BIO is taken out and handed
 * to libuv, either as the ciphertext of the owner's write (link_tls_write) or as a flush of its
 * own (handshake flights, session tickets, close_notify). The WANT_READ / WANT_WRITE outcomes
 * are mapped in tls_pump and tls_handshake_step only.
 *
 * Backpressure: the socket is read only while the owner reads (or the handshake runs), so at
 * most one read of ciphertext waits in the read BIO. Plaintext is delivered in buffers the
 * owner allocates, filled as far as the records at hand allow. A socket EOF that did not follow
 * the peer's close_notify is reported as UV_EPROTO (the stream may have been cut short), not as
 * a clean end. */
#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "certs/tls_context.h"
#include "proxy/container_of.h"
#include "proxy/link_internal.h"

#define LINK_TLS_ERROR_MAX 256

struct link_tls {
    SSL *ssl;  /* owns both BIOs */
    BIO *rbio; /* ciphertext from the socket */
    BIO *wbio; /* ciphertext for the socket */
    uv_idle_t pump;
    link_handshake_fn handshake_done; /* set while the handshake runs */
    bool reading;                     /* the owner wants plaintext */
    bool read_ended;                  /* EOF or an error was delivered */
    int socket_status;                /* 0, or UV_EOF / the error the socket read ended with */
    char error[LINK_TLS_ERROR_MAX];
};

struct tls_flush {
    uv_write_t req;
    char data[];
};

/* Records why the last TLS call failed: a refused certificate first, then OpenSSL's queue. */
static void tls_note_error(struct link_tls *t, const char *what)
{
    char detail[LINK_TLS_ERROR_MAX - 64] = "";
    unsigned long code = ERR_peek_error();
    if (SSL_get_verify_result(t->ssl) != X509_V_OK)
        certs_describe_verify_failure(t->ssl, detail, sizeof(detail));
    else if (code != 0)
        ERR_error_string_n(code, detail, sizeof(detail));
    ERR_clear_error();
    if (detail[0] != '\0')
        snprintf(t->error, sizeof(t->error), "%s: %s", what, detail);
    else
        snprintf(t->error, sizeof(t->error), "%s", what);
}

/* Empties the thread's OpenSSL error queue before a TLS call, so that SSL_get_error() speaks of
 * that call only. Looking is cheaper than clearing, and the queue is nearly always empty. */
static void tls_errors_forget(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

static void on_flush_done(uv_write_t *req, int status)
{
    (void)status; /* a failed socket shows at the next read or write */
    free(container_of(req, struct tls_flush, req));
}

/* Sends what OpenSSL has written to the write BIO: at once as far as the kernel takes it when
 * nothing is queued before it (no request, no callback turn), the rest in a write of the link's
 * own. Returns 0 or a libuv error. */
static int tls_flush(struct link *l)
{
    size_t n = BIO_ctrl_pending(l->tls->wbio);
    if (n == 0)
        return 0;
    struct tls_flush *f = malloc(sizeof(*f) + n);
    if (f == NULL)
        return UV_ENOMEM;
    int got = BIO_read(l->tls->wbio, f->data, (int)n);
    uv_buf_t buf = uv_buf_init(f->data, got > 0 ? (unsigned)got : 0);
    if (uv_stream_get_write_queue_size((uv_stream_t *)&l->tcp) == 0 && buf.len > 0) {
        int sent = uv_try_write((uv_stream_t *)&l->tcp, &buf, 1);
        if (sent < 0 && sent != UV_EAGAIN) {
            free(f);
            return sent;
        }
        if (sent > 0) {
            buf.base += sent;
            buf.len -= (unsigned)sent;
        }
    }
    int err = buf.len > 0 ? uv_write(&f->req, (uv_stream_t *)&l->tcp, &buf, 1, on_flush_done) : 0;
    if (err != 0 || buf.len == 0)
        free(f);
    return err;
}

/* ---- handshake ----------------------------------------------------------------------------- */

static void tls_handshake_finish(struct link *l, int status)
{
    struct link_tls *t = l->tls;
    link_handshake_fn done = t->handshake_done;
    t->handshake_done = NULL;
    if (!t->reading)
        link_tcp_read_stop(l);
    done(l, status);
}

static void tls_handshake_step(struct link *l)
{
    struct link_tls *t = l->tls;
    tls_errors_forget();
    int r = SSL_do_handshake(t->ssl);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
    if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ)
        tls_note_error(t, "TLS handshake failed");
    int flushed = tls_flush(l); /* an alert tells the peer why, before we close */
    if (e == SSL_ERROR_NONE) {
        tls_handshake_finish(l, flushed);
        return;
    }
    if (e != SSL_ERROR_WANT_READ) {
        tls_handshake_finish(l, UV_EPROTO);
        return;
    }
    if (flushed != 0) {
        snprintf(t->error, sizeof(t->error), "TLS handshake: %s", uv_strerror(flushed));
        tls_handshake_finish(l, flushed);
    } else if (t->socket_status != 0) {
        snprintf(t->error, sizeof(t->error),
                 "the peer closed the connection during the TLS "
                 "handshake");
        tls_handshake_finish(l, UV_ECONNRESET);
    }
}

static void on_pump(uv_idle_t *idle);

int link_tls_start(struct link *l, SSL_CTX *ctx, bool server, const char *peer_name,
                   SSL_SESSION *session, const char *alpn, link_handshake_fn done)
{
    if (l->tls != NULL || link_is_closing(l))
        return UV_EINVAL;
    struct link_tls *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return UV_ENOMEM;
    int err = uv_idle_init(l->tcp.loop, &t->pump);
    if (err != 0) {
        free(t);
        return err;
    }
    t->pump.data = l;
    l->open_handles++;
    l->tls = t; /* from here on link_close releases everything */
    t->handshake_done = done;

    t->ssl = SSL_new(ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        t->rbio = t->wbio = NULL;
        ERR_clear_error();
        return UV_ENOMEM;
    }
    BIO_set_mem_eof_return(t->rbio, -1); /* empty means "wait for more", not end of stream */
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    if (server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        unsigned char ip[16];
        bool literal = inet_pton(AF_INET, peer_name, ip) == 1 || inet_pton(AF_INET6, peer_name, ip);
        int ok = literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), peer_name)
                         : SSL_set_tlsext_host_name(t->ssl, peer_name) == 1 &&
                               SSL_set1_host(t->ssl, peer_name) == 1;
        unsigned char protos[256];
        size_t alpn_len = alpn != NULL ? strlen(alpn) : 0;
        if (alpn_len > 0 && alpn_len < sizeof(protos)) {
            protos[0] = (unsigned char)alpn_len;
            memcpy(protos + 1, alpn, alpn_len);
            if (SSL_set_alpn_protos(t->ssl, protos, (unsigned)alpn_len + 1) != 0)
                ok = 0;
        }
        if (ok != 1 || (session != NULL && SSL_set_session(t->ssl, session) != 1)) {
            ERR_clear_error();
            return UV_EINVAL;
        }
    }
    err = link_tcp_read_start(l);
    if (err != 0)
        return err;
    tls_errors_forget();
    int r = SSL_do_handshake(t->ssl); /* a client's first flight; a server just waits */
    if (r != 1 && SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ) {
        tls_note_error(t, "TLS handshake failed");
        return UV_EPROTO;
    }
    return tls_flush(l);
}

/* ---- reading ------------------------------------------------------------------------------- */

/* Delivers the end of the stream once: UV_EOF after close_notify, otherwise an error. */
static void tls_end_reads(struct link *l, int status, uv_buf_t *buf)
{
    struct link_tls *t = l->tls;
    t->read_ended = true;
    link_tcp_read_stop(l);
    l->read(l, status, buf);
}

/* True when SSL_read could give something now: plaintext or records waiting, or the socket's end
 * still to be reported. Otherwise asking would only hear SSL_ERROR_WANT_READ, which costs as
 * much as reading a small record. */
static bool tls_may_read(const struct link_tls *t)
{
    return SSL_has_pending(t->ssl) || BIO_ctrl_pending(t->rbio) > 0 || t->socket_status != 0;
}

/* Fills one owner buffer with plaintext: its length, 0 when OpenSSL needs more ciphertext, or
 * the end of reads (*end: UV_EOF or an error) once the buffer's bytes are delivered. */
static size_t tls_read_into(struct link *l, uv_buf_t *buf, int *end)
{
    struct link_tls *t = l->tls;
    size_t filled = 0;
    *end = 0;
    while (filled < buf->len) {
        if (filled > 0 && !tls_may_read(t))
            break;
        size_t got = 0;
        tls_errors_forget();
        if (SSL_read_ex(t->ssl, buf->base + filled, buf->len - filled, &got) == 1) {
            filled += got;
            continue;
        }
        int e = SSL_get_error(t->ssl, 0);
        if (e == SSL_ERROR_WANT_READ) {
            if (t->socket_status != 0) {
                snprintf(t->error, sizeof(t->error),
                         "the peer closed the connection without "
                         "a TLS close_notify");
                *end = t->socket_status == UV_EOF ? UV_EPROTO : t->socket_status;
            }
        } else if (e == SSL_ERROR_ZERO_RETURN) {
            *end = UV_EOF;
        } else {
            tls_note_error(t, "TLS read failed");
            *end = UV_EPROTO;
        }
        break;
    }
    return filled;
}

/* Delivers plaintext while the owner reads, then flushes what reading made OpenSSL write (key
 * updates). */
static void tls_pump(struct link *l)
{
    struct link_tls *t = l->tls;
    while (t->reading && !t->read_ended && !link_is_closing(l) && tls_may_read(t)) {
        uv_buf_t buf = uv_buf_init(NULL, 0);
        l->alloc(l, &buf);
        if (buf.len == 0) {
            tls_end_reads(l, UV_ENOBUFS, &buf);
            return;
        }
        int end;
        size_t n = tls_read_into(l, &buf, &end);
        if (n > 0) {
            l->read(l, (ssize_t)n, &buf);
            if (end != 0 && !link_is_closing(l)) {
                uv_buf_t none = uv_buf_init(NULL, 0);
                tls_end_reads(l, end, &none);
            }
            continue;
        }
        if (end != 0) {
            tls_end_reads(l, end, &buf);
            return;
        }
        l->read(l, 0, &buf); /* nothing: the buffer goes back */
        break;
    }
    if (!link_is_closing(l))
        tls_flush(l);
}

void link_tls_on_read(struct link *l, ssize_t nread, const char *data)
{
    struct link_tls *t = l->tls;
    if (nread > 0)
        BIO_write(t->rbio, data, (int)nread);
    else if (nread < 0)
        t->socket_status = (int)nread;
    else
        return;
    if (t->handshake_done != NULL) {
        tls_handshake_step(l);
        return;
    }
    tls_pump(l);
}

static void on_pump(uv_idle_t *idle)
{
    struct link *l = idle->data;
    uv_idle_stop(idle);
    if (!link_is_closing(l) && l->tls->handshake_done == NULL)
        tls_pump(l);
}

int link_tls_read_start(struct link *l)
{
    struct link_tls *t = l->tls;
    t->reading = true;
    if (t->read_ended)
        return 0;
    if (tls_may_read(t))
        uv_idle_start(&t->pump, on_pump);
    if (t->socket_status != 0)
        return 0;
    return link_tcp_read_start(l);
}

void link_tls_read_stop(struct link *l)
{
    struct link_tls *t = l->tls;
    t->reading = false;
    uv_idle_stop(&t->pump);
    if (t->handshake_done == NULL)
        link_tcp_read_stop(l);
}

/* ---- writing ------------------------------------------------------------------------------- */

/* Encrypts data into the write BIO. Returns 0, or UV_EPROTO with the reason noted. */
static int tls_encrypt(struct link_tls *t, const char *data, size_t len)
{
    size_t written = 0;
    tls_errors_forget();
    if (len > 0 && SSL_write_ex(t->ssl, data, len, &written) != 1) {
        tls_note_error(t, "TLS write failed");
        return UV_EPROTO;
    }
    return 0;
}

/* Encrypts data and writes it, with whatever OpenSSL had queued before, as w's request. */
int link_tls_write(struct link *l, struct link_write *w, const char *data, size_t len)
{
    struct link_tls *t = l->tls;
    if (t->handshake_done != NULL)
        return UV_EAGAIN;
    int err = tls_encrypt(t, data, len);
    if (err != 0)
        return err;
    size_t n = BIO_ctrl_pending(t->wbio);
    w->cipher = malloc(n > 0 ? n : 1);
    if (w->cipher == NULL)
        return UV_ENOMEM;
    int got = n > 0 ? BIO_read(t->wbio, w->cipher, (int)n) : 0;
    err = link_tcp_write(l, w, w->cipher, got > 0 ? (size_t)got : 0);
    if (err != 0) {
        free(w->cipher);
        w->cipher = NULL;
    }
    return err;
}

/* Takes all of data, as a socket with room would, when no write waits before it: encrypts it and
 * sends the records (tls_flush). Returns len, UV_EAGAIN (use link_write), or an error. */
int link_tls_try_write(struct link *l, const char *data, size_t len)
{
    struct link_tls *t = l->tls;
    if (t->handshake_done != NULL || uv_stream_get_write_queue_size((uv_stream_t *)&l->tcp) > 0 ||
        len > INT_MAX)
        return UV_EAGAIN;
    int err = tls_encrypt(t, data, len);
    if (err == 0)
        err = tls_flush(l);
    return err != 0 ? err : (int)len;
}

int link_tls_shutdown(struct link *l, struct link_shutdown *s)
{
    struct link_tls *t = l->tls;
    tls_errors_forget();
    if (t->handshake_done == NULL && SSL_shutdown(t->ssl) < 0)
        ERR_clear_error(); /* the FIN still goes */
    int err = tls_flush(l);
    if (err != 0)
        return err;
    return link_tcp_shutdown(l, s);
}

/* ---- the rest ------------------------------------------------------------------------------ */

void link_tls_close(struct link *l, uv_close_cb on_closed)
{
    l->tls->handshake_done = NULL; /* never called once closing */
    uv_close((uv_handle_t *)&l->tls->pump, on_closed);
}

void link_tls_free(struct link *l)
{
    if (l->tls == NULL)
        return;
    if (l->tls->ssl != NULL) {
        /* A link closed after its handshake leaves a good session: without this, OpenSSL
         * takes any close but a close_notify exchange for a broken one and stops resuming it. */
        if (SSL_is_init_finished(l->tls->ssl))
            SSL_set_shutdown(l->tls->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(l->tls->ssl);
    } else {
        BIO_free(l->tls->rbio);
        BIO_free(l->tls->wbio);
    }
    free(l->tls);
    l->tls = NULL;
}

SSL *link_ssl(const struct link *l)
{
    return l->tls != NULL ? l->tls->ssl : NULL;
}

const char *link_tls_error(const struct link *l)
{
    return l->tls != NULL ? l->tls->error : "";
}

bool link_tls_alpn_is(const struct link *l, const char *name)
{
    const unsigned char *chosen = NULL;
    unsigned int len = 0;
    if (l->tls == NULL || l->tls->ssl == NULL)
        return false;
    SSL_get0_alpn_selected(l->tls->ssl, &chosen, &len);
    return chosen != NULL && len == strlen(name) && memcmp(chosen, name, len) == 0;
}
