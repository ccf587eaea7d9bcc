/* The benchmark's load generator: one process, one thread, epoll, non-blocking sockets.
 *
 * It reaches a target (bench/target.c) through a proxy speaking SOCKS5 (no authentication,
 * CONNECT to an IPv4 address), HTTP CONNECT, or nothing at all (a plain TCP relay such as
 * haproxy in mode tcp, or the target itself for the "direct" reference), and runs one scenario:
 *
 *   throughput  N streams (default 1) pull bytes from the target's source port (--dir down) or
 *               push bytes into its sink port (--dir up) for --duration seconds after --warmup
 *               seconds; reports bytes/s over the measured window.
 *   connrate    N clients (default 50) loop: connect, handshake, write --payload bytes, read them
 *               back, read the EOF of the target (which closes first), close. Reports completed
 *               cycles per second and the latency of a cycle (connect() to EOF) and of its
 *               request part (connect() to the echo's last byte), p50/p99/max.
 *   setup       one client makes --conns connections one after another (after --warmup-conns
 *               that are not counted), each as in connrate; reports the connection set-up
 *               latency, from connect() to the first echoed byte (so it includes the SOCKS5
 *               exchange, and any tunnel the proxy opens behind it), and from connect() to the
 *               SOCKS5 reply, p50/p99/max. Some proxies (ss-local, trojan) reply at once and
 *               only open their tunnel when the first bytes arrive: only the first figure
 *               compares them fairly. --gap-ms N pauses between connections, so that what a
 *               proxy does after a connection (refilling a pool, say) is not counted in the next
 *               one: the latency of a connection on an unloaded proxy, rather than back to back.
 *   idle        opens --conns connections (at most --concurrency being set up at a time), each
 *               checked end to end with a one-byte echo, and holds them idle; reports the memory
 *               of the proxy before and after, per connection. Then it closes them cleanly: it
 *               sends the rest of the ping payload so that the target closes first.
 *
 * With --pid, the CPU time (utime+stime, of the process and all its descendants, plus reaped
 * children) of the proxy across the measured window and its memory (RSS summed over the process
 * tree, and PSS, which shares common pages fairly between forked children) are read from /proc.
 * --pid may be given several times (up to MAX_ROOTS): a two-hop tunnel is measured as the sum
 * of both hops' process trees.
 *
 * The last line of output is "RESULT key=value ...", for bench/run.sh. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define HS_BUF_SIZE 512
#define OUT_BUF_SIZE 512
#define BULK_BUF_SIZE (256 * 1024)
#define MAX_EVENTS 512
#define MAX_PROCS 65536
#define LATENCY_CAP (4u * 1024 * 1024)
#define PAYLOAD_MAX 256
#define NS_PER_SEC 1000000000ull
#define MAX_ROOTS 8
#define SETUP_MAX_ERRORS 20

enum proto { PROTO_NONE, PROTO_SOCKS5, PROTO_HTTP };
enum scenario { SC_THROUGHPUT, SC_CONNRATE, SC_SETUP, SC_IDLE };

enum lstate {
    ST_FREE,
    ST_BACKOFF, /* waiting to retry after a local connect() failure */
    ST_CONNECTING,
    ST_SOCKS_METHOD, /* greeting sent, waiting for the method reply */
    ST_SOCKS_REPLY,  /* request sent, waiting for the reply */
    ST_HTTP_REPLY,   /* CONNECT sent, waiting for the response head */
    ST_BULK,         /* throughput: pulling or pushing bytes */
    ST_ECHO_WAIT,    /* payload sent, reading it back */
    ST_EOF_WAIT,     /* echo complete, waiting for the target's close to come through */
    ST_IDLE,         /* idle scenario: established and held */
};

enum err_kind {
    ERR_CONNECT,   /* connect() or SO_ERROR failed */
    ERR_HANDSHAKE, /* malformed reply, or EOF/reset during the handshake */
    ERR_REFUSED,   /* SOCKS reply code not 0, or HTTP status not 200 */
    ERR_ECHO,      /* wrong bytes, early EOF or reset while echoing */
    ERR_TIMEOUT,   /* no progress within --timeout */
    ERR_IDLE,      /* an idle connection was closed by the other side */
    ERR_KINDS,
};

static const char *const err_names[ERR_KINDS] = {"connect", "handshake", "refused",
                                                 "echo",    "timeout",   "idle_closed"};

struct lconn {
    int fd;
    enum lstate st;
    bool teardown;        /* idle scenario: this echo ends the connection */
    uint32_t events;      /* currently registered epoll events */
    uint64_t t_start;     /* connect() */
    uint64_t t_connected; /* the TCP connection is up */
    uint64_t t_method;    /* SOCKS5 method reply */
    uint64_t t_ready;     /* handshake reply complete (tunnel open, as the proxy says) */
    uint64_t t_first;     /* first echo byte */
    uint64_t t_echo;      /* last echo byte */
    uint64_t deadline;    /* no progress by then: timeout (or: backoff over) */
    size_t hs_len;
    size_t out_len, out_off;
    size_t echo_want, echo_got;
    char hs[HS_BUF_SIZE];
    char out[OUT_BUF_SIZE];
};

struct options {
    enum scenario scenario;
    enum proto proto;
    struct sockaddr_in hop;    /* where the TCP connection goes: proxy, relay or target */
    struct sockaddr_in target; /* what the handshake asks for */
    bool upload;
    unsigned streams, clients, conns, concurrency, warmup_conns, gap_ms;
    unsigned payload;
    double duration, warmup, settle, timeout, setup_limit;
    pid_t pids[MAX_ROOTS]; /* the proxy's processes (two for a tunnel): CPU and memory */
    size_t npids;
    pid_t target_pid; /* the target server: CPU reported, to show it is not the bottleneck */
    const char *label;
    const char *phases_path; /* setup: each connection's phases, written here */
};

struct proc_stats {
    uint64_t cpu_ticks; /* utime+stime+cutime+cstime over the tree */
    uint64_t rss;       /* bytes, summed over the tree */
    uint64_t pss;       /* bytes, summed over the tree (0 unless asked for) */
    unsigned procs, threads;
    bool ok;
};

struct lat_log {
    uint32_t *us;
    size_t n, cap;
};

struct run {
    struct options o;
    int epfd;
    struct lconn *conns;
    size_t nconns;
    uint64_t errs[ERR_KINDS];
    char first_err[160];
    char payload[PAYLOAD_MAX];
    char *bulk;

    /* throughput */
    uint64_t bytes;
    unsigned ready;
    /* connrate */
    bool launching; /* start new cycles (false once the window is over) */
    uint64_t win_start, win_end;
    uint64_t cycles_in_window, cycles_total;
    struct lat_log lat_cycle, lat_echo;
    /* setup */
    struct lat_log lat_first, lat_reply;
    uint32_t (*phases)[4]; /* --phases: per measured connection, µs from connect() */
    size_t nphases;
    FILE *phases_file;
    /* idle */
    unsigned launched, setting_up, established, finished, closed_clean;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static uint64_t secs_to_ns(double s)
{
    return (uint64_t)(s * 1e9);
}

/* ---- /proc: CPU and memory of a process tree ---------------------------------------------- */

struct proc_row {
    pid_t pid, ppid;
    uint64_t ticks;
    uint64_t rss_pages;
    unsigned threads;
    bool in_tree;
};

/* Parses /proc/PID/stat. The command name may hold spaces and parentheses: fields are counted
 * from the last ')'. */
static int read_proc_stat(pid_t pid, struct proc_row *row)
{
    char path[64], buf[1024];
    unsigned long long v[64];
    char *p;
    FILE *f;
    size_t n;
    int field = 3; /* the first field after the ')' is field 3, the state */

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    p++;
    memset(v, 0, sizeof(v));
    while (*p != '\0' && field < 64) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        if (field > 3)
            v[field] = strtoull(p, NULL, 10);
        while (*p != ' ' && *p != '\0')
            p++;
        field++;
    }
    if (field < 25)
        return -1;
    row->pid = pid;
    row->ppid = (pid_t)v[4];
    row->ticks = v[14] + v[15] + v[16] + v[17];
    row->threads = (unsigned)v[20];
    row->rss_pages = v[24];
    return 0;
}

static uint64_t read_pss(pid_t pid)
{
    char path[64], line[256];
    uint64_t kb = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "Pss:", 4) == 0) {
            kb = strtoull(line + 4, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb * 1024;
}

static struct proc_row proc_rows[MAX_PROCS];

static bool pid_is_root(pid_t pid, const pid_t *roots, size_t nroots)
{
    for (size_t i = 0; i < nroots; i++)
        if (roots[i] == pid)
            return true;
    return false;
}

/* Sums the trees under each of roots[0..nroots); ok only when every root was found. */
static void proc_tree_stats(const pid_t *roots, size_t nroots, bool want_pss,
                            struct proc_stats *out)
{
    unsigned roots_found = 0;
    long page = sysconf(_SC_PAGESIZE);
    size_t n = 0;
    bool changed = true;
    struct dirent *de;
    DIR *d;

    memset(out, 0, sizeof(*out));
    if (nroots == 0 || roots[0] <= 0)
        return;
    d = opendir("/proc");
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL && n < MAX_PROCS) {
        char *end;
        long pid;

        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        pid = strtol(de->d_name, &end, 10);
        if (*end != '\0' || read_proc_stat((pid_t)pid, &proc_rows[n]) != 0)
            continue;
        proc_rows[n].in_tree = pid_is_root(proc_rows[n].pid, roots, nroots);
        n++;
    }
    closedir(d);
    /* Mark descendants; each pass adds at least one level, and the tree is at most n deep. */
    for (size_t pass = 0; changed && pass < n; pass++) {
        changed = false;
        for (size_t i = 0; i < n; i++) {
            if (proc_rows[i].in_tree)
                continue;
            for (size_t j = 0; j < n; j++) {
                if (proc_rows[j].in_tree && proc_rows[j].pid == proc_rows[i].ppid) {
                    proc_rows[i].in_tree = true;
                    changed = true;
                    break;
                }
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!proc_rows[i].in_tree)
            continue;
        if (pid_is_root(proc_rows[i].pid, roots, nroots))
            roots_found++;
        out->cpu_ticks += proc_rows[i].ticks;
        out->rss += proc_rows[i].rss_pages * (uint64_t)page;
        out->threads += proc_rows[i].threads;
        out->procs++;
        if (want_pss)
            out->pss += read_pss(proc_rows[i].pid);
    }
    out->ok = roots_found == nroots;
}

static double ticks_to_s(uint64_t ticks)
{
    return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds of the other two processes in a run, the load generator itself and the target,
 * so a result can show that neither was the bottleneck. */
struct side_cpu {
    double self_s;
    struct proc_stats target;
};

static void side_cpu_read(const struct run *r, struct side_cpu *out);

static double timeval_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* ---- errors and latencies ------------------------------------------------------------------ */

static void note_err(struct run *r, enum err_kind kind, const char *what, int err)
{
    r->errs[kind]++;
    if (r->first_err[0] == '\0')
        snprintf(r->first_err, sizeof(r->first_err), "%s: %s%s%s", err_names[kind], what,
                 err ? ": " : "", err ? strerror(err) : "");
}

static uint64_t err_total(const struct run *r)
{
    uint64_t t = 0;

    for (int i = 0; i < ERR_KINDS; i++)
        t += r->errs[i];
    return t;
}

static void lat_add(struct lat_log *l, uint64_t ns)
{
    uint64_t us = ns / 1000;

    if (l->n < l->cap)
        l->us[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted log, in milliseconds. */
static double lat_pct(const struct lat_log *l, double pct)
{
    size_t rank;

    if (l->n == 0)
        return 0.0;
    rank = (size_t)(pct / 100.0 * (double)l->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > l->n)
        rank = l->n;
    return (double)l->us[rank - 1] / 1000.0;
}

/* ---- connections --------------------------------------------------------------------------- */

static int set_events(struct run *r, struct lconn *c, uint32_t events)
{
    struct epoll_event ev;

    if (c->events == events)
        return 0;
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = c;
    if (epoll_ctl(r->epfd, c->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &ev) != 0)
        return -1;
    c->events = events;
    return 0;
}

/* Closes the socket. abort: reset instead of FIN (no TIME_WAIT here, for cleanup only). */
static void conn_close(struct lconn *c, bool abort_it)
{
    if (c->fd >= 0) {
        if (abort_it) {
            struct linger lg = {1, 0};

            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        close(c->fd);
    }
    c->fd = -1;
    c->events = 0;
    c->st = ST_FREE;
}

static void conn_fail(struct run *r, struct lconn *c, enum err_kind kind, const char *what,
                      int err);
static void conn_start(struct run *r, struct lconn *c);

/* Writes the pending handshake or payload bytes. 0: all written or waiting for EPOLLOUT. */
static int conn_flush(struct run *r, struct lconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return set_events(r, c, EPOLLIN | EPOLLOUT);
            return -1;
        }
        c->out_off += (size_t)n;
    }
    c->out_len = c->out_off = 0;
    return set_events(r, c, EPOLLIN);
}

static int conn_send(struct run *r, struct lconn *c, const void *data, size_t len)
{
    if (len > sizeof(c->out) - c->out_len)
        return -1;
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return conn_flush(r, c);
}

static void cycle_done(struct run *r, struct lconn *c)
{
    uint64_t t = now_ns();

    conn_close(c, false);
    r->cycles_total++;
    if (r->o.scenario == SC_SETUP) {
        if (r->cycles_total > r->o.warmup_conns) {
            r->cycles_in_window++;
            lat_add(&r->lat_first, c->t_first - c->t_start);
            lat_add(&r->lat_reply, c->t_ready - c->t_start);
            if (r->phases != NULL && r->nphases < r->o.conns) {
                uint64_t at[4] = {c->t_connected, c->t_method, c->t_ready, c->t_first};
                for (int i = 0; i < 4; i++)
                    r->phases[r->nphases][i] = at[i] ? (uint32_t)((at[i] - c->t_start) / 1000) : 0;
                r->nphases++;
            }
        }
        if (r->cycles_total >= (uint64_t)r->o.warmup_conns + r->o.conns)
            r->launching = false;
        if (r->launching && r->o.gap_ms > 0) { /* paced: what the proxy does in between is done */
            struct timespec gap = {.tv_sec = r->o.gap_ms / 1000,
                                   .tv_nsec = (long)(r->o.gap_ms % 1000) * 1000000L};
            nanosleep(&gap, NULL);
        }
    } else if (t >= r->win_start && t < r->win_end) {
        r->cycles_in_window++;
        lat_add(&r->lat_cycle, t - c->t_start);
        lat_add(&r->lat_echo, c->t_echo - c->t_start);
    }
    if (r->launching)
        conn_start(r, c);
}

/* Continues once the tunnel is open; 'extra' are bytes that followed the handshake reply. */
static void conn_ready(struct run *r, struct lconn *c, const char *extra, size_t n_extra)
{
    c->t_ready = now_ns();
    c->deadline = c->t_ready + secs_to_ns(r->o.timeout);
    switch (r->o.scenario) {
    case SC_THROUGHPUT:
        c->st = ST_BULK;
        r->ready++;
        r->bytes += n_extra;
        if (set_events(r, c, r->o.upload ? EPOLLOUT : EPOLLIN) != 0)
            conn_fail(r, c, ERR_HANDSHAKE, "epoll", errno);
        return;
    case SC_CONNRATE:
    case SC_SETUP:
    case SC_IDLE:
        c->st = ST_ECHO_WAIT;
        c->echo_got = 0;
        c->echo_want = r->o.scenario == SC_IDLE ? 1 : r->o.payload;
        if (n_extra > 0) {
            conn_fail(r, c, ERR_ECHO, "bytes before the payload was sent", 0);
            return;
        }
        if (conn_send(r, c, r->payload, c->echo_want) != 0)
            conn_fail(r, c, ERR_ECHO, "send", errno);
        return;
    }
    (void)extra;
}

static void conn_fail(struct run *r, struct lconn *c, enum err_kind kind, const char *what, int err)
{
    bool was_setting_up = c->st != ST_IDLE && !c->teardown;

    note_err(r, kind, what, err);
    conn_close(c, true);
    if (r->o.scenario == SC_IDLE) {
        r->finished++;
        if (was_setting_up)
            r->setting_up--;
        return;
    }
    if (r->o.scenario == SC_SETUP && err_total(r) >= SETUP_MAX_ERRORS)
        r->launching = false; /* a broken proxy: report it rather than retry until the limit */
    if ((r->o.scenario == SC_CONNRATE || r->o.scenario == SC_SETUP) && r->launching) {
        /* Retry after a short pause, so a refusing proxy is not hammered in a tight loop. */
        c->st = ST_BACKOFF;
        c->deadline = now_ns() + 10 * 1000 * 1000;
    }
}

static void conn_start(struct run *r, struct lconn *c)
{
    int one = 1;

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->events = 0;
    c->hs_len = c->out_len = c->out_off = 0;
    c->echo_got = c->echo_want = 0;
    c->teardown = false;
    c->t_start = now_ns();
    c->t_connected = c->t_method = 0;
    c->deadline = c->t_start + secs_to_ns(r->o.timeout);
    if (c->fd < 0) {
        conn_fail(r, c, ERR_CONNECT, "socket", errno);
        return;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (const struct sockaddr *)&r->o.hop, sizeof(r->o.hop)) != 0 &&
        errno != EINPROGRESS) {
        conn_fail(r, c, ERR_CONNECT, "connect", errno);
        return;
    }
    c->st = ST_CONNECTING;
    if (set_events(r, c, EPOLLOUT) != 0)
        conn_fail(r, c, ERR_CONNECT, "epoll", errno);
}

static void on_connected(struct run *r, struct lconn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        conn_fail(r, c, ERR_CONNECT, "connect", err);
        return;
    }
    c->t_connected = now_ns();
    if (r->o.proto == PROTO_SOCKS5) {
        static const unsigned char greeting[3] = {5, 1, 0}; /* v5, one method: no auth */

        c->st = ST_SOCKS_METHOD;
        if (conn_send(r, c, greeting, sizeof(greeting)) != 0)
            conn_fail(r, c, ERR_HANDSHAKE, "send greeting", errno);
    } else if (r->o.proto == PROTO_HTTP) {
        char ip[INET_ADDRSTRLEN], req[256];
        int n;

        inet_ntop(AF_INET, &r->o.target.sin_addr, ip, sizeof(ip));
        n = snprintf(req, sizeof(req), "CONNECT %s:%u HTTP/1.1\r\nHost: %s:%u\r\n\r\n", ip,
                     ntohs(r->o.target.sin_port), ip, ntohs(r->o.target.sin_port));
        c->st = ST_HTTP_REPLY;
        if (conn_send(r, c, req, (size_t)n) != 0)
            conn_fail(r, c, ERR_HANDSHAKE, "send CONNECT", errno);
    } else {
        conn_ready(r, c, NULL, 0);
    }
}

/* Parses what the handshake buffer holds. Returns 1 when done (tunnel open), 0 when more bytes
 * are needed, -1 on a malformed reply, -2 on a refusal. *used: bytes of the reply. */
static int parse_socks_reply(const unsigned char *b, size_t n, size_t *used)
{
    size_t need;

    if (n < 5)
        return 0;
    if (b[0] != 5)
        return -1;
    if (b[1] != 0)
        return -2;
    switch (b[3]) {
    case 1:
        need = 4 + 4 + 2;
        break;
    case 4:
        need = 4 + 16 + 2;
        break;
    case 3:
        need = 4 + 1 + (size_t)b[4] + 2;
        break;
    default:
        return -1;
    }
    if (n < need)
        return 0;
    *used = need;
    return 1;
}

static int parse_http_reply(const char *b, size_t n, size_t *used)
{
    const char *end = memmem(b, n, "\r\n\r\n", 4);

    if (end == NULL)
        return n >= HS_BUF_SIZE ? -1 : 0;
    if (n < 12 || strncmp(b, "HTTP/1.", 7) != 0)
        return -1;
    if (strncmp(b + 8, " 200", 4) != 0)
        return -2;
    *used = (size_t)(end - b) + 4;
    return 1;
}

static void on_handshake_data(struct run *r, struct lconn *c)
{
    ssize_t n = recv(c->fd, c->hs + c->hs_len, sizeof(c->hs) - c->hs_len, 0);
    size_t used = 0;
    int res;

    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_fail(r, c, ERR_HANDSHAKE, "recv", errno);
        return;
    }
    if (n == 0) {
        conn_fail(r, c, ERR_HANDSHAKE, "proxy closed during the handshake", 0);
        return;
    }
    c->hs_len += (size_t)n;
    if (c->st == ST_SOCKS_METHOD) {
        static const unsigned char request_head[4] = {5, 1, 0, 1}; /* v5, CONNECT, IPv4 */
        unsigned char req[10];

        if (c->hs_len < 2)
            return;
        if ((unsigned char)c->hs[0] != 5 || c->hs[1] != 0 || c->hs_len != 2) {
            conn_fail(r, c, ERR_HANDSHAKE, "bad SOCKS5 method reply", 0);
            return;
        }
        c->t_method = now_ns();
        memcpy(req, request_head, 4);
        memcpy(req + 4, &r->o.target.sin_addr, 4);
        memcpy(req + 8, &r->o.target.sin_port, 2);
        c->hs_len = 0;
        c->st = ST_SOCKS_REPLY;
        if (conn_send(r, c, req, sizeof(req)) != 0)
            conn_fail(r, c, ERR_HANDSHAKE, "send request", errno);
        return;
    }
    if (c->st == ST_SOCKS_REPLY)
        res = parse_socks_reply((const unsigned char *)c->hs, c->hs_len, &used);
    else
        res = parse_http_reply(c->hs, c->hs_len, &used);
    if (res == 0)
        return;
    if (res < 0) {
        conn_fail(r, c, res == -2 ? ERR_REFUSED : ERR_HANDSHAKE,
                  res == -2 ? "proxy refused the request" : "malformed reply", 0);
        return;
    }
    conn_ready(r, c, c->hs + used, c->hs_len - used);
}

static void on_echo_data(struct run *r, struct lconn *c)
{
    char buf[PAYLOAD_MAX];
    size_t off = c->teardown ? 1 : 0; /* teardown echoes the payload after its first byte */
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_fail(r, c, ERR_ECHO, "recv", errno);
        return;
    }
    if (n == 0 || (size_t)n > c->echo_want - c->echo_got) {
        conn_fail(r, c, ERR_ECHO, n == 0 ? "EOF before the echo" : "more bytes than sent", 0);
        return;
    }
    if (memcmp(buf, r->payload + off + c->echo_got, (size_t)n) != 0) {
        conn_fail(r, c, ERR_ECHO, "echoed bytes differ", 0);
        return;
    }
    if (c->echo_got == 0)
        c->t_first = now_ns();
    c->echo_got += (size_t)n;
    if (c->echo_got < c->echo_want)
        return;
    c->t_echo = now_ns();
    c->deadline = c->t_echo + secs_to_ns(r->o.timeout);
    if (r->o.scenario == SC_IDLE && !c->teardown) {
        c->st = ST_IDLE;
        r->established++;
        r->setting_up--;
        return;
    }
    c->st = ST_EOF_WAIT;
}

static void on_eof_wait(struct run *r, struct lconn *c)
{
    char buf[64];
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_fail(r, c, ERR_ECHO, "recv while waiting for EOF", errno);
        return;
    }
    if (n > 0) {
        conn_fail(r, c, ERR_ECHO, "bytes after the echo", 0);
        return;
    }
    if (r->o.scenario == SC_IDLE) {
        conn_close(c, false);
        r->finished++;
        r->closed_clean++;
        return;
    }
    cycle_done(r, c);
}

static void on_bulk(struct run *r, struct lconn *c)
{
    /* Bounded: a few buffers per wake-up, so that every stream gets its turn. */
    for (int i = 0; i < 4; i++) {
        ssize_t n;

        if (r->o.upload)
            n = send(c->fd, r->bulk, BULK_BUF_SIZE, MSG_NOSIGNAL);
        else
            n = recv(c->fd, r->bulk, BULK_BUF_SIZE, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_fail(r, c, ERR_ECHO, r->o.upload ? "send" : "recv", errno);
            return;
        }
        if (n == 0) {
            conn_fail(r, c, ERR_ECHO, "EOF during the bulk transfer", 0);
            return;
        }
        r->bytes += (uint64_t)n;
    }
}

static void on_event(struct run *r, struct lconn *c, uint32_t events)
{
    if (c->st == ST_FREE || c->fd < 0)
        return;
    if ((events & EPOLLOUT) && c->st != ST_CONNECTING && c->st != ST_BULK && c->out_len > 0) {
        if (conn_flush(r, c) != 0) {
            conn_fail(r, c, ERR_HANDSHAKE, "send", errno);
            return;
        }
    }
    switch (c->st) {
    case ST_CONNECTING:
        on_connected(r, c);
        break;
    case ST_SOCKS_METHOD:
    case ST_SOCKS_REPLY:
    case ST_HTTP_REPLY:
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            on_handshake_data(r, c);
        break;
    case ST_BULK:
        on_bulk(r, c);
        break;
    case ST_ECHO_WAIT:
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            on_echo_data(r, c);
        break;
    case ST_EOF_WAIT:
        on_eof_wait(r, c);
        break;
    case ST_IDLE:
        conn_fail(r, c, ERR_IDLE, "idle connection closed or spoke", 0);
        break;
    case ST_FREE:
    case ST_BACKOFF:
        break;
    }
}

/* Times out stalled connections and restarts backed-off ones. Called a few times a second. */
static void check_deadlines(struct run *r, uint64_t t)
{
    for (size_t i = 0; i < r->nconns; i++) {
        struct lconn *c = &r->conns[i];

        if (c->st == ST_FREE || c->st == ST_IDLE || c->st == ST_BULK || t < c->deadline)
            continue;
        if (c->st == ST_BACKOFF) {
            c->st = ST_FREE;
            if (r->launching)
                conn_start(r, c);
            continue;
        }
        conn_fail(r, c, ERR_TIMEOUT, "no progress", 0);
    }
}

/* Runs the event loop until 'until' (absolute ns) or until done() says so. */
static void loop_until(struct run *r, uint64_t until, bool (*done)(const struct run *))
{
    struct epoll_event events[MAX_EVENTS];
    uint64_t next_check = 0;

    for (;;) {
        uint64_t t = now_ns();
        int wait_ms, n;

        if (t >= until || (done != NULL && done(r)))
            return;
        if (t >= next_check) {
            check_deadlines(r, t);
            next_check = t + 100 * 1000 * 1000;
        }
        wait_ms = (int)((until - t) / 1000000);
        if (wait_ms > 100)
            wait_ms = 100;
        n = epoll_wait(r->epfd, events, MAX_EVENTS, wait_ms);
        if (n < 0 && errno != EINTR) {
            perror("loadgen: epoll_wait");
            return;
        }
        for (int i = 0; i < n; i++)
            on_event(r, events[i].data.ptr, events[i].events);
    }
}

static void close_all(struct run *r)
{
    for (size_t i = 0; i < r->nconns; i++)
        if (r->conns[i].st != ST_FREE)
            conn_close(&r->conns[i], true);
}

/* ---- scenarios ----------------------------------------------------------------------------- */

static void print_errors(const struct run *r)
{
    printf(" errors=%" PRIu64, err_total(r));
    for (int i = 0; i < ERR_KINDS; i++)
        if (r->errs[i] > 0)
            printf(" err_%s=%" PRIu64, err_names[i], r->errs[i]);
}

static void print_first_error(const struct run *r)
{
    if (r->first_err[0] != '\0')
        fprintf(stderr, "loadgen: first error: %s\n", r->first_err);
}

static void side_cpu_read(const struct run *r, struct side_cpu *out)
{
    struct rusage ru;

    memset(out, 0, sizeof(*out));
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        out->self_s = timeval_s(ru.ru_utime) + timeval_s(ru.ru_stime);
    proc_tree_stats(&r->o.target_pid, 1, false, &out->target);
}

/* Prints the share of one core that the load generator and the target used in the window. */
static void print_side_cpu(const struct side_cpu *a, const struct side_cpu *b, double secs)
{
    printf(" loadgen_cpu_util=%.2f", (b->self_s - a->self_s) / secs);
    if (a->target.ok && b->target.ok)
        printf(" target_cpu_util=%.2f",
               ticks_to_s(b->target.cpu_ticks - a->target.cpu_ticks) / secs);
}

static int run_throughput(struct run *r)
{
    struct side_cpu s0, s1;
    struct proc_stats p0, p1;
    uint64_t t_launch, t0, t1, b0, b1;
    double secs, gb, cpu = 0.0;
    unsigned streams = r->o.streams;

    t_launch = now_ns();
    for (unsigned i = 0; i < streams; i++)
        conn_start(r, &r->conns[i]);
    loop_until(r, t_launch + secs_to_ns(r->o.warmup), NULL);
    if (r->ready < streams)
        fprintf(stderr, "loadgen: only %u of %u streams ready after the warm-up\n", r->ready,
                streams);
    proc_tree_stats(r->o.pids, r->o.npids, false, &p0);
    side_cpu_read(r, &s0);
    t0 = now_ns();
    b0 = r->bytes;
    loop_until(r, t0 + secs_to_ns(r->o.duration), NULL);
    b1 = r->bytes;
    t1 = now_ns();
    side_cpu_read(r, &s1);
    proc_tree_stats(r->o.pids, r->o.npids, false, &p1);
    close_all(r);

    secs = (double)(t1 - t0) / 1e9;
    gb = (double)(b1 - b0) / 1e9;
    if (p0.ok && p1.ok)
        cpu = ticks_to_s(p1.cpu_ticks - p0.cpu_ticks);
    print_first_error(r);
    printf("RESULT scenario=throughput label=%s streams=%u dir=%s secs=%.3f bytes=%" PRIu64
           " mbytes_per_s=%.1f gbit_per_s=%.3f",
           r->o.label, streams, r->o.upload ? "up" : "down", secs, b1 - b0, gb * 1e3 / secs,
           gb * 8 / secs);
    if (p0.ok && p1.ok)
        printf(" cpu_s=%.2f cpu_s_per_gb=%.3f cpu_util=%.2f procs=%u threads=%u", cpu,
               gb > 0 ? cpu / gb : 0.0, cpu / secs, p1.procs, p1.threads);
    print_side_cpu(&s0, &s1, secs);
    print_errors(r);
    printf("\n");
    return r->ready == streams && err_total(r) == 0 ? 0 : 1;
}

static bool all_free(const struct run *r)
{
    for (size_t i = 0; i < r->nconns; i++)
        if (r->conns[i].st != ST_FREE && r->conns[i].st != ST_BACKOFF)
            return false;
    return true;
}

static int run_connrate(struct run *r)
{
    struct side_cpu s0, s1;
    struct proc_stats p0, p1;
    uint64_t t_launch, t0, t1, aborted = 0;
    double secs, cpu = 0.0;

    r->launching = true;
    t_launch = now_ns();
    r->win_start = t_launch + secs_to_ns(r->o.warmup);
    r->win_end = r->win_start + secs_to_ns(r->o.duration);
    for (unsigned i = 0; i < r->o.clients; i++)
        conn_start(r, &r->conns[i]);
    loop_until(r, r->win_start, NULL);
    proc_tree_stats(r->o.pids, r->o.npids, false, &p0);
    side_cpu_read(r, &s0);
    t0 = now_ns();
    r->win_start = t0;
    r->win_end = t0 + secs_to_ns(r->o.duration);
    loop_until(r, r->win_end, NULL);
    t1 = now_ns();
    side_cpu_read(r, &s1);
    proc_tree_stats(r->o.pids, r->o.npids, false, &p1);
    r->win_end = t1;
    /* Let the cycles in flight finish (they are not counted), then stop. */
    r->launching = false;
    loop_until(r, t1 + 2 * NS_PER_SEC, all_free);
    for (size_t i = 0; i < r->nconns; i++)
        if (r->conns[i].st != ST_FREE && r->conns[i].st != ST_BACKOFF)
            aborted++;
    close_all(r);

    secs = (double)(t1 - t0) / 1e9;
    if (p0.ok && p1.ok)
        cpu = ticks_to_s(p1.cpu_ticks - p0.cpu_ticks);
    qsort(r->lat_cycle.us, r->lat_cycle.n, sizeof(uint32_t), cmp_u32);
    qsort(r->lat_echo.us, r->lat_echo.n, sizeof(uint32_t), cmp_u32);
    print_first_error(r);
    printf("RESULT scenario=connrate label=%s clients=%u payload=%u secs=%.3f cycles=%" PRIu64
           " conn_per_s=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f echo_p50_ms=%.3f"
           " echo_p99_ms=%.3f",
           r->o.label, r->o.clients, r->o.payload, secs, r->cycles_in_window,
           (double)r->cycles_in_window / secs, lat_pct(&r->lat_cycle, 50),
           lat_pct(&r->lat_cycle, 99), lat_pct(&r->lat_cycle, 100), lat_pct(&r->lat_echo, 50),
           lat_pct(&r->lat_echo, 99));
    if (p0.ok && p1.ok)
        printf(" cpu_s=%.2f cpu_ms_per_conn=%.4f", cpu,
               r->cycles_in_window ? cpu * 1e3 / (double)r->cycles_in_window : 0.0);
    print_side_cpu(&s0, &s1, secs);
    print_errors(r);
    printf(" unfinished=%" PRIu64 "\n", aborted);
    return err_total(r) == 0 ? 0 : 1;
}

static bool setup_done(const struct run *r)
{
    return !r->launching && all_free(r);
}

/* --phases: one line per measured connection, in the order they were made, to the file opened
 * before the run (a bad path fails at once, not after it). */
static int write_phases(struct run *r)
{
    FILE *f = r->phases_file;
    r->phases_file = NULL;
    fprintf(f, "# us from connect(): connected method_reply socks_reply first_byte (0: none)\n");
    for (size_t i = 0; i < r->nphases; i++)
        fprintf(f, "%u %u %u %u\n", r->phases[i][0], r->phases[i][1], r->phases[i][2],
                r->phases[i][3]);
    if (fclose(f) != 0) {
        fprintf(stderr, "loadgen: %s: %s\n", r->o.phases_path, strerror(errno));
        return -1;
    }
    return 0;
}

/* One connection at a time: --warmup-conns uncounted, then --conns measured (fewer if
 * SETUP_MAX_ERRORS errors or --setup-limit seconds come first). */
static int run_setup(struct run *r)
{
    struct side_cpu s0, s1;
    struct proc_stats p0, p1;
    uint64_t t0, t1;
    double secs, cpu = 0.0;

    proc_tree_stats(r->o.pids, r->o.npids, false, &p0);
    side_cpu_read(r, &s0);
    t0 = now_ns();
    r->launching = true;
    conn_start(r, &r->conns[0]);
    loop_until(r, t0 + secs_to_ns(r->o.setup_limit), setup_done);
    t1 = now_ns();
    side_cpu_read(r, &s1);
    proc_tree_stats(r->o.pids, r->o.npids, false, &p1);
    if (!setup_done(r))
        fprintf(stderr, "loadgen: set-up limit reached after %" PRIu64 " connections\n",
                r->cycles_total);
    r->launching = false;
    close_all(r);

    secs = (double)(t1 - t0) / 1e9;
    if (p0.ok && p1.ok)
        cpu = ticks_to_s(p1.cpu_ticks - p0.cpu_ticks);
    qsort(r->lat_first.us, r->lat_first.n, sizeof(uint32_t), cmp_u32);
    qsort(r->lat_reply.us, r->lat_reply.n, sizeof(uint32_t), cmp_u32);
    print_first_error(r);
    printf("RESULT scenario=setup label=%s conns=%u measured=%" PRIu64 " warmup_conns=%u"
           " gap_ms=%u payload=%u secs=%.3f setup_p50_ms=%.3f setup_p99_ms=%.3f setup_max_ms=%.3f"
           " reply_p50_ms=%.3f reply_p99_ms=%.3f",
           r->o.label, r->o.conns, r->cycles_in_window, r->o.warmup_conns, r->o.gap_ms,
           r->o.payload, secs, lat_pct(&r->lat_first, 50), lat_pct(&r->lat_first, 99),
           lat_pct(&r->lat_first, 100), lat_pct(&r->lat_reply, 50), lat_pct(&r->lat_reply, 99));
    if (p0.ok && p1.ok)
        printf(" cpu_s=%.3f cpu_ms_per_conn=%.4f", cpu,
               r->cycles_total ? cpu * 1e3 / (double)r->cycles_total : 0.0);
    print_side_cpu(&s0, &s1, secs);
    print_errors(r);
    printf("\n");
    if (r->phases_file != NULL && write_phases(r) != 0)
        return 1;
    return r->cycles_in_window == r->o.conns && err_total(r) == 0 ? 0 : 1;
}

static bool idle_setup_done(const struct run *r)
{
    return r->launched >= r->o.conns && r->setting_up == 0;
}

static bool idle_teardown_done(const struct run *r)
{
    return r->finished >= r->launched;
}

/* Keeps at most --concurrency connections in set-up; returns when all are up or failed (0), at
 * the time limit (-1), or when nothing gets through at all (-2). */
static int idle_open_all(struct run *r, uint64_t limit)
{
    while (now_ns() < limit && !idle_setup_done(r)) {
        while (r->launched < r->o.conns && r->setting_up < r->o.concurrency) {
            r->setting_up++;
            r->launched++;
            conn_start(r, &r->conns[r->launched - 1]);
        }
        loop_until(r, now_ns() + 5 * 1000 * 1000, idle_setup_done);
        if (r->established == 0 && r->finished >= 100) {
            fprintf(stderr, "loadgen: the first %u connections all failed; giving up\n",
                    r->finished);
            return -2;
        }
    }
    return idle_setup_done(r) ? 0 : -1;
}

static int run_idle(struct run *r)
{
    struct proc_stats p0, p1, p2;
    uint64_t t_launch, t_up;
    double per_conn_rss = 0.0, per_conn_pss = 0.0;
    unsigned held;
    int setup;

    proc_tree_stats(r->o.pids, r->o.npids, true, &p0);
    t_launch = now_ns();
    setup = idle_open_all(r, t_launch + secs_to_ns(r->o.setup_limit));
    t_up = now_ns();
    if (setup == -1)
        fprintf(stderr, "loadgen: set-up limit reached: %u of %u established\n", r->established,
                r->o.conns);
    /* Give lazy work (buffers released after the first echo, late allocations) time to settle,
     * still watching for connections the proxy drops. */
    loop_until(r, now_ns() + secs_to_ns(r->o.settle), NULL);
    held = 0;
    for (size_t i = 0; i < r->launched; i++)
        held += r->conns[i].st == ST_IDLE;
    proc_tree_stats(r->o.pids, r->o.npids, true, &p1);

    /* Teardown: the rest of the ping payload makes the target close first. */
    for (size_t i = 0; i < r->launched; i++) {
        struct lconn *c = &r->conns[i];

        if (c->st != ST_IDLE)
            continue;
        c->teardown = true;
        c->st = ST_ECHO_WAIT;
        c->echo_got = 0;
        c->echo_want = r->o.payload - 1;
        c->deadline = now_ns() + secs_to_ns(r->o.timeout);
        if (conn_send(r, c, r->payload + 1, c->echo_want) != 0)
            conn_fail(r, c, ERR_ECHO, "send", errno);
    }
    loop_until(r, now_ns() + 30 * NS_PER_SEC, idle_teardown_done);
    close_all(r);
    loop_until(r, now_ns() + NS_PER_SEC, NULL); /* let the proxy see the closes */
    proc_tree_stats(r->o.pids, r->o.npids, true, &p2);

    if (held > 0 && p0.ok && p1.ok) {
        per_conn_rss = ((double)p1.rss - (double)p0.rss) / held / 1024.0;
        per_conn_pss = ((double)p1.pss - (double)p0.pss) / held / 1024.0;
    }
    print_first_error(r);
    printf("RESULT scenario=idle label=%s conns=%u established=%u held=%u setup_s=%.2f"
           " closed_clean=%u",
           r->o.label, r->o.conns, r->established, held, (double)(t_up - t_launch) / 1e9,
           r->closed_clean);
    if (p0.ok && p1.ok)
        printf(" rss_before_kib=%" PRIu64 " rss_idle_kib=%" PRIu64 " rss_after_kib=%" PRIu64
               " pss_before_kib=%" PRIu64 " pss_idle_kib=%" PRIu64
               " kib_per_conn=%.2f pss_kib_per_conn=%.2f procs=%u threads=%u",
               p0.rss / 1024, p1.rss / 1024, p2.rss / 1024, p0.pss / 1024, p1.pss / 1024,
               per_conn_rss, per_conn_pss, p1.procs, p1.threads);
    print_errors(r);
    printf("\n");
    return held == r->o.conns && err_total(r) == 0 ? 0 : 1;
}

/* ---- command line -------------------------------------------------------------------------- */

static int parse_addr(const char *s, struct sockaddr_in *out)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    char *end = NULL;
    unsigned long port;
    size_t hlen;

    if (colon == NULL)
        return -1;
    hlen = (size_t)(colon - s);
    if (hlen == 0 || hlen >= sizeof(host))
        return -1;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || port == 0 || port > 65535)
        return -1;
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

static int parse_secs(const char *s, double min, double max, double *out)
{
    char *end = NULL;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --scenario throughput|connrate|setup|idle --hop IP:PORT\n"
            "               [--proto socks5|http|none] [--target IP:PORT] [--label NAME]\n"
            "               [--pid PID]... [--target-pid PID] [--duration S] [--warmup S]\n"
            "               [--timeout S]\n"
            "  throughput: [--streams N] [--dir down|up]   (target: source or sink port)\n"
            "  connrate:   [--clients N] [--payload N]     (target: ping port)\n"
            "  setup:      [--conns N] [--warmup-conns N] [--setup-limit S] [--payload N]\n"
            "              [--gap-ms N] (a pause between connections: unloaded latency)\n"
            "              [--phases FILE] (each connection's phases: bench/phases.awk)\n"
            "              one connection at a time        (target: ping port)\n"
            "  idle:       [--conns N] [--concurrency N] [--settle S] [--setup-limit S]\n"
            "              [--payload N]                   (target: ping port)\n"
            "  --hop is where connections go (the proxy, or the target itself); --target is\n"
            "  what the SOCKS5/HTTP handshake asks for. --payload must equal target -b.\n"
            "  --pid may be repeated (a tunnel's two hops): CPU and memory are summed.\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"scenario", required_argument, NULL, 's'},
        {"hop", required_argument, NULL, 'H'},
        {"proto", required_argument, NULL, 'P'},
        {"target", required_argument, NULL, 'T'},
        {"label", required_argument, NULL, 'l'},
        {"pid", required_argument, NULL, 'p'},
        {"target-pid", required_argument, NULL, 't'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"timeout", required_argument, NULL, 'o'},
        {"streams", required_argument, NULL, 'n'},
        {"dir", required_argument, NULL, 'D'},
        {"clients", required_argument, NULL, 'c'},
        {"payload", required_argument, NULL, 'b'},
        {"conns", required_argument, NULL, 'C'},
        {"concurrency", required_argument, NULL, 'k'},
        {"settle", required_argument, NULL, 'S'},
        {"setup-limit", required_argument, NULL, 'L'},
        {"warmup-conns", required_argument, NULL, 'W'},
        {"gap-ms", required_argument, NULL, 'G'},
        {"phases", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool have_scenario = false, have_hop = false, have_target = false, have_conns = false;
    unsigned pid = 0;
    int opt, bad = 0;

    memset(o, 0, sizeof(*o));
    o->proto = PROTO_NONE;
    o->streams = 1;
    o->clients = 50;
    o->conns = 5000;
    o->warmup_conns = 10;
    o->concurrency = 100;
    o->payload = 64;
    o->duration = 5.0;
    o->warmup = 0.5;
    o->settle = 1.0;
    o->timeout = 5.0;
    o->setup_limit = 120.0;
    o->label = "-";
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            have_scenario = true;
            if (strcmp(optarg, "throughput") == 0)
                o->scenario = SC_THROUGHPUT;
            else if (strcmp(optarg, "connrate") == 0)
                o->scenario = SC_CONNRATE;
            else if (strcmp(optarg, "setup") == 0)
                o->scenario = SC_SETUP;
            else if (strcmp(optarg, "idle") == 0)
                o->scenario = SC_IDLE;
            else
                bad = 1;
            break;
        case 'H':
            have_hop = true;
            bad |= parse_addr(optarg, &o->hop) != 0;
            break;
        case 'T':
            have_target = true;
            bad |= parse_addr(optarg, &o->target) != 0;
            break;
        case 'P':
            if (strcmp(optarg, "socks5") == 0)
                o->proto = PROTO_SOCKS5;
            else if (strcmp(optarg, "http") == 0)
                o->proto = PROTO_HTTP;
            else if (strcmp(optarg, "none") == 0)
                o->proto = PROTO_NONE;
            else
                bad = 1;
            break;
        case 'l':
            o->label = optarg;
            break;
        case 'p':
            if (o->npids == MAX_ROOTS) {
                bad = 1;
                break;
            }
            bad |= parse_u32(optarg, 1, 1u << 30, &pid) != 0;
            o->pids[o->npids++] = (pid_t)pid;
            break;
        case 't':
            bad |= parse_u32(optarg, 1, 1u << 30, &pid) != 0;
            o->target_pid = (pid_t)pid;
            break;
        case 'd':
            bad |= parse_secs(optarg, 0.1, 600, &o->duration) != 0;
            break;
        case 'w':
            bad |= parse_secs(optarg, 0, 60, &o->warmup) != 0;
            break;
        case 'o':
            bad |= parse_secs(optarg, 0.1, 600, &o->timeout) != 0;
            break;
        case 'n':
            bad |= parse_u32(optarg, 1, 1024, &o->streams) != 0;
            break;
        case 'D':
            if (strcmp(optarg, "up") == 0)
                o->upload = true;
            else if (strcmp(optarg, "down") != 0)
                bad = 1;
            break;
        case 'c':
            bad |= parse_u32(optarg, 1, 10000, &o->clients) != 0;
            break;
        case 'b':
            bad |= parse_u32(optarg, 2, PAYLOAD_MAX, &o->payload) != 0;
            break;
        case 'C':
            have_conns = true;
            bad |= parse_u32(optarg, 1, 60000, &o->conns) != 0;
            break;
        case 'W':
            bad |= parse_u32(optarg, 0, 60000, &o->warmup_conns) != 0;
            break;
        case 'G':
            bad |= parse_u32(optarg, 0, 10000, &o->gap_ms) != 0;
            break;
        case 'F':
            o->phases_path = optarg;
            break;
        case 'k':
            bad |= parse_u32(optarg, 1, 10000, &o->concurrency) != 0;
            break;
        case 'S':
            bad |= parse_secs(optarg, 0, 600, &o->settle) != 0;
            break;
        case 'L':
            bad |= parse_secs(optarg, 1, 600, &o->setup_limit) != 0;
            break;
        default:
            bad = 1;
            break;
        }
    }
    if (bad || optind != argc || !have_scenario || !have_hop ||
        (o->phases_path != NULL && o->scenario != SC_SETUP))
        return -1;
    if (!have_target)
        o->target = o->hop;
    if (o->scenario == SC_SETUP && !have_conns)
        o->conns = 200;
    return 0;
}

static void raise_fd_limit(unsigned need)
{
    rlim_t cur = raise_fd_soft_limit();

    if (cur != 0 && cur < (rlim_t)need + 64)
        fprintf(stderr, "loadgen: descriptor limit %llu is below the %u connections asked for\n",
                (unsigned long long)cur, need);
}

int main(int argc, char **argv)
{
    struct run r;
    int ret;

    memset(&r, 0, sizeof(r));
    if (parse_options(argc, argv, &r.o) != 0) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    switch (r.o.scenario) {
    case SC_THROUGHPUT:
        r.nconns = r.o.streams;
        break;
    case SC_CONNRATE:
        r.nconns = r.o.clients;
        break;
    case SC_SETUP:
        r.nconns = 1;
        break;
    case SC_IDLE:
        r.nconns = r.o.conns;
        break;
    }
    raise_fd_limit((unsigned)r.nconns);
    for (unsigned i = 0; i < r.o.payload; i++)
        r.payload[i] = (char)('A' + i % 26);
    r.conns = calloc(r.nconns, sizeof(*r.conns));
    r.bulk = calloc(1, BULK_BUF_SIZE);
    r.lat_cycle.cap = r.lat_echo.cap = LATENCY_CAP;
    r.lat_cycle.us = r.o.scenario == SC_CONNRATE ? calloc(LATENCY_CAP, sizeof(uint32_t)) : NULL;
    r.lat_echo.us = r.o.scenario == SC_CONNRATE ? calloc(LATENCY_CAP, sizeof(uint32_t)) : NULL;
    r.lat_first.cap = r.lat_reply.cap = r.o.conns;
    r.lat_first.us = r.o.scenario == SC_SETUP ? calloc(r.o.conns, sizeof(uint32_t)) : NULL;
    r.lat_reply.us = r.o.scenario == SC_SETUP ? calloc(r.o.conns, sizeof(uint32_t)) : NULL;
    if (r.o.phases_path != NULL) { /* only with setup: parse_options */
        r.phases_file = fopen(r.o.phases_path, "w");
        if (r.phases_file == NULL) {
            fprintf(stderr, "loadgen: %s: %s\n", r.o.phases_path, strerror(errno));
            return 1;
        }
        r.phases = calloc(r.o.conns, sizeof(*r.phases));
    }
    r.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (r.conns == NULL || r.bulk == NULL || r.epfd < 0 ||
        (r.o.scenario == SC_CONNRATE && (r.lat_cycle.us == NULL || r.lat_echo.us == NULL)) ||
        (r.o.scenario == SC_SETUP && (r.lat_first.us == NULL || r.lat_reply.us == NULL)) ||
        (r.o.phases_path != NULL && r.phases == NULL)) {
        perror("loadgen: setup");
        return 1;
    }
    for (size_t i = 0; i < r.nconns; i++) {
        r.conns[i].fd = -1;
        r.conns[i].st = ST_FREE;
    }
    if (r.o.scenario == SC_THROUGHPUT)
        ret = run_throughput(&r);
    else if (r.o.scenario == SC_CONNRATE)
        ret = run_connrate(&r);
    else if (r.o.scenario == SC_SETUP)
        ret = run_setup(&r);
    else
        ret = run_idle(&r);
    fflush(stdout);
    close(r.epfd);
    free(r.lat_cycle.us);
    free(r.lat_echo.us);
    free(r.lat_first.us);
    free(r.lat_reply.us);
    if (r.phases_file != NULL)
        fclose(r.phases_file); /* the run ended before writing it */
    free(r.phases);
    free(r.bulk);
    free(r.conns);
    return ret;
}
