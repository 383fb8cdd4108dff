/*
 * hex.h - lower-case hex of a byte string, as W3C trace context, the export
 * format (docs/formats.md) and webhook sink names write it, and the text
 * form of a UUID (event ids, the OTLP service.instance.id).  Header-only.
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

/* The text form of a UUID (RFC 9562 section 4): 36 characters and a NUL. */
static inline void hex_uuid(const uint8_t b[16], char out[37])
{
    char h[33];
    size_t o = 0;
    hex_encode(b, 16, h);
    for (size_t i = 0; i < 32; i++) {
        if (i == 8 || i == 12 || i == 16 || i == 20)
            out[o++] = '-';
        out[o++] = h[i];
    }
    out[o] = '\0';
}

#endif
