/* What the fuzz targets (tests/fuzz/fuzz_*.c) share: CHECK(cond) aborts when a promise of the
 * code under test is broken, so libFuzzer reports it as a crash and keeps the input. */
#ifndef GEOPROXY_TESTS_FUZZ_CHECK_H
#define GEOPROXY_TESTS_FUZZ_CHECK_H

#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
