/*
 * hex.h - lower-case hex of a byte string, as W3C trace context, the export
 * format (docs/formats.md) and webhook sink names write it.  Header-only.
 */
#ifndef SESS_COMMON_HEX_H
#define SESS_COMMON_HEX_H

#include <stddef.h>
#include <stdint.h>

/* "out" gets 2 * "n" digits and a NUL. */
static inline void hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

#endif
