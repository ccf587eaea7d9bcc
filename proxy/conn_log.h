/* The connection's reports: one per policy decision and one per close, each counted in the
 * worker's metrics and, unless the matched rule's log level is none, written to the log and to
 * the live event stream. What an event may contain follows that level: meta (protocol,
 * listener, rule, action, countries and regions of both ends, bytes, duration, outcome, and the
 * client as a daily pseudonym), full (client address, user and destination as well). */
#ifndef GEOPROXY_PROXY_CONN_LOG_H
#define GEOPROXY_PROXY_CONN_LOG_H

#include <stddef.h>

#include "policy/policy.h"

struct conn;

void conn_log_decision(struct conn *c);
void conn_log_close(struct conn *c);

/* The client's pseudonym (worked out once per connection), for log lines that must not name
 * its address. */
const char *conn_log_client_id(struct conn *c);

/* The connection as one JSON line (event "connection") for the admin listener: what its events
 * show at its log level (at none only the rule, action, phase and counters), its phase, age and
 * bytes so far, and with 'candidate' (may be NULL) the verdict a candidate policy would give
 * it. Returns the length, or 0 when it does not fit in cap. */
size_t conn_log_describe(const struct conn *c, const struct policy_verdict *candidate, char *out,
                         size_t cap);

#endif
