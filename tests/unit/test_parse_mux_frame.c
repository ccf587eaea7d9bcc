/* The mux frame header (proxy/mux_frame_parse.h). Headers written by mux_frame_header_write are
 * checked against their literal big-endian bytes and parsed back; every shorter prefix of a valid
 * header is NEED_MORE with nothing consumed; each invalid header is INVALID with nothing consumed,
 * and a wrong version is refused from its first byte on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/mux_frame_parse.h"
#include "test_support.h"

/* ---- valid headers: the exact bytes, and back ---- */

static const struct {
    struct mux_frame_header h;
    uint8_t bytes[MUX_FRAME_HEADER_LEN];
} valid[] = {
    /* DATA on stream 1, 5 bytes */
    {{MUX_FRAME_DATA, 0, 1, 5}, {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5}},
    /* a stream opened with a WINDOW_UPDATE carrying SYN */
    {{MUX_FRAME_WINDOW_UPDATE, MUX_FLAG_SYN, 3, 0}, {0, 1, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0}},
    /* every flag, every byte of id and length distinct: the byte order shows */
    {{MUX_FRAME_DATA, MUX_FLAG_SYN | MUX_FLAG_ACK | MUX_FLAG_FIN | MUX_FLAG_RST, 0x01020304,
      0x0a0b0c0d},
     {0, 0, 0, 0x0f, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d}},
    {{MUX_FRAME_WINDOW_UPDATE, MUX_FLAG_ACK | MUX_FLAG_FIN, 0xfffffffe, MUX_WINDOW_INITIAL},
     {0, 1, 0, 6, 0xff, 0xff, 0xff, 0xfe, 0x00, 0x04, 0x00, 0x00}},
    {{MUX_FRAME_PING, MUX_FLAG_SYN, 0, 0xdeadbeef},
     {0, 2, 0, 1, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef}},
    {{MUX_FRAME_PING, MUX_FLAG_ACK, 0, 0}, {0, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0}},
    {{MUX_FRAME_GO_AWAY, 0, 0, MUX_GO_AWAY_INTERNAL_ERROR}, {0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}},
    {{MUX_FRAME_DATA, MUX_FLAG_RST, 7, 0xffffffff},
     {0, 0, 0, 8, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff}},
};

static void test_write_gives_the_literal_bytes(void **state)
{
    for (size_t i = 0; i < N_ELEMS(valid); i++) {
        uint8_t out[MUX_FRAME_HEADER_LEN + 1];
        memset(out, 0xee, sizeof(out));
        mux_frame_header_write(&valid[i].h, out);
        print_message("case %zu\n", i);
        assert_memory_equal(out, valid[i].bytes, MUX_FRAME_HEADER_LEN);
        assert_int_equal(out[MUX_FRAME_HEADER_LEN], 0xee); /* nothing past the header */
    }
}

static void test_parse_round_trip(void **state)
{
    for (size_t i = 0; i < N_ELEMS(valid); i++) {
        /* the header with payload-like bytes behind it: only the header is consumed */
        uint8_t buf[MUX_FRAME_HEADER_LEN + 4];
        memcpy(buf, valid[i].bytes, MUX_FRAME_HEADER_LEN);
        memset(buf + MUX_FRAME_HEADER_LEN, 0xff, 4);
        for (size_t len = MUX_FRAME_HEADER_LEN; len <= sizeof(buf); len++) {
            struct mux_frame_header h;
            memset(&h, 0x55, sizeof(h));
            size_t consumed = 99;
            print_message("case %zu, %zu bytes\n", i, len);
            assert_int_equal(mux_frame_header_parse(buf, len, &h, &consumed), PARSE_DONE);
            assert_int_equal(consumed, MUX_FRAME_HEADER_LEN);
            assert_int_equal(h.type, valid[i].h.type);
            assert_int_equal(h.flags, valid[i].h.flags);
            assert_int_equal(h.stream, valid[i].h.stream);
            assert_int_equal(h.length, valid[i].h.length);
        }
        /* and what parses writes back the same bytes */
        struct mux_frame_header h;
        size_t consumed;
        assert_int_equal(
            mux_frame_header_parse(valid[i].bytes, MUX_FRAME_HEADER_LEN, &h, &consumed),
            PARSE_DONE);
        uint8_t again[MUX_FRAME_HEADER_LEN];
        mux_frame_header_write(&h, again);
        assert_memory_equal(again, valid[i].bytes, MUX_FRAME_HEADER_LEN);
    }
}

static void test_short_input_needs_more(void **state)
{
    for (size_t i = 0; i < N_ELEMS(valid); i++) {
        for (size_t len = 0; len < MUX_FRAME_HEADER_LEN; len++) {
            struct mux_frame_header h;
            size_t consumed = 99;
            print_message("case %zu, %zu bytes\n", i, len);
            assert_int_equal(
                mux_frame_header_parse(len > 0 ? valid[i].bytes : NULL, len, &h, &consumed),
                PARSE_NEED_MORE);
            assert_int_equal(consumed, 0);
        }
    }
}

/* ---- invalid headers ---- */

static const struct {
    const char *what;
    uint8_t bytes[MUX_FRAME_HEADER_LEN];
} invalid[] = {
    {"version 1", {1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
    {"version 0xff", {0xff, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
    {"type 4", {0, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
    {"type 0xff", {0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
    {"flag 0x10", {0, 0, 0, 0x10, 0, 0, 0, 1, 0, 0, 0, 0}},
    {"flag 0x0100", {0, 1, 0x01, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
    {"flag 0x8000 with SYN", {0, 1, 0x80, 0x01, 0, 0, 0, 1, 0, 0, 0, 0}},
    {"PING on stream 1", {0, 2, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0}},
    {"PING on stream 0x01000000", {0, 2, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0}},
    {"GO_AWAY on stream 5", {0, 3, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0}},
    {"DATA on stream 0", {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}},
    {"WINDOW_UPDATE on stream 0", {0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}},
};

static void test_invalid_headers(void **state)
{
    for (size_t i = 0; i < N_ELEMS(invalid); i++) {
        struct mux_frame_header h;
        size_t consumed = 99;
        print_message("%s\n", invalid[i].what);
        assert_int_equal(
            mux_frame_header_parse(invalid[i].bytes, MUX_FRAME_HEADER_LEN, &h, &consumed),
            PARSE_INVALID);
        assert_int_equal(consumed, 0);
        /* no prefix of it is DONE */
        for (size_t len = 0; len < MUX_FRAME_HEADER_LEN; len++) {
            consumed = 99;
            assert_int_not_equal(mux_frame_header_parse(invalid[i].bytes, len, &h, &consumed),
                                 PARSE_DONE);
            assert_int_equal(consumed, 0);
        }
    }
}

/* A wrong version is refused from its first byte: a reader need not wait for 11 more. */
static void test_bad_version_from_one_byte(void **state)
{
    for (unsigned v = 1; v <= 0xff; v++) {
        uint8_t buf[MUX_FRAME_HEADER_LEN] = {(uint8_t)v};
        for (size_t len = 1; len <= MUX_FRAME_HEADER_LEN; len++) {
            struct mux_frame_header h;
            size_t consumed = 99;
            if (mux_frame_header_parse(buf, len, &h, &consumed) != PARSE_INVALID || consumed != 0)
                fail_msg("version %u with %zu bytes is not INVALID", v, len);
        }
    }
    /* version 0 alone is a valid prefix */
    uint8_t zero = 0;
    struct mux_frame_header h;
    size_t consumed = 99;
    assert_int_equal(mux_frame_header_parse(&zero, 1, &h, &consumed), PARSE_NEED_MORE);
    assert_int_equal(consumed, 0);
}

/* Every type and flag combination: exactly the four types and four flags pass, and only with a
 * stream id of the right kind. */
static void test_every_type_and_flag(void **state)
{
    for (unsigned type = 0; type <= 0xff; type++) {
        for (unsigned flags = 0; flags <= 0xffff; flags += (flags < 0x40 ? 1 : 0x3f)) {
            for (uint32_t id = 0; id <= 1; id++) {
                uint8_t buf[MUX_FRAME_HEADER_LEN] = {
                    0, (uint8_t)type, (uint8_t)(flags >> 8), (uint8_t)flags, 0, 0, 0, (uint8_t)id};
                struct mux_frame_header h;
                size_t consumed;
                bool session = type == MUX_FRAME_PING || type == MUX_FRAME_GO_AWAY;
                bool ok = type <= MUX_FRAME_GO_AWAY && flags <= 0xf && session == (id == 0);
                enum parse_result r = mux_frame_header_parse(buf, sizeof(buf), &h, &consumed);
                if (r != (ok ? PARSE_DONE : PARSE_INVALID))
                    fail_msg("type %u flags 0x%x stream %u: got %d", type, flags, (unsigned)id,
                             (int)r);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_gives_the_literal_bytes),
        cmocka_unit_test(test_parse_round_trip),
        cmocka_unit_test(test_short_input_needs_more),
        cmocka_unit_test(test_invalid_headers),
        cmocka_unit_test(test_bad_version_from_one_byte),
        cmocka_unit_test(test_every_type_and_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
