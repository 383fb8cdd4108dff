/*
 * fuzz_cookie.c - libFuzzer target for the Cookie-header parser, the
 * session-ID form check and the cross-site request check (lib/cookie.c).
 * The input is split at the first NUL byte: header, then an Origin value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *names[] = {"sessiond", "__Host-sessiond", "a", ""};
    const char *value;
    size_t value_len;
    char *copy = malloc(size + 1);

    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (sess_cookie_find((const char *)data, size, names[i], &value,
                             &value_len) == SESS_OK) {
            /* The value lies inside the header. */
            if (value < (const char *)data || value + value_len > (const char *)data + size)
                abort();
            if (sess_id_check(value, value_len) == SESS_OK && value_len != SESS_ID_LEN)
                abort(); /* an accepted ID is always SESS_ID_LEN characters */
        }
    }
    if (sess_id_check((const char *)data, size) == SESS_OK && size != SESS_ID_LEN)
        abort();
    size_t hlen = strlen(copy);
    const char *origin = hlen < size ? copy + hlen + 1 : NULL;
    const char *allowed[] = {"https://partner.example"};
    volatile bool sink = sess_same_origin_ok(origin, copy, "app.example", allowed, 1);
    (void)sink;
    (void)sess_method_is_safe(copy);
    free(copy);
    return 0;
}
