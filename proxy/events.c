#include "proxy/events.h"

#include <string.h>

int events_hub_init(struct events_hub *hub)
{
    memset(hub, 0, sizeof *hub);
    atomic_init(&hub->followers, 0);
    atomic_init(&hub->oversized, 0);
    return uv_mutex_init(&hub->lock);
}

void events_hub_destroy(struct events_hub *hub)
{
    uv_mutex_destroy(&hub->lock);
}

void events_hub_set_wake(struct events_hub *hub, uv_async_t *wake)
{
    uv_mutex_lock(&hub->lock);
    hub->wake = wake;
    uv_mutex_unlock(&hub->lock);
}

void events_follow(struct events_hub *hub, uint64_t *cursor)
{
    uv_mutex_lock(&hub->lock);
    *cursor = hub->next_seq; /* from now on: no history */
    uv_mutex_unlock(&hub->lock);
    atomic_fetch_add(&hub->followers, 1);
}

void events_unfollow(struct events_hub *hub)
{
    atomic_fetch_sub(&hub->followers, 1);
}

void events_publish(struct events_hub *hub, const char *event, const struct log_field *fields,
                    size_t n_fields)
{
    if (atomic_load_explicit(&hub->followers, memory_order_relaxed) == 0)
        return;
    char line[EVENTS_LINE_MAX];
    size_t len =
        log_event_format(line, sizeof line, LOG_FORMAT_JSON, LOG_INFO, event, fields, n_fields);
    if (len == 0) {
        atomic_fetch_add_explicit(&hub->oversized, 1, memory_order_relaxed);
        return;
    }
    uv_mutex_lock(&hub->lock);
    size_t slot = hub->next_seq % EVENTS_RING;
    memcpy(hub->lines[slot], line, len);
    hub->lens[slot] = (uint16_t)len;
    hub->next_seq++;
    if (hub->wake != NULL) /* under the lock: the follower side may be closing it */
        uv_async_send(hub->wake);
    uv_mutex_unlock(&hub->lock);
}

size_t events_read(struct events_hub *hub, uint64_t *cursor, char *out, size_t cap, uint64_t *lost)
{
    size_t used = 0;
    *lost = 0;
    uv_mutex_lock(&hub->lock);
    if (hub->next_seq - *cursor > EVENTS_RING) {
        *lost = hub->next_seq - EVENTS_RING - *cursor;
        *cursor = hub->next_seq - EVENTS_RING;
    }
    while (*cursor < hub->next_seq) {
        size_t slot = *cursor % EVENTS_RING;
        if (used + hub->lens[slot] > cap)
            break;
        memcpy(out + used, hub->lines[slot], hub->lens[slot]);
        used += hub->lens[slot];
        (*cursor)++;
    }
    uv_mutex_unlock(&hub->lock);
    return used;
}
