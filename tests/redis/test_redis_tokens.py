"""test_redis_tokens.py - refresh tokens on two real sessiond instances sharing
one Redis store (docs/tokens.md): a refresh token minted on A refreshes on B;
destroy, revoke by handle and regenerate on A make it fail on B at once, and
introspection on B says inactive; 20 refreshes of one token spread over A and
B at once get one successor; a spent token replayed on B after the grace
revokes the session on both.
"""
import os
import signal
import threading
import time

import redisbb
from redisbb import DEFAULT_CLIENT, RedisTestCase

AUD = "api.example.com"


class TokensOnRedis(RedisTestCase):
    TOPOLOGY = "standalone"
    INSTANCE_SETS = ["store.timeout_ms=500"]

    def two(self, *sets):
        sig = os.path.join(os.path.dirname(self.keys_dir()), "sigkeys")
        # One issuer for the cluster (the default is each node's own address).
        return self.pair(["tokens.keys_dir=" + sig, "tokens.issuer=https://sessiond.test"]
                         + list(sets))

    def mint(self, d, user="alice"):
        sid = d.create_ok(user)["session_id"]
        r = d.post("/v1/tokens", {"session_id": sid, "client": DEFAULT_CLIENT,
                                  "audience": AUD})
        self.assertStatus(r, 200)
        return sid, r.json

    def refresh(self, d, rt, conn=None):
        return d.post("/v1/tokens/refresh", {"refresh_token": rt}, conn=conn)

    def test_revocation_on_a_seen_by_b(self):
        a, b = self.two()
        for end in ("destroy", "revoke", "regenerate"):
            sid, m = self.mint(a, "u-" + end)
            r = self.refresh(b, m["refresh_token"])
            self.assertStatus(r, 200, end)
            rt = r.json["refresh_token"]
            self.assertTrue(b.post("/v1/tokens/introspect",
                                   {"token": m["access_token"]}).json["active"])
            if end == "destroy":
                a.destroy(sid)
            elif end == "revoke":
                handle = m["refresh_token"].split(".")[1]
                self.assertStatus(a.delete("/v1/sessions/" + handle), 204)
            else:
                self.assertStatus(a.regenerate(sid), 200)
            self.assertEqual(self.refresh(b, rt).status, 401, end)
            for t in (rt, m["access_token"]):
                self.assertEqual(b.post("/v1/tokens/introspect", {"token": t}).json,
                                 {"active": False}, end)

    def test_race_over_two_nodes_one_successor(self):
        a, b = self.two()
        _, m = self.mint(a)
        out, lock = [], threading.Lock()
        barrier = threading.Barrier(20)

        def go(d):
            conn = d.connection()
            barrier.wait()
            r = self.refresh(d, m["refresh_token"], conn=conn)
            conn.close()
            with lock:
                out.append(r)
        ts = [threading.Thread(target=go, args=(a if i % 2 else b,)) for i in range(20)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual([r.status for r in out], [200] * 20)
        self.assertEqual(len({r.json["refresh_token"] for r in out}), 1)

    def test_reuse_after_grace_on_b_revokes_on_a(self):
        a, b = self.two("tokens.refresh_grace=0")
        sid, m = self.mint(a)
        self.assertStatus(self.refresh(a, m["refresh_token"]), 200)
        time.sleep(1.1)
        self.assertEqual(self.refresh(b, m["refresh_token"]).status, 401)
        self.assertEqual(a.validate(sid).status, 401)


class TokensOnlyOutage(RedisTestCase):
    """store.failure = tokens_only: Redis stopped, a valid bearer token is
    accepted (X-Session-Degraded); the default answers 503."""
    TOPOLOGY = "standalone"
    INSTANCE_SETS = ["store.timeout_ms=100"]

    def redis_up(self):
        srv = self.topo.server
        if srv.proc is not None and srv.proc.poll() is None:
            srv.proc.send_signal(signal.SIGCONT)
        if not srv.alive():
            srv.start()

    def test_tokens_only(self):
        self.addCleanup(self.redis_up)
        sig = os.path.join(os.path.dirname(self.keys_dir()), "sigkeys")
        common = ["tokens.keys_dir=" + sig, "tokens.issuer=https://sessiond.test",
                  "forward_auth.token_audience=" + AUD, "forward_auth.accept_bearer=true"]
        a = self.instance(common + ["store.failure=tokens_only"])
        b = self.instance(common)
        sid = a.create_ok("outage")["session_id"]
        at = a.post("/v1/tokens", {"session_id": sid, "client": DEFAULT_CLIENT,
                                   "audience": AUD}).json["access_token"]
        hdr = {"Authorization": "Bearer " + at}
        for d in (a, b):
            r = d.auth(None, headers=hdr)
            self.assertEqual(r.status, 200)
            self.assertIsNone(r.header("X-Session-Degraded"))
        self.topo.stop()
        time.sleep(0.5)
        r = a.auth(None, headers=hdr)
        self.assertEqual(r.status, 200, "tokens_only during the outage")
        self.assertEqual(r.header("X-Session-Degraded"), "tokens_only")
        self.assertEqual(a.auth(None, headers={"Authorization": "Bearer junk"}).status, 401)
        self.assertEqual(b.auth(None, headers=hdr).status, 503, "closed is the default")


if __name__ == "__main__":
    redisbb.main()
