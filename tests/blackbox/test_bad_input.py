"""test_bad_input.py - every error path of docs/api.md, data-driven from
cases/bad_input.json (one case per line: method, path, headers, body, expected
status and, where docs/api.md names it, the error code).

Invariant 12: every bad input gets a clear 4xx with the JSON error body, nothing
crashes, and nothing stored is lost or changed by a rejected request.  So a
session is created before the barrage, and afterwards it must still validate
with its data and its data version unchanged.

Case fields:
  name, method, path          the request ("$SID", "$SID42" (first 42 chars),
                              "$SIDA" (the ID plus one char), "$CSRF", "$HANDLE",
                              "$HANDLE21", "$HANDLEA" are replaced)
  json | body | body_hex | body_parts
                              the body: a JSON value, a text, raw bytes in hex, or
                              [[text, times], ...] concatenated
  headers                     added headers; null removes one (Content-Type is
                              application/json by default when there is a body)
  raw                         a whole raw HTTP request instead (protocol errors)
  status, error               expected status (or a list of acceptable ones) and
                              error code
  json_body                   false: the HTTP layer may answer without our JSON
  allow_close                 true: closing the connection is an answer too
"""

import json
import os

import harness
from harness import DEFAULT_CLIENT, SessiondTestCase

CASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases", "bad_input.json")
TARGET_DATA = {"keep": [1, 2, 3], "s": "unchanged \u2713", "nested": {"n": None}}


def load_cases():
    with open(CASES, encoding="utf-8") as f:
        return json.load(f)


class BadInputTest(SessiondTestCase):

    def subst(self, text):
        t = self.target
        for k, v in (("$SID42", t["session_id"][:42]), ("$SIDA", t["session_id"] + "A"),
                     ("$SID", t["session_id"]), ("$CSRF", t["csrf_token"]),
                     ("$HANDLE21", t["handle"][:21]), ("$HANDLEA", t["handle"] + "A"),
                     ("$HANDLE", t["handle"])):
            text = text.replace(k, v)
        return text

    def body_of(self, case):
        if "json" in case:
            return self.subst(json.dumps(case["json"])).encode("utf-8")
        if "body" in case:
            return self.subst(case["body"]).encode("utf-8")
        if "body_hex" in case:
            return bytes.fromhex(case["body_hex"])
        if "body_parts" in case:
            return self.subst("".join(t * n for t, n in case["body_parts"])).encode("utf-8")
        return None

    def send(self, case):
        d = self.d
        if "raw" in case:
            return d.raw(self.subst(case["raw"]).encode("latin-1"), timeout=10)
        body = self.body_of(case)
        headers = dict(case.get("headers", {}))
        if body is None:
            return d.request(case["method"], self.subst(case["path"]), headers=headers)
        return d.request(case["method"], self.subst(case["path"]), body=body,
                         headers=headers)

    def check(self, case, r):
        if r is None:
            self.assertTrue(case.get("allow_close"), "the server closed the connection "
                            "without an answer")
            return
        want = case["status"]
        if isinstance(want, list):      # several answers are right (e.g. 404 or 414)
            self.assertIn(r.status, want, r)
            want = r.status
        if case.get("json_body", True):
            self.assertError(r, want, case.get("error"))
        else:
            self.assertEqual(r.status, want, r)
        if r.status == 405:
            self.assertTrue(r.header("Allow"), "405 without an Allow header (RFC 9110 "
                            "section 15.5.6)")
        for secret in (self.target["session_id"], self.target["csrf_token"]):
            self.assertNotIn(secret.encode(), r.body, "an error answer echoes a secret")

    def test_every_bad_input(self):
        self.d = d = self.start()
        self.target = d.create_ok("target", data=TARGET_DATA)
        v0 = d.set_data(self.target["session_id"], TARGET_DATA)
        self.assertStatus(v0, 200)
        version = v0.json["version"]
        cases = load_cases()
        self.assertGreater(len(cases), 100)
        crashed = []
        for case in cases:
            with self.subTest(case["name"]):
                try:
                    r = self.send(case)
                except (ConnectionError, OSError) as e:
                    r = e
                if not d.running():
                    crashed.append(case["name"])
                    d.proc = None
                    d.start()       # keep going on the same store
                    self.fail("sessiond died on this input")
                if isinstance(r, Exception):
                    self.fail("no answer: %r" % (r,))
                self.check(case, r)

        self.assertEqual(crashed, [], "inputs that crashed sessiond")
        self.assertTrue(d.running(), "sessiond is still up")
        self.assertStatus(d.get("/healthz"), 200)
        # The session created before the barrage is untouched.
        r = d.validate(self.target["session_id"])
        self.assertStatus(r, 200)
        self.assertEqual(r.json["data"], TARGET_DATA)
        self.assertEqual(r.json["user_id"], "target")
        self.assertEqual(r.json["handle"], self.target["handle"])
        self.assertEqual(r.json["csrf_token"], self.target["csrf_token"])
        self.assertIs(r.json["elevated"], False)
        hs = [s["handle"] for s in d.list_sessions("target").json["sessions"]]
        self.assertEqual(hs, [self.target["handle"]])
        # No rejected create left a session behind.
        self.assertEqual(d.list_sessions("victim").json["sessions"], [])
        # No rejected data update bumped the version.
        r = d.set_data(self.target["session_id"], TARGET_DATA, version=version)
        self.assertStatus(r, 200, "the data version moved during the barrage")
        self.assertEqual(r.json["version"], version + 1)


class ContentTypeTest(SessiondTestCase):

    def test_json_with_charset_is_accepted(self):
        d = self.start()
        body = json.dumps({"user_id": "alice", "client": DEFAULT_CLIENT}).encode()
        for ct in ("application/json; charset=utf-8", "application/json;charset=UTF-8",
                   "Application/JSON"):
            r = d.post("/v1/sessions", body, headers={"Content-Type": ct})
            self.assertStatus(r, 201, "Content-Type: %s" % ct)

    def test_max_body_bytes_is_configurable(self):
        d = self.start(sets=["server.max_body_bytes=1024"])
        small = {"user_id": "alice", "client": DEFAULT_CLIENT, "data": {"x": "a" * 500}}
        self.assertStatus(d.post("/v1/sessions", small), 201)
        big = {"user_id": "alice", "client": DEFAULT_CLIENT, "data": {"x": "a" * 2000}}
        self.assertError(d.post("/v1/sessions", big), 413)
        # The same limit applies to a chunked body (no Content-Length).
        payload = json.dumps(big).encode()
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 500]), payload[i:i + 500])
                          for i in range(0, len(payload), 500)) + b"0\r\n\r\n"
        r = d.raw(b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                  b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks)
        self.assertIsNotNone(r)
        self.assertError(r, 413)
        self.assertEqual(len(d.list_sessions("alice").json["sessions"]), 1)

    def test_keep_alive_survives_errors(self):
        d = self.start()
        conn = d.connection()
        self.addCleanup(conn.close)
        for i in range(30):
            r = d.request("POST", "/v1/sessions", body=b"{broken", conn=conn)
            self.assertError(r, 400)
            r = d.request("GET", "/nope", conn=conn)
            self.assertError(r, 404)
        r = d.request("POST", "/v1/sessions", {"user_id": "alice", "client": DEFAULT_CLIENT},
                      conn=conn)
        self.assertStatus(r, 201)


if __name__ == "__main__":
    harness.main()
