/*
 * set_cookie.c - the Set-Cookie header parser (RFC 6265bis section 5.6)
 * and the cookie-date algorithm (section 5.1.1).  Every loop is bounded by
 * the input length, which is itself bounded; nothing is allocated.
 */
#include <string.h>

#include "sess/set_cookie.h"
#include "util.h"

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* Section 5.6 step 1: a control character (other than HTAB) anywhere
 * means the whole header is ignored (header-smuggling defence: a NUL or
 * CR/LF would split the line differently in another parser). */
static bool has_ctl(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return true;
    }
    return false;
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_wsp(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_wsp((*s)[*n - 1]))
        (*n)--;
}

static bool ieq(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    if (n != l)
        return false;
    for (size_t i = 0; i < n; i++) {
        char a = s[i], b = lit[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (char)(b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

static void copy_out(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* ---- cookie-date (section 5.1.1) ------------------------------------ */

static bool is_delim(unsigned char c)
{
    return c == 0x09 || (c >= 0x20 && c <= 0x2f) || (c >= 0x3b && c <= 0x40) ||
           (c >= 0x5b && c <= 0x60) || (c >= 0x7b && c <= 0x7e);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* 1*2DIGIT or 2*4DIGIT etc: count leading digits of token, value in *v. */
static size_t lead_digits(const char *t, size_t n, int *v)
{
    size_t i = 0;
    *v = 0;
    while (i < n && i < 5 && is_digit(t[i])) {
        *v = *v * 10 + (t[i] - '0');
        i++;
    }
    return i;
}

/* time = hms-time ( non-digit *OCTET ); hms-time = 1*2DIGIT ":" 1*2DIGIT ":" 1*2DIGIT */
static bool parse_time(const char *t, size_t n, int *h, int *m, int *s)
{
    int *parts[3] = {h, m, s};
    size_t pos = 0;
    for (int k = 0; k < 3; k++) {
        size_t d = lead_digits(t + pos, n - pos, parts[k]);
        if (d < 1 || d > 2)
            return false;
        pos += d;
        if (k < 2) {
            if (pos >= n || t[pos] != ':')
                return false;
            pos++;
        }
    }
    return pos == n || !is_digit(t[pos]);
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* Howard Hinnant's days_from_civil (public domain algorithm). */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int sess_cookie_date_parse(const char *s, size_t len, int64_t *out)
{
    static const char months[12][4] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool f_time = false, f_day = false, f_month = false, f_year = false;
    int hh = 0, mm = 0, ss = 0, day = 0, month = 0, year = 0;
    size_t i = 0;

    if (len > SESS_SET_COOKIE_ATTR_MAX)
        return SESS_EINVAL;
    while (i < len) {
        while (i < len && is_delim((unsigned char)s[i]))
            i++;
        size_t start = i;
        while (i < len && !is_delim((unsigned char)s[i]))
            i++;
        const char *t = s + start;
        size_t n = i - start;
        int v;
        size_t d;
        if (n == 0)
            continue;
        if (!f_time && parse_time(t, n, &hh, &mm, &ss)) {
            f_time = true;
            continue;
        }
        d = lead_digits(t, n, &v);
        if (!f_day && d >= 1 && d <= 2 && (d == n || !is_digit(t[d]))) {
            f_day = true;
            day = v;
            continue;
        }
        if (!f_month && n >= 3) {
            bool hit = false;
            for (int k = 0; k < 12; k++) {
                if (ieq(t, 3, months[k])) {
                    month = k + 1;
                    hit = true;
                    break;
                }
            }
            if (hit) {
                f_month = true;
                continue;
            }
        }
        if (!f_year && d >= 2 && d <= 4 && (d == n || !is_digit(t[d]))) {
            f_year = true;
            year = v;
            continue;
        }
    }
    if (f_year && year >= 70 && year <= 99)
        year += 1900;
    else if (f_year && year >= 0 && year <= 69)
        year += 2000;
    if (!f_time || !f_day || !f_month || !f_year || day < 1 || day > 31 ||
        year < 1601 || hh > 23 || mm > 59 || ss > 59)
        return SESS_EINVAL;
    /* A date that does not exist (31 April, 29 February 2023) fails. */
    if (day > mdays[month - 1] || (month == 2 && day == 29 && !leap(year)))
        return SESS_EINVAL;
    *out = days_from_civil(year, (unsigned)month, (unsigned)day) * 86400 +
           hh * 3600 + mm * 60 + ss;
    return SESS_OK;
}

/* ---- Set-Cookie (section 5.6) ------------------------------------- */

typedef void (*attr_fn)(sess_set_cookie *c, const char *v, size_t n);

static void a_expires(sess_set_cookie *c, const char *v, size_t n)
{
    int64_t t;
    if (sess_cookie_date_parse(v, n, &t) == SESS_OK) {
        c->has_expires = true;
        c->expires = t;
    }
}

static void a_max_age(sess_set_cookie *c, const char *v, size_t n)
{
    size_t i = 0;
    bool neg = false;
    int64_t x = 0;
    if (n == 0 || !(is_digit(v[0]) || v[0] == '-'))
        return;
    if (v[0] == '-') {
        neg = true;
        i = 1;
        if (n == 1)
            return;
    }
    for (; i < n; i++) {
        if (!is_digit(v[i]))
            return;
        /* Saturate instead of overflowing (integer-overflow attack on
         * the expiry arithmetic of whoever uses the result). */
        if (x < INT64_MAX / 20)
            x = x * 10 + (v[i] - '0');
    }
    c->has_max_age = true;
    c->max_age = neg ? (x == 0 ? 0 : -x) : x;
}

static void a_domain(sess_set_cookie *c, const char *v, size_t n)
{
    if (n == 0)
        return;
    if (v[0] == '.') {
        v++;
        n--;
    }
    copy_out(c->domain, sizeof c->domain, v, n);
    for (char *p = c->domain; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    c->has_domain = true;
}

static void a_path(sess_set_cookie *c, const char *v, size_t n)
{
    if (n == 0 || v[0] != '/') {
        c->has_path = false; /* the default-path applies */
        c->path[0] = '\0';
        return;
    }
    copy_out(c->path, sizeof c->path, v, n);
    c->has_path = true;
}

static void a_secure(sess_set_cookie *c, const char *v, size_t n)
{
    (void)v;
    (void)n;
    c->secure = true;
}

static void a_http_only(sess_set_cookie *c, const char *v, size_t n)
{
    (void)v;
    (void)n;
    c->http_only = true;
}

static void a_same_site(sess_set_cookie *c, const char *v, size_t n)
{
    static const struct {
        const char *name;
        sess_set_cookie_same_site v;
    } values[] = {{"none", SESS_SC_SAME_SITE_NONE},
                  {"strict", SESS_SC_SAME_SITE_STRICT},
                  {"lax", SESS_SC_SAME_SITE_LAX}};
    c->same_site = SESS_SC_SAME_SITE_DEFAULT;
    for (size_t k = 0; k < sizeof values / sizeof values[0]; k++)
        if (ieq(v, n, values[k].name))
            c->same_site = values[k].v;
    copy_out(c->same_site_raw, sizeof c->same_site_raw, v, n);
}

static const struct {
    const char *name;
    attr_fn fn;
} attrs[] = {
    {"expires", a_expires},   {"max-age", a_max_age}, {"domain", a_domain},
    {"path", a_path},         {"secure", a_secure},   {"httponly", a_http_only},
    {"samesite", a_same_site},
};

int sess_set_cookie_parse(const char *line, size_t len, sess_set_cookie *out, sess_err *err)
{
    const char *nv, *name, *value, *semi, *eq;
    size_t nv_len, name_len, value_len;

    if (!line || !out)
        return sess__fail(err, SESS_EINVAL, "set-cookie: null argument");
    memset(out, 0, sizeof *out);
    if (len > SESS_SET_COOKIE_LINE_MAX)
        return sess__fail(err, SESS_EINVAL, "set-cookie: header longer than %d bytes",
                          SESS_SET_COOKIE_LINE_MAX);
    if (has_ctl(line, len))
        return sess__fail(err, SESS_EINVAL, "set-cookie: control character");
    semi = memchr(line, ';', len);
    nv = line;
    nv_len = semi ? (size_t)(semi - line) : len;
    eq = memchr(nv, '=', nv_len);
    if (!eq) {
        /* 6265bis: no '=' gives a nameless cookie whose value is it all. */
        name = nv;
        name_len = 0;
        value = nv;
        value_len = nv_len;
    } else {
        name = nv;
        name_len = (size_t)(eq - nv);
        value = eq + 1;
        value_len = nv_len - name_len - 1;
    }
    trim(&name, &name_len);
    trim(&value, &value_len);
    if (name_len == 0 && value_len == 0)
        return sess__fail(err, SESS_EINVAL, "set-cookie: empty name and value");
    if (name_len + value_len > SESS_SET_COOKIE_NAME_VALUE_MAX)
        return sess__fail(err, SESS_EINVAL, "set-cookie: name and value over %d bytes",
                          SESS_SET_COOKIE_NAME_VALUE_MAX);
    copy_out(out->name, sizeof out->name, name, name_len);
    copy_out(out->value, sizeof out->value, value, value_len);

    /* Section 5.6 step 8: the unparsed attributes, one ';' at a time. */
    const char *p = semi ? semi + 1 : line + len;
    const char *end = line + len;
    while (p < end) {
        const char *s2 = memchr(p, ';', (size_t)(end - p));
        const char *av_end = s2 ? s2 : end;
        const char *an = p, *av = NULL;
        size_t an_len, av_len = 0;
        const char *e2 = memchr(p, '=', (size_t)(av_end - p));
        if (e2) {
            an_len = (size_t)(e2 - p);
            av = e2 + 1;
            av_len = (size_t)(av_end - av);
        } else {
            an_len = (size_t)(av_end - p);
            av = av_end;
        }
        trim(&an, &an_len);
        trim(&av, &av_len);
        p = s2 ? s2 + 1 : end;
        if (av_len > SESS_SET_COOKIE_ATTR_MAX)
            continue; /* 6265bis step: over-long attribute values are ignored */
        for (size_t k = 0; k < sizeof attrs / sizeof attrs[0]; k++) {
            if (ieq(an, an_len, attrs[k].name)) {
                attrs[k].fn(out, av, av_len);
                break;
            }
        }
    }
    return SESS_OK;
}
