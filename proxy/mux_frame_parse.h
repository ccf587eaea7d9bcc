/* The framing of a mux session (proxy/mux.h): many streams over one TLS connection between an
 * entry and an exit. The frame layout and its rules are those of yamux's specification
 * (hashicorp/yamux, spec.md), which libp2p and others speak: a 12-byte header, then for DATA
 * frames 'length' bytes of the stream.
 *
 *   version (1) = 0 | type (1) | flags (2) | stream id (4) | length (4), big-endian
 *
 * type:  DATA (payload follows), WINDOW_UPDATE (length = credit added to the sender's window),
 *        PING (length = opaque value), GO_AWAY (length = reason code; stream id 0).
 * flags: SYN opens a stream (first frame of the opener), ACK answers it, FIN ends the sender's
 *        direction (half-close), RST cuts the stream both ways.
 * Streams opened by the client (the entry) have odd ids; each window starts at MUX_WINDOW_INITIAL
 * bytes.
 *
 * Refusal: the accepting side's first frame on a stream it took says ACK; a RST that comes before
 * any ACK refuses the stream (yamux's own meaning): the peer did not take it (it said GO_AWAY, is
 * at its stream limit, or its owner declined), so nothing there read its bytes and the opener may
 * open it again elsewhere. Every geoproxy exit refuses so. Not a flag bit of its own: an older
 * peer's parser (below) finds an unknown flag malformed and would end the whole session.
 *
 * Pure functions over bytes, no allocation. */
#ifndef GEOPROXY_PROXY_MUX_FRAME_PARSE_H
#define GEOPROXY_PROXY_MUX_FRAME_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/parse_result.h"

#define MUX_FRAME_HEADER_LEN 12
#define MUX_WINDOW_INITIAL (256u * 1024u)

enum mux_frame_type {
    MUX_FRAME_DATA = 0,
    MUX_FRAME_WINDOW_UPDATE = 1,
    MUX_FRAME_PING = 2,
    MUX_FRAME_GO_AWAY = 3,
};

enum mux_frame_flag {
    MUX_FLAG_SYN = 0x1,
    MUX_FLAG_ACK = 0x2,
    MUX_FLAG_FIN = 0x4,
    MUX_FLAG_RST = 0x8,
};

/* GO_AWAY reason codes. */
enum mux_go_away {
    MUX_GO_AWAY_NORMAL = 0,
    MUX_GO_AWAY_PROTOCOL_ERROR = 1,
    MUX_GO_AWAY_INTERNAL_ERROR = 2,
};

struct mux_frame_header {
    uint8_t type;    /* enum mux_frame_type */
    uint16_t flags;  /* enum mux_frame_flag bits */
    uint32_t stream; /* 0: the session itself (PING, GO_AWAY) */
    uint32_t length; /* DATA: payload bytes that follow; else the frame's value */
};

/* Writes the 12-byte header of h into out (which has room for MUX_FRAME_HEADER_LEN). */
void mux_frame_header_write(const struct mux_frame_header *h, uint8_t *out);

/* Reads one header: PARSE_DONE with *consumed = 12, PARSE_NEED_MORE for fewer bytes, or
 * PARSE_INVALID (unknown version, type or flags; a stream frame on id 0 or a session frame on a
 * stream id). */
enum parse_result mux_frame_header_parse(const uint8_t *buf, size_t len, struct mux_frame_header *h,
                                         size_t *consumed);

#endif
