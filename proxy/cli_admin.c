/* Commands that talk to a running geoproxy through its admin listener:
 *   geoproxy status  [--admin ADDRESS] [--token-file FILE]
 *   geoproxy reload  [--admin ADDRESS] [--token-file FILE]
 *   geoproxy dry-run -c FILE [--admin ADDRESS] [--token-file FILE]
 *   geoproxy tail    [--admin ADDRESS] [--token-file FILE] [--json] [--action A] [--region R]
 *                    [--rule NAME]
 * ADDRESS is HOST:PORT or unix:PATH (an admin listener on a unix socket).
 * A small blocking HTTP/1.1 client: these are command-line tools, not the event loop. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "policy/config.h"
#include "policy/config_file.h"
#include "policy/config_value.h"
#include "proxy/cli.h"
#include "proxy/http_parse.h"
#include "proxy/strbuf.h"

#define ADMIN_DEFAULT "127.0.0.1:9090"
#define ADMIN_TIMEOUT_MS 30000
#define ADMIN_RESPONSE_MAX (64u * 1024u * 1024u)
#define TAIL_RETRY_MS 1000

struct admin_target {
    struct sockaddr_storage addr; /* AF_INET, AF_INET6 or AF_UNIX */
    char shown[CONFIG_ADMIN_PATH_MAX + 16];
    char token[CONFIG_TOKEN_MAX + 1]; /* "" when none */
};

static const char admin_usage[] =
    "usage: geoproxy status|reload [--admin ADDRESS] [--token-file FILE]\n"
    "       geoproxy dry-run -c FILE [--admin ADDRESS] [--token-file FILE]\n"
    "       geoproxy tail [--admin ADDRESS] [--token-file FILE] [--json]\n"
    "                     [--action pass|block] [--region REGION-or-CC] [--rule NAME]\n"
    "  --admin ADDRESS   the admin listener: HOST:PORT or unix:PATH (default " ADMIN_DEFAULT ")\n"
    "  --token-file FILE the bearer token, when the admin listener requires one\n";

/* "unix:PATH" into a sockaddr_un in t->addr. */
static int admin_target_unix(struct admin_target *t, const char *addr)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&t->addr;
    const char *path = addr + 5;
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof sun->sun_path) {
        fprintf(stderr, "geoproxy: --admin '%s': a unix socket's path has 1 to %zu bytes\n", addr,
                sizeof sun->sun_path - 1);
        return -1;
    }
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, len + 1);
    snprintf(t->shown, sizeof t->shown, "unix:%s", path);
    return 0;
}

static int admin_target_init(struct admin_target *t, const char *addr, const char *token_file)
{
    struct config_value_error verr;
    memset(t, 0, sizeof *t);
    if (strncmp(addr, "unix:", 5) == 0) {
        if (admin_target_unix(t, addr) != 0)
            return -1;
    } else if (config_parse_address(addr, strlen(addr), 9090, &t->addr, &verr) != 0) {
        fprintf(stderr, "geoproxy: --admin '%s': %s\n", addr, verr.message);
        return -1;
    } else {
        config_format_addr(&t->addr, t->shown, sizeof t->shown);
    }
    if (token_file == NULL)
        return 0;
    char err[CONFIG_FILE_ERROR_MAX], *text = NULL;
    size_t len = 0;
    struct stat st;
    if (config_file_read(token_file, CONFIG_TOKEN_MAX + 2, &text, &len, &st, err) != 0) {
        fprintf(stderr, "geoproxy: cannot read token file %s: %s\n", token_file, err);
        return -1;
    }
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    if (len == 0 || len > CONFIG_TOKEN_MAX) {
        fprintf(stderr, "geoproxy: token file %s holds no usable token\n", token_file);
        free(text);
        return -1;
    }
    memcpy(t->token, text, len);
    t->token[len] = '\0';
    free(text);
    return 0;
}

/* Connects (bounded by ADMIN_TIMEOUT_MS); returns the socket or -1 with a message printed
 * unless quiet. */
static int admin_connect(const struct admin_target *t, bool quiet)
{
    int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = ADMIN_TIMEOUT_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    socklen_t len = t->addr.ss_family == AF_UNIX    ? sizeof(struct sockaddr_un)
                    : t->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                    : sizeof(struct sockaddr_in);
    if (connect(fd, (const struct sockaddr *)&t->addr, len) != 0) {
        if (!quiet)
            fprintf(stderr,
                    "geoproxy: cannot reach the admin listener at %s: %s (is geoproxy "
                    "running with an 'admin' line?)\n",
                    t->shown, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int admin_send_request(int fd, const struct admin_target *t, const char *method,
                              const char *target, const char *body)
{
    struct strbuf sb;
    strbuf_init(&sb, 1u << 20);
    /* A unix socket has no host name to give: "localhost". */
    strbuf_printf(&sb, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: geoproxy/%s\r\n", method, target,
                  t->addr.ss_family == AF_UNIX ? "localhost" : t->shown, GEOPROXY_VERSION);
    if (t->token[0] != '\0')
        strbuf_printf(&sb, "Authorization: Bearer %s\r\n", t->token);
    strbuf_printf(&sb, "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                  body != NULL ? strlen(body) : 0, body != NULL ? body : "");
    int ret = sb.failed ? -1 : 0;
    for (size_t off = 0; ret == 0 && off < sb.len;) {
        ssize_t n = send(fd, sb.data + off, sb.len - off, MSG_NOSIGNAL);
        if (n <= 0)
            ret = -1;
        else
            off += (size_t)n;
    }
    strbuf_free(&sb);
    return ret;
}

/* One request, the whole response (the server closes after it). Returns the status, or -1. */
static int admin_exchange(const struct admin_target *t, const char *method, const char *target,
                          const char *body, struct strbuf *resp_body)
{
    int fd = admin_connect(t, false);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = ADMIN_TIMEOUT_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct strbuf in;
    strbuf_init(&in, ADMIN_RESPONSE_MAX);
    int status = -1;
    if (admin_send_request(fd, t, method, target, body) == 0) {
        char buf[65536];
        ssize_t n;
        while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
            strbuf_append(&in, buf, (size_t)n);
        struct http_response resp;
        size_t head = 0;
        if (!in.failed && in.len > 0 &&
            http_parse_response((const uint8_t *)in.data, in.len, in.len, false, &resp, &head) ==
                PARSE_DONE) {
            status = (int)resp.status;
            strbuf_append(resp_body, in.data + head, in.len - head);
        }
    }
    if (status < 0)
        fprintf(stderr, "geoproxy: no valid answer from the admin listener at %s\n", t->shown);
    strbuf_free(&in);
    close(fd);
    return status;
}

static int admin_print_answer(int status, struct strbuf *body)
{
    if (status < 0)
        return 1;
    fwrite(body->data != NULL ? body->data : "", 1, body->len, status < 300 ? stdout : stderr);
    if (status == 401)
        fprintf(stderr, "geoproxy: the admin listener wants a token: --token-file FILE\n");
    return status < 300 ? 0 : 1;
}

/* ---- tail ---------------------------------------------------------------------------------- */

static volatile sig_atomic_t tail_stop;

static void on_tail_signal(int sig)
{
    (void)sig;
    tail_stop = 1;
}

/* Colours a text event line by its action, on a terminal. */
static void tail_print(const char *line, size_t len, bool colour)
{
    const char *start = "", *end = "";
    if (colour && memmem(line, len, " action=block", 13) != NULL) {
        start = "\033[31m";
        end = "\033[0m";
    } else if (colour && memmem(line, len, " action=pass", 12) != NULL) {
        start = "\033[32m";
        end = "\033[0m";
    }
    printf("%s%.*s%s\n", start, (int)len, line, end);
    fflush(stdout);
}

/* Follows one connection's stream until it ends; returns true if it got to streaming. */
static bool tail_follow(const struct admin_target *t, const char *target, bool colour)
{
    int fd = admin_connect(t, true);
    if (fd < 0)
        return false;
    bool streaming = false;
    struct strbuf in;
    strbuf_init(&in, 1u << 20);
    if (admin_send_request(fd, t, "GET", target, NULL) != 0)
        goto out;
    char buf[16384];
    size_t head_done = 0;
    while (!tail_stop) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, 500);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        strbuf_append(&in, buf, (size_t)n);
        if (in.failed)
            break;
        if (head_done == 0) {
            struct http_response resp;
            enum parse_result r = http_parse_response((const uint8_t *)in.data, in.len, 16384,
                                                      false, &resp, &head_done);
            if (r == PARSE_NEED_MORE)
                continue;
            if (r != PARSE_DONE || resp.status != 200) {
                fprintf(stderr, "geoproxy tail: the admin listener at %s answered %u: %.*s\n",
                        t->shown, r == PARSE_DONE ? resp.status : 0,
                        (int)(in.len - (r == PARSE_DONE ? head_done : 0)),
                        in.data + (r == PARSE_DONE ? head_done : 0));
                tail_stop = 1;
                break;
            }
            streaming = true;
            memmove(in.data, in.data + head_done, in.len - head_done);
            in.len -= head_done;
        }
        size_t start = 0;
        for (char *nl; (nl = memchr(in.data + start, '\n', in.len - start)) != NULL;) {
            tail_print(in.data + start, (size_t)(nl - (in.data + start)), colour);
            start = (size_t)(nl - in.data) + 1;
        }
        memmove(in.data, in.data + start, in.len - start);
        in.len -= start;
    }
out:
    strbuf_free(&in);
    close(fd);
    return streaming;
}

static int command_tail(const struct admin_target *t, bool json, const char *action,
                        const char *region, const char *rule)
{
    char target[512];
    int n = snprintf(target, sizeof target, "/events?format=%s%s%s%s%s%s%s", json ? "json" : "text",
                     action ? "&action=" : "", action ? action : "", region ? "&region=" : "",
                     region ? region : "", rule ? "&rule=" : "", rule ? rule : "");
    if (n < 0 || (size_t)n >= sizeof target || strpbrk(target + 8, " %#\r\n") != NULL) {
        fprintf(stderr, "geoproxy tail: filter values must be plain words\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_tail_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    bool colour = !json && isatty(STDOUT_FILENO);
    bool announced = false;
    while (!tail_stop) {
        if (tail_follow(t, target, colour)) {
            announced = false;
            if (!tail_stop)
                fprintf(stderr, "geoproxy tail: the stream from %s ended; reconnecting\n",
                        t->shown);
        } else if (!announced && !tail_stop) {
            fprintf(stderr, "geoproxy tail: waiting for the admin listener at %s\n", t->shown);
            announced = true;
        }
        for (int i = 0; i < TAIL_RETRY_MS / 100 && !tail_stop; i++) {
            struct timespec ts = {.tv_nsec = 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}

/* ---- entry --------------------------------------------------------------------------------- */

int cli_admin(const char *command, int argc, char **argv)
{
    enum { OPT_ADMIN = 256, OPT_TOKEN, OPT_JSON, OPT_ACTION, OPT_REGION, OPT_RULE };
    static const struct option long_options[] = {
        {"admin", required_argument, NULL, OPT_ADMIN},
        {"token-file", required_argument, NULL, OPT_TOKEN},
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, OPT_JSON},
        {"action", required_argument, NULL, OPT_ACTION},
        {"region", required_argument, NULL, OPT_REGION},
        {"rule", required_argument, NULL, OPT_RULE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *admin = ADMIN_DEFAULT, *token = NULL, *config = NULL;
    const char *action = NULL, *region = NULL, *rule = NULL;
    bool json = false;
    int ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", long_options, NULL)) != -1) {
        switch (ch) {
        case OPT_ADMIN:
            admin = optarg;
            break;
        case OPT_TOKEN:
            token = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case OPT_JSON:
            json = true;
            break;
        case OPT_ACTION:
            action = optarg;
            break;
        case OPT_REGION:
            region = optarg;
            break;
        case OPT_RULE:
            rule = optarg;
            break;
        case 'h':
            fputs(admin_usage, stdout);
            return 0;
        default:
            fputs(admin_usage, stderr);
            return 2;
        }
    }
    bool is_tail = strcmp(command, "tail") == 0, is_dry = strcmp(command, "dry-run") == 0;
    if (optind != argc || (!is_tail && (json || action || region || rule)) ||
        (is_dry != (config != NULL))) {
        fputs(admin_usage, stderr);
        return 2;
    }
    struct admin_target t;
    if (admin_target_init(&t, admin, token) != 0)
        return 2;
    if (is_tail)
        return command_tail(&t, json, action, region, rule);

    struct strbuf body;
    strbuf_init(&body, ADMIN_RESPONSE_MAX);
    int status;
    if (strcmp(command, "status") == 0) {
        status = admin_exchange(&t, "GET", "/status?format=text", NULL, &body);
    } else if (strcmp(command, "reload") == 0) {
        status = admin_exchange(&t, "POST", "/reload", NULL, &body);
    } else {
        char path[PATH_MAX];
        if (realpath(config, path) == NULL) {
            fprintf(stderr, "geoproxy dry-run: %s: %s\n", config, strerror(errno));
            strbuf_free(&body);
            return 1;
        }
        status = admin_exchange(&t, "POST", "/dry-run", path, &body);
    }
    int rc = admin_print_answer(status, &body);
    strbuf_free(&body);
    return rc;
}
