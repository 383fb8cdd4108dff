"""test_metrics.py - the metrics the seed names, with their meaning, and the
observability examples (docs/observability.md, "Metrics"; examples/observability/).

  * sessiond_validation_duration_seconds: a histogram by route and outcome of
    the requests that validate a session (forward-auth, validate);
  * sessiond_sessions_live: active sessions;
  * sessiond_errors_total{type}: requests that did not succeed, by type;
  * sessiond_security_events_total{event}: token reuse, binding mismatches...;
  * every metric of a live /metrics is documented in docs/observability.md and
    every documented one is there;
  * every metric the alerting rules and the Grafana dashboard use exists in a
    live /metrics; the dashboard is JSON; `promtool check rules` and `check
    config` pass, and the rule unit tests (alerts_test.yml) with `promtool test
    rules`, when promtool is installed (Debian package prometheus), else those
    checks are skipped, saying so."""

import base64
import json
import os
import re
import shutil
import subprocess
import unittest

import harness
from harness import LOOPBACK_CLIENT, SessiondTestCase, cookie_value

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples", "observability")
DOC = os.path.join(ROOT, "docs", "observability.md")
METRIC_RE = re.compile(r"\b((?:sessiond|process)_[a-z0-9_]+)")
SUFFIXES = ("_bucket", "_sum", "_count")


def samples(text):
    """{(name, labels): value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, val = line.rpartition(" ")
        name, _, labels = key.partition("{")
        out[(name, "{" + labels if labels else "")] = float(val)
    return out


def families(text):
    """Metric family names declared by # TYPE lines."""
    return {l.split()[2] for l in text.splitlines() if l.startswith("# TYPE ")}


def base_name(name, fams):
    for s in SUFFIXES:
        if name.endswith(s) and name[: -len(s)] in fams:
            return name[: -len(s)]
    return name


class MetricsTest(SessiondTestCase):

    def setUp(self):
        # One webhook (to a closed port: its deliveries fail and are
        # retried), so that the delivery metrics are on /metrics too.
        self.d = self.make()
        secret = os.path.join(self.d.dir, "webhook.secret")
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, b"k1 whsec_" + base64.b64encode(b"m" * 24 + os.urandom(8)) + b"\n")
        os.close(fd)
        self.d.sets = ["events.webhook_url=http://127.0.0.1:9/hook",
                       "events.webhook_secret_file=" + secret]
        self.d.start()
        s = self.d.create_ok("mia", client=LOOPBACK_CLIENT)
        self.d.create_ok("noah", client=LOOPBACK_CLIENT)
        name = cookie_value(s["set_cookie"])[0]
        self.cookie = "%s=%s" % (name, s["session_id"])
        for _ in range(3):
            self.assertStatus(self.d.auth(self.cookie), 200)
        self.assertStatus(self.d.request("GET", "/v1/auth", headers={
            "Cookie": self.cookie, "User-Agent": "someone-else/1"}), 401)
        self.assertStatus(self.d.auth(None), 401)
        self.assertStatus(self.d.validate(s["session_id"], client=LOOPBACK_CLIENT), 200)
        self.assertStatus(self.d.get("/v1/none"), 404)
        self.text = self.d.get("/metrics").body.decode()
        self.m = samples(self.text)

    def test_validation_duration_by_route_and_outcome(self):
        m = self.m
        name = "sessiond_validation_duration_seconds"
        self.assertEqual(m[(name + "_count", '{route="auth",outcome="ok"}')], 3)
        self.assertEqual(m[(name + "_count", '{route="auth",outcome="binding_mismatch"}')], 1)
        self.assertEqual(m[(name + "_count", '{route="auth",outcome="no_session"}')], 1)
        self.assertEqual(m[(name + "_count", '{route="validate",outcome="ok"}')], 1)
        self.assertEqual(m[(name + "_bucket", '{route="auth",outcome="ok",le="+Inf"}')], 3)
        self.assertGreater(m[(name + "_sum", '{route="auth",outcome="ok"}')], 0)
        # Buckets are cumulative and fine below a millisecond.
        les = [k[1] for k in m if k[0] == name + "_bucket" and 'outcome="ok"' in k[1]
               and 'route="auth"' in k[1]]
        self.assertIn('{route="auth",outcome="ok",le="0.0001"}', les)
        self.assertIn('{route="auth",outcome="ok",le="0.001"}', les)
        # Routes that validate nothing are not in it.
        self.assertFalse([k for k in m if k[0] == name + "_count" and "create" in k[1]])

    def test_active_sessions_and_errors_by_type(self):
        m = self.m
        self.assertEqual(m[("sessiond_sessions_live", "")], 2)
        self.assertEqual(m[("sessiond_errors_total", '{type="binding_mismatch"}')], 1)
        self.assertEqual(m[("sessiond_errors_total", '{type="no_session"}')], 1)
        self.assertEqual(m[("sessiond_errors_total", '{type="not_found"}')], 1)
        self.assertEqual(m[("sessiond_errors_total", '{type="store_unavailable"}')], 0)
        self.assertNotIn(("sessiond_errors_total", '{type="ok"}'), m)
        self.assertEqual(m[("sessiond_security_events_total", '{event="binding_mismatch"}')], 1)
        self.assertEqual(m[("sessiond_security_events_total", '{event="token_reuse"}')], 0)

    def test_docs_list_every_metric(self):
        doc = open(DOC, encoding="utf-8").read()
        documented = set(re.findall(r"^\| `((?:sessiond|process)_[a-z0-9_]+)` \|", doc, re.M))
        live = families(self.text)
        self.assertEqual(sorted(live - documented), [], "metrics missing from docs/observability.md")
        self.assertEqual(sorted(documented - live), [], "documented metrics not in /metrics")

    def used_metrics(self, text):
        fams = families(self.text)
        return {base_name(n, fams) for n in METRIC_RE.findall(text)}

    def test_rules_and_dashboard_use_live_metrics(self):
        live = families(self.text)
        rules = open(os.path.join(EXAMPLES, "alerts.yml"), encoding="utf-8").read()
        used = self.used_metrics(rules)
        self.assertTrue(used)
        self.assertEqual(sorted(used - live), [], "alerts.yml uses unknown metrics")
        for needed in ("sessiond_store_breaker_open", "sessiond_validation_duration_seconds",
                       "sessiond_binding_mismatches_total", "sessiond_security_events_total",
                       "sessiond_http_requests_total", "sessiond_errors_total"):
            self.assertIn(needed, used)

        with open(os.path.join(EXAMPLES, "grafana-dashboard.json"), encoding="utf-8") as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        self.assertGreaterEqual(len(exprs), 10)
        for v in dash.get("templating", {}).get("list", []):
            if isinstance(v.get("query"), dict):
                exprs.append(v["query"]["query"])
        used = set()
        for e in exprs:
            used |= self.used_metrics(e)
        self.assertEqual(sorted(used - live), [], "the dashboard uses unknown metrics")
        ids = [p["id"] for p in dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are unique")


class PromtoolTest(unittest.TestCase):

    def setUp(self):
        self.promtool = shutil.which("promtool")
        if self.promtool is None:
            self.skipTest("promtool not installed (Debian package prometheus): "
                          "rules and config not checked by promtool")

    def run_promtool(self, *args):
        p = subprocess.run([self.promtool, "check"] + list(args), capture_output=True,
                           cwd=EXAMPLES, timeout=120)
        self.assertEqual(p.returncode, 0, (p.stdout + p.stderr).decode("utf-8", "replace"))

    def test_rules(self):
        self.run_promtool("rules", "alerts.yml")

    def test_config(self):
        self.run_promtool("config", "--syntax-only", "prometheus.yml")

    def test_rules_fire(self):
        # alerts_test.yml: the breaker, token reuse and error ratio alerts
        # fire on made-up series, and stay quiet before.
        p = subprocess.run([self.promtool, "test", "rules", "alerts_test.yml"],
                           capture_output=True, cwd=EXAMPLES, timeout=120)
        self.assertEqual(p.returncode, 0, (p.stdout + p.stderr).decode("utf-8", "replace"))


if __name__ == "__main__":
    harness.main()
