/* Client pseudonyms: stable for a client within a day, different across days, keys and clients,
 * the same for an IPv4 client however its address is written, and never the address itself;
 * "c-" and the top 48 bits of the keyed hash of day and address in 12 lowercase hex digits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "proxy/pseudonym.h"
#include "proxy/siphash.h"
#include "test_support.h"

static void pseudo(const struct pseudonym_key *k, const char *ip, uint16_t port, uint64_t day,
                   char out[PSEUDONYM_LEN + 1])
{
    struct sockaddr_storage ss;
    pseudonym_of(k, sockaddr_of(ip, port, &ss), day, out);
}

static void test_stable_within_a_day(void **state)
{
    (void)state;
    struct pseudonym_key k;
    char a[PSEUDONYM_LEN + 1], b[PSEUDONYM_LEN + 1], c[PSEUDONYM_LEN + 1];

    assert_int_equal(pseudonym_key_init(&k), 0);
    pseudo(&k, "198.51.100.7", 40000, 20000, a);
    pseudo(&k, "198.51.100.7", 51234, 20000, b); /* another connection, another port */
    pseudo(&k, "::ffff:198.51.100.7", 1, 20000, c);
    assert_string_equal(a, b);
    assert_string_equal(a, c);
    assert_int_equal(strlen(a), PSEUDONYM_LEN);
    assert_memory_equal(a, "c-", 2);
    assert_null(strstr(a, "198"));
}

static void test_differs_by_day_key_and_client(void **state)
{
    (void)state;
    struct pseudonym_key k1, k2;
    char base[PSEUDONYM_LEN + 1], other[PSEUDONYM_LEN + 1];

    assert_int_equal(pseudonym_key_init(&k1), 0);
    assert_int_equal(pseudonym_key_init(&k2), 0);
    pseudo(&k1, "2001:db8::1", 1, 20000, base);
    pseudo(&k1, "2001:db8::1", 1, 20001, other);
    assert_string_not_equal(base, other);
    pseudo(&k2, "2001:db8::1", 1, 20000, other);
    assert_string_not_equal(base, other);
    pseudo(&k1, "2001:db8::2", 1, 20000, other);
    assert_string_not_equal(base, other);
}

static void test_other_family(void **state)
{
    (void)state;
    struct pseudonym_key k;
    struct sockaddr_storage ss;
    char out[PSEUDONYM_LEN + 1];

    assert_int_equal(pseudonym_key_init(&k), 0);
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNIX;
    pseudonym_of(&k, (const struct sockaddr *)&ss, 1, out);
    assert_string_equal(out, "c-unknown");
}

/* Known answer: a fixed key, an IPv4 client on a fixed day; the hash worked out here from the
 * documented input (the day as 8 big-endian bytes, then the 4 address bytes) and printed by
 * printf as the reference. */
static void test_format_known_answer(void **state)
{
    (void)state;
    struct pseudonym_key k;
    for (size_t i = 0; i < sizeof k.secret; i++)
        k.secret[i] = (uint8_t)(0xa0 + i);
    uint64_t day = 20429;
    uint8_t msg[12] = {0, 0, 0, 0, 0, 0, (uint8_t)(day >> 8), (uint8_t)day, 198, 51, 100, 7};
    char want[PSEUDONYM_LEN + 1], got[PSEUDONYM_LEN + 1];
    snprintf(want, sizeof want, "c-%012llx",
             (unsigned long long)(siphash24(k.secret, msg, 12) >> 16));
    pseudo(&k, "198.51.100.7", 443, day, got);
    assert_string_equal(got, want);
    assert_int_equal(strspn(got + 2, "0123456789abcdef"), PSEUDONYM_LEN - 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stable_within_a_day),
        cmocka_unit_test(test_differs_by_day_key_and_client),
        cmocka_unit_test(test_other_family),
        cmocka_unit_test(test_format_known_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
