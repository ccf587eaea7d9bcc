/* The connection's events in the log: one per policy decision and one per close. What they may
 * contain follows the matched rule's log level: none (nothing), meta (protocol, listener, rule,
 * action, bytes, duration, outcome), full (meta plus client address, user and destination). */
#ifndef GEOPROXY_PROXY_CONN_LOG_H
#define GEOPROXY_PROXY_CONN_LOG_H

struct conn;

void conn_log_decision(const struct conn *c);
void conn_log_close(const struct conn *c);

#endif
