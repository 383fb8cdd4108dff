"""test_redis_outage.py - defined behaviour while Redis is gone (issue 4, item 5).

A standalone redis-server with an append-only file (fsync always), so what
was written before an outage is still there after it, and two sessiond
instances A and B on it.

  * fail_closed (the default): with redis-server stopped, /readyz answers 503,
    POST /v1/sessions/validate answers 503 (never 401: a store error is not a
    missing session) - also for a session B had in its L1 cache, since the
    invalidation link is down - GET /v1/auth answers 503 without a Set-Cookie
    (the cookie is never cleared on a store error), create and destroy answer
    503; every answer within ANSWER_WITHIN seconds (the timeouts are tight).
    redis-server started again on the same port: both instances recover
    without a restart, the sessions from before validate again, and
    revocation on A is again seen by B at once (the invalidation link is back).
  * a frozen redis-server (SIGSTOP: connections stay open, nothing answers):
    the same 503s, as fast - read timeouts, not TCP errors, end the wait.
  * serve_cached: a session B validated before the outage still validates on
    B during it; one B never saw answers 503; /readyz still says 503.
  * the invalidation link alone drops (CLIENT KILL TYPE pubsub: the data
    connections stay up): B's cache must not serve a session destroyed on A
    while the link is down, nor after it is back - which needs B to re-point
    its tracking at the new subscriber - over LINK_ROUNDS rounds.

A slow link (SlowLinkTest: a relay that holds Redis's replies back, in
front of the real server, database 1 so every new connection sends SELECT):

  * only the first reply of each connection slow (a server busy accepting
    a burst of connections): the set-up commands run under
    store.connect_timeout_ms, not store.timeout_ms, so everything works;
  * every reply slow: commands still fail with 503 after store.timeout_ms,
    within ANSWER_WITHIN, although set-up has more time.
"""

import signal
import time

import redisbb
from redisbb import LOOPBACK_CLIENT, RedisTestCase, brief, create, timed, validate

ANSWER_WITHIN = 1.0       # seconds, per request, during the outage
RECOVER_WITHIN = 15.0     # seconds from redis being back to /readyz 200
SETTLE = 0.3              # for sessiond to see the links drop
LINK_ROUNDS = 30


def cookie_name(set_cookie):
    return set_cookie.split("=", 1)[0].strip()


class OutageTest(RedisTestCase):
    TOPOLOGY = "standalone"
    TOPOLOGY_KW = {"persistence": "aof"}
    # 100 ms, not the 20 ms default: still tight beside ANSWER_WITHIN (the
    # slowest outage answer took 24 ms at 20 ms, about 110 ms at 100 ms),
    # but the checks before and after the outage, which must succeed, no
    # longer fail when a CI machine loaded with ASan and valgrind runs
    # stalls a reply past 20 ms.
    INSTANCE_SETS = ["store.timeout_ms=100"]

    def setUp(self):
        super().setUp()
        # Whatever a test did, the next one starts with redis up.
        self.addCleanup(self.redis_up)

    def redis_up(self):
        srv = self.topo.server
        if srv.proc is not None and srv.proc.poll() is None:
            srv.proc.send_signal(signal.SIGCONT)
        if not srv.alive():
            srv.start()

    def fast(self, what, fn, *args, **kw):
        """Call and check the answer came within ANSWER_WITHIN seconds."""
        r, secs = timed(fn, *args, **kw)
        self.assertLess(secs, ANSWER_WITHIN, "%s took %.2fs during the outage (want < %.1fs): "
                        "%s" % (what, secs, ANSWER_WITHIN, brief(r)))
        return r

    def assert_unavailable(self, d, sid, cookie, name, what):
        """The outage answers of one instance, each fast."""
        port = ":%d" % d.port
        r = self.fast("GET /readyz " + port, d.get, "/readyz")
        self.assertEqual(r.status, 503, "%s: /readyz %s: %s" % (what, port, brief(r)))
        r = self.fast("validate " + port, validate, d, sid, client=LOOPBACK_CLIENT)
        self.assertEqual(r.status, 503, "%s: validate %s must be 503 (a store error is not a "
                         "missing session): %s" % (what, port, brief(r)))
        self.assertError(r, 503)
        r = self.fast("GET /v1/auth " + port, d.auth, "%s=%s" % (name, cookie))
        self.assertEqual(r.status, 503, "%s: forward-auth %s: %s" % (what, port, brief(r)))
        cleared = [c for c in r.header_all("Set-Cookie") if cookie_name(c) == name]
        self.assertEqual(cleared, [], "%s: forward-auth sent Set-Cookie for the session "
                         "cookie on a store error" % what)

    def test_1_fail_closed_then_recover(self):
        a, b = self.pair()
        j = a.create_ok("outage-1", client=LOOPBACK_CLIENT)
        sid, name = j["session_id"], cookie_name(j["set_cookie"])
        for d in (a, b):
            for _ in range(2):           # the second one from the L1 cache
                r = validate(d, sid, client=LOOPBACK_CLIENT)
                self.assertEqual(r.status, 200, brief(r))
            self.assertEqual(d.get("/readyz").status, 200)
            r = d.auth("%s=%s" % (name, sid))
            self.assertEqual(r.status, 200, "forward-auth before the outage: %s" % brief(r))

        self.topo.stop()
        time.sleep(SETTLE)
        for attempt in range(3):         # breaker closed, then open
            for d in (a, b):
                self.assert_unavailable(d, sid, sid, name, "redis stopped (try %d)" % attempt)
            r = self.fast("create", create, a, "outage-1b")
            self.assertEqual(r.status, 503, "create during the outage: %s" % brief(r))
            r = self.fast("destroy", a.destroy, sid)
            self.assertEqual(r.status, 503, "destroy during the outage: %s" % brief(r))

        self.topo.start()
        t0 = time.monotonic()
        for d in (a, b):
            deadline = t0 + RECOVER_WITHIN
            while d.get("/readyz").status != 200:
                self.assertLess(time.monotonic(), deadline, ":%d did not recover within %.0fs "
                                "of redis coming back" % (d.port, RECOVER_WITHIN))
                time.sleep(0.05)
        print("\nrecovered in %.2fs after redis-server was back" % (time.monotonic() - t0))
        for d in (a, b):
            r = validate(d, sid, client=LOOPBACK_CLIENT)
            self.assertEqual(r.status, 200, "a session from before the outage (kept by the "
                             "append-only file) on :%d: %s" % (d.port, brief(r)))
        # The invalidation link is back: revocation on A reaches B's cache.
        stale = []
        for i in range(30):
            r = self.destroyed_on_a_seen_by_b(a, b, "after-outage-%d" % i, 2)
            if r:
                stale.append((i, r))
        self.assertEqual(stale, [], "after recovery B accepted sessions destroyed on A")
        self.assertEqual(a.destroy(sid).status, 200)
        self.assertEqual(validate(b, sid, client=LOOPBACK_CLIENT).status, 401)

    def test_2_frozen_redis_times_out_fast(self):
        a, b = self.pair()
        j = a.create_ok("frozen-1", client=LOOPBACK_CLIENT)
        sid, name = j["session_id"], cookie_name(j["set_cookie"])
        # Not validated on B: B must ask Redis, which does not answer.
        srv = self.topo.server
        srv.proc.send_signal(signal.SIGSTOP)
        try:
            for attempt in range(3):
                r = self.fast("GET /readyz", b.get, "/readyz")
                self.assertEqual(r.status, 503, "frozen redis: /readyz: %s" % brief(r))
                r = self.fast("validate", validate, b, sid, client=LOOPBACK_CLIENT)
                self.assertEqual(r.status, 503, "frozen redis: validate: %s" % brief(r))
                r = self.fast("GET /v1/auth", b.auth, "%s=%s" % (name, sid))
                self.assertEqual(r.status, 503, "frozen redis: forward-auth: %s" % brief(r))
                cleared = [c for c in r.header_all("Set-Cookie") if cookie_name(c) == name]
                self.assertEqual(cleared, [], "Set-Cookie for the session cookie on a "
                                 "store timeout")
                r = self.fast("create", create, a, "frozen-2")
                self.assertEqual(r.status, 503, "frozen redis: create: %s" % brief(r))
        finally:
            srv.proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + RECOVER_WITHIN
        for d in (a, b):
            while d.get("/readyz").status != 200:
                self.assertLess(time.monotonic(), deadline, "no recovery after SIGCONT")
                time.sleep(0.05)
        r = validate(b, sid, client=LOOPBACK_CLIENT)
        self.assertEqual(r.status, 200, "after SIGCONT: %s" % brief(r))

    def test_3_serve_cached(self):
        a, b = self.pair(["store.on_unavailable=serve_cached"])
        seen = a.create_ok("cached-1")["session_id"]
        unseen = a.create_ok("cached-2")["session_id"]
        for _ in range(2):
            self.assertEqual(validate(b, seen).status, 200)
        self.topo.stop()
        time.sleep(SETTLE)
        for attempt in range(3):
            r = self.fast("validate (cached)", validate, b, seen)
            self.assertEqual(r.status, 200, "serve_cached: a session B validated before the "
                             "outage must still validate on B: %s" % brief(r))
            r = self.fast("validate (not cached)", validate, b, unseen)
            self.assertEqual(r.status, 503, "serve_cached: a session B never saw: %s"
                             % brief(r))
            r = self.fast("GET /readyz", b.get, "/readyz")
            self.assertEqual(r.status, 503, "serve_cached: /readyz must still say the store "
                             "is unavailable: %s" % brief(r))
        self.topo.start()
        deadline = time.monotonic() + RECOVER_WITHIN
        for d in (a, b):
            while d.get("/readyz").status != 200:
                self.assertLess(time.monotonic(), deadline, "no recovery")
                time.sleep(0.05)
        # Back to normal: a destroy on A is seen by B at once.
        self.assertEqual(a.destroy(seen).status, 200)
        self.assertEqual(validate(b, seen).status, 401,
                         "after the outage B still serves a session destroyed on A")
        self.assertEqual(validate(b, unseen).status, 200)

    def test_4_invalidation_link_drop(self):
        a, b = self.pair()
        stale = []
        for i in range(LINK_ROUNDS):
            # Phase 1: B has the session cached, the link goes, A destroys.
            r = self.destroyed_on_a_seen_by_b(
                a, b, "link-%d" % i, 2,
                lambda: self.topo.server.cmd("CLIENT", "KILL", "TYPE", "pubsub"))
            if r:
                stale.append((i, "link down", r))
            # Phase 2: after the link is back, caching must be coherent
            # again (tracking re-pointed at the new subscriber).
            time.sleep(0.2)
            r = self.destroyed_on_a_seen_by_b(a, b, "link-back-%d" % i, 3)
            if r:
                stale.append((i, "link back", r))
        self.assertEqual(stale, [], "B served a session destroyed on A in %d of %d rounds "
                         "around an invalidation-link drop; first: %s"
                         % (len(stale), 2 * LINK_ROUNDS, stale[:5]))
        samples = redisbb.metrics(b)
        flushes, lines = redisbb.metric_sum(samples, "flush")
        self.assertGreater(flushes, 0, "the L1 was never flushed: %s" % lines)
        hits, lines = redisbb.metric_sum(samples, "l1", "hit")
        self.assertGreater(hits, 0, "after the link came back the L1 never hit again: "
                           "%s" % lines)


class SlowLinkTest(RedisTestCase):
    TOPOLOGY = "standalone"
    DELAY = 0.25                      # seconds a held reply waits
    SETS = ["store.timeout_ms=50", "store.connect_timeout_ms=2000"]

    def through(self, mode):
        link = redisbb.SlowLink(self.topo.server.port, self.DELAY, mode)
        self.addCleanup(link.close)
        return self.instance(self.SETS, url="redis://127.0.0.1:%d/1" % link.port)

    def test_1_slow_setup_is_connecting(self):
        d = self.through("first")
        sids = []
        for i in range(4):
            r = create(d, "slow-setup-%d" % i)
            self.assertEqual(r.status, 201, "a connection whose set-up replies took %.2fs "
                             "(connect_timeout_ms 2000, timeout_ms 50) must work: %s"
                             % (self.DELAY, brief(r)))
            sids.append(r.json["session_id"])
        for sid in sids:
            r = validate(d, sid)
            self.assertEqual(r.status, 200, brief(r))
        self.assertEqual(d.get("/readyz").status, 200)

    def test_2_slow_commands_still_time_out(self):
        d = self.through("every")
        for i in range(3):
            r, secs = timed(create, d, "slow-every-%d" % i)
            self.assertEqual(r.status, 503, "every reply %.2fs late, timeout_ms 50: %s"
                             % (self.DELAY, brief(r)))
            self.assertLess(secs, ANSWER_WITHIN, "create took %.2fs" % secs)


if __name__ == "__main__":
    redisbb.main()
