/* TLS contexts of tunnels: the server side of a tunnel listener and the client side of a tls
 * upstream, both TLS 1.3 only with certificates required on both ends, and the checks made on a
 * peer once a handshake is done or has failed. Builds and inspects OpenSSL objects only: it
 * never touches a socket (the proxy feeds the SSL objects from memory BIOs).
 *
 * Every function that can fail returns 0 or a negative code (as certs/certs.h) and writes into
 * err a message that starts with the path of the file at fault ("PATH: ..."), so that a caller
 * can tell which of its inputs to point at. */
#ifndef GEOPROXY_CERTS_TLS_CONTEXT_H
#define GEOPROXY_CERTS_TLS_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/ssl.h>

/* ALPN protocol names a tunnel listener accepts, in its order of preference: the mux of
 * proxy/mux.h (many tunnels over one connection), then HTTP/1.1 CONNECT (one tunnel per
 * connection; also what a client that offers no ALPN, curl for one, gets). */
#define CERTS_ALPN_MUX "geoproxy-mux/1"
#define CERTS_ALPN_HTTP1 "http/1.1"

/* The server context of a tunnel listener: TLS 1.3 only; ALPN as above; our certificate and key
 * from 'cert' and 'key' (certs_load_pair: the key file private to its owner, the key the
 * certificate's); our certificate valid at 'now' (an expired or not yet valid one is refused, the
 * message naming the file and the date); the certificates of 'ca' as the trust store and as the
 * list of CAs sent to clients; a client certificate required (SSL_VERIFY_PEER |
 * SSL_VERIFY_FAIL_IF_NO_PEER_CERT); a session id context and session tickets, so that TLS 1.3
 * resumption works with client certificates. On success *out is a new context the caller frees with
 * SSL_CTX_free and *not_after (when not NULL) our certificate's notAfter. */
int certs_tls_server_context(const char *cert, const char *key, const char *ca, time_t now,
                             SSL_CTX **out, time_t *not_after, char *err, size_t err_len);

/* The client context of a tls upstream: TLS 1.3 only; the server's certificate verified against
 * 'ca' (SSL_VERIFY_PEER; the name to check is set per connection with SSL_set1_host); our client
 * certificate and key checked as for the server (cert and key both NULL: no client certificate,
 * for probes and tests); the client session cache on (SSL_SESS_CACHE_CLIENT) so that the caller
 * can keep SSL_SESSIONs and resume them. *out and *not_after as for the server (*not_after is 0
 * without a client certificate). */
int certs_tls_client_context(const char *ca, const char *cert, const char *key, time_t now,
                             SSL_CTX **out, time_t *not_after, char *err, size_t err_len);

/* Whether the peer's certificate has the SPKI pin 'pin' ("sha256//BASE64", certs_pin_of_cert).
 * False when there is no peer certificate, and when pin is NULL (callers check a pin only when
 * one is configured). */
bool certs_ssl_peer_matches_pin(const SSL *ssl, const char *pin);

/* Why the peer's certificate was refused, for logs: the verifier's reason and the certificate
 * that failed, "certificate has expired (CN=client1, notAfter 2026-01-01T00:00:00Z)"; "no
 * certificate presented" when the peer sent none. The certificate is the one the verifier
 * refused in a context made here (SSL_get0_peer_certificate is empty after a failed handshake);
 * with a verify callback of the caller's own, the peer certificate when there is one. */
void certs_describe_verify_failure(const SSL *ssl, char *out, size_t len);

#endif
