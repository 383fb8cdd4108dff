"""test_http_hardening.py - the HTTP connection layer under attack (issue 10,
items 1-3; docs/api.md "Refusals of the HTTP layer", docs/deployment.md
"Limits and timeouts"), over raw sockets against the real binary:

  framing   request smuggling shapes (CL+TE, two Content-Lengths, a space
            before the colon, unknown codings), obs-fold, NUL in values,
            bad field names, Host rules, versions: each is one 400/501/505
            JSON status line, the connection closes, and the request
            pipelined behind it is NOT served;
  capacity  the documented 32768-byte head fits, one byte more is 431;
  time      a head trickled a byte at a time gets 408 at header_timeout;
  bodies    413 as soon as a Content-Length or a chunked body passes
            server.max_body_bytes, before the rest is sent;
  fairness  server.max_connections_per_ip refuses the extra connection
            while the others are served; loopback is exempt by default;
  bursts    600 connections at once against max_connections=256, three
            times, then requests still succeed and SIGTERM stops it;
  stop      SIGTERM with an idle connection and one stuck mid-head exits
            within the harness's stop bound.
"""

import json
import re
import socket
import time

import harness
from harness import LOOPBACK_CLIENT, SessiondTestCase

STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")
HEAD_MAX = 32768
NEXT = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


def read_all(s, timeout=10.0):
    """Everything the server sends until it closes (or "timeout")."""
    s.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not chunk:
            return data, True
        data += chunk
    return data, False


def parse_responses(data):
    """Split a byte stream into [(status, {header: value}, body)]."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        m = STATUS_LINE.match(lines[0])
        if not m:
            break
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode("latin-1")
        n = int(headers.get("content-length", "0"))
        out.append((int(m.group(1)), headers, rest[:n]))
        data = rest[n:]
    return out


class Conn:
    def __init__(self, d, timeout=10.0):
        self.s = socket.create_connection((d.host, d.port), timeout=timeout)

    def send(self, data):
        try:
            self.s.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def close(self):
        self.s.close()


class HardeningCase(SessiondTestCase):

    def exchange(self, d, data, timeout=10.0):
        c = Conn(d, timeout)
        try:
            c.send(data)
            raw, closed = read_all(c.s, timeout)
        finally:
            c.close()
        return raw, closed

    def assertRefused(self, d, data, status, what):
        raw, closed = self.exchange(d, data + NEXT)
        self.assertEqual(len(STATUS_LINE.findall(raw)), 1,
                         "%s: want exactly one status line, got %r" % (what, raw[:600]))
        resp = parse_responses(raw)
        self.assertEqual(len(resp), 1, "%s: %r" % (what, raw[:600]))
        st, h, body = resp[0]
        self.assertEqual(st, status, "%s: %r" % (what, raw[:600]))
        self.assertEqual(h.get("content-type"), "application/json", what)
        self.assertEqual(h.get("connection"), "close", what)
        j = json.loads(body)
        self.assertIsInstance(j.get("error"), str, what)
        self.assertIsInstance(j.get("message"), str, what)
        self.assertTrue(closed, "%s: the connection stays open after the refusal" % what)
        return j


class FramingTest(HardeningCase):

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Sessiond(sets=["binding.trusted_proxies=127.0.0.1/32"])
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            cls.d.cleanup()

    def test_pipelined_pair_is_served(self):
        raw, _ = self.exchange(self.d, NEXT + b"GET /readyz HTTP/1.1\r\nHost: t\r\n"
                               b"Connection: close\r\n\r\n")
        resp = parse_responses(raw)
        self.assertEqual([r[0] for r in resp], [200, 200], raw)

    def test_smuggling_shapes(self):
        body = b'{"session_id":"x","client":{"ip":"1.2.3.4","user_agent":"u"}}'
        post = b"POST /v1/sessions/validate HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        cases = [
            ("CL+TE", 400, post + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
             % len(chunked) + chunked),
            ("TE+CL", 400, post + b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n"
             % len(chunked) + chunked),
            ("two Content-Lengths", 400, post + b"Content-Length: %d\r\nContent-Length: 3\r\n\r\n"
             % len(body) + body),
            ("same Content-Length twice", 400, post + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n"
             % (len(body), len(body)) + body),
            ("TE with a space before the colon", 400,
             post + b"Transfer-Encoding : chunked\r\n\r\n" + chunked),
            ("unknown transfer coding", 501, post + b"Transfer-Encoding: gzip\r\n\r\n" + body),
            ("gzip, chunked", 501, post + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked),
            ("two TE lines", 501, post + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
             + chunked),
            ("bad Content-Length", 400, post + b"Content-Length: +5\r\n\r\n" + body[:5]),
            ("TE in HTTP/1.0", 400, b"POST /v1/sessions/validate HTTP/1.0\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n" + chunked),
        ]
        for what, status, data in cases:
            with self.subTest(what):
                self.assertRefused(self.d, data, status, what)

    def test_header_syntax(self):
        auth = b"GET /v1/auth HTTP/1.1\r\nHost: t\r\nUser-Agent: u\r\n"
        cases = [
            ("obs-fold of X-Forwarded-Method", 400,
             auth + b"X-Forwarded-Method:\r\n POST\r\n\r\n"),
            ("obs-fold inside a value", 400, auth + b"X-Forwarded-Method: G\r\n\tET\r\n\r\n"),
            ("NUL in X-Forwarded-Method", 400, auth + b"X-Forwarded-Method: GET\x00POST\r\n\r\n"),
            ("NUL in a trusted X-Forwarded-For", 400,
             auth + b"X-Forwarded-For: 198.51.100.7\x00, 127.0.0.1\r\n\r\n"),
            ("control character in a value", 400, auth + b"X-Forwarded-Method: G\x01ET\r\n\r\n"),
            ("space in a field name", 400, auth + b"X Forwarded-Method: POST\r\n\r\n"),
            ("space before the colon", 400, auth + b"X-Forwarded-Method : POST\r\n\r\n"),
            ("two Host lines", 400, b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            ("HTTP/1.1 without Host", 400, b"GET /healthz HTTP/1.1\r\nUser-Agent: u\r\n\r\n"),
            ("HTTP/2.0 request line", 505, b"GET /healthz HTTP/2.0\r\nHost: t\r\n\r\n"),
            ("HTTP/1.2 request line", 505, b"GET /healthz HTTP/1.2\r\nHost: t\r\n\r\n"),
            ("HTTP/0.9 request line", 505, b"GET /healthz\r\n\r\n"),
            ("unknown expectation", 417, b"POST /v1/sessions/validate HTTP/1.1\r\nHost: t\r\n"
             b"Expect: 200-ok\r\nContent-Length: 2\r\n\r\n{}"),
            ("garbage", 400, b"GARBAGE\r\n\r\n"),
        ]
        for what, status, data in cases:
            with self.subTest(what):
                self.assertRefused(self.d, data, status, what)

    def test_head_capacity_both_sides(self):
        def head(total):
            start = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: "
            end = b"\r\n\r\n"
            return start + b"a" * (total - len(start) - len(end)) + end
        fits = head(HEAD_MAX)
        self.assertEqual(len(fits), HEAD_MAX)
        raw, _ = self.exchange(self.d, fits + b"GET /readyz HTTP/1.1\r\nHost: t\r\n"
                               b"Connection: close\r\n\r\n")
        self.assertEqual([r[0] for r in parse_responses(raw)], [200, 200], raw[:300])
        j = self.assertRefused(self.d, head(HEAD_MAX + 1), 431, "one byte over")
        self.assertEqual(j["error"], "headers_too_large")
        # A request line alone that long: 414, one status line.
        self.assertRefused(self.d, b"GET /" + b"a" * HEAD_MAX + b" HTTP/1.1\r\n\r\n", 414,
                           "request line over the capacity")

    def test_content_length_over_limit_answered_before_body(self):
        c = Conn(self.d)
        try:
            c.send(b"POST /v1/sessions/validate HTTP/1.1\r\nHost: t\r\n"
                   b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n")
            raw, closed = read_all(c.s, 10)
        finally:
            c.close()
        resp = parse_responses(raw)
        self.assertEqual([r[0] for r in resp], [413], raw)
        self.assertTrue(closed)

    def test_expect_100_continue(self):
        body = json.dumps({"session_id": "A" * 43, "client": LOOPBACK_CLIENT}).encode()
        c = Conn(self.d)
        try:
            c.send(b"POST /v1/sessions/validate HTTP/1.1\r\nHost: t\r\n"
                   b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body))
            c.s.settimeout(10)
            first = c.s.recv(4096)
            self.assertTrue(first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first)
            c.send(body)
            raw = first[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
            while b"\r\n\r\n" not in raw:
                raw += c.s.recv(4096)
        finally:
            c.close()
        time.sleep(0.2)
        self.assertEqual(STATUS_LINE.match(raw).group(1), b"401", raw)

    def test_chunked_body_is_read(self):
        body = json.dumps({"session_id": "A" * 43, "client": LOOPBACK_CLIENT}).encode()
        data = (b"POST /v1/sessions/validate HTTP/1.1\r\nHost: t\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"%x\r\n%s\r\n" % (10, body[:10]) + b"%x;ext=1\r\n%s\r\n" % (len(body) - 10, body[10:])
                + b"0\r\nX-Trailer: dropped\r\n\r\n" + NEXT)
        raw, _ = self.exchange(self.d, data, timeout=3)
        self.assertEqual([r[0] for r in parse_responses(raw)], [401, 200], raw)

    def test_head_and_http10(self):
        raw, _ = self.exchange(self.d, b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n"
                               b"Connection: close\r\n\r\n")
        self.assertTrue(raw.startswith(b"HTTP/1.1 200 "), raw)
        self.assertTrue(raw.endswith(b"\r\n\r\n"), "HEAD answered with a body: %r" % raw)
        self.assertIn(b"Content-Length: ", raw)
        # HTTP/1.0: closes unless asked for keep-alive.
        raw, closed = self.exchange(self.d, b"GET /healthz HTTP/1.0\r\n\r\n" + NEXT)
        self.assertEqual(len(STATUS_LINE.findall(raw)), 1, raw)
        self.assertTrue(closed)
        ka = b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        raw, _ = self.exchange(self.d, ka + b"GET /healthz HTTP/1.0\r\n\r\n")
        resp = parse_responses(raw)
        self.assertEqual([r[0] for r in resp], [200, 200], raw)
        self.assertEqual(resp[0][1].get("connection"), "keep-alive")


class LimitsTest(HardeningCase):

    def test_chunked_body_past_limit_gets_413_early(self):
        d = self.start(sets=["server.max_body_bytes=1024"])
        c = Conn(d)
        try:
            c.send(b"POST /v1/sessions/validate HTTP/1.1\r\nHost: t\r\n"
                   b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(3):
                c.send(b"300\r\n" + b"x" * 0x300 + b"\r\n")
            # The body is not finished (no last chunk): the answer comes anyway.
            raw, closed = read_all(c.s, 10)
        finally:
            c.close()
        resp = parse_responses(raw)
        self.assertEqual([r[0] for r in resp], [413], raw)
        self.assertEqual(json.loads(resp[0][2])["error"], "too_large")
        self.assertTrue(closed)

    def test_trickled_head_gets_408(self):
        d = self.start(sets=["server.header_timeout=1"])
        c = Conn(d)
        data = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
        got = b""
        try:
            c.s.settimeout(0.25)
            deadline = time.monotonic() + 20
            for b in data:
                if time.monotonic() > deadline or not c.send(bytes([b])):
                    break
                try:
                    chunk = c.s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                    if b"\r\n\r\n" in got:
                        break
                except socket.timeout:
                    pass
            rest, _ = read_all(c.s, 5)
            got += rest
        finally:
            c.close()
        resp = parse_responses(got)
        self.assertEqual([r[0] for r in resp], [408], "a trickled head is never cut off: %r" % got)
        self.assertEqual(json.loads(resp[0][2])["error"], "request_timeout")

    def test_per_address_limit(self):
        d = self.start(sets=["server.max_connections_per_ip=3", "server.limit_loopback=true"])
        held = [Conn(d) for _ in range(3)]
        try:
            time.sleep(0.3)
            extra = Conn(d)
            raw, closed = read_all(extra.s, 10)
            extra.close()
            resp = parse_responses(raw)
            self.assertEqual([r[0] for r in resp], [503], raw)
            self.assertEqual(json.loads(resp[0][2])["error"], "overloaded")
            self.assertTrue(closed)
            for c in held:        # the others are still served
                c.send(NEXT)
                c.s.settimeout(10)
                got = b""
                while b"\r\n\r\n" not in got:
                    chunk = c.s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                self.assertTrue(got.startswith(b"HTTP/1.1 200 "), got)
        finally:
            for c in held:
                c.close()
        time.sleep(0.3)
        self.assertStatus(d.get("/healthz"), 200)   # slots come back on close

    def test_loopback_exempt_by_default(self):
        d = self.start(sets=["server.max_connections_per_ip=2"])
        held = [Conn(d) for _ in range(6)]
        try:
            for c in held:
                c.send(NEXT)
            for c in held:
                raw = c.s.recv(4096)
                self.assertTrue(raw.startswith(b"HTTP/1.1 200 "), raw)
        finally:
            for c in held:
                c.close()

    def test_bursts_past_max_connections(self):
        d = self.start(sets=["server.max_connections=256", "server.threads=2"])
        s = d.create_ok("burst", client=LOOPBACK_CLIENT)
        for _ in range(3):
            socks = []
            try:
                for _ in range(600):
                    k = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    k.setblocking(False)
                    try:
                        k.connect((d.host, d.port))
                    except BlockingIOError:
                        pass
                    socks.append(k)
                time.sleep(0.5)
            finally:
                for k in socks:
                    k.close()
            time.sleep(0.3)
        deadline = time.monotonic() + 20
        while True:   # refusals and closes drain; then requests must succeed
            try:
                r = d.validate(s["session_id"], client=LOOPBACK_CLIENT)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.assertStatus(r, 200)
        for _ in range(20):
            self.assertStatus(d.validate(s["session_id"], client=LOOPBACK_CLIENT), 200)
        m = d.get("/metrics")
        self.assertIn(b'sessiond_http_refused_total{reason="max_connections"}', m.body)
        # tearDown: SIGTERM must stop it within the harness bound.


class StopTest(HardeningCase):

    def test_sigterm_with_idle_and_stuck_connections(self):
        # The default header_timeout (10 s): a head still arriving when the
        # stop begins gets one second, so the stop does not wait for it.
        d = self.start()
        idle = Conn(d)
        idle.send(NEXT)
        idle.s.recv(4096)                    # answered; now idle keep-alive
        stuck = Conn(d)
        stuck.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Half: ")
        time.sleep(0.3)
        try:
            t0 = time.monotonic()
            d.stop()                         # asserts exit 0 within STOP_TIMEOUT
            self.assertLess(time.monotonic() - t0, 6.0)
        finally:
            idle.close()
            stuck.close()


if __name__ == "__main__":
    harness.main()
