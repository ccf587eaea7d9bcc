#include "proxy/bufpool.h"

#include <stdlib.h>

struct free_buf {
    struct free_buf *next;
};

void bufpool_init(struct bufpool *pool, size_t buf_size, size_t max_idle)
{
    pool->buf_size = buf_size < sizeof(struct free_buf) ? sizeof(struct free_buf) : buf_size;
    pool->max_idle = max_idle;
    pool->idle = 0;
    pool->in_use = 0;
    pool->free_list = NULL;
}

void *bufpool_get(struct bufpool *pool)
{
    struct free_buf *b = pool->free_list;
    if (b != NULL) {
        pool->free_list = b->next;
        pool->idle--;
    } else {
        b = malloc(pool->buf_size);
        if (b == NULL)
            return NULL;
    }
    pool->in_use++;
    return b;
}

void bufpool_put(struct bufpool *pool, void *buf)
{
    if (buf == NULL)
        return;
    pool->in_use--;
    if (pool->idle >= pool->max_idle) {
        free(buf);
        return;
    }
    struct free_buf *b = buf;
    b->next = pool->free_list;
    pool->free_list = b;
    pool->idle++;
}

void bufpool_destroy(struct bufpool *pool)
{
    struct free_buf *b = pool->free_list;
    while (b != NULL) {
        struct free_buf *next = b->next;
        free(b);
        b = next;
    }
    pool->free_list = NULL;
    pool->idle = 0;
}
