"""test_cookies.py - the cookie policy from outside (docs/api.md "Cookie policy and
consent", docs/cookies.md), on the demo shop's own catalogue
(examples/shop/sessiond.ini): the policy matrix per environment, the signed
consent cookie (tampered, outdated policy version), withdrawal deleting the
withdrawn categories' cookies, POST /v1/cookies/set (404 unknown_cookie, 403
consent_required, 400 for values that cannot be a cookie), X-Cookie-Consent
from forward-auth, and start-up refusal of catalogues that break RFC 6265bis."""

import os
import signal
import subprocess
import tempfile
import time

import harness
from harness import LOOPBACK_CLIENT, SessiondTestCase, cookie_value, cookie_attrs

HERE = os.path.dirname(os.path.abspath(__file__))
SHOP_INI = os.path.normpath(os.path.join(HERE, "..", "..", "examples", "shop", "sessiond.ini"))


def cookies_of(policy):
    return {c["name"]: (cat["name"], c) for cat in policy["categories"] for c in cat["cookies"]}


class CookiePolicyTest(SessiondTestCase):

    def setUp(self):
        self.d = self.start(config=SHOP_INI)

    def consent(self, categories, previous=None, d=None, cookie_header=None):
        body = {"categories": categories}
        if previous is not None:
            body["consent"] = previous
        headers = {"Cookie": cookie_header} if cookie_header else None
        r = (d or self.d).post("/v1/cookies/consent", body, headers=headers)
        self.assertStatus(r, 200)
        return r.json

    def set_cookie(self, name, value, consent=None, d=None, cookie_header=None):
        body = {"name": name, "value": value}
        if consent is not None:
            body["consent"] = consent
        headers = {"Cookie": cookie_header} if cookie_header else None
        return (d or self.d).post("/v1/cookies/set", body, headers=headers)

    # ---- the matrix ------------------------------------------------------

    def test_policy_matrix_development(self):
        r = self.d.get("/v1/cookies/policy")
        self.assertStatus(r, 200)
        p = r.json
        self.assertEqual(p["environment"], "development")
        self.assertRegex(p["version"], r"^[0-9a-f]{16}$")
        self.assertEqual([c["name"] for c in p["categories"]],
                         ["essential", "functional", "analytics", "marketing"])
        self.assertEqual([c["consent_required"] for c in p["categories"]],
                         [False, True, True, True])
        cs = cookies_of(p)
        self.assertEqual(cs["sessiond"][0], "essential", "the session cookie is in the policy")
        self.assertEqual(cs["cart_id"][0], "essential")
        self.assertEqual(cs["cart_id"][1]["retention"], "7 days")
        self.assertEqual(cs["user_prefs"][0], "functional")
        self.assertEqual(cs["user_prefs"][1]["retention"], "1 year")
        self.assertFalse(cs["user_prefs"][1]["attributes"]["http_only"],
                         "user_prefs is readable by JavaScript")
        self.assertTrue(cs["sessiond"][1]["attributes"]["http_only"])
        for n in ("_ga", "_gid"):
            self.assertEqual(cs[n][0], "analytics")
        self.assertEqual(cs["_fbp"][0], "marketing")
        self.assertEqual(cs[p["consent_cookie"]][0], "essential")
        for name, (_, c) in cs.items():
            self.assertFalse(c["attributes"]["secure"], "no Secure over http: %s" % name)
            self.assertTrue(c["purpose"], name)
        self.assertIsNone(p["consent"])

    def test_policy_matrix_production(self):
        d = self.start(config=SHOP_INI, env="production")
        p = d.get("/v1/cookies/policy").json
        self.assertEqual(p["environment"], "production")
        cs = cookies_of(p)
        self.assertIn("__Host-sessiond", cs)
        self.assertEqual(p["consent_cookie"], "__Host-sessiond_consent")
        for name, (_, c) in cs.items():
            self.assertTrue(c["attributes"]["secure"], "Secure in production: %s" % name)
            self.assertEqual(c["attributes"]["path"], "/")
        v = self.consent(["functional"], d=d)["set_cookie"]
        self.assertTrue(v.startswith("__Host-sessiond_consent="), v)
        attrs = cookie_attrs(v)
        self.assertIn("secure", attrs)
        r = self.set_cookie("cart_id", "c123", d=d)
        self.assertStatus(r, 200)
        self.assertIn("Secure", r.json["set_cookie"])

    # ---- consent ---------------------------------------------------------

    def test_consent_cookie_and_set(self):
        # Essential cookies need no consent.
        r = self.set_cookie("cart_id", "c-42")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["set_cookie"],
                         "cart_id=c-42; Path=/; Max-Age=604800; HttpOnly; SameSite=Lax")
        # Analytics without consent: 403 consent_required.
        r = self.set_cookie("_ga", "GA1.1.1")
        self.assertError(r, 403, "consent_required")
        j = self.consent(["analytics"])
        self.assertEqual(j["categories"], ["essential", "analytics"])
        self.assertEqual(j["delete"], [], "a first answer deletes nothing")
        name, value = cookie_value(j["set_cookie"])
        self.assertEqual(name, "sessiond_consent")
        self.assertRegex(value, r"^c1\.[A-Za-z0-9_-]+\.[0-9a-f]{16}\.\d+\.[0-9a-f]\.[A-Za-z0-9_-]{43}$")
        # With consent, passed in the body or through the Cookie header.
        r = self.set_cookie("_ga", "GA1.1.1", consent=value)
        self.assertStatus(r, 200)
        self.assertTrue(r.json["set_cookie"].startswith("_ga=GA1.1.1; Path=/; Max-Age=34560000"))
        r = self.set_cookie("_gid", "GA1.1.2", cookie_header="a=b; sessiond_consent=" + value)
        self.assertStatus(r, 200)
        # Marketing was not granted.
        self.assertError(self.set_cookie("_fbp", "fb.1", consent=value), 403, "consent_required")
        p = self.d.get("/v1/cookies/policy", headers={"Cookie": "sessiond_consent=" + value}).json
        self.assertEqual(p["consent"], {"status": "valid", "categories": ["essential", "analytics"]})

    def test_tampered_consent_counts_as_none(self):
        value = cookie_value(self.consent(["analytics", "marketing"])["set_cookie"])[1]
        parts = value.split(".")
        forged = [
            ".".join(parts[:4] + ["f"] + parts[5:]),          # categories raised
            ".".join(parts[:3] + [str(int(parts[3]) + 1)] + parts[4:]),
            value[:-1] + ("A" if value[-1] != "A" else "B"),
            ".".join(parts[:1] + ["otherkid"] + parts[2:]),
            value + "x", "", "c1", "garbage;", "c1." * 60,
        ]
        for f in forged:
            r = self.set_cookie("_ga", "GA1", consent=f)
            self.assertError(r, 403, "consent_required")
            p = self.d.get("/v1/cookies/policy",
                           headers={"Cookie": "sessiond_consent=" + f}).json
            if p["consent"] is not None:
                self.assertEqual(p["consent"]["status"], "invalid", f)
                self.assertEqual(p["consent"]["categories"], ["essential"])
        # Essential cookies stay settable whatever the consent cookie holds.
        self.assertStatus(self.set_cookie("cart_id", "c1", consent=forged[0]), 200)

    def test_withdrawal_deletes(self):
        j = self.consent(["functional", "analytics", "marketing"])
        value = cookie_value(j["set_cookie"])[1]
        j = self.consent(["functional"], previous=value)
        deleted = {cookie_value(c)[0]: c for c in j["delete"]}
        self.assertEqual(set(deleted), {"_ga", "_gid", "_fbp"})
        for c in deleted.values():
            self.assertIn("Max-Age=0", c)
            self.assertIn("Path=/", c)
        # The same through the Cookie header, withdrawing functional too.
        value = cookie_value(j["set_cookie"])[1]
        j = self.consent([], cookie_header="sessiond_consent=" + value)
        self.assertEqual([cookie_value(c)[0] for c in j["delete"]], ["user_prefs"])
        self.assertEqual(j["categories"], ["essential"])
        # A consent cookie that cannot be read may stand for anything: every
        # category not granted is cleaned up.
        j = self.consent(["analytics"], previous="tampered")
        self.assertEqual({cookie_value(c)[0] for c in j["delete"]}, {"user_prefs", "_fbp"})

    def test_outdated_policy_version(self):
        d1 = self.start(config=SHOP_INI, sets=["cookie_policy.version=2026-11"])
        value = cookie_value(self.consent(["analytics"], d=d1)["set_cookie"])[1]
        self.assertStatus(self.set_cookie("_ga", "GA1", consent=value, d=d1), 200)
        d1.stop()
        # Same keys and store, new policy version: the old answer is void.
        d2 = self.start(config=SHOP_INI, dir=d1.dir, sets=["cookie_policy.version=2026-12"])
        self.assertError(self.set_cookie("_ga", "GA1", consent=value, d=d2), 403,
                         "consent_required")
        p = d2.get("/v1/cookies/policy", headers={"Cookie": "sessiond_consent=" + value}).json
        self.assertEqual(p["version"], "2026-12")
        self.assertEqual(p["consent"]["status"], "outdated")
        # Withdrawing from an outdated answer still deletes what it granted.
        j = self.consent([], previous=value, d=d2)
        self.assertEqual({cookie_value(c)[0] for c in j["delete"]}, {"_ga", "_gid"})
        # The hash version moves with the catalogue itself.
        v_before = self.d.get("/v1/cookies/policy").json["version"]
        with open(SHOP_INI) as src:
            text = src.read()
        with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as f:
            f.write(text.replace("Remembers your language and theme.",
                                                  "Remembers your language, theme and currency."))
        self.addCleanup(os.unlink, f.name)
        d3 = self.start(config=f.name)
        self.assertNotEqual(d3.get("/v1/cookies/policy").json["version"], v_before)

    def test_set_refusals(self):
        self.assertError(self.set_cookie("tracker", "x"), 404, "unknown_cookie")
        self.assertError(self.set_cookie("CART_ID", "x"), 404, "unknown_cookie")
        for bad in ("a;b", "a b", "a,b", 'a"b', "a\\b", "caf\u00e9", "a\r\nSet-Cookie: x=y"):
            self.assertError(self.set_cookie("cart_id", bad), 400, "invalid_value")
        self.assertError(self.set_cookie("cart_id", "v" * 4090), 400, "invalid_value")
        self.assertStatus(self.set_cookie("cart_id", "v" * (4096 - len("cart_id"))), 200)
        self.assertError(self.set_cookie("sessiond", "x"), 403, "forbidden")
        self.assertError(self.set_cookie("sessiond_consent", "x"), 403, "forbidden")
        for body in ({}, {"name": 1, "value": "x"}, {"name": "cart_id"},
                     {"name": "_ga", "value": "x", "consent": 5}):
            self.assertError(self.d.post("/v1/cookies/set", body), 400)
        for body in ({}, {"categories": "analytics"}, {"categories": ["tracking"]},
                     {"categories": [1]}, {"categories": ["analytics"] * 17}):
            self.assertError(self.d.post("/v1/cookies/consent", body), 400)
        r = self.d.request("POST", "/v1/cookies/consent", raw=b'{"categories": [}',
                           headers={"Content-Type": "application/json"})
        self.assertError(r, 400)
        r = self.d.request("POST", "/v1/cookies/consent",
                           raw=b'{"categories": [], "categories": ["marketing"]}',
                           headers={"Content-Type": "application/json"})
        self.assertError(r, 400)

    def test_key_rotation_keeps_consent(self):
        old = cookie_value(self.consent(["analytics"])["set_cookie"])[1]
        old_kid = old.split(".")[1]
        harness.generate_key(self.d.keys_dir)
        self.d.signal(signal.SIGHUP)
        # The reload is asynchronous: wait (generously) until a new consent
        # is signed with the new key.
        deadline = time.monotonic() + 10
        new = old
        while time.monotonic() < deadline:
            new = cookie_value(self.consent(["analytics"])["set_cookie"])[1]
            if new.split(".")[1] != old_kid:
                break
            time.sleep(0.1)
        self.assertNotEqual(new.split(".")[1], old_kid, "the newest key signs after SIGHUP")
        # The old key is still in the directory: its consent still verifies.
        self.assertStatus(self.set_cookie("_ga", "GA1", consent=old), 200)
        self.assertStatus(self.set_cookie("_ga", "GA1", consent=new), 200)
        # Without the old key file (after a restart), the old consent is void.
        self.d.stop()
        os.remove(os.path.join(self.d.keys_dir, old_kid + ".key"))
        self.d.start()
        self.assertError(self.set_cookie("_ga", "GA1", consent=old), 403, "consent_required")
        self.assertStatus(self.set_cookie("_ga", "GA1", consent=new), 200)

    # ---- forward-auth ----------------------------------------------------

    def test_forward_auth_consent_header(self):
        s = self.d.create_ok("alice", client=LOOPBACK_CLIENT)
        sc = "sessiond=" + s["session_id"]
        r = self.d.auth(sc)
        self.assertStatus(r, 200)
        self.assertEqual(r.header("X-Cookie-Consent"), "essential")
        value = cookie_value(self.consent(["functional", "marketing"])["set_cookie"])[1]
        r = self.d.auth(sc + "; sessiond_consent=" + value)
        self.assertEqual(r.header("X-Cookie-Consent"), "essential,functional,marketing")
        r = self.d.auth("sessiond_consent=%s; %s" % (value[:-2] + "AA", sc))
        self.assertStatus(r, 200)
        self.assertEqual(r.header("X-Cookie-Consent"), "essential", "tampered: essential only")
        # No session: 401 and no consent header either.
        r = self.d.auth("sessiond_consent=" + value)
        self.assertStatus(r, 401)
        self.assertIsNone(r.header("X-Cookie-Consent"))


class CatalogueConfigTest(SessiondTestCase):
    """Start-up refusal: exit 2, the message names the cookie and the rule."""

    CASES = [
        ("samesite_none", "[cookies.x]\ncategory = analytics\npurpose = p\nsame_site = None\n",
         "cookies.x in development: same_site: None requires secure"),
        ("host_domain", "[cookies.__Host-x]\ncategory = essential\npurpose = p\nsecure = true\n"
         "domain = shop.example\n", "cookies.__Host-x in development: domain"),
        ("host_path", "[cookies.__Host-x]\ncategory = essential\npurpose = p\nsecure = true\n"
         "path = /a\n", "path: must be /"),
        ("secure_prefix", "[cookies.__Secure-x]\ncategory = essential\npurpose = p\n",
         "__Secure- prefix requires secure"),
        ("max_age", "[cookies.x]\ncategory = analytics\npurpose = p\nmax_age = 34560001\n",
         "400 days"),
        ("category", "[cookies.x]\ncategory = tracking\npurpose = p\n", "cookies.x.category"),
        ("no_category", "[cookies.x]\npurpose = p\n", "category is missing"),
        ("name", "[cookies.a(b]\ncategory = analytics\npurpose = p\n", "cookie name"),
        ("unknown_key", "[cookies.x]\ncategory = analytics\npurpose = p\ncolour = red\n",
         "unknown key"),
        ("session_name", "[cookies.sessiond]\ncategory = essential\npurpose = p\n",
         "session cookie"),
        ("prod_only", "[cookies.x]\ncategory = analytics\npurpose = p\nsame_site = None\n"
         "secure = true\nproduction.secure = false\n", "in production"),
    ]

    def test_refused_at_start(self):
        tmp = tempfile.mkdtemp(prefix="sessiond-cat-")
        self.addCleanup(subprocess.run, ["rm", "-rf", tmp])
        for name, text, needle in self.CASES:
            path = os.path.join(tmp, name + ".ini")
            with open(path, "w") as f:
                f.write(text)
            p = subprocess.run([harness.SESSIOND, "--config", path, "--keys",
                                os.path.join(tmp, "keys"), "--check-config"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, "%s: %s" % (name, p.stderr))
            self.assertIn(needle, p.stderr, name)
        p = subprocess.run([harness.SESSIOND, "--config", SHOP_INI, "--keys",
                            os.path.join(tmp, "keys"), "--env", "production",
                            "--check-config"], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    harness.main()
