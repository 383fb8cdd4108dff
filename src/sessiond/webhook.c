/*
 * webhook.c - lifecycle events to webhooks.
 *
 * Enqueue.  The lifecycle sink (events.h) runs on the thread that raised
 * the event: it applies [events] types, appends the event to the durable
 * outbox (outbox.c) in one committed transaction and wakes the sender.
 * Events no webhook wants are not stored.
 *
 * Delivery.  One sender thread walks the webhooks in turn.  Each webhook
 * has a cursor in the outbox (the last sequence it took) and takes events
 * strictly in outbox order: the next one is sent only once the previous
 * one was answered 2xx, so events reach a receiver in the order they were
 * raised - per session and overall - and a receiver that is down holds
 * its own queue only.  Events outside a webhook's own filter just move its
 * cursor.  A failed attempt (no answer within webhook_timeout_ms, or any
 * status but 2xx; redirects are not followed) is retried after
 * retry_min_ms doubled per failure up to retry_max_ms, each delay drawn
 * between its half and its whole (jitter, so that many senders that
 * failed together do not retry together).  An event leaves the outbox
 * once every webhook took it: at least once, never lost to an outage or a
 * restart; a receiver may see an event twice (a crash between its 2xx and
 * the cursor's commit) and de-duplicates by webhook-id.
 *
 * Signing (Standard Webhooks, https://www.standardwebhooks.com/): headers
 * webhook-id (the event id, the same on every attempt), webhook-timestamp
 * (Unix seconds of the attempt) and webhook-signature ("v1,<base64
 * HMAC-SHA256 over id.timestamp.body>", one per key, space-separated),
 * plus webhook-key-id naming those keys in order.  HMAC through OpenSSL's
 * EVP_MAC.  The receiver rejects old timestamps (replay) and compares in
 * constant time.
 *
 * Never logged: URLs beyond scheme and host (a URL may hold the
 * receiver's token), secrets, bodies (they hold user ids).
 */
#include "webhook.h"
#include "../common/clock.h"
#include "../common/hex.h"
#include "event_types.h"
#include "events.h"
#include "outbox.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define BATCH_PER_PASS 256      /* events one webhook takes before the next */
#define IDLE_WAIT_MS 1000       /* longest sleep: the outbox is looked at */
#define SIG_MAX ((SESSIOND_WEBHOOK_KEYS_MAX) * 48)

typedef struct sink {
    char url[SESSIOND_WEBHOOK_URL_MAX];
    char where[160];            /* "webhook N (scheme://host)" for logs */
    char id[SESSIOND_OUTBOX_SINK_ID_LEN + 1];
    uint32_t types;
    uint64_t cursor;
    unsigned attempts;          /* failures of the event at the head */
    uint64_t next_try_ms;       /* monotonic */
    CURL *curl;
    atomic_uint_fast64_t delivered, failures;
} sink;

struct sessiond_webhooks {
    sessiond_outbox *ob;
    sessiond_webhook_keys keys;     /* under keys_lock (SIGHUP swaps them) */
    pthread_mutex_t keys_lock;
    char secret_file[SESSIOND_PATH_MAX];
    sink sinks[SESSIOND_WEBHOOKS_MAX];
    const char *sink_ids[SESSIOND_WEBHOOKS_MAX];
    size_t n;
    uint32_t wanted;            /* [events] types & the union of the sinks' */
    uint32_t timeout_ms, retry_min_ms, retry_max_ms;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool kick;                  /* an event was put since the last look */
    atomic_bool stop;
    atomic_bool full;           /* the last put found the outbox full */
    atomic_uint_fast64_t dropped_full, dropped_error, dropped_damaged;
    atomic_uint_fast64_t pending;
};

/* ---- the secret file -------------------------------------------------- */

void sessiond_webhook_keys_wipe(sessiond_webhook_keys *k)
{
    OPENSSL_cleanse(k, sizeof *k);
}

static bool kid_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* Base64 (standard alphabet, padded) of "n" bytes into "out"; its length,
 * or -1 when malformed or not 24-64 bytes. */
static int b64_secret(const char *s, size_t n, uint8_t *out)
{
    uint8_t tmp[SESSIOND_WEBHOOK_SECRET_MAX + 3];
    size_t pad = 0;
    if (n == 0 || n % 4 != 0 || n > 4 * ((SESSIOND_WEBHOOK_SECRET_MAX + 2) / 3))
        return -1;
    while (pad < 2 && s[n - 1 - pad] == '=')
        pad++;
    int got = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
    if (got < 0 || (size_t)got < pad) {
        OPENSSL_cleanse(tmp, sizeof tmp);
        return -1;
    }
    size_t len = (size_t)got - pad;
    if (len < SESSIOND_WEBHOOK_SECRET_MIN || len > SESSIOND_WEBHOOK_SECRET_MAX) {
        OPENSSL_cleanse(tmp, sizeof tmp);
        return -1;
    }
    memcpy(out, tmp, len);
    OPENSSL_cleanse(tmp, sizeof tmp);
    return (int)len;
}

int sessiond_webhook_keys_parse(const char *text, size_t len,
                                sessiond_webhook_keys *out, char *err,
                                size_t errlen)
{
    size_t line = 0, i = 0;
    memset(out, 0, sizeof *out);
    if (len > SESSIOND_WEBHOOK_SECRET_FILE_MAX) {
        snprintf(err, errlen, "longer than %d bytes",
                 SESSIOND_WEBHOOK_SECRET_FILE_MAX);
        return -1;
    }
    while (i < len) {
        size_t end = i;
        while (end < len && text[end] != '\n')
            end++;
        size_t e = end;
        line++;
        if (e > i && text[e - 1] == '\r')
            e--;
        const char *p = text + i;
        size_t n = e - i;
        i = end + 1;
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == 0 || p[0] == '#')
            continue;
        if (memchr(p, '\0', n) != NULL) {
            snprintf(err, errlen, "line %zu: NUL byte", line);
            goto fail;
        }
        size_t k = 0;
        while (k < n && kid_char(p[k]))
            k++;
        if (k == 0 || k > SESSIOND_WEBHOOK_KID_MAX || k == n ||
            (p[k] != ' ' && p[k] != '\t')) {
            snprintf(err, errlen, "line %zu: expected \"KEYID whsec_BASE64\" "
                     "(a key id of 1-%d letters, digits, '.', '_' or '-')",
                     line, SESSIOND_WEBHOOK_KID_MAX);
            goto fail;
        }
        size_t s = k;
        while (s < n && (p[s] == ' ' || p[s] == '\t'))
            s++;
        if (n - s < 6 || memcmp(p + s, "whsec_", 6) != 0) {
            snprintf(err, errlen, "line %zu: the secret must start with "
                     "whsec_", line);
            goto fail;
        }
        if (out->n == SESSIOND_WEBHOOK_KEYS_MAX) {
            snprintf(err, errlen, "line %zu: more than %d keys", line,
                     SESSIOND_WEBHOOK_KEYS_MAX);
            goto fail;
        }
        for (size_t j = 0; j < out->n; j++)
            if (strlen(out->key[j].kid) == k &&
                memcmp(out->key[j].kid, p, k) == 0) {
                snprintf(err, errlen, "line %zu: key id used twice", line);
                goto fail;
            }
        int got = b64_secret(p + s + 6, n - s - 6, out->key[out->n].secret);
        if (got < 0) {
            snprintf(err, errlen, "line %zu: the secret after whsec_ must be "
                     "base64 of %d-%d bytes", line, SESSIOND_WEBHOOK_SECRET_MIN,
                     SESSIOND_WEBHOOK_SECRET_MAX);
            goto fail;
        }
        memcpy(out->key[out->n].kid, p, k);
        out->key[out->n].kid[k] = '\0';
        out->key[out->n].len = (size_t)got;
        out->n++;
    }
    if (out->n == 0) {
        snprintf(err, errlen, "no key (expected \"KEYID whsec_BASE64\" lines)");
        goto fail;
    }
    return 0;
fail:
    sessiond_webhook_keys_wipe(out);
    return -1;
}

/* Read the secret file: a regular file, not a link, mode 0600 or
 * stricter (it is a key), at most SESSIOND_WEBHOOK_SECRET_FILE_MAX. */
static int read_keys(const char *path, sessiond_webhook_keys *k, char *err,
                     size_t errlen)
{
    char buf[SESSIOND_WEBHOOK_SECRET_FILE_MAX + 1], why[160];
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, errlen, "events.webhook_secret_file: cannot open %s: %s",
                 path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
        snprintf(err, errlen, "events.webhook_secret_file: %s must be a "
                 "regular file readable by its owner only (chmod 600)", path);
        close(fd);
        return -1;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == sizeof buf)
            break;
    }
    close(fd);
    int rc = sessiond_webhook_keys_parse(buf, n, k, why, sizeof why);
    OPENSSL_cleanse(buf, sizeof buf);
    if (rc != 0)
        snprintf(err, errlen, "events.webhook_secret_file: %s: %s", path, why);
    return rc;
}

/* ---- signing ------------------------------------------------------------ */

static int hmac_sha256(const uint8_t *key, size_t klen, const char *const *parts,
                       const size_t *lens, size_t n, uint8_t out[32])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_end()};
    size_t got = 0;
    int ok = ctx != NULL && EVP_MAC_init(ctx, key, klen, params) == 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_MAC_update(ctx, (const unsigned char *)parts[i], lens[i]) == 1;
    ok = ok && EVP_MAC_final(ctx, out, &got, 32) == 1 && got == 32;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok ? 0 : -1;
}

int sessiond_webhook_sign(const sessiond_webhook_keys *k, const char *id,
                          uint64_t ts, const char *body, size_t len,
                          char *out, size_t cap, char *kids, size_t kids_cap)
{
    char tsd[24];
    int tl = snprintf(tsd, sizeof tsd, "%llu", (unsigned long long)ts);
    const char *parts[5] = {id, ".", tsd, ".", body};
    size_t lens[5] = {strlen(id), 1, (size_t)tl, 1, len};
    size_t o = 0, ko = 0;

    if (cap == 0 || kids_cap == 0)
        return -1;
    out[0] = kids[0] = '\0';
    for (size_t i = 0; i < k->n; i++) {
        uint8_t mac[32];
        char b64[48];
        if (hmac_sha256(k->key[i].secret, k->key[i].len, parts, lens, 5, mac) != 0)
            return -1;
        EVP_EncodeBlock((unsigned char *)b64, mac, sizeof mac);
        OPENSSL_cleanse(mac, sizeof mac);
        int w = snprintf(out + o, cap - o, "%sv1,%s", i ? " " : "", b64);
        int kw = snprintf(kids + ko, kids_cap - ko, "%s%s", i ? " " : "",
                          k->key[i].kid);
        if (w < 0 || (size_t)w >= cap - o || kw < 0 || (size_t)kw >= kids_cap - ko)
            return -1;
        o += (size_t)w;
        ko += (size_t)kw;
    }
    return 0;
}

/* ---- delivery ------------------------------------------------------------- */

/* Delay before attempt "attempts"+1: min(max, min * 2^(attempts-1)),
 * drawn uniformly between its half and its whole. */
static uint64_t backoff_ms(const sessiond_webhooks *w, unsigned attempts)
{
    uint64_t d = w->retry_min_ms;
    for (unsigned i = 1; i < attempts && d < w->retry_max_ms; i++)
        d *= 2;
    if (d > w->retry_max_ms)
        d = w->retry_max_ms;
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
        r = (uint32_t)clock_mono_ms();
    uint64_t half = d / 2;
    return half + (d - half == 0 ? 0 : r % (d - half + 1));
}

static size_t discard(char *p, size_t size, size_t n, void *user)
{
    (void)p;
    (void)user;
    return size * n;
}

/* Abandon a transfer when the daemon stops. */
static int stop_check(void *user, curl_off_t a, curl_off_t b, curl_off_t c,
                      curl_off_t d)
{
    (void)a;
    (void)b;
    (void)c;
    (void)d;
    return atomic_load(&((sessiond_webhooks *)user)->stop) ? 1 : 0;
}

/* POST one event to "s": its HTTP status, or 0 when there was none. */
static long post(sessiond_webhooks *w, sink *s, const sessiond_outbox_event *ev)
{
    char sig[SIG_MAX], kids[SESSIOND_WEBHOOK_KEYS_MAX * (SESSIOND_WEBHOOK_KID_MAX + 1)];
    char h_id[64], h_ts[48], h_sig[SIG_MAX + 32], h_kid[sizeof kids + 32];
    uint64_t ts = (uint64_t)time(NULL);
    long status = 0;

    pthread_mutex_lock(&w->keys_lock);
    int signed_ok = sessiond_webhook_sign(&w->keys, ev->id, ts, ev->body,
                                          ev->body_len, sig, sizeof sig, kids,
                                          sizeof kids);
    pthread_mutex_unlock(&w->keys_lock);
    if (signed_ok != 0)
        return 0;
    snprintf(h_id, sizeof h_id, "webhook-id: %s", ev->id);
    snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %llu", (unsigned long long)ts);
    snprintf(h_sig, sizeof h_sig, "webhook-signature: %s", sig);
    snprintf(h_kid, sizeof h_kid, "webhook-key-id: %s", kids);
    struct curl_slist *hdr = NULL, *t;
    const char *const lines[] = {"Content-Type: application/json", h_id, h_ts,
                                 h_sig, h_kid, "Expect:"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        t = curl_slist_append(hdr, lines[i]);
        if (t == NULL) {
            curl_slist_free_all(hdr);
            return 0;
        }
        hdr = t;
    }
    CURL *c = s->curl;
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, ev->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)ev->body_len);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdr);
    return status;
}

/* Send "s" what it can take now, up to BATCH_PER_PASS events; on a
 * failure set its next attempt and return. */
static void serve_sink(sessiond_webhooks *w, sink *s, uint64_t now)
{
    for (int i = 0; i < BATCH_PER_PASS && !atomic_load(&w->stop); i++) {
        uint64_t seq;
        uint8_t *rec = NULL;
        size_t len = 0;
        int r = sessiond_outbox_next(w->ob, s->cursor, &seq, &rec, &len);
        if (r != 0)
            return;
        sessiond_outbox_event ev;
        bool skip = false;
        if (sessiond_outbox_parse(rec, len, &ev) != 0) {
            /* Never sent: a damaged record could carry anything. */
            atomic_fetch_add(&w->dropped_damaged, 1);
            sessiond_log(SESSIOND_LOG_ERROR, "events outbox: record %llu is "
                         "damaged; skipped", (unsigned long long)seq);
            skip = true;
        } else if (!(s->types & (UINT32_C(1) << ev.type))) {
            skip = true;
        }
        if (!skip) {
            long status = post(w, s, &ev);
            if (status < 200 || status > 299) {
                atomic_fetch_add(&s->failures, 1);
                s->attempts++;
                uint64_t d = backoff_ms(w, s->attempts);
                s->next_try_ms = now + d;
                /* One line when a webhook starts failing, then one per
                 * tenth attempt: an outage does not flood the log. */
                if (s->attempts == 1 || s->attempts % 10 == 0) {
                    if (status == 0)
                        sessiond_log(SESSIOND_LOG_WARN, "%s: delivery failed "
                                     "(no answer), attempt %u; retrying in "
                                     "%llu ms", s->where, s->attempts,
                                     (unsigned long long)d);
                    else
                        sessiond_log(SESSIOND_LOG_WARN, "%s: delivery failed "
                                     "(HTTP %ld), attempt %u; retrying in "
                                     "%llu ms", s->where, status, s->attempts,
                                     (unsigned long long)d);
                }
                free(rec);
                return;
            }
            if (s->attempts > 0)
                sessiond_log(SESSIOND_LOG_INFO, "%s: delivering again after "
                             "%u failed attempts", s->where, s->attempts);
            s->attempts = 0;
            atomic_fetch_add(&s->delivered, 1);
        }
        free(rec);
        s->cursor = seq;
        if (sessiond_outbox_ack(w->ob, s->id, seq, w->sink_ids, w->n) != 0)
            sessiond_log(SESSIOND_LOG_WARN, "%s: cannot record delivery in "
                         "the outbox (it may be sent again)", s->where);
    }
}

static void *sender_main(void *arg)
{
    sessiond_webhooks *w = arg;
    while (!atomic_load(&w->stop)) {
        uint64_t now = clock_mono_ms(), wake = now + IDLE_WAIT_MS;
        pthread_mutex_lock(&w->lock);
        w->kick = false;
        pthread_mutex_unlock(&w->lock);
        for (size_t i = 0; i < w->n && !atomic_load(&w->stop); i++) {
            sink *s = &w->sinks[i];
            if (s->next_try_ms <= now)
                serve_sink(w, s, clock_mono_ms());
            if (s->next_try_ms > now && s->next_try_ms < wake)
                wake = s->next_try_ms;
        }
        sessiond_outbox_sync(w->ob);
        atomic_store(&w->pending, sessiond_outbox_count(w->ob));
        pthread_mutex_lock(&w->lock);
        if (!w->kick && !atomic_load(&w->stop)) {
            uint64_t left = wake > clock_mono_ms() ? wake - clock_mono_ms() : 0;
            struct timespec dl;
            clock_gettime(CLOCK_MONOTONIC, &dl);
            dl.tv_sec += (time_t)(left / 1000);
            dl.tv_nsec += (long)(left % 1000) * 1000000L;
            if (dl.tv_nsec >= 1000000000L) {
                dl.tv_sec++;
                dl.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&w->cond, &w->lock, &dl);
        }
        pthread_mutex_unlock(&w->lock);
    }
    return NULL;
}

/* ---- enqueue (any thread) -------------------------------------------------- */

static void enqueue(void *user, int type, const char *id, const char *body,
                    size_t len)
{
    sessiond_webhooks *w = user;
    (void)id;
    if (type < 0 || type >= SESSIOND_EV_COUNT ||
        !(w->wanted & (UINT32_C(1) << type)))
        return;
    sessiond_outbox_put_rc rc = sessiond_outbox_put(w->ob, type, body, len);
    if (rc == SESSIOND_OUTBOX_STORED) {
        if (atomic_exchange(&w->full, false))
            sessiond_log(SESSIOND_LOG_WARN, "events outbox has room again; "
                         "%llu events were dropped while it was full",
                         (unsigned long long)atomic_load(&w->dropped_full));
        pthread_mutex_lock(&w->lock);
        w->kick = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        return;
    }
    if (rc == SESSIOND_OUTBOX_FULL) {
        atomic_fetch_add(&w->dropped_full, 1);
        if (!atomic_exchange(&w->full, true))
            sessiond_log(SESSIOND_LOG_ERROR, "events outbox full (events."
                         "outbox_max_events, or its disk): lifecycle events "
                         "are dropped until the webhooks catch up "
                         "(sessiond_events_dropped_total)");
        return;
    }
    atomic_fetch_add(&w->dropped_error, 1);
    sessiond_log(SESSIOND_LOG_ERROR, "events outbox: cannot store a %s event; "
                 "dropped", sessiond_event_type_names[type]);
}

/* ---- metrics ------------------------------------------------------------- */

static sessiond_webhooks *metrics_of;

static size_t metrics_text(char *buf, size_t cap)
{
    sessiond_webhooks *w = metrics_of;
    size_t o = 0;
    int n;
    if (w == NULL || cap == 0)
        return 0;
#define PUT(...)                                                         \
    do {                                                                 \
        n = snprintf(buf + o, cap - o, __VA_ARGS__);                     \
        if (n < 0 || (size_t)n >= cap - o)                               \
            return o;                                                    \
        o += (size_t)n;                                                  \
    } while (0)
    PUT("# HELP sessiond_events_outbox_pending Lifecycle events in the "
        "outbox that some webhook has not taken yet.\n"
        "# TYPE sessiond_events_outbox_pending gauge\n"
        "sessiond_events_outbox_pending %llu\n",
        (unsigned long long)atomic_load(&w->pending));
    PUT("# HELP sessiond_events_delivered_total Lifecycle events a webhook "
        "answered 2xx to.\n# TYPE sessiond_events_delivered_total counter\n");
    for (size_t i = 0; i < w->n; i++)
        PUT("sessiond_events_delivered_total{webhook=\"%zu\"} %llu\n", i + 1,
            (unsigned long long)atomic_load(&w->sinks[i].delivered));
    PUT("# HELP sessiond_events_delivery_failures_total Failed delivery "
        "attempts (no answer or not 2xx); each is retried.\n"
        "# TYPE sessiond_events_delivery_failures_total counter\n");
    for (size_t i = 0; i < w->n; i++)
        PUT("sessiond_events_delivery_failures_total{webhook=\"%zu\"} %llu\n",
            i + 1, (unsigned long long)atomic_load(&w->sinks[i].failures));
    PUT("# HELP sessiond_events_dropped_total Lifecycle events lost before "
        "delivery, by reason.\n# TYPE sessiond_events_dropped_total counter\n"
        "sessiond_events_dropped_total{reason=\"outbox_full\"} %llu\n"
        "sessiond_events_dropped_total{reason=\"outbox_error\"} %llu\n"
        "sessiond_events_dropped_total{reason=\"damaged\"} %llu\n",
        (unsigned long long)atomic_load(&w->dropped_full),
        (unsigned long long)atomic_load(&w->dropped_error),
        (unsigned long long)atomic_load(&w->dropped_damaged));
#undef PUT
    return o;
}

/* ---- start and stop -------------------------------------------------------- */

/* "webhook N (scheme://host[:port])": what a log may say of a URL. */
static void describe(size_t i, const char *url, char *out, size_t cap)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
        curl_url_get(u, CURLUPART_HOST, &host, 0);
        curl_url_get(u, CURLUPART_PORT, &port, 0);
    }
    snprintf(out, cap, "webhook %zu (%s://%s%s%s)", i + 1,
             scheme ? scheme : "?", host ? host : "?", port ? ":" : "",
             port ? port : "");
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
}

/* The sink's cursor name: hex of SHA-256(URL)'s first 16 bytes, so the
 * outbox never stores the URL and a changed URL starts a new cursor. */
static void sink_id(const char *url, char out[SESSIOND_OUTBOX_SINK_ID_LEN + 1])
{
    uint8_t md[32];
    unsigned int ml = 0;
    EVP_Digest(url, strlen(url), md, &ml, EVP_sha256(), NULL);
    hex_encode(md, 16, out);
}

static int sink_init(sessiond_webhooks *w, sink *s)
{
    CURL *c = curl_easy_init();
    if (c == NULL)
        return -1;
    s->curl = c;
    curl_easy_setopt(c, CURLOPT_URL, s->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)w->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)w->timeout_ms);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_USERAGENT, "sessiond-webhooks");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, stop_check);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, w);
    return 0;
}

int sessiond_webhooks_start(const sessiond_events_config *cfg,
                            sessiond_webhooks **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->n_webhooks == 0)
        return 0;
    sessiond_webhooks *w = calloc(1, sizeof *w);
    if (w == NULL) {
        snprintf(err, errlen, "events: out of memory");
        return -1;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->keys_lock, NULL);
    snprintf(w->secret_file, sizeof w->secret_file, "%s", cfg->webhook_secret_file);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    w->timeout_ms = cfg->webhook_timeout_ms;
    w->retry_min_ms = cfg->retry_min_ms;
    w->retry_max_ms = cfg->retry_max_ms;
    if (read_keys(cfg->webhook_secret_file, &w->keys, err, errlen) != 0)
        goto fail;
    if (sessiond_outbox_open(cfg->outbox, cfg->outbox_max_events, &w->ob, err,
                             errlen) != 0)
        goto fail;
    uint32_t any = 0;
    for (size_t i = 0; i < cfg->n_webhooks && i < SESSIOND_WEBHOOKS_MAX; i++) {
        sink *s = &w->sinks[i];
        snprintf(s->url, sizeof s->url, "%s", cfg->webhook_url[i]);
        s->types = cfg->webhook_types[i] & cfg->types_mask;
        any |= s->types;
        describe(i, s->url, s->where, sizeof s->where);
        sink_id(s->url, s->id);
        w->sink_ids[i] = s->id;
        w->n++;
        if (sink_init(w, s) != 0) {
            snprintf(err, errlen, "events: cannot set up libcurl");
            goto fail;
        }
        s->cursor = sessiond_outbox_cursor(w->ob, s->id);
    }
    w->wanted = any;
    atomic_store(&w->pending, sessiond_outbox_count(w->ob));
    if (pthread_create(&w->thread, NULL, sender_main, w) != 0) {
        snprintf(err, errlen, "events: cannot start the webhook thread");
        goto fail;
    }
    w->started = true;
    metrics_of = w;
    sessiond_events_set_metrics(metrics_text);
    sessiond_events_set_lifecycle_sink(enqueue, w);
    if (atomic_load(&w->pending) > 0)
        sessiond_log(SESSIOND_LOG_INFO, "events outbox: %llu events waiting "
                     "for delivery", (unsigned long long)atomic_load(&w->pending));
    *out = w;
    return 0;
fail:
    sessiond_webhooks_stop(w);
    return -1;
}

void sessiond_webhooks_stop(sessiond_webhooks *w)
{
    if (w == NULL)
        return;
    sessiond_events_set_lifecycle_sink(NULL, NULL);
    if (w->started) {
        pthread_mutex_lock(&w->lock);
        atomic_store(&w->stop, true);
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
    }
    if (metrics_of == w) {
        sessiond_events_set_metrics(NULL);
        metrics_of = NULL;
    }
    for (size_t i = 0; i < w->n; i++)
        if (w->sinks[i].curl != NULL)
            curl_easy_cleanup(w->sinks[i].curl);
    sessiond_outbox_close(w->ob);
    sessiond_webhook_keys_wipe(&w->keys);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    pthread_mutex_destroy(&w->keys_lock);
    free(w);
}

int sessiond_webhooks_reload(sessiond_webhooks *w, char *err, size_t errlen)
{
    sessiond_webhook_keys k;
    if (w == NULL)
        return 0;
    if (read_keys(w->secret_file, &k, err, errlen) != 0)
        return -1;
    pthread_mutex_lock(&w->keys_lock);
    memcpy(&w->keys, &k, sizeof k);
    pthread_mutex_unlock(&w->keys_lock);
    sessiond_webhook_keys_wipe(&k);
    return 0;
}
