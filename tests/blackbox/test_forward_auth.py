"""test_forward_auth.py - GET /v1/auth as nginx auth_request, Traefik forwardAuth
and Envoy ext_authz call it (docs/api.md "Forward-auth"): the cookie, the client
address (peer, or X-Forwarded-For from a trusted proxy), CSRF for unsafe
methods, cross-site refusal, rotation through Set-Cookie, keep-alive."""

import json
import time

import harness
from harness import LOOPBACK_CLIENT, ID_RE, SessiondTestCase, cookie_value

UA = LOOPBACK_CLIENT["user_agent"]


class ForwardAuthTest(SessiondTestCase):

    def setUp(self):
        self.d = self.start()
        self.s = self.d.create_ok("alice", client=LOOPBACK_CLIENT)
        self.name = cookie_value(self.s["set_cookie"])[0]
        self.cookie = "%s=%s" % (self.name, self.s["session_id"])

    def assert401(self, r):
        self.assertEqual(r.status, 401, r)
        self.assertIsNone(r.header("X-Session-User"), "no identity on a 401")
        self.assertIsNone(r.header("X-Session-Handle"))
        # "401 with no body details beyond the error code": the proxy in front
        # must not learn (or pass on) why the session was refused.
        if r.body:
            self.assertIsInstance(r.json, dict, r)
            self.assertNotIn("reason", r.json, "forward-auth 401 tells the reason: %r" % r.json)

    def test_valid_cookie(self):
        r = self.d.auth(self.cookie)
        self.assertStatus(r, 200)
        self.assertEqual(r.header("X-Session-User"), "alice")
        self.assertEqual(r.header("X-Session-Handle"), self.s["handle"])
        self.assertEqual(r.header_all("Set-Cookie"), [], "no Set-Cookie without rotation")
        # Among other cookies, in any position, with spaces.
        for h in ("a=1; %s; b=2" % self.cookie, "theme=dark;%s" % self.cookie,
                  "%s ; x=y" % self.cookie):
            r = self.d.auth(h)
            self.assertStatus(r, 200, "Cookie: %s -> %r" % (h, r))

    def test_unicode_user_header(self):
        s = self.d.create_ok("J\u00fcrgen", client=LOOPBACK_CLIENT)
        r = self.d.auth("%s=%s" % (self.name, s["session_id"]))
        self.assertStatus(r, 200)
        self.assertTrue(r.header("X-Session-User"), "X-Session-User present")

    def test_user_header_is_self_delimiting(self):
        """Issue 10, item 11: "zo\u00eb" and the literal "zo%C3%AB" must not
        look alike; the value alone says how to decode it (RFC 8187)."""
        from urllib.parse import unquote
        cases = {
            "zo\u00eb": "utf-8''zo%C3%AB",
            "zo%C3%AB": "utf-8''zo%25C3%25AB",
            "alice@example.com": "alice@example.com",
            "user-42_x.y": "user-42_x.y",
            "it's": "utf-8''it%27s",
            "John Smith": "utf-8''John%20Smith",
            "utf-8''x": "utf-8''utf-8%27%27x",
            "a\r\nX-Evil: 1": "utf-8''a%0D%0AX-Evil%3A%201",
        }
        for user, want in cases.items():
            with self.subTest(user=user):
                s = self.d.create_ok(user, client=LOOPBACK_CLIENT)
                r = self.d.auth("%s=%s" % (self.name, s["session_id"]))
                self.assertStatus(r, 200)
                got = r.header("X-Session-User")
                self.assertEqual(got, want)
                self.assertIsNone(r.header("X-Session-User-Encoding"))
                self.assertIsNone(r.header("X-Evil"))
                # The decoding docs/api.md gives.
                if got.startswith("utf-8''"):
                    dec = unquote(got[len("utf-8''"):], encoding="utf-8", errors="strict")
                else:
                    dec = got
                self.assertEqual(dec, user)

    def test_cookie_tossing_every_candidate_tried(self):
        """Issue 10, item 9 (RFC 6265bis section 8.6): a sibling subdomain's
        cookie of the same name may come first, in the same Cookie line or
        another; each candidate is tried, up to 8."""
        sid = self.s["session_id"]
        tossed = "%s=%s" % (self.name, "A" * 43)
        for h in ("%s; %s" % (tossed, self.cookie),
                  "%s; theme=dark; %s=garbage; %s" % (tossed, self.name, self.cookie)):
            self.assertStatus(self.d.auth(h), 200, h)
        # Two Cookie header lines (HTTP/1.1 clients may send them).
        raw = ("GET /v1/auth HTTP/1.1\r\nHost: x\r\nUser-Agent: %s\r\n"
               "Cookie: %s\r\nCookie: %s\r\nConnection: close\r\n\r\n"
               % (UA, tossed, self.cookie)).encode()
        r = self.d.raw(raw)
        self.assertIsNotNone(r)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("X-Session-User"), "alice")
        # At most 8 are validated: the ninth is never looked at.
        nine = "; ".join([tossed] * 8 + [self.cookie])
        self.assert401(self.d.auth(nine))
        eight = "; ".join([tossed] * 7 + [self.cookie])
        self.assertStatus(self.d.auth(eight), 200)
        # A look-alike name is not ours.
        self.assert401(self.d.auth("%s=%s" % (self.name.upper(), sid)))
        # Tossing is reported (security events go to stderr here), with the
        # handle of the session that validated, never an ID.
        deadline = time.monotonic() + 5
        evs = []
        while time.monotonic() < deadline:
            evs = [json.loads(x) for x in self.d.stderr_text().splitlines()
                   if x.startswith("{") and '"cookie_tossing"' in x]
            if len(evs) >= 2:
                break
            time.sleep(0.2)
        self.assertTrue(any(e["handle"] == self.s["handle"] and
                            e["detail"].startswith("2 session cookies, number 2 valid")
                            for e in evs), evs)
        self.assertTrue(any(e["handle"] is None and "none valid" in e["detail"]
                            for e in evs), evs)
        self.assertTrue(all(e["ip"] == "127.0.0.1" for e in evs), evs)
        self.d.assert_no_ids_in(self.d.stderr_text(), "stderr")

    def test_method_rule_fails_closed(self):
        """Issue 10, item 10: unsafe when either method header says so;
        TRACE, CONNECT and unknown methods are unsafe."""
        tok = self.s["csrf_token"]
        for hdrs in ({"X-Forwarded-Method": "GET", "X-Original-Method": "POST"},
                     {"X-Forwarded-Method": "POST", "X-Original-Method": "GET"},
                     {"X-Forwarded-Method": "TRACE"},
                     {"X-Original-Method": "CONNECT"},
                     {"X-Forwarded-Method": "BREW"},
                     {"X-Forwarded-Method": "get"},
                     {"X-Forwarded-Method": ""}):
            with self.subTest(hdrs=hdrs):
                self.assertEqual(self.d.auth(self.cookie, hdrs).status, 403)
                r = self.d.auth(self.cookie, dict(hdrs, **{"X-CSRF-Token": tok}))
                self.assertStatus(r, 200)
        for hdrs in ({}, {"X-Forwarded-Method": "GET", "X-Original-Method": "HEAD"},
                     {"X-Original-Method": "OPTIONS"}):
            self.assertStatus(self.d.auth(self.cookie, hdrs), 200, hdrs)

    def test_refusals(self):
        cases = {
            "no cookie": None,
            "empty": "",
            "other cookie only": "theme=dark",
            "empty value": self.name + "=",
            "garbage": self.name + "=garbage",
            "never issued": self.name + "=" + "A" * 43,
            "foreign characters": self.name + "=" + self.s["session_id"][:42] + "!",
            "percent": self.name + "=" + self.s["session_id"][:41] + "%2",
            "42 chars": self.name + "=" + self.s["session_id"][:42],
            "44 chars": self.name + "=" + self.s["session_id"] + "A",
            "wrong name": "x" + self.cookie,
            "oversized header": "pad=" + "p" * 10240 + "; " + self.cookie,
        }
        for what, h in cases.items():
            with self.subTest(what):
                self.assert401(self.d.auth(h))
        # None of that harmed the session.
        self.assertStatus(self.d.auth(self.cookie), 200)

    def test_destroyed_session_refused_at_once(self):
        self.assertStatus(self.d.auth(self.cookie), 200)
        self.assertStatus(self.d.destroy(self.s["session_id"]), 200)
        self.assert401(self.d.auth(self.cookie))

    def test_user_agent_binding(self):
        r = self.d.auth(self.cookie, headers={"User-Agent": "curl/8.0"})
        self.assert401(r)

    def test_unsafe_method_needs_csrf_token(self):
        tok = self.s["csrf_token"]
        for hdr in ("X-Forwarded-Method", "X-Original-Method"):
            with self.subTest(hdr):
                self.assertEqual(self.d.auth(self.cookie, {hdr: "POST"}).status, 403)
                self.assertEqual(self.d.auth(self.cookie, {hdr: "DELETE",
                                                           "X-CSRF-Token": "A" * 43}).status,
                                 403)
                self.assertEqual(self.d.auth(self.cookie, {hdr: "PUT",
                                                           "X-CSRF-Token": tok[:-1]}).status,
                                 403)
                r = self.d.auth(self.cookie, {hdr: "POST", "X-CSRF-Token": tok})
                self.assertStatus(r, 200)
                self.assertEqual(r.header("X-Session-User"), "alice")
                # Safe methods need no token.
                for m in ("GET", "HEAD", "OPTIONS"):
                    self.assertStatus(self.d.auth(self.cookie, {hdr: m}), 200)
        # The CSRF failure did not kill the session; no session -> 401 before 403.
        self.assertStatus(self.d.auth(self.cookie), 200)
        self.assert401(self.d.auth(None, {"X-Forwarded-Method": "POST"}))

    def test_cross_site_refused_for_unsafe_methods(self):
        tok = self.s["csrf_token"]
        post = {"X-Forwarded-Method": "POST", "X-CSRF-Token": tok}
        r = self.d.auth(self.cookie, dict(post, **{"Sec-Fetch-Site": "cross-site"}))
        self.assertEqual(r.status, 403, r)
        for site in ("same-origin", "none"):
            r = self.d.auth(self.cookie, dict(post, **{"Sec-Fetch-Site": site}))
            self.assertStatus(r, 200, "Sec-Fetch-Site: %s" % site)
        r = self.d.auth(self.cookie, dict(post, **{"Origin": "https://evil.example",
                                                   "Host": "app.example"}))
        self.assertEqual(r.status, 403, r)
        r = self.d.auth(self.cookie, dict(post, **{"Origin": "https://app.example.evil.example",
                                                   "Host": "app.example"}))
        self.assertEqual(r.status, 403, r)
        # The request's own origin is Host with the configured scheme (http
        # in development): the full origin must match.
        r = self.d.auth(self.cookie, dict(post, **{"Origin": "http://app.example",
                                                   "Host": "app.example"}))
        self.assertStatus(r, 200)
        for origin in ("https://app.example", "http://app.example:8080", "null"):
            r = self.d.auth(self.cookie, dict(post, **{"Origin": origin,
                                                       "Host": "app.example"}))
            self.assertEqual(r.status, 403, "Origin %s: %r" % (origin, r))
        # X-Forwarded-Host and -Proto from an untrusted peer are ignored.
        r = self.d.auth(self.cookie, dict(post, **{"Origin": "https://app.example",
                                                   "Host": "sessiond.internal",
                                                   "X-Forwarded-Host": "app.example",
                                                   "X-Forwarded-Proto": "https"}))
        self.assertEqual(r.status, 403, r)
        # A cross-site GET (a link from another site) is a navigation: allowed.
        r = self.d.auth(self.cookie, {"Sec-Fetch-Site": "cross-site",
                                      "Origin": "https://evil.example",
                                      "Host": "app.example"})
        self.assertStatus(r, 200)

    def test_forwarded_for_ignored_without_trusted_proxy(self):
        # The peer (127.0.0.1) is the client; a forged X-Forwarded-For is ignored.
        r = self.d.auth(self.cookie, {"X-Forwarded-For": "198.51.100.10",
                                      "X-Real-IP": "198.51.100.10"})
        self.assertStatus(r, 200)
        s = self.d.create_ok("bob", client={"ip": "198.51.100.10", "user_agent": UA})
        r = self.d.auth("%s=%s" % (self.name, s["session_id"]),
                        {"X-Forwarded-For": "198.51.100.10"})
        self.assert401(r)


class TrustedProxyTest(SessiondTestCase):

    def test_forwarded_for_from_trusted_proxy(self):
        d = self.start(sets=["binding.trusted_proxies=127.0.0.1/32"])
        s = d.create_ok("alice", client={"ip": "198.51.100.10", "user_agent": UA})
        c = "%s=%s" % (cookie_value(s["set_cookie"])[0], s["session_id"])
        self.assertStatus(d.auth(c, {"X-Forwarded-For": "198.51.100.10"}), 200)
        self.assertStatus(d.auth(c, {"X-Forwarded-For": "198.51.100.77"}), 200)
        self.assertStatus(d.auth(c, {"X-Real-IP": "198.51.100.10"}), 200)
        r = d.auth(c, {"X-Forwarded-For": "203.0.113.5"})
        self.assertEqual(r.status, 401, "XFF from another /24 is a binding mismatch: %r" % r)
        # Without any forwarding header the peer itself is the client.
        s2 = d.create_ok("bob", client={"ip": "198.51.100.10", "user_agent": UA})
        c2 = "%s=%s" % (cookie_value(s2["set_cookie"])[0], s2["session_id"])
        self.assertEqual(d.auth(c2).status, 401)


class ForwardedOriginTest(SessiondTestCase):

    def test_forwarded_host_and_proto_from_trusted_proxy(self):
        """X-Forwarded-Host/-Proto follow the X-Forwarded-For trust rule."""
        d = self.start(sets=["binding.trusted_proxies=127.0.0.1/32"])
        s = d.create_ok("alice", client=LOOPBACK_CLIENT)
        c = "%s=%s" % (cookie_value(s["set_cookie"])[0], s["session_id"])
        post = {"X-Forwarded-Method": "POST", "X-CSRF-Token": s["csrf_token"],
                "Host": "sessiond.internal:7700"}
        fwd = {"X-Forwarded-Host": "app.example", "X-Forwarded-Proto": "https"}
        ok = [("https://app.example", fwd),
              ("https://app.example:443", fwd),
              ("http://app.example", {"X-Forwarded-Host": "app.example"}),
              # The nearest (rightmost) entry is the one a trusted hop wrote.
              ("https://app.example", {"X-Forwarded-Host": "evil.example, app.example",
                                       "X-Forwarded-Proto": "http, https"})]
        bad = [("https://evil.example", fwd),
               ("http://app.example", fwd),
               ("https://app.example:8443", fwd),
               ("https://app.example", {"X-Forwarded-Host": "app.example",
                                        "X-Forwarded-Proto": "gopher"}),
               # Not the leftmost entry (a client may have sent it).
               ("https://app.example", {"X-Forwarded-Host": "app.example, evil.example",
                                        "X-Forwarded-Proto": "https"}),
               ("null", fwd)]
        for origin, h in ok:
            r = d.auth(c, dict(post, Origin=origin, **h))
            self.assertEqual(r.status, 200, "%s %r: %r" % (origin, h, r))
        for origin, h in bad:
            r = d.auth(c, dict(post, Origin=origin, **h))
            self.assertEqual(r.status, 403, "%s %r: %r" % (origin, h, r))

    def test_allowed_origins_full_origin(self):
        d = self.start(sets=["csrf.allowed_origins=https://partner.example:8443"])
        s = d.create_ok("alice", client=LOOPBACK_CLIENT)
        c = "%s=%s" % (cookie_value(s["set_cookie"])[0], s["session_id"])
        post = {"X-Forwarded-Method": "POST", "X-CSRF-Token": s["csrf_token"],
                "Host": "app.example"}
        self.assertStatus(d.auth(c, dict(post, Origin="https://partner.example:8443")), 200)
        for o in ("https://partner.example", "http://partner.example:8443"):
            self.assertEqual(d.auth(c, dict(post, Origin=o)).status, 403, o)


class RotationViaAuthTest(SessiondTestCase):

    def test_rotation_sets_cookie(self):
        d = self.start(sets=["session.rotate_interval=4", "session.rotation_grace=3"])
        s = d.create_ok("alice", client=LOOPBACK_CLIENT)
        name = cookie_value(s["set_cookie"])[0]
        time.sleep(5.2)
        r = d.auth("%s=%s" % (name, s["session_id"]))
        self.assertStatus(r, 200)
        scs = r.header_all("Set-Cookie")
        self.assertEqual(len(scs), 1, "rotation through forward-auth must set the new "
                         "cookie: %r" % (r.headers_list,))
        n, v = cookie_value(scs[0])
        self.assertEqual(n, name)
        self.assertRegex(v, ID_RE)
        self.assertNotEqual(v, s["session_id"])
        self.assertIn("httponly", scs[0].lower())
        r2 = d.auth("%s=%s" % (name, v))
        self.assertStatus(r2, 200)
        self.assertEqual(r2.header("X-Session-User"), "alice")
        # Within the grace window the old cookie still works and names the same successor.
        r3 = d.auth("%s=%s" % (name, s["session_id"]))
        self.assertStatus(r3, 200)
        for sc in r3.header_all("Set-Cookie"):
            self.assertEqual(cookie_value(sc)[1], v)


class KeepAliveTest(SessiondTestCase):

    def test_200_requests_on_one_connection(self):
        d = self.start()
        s = d.create_ok("alice", client=LOOPBACK_CLIENT)
        c = "%s=%s" % (cookie_value(s["set_cookie"])[0], s["session_id"])
        conn = d.connection()
        self.addCleanup(conn.close)
        local = None
        for i in range(200):
            r = d.auth(c, conn=conn)
            self.assertEqual(r.status, 200, "request %d: %r" % (i, r))
            self.assertNotEqual((r.header("Connection") or "").lower(), "close",
                                "request %d: the server closes keep-alive" % i)
            self.assertIsNotNone(conn.sock, "request %d: the connection was closed" % i)
            port = conn.sock.getsockname()[1]
            if local is None:
                local = port
            self.assertEqual(port, local, "request %d went over a new connection" % i)
        # Mixed 401 and 200 on the same connection keep it alive too.
        for i in range(20):
            r = d.auth(c if i % 2 else "x=y", conn=conn)
            self.assertEqual(r.status, 200 if i % 2 else 401)
            self.assertIsNotNone(conn.sock)
            self.assertEqual(conn.sock.getsockname()[1], local)


if __name__ == "__main__":
    harness.main()
