/*
 * event_types.h - the names of the lifecycle event types
 * (docs/observability.md, "Lifecycle events") and the parser of a list of
 * them, shared by the configuration ([events] types, the filter after a
 * webhook_url) and the event stream.  Header-only so that the
 * configuration module links without the event modules.
 */
#ifndef SESSIOND_EVENT_TYPES_H
#define SESSIOND_EVENT_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum sessiond_event_type {
    SESSIOND_EV_CREATED = 0,
    SESSIOND_EV_ROTATED,
    SESSIOND_EV_REGENERATED,
    SESSIOND_EV_ELEVATED,
    SESSIOND_EV_DESTROYED,
    SESSIOND_EV_EXPIRED,
    SESSIOND_EV_EVICTED,
    SESSIOND_EV_REVOKED,
    SESSIOND_EV_TOKEN_REUSE,
    SESSIOND_EV_BINDING_MISMATCH,
    SESSIOND_EV_COUNT
} sessiond_event_type;

#define SESSIOND_EV_ALL ((UINT32_C(1) << SESSIOND_EV_COUNT) - 1u)

static const char *const sessiond_event_type_names[SESSIOND_EV_COUNT] = {
    [SESSIOND_EV_CREATED] = "created",
    [SESSIOND_EV_ROTATED] = "rotated",
    [SESSIOND_EV_REGENERATED] = "regenerated",
    [SESSIOND_EV_ELEVATED] = "elevated",
    [SESSIOND_EV_DESTROYED] = "destroyed",
    [SESSIOND_EV_EXPIRED] = "expired",
    [SESSIOND_EV_EVICTED] = "evicted",
    [SESSIOND_EV_REVOKED] = "revoked",
    [SESSIOND_EV_TOKEN_REUSE] = "token_reuse",
    [SESSIOND_EV_BINDING_MISMATCH] = "binding_mismatch",
};

/* The type named by "s" ("len" bytes), or -1. */
static inline int sessiond_event_type_of(const char *s, size_t len)
{
    for (int i = 0; i < SESSIOND_EV_COUNT; i++)
        if (strlen(sessiond_event_type_names[i]) == len &&
            memcmp(sessiond_event_type_names[i], s, len) == 0)
            return i;
    return -1;
}

/*
 * A comma- or space-separated list of type names ("len" bytes) into a bit
 * mask; an empty list is every type.  False on an unknown name, whose
 * first bytes (at most 31) go to "bad".
 */
static inline bool sessiond_event_types_parse(const char *s, size_t len,
                                              uint32_t *mask, char bad[32])
{
    uint32_t m = 0;
    size_t i = 0;
    bool any = false;
    while (i < len) {
        while (i < len && (s[i] == ',' || s[i] == ' ' || s[i] == '\t'))
            i++;
        size_t j = i;
        while (j < len && s[j] != ',' && s[j] != ' ' && s[j] != '\t')
            j++;
        if (j == i)
            break;
        int t = sessiond_event_type_of(s + i, j - i);
        if (t < 0) {
            size_t n = j - i < 31 ? j - i : 31;
            memcpy(bad, s + i, n);
            bad[n] = '\0';
            return false;
        }
        m |= UINT32_C(1) << t;
        any = true;
        i = j;
    }
    *mask = any ? m : SESSIOND_EV_ALL;
    return true;
}

#endif /* SESSIOND_EVENT_TYPES_H */
