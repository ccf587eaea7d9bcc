/* Helpers shared by the table-driven parser tests (tests/unit/test_parse_*.c). Each test file is
 * its own program, so everything here is static inline. */
#ifndef GEOPROXY_TEST_SUPPORT_H
#define GEOPROXY_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Size of the text buffers that describe what a parser produced. */
#define DESC_MAX 2048

static inline void desc_append(char *desc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends printf-formatted text to desc (a DESC_MAX buffer); fails the test if it would not fit. */
static inline void desc_append(char *desc, const char *fmt, ...)
{
    size_t used = strlen(desc);
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(desc + used, DESC_MAX - used, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < DESC_MAX - used);
}

#endif
