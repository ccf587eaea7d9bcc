/* The geoproxy command line: sub-commands and their shared helpers. */
#ifndef GEOPROXY_PROXY_CLI_H
#define GEOPROXY_PROXY_CLI_H

#include "policy/config.h"

/* Loads the configuration at 'path', or the embedded default when path is NULL, and prints
 * every diagnostic to stderr. Returns the config, or NULL when it has errors. */
struct config *cli_load_config(const char *path);

/* Loads the configuration at 'path', or the embedded default when path is NULL, without
 * printing: as config_load_file(). Blocking file I/O. */
int cli_config_load(const char *path, struct config **out, struct config_diags *diags);

/* `geoproxy run`: serves until SIGTERM/SIGINT, reloading the policy from config_path (NULL: the
 * embedded default) on SIGHUP and when its files change; returns the process exit code. */
int cli_run(struct config *cfg, const char *config_path);

/* `geoproxy passwd USER`: reads a password from standard input and prints a users-file line. */
int cli_passwd(const char *user);

/* `geoproxy geodb build|lookup ...`: argv[0] is the sub-command ("build" or "lookup").
 * Returns the process exit code: 0 done, 1 bad input or failure, 2 usage error. */
int cli_geodb(int argc, char **argv);

/* `geoproxy certs init-ca|issue|show ...`: argv[0] is the sub-command. Returns the process exit
 * code: 0 done, 1 failure (the file and the reason on stderr), 2 usage error. */
int cli_certs(int argc, char **argv);

/* `geoproxy explain ...`: argv[0] is "explain". Returns the process exit code. */
int cli_explain(int argc, char **argv);

/* `geoproxy status|reload|dry-run|tail ...` against a running geoproxy's admin listener; argv[0]
 * is the command. Returns the process exit code. */
int cli_admin(const char *command, int argc, char **argv);

#endif
