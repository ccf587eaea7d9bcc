/* A free list of fixed-size buffers, one per worker thread (not thread-safe). Buffers are
 * recycled instead of freed, up to a cap on how many idle ones are kept. */
#ifndef GEOPROXY_PROXY_BUFPOOL_H
#define GEOPROXY_PROXY_BUFPOOL_H

#include <stddef.h>

#define RELAY_BUF_SIZE (64 * 1024)

struct bufpool {
    size_t buf_size;
    size_t max_idle; /* idle buffers kept at most */
    size_t idle;     /* buffers on the free list */
    size_t in_use;   /* buffers handed out */
    void *free_list;
};

void bufpool_init(struct bufpool *pool, size_t buf_size, size_t max_idle);

/* Returns a buffer of pool->buf_size bytes, or NULL when memory is exhausted. */
void *bufpool_get(struct bufpool *pool);

/* Gives a buffer back. NULL is a no-op. */
void bufpool_put(struct bufpool *pool, void *buf);

/* Frees the idle buffers. Buffers still in use must have been put back. */
void bufpool_destroy(struct bufpool *pool);

#endif
