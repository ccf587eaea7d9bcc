/* The connection's reports: one per policy decision and one per close, each counted in the
 * worker's metrics and, unless the matched rule's log level is none, written to the log and to
 * the live event stream. What an event may contain follows that level: meta (protocol,
 * listener, rule, action, countries and regions of both ends, bytes, duration, outcome, and the
 * client as a daily pseudonym), full (client address, user and destination as well). */
#ifndef GEOPROXY_PROXY_CONN_LOG_H
#define GEOPROXY_PROXY_CONN_LOG_H

struct conn;

void conn_log_decision(const struct conn *c);
void conn_log_close(const struct conn *c);

#endif
