/* The outcome of a wire-protocol parser (proxy/NAME_parse.c). Parsers are pure functions over the
 * bytes received so far; they report one of these and, on PARSE_DONE only, how many bytes the
 * message took. Shared by every parser; nothing else lives here. */
#ifndef GEOPROXY_PROXY_PARSE_RESULT_H
#define GEOPROXY_PROXY_PARSE_RESULT_H

enum parse_result {
    PARSE_DONE,      /* one complete, valid message; *consumed says how long it was */
    PARSE_NEED_MORE, /* a valid prefix: call again with more bytes; nothing consumed */
    PARSE_INVALID,   /* no number of further bytes can make this valid; nothing consumed */
};

#endif
