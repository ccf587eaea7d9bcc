#include "proxy/mux_frame_parse.h"

#include <stdbool.h>

#define MUX_VERSION 0
#define MUX_FLAGS_ALL (MUX_FLAG_SYN | MUX_FLAG_ACK | MUX_FLAG_FIN | MUX_FLAG_RST)

static void put_u16(uint8_t *out, uint16_t v)
{
    out[0] = (uint8_t)(v >> 8);
    out[1] = (uint8_t)v;
}

static void put_u32(uint8_t *out, uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *in)
{
    return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}

void mux_frame_header_write(const struct mux_frame_header *h, uint8_t *out)
{
    out[0] = MUX_VERSION;
    out[1] = h->type;
    put_u16(out + 2, h->flags);
    put_u32(out + 4, h->stream);
    put_u32(out + 8, h->length);
}

enum parse_result mux_frame_header_parse(const uint8_t *buf, size_t len, struct mux_frame_header *h,
                                         size_t *consumed)
{
    *consumed = 0;
    if (len < MUX_FRAME_HEADER_LEN)
        return len > 0 && buf[0] != MUX_VERSION ? PARSE_INVALID : PARSE_NEED_MORE;
    h->type = buf[1];
    h->flags = (uint16_t)(buf[2] << 8 | buf[3]);
    h->stream = get_u32(buf + 4);
    h->length = get_u32(buf + 8);
    if (buf[0] != MUX_VERSION || h->type > MUX_FRAME_GO_AWAY || (h->flags & ~MUX_FLAGS_ALL) != 0)
        return PARSE_INVALID;
    bool session_frame = h->type == MUX_FRAME_PING || h->type == MUX_FRAME_GO_AWAY;
    if (session_frame != (h->stream == 0))
        return PARSE_INVALID;
    *consumed = MUX_FRAME_HEADER_LEN;
    return PARSE_DONE;
}
