"""test_redis_failover.py - slow: Sentinel failover loses nothing acknowledged
(issue 4, item 6).

A primary with two replicas watched by three sentinels (quorum 2, down after
1 s), sessiond A with store.durability = replicated (WAIT for one replica
before acknowledging create, regenerate and destroy).  THREADS threads create
and destroy sessions through A; the primary is killed with SIGKILL; the
sentinels promote a replica (two replicas, so that the new primary still has
one to WAIT for).  Afterwards, through A and through a fresh instance C (empty
L1 cache): every acknowledged create that was not destroyed validates, every
acknowledged destroy stays destroyed.

The error window - from the first failed request to the first success after
the failover - is printed as "failover error window: N.NN s".
"""

import threading
import time

import redisbb
from redisbb import DEFAULT_CLIENT, RedisTestCase, brief, create, validate

THREADS = 3
LOAD_BEFORE = 2.0          # seconds of load before the kill
LOAD_AFTER = 2.0           # seconds of load after the first success after the kill
GIVE_UP = 45.0             # seconds after the kill without any success: fail
SETTLE = 15.0              # seconds a final check may keep answering 503
REQUEST_TIMEOUT = 5.0


class FailoverTest(RedisTestCase):
    TOPOLOGY = "sentinel"
    TOPOLOGY_KW = {"replicas": 2}

    def test_failover_keeps_every_acknowledged_write(self):
        # Timeouts looser than the 20 ms default: this test is about what
        # survives a failover, and on a loaded 2-core machine (or under
        # ASan) a 20 ms timeout can fail a request before the kill.
        sets = ["store.durability=replicated", "session.max_per_user=0", "server.threads=4",
                "store.timeout_ms=250", "store.replica_timeout_ms=1000"]
        a = self.instance(sets)
        lock = threading.Lock()
        created = {}            # sid -> user, for every 201
        destroyed = set()       # sids whose destroy answered 200
        attempted = set()       # sids whose destroy was sent
        events = []             # (t_start, t_end, op, ok, what)
        stop = threading.Event()

        def worker(t):
            mine = []
            conn = a.connection(REQUEST_TIMEOUT)
            i = 0
            while not stop.is_set():
                i += 1
                destroy = len(mine) > 5 and i % 3 == 0
                t0 = time.monotonic()
                try:
                    if destroy:
                        sid = mine.pop(0)
                        with lock:
                            attempted.add(sid)
                        r = a.post("/v1/sessions/destroy", {"session_id": sid}, conn=conn)
                        ok = r.status == 200
                        if ok:
                            with lock:
                                destroyed.add(sid)
                    else:
                        user = "fo-%d-%d" % (t, i)
                        r = create(a, user, conn=conn)
                        ok = r.status == 201
                        if ok:
                            with lock:
                                created[r.json["session_id"]] = user
                            mine.append(r.json["session_id"])
                    what = r.status
                except Exception as e:          # noqa: BLE001 - a failed request
                    ok, what = False, repr(e)[:80]
                    conn.close()
                    conn = a.connection(REQUEST_TIMEOUT)
                with lock:
                    events.append((t0, time.monotonic(), "destroy" if destroy else "create",
                                   ok, what))
                if not ok:
                    time.sleep(0.01)
            conn.close()

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        try:
            time.sleep(LOAD_BEFORE)
            t_kill = time.monotonic()
            old = self.topo.kill_primary()
            new = self.topo.wait_failover(old, 30)
            t_promoted = time.monotonic()
            # Load goes on until requests succeed again (and a little longer).
            first_ok = None
            while True:
                with lock:
                    fails = [e for e in events if not e[3] and e[1] >= t_kill]
                    if fails:
                        f0 = min(e[1] for e in fails)
                        oks = [e[1] for e in events if e[3] and e[0] >= f0]
                    else:
                        oks = [e[1] for e in events if e[3] and e[0] >= t_promoted]
                if oks:
                    first_ok = min(oks)
                    if time.monotonic() >= first_ok + LOAD_AFTER:
                        break
                self.assertLess(time.monotonic() - t_kill, GIVE_UP,
                                "no request through A succeeded within %.0fs of killing the "
                                "primary (promoted %s after %.1fs); last answers: %s"
                                % (GIVE_UP, new.addr, t_promoted - t_kill,
                                   [e[4] for e in events[-5:]]))
                time.sleep(0.05)
        finally:
            stop.set()
            for th in threads:
                th.join(30)

        before = [e for e in events if not e[3] and e[1] < t_kill]
        self.assertEqual(before[:5], [], "requests failed before the primary was killed")
        fails = [e for e in events if not e[3]]
        if fails:
            f0 = min(e[1] for e in fails)
            s0 = min(e[1] for e in events if e[3] and e[0] >= f0)
            window = s0 - f0
        else:
            window = 0.0
        msg = ("failover error window: %.2f s (first failed request -> first success after "
               "failover; primary killed -> sentinels promoted %s: %.2f s; %d of %d requests "
               "failed; %d creates and %d destroys acknowledged)"
               % (window, new.addr, t_promoted - t_kill, len(fails), len(events),
                  len(created), len(destroyed)))
        print("\n" + msg, flush=True)
        kinds = {}
        for e in fails:
            kinds[str(e[4])] = kinds.get(str(e[4]), 0) + 1
        print("failed requests by answer: %s" % kinds, flush=True)

        # What was acknowledged is there; what was destroyed stays destroyed.
        # A 503 says "cannot tell yet" (instance A may still be backing off
        # from the dead primary when the load stops, on a busy machine for
        # seconds): ask again until a definite answer, within SETTLE.
        c = self.instance(sets)
        lost, resurrected, undecided = [], [], []

        def settled(d, sid, conn):
            deadline = time.monotonic() + SETTLE
            while True:
                r = validate(d, sid, conn=conn)
                if r.status != 503 or time.monotonic() >= deadline:
                    return r
                time.sleep(0.05)

        for d in (a, c):
            conn = d.connection()
            for sid, user in created.items():
                if sid in destroyed:
                    r = settled(d, sid, conn)
                    if r.status == 503:
                        undecided.append((":%d" % d.port, user, brief(r)))
                    elif r.status != 401:
                        resurrected.append((":%d" % d.port, user, brief(r)))
                elif sid not in attempted:
                    r = settled(d, sid, conn)
                    if r.status == 503:
                        undecided.append((":%d" % d.port, user, brief(r)))
                    elif r.status != 200:
                        lost.append((":%d" % d.port, user, brief(r)))
            conn.close()
        if undecided:
            # For whoever looks into it: the store's own view of the
            # trouble (breaker, errors, reconnects) on both instances.
            for d in (a, c):
                m = d.get("/metrics")
                rows = [ln for ln in m.body.decode("utf-8", "replace").splitlines()
                        if ln.startswith("sessiond_store_") and not ln.startswith("#")
                        and "latency" not in ln]
                print(":%d store metrics: %s" % (d.port, "; ".join(rows)), flush=True)
        self.assertEqual(undecided, [], "%d checks still answered 503 %.0f s after the load "
                         "stopped; first: %s" % (len(undecided), SETTLE, undecided[:5]))
        self.assertEqual(lost, [], "%d acknowledged sessions do not validate after the "
                         "failover (durability=replicated); first: %s"
                         % (len(lost), lost[:5]))
        self.assertEqual(resurrected, [], "%d acknowledged destroys came back after the "
                         "failover; first: %s" % (len(resurrected), resurrected[:5]))
        self.assertGreater(len(created), 0)
        self.assertEqual(c.get("/readyz").status, 200)


if __name__ == "__main__":
    redisbb.main()
