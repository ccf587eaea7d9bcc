/* geoproxy's command line: run, check, passwd, default-config, geodb, --help, --version. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "policy/config.h"
#include "proxy/cli.h"
#include "proxy/default_config.h"
#include "proxy/log.h"

static const char usage_text[] =
    "usage: geoproxy COMMAND [OPTIONS]\n"
    "\n"
    "A forwarding proxy (SOCKS4/4a/5, HTTP) that knows about jurisdictions.\n"
    "\n"
    "commands:\n"
    "  run [-c FILE]        serve in the foreground (without -c: the embedded default,\n"
    "                       SOCKS and HTTP on 127.0.0.1:1080)\n"
    "  check -c FILE        validate a configuration; exit 0 when it can be used, 1 if not\n"
    "  passwd USER          read a password on standard input, print a users-file line\n"
    "  default-config       print the embedded default configuration\n"
    "  geodb build|lookup   geodb build -o OUT.mmdb INPUT...: a country database from Tor,\n"
    "                       CSV and CIDR files; geodb lookup [--db FILE] [--asn FILE] IP...:\n"
    "                       what geoproxy thinks of addresses (geodb --help for more)\n"
    "  certs init-ca|issue|show  a private CA, node and client certificates (certs --help)\n"
    "  explain -c FILE --from ADDRESS-or-CC --to HOST:PORT [--user U] [--listener L]\n"
    "                       how the policy decides one connection, rule by rule\n"
    "  status | reload      ask a running geoproxy (its admin listener) for a summary, or to\n"
    "                       reload its policy now\n"
    "  dry-run -c FILE      which live connections a candidate policy would decide otherwise\n"
    "  tail [--json] [--action A] [--region R] [--rule NAME]\n"
    "                       follow connection events live (reconnects when geoproxy restarts)\n"
    "                       (these four take --admin ADDRESS, default 127.0.0.1:9090, and\n"
    "                       --token-file FILE)\n"
    "\n"
    "options:\n"
    "  -c, --config FILE    configuration file (see docs/CONFIG.md)\n"
    "  --log-format FORMAT  text (default) or json: one JSON object per line on stderr\n"
    "  --log-level LEVEL    debug, info (default), warn or error\n"
    "  --log-file FILE      append log lines to FILE instead of stderr; SIGUSR1 reopens it\n"
    "                       (for logrotate)\n"
    "  -h, --help           this text\n"
    "  -V, --version        the version\n";

struct options {
    const char *config_path;
    const char *log_file;
    enum log_format log_format;
    enum log_severity log_level;
};

static int parse_log_level(const char *name, enum log_severity *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (enum log_severity)i;
            return 0;
        }
    }
    return -1;
}

/* Parses the options after the command; returns 0, or the exit code for a usage error. */
static int parse_options(int argc, char **argv, struct options *opts)
{
    enum { OPT_LOG_FORMAT = 256, OPT_LOG_LEVEL, OPT_LOG_FILE };
    static const struct option long_options[] = {
        {"config", required_argument, NULL, 'c'},
        {"log-file", required_argument, NULL, OPT_LOG_FILE},
        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", long_options, NULL)) != -1) {
        switch (ch) {
        case 'c':
            opts->config_path = optarg;
            break;
        case OPT_LOG_FORMAT:
            if (log_parse_format(optarg, &opts->log_format) != 0) {
                fprintf(stderr, "geoproxy: --log-format takes text or json, not '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_LOG_FILE:
            opts->log_file = optarg;
            break;
        case OPT_LOG_LEVEL:
            if (parse_log_level(optarg, &opts->log_level) != 0) {
                fprintf(stderr, "geoproxy: --log-level takes debug, info, warn or error\n");
                return 2;
            }
            break;
        case 'h':
            fputs(usage_text, stdout);
            return -1;
        default:
            fputs(usage_text, stderr);
            return 2;
        }
    }
    return 0;
}

static int command_check(const struct options *opts)
{
    if (opts->config_path == NULL) {
        fprintf(stderr, "geoproxy check: -c FILE is required\n");
        return 2;
    }
    struct config *cfg = cli_load_config(opts->config_path);
    if (cfg == NULL) {
        fprintf(stderr, "%s: not valid\n", opts->config_path);
        return 1;
    }
    printf("%s: ok (%zu listener(s), %zu rule(s))\n", opts->config_path, cfg->n_listeners,
           cfg->n_rules);
    config_free(cfg);
    return 0;
}

static int command_run(const struct options *opts)
{
    struct config *cfg = cli_load_config(opts->config_path);
    if (cfg == NULL) {
        log_msg(LOG_ERROR, "the configuration has errors; not starting");
        return 1;
    }
    return cli_run(cfg, opts->config_path);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    const char *command = argv[1];
    if (strcmp(command, "-h") == 0 || strcmp(command, "--help") == 0 ||
        strcmp(command, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(command, "-V") == 0 || strcmp(command, "--version") == 0) {
        printf("geoproxy %s\n", GEOPROXY_VERSION);
        return 0;
    }
    if (strcmp(command, "geodb") == 0) /* has its own options */
        return cli_geodb(argc - 2, argv + 2);
    if (strcmp(command, "certs") == 0) /* has its own options */
        return cli_certs(argc - 2, argv + 2);
    if (strcmp(command, "explain") == 0)
        return cli_explain(argc - 1, argv + 1);
    if (strcmp(command, "status") == 0 || strcmp(command, "reload") == 0 ||
        strcmp(command, "dry-run") == 0 || strcmp(command, "tail") == 0)
        return cli_admin(command, argc - 1, argv + 1);
    struct options opts = {.log_format = LOG_FORMAT_TEXT, .log_level = LOG_INFO};
    int rc = parse_options(argc - 1, argv + 1, &opts);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    log_configure(opts.log_format, opts.log_level);
    if (opts.log_file != NULL) {
        int err = log_open_file(opts.log_file);
        if (err != 0) {
            fprintf(stderr, "geoproxy: cannot open log file %s: %s\n", opts.log_file,
                    strerror(-err));
            return 1;
        }
    }
    int extra = argc - 1 - optind; /* operands after the options */

    if (strcmp(command, "run") == 0 && extra == 0)
        return command_run(&opts);
    if (strcmp(command, "check") == 0 && extra == 0)
        return command_check(&opts);
    if (strcmp(command, "passwd") == 0 && extra == 1)
        return cli_passwd(argv[1 + optind]);
    if (strcmp(command, "default-config") == 0 && extra == 0) {
        fputs(default_config_text, stdout);
        return 0;
    }
    fprintf(stderr, "geoproxy: unknown command or wrong arguments: '%s'\n\n%s", command,
            usage_text);
    return 2;
}
