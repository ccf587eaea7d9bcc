/* What a follower of the event stream asked for (GET /events?format=text&action=block&rule=R
 * &region=EU): which events, and in which form. Pure: parses a query string, tests and renders
 * one event line. */
#ifndef GEOPROXY_PROXY_EVENT_FILTER_H
#define GEOPROXY_PROXY_EVENT_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/log.h"
#include "proxy/strbuf.h"

#define EVENT_FILTER_VALUE_MAX 64

enum event_format { EVENT_FORMAT_JSON, EVENT_FORMAT_TEXT, EVENT_FORMAT_SSE };

struct event_filter {
    enum event_format format;
    char action[EVENT_FILTER_VALUE_MAX]; /* "" = any */
    char rule[EVENT_FILTER_VALUE_MAX];
    char region[EVENT_FILTER_VALUE_MAX]; /* a region or a country code, either end */
};

/* Parses "a=b&c=d" (after the '?'). Returns 0, or -1 with a message in err for an unknown
 * parameter or value. */
int event_filter_parse(const char *query, size_t len, struct event_filter *f, char *err,
                       size_t err_len);

/* Appends the event (one JSON line, newline included) to out in the follower's format, if it
 * passes the filter. */
void event_filter_render(const struct event_filter *f, const char *line, size_t len,
                         struct strbuf *out);

#endif
