"""test_observability.py - W3C trace context on every route (docs/observability.md,
API.md "Events, logs and traces"): X-Trace-Id on every answer, forward-auth
included; a valid incoming traceparent continues its trace, an invalid or absent
one starts a new trace; security events carry the request's trace_id and span_id;
the security-events file is reopened on SIGHUP (logrotate)."""

import json
import os
import re
import signal
import stat
import time

import harness
from harness import LOOPBACK_CLIENT, SessiondTestCase, cookie_value

HEX32 = re.compile(r"^[0-9a-f]{32}$")
TID = "4bf92f3577b34da6a3ce929d0e0e4736"
GOOD = "00-%s-00f067aa0ba902b7-01" % TID


class TraceContextTest(SessiondTestCase):

    def setUp(self):
        self.d = self.make()
        self.events = os.path.join(self.d.dir, "events.jsonl")
        self.d.sets = ["log.security_events=" + self.events, "log.format=json"]
        self.d.start()
        self.s = self.d.create_ok("alice", client=LOOPBACK_CLIENT)
        self.name = cookie_value(self.s["set_cookie"])[0]
        self.cookie = "%s=%s" % (self.name, self.s["session_id"])

    def test_every_answer_has_a_trace_id(self):
        answers = [self.d.get("/v1/health"), self.d.get("/v1/no-such-route"),
                   self.d.auth(self.cookie), self.d.auth(None),
                   self.d.validate(self.s["session_id"])]
        seen = set()
        for r in answers:
            t = r.header("X-Trace-Id")
            self.assertIsNotNone(t, "no X-Trace-Id on %r" % (r,))
            self.assertRegex(t, HEX32)
            seen.add(t)
        self.assertEqual(len(seen), len(answers), "a new trace per request")

    def test_incoming_traceparent_continues_the_trace(self):
        r = self.d.auth(self.cookie, headers={"traceparent": GOOD,
                                              "tracestate": "congo=t61rcWkgMzE"})
        self.assertStatus(r, 200)
        self.assertEqual(r.header("X-Trace-Id"), TID)
        r = self.d.get("/v1/health", headers={"traceparent": GOOD})
        self.assertEqual(r.header("X-Trace-Id"), TID)

    def test_invalid_traceparent_starts_a_new_trace(self):
        bad = ["00-%s-0000000000000000-01" % TID,
               "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
               "00-%s-00f067aa0ba902b7-01" % TID.upper(),
               "ff-%s-00f067aa0ba902b7-01" % TID,
               GOOD + "-x", "garbage", "00-%s-00f067aa0ba902b7-01-" % TID]
        for v in bad:
            r = self.d.auth(self.cookie, headers={"traceparent": v})
            self.assertStatus(r, 200)
            t = r.header("X-Trace-Id")
            self.assertRegex(t, HEX32, v)
            self.assertNotEqual(t, TID, "accepted invalid traceparent %r" % v)

    def test_security_event_carries_trace(self):
        r = self.d.auth(self.cookie, headers={"traceparent": GOOD,
                                              "User-Agent": "curl/8.0"})
        self.assertEqual(r.status, 401, r)
        self.assertEqual(r.header("X-Trace-Id"), TID)
        deadline = time.monotonic() + 10
        found = None
        while found is None and time.monotonic() < deadline:
            if os.path.exists(self.events):
                with open(self.events) as f:
                    for line in f:
                        ev = json.loads(line)
                        if ev.get("event") == "binding_mismatch":
                            found = ev
            if found is None:
                time.sleep(0.1)
        self.assertIsNotNone(found, "no binding_mismatch event")
        self.assertEqual(found["trace_id"], TID)
        self.assertRegex(found["span_id"], r"^[0-9a-f]{16}$")
        self.assertNotEqual(found["span_id"], "00f067aa0ba902b7",
                            "the event's span is the request's own, not the caller's")

    def trace_ids_in(self, path):
        if not os.path.exists(path):
            return set()
        with open(path) as f:
            return {json.loads(l).get("trace_id") for l in f if l.strip()}

    def mismatch(self, n):
        tid = "%032x" % (0xa100 + n)
        self.d.auth(self.cookie, headers={"traceparent": "00-%s-00f067aa0ba902b7-01" % tid,
                                          "User-Agent": "curl/8.0"})
        return tid

    def test_security_events_file_reopened_on_sighup(self):
        """logrotate renames the file, then signals: new events go to a new
        file with the same name and mode; each line to one file, never both."""
        first = self.mismatch(0)
        deadline = time.monotonic() + 10
        while first not in self.trace_ids_in(self.events):
            self.assertLess(time.monotonic(), deadline, "no event before the rotation")
            time.sleep(0.05)
        rotated = self.events + ".1"
        os.rename(self.events, rotated)
        self.d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        n = 1
        while not self.trace_ids_in(self.events) - {None}:
            self.assertLess(time.monotonic(), deadline, "no event in the new file after SIGHUP")
            self.mismatch(n)
            n += 1
            time.sleep(0.1)
        old, new = self.trace_ids_in(rotated), self.trace_ids_in(self.events)
        self.assertIn(first, old)
        self.assertFalse((old & new) - {None}, "a line goes to one file, never both")
        self.assertEqual(stat.S_IMODE(os.stat(self.events).st_mode), 0o600)

    def test_json_log_lines_carry_trace_fields(self):
        self.d.stop()
        lines = [l for l in self.d.stderr_text().splitlines() if l.startswith("{")]
        self.assertTrue(lines, "no JSON log lines")
        for l in lines:
            o = json.loads(l)
            for k in ("ts", "level", "msg", "trace_id", "span_id"):
                self.assertIn(k, o, l)


if __name__ == "__main__":
    harness.main()
