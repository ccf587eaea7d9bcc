/* Every inbound protocol the proxy speaks, as the connection sees it (proxy/conn.h). */
#ifndef GEOPROXY_PROXY_INBOUND_H
#define GEOPROXY_PROXY_INBOUND_H

#include "proxy/conn.h"

extern const struct inbound_ops inbound_socks5_ops; /* proxy/inbound_socks5.c */
extern const struct inbound_ops inbound_socks4_ops; /* proxy/inbound_socks4.c */
extern const struct inbound_ops inbound_http_ops;   /* proxy/inbound_http.c */

#endif
