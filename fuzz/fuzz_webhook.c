/*
 * fuzz_webhook.c - drives the two parsers of the webhook path with
 * arbitrary bytes: the secret file (src/sessiond/webhook.c) and the
 * outbox record read back before a delivery (src/sessiond/outbox.c).
 * Both must stay inside their input; an accepted secret file has 1-4 keys
 * of 24-64 bytes that sign, and an accepted record has a 36-character id
 * of hex digits and dashes (it becomes a header) and a known type.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event_types.h"
#include "outbox.h"
#include "webhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exact-size heap copies, so ASan sees any read past the end. */
    uint8_t *rec = malloc(size ? size : 1);
    if (rec == NULL)
        return 0;
    memcpy(rec, data, size);

    sessiond_webhook_keys k;
    char err[200];
    if (sessiond_webhook_keys_parse((const char *)rec, size, &k, err,
                                    sizeof err) == 0) {
        if (k.n < 1 || k.n > SESSIOND_WEBHOOK_KEYS_MAX)
            abort();
        for (size_t i = 0; i < k.n; i++)
            if (k.key[i].len < SESSIOND_WEBHOOK_SECRET_MIN ||
                k.key[i].len > SESSIOND_WEBHOOK_SECRET_MAX ||
                k.key[i].kid[0] == '\0')
                abort();
        char sig[512], kids[512];
        if (sessiond_webhook_sign(&k, "id", 1, "{}", 2, sig, sizeof sig, kids,
                                  sizeof kids) != 0 ||
            strncmp(sig, "v1,", 3) != 0)
            abort();
        sessiond_webhook_keys_wipe(&k);
    }

    sessiond_outbox_event ev;
    if (sessiond_outbox_parse(rec, size, &ev) == 0) {
        if (ev.type < 0 || ev.type >= SESSIOND_EV_COUNT ||
            strlen(ev.id) != SESSIOND_EVENT_ID_LEN ||
            strspn(ev.id, "0123456789abcdef-") != SESSIOND_EVENT_ID_LEN ||
            ev.body != (const char *)rec + 2 || ev.body_len != size - 2)
            abort();
    }
    free(rec);
    return 0;
}
