/* `geoproxy explain -c FILE --from ADDRESS-or-CC --to HOST:PORT [--user U] [--listener L]`:
 * how the policy in FILE decides one connection: both ends' classification, every rule tried
 * with its file and line, and the verdict. A name is resolved (with the system resolver) only
 * when a rule needs its address, exactly as the proxy would. */
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "geo/geo.h"
#include "geo/region.h"
#include "policy/policy.h"
#include "proxy/cli.h"

#define EXPLAIN_ADDRS_MAX 16

static const char explain_usage[] =
    "usage: geoproxy explain -c FILE --from ADDRESS-or-COUNTRY --to HOST:PORT\n"
    "                        [--user NAME] [--listener NAME]\n"
    "  --from  the client: an IP address, or a country code (HK) for a client anywhere there\n"
    "  --to    the destination: an IP address ([v6]:port), a country code, or a host name\n";

static const char *step_text(enum policy_step step)
{
    switch (step) {
    case POLICY_STEP_NO_MATCH:
        return "no match";
    case POLICY_STEP_MATCH:
        return "MATCH";
    case POLICY_STEP_NEEDS_ADDRESS:
        return "needs the destination's address";
    case POLICY_STEP_SKIPPED_NO_RESOLVE:
        return "would need the address; skipped (no-resolve)";
    }
    return "?";
}

static void print_step(void *arg, const struct config_rule *rule, enum policy_step step)
{
    (void)arg;
    printf("  %s:%u  %-20s %s\n", rule->file, rule->line, rule->name, step_text(step));
}

static void print_place(const struct config *cfg, const char *what, const char *given,
                        const struct geo_result *geo)
{
    const char *names[16];
    printf("%-12s %s: ", what, given);
    if (geo->cls != GEO_CLASS_COUNTRY) {
        printf("%s\n", geo_class_name(geo->cls));
        return;
    }
    printf("country %s%s, regions ", geo->country, geo->local ? " (a local range)" : "");
    size_t n = policy_config_regions_of(cfg, geo->country, names, 16);
    for (size_t i = 0; i < n && i < 16; i++)
        printf("%s%s", i ? "," : "", names[i]);
    printf("%s", n == 0 ? "-" : "");
    if (geo->asn != 0)
        printf(", AS%u %s", (unsigned)geo->asn, geo->as_org);
    printf("\n");
}

static void print_verdict(const struct policy_verdict *v)
{
    if (v->file != NULL)
        printf("verdict: %s by rule '%s' (%s:%u)", policy_action_name(v->action), v->rule, v->file,
               v->line);
    else
        printf("verdict: %s: no rule matched (geoproxy refuses by default)",
               policy_action_name(v->action));
    if (v->action == VERDICT_BLOCK && v->reason != NULL && v->file != NULL)
        printf(": %s", v->reason);
    if (v->action == VERDICT_TUNNEL && v->via != NULL)
        printf(": tunnel via %s", v->via->name);
    printf("\n");
}

/* Splits HOST:PORT (IPv6 in brackets). */
static int split_target(const char *text, char *host, size_t cap, uint16_t *port)
{
    const char *colon;
    const char *start = text;
    size_t host_len;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        start = text + 1;
        host_len = (size_t)(close - start);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL)
            return -1;
        host_len = (size_t)(colon - text);
    }
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (host_len == 0 || host_len >= cap || end == colon + 1 || *end != '\0' || p < 1 || p > 65535)
        return -1;
    memcpy(host, start, host_len);
    host[host_len] = '\0';
    *port = (uint16_t)p;
    return 0;
}

/* The proxy asked for the destination's address: resolve it and decide once per address. */
static int explain_resolved(const struct config *cfg, struct policy_probe *probe, const char *host)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        printf("resolving %s: %s (the proxy would answer with a DNS error)\n", host,
               gai_strerror(rc));
        return 0;
    }
    size_t n = 0;
    for (struct addrinfo *ai = res; ai != NULL && n < EXPLAIN_ADDRS_MAX; ai = ai->ai_next, n++) {
        struct sockaddr_storage addr;
        struct policy_verdict v;
        char text[64];
        memset(&addr, 0, sizeof addr);
        memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
        getnameinfo(ai->ai_addr, ai->ai_addrlen, text, sizeof text, NULL, 0, NI_NUMERICHOST);
        probe->req.dest = (const struct sockaddr *)&addr;
        geo_classify(cfg->geoip.country, cfg->geoip.asn, probe->req.dest, &probe->req.dest_geo);
        printf("\n");
        print_place(cfg, "address", text, &probe->req.dest_geo);
        printf("rules tried:\n");
        policy_explain(cfg, &probe->req, print_step, NULL, &v);
        print_verdict(&v);
    }
    freeaddrinfo(res);
    printf("\n(the proxy takes the first address's verdict and connects only to addresses that "
           "the same rule decides)\n");
    return 0;
}

int cli_explain(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"config", required_argument, NULL, 'c'},
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},
        {"user", required_argument, NULL, 'u'},
        {"listener", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL, *from = NULL, *to = NULL, *user = NULL, *listener = NULL;
    int ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", long_options, NULL)) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 'f':
            from = optarg;
            break;
        case 't':
            to = optarg;
            break;
        case 'u':
            user = optarg;
            break;
        case 'l':
            listener = optarg;
            break;
        case 'h':
            fputs(explain_usage, stdout);
            return 0;
        default:
            fputs(explain_usage, stderr);
            return 2;
        }
    }
    char host[256];
    uint16_t port = 0;
    if (path == NULL || from == NULL || to == NULL || optind != argc) {
        fputs(explain_usage, stderr);
        return 2;
    }
    if (split_target(to, host, sizeof host, &port) != 0) {
        fprintf(stderr, "geoproxy explain: --to '%s' is not HOST:PORT\n", to);
        return 2;
    }
    struct config *cfg = cli_load_config(path);
    if (cfg == NULL) {
        fprintf(stderr, "%s: not valid\n", path);
        return 1;
    }
    struct policy_probe probe;
    char err[256];
    int ret = 1;
    if (policy_probe_init(&probe, cfg, from, host, port, user, listener, err, sizeof err) != 0) {
        fprintf(stderr, "geoproxy explain: %s\n", err);
        goto out;
    }
    print_place(cfg, "client", from, &probe.req.client_geo);
    if (probe.req.dest != NULL)
        print_place(cfg, "destination", host, &probe.req.dest_geo);
    else
        printf("%-12s %s: a name, not resolved unless a rule needs its address\n", "destination",
               host);
    printf("port         %u\nlistener     %s\nuser         %s\nrules tried:\n", port,
           probe.req.listener, user != NULL ? user : "(none)");
    struct policy_verdict v;
    if (policy_explain(cfg, &probe.req, print_step, NULL, &v) == POLICY_NEED_ADDRESS) {
        printf("a rule needs the address of %s: resolving it\n", host);
        if (v.resolve_via != NULL)
            printf("(the proxy would have upstream '%s' resolve it; explain uses this machine's "
                   "resolver)\n",
                   v.resolve_via->name);
        ret = explain_resolved(cfg, &probe, host);
        goto out;
    }
    print_verdict(&v);
    ret = 0;
out:
    config_free(cfg);
    return ret;
}
