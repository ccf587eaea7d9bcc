/* The benchmark's target server: the far end of every proxied connection. One thread, epoll,
 * non-blocking sockets, so that it is never the slowest process in a run.
 *
 * It listens on four consecutive ports from a base port, one behaviour each:
 *   base+0 echo    echoes everything until the peer closes
 *   base+1 ping    echoes, and closes first once it has echoed --ping-bytes bytes in total
 *                  (the connection-rate scenario: the target closing first leaves TIME_WAIT here
 *                  and not on an ephemeral port of the client or of the proxy)
 *   base+2 source  writes an endless stream of bytes as fast as the peer reads them
 *   base+3 sink    reads and discards everything
 *
 * Usage: target [-a ADDRESS] [-p BASE_PORT] [-b PING_BYTES] [-t SECONDS]
 * It prints "ready" on stdout when all four ports listen, and exits on SIGTERM/SIGINT or after
 * -t seconds (default 3600), whichever comes first. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define TARGET_MODES 4
#define ECHO_BUF_SIZE (16 * 1024)
#define BULK_BUF_SIZE (256 * 1024)
#define MAX_EVENTS 256
#define LISTEN_BACKLOG 4096

enum target_mode {
    MODE_ECHO = 0,
    MODE_PING = 1,
    MODE_SOURCE = 2,
    MODE_SINK = 3,
};

static const char *const mode_names[TARGET_MODES] = {"echo", "ping", "source", "sink"};

/* One accepted connection. The listeners use the same struct with listening = true. */
struct tconn {
    int fd;
    enum target_mode mode;
    bool listening;
    bool want_out;  /* EPOLLOUT is registered */
    char *buf;      /* echo and ping: bytes read and not yet written back */
    size_t len;     /* bytes in buf */
    size_t off;     /* bytes of buf already written */
    uint64_t total; /* ping: bytes echoed so far */
};

struct target {
    int epfd;
    struct tconn *listeners[TARGET_MODES];
    uint32_t ping_bytes;
    uint64_t open_conns;
    uint64_t accepted;
    char *bulk; /* source data and sink scratch, shared by all connections */
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int epoll_set(struct target *t, struct tconn *c, int op, uint32_t events)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = c;
    return epoll_ctl(t->epfd, op, c->fd, &ev);
}

static void tconn_free(struct target *t, struct tconn *c)
{
    if (c == NULL)
        return;
    close(c->fd); /* also removes it from the epoll set */
    free(c->buf);
    free(c);
    t->open_conns--;
}

static int tconn_want_out(struct target *t, struct tconn *c, bool on)
{
    uint32_t events;

    if (c->want_out == on)
        return 0;
    c->want_out = on;
    if (c->mode == MODE_SOURCE)
        events = EPOLLOUT;
    else if (on)
        events = EPOLLOUT; /* echo: stop reading while the echo is not written (backpressure) */
    else
        events = EPOLLIN;
    return epoll_set(t, c, EPOLL_CTL_MOD, events | EPOLLRDHUP);
}

static int listen_on(struct target *t, const struct sockaddr_in *addr, enum target_mode mode)
{
    struct tconn *c;
    int fd;
    int one = 1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        fprintf(stderr, "target: %s port %u: %s\n", mode_names[mode], ntohs(addr->sin_port),
                strerror(errno));
        close(fd);
        return -1;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->mode = mode;
    c->listening = true;
    if (epoll_set(t, c, EPOLL_CTL_ADD, EPOLLIN) != 0) {
        close(fd);
        free(c);
        return -1;
    }
    t->listeners[mode] = c;
    return 0;
}

static void accept_all(struct target *t, struct tconn *l)
{
    /* Bounded: at most one backlog's worth per wake-up, so other sockets get their turn. */
    for (int i = 0; i < LISTEN_BACKLOG; i++) {
        struct tconn *c;
        int one = 1;
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                fprintf(stderr, "target: accept on %s: %s\n", mode_names[l->mode], strerror(errno));
            return;
        }
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->mode = l->mode;
        if (c->mode == MODE_ECHO || c->mode == MODE_PING) {
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            c->buf = malloc(ECHO_BUF_SIZE);
            if (c->buf == NULL) {
                close(fd);
                free(c);
                continue;
            }
        }
        t->open_conns++;
        t->accepted++;
        if (c->mode == MODE_SOURCE) {
            c->want_out = true;
            if (epoll_set(t, c, EPOLL_CTL_ADD, EPOLLOUT | EPOLLRDHUP) != 0)
                tconn_free(t, c);
        } else if (epoll_set(t, c, EPOLL_CTL_ADD, EPOLLIN | EPOLLRDHUP) != 0) {
            tconn_free(t, c);
        }
    }
}

/* Writes what is left of an echo buffer. Returns 1 when all written, 0 when the socket is
 * full, -1 on error. */
static int echo_flush(struct tconn *c)
{
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        c->off += (size_t)n;
        c->total += (uint64_t)n;
    }
    c->off = 0;
    c->len = 0;
    return 1;
}

/* One recv() on a non-blocking socket, retried on EINTR. Returns the bytes read (> 0), 0 when
 * there is nothing to read for now, or -1 when the connection is done (EOF or an error). */
static ssize_t recv_ready(int fd, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(fd, buf, len, 0);

        if (n > 0)
            return n;
        if (n == 0)
            return -1;
        if (errno != EINTR)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
}

/* Returns false when the connection must be closed. */
static bool on_echo(struct target *t, struct tconn *c, uint32_t events)
{
    int r;

    if (c->len > 0) { /* woken for EPOLLOUT: finish the pending echo first */
        r = echo_flush(c);
        if (r < 0)
            return false;
        if (r == 0)
            return true;
        if (c->mode == MODE_PING && c->total >= t->ping_bytes)
            return false; /* echoed all: the target closes first */
        if (tconn_want_out(t, c, false) != 0)
            return false;
    }
    /* Bounded: a few buffers per wake-up, so one fast peer cannot starve the others. */
    for (int i = 0; i < 8; i++) {
        ssize_t n = recv_ready(c->fd, c->buf, ECHO_BUF_SIZE);

        if (n <= 0)
            return n == 0;
        c->len = (size_t)n;
        c->off = 0;
        r = echo_flush(c);
        if (r < 0)
            return false;
        if (r == 0)
            return tconn_want_out(t, c, true) == 0;
        if (c->mode == MODE_PING && c->total >= t->ping_bytes)
            return false;
    }
    (void)events;
    return true;
}

static bool on_source(struct target *t, struct tconn *c, uint32_t events)
{
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        return false;
    for (int i = 0; i < 8; i++) {
        ssize_t n = send(c->fd, t->bulk, BULK_BUF_SIZE, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK;
        }
    }
    return true;
}

static bool on_sink(struct target *t, struct tconn *c)
{
    for (int i = 0; i < 8; i++) {
        ssize_t n = recv_ready(c->fd, t->bulk, BULK_BUF_SIZE);

        if (n <= 0)
            return n == 0;
    }
    return true;
}

static void on_event(struct target *t, struct tconn *c, uint32_t events)
{
    bool keep;

    if (c->listening) {
        accept_all(t, c);
        return;
    }
    switch (c->mode) {
    case MODE_ECHO:
    case MODE_PING:
        keep = on_echo(t, c, events);
        break;
    case MODE_SOURCE:
        keep = on_source(t, c, events);
        break;
    case MODE_SINK:
    default:
        keep = on_sink(t, c);
        break;
    }
    if (!keep)
        tconn_free(t, c);
}

static void usage(void)
{
    fprintf(stderr, "usage: target [-a IPV4] [-p BASE_PORT] [-b PING_BYTES] [-t SECONDS]\n"
                    "  ports: BASE+0 echo, +1 ping (echo N bytes then close), +2 source, "
                    "+3 sink\n");
}

int main(int argc, char **argv)
{
    struct target t;
    struct sockaddr_in addr;
    struct epoll_event events[MAX_EVENTS];
    struct sigaction sa;
    struct timespec start, now;
    uint32_t base_port = 21000, max_seconds = 3600;
    const char *address = "127.0.0.1";
    int opt;

    memset(&t, 0, sizeof(t));
    t.ping_bytes = 64;
    while ((opt = getopt(argc, argv, "a:p:b:t:h")) != -1) {
        switch (opt) {
        case 'a':
            address = optarg;
            break;
        case 'p':
            if (parse_u32(optarg, 1, 65535 - TARGET_MODES, &base_port) != 0) {
                fprintf(stderr, "target: bad port '%s'\n", optarg);
                return 2;
            }
            break;
        case 'b':
            if (parse_u32(optarg, 1, UINT32_MAX, &t.ping_bytes) != 0) {
                fprintf(stderr, "target: bad ping byte count '%s'\n", optarg);
                return 2;
            }
            break;
        case 't':
            if (parse_u32(optarg, 1, 86400, &max_seconds) != 0) {
                fprintf(stderr, "target: bad time limit '%s'\n", optarg);
                return 2;
            }
            break;
        default:
            usage();
            return 2;
        }
    }

    /* Five thousand idle connections need more descriptors than the usual soft limit of 1024. */
    (void)raise_fd_soft_limit();
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    if (inet_pton(AF_INET, address, &addr.sin_addr) != 1) {
        fprintf(stderr, "target: bad IPv4 address '%s'\n", address);
        return 2;
    }
    t.bulk = malloc(BULK_BUF_SIZE);
    t.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (t.bulk == NULL || t.epfd < 0) {
        perror("target: setup");
        return 1;
    }
    for (size_t i = 0; i < BULK_BUF_SIZE; i++)
        t.bulk[i] = (char)('a' + i % 26);
    for (int m = 0; m < TARGET_MODES; m++) {
        addr.sin_port = htons((uint16_t)(base_port + (uint32_t)m));
        if (listen_on(&t, &addr, (enum target_mode)m) != 0)
            return 1;
    }
    printf("ready %s:%u-%u\n", address, base_port, base_port + TARGET_MODES - 1);
    fflush(stdout);

    clock_gettime(CLOCK_MONOTONIC, &start);
    while (!stop_requested) {
        int n = epoll_wait(t.epfd, events, MAX_EVENTS, 1000);

        if (n < 0 && errno != EINTR) {
            perror("target: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++)
            on_event(&t, events[i].data.ptr, events[i].events);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= (time_t)max_seconds) {
            fprintf(stderr, "target: time limit of %u s reached\n", max_seconds);
            break;
        }
    }
    fprintf(stderr, "target: exiting, %llu connections accepted, %llu open\n",
            (unsigned long long)t.accepted, (unsigned long long)t.open_conns);
    /* Connections still open are left to the exit; the listeners and buffers are ours. */
    for (int m = 0; m < TARGET_MODES; m++) {
        if (t.listeners[m] != NULL) {
            close(t.listeners[m]->fd);
            free(t.listeners[m]);
        }
    }
    close(t.epfd);
    free(t.bulk);
    return 0;
}
