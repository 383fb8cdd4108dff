"""redisbb.py - what the Redis black-box tests share.

The black-box harness (tests/blackbox/harness.py: the Sessiond class, the
assertions, main()) plus the Redis topologies of topology.py: a test class
names a topology, gets it started once for the class (self.topo, self.url),
and starts as many real sessiond processes on it as it needs with pair():
different ports, one store URL, one shared keys directory (every instance must
decrypt the records the others wrote).

Run a test file as the other black-box files:

    python3 tests/redis/test_redis_blackbox.py --sessiond build/sessiond \
        --sessctl build/sessctl [unittest args]

When redis-server is not installed it prints "SKIP: ..." and exits 77.
"""

import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "blackbox"))
sys.path.insert(0, HERE)

import harness                                   # noqa: E402
from harness import DEFAULT_CLIENT, LOOPBACK_CLIENT, SessiondTestCase   # noqa: E402,F401
import topology                                  # noqa: E402

# Both instances must reach Redis and nothing else: tight, but not so tight
# that a loaded CI machine trips the breaker in the happy path.
COMMON_SETS = ["log.level=warn"]


class RedisTestCase(SessiondTestCase):
    """A SessiondTestCase with a Redis topology that lives as long as the class."""

    TOPOLOGY = "standalone"
    TOPOLOGY_KW = {}
    INSTANCE_SETS = []      # --set options of every instance of the class

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        why = topology.missing(cls.TOPOLOGY)
        if why:
            raise unittest.SkipTest(why)
        t0 = time.monotonic()
        cls.topo = topology.make(cls.TOPOLOGY, **cls.TOPOLOGY_KW)
        try:
            cls.topo.__enter__()
        except topology.Skip as e:
            raise unittest.SkipTest(str(e))
        cls.url = cls.topo.url
        sys.stderr.write("\n[%s: %s up in %.1fs]\n" % (cls.__name__, cls.TOPOLOGY,
                                                       time.monotonic() - t0))

    @classmethod
    def tearDownClass(cls):
        topo = getattr(cls, "topo", None)
        if topo is not None:
            topo.close()
        super().tearDownClass()

    def keys_dir(self):
        """One keys directory per test, shared by every instance of the test."""
        if not getattr(self, "_keys", None):
            d = tempfile.mkdtemp(prefix="sessiond-redis-keys-")
            self.addCleanup(shutil.rmtree, d, True)
            self._keys = os.path.join(d, "keys")
            harness.generate_key(self._keys)
        return self._keys

    def instance(self, sets=(), start=True, url=None):
        """One more sessiond on the topology's store with the shared keys."""
        d = self.make(store=url or self.url,
                      sets=COMMON_SETS + self.INSTANCE_SETS + list(sets))
        d.keys_dir = self.keys_dir()
        if start:
            d.start()
        return d

    def pair(self, sets=()):
        """Instances A and B: same store, same keys, different ports."""
        a = self.instance(sets)
        b = self.instance(sets)
        self.assertNotEqual(a.port, b.port)
        return a, b

    def destroyed_on_a_seen_by_b(self, a, b, user, warm, between=None):
        """Create a session on A, validate it on B "warm" times (B's L1 now
        holds it), run "between", destroy it on A and validate it on B:
        None when B refuses it (401), else B's answer, in brief."""
        sid = a.create_ok(user)["session_id"]
        for _ in range(warm):
            self.assertEqual(validate(b, sid).status, 200)
        if between:
            between()
        self.assertEqual(a.destroy(sid).status, 200)
        r = validate(b, sid)
        return None if r.status == 401 else brief(r)

    def tearDown(self):
        try:
            super().tearDown()
        except AssertionError:
            sys.stderr.write("redis logs:\n%s\n" % self.topo.logs(15))
            raise


class SlowLink:
    """A TCP relay on a free loopback port in front of a real redis-server
    that holds replies back, as a slow or loaded network would: the first
    reply of every connection ("first") or every reply ("every") waits
    "delay" seconds.  Requests pass at once.  close() ends it and every
    relayed connection."""

    def __init__(self, port, delay, mode="first"):
        self.target, self.delay, self.mode = port, delay, mode
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.socks, self.closed = [], False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
                s = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                return
            self.socks += [c, s]
            threading.Thread(target=self._pump, args=(c, s, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, True), daemon=True).start()

    def _pump(self, src, dst, replies):
        first = True
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if replies and (first or self.mode == "every"):
                    time.sleep(self.delay)
                first = False
                dst.sendall(data)
        except OSError:
            pass
        for x in (src, dst):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.closed = True
        for x in [self.lsock] + self.socks:
            try:
                x.close()
            except OSError:
                pass


# ---- small HTTP helpers over a keep-alive connection --------------------------

def create(d, user, conn=None, client=None, **extra):
    body = {"user_id": user, "client": client or DEFAULT_CLIENT}
    body.update(extra)
    return d.post("/v1/sessions", body, conn=conn)


def validate(d, sid, conn=None, client=None):
    return d.post("/v1/sessions/validate",
                  {"session_id": sid, "client": client or DEFAULT_CLIENT}, conn=conn)


def timed(fn, *args, **kw):
    """(response, seconds)."""
    t0 = time.monotonic()
    r = fn(*args, **kw)
    return r, time.monotonic() - t0


def brief(r):
    """A short text for a response in a failure message."""
    if r is None:
        return "no response"
    if r.json is not None:
        return "%d %s" % (r.status, r.json)
    return "%d %r" % (r.status, r.body[:120])


# ---- metrics ------------------------------------------------------------------------

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def metrics(d):
    """[(name, labels, value)] of every sample of GET /metrics."""
    r = d.get("/metrics")
    if r.status != 200:
        raise AssertionError("GET /metrics: %s" % brief(r))
    out = []
    for line in r.body.decode("utf-8", "replace").splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if m:
            try:
                v = float(m.group(3))
            except ValueError:
                continue
            out.append((m.group(1), m.group(2) or "", v))
    return out


def metric_sum(samples, *words, exclude=("_bucket", "_sum", "_count")):
    """Sum of the sessiond_store_* samples whose name and labels contain every
    word (case-insensitive), and the matching lines; histograms excluded."""
    total, lines = 0.0, []
    for name, labels, v in samples:
        if not name.startswith("sessiond_store_"):
            continue
        if any(name.endswith(x) for x in exclude):
            continue
        text = (name + labels).lower()
        if all(w in text for w in words):
            total += v
            lines.append("%s%s %g" % (name, labels, v))
    return total, lines


def main():
    why = topology.missing("standalone")
    if why:
        print("SKIP: %s" % why, flush=True)
        sys.exit(topology.SKIP_CODE)
    harness.main()
