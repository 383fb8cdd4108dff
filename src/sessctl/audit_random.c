/*
 * audit_random.c - the randomness analysis of sessctl audit (the id-length
 * and id-randomness checks), in the manner of Burp Sequencer: a sample of
 * session IDs, issued one after another, is
 *
 *   1. unwrapped: the signing formats frameworks wrap IDs in (express
 *      "s:ID.sig", Rails "data--digest", Flask/itsdangerous "payload.ts.sig",
 *      JWTs) are recognised, so the random part is what is analysed and a
 *      self-contained token is named as such rather than scored as an ID;
 *   2. decoded to bits: the smallest standard alphabet holding every
 *      character seen (hex, PHP's base32, base64url, ...) gives the bits
 *      per character; other alphabets (decimal, 62 letters and digits) are
 *      read as one big number with OpenSSL's BIGNUM;
 *   3. tested: FIPS 140-2 monobit, poker, runs and long-run over 20,000-bit
 *      blocks of the bit positions that vary at all (constant bits, such as
 *      the padding bits of base64, lower the entropy estimate instead of
 *      failing FIPS), a per-bit bias test, a per-character-position
 *      chi-square test, and detectors for a shared prefix, a counter
 *      (consecutive IDs differ in few bits) and a clock (a field that
 *      decodes to the current time);
 *   4. summarised: the effective entropy is the unbiased varying bits,
 *      capped by twice the mean Hamming distance between consecutive IDs
 *      (a counter has many varying bits but consecutive values differ in a
 *      few), together with the sample sizes the tests would need.  IDs
 *      that come out in increasing order (a counter, or a clock in the
 *      leading characters) are a counter too: random ones go up half the
 *      time.
 *
 * Everything here is pure computation on the sample (no I/O), so
 * tests/unit/sessctl/test_audit_random.c checks it with known-random,
 * counter and clock-based IDs.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/bn.h>

#include "audit.h"

#define FIPS_BLOCK 20000
/* Thresholds chosen so that a whole random sample (up to 1,536 bits and
 * 256 positions) raises a false alarm less than once in 10,000 runs. */
#define BIAS_SIGMA 5.0      /* per-bit z above this is biased (two-sided p ~6e-7) */
#define CHI_SIGMA 5.0       /* per-position chi-square, as a Wilson-Hilferty z */
#define ID_MAX 4096

typedef struct alphabet {
    const char *name;
    const char *chars;
} alphabet;

/* Smallest first: the first alphabet holding every character seen wins. */
static const alphabet alphabets[] = {
    {"decimal", "0123456789"},
    {"hex (lower case)", "0123456789abcdef"},
    {"hex (upper case)", "0123456789ABCDEF"},
    {"base32hex, lower case (PHP, 5 bits per character)", "0123456789abcdefghijklmnopqrstuv"},
    {"base32 (RFC 4648)", "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"},
    {"alphanumeric, lower case", "0123456789abcdefghijklmnopqrstuvwxyz"},
    {"alphanumeric", "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"},
    {"base64url", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"},
    {"base64", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"},
    {"PHP (6 bits per character)", "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,-"},
};

/* ---- unwrapping ---------------------------------------------------- */

static bool all_in(const char *s, size_t n, const char *set)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(set, s[i]) || s[i] == '\0')
            return false;
    return true;
}

#define B64URL "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#define B64STD "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="

const char *audit_random_part(const char *value, const char **format, bool *self_contained)
{
    static char buf[ID_MAX + 1];
    char dec[ID_MAX + 1];
    int dlen = 0;
    /* Percent-decoding with libcurl (express writes "s%3A..."). */
    char *u = curl_easy_unescape(NULL, value, 0, &dlen);
    if (u && dlen > 0 && dlen <= ID_MAX) {
        memcpy(dec, u, (size_t)dlen);
        dec[dlen] = '\0';
    } else {
        snprintf(dec, sizeof dec, "%s", value);
    }
    curl_free(u);
    size_t n = strlen(dec);
    *format = "plain";
    *self_contained = false;

    /* express-session / cookie-signature: "s:" ID "." base64 HMAC. */
    const char *dot = strrchr(dec, '.');
    if (n > 3 && dec[0] == 's' && dec[1] == ':' && dot && dot > dec + 2) {
        *format = "express-session (s:ID.signature)";
        snprintf(buf, sizeof buf, "%.*s", (int)(dot - dec - 2), dec + 2);
        return buf;
    }
    /* JWT: three base64url parts, the first a JSON header ("eyJ"). */
    const char *d1 = strchr(dec, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (n > 10 && d1 && d2 && !strchr(d2 + 1, '.') &&
        (!strncmp(dec, "eyJhbGci", 8) || !strncmp(dec, "eyJ0eXAi", 8) ||
         !strncmp(dec, "eyJraWQi", 8))) {
        *format = "JWT (self-contained, signed)";
        *self_contained = true;
        snprintf(buf, sizeof buf, "%s", d2 + 1);
        return buf;
    }
    /* itsdangerous (Flask): [.]payload.timestamp.signature, payload
     * base64url JSON ("eyJ") or zlib ('.' prefix). */
    if (d1 && d2 && (strncmp(dec, "eyJ", 3) == 0 || dec[0] == '.')) {
        *format = "itsdangerous signed cookie (Flask session, self-contained)";
        *self_contained = true;
        snprintf(buf, sizeof buf, "%s", strrchr(dec, '.') + 1);
        return buf;
    }
    /* Rails cookie store: base64(data) "--" hex HMAC (40 or 64 digits), or
     * (5.2+) base64 data--iv--tag.  The shape is checked whole: a random
     * base64url ID contains "--" by chance about once in a hundred. */
    const char *dd = strstr(dec, "--");
    const char *last = dd;
    for (const char *q = dd; q && (q = strstr(q + 2, "--")) != NULL;)
        last = q;
    size_t tail = last ? n - (size_t)(last + 2 - dec) : 0;
    bool signed_form = dd && dd == last && (tail == 40 || tail == 64) &&
                       all_in(last + 2, tail, "0123456789abcdef");
    bool gcm_form = false;
    if (dd && dd != last && strstr(dd + 2, "--") == last) {
        size_t l1 = (size_t)(dd - dec), l2 = (size_t)(last - dd - 2);
        gcm_form = all_in(dec, l1, B64STD) && all_in(dd + 2, l2, B64STD) &&
                   all_in(last + 2, tail, B64STD) && (l2 == 16 || l2 == 24) && tail == 24;
    }
    if (dd && dd > dec && all_in(dec, (size_t)(dd - dec), B64STD) && (signed_form || gcm_form)) {
        *format = "Rails cookie store (data--digest, self-contained)";
        *self_contained = true;
        snprintf(buf, sizeof buf, "%.*s", (int)(dd - dec), dec);
        return buf;
    }
    if (all_in(dec, n, "0123456789abcdefghijklmnopqrstuv,-") && (n == 26 || n == 32))
        *format = "PHP session ID";
    snprintf(buf, sizeof buf, "%s", dec);
    return buf;
}

/* ---- FIPS 140-2 (section 4.9.1) on one 20,000-bit block ------------- */

static void fips_block(const unsigned char *b, audit_random *r)
{
    long ones = 0;
    unsigned f[16] = {0};
    unsigned runs[2][7] = {{0}};
    int run = 1, longest = 1;

    for (int i = 0; i < FIPS_BLOCK; i++)
        ones += b[i];
    for (int i = 0; i < FIPS_BLOCK; i += 4)
        f[b[i] << 3 | b[i + 1] << 2 | b[i + 2] << 1 | b[i + 3]]++;
    for (int i = 1; i <= FIPS_BLOCK; i++) {
        if (i < FIPS_BLOCK && b[i] == b[i - 1]) {
            run++;
            continue;
        }
        runs[b[i - 1]][run > 6 ? 6 : run]++;
        if (run > longest)
            longest = run;
        run = 1;
    }
    double sum = 0;
    for (int i = 0; i < 16; i++)
        sum += (double)f[i] * f[i];
    double poker = 16.0 / 5000.0 * sum - 5000.0;
    static const unsigned lo[7] = {0, 2315, 1114, 527, 240, 103, 103};
    static const unsigned hi[7] = {0, 2685, 1386, 723, 384, 209, 209};
    bool runs_ok = true;
    for (int v = 0; v < 2; v++)
        for (int l = 1; l <= 6; l++)
            if (runs[v][l] < lo[l] || runs[v][l] > hi[l])
                runs_ok = false;

    unsigned failed = 0;
    r->fips_blocks++;
    if (!(ones > 9725 && ones < 10275))
        r->monobit_fail++, failed++;
    if (!(poker > 2.16 && poker < 46.17))
        r->poker_fail++, failed++;
    if (!runs_ok)
        r->runs_fail++, failed++;
    if (longest >= 26)
        r->long_run_fail++, failed++;
    if (failed)
        r->fips_blocks_failed++;
    if (failed > r->fips_worst_block)
        r->fips_worst_block = failed;
    if (r->fips_blocks == 1) {
        r->monobit_x = ones;
        r->poker_x = poker;
    }
}

/* ---- decoding -------------------------------------------------------- */

/* Bits of one ID into "out" (0/1 per byte); returns the count. */
static size_t decode_bits(const char *id, const alphabet *a, unsigned bpc,
                          size_t want, unsigned char *out)
{
    size_t n = strlen(id), k = 0;
    if (bpc) {
        for (size_t i = 0; i < n && k + bpc <= want; i++) {
            const char *p = strchr(a->chars, id[i]);
            unsigned v = p ? (unsigned)(p - a->chars) : 0;
            for (int b = (int)bpc - 1; b >= 0; b--)
                out[k++] = (v >> b) & 1u;
        }
        return k;
    }
    /* Other alphabets: the ID as one base-N number. */
    BIGNUM *bn = BN_new();
    unsigned base = (unsigned)strlen(a->chars);
    if (!bn)
        return 0;
    BN_zero(bn);
    for (size_t i = 0; i < n; i++) {
        const char *p = strchr(a->chars, id[i]);
        if (!BN_mul_word(bn, base) || !BN_add_word(bn, p ? (BN_ULONG)(p - a->chars) : 0))
            break;
    }
    /* The number is uniform below base^n: drop its two top bits, which
     * are biased because base^n is not a power of two. */
    for (size_t b = 0; b < want; b++)
        out[k++] = (unsigned char)BN_is_bit_set(bn, (int)(want - 1 - b));
    BN_free(bn);
    return k;
}

/* ---- clock detector -------------------------------------------------- */

/* A window of the ID that reads, in every sample, as a time within a day
 * of "now" (decimal or hex Unix seconds or milliseconds). */
static bool find_clock(char **ids, size_t n, time_t now, size_t *at)
{
    static const struct { int len; int base; double scale; } forms[] = {
        {10, 10, 1}, {13, 10, 1000}, {8, 16, 1}, {11, 16, 1000}, {12, 16, 1000},
    };
    size_t len = strlen(ids[0]);
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        size_t w = (size_t)forms[f].len;
        for (size_t off = 0; off + w <= len; off++) {
            size_t hits = 0;
            for (size_t i = 0; i < n; i++) {
                char tmp[16];
                if (strlen(ids[i]) < off + w)
                    break;
                memcpy(tmp, ids[i] + off, w);
                tmp[w] = '\0';
                if (!all_in(tmp, w, forms[f].base == 10 ? "0123456789" : "0123456789abcdefABCDEF"))
                    break;
                double v = (double)strtoull(tmp, NULL, forms[f].base) / forms[f].scale;
                if (fabs(v - (double)now) > 86400.0)
                    break;
                hits++;
            }
            if (hits == n) {
                *at = off;
                return true;
            }
        }
    }
    return false;
}

/* ---- the analysis ---------------------------------------------------- */

void audit_random_analyse(char **ids, size_t n, time_t now, audit_random *r)
{
    unsigned char *bits = NULL, *stream = NULL;
    unsigned *ones = NULL;
    memset(r, 0, sizeof *r);
    r->n = n;
    if (n == 0)
        return;

    /* Alphabet and length (the shortest ID bounds the positions). */
    size_t len = strlen(ids[0]);
    bool seen[256] = {false};
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(ids[i]);
        if (l < len)
            len = l;
        for (size_t j = 0; j < l; j++)
            seen[(unsigned char)ids[i][j]] = true;
    }
    r->len = len;
    const alphabet *a = NULL;
    for (size_t k = 0; k < sizeof alphabets / sizeof alphabets[0] && !a; k++) {
        bool ok = true;
        for (int c = 1; c < 256 && ok; c++)
            if (seen[c] && !strchr(alphabets[k].chars, c))
                ok = false;
        if (ok)
            a = &alphabets[k];
    }
    unsigned asize;
    if (a) {
        asize = (unsigned)strlen(a->chars);
        r->alphabet_name = a->name;
    } else {
        asize = 0;
        for (int c = 1; c < 256; c++)
            asize += seen[c];
        r->alphabet_name = "non-standard";
    }
    r->alphabet_size = asize;
    r->nominal_bits = asize > 1 ? (double)len * log2((double)asize) : 0;

    /* Shared prefix. */
    size_t pre = len;
    for (size_t i = 1; i < n; i++) {
        size_t j = 0;
        while (j < pre && ids[i][j] == ids[0][j])
            j++;
        pre = j;
    }
    r->shared_prefix = n > 1 ? pre : 0;

    /* Per-position character counts and chi-square. */
    size_t npos = len < AUDIT_POS_MAX ? len : AUDIT_POS_MAX;
    r->npos = npos;
    for (size_t p = 0; p < npos; p++) {
        unsigned cnt[256] = {0};
        unsigned distinct = 0;
        for (size_t i = 0; i < n; i++)
            cnt[(unsigned char)ids[i][p]]++;
        unsigned mx = 0, mn = (unsigned)n;
        for (int c = 1; c < 256; c++) {
            if (!cnt[c])
                continue;
            distinct++;
            if (cnt[c] > mx)
                mx = cnt[c];
        }
        /* The least frequent symbol of the alphabet (0 when unseen). */
        if (a) {
            for (const char *s = a->chars; *s; s++)
                if (cnt[(unsigned char)*s] < mn)
                    mn = cnt[(unsigned char)*s];
        } else {
            mn = 0;
        }
        r->pos_max[p] = mx;
        r->pos_min[p] = mn;
        if (distinct == 1 && n > 1)
            r->positions_constant++;
        if (a && asize > 1 && n >= 5u * asize) {
            double e = (double)n / asize, chi = 0;
            for (const char *s = a->chars; *s; s++) {
                double d = cnt[(unsigned char)*s] - e;
                chi += d * d / e;
            }
            /* Wilson-Hilferty: (chi/df)^(1/3) is nearly normal, which
             * the normal approximation of chi-square itself is not in the
             * tail (it raised false alarms about once in a hundred runs). */
            double df = asize - 1, v = 2.0 / (9.0 * df);
            double z = (cbrt(chi / df) - (1.0 - v)) / sqrt(v);
            if (z > CHI_SIGMA && distinct > 1)
                r->positions_biased++;
        }
    }

    /* Decode to bits. */
    unsigned bpc = 0;
    if (a && (asize & (asize - 1)) == 0)
        for (unsigned s = asize; s > 1; s >>= 1)
            bpc++;
    r->bits_per_char = bpc;
    size_t nb = bpc ? len * bpc : (r->nominal_bits > 2 ? (size_t)r->nominal_bits - 2 : 0);
    if (nb > AUDIT_POS_MAX * 6)
        nb = AUDIT_POS_MAX * 6;
    r->nbits_pos = nb;
    if (nb == 0 || n < 2)
        goto done;
    bits = calloc(n, nb);
    ones = calloc(nb, sizeof *ones);
    if (!bits || !ones)
        goto done;
    for (size_t i = 0; i < n; i++) {
        size_t got = decode_bits(ids[i], a ? a : &alphabets[0], bpc, nb, bits + i * nb);
        if (got < nb)
            memset(bits + i * nb + got, 0, nb - got);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t b = 0; b < nb; b++)
            ones[b] += bits[i * nb + b];

    /* Per-bit bias; constant bits carry no entropy. */
    size_t varying = 0, unbiased = 0;
    for (size_t b = 0; b < nb; b++) {
        r->bit_ones[b] = (double)ones[b] / (double)n;
        if (ones[b] == 0 || ones[b] == n)
            continue;
        varying++;
        double z = ((double)ones[b] - n / 2.0) / sqrt(n / 4.0);
        if (fabs(z) > BIAS_SIGMA)
            r->bits_biased++;
        else
            unbiased++;
    }
    r->bits_constant = nb - varying;

    /* Consecutive samples: mean Hamming distance (counter detector). */
    double ham = 0;
    for (size_t i = 1; i < n; i++) {
        size_t d = 0;
        for (size_t b = 0; b < nb; b++)
            d += bits[i * nb + b] != bits[(i - 1) * nb + b];
        ham += (double)d;
    }
    ham /= (double)(n - 1);
    r->mean_hamming = ham;
    /* Issued in increasing (or decreasing) order: a counter or a clock
     * in the leading bits.  Random IDs go up half the time. */
    size_t ups = 0;
    for (size_t i = 1; i < n; i++)
        ups += memcmp(bits + i * nb, bits + (i - 1) * nb, nb) > 0;
    r->monotonic = n >= 8 && (ups * 10 >= (n - 1) * 9 || ups * 10 <= (n - 1));
    r->counter_like = n >= 4 && varying > 0 &&
                      (ham < 0.25 * (double)varying || r->monotonic);
    r->effective_bits = (double)unbiased;
    if (2 * ham < r->effective_bits)
        r->effective_bits = 2 * ham;

    /* FIPS 140-2 over the varying bits, sample after sample. */
    r->total_bits = varying * n;
    if (r->total_bits >= FIPS_BLOCK) {
        stream = malloc(r->total_bits);
        if (!stream)
            goto done;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t b = 0; b < nb; b++)
                if (ones[b] != 0 && ones[b] != n)
                    stream[k++] = bits[i * nb + b];
        for (size_t off = 0; off + FIPS_BLOCK <= k && r->fips_blocks < 1000; off += FIPS_BLOCK)
            fips_block(stream + off, r);
    }

done:
    r->clock_like = n >= 2 && find_clock(ids, n, now, &r->clock_offset);
    /* A clock-based ID: only the characters outside a 13-character time
     * field can carry entropy. */
    if (r->clock_like) {
        double rest = (double)(len > 13 ? len - 13 : 0) * (bpc ? bpc : 3.32);
        if (r->effective_bits > rest || r->effective_bits == 0)
            r->effective_bits = rest;
    }
    /* Sample sizes: one FIPS block, and a 1% per-bit bias at 4 sigma
     * (z = 2 * eps * sqrt(N) >= 4, so N = 4 / eps^2). */
    size_t per = r->total_bits && n ? r->total_bits / n : nb;
    r->samples_for_fips = per ? (FIPS_BLOCK + per - 1) / per : 0;
    r->samples_for_bias = 40000;
    free(bits);
    free(ones);
    free(stream);
}

/* The verdict, in words, for the report; true when the sample fails. */
bool audit_random_verdict(const audit_random *r, char *why, size_t cap)
{
    size_t off = 0;
    bool fail = false;
#define WHY(...) do { \
        int w_ = snprintf(why + off, off < cap ? cap - off : 0, __VA_ARGS__); \
        if (w_ > 0) off += (size_t)w_; \
        fail = true; \
    } while (0)
    why[0] = '\0';
    if (r->counter_like)
        WHY("%s: a counter or a slowly changing value; ",
            r->monotonic ? "IDs are issued in increasing order"
                         : "consecutive IDs differ in few bits");
    if (r->clock_like)
        WHY("characters %zu.. decode to the current time in every sample; ",
            r->clock_offset);
    if (r->fips_blocks) {
        /* One test failing in one block happens to random data about
         * once in 700 blocks (FIPS 140-2 was made for continuous testing),
         * so the verdict needs more: failures in more than one block (and
         * more than a twentieth of them), or several tests failing in one. */
        unsigned lim = r->fips_blocks / 20u > 1 ? r->fips_blocks / 20u : 1;
        if (r->fips_blocks_failed > lim || r->fips_worst_block >= 2)
            WHY("FIPS 140-2 failed in %u of %u blocks (monobit %u, poker %u, runs %u, "
                "long run %u); ", r->fips_blocks_failed, r->fips_blocks, r->monobit_fail,
                r->poker_fail, r->runs_fail, r->long_run_fail);
    }
    if (r->bits_biased)
        WHY("%zu bit positions are biased (beyond %.1f sigma); ", r->bits_biased, BIAS_SIGMA);
    if (r->positions_biased)
        WHY("%u character positions fail the chi-square test; ", r->positions_biased);
    if (r->n >= 2 && r->effective_bits < 64)
        WHY("effective entropy %.0f bits is below 64; ", r->effective_bits);
#undef WHY
    if (off >= 2 && off < cap)
        why[off - 2] = '\0';
    return fail;
}
