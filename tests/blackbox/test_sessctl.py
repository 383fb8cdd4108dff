"""test_sessctl.py - the command-line tool against a real sessiond:
--version, sessions list / revoke / revoke-user, keys generate / list."""

import glob
import os
import re
import stat
import tempfile

import harness
from harness import SessiondTestCase, sessctl


class SessctlAdminTest(SessiondTestCase):

    def setUp(self):
        self.d = self.start()
        self.url = "http://127.0.0.1:%d" % self.d.port

    def ctl(self, *args):
        return sessctl("--url", self.url, *args)

    def assertNoSecrets(self, text):
        self.d.assert_no_ids_in(text, "sessctl output")

    def test_version_and_help(self):
        r = sessctl("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"\d+\.\d+\.\d+")
        r = sessctl("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        for word in ("sessions", "keys"):
            self.assertIn(word, r.stdout)
        r = sessctl("no-such-command")
        self.assertNotEqual(r.returncode, 0)

    def test_sessions_list(self):
        made = [self.d.create_ok("dave", client={"ip": "198.51.100.%d" % (i + 1),
                                                  "user_agent": "UA-%d" % i})
                for i in range(2)]
        other = self.d.create_ok("erin")
        r = self.ctl("sessions", "list", "dave")
        self.assertEqual(r.returncode, 0, r.stderr)
        for m in made:
            self.assertIn(m["handle"], r.stdout)
        self.assertIn("198.51.100.1", r.stdout)
        self.assertNotIn(other["handle"], r.stdout)
        self.assertNoSecrets(r.stdout + r.stderr)
        r = self.ctl("sessions", "list", "nobody")
        self.assertEqual(r.returncode, 0, r.stderr)
        for m in made:
            self.assertNotIn(m["handle"], r.stdout)

    def test_revoke_handle(self):
        a = self.d.create_ok("dave")
        b = self.d.create_ok("dave")
        r = self.ctl("sessions", "revoke", a["handle"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertError(self.d.validate(a["session_id"]), 401, "invalid_session")
        self.assertStatus(self.d.validate(b["session_id"]), 200)
        r = self.ctl("sessions", "revoke", a["handle"])
        self.assertNotEqual(r.returncode, 0, "revoking an unknown handle must fail")
        self.assertNoSecrets(r.stdout + r.stderr)
        # The short form of the brief: sessctl revoke HANDLE.
        r = self.ctl("revoke", b["handle"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertError(self.d.validate(b["session_id"]), 401, "invalid_session")

    def test_handle_starting_with_dash_is_an_argument(self):
        # Handles are base64url: about one in 32 starts with '-'.  It must
        # reach the server (unknown handle: exit 1), not be read as an
        # option (usage error: exit 2).
        for h in ("-AAAAAAAAAAAAAAAAAAAAA", "--AAAAAAAAAAAAAAAAAAAA"):
            r = self.ctl("revoke", h)
            self.assertEqual(r.returncode, 1, r.stderr)
        r = self.ctl("revoke-user", "--", "-bob")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_revoke_user(self):
        made = [self.d.create_ok("dave") for _ in range(3)]
        keep = self.d.create_ok("erin")
        r = self.ctl("sessions", "revoke-user", "dave")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("3", r.stdout, "revoke-user should say how many were revoked")
        for m in made:
            self.assertError(self.d.validate(m["session_id"]), 401, "invalid_session")
        self.assertStatus(self.d.validate(keep["session_id"]), 200)
        self.assertNoSecrets(r.stdout + r.stderr)
        # The short form: sessctl revoke-user USER.
        more = [self.d.create_ok("frank") for _ in range(2)]
        r = self.ctl("revoke-user", "frank")
        self.assertEqual(r.returncode, 0, r.stderr)
        for m in more:
            self.assertError(self.d.validate(m["session_id"]), 401, "invalid_session")

    def test_unreachable_daemon(self):
        r = sessctl("--url", "http://127.0.0.1:1", "sessions", "list", "dave")
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(r.stderr.strip(), "a failure says why on stderr")


class SessctlKeysTest(SessiondTestCase):

    def test_keys_generate_and_list(self):
        base = tempfile.mkdtemp(prefix="sessctl-keys-")
        self.addCleanup(__import__("shutil").rmtree, base, True)
        kd = os.path.join(base, "keys")
        r = sessctl("keys", "generate", "--dir", kd)
        self.assertEqual(r.returncode, 0, r.stderr)
        files = glob.glob(os.path.join(kd, "*.key"))
        self.assertEqual(len(files), 1, os.listdir(kd))
        mode = stat.S_IMODE(os.stat(files[0]).st_mode)
        self.assertEqual(mode, 0o600, "key file mode %o" % mode)
        dmode = stat.S_IMODE(os.stat(kd).st_mode)
        self.assertEqual(dmode & 0o077, 0, "key directory is open to others: %o" % dmode)
        r2 = sessctl("keys", "generate", "--dir", kd)
        self.assertEqual(r2.returncode, 0, r2.stderr)
        files = sorted(glob.glob(os.path.join(kd, "*.key")))
        self.assertEqual(len(files), 2)
        kids = [os.path.basename(f)[:-4] for f in files]
        secrets = []
        for f in files:
            with open(f) as fh:
                secrets.append(fh.read().strip())
            self.assertEqual(stat.S_IMODE(os.stat(f).st_mode), 0o600)
        for s in secrets:
            self.assertRegex(s, r"^[0-9a-fA-F]{64}$")
        r = sessctl("keys", "list", "--dir", kd)
        self.assertEqual(r.returncode, 0, r.stderr)
        for k in kids:
            self.assertIn(k, r.stdout, "keys list must print every key id")
        out = (r.stdout + r.stderr + r2.stdout + r2.stderr).lower()
        for s in secrets:
            self.assertNotIn(s.lower(), out, "key bytes printed")
            self.assertNotIn(s.lower()[:16], out, "part of the key bytes printed")
        # A daemon loads the generated keys (production refuses to invent any).
        d = self.make(env="production", keys=False)
        d.keys_dir = kd
        d.start()
        j = d.create_ok("alice")
        self.assertStatus(d.validate(j["session_id"]), 200)

    def test_daemon_refuses_key_file_open_to_others(self):
        base = tempfile.mkdtemp(prefix="sessctl-keys-")
        self.addCleanup(__import__("shutil").rmtree, base, True)
        kd = os.path.join(base, "keys")
        self.assertEqual(sessctl("keys", "generate", "--dir", kd).returncode, 0)
        f = glob.glob(os.path.join(kd, "*.key"))[0]
        os.chmod(f, 0o644)
        d = self.make(env="production", keys=False)
        d.keys_dir = kd
        import subprocess
        p = subprocess.run(d.argv(), capture_output=True, text=True, timeout=15)
        self.assertEqual(p.returncode, 2, "a key readable by others must be refused: %s"
                         % p.stderr[-1000:])
        with open(f) as fh:
            self.assertNotIn(fh.read().strip(), p.stderr)


if __name__ == "__main__":
    harness.main()
