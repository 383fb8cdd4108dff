/*
 * record_cache.c - the opened-record cache (see record_cache.h for what it
 * guarantees and why).
 *
 * Layout: nsets sets of RC_WAYS slots of RC_SLOT_BYTES each, in one
 * anonymous mapping, and beside it a compact array of 8-byte tags (a
 * slice of the key, 0 for an empty slot), a set's tags in half a cache
 * line, so a lookup reads one line to find its way and then just that
 * slot.  The set of a key is taken from the key's bytes (a SHA-256
 * output, so already uniform); the sets are guarded by
 * RC_STRIPES mutexes, a set always by the same one.  A hit sets the slot's
 * reference bit; an insert into a full set takes the first slot, from the
 * set's clock hand on, whose bit is clear (clearing bits as it passes).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <stdlib.h>

#include "crypto.h"
#include "record_cache.h"
#include "util.h"

#define RC_WAYS 4
#define RC_SLOT_BYTES 1024u
#define RC_STRIPES 256u
#define RC_HEAD_MAX (2 + SESS_KID_MAX + SESS__NONCE_BYTES)

/* The fixed part fits one cache line; the variable part follows it at
 * once, so a typical record (about 300 bytes) spans five lines. */
typedef struct rc_slot {
    uint8_t key[SESS_STORE_KEY_BYTES];
    uint8_t tag[SESS__TAG_BYTES];
    uint32_t gen;
    uint32_t blob_len;            /* of the sealed blob it came from */
    uint16_t pt_len;
    uint8_t head_len;
    uint8_t pad;                  /* (emptiness is tags[] == 0) */
    uint8_t var[];                /* head (version, key id, nonce), then pt */
} rc_slot;

#define RC_VAR_MAX (RC_SLOT_BYTES - sizeof(rc_slot))

struct sess__rcache {
    uint8_t *arena;
    size_t arena_bytes;
    size_t nsets;                 /* a power of two */
    uint64_t *tags;               /* nsets * RC_WAYS; 0 = empty */
    uint8_t *refs;                /* nsets * RC_WAYS: CLOCK reference bits */
    uint8_t *hands;               /* clock hand per set */
    _Atomic size_t used;          /* slots holding a record */
    pthread_mutex_t locks[RC_STRIPES];
};

_Static_assert(sizeof(rc_slot) <= 64, "slot header beyond one cache line");
_Static_assert(RC_VAR_MAX > RC_HEAD_MAX + 512, "slots too small");

sess__rcache *sess__rcache_new(size_t entries)
{
    sess__rcache *c = calloc(1, sizeof *c);
    size_t sets = 1;
    if (!c || entries == 0)
        goto fail;
    while (sets * RC_WAYS < entries)
        sets <<= 1;
    c->nsets = sets;
    c->arena_bytes = sets * RC_WAYS * RC_SLOT_BYTES;
    c->arena = mmap(NULL, c->arena_bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (c->arena == MAP_FAILED) {
        c->arena = NULL;
        goto fail;
    }
    /* Plaintext records hold CSRF tokens: keep them out of core dumps.
     * (Best effort: old kernels without MADV_DONTDUMP still work.) */
    (void)madvise(c->arena, c->arena_bytes, MADV_DONTDUMP);
    /* No MADV_HUGEPAGE: it saves TLB misses, but faulting in (and
     * compacting for) 2 MiB pages stalled requests for ~60 ms and took
     * forward-auth p99 from 0.9 ms to 60 ms.  4 KiB pages fault in as
     * slots fill, so the resident size follows use. */
    c->hands = calloc(sets, 1);
    c->refs = calloc(sets * RC_WAYS, 1);
    c->tags = calloc(sets * RC_WAYS, sizeof *c->tags);
    if (!c->hands || !c->refs || !c->tags)
        goto fail;
    for (size_t i = 0; i < RC_STRIPES; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    return c;
fail:
    if (c && c->arena)
        munmap(c->arena, c->arena_bytes);
    if (c) {
        free(c->hands);
        free(c->refs);
        free(c->tags);
    }
    free(c);
    return NULL;
}

void sess__rcache_free(sess__rcache *c)
{
    if (!c)
        return;
    sess__rcache_clear(c);
    for (size_t i = 0; i < RC_STRIPES; i++)
        pthread_mutex_destroy(&c->locks[i]);
    munmap(c->arena, c->arena_bytes);
    free(c->hands);
    free(c->refs);
    free(c->tags);
    free(c);
}

static size_t set_of(const sess__rcache *c, const uint8_t *key)
{
    /* Bytes 8.. of the key: the first two may carry a route (store.h). */
    return (size_t)sess__get_u64(key + 8) & (c->nsets - 1);
}

static uint64_t tag_of(const uint8_t *key)
{
    return sess__get_u64(key + 16) | 1u;
}

static rc_slot *slot_at(const sess__rcache *c, size_t set, unsigned way)
{
    return (rc_slot *)(c->arena + (set * RC_WAYS + way) * RC_SLOT_BYTES);
}

/* The way of "key" in "set", or -1. */
static int way_of(const sess__rcache *c, size_t set, const uint8_t *key)
{
    const uint64_t *t = &c->tags[set * RC_WAYS], want = tag_of(key);
    for (unsigned w = 0; w < RC_WAYS; w++)
        if (t[w] == want &&
            memcmp(slot_at(c, set, w)->key, key, SESS_STORE_KEY_BYTES) == 0)
            return (int)w;
    return -1;
}

static pthread_mutex_t *lock_of(sess__rcache *c, size_t set)
{
    return &c->locks[set % RC_STRIPES];
}

static void slot_wipe(sess__rcache *c, size_t set, unsigned way)
{
    rc_slot *s;
    if (c->tags[set * RC_WAYS + way] == 0)
        return;
    s = slot_at(c, set, way);
    sess__wipe(s, sizeof *s + s->head_len + s->pt_len);
    c->tags[set * RC_WAYS + way] = 0;
    c->refs[set * RC_WAYS + way] = 0;
    atomic_fetch_sub_explicit(&c->used, 1, memory_order_relaxed);
}

/* Length of the blob's version + key id + nonce; 0 when the blob is not
 * shaped like a sealed record (sess__open will say why). */
static size_t head_len_of(const uint8_t *blob, size_t blob_len)
{
    size_t head;
    if (blob_len < 3 || blob[1] == 0 || blob[1] > SESS_KID_MAX)
        return 0;
    head = 2 + (size_t)blob[1] + SESS__NONCE_BYTES;
    return blob_len >= head + SESS__TAG_BYTES ? head : 0;
}

/* Lookups on this thread lately (both halved every 1024), for admission
 * and prefetch: whether the cache is paying for itself. */
static _Thread_local struct {
    uint32_t hits, misses, admits;
} recent;

static void recent_count(bool hit)
{
    if (hit)
        recent.hits++;
    else
        recent.misses++;
    if (recent.hits + recent.misses >= 1024) {
        recent.hits /= 2;
        recent.misses /= 2;
    }
}

static bool same_blob(const rc_slot *s, const uint8_t *blob, size_t blob_len,
                      size_t head)
{
    return s->blob_len == blob_len && s->head_len == head &&
           memcmp(s->tag, blob + blob_len - SESS__TAG_BYTES, SESS__TAG_BYTES) == 0 &&
           memcmp(s->var, blob, head) == 0;
}

void sess__rcache_prefetch(const sess__rcache *c, const uint8_t key[32])
{
    size_t set;
    if (!c || recent.hits * 4 < recent.misses)
        return;
    set = set_of(c, key);
    __builtin_prefetch(&c->tags[set * RC_WAYS]);
    /* Way 0 is filled first, so with the cache less than full most keys
     * sit there: its first five lines hold a typical record. */
    for (unsigned i = 0; i < 5; i++)
        __builtin_prefetch((const uint8_t *)slot_at(c, set, 0) + 64u * i);
}

bool sess__rcache_get(sess__rcache *c, const uint8_t key[32], uint32_t gen,
                      const uint8_t *blob, size_t blob_len, sess_store_buf *pt)
{
    size_t head = head_len_of(blob, blob_len), set;
    bool hit = false;
    int w;
    if (!c || head == 0)
        return false;
    set = set_of(c, key);
    pthread_mutex_lock(lock_of(c, set));
    if ((w = way_of(c, set, key)) >= 0) {
        rc_slot *s = slot_at(c, set, (unsigned)w);
        if (s->gen == gen && same_blob(s, blob, blob_len, head) &&
            sess_store_buf_reserve(pt, (size_t)s->pt_len + 1) == SESS_OK) {
            memcpy(pt->data, s->var + s->head_len, s->pt_len);
            pt->len = s->pt_len;
            c->refs[set * RC_WAYS + (unsigned)w] = 1;
            hit = true;
        }
    }
    pthread_mutex_unlock(lock_of(c, set));
    recent_count(hit);
    return hit;
}

void sess__rcache_put(sess__rcache *c, const uint8_t key[32], uint32_t gen,
                      const uint8_t *blob, size_t blob_len, const uint8_t *pt,
                      size_t pt_len)
{
    size_t head = head_len_of(blob, blob_len), set;
    const uint64_t *t;
    int w;
    if (!c || head == 0)
        return;
    if (pt_len > RC_VAR_MAX - head) {
        sess__rcache_drop(c, key);  /* an older, smaller one may be there */
        return;
    }
    set = set_of(c, key);
    t = &c->tags[set * RC_WAYS];
    pthread_mutex_lock(lock_of(c, set));
    w = way_of(c, set, key);
    for (unsigned i = 0; i < RC_WAYS && w < 0; i++)
        if (t[i] == 0)
            w = (int)i;
    while (w < 0) {
        unsigned hand = c->hands[set];
        uint8_t *ref = &c->refs[set * RC_WAYS + hand];
        c->hands[set] = (uint8_t)((hand + 1) % RC_WAYS);
        if (*ref)
            *ref = 0;
        else
            w = (int)hand;
    }
    size_t idx = set * RC_WAYS + (unsigned)w;
    rc_slot *v = slot_at(c, set, (unsigned)w);
    /* Overwrite in place, then wipe what the old record had beyond the
     * new one: each byte is written once. */
    size_t old_len = c->tags[idx] ? sizeof *v + v->head_len + v->pt_len : 0;
    size_t new_len = sizeof *v + head + pt_len;
    if (c->tags[idx] == 0)
        atomic_fetch_add_explicit(&c->used, 1, memory_order_relaxed);
    memcpy(v->key, key, SESS_STORE_KEY_BYTES);
    memcpy(v->tag, blob + blob_len - SESS__TAG_BYTES, SESS__TAG_BYTES);
    v->gen = gen;
    v->blob_len = (uint32_t)blob_len;
    v->pt_len = (uint16_t)pt_len;
    v->head_len = (uint8_t)head;
    v->pad = 0;
    memcpy(v->var, blob, head);
    memcpy(v->var + head, pt, pt_len);
    if (old_len > new_len)
        sess__wipe((uint8_t *)v + new_len, old_len - new_len);
    c->tags[idx] = tag_of(key);
    c->refs[idx] = 0;
    pthread_mutex_unlock(lock_of(c, set));
}

bool sess__rcache_admit(const sess__rcache *c)
{
    if (!c)
        return false;
    /* Room left: nothing is evicted. */
    if (atomic_load_explicit(&c->used, memory_order_relaxed) < c->nsets * RC_WAYS)
        return true;
    /* Full, and at least one lookup in four hits: keep every record. */
    if (recent.hits * 4 >= recent.misses)
        return true;
    /* Full and missing: the records in use outnumber the slots, and an
     * insert would mostly evict one that would have hit.  Keep one in 16,
     * so a hot subset still works its way in. */
    return (++recent.admits & 15u) == 0;
}

void sess__rcache_drop(sess__rcache *c, const uint8_t key[32])
{
    size_t set;
    int w;
    if (!c)
        return;
    set = set_of(c, key);
    pthread_mutex_lock(lock_of(c, set));
    if ((w = way_of(c, set, key)) >= 0)
        slot_wipe(c, set, (unsigned)w);
    pthread_mutex_unlock(lock_of(c, set));
}

void sess__rcache_clear(sess__rcache *c)
{
    if (!c)
        return;
    for (size_t set = 0; set < c->nsets; set++) {
        pthread_mutex_lock(lock_of(c, set));
        for (unsigned w = 0; w < RC_WAYS; w++)
            slot_wipe(c, set, w);
        pthread_mutex_unlock(lock_of(c, set));
    }
}

void sess__rcache_usage(sess__rcache *c, size_t *used, size_t *slots)
{
    *used = c ? atomic_load_explicit(&c->used, memory_order_relaxed) : 0;
    *slots = c ? c->nsets * RC_WAYS : 0;
}
