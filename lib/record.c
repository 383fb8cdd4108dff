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

#define FIXED_U64 7
#define SECTION_PREV 0x1u
#define SECTION_SUCC 0x2u
#define SECTION_TOKEN 0x4u
#define FIXED_BYTES (5 + FIXED_U64 * 8 + SESS_STORE_HANDLE_BYTES + 32 + 32)
#define PREV_BYTES (8 + 32)
#define SUCC_BYTES (8 + SESS_STORE_KEY_BYTES + SESS__WRAP_BYTES)
#define TOKEN_BYTES (4 * 8 + 32 + 32 + SESS__WRAP_BYTES + 16 + 2)

static unsigned sections_of(const sess__record *r)
{
    return (r->prev_csrf_until ? SECTION_PREV : 0) |
           (r->state == SESS__ROTATED ? SECTION_SUCC : 0) |
           (r->state == SESS__ACTIVE && r->rt_expires_at ? SECTION_TOKEN : 0);
}

static size_t ip_bytes(uint8_t family)
{
    return family == 4 ? 4 : 16;
}

size_t sess__record_size(const sess__record *r)
{
    unsigned sec = sections_of(r);
    return FIXED_BYTES + ip_bytes(r->ip_family) +
           ((sec & SECTION_PREV) ? PREV_BYTES : 0) +
           ((sec & SECTION_SUCC) ? SUCC_BYTES : 0) +
           ((sec & SECTION_TOKEN) ? TOKEN_BYTES + r->aud_len : 0) + 2 + r->user_len + 2 +
           r->ua_len + 4 + r->data_len;
}

static uint8_t *put_bytes(uint8_t *p, const void *src, size_t n)
{
    if (n)
        memcpy(p, src, n);
    return p + n;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    sess__put_u64(p, v);
    return p + 8;
}

void sess__record_encode(const sess__record *r, uint8_t *p)
{
    const uint64_t u64s[FIXED_U64] = {
        r->created_at,     r->issued_at,      r->last_seen_at, r->idle_expires_at,
        r->abs_expires_at, r->data_version,   r->login_order};
    unsigned sec = sections_of(r);

    *p++ = (sec & SECTION_TOKEN) ? SESS__RECORD_V2 : SESS__RECORD_V1;
    *p++ = r->state;
    *p++ = r->flags;
    *p++ = r->ip_family;
    *p++ = (uint8_t)sec;
    for (int i = 0; i < FIXED_U64; i++)
        p = put_u64(p, u64s[i]);
    p = put_bytes(p, r->handle, sizeof r->handle);
    p = put_bytes(p, r->csrf, sizeof r->csrf);
    p = put_bytes(p, r->ip, ip_bytes(r->ip_family));
    p = put_bytes(p, r->ua_hash, sizeof r->ua_hash);
    if (sec & SECTION_PREV) {
        p = put_u64(p, r->prev_csrf_until);
        p = put_bytes(p, r->prev_csrf, sizeof r->prev_csrf);
    }
    if (sec & SECTION_SUCC) {
        p = put_u64(p, r->grace_until);
        p = put_bytes(p, r->succ_key, sizeof r->succ_key);
        p = put_bytes(p, r->succ_wrap, sizeof r->succ_wrap);
    }
    if (sec & SECTION_TOKEN) {
        p = put_u64(p, r->rt_expires_at);
        p = put_u64(p, r->rt_prev_until);
        p = put_u64(p, r->at_iat);
        p = put_u64(p, r->at_exp);
        p = put_bytes(p, r->rt_hash, sizeof r->rt_hash);
        p = put_bytes(p, r->rt_prev_hash, sizeof r->rt_prev_hash);
        p = put_bytes(p, r->rt_succ_wrap, sizeof r->rt_succ_wrap);
        p = put_bytes(p, r->at_jti, sizeof r->at_jti);
        *p++ = (uint8_t)r->aud_len;
        *p++ = (uint8_t)(r->aud_len >> 8);
        p = put_bytes(p, r->aud, r->aud_len);
    }
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

/* Take "n" bytes at *p into "dst" if that many are left. */
static bool take(const uint8_t **p, const uint8_t *end, void *dst, size_t n)
{
    if ((size_t)(end - *p) < n)
        return false;
    memcpy(dst, *p, n);
    *p += n;
    return true;
}

static bool take_u64(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    if ((size_t)(end - *p) < 8)
        return false;
    *v = sess__get_u64(*p);
    *p += 8;
    return true;
}

static bool take_u16(const uint8_t **p, const uint8_t *end, uint16_t *v)
{
    if ((size_t)(end - *p) < 2)
        return false;
    *v = (uint16_t)((*p)[0] | (*p)[1] << 8);
    *p += 2;
    return true;
}

int sess__record_decode(const uint8_t *in, size_t len, sess__record *r)
{
    const uint8_t *p = in, *end = in + len;
    uint64_t *u64s[FIXED_U64] = {
        &r->created_at,     &r->issued_at,    &r->last_seen_at, &r->idle_expires_at,
        &r->abs_expires_at, &r->data_version, &r->login_order};
    unsigned sec, allowed = SECTION_PREV | SECTION_SUCC;

    if (len < FIXED_BYTES || (p[0] != SESS__RECORD_V1 && p[0] != SESS__RECORD_V2))
        return SESS_ECORRUPT;
    /* v2 = v1 + the TOKEN section, which it must carry (the encoder
     * writes v1 otherwise, so one record has exactly one encoding). */
    if (p[0] == SESS__RECORD_V2)
        allowed |= SECTION_TOKEN;
    r->state = p[1];
    r->flags = p[2];
    r->ip_family = p[3];
    sec = p[4];
    if (r->state < SESS__ACTIVE || r->state > SESS__REVOKED ||
        (r->ip_family != 4 && r->ip_family != 6) ||
        (sec & ~allowed) ||
        ((sec & SECTION_TOKEN) != 0) != (p[0] == SESS__RECORD_V2) ||
        ((sec & SECTION_TOKEN) && r->state != SESS__ACTIVE) ||
        ((sec & SECTION_SUCC) != 0) != (r->state == SESS__ROTATED))
        return SESS_ECORRUPT;
    p += 5;
    for (int i = 0; i < FIXED_U64; i++)
        take_u64(&p, end, u64s[i]);
    memset(r->ip, 0, sizeof r->ip);
    if (!take(&p, end, r->handle, sizeof r->handle) ||
        !take(&p, end, r->csrf, sizeof r->csrf) ||
        !take(&p, end, r->ip, ip_bytes(r->ip_family)) ||
        !take(&p, end, r->ua_hash, sizeof r->ua_hash))
        return SESS_ECORRUPT;
    r->prev_csrf_until = 0;
    memset(r->prev_csrf, 0, sizeof r->prev_csrf);
    if ((sec & SECTION_PREV) &&
        (!take_u64(&p, end, &r->prev_csrf_until) ||
         !take(&p, end, r->prev_csrf, sizeof r->prev_csrf) || !r->prev_csrf_until))
        return SESS_ECORRUPT;
    r->grace_until = 0;
    memset(r->succ_key, 0, sizeof r->succ_key);
    memset(r->succ_wrap, 0, sizeof r->succ_wrap);
    if ((sec & SECTION_SUCC) &&
        (!take_u64(&p, end, &r->grace_until) ||
         !take(&p, end, r->succ_key, sizeof r->succ_key) ||
         !take(&p, end, r->succ_wrap, sizeof r->succ_wrap)))
        return SESS_ECORRUPT;
    r->rt_expires_at = r->rt_prev_until = r->at_iat = r->at_exp = 0;
    r->aud_len = 0;
    memset(r->rt_hash, 0, sizeof r->rt_hash);
    memset(r->rt_prev_hash, 0, sizeof r->rt_prev_hash);
    memset(r->rt_succ_wrap, 0, sizeof r->rt_succ_wrap);
    memset(r->at_jti, 0, sizeof r->at_jti);
    if ((sec & SECTION_TOKEN) &&
        (!take_u64(&p, end, &r->rt_expires_at) || !r->rt_expires_at ||
         !take_u64(&p, end, &r->rt_prev_until) ||
         !take_u64(&p, end, &r->at_iat) || !take_u64(&p, end, &r->at_exp) ||
         !take(&p, end, r->rt_hash, sizeof r->rt_hash) ||
         !take(&p, end, r->rt_prev_hash, sizeof r->rt_prev_hash) ||
         !take(&p, end, r->rt_succ_wrap, sizeof r->rt_succ_wrap) ||
         !take(&p, end, r->at_jti, sizeof r->at_jti) ||
         !take_u16(&p, end, &r->aud_len) || r->aud_len > SESS_TOKEN_AUD_MAX ||
         !take(&p, end, r->aud, r->aud_len)))
        return SESS_ECORRUPT;
    if (!take_u16(&p, end, &r->user_len) || r->user_len == 0 ||
        r->user_len > SESS_USER_ID_MAX || !take(&p, end, r->user, r->user_len) ||
        !take_u16(&p, end, &r->ua_len) || r->ua_len > SESS_UA_MAX ||
        !take(&p, end, r->ua, r->ua_len) || (size_t)(end - p) < 4)
        return SESS_ECORRUPT;
    r->data_len = sess__get_u32(p);
    p += 4;
    if (r->data_len > SESS_DATA_MAX || (size_t)(end - p) != r->data_len)
        return SESS_ECORRUPT;
    r->data = (const char *)p;
    return SESS_OK;
}
