/* Helpers shared by the benchmark's load generator (loadgen.c) and target server (target.c).
 * Both are built as single files by bench/build.sh, so everything here is static inline. */
#ifndef GEOPROXY_BENCH_UTIL_H
#define GEOPROXY_BENCH_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>

/* Parses a whole decimal string into *out when it lies in [min, max]: 0, else -1 with *out
 * untouched. */
static inline int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end = NULL;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* Raises the soft descriptor limit to the hard one (idle-connection runs need thousands).
 * Returns the soft limit now in force, or 0 if it could not be read. */
static inline rlim_t raise_fd_soft_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

#endif
