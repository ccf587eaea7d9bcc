/* container_of: from a pointer to a member embedded in a struct back to the struct. */
#ifndef GEOPROXY_PROXY_CONTAINER_OF_H
#define GEOPROXY_PROXY_CONTAINER_OF_H

#include <stddef.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
