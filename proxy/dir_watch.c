#include "proxy/dir_watch.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

/* Not IN_MODIFY: a write to a file that stays open (a log) is not an edit that is over. */
#define DIR_WATCH_MASK                                                                             \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB |            \
     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

struct dir_watch_entry {
    int wd;
    char *dir;
};

struct dir_watch {
    uv_poll_t poll;
    int fd;
    dir_watch_fn cb;
    void *arg;
    struct dir_watch_entry dirs[DIR_WATCH_MAX];
    size_t n;
};

static const struct dir_watch_entry *entry_of_wd(const struct dir_watch *w, int wd)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->dirs[i].wd == wd)
            return &w->dirs[i];
    return NULL;
}

static void on_readable(uv_poll_t *poll, int status, int events)
{
    struct dir_watch *w = poll->data;
    (void)events;
    if (status < 0)
        return;
    /* Aligned as the kernel writes struct inotify_event records. */
    char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
        __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof(buf));
        if (n <= 0)
            return; /* EAGAIN: all read */
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            p += sizeof(*e) + e->len;
            if (e->mask & IN_Q_OVERFLOW) {
                for (size_t i = 0; i < w->n; i++)
                    w->cb(w->arg, w->dirs[i].dir, NULL);
                continue;
            }
            const struct dir_watch_entry *d = entry_of_wd(w, e->wd);
            if (d == NULL || (e->mask & IN_IGNORED))
                continue;
            bool about_dir = e->mask & (IN_DELETE_SELF | IN_MOVE_SELF);
            w->cb(w->arg, d->dir, about_dir || e->len == 0 ? NULL : e->name);
        }
    }
}

int dir_watch_new(uv_loop_t *loop, dir_watch_fn cb, void *arg, struct dir_watch **out)
{
    struct dir_watch *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return UV_ENOMEM;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        int err = uv_translate_sys_error(errno);
        free(w);
        return err;
    }
    int err = uv_poll_init(loop, &w->poll, w->fd);
    if (err == 0)
        err = uv_poll_start(&w->poll, UV_READABLE, on_readable);
    if (err != 0) {
        close(w->fd);
        free(w);
        return err;
    }
    w->poll.data = w;
    w->cb = cb;
    w->arg = arg;
    *out = w;
    return 0;
}

bool dir_watch_has(const struct dir_watch *w, const char *dir)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->dirs[i].dir, dir) == 0)
            return true;
    return false;
}

int dir_watch_add(struct dir_watch *w, const char *dir)
{
    if (dir_watch_has(w, dir))
        return 0;
    if (w->n == DIR_WATCH_MAX)
        return UV_ENOSPC;
    char *copy = strdup(dir);
    if (copy == NULL)
        return UV_ENOMEM;
    int wd = inotify_add_watch(w->fd, dir, DIR_WATCH_MASK);
    if (wd < 0) {
        free(copy);
        return uv_translate_sys_error(errno);
    }
    w->dirs[w->n++] = (struct dir_watch_entry){.wd = wd, .dir = copy};
    return 0;
}

void dir_watch_keep_only(struct dir_watch *w, bool (*keep)(const char *dir, void *arg), void *arg)
{
    bool keeps[DIR_WATCH_MAX];
    int wds[DIR_WATCH_MAX];
    for (size_t i = 0; i < w->n; i++) {
        keeps[i] = keep(w->dirs[i].dir, arg);
        wds[i] = w->dirs[i].wd;
    }
    size_t kept = 0;
    for (size_t i = 0; i < w->n; i++) {
        struct dir_watch_entry d = w->dirs[i];
        if (keeps[i]) {
            w->dirs[kept++] = d;
            continue;
        }
        /* Two names of one directory share its watch descriptor: it goes with the last. */
        bool shared = false;
        for (size_t j = 0; j < w->n; j++)
            shared |= keeps[j] && wds[j] == d.wd;
        if (!shared)
            inotify_rm_watch(w->fd, d.wd);
        free(d.dir);
    }
    w->n = kept;
}

static void on_poll_closed(uv_handle_t *h)
{
    struct dir_watch *w = h->data;
    close(w->fd);
    for (size_t i = 0; i < w->n; i++)
        free(w->dirs[i].dir);
    free(w);
}

void dir_watch_close(struct dir_watch *w)
{
    if (w == NULL)
        return;
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, on_poll_closed);
}
