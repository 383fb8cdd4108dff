"""test_faults.py - faults that must degrade, not fail (the LMDB store).

A full store (its map kept at the 1 MiB minimum, so it fills for real):
validate and forward-auth still answer 200 for a session due for rotation,
without rotating it (no successor, no Set-Cookie), regenerate fails closed
with 503, and the log counts the deferred rotations without an ID.

A damaged store: a truncated data.mdb or a 0-byte one where a store existed
is refused at start (exit 1, a message naming the file and the sizes,
no SIGBUS) unless store.on_damage says otherwise.

Keys: a key file whose bytes changed under the same key id is refused at
SIGHUP (old sessions stay valid, the log names the id), an all-zero key is
refused at start and at reload."""

import os
import signal
import subprocess
import time

import harness
from harness import LOOPBACK_CLIENT, SessiondTestCase

WAIT = 30.0   # generous bound on waiting for a log line


def wait_for(pred, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


class FullStoreTest(SessiondTestCase):

    def test_full_store_validates_without_rotation(self):
        d = self.start(sets=["store.map_size=1048576", "session.max_per_user=0",
                             "session.rotate_interval=2", "session.rotation_grace=1",
                             "store.record_cache=0"])
        s = d.create_ok("alice", client=LOOPBACK_CLIENT)
        pad = {"pad": "x" * 200}
        n = 0
        while True:
            r = d.create("filler-%d" % n, client=LOOPBACK_CLIENT, data=pad)
            if r.status != 201:
                break
            n += 1
            self.assertLess(n, 100000, "the store never filled")
        self.assertEqual(r.status, 503, r)
        time.sleep(2.5)   # alice is now due for rotation

        r = d.validate(s["session_id"], client=LOOPBACK_CLIENT)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["handle"], s["handle"])
        self.assertNotIn("rotated", r.json, "a successor that was never stored")
        cookie = "sessiond=%s" % s["session_id"]
        r = d.auth(cookie)
        self.assertStatus(r, 200)
        self.assertEqual(r.header("X-Session-User"), "alice")
        self.assertEqual(r.header_all("Set-Cookie"), [], "no Set-Cookie without rotation")
        self.assertIsNone(r.header("X-Session-Rotated"))

        # A privilege change fails closed, and the old session is unchanged.
        r = d.regenerate(s["session_id"], client=LOOPBACK_CLIENT, elevated=True)
        self.assertStatus(r, 503)
        r = d.validate(s["session_id"], client=LOOPBACK_CLIENT)
        self.assertStatus(r, 200)
        self.assertFalse(r.json.get("elevated"), r.json)

        r = d.get("/metrics")
        self.assertStatus(r, 200)
        self.assertRegex(r.body.decode(), r"sessiond_rotations_deferred_total [1-9]")
        self.assertTrue(wait_for(lambda: b"rotations deferred" in d.stderr_all),
                        "no log line for the deferred rotations:\n" + d.stderr_text()[-2000:])


def run_to_exit(d, timeout=60):
    """Start d's binary with its arguments and wait for it to exit (it must
    refuse to start); returns (exit status, stderr text)."""
    p = subprocess.run(d.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, cwd=d.dir, timeout=timeout)
    return p.returncode, p.stderr.decode(errors="replace")


class KeyPinTest(SessiondTestCase):

    def wait_log(self, d, text, count=1):
        ok = wait_for(lambda: d.stderr_all.count(text.encode()) >= count)
        self.assertTrue(ok, "no %r in the log:\n%s" % (text, d.stderr_text()[-3000:]))

    def test_changed_key_bytes_refused_at_reload(self):
        d = self.make(env="production")
        d.start()
        s = d.create_ok("alice")
        kid = sorted(f for f in os.listdir(d.keys_dir) if f.endswith(".key"))[0][:-4]
        path = os.path.join(d.keys_dir, kid + ".key")
        with open(path, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        d.signal(signal.SIGHUP)
        self.wait_log(d, "key reload failed")
        text = d.stderr_text()
        self.assertIn(kid, text, "the log names the key id")
        self.assertNotIn("reloaded 1 record keys", text)
        with open(path) as f:
            self.assertNotIn(f.read().strip(), text, "never the key")
        self.assertStatus(d.validate(s["session_id"]), 200)

    def test_all_zero_key_refused_at_start_and_reload(self):
        d = self.make(env="production")
        # At start: exit 2 (a configuration error) naming the key.
        with open(os.path.join(d.keys_dir, "zzz.key"), "w") as f:
            f.write("0" * 64 + "\n")
        os.chmod(os.path.join(d.keys_dir, "zzz.key"), 0o600)
        rc, err = run_to_exit(d)
        self.assertEqual(rc, 2, err)
        self.assertIn("'zzz'", err)
        self.assertIn("not a random key", err)
        os.unlink(os.path.join(d.keys_dir, "zzz.key"))
        # At reload: refused, the old keys stay in force.
        d.start()
        s = d.create_ok("alice")
        fd = os.open(os.path.join(d.keys_dir, "zzz.key"), os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"0" * 64 + b"\n")
        os.close(fd)
        d.signal(signal.SIGHUP)
        self.wait_log(d, "key reload failed")
        self.assertIn("not a random key", d.stderr_text())
        self.assertStatus(d.validate(s["session_id"]), 200)
        s2 = d.create_ok("bob")
        self.assertStatus(d.validate(s2["session_id"]), 200)


if __name__ == "__main__":
    harness.main()
