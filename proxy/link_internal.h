/* What link.c and link_tls.c share; nothing else includes this. */
#ifndef GEOPROXY_PROXY_LINK_INTERNAL_H
#define GEOPROXY_PROXY_LINK_INTERNAL_H

#include "proxy/link.h"

/* link.c: the socket itself. */
int link_tcp_read_start(struct link *l);
void link_tcp_read_stop(struct link *l);
int link_tcp_write(struct link *l, struct link_write *w, const char *data, size_t len);
int link_tcp_shutdown(struct link *l, struct link_shutdown *s);

/* link_tls.c: the TLS layer, called by link.c when l->tls is set. */
int link_tls_read_start(struct link *l);
void link_tls_read_stop(struct link *l);
int link_tls_write(struct link *l, struct link_write *w, const char *data, size_t len);
int link_tls_try_write(struct link *l, const char *data, size_t len);
int link_tls_shutdown(struct link *l, struct link_shutdown *s);
/* nread bytes of ciphertext at data, or UV_EOF / an error from the socket. */
void link_tls_on_read(struct link *l, ssize_t nread, const char *data);
void link_tls_close(struct link *l, uv_close_cb on_closed);
void link_tls_free(struct link *l); /* NULL tls: no-op */

/* mux.c: a stream of a mux session, when l->stream is set. */
int link_stream_read_start(struct link *l);
void link_stream_read_stop(struct link *l);
int link_stream_try_write(struct link *l, const char *data, size_t len);
int link_stream_write(struct link *l, struct link_write *w, const char *data, size_t len);
int link_stream_shutdown(struct link *l, struct link_shutdown *s);
size_t link_stream_queue_size(const struct link *l);
void link_stream_close(struct link *l, link_closed_fn closed, bool reset);
bool link_stream_is_closing(const struct link *l);
int link_stream_local_address(const struct link *l, struct sockaddr *sa, int *len);

#endif
