"""test_tracing.py - OTLP/HTTP JSON trace export (docs/observability.md, "Traces";
API.md "Events, logs and traces": [tracing] otlp_endpoint, sample_ratio,
service_name).

The collector is a small OTLP receiver this file starts itself (Debian has no
OpenTelemetry collector): a stdlib HTTP server that takes POST /v1/traces,
parses the JSON and keeps it.  Checked: the OTLP JSON mapping (hex ids of the
right length, 64-bit integers as strings, lowerCamelCase member names, kind and
status as numbers), parent/child links between a request's span and its store
spans, the incoming traceparent's trace id and parent, the resource attributes,
the parent-based ratio sampler at 0 and 1, that no session ID, token, handle,
user id, path or query string appears anywhere in what is sent, and that a
collector that is down or slow costs requests nothing but dropped spans (the
drop counter grows, requests keep succeeding, the stop stays bounded)."""

import http.server
import json
import re
import threading
import time

import harness
from harness import LOOPBACK_CLIENT, SessiondTestCase, cookie_value, free_port

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
DIGITS = re.compile(r"^[0-9]+$")
CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
SAMPLED = "00-%s-%s-01" % (TID, PARENT)
WAIT = 15.0     # generous: a bound on waiting, never a measurement


class Receiver:
    """A minimal OTLP/HTTP JSON collector: POST /v1/traces bodies are parsed and
    kept; "delay" seconds of sleep before answering make it a slow collector."""

    def __init__(self, delay=0.0):
        self.delay = delay
        self.posts = []          # (path, content_type, raw body, parsed JSON)
        self.cond = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n)
                if outer.delay:
                    time.sleep(outer.delay)
                try:
                    doc = json.loads(raw.decode("utf-8"))
                except ValueError:
                    doc = None
                with outer.cond:
                    outer.posts.append((self.path, self.headers.get("Content-Type"), raw, doc))
                    outer.cond.notify_all()
                body = b"{}"
                try:
                    self.send_response(200 if doc is not None else 400)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass         # sessiond gave up waiting (slow collector)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d/v1/traces" % self.port

    def spans(self):
        """Every span received so far, with its resource and scope."""
        out = []
        with self.cond:
            posts = list(self.posts)
        for _, _, _, doc in posts:
            for rs in (doc or {}).get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        out.append((rs.get("resource"), ss.get("scope"), s))
        return out

    def wait_for(self, pred, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [s for _, _, s in self.spans() if pred(s)]
            if got:
                return got
            with self.cond:
                self.cond.wait(0.05)
        return []

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def attrs(span):
    """The span's attributes as {key: python value}."""
    out = {}
    for a in span.get("attributes", []):
        v = a["value"]
        out[a["key"]] = v.get("stringValue", v.get("intValue"))
    return out


def metric_values(text, name):
    """{labels: value} of the samples of "name" in a /metrics text."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, val = line.rpartition(" ")
            out[key[len(name):]] = float(val)
    return out


class TracingTestBase(SessiondTestCase):

    def receiver(self, **kw):
        r = Receiver(**kw)
        self.addCleanup(r.close)
        return r

    def traced(self, endpoint, ratio="1", extra=()):
        keys = {"tracing.otlp_endpoint": endpoint, "tracing.sample_ratio": ratio,
                "tracing.flush_interval_ms": "50", "tracing.batch_size": "64",
                "tracing.service_name": "sessiond-test"}
        keys.update(e.split("=", 1) for e in extra)
        return self.start(sets=["%s=%s" % kv for kv in keys.items()])

    def login(self, d, user):
        s = d.create_ok(user, client=LOOPBACK_CLIENT)
        name = cookie_value(s["set_cookie"])[0]
        return s, "%s=%s" % (name, s["session_id"])


class OtlpMappingTest(TracingTestBase):

    def test_request_span_and_store_children_follow_the_mapping(self):
        rcv = self.receiver()
        d = self.traced(rcv.url)
        s, cookie = self.login(d, "tracing-user-7f3a")
        r = d.auth(cookie, headers={"traceparent": SAMPLED,
                                    "tracestate": "congo=t61rcWkgMzE"})
        self.assertStatus(r, 200)
        self.assertEqual(r.header("X-Trace-Id"), TID)

        servers = rcv.wait_for(lambda sp: sp.get("traceId") == TID and sp.get("kind") == 2)
        self.assertEqual(len(servers), 1, "one SERVER span for the request")
        srv = servers[0]
        # The incoming traceparent: same trace, the caller's span is the parent.
        self.assertEqual(srv["parentSpanId"], PARENT)
        self.assertEqual(srv.get("traceState"), "congo=t61rcWkgMzE")
        self.assertEqual(srv["name"], "GET /v1/auth")
        a = attrs(srv)
        self.assertEqual(a["http.request.method"], "GET")
        self.assertEqual(a["http.route"], "/v1/auth")
        self.assertEqual(a["http.response.status_code"], "200")
        self.assertEqual(a["sessiond.outcome"], "ok")
        self.assertNotIn("status", srv, "a 200 leaves the status unset (the default, omitted)")
        # Remote parent: the OTLP span flags say so (HAS_IS_REMOTE | IS_REMOTE).
        self.assertEqual(srv["flags"] & 0x301, 0x301)

        kids = rcv.wait_for(lambda sp: sp.get("parentSpanId") == srv["spanId"])
        self.assertGreaterEqual(len(kids), 1, "the store read is a child span")
        for k in kids:
            self.assertEqual(k["traceId"], TID)
            self.assertEqual(k["kind"], 3, "store operations are CLIENT spans")
            ka = attrs(k)
            self.assertIn(ka["db.operation.name"], ("get", "update", "replace"))
            self.assertEqual(ka["sessiond.store.backend"], "lmdb")
            self.assertEqual(k["name"], "store " + ka["db.operation.name"])
            self.assertNotEqual(k["spanId"], srv["spanId"])
            # Inside the parent's time (generous slack for the clock reads).
            self.assertGreaterEqual(int(k["startTimeUnixNano"]),
                                    int(srv["startTimeUnixNano"]) - 50_000_000)
            self.assertLessEqual(int(k["endTimeUnixNano"]),
                                 int(srv["endTimeUnixNano"]) + 50_000_000)
        self.assertIn("get", [attrs(k)["db.operation.name"] for k in kids])

        # The mapping, on every post and every span.
        with rcv.cond:
            posts = list(rcv.posts)
        self.assertTrue(posts)
        for path, ctype, raw, doc in posts:
            self.assertEqual(path, "/v1/traces")
            self.assertEqual((ctype or "").split(";")[0], "application/json")
            self.assertIsNotNone(doc, "the body is JSON")
            self.check_camel(doc)
        version = self.version(d)
        for res, scope, sp in rcv.spans():
            ra = attrs(res)
            self.assertEqual(ra["service.name"], "sessiond-test")
            self.assertEqual(ra["service.version"], version)
            self.assertRegex(ra["service.instance.id"], UUID)
            self.assertEqual(scope["name"], "sessiond")
            self.check_span(sp)

    def check_span(self, sp):
        self.assertRegex(sp["traceId"], HEX32)
        self.assertRegex(sp["spanId"], HEX16)
        if "parentSpanId" in sp:
            self.assertRegex(sp["parentSpanId"], HEX16)
        # fixed64 times are JSON strings of decimal digits (protobuf JSON).
        for k in ("startTimeUnixNano", "endTimeUnixNano"):
            self.assertIsInstance(sp[k], str, k)
            self.assertRegex(sp[k], DIGITS, k)
        self.assertGreaterEqual(int(sp["endTimeUnixNano"]), int(sp["startTimeUnixNano"]))
        self.assertGreater(int(sp["startTimeUnixNano"]), 1_600_000_000 * 10**9,
                           "Unix nanoseconds")
        self.assertIsInstance(sp["kind"], int)
        self.assertIn(sp["kind"], (2, 3))
        # Status: omitted when unset (protobuf JSON leaves defaults out),
        # else {"code": 2 (ERROR), "message"}.
        if "status" in sp:
            self.assertIsInstance(sp["status"], dict)
            self.assertEqual(sp["status"]["code"], 2)
            self.assertIsInstance(sp["status"]["message"], str)
        self.assertIsInstance(sp["name"], str)
        for a in sp["attributes"]:
            self.assertEqual(set(a), {"key", "value"})
            self.assertEqual(len(a["value"]), 1)
            (kind, v), = a["value"].items()
            self.assertIn(kind, ("stringValue", "intValue"))
            self.assertIsInstance(v, str, "%s: int64 as a string" % a["key"])
            if kind == "intValue":
                self.assertRegex(v, DIGITS)

    def check_camel(self, obj):
        """Every member name is lowerCamelCase (attribute keys are values)."""
        if isinstance(obj, dict):
            for k, v in obj.items():
                self.assertRegex(k, CAMEL, "member name %r" % k)
                self.check_camel(v)
        elif isinstance(obj, list):
            for v in obj:
                self.check_camel(v)

    def version(self, d):
        r = d.get("/metrics")
        m = re.search(r'sessiond_build_info\{version="([^"]+)"\}', r.body.decode())
        return m.group(1)

    def test_no_secret_or_path_in_the_payload(self):
        rcv = self.receiver()
        d = self.traced(rcv.url)
        user = "secret-user-9c2e41"
        s, cookie = self.login(d, user)
        secrets = [s["session_id"], s["csrf_token"], s["handle"], user]
        # Forward-auth with a path and a query under the prefix, an API call
        # with the ID in its body, a rotation-free validate, a user route.
        d.auth(cookie)
        d.request("GET", "/v1/auth/private/area?token=qs-secret-5512", headers={
            "Cookie": cookie, "User-Agent": LOOPBACK_CLIENT["user_agent"]})
        r = d.validate(s["session_id"], client=LOOPBACK_CLIENT)
        self.assertStatus(r, 200)
        secrets.append(r.json["csrf_token"])
        d.list_sessions(user)
        d.destroy(s["session_id"])
        # The last request's spans arrive after all the others' (one FIFO).
        last = d.get("/healthz", headers={"traceparent": SAMPLED})
        self.assertStatus(last, 200)
        self.assertTrue(rcv.wait_for(lambda sp: sp.get("traceId") == TID))
        with rcv.cond:
            text = b"".join(p[2] for p in rcv.posts).decode("utf-8")
        for sec in secrets + ["qs-secret-5512", "private/area", "token=", "Cookie"]:
            self.assertNotIn(sec, text, "%r must not reach the collector" % sec[:12])
        routes = {attrs(sp).get("http.route") for _, _, sp in rcv.spans() if sp["kind"] == 2}
        self.assertIn("/v1/users/{user_id}/sessions", routes, "the pattern, not the path")
        self.assertIn("/v1/auth/{*}", routes)

    def test_outcome_of_a_refused_session(self):
        rcv = self.receiver()
        d = self.traced(rcv.url)
        s, cookie = self.login(d, "bob")
        # Another User-Agent than at login: the binding refuses the session.
        r = d.request("GET", "/v1/auth", headers={"Cookie": cookie,
                                                  "User-Agent": "other-agent/2.0",
                                                  "traceparent": SAMPLED})
        self.assertStatus(r, 401)
        srv = rcv.wait_for(lambda sp: sp.get("traceId") == TID and sp["kind"] == 2)
        self.assertTrue(srv)
        a = attrs(srv[0])
        self.assertEqual(a["sessiond.outcome"], "binding_mismatch")
        self.assertEqual(a["http.response.status_code"], "401")
        # No cookie at all.
        tp2 = "00-%s-%s-01" % ("1" * 32, PARENT)
        d.request("GET", "/v1/auth", headers={"traceparent": tp2})
        srv = rcv.wait_for(lambda sp: sp.get("traceId") == "1" * 32)
        self.assertEqual(attrs(srv[0])["sessiond.outcome"], "no_session")

    def test_resource_attributes_from_the_configuration(self):
        rcv = self.receiver()
        d = self.traced(rcv.url, extra=["tracing.service_instance_id=node-a-1"])
        d.get("/healthz")
        got = rcv.wait_for(lambda sp: sp["kind"] == 2)
        self.assertTrue(got)
        res, _, _ = rcv.spans()[0]
        ra = attrs(res)
        self.assertEqual(ra["service.instance.id"], "node-a-1")
        self.assertEqual(ra["service.name"], "sessiond-test")


class SamplingTest(TracingTestBase):

    def test_ratio_zero_exports_only_sampled_parents(self):
        rcv = self.receiver()
        d = self.traced(rcv.url, ratio="0")
        s, cookie = self.login(d, "carol")
        for _ in range(20):
            self.assertStatus(d.auth(cookie), 200)
        # An unsampled parent stays unsampled.
        d.auth(cookie, headers={"traceparent": "00-%s-%s-00" % ("2" * 32, PARENT)})
        # A sampled parent is honoured even at ratio 0 (parent-based).
        self.assertStatus(d.auth(cookie, headers={"traceparent": SAMPLED}), 200)
        self.assertTrue(rcv.wait_for(lambda sp: sp.get("traceId") == TID))
        traces = {sp["traceId"] for _, _, sp in rcv.spans()}
        self.assertEqual(traces, {TID}, "only the sampled parent's trace is exported")

    def test_ratio_one_exports_every_new_trace(self):
        rcv = self.receiver()
        d = self.traced(rcv.url, ratio="1")
        s, cookie = self.login(d, "dave")
        ids = set()
        for _ in range(10):
            r = d.auth(cookie)
            self.assertStatus(r, 200)
            ids.add(r.header("X-Trace-Id"))
        # ... but not a caller's unsampled trace.
        d.auth(cookie, headers={"traceparent": "00-%s-%s-00" % ("3" * 32, PARENT)})
        d.auth(cookie, headers={"traceparent": SAMPLED})
        self.assertTrue(rcv.wait_for(lambda sp: sp.get("traceId") == TID))
        got = {sp["traceId"] for _, _, sp in rcv.spans() if sp["kind"] == 2}
        self.assertTrue(ids <= got, "every new trace is sampled at ratio 1")
        self.assertNotIn("3" * 32, got)

    def test_tracing_off_by_default(self):
        d = self.start()
        text = d.get("/metrics").body.decode()
        self.assertIn("sessiond_tracing_enabled 0", text)


class CollectorTroubleTest(TracingTestBase):

    def test_collector_down(self):
        d = self.traced("http://127.0.0.1:%d/v1/traces" % free_port(),
                        extra=["tracing.queue_size=16", "tracing.batch_size=8",
                               "tracing.timeout_ms=500"])
        s, cookie = self.login(d, "erin")
        conn = d.connection()
        self.addCleanup(conn.close)
        t0 = time.monotonic()
        for _ in range(300):
            self.assertStatus(d.auth(cookie, conn=conn), 200)
        took = time.monotonic() - t0
        print("300 forward-auth requests with the collector down: %.3f s" % took)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            text = d.get("/metrics").body.decode()
            drops = metric_values(text, "sessiond_tracing_spans_dropped_total")
            if sum(drops.values()) > 0 and drops.get('{reason="export_failed"}', 0) > 0:
                break
            time.sleep(0.05)
        self.assertGreater(drops.get('{reason="export_failed"}', 0), 0, drops)
        self.assertEqual(metric_values(text, "sessiond_tracing_spans_exported_total"),
                         {"": 0.0})
        self.assertGreater(metric_values(text, "sessiond_tracing_exports_total")
                           ['{result="error"}'], 0)

    def test_collector_slow_is_bounded(self):
        rcv = self.receiver(delay=3.0)
        d = self.traced(rcv.url, extra=["tracing.queue_size=16", "tracing.batch_size=4",
                                        "tracing.timeout_ms=200"])
        s, cookie = self.login(d, "frank")
        conn = d.connection()
        self.addCleanup(conn.close)
        for _ in range(200):
            self.assertStatus(d.auth(cookie, conn=conn), 200)
        text = d.get("/metrics").body.decode()
        drops = metric_values(text, "sessiond_tracing_spans_dropped_total")
        queued = metric_values(text, "sessiond_tracing_queue_spans")[""]
        self.assertLessEqual(queued, 16, "the queue never holds more than queue_size")
        self.assertGreater(drops['{reason="queue_full"}'], 0,
                           "a slow collector makes the queue drop, not the requests wait")
        # The stop flushes for at most tracing.timeout_ms: the harness's own
        # bound (10 s) is far above it, so a hang would fail here.
        t0 = time.monotonic()
        d.stop()
        print("stop with a slow collector: %.3f s" % (time.monotonic() - t0))

    def test_stop_flushes_what_is_queued(self):
        rcv = self.receiver()
        d = self.start(sets=["tracing.otlp_endpoint=" + rcv.url,
                             "tracing.flush_interval_ms=60000",
                             "tracing.batch_size=512"])
        s, cookie = self.login(d, "gina")
        ids = {d.auth(cookie).header("X-Trace-Id") for _ in range(5)}
        time.sleep(0.2)
        self.assertEqual(rcv.spans(), [], "nothing sent before the interval or a full batch")
        d.stop()
        got = {sp["traceId"] for _, _, sp in rcv.spans()}
        self.assertTrue(ids <= got, "the stop sent the queued spans")


class TracingConfigTest(SessiondTestCase):

    def bad(self, key, value, part):
        d = self.make(sets=["%s=%s" % (key, value)])
        p = harness.subprocess.run(d.argv() + ["--check-config"], capture_output=True,
                                   cwd=d.dir, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        err = p.stderr.decode()
        self.assertIn(key, err)
        self.assertIn(part, err)

    def test_bad_values_are_refused(self):
        self.bad("tracing.otlp_endpoint", "ftp://collector/v1/traces", "http")
        self.bad("tracing.sample_ratio", "1.5", "ratio")
        self.bad("tracing.sample_ratio", "nan", "ratio")
        self.bad("tracing.sample_ratio", "0.5x", "ratio")
        self.bad("tracing.batch_size", "0", "tracing.batch_size")
        d = self.make(sets=["tracing.batch_size=100", "tracing.queue_size=10"])
        p = harness.subprocess.run(d.argv() + ["--check-config"], capture_output=True,
                                   cwd=d.dir, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("tracing.queue_size", p.stderr.decode())


if __name__ == "__main__":
    harness.main()
