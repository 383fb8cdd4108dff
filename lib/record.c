/*
 * record.c - encode and decode session records (format in record.h).
 *
 * The decoder trusts nothing: it runs only on bytes that passed AES-GCM
 * authentication, but a bug or an old key must still not turn into an
 * out-of-bounds read, so every length is checked against what is left.
 */
#include <string.h>

#include "record.h"
#include "util.h"

#define FIXED_U64 9
#define FIXED_BYTES                                                         \
    (4 + FIXED_U64 * 8 + SESS_STORE_HANDLE_BYTES + 32 + 32 + 16 + 32 +     \
     SESS_STORE_KEY_BYTES + SESS__WRAP_BYTES)

size_t sess__record_size(const sess__record *r)
{
    return FIXED_BYTES + 2 + r->user_len + 2 + r->ua_len + 4 + r->data_len;
}

static uint8_t *put_bytes(uint8_t *p, const void *src, size_t n)
{
    if (n)
        memcpy(p, src, n);
    return p + n;
}

void sess__record_encode(const sess__record *r, uint8_t *p)
{
    const uint64_t u64s[FIXED_U64] = {
        r->created_at,     r->issued_at,    r->last_seen_at,
        r->idle_expires_at, r->abs_expires_at, r->data_version,
        r->prev_csrf_until, r->grace_until, r->login_order};

    *p++ = SESS__RECORD_V1;
    *p++ = r->state;
    *p++ = r->flags;
    *p++ = r->ip_family;
    for (int i = 0; i < FIXED_U64; i++, p += 8)
        sess__put_u64(p, u64s[i]);
    p = put_bytes(p, r->handle, sizeof r->handle);
    p = put_bytes(p, r->csrf, sizeof r->csrf);
    p = put_bytes(p, r->prev_csrf, sizeof r->prev_csrf);
    p = put_bytes(p, r->ip, sizeof r->ip);
    p = put_bytes(p, r->ua_hash, sizeof r->ua_hash);
    p = put_bytes(p, r->succ_key, sizeof r->succ_key);
    p = put_bytes(p, r->succ_wrap, sizeof r->succ_wrap);
    *p++ = (uint8_t)r->user_len;
    *p++ = (uint8_t)(r->user_len >> 8);
    p = put_bytes(p, r->user, r->user_len);
    *p++ = (uint8_t)r->ua_len;
    *p++ = (uint8_t)(r->ua_len >> 8);
    p = put_bytes(p, r->ua, r->ua_len);
    sess__put_u32(p, r->data_len);
    p += 4;
    put_bytes(p, r->data, r->data_len);
}

int sess__record_decode(const uint8_t *in, size_t len, sess__record *r)
{
    const uint8_t *p = in, *end = in + len;
    uint64_t *u64s[FIXED_U64] = {
        &r->created_at,     &r->issued_at,    &r->last_seen_at,
        &r->idle_expires_at, &r->abs_expires_at, &r->data_version,
        &r->prev_csrf_until, &r->grace_until, &r->login_order};

    if (len < FIXED_BYTES + 8 || p[0] != SESS__RECORD_V1)
        return SESS_ECORRUPT;
    r->state = p[1];
    r->flags = p[2];
    r->ip_family = p[3];
    if (r->state < SESS__ACTIVE || r->state > SESS__REVOKED ||
        (r->ip_family != 4 && r->ip_family != 6))
        return SESS_ECORRUPT;
    p += 4;
    for (int i = 0; i < FIXED_U64; i++, p += 8)
        *u64s[i] = sess__get_u64(p);
#define TAKE(field)                              \
    do {                                         \
        memcpy(r->field, p, sizeof r->field);    \
        p += sizeof r->field;                    \
    } while (0)
    TAKE(handle);
    TAKE(csrf);
    TAKE(prev_csrf);
    TAKE(ip);
    TAKE(ua_hash);
    TAKE(succ_key);
    TAKE(succ_wrap);
#undef TAKE
    r->user_len = (uint16_t)(p[0] | p[1] << 8);
    p += 2;
    if (r->user_len == 0 || r->user_len > SESS_USER_ID_MAX ||
        (size_t)(end - p) < (size_t)r->user_len + 2)
        return SESS_ECORRUPT;
    memcpy(r->user, p, r->user_len);
    p += r->user_len;
    r->ua_len = (uint16_t)(p[0] | p[1] << 8);
    p += 2;
    if (r->ua_len > SESS_UA_MAX || (size_t)(end - p) < (size_t)r->ua_len + 4)
        return SESS_ECORRUPT;
    memcpy(r->ua, p, r->ua_len);
    p += r->ua_len;
    r->data_len = sess__get_u32(p);
    p += 4;
    if (r->data_len > SESS_DATA_MAX || (size_t)(end - p) != r->data_len)
        return SESS_ECORRUPT;
    r->data = (const char *)p;
    return SESS_OK;
}
