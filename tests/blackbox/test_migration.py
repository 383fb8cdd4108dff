"""test_migration.py - moving live sessions between stores (docs/migration.md).

The real sessiond on a migration store from one LMDB store to a new one,
under a load that keeps creating, validating, regenerating and destroying
(a small thread pool, bounded in count and time), walked through
shadow -> dual -> route:10 -> route:50 -> route:100 -> read-through -> new
with PUT /v1/admin/migration, with a rollback route:50 -> route:10 on the
way.  For every step: valid sessions refused (must be 0) and destroyed
sessions that came back (must be 0); validate p99 per mode is printed,
never asserted.  Also: a kill -9 in dual loses no acknowledged write, SIGHUP
re-reads [migration] mode, bad mode bodies change nothing."""

import os
import random
import signal
import threading
import time

import harness
from harness import SessiondTestCase

STEPS = ["shadow", "dual", "route:10", "route:50", "route:10", "route:50",
         "route:100", "read-through", "new"]


class Load:
    """Workers that create, validate, regenerate and destroy sessions."""

    def __init__(self, d, workers=4):
        self.d = d
        self.workers = workers
        self.lock = threading.Lock()
        self.live = []            # IDs acknowledged live
        self.dead = []            # IDs acknowledged destroyed or rotated away
        self.refused = 0          # a live ID refused
        self.resurrected = 0      # a dead ID accepted
        self.lat = []
        self.errors = []
        self.stop = threading.Event()

    def one(self, rnd):
        d = self.d
        op = rnd.random()
        if op < 0.3 or not self.live:
            r = d.create("user%d" % rnd.randrange(20))
            if r.status != 201:
                self.errors.append(("create", r.status))
                return
            with self.lock:
                self.live.append(r.json["session_id"])
            return
        with self.lock:
            if not self.live:
                return
            sid = rnd.choice(self.live)
        if op < 0.75:
            t0 = time.monotonic()
            r = d.validate(sid)
            dt = time.monotonic() - t0
            with self.lock:
                self.lat.append(dt)
                if r.status != 200 and sid in self.live:
                    self.refused += 1
            if self.dead:
                with self.lock:
                    z = rnd.choice(self.dead)
                if d.validate(z).status == 200:
                    with self.lock:
                        self.resurrected += 1
        elif op < 0.88:
            with self.lock:
                if sid not in self.live:
                    return
                self.live.remove(sid)  # in flight: neither live nor dead
            r = d.regenerate(sid)
            with self.lock:
                if r.status == 200:
                    self.live.append(r.json["session_id"])
                    self.dead.append(sid)
                else:
                    self.errors.append(("regenerate", r.status))
        else:
            with self.lock:
                if sid not in self.live:
                    return
                self.live.remove(sid)
            r = d.destroy(sid)
            with self.lock:
                if r.status in (200, 204):
                    self.dead.append(sid)
                else:
                    self.errors.append(("destroy", r.status))

    def run(self, seconds, ops):
        def worker(seed):
            rnd = random.Random(seed)
            deadline = time.monotonic() + seconds
            for _ in range(ops):
                if time.monotonic() > deadline or self.stop.is_set():
                    break
                self.one(rnd)
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(self.workers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(seconds + 30)

    def p99(self):
        with self.lock:
            xs, self.lat = sorted(self.lat), []
        return xs[int(len(xs) * 0.99)] if xs else 0.0

    def check_all(self, tc, step):
        with self.lock:
            live, dead = list(self.live), list(self.dead)
        bad = [s for s in live if self.d.validate(s).status != 200]
        back = [s for s in dead if self.d.validate(s).status == 200]
        tc.assertEqual(len(bad), 0, "%s: %d of %d live sessions refused" % (step, len(bad), len(live)))
        tc.assertEqual(len(back), 0, "%s: %d destroyed sessions came back" % (step, len(back)))


class MigrationTest(SessiondTestCase):

    def daemon(self, mode="shadow", **kw):
        d = self.make(sets=["session.max_per_user=0", "server.threads=4"], **kw)
        d.sets += ["migration.from=lmdb:" + os.path.join(d.dir, "sessions"),
                   "migration.to=lmdb:" + os.path.join(d.dir, "sessions-new"),
                   "migration.mode=" + mode]
        d.start()
        return d

    def put_mode(self, d, mode):
        r = d.request("PUT", "/v1/admin/migration", {"mode": mode})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["mode"], mode)
        return r.json

    def test_walk_and_rollback_under_load(self):
        d = self.daemon()
        load = Load(d)
        report = []
        for step in STEPS:
            self.put_mode(d, step)
            load.run(seconds=4, ops=150)
            load.check_all(self, step)
            report.append((step, load.p99() * 1000, load.refused, load.resurrected))
            self.assertEqual(load.refused, 0, "%s: a live session was refused" % step)
            self.assertEqual(load.resurrected, 0, "%s: a destroyed session came back" % step)
        self.assertEqual(load.errors, [])
        for step, p99, _, _ in report:
            print("# migration %-13s validate p99 %.2f ms" % (step, p99))
        g = d.get("/v1/admin/migration")
        self.assertStatus(g, 200)
        c = g.json["counters"]
        self.assertEqual(c["to_write_failures"], 0)
        self.assertEqual(c["mode_changes"], len(STEPS))
        m = d.get("/metrics")
        self.assertIn('sessiond_migration_mode_info{mode="new"} 1', m.body.decode())

    def test_bad_mode_changes_nothing(self):
        d = self.daemon("dual")
        for body in ({"mode": "route:101"}, {"mode": 5}, {}, {"mode": "dual", "x": 1},
                     {"mode": "shadow "}):
            r = d.request("PUT", "/v1/admin/migration", body)
            self.assertStatus(r, 400)
        self.assertEqual(d.get("/v1/admin/migration").json["mode"], "dual")

    def test_sighup_rereads_mode(self):
        d = self.make(sets=["session.max_per_user=0"])
        cfg = os.path.join(d.dir, "sessiond.ini")
        with open(cfg, "w") as f:
            f.write("[migration]\nfrom = lmdb:%s\nto = lmdb:%s\nmode = shadow\n"
                    % (os.path.join(d.dir, "sessions"), os.path.join(d.dir, "s2")))
        d.config = cfg
        d.start()
        sid = d.create_ok("bob")["session_id"]
        with open(cfg, "w") as f:
            f.write("[migration]\nfrom = lmdb:%s\nto = lmdb:%s\nmode = route:100\n"
                    % (os.path.join(d.dir, "sessions"), os.path.join(d.dir, "s2")))
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if d.get("/v1/admin/migration").json["mode"] == "route:100":
                break
            time.sleep(0.05)
        self.assertEqual(d.get("/v1/admin/migration").json["mode"], "route:100")
        self.assertStatus(d.validate(sid), 200)

    def test_kill9_in_dual_loses_nothing(self):
        d = self.daemon("dual")
        load = Load(d)
        load.run(seconds=4, ops=100)
        d.kill9()
        d.start()
        self.assertEqual(d.get("/v1/admin/migration").json["mode"], "dual")
        load.check_all(self, "dual after kill -9")
        # Every acknowledged session is in both stores: "new" serves them all.
        self.put_mode(d, "new")
        load.check_all(self, "new after kill -9")

    def test_unconfigured(self):
        d = self.start()
        self.assertStatus(d.get("/v1/admin/migration"), 404)


if __name__ == "__main__":
    harness.main()
