"""test_security.py - the security invariants of docs/security.md seen from outside:
timeouts, rotation with a grace window, regenerate without grace, binding,
the per-user limit under races, security events, API keys, fixation.

Timeouts are made short with --set; times in the API are whole Unix seconds,
so every wait leaves at least one full second of margin."""

import base64
import json
import os
import stat
import subprocess
import threading
import time

import harness
from harness import (DEFAULT_CLIENT, ID_RE, Sessiond, SessiondTestCase, cookie_value)


def fresh_id():
    """A well-formed ID the server never issued."""
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def run_threads(n, fn):
    """Run fn(i) on n threads released together; return the results in order."""
    barrier = threading.Barrier(n)
    out = [None] * n

    def worker(i):
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as e:  # recorded, asserted by the caller
            out[i] = e

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return out


def stored_bytes(path, chunk=1 << 20):
    """What a file holds, without its holes and all-zero stretches: the
    LMDB file is a sparse 4 GiB map (reading it whole took over a minute).
    A skipped stretch leaves a run of zeros, so nothing is glued together
    that was not adjacent."""
    out = []
    with open(path, "rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        off = 0
        while off < size:
            try:
                data = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:          # ENXIO: only a hole is left
                break
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            f.seek(data)
            left = hole - data
            while left > 0:
                b = f.read(min(left, chunk))
                if not b:
                    break
                left -= len(b)
                out.append(b if b.strip(b"\0") else b"\0" * 64)
            out.append(b"\0" * 64)
            off = hole
    return b"".join(out)


class TimeoutTest(SessiondTestCase):

    def test_idle_and_absolute_timeouts(self):
        d = self.start(sets=["session.idle_timeout=3", "session.absolute_timeout=6"])
        t0 = time.monotonic()
        idle = d.create_ok("alice")
        busy = d.create_ok("bob")
        self.assertLessEqual(idle["idle_expires_at"] - int(time.time()), 3)
        self.assertLessEqual(busy["expires_at"] - int(time.time()), 6)
        # Keep "busy" active every second; leave "idle" alone.  Times are whole
        # seconds, so each check keeps a full second away from a deadline.
        for _ in range(4):
            time.sleep(1.0)
            r = d.validate(busy["session_id"])
            self.assertStatus(r, 200, "active session died at %.1fs: %r"
                              % (time.monotonic() - t0, r))
        self.assertLess(time.monotonic() - t0, 4.9, "the machine is too slow for this test")
        self.assertInvalid(d.validate(idle["session_id"]), "expired_idle")
        # Activity does not extend the absolute deadline.
        while time.monotonic() - t0 < 7.1:
            time.sleep(0.1)
        self.assertInvalid(d.validate(busy["session_id"]), "expired_absolute")
        # Expired means gone.
        for s in (idle, busy):
            r = d.validate(s["session_id"])
            self.assertError(r, 401, "invalid_session")
        self.assertEqual(d.list_sessions("alice").json["sessions"], [])
        self.assertEqual(d.list_sessions("bob").json["sessions"], [])


class RotationTest(SessiondTestCase):

    def test_periodic_rotation_and_burst(self):
        d = self.start(sets=["session.rotate_interval=4", "session.rotation_grace=3"])
        j = d.create_ok("alice", data={"a": 1})
        time.sleep(5.2)
        r = d.validate(j["session_id"])
        self.assertStatus(r, 200)
        self.assertIn("rotated", r.json, "after rotate_interval validate must rotate")
        rot = r.json["rotated"]
        for k in ("session_id", "set_cookie", "csrf_token"):
            self.assertIn(k, rot)
        self.assertId(rot["session_id"])
        self.assertNotEqual(rot["session_id"], j["session_id"])
        self.assertEqual(cookie_value(rot["set_cookie"])[1], rot["session_id"])
        self.assertEqual(r.json["data"], {"a": 1})
        v = d.validate(rot["session_id"])
        self.assertStatus(v, 200)
        self.assertEqual(v.json["data"], {"a": 1})
        self.assertEqual(v.json["user_id"], "alice")

    def test_burst_with_old_id_gets_one_successor(self):
        d = self.start(sets=["session.rotate_interval=4", "session.rotation_grace=3",
                             "server.threads=4"])
        j = d.create_ok("burst")
        time.sleep(5.2)
        res = run_threads(20, lambda i: d.validate(j["session_id"]))
        errors = [x for x in res if isinstance(x, Exception) or x.status != 200]
        self.assertEqual(errors, [], "every request of the burst must succeed")
        succ = set()
        for x in res:
            self.assertIn("rotated", x.json, "a request with the old ID in the grace window "
                          "must be told the successor: %r" % (x.json,))
            succ.add(x.json["rotated"]["session_id"])
        self.assertEqual(len(succ), 1, "one rotation per burst, got %d successors" % len(succ))
        new = succ.pop()
        self.assertStatus(d.validate(new), 200)
        # One live session, not twenty.
        self.assertEqual(len(d.list_sessions("burst").json["sessions"]), 1)
        # Still inside the grace window, the old ID keeps naming the same successor.
        r = d.validate(j["session_id"])
        self.assertStatus(r, 200)
        self.assertEqual(r.json.get("rotated", {}).get("session_id"), new)

    def test_old_id_dies_after_grace(self):
        d = self.make()
        events = os.path.join(d.dir, "events.jsonl")
        d.sets = ["session.rotate_interval=2", "session.rotation_grace=1",
                  "log.security_events=" + events]
        d.start()
        j = d.create_ok("alice")
        time.sleep(3.2)
        r = d.validate(j["session_id"])
        self.assertIn("rotated", r.json)
        new = r.json["rotated"]["session_id"]
        time.sleep(2.5)
        self.assertError(d.validate(j["session_id"]), 401, "invalid_session")
        self.assertNotEqual(new, j["session_id"])
        # Reuse of an old ID after its grace window is a security event
        # (docs/security.md invariant 13): someone replays a cookie that was replaced.
        deadline = time.monotonic() + 3
        text = ""
        while time.monotonic() < deadline and "reuse" not in text:
            time.sleep(0.2)
            if os.path.exists(events):
                with open(events) as f:
                    text = f.read()
        self.assertIn("reuse", text.lower(), "no reuse-after-grace event: %r" % text[-1000:])
        d.assert_no_ids_in(text, "the security events file")

    def _reuse_events(self, path, want):
        deadline = time.monotonic() + 5
        lines = []
        while time.monotonic() < deadline:
            if os.path.exists(path):
                with open(path) as f:
                    lines = [json.loads(x) for x in f if x.strip()]
            got = [e for e in lines if e.get("event") == "reuse_after_grace"]
            if len(got) >= want:
                return got
            time.sleep(0.2)
        self.fail("no reuse_after_grace event in %r" % lines[-5:])

    def test_reuse_after_grace_ends_the_successor(self):
        """RFC 9700 section 4.14.2: the thief rotated first; the victim's
        replay of the old ID ends the thief's session too (default), and
        with session.on_reuse_after_grace = log it does not."""
        for mode in ("revoke", "log"):
            with self.subTest(mode=mode):
                d = self.make()
                events = os.path.join(d.dir, "events.jsonl")
                d.sets = ["session.rotate_interval=2", "session.rotation_grace=1",
                          "log.security_events=" + events]
                if mode == "log":
                    d.sets.append("session.on_reuse_after_grace=log")
                d.start()
                j = d.create_ok("victim")
                time.sleep(3.2)
                r = d.validate(j["session_id"])       # the thief rotates
                thief = r.json["rotated"]["session_id"]
                time.sleep(2.5)                        # past the grace window
                r = d.validate(j["session_id"])       # the victim comes back
                self.assertError(r, 401, "invalid_session")
                self.assertEqual(r.json.get("reason"), "revoked")
                ev = self._reuse_events(events, 1)[-1]
                self.assertEqual(ev["handle"], j["handle"])
                if mode == "revoke":
                    self.assertEqual(ev["detail"], "successor revoked")
                    self.assertError(d.validate(thief), 401, "invalid_session")
                    self.assertEqual(d.list_sessions("victim").json["sessions"], [])
                else:
                    self.assertEqual(ev["detail"], "logged")
                    self.assertStatus(d.validate(thief), 200)
                with open(events) as f:
                    d.assert_no_ids_in(f.read(), "the security events file")
                d.stop()

    def test_regenerate_has_no_grace(self):
        d = self.start(sets=["session.rotate_interval=4", "session.rotation_grace=3"])
        j = d.create_ok("alice")
        r = d.regenerate(j["session_id"])
        self.assertStatus(r, 200)
        r2 = d.validate(j["session_id"])
        self.assertError(r2, 401, "invalid_session")
        self.assertIn(r2.json.get("reason"), ("unknown", "revoked"))
        # Also after a periodic rotation: regenerate with the successor kills
        # both the successor and the grace-window predecessor.
        k = d.create_ok("bob")
        time.sleep(5.2)
        succ = d.validate(k["session_id"]).json["rotated"]["session_id"]
        r = d.regenerate(succ)
        self.assertStatus(r, 200)
        self.assertError(d.validate(succ), 401, "invalid_session")
        self.assertError(d.validate(k["session_id"]), 401, "invalid_session")
        self.assertStatus(d.validate(r.json["session_id"]), 200)


class BindingTest(SessiondTestCase):

    UA = DEFAULT_CLIENT["user_agent"]

    def client(self, ip, ua=None):
        return {"ip": ip, "user_agent": ua or self.UA}

    def test_reject(self):
        d = self.start()
        s = d.create_ok("alice", client=self.client("203.0.113.7"))
        self.assertStatus(d.validate(s["session_id"], self.client("203.0.113.200")), 200)
        self.assertInvalid(d.validate(s["session_id"], self.client("198.51.100.7")),
                           "binding_mismatch")
        s = d.create_ok("bob", client=self.client("203.0.113.7"))
        self.assertInvalid(d.validate(s["session_id"],
                                      self.client("203.0.113.7", "curl/8.0")),
                           "binding_mismatch")
        # A user agent that differs only in one character is a different one.
        s = d.create_ok("carol", client=self.client("203.0.113.7"))
        self.assertInvalid(d.validate(s["session_id"],
                                      self.client("203.0.113.7", self.UA + " ")),
                           "binding_mismatch")
        # regenerate checks the binding too.
        s = d.create_ok("dave", client=self.client("203.0.113.7"))
        r = d.regenerate(s["session_id"], client=self.client("198.51.100.7"))
        self.assertInvalid(r, "binding_mismatch")

    def test_ipv6_prefix(self):
        d = self.start()
        s = d.create_ok("alice", client=self.client("2001:db8:1:2::1"))
        self.assertStatus(d.validate(s["session_id"], self.client("2001:db8:1:2:ffff::5")), 200)
        self.assertInvalid(d.validate(s["session_id"], self.client("2001:db8:1:3::1")),
                           "binding_mismatch")
        # An IPv4 client does not match an IPv6 binding.
        s = d.create_ok("bob", client=self.client("2001:db8:1:2::1"))
        self.assertInvalid(d.validate(s["session_id"], self.client("203.0.113.7")),
                           "binding_mismatch")

    def test_log_action_lets_it_through(self):
        d = self.start(sets=["binding.action=log"])
        s = d.create_ok("alice", client=self.client("203.0.113.7"))
        self.assertStatus(d.validate(s["session_id"], self.client("198.51.100.7")), 200)
        self.assertStatus(d.validate(s["session_id"],
                                     self.client("203.0.113.7", "curl/8.0")), 200)

    def test_user_agent_binding_off(self):
        d = self.start(sets=["binding.user_agent=false"])
        s = d.create_ok("alice", client=self.client("203.0.113.7"))
        self.assertStatus(d.validate(s["session_id"],
                                     self.client("203.0.113.7", "curl/8.0")), 200)
        self.assertInvalid(d.validate(s["session_id"], self.client("198.51.100.7")),
                           "binding_mismatch")


class LimitTest(SessiondTestCase):

    def test_evict_oldest(self):
        self.check_evict_oldest(1.1)

    def test_evict_oldest_within_one_second(self):
        # Three logins in the same second still have an order: the first one
        # is the oldest (evict_oldest must not pick by handle or at random).
        # Six users, so a random pick passes only with probability 3^-6.
        d = self.start(sets=["session.max_per_user=3"])
        wrong = []
        for u in range(6):
            user = "same-second-%d" % u
            made = [d.create_ok(user) for _ in range(3)]
            fourth = d.create_ok(user)
            if fourth["evicted"] != [made[0]["handle"]]:
                pos = [m["handle"] for m in made]
                wrong.append("%s: evicted login #%s" % (user, [pos.index(h) + 1 if h in pos
                                                                else h
                                                                for h in fourth["evicted"]]))
        self.assertEqual(wrong, [], "evict_oldest did not evict the first of three logins "
                         "made within one second")

    def check_evict_oldest(self, gap):
        d = self.start(sets=["session.max_per_user=3"])
        made = []
        for i in range(3):
            made.append(d.create_ok("carol"))
            self.assertEqual(made[-1]["evicted"], [])
            time.sleep(gap)
        fourth = d.create_ok("carol")
        self.assertEqual(fourth["evicted"], [made[0]["handle"]])
        r = d.validate(made[0]["session_id"])
        self.assertError(r, 401, "invalid_session")
        self.assertIn(r.json.get("reason"), ("revoked", "unknown"))
        for s in made[1:] + [fourth]:
            self.assertStatus(d.validate(s["session_id"]), 200)
        listed = sorted(s["handle"] for s in d.list_sessions("carol").json["sessions"])
        self.assertEqual(listed, sorted(s["handle"] for s in made[1:] + [fourth]))
        # Other users are not affected.
        self.assertEqual(d.create_ok("dave")["evicted"], [])

    def test_deny(self):
        d = self.start(sets=["session.max_per_user=3", "session.limit_policy=deny"])
        made = [d.create_ok("carol") for _ in range(3)]
        r = d.create("carol")
        self.assertError(r, 409)
        for s in made:
            self.assertStatus(d.validate(s["session_id"]), 200)
        self.assertEqual(len(d.list_sessions("carol").json["sessions"]), 3)
        # Logging out frees a slot.
        d.destroy(made[0]["session_id"])
        self.assertStatus(d.create("carol"), 201)

    def test_simultaneous_logins_evict(self):
        d = self.start(sets=["session.max_per_user=3", "server.threads=4"])
        res = run_threads(50, lambda i: d.create("mallory",
                                                 client={"ip": "203.0.113.%d" % (i + 1),
                                                         "user_agent": "UA"}))
        bad = [x for x in res if isinstance(x, Exception) or x.status != 201]
        self.assertEqual(bad, [], "every login must succeed with evict_oldest")
        by_handle = {x.json["handle"]: x.json for x in res}
        evicted = set()
        for x in res:
            evicted.update(x.json["evicted"])
        listed = [s["handle"] for s in d.list_sessions("mallory").json["sessions"]]
        self.assertEqual(len(listed), 3, "exactly max_per_user sessions must remain")
        self.assertEqual(len(set(listed)), 3)
        self.assertFalse(set(listed) & evicted, "a listed session was reported evicted")
        self.assertEqual(set(by_handle), set(listed) | evicted,
                         "every session is either alive or reported evicted")
        alive = []
        for h, j in by_handle.items():
            r = d.validate(j["session_id"], {"ip": "203.0.113.1", "user_agent": "UA"})
            if r.status == 200:
                alive.append(h)
            else:
                self.assertError(r, 401, "invalid_session")
        self.assertEqual(sorted(alive), sorted(listed), "the list shows exactly what is alive")

    def test_simultaneous_logins_deny(self):
        d = self.start(sets=["session.max_per_user=3", "session.limit_policy=deny",
                             "server.threads=4"])
        res = run_threads(50, lambda i: d.create("mallory"))
        self.assertFalse([x for x in res if isinstance(x, Exception)])
        codes = sorted(x.status for x in res)
        self.assertEqual(codes.count(201), 3, "exactly max_per_user logins may succeed: %r"
                         % codes)
        self.assertEqual(codes.count(409), 47, codes)
        self.assertEqual(len(d.list_sessions("mallory").json["sessions"]), 3)


class DataRaceTest(SessiondTestCase):

    def test_concurrent_versioned_updates_one_winner(self):
        # Optimistic concurrency: 20 writers holding the same version, exactly
        # one wins and the stored data is the winner's.
        d = self.start(sets=["server.threads=4"])
        j = d.create_ok("alice")
        v = d.set_data(j["session_id"], {"w": -1}).json["version"]
        res = run_threads(20, lambda i: d.set_data(j["session_id"], {"w": i}, version=v))
        self.assertFalse([x for x in res if isinstance(x, Exception)], res)
        codes = [x.status for x in res]
        self.assertEqual(codes.count(200), 1, "exactly one versioned write may win: %r" % codes)
        self.assertEqual(codes.count(409), 19, codes)
        winner = codes.index(200)
        self.assertEqual(res[winner].json["version"], v + 1)
        self.assertEqual(d.validate(j["session_id"]).json["data"], {"w": winner})


class EventsTest(SessiondTestCase):

    def test_security_events_have_handles_never_ids(self):
        d = self.make()
        events = os.path.join(d.dir, "events.jsonl")
        d.sets = ["log.security_events=" + events, "session.max_per_user=2"]
        d.start()
        ua = DEFAULT_CLIENT["user_agent"]
        bind = d.create_ok("alice")
        d.validate(bind["session_id"], {"ip": "198.51.100.9", "user_agent": ua})
        csrf = d.create_ok("bob")
        d.post("/v1/csrf/verify", {"session_id": csrf["session_id"],
                                   "csrf_token": fresh_id()})
        d.create_ok("carol")
        d.create_ok("carol")
        third = d.create_ok("carol")
        self.assertEqual(len(third["evicted"]), 1)
        ev1 = {"handle": third["evicted"][0]}
        rev = d.create_ok("dave")
        self.assertStatus(d.delete("/v1/sessions/" + rev["handle"]), 204)

        want = {bind["handle"]: "binding", csrf["handle"]: "csrf",
                ev1["handle"]: "evict", rev["handle"]: "revoke"}
        deadline = time.monotonic() + 5
        lines = []
        while time.monotonic() < deadline:
            if os.path.exists(events):
                with open(events, "rb") as f:
                    lines = [l for l in f.read().splitlines() if l.strip()]
                found = {h for h in want for l in lines if h.encode() in l}
                if found == set(want):
                    break
            time.sleep(0.2)
        self.assertTrue(lines, "no security events written to %s" % events)
        parsed = []
        for l in lines:
            try:
                o = json.loads(l)
            except ValueError:
                self.fail("security event is not a JSON line: %r" % l[:200])
            self.assertIsInstance(o, dict)
            parsed.append(o)
        for h, what in want.items():
            hits = [o for o in parsed if o.get("handle") == h]
            self.assertTrue(hits, "no security event with \"handle\": %s for the %s case; "
                            "events: %r" % (h, what, parsed))
            text = json.dumps(hits).lower()
            self.assertIn(what, text, "event for %s does not say %s: %r" % (h, what, hits))
        with open(events, encoding="utf-8", errors="replace") as f:
            d.assert_no_ids_in(f.read(), "the security events file")
        d.assert_no_ids_in(d.stderr_text(), "sessiond stderr")


class AtRestTest(SessiondTestCase):

    def test_store_holds_no_ids_tokens_or_plaintext(self):
        # Invariants 2 and 3: the store holds SHA-256(ID), never the ID, and
        # records are encrypted, so a copy of the store files gives neither
        # cookies to replay nor the session data.
        d = self.start()
        marker = "PLAINTEXT-MARKER-" + fresh_id()[:12]
        ua = "UA-MARKER-" + fresh_id()[:12]
        made = [d.create_ok("alice%d" % i, client={"ip": "203.0.113.7", "user_agent": ua},
                            data={"secret": marker}) for i in range(5)]
        d.set_data(made[0]["session_id"], {"secret": marker + "-v2"})
        d.stop()
        parts = []
        for root, _, files in os.walk(d.dir):
            if os.path.basename(root) == "keys" or root.startswith(d.keys_dir):
                continue
            for f in files:
                parts.append(stored_bytes(os.path.join(root, f)))
        blobs = b"".join(parts)
        self.assertGreater(len(blobs), 0, "no store files found under %s" % d.dir)
        for m in made:
            self.assertNotIn(m["session_id"].encode(), blobs, "a raw session ID is stored")
            self.assertNotIn(m["csrf_token"].encode(), blobs, "a raw CSRF token is stored")
            self.assertNotIn(base64.urlsafe_b64decode(m["session_id"] + "="), blobs,
                             "the raw ID bytes are stored")
        self.assertNotIn(marker.encode(), blobs, "session data is stored in plaintext")
        self.assertNotIn(ua.encode(), blobs, "the user agent is stored in plaintext")


class ApiKeyTest(SessiondTestCase):

    KEY = "k" * 8 + "0123456789abcdefABCDEF0123456789"  # 40 characters

    def keys_file(self, dir, mode=0o600):
        path = os.path.join(dir, "api-keys")
        with open(path, "w") as f:
            f.write(self.KEY + "\n")
        os.chmod(path, mode)
        return path

    def test_api_keys_required_when_configured(self):
        self.assertEqual(len(self.KEY), 40)
        d = self.make()
        d.api_keys = self.keys_file(d.dir)
        d.start()
        r = d.create("alice")                       # no Authorization
        self.assertError(r, 401)
        d.api_key = "wrong" + self.KEY[5:]
        self.assertError(d.create("alice"), 401)
        r = d.post("/v1/sessions", {"user_id": "alice", "client": DEFAULT_CLIENT},
                   headers={"Authorization": "Basic " + self.KEY})
        self.assertError(r, 401)
        d.api_key = self.KEY
        j = d.create_ok("alice", client=harness.LOOPBACK_CLIENT)
        self.assertStatus(d.validate(j["session_id"], harness.LOOPBACK_CLIENT), 200)
        d.api_key = None
        for path in ("/v1/users/alice/sessions",):
            self.assertError(d.get(path), 401)
        self.assertError(d.delete("/v1/sessions/" + j["handle"]), 401)
        self.assertError(d.validate(j["session_id"], harness.LOOPBACK_CLIENT), 401)
        # Nothing was revoked by the refused call.
        d.api_key = self.KEY
        self.assertStatus(d.validate(j["session_id"], harness.LOOPBACK_CLIENT), 200)
        # Forward-auth stays open: the proxy has no API key.
        d.api_key = None
        name = cookie_value(j["set_cookie"])[0]
        r = d.auth("%s=%s" % (name, j["session_id"]))
        self.assertStatus(r, 200)

    def test_failed_keys_logged_and_throttled(self):
        """Issue 10, item 12: a refused key writes a rate-limited auth_failure
        event (peer, route, reason; never the key); after 10 failures within
        a minute the peer gets 429 with Retry-After, even with the right key,
        while other peers (told apart by the trusted proxy's X-Forwarded-For)
        are served."""
        d = self.make()
        events = os.path.join(d.dir, "events.jsonl")
        d.api_keys = self.keys_file(d.dir)
        d.sets = ["log.security_events=" + events,
                  "binding.trusted_proxies=127.0.0.1"]
        d.start()
        bad = {"X-Forwarded-For": "198.51.100.1"}
        wrong = "wrong" + self.KEY[5:]
        for i in range(10):
            auth = None if i % 2 else "Bearer " + wrong
            r = d.post("/v1/sessions", {"user_id": "alice", "client": DEFAULT_CLIENT},
                       headers=dict(bad, Authorization=auth))
            self.assertError(r, 401)
        d.api_key = self.KEY
        r = d.post("/v1/sessions", {"user_id": "alice", "client": DEFAULT_CLIENT},
                   headers=bad)
        self.assertEqual(r.status, 429, r)
        self.assertEqual(r.json.get("error"), "too_many_requests", r)
        retry = int(r.header("Retry-After"))
        self.assertTrue(1 <= retry <= 60, retry)
        # Another client behind the same proxy is not affected.
        r = d.post("/v1/sessions", {"user_id": "alice", "client": DEFAULT_CLIENT},
                   headers={"X-Forwarded-For": "198.51.100.2"})
        self.assertStatus(r, 201)
        lines = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(events) as f:
                text = f.read()
            lines = [json.loads(x) for x in text.splitlines() if x.strip()]
            fails = [e for e in lines if e["event"] == "auth_failure"]
            if fails:
                break
            time.sleep(0.2)
        self.assertTrue(fails, "no auth_failure event: %r" % lines)
        self.assertNotIn(self.KEY, text)
        self.assertNotIn(wrong, text)
        self.assertNotIn(wrong[5:], text)
        for e in fails:
            self.assertEqual(e["ip"], "198.51.100.1")
            self.assertEqual(e["route"], "/v1/sessions")
            self.assertIn(e["reason"], ("missing", "unknown"))
        self.assertEqual({e["reason"] for e in fails} - {"missing", "unknown"}, set())
        # Rate-limited: at most 5 lines per second for one peer; every
        # failure is a line or counted as suppressed.
        self.assertLessEqual(len(fails) + sum(e["suppressed"] for e in fails), 10)
        self.assertLessEqual(len(fails), 10)

    def run_refused(self, args):
        p = subprocess.run([harness.SESSIOND] + args, capture_output=True, text=True,
                           timeout=15)
        return p

    def test_public_listen_without_keys_refused(self):
        d = Sessiond(listen="0.0.0.0:0")
        self.addCleanup(d.cleanup)
        p = self.run_refused(d.argv())
        self.assertEqual(p.returncode, 2, "0.0.0.0 without API keys must exit 2; stderr: %s"
                         % p.stderr[-2000:])
        self.assertNotIn("listening on", p.stderr)

    def test_public_listen_with_keys_starts(self):
        d = self.make(listen="0.0.0.0:0")
        d.api_keys = self.keys_file(d.dir)
        d.start()
        d.api_key = self.KEY
        self.assertStatus(d.create("alice"), 201)
        d.api_key = None
        self.assertError(d.create("alice"), 401)

    def test_keys_file_readable_by_others_refused(self):
        d = Sessiond()
        self.addCleanup(d.cleanup)
        d.api_keys = self.keys_file(d.dir, 0o644)
        p = self.run_refused(d.argv())
        self.assertEqual(p.returncode, 2, "an API key file with mode 0644 must be refused; "
                         "stderr: %s" % p.stderr[-2000:])
        self.assertNotIn(self.KEY, p.stderr, "the key itself must not be printed")


class FixationTest(SessiondTestCase):

    def test_never_issued_id_is_unknown(self):
        d = self.start()
        for _ in range(5):
            self.assertInvalid(d.validate(fresh_id()), "unknown")
        r = d.regenerate(fresh_id())
        self.assertInvalid(r, "unknown")

    def test_create_ignores_client_chosen_id(self):
        d = self.start()
        chosen = fresh_id()
        r = d.create("alice", session_id=chosen)
        if r.status == 201:
            self.assertNotEqual(r.json["session_id"], chosen)
            self.assertNotIn(chosen, r.json["set_cookie"])
        else:
            self.assertError(r, 400)
        self.assertInvalid(d.validate(chosen), "unknown")
        # A cookie the attacker planted is not adopted by forward-auth either.
        j = d.create_ok("bob", client=harness.LOOPBACK_CLIENT)
        name = cookie_value(j["set_cookie"])[0]
        r = d.auth("%s=%s" % (name, chosen))
        self.assertEqual(r.status, 401)
        for sc in r.header_all("Set-Cookie"):
            self.assertNotIn(chosen, sc)


if __name__ == "__main__":
    harness.main()
