/* The configuration geoproxy runs with when no -c FILE is given. */
#ifndef GEOPROXY_PROXY_DEFAULT_CONFIG_H
#define GEOPROXY_PROXY_DEFAULT_CONFIG_H

extern const char default_config_text[];

#endif
