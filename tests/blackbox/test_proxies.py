"""test_proxies.py - the proxy examples run for real (docs/deployment.md):
examples/nginx with Debian's nginx (plain HTTP and the TLS variant with a
certificate made here by openssl) and examples/haproxy with Debian's HAProxy
2.6 (its Lua action calling /v1/auth through core.httpclient), each in front
of a small upstream (python http.server) that echoes the headers it got.

For every proxy: a valid session reaches the upstream with X-Session-User,
X-Session-Handle, the session's CSRF token and X-Cookie-Consent; a missing or
dead session is a redirect to /login for a browser and a JSON 401 for
Accept: application/json; a rotated ID's Set-Cookie reaches the client; an
unsafe method through the proxy needs the CSRF token and a same-site Origin;
the client binding sees the real client address (the proxy's
X-Forwarded-For, never the client's own); identity headers sent by a client
never reach the upstream.

The proxies listen on 127.0.0.1; clients connect from other loopback
addresses (127.0.0.2, 127.0.0.3) so that the client address differs from the
proxy's. A missing nginx or haproxy binary is a failure, not a skip
(scripts/install-deps.sh installs both)."""

import http.client
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import harness
from harness import SessiondTestCase, cookie_value

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.normpath(os.path.join(HERE, "..", "..", "examples"))
UA = "proxy-test/1.0"
START_TIMEOUT = 15.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Echo(http.server.BaseHTTPRequestHandler):
    """The upstream application: answers every request with the request
    line and headers it received, as JSON."""

    protocol_version = "HTTP/1.1"

    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        out = json.dumps({"method": self.command, "path": self.path,
                          "headers": {k.lower(): v for k, v in self.headers.items()},
                          "body": body.decode("latin-1")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = answer

    def log_message(self, *a):
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A proxy closing an idle keep-alive connection (HAProxy resets
        # them when it stops) is not an error of the test.
        pass


class Upstream:
    def __init__(self):
        self.server = QuietServer(("127.0.0.1", 0), Echo)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Proxy:
    """A proxy process run from a copy of an examples/ directory in which
    the documented addresses are replaced by this test's ports."""

    def __init__(self, name, argv_fn, replacements, conf_files, prepend=None):
        self.dir = tempfile.mkdtemp(prefix="sessiond-%s-" % name)
        src = os.path.join(EXAMPLES, name)
        for f in os.listdir(src):
            shutil.copy(os.path.join(src, f), self.dir)
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        for f in conf_files:
            path = os.path.join(self.dir, f)
            with open(path) as fh:
                text = fh.read()
            for a, b in replacements:
                text = text.replace(a, b)
            if prepend and f in prepend:
                text = prepend[f] + text
            with open(path, "w") as fh:
                fh.write(text)
        self.log = open(os.path.join(self.dir, "stderr.log"), "wb")
        self.proc = subprocess.Popen(argv_fn(self.dir), cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def wait(self, port):
        if not wait_port(port, self.proc):
            self.stop()
            raise AssertionError("proxy did not start:\n" + self.output())

    def output(self):
        out = []
        for f in ("stderr.log", "nginx-error.log"):
            p = os.path.join(self.dir, f)
            if os.path.exists(p):
                with open(p, errors="replace") as fh:
                    out.append(fh.read()[-3000:])
        return "\n".join(out)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def make_cert(dirname):
    """A self-signed certificate for 127.0.0.1 and localhost."""
    crt, key = os.path.join(dirname, "shop.crt"), os.path.join(dirname, "shop.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o600)
    return crt, key


class ProxyCase:
    """The behaviour every proxy example must show; mixed into one
    TestCase per proxy, which sets self.port (and self.tls) in setUp."""

    tls = False
    scheme_port = None

    # ---- plumbing ---------------------------------------------------------

    def setUp(self):
        self.up = Upstream()
        self.addCleanup(self.up.stop)
        self.d = self.start(env="production" if self.tls else None,
                            sets=["binding.trusted_proxies=127.0.0.1/32",
                                  "binding.ip_prefix_v4=32",
                                  "session.rotate_interval=3600",
                                  "session.rotation_grace=10"])
        self.start_proxy()

    def connect(self, source="127.0.0.2"):
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.cert)
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10,
                                               context=ctx, source_address=(source, 0))
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10,
                                          source_address=(source, 0))

    def origin(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    def req(self, method, path, cookie=None, headers=None, body=None, source="127.0.0.2"):
        h = {"User-Agent": UA, "Host": "127.0.0.1:%d" % self.port}
        if cookie:
            h["Cookie"] = cookie
        h.update(headers or {})
        c = self.connect(source)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            r.body = data
            try:
                r.json = json.loads(data) if data else None
            except ValueError:
                r.json = None
            return r
        finally:
            c.close()

    def login(self, user="alice", ip="127.0.0.2"):
        s = self.d.create_ok(user, client={"ip": ip, "user_agent": UA})
        name, sid = cookie_value(s["set_cookie"])
        s["cookie"] = "%s=%s" % (name, sid)
        return s

    def upstream_headers(self, r):
        self.assertEqual(r.status, 200, "%s %s" % (r.status, r.body[:300]))
        return r.json["headers"]

    # ---- the behaviour ------------------------------------------------------

    def test_valid_session_headers(self):
        s = self.login()
        h = self.upstream_headers(self.req("GET", "/account", s["cookie"]))
        self.assertEqual(h.get("x-session-user"), "alice")
        self.assertEqual(h.get("x-session-handle"), s["handle"])
        self.assertEqual(h.get("x-session-csrf-token"), s["csrf_token"])
        self.assertEqual(h.get("x-cookie-consent"), "essential")
        # With a consent cookie, the verified categories.
        j = self.d.post("/v1/cookies/consent", {"categories": ["analytics"]}).json
        cname, cval = cookie_value(j["set_cookie"])
        h = self.upstream_headers(self.req("GET", "/account",
                                           "%s; %s=%s" % (s["cookie"], cname, cval)))
        self.assertEqual(h.get("x-cookie-consent"), "essential,analytics")
        h = self.upstream_headers(self.req("GET", "/account",
                                           "%s; %s=%s" % (s["cookie"], cname, cval[:-1] + "x")))
        self.assertEqual(h.get("x-cookie-consent"), "essential", "tampered consent")

    def test_spoofed_identity_headers_never_reach_upstream(self):
        spoof = {"X-Session-User": "mallory", "X-Session-Handle": "h", "X-Cookie-Consent":
                 "essential,marketing", "X-Session-CSRF-Token": "t"}
        s = self.login()
        h = self.upstream_headers(self.req("GET", "/account", s["cookie"], spoof))
        self.assertEqual(h.get("x-session-user"), "alice")
        self.assertEqual(h.get("x-cookie-consent"), "essential")
        self.assertEqual(h.get("x-session-csrf-token"), s["csrf_token"])
        # A public page gets none of them.
        h = self.upstream_headers(self.req("GET", "/login", None, spoof))
        for k in ("x-session-user", "x-session-handle", "x-cookie-consent",
                  "x-session-csrf-token"):
            self.assertNotIn(k, h, "%s reached the upstream of a public page" % k)

    def test_no_session_redirect_or_json(self):
        for cookie in (None, "sessiond=garbage", "__Host-sessiond=" + "A" * 43):
            r = self.req("GET", "/account", cookie, {"Accept": "text/html,*/*"})
            self.assertEqual(r.status, 302, r.body)
            self.assertTrue(r.getheader("Location", "").endswith("/login"),
                            r.getheader("Location"))
            r = self.req("GET", "/api/orders", cookie, {"Accept": "application/json"})
            self.assertEqual(r.status, 401, r.body)
            self.assertEqual(r.json["error"], "invalid_session")
        # A destroyed session is refused at once.
        s = self.login()
        self.d.destroy(s["session_id"])
        r = self.req("GET", "/account", s["cookie"], {"Accept": "application/json"})
        self.assertEqual(r.status, 401)

    def test_rotation_set_cookie_reaches_client(self):
        d = self.d
        d.stop()
        d.sets = [x for x in d.sets if not x.startswith("session.rotat")] + \
            ["session.rotate_interval=1", "session.rotation_grace=0"]
        d.start()
        self.restart_proxy_for(d)
        s = self.login()
        time.sleep(1.2)   # past rotate_interval: the next request rotates
        r = self.req("GET", "/account", s["cookie"])
        self.assertEqual(r.status, 200, r.body)
        sc = r.getheader("Set-Cookie")
        self.assertIsNotNone(sc, "no Set-Cookie after rotation")
        name, new = cookie_value(sc)
        self.assertEqual(name, s["cookie"].split("=")[0])
        self.assertNotEqual(new, s["session_id"])
        if self.tls:
            self.assertTrue(sc.startswith("__Host-"), sc)
            self.assertIn("Secure", sc)
        # The successor works through the proxy.
        h = self.upstream_headers(self.req("GET", "/account", "%s=%s" % (name, new)))
        self.assertEqual(h["x-session-user"], "alice")

    def test_csrf_through_proxy(self):
        s = self.login()
        body = b"amount=10"
        hdr = {"Content-Type": "application/x-www-form-urlencoded", "Origin": self.origin(),
               "Accept": "application/json"}
        r = self.req("POST", "/transfer", s["cookie"], hdr, body)
        self.assertEqual(r.status, 403, "POST without the CSRF token: %s" % r.body)
        r = self.req("POST", "/transfer", s["cookie"], dict(hdr, **{"X-CSRF-Token": "x" * 43}),
                     body)
        self.assertEqual(r.status, 403, "wrong token")
        ok = dict(hdr, **{"X-CSRF-Token": s["csrf_token"]})
        r = self.req("POST", "/transfer", s["cookie"], ok, body)
        h = self.upstream_headers(r)
        self.assertEqual(r.json["method"], "POST")
        self.assertEqual(r.json["body"], "amount=10", "the body reaches the upstream")
        self.assertEqual(h["x-session-user"], "alice")
        r = self.req("POST", "/transfer", s["cookie"], dict(ok, Origin="http://evil.example"),
                     body)
        self.assertEqual(r.status, 403, "foreign Origin")
        r = self.req("POST", "/transfer", s["cookie"],
                     dict(ok, **{"Sec-Fetch-Site": "cross-site"}), body)
        self.assertEqual(r.status, 403, "Sec-Fetch-Site: cross-site")
        r = self.req("DELETE", "/cart", s["cookie"], {"Accept": "application/json"})
        self.assertEqual(r.status, 403, "DELETE is unsafe too")

    def test_binding_sees_real_client(self):
        s = self.login(ip="127.0.0.2")
        self.upstream_headers(self.req("GET", "/account", s["cookie"], source="127.0.0.2"))
        r = self.req("GET", "/account", s["cookie"], {"Accept": "application/json"},
                     source="127.0.0.3")
        self.assertEqual(r.status, 401, "another client address must not use the session")
        # The client cannot choose its address with its own X-Forwarded-For.
        r = self.req("GET", "/account", s["cookie"],
                     {"Accept": "application/json", "X-Forwarded-For": "127.0.0.2",
                      "X-Real-IP": "127.0.0.2"}, source="127.0.0.3")
        self.assertEqual(r.status, 401, "X-Forwarded-For from the client was believed")
        # Still alive for its own client (binding action reject refuses the
        # request, it does not kill the session).
        self.upstream_headers(self.req("GET", "/account", s["cookie"], source="127.0.0.2"))


# ---- nginx ------------------------------------------------------------------

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class NginxMixin:
    conf = "nginx.conf"

    def start_proxy(self):
        self.port = free_port()
        self.http_port = self.port
        repl = [("127.0.0.1:7700", "127.0.0.1:%d" % self.d.port),
                ("127.0.0.1:3000", "127.0.0.1:%d" % self.up.port),
                ("worker_processes auto;", "worker_processes 1;")]
        if self.tls:
            self.http_port = free_port()
            self.certdir = tempfile.mkdtemp(prefix="sessiond-cert-")
            self.addCleanup(shutil.rmtree, self.certdir, True)
            self.cert, key = make_cert(self.certdir)
            repl += [("127.0.0.1:8443", "127.0.0.1:%d" % self.port),
                     ("https://$host:8443", "https://$host:%d" % self.port),
                     ("127.0.0.1:8080", "127.0.0.1:%d" % self.http_port),
                     ("/etc/sessiond/tls/shop.crt", self.cert),
                     ("/etc/sessiond/tls/shop.key", key)]
        else:
            repl.append(("127.0.0.1:8080", "127.0.0.1:%d" % self.port))
        self.repl = repl
        self.launch()

    def launch(self):
        user = "user root root;\n" if os.geteuid() == 0 else ""
        self.proxy = Proxy("nginx", lambda d: [NGINX, "-p", d, "-c", os.path.join(d, self.conf),
                                               "-g", "daemon off;", "-e",
                                               os.path.join(d, "nginx-error.log")],
                           self.repl, [self.conf], prepend={self.conf: user})
        self.proxy.wait(self.port)
        self.addCleanup(self.proxy.stop)

    def restart_proxy_for(self, d):
        self.proxy.stop()
        self.repl[0] = ("127.0.0.1:7700", "127.0.0.1:%d" % d.port)
        self.launch()


class NginxTest(NginxMixin, ProxyCase, SessiondTestCase):
    def test_return_trap_is_not_in_the_example(self):
        # A `return` directive in a protected location would answer before
        # auth_request runs: the example's protected location has none.
        with open(os.path.join(EXAMPLES, "nginx", "sessiond-locations.conf")) as f:
            text = f.read()
        block = text[text.index("location / {"):]
        code = "\n".join(l.split("#")[0] for l in block.splitlines())
        self.assertNotIn("return", code)
        self.assertIn("auth_request", code)


class NginxTlsTest(NginxMixin, ProxyCase, SessiondTestCase):
    tls = True
    conf = "nginx-tls.conf"

    def test_production_profile(self):
        s = self.login()
        self.assertTrue(s["set_cookie"].startswith("__Host-sessiond="), s["set_cookie"])
        for attr in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
            self.assertIn(attr, s["set_cookie"])
        self.assertNotIn("Domain", s["set_cookie"])
        h = self.upstream_headers(self.req("GET", "/account", s["cookie"]))
        self.assertEqual(h["x-forwarded-proto"], "https")
        self.assertEqual(h["x-session-user"], "alice")
        # Plain http only redirects to https.
        c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        c.request("GET", "/account", headers={"Cookie": s["cookie"]})
        r = c.getresponse()
        r.read()
        c.close()
        self.assertEqual(r.status, 301)
        self.assertTrue(r.getheader("Location").startswith("https://"))


# ---- HAProxy ----------------------------------------------------------------

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


class HaproxyTest(ProxyCase, SessiondTestCase):
    """examples/haproxy: the Lua action over core.httpclient."""

    def start_proxy(self):
        self.port = free_port()
        self.launch()

    def launch(self):
        repl = [("127.0.0.1:7700", "127.0.0.1:%d" % self.d.port),
                ("127.0.0.1:3000", "127.0.0.1:%d" % self.up.port),
                ("127.0.0.1:8080", "127.0.0.1:%d" % self.port)]
        self.proxy = Proxy("haproxy", lambda d: [HAPROXY, "-db", "-f", os.path.join(d, "haproxy.cfg")],
                           repl, ["haproxy.cfg", "sessiond-auth.lua"])
        self.proxy.wait(self.port)
        self.addCleanup(self.proxy.stop)

    def restart_proxy_for(self, d):
        self.proxy.stop()
        self.launch()

    def test_sessiond_down_fails_closed(self):
        s = self.login()
        self.d.stop()
        r = self.req("GET", "/account", s["cookie"], {"Accept": "application/json"})
        self.assertEqual(r.status, 503, r.body)
        self.d.start()


# ---- the shape of Envoy's and Istio's ext_authz check requests --------------

class ExtAuthzShapeTest(SessiondTestCase):
    """Envoy (and Istio's envoyExtAuthzHttp provider) cannot be installed
    here; what they send can: the client's own method, the path appended to
    path_prefix "/v1/auth", no X-Forwarded-Method.  An unsafe method must
    still need the CSRF token (it must never be taken for GET)."""

    def test_prefixed_path_and_own_method(self):
        d = self.start()
        s = d.create_ok("alice", client=harness.LOOPBACK_CLIENT)
        name, sid = cookie_value(s["set_cookie"])
        ua = harness.LOOPBACK_CLIENT["user_agent"]
        base = {"Cookie": "%s=%s" % (name, sid), "User-Agent": ua}
        r = d.request("GET", "/v1/auth/account?x=1", headers=base)
        self.assertStatus(r, 200)
        self.assertEqual(r.header("X-Session-User"), "alice")
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            for path in ("/v1/auth", "/v1/auth/transfer"):
                r = d.request(method, path, headers=base)
                self.assertStatus(r, 403, "%s %s without the CSRF token" % (method, path))
                r = d.request(method, path, headers=dict(base, **{"X-CSRF-Token": s["csrf_token"]}))
                self.assertStatus(r, 200, "%s %s with the CSRF token" % (method, path))
        r = d.request("GET", "/v1/authx", headers=base)
        self.assertStatus(r, 404)
        r = d.request("GET", "/v1/auth/", headers={"User-Agent": ua})
        self.assertStatus(r, 401)


if __name__ == "__main__":
    harness.main()
