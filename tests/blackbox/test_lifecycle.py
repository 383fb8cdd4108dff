"""test_lifecycle.py - the session lifecycle through the JSON API (docs/api.md):
create, validate, regenerate, data with versions, destroy, CSRF verify, list,
revoke by handle and by user, health, readiness and metrics; and two sessiond
processes on one LMDB store, each refusing at once what the other revoked."""

import json
import re
import time

import harness
from harness import (DEFAULT_CLIENT, ID_RE, LOOPBACK_CLIENT, SessiondTestCase,
                     cookie_attrs, cookie_value)


class CreateTest(SessiondTestCase):

    def check_created(self, j, now):
        for k in ("session_id", "handle", "csrf_token", "set_cookie", "expires_at",
                  "idle_expires_at", "evicted"):
            self.assertIn(k, j, "create response lacks %r: %r" % (k, list(j)))
        self.assertId(j["session_id"])
        self.assertHandle(j["handle"])
        self.assertId(j["csrf_token"], "csrf_token")
        self.assertNotEqual(j["csrf_token"], j["session_id"])
        self.assertEqual(j["evicted"], [])
        for k in ("expires_at", "idle_expires_at"):
            self.assertIsInstance(j[k], int, "%s must be integer Unix seconds" % k)
            self.assertNotIsInstance(j[k], bool)
        self.assertIsInstance(j["set_cookie"], str)
        name, value = cookie_value(j["set_cookie"])
        self.assertEqual(value, j["session_id"], "set_cookie must carry the new ID")
        self.assertTrue(name)
        return name, cookie_attrs(j["set_cookie"])

    def test_create_development_profile(self):
        d = self.start()
        now = int(time.time())
        r = d.create("alice", data={"cart": [1, 2]})
        self.assertStatus(r, 201)
        ct = (r.header("Content-Type") or "").split(";")[0].strip()
        self.assertEqual(ct, "application/json")
        j = r.json
        name, attrs = self.check_created(j, now)
        # Defaults: idle 1800 s, absolute 86400 s.
        self.assertAlmostEqual(j["idle_expires_at"], now + 1800, delta=5)
        self.assertAlmostEqual(j["expires_at"], now + 86400, delta=5)
        # development: no Secure (plain http://localhost), no __Host- prefix,
        # but HttpOnly, SameSite=Lax, Path=/, no Domain, no Max-Age.
        self.assertNotIn("secure", attrs, "development cookie must not be Secure: %s"
                         % j["set_cookie"])
        self.assertFalse(name.startswith("__Host-"), j["set_cookie"])
        self.assertIn("httponly", attrs, j["set_cookie"])
        self.assertEqual(str(attrs.get("samesite", "")).lower(), "lax", j["set_cookie"])
        self.assertEqual(attrs.get("path"), "/", j["set_cookie"])
        self.assertNotIn("domain", attrs, j["set_cookie"])
        self.assertNotIn("max-age", attrs, "browser-session cookie expected: %s"
                         % j["set_cookie"])
        self.assertNotIn("expires", attrs, "browser-session cookie expected: %s"
                         % j["set_cookie"])

    def test_create_production_profile(self):
        d = self.start(env="production")
        r = d.create("alice")
        self.assertStatus(r, 201)
        name, attrs = self.check_created(r.json, int(time.time()))
        sc = r.json["set_cookie"]
        self.assertTrue(name.startswith("__Host-"), "production cookie needs __Host-: " + sc)
        self.assertIn("secure", attrs, sc)
        self.assertIn("httponly", attrs, sc)
        self.assertEqual(str(attrs.get("samesite", "")).lower(), "lax", sc)
        self.assertEqual(attrs.get("path"), "/", sc)
        self.assertNotIn("domain", attrs, sc)
        self.assertNotIn("max-age", attrs, sc)
        # remember-me: a persistent cookie, still with every other attribute.
        r = d.create("bob", remember=True)
        self.assertStatus(r, 201)
        sc = r.json["set_cookie"]
        attrs = cookie_attrs(sc)
        self.assertIn("max-age", attrs, "remember-me cookie needs Max-Age: " + sc)
        self.assertGreater(int(attrs["max-age"]), 0, sc)
        self.assertIn("secure", attrs, sc)
        self.assertTrue(cookie_value(sc)[0].startswith("__Host-"), sc)

    def test_remember_me_timeouts(self):
        d = self.start(sets=["session.remember_idle_timeout=1000",
                             "session.remember_absolute_timeout=5000"])
        now = int(time.time())
        j = d.create_ok("alice", remember=True)
        self.assertAlmostEqual(j["idle_expires_at"], now + 1000, delta=5)
        self.assertAlmostEqual(j["expires_at"], now + 5000, delta=5)
        attrs = cookie_attrs(j["set_cookie"])
        self.assertIn("max-age", attrs, "remember-me needs a persistent cookie: "
                      + j["set_cookie"])
        self.assertAlmostEqual(int(attrs["max-age"]), 5000, delta=5)
        # Without remember the ordinary pair applies and the cookie is a
        # browser-session cookie.
        j = d.create_ok("bob")
        self.assertAlmostEqual(j["idle_expires_at"], now + 1800, delta=5)
        self.assertNotIn("max-age", cookie_attrs(j["set_cookie"]))

    def test_ids_are_unique_and_random_looking(self):
        d = self.start(sets=["session.max_per_user=0"])
        ids, handles, tokens = set(), set(), set()
        for i in range(40):
            j = d.create_ok("u%d" % (i % 5))
            ids.add(j["session_id"])
            handles.add(j["handle"])
            tokens.add(j["csrf_token"])
        self.assertEqual(len(ids), 40)
        self.assertEqual(len(handles), 40)
        self.assertEqual(len(tokens), 40)
        # The handle is not a piece of the ID (it is derived from its hash).
        for i in ids:
            for h in handles:
                self.assertNotIn(h, i)
        # Every base64url character position should vary across 40 IDs.
        chars = set("".join(ids))
        self.assertGreater(len(chars), 50, "IDs use a suspiciously small alphabet")


class SessionTest(SessiondTestCase):

    def setUp(self):
        self.d = self.start()

    def test_validate_fields_and_data_roundtrip(self):
        data = {"cart": [1, 2, {"sku": "x"}], "name": "Zo\u00eb \u2603", "n": 1.5,
                "flag": True, "none": None, "nested": {"a": {"b": {"c": []}}}}
        now = int(time.time())
        j = self.d.create_ok("alice", data=data)
        r = self.d.validate(j["session_id"])
        self.assertStatus(r, 200)
        v = r.json
        for k in ("user_id", "handle", "data", "csrf_token", "elevated", "created_at",
                  "expires_at", "idle_expires_at"):
            self.assertIn(k, v, "validate response lacks %r" % k)
        self.assertEqual(v["user_id"], "alice")
        self.assertEqual(v["handle"], j["handle"])
        self.assertEqual(v["data"], data)
        self.assertEqual(v["csrf_token"], j["csrf_token"])
        self.assertIs(v["elevated"], False)
        self.assertAlmostEqual(v["created_at"], now, delta=5)
        self.assertEqual(v["expires_at"], j["expires_at"])
        self.assertGreaterEqual(v["idle_expires_at"], j["idle_expires_at"])
        self.assertNotIn("rotated", v, "no rotation expected within rotate_interval")
        self.assertNotIn("session_id", v, "validate must not echo the ID")

    def test_create_without_data_and_elevated(self):
        j = self.d.create_ok("eve", elevated=True)
        v = self.d.validate(j["session_id"]).json
        self.assertIs(v["elevated"], True)
        self.assertIn(v["data"], ({}, None), "absent data should read back empty")

    def test_unicode_user_id(self):
        user = "\u00e9mile/\u4e2d\u6587 +?&"
        j = self.d.create_ok(user)
        v = self.d.validate(j["session_id"])
        self.assertStatus(v, 200)
        self.assertEqual(v.json["user_id"], user)
        r = self.d.list_sessions(user)
        self.assertStatus(r, 200)
        self.assertEqual([s["handle"] for s in r.json["sessions"]], [j["handle"]])

    def test_user_id_256_bytes_is_accepted(self):
        for user in ("a" * 256, "\u00e9" * 128):
            self.assertEqual(len(user.encode()), 256)
            j = self.d.create_ok(user)
            self.assertEqual(self.d.validate(j["session_id"]).json["user_id"], user)

    def test_regenerate(self):
        j = self.d.create_ok("alice", data={"k": "v"})
        old = j["session_id"]
        r = self.d.regenerate(old, elevated=True)
        self.assertStatus(r, 200)
        n = r.json
        for k in ("session_id", "handle", "csrf_token", "set_cookie"):
            self.assertIn(k, n)
        self.assertId(n["session_id"])
        self.assertHandle(n["handle"])
        self.assertNotEqual(n["session_id"], old)
        self.assertNotEqual(n["csrf_token"], j["csrf_token"], "CSRF token rotates with the ID")
        self.assertEqual(cookie_value(n["set_cookie"])[1], n["session_id"])
        # The old ID is dead at once (no grace on privilege change).
        r = self.d.validate(old)
        self.assertError(r, 401, "invalid_session")
        self.assertIn(r.json.get("reason"), ("unknown", "revoked"))
        v = self.d.validate(n["session_id"])
        self.assertStatus(v, 200)
        self.assertEqual(v.json["user_id"], "alice")
        self.assertEqual(v.json["data"], {"k": "v"}, "data survives regenerate")
        self.assertIs(v.json["elevated"], True)
        self.assertEqual(v.json["csrf_token"], n["csrf_token"])
        # Regenerating the dead ID again fails.
        self.assertError(self.d.regenerate(old), 401, "invalid_session")
        # Still one session for alice.
        hs = [s["handle"] for s in self.d.list_sessions("alice").json["sessions"]]
        self.assertEqual(hs, [n["handle"]])

    def test_data_versions(self):
        j = self.d.create_ok("alice", data={"step": 0})
        sid = j["session_id"]
        r = self.d.set_data(sid, {"step": 1})
        self.assertStatus(r, 200)
        v1 = r.json["version"]
        self.assertIsInstance(v1, int)
        r = self.d.set_data(sid, {"step": 2}, version=v1)
        self.assertStatus(r, 200)
        v2 = r.json["version"]
        self.assertEqual(v2, v1 + 1, "version increments by one")
        self.assertEqual(self.d.validate(sid).json["data"], {"step": 2})
        # A writer holding the stale version loses.
        r = self.d.set_data(sid, {"step": "stale"}, version=v1)
        self.assertError(r, 409)
        self.assertEqual(self.d.validate(sid).json["data"], {"step": 2})
        # And a version from the future too.
        self.assertError(self.d.set_data(sid, {"step": "future"}, version=v2 + 5), 409)
        r = self.d.set_data(sid, {"step": 3}, version=v2)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["version"], v2 + 1)
        self.assertEqual(self.d.validate(sid).json["data"], {"step": 3})

    def test_data_on_dead_session(self):
        j = self.d.create_ok("alice")
        self.assertStatus(self.d.destroy(j["session_id"]), 200)
        self.assertError(self.d.set_data(j["session_id"], {"x": 1}), 401, "invalid_session")

    def test_destroy(self):
        j = self.d.create_ok("alice")
        name = cookie_value(j["set_cookie"])[0]
        r = self.d.destroy(j["session_id"])
        self.assertStatus(r, 200)
        sc = r.json["set_cookie"]
        cname, cval = cookie_value(sc)
        self.assertEqual(cname, name, "the clearing cookie has the session cookie's name")
        self.assertEqual(cval, "", "the clearing cookie has an empty value: " + sc)
        attrs = cookie_attrs(sc)
        self.assertEqual(attrs.get("max-age"), "0", "clearing cookie needs Max-Age=0: " + sc)
        self.assertEqual(attrs.get("path"), "/", sc)
        r = self.d.validate(j["session_id"])
        self.assertError(r, 401, "invalid_session")
        self.assertIn(r.json.get("reason"), ("unknown", "revoked"))
        self.assertEqual(self.d.list_sessions("alice").json["sessions"], [])
        # A second logout: docs/api.md does not say.  Either idempotent (200 with a
        # clearing cookie, so a client can always log out) or a clean 401/404.
        r = self.d.destroy(j["session_id"])
        self.assertIn(r.status, (200, 401, 404), r)
        if r.status == 200:
            self.assertEqual(cookie_attrs(r.json["set_cookie"]).get("max-age"), "0")
        else:
            self.assertError(r, r.status)

    def test_csrf_verify(self):
        a = self.d.create_ok("alice")
        b = self.d.create_ok("bob")
        r = self.d.post("/v1/csrf/verify", {"session_id": a["session_id"],
                                            "csrf_token": a["csrf_token"]})
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"valid": True})
        # A wrong token, another session's token, a token one character off.
        wrong = a["csrf_token"][:-2] + ("AA" if a["csrf_token"][-2:] != "AA" else "BA")
        for tok in (b["csrf_token"], wrong, "x"):
            r = self.d.post("/v1/csrf/verify", {"session_id": a["session_id"],
                                                "csrf_token": tok})
            self.assertError(r, 403)
        # Same-origin hints are accepted; cross-site ones are refused.
        r = self.d.post("/v1/csrf/verify", {"session_id": a["session_id"],
                                            "csrf_token": a["csrf_token"],
                                            "sec_fetch_site": "same-origin"})
        self.assertStatus(r, 200)
        r = self.d.post("/v1/csrf/verify", {"session_id": a["session_id"],
                                            "csrf_token": a["csrf_token"],
                                            "sec_fetch_site": "cross-site"})
        self.assertError(r, 403)
        # An Origin is judged against the application's host (extension
        # member "host"): its own origin passes, a foreign one does not,
        # and one with nothing to compare it with is a 400, never a guess.
        base = {"session_id": a["session_id"], "csrf_token": a["csrf_token"]}
        r = self.d.post("/v1/csrf/verify", dict(base, origin="https://shop.example",
                                                host="https://shop.example"))
        self.assertStatus(r, 200)
        # The full origin is compared (scheme, host, port; default ports
        # normalised).  A bare host takes the configured scheme: http here
        # (development, cookie.secure = false).
        r = self.d.post("/v1/csrf/verify", dict(base, origin="http://shop.example:80",
                                                host="shop.example"))
        self.assertStatus(r, 200)
        for origin, host in (("https://shop.example", "shop.example"),
                             ("http://shop.example", "https://shop.example"),
                             ("https://shop.example:8443", "https://shop.example"),
                             ("null", "https://shop.example")):
            r = self.d.post("/v1/csrf/verify", dict(base, origin=origin, host=host))
            self.assertEqual(r.status, 403, "origin %s against host %s: %r" % (origin, host, r))
        r = self.d.post("/v1/csrf/verify", dict(base, origin="https://shop.example",
                                                host="shop.example/path"))
        self.assertError(r, 400)
        r = self.d.post("/v1/csrf/verify", dict(base, origin="https://evil.example",
                                                host="shop.example"))
        self.assertError(r, 403)
        r = self.d.post("/v1/csrf/verify", dict(base, origin="https://shop.example"))
        self.assertError(r, 400)
        # The session survives failed CSRF checks.
        self.assertStatus(self.d.validate(a["session_id"]), 200)
        # A dead session has no valid token.
        self.d.destroy(b["session_id"])
        r = self.d.post("/v1/csrf/verify", {"session_id": b["session_id"],
                                            "csrf_token": b["csrf_token"]})
        self.assertIn(r.status, (401, 403), r)

    def test_list_sessions_never_shows_ids(self):
        made = [self.d.create_ok("carol", client={"ip": "198.51.100.%d" % (i + 1),
                                                   "user_agent": "UA-%d" % i})
                for i in range(3)]
        other = self.d.create_ok("dave")
        r = self.d.list_sessions("carol")
        self.assertStatus(r, 200)
        sessions = r.json["sessions"]
        self.assertEqual(sorted(s["handle"] for s in sessions),
                         sorted(m["handle"] for m in made))
        for s in sessions:
            for k in ("handle", "created_at", "last_seen_at", "ip", "user_agent", "elevated"):
                self.assertIn(k, s)
            self.assertNotIn("session_id", s)
            self.assertNotIn("csrf_token", s)
        by_handle = {s["handle"]: s for s in sessions}
        for i, m in enumerate(made):
            self.assertEqual(by_handle[m["handle"]]["ip"], "198.51.100.%d" % (i + 1))
            self.assertEqual(by_handle[m["handle"]]["user_agent"], "UA-%d" % i)
        body = r.body.decode()
        for m in made + [other]:
            self.assertNotIn(m["session_id"], body, "a session ID in the list body")
            self.assertNotIn(m["csrf_token"], body, "a CSRF token in the list body")
        self.assertNotIn(other["handle"], body)
        # Unknown user: an empty list, not an error.
        r = self.d.list_sessions("nobody")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["sessions"], [])

    def test_delete_by_handle(self):
        a = self.d.create_ok("alice")
        b = self.d.create_ok("alice")
        r = self.d.delete("/v1/sessions/" + a["handle"])
        self.assertStatus(r, 204)
        self.assertEqual(r.body, b"")
        r = self.d.validate(a["session_id"])
        self.assertError(r, 401, "invalid_session")
        self.assertIn(r.json.get("reason"), ("revoked", "unknown"))
        self.assertStatus(self.d.validate(b["session_id"]), 200)
        self.assertError(self.d.delete("/v1/sessions/" + a["handle"]), 404)
        hs = [s["handle"] for s in self.d.list_sessions("alice").json["sessions"]]
        self.assertEqual(hs, [b["handle"]])

    def test_revoke_user(self):
        a = [self.d.create_ok("frank") for _ in range(3)]
        g = self.d.create_ok("grace")
        r = self.d.delete("/v1/users/frank/sessions")
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"revoked": 3})
        for s in a:
            self.assertError(self.d.validate(s["session_id"]), 401, "invalid_session")
        self.assertStatus(self.d.validate(g["session_id"]), 200)
        self.assertEqual(self.d.list_sessions("frank").json["sessions"], [])
        # Nothing left to revoke.
        r = self.d.delete("/v1/users/frank/sessions")
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"revoked": 0})

    def test_revoke_user_except(self):
        a = [self.d.create_ok("heidi") for _ in range(3)]
        keep = a[1]
        r = self.d.delete("/v1/users/heidi/sessions?except=" + keep["handle"])
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"revoked": 2})
        self.assertStatus(self.d.validate(keep["session_id"]), 200)
        for s in (a[0], a[2]):
            self.assertError(self.d.validate(s["session_id"]), 401, "invalid_session")
        hs = [s["handle"] for s in self.d.list_sessions("heidi").json["sessions"]]
        self.assertEqual(hs, [keep["handle"]])


class HealthMetricsTest(SessiondTestCase):

    def test_health_ready_metrics(self):
        d = self.start()
        self.assertStatus(d.get("/healthz"), 200)
        self.assertStatus(d.get("/readyz"), 200)
        j = d.create_ok("alice")
        d.validate(j["session_id"])
        d.validate(j["session_id"])
        r = d.get("/metrics")
        self.assertStatus(r, 200)
        ct = r.header("Content-Type") or ""
        self.assertTrue(ct.startswith("text/plain"), "Prometheus text format: " + ct)
        text = r.body.decode("utf-8")
        self.assertIn("sessiond_http_requests_total", text)
        self.assertIn("sessiond_validations_total", text)
        sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+'
                            r'([-+]?[0-9.eE+-]+|NaN|[+-]Inf)(\s+-?\d+)?$')
        values = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = sample.match(line)
            self.assertIsNotNone(m, "not a Prometheus sample line: %r" % line)
            values[m.group(1)] = values.get(m.group(1), 0) + float(m.group(3))
        self.assertGreaterEqual(values.get("sessiond_validations_total", 0), 2)
        self.assertGreaterEqual(values.get("sessiond_http_requests_total", 0), 4)
        # The record cache: create wrote the record through, so both
        # validations opened it from the cache.
        self.assertGreaterEqual(values.get("sessiond_record_cache_hits_total", 0), 2)
        self.assertGreaterEqual(values.get("sessiond_record_cache_entries", 0), 1)
        self.assertEqual(values.get("sessiond_record_cache_capacity"), 65536)
        for secret in (j["session_id"], j["csrf_token"]):
            self.assertNotIn(secret, text)


class SharedStoreTest(SessiondTestCase):
    """Two sessiond processes on one LMDB store and one keys directory, as two
    instances on one host would run: what one destroys or regenerates, the
    other refuses on its very next request, although its readers keep their
    LMDB snapshot from one request to the next (lib/store_lmdb.c).  Requests
    to each go over one keep-alive connection, so the same worker reads
    every time."""

    ROUNDS = 25

    def pair(self):
        a = self.start()
        b = self.make(store=a.store_url)
        b.keys_dir = a.keys_dir
        b.start()
        return a, b

    def seen(self, d, conn, j):
        """(validate status, forward-auth status) of session j on d."""
        sid = j["session_id"]
        name = cookie_value(j["set_cookie"])[0]
        v = d.validate(sid, client=LOOPBACK_CLIENT, conn=conn).status
        f = d.auth("%s=%s" % (name, sid), conn=conn).status
        return v, f

    def test_revocation_by_one_refused_by_the_other_at_once(self):
        a, b = self.pair()
        conns = {a: a.connection(), b: b.connection()}
        late = []
        for i in range(self.ROUNDS):
            # Alternate which process writes and which reads.
            w, r = (a, b) if i % 2 == 0 else (b, a)
            j = w.create_ok("shared-%d" % i, client=LOOPBACK_CLIENT)
            for _ in range(2):
                self.assertEqual(self.seen(r, conns[r], j), (200, 200),
                                 "round %d: a session made by one process must "
                                 "validate on the other" % i)
            self.assertStatus(w.destroy(j["session_id"]), 200)
            got = self.seen(r, conns[r], j)
            if got != (401, 401):
                late.append((i, "destroy", got))
            # Regenerate: the old ID dies at once, the new one lives.
            k = w.create_ok("shared-re-%d" % i, client=LOOPBACK_CLIENT)
            self.assertEqual(self.seen(r, conns[r], k), (200, 200))
            rg = w.regenerate(k["session_id"], client=LOOPBACK_CLIENT)
            self.assertStatus(rg, 200)
            got = self.seen(r, conns[r], k)
            if got != (401, 401):
                late.append((i, "regenerate", got))
            self.assertEqual(self.seen(r, conns[r], rg.json), (200, 200))
        for c in conns.values():
            c.close()
        self.assertEqual(late, [], "revocations the other process still accepted "
                         "(round, what, (validate, forward-auth)): %s" % late[:5])


if __name__ == "__main__":
    harness.main()
