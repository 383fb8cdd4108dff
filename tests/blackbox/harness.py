"""harness.py - start the real sessiond in a fresh directory and speak HTTP to it.

Every black-box test file imports this module.  It gives:

  Sessiond   one daemon process: start / stop (SIGTERM, exit 0) / kill9 /
             restart on the same directory, with its stderr drained by a thread
             into a buffer (the pipe never blocks; the buffer is checked so that
             no session ID ever appears in a log).
  Response   status, headers, raw body and parsed JSON of one HTTP exchange.
  main()     the command line every test file shares:
                 python3 test_x.py --sessiond PATH --sessctl PATH [--wrap CMD]
                                   [unittest args]
             (--wrap runs the daemon under CMD, e.g. valgrind.)

Only the Python 3.11 standard library is used.  The contract under test is
docs/api.md; the security invariants are those of docs/security.md.
"""

import argparse
import http.client
import json
import os
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

# Paths of the binaries, set by main() from the command line (or, for ad-hoc
# runs, from the environment).
SESSIOND = os.environ.get("SESSIOND_BIN", "")
SESSCTL = os.environ.get("SESSCTL_BIN", "")
# A command the daemon runs under (--wrap "valgrind --error-exitcode=99 ..."):
# its exit status is sessiond's, so a tool's findings fail the clean stop.
WRAP = []
TESTDATA = os.environ.get("SESS_TESTDATA", "")

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
REQUEST_TIMEOUT = 15.0

LISTEN_RE = re.compile(rb"sessiond: listening on http://(\[[0-9a-fA-F:.]+\]|[^\s:/]+):(\d+)")

# Session IDs and CSRF tokens: 256 bits, base64url without padding.
ID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
HANDLE_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
# Anything that looks like a 43-character base64url token inside a larger text.
ID_IN_TEXT_RE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")

DEFAULT_CLIENT = {"ip": "203.0.113.7", "user_agent": "blackbox-test/1.0 (sessiond)",
                  "accept_language": "en"}
# The client a forward-auth request from this test process looks like: the peer
# address is 127.0.0.1 and the User-Agent header is ours.
LOOPBACK_CLIENT = {"ip": "127.0.0.1", "user_agent": "blackbox-test/1.0 (sessiond)",
                   "accept_language": "en"}


class Response:
    """One HTTP exchange: status, headers (case-insensitive get), body, json."""

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers_list = headers            # [(name, value)] as received
        self.body = body
        self.json = None
        self.json_error = None
        if body:
            try:
                self.json = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                self.json_error = str(e)

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers_list:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers_list if k.lower() == name]

    def __repr__(self):
        body = self.body[:300]
        return "<Response %d %r %r>" % (self.status, self.headers_list, body)


def _collect_ids(obj, out):
    """Every secret a response JSON hands out: session_id and csrf_token at any
    depth (so rotated.session_id too).  None of them may ever reach a log."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("session_id", "csrf_token") and isinstance(v, str):
                out.add(v)
            else:
                _collect_ids(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _collect_ids(v, out)


def cookie_value(set_cookie):
    """(name, value) of a Set-Cookie header value."""
    first = set_cookie.split(";", 1)[0].strip()
    name, _, value = first.partition("=")
    return name.strip(), value.strip().strip('"')


def cookie_attrs(set_cookie):
    """Attributes of a Set-Cookie value as {lowercased-name: value-or-True}."""
    attrs = {}
    for part in set_cookie.split(";")[1:]:
        part = part.strip()
        if not part:
            continue
        k, eq, v = part.partition("=")
        attrs[k.strip().lower()] = v.strip() if eq else True
    return attrs


def write_key(keys_dir, kid=None):
    """Write one record key in the documented format (include/sess/keys.h):
    "<kid>.key", 32 random bytes as 64 hex digits, mode 0600."""
    os.makedirs(keys_dir, mode=0o700, exist_ok=True)
    kid = kid or ("k%d" % time.time_ns())
    path = os.path.join(keys_dir, kid + ".key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    return kid


def sessctl(*args, timeout=30, env=None):
    """Run sessctl; return the CompletedProcess (text mode)."""
    if not SESSCTL:
        raise unittest.SkipTest("no --sessctl given")
    return subprocess.run([SESSCTL] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def generate_key(keys_dir):
    """Add a key with `sessctl keys generate --dir DIR`; fall back to writing
    the documented file format when sessctl cannot do it (test_sessctl tests
    the tool itself)."""
    try:
        r = sessctl("keys", "generate", "--dir", keys_dir)
        if r.returncode == 0:
            return
    except (unittest.SkipTest, OSError, subprocess.SubprocessError):
        pass
    write_key(keys_dir)


class Sessiond:
    """The real daemon in its own temporary directory.

        d = Sessiond(sets=["session.idle_timeout=2"])
        d.start()
        r = d.post("/v1/sessions", {...})
        d.stop()          # SIGTERM, asserts exit code 0 and no IDs in stderr

    The directory holds sessions/ (the LMDB store) and keys/; restart() starts a
    new process on the same directory with the same arguments.
    """

    def __init__(self, env=None, config=None, sets=(), extra_args=(), api_keys=None,
                 listen="127.0.0.1:0", environ=None, dir=None, keys=True, store=None):
        self.owns_dir = dir is None
        self.dir = dir or tempfile.mkdtemp(prefix="sessiond-bb-")
        self.keys_dir = os.path.join(self.dir, "keys")
        self.store_url = store or ("lmdb:" + os.path.join(self.dir, "sessions"))
        self.env = env
        self.config = config
        self.sets = list(sets)
        self.extra_args = list(extra_args)
        self.api_keys = api_keys
        self.listen = listen
        self.environ = environ
        self.api_key = None          # sent as Bearer when set
        self.proc = None
        self.port = None
        self.host = "127.0.0.1"
        self.issued_ids = set()      # every session ID this daemon handed out
        self.stderr_all = bytearray()  # stderr of every run of this daemon
        self._lock = threading.Lock()
        self._listening = threading.Event()
        self._reader = None
        if env in ("staging", "production") and keys:
            if not os.path.isdir(self.keys_dir) or not os.listdir(self.keys_dir):
                generate_key(self.keys_dir)

    # ---- process -------------------------------------------------------

    def argv(self):
        a = WRAP + [SESSIOND]
        if self.listen is not None:
            a += ["--listen", self.listen]
        a += ["--store", self.store_url, "--keys", self.keys_dir]
        if self.env:
            a += ["--env", self.env]
        if self.config:
            a += ["--config", self.config]
        if self.api_keys:
            a += ["--api-keys", self.api_keys]
        for s in self.sets:
            a += ["--set", s]
        return a + self.extra_args

    def _drain(self, pipe):
        for line in iter(pipe.readline, b""):
            with self._lock:
                self.stderr_all += line
            m = LISTEN_RE.search(line)
            if m and not self._listening.is_set():
                self.port = int(m.group(2))
                self._listening.set()
        pipe.close()

    def start(self):
        if not SESSIOND or not os.path.exists(SESSIOND):
            raise AssertionError("sessiond binary not found: %r" % SESSIOND)
        self._listening.clear()
        self.port = None
        env = dict(os.environ) if self.environ is None else dict(self.environ)
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     cwd=self.dir, env=env)
        self._reader = threading.Thread(target=self._drain, args=(self.proc.stderr,),
                                        daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._listening.wait(0.05):
                return self
            if self.proc.poll() is not None:
                self._reader.join(2)
                rc, self.proc = self.proc.returncode, None
                raise AssertionError("sessiond exited with %s before listening; stderr:\n%s"
                                     % (rc, self.stderr_text()[-4000:]))
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        raise AssertionError("sessiond did not print its listening line within %ss; "
                             "stderr:\n%s" % (START_TIMEOUT, self.stderr_text()[-4000:]))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, check=True):
        """SIGTERM; the daemon must exit 0 within STOP_TIMEOUT (graceful stop)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                if self._reader:
                    self._reader.join(2)
                raise AssertionError("sessiond did not exit within %ss of SIGTERM"
                                     % STOP_TIMEOUT)
        if self._reader:
            self._reader.join(5)
        rc = self.proc.returncode
        self.proc = None
        if check:
            if rc != 0:
                raise AssertionError("sessiond exited with %d after SIGTERM (want 0); "
                                     "stderr tail:\n%s" % (rc, self.stderr_text()[-3000:]))
            self.assert_no_ids_in(self.stderr_text(), "sessiond stderr")
        return rc

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        if self._reader:
            self._reader.join(5)
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def cleanup(self):
        """Stop without assertions and remove the directory (for tearDown)."""
        try:
            self.kill9()
        finally:
            if self.owns_dir:
                shutil.rmtree(self.dir, ignore_errors=True)

    def stderr_text(self):
        with self._lock:
            return bytes(self.stderr_all).decode("utf-8", "replace")

    def assert_no_ids_in(self, text, where):
        with self._lock:    # load threads may still be adding IDs
            issued = list(self.issued_ids)
        leaked = [i for i in issued if i in text]
        if leaked:
            raise AssertionError("%d session ID(s) appear in %s (docs/security.md invariant 2), e.g. %s..."
                                 % (len(leaked), where, leaked[0][:6]))

    # ---- HTTP ------------------------------------------------------------

    def connection(self, timeout=REQUEST_TIMEOUT):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None, raw=None,
                auth=True):
        """One request.  "body" is JSON-encoded (with Content-Type) unless it is
        bytes/str, which is sent as is; "raw" sends bytes with no Content-Type
        added.  With "conn" the request goes over that (keep-alive) connection."""
        hdrs = {}
        data = None
        if raw is not None:
            data = raw
        elif isinstance(body, (bytes, bytearray)):
            data = bytes(body)
            hdrs["Content-Type"] = "application/json"
        elif isinstance(body, str):
            data = body.encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        elif body is not None:
            data = json.dumps(body).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        if auth and self.api_key:
            hdrs["Authorization"] = "Bearer " + self.api_key
        for k, v in (headers or {}).items():
            if v is None:
                hdrs.pop(k, None)
                for kk in list(hdrs):
                    if kk.lower() == k.lower():
                        del hdrs[kk]
            else:
                hdrs[k] = v
        own = conn is None
        c = conn or self.connection()
        try:
            c.request(method, path, body=data, headers=hdrs)
            r = c.getresponse()
            payload = r.read()
            resp = Response(r.status, r.reason, r.getheaders(), payload)
        finally:
            if own:
                c.close()
        if resp.json is not None:
            with self._lock:
                _collect_ids(resp.json, self.issued_ids)
        for sc in resp.header_all("Set-Cookie"):
            v = cookie_value(sc)[1]
            if ID_RE.match(v):
                with self._lock:
                    self.issued_ids.add(v)
        return resp

    def raw(self, data, timeout=REQUEST_TIMEOUT):
        """Send raw bytes over a fresh socket and parse one HTTP response.
        Returns a Response, or None when the server closed without answering."""
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            s.sendall(data)
            r = http.client.HTTPResponse(s, method="GET")
            try:
                r.begin()
            except (http.client.RemoteDisconnected, ConnectionResetError):
                return None
            except http.client.HTTPException as e:
                raise AssertionError("not an HTTP/1.x answer: %r" % (e,))
            payload = r.read()
            return Response(r.status, r.reason, r.getheaders(), payload)
        finally:
            s.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # ---- API helpers -------------------------------------------------------

    def create(self, user="alice", client=None, data=None, **extra):
        body = {"user_id": user, "client": client or DEFAULT_CLIENT}
        if data is not None:
            body["data"] = data
        body.update(extra)
        return self.post("/v1/sessions", body)

    def create_ok(self, user="alice", client=None, data=None, **extra):
        r = self.create(user, client, data, **extra)
        if r.status != 201 or not isinstance(r.json, dict):
            raise AssertionError("create for %r: want 201 with JSON, got %r" % (user, r))
        return r.json

    def validate(self, sid, client=None, **kw):
        return self.post("/v1/sessions/validate",
                         {"session_id": sid, "client": client or DEFAULT_CLIENT}, **kw)

    def regenerate(self, sid, client=None, **extra):
        body = {"session_id": sid, "client": client or DEFAULT_CLIENT}
        body.update(extra)
        return self.post("/v1/sessions/regenerate", body)

    def set_data(self, sid, data, version=None):
        body = {"session_id": sid, "data": data}
        if version is not None:
            body["version"] = version
        return self.post("/v1/sessions/data", body)

    def destroy(self, sid):
        return self.post("/v1/sessions/destroy", {"session_id": sid})

    def list_sessions(self, user):
        return self.get("/v1/users/%s/sessions" % quote(user))

    def auth(self, cookie_header=None, headers=None, conn=None):
        h = {"User-Agent": LOOPBACK_CLIENT["user_agent"]}
        if cookie_header is not None:
            h["Cookie"] = cookie_header
        h.update(headers or {})
        return self.request("GET", "/v1/auth", headers=h, conn=conn)


def free_port():
    """A loopback TCP port that was free a moment ago (nothing listens on it)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def quote(s):
    from urllib.parse import quote as q
    return q(s, safe="")


class SessiondTestCase(unittest.TestCase):
    """Base class: self.start(...) gives a running daemon that is stopped with
    SIGTERM (exit 0 asserted, stderr checked for IDs) at the end of the test."""

    maxDiff = 4000

    def make(self, **kw):
        """A daemon that is not started yet (to prepare files in its d.dir);
        it is stopped and checked at tearDown like those of start()."""
        d = Sessiond(**kw)
        self.addCleanup(d.cleanup)
        self._daemons = getattr(self, "_daemons", [])
        self._daemons.append(d)
        return d

    def start(self, **kw):
        d = self.make(**kw)
        d.start()
        return d

    def tearDown(self):
        # A clean stop is part of every test: the daemon must still be alive
        # (nothing crashed it) and must exit 0 on SIGTERM.
        for d in getattr(self, "_daemons", []):
            if d.proc is not None:
                self.assertIsNone(d.proc.poll(),
                                  "sessiond died during the test (exit %s); stderr:\n%s"
                                  % (d.proc.returncode, d.stderr_text()[-3000:]))
                d.stop()
        self._daemons = []

    # ---- assertions shared by the files ---------------------------------

    def assertStatus(self, r, status, msg=None):
        self.assertEqual(r.status, status, msg or ("unexpected response %r" % (r,)))

    def assertError(self, r, status, code=None):
        """An error response of docs/api.md: status, JSON body {"error", "message"},
        Content-Type application/json."""
        self.assertEqual(r.status, status, "want %d, got %r" % (status, r))
        ct = (r.header("Content-Type") or "").split(";")[0].strip().lower()
        self.assertEqual(ct, "application/json", "error without JSON content type: %r" % (r,))
        self.assertIsInstance(r.json, dict, "error body is not a JSON object: %r" % (r,))
        self.assertIsInstance(r.json.get("error"), str, "no \"error\" code: %r" % (r.json,))
        self.assertIsInstance(r.json.get("message"), str, "no \"message\": %r" % (r.json,))
        if code is not None:
            self.assertEqual(r.json["error"], code, "error code for %r" % (r.json,))

    def assertInvalid(self, r, reason):
        self.assertError(r, 401, "invalid_session")
        self.assertEqual(r.json.get("reason"), reason, "reason of %r" % (r.json,))

    def assertId(self, s, what="session_id"):
        self.assertIsInstance(s, str, what)
        self.assertRegex(s, ID_RE, "%s is not 43 base64url characters" % what)

    def assertHandle(self, s):
        self.assertIsInstance(s, str, "handle")
        self.assertRegex(s, HANDLE_RE, "handle is not 22 base64url characters")


def main():
    """Shared entry point: parse --sessiond/--sessctl, hand the rest to unittest."""
    global SESSIOND, SESSCTL, WRAP, START_TIMEOUT, STOP_TIMEOUT
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--sessiond", default=SESSIOND)
    p.add_argument("--sessctl", default=SESSCTL)
    p.add_argument("--wrap", default="")
    args, rest = p.parse_known_args()
    if args.wrap:
        import shlex
        WRAP = shlex.split(args.wrap)
        START_TIMEOUT = STOP_TIMEOUT = 60.0   # valgrind starts and stops slowly
    SESSIOND = os.path.abspath(args.sessiond) if args.sessiond else ""
    SESSCTL = os.path.abspath(args.sessctl) if args.sessctl else ""
    unittest.main(module="__main__", argv=[sys.argv[0]] + rest, verbosity=2)
