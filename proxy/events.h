/* Connection events for live followers (GET /events on the admin listener). Worker threads
 * publish each event as one JSON line into a bounded ring; the follower side (the admin loop)
 * is woken and reads new lines at its own pace from its own cursor. A follower that falls more
 * than the ring behind loses the oldest lines and is told how many. When nobody follows,
 * publishing costs one atomic load and nothing is kept. */
#ifndef GEOPROXY_PROXY_EVENTS_H
#define GEOPROXY_PROXY_EVENTS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proxy/log.h"

#define EVENTS_RING 1024     /* lines kept for followers */
#define EVENTS_LINE_MAX 1024 /* longer events are left out of the stream (counted) */

struct events_hub {
    uv_mutex_t lock;
    char lines[EVENTS_RING][EVENTS_LINE_MAX];
    uint16_t lens[EVENTS_RING];
    uint64_t next_seq;     /* sequence number the next line gets; guarded by lock */
    atomic_uint followers; /* events are formatted only when someone follows */
    atomic_uint_fast64_t oversized;
    uv_async_t *wake; /* the followers' loop; set by events_hub_set_wake */
};

int events_hub_init(struct events_hub *hub);
void events_hub_destroy(struct events_hub *hub);

/* The async handle to send when lines arrive; NULL before that handle is closed. */
void events_hub_set_wake(struct events_hub *hub, uv_async_t *wake);

/* A follower came or went (the stream is formatted only while there is one). */
void events_follow(struct events_hub *hub, uint64_t *cursor);
void events_unfollow(struct events_hub *hub);

/* Publishes one event (any thread). */
void events_publish(struct events_hub *hub, const char *event, const struct log_field *fields,
                    size_t n_fields);

/* Copies whole lines from *cursor on into out (at most cap bytes) and advances *cursor; stores
 * in *lost how many lines were overwritten before this follower read them. Returns the bytes
 * copied (0: nothing new, or cap too small for the next line). */
size_t events_read(struct events_hub *hub, uint64_t *cursor, char *out, size_t cap, uint64_t *lost);

#endif
