"""test_redis_events.py - two real sessiond instances on one Redis store emit
each lifecycle event once between them (docs/observability.md, "Several
instances"), on a standalone Redis and on a Redis Cluster.

Request-driven events come from the instance whose atomic store script made the
change (a create that evicts, a regenerate, a destroy, a revoke); "expired"
comes from the instance whose purge script deleted the record, and both
instances purge every second.  Each instance has its own outbox (its own
directory) and both post to one receiver (webhook_receiver.py).  Both daemons'
clocks are moved past the sessions' expiry with libfaketime (Debian package
faketime), so their purges race over the same records; the test is skipped,
saying so, without it."""

import os
import tempfile
import time
import unittest

import redisbb
from redisbb import RedisTestCase
from webhook_receiver import Receiver, unique, verify, write_secret

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


class EventsOnceMixin:

    def setUp(self):
        if not os.path.exists(FAKETIME_LIB):
            raise unittest.SkipTest("libfaketime not installed (Debian package faketime)")
        self.recv = Receiver()
        self.addCleanup(self.recv.stop)
        tmp = tempfile.mkdtemp(prefix="sessiond-redis-events-")
        self.secret_file = os.path.join(tmp, "webhook.secret")
        self.secret = write_secret(self.secret_file)["k1"]
        self.tfile = os.path.join(tmp, "faketime")
        with open(self.tfile, "w") as f:
            f.write("+0\n")
        self.env = dict(os.environ, LD_PRELOAD=FAKETIME_LIB,
                        FAKETIME_TIMESTAMP_FILE=self.tfile, FAKETIME_CACHE_DURATION="1",
                        FAKETIME_DONT_FAKE_MONOTONIC="1",
                        ASAN_OPTIONS=(os.environ.get("ASAN_OPTIONS", "") +
                                      ":verify_asan_link_order=0").lstrip(":"))

    def node(self):
        d = self.make(store=self.url, environ=self.env, sets=redisbb.COMMON_SETS + [
            "events.webhook_url=" + self.recv.url(),
            "events.webhook_secret_file=" + self.secret_file,
            "events.retry_min_ms=50", "events.retry_max_ms=400",
            "store.purge_interval=1", "session.idle_timeout=60",
            "session.rotate_interval=0", "session.max_per_user=2",
            # Generous: this test is about events, and a loaded machine (with
            # libfaketime in every clock call) misses the 20 ms default.
            "store.timeout_ms=2000", "store.connect_timeout_ms=2000"])
        d.keys_dir = self.keys_dir()
        d.start()
        return d

    def test_each_event_once_expiry_included(self):
        a, b = self.node(), self.node()
        want = {}                       # (type, handle or user) -> 1
        s1 = a.create_ok("ann")
        r = b.regenerate(s1["session_id"])              # B regenerates A's session
        self.assertEqual(r.status, 200)
        self.assertEqual(a.destroy(r.json["session_id"]).status, 200)
        want.update({("created", s1["handle"]): 1, ("regenerated", r.json["handle"]): 1,
                     ("destroyed", r.json["handle"]): 1})
        lim = [a.create_ok("lim"), b.create_ok("lim"), a.create_ok("lim")]  # 3rd evicts one
        for s in lim:
            want[("created", s["handle"])] = 1
        # Which one is "oldest" among logins of one second on two processes
        # is the store's business; the create says which it evicted.
        self.assertEqual(len(lim[2]["evicted"]), 1)
        gone = lim[2]["evicted"][0]
        want[("evicted", gone)] = 1
        alive = [b.create_ok("eve%d" % i) for i in range(3)] + \
            [s for s in lim if s["handle"] != gone]
        for s in alive[:3]:
            want[("created", s["handle"])] = 1
        self.assertEqual(b.delete("/v1/sessions/" + alive[0]["handle"]).status, 204)
        want[("revoked", alive[0]["handle"])] = 1
        alive = alive[1:]
        self.recv.wait(lambda g: len(unique(g)) >= len(want))

        # Past idle timeout + retention on both clocks: both purge, each
        # record is reported by the one that deleted it.
        with open(self.tfile, "w") as f:
            f.write("+1000\n")
        for s in alive:
            want[("expired", s["handle"])] = 1
        self.recv.wait(lambda g: len(unique(g)) >= len(want), timeout=90)
        time.sleep(3)                                    # several more purges on both
        got = self.recv.got()
        evs = unique(got)
        self.assertEqual(len(evs), len(got), "an event was delivered twice")
        seen = {}
        for e in evs:
            k = (e["type"], e["data"]["handle"])
            seen[k] = seen.get(k, 0) + 1
        self.assertEqual(seen, want)
        for e in evs:
            if e["type"] == "expired":
                self.assertEqual(e["data"]["actor"], "purge")
        for dl in got:
            self.assertTrue(verify(self.secret, dl, tolerance=None))
            a.assert_no_ids_in(dl["body"].decode(), "a webhook body")
            b.assert_no_ids_in(dl["body"].decode(), "a webhook body")


class StandaloneTest(EventsOnceMixin, RedisTestCase):
    TOPOLOGY = "standalone"


class ClusterTest(EventsOnceMixin, RedisTestCase):
    TOPOLOGY = "cluster"


if __name__ == "__main__":
    redisbb.main()
