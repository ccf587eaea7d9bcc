/* Hexadecimal digits: their values for the small text decoders (JSON \uXXXX, URL %XX), and the
 * digit for a value for the encoders. */
#ifndef GEOPROXY_PROXY_HEX_H
#define GEOPROXY_PROXY_HEX_H

/* 0..15, or -1 when c is not a hexadecimal digit. */
static inline int hex_digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The lowercase digit for the low four bits of v. */
static inline char hex_digit(unsigned v)
{
    return "0123456789abcdef"[v & 0xf];
}

#endif
