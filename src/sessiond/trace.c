/*
 * trace.c - W3C Trace Context per request (trace.h).
 *
 * The parser is strict (the spec's section 3.2): a traceparent that is
 * not exactly version-00 shaped, uses uppercase hex, or has an all-zero
 * trace id or parent id is ignored and a new trace starts, so a caller
 * cannot make us log or export malformed ids (log injection: the ids end
 * up in JSON lines and in nginx's log through X-Trace-Id, so they are
 * only ever our own lowercase hex).
 *
 * New ids come from getrandom(2) (the kernel CSPRNG, as the library's
 * own random helper uses; trace ids are not secrets, but guessable ones
 * would let one client's spans be mixed into another's trace).  To keep
 * forward-auth's hot path cheap each thread draws them from a small
 * per-thread pool refilled with one getrandom call per 40 requests; no
 * allocation, no lock.
 *
 * The sampler's settings are written once at start-up (and cleared at the
 * stop, after the workers ended) and only read while serving.  The
 * outcome of a request is a byte in its context: a handler that knows why
 * it answered as it did sets it, the status decides otherwise
 * (sessiond_trace_finish).
 */
#include "trace.h"
#include "../common/clock.h"
#include "../common/hex.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define POOL_BYTES 960          /* 40 requests of 16 + 8 bytes (fewer with
                                   tracing: a span id per store span) */

static _Thread_local sessiond_trace *current;
/* The sampler (set once at start-up, read-only after): off, or a bound on
 * the 63 bits of a new trace id below which it is sampled. */
static bool sampler_on;
static bool sample_all;
static uint64_t sample_bound;
static _Thread_local uint8_t pool[POOL_BYTES];
static _Thread_local size_t pool_left;

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;                  /* uppercase is invalid (spec 3.2.2) */
}

/* "n" bytes of lowercase hex at "s" into "out"; false on a bad digit. */
static bool unhex(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

bool sessiond_traceparent_parse(const char *s, size_t len,
                                uint8_t trace_id[16], uint8_t parent_id[8],
                                uint8_t *flags)
{
    uint8_t ver, fl, tid[16], pid[8];
    if (s == NULL || len < SESSIOND_TRACEPARENT_LEN)
        return false;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-')
        return false;
    if (!unhex(s, 1, &ver) || ver == 0xff)
        return false;
    /* Version 00 has exactly these fields; a later version may append
     * more, after a '-' (spec 3.2.4). */
    if (ver == 0 ? len != SESSIOND_TRACEPARENT_LEN
                 : (len > SESSIOND_TRACEPARENT_LEN &&
                    s[SESSIOND_TRACEPARENT_LEN] != '-'))
        return false;
    if (!unhex(s + 3, 16, tid) || !unhex(s + 36, 8, pid) ||
        !unhex(s + 53, 1, &fl))
        return false;
    if (all_zero(tid, sizeof(tid)) || all_zero(pid, sizeof(pid)))
        return false;
    memcpy(trace_id, tid, sizeof(tid));
    memcpy(parent_id, pid, sizeof(pid));
    *flags = fl;
    return true;
}

bool sessiond_tracestate_valid(const char *s, size_t len)
{
    size_t members = 1;
    if (s == NULL || len == 0 || len > SESSIOND_TRACESTATE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        /* Printable ASCII only: the value is passed on, never echoed into
         * a header of ours, but keep control bytes out of everything. */
        if (c < 0x20 || c > 0x7e)
            return false;
        if (c == ',' && ++members > 32)
            return false;
    }
    return true;
}

/* "n" random bytes from the thread's pool. */
static void random_bytes(uint8_t *out, size_t n)
{
    if (pool_left < n) {
        size_t got = 0;
        while (got < sizeof(pool)) {
            ssize_t r = getrandom(pool + got, sizeof(pool) - got, 0);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                break;
            }
            got += (size_t)r;
        }
        if (got < sizeof(pool)) {
            /* getrandom cannot fail after boot on Linux >= 3.17; should it,
             * trace ids only need to be distinct, so mix the clock in. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            for (size_t i = got; i < sizeof(pool); i++)
                pool[i] = (uint8_t)((uint64_t)ts.tv_nsec >> (i % 8 * 8)) ^
                          (uint8_t)i;
        }
        pool_left = sizeof(pool);
    }
    memcpy(out, pool + sizeof(pool) - pool_left, n);
    pool_left -= n;
}

void sessiond_trace_begin(sessiond_trace *t, const char *traceparent,
                          size_t n_traceparent, const char *tracestate)
{
    memset(t, 0, sizeof(*t));
    /* Several traceparent fields are invalid (spec 3.2: treat as absent). */
    if (n_traceparent == 1 && traceparent != NULL &&
        sessiond_traceparent_parse(traceparent, strlen(traceparent),
                                   t->trace_id, t->parent_id, &t->flags)) {
        t->has_parent = true;
        /* tracestate only means something with a valid traceparent. */
        if (tracestate != NULL &&
            sessiond_tracestate_valid(tracestate, strlen(tracestate))) {
            t->tracestate = tracestate;
            t->tracestate_len = strlen(tracestate);
        }
    }
    if (!t->has_parent) {
        do
            random_bytes(t->trace_id, sizeof(t->trace_id));
        while (all_zero(t->trace_id, sizeof(t->trace_id)));
    }
    do
        random_bytes(t->span_id, sizeof(t->span_id));
    while (all_zero(t->span_id, sizeof(t->span_id)));
    hex_encode(t->trace_id, sizeof(t->trace_id), t->trace_hex);
    hex_encode(t->span_id, sizeof(t->span_id), t->span_hex);
    t->sampled = sampler_on && sessiond_trace_should_sample(t);
    if (t->sampled)
        t->start_ns = clock_real_ns();
    current = t;
}

void sessiond_trace_new_span_id(uint8_t out[8])
{
    do
        random_bytes(out, 8);
    while (all_zero(out, 8));
}

void sessiond_trace_sampler(bool enabled, double ratio)
{
    sampler_on = enabled;
    if (!(ratio > 0.0))                 /* 0, negative or NaN: none */
        ratio = 0.0;
    sample_all = ratio >= 1.0;
    sample_bound = sample_all ? UINT64_MAX
                              : (uint64_t)(ratio * 9223372036854775808.0);
}

bool sessiond_trace_should_sample(const sessiond_trace *t)
{
    if (!sampler_on)
        return false;
    /* Parent-based: the caller decided for the whole trace. */
    if (t->has_parent)
        return (t->flags & SESSIOND_TRACE_FLAG_SAMPLED) != 0;
    if (sample_all)
        return true;
    uint64_t x = 0;
    for (size_t i = 8; i < 16; i++)
        x = x << 8 | t->trace_id[i];
    return (x >> 1) < sample_bound;
}

#define SESSIOND__OUTCOME_NAME(name, text) text,
static const char *const outcome_names[SESSIOND_OUTCOME_N] = {
    SESSIOND_OUTCOMES(SESSIOND__OUTCOME_NAME)};
#undef SESSIOND__OUTCOME_NAME

const char *sessiond_outcome_name(sessiond_outcome o)
{
    return (unsigned)o < SESSIOND_OUTCOME_N ? outcome_names[o]
                                            : "other_error";
}

void sessiond_trace_set_outcome(sessiond_outcome o)
{
    if (current != NULL)
        current->outcome = (uint8_t)o;
}

sessiond_outcome sessiond_outcome_of_reason(int reason)
{
    /* Indexed by sess_reason (sess/session.h). */
    static const sessiond_outcome by_reason[] = {
        SESSIOND_OUTCOME_OK,               SESSIOND_OUTCOME_UNKNOWN,
        SESSIOND_OUTCOME_EXPIRED_IDLE,     SESSIOND_OUTCOME_EXPIRED_ABSOLUTE,
        SESSIOND_OUTCOME_BINDING_MISMATCH, SESSIOND_OUTCOME_REVOKED};
    if (reason < 0 ||
        (size_t)reason >= sizeof(by_reason) / sizeof(by_reason[0]))
        return SESSIOND_OUTCOME_UNKNOWN;
    return by_reason[reason];
}

/* The outcome a status implies when the handler named none. */
static const struct {
    unsigned status;
    sessiond_outcome outcome;
} status_outcomes[] = {
    {400, SESSIOND_OUTCOME_INVALID_REQUEST},
    {401, SESSIOND_OUTCOME_UNAUTHORIZED},
    {403, SESSIOND_OUTCOME_FORBIDDEN},
    {404, SESSIOND_OUTCOME_NOT_FOUND},
    {405, SESSIOND_OUTCOME_METHOD_NOT_ALLOWED},
    {409, SESSIOND_OUTCOME_CONFLICT},
    {413, SESSIOND_OUTCOME_TOO_LARGE},
    {414, SESSIOND_OUTCOME_URI_TOO_LONG},
    {415, SESSIOND_OUTCOME_UNSUPPORTED_MEDIA_TYPE},
    {429, SESSIOND_OUTCOME_RATE_LIMITED},
    {500, SESSIOND_OUTCOME_INTERNAL_ERROR},
    {503, SESSIOND_OUTCOME_STORE_UNAVAILABLE},
};

sessiond_outcome sessiond_trace_finish(sessiond_trace *t, unsigned status)
{
    t->status = status;
    if (t->outcome != SESSIOND_OUTCOME_UNSET)
        return (sessiond_outcome)t->outcome;
    sessiond_outcome o = status < 400 ? SESSIOND_OUTCOME_OK
                                      : SESSIOND_OUTCOME_OTHER_ERROR;
    for (size_t i = 0; i < sizeof(status_outcomes) / sizeof(status_outcomes[0]);
         i++)
        if (status_outcomes[i].status == status)
            o = status_outcomes[i].outcome;
    t->outcome = (uint8_t)o;
    return o;
}

sessiond_trace *sessiond_trace_current(void)
{
    return current;
}

void sessiond_trace_end(void)
{
    current = NULL;
}
