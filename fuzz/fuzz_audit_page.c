/*
 * fuzz_audit_page.c - libFuzzer target for what sessctl audit reads from a
 * site it does not trust (src/sessctl/audit_html.c, audit_random.c): the
 * form and link extraction over libxml2's HTML parser (bounded arrays, no
 * network, every string NUL-terminated within its field), and the cookie
 * value unwrapping plus the randomness analysis on IDs cut from the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static audit_html h;
    static audit_random r;
    char *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';

    audit_html_extract(copy, size, &h);
    if (h.nforms > 8 || h.nlinks > AUDIT_LINKS_MAX)
        abort();
    for (int i = 0; i < h.nforms; i++)
        if (h.forms[i].nfields > AUDIT_FIELDS_MAX ||
            strlen(h.forms[i].action) >= sizeof h.forms[i].action)
            abort();

    /* Lines of the input as a sample of cookie values. */
    char *ids[64];
    size_t n = 0;
    for (char *line = copy, *next; line && n < 64; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        const char *fmt;
        bool self;
        const char *part = audit_random_part(line, &fmt, &self);
        if (!fmt || strlen(part) > 4096)
            abort();
        if (*part && (ids[n] = strdup(part)) != NULL)
            n++;
    }
    audit_random_analyse(ids, n, (time_t)1764720000, &r);
    if (r.n != n || r.npos > AUDIT_POS_MAX || r.nbits_pos > AUDIT_POS_MAX * 6)
        abort();
    char why[512];
    (void)audit_random_verdict(&r, why, sizeof why);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(copy);
    return 0;
}
