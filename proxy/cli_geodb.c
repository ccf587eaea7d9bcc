/* `geoproxy geodb build` and `geoproxy geodb lookup`: build a country .mmdb from Tor, CSV and
 * CIDR inputs, and answer what geoproxy thinks of addresses. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <netinet/in.h>

#include "geo/geo.h"
#include "geo/geodb_input.h"
#include "geo/mmdb_writer.h"
#include "geo/region.h"
#include "proxy/cli.h"

/* Bad lines reported one by one; the rest are counted. */
#define GEODB_MAX_REPORTED 20
/* Longest input line, newline included. */
#define GEODB_LINE_MAX 4096

static const char geodb_usage_text[] =
    "usage: geoproxy geodb build -o OUT.mmdb [--tor|--csv|--cidr] INPUT...\n"
    "       geoproxy geodb lookup [--db FILE] [--asn FILE] IP...\n"
    "\n"
    "build: inputs named geoip / geoip6 are Tor files, *.csv are START,END,CC ranges, anything\n"
    "else is a 'CIDR CC' overlay; --tor FILE, --csv FILE and --cidr FILE say it explicitly.\n"
    "Range inputs are applied in the order given, then the overlays.\n";

struct geodb_input {
    const char *path;
    enum geodb_format fmt;
};

struct geodb_build {
    struct mmdb_writer *writer;
    size_t n_ranges;  /* entries inserted */
    size_t n_skipped; /* lines whose code is not a country */
    size_t n_errors;  /* bad lines and unreadable files */
    bool fatal;       /* out of memory or over the node cap: stop reading */
};

static void geodb_build_error(struct geodb_build *b, const char *path, unsigned long line,
                              const char *msg)
{
    b->n_errors++;
    if (b->n_errors > GEODB_MAX_REPORTED)
        return;
    if (line > 0)
        fprintf(stderr, "%s:%lu: %s\n", path, line, msg);
    else
        fprintf(stderr, "%s: %s\n", path, msg);
}

/* Reads one input into the writer. Bad lines are reported and counted; once there is an error
 * the remaining lines are still checked but no longer inserted. */
static void geodb_build_file(struct geodb_build *b, const struct geodb_input *in)
{
    char line[GEODB_LINE_MAX], err[256];
    unsigned long line_no = 0;
    FILE *f = fopen(in->path, "r");

    if (f == NULL) {
        snprintf(err, sizeof err, "cannot open: %s", strerror(errno));
        geodb_build_error(b, in->path, 0, err);
        return;
    }
    while (!b->fatal && fgets(line, sizeof line, f) != NULL) {
        size_t len = strlen(line);
        line_no++;
        if (len == sizeof line - 1 && line[len - 1] != '\n' && !feof(f)) {
            int c;
            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
            snprintf(err, sizeof err, "line longer than %d bytes", GEODB_LINE_MAX - 1);
            geodb_build_error(b, in->path, line_no, err);
            continue;
        }
        struct geodb_entry e;
        int rc = geodb_parse_line(in->fmt, line, len, &e, err, sizeof err);
        if (rc < 0) {
            geodb_build_error(b, in->path, line_no, err);
            continue;
        }
        if (rc == 1) {
            if (e.skip == GEODB_SKIP_NOT_COUNTRY)
                b->n_skipped++;
            continue;
        }
        if (b->n_errors > 0)
            continue;
        rc = mmdb_writer_insert_range(b->writer, (const struct sockaddr *)&e.first,
                                      (const struct sockaddr *)&e.last, e.country, err, sizeof err);
        if (rc == -EINVAL) {
            geodb_build_error(b, in->path, line_no, err);
        } else if (rc != 0) {
            snprintf(err, sizeof err, "%s",
                     rc == -E2BIG ? "too many networks for the node cap" : strerror(-rc));
            geodb_build_error(b, in->path, line_no, err);
            b->fatal = true;
        } else {
            b->n_ranges++;
        }
    }
    if (!b->fatal && ferror(f)) {
        snprintf(err, sizeof err, "read error: %s", strerror(errno));
        geodb_build_error(b, in->path, 0, err);
    }
    fclose(f);
}

/* "geoproxy country database from A, B and C", cut with "and N more" to fit out. */
static void geodb_describe(const struct geodb_input *in, size_t n, char *out, size_t out_len)
{
    size_t used = (size_t)snprintf(out, out_len, "geoproxy country database from");
    for (size_t i = 0; i < n; i++) {
        char more[64];
        snprintf(more, sizeof more, " and %zu more", n - i);
        size_t need = strlen(in[i].path) + 2;
        if (used + need + strlen(more) >= out_len) {
            snprintf(out + used, out_len - used, "%s", more);
            return;
        }
        used +=
            (size_t)snprintf(out + used, out_len - used, "%s %s", i == 0 ? "" : ",", in[i].path);
    }
}

static uint64_t geodb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The database's build_epoch: when its newest input was last changed, so the age operators see
 * is the age of the data, not of the compilation (now, when no input can be stat'ed). */
static uint64_t geodb_data_epoch(const struct geodb_input *inputs, size_t n)
{
    time_t newest = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(inputs[i].path, &st) == 0 && st.st_mtime > newest)
            newest = st.st_mtime;
    }
    return (uint64_t)(newest > 0 ? newest : time(NULL));
}

static int geodb_command_build(int argc, char **argv)
{
    enum { OPT_TOR = 256, OPT_CSV, OPT_CIDR };
    static const struct option long_options[] = {
        {"output", required_argument, NULL, 'o'},  {"tor", required_argument, NULL, OPT_TOR},
        {"csv", required_argument, NULL, OPT_CSV}, {"cidr", required_argument, NULL, OPT_CIDR},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    struct geodb_input *inputs = calloc((size_t)argc, sizeof *inputs);
    struct geodb_build b = {0};
    const char *out_path = NULL;
    size_t n_inputs = 0;
    char err[512], desc[MMDB_WRITER_MAX_TEXT + 1];
    int ch, ret = 1;
    uint64_t start = geodb_now_ms();

    if (inputs == NULL) {
        fprintf(stderr, "geoproxy geodb build: out of memory\n");
        return 1;
    }
    optind = 0; /* glibc: restart option scanning */
    while ((ch = getopt_long(argc, argv, "-o:h", long_options, NULL)) != -1) {
        switch (ch) {
        case 'o':
            out_path = optarg;
            break;
        case 1:
            inputs[n_inputs++] = (struct geodb_input){optarg, geodb_format_for_path(optarg)};
            break;
        case OPT_TOR:
            inputs[n_inputs++] = (struct geodb_input){optarg, GEODB_FORMAT_TOR};
            break;
        case OPT_CSV:
            inputs[n_inputs++] = (struct geodb_input){optarg, GEODB_FORMAT_CSV};
            break;
        case OPT_CIDR:
            inputs[n_inputs++] = (struct geodb_input){optarg, GEODB_FORMAT_CIDR};
            break;
        case 'h':
            fputs(geodb_usage_text, stdout);
            ret = 0;
            goto out;
        default:
            fputs(geodb_usage_text, stderr);
            ret = 2;
            goto out;
        }
    }
    if (out_path == NULL || n_inputs == 0) {
        fprintf(stderr, "geoproxy geodb build: -o OUT.mmdb and at least one input are required\n");
        fputs(geodb_usage_text, stderr);
        ret = 2;
        goto out;
    }

    geodb_describe(inputs, n_inputs, desc, sizeof desc);
    int rc =
        mmdb_writer_new(6, "geoproxy-country", desc, geodb_data_epoch(inputs, n_inputs), &b.writer);
    if (rc != 0) {
        fprintf(stderr, "geoproxy geodb build: cannot create the writer: %s\n", strerror(-rc));
        goto out;
    }
    /* Ranges first in the order given, then the overlays, so an overlay wins. */
    for (int pass = 0; pass < 2 && !b.fatal; pass++) {
        for (size_t i = 0; i < n_inputs && !b.fatal; i++) {
            if ((inputs[i].fmt == GEODB_FORMAT_CIDR) == (pass == 1))
                geodb_build_file(&b, &inputs[i]);
        }
    }
    if (b.n_errors > 0) {
        if (b.n_errors > GEODB_MAX_REPORTED)
            fprintf(stderr, "geoproxy geodb build: %zu more errors not shown\n",
                    b.n_errors - GEODB_MAX_REPORTED);
        fprintf(stderr, "%s: not written (%zu error%s)\n", out_path, b.n_errors,
                b.n_errors == 1 ? "" : "s");
        goto out;
    }
    if (mmdb_writer_write(b.writer, out_path, err, sizeof err) != 0) {
        fprintf(stderr, "geoproxy geodb build: %s\n", err);
        goto out;
    }
    printf("%s: %zu ranges from %zu file%s, %zu skipped, built in %llu ms\n", out_path, b.n_ranges,
           n_inputs, n_inputs == 1 ? "" : "s", b.n_skipped,
           (unsigned long long)(geodb_now_ms() - start));
    ret = 0;
out:
    mmdb_writer_free(b.writer);
    free(inputs);
    return ret;
}

/* Parses text as an IPv4 or IPv6 address into ss. */
static bool geodb_parse_ip(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        return true;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

static void geodb_print_lookup(const char *text, const struct geo_db *db, const struct geo_db *asn,
                               const struct sockaddr *addr)
{
    struct geo_result res;
    const struct region *regions[32];

    geo_classify(db, asn, addr, &res);
    bool has_cc = res.cls == GEO_CLASS_COUNTRY;
    printf("%s class=%s%s country=%s regions=", text, geo_class_name(res.cls),
           has_cc && res.local ? " local" : "", has_cc ? res.country : "-");
    size_t n = has_cc ? region_list_for_country(res.country, NULL, 0, regions, 32) : 0;
    if (n > 32)
        n = 32;
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i == 0 ? "" : ",", regions[i]->name);
    printf("%s", n == 0 ? "-" : "");
    if (asn != NULL) {
        if (res.asn != 0)
            printf(" asn=%u org=%s", (unsigned)res.asn, res.as_org[0] ? res.as_org : "-");
        else
            printf(" asn=- org=-");
    }
    printf("\n");
}

static int geodb_command_lookup(int argc, char **argv)
{
    enum { OPT_DB = 256, OPT_ASN };
    static const struct option long_options[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"asn", required_argument, NULL, OPT_ASN},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db_path = NULL, *asn_path = NULL;
    struct geo_db *db = NULL, *asn = NULL;
    char err[512];
    int ch, ret = 1;

    optind = 0;
    while ((ch = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        switch (ch) {
        case OPT_DB:
            db_path = optarg;
            break;
        case OPT_ASN:
            asn_path = optarg;
            break;
        case 'h':
            fputs(geodb_usage_text, stdout);
            return 0;
        default:
            fputs(geodb_usage_text, stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "geoproxy geodb lookup: no IP address given\n");
        fputs(geodb_usage_text, stderr);
        return 2;
    }
    if (db_path != NULL && geo_db_open(db_path, &db, err, sizeof err) != 0) {
        fprintf(stderr, "geoproxy geodb lookup: %s\n", err);
        goto out;
    }
    if (asn_path != NULL && geo_db_open(asn_path, &asn, err, sizeof err) != 0) {
        fprintf(stderr, "geoproxy geodb lookup: %s\n", err);
        goto out;
    }
    ret = 0;
    for (int i = optind; i < argc; i++) {
        struct sockaddr_storage ss;
        if (!geodb_parse_ip(argv[i], &ss)) {
            fflush(stdout);
            fprintf(stderr, "geoproxy geodb lookup: '%s' is not an IP address\n", argv[i]);
            ret = 1;
            continue;
        }
        geodb_print_lookup(argv[i], db, asn, (const struct sockaddr *)&ss);
    }
out:
    geo_db_free(asn);
    geo_db_free(db);
    return ret;
}

int cli_geodb(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "build") == 0)
        return geodb_command_build(argc, argv);
    if (argc >= 1 && strcmp(argv[0], "lookup") == 0)
        return geodb_command_lookup(argc, argv);
    if (argc >= 1 && (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0)) {
        fputs(geodb_usage_text, stdout);
        return 0;
    }
    fprintf(stderr, "geoproxy geodb: expected 'build' or 'lookup'\n\n%s", geodb_usage_text);
    return 2;
}
