/*
 * fuzz_traceparent.c - drives the W3C traceparent and tracestate parsers
 * (src/sessiond/trace.c) with arbitrary bytes: no read past the input, and
 * an accepted traceparent re-formats to exactly the bytes it came from
 * (lowercase hex, non-zero ids) for version 00.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"
#include "../common/hex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size heap copy, so ASan sees any read past the end. */
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    uint8_t tid[16], pid[8], fl;
    if (sessiond_traceparent_parse(s, size, tid, pid, &fl)) {
        char th[33], ph[17];
        hex_encode(tid, 16, th);
        hex_encode(pid, 8, ph);
        if (memcmp(s + 3, th, 32) != 0 || memcmp(s + 36, ph, 16) != 0)
            abort();
        if (strspn(th, "0") == 32 || strspn(ph, "0") == 16)
            abort();
        if (s[0] == '0' && s[1] == '0' && size != SESSIOND_TRACEPARENT_LEN)
            abort();
    }
    (void)sessiond_tracestate_valid(s, size);
    /* The request path: NUL-terminated header values. */
    sessiond_trace t;
    sessiond_trace_begin(&t, s, 1, s);
    if (strlen(t.trace_hex) != 32 || strlen(t.span_hex) != 16)
        abort();
    sessiond_trace_end();
    free(s);
    return 0;
}
