/* SipHash-2-4 against the reference vectors of the paper (key 00..0f, message 00 01 02 ...), and
 * the key's effect. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>

#include "proxy/siphash.h"

static void test_reference_vectors(void **state)
{
    (void)state;
    uint8_t key[SIPHASH_KEY_BYTES], msg[16];
    for (int i = 0; i < 16; i++)
        key[i] = msg[i] = (uint8_t)i;
    assert_true(siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ULL);
    assert_true(siphash24(key, msg, 1) == 0x74f839c593dc67fdULL);
    assert_true(siphash24(key, msg, 15) == 0xa129ca6149be45e5ULL);
}

static void test_another_key_another_hash(void **state)
{
    (void)state;
    uint8_t key[SIPHASH_KEY_BYTES] = {0}, other[SIPHASH_KEY_BYTES] = {1};
    assert_true(siphash24(key, "a.test", 6) != siphash24(other, "a.test", 6));
    assert_true(siphash24(key, "a.test", 6) != siphash24(key, "b.test", 6));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_vectors),
        cmocka_unit_test(test_another_key_another_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
