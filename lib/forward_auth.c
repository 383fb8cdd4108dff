/*
 * forward_auth.c - the forward-auth decision (sess/forward_auth.h): one
 * owner for the rules GET /v1/auth and the nginx module both apply, so a
 * request gets the same answer whichever path it takes.
 *
 * Cookie tossing (RFC 6265bis section 8.6): every cookie named like ours,
 * across every Cookie line, is a candidate, tried in order until one
 * validates; at most SESS_FA_CANDIDATES_MAX are validated (each costs a
 * store read).  The method rule fails closed: any line that is not GET,
 * HEAD or OPTIONS makes the request unsafe, as do more lines than passed.
 * Unsafe requests validate with SESS_VALIDATE_NO_ROTATE (a request refused
 * for CSRF must not consume a rotation), then need a same-origin request
 * (cross-site request forgery: Sec-Fetch-Site and a full-origin Origin
 * comparison) and the session's CSRF token, compared in constant time.
 *
 * The forwarding trust rule (sess_fa_client_ip, sess_fa_self_origin) and
 * the user id's header form (sess_fa_user_value) live here too, so that
 * the daemon and the module cannot drift apart on either.
 *
 * No state, no locking, no allocation beyond sess_validate's.
 */
#include "sess/forward_auth.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- the forwarding trust rule ------------------------------------------ */

/* Copy "len" bytes of "s" to "out" if they are a textual IP address. */
static bool take_ip(const char *s, size_t len, char *out, size_t cap)
{
    char buf[SESS_IP_MAX + 1];
    unsigned char bin[16];
    if (s == NULL || len == 0 || len > SESS_IP_MAX || len >= cap)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, bin) != 1 &&
        inet_pton(AF_INET6, buf, bin) != 1)
        return false;
    memcpy(out, buf, len + 1);
    return true;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Walk the X-Forwarded-For entries from the right.  Returns 1 with the
 * client in "out", 0 when there were none, -1 when an entry is not an IP
 * address (a forged or broken chain: the caller then tries X-Real-IP,
 * then the peer).
 */
static int from_xff(const sess_fa_forwarded *f, char *out, size_t cap)
{
    bool any = false;
    for (size_t i = f->n_xff_lines; i-- > 0;) {
        const char *s = f->xff_lines[i];
        size_t end = s != NULL ? strlen(s) : 0;
        while (end > 0) {
            size_t start = end;
            while (start > 0 && s[start - 1] != ',')
                start--;
            size_t a = start;
            size_t b = end;
            while (a < b && is_ows(s[a]))
                a++;
            while (b > a && is_ows(s[b - 1]))
                b--;
            end = start > 0 ? start - 1 : 0;
            if (a == b)
                continue;
            if (!take_ip(s + a, b - a, out, cap))
                return -1;
            any = true;
            if (f->trusted == NULL || !f->trusted(f->trusted_arg, out))
                return 1;
            /* A trusted hop: keep walking left.  If every hop is trusted
             * the leftmost one stays in "out". */
        }
    }
    return any ? 1 : 0;
}

void sess_fa_client_ip(const sess_fa_forwarded *f, char *out, size_t cap)
{
    if (f->peer_trusted) {
        if (from_xff(f, out, cap) == 1)
            return;
        if (f->real_ip != NULL &&
            take_ip(f->real_ip, strlen(f->real_ip), out, cap))
            return;
    }
    if (f->peer_ip == NULL ||
        !take_ip(f->peer_ip, strlen(f->peer_ip), out, cap)) {
        /* A local peer (Unix socket) without forwarding headers. */
        (void)take_ip("127.0.0.1", 9, out, cap);
    }
}

/* The rightmost comma-separated entry of the last line (the one the
 * nearest hop - a trusted proxy - wrote), OWS trimmed. */
static bool last_entry(const char *const *lines, size_t n, const char **out,
                       size_t *len)
{
    if (n == 0 || lines[n - 1] == NULL)
        return false;
    const char *v = lines[n - 1];
    size_t e = strlen(v);
    while (e > 0 && is_ows(v[e - 1]))
        e--;
    size_t b = e;
    while (b > 0 && v[b - 1] != ',')
        b--;
    while (b < e && is_ows(v[b]))
        b++;
    if (b == e)
        return false;
    *out = v + b;
    *len = e - b;
    return true;
}

bool sess_fa_self_origin(const sess_fa_forwarded *f, sess_origin *out)
{
    bool https = f->https;
    const char *h = NULL;
    size_t hlen = 0;
    if (f->peer_trusted) {
        const char *p;
        size_t plen;
        if (last_entry(f->proto_lines, f->n_proto_lines, &p, &plen)) {
            if (plen == 5 && strncasecmp(p, "https", 5) == 0)
                https = true;
            else if (plen == 4 && strncasecmp(p, "http", 4) == 0)
                https = false;
            else
                return false;
        }
        (void)last_entry(f->fhost_lines, f->n_fhost_lines, &h, &hlen);
    }
    if (h == NULL) {
        if (f->host == NULL)
            return false;
        h = f->host;
        hlen = strlen(h);
    }
    return sess_origin_from_host(https, h, hlen, out) == SESS_OK;
}

/* ---- the user id as a header value ---------------------------------------- */

/* A user id sent as is: visible ASCII without '%' and '\'' (so it can
 * never look like the encoded form), with no leading or trailing space. */
static bool plain_user(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7E || c == '%' || c == '\'')
            return false;
    }
    return true;
}

/* RFC 8187 section 3.2.1 attr-char: sent as is inside an ext-value. */
static bool attr_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || (c != 0 && strchr("!#$&+-.^_`|~", c));
}

int sess_fa_user_value(const char *user, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char prefix[] = "utf-8''";
    size_t o = 0;

    if (plain_user(user, len)) {
        if (len >= cap)
            return -1;
        memcpy(out, user, len);
        out[len] = '\0';
        return (int)len;
    }
    if (cap < sizeof(prefix))
        return -1;
    memcpy(out, prefix, sizeof(prefix) - 1);
    o = sizeof(prefix) - 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)user[i];
        if (o + 4 > cap)
            return -1;
        if (attr_char(c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return (int)o;
}

/* ---- the decision --------------------------------------------------------- */

size_t sess_fa_candidates(const sess_fa_request *req, const char **ids,
                          size_t *lens, size_t cap, size_t *seen)
{
    size_t n = 0;
    *seen = 0;
    for (size_t l = 0; l < req->n_cookie_lines; l++) {
        const char *line = req->cookie_lines[l];
        if (line == NULL)
            continue;
        size_t pos = 0, hlen = strlen(line);
        const char *v;
        size_t vlen;
        /* A line that is not a valid Cookie header is skipped; the
         * others still count. */
        while (sess_cookie_next(line, hlen, req->cookie_name, &pos, &v,
                                &vlen) == SESS_OK) {
            (*seen)++;
            if (n < cap) {
                ids[n] = v;
                lens[n] = vlen;
                n++;
            }
        }
    }
    return n;
}

static bool method_unsafe(const sess_fa_request *req)
{
    if (req->methods_truncated)
        return true;   /* more lines than we read: do not guess */
    for (size_t i = 0; i < req->n_method_lines; i++)
        if (req->method_lines[i] != NULL &&
            !sess_method_is_safe(req->method_lines[i]))
            return true;
    return req->n_method_lines == 0 && req->own_method != NULL &&
           !sess_method_is_safe(req->own_method);
}

static sess_fa_outcome csrf_refused(sess_ctx *ctx, const sess_fa_request *req,
                                    sess_fa_result *out, const char *detail)
{
    sess_event ev = {
        .type = SESS_EVENT_CSRF_FAILURE,
        .at = sess_ctx_now(ctx),
        .handle = out->view.handle,
        .user_id = out->view.user_id,
        .user_id_len = out->view.user_id_len,
        .ip = req->client_ip,
        .detail = detail,
    };
    sess_emit_event(ctx, &ev);
    out->csrf_detail = detail;
    out->outcome = SESS_FA_CSRF;
    return SESS_FA_CSRF;
}

sess_fa_outcome sess_forward_auth_decide(sess_ctx *ctx, bool csrf_enabled,
                                         const sess_fa_request *req,
                                         sess_fa_result *out)
{
    const char *ids[SESS_FA_CANDIDATES_MAX];
    size_t lens[SESS_FA_CANDIDATES_MAX];

    memset(out, 0, sizeof(*out));
    out->valid = -1;
    out->rc = SESS_REJECTED;
    out->outcome = SESS_FA_NO_SESSION;
    size_t n = sess_fa_candidates(req, ids, lens, SESS_FA_CANDIDATES_MAX,
                                  &out->seen);
    if (n == 0)
        return out->outcome;

    out->unsafe = csrf_enabled && method_unsafe(req);
    sess_client client = {req->client_ip, req->user_agent};
    for (size_t i = 0; i < n; i++) {
        out->err.code = 0;
        out->err.msg[0] = '\0';
        sess_view_clear(&out->view);
        out->tried = i + 1;
        /* The ID's form is checked by sess_validate (an unknown-form ID
         * is rejected there), so it is not decoded twice on this path. */
        out->rc = sess_validate(ctx, ids[i], lens[i], &client,
                                out->unsafe ? SESS_VALIDATE_NO_ROTATE : 0,
                                &out->view, &out->err);
        if (out->rc == SESS_OK)
            out->valid = (long)i;
        if (out->rc != SESS_REJECTED && out->rc != SESS_EINVAL)
            break;   /* valid, or the store failed: stop either way */
    }
    if (out->rc == SESS_REJECTED || out->rc == SESS_EINVAL)
        return out->outcome;   /* SESS_FA_NO_SESSION */
    if (out->rc != SESS_OK) {
        out->outcome = SESS_FA_ERROR;
        return out->outcome;
    }

    if (out->unsafe) {
        if (!sess_same_origin_ok(req->origin, req->sec_fetch_site, req->self,
                                 req->allowed, req->n_allowed))
            return csrf_refused(ctx, req, out, "cross-site origin");
        if (req->csrf_token == NULL ||
            !sess_csrf_matches(&out->view, req->csrf_token,
                               strlen(req->csrf_token)))
            return csrf_refused(ctx, req, out, "csrf token");
    }

    const sess_issued *next = out->view.rotated ? &out->view.successor : NULL;
    out->csrf = next != NULL ? next->csrf_token : out->view.csrf_token;
    if (next != NULL) {
        int len = sess_issued_cookie(ctx, req->cookie, next, out->set_cookie,
                                     sizeof(out->set_cookie));
        if (len <= 0) {
            /* rc stays SESS_OK: the session is valid, the answer is an
             * internal error (500), not the store's. */
            out->err.code = len < 0 ? len : SESS_ETOOBIG;
            snprintf(out->err.msg, sizeof(out->err.msg), "%s",
                     "successor cookie does not fit");
            out->outcome = SESS_FA_ERROR;
            return out->outcome;
        }
        out->set_cookie_len = len;
    }
    out->outcome = SESS_FA_OK;
    return out->outcome;
}

void sess_fa_result_clear(sess_fa_result *r)
{
    if (r == NULL)
        return;
    sess_view_clear(&r->view);
    sess_wipe(r->set_cookie, sizeof(r->set_cookie));
    r->set_cookie_len = 0;
    r->csrf = NULL;
}
