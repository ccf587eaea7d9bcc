/* The geoproxy command line: sub-commands and their shared helpers. */
#ifndef GEOPROXY_PROXY_CLI_H
#define GEOPROXY_PROXY_CLI_H

#include "policy/config.h"

/* Loads the configuration at 'path', or the embedded default when path is NULL, and prints
 * every diagnostic to stderr. Returns the config, or NULL when it has errors. */
struct config *cli_load_config(const char *path);

/* `geoproxy run`: serves until SIGTERM/SIGINT; returns the process exit code. */
int cli_run(struct config *cfg);

/* `geoproxy passwd USER`: reads a password from standard input and prints a users-file line. */
int cli_passwd(const char *user);

/* `geoproxy geodb build|lookup ...`: argv[0] is the sub-command ("build" or "lookup").
 * Returns the process exit code: 0 done, 1 bad input or failure, 2 usage error. */
int cli_geodb(int argc, char **argv);

#endif
