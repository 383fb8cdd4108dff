"""test_nginx_module.py - ngx_http_sessiond_module in Debian's real nginx
(load_module), beside the real sessiond (tests/blackbox/harness.py) sharing
its LMDB store (docs/nginx-module.md).

Every forward-auth case (valid, forged, expired, rotated, CSRF, cross-site,
binding, cookie tossing, the user header's encoding) is sent twice through
the same nginx: once to a location protected by the module, once to one
protected by auth_request -> sessiond's GET /v1/auth, configured as
docs/deployment.md says; the two must decide the same.  Then: a session
destroyed through sessiond's API is refused at once by every worker
(worker_processes 2, reuseport), `nginx -s reload` under load fails no
request, `nginx -t` refuses a Redis store pointing to auth_request, and the
module runs with nginx's master_process off (under ASan in the ASan build:
--asan CC preloads that compiler's libasan into nginx).

As root the workers run as nobody:nogroup and reach the store only
through store.group_access and the directory's group, as a packaged
deployment does (docs/nginx-module.md, "Permissions").

    python3 test_nginx_module.py --sessiond S --sessctl C --nginx N --module M [--asan CC]
"""

import argparse
import grp
import http.client
import http.server
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "blackbox"))
import harness  # noqa: E402
from harness import LOOPBACK_CLIENT, ID_RE, SessiondTestCase, cookie_value  # noqa: E402

NGINX = "/usr/sbin/nginx"
MODULE = ""
ASAN_CC = ""
UA = LOOPBACK_CLIENT["user_agent"]
WAIT = 20.0          # generous bound on any wait for nginx (no timing asserted)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Echo:
    """The application behind nginx: answers 200 with the request it got
    (method and headers) as JSON, for any method."""

    def __init__(self):
        class H(http.server.BaseHTTPRequestHandler):
            def answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                body = json.dumps({"method": self.command, "path": self.path,
                                   "headers": [[k, v] for k, v in self.headers.items()]}
                                  ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = answer

            def log_message(self, *a):
                pass
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


LSAN_SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lsan.supp")


def asan_env(report_dir, leaks):
    """The environment nginx needs to load an ASan-built module: the
    compiler's libasan first in the process (LD_PRELOAD).  Reports go to
    files in "report_dir" (nginx points its stderr at the error log).
    "leaks": check leaks at exit - only for a server that stops the
    normal way (its pools destroyed); `nginx -t` and `nginx -s reload`
    exit without freeing their configuration by nginx's design."""
    lib = subprocess.run([ASAN_CC, "-print-file-name=libasan.so"], capture_output=True,
                         text=True).stdout.strip()
    env = dict(os.environ)
    env["LD_PRELOAD"] = lib
    env["ASAN_OPTIONS"] = ("detect_leaks=%d:abort_on_error=0:exitcode=86:log_path=%s/asan"
                           % (1 if leaks else 0, report_dir))
    env["LSAN_OPTIONS"] = ("suppressions=%s:print_suppressions=0:fast_unwind_on_malloc=0"
                           % LSAN_SUPP)
    env["UBSAN_OPTIONS"] = ("print_stacktrace=1:halt_on_error=1:log_path=%s/ubsan"
                            % report_dir)
    return env


SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:")


class Nginx:
    """Debian's nginx in its own prefix directory with the module loaded."""

    def __init__(self, workdir, http_conf, workers=2, single=False, user=None,
                 main_extra=""):
        self.dir = tempfile.mkdtemp(prefix="nginx-", dir=workdir)
        os.chmod(self.dir, 0o755)
        for d in ("tmp", "html", "html/static", "logs"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        with open(os.path.join(self.dir, "html", "static", "index.html"), "w") as f:
            f.write("static page\n")
        with open(os.path.join(self.dir, "html", "login.html"), "w") as f:
            f.write("login page\n")
        for root, dirs, files in os.walk(self.dir):
            for n in dirs:
                os.chmod(os.path.join(root, n), 0o755)
            for n in files:
                os.chmod(os.path.join(root, n), 0o644)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.errlog = os.path.join(self.dir, "logs", "error.log")
        self.single = single
        self.proc = None
        self.stderr = b""
        main = []
        if user:
            main.append("user %s;" % user)
        main += ["worker_processes %d;" % workers,
                 "daemon off;",
                 "pid %s/nginx.pid;" % self.dir,
                 "error_log %s info;" % self.errlog,
                 "load_module %s;" % MODULE]
        if single:
            main.append("master_process off;")
        tmp = os.path.join(self.dir, "tmp")
        text = "\n".join(main) + "\n" + main_extra + """
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %(tmp)s/body;
    proxy_temp_path %(tmp)s/proxy;
    fastcgi_temp_path %(tmp)s/fastcgi;
    uwsgi_temp_path %(tmp)s/uwsgi;
    scgi_temp_path %(tmp)s/scgi;
%(http)s
}
""" % {"tmp": tmp, "http": http_conf}
        with open(self.conf, "w") as f:
            f.write(text)

    def argv(self, *extra):
        return [NGINX, "-p", self.dir, "-c", self.conf, "-e", self.errlog] + list(extra)

    def env(self, server=False):
        return asan_env(self.dir, server) if ASAN_CC else None

    def sanitizer_reports(self):
        """Every report a sanitizer wrote for this nginx (any process)."""
        out = []
        for n in sorted(os.listdir(self.dir)):
            if n.startswith(("asan.", "ubsan.")):
                with open(os.path.join(self.dir, n), errors="replace") as f:
                    out.append(f.read())
        return "".join(out)

    def check(self):
        """nginx -t: (returncode, output)."""
        p = subprocess.run(self.argv("-t"), capture_output=True, text=True, env=self.env(),
                           timeout=60)
        return p.returncode, p.stdout + p.stderr + self.log()

    def start(self, port):
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=self.env(server=True))
        self._err = []
        self._reader = threading.Thread(target=lambda: self._err.append(self.proc.stderr.read()),
                                        daemon=True)
        self._reader.start()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError("nginx exited with %s at start:\n%s\n%s"
                                     % (self.proc.returncode, b"".join(self._err).decode(
                                         "utf-8", "replace"), self.log()[-4000:]))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not listen on %d:\n%s" % (port, self.log()[-4000:]))

    def master_pid(self):
        with open(os.path.join(self.dir, "nginx.pid")) as f:
            return int(f.read().strip())

    def workers(self):
        """The pids of the master's children (its workers), as text."""
        master, out = str(self.master_pid()), set()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == master:
                out.add(pid)
        return out

    def reload(self):
        p = subprocess.run(self.argv("-s", "reload"), capture_output=True, text=True,
                           env=self.env(), timeout=60)
        if p.returncode != 0:
            raise AssertionError("nginx -s reload: %s%s" % (p.stdout, p.stderr))

    def stop(self):
        """Graceful stop (SIGQUIT); returns nginx's stderr."""
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(WAIT * 3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("nginx did not stop on SIGQUIT")
        self._reader.join(10)
        self.proc.stderr.close()
        self.rc = self.proc.returncode
        self.proc = None
        return b"".join(self._err).decode("utf-8", "replace")

    def log(self):
        try:
            with open(self.errlog, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def write_ini(path, d, extra):
    """The one INI both sessiond and the module read."""
    lines = ["[server]", "keys_dir = %s" % d.keys_dir,
             "[store]", "url = %s" % d.store_url, "group_access = true",
             # sessiond trusts this nginx (auth_request's X-Forwarded-For);
             # the module takes its own list (sessiond_trusted_proxies).
             "[binding]", "trusted_proxies = 127.0.0.1"]
    section = None
    for key, value in extra:
        s, k = key.split(".", 1)
        if s != section:
            lines.append("[%s]" % s)
            section = s
        lines.append("%s = %s" % (k, value))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


AUTH_REQUEST_LOCATION = """
        location = /_sessiond/auth {
            internal;
            proxy_pass http://sessiond/v1/auth;
            proxy_method GET;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Method $request_method;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
"""


def http_conf(port, reload_port, sessiond_port, app_port, ini, trusted="", workers_reuseport=True):
    return """
    sessiond_config %(ini)s;
    %(trusted)s
    upstream sessiond { server 127.0.0.1:%(sport)d; keepalive 8; }
    upstream app { server 127.0.0.1:%(aport)d; }
    server {
        listen 127.0.0.1:%(port)d%(reuseport)s;
        root html;
        %(auth)s
        location /mod/ {
            sessiond on;
            add_header X-Worker $pid always;
            add_header X-Outcome $sessiond_outcome always;
            proxy_set_header X-Session-User $sessiond_user;
            proxy_set_header X-Session-Handle $sessiond_handle;
            proxy_set_header X-Session-CSRF-Token $sessiond_csrf_token;
            proxy_pass http://app;
        }
        location /ar/ {
            auth_request /_sessiond/auth;
            auth_request_set $ar_user $upstream_http_x_session_user;
            auth_request_set $ar_handle $upstream_http_x_session_handle;
            auth_request_set $ar_csrf $upstream_http_x_csrf_token;
            auth_request_set $ar_set_cookie $upstream_http_set_cookie;
            add_header Set-Cookie $ar_set_cookie always;
            add_header X-Worker $pid always;
            proxy_set_header X-Session-User $ar_user;
            proxy_set_header X-Session-Handle $ar_handle;
            proxy_set_header X-Session-CSRF-Token $ar_csrf;
            proxy_pass http://app;
        }
        location /static/ {
            sessiond on;
            add_header X-Worker $pid always;
        }
        location /redirect/ {
            sessiond on;
            sessiond_login_redirect /login.html?next=$uri;
            proxy_pass http://app;
        }
        location /errpage/ {
            sessiond on;
            error_page 401 /login.html;
            proxy_pass http://app;
        }
        location = /login.html {
            sessiond on;
        }
        location = /off.html {
            sessiond off;
            add_header X-Outcome "[$sessiond_outcome]" always;
            return 200 "open\\n";
        }
    }
    server {
        listen 127.0.0.1:%(rport)d;
        root html;
        location /static/ { sessiond on; add_header X-Worker $pid always; }
    }
""" % {"ini": ini, "trusted": trusted, "sport": sessiond_port, "aport": app_port,
       "port": port, "rport": reload_port, "auth": AUTH_REQUEST_LOCATION,
       "reuseport": " reuseport" if workers_reuseport else ""}


class Stack:
    """sessiond + the echo application + nginx with the module, sharing
    one directory and one INI."""

    def __init__(self, case, settings=(), workers=2, single=False, trusted=""):
        self.case = case
        self.d = case.make()
        self.root = os.geteuid() == 0 and not single
        if os.geteuid() == 0:
            os.chmod(self.d.dir, 0o711)      # the workers traverse it
            store_dir = self.d.store_url[len("lmdb:"):]
            os.makedirs(store_dir, exist_ok=True)
            if self.root:
                # The store's group is the workers' group; setgid keeps
                # every file sessiond creates in it (docs/nginx-module.md).
                os.chown(store_dir, -1, grp.getgrnam("nogroup").gr_gid)
                os.chmod(store_dir, 0o2750)
        self.ini = os.path.join(self.d.dir, "sessiond.ini")
        write_ini(self.ini, self.d, settings)
        self.d.config = self.ini
        self.d.start()
        self.app = Echo()
        case.addCleanup(self.app.stop)
        self.port = free_port()
        self.reload_port = free_port()
        conf = http_conf(self.port, self.reload_port, self.d.port, self.app.port,
                         self.ini, trusted, workers_reuseport=not single)
        self.nginx = Nginx(self.d.dir, conf, workers=workers, single=single,
                           user="nobody nogroup" if self.root else None)
        case.addCleanup(self.cleanup_nginx)
        self.nginx.start(self.port)

    def cleanup_nginx(self):
        if self.nginx.proc is not None:
            self.nginx.proc.kill()
            self.nginx.proc.wait()

    def stop(self):
        """Stop nginx gracefully; return its stderr.  No alert or crash in
        the error log, no sanitizer report, exit 0."""
        err = self.nginx.stop()
        log = self.nginx.log()
        reports = self.nginx.sanitizer_reports()
        self.case.assertEqual(reports, "", "sanitizer report:\n" + reports[-8000:])
        self.case.assertNotRegex(err + log, SANITIZER_RE, "sanitizer report:\n" + (err + log)[-6000:])
        self.case.assertEqual(self.nginx.rc, 0, "nginx exit status; stderr:\n" + err[-4000:]
                              + "\nerror log:\n" + log[-4000:])
        for bad in ("[alert]", "[emerg]", "[crit]", "exited on signal"):
            self.case.assertNotIn(bad, log, log[-4000:])
        self.d.assert_no_ids_in(log, "nginx error log")
        return err

    def request(self, method, path, cookie=None, headers=None, body=None, port=None,
                conn=None):
        h = {"User-Agent": UA}
        if cookie is not None:
            h["Cookie"] = cookie
        h.update(headers or {})
        for k in [k for k, v in h.items() if v is None]:
            del h[k]
        own = conn is None
        c = conn or http.client.HTTPConnection("127.0.0.1", port or self.port,
                                               timeout=harness.REQUEST_TIMEOUT)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            resp = harness.Response(r.status, r.reason, r.getheaders(), r.read())
        finally:
            if own:
                c.close()
        for sc in resp.header_all("Set-Cookie"):
            v = cookie_value(sc)[1]
            if ID_RE.match(v):
                with self.d._lock:
                    self.d.issued_ids.add(v)
        return resp

    def session(self, user="alice"):
        s = self.d.create_ok(user, client=LOOPBACK_CLIENT)
        name = cookie_value(s["set_cookie"])[0]
        return s, name, "%s=%s" % (name, s["session_id"])


def upstream_headers(r):
    """The headers the application got (the echo's JSON), lowercased."""
    if r.status != 200 or not isinstance(r.json, dict):
        return {}
    out = {}
    for k, v in r.json["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


class Comparison(SessiondTestCase):
    """Module vs auth_request: the same request, the same decision."""

    settings = ()

    def setUp(self):
        self.st = Stack(self, self.settings)

    def tearDown(self):
        self.st.stop()
        super().tearDown()

    def both(self, method, cookie=None, headers=None, body=None, cookie_ar=None):
        """Send to /mod/ and /ar/; assert the same status and identity.
        "cookie_ar": another cookie for the auth_request side (a second
        session in the same state, where the first request changes it)."""
        m = self.st.request(method, "/mod/x", cookie, headers, body)
        a = self.st.request(method, "/ar/x", cookie if cookie_ar is None else cookie_ar,
                            headers, body)
        self.assertEqual(m.status, a.status,
                         "module %r vs auth_request %r for %s %r" % (m, a, method, headers))
        um, ua = upstream_headers(m), upstream_headers(a)
        self.assertEqual(um.get("x-session-user"), ua.get("x-session-user"))
        if cookie_ar is None:
            self.assertEqual(um.get("x-session-handle"), ua.get("x-session-handle"))
        self.assertEqual(bool(m.header_all("Set-Cookie")), bool(a.header_all("Set-Cookie")),
                         "Set-Cookie: module %r, auth_request %r" % (m, a))
        return m, a


class DecisionsTest(Comparison):

    def setUp(self):
        super().setUp()
        self.s, self.name, self.cookie = self.st.session()

    def test_valid(self):
        m, a = self.both("GET", self.cookie)
        self.assertEqual(m.status, 200, m)
        self.assertEqual(upstream_headers(m)["x-session-user"], ["alice"])
        self.assertEqual(upstream_headers(m)["x-session-handle"], [self.s["handle"]])
        self.assertEqual(upstream_headers(m)["x-session-csrf-token"], [self.s["csrf_token"]])
        self.assertEqual(m.header("X-Outcome"), "ok")
        self.assertEqual(m.header_all("Set-Cookie"), [])
        for h in ("a=1; %s; b=2" % self.cookie, "theme=dark;%s" % self.cookie):
            self.assertEqual(self.both("GET", h)[0].status, 200, h)
        # A static file through the module (the benchmark's setup).
        r = self.st.request("GET", "/static/index.html", self.cookie)
        self.assertEqual((r.status, r.body), (200, b"static page\n"))
        self.assertEqual(self.st.request("GET", "/static/index.html").status, 401)

    def test_forged_and_malformed(self):
        cases = [None, "", "theme=dark", self.name + "=", self.name + "=garbage",
                 self.name + "=" + "A" * 43, self.name + "=" + self.s["session_id"][:42],
                 self.name + "=" + self.s["session_id"] + "A", "x" + self.cookie,
                 "pad=" + "p" * 3000 + "; " + self.name + "=" + "B" * 43]
        for c in cases:
            with self.subTest(cookie=(c or "")[:40]):
                m, a = self.both("GET", c)
                self.assertEqual(m.status, 401, m)
                self.assertEqual(m.header("X-Outcome"), "no_session")
                self.assertNotIn(b"x-session-user", m.body.lower())
        self.assertEqual(self.both("GET", self.cookie)[0].status, 200)

    def test_cookie_tossing(self):
        bad = self.name + "=" + "C" * 43
        m, a = self.both("GET", bad + "; " + self.cookie)
        self.assertEqual(m.status, 200)
        # Over two Cookie lines too.
        m = self.st.request("GET", "/mod/x", headers={"Cookie": bad})
        self.assertEqual(m.status, 401)

    def lines(self, method, path, headers, body=None):
        """One request with repeated header lines ([(name, value)])."""
        c = http.client.HTTPConnection("127.0.0.1", self.st.port, timeout=harness.REQUEST_TIMEOUT)
        try:
            c.putrequest(method, path)
            for k, v in [("User-Agent", UA)] + headers:
                c.putheader(k, v)
            if body is not None:
                c.putheader("Content-Length", str(len(body)))
            c.endheaders(body)
            r = c.getresponse()
            return harness.Response(r.status, r.reason, r.getheaders(), r.read())
        finally:
            c.close()

    def test_repeated_header_lines(self):
        """Every Cookie line is searched (a tossed cookie on its own line);
        X-Original-Method lines fail closed, as many as sessiond reads
        making the request unsafe; the same on both paths."""
        bad = self.name + "=" + "D" * 43
        tok = self.s["csrf_token"]
        cases = [
            ("GET", [("Cookie", bad), ("Cookie", "x=1; " + self.cookie)], 200),
            ("GET", [("Cookie", bad), ("Cookie", "x=1")], 401),
            ("GET", [("Cookie", self.cookie), ("X-Original-Method", "GET"),
                     ("X-Original-Method", "PUT")], 403),
            ("GET", [("Cookie", self.cookie)] + [("X-Original-Method", "GET")] * 3, 200),
            ("GET", [("Cookie", self.cookie)] + [("X-Original-Method", "GET")] * 4, 403),
            ("GET", [("Cookie", self.cookie), ("X-CSRF-Token", tok)]
             + [("X-Original-Method", "GET")] * 4, 200),
        ]
        for method, hdrs, want in cases:
            with self.subTest(hdrs=[h[0] for h in hdrs]):
                m = self.lines(method, "/mod/x", hdrs)
                a = self.lines(method, "/ar/x", hdrs)
                self.assertEqual((m.status, a.status), (want, want), (m, a))

    def test_binding(self):
        m, a = self.both("GET", self.cookie, {"User-Agent": "curl/8.0"})
        self.assertEqual(m.status, 401, m)
        # The address is the peer's: a client's own X-Forwarded-For (or
        # X-Real-IP) cannot move it out of its /24 on either path.
        m, a = self.both("GET", self.cookie, {"X-Forwarded-For": "198.51.100.10",
                                              "X-Real-IP": "198.51.100.10"})
        self.assertEqual(m.status, 200, m)
        # The refused request did not harm the session.
        self.assertEqual(self.both("GET", self.cookie)[0].status, 200)

    def test_csrf(self):
        tok = self.s["csrf_token"]
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            with self.subTest(method=method):
                self.assertEqual(self.both(method, self.cookie, body=b"x")[0].status, 403)
                self.assertEqual(self.both(method, self.cookie, {"X-CSRF-Token": "A" * 43},
                                           body=b"x")[0].status, 403)
                self.assertEqual(self.both(method, self.cookie, {"X-CSRF-Token": tok[:-1]},
                                           body=b"x")[0].status, 403)
                m, a = self.both(method, self.cookie, {"X-CSRF-Token": tok}, body=b"x")
                self.assertEqual(m.status, 200, m)
                self.assertEqual(m.json["method"], method)
        m, a = self.both("POST", self.cookie, body=b"x")
        self.assertEqual(m.header("X-Outcome"), "csrf")
        # The method rule fails closed: a client's X-Original-Method naming an
        # unsafe method makes a GET unsafe on both paths; its
        # X-Forwarded-Method never makes a POST safe.
        self.assertEqual(self.both("GET", self.cookie, {"X-Original-Method": "POST"})[0].status,
                         403)
        self.assertEqual(self.both("POST", self.cookie, {"X-Forwarded-Method": "GET"},
                                   body=b"x")[0].status, 403)
        for m in ("GET", "HEAD", "OPTIONS"):
            self.assertEqual(self.both(m, self.cookie)[0].status, 200, m)
        # No session: 401 before 403.
        self.assertEqual(self.both("POST", None, body=b"x")[0].status, 401)
        # The CSRF refusals did not harm the session.
        self.assertEqual(self.both("GET", self.cookie)[0].status, 200)

    def test_cross_site(self):
        tok = self.s["csrf_token"]
        own = "http://127.0.0.1:%d" % self.st.port
        post = {"X-CSRF-Token": tok}
        for hdrs, want in (({"Sec-Fetch-Site": "cross-site"}, 403),
                           ({"Sec-Fetch-Site": "same-site"}, 200),
                           ({"Sec-Fetch-Site": "same-origin"}, 200),
                           ({"Sec-Fetch-Site": "none"}, 200),
                           ({"Origin": "https://evil.example"}, 403),
                           ({"Origin": "null"}, 403),
                           ({"Origin": own.replace("http:", "https:")}, 403),
                           ({"Origin": own}, 200),
                           ({"Origin": "http://app.example", "Host": "app.example"}, 200),
                           # X-Forwarded-Host/-Proto from an untrusted client
                           ({"Origin": "https://app.example", "Host": "internal",
                             "X-Forwarded-Host": "app.example",
                             "X-Forwarded-Proto": "https"}, 403)):
            with self.subTest(hdrs=hdrs):
                m, a = self.both("POST", self.cookie, dict(post, **hdrs), body=b"x")
                self.assertEqual(m.status, want, m)
        # A cross-site GET is a navigation: allowed.
        m, a = self.both("GET", self.cookie, {"Sec-Fetch-Site": "cross-site",
                                              "Origin": "https://evil.example"})
        self.assertEqual(m.status, 200)

    def test_forwarded_for_from_untrusted_client_ignored(self):
        tok_fail = self.st.request("POST", "/mod/x", self.cookie,
                                   {"X-Forwarded-For": "198.51.100.10"}, b"x")
        self.assertEqual(tok_fail.status, 403)
        deadline = time.monotonic() + WAIT
        while "csrf_failure" not in self.st.nginx.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = self.st.nginx.log()
        self.assertIn("security event csrf_failure", log)
        self.assertIn("ip=127.0.0.1", log)
        self.assertNotIn("198.51.100.10", log)

    def test_user_header_encoding(self):
        for user, want in (("zo\u00eb", "utf-8''zo%C3%AB"), ("it's", "utf-8''it%27s"),
                           ("a\r\nX-Evil: 1", "utf-8''a%0D%0AX-Evil%3A%201")):
            with self.subTest(user=user):
                s, name, c = self.st.session(user)
                m, a = self.both("GET", c)
                self.assertEqual(upstream_headers(m)["x-session-user"], [want])
                self.assertNotIn("x-evil", upstream_headers(m))

    def test_destroy_refused_by_every_worker(self):
        """Every worker has the session in its read snapshot and record
        cache; a destroy through sessiond's API is refused at once by all."""
        pids = {}
        conns = {}
        for _ in range(400):
            c = http.client.HTTPConnection("127.0.0.1", self.st.port, timeout=10)
            r = self.st.request("GET", "/mod/x", self.cookie, conn=c)
            self.assertEqual(r.status, 200, r)
            pid = r.header("X-Worker")
            pids[pid] = pids.get(pid, 0) + 1
            if pid not in conns:
                conns[pid] = c
            else:
                c.close()
            if len(pids) >= 2 and min(pids.values()) >= 3:
                break
        self.addCleanup(lambda: [c.close() for c in conns.values()])
        self.assertGreaterEqual(len(pids), 2, "requests reached only worker(s) %r" % pids)
        self.assertEqual(self.st.d.destroy(self.s["session_id"]).status, 200)
        # The kept-alive connections, one per worker: refused at once.
        for pid, c in conns.items():
            r = self.st.request("GET", "/mod/x", self.cookie, conn=c)
            self.assertEqual(r.header("X-Worker"), pid)
            self.assertEqual(r.status, 401, "worker %s still accepts a destroyed session" % pid)
        # And on fresh connections, whichever worker takes them.
        seen = set()
        for _ in range(60):
            r = self.st.request("GET", "/mod/x", self.cookie)
            self.assertEqual(r.status, 401, r)
            seen.add(r.header("X-Worker"))
        self.assertEqual(self.st.request("GET", "/ar/x", self.cookie).status, 401)

    def test_sessiond_restart(self):
        """The workers read the store themselves: while sessiond is down
        sessions still validate (and forged ones do not); a sessiond
        started again on the same store shares it with the running workers
        (a destroy through it is refused at once)."""
        self.assertEqual(self.st.request("GET", "/mod/x", self.cookie).status, 200)
        self.st.d.stop()
        for _ in range(10):
            self.assertEqual(self.st.request("GET", "/mod/x", self.cookie).status, 200)
        self.assertEqual(self.st.request("GET", "/mod/x", self.name + "=" + "E" * 43).status,
                         401)
        self.st.d.start()
        s2, _, c2 = self.st.session("bob")
        self.assertEqual(self.st.request("GET", "/mod/x", c2).status, 200)
        self.assertEqual(self.st.d.destroy(self.s["session_id"]).status, 200)
        for _ in range(10):
            self.assertEqual(self.st.request("GET", "/mod/x", self.cookie).status, 401)
        self.assertEqual(self.st.request("GET", "/mod/x", c2).status, 200)

    def test_login_redirect_error_page_and_off(self):
        r = self.st.request("GET", "/redirect/a?b=1")
        self.assertEqual(r.status, 302, r)
        self.assertTrue(r.header("Location", "").endswith("/login.html?next=/redirect/a"), r)
        # Not for a POST (its body would be lost): 401.
        self.assertEqual(self.st.request("POST", "/redirect/a", body=b"x").status, 401)
        self.assertEqual(self.st.request("GET", "/redirect/a", self.cookie).status, 200)
        # error_page 401 serves its page although that location has
        # "sessiond on" (the refusal is being answered), status kept.
        r = self.st.request("GET", "/errpage/a")
        self.assertEqual((r.status, r.body), (401, b"login page\n"))
        # The same page requested directly is protected.
        self.assertEqual(self.st.request("GET", "/login.html").status, 401)
        # sessiond off: no decision, empty variables.
        r = self.st.request("GET", "/off.html", self.cookie)
        self.assertEqual((r.status, r.header("X-Outcome")), (200, "[]"))


class ExpiryTest(Comparison):

    settings = (("session.idle_timeout", "2"), ("session.absolute_timeout", "3"),
                ("session.rotate_interval", "0"))

    def test_expired(self):
        s, name, c = self.st.session()
        self.assertEqual(self.both("GET", c)[0].status, 200)
        time.sleep(3.5)
        m, a = self.both("GET", c)
        self.assertEqual(m.status, 401, m)


class RotationTest(Comparison):

    settings = (("session.rotate_interval", "4"), ("session.rotation_grace", "3"))

    def test_rotation_grace_and_reuse(self):
        s1, name, c1 = self.st.session()
        s2, _, c2 = self.st.session()
        time.sleep(4.5)
        m, a = self.both("GET", c1, cookie_ar=c2)
        self.assertEqual(m.status, 200)
        new = {}
        for what, r, old in (("module", m, s1), ("auth_request", a, s2)):
            scs = r.header_all("Set-Cookie")
            self.assertEqual(len(scs), 1, "%s: %r" % (what, r.headers_list))
            n, v = cookie_value(scs[0])
            self.assertEqual(n, name)
            self.assertRegex(v, ID_RE)
            self.assertNotEqual(v, old["session_id"])
            self.assertIn("httponly", scs[0].lower())
            new[what] = "%s=%s" % (name, v)
        # The upstream got the successor's CSRF token on both paths.
        self.assertNotEqual(upstream_headers(m)["x-session-csrf-token"], [s1["csrf_token"]])
        # The successor validates without another rotation.
        m2, a2 = self.both("GET", new["module"], cookie_ar=new["auth_request"])
        self.assertEqual(m2.status, 200)
        self.assertEqual(m2.header_all("Set-Cookie"), [])
        # Within the grace the old ID still works and names the same successor.
        m3, a3 = self.both("GET", c1, cookie_ar=c2)
        self.assertEqual(m3.status, 200)
        self.assertEqual([cookie_value(x)[1] for x in m3.header_all("Set-Cookie")],
                         [new["module"].split("=", 1)[1]])
        time.sleep(3.5)
        # After the grace: the old ID is a replay; the session it rotated
        # into is revoked too (on_reuse_after_grace = revoke) on both paths.
        m4, a4 = self.both("GET", c1, cookie_ar=c2)
        self.assertEqual(m4.status, 401)
        m5, a5 = self.both("GET", new["module"], cookie_ar=new["auth_request"])
        self.assertEqual(m5.status, 401)

    def test_rotation_on_unsafe_method_deferred(self):
        """A POST never rotates (a CSRF refusal must not consume the
        rotation); the next GET does, on both paths."""
        s1, name, c1 = self.st.session()
        s2, _, c2 = self.st.session()
        time.sleep(4.5)
        m, a = self.both("POST", c1, {}, b"x", cookie_ar=c2)
        self.assertEqual(m.status, 403)
        self.assertEqual(m.header_all("Set-Cookie"), [])
        m, a = self.both("GET", c1, cookie_ar=c2)
        self.assertEqual(len(m.header_all("Set-Cookie")), 1)


class TrustedProxyTest(SessiondTestCase):
    """sessiond_trusted_proxies: X-Forwarded-For/-Host/-Proto believed
    from those peers only (the INI's binding.trusted_proxies is sessiond's
    and does not apply to the module)."""

    def test_trusted_proxy(self):
        st = Stack(self, trusted="sessiond_trusted_proxies 127.0.0.1;")
        s, name, c = st.session()
        tok = s["csrf_token"]
        fwd = {"X-CSRF-Token": tok, "Origin": "https://app.example", "Host": "internal",
               "X-Forwarded-Host": "app.example", "X-Forwarded-Proto": "https"}
        r = st.request("POST", "/mod/x", c, fwd, b"x")
        self.assertEqual(r.status, 200, r)
        r = st.request("POST", "/mod/x", c, dict(fwd, **{"X-Forwarded-Proto": "gopher"}), b"x")
        self.assertEqual(r.status, 403, r)
        # From a trusted peer the client is the rightmost untrusted entry:
        # outside the session's /24, so the binding refuses it.
        r = st.request("GET", "/mod/x", c, {"X-Forwarded-For": "198.51.100.10, 127.0.0.1"})
        self.assertEqual(r.status, 401)
        r = st.request("GET", "/mod/x", c, {"X-Forwarded-For": "127.0.0.9"})
        self.assertEqual(r.status, 200)
        deadline = time.monotonic() + WAIT
        while "198.51.100.10" not in st.nginx.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn("ip=198.51.100.10", st.nginx.log())
        st.stop()


class ReloadTest(SessiondTestCase):

    def test_reload_under_load(self):
        st = Stack(self)
        s, name, c = st.session()
        stop = threading.Event()
        results = {"ok": 0, "fail": []}
        lock = threading.Lock()

        def load():
            while not stop.is_set():
                try:
                    r = st.request("GET", "/static/index.html", c, port=st.reload_port)
                    ok = r.status == 200 and r.body == b"static page\n"
                    err = None if ok else repr(r)
                except (OSError, http.client.HTTPException) as e:
                    ok, err = False, repr(e)
                with lock:
                    if ok:
                        results["ok"] += 1
                    else:
                        results["fail"].append(err)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            generations = 0
            for _ in range(3):
                time.sleep(0.7)
                old = st.nginx.workers()
                st.nginx.reload()
                # Wait until a new worker answers.
                deadline = time.monotonic() + WAIT
                while time.monotonic() < deadline:
                    r = st.request("GET", "/static/index.html", c, port=st.reload_port)
                    if r.header("X-Worker") not in old:
                        generations += 1
                        break
                    time.sleep(0.05)
            time.sleep(0.7)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertEqual(results["fail"], [], "%d requests failed during reloads, e.g. %s"
                         % (len(results["fail"]), results["fail"][:3]))
        self.assertGreater(results["ok"], 50)
        self.assertEqual(generations, 3, "reloads did not start new workers")
        st.stop()


class ConfigCheckTest(SessiondTestCase):
    """nginx -t runs the module's configuration checks."""

    def conf(self, ini_text, extra=""):
        d = tempfile.mkdtemp(prefix="ngx-t-")
        self.addCleanup(shutil.rmtree, d, True)
        keys = os.path.join(d, "keys")
        harness.write_key(keys)
        ini = os.path.join(d, "s.ini")
        with open(ini, "w") as f:
            f.write(ini_text.replace("@KEYS@", keys))
        n = Nginx(d, "sessiond_config %s;\n%s\nserver { listen 127.0.0.1:%d; location / "
                  "{ sessiond on; } }" % (ini, extra, free_port()), workers=1)
        return n.check()

    def test_redis_store_refused(self):
        for url in ("redis://127.0.0.1:6379", "memory:"):
            with self.subTest(url=url):
                rc, out = self.conf("[server]\nkeys_dir = @KEYS@\n[store]\nurl = %s\n" % url)
                self.assertNotEqual(rc, 0, out)
                self.assertIn("auth_request", out)
                self.assertIn("LMDB", out)

    def test_bad_ini_named(self):
        rc, out = self.conf("[server]\nkeys_dir = @KEYS@\n[session]\nidle_timeout = abc\n")
        self.assertNotEqual(rc, 0)
        self.assertIn("session.idle_timeout", out)
        rc, out = self.conf("[server]\nkeys_dir = /nonexistent/keys\n[store]\nurl = lmdb:/tmp/x\n")
        self.assertNotEqual(rc, 0)
        self.assertIn("keys", out)
        rc, out = self.conf("[server]\nkeys_dir = @KEYS@\n[store]\nurl = lmdb:/tmp/x\n",
                            "sessiond_trusted_proxies 10.0.0.0/8 not-an-address;")
        self.assertNotEqual(rc, 0)
        self.assertIn("sessiond_trusted_proxies", out)

    def test_good_config_passes(self):
        rc, out = self.conf("[server]\nkeys_dir = @KEYS@\n[store]\nurl = lmdb:/tmp/x\n",
                            "sessiond_trusted_proxies 10.0.0.0/8 192.0.2.1;\n"
                            "sessiond_trusted_proxies ::1;")
        self.assertEqual(rc, 0, out)
        self.assertNotIn("[warn]", out)
        rc, out = self.conf("[server]\nkeys_dir = @KEYS@\n[store]\nurl = lmdb:/tmp/x\n"
                            "[forward_auth]\naccept_bearer = true\ntoken_audience = app\n")
        self.assertIn("validates session cookies only", out)


class SingleProcessTest(Comparison):
    """master_process off; daemon off: the module in nginx's single-process
    mode (where the ASan build runs it under AddressSanitizer), through the
    main cases, then a clean stop."""

    def setUp(self):
        self.st = Stack(self, single=True)

    def test_cases(self):
        s, name, c = self.st.session()
        self.assertEqual(self.both("GET", c)[0].status, 200)
        self.assertEqual(self.both("GET", name + "=" + "A" * 43)[0].status, 401)
        self.assertEqual(self.both("POST", c, body=b"x")[0].status, 403)
        self.assertEqual(self.both("POST", c, {"X-CSRF-Token": s["csrf_token"]},
                                   body=b"x")[0].status, 200)
        self.assertEqual(self.both("GET", c, {"User-Agent": "other"})[0].status, 401)
        u, _, cu = self.st.session("zo\u00eb")
        self.assertEqual(self.both("GET", cu)[0].status, 200)
        self.assertEqual(self.st.request("GET", "/redirect/x").status, 302)
        self.assertEqual(self.st.request("GET", "/errpage/x").status, 401)
        for _ in range(50):
            self.assertEqual(self.st.request("GET", "/static/index.html", c).status, 200)
        self.assertEqual(self.st.d.destroy(s["session_id"]).status, 200)
        self.assertEqual(self.st.request("GET", "/static/index.html", c).status, 401)


def main():
    global NGINX, MODULE, ASAN_CC
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    p.add_argument("--module", default="")
    p.add_argument("--asan", default="")
    args, rest = p.parse_known_args()
    NGINX, MODULE, ASAN_CC = args.nginx, os.path.abspath(args.module), args.asan
    if not os.path.exists(MODULE):
        print("module not found: %r (build the nginx_module target)" % args.module)
        sys.exit(1)
    sys.argv = [sys.argv[0]] + rest
    harness.main()


if __name__ == "__main__":
    main()
