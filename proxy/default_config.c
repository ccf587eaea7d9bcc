#include "proxy/default_config.h"

const char default_config_text[] =
    "# geoproxy's embedded default configuration: `geoproxy default-config` prints it.\n"
    "# SOCKS4/4a/5 and HTTP on one loopback port, every connection passed.\n"
    "listen mixed 127.0.0.1:1080\n"
    "# Status, metrics, live events and reload for this machine only (geoproxy status, tail).\n"
    "admin 127.0.0.1:9090\n"
    "rule default pass\n";
