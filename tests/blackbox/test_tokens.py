"""test_tokens.py - the token routes of a running sessiond (docs/tokens.md):
mint, the JWKS (ETag, 304) and RFC 8414 metadata, refresh with its grace and
theft detection (20 concurrent refreshes get one successor; a spent token
after the grace revokes the session), introspection and revocation, and the
forward-auth token propagation and bearer authorisation.
"""
import base64
import json
import os
import signal
import threading
import time
import unittest

import harness
from harness import DEFAULT_CLIENT, LOOPBACK_CLIENT, SessiondTestCase

AUD = "api.example.com"


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_parts(tok):
    h, p, _ = tok.split(".")
    return json.loads(b64d(h)), json.loads(b64d(p))


class TokenTests(SessiondTestCase):

    def daemon(self, *sets):
        return self.start(sets=("tokens.claims=roles,permissions",) + sets)

    def session(self, d, data=None, client=None, user="alice", **extra):
        j = d.create_ok(user=user, client=client,
                        data=data or {"roles": ["admin"], "secret": "x"}, **extra)
        return j["session_id"], j["handle"]

    def mint(self, d, sid, aud=AUD, client=None):
        return d.post("/v1/tokens", {"session_id": sid, "client": client or DEFAULT_CLIENT,
                                     "audience": aud})

    def test_mint_claims(self):
        d = self.daemon()
        sid, handle = self.session(d)
        r = self.mint(d, sid, [AUD, "b.example"])
        self.assertStatus(r, 200)
        self.assertEqual(r.json["token_type"], "Bearer")
        self.assertLessEqual(r.json["expires_in"], 300)
        self.assertGreater(r.json["expires_in"], 290)
        self.assertRegex(r.json["refresh_token"], r"^rt1\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$")
        hdr, c = jwt_parts(r.json["access_token"])
        self.assertEqual(hdr["typ"], "at+jwt")
        self.assertEqual(hdr["alg"], "EdDSA")
        self.assertIn("kid", hdr)
        self.assertEqual(c["sub"], "alice")
        self.assertEqual(c["sid"], handle)
        self.assertEqual(c["aud"], [AUD, "b.example"])
        self.assertEqual(c["roles"], ["admin"])
        self.assertNotIn("secret", c)         # only the configured members
        self.assertNotIn(sid, r.json["access_token"])
        self.assertEqual(c["exp"] - c["iat"], 300)
        self.assertEqual(c["nbf"], c["iat"])
        self.assertEqual(c["acr"], "urn:sessiond:acr:session")
        self.assertTrue(c["iss"].startswith("http://127.0.0.1:"))
        # An elevated session gets the stronger acr.
        sid2, _ = self.session(d, elevated=True, user="bob")
        _, c2 = jwt_parts(self.mint(d, sid2).json["access_token"])
        self.assertEqual(c2["acr"], "urn:sessiond:acr:elevated")

    def test_mint_validates_like_validate(self):
        d = self.daemon()
        sid, _ = self.session(d)
        bad = dict(DEFAULT_CLIENT, user_agent="other/1.0")
        self.assertInvalid(self.mint(d, sid, client=bad), "binding_mismatch")
        self.assertInvalid(self.mint(d, "A" * 43), "unknown")
        for aud in (None, "", [], [1], ["x"] * 9, "a" * 256, {"a": 1}):
            r = d.post("/v1/tokens", {"session_id": sid, "client": DEFAULT_CLIENT,
                                      "audience": aud})
            self.assertError(r, 400, "invalid_request")

    def test_lifetime_capped_by_session(self):
        d = self.daemon("session.idle_timeout=100", "session.absolute_timeout=100",
                        "session.rotate_interval=0")
        sid, _ = self.session(d)
        _, c = jwt_parts(self.mint(d, sid).json["access_token"])
        self.assertLessEqual(c["exp"] - c["iat"], 100)

    def test_jwks_etag_and_metadata(self):
        d = self.daemon()
        r = d.get("/.well-known/jwks.json")
        self.assertStatus(r, 200)
        # One Cache-Control, the route's own (not the default no-store too).
        self.assertEqual(r.header_all("Cache-Control"), ["public, max-age=300"])
        etag = r.header("ETag")
        self.assertTrue(etag.startswith('"'))
        key = r.json["keys"][0]
        self.assertEqual((key["kty"], key["crv"], key["use"], key["alg"]),
                         ("OKP", "Ed25519", "sig", "EdDSA"))
        self.assertNotIn("d", key)
        r2 = d.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
        self.assertStatus(r2, 304)
        self.assertEqual(r2.body, b"")
        self.assertEqual(r2.header("ETag"), etag)
        r3 = d.get("/.well-known/jwks.json", headers={"If-None-Match": '"other"'})
        self.assertStatus(r3, 200)
        m = d.get("/.well-known/oauth-authorization-server")
        self.assertStatus(m, 200)
        iss = m.json["issuer"]
        self.assertEqual(m.json["jwks_uri"], iss + "/.well-known/jwks.json")
        self.assertEqual(m.json["introspection_endpoint"], iss + "/v1/tokens/introspect")
        self.assertEqual(m.json["revocation_endpoint"], iss + "/v1/tokens/revoke")

    def test_refresh_rotates_and_grace_returns_same_pair(self):
        d = self.daemon()
        sid, _ = self.session(d)
        rt = self.mint(d, sid).json["refresh_token"]
        r1 = d.post("/v1/tokens/refresh", {"refresh_token": rt})
        self.assertStatus(r1, 200)
        self.assertNotEqual(r1.json["refresh_token"], rt)
        r2 = d.post("/v1/tokens/refresh", {"refresh_token": rt})
        self.assertStatus(r2, 200)
        self.assertEqual(r2.json["refresh_token"], r1.json["refresh_token"])
        self.assertEqual(r2.json["access_token"], r1.json["access_token"])
        r3 = d.post("/v1/tokens/refresh", {"refresh_token": r1.json["refresh_token"]})
        self.assertStatus(r3, 200)
        self.assertNotEqual(r3.json["refresh_token"], r1.json["refresh_token"])
        self.assertError(d.post("/v1/tokens/refresh", {"refresh_token": "rt1.x"}), 401,
                         "invalid_token")
        self.assertError(d.post("/v1/tokens/refresh", {"refresh_token": rt[:-2] + "AA"}),
                         401, "invalid_token")
        self.assertError(d.post("/v1/tokens/refresh", {}), 400, "invalid_request")

    def test_refresh_race_one_successor(self):
        d = self.daemon()
        sid, _ = self.session(d)
        rt = self.mint(d, sid).json["refresh_token"]
        results, lock = [], threading.Lock()
        barrier = threading.Barrier(20)

        def go():
            conn = d.connection()
            barrier.wait()
            r = d.post("/v1/tokens/refresh", {"refresh_token": rt}, conn=conn)
            conn.close()
            with lock:
                results.append(r)
        threads = [threading.Thread(target=go) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual([r.status for r in results], [200] * 20)
        self.assertEqual(len({r.json["refresh_token"] for r in results}), 1)
        self.assertEqual(len({r.json["access_token"] for r in results}), 1)

    def test_reuse_after_grace_revokes(self):
        d = self.daemon("tokens.refresh_grace=0")
        sid, handle = self.session(d)
        rt = self.mint(d, sid).json["refresh_token"]
        new = d.post("/v1/tokens/refresh", {"refresh_token": rt}).json["refresh_token"]
        time.sleep(1.1)
        self.assertError(d.post("/v1/tokens/refresh", {"refresh_token": rt}), 401,
                         "invalid_token")
        # The whole session is gone: the cookie, the successor token.
        self.assertInvalid(d.validate(sid), "unknown")
        self.assertError(d.post("/v1/tokens/refresh", {"refresh_token": new}), 401,
                         "invalid_token")
        deadline = time.time() + 10
        while "token_reuse" not in d.stderr_text() and time.time() < deadline:
            time.sleep(0.1)
        log = d.stderr_text()
        self.assertIn("token_reuse", log)
        self.assertIn(handle, log)
        self.assertNotIn(rt.split(".")[2], log)

    def test_destroy_regenerate_revoke_kill_refresh(self):
        d = self.daemon()
        for end in ("destroy", "regenerate", "revoke"):
            sid, handle = self.session(d)
            rt = self.mint(d, sid).json["refresh_token"]
            if end == "destroy":
                d.destroy(sid)
            elif end == "regenerate":
                self.assertStatus(d.regenerate(sid), 200)
            else:
                self.assertStatus(d.delete("/v1/sessions/" + handle), 204)
            self.assertError(d.post("/v1/tokens/refresh", {"refresh_token": rt}), 401,
                             "invalid_token")
            r = d.post("/v1/tokens/introspect", {"token": rt})
            self.assertEqual(r.json, {"active": False}, end)

    def test_introspect(self):
        d = self.daemon()
        sid, handle = self.session(d)
        m = self.mint(d, sid).json
        r = d.post("/v1/tokens/introspect", {"token": m["access_token"]})
        self.assertStatus(r, 200)
        self.assertTrue(r.json["active"])
        self.assertEqual((r.json["sub"], r.json["sid"], r.json["token_type"]),
                         ("alice", handle, "access_token"))
        r = d.post("/v1/tokens/introspect", {"token": m["refresh_token"]})
        self.assertTrue(r.json["active"])
        self.assertEqual(r.json["token_type"], "refresh_token")
        self.assertEqual(r.json["aud"], AUD)
        for junk in ("x", "a.b.c", m["access_token"][:-3] + "AAA"):
            self.assertEqual(d.post("/v1/tokens/introspect", {"token": junk}).json,
                             {"active": False})
        d.destroy(sid)
        for t in (m["access_token"], m["refresh_token"]):
            self.assertEqual(d.post("/v1/tokens/introspect", {"token": t}).json,
                             {"active": False})

    def test_introspect_needs_management_key(self):
        keys = os.path.join(self.make().dir, "api_keys")
        with open(keys, "w") as f:
            f.write("k1 " + "s" * 40 + "\n")
        os.chmod(keys, 0o600)
        d = self.start(api_keys=keys)
        r = d.post("/v1/tokens/introspect", {"token": "x"})
        self.assertEqual(r.status, 401)
        self.assertStatus(d.get("/.well-known/jwks.json"), 200)

    def test_revoke(self):
        d = self.daemon()
        sid, _ = self.session(d)
        rt = self.mint(d, sid).json["refresh_token"]
        self.assertStatus(d.post("/v1/tokens/revoke", {"token": "unknown"}), 200)
        self.assertStatus(d.post("/v1/tokens/revoke", {"token": rt}), 200)
        self.assertError(d.post("/v1/tokens/refresh", {"refresh_token": rt}), 401,
                         "invalid_token")
        self.assertStatus(d.validate(sid), 200)      # the session lives on
        d2 = self.daemon("tokens.revoke_session_with_refresh=true")
        sid2, _ = self.session(d2)
        rt2 = self.mint(d2, sid2).json["refresh_token"]
        self.assertStatus(d2.post("/v1/tokens/revoke", {"token": rt2}), 200)
        self.assertInvalid(d2.validate(sid2), "unknown")

    def test_forward_auth_propagation(self):
        d = self.daemon("forward_auth.token_audience=" + AUD)
        sid, handle = self.session(d, client=LOOPBACK_CLIENT)
        hdrs = {"User-Agent": LOOPBACK_CLIENT["user_agent"]}
        r1 = d.auth("sessiond=" + sid, headers=hdrs)
        self.assertStatus(r1, 200)
        bearer = r1.header("Authorization")
        self.assertTrue(bearer.startswith("Bearer "))
        _, c = jwt_parts(bearer[7:])
        self.assertEqual((c["aud"], c["sid"]), (AUD, handle))
        r2 = d.auth("sessiond=" + sid, headers=hdrs)
        self.assertEqual(r2.header("Authorization"), bearer)   # cached
        d.destroy(sid)
        r3 = d.auth("sessiond=" + sid, headers=hdrs)
        self.assertStatus(r3, 401)                              # revocation wins
        self.assertIsNone(r3.header("Authorization"))

    def test_forward_auth_accept_bearer(self):
        d = self.daemon("forward_auth.token_audience=" + AUD,
                        "forward_auth.accept_bearer=true")
        sid, handle = self.session(d)
        at = self.mint(d, sid).json["access_token"]
        r = d.auth(None, headers={"Authorization": "Bearer " + at})
        self.assertStatus(r, 200)
        self.assertEqual(r.header("X-Session-User"), "alice")
        self.assertEqual(r.header("X-Session-Handle"), handle)
        other = self.mint(d, sid, "other.example").json["access_token"]
        self.assertStatus(d.auth(None, headers={"Authorization": "Bearer " + other}), 401)
        self.assertStatus(d.auth(None, headers={"Authorization": "Bearer junk"}), 401)
        d.destroy(sid)
        self.assertStatus(d.auth(None, headers={"Authorization": "Bearer " + at}), 401)

    def test_production_without_signing_keys_starts(self):
        # Tokens are opt-in outside development: a deployment that only uses
        # sessions must not be refused for lacking a signing key directory.
        d = self.start(env="production")
        self.assertStatus(d.get("/healthz"), 200)
        self.assertEqual(d.get("/.well-known/jwks.json").status, 503)
        sid = d.create_ok()["session_id"]
        self.assertEqual(self.mint(d, sid).status, 503)

    def test_config_rules(self):
        for sets in (("forward_auth.accept_bearer=true",),
                     ("store.failure=tokens_only",),
                     ("tokens.claims=roles,sub",)):
            d = self.make(sets=sets)
            import subprocess
            p = subprocess.run(d.argv() + ["--check-config"], capture_output=True)
            self.assertEqual(p.returncode, 2, sets)

    def test_sighup_reloads_signing_keys(self):
        d = self.daemon("tokens.jwks_max_age=0")
        sigdir = os.path.join(d.dir, "var", "sigkeys")
        sid, _ = self.session(d)
        old = self.mint(d, sid).json["access_token"]
        kid1 = jwt_parts(old)[0]["kid"]
        etag1 = d.get("/.well-known/jwks.json").header("ETag")
        p = harness.sessctl("keys", "generate", "--use", "sig", "--type", "ed25519",
                            "--dir", sigdir)
        self.assertEqual(p.returncode, 0, p.stderr)
        d.signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline and len(d.get("/.well-known/jwks.json").json["keys"]) < 2:
            time.sleep(0.1)
        j = d.get("/.well-known/jwks.json")
        self.assertEqual(len(j.json["keys"]), 2)      # next: published, not signing
        self.assertNotEqual(j.header("ETag"), etag1)
        self.assertEqual(jwt_parts(self.mint(d, sid).json["access_token"])[0]["kid"], kid1)
        p = harness.sessctl("keys", "rotate", "--use", "sig", "--max-age", "0",
                            "--dir", sigdir)
        self.assertEqual(p.returncode, 0, p.stderr)
        d.signal(signal.SIGHUP)
        deadline = time.time() + 10
        kid2 = kid1
        while time.time() < deadline and kid2 == kid1:
            kid2 = jwt_parts(self.mint(d, sid).json["access_token"])[0]["kid"]
            time.sleep(0.1)
        self.assertNotEqual(kid2, kid1)
        # A token signed before the rotation still introspects as active.
        self.assertTrue(d.post("/v1/tokens/introspect", {"token": old}).json["active"])


if __name__ == "__main__":
    harness.main()
