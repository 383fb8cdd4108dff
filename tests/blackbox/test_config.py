"""test_config.py - the command line and configuration of docs/api.md: --check-config
(0 or 2, naming the key), bad values and profiles refused at start-up with exit
2, precedence flag > environment > file > default, --version and --help."""

import os
import subprocess
import time

import harness
from harness import Sessiond, SessiondTestCase

GOOD_INI = """\
; a complete, valid configuration
[server]
max_body_bytes = 32768
threads = 2

[store]
durability = process

[session]
idle_timeout = 600
absolute_timeout = 7200
rotate_interval = 120
rotation_grace = 10
max_per_user = 5
limit_policy = deny

[binding]
ip_prefix_v4 = 16
ip_prefix_v6 = 48
user_agent = false
action = log
trusted_proxies = 10.0.0.0/8, 127.0.0.1/32

[csrf]
enabled = true

[log]
level = info
format = json
"""


free_port = harness.free_port


class ConfigTest(SessiondTestCase):

    def setUp(self):
        self.base = self.make()     # only for its directory and its argv
        os.makedirs(self.base.keys_dir, mode=0o700, exist_ok=True)
        harness.write_key(self.base.keys_dir)

    def write(self, name, text):
        path = os.path.join(self.base.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_d(self, *args, env=None, timeout=15):
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("SESSIOND_"):
                del e[k]
        e.update(env or {})
        return subprocess.run([harness.SESSIOND] + list(args), capture_output=True,
                              text=True, timeout=timeout, cwd=self.base.dir, env=e)

    def common(self):
        return ["--store", self.base.store_url, "--keys", self.base.keys_dir]

    def check_config(self, *extra, env=None):
        return self.run_d(*(self.common() + ["--listen", "127.0.0.1:0"] + list(extra)
                            + ["--check-config"]), env=env)

    def assertRefused(self, p, *names):
        self.assertEqual(p.returncode, 2, "want exit 2; stdout=%r stderr=%r"
                         % (p.stdout[-500:], p.stderr[-1500:]))
        msg = (p.stderr + p.stdout).lower()
        self.assertTrue(any(n.lower() in msg for n in names),
                        "the message must name %s: %r" % (" or ".join(names), msg[-1500:]))
        self.assertNotIn("listening on", msg)

    def test_check_config_good_file(self):
        p = self.check_config("--config", self.write("good.ini", GOOD_INI))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("listening on", p.stderr)
        # An empty file is valid too (everything default).
        p = self.check_config("--config", self.write("empty.ini", ""))
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_check_config_bad_files(self):
        bad = {
            "unknown key": ("[session]\nbogus_key = 1\n", ["bogus_key"]),
            "unknown section": ("[nosuchsection]\nx = 1\n", ["nosuchsection"]),
            "idle_timeout=abc": ("[session]\nidle_timeout = abc\n", ["idle_timeout"]),
            "negative timeout": ("[session]\nabsolute_timeout = -5\n", ["absolute_timeout"]),
            "limit_policy": ("[session]\nlimit_policy = maybe\n", ["limit_policy"]),
            "binding.action": ("[binding]\naction = allow\n", ["action"]),
            "ip_prefix_v4 > 32": ("[binding]\nip_prefix_v4 = 33\n", ["ip_prefix_v4"]),
            "trusted_proxies": ("[binding]\ntrusted_proxies = not-a-cidr\n",
                                ["trusted_proxies"]),
            "max_body_bytes": ("[server]\nmax_body_bytes = lots\n", ["max_body_bytes"]),
            "durability": ("[store]\ndurability = sometimes\n", ["durability"]),
            "same_site": ("[cookie]\nsame_site = Sometimes\n", ["same_site"]),
            "bool": ("[csrf]\nenabled = perhaps\n", ["enabled"]),
            "log.format": ("[log]\nformat = xml\n", ["format"]),
            "no section": ("idle_timeout = 5\n", ["idle_timeout", "section"]),
        }
        for what, (text, names) in bad.items():
            with self.subTest(what):
                p = self.check_config("--config", self.write("bad.ini", text))
                self.assertRefused(p, *names)

    def test_bad_values_refused_at_startup(self):
        # Not only --check-config: a real start refuses them too, with exit 2.
        cases = [
            (["--set", "session.idle_timeout=abc"], ["idle_timeout"]),
            (["--set", "session.nope=1"], ["nope"]),
            (["--set", "noequals"], ["noequals", "--set"]),
            (["--config", self.write("bad.ini", "[session]\nbogus_key = 1\n")], ["bogus_key"]),
            (["--env", "moon"], ["env", "moon"]),
            (["--bogus-flag"], ["bogus-flag"]),
            (["--config", os.path.join(self.base.dir, "missing.ini")], ["missing.ini"]),
        ]
        for args, names in cases:
            with self.subTest(" ".join(args)):
                p = self.run_d(*(self.common() + ["--listen", "127.0.0.1:0"] + args))
                self.assertRefused(p, *names)
        p = self.run_d(*(self.common() + ["--listen", "127.0.0.1:99999"]))
        self.assertRefused(p, "listen", "99999")

    def test_invalid_cookie_profiles_in_production(self):
        p = self.check_config("--env", "production", "--set", "cookie.same_site=None",
                              "--set", "cookie.secure=false")
        self.assertRefused(p, "same_site", "samesite", "secure")
        p = self.run_d(*(self.common() + ["--listen", "127.0.0.1:0", "--env", "production",
                                          "--set", "cookie.same_site=None",
                                          "--set", "cookie.secure=false"]))
        self.assertRefused(p, "same_site", "samesite", "secure")
        # __Host- with a Domain attribute.
        p = self.check_config("--env", "production", "--set", "cookie.domain=example.com")
        self.assertRefused(p, "domain", "__host-")
        # The production defaults themselves are fine.
        p = self.check_config("--env", "production")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_production_needs_existing_keys(self):
        missing = os.path.join(self.base.dir, "no-keys")
        p = self.run_d("--listen", "127.0.0.1:0", "--store", self.base.store_url,
                       "--keys", missing, "--env", "production")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(p.returncode, (1, 2))
        self.assertIn("key", (p.stderr + p.stdout).lower())
        self.assertFalse(os.path.exists(missing), "production must not invent keys")

    def test_precedence(self):
        p_file, p_env = free_port(), free_port()
        ini = self.write("p.ini", "[server]\nlisten = 127.0.0.1:%d\n[session]\n"
                         "idle_timeout = 200\n" % p_file)
        d = self.make(config=ini, listen=None, keys=False)
        d.keys_dir = self.base.keys_dir
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}

        def started_port(environ, listen, sets=()):
            d.environ = environ
            d.listen = listen
            d.sets = list(sets)
            d.start()
            port = d.port
            j = d.create_ok("alice")
            idle = j["idle_expires_at"] - int(time.time())
            d.stop()
            return port, idle

        # file only
        port, idle = started_port(env, None)
        self.assertEqual(port, p_file, "listen from the config file")
        self.assertAlmostEqual(idle, 200, delta=3)
        # environment beats file
        e2 = dict(env, SESSIOND_LISTEN="127.0.0.1:%d" % p_env,
                  SESSIOND_SESSION_IDLE_TIMEOUT="300")
        port, idle = started_port(e2, None)
        self.assertEqual(port, p_env, "SESSIOND_LISTEN beats the file")
        self.assertAlmostEqual(idle, 300, delta=3,
                               msg="SESSIOND_SESSION_IDLE_TIMEOUT beats the file")
        # flags beat environment
        port, idle = started_port(e2, "127.0.0.1:0", ["session.idle_timeout=100"])
        self.assertNotIn(port, (p_env, p_file), "--listen beats SESSIOND_LISTEN")
        self.assertAlmostEqual(idle, 100, delta=3, msg="--set beats the environment")
        # --check-config sees the same precedence
        p = self.run_d("--config", ini, "--store", self.base.store_url, "--keys",
                       self.base.keys_dir, "--check-config",
                       env=dict(SESSIOND_SESSION_IDLE_TIMEOUT="abc"))
        self.assertRefused(p, "idle_timeout")
        p = self.run_d("--config", ini, "--store", self.base.store_url, "--keys",
                       self.base.keys_dir, "--check-config", "--set",
                       "session.idle_timeout=50", env=dict(SESSIOND_SESSION_IDLE_TIMEOUT="300"))
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_env_selects_environment(self):
        d = self.make(environ={k: v for k, v in os.environ.items()
                               if not k.startswith("SESSIOND_")})
        d.environ["SESSIOND_ENV"] = "production"
        d.keys_dir = self.base.keys_dir
        d.start()
        sc = d.create_ok("alice")["set_cookie"]
        self.assertTrue(sc.startswith("__Host-"), "SESSIOND_ENV=production: " + sc)
        self.assertIn("secure", sc.lower())

    def test_version_and_help(self):
        p = self.run_d("--version")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"\d+\.\d+\.\d+")
        self.assertIn("sessiond", p.stdout.lower())
        p = self.run_d("--help")
        self.assertEqual(p.returncode, 0, p.stderr)
        for word in ("--listen", "--store", "--config", "--env", "--keys", "--set",
                     "--check-config", "idle_timeout"):
            self.assertIn(word, p.stdout, "--help does not mention " + word)


if __name__ == "__main__":
    harness.main()
