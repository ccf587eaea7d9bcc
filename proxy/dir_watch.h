/* Watches directories for files being replaced, written and closed, created, removed or having
 * their attributes changed: what an edit of a configuration file does, whether the editor
 * writes in place, renames a new file over the old one, or a ConfigMap swaps a symlink. Plain
 * writes to a file that stays open are not reported: a log file in the same directory wakes
 * nothing, however many lines it takes (libuv's fs events report every write).
 *
 * Linux inotify on one descriptor, polled on a libuv loop; not thread-safe. */
#ifndef GEOPROXY_PROXY_DIR_WATCH_H
#define GEOPROXY_PROXY_DIR_WATCH_H

#include <stdbool.h>
#include <uv.h>

#define DIR_WATCH_MAX 64 /* directories per watcher */

/* 'name' is the file the change concerns, or NULL when the directory itself changed (moved,
 * removed) or events were lost (the queue overflowed): then anything may have changed. */
typedef void (*dir_watch_fn)(void *arg, const char *dir, const char *name);

struct dir_watch;

/* A watcher of no directory yet. Returns 0 or a libuv error. */
int dir_watch_new(uv_loop_t *loop, dir_watch_fn cb, void *arg, struct dir_watch **out);

/* Starts watching 'dir' (a no-op when it is watched already). Returns 0 or a libuv error. */
int dir_watch_add(struct dir_watch *w, const char *dir);

bool dir_watch_has(const struct dir_watch *w, const char *dir);

/* Stops watching the directories for which keep(dir, arg) is false. */
void dir_watch_keep_only(struct dir_watch *w, bool (*keep)(const char *dir, void *arg), void *arg);

/* Stops everything; the memory goes once the loop closed the poll handle. */
void dir_watch_close(struct dir_watch *w);

#endif
