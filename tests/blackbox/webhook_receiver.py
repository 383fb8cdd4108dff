"""webhook_receiver.py - a real webhook receiver for the lifecycle event tests
(test_events.py, tests/redis/test_redis_events.py): Python's http.server on a
loopback port that records every delivery (path, headers, body) and answers a
chosen status; it can be stopped (connections refused: the receiver is down)
and started again on the same port.  Also the receiver's side of Standard
Webhooks written independently of sessiond with Python's hmac, and a
secret file maker.  Standard library only."""

import base64
import hashlib
import hmac
import http.server
import json
import os
import threading
import time


class Receiver:
    def __init__(self):
        self.lock = threading.Lock()
        self.deliveries = []     # dicts: path, headers (lowercase), body (bytes), json
        self.status = 200
        self.port = 0
        self.server = None
        self.start()

    def start(self):
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            # HTTP/1.0: one request per connection, so stop() really ends
            # every conversation (no keep-alive thread lingers).
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                status = recv.status
                if status == 200:
                    with recv.lock:
                        recv.deliveries.append({
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                            "json": json.loads(body),
                        })
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def got(self, path=None):
        with self.lock:
            return [d for d in self.deliveries if path is None or d["path"] == path]

    def wait(self, pred, timeout=60, what="deliveries"):
        """Wait until pred(list of deliveries) is true (generous bound: never a
        timing assertion, only a limit on how long a failing test hangs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.got()):
                return self.got()
            time.sleep(0.05)
        raise AssertionError("receiver: %s did not arrive within %ss; got %d: %s"
                             % (what, timeout, len(self.got()),
                                [d["json"].get("type") for d in self.got()][:40]))


def write_secret(path, keys=("k1",)):
    """A secret file with fresh 32-byte keys; returns {kid: "whsec_..."}."""
    out = {}
    with open(path, "w") as f:
        for kid in keys:
            s = "whsec_" + base64.b64encode(os.urandom(32)).decode()
            out[kid] = s
            f.write("%s %s\n" % (kid, s))
    os.chmod(path, 0o600)
    return out


def verify(secret, delivery, tolerance=300):
    """Standard Webhooks verification, written from the spec: HMAC-SHA256 with
    the base64-decoded secret over "id.timestamp.body", base64, compared in
    constant time against each "v1," signature; the timestamp within
    "tolerance" seconds (None: not checked)."""
    h = delivery["headers"]
    msg_id, ts = h["webhook-id"], h["webhook-timestamp"]
    if tolerance is not None and abs(time.time() - int(ts)) > tolerance:
        return False
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, ("%s.%s." % (msg_id, ts)).encode() + delivery["body"],
                   hashlib.sha256).digest()
    want = base64.b64encode(mac).decode()
    sigs = [s.split(",", 1)[1] for s in h["webhook-signature"].split(" ")
            if s.startswith("v1,")]
    return any(hmac.compare_digest(want, s) for s in sigs)


def unique(deliveries):
    """The events, each once (a receiver de-duplicates by webhook-id), in
    arrival order."""
    seen, out = set(), []
    for d in deliveries:
        i = d["headers"]["webhook-id"]
        if i not in seen:
            seen.add(i)
            out.append(d["json"])
    return out
