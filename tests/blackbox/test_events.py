"""test_events.py - lifecycle events delivered at least once to webhooks
(docs/observability.md, "Lifecycle events"; API.md "Events, logs and traces":
[events] webhook_url, webhook_secret_file, types).

A real receiver (webhook_receiver.py: Python's http.server) that the test
starts, stops and starts again; the real sessiond.  Checked: every event type
a request raises, the payload schema, the Standard Webhooks signature verified
by an independent implementation (Python's hmac here, the npm standardwebhooks
package through tests/events/verify.js when its node_modules are installed),
the global and per-URL type filters, no session ID or token in any payload,
delivery in order after the receiver was down, delivery after a kill -9 with
events pending, the outbox bound, "expired" found by the purge (the daemon's
clock moved with libfaketime, Debian's faketime package), and configuration
errors."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import harness
from harness import ID_IN_TEXT_RE, SessiondTestCase
from webhook_receiver import Receiver, unique, verify, write_secret

HERE = os.path.dirname(os.path.abspath(__file__))
EVENTS_DIR = os.path.join(HERE, "..", "events")
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
DATA_KEYS = {"handle", "user_id", "ip", "reason", "actor", "prev_handle", "trace_id",
             "span_id"}
OTHER_IP = {"ip": "198.51.100.9", "user_agent": harness.DEFAULT_CLIENT["user_agent"]}


def metric(d, name):
    """The value of one sample line of /metrics, or None."""
    text = d.get("/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def wait_metric(d, name, pred, timeout=60):
    """Poll /metrics until pred(value) (a bound on a hang, not a timing check)."""
    deadline = time.monotonic() + timeout
    while True:
        v = metric(d, name)
        if v is not None and pred(v):
            return v
        if time.monotonic() > deadline:
            raise AssertionError("%s stayed at %r" % (name, v))
        time.sleep(0.05)


def node_verify(secret, deliveries):
    """Verify with npm standardwebhooks; None (skipped, saying so) when its
    node_modules or node are absent."""
    if not os.path.isdir(os.path.join(EVENTS_DIR, "node_modules", "standardwebhooks")) \
            or not shutil.which("node"):
        sys.stderr.write("\n[npm standardwebhooks not installed (npm ci in tests/events): "
                         "Node verification skipped]\n")
        return None
    lines = "".join(json.dumps({"secret": secret, "body": d["body"].decode(),
                                "headers": d["headers"]}) + "\n" for d in deliveries)
    p = subprocess.run(["node", os.path.join(EVENTS_DIR, "verify.js")], input=lines.encode(),
                       capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode().strip()


class EventsTest(SessiondTestCase):

    def daemon(self, urls, sets=(), environ=None, start=True):
        d = self.make(environ=environ)
        self.secret = write_secret(os.path.join(d.dir, "webhook.secret"))["k1"]
        self.events_file = os.path.join(d.dir, "events.jsonl")
        d.sets = ["events.webhook_secret_file=" + os.path.join(d.dir, "webhook.secret"),
                  "log.security_events=" + self.events_file,
                  "events.retry_min_ms=50", "events.retry_max_ms=400"]
        d.sets += ["events.webhook_url=" + u for u in urls] + list(sets)
        if start:
            d.start()
        return d

    def receiver(self):
        r = Receiver()
        self.addCleanup(r.stop)
        return r

    def lines(self):
        with open(self.events_file) as f:
            return [json.loads(l) for l in f if l.strip()]

    def check_payloads(self, d, deliveries, tolerance=300, kids="k1"):
        for dl in deliveries:
            h = dl["headers"]
            self.assertTrue(verify(self.secret, dl, tolerance), "bad signature: %r" % h)
            self.assertEqual(h.get("webhook-key-id"), kids)
            self.assertEqual(h.get("content-type"), "application/json")
            ev = dl["json"]
            self.assertEqual(ev["id"], h["webhook-id"])
            self.assertRegex(ev["id"], UUID7)
            self.assertEqual(set(ev), {"id", "type", "timestamp", "data"})
            self.assertEqual(set(ev["data"]), DATA_KEYS)
            self.assertIn(ev["data"]["actor"], ("user", "admin_api", "limit", "purge"))
            # docs/security.md invariant 13: never an ID or a token.
            body = dl["body"].decode()
            d.assert_no_ids_in(body, "a webhook body")
            self.assertIsNone(ID_IN_TEXT_RE.search(body), "a 43-character token in %s" % body)

    def test_1_signed_filtered_and_complete(self):
        recv = self.receiver()
        d = self.daemon([recv.url("/all"), recv.url("/logout") + " destroyed"],
                        ["events.types=created,rotated,regenerated,elevated,destroyed,"
                         "expired,evicted,revoked,token_reuse", "session.max_per_user=2"])
        a = d.create_ok("alice")
        r = d.regenerate(a["session_id"], elevated=True)
        self.assertStatus(r, 200)
        self.assertStatus(d.destroy(r.json["session_id"]), 200)
        bob = [d.create_ok("bob") for _ in range(3)]          # the third evicts the first
        v = d.validate(bob[2]["session_id"], client=OTHER_IP)  # binding_mismatch: filtered
        self.assertStatus(v, 401)
        self.assertStatus(d.delete("/v1/sessions/" + bob[1]["handle"]), 204)

        want = ["created", "regenerated", "elevated", "destroyed", "created", "created",
                "created", "evicted", "revoked"]
        got = recv.wait(lambda g: len(unique([x for x in g if x["path"] == "/all"])) >= len(want)
                        and len(unique([x for x in g if x["path"] == "/logout"])) >= 1)
        all_ = unique([x for x in got if x["path"] == "/all"])
        self.assertEqual([e["type"] for e in all_], want)
        by = {e["type"]: e["data"] for e in all_}
        self.assertEqual(all_[0]["data"]["handle"], a["handle"])
        self.assertEqual(all_[0]["data"]["user_id"], "alice")
        self.assertEqual(all_[0]["data"]["reason"], "login")
        self.assertEqual(by["regenerated"]["prev_handle"], a["handle"])
        self.assertEqual(by["regenerated"]["handle"], r.json["handle"])
        self.assertEqual(by["destroyed"]["actor"], "user")
        self.assertEqual(by["evicted"], dict(by["evicted"], handle=bob[0]["handle"],
                                             actor="limit", reason="max_per_user"))
        self.assertEqual(by["revoked"]["handle"], bob[1]["handle"])
        self.assertEqual(by["revoked"]["actor"], "admin_api")
        self.assertEqual(by["revoked"]["user_id"], "bob")
        for e in all_:
            self.assertRegex(e["data"]["trace_id"], HEX32, "request events carry the trace")
        # The per-URL filter: only destroyed.
        logout = unique([x for x in got if x["path"] == "/logout"])
        self.assertEqual([e["type"] for e in logout], ["destroyed"])
        self.assertEqual(logout[0]["id"], by_id(all_, "destroyed"))
        self.check_payloads(d, got)
        res = node_verify(self.secret, got)
        if res is not None:
            self.assertEqual(res, (0, "ok %d" % len(got)))
        # The JSON lines have every event, the filtered binding_mismatch too,
        # with the same ids.
        lines = [l for l in self.lines() if "type" in l]
        self.assertIn("binding_mismatch", [l["type"] for l in lines])
        self.assertEqual([l["id"] for l in lines if l["type"] != "binding_mismatch"],
                         [e["id"] for e in all_])
        wait_metric(d, 'sessiond_events_delivered_total{webhook="1"}', lambda v: v == 9)
        wait_metric(d, "sessiond_events_outbox_pending", lambda v: v == 0)

    def test_2_receiver_down_then_back_all_in_order(self):
        recv = self.receiver()
        recv.stop()                                       # refused from the start
        d = self.daemon([recv.url()])
        order = []
        sids = {u: d.create_ok(u) for u in ("u1", "u2", "u3")}
        order += [("created", u) for u in sids]
        regen = {}
        for u in ("u2", "u1", "u3"):
            r = d.regenerate(sids[u]["session_id"])
            self.assertStatus(r, 200)
            regen[u] = r.json
            order.append(("regenerated", u))
        for u in ("u3", "u1", "u2"):
            self.assertStatus(d.destroy(regen[u]["session_id"]), 200)
            order.append(("destroyed", u))
        wait_metric(d, 'sessiond_events_delivery_failures_total{webhook="1"}',
                    lambda v: v >= 3)
        wait_metric(d, "sessiond_events_outbox_pending", lambda v: v == 9)
        recv.start()                                      # back, same port
        got = recv.wait(lambda g: len(unique(g)) >= 9)
        evs = unique(got)
        self.assertEqual([(e["type"], e["data"]["user_id"]) for e in evs], order)
        for u in sids:   # per session: the handle chain holds
            mine = [e["data"] for e in evs if e["data"]["user_id"] == u]
            self.assertEqual(mine[1]["prev_handle"], mine[0]["handle"])
            self.assertEqual(mine[2]["handle"], mine[1]["handle"])
        self.check_payloads(d, got)
        self.assertIn("delivery failed (no answer)", d.stderr_text())
        self.assertIn("delivering again after", d.stderr_text())

    def test_3_kill9_with_events_pending_then_restart(self):
        recv = self.receiver()
        recv.stop()
        d = self.daemon([recv.url()])
        s = [d.create_ok("k%d" % i) for i in range(4)]
        self.assertStatus(d.destroy(s[0]["session_id"]), 200)
        wait_metric(d, "sessiond_events_outbox_pending", lambda v: v == 5)
        d.kill9()                                         # nothing flushed, nothing said
        recv.start()
        d.start()                                         # same directory, same outbox
        got = recv.wait(lambda g: len(unique(g)) >= 5)
        evs = unique(got)
        self.assertEqual([e["type"] for e in evs], ["created"] * 4 + ["destroyed"])
        ids = [l["id"] for l in self.lines() if "type" in l]
        self.assertEqual([e["id"] for e in evs], ids)
        self.check_payloads(d, got)
        self.assertIn("events waiting for delivery", d.stderr_text())

    def test_4_outbox_bound_drops_counted_and_logged(self):
        recv = self.receiver()
        recv.stop()
        d = self.daemon([recv.url()], ["events.outbox_max_events=100", "session.max_per_user=0"])
        for i in range(103):
            d.create_ok("full")
        self.assertEqual(metric(d, 'sessiond_events_dropped_total{reason="outbox_full"}'), 3)
        self.assertIn("events outbox full", d.stderr_text())
        recv.start()
        recv.wait(lambda g: len(unique(g)) >= 100)
        d.create_ok("after")
        recv.wait(lambda g: len(unique(g)) >= 101)
        self.assertIn("events outbox has room again; 3 events were dropped", d.stderr_text())

    def test_5_expired_found_by_the_purge(self):
        if not os.path.exists(FAKETIME_LIB):
            self.skipTest("libfaketime not installed (Debian package faketime)")
        if harness.WRAP:
            self.skipTest("libfaketime is not preloaded under --wrap (valgrind)")
        recv = self.receiver()
        tmp = tempfile.mkdtemp(prefix="sessiond-faketime-")
        self.addCleanup(shutil.rmtree, tmp, True)
        tfile = os.path.join(tmp, "faketime")
        with open(tfile, "w") as f:
            f.write("+0\n")
        env = dict(os.environ, LD_PRELOAD=FAKETIME_LIB, FAKETIME_TIMESTAMP_FILE=tfile,
                   FAKETIME_CACHE_DURATION="1", FAKETIME_DONT_FAKE_MONOTONIC="1",
                   ASAN_OPTIONS=(os.environ.get("ASAN_OPTIONS", "") +
                                 ":verify_asan_link_order=0").lstrip(":"))
        d = self.daemon([recv.url()], ["session.idle_timeout=60", "session.rotate_interval=0",
                                       "store.purge_interval=1"], environ=env)
        s = d.create_ok("ida")
        recv.wait(lambda g: len(unique(g)) >= 1)
        # Past the idle timeout and the record's retention (600 s): the purge.
        with open(tfile, "w") as f:
            f.write("+1000\n")
        got = recv.wait(lambda g: any(e["type"] == "expired" for e in unique(g)))
        time.sleep(2.5)                                   # two more purges find nothing
        evs = [e for e in unique(recv.got()) if e["type"] == "expired"]
        self.assertEqual(len(evs), 1, evs)
        e = evs[0]["data"]
        self.assertEqual((e["handle"], e["user_id"], e["actor"], e["reason"]),
                         (s["handle"], "ida", "purge", "expired_idle"))
        self.assertIsNone(e["trace_id"], "the purge is not a request")
        self.check_payloads(d, recv.got(), tolerance=None)   # its clock is moved

    def test_7_sighup_reloads_the_signing_keys(self):
        recv = self.receiver()
        d = self.daemon([recv.url()])
        d.create_ok("before")
        recv.wait(lambda g: len(g) >= 1)
        old = self.secret
        # Key rotation: the new key first, the old one kept for a while.
        new = write_secret(os.path.join(d.dir, "webhook.secret"), ("k2", "k1"))
        with open(os.path.join(d.dir, "webhook.secret")) as f:
            text = f.read().replace(new["k1"], old)
        with open(os.path.join(d.dir, "webhook.secret"), "w") as f:
            f.write(text)
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "reloaded the webhook keys" not in d.stderr_text():
            self.assertLess(time.monotonic(), deadline, "no reload logged")
            time.sleep(0.05)
        d.create_ok("after")
        got = recv.wait(lambda g: len(g) >= 2)
        last = got[-1]
        self.assertEqual(last["headers"]["webhook-key-id"], "k2 k1")
        self.assertEqual(len(last["headers"]["webhook-signature"].split(" ")), 2)
        self.assertTrue(verify(new["k2"], last) and verify(old, last))
        self.secret = new["k2"]
        self.check_payloads(d, [last], kids="k2 k1")
        # A broken file keeps the current keys.
        with open(os.path.join(d.dir, "webhook.secret"), "w") as f:
            f.write("k3 not-a-secret\n")
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "keeping the current webhook keys" not in d.stderr_text():
            self.assertLess(time.monotonic(), deadline, "no failed reload logged")
            time.sleep(0.05)
        d.create_ok("still")
        got = recv.wait(lambda g: len(g) >= 3)
        self.assertTrue(verify(new["k2"], got[-1]))

    def run_fail(self, sets, mode=0o600, env="development"):
        d = self.make()
        sec = os.path.join(d.dir, "webhook.secret")
        write_secret(sec)
        os.chmod(sec, mode)
        d.env = env
        d.sets = list(sets)
        argv = [a.replace("@SECRET@", sec) for a in d.argv()]
        if env != "development":
            harness.generate_key(d.keys_dir)
        p = subprocess.run(argv, cwd=d.dir, capture_output=True, timeout=30)
        return p.returncode, p.stderr.decode()

    def test_6_configuration_errors(self):
        url = "events.webhook_url=http://127.0.0.1:9/hook?token=s3cr3t"
        cases = [
            ([url], 0o600, "development", "webhook_secret_file: required"),
            ([url, "events.webhook_secret_file=@SECRET@"], 0o644, "development",
             "readable by its owner only"),
            ([url, "events.webhook_secret_file=@SECRET@", "events.types=created,bogus"],
             0o600, "development", "unknown event type 'bogus'"),
            ([url + " created,nope", "events.webhook_secret_file=@SECRET@"], 0o600,
             "development", "unknown event type 'nope'"),
            ([url, "events.webhook_secret_file=@SECRET@"], 0o600, "production",
             "must be https:// outside development"),
        ]
        for sets, mode, env, msg in cases:
            rc, err = self.run_fail(sets, mode, env)
            self.assertEqual(rc, 2, (sets, err))
            self.assertIn(msg, err, sets)
            self.assertNotIn("s3cr3t", err, "a URL's token echoed")


def by_id(evs, type_):
    return [e["id"] for e in evs if e["type"] == type_][0]


if __name__ == "__main__":
    harness.main()
