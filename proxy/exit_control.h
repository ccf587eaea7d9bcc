/* The questions an entry asks an exit over the authenticated tunnel (proxy/http_control_parse.h):
 * where does your traffic leave (the egress probe of health checks), and what are the addresses
 * of this name (rules with "resolve via"). Answered on tunnel listeners only. */
#ifndef GEOPROXY_PROXY_EXIT_CONTROL_H
#define GEOPROXY_PROXY_EXIT_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/http_parse.h"

struct conn;

/* Answers an origin-form request on a tunnel listener when it is a control request, and closes
 * the connection once the answer is out. Returns false when it is not one (the caller refuses
 * it as any origin-form request). */
bool exit_control_answer(struct conn *c, const struct http_request *req);

#endif
