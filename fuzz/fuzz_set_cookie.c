/*
 * fuzz_set_cookie.c - libFuzzer target for the Set-Cookie parser and the
 * cookie-date algorithm (lib/set_cookie.c): no crash, no read outside the
 * input (the input is copied to an exact-size buffer without a NUL), and
 * every accepted result keeps its documented bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sess_set_cookie c;
    int64_t t;
    char *copy = malloc(size ? size : 1);

    if (!copy)
        return 0;
    memcpy(copy, data, size);
    if (sess_set_cookie_parse(copy, size, &c, NULL) == SESS_OK) {
        if (strlen(c.name) + strlen(c.value) > SESS_SET_COOKIE_NAME_VALUE_MAX ||
            strlen(c.path) > SESS_SET_COOKIE_ATTR_MAX || (c.has_path && c.path[0] != '/') ||
            (c.name[0] == '\0' && c.value[0] == '\0'))
            abort();
    }
    if (sess_cookie_date_parse(copy, size, &t) == SESS_OK && t < -11644473600LL)
        abort(); /* before 1601 is refused by the algorithm */
    free(copy);
    return 0;
}
