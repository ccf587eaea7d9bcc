/* Helpers shared by the unit tests (tests/unit/test_*.c). Each test file is its own program, so
 * everything here is static inline. */
#ifndef GEOPROXY_TEST_SUPPORT_H
#define GEOPROXY_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

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

/* An IPv4 or IPv6 address literal and a port as a socket address in *ss (fails the test if ip is
 * neither). */
static inline const struct sockaddr *sockaddr_of(const char *ip, uint16_t port,
                                                 struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
    } else {
        assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
    }
    return (const struct sockaddr *)ss;
}

#endif
