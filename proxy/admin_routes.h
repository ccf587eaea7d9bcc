/* What the admin endpoints say: the status document, the metrics, connection listings, dry-run
 * results and load errors as JSON, and the dashboard page. Everything is built into a strbuf
 * (the caller frees it); nothing here touches a socket. */
#ifndef GEOPROXY_PROXY_ADMIN_ROUTES_H
#define GEOPROXY_PROXY_ADMIN_ROUTES_H

#include <stddef.h>
#include <stdint.h>

#include "policy/config.h"
#include "proxy/admin.h"
#include "proxy/inspect.h"
#include "proxy/metrics.h"
#include "proxy/strbuf.h"

#define ADMIN_REPLY_MAX (64u * 1024u * 1024u)

/* Start-up facts the status reports, and where to read the live ones. */
struct admin_status_info {
    struct admin_deps deps;
    int64_t started_at; /* Unix time */
};

void admin_status_info_init(struct admin_status_info *info, const struct admin_deps *deps);

/* GET /status as JSON. */
void admin_render_status(const struct admin_status_info *info, struct strbuf *out);

/* GET /status?format=text: a short summary for people (geoproxy status). */
void admin_render_status_text(const struct admin_status_info *info, struct strbuf *out);

/* GET /metrics in the Prometheus text format. */
void admin_render_metrics(const struct admin_status_info *info, struct metrics_exposition *x,
                          struct strbuf *out);

/* The workers' answers to a listing or a dry run, as one JSON document. */
void admin_render_inspection(const struct inspection *q, struct strbuf *out);

/* A candidate configuration that did not load: its problems as JSON. */
void admin_render_diags(const char *path, const struct config_diags *d, struct strbuf *out);

/* GET /: the dashboard, a self-contained HTML page. */
const char *admin_dashboard_page(size_t *len);

#endif
