/* The configuration language: one directive per line, '#' comments, 'include', errors as
 * "file:line:col: message". This module turns text into a validated, immutable struct config.
 * It never opens a socket and never prints: problems go into a caller-supplied diagnostics list.
 * The language reference is docs/CONFIG.md. */
#ifndef GEOPROXY_POLICY_CONFIG_H
#define GEOPROXY_POLICY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONFIG_NAME_MAX 64 /* listener and rule names, including the NUL */
#define CONFIG_MAX_LISTENERS 32
#define CONFIG_MAX_RESOLVERS 4
#define CONFIG_MAX_DIAGS 32
#define CONFIG_MAX_REGIONS 256 /* admin-defined regions */
#define CONFIG_DIAG_TEXT_MAX 512
#define CONFIG_INCLUDE_DEPTH_MAX 8

enum listener_kind {
    LISTENER_MIXED,  /* SOCKS4/4a/5 and HTTP, told apart by the first byte */
    LISTENER_SOCKS5, /* SOCKS5 only */
    LISTENER_SOCKS4, /* SOCKS4 and 4a only */
    LISTENER_HTTP,   /* HTTP proxy only (CONNECT and absolute-form) */
    LISTENER_TUNNEL, /* exit role: HTTP proxy over TLS 1.3 with client certificates required */
};

enum rule_action {
    RULE_PASS,
    RULE_BLOCK,
    RULE_TUNNEL, /* "tunnel via UPSTREAM-or-GROUP" */
};

enum log_level {
    LOG_LEVEL_NONE, /* counted in metrics only */
    LOG_LEVEL_META, /* regions, action, rule, bytes; client as a pseudonym (default) */
    LOG_LEVEL_FULL, /* addresses and host names */
};

struct userdb;     /* policy/userdb.h */
struct geo_db;     /* geo/geo.h */
struct region;     /* geo/region.h */
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */
struct rule_match; /* policy/rule_match.h */
struct rule_index; /* policy/rule_index.h */

struct config_listener {
    char name[CONFIG_NAME_MAX]; /* "name NAME" option, else "KIND-ADDRESS:PORT" */
    enum listener_kind kind;
    struct sockaddr_storage addr; /* bind address with port */
    char *users_path;             /* "users FILE" option, resolved against the config's dir */
    struct userdb *users;         /* loaded users file, or NULL: no authentication */
    /* LISTENER_TUNNEL only ("cert FILE key FILE ca FILE"; paths resolved like users): */
    char *cert_path;
    char *key_path;
    char *ca_path;
    struct ssl_ctx_st *tls; /* server context built at load (certs/tls_context.h); owned */
    int64_t cert_not_after; /* the listener certificate's notAfter (unix time), for metrics */
};

/* "upstream NAME tls|socks5|http HOST:PORT [options]" and "upstream NAME group STRATEGY
 * MEMBER...": where tunnel rules send traffic. docs/CONFIG.md has the grammar. */
enum upstream_kind {
    UPSTREAM_TLS,    /* another geoproxy's tunnel listener: HTTP CONNECT over mutual TLS 1.3 */
    UPSTREAM_SOCKS5, /* a SOCKS5 proxy (Tor's SocksPort, ...): names passed unresolved */
    UPSTREAM_HTTP,   /* a plain HTTP CONNECT parent proxy */
    UPSTREAM_GROUP,  /* members tried by 'strategy' among the healthy ones */
};

enum upstream_strategy {
    UPSTREAM_FAILOVER,    /* the first healthy member in the order written */
    UPSTREAM_ROUND_ROBIN, /* healthy members in turn */
};

#define CONFIG_MAX_UPSTREAMS 64
#define CONFIG_GROUP_MEMBERS_MAX 16
#define CONFIG_HOST_MAX 256 /* a DNS name or an address literal, including the NUL */

struct config_upstream {
    char name[CONFIG_NAME_MAX];
    enum upstream_kind kind;
    unsigned index; /* its position in cfg->upstreams */
    /* tls, socks5, http: where it listens. host is an address literal (IPv6 without brackets)
     * or a DNS name resolved with the local resolver when connecting. */
    char host[CONFIG_HOST_MAX];
    uint16_t port;
    /* tls: "ca FILE cert FILE key FILE [pin sha256//BASE64] [server-name NAME]" */
    char *ca_path;
    char *cert_path;
    char *key_path;
    char *pin;              /* or NULL */
    char *server_name;      /* name checked in the exit's certificate: server-name, else host */
    struct ssl_ctx_st *tls; /* client context built at load (certs/tls_context.h); owned */
    int64_t cert_not_after; /* our client certificate's notAfter (unix time), for metrics */
    unsigned pool;          /* "pool N": idle TLS connections kept ready per worker (default 2) */
    bool no_mux;            /* "mux off": one TLS connection per tunnel, never a mux session */
    bool optimistic;        /* "optimistic on": over the mux, the client is answered before the exit
                               connected; a failure there reaches it as a reset */
    /* socks5, http: "user NAME password-file FILE" (optional) */
    char *user;
    char *password;
    /* "egress CC-or-REGION" (tls only): where its traffic must leave; "" when not declared.
     * The health check verifies it (policy_egress_matches). */
    char egress[CONFIG_NAME_MAX];
    /* group */
    enum upstream_strategy strategy;
    unsigned members[CONFIG_GROUP_MEMBERS_MAX]; /* indices in cfg->upstreams; never groups */
    size_t n_members;
    char *file; /* where it is defined, for messages */
    unsigned line;
};

/* "health-check every DURATION timeout DURATION": how upstreams are probed. */
struct config_health {
    uint32_t interval_ms; /* default 5 s */
    uint32_t timeout_ms;  /* default 3 s */
};

struct config_rule {
    char name[CONFIG_NAME_MAX];
    enum rule_action action;
    char *reason; /* "reason \"...\"" for block, or NULL */
    enum log_level log;
    char *file; /* where the rule was written, for messages */
    unsigned line;
    struct rule_match *match; /* from/to/user/listener (policy/rule_match.h); NULL: none, the
                                 rule matches every connection */
    bool no_resolve;          /* "no-resolve": skip the rule rather than resolve the name */
    const struct config_upstream *via;         /* RULE_TUNNEL: the upstream or group */
    const struct config_upstream *resolve_via; /* "resolve via UPSTREAM": the destination's
                                                  name is resolved by that exit; or NULL */
};

/* "geoip country FILE" / "geoip asn FILE". Without a country line the default database
 * (GEOPROXY_DEFAULT_GEOIP_COUNTRY, built from tor-geoipdb with geoproxy) is used when that file
 * exists. The databases are opened while the configuration loads. */
struct config_geoip {
    char *country_path;      /* the file opened, or NULL when there is no country database */
    char *asn_path;          /* NULL when there is no ASN database */
    struct geo_db *country;  /* NULL when there is no country database */
    struct geo_db *asn;      /* NULL when there is no ASN database */
    bool country_is_default; /* country_path is the built-in default, not a geoip line */
};

/* Durations are in milliseconds; "10s", "250ms", "5m" and a bare number of seconds parse. */
struct config_timeouts {
    uint32_t handshake_ms; /* accept to request parsed, default 10 s */
    uint32_t connect_ms;   /* whole outbound connect incl. all addresses, default 10 s */
    uint32_t dns_ms;       /* one DNS resolution, default 5 s */
    uint32_t idle_ms;      /* relay with no byte either way, default 300 s */
    uint32_t drain_ms;     /* SIGTERM to forced exit, default 30 s */
};

#define CONFIG_ADMIN_PATH_MAX 108 /* a unix socket's path with its NUL (sockaddr_un.sun_path) */

/* "admin ADDRESS [token FILE]" or "admin unix:PATH [token FILE] [mode MODE]": the admin HTTP
 * listener, on TCP or on a unix socket. */
struct config_admin {
    bool enabled;
    struct sockaddr_storage addr;          /* TCP: the address and port */
    char unix_path[CONFIG_ADMIN_PATH_MAX]; /* unix socket, resolved like other paths; "": TCP */
    unsigned unix_mode;                    /* the socket file's permission bits, default 0600 */
    char *token_path; /* NULL: no token (allowed on loopback addresses and private sockets) */
    char *token;      /* the bearer token read from token_path */
};

#define CONFIG_ADMIN_DEFAULT_PORT 9090
#define CONFIG_ADMIN_UNIX_MODE 0600
#define CONFIG_TOKEN_MIN 16 /* bytes in a token file, after trimming the line end */
#define CONFIG_TOKEN_MAX 256

/* "expect from FROM to HOST:PORT [user U] [listener L] -> RULE": a test of the policy itself. */
struct config_expect {
    char *from;    /* an IP address or a country code */
    char *to_host; /* an IP address, a country code or a host name */
    uint16_t port;
    char *user;     /* or NULL */
    char *listener; /* or NULL */
    char rule[CONFIG_NAME_MAX];
    char *file;
    unsigned line;
};

#define CONFIG_EXPECTS_MAX 4096

/* "on-reload keep|reevaluate": what a reload does to connections already open. */
enum config_on_reload {
    ON_RELOAD_KEEP,       /* they finish under the policy they were accepted with (default) */
    ON_RELOAD_REEVALUATE, /* they are decided again; those the new policy blocks are closed */
};

struct config_limits {
    uint32_t connections;            /* concurrent client connections, all workers, default 10000 */
    uint32_t header_bytes;           /* largest handshake or HTTP request head, default 16384 */
    uint32_t dns_cache_entries;      /* per worker, default 4096 */
    uint32_t per_client_connections; /* concurrent connections per client, default 256; 0: no cap */
    uint32_t per_client_rate;        /* new connections per second per client; 0 (default): off */
};

#define CONFIG_ACCOUNT_NAME_MAX 32 /* "user NAME", "group NAME": a system account's name */

struct config {
    char *path; /* the top-level file, or the name given to config_parse_string */
    /* "user NAME" / "group NAME": the account `run` switches to once every socket is bound;
     * "" when not set (no switch; the group defaults to the user's). */
    char run_user[CONFIG_ACCOUNT_NAME_MAX + 1];
    char run_group[CONFIG_ACCOUNT_NAME_MAX + 1];
    struct config_listener listeners[CONFIG_MAX_LISTENERS];
    size_t n_listeners;
    unsigned workers; /* 0 = one per core ("workers auto") */
    struct config_timeouts timeouts;
    struct config_limits limits;
    struct sockaddr_storage resolvers[CONFIG_MAX_RESOLVERS]; /* with port; none: resolv.conf */
    size_t n_resolvers;
    struct config_rule *rules; /* in file order; first match wins */
    size_t n_rules;
    struct config_geoip geoip;
    enum config_on_reload on_reload;
    struct config_admin admin;
    struct config_expect *expects;
    size_t n_expects;
    struct region *regions; /* "region NAME = CC ..." in file order */
    size_t n_regions;
    struct config_upstream *upstreams; /* in file order; never reallocated once loaded */
    size_t n_upstreams;
    struct config_health health;
    /* "external ADDRESS" (no port): the source address of direct outbound connections, and the
     * egress a tunnel listener reports to entries. has_external false: the kernel chooses. */
    struct sockaddr_storage external;
    bool has_external;
    /* Every file this configuration was read from: the top file, included files, users files
     * and GeoIP databases, as opened (relative to the working directory or absolute). A reload
     * is due when any of them changes. */
    char **sources;
    size_t n_sources;
    struct rule_index *index; /* the rules compiled for policy_decide (policy/rule_index.h) */
};

enum config_severity { CONFIG_ERROR, CONFIG_WARNING };

struct config_diag {
    enum config_severity severity;
    char text[CONFIG_DIAG_TEXT_MAX]; /* "file:line:col: message" */
};

/* Everything the parser had to say. Errors beyond CONFIG_MAX_DIAGS are counted in 'dropped'. */
struct config_diags {
    struct config_diag items[CONFIG_MAX_DIAGS];
    size_t count;
    size_t errors;
    size_t dropped;
};

/* Reads, parses and validates the file at 'path' and everything it includes (relative includes
 * resolve against the including file's directory), and loads users files. On success returns 0
 * and stores a new config in *out (warnings may still be in diags). On any error returns -1,
 * stores NULL, and diags holds at least one CONFIG_ERROR. 'diags' is cleared first. */
int config_load_file(const char *path, struct config **out, struct config_diags *diags);

/* Same over text in memory; 'name' is used in messages ("<default>"), relative includes and
 * users files resolve against 'base_dir' (NULL: the current directory). */
int config_load_string(const char *name, const char *text, const char *base_dir,
                       struct config **out, struct config_diags *diags);

/* Frees a config and everything it owns. config_free(NULL) is a no-op. */
void config_free(struct config *cfg);

/* "mixed", "socks5", "socks4", "http". */
const char *config_listener_kind_name(enum listener_kind kind);

/* Formats a socket address as "1.2.3.4:80" or "[::1]:80" into buf (at least 64 bytes). */
const char *config_format_addr(const struct sockaddr_storage *addr, char *buf, size_t len);

#endif
