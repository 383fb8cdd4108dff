"""test_access_log.py - the access log, log.access = PATH|off (docs/observability.md,
"Access log"; API.md "Events, logs and traces").

One JSON line per answered request with exactly ts, method, route (the pattern),
status, latency_us, outcome, trace_id, span_id and peer; never a cookie, session
ID, CSRF token, handle, query string or user id, whatever the request carried.
The file is reopened on SIGHUP (logrotate renames it, then signals), and a path
that cannot be opened is a configuration error."""

import json
import os
import re
import signal
import stat
import subprocess
import time

import harness
from harness import LOOPBACK_CLIENT, SessiondTestCase, cookie_value

KEYS = {"ts", "method", "route", "status", "latency_us", "outcome", "trace_id",
        "span_id", "peer"}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
WAIT = 15.0


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    return [json.loads(l) for l in data.decode("utf-8").splitlines() if l]


class AccessLogTest(SessiondTestCase):

    def setUp(self):
        self.d = self.make()
        self.path = os.path.join(self.d.dir, "access.jsonl")
        self.d.sets = ["log.access=" + self.path]
        self.d.start()

    def lines_until(self, trace_id, path=None):
        """Lines of the file once the line of "trace_id" is in it."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            lines = read_lines(path or self.path)
            if any(l["trace_id"] == trace_id for l in lines):
                return lines
            time.sleep(0.02)
        self.fail("no access log line for trace %s in %s" % (trace_id, path or self.path))

    def test_one_line_per_request_with_exactly_the_documented_fields(self):
        user = "access-user-51f0"
        s = self.d.create_ok(user, client=LOOPBACK_CLIENT)
        name = cookie_value(s["set_cookie"])[0]
        cookie = "%s=%s" % (name, s["session_id"])
        answers = [
            ("POST", "/v1/sessions", 201, "ok", None),
            ("GET", "/v1/auth", 200, "ok", self.d.auth(cookie)),
            ("GET", "/v1/auth/{*}", 200, "ok",
             self.d.request("GET", "/v1/auth/shop/cart?coupon=qs-secret-77", headers={
                 "Cookie": cookie, "User-Agent": LOOPBACK_CLIENT["user_agent"]})),
            ("GET", "/v1/auth", 401, "binding_mismatch",
             self.d.request("GET", "/v1/auth", headers={"Cookie": cookie,
                                                        "User-Agent": "another/1"})),
            ("GET", "/v1/auth", 401, "no_session", self.d.auth(None)),
            ("POST", "/v1/sessions/validate", 200, "ok",
             self.d.validate(s["session_id"], client=LOOPBACK_CLIENT)),
            ("GET", "/v1/users/{user_id}/sessions", 200, "ok", self.d.list_sessions(user)),
            ("GET", None, 404, "not_found", self.d.get("/v1/nothing/" + user)),
            ("POST", "/v1/sessions/destroy", 200, "ok", self.d.destroy(s["session_id"])),
            ("POST", "/v1/sessions/validate", 401, "unknown",
             self.d.validate(s["session_id"], client=LOOPBACK_CLIENT)),
        ]
        last = answers[-1][4].header("X-Trace-Id")
        lines = self.lines_until(last)
        self.assertEqual(len(lines), len(answers), lines)
        for (method, route, status, outcome, r), line in zip(answers, lines):
            self.assertEqual(set(line), KEYS, line)
            self.assertRegex(line["ts"], TS)
            self.assertEqual(line["method"], method)
            self.assertEqual(line["route"], route)
            self.assertEqual(line["status"], status, line)
            self.assertEqual(line["outcome"], outcome, line)
            self.assertIsInstance(line["latency_us"], int)
            self.assertGreaterEqual(line["latency_us"], 0)
            self.assertEqual(line["peer"], "127.0.0.1")
            self.assertRegex(line["trace_id"], r"^[0-9a-f]{32}$")
            self.assertRegex(line["span_id"], r"^[0-9a-f]{16}$")
            if r is not None:
                self.assertEqual(line["trace_id"], r.header("X-Trace-Id"))
        text = open(self.path, encoding="utf-8").read()
        for secret in (s["session_id"], s["csrf_token"], s["handle"], user,
                       "qs-secret-77", "coupon", "shop/cart", "another/1"):
            self.assertNotIn(secret, text, "%r must not be in the access log" % secret[:12])
        self.d.assert_no_ids_in(text, "the access log")
        # Not for anyone to read: it says who asked what, when.
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode) & 0o007, 0)

    def test_reopened_on_sighup(self):
        first = self.d.get("/healthz").header("X-Trace-Id")
        self.lines_until(first)
        rotated = self.path + ".1"
        os.rename(self.path, rotated)       # logrotate: rename, then HUP
        self.d.signal(signal.SIGHUP)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            tid = self.d.get("/healthz").header("X-Trace-Id")
            if any(l["trace_id"] == tid for l in read_lines(self.path)):
                break
            time.sleep(0.05)
        else:
            self.fail("no line in the new file after SIGHUP")
        old = {l["trace_id"] for l in read_lines(rotated)}
        new = {l["trace_id"] for l in read_lines(self.path)}
        self.assertIn(first, old)
        self.assertIn(tid, new)
        self.assertFalse(old & new, "a line goes to one file, never both")


class AccessLogConfigTest(SessiondTestCase):

    def test_off_by_default_and_unopenable_path_refused(self):
        d = self.start()
        d.get("/healthz")
        self.assertEqual([f for f in os.listdir(d.dir) if "access" in f], [])
        d.stop()
        bad = self.make(sets=["log.access=/nonexistent-dir-for-sessiond/access.log"])
        p = subprocess.run(bad.argv(), capture_output=True, cwd=bad.dir, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"log.access", p.stderr)


if __name__ == "__main__":
    harness.main()
