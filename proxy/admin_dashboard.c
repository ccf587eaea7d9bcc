/* The dashboard page served at GET / on the admin listener. */
#include "proxy/admin_routes.h"

static const char dashboard_page[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>geoproxy</title></head>"
    "<body><h1>geoproxy</h1><p>Dashboard coming: see /status, /metrics, /events.</p>"
    "</body></html>\n";

const char *admin_dashboard_page(size_t *len)
{
    *len = sizeof dashboard_page - 1;
    return dashboard_page;
}
