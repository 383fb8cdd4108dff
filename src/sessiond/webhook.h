/*
 * webhook.h - lifecycle events to webhooks (docs/observability.md,
 * "Webhooks"): signed the Standard Webhooks way, sent by libcurl on a
 * background thread from the durable outbox (outbox.h), retried with
 * exponential backoff and jitter until taken.
 */
#ifndef SESSIOND_WEBHOOK_H
#define SESSIOND_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define SESSIOND_WEBHOOK_KEYS_MAX 4
#define SESSIOND_WEBHOOK_KID_MAX 64
#define SESSIOND_WEBHOOK_SECRET_MIN 24     /* bytes, as Standard Webhooks asks */
#define SESSIOND_WEBHOOK_SECRET_MAX 64
#define SESSIOND_WEBHOOK_SECRET_FILE_MAX 4096

/* The signing keys of webhook_secret_file.  Secret: wipe with
 * sessiond_webhook_keys_wipe(). */
typedef struct sessiond_webhook_keys {
    size_t n;
    struct {
        char kid[SESSIOND_WEBHOOK_KID_MAX + 1];
        uint8_t secret[SESSIOND_WEBHOOK_SECRET_MAX];
        size_t len;
    } key[SESSIOND_WEBHOOK_KEYS_MAX];
} sessiond_webhook_keys;

/*
 * Parse the text of a secret file ("len" bytes, at most
 * SESSIOND_WEBHOOK_SECRET_FILE_MAX): one key per line, "KEYID whsec_BASE64"
 * (KEYID of [A-Za-z0-9._-], 1-64 characters; the secret 24-64 bytes once
 * decoded), blank lines and lines starting with '#' ignored, at least one
 * and at most SESSIOND_WEBHOOK_KEYS_MAX keys, key ids distinct.  0, or -1
 * with "err" naming the line (never echoing a secret).
 */
int sessiond_webhook_keys_parse(const char *text, size_t len,
                                sessiond_webhook_keys *out, char *err,
                                size_t errlen);
void sessiond_webhook_keys_wipe(sessiond_webhook_keys *k);

/*
 * The webhook-signature header value for message "id" sent at Unix time
 * "ts" with body "body": "v1,<base64 HMAC-SHA256(secret, id.ts.body)>"
 * per key, space-separated, into "out"; the key ids, space-separated in
 * the same order, into "kids".  0, or -1 (buffer too small, MAC failure).
 */
int sessiond_webhook_sign(const sessiond_webhook_keys *k, const char *id,
                          uint64_t ts, const char *body, size_t len,
                          char *out, size_t cap, char *kids, size_t kids_cap);

typedef struct sessiond_webhooks sessiond_webhooks;

/*
 * Read the secret file, open the outbox and start the sender thread for
 * the webhooks of "cfg" (none: *out NULL, nothing started).  Registers
 * the lifecycle sink (events.h) and the metrics.  0, or -1 with "err".
 * Call curl_global_init() before, while one thread runs.
 */
int sessiond_webhooks_start(const sessiond_events_config *cfg,
                            sessiond_webhooks **out, char *err, size_t errlen);

/* Stop the sender (an attempt in flight is abandoned and retried on the
 * next start: the outbox keeps it) and close the outbox. */
void sessiond_webhooks_stop(sessiond_webhooks *w);

/* SIGHUP: read the secret file again; the next attempt signs with the new
 * keys.  0, or -1 with "err" set (the current keys stay).  NULL: 0. */
int sessiond_webhooks_reload(sessiond_webhooks *w, char *err, size_t errlen);

#endif /* SESSIOND_WEBHOOK_H */
