"""test_audit.py - sessctl audit against real sites this test starts itself.

Every site is a real server: the demo shop (examples/shop: sessiond's
forward-auth behind nginx, express) in its secure TLS configuration and with
one deliberate weakness at a time (SHOP_WEAKNESS, examples/shop/README.md),
the shop in its plain-http development profile, PHP native sessions under
`php -S` (the tutorial defaults, and done right), a Flask application with
Flask's default signed-cookie session and an express-session application
with its defaults.  Each case lists the checks that must
fail (severity above info); any other failure is a false positive, a missing
one a false negative.  The counts are printed at the end and must be zero.

Besides the cases: the exit codes (0/1/2/3), the password never accepted on
the command line, the SARIF and HTML outputs, the request budget, Ctrl-C
printing what was found, and no session ID in any output.

    python3 test_audit.py --sessctl PATH --sessiond PATH [unittest args]

Only the Python standard library; sites whose runtime is missing (php,
Flask, node, nginx, the npm packages) are skipped, saying so.  docs/audit.md describes the
checks, docs/testing.md this file.
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SESSCTL = os.environ.get("SESSCTL_BIN", "")
SESSIOND = os.environ.get("SESSIOND_BIN", "")
PASSWORD = "audit-pass-7Qx"
SYSTEM_PYTHON = "/usr/bin/python3"
RESULTS = []        # (case, false positives, false negatives)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the site exited ({proc.returncode}) before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {port} within {timeout} s")


class Site:
    """A started server: url, stop(); and the directory it may leave files in."""

    def __init__(self):
        self.proc = None
        self.work = tempfile.mkdtemp(prefix="sessctl-audit-")
        self.url = ""
        self.cert = None
        self.sessiond_url = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.work, ignore_errors=True)


class PhpSite(Site):
    def __init__(self, mode):
        super().__init__()
        port = free_port()
        sessions = os.path.join(self.work, "sessions")
        os.mkdir(sessions)
        self.sessions = sessions
        env = dict(os.environ, SITE_MODE=mode, SITE_SESSIONS=sessions, SITE_PASSWORD=PASSWORD)
        self.proc = subprocess.Popen(
            ["php", "-n", "-d", "session.save_handler=files", "-S", f"127.0.0.1:{port}",
             os.path.join(HERE, "sites", "php_app.php")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        wait_port(port, self.proc)
        self.url = f"http://127.0.0.1:{port}"

    def issued_ids(self):
        return [os.path.basename(p)[5:] for p in glob.glob(os.path.join(self.sessions, "sess_*"))]


class FlaskSite(Site):
    def __init__(self):
        super().__init__()
        port = free_port()
        self.proc = subprocess.Popen([SYSTEM_PYTHON, os.path.join(HERE, "sites", "flask_app.py"),
                                      str(port), PASSWORD],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)
        wait_port(port, self.proc)
        self.url = f"http://127.0.0.1:{port}"


class ExpressSite(Site):
    def __init__(self):
        super().__init__()
        port = free_port()
        self.proc = subprocess.Popen(["node", os.path.join(HERE, "sites", "express", "app.js"),
                                      str(port), PASSWORD],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)
        wait_port(port, self.proc)
        self.url = f"http://127.0.0.1:{port}"


class ShopSite(Site):
    def __init__(self, weakness=None, tls=True, sets=()):
        super().__init__()
        opts = {"work": self.work, "sessiond": SESSIOND,
                "sessctl": SESSCTL, "tls": tls, "env": "production" if tls else "development",
                "host": "127.0.0.1", "sets": list(sets)}
        if weakness:
            opts["weakness"] = weakness
        self.errlog = open(os.path.join(self.work, "shop_stack.err"), "w+b")
        self.proc = subprocess.Popen(["node", os.path.join(HERE, "shop_stack.js"), json.dumps(opts)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.errlog, env=dict(os.environ, DEMO_PASSWORD=PASSWORD))
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(15)
            self.errlog.seek(0)
            err = self.errlog.read().decode(errors="replace")
            self.stop()
            raise RuntimeError(f"the shop did not start: {err.strip()}")
        info = json.loads(line)
        self.url, self.cert, self.sessiond_url = info["url"], info["cert"], info["sessiondUrl"]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.proc.stdout.close()
            if not self.proc.stdin.closed:
                self.proc.stdin.close()
        self.errlog.close()
        shutil.rmtree(self.work, ignore_errors=True)


def have(cmd):
    return shutil.which(cmd) is not None


def flask_available():
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    return subprocess.run([SYSTEM_PYTHON, "-c", "import flask"], capture_output=True).returncode == 0


def audit(site, *args, fmt="json", creds=True, timeout=180, samples=30, env=None):
    """Run sessctl audit against the site's login flow; (exit code, report, stderr)."""
    argv = [SESSCTL, "audit", site.url + "/", "--format", fmt, "--rate", "0", "--quiet",
            "--samples", str(samples)]
    if creds:
        argv += ["--login-url", "/login", "--protected-url", "/account", "--logout-url", "/logout"]
    if site.cert:
        argv += ["--cacert", site.cert]
    argv += list(args)
    e = dict(os.environ)
    if creds:
        e.update(SESSCTL_AUDIT_USER="alice", SESSCTL_AUDIT_PASSWORD=PASSWORD)
    e.update(env or {})
    p = subprocess.run(argv, capture_output=True, timeout=timeout, env=e)
    out = p.stdout.decode(errors="replace")
    report = json.loads(out) if fmt in ("json", "sarif") and out.strip() else out
    return p.returncode, report, p.stderr.decode(errors="replace")


def failed(report):
    return {f["check"] for f in report["findings"]
            if f["status"] == "fail" and f["severity"] != "info"}


def status_of(report, check):
    return next(f for f in report["findings"] if f["check"] == check)


# The cases: (name, site factory, extra audit args, samples, checks that must fail).
SHOP_CASES = [
    ("shop/secure", dict(), ("policy",), 160, set()),
    ("shop/no-httponly", dict(weakness="no-httponly"), (), 30, {"cookie-httponly"}),
    ("shop/samesite-none", dict(weakness="samesite-none"), (), 30, {"cookie-samesite"}),
    ("shop/persistent", dict(weakness="persistent"), (), 30, {"cookie-persistent-session"}),
    ("shop/cacheable", dict(weakness="cacheable"), (), 30, {"cache-control-authenticated"}),
    ("shop/logout-keeps-session", dict(weakness="logout-keeps-session"), (), 30,
     {"logout-invalidation"}),
    ("shop/id-in-url", dict(weakness="id-in-url"), (), 30, {"id-in-url"}),
    ("shop/tracker-before-consent", dict(weakness="tracker-before-consent"), ("policy",), 30,
     {"cookie-consent"}),
    ("shop/development-http", dict(tls=False), (), 30, set()),
]


class AuditCase(unittest.TestCase):
    def run_case(self, name, site, args, samples, expect):
        code, rep, err = audit(site, *args, samples=samples)
        self.assertIn(code, (0, 1), f"{name}: exit {code}: {err}")
        got = failed(rep)
        fp, fn = got - expect, expect - got
        RESULTS.append((name, sorted(fp), sorted(fn)))
        detail = "; ".join(f"{f['check']}: {f['evidence']}" for f in rep["findings"]
                           if f["check"] in fp | fn)
        self.assertEqual((fp, fn), (set(), set()), f"{name}: false positives {sorted(fp)}, "
                         f"false negatives {sorted(fn)} ({detail}; notes: {rep['notes']})")
        # Exit code: 1 exactly when a failure is at or above high.
        high = any(f["status"] == "fail" and f["severity"] in ("high", "critical")
                   for f in rep["findings"])
        self.assertEqual(code, 1 if high else 0, name)
        return rep


@unittest.skipUnless(have("node") and have("nginx") and os.path.exists(
    os.path.join(ROOT, "examples", "shop", "node_modules", "express")),
    "the demo shop needs node, nginx and npm ci in examples/shop (scripts/install-deps.sh)")
class TestShop(AuditCase):
    def test_cases(self):
        for name, kw, args, samples, expect in SHOP_CASES:
            with self.subTest(name):
                site = ShopSite(**kw)
                try:
                    extra = []
                    if "policy" in args:
                        extra = ["--policy", site.sessiond_url + "/v1/cookies/policy"]
                    rep = self.run_case(name, site, extra, samples, expect)
                    if name == "shop/secure":
                        r = rep["randomness"]
                        self.assertGreaterEqual(r["fips"]["blocks"], 1)
                        self.assertEqual(status_of(rep, "id-randomness")["status"], "pass")
                        self.assertEqual(status_of(rep, "cookie-prefix")["status"], "pass")
                        self.assertEqual(status_of(rep, "csrf-token")["status"], "pass")
                        self.assertEqual(status_of(rep, "logout-invalidation")["status"], "pass")
                    if name == "shop/development-http":
                        for check in ("cookie-secure", "cookie-prefix"):
                            f = status_of(rep, check)
                            self.assertEqual(f["status"], "not_applicable")
                            self.assertIn("cannot be satisfied over http", f["evidence"])
                finally:
                    site.stop()

    def test_timeouts_probe(self):
        """--probe-timeouts finds a 2 s idle timeout within its bound."""
        site = ShopSite(tls=False, sets=["session.idle_timeout=2", "session.absolute_timeout=30",
                                         "session.max_per_user=0"])
        try:
            code, rep, err = audit(site, "--probe-timeouts", "8", samples=10)
            f = status_of(rep, "session-timeout")
            self.assertEqual(f["status"], "pass", f["evidence"])
            self.assertRegex(f["evidence"], r"idle timeout between [124] and [248] s")
        finally:
            site.stop()


@unittest.skipUnless(have("php"), "php is missing (apt-get install php-cli)")
class TestPhp(AuditCase):
    def test_weak_defaults(self):
        site = PhpSite("weak")
        try:
            rep = self.run_case("php/weak", site, [], 160, {
                "cookie-httponly", "cookie-samesite", "session-fixation", "csrf-token",
                "logout-cookie-cleared"})
            self.assertIn("anonymous", status_of(rep, "id-length")["evidence"])
            self.assertEqual(status_of(rep, "id-randomness")["status"], "pass")
            # No session ID the site issued appears in any output.
            ids = site.issued_ids()
            self.assertGreater(len(ids), 100)
            for fmt in ("json", "text", "sarif", "html"):
                _, out, err = audit(site, fmt=fmt, samples=5)
                blob = (out if isinstance(out, str) else json.dumps(out)) + err
                for sid in site.issued_ids():
                    self.assertNotIn(sid, blob, f"a session ID in the {fmt} output")
        finally:
            site.stop()

    def test_secure(self):
        site = PhpSite("secure")
        try:
            self.run_case("php/secure", site, [], 30, set())
        finally:
            site.stop()

    def test_trans_sid(self):
        """session.use_only_cookies = 0: the ID is taken from the query string."""
        site = PhpSite("trans-sid")
        try:
            rep = self.run_case("php/trans-sid", site, [], 30, {"id-in-url"})
            self.assertIn("query string", status_of(rep, "id-in-url")["evidence"])
        finally:
            site.stop()


@unittest.skipUnless(flask_available(), "Flask is missing (apt-get install python3-flask)")
class TestFlask(AuditCase):
    def test_default_session(self):
        site = FlaskSite()
        try:
            rep = self.run_case("flask/default", site, [], 20, {
                "cookie-samesite", "csrf-token", "cache-control-authenticated",
                "logout-invalidation"})
            f = status_of(rep, "id-randomness")
            self.assertEqual(f["status"], "not_applicable")
            self.assertIn("itsdangerous", f["evidence"])
        finally:
            site.stop()


@unittest.skipUnless(have("node") and os.path.exists(
    os.path.join(HERE, "sites", "express", "node_modules", "express-session")),
    "express-session needs node and npm ci in tests/audit/sites/express (scripts/install-deps.sh)")
class TestExpress(AuditCase):
    def test_default_session(self):
        site = ExpressSite()
        try:
            # destroy() leaves the cookie, but the redirect to /login hands out a
            # new anonymous session (saveUninitialized), which replaces it: the
            # browser no longer holds the old ID, so SE-003 holds here.
            rep = self.run_case("express-session/default", site, [], 160, {
                "cookie-samesite", "session-fixation", "csrf-token",
                "cache-control-authenticated"})
            f = status_of(rep, "id-length")
            self.assertIn("express-session", f["evidence"])
            self.assertIn("192 bits nominal", f["evidence"])
            self.assertEqual(status_of(rep, "id-randomness")["status"], "pass")
        finally:
            site.stop()


@unittest.skipUnless(have("php"), "php is missing (apt-get install php-cli)")
class TestCommandLine(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.site = PhpSite("weak")

    @classmethod
    def tearDownClass(cls):
        cls.site.stop()

    def sessctl(self, *args, env=None):
        p = subprocess.run([SESSCTL, "audit", *args], capture_output=True, timeout=60,
                           env=dict(os.environ, **(env or {})))
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def test_password_never_on_the_command_line(self):
        code, _, err = self.sessctl(self.site.url, "--login-url", "/login", "--password", "x")
        self.assertEqual(code, 2)
        self.assertIn("never taken from the command line", err)

    def test_usage_errors(self):
        for args in ([], ["ftp://example.org/"], [self.site.url, "--format", "xml"],
                     [self.site.url, "--login-url", "https://other.example/login"],
                     [self.site.url, "--samples", "1"], [self.site.url, "--fail-on", "bad"],
                     [self.site.url, "--login-url", "/login"]):
            code, _, err = self.sessctl(*args, env={"SESSCTL_AUDIT_PASSWORD": ""})
            self.assertEqual(code, 2, f"{args}: {err}")

    def test_unreachable_is_exit_3(self):
        code, out, _ = self.sessctl(f"http://127.0.0.1:{free_port()}/", "--format", "json", "--quiet")
        self.assertEqual(code, 3)
        self.assertIn("could not be fetched", json.loads(out)["notes"])

    def test_wrong_password_is_exit_3(self):
        code, out, _ = self.sessctl(self.site.url, "--login-url", "/login", "--protected-url",
                                    "/account", "--format", "json", "--quiet",
                                    env={"SESSCTL_AUDIT_USER": "alice",
                                         "SESSCTL_AUDIT_PASSWORD": "wrong"})
        self.assertEqual(code, 3)
        self.assertIn("login was not recognised", json.loads(out)["notes"])

    def test_credentials_file(self):
        path = os.path.join(self.site.work, "creds")
        with open(path, "w") as f:
            f.write(f"alice\n{PASSWORD}\n")
        os.chmod(path, 0o600)
        code, out, err = self.sessctl(self.site.url, "--login-url", "/login", "--protected-url",
                                      "/account", "--credentials", path, "--format", "json",
                                      "--quiet", "--samples", "5", "--rate", "0",
                                      "--fail-on", "critical")
        self.assertEqual(code, 0, err)
        self.assertEqual(status_of(json.loads(out), "session-fixation")["status"], "fail")

    def test_fail_on_and_formats(self):
        code, sarif, _ = audit(self.site, fmt="sarif", samples=5, timeout=60)
        self.assertEqual(code, 1)
        self.assertEqual(sarif["version"], "2.1.0")
        run = sarif["runs"][0]
        rule_ids = {r["id"] for r in run["tool"]["driver"]["rules"]}
        self.assertTrue({"cookie-httponly", "session-fixation", "id-randomness"} <= rule_ids)
        self.assertIn("session-fixation", {r["ruleId"] for r in run["results"]})
        for r in run["results"]:
            self.assertIn(r["level"], ("error", "warning", "note"))
        code, _, _ = audit(self.site, "--fail-on", "none", samples=5, timeout=60)
        self.assertEqual(code, 0)
        code, html, _ = audit(self.site, fmt="html", samples=40, timeout=60)
        self.assertIn("<svg", html)
        self.assertNotIn("<script", html)
        self.assertNotIn("http://", html.split("</style>")[0].replace("http://www.w3.org", ""))
        code, text, _ = audit(self.site, fmt="text", samples=5, timeout=60)
        self.assertLess(text.index("== HIGH =="), text.index("== LOW =="))
        self.assertIn("recommendations", text)
        self.assertIn("fix: ", text)

    def test_budget(self):
        code, rep, _ = audit(self.site, "--max-requests", "12", samples=50, timeout=60)
        self.assertLessEqual(rep["requests"], 12)
        self.assertTrue(any(f["status"] == "not_tested" and "budget" in f["evidence"]
                            for f in rep["findings"]), rep["notes"])

    def test_ctrl_c_prints_what_was_found(self):
        argv = [SESSCTL, "audit", self.site.url + "/", "--login-url", "/login", "--protected-url",
                "/account", "--format", "json", "--samples", "5000", "--rate", "50",
                "--max-requests", "100000"]
        env = dict(os.environ, SESSCTL_AUDIT_USER="alice", SESSCTL_AUDIT_PASSWORD=PASSWORD)
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.addCleanup(p.stderr.close)
        self.addCleanup(p.stdout.close)
        # Wait until the sample has begun (progress lines on a pipe).
        deadline = time.time() + 30
        buf = b""
        while b"sampled" not in buf and time.time() < deadline:
            buf += p.stderr.read1(4096)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        rep = json.loads(out)
        self.assertTrue(rep["interrupted"])
        self.assertEqual(status_of(rep, "session-fixation")["status"], "fail")
        self.assertEqual(p.returncode, 1)   # findings at or above high win over "interrupted"
        self.assertIn(b"interrupted", buf + err)


class TestDocs(unittest.TestCase):
    def test_every_check_is_documented(self):
        """docs/audit.md describes every check of the table (the SARIF rules) with its
        checklist id; the API's check ids are all there."""
        p = subprocess.run([SESSCTL, "audit", f"http://127.0.0.1:{free_port()}/", "--format",
                            "sarif", "--quiet"], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 3)
        rules = json.loads(p.stdout)["runs"][0]["tool"]["driver"]["rules"]
        with open(os.path.join(ROOT, "docs", "audit.md")) as f:
            doc = f.read()
        for r in rules:
            self.assertIn(f"`{r['id']}`", doc, f"{r['id']} is not in docs/audit.md")
            for tag in r["properties"]["tags"]:
                if not tag.startswith("ASVS"):
                    self.assertRegex(doc, rf"\| {re.escape(tag)} \|", f"{tag} not in the checklist")
        for api_id in ("cookie-httponly", "cookie-secure", "cookie-samesite", "cookie-prefix",
                       "cookie-persistent-session", "id-length", "id-randomness",
                       "session-fixation", "logout-invalidation", "id-in-url",
                       "cache-control-authenticated", "csrf-token"):
            self.assertIn(api_id, {r["id"] for r in rules})

    def test_asvs_ids_exist(self):
        """Every ASVS id a check cites is an OWASP ASVS 5.0.0 requirement."""
        td = os.environ.get("SESS_TESTDATA", "")
        csv_path = os.path.join(td, "owasp-asvs", "ASVS-5.0.0-en.csv")
        if not td or not os.path.exists(csv_path):
            self.skipTest("SESS_TESTDATA/owasp-asvs absent: ASVS ids not checked")
        import csv
        with open(csv_path, newline="", encoding="utf-8") as f:
            known = {row["req_id"] for row in csv.DictReader(f)}
        p = subprocess.run([SESSCTL, "audit", f"http://127.0.0.1:{free_port()}/", "--format",
                            "sarif", "--quiet"], capture_output=True, timeout=60)
        for r in json.loads(p.stdout)["runs"][0]["tool"]["driver"]["rules"]:
            for tag in r["properties"]["tags"]:
                if tag.startswith("ASVS-5.0-"):
                    self.assertIn(tag[len("ASVS-5.0-"):], known, r["id"])


def main():
    global SESSCTL, SESSIOND
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessctl", default=SESSCTL)
    ap.add_argument("--sessiond", default=SESSIOND)
    args, rest = ap.parse_known_args()
    SESSCTL, SESSIOND = os.path.abspath(args.sessctl), os.path.abspath(args.sessiond)
    prog = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    fps = sum(len(fp) for _, fp, _ in RESULTS)
    fns = sum(len(fn) for _, _, fn in RESULTS)
    print(f"\nsessctl audit against {len(RESULTS)} site configurations: "
          f"{fps} false positives, {fns} false negatives")
    for name, fp, fn in RESULTS:
        print(f"  {name:32} FP {fp or '-'}  FN {fn or '-'}")
    sys.exit(0 if prog.result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
