"""test_redis_tracing.py - store child spans on the Redis stores (docs/observability.md,
"Traces"): a forward-auth span's store operations name the backend, db.system.name
"redis", the Redis server asked (server.address and server.port: the node of a
cluster) on a round trip, and whether the L1 cache answered (sessiond.store.l1
hit or miss).  Real redis-server (standalone and Cluster) and the OTLP receiver
of tests/blackbox/test_tracing.py."""

import re

import redisbb
from redisbb import LOOPBACK_CLIENT, RedisTestCase
from harness import cookie_value
from test_tracing import Receiver, attrs

PARENT = "00f067aa0ba902b7"


class RedisSpansStandalone(RedisTestCase):

    TOPOLOGY = "standalone"
    BACKEND = "redis"

    def ports(self):
        return {int(p) for p in re.findall(r":(\d+)", self.url)}

    def test_store_spans_name_the_server_and_the_l1(self):
        rcv = Receiver()
        self.addCleanup(rcv.close)
        d = self.instance(sets=["tracing.otlp_endpoint=" + rcv.url,
                                "tracing.flush_interval_ms=50"])
        s = d.create_ok("trace-redis-user", client=LOOPBACK_CLIENT)
        cookie = "%s=%s" % (cookie_value(s["set_cookie"])[0], s["session_id"])
        tids = []
        for i in range(8):
            tid = "%032x" % (0xabc000 + i)
            tids.append(tid)
            r = d.auth(cookie, headers={"traceparent": "00-%s-%s-01" % (tid, PARENT)})
            self.assertEqual(r.status, 200, r)
        self.assertTrue(rcv.wait_for(lambda sp: sp.get("traceId") == tids[-1]))
        gets = []
        for tid in tids:
            kids = [sp for _, _, sp in rcv.spans()
                    if sp["traceId"] == tid and sp["kind"] == 3
                    and attrs(sp).get("db.operation.name") == "get"]
            self.assertTrue(kids, "a store get under trace %s" % tid)
            gets.append(attrs(kids[0]))
        for a in gets:
            self.assertEqual(a["sessiond.store.backend"], self.BACKEND)
            self.assertEqual(a["db.system.name"], "redis")
            self.assertIn(a.get("sessiond.store.l1"), ("hit", "miss"))
        misses = [a for a in gets if a["sessiond.store.l1"] == "miss"]
        hits = [a for a in gets if a["sessiond.store.l1"] == "hit"]
        self.assertTrue(misses, "the first read asks Redis")
        self.assertTrue(hits, "later reads come from the L1 cache: %r" % gets)
        for a in misses:
            self.assertEqual(a["server.address"], "127.0.0.1")
            self.assertIn(int(a["server.port"]), self.ports())
        for a in hits:
            self.assertNotIn("server.address", a, "an L1 hit asks no server")


class RedisSpansCluster(RedisSpansStandalone):

    TOPOLOGY = "cluster"
    BACKEND = "redis+cluster"


if __name__ == "__main__":
    redisbb.main()
