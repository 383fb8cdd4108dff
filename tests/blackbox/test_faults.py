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

import hashlib
import os
import signal
import struct
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


class DamagedStoreTest(SessiondTestCase):

    def store_dir(self, d):
        return d.store_url[len("lmdb:"):]

    def made_store(self, sets=(), n=5, data=None):
        d = self.make(sets=list(sets))
        d.start()
        ids = [d.create_ok("user-%d" % i, data=data)["session_id"] for i in range(n)]
        d.stop()
        return d, ids

    def test_truncated_store_refused_at_start(self):
        # pwrite mode (durability = fsync) is where a page past the end of
        # the file was SIGBUS; the map mode grew it back with zero pages.
        for durability in ("fsync", "process"):
            with self.subTest(durability=durability):
                d, _ = self.made_store(["store.durability=" + durability], n=40,
                                       data={"pad": "p" * 3000})
                path = os.path.join(self.store_dir(d), "data.mdb")
                os.truncate(path, 12288)
                rc, err = run_to_exit(d)
                self.assertEqual(rc, 1, "exit 1, not a signal: %r\n%s" % (rc, err))
                self.assertIn("data.mdb: 12288 bytes", err)
                self.assertIn("truncated", err)
                self.assertIn(self.store_dir(d), err, "the message names the store")
                self.assertIn("store.on_damage", err)

    def test_empty_store_file_refused_then_reset_on_request(self):
        d, ids = self.made_store()
        path = os.path.join(self.store_dir(d), "data.mdb")
        os.truncate(path, 0)
        rc, err = run_to_exit(d)
        self.assertEqual(rc, 1, err)
        self.assertIn("0 bytes", err)
        # The operator says so: the file is set aside, an empty store starts.
        d.sets.append("store.on_damage=reset")
        d.start()
        self.assertTrue(wait_for(lambda: b"store.on_damage=reset" in d.stderr_all),
                        d.stderr_text()[-2000:])
        aside = [f for f in os.listdir(self.store_dir(d)) if f.startswith("data.mdb.damaged-")]
        self.assertEqual(len(aside), 1, os.listdir(self.store_dir(d)))
        self.assertInvalid(d.validate(ids[0]), "unknown")
        s = d.create_ok("after")
        self.assertStatus(d.validate(s["session_id"]), 200)

    def test_damaged_page_fails_one_session_and_readyz(self):
        d, ids = self.made_store(["store.map_size=16777216"], n=40,
                                 data={"pad": "p" * 3000})
        keys = {hashlib.sha256(i.encode()).digest(): i for i in ids}
        victim_key = sorted(keys)[len(keys) // 2]
        victim = keys[victim_key]
        path = os.path.join(self.store_dir(d), "data.mdb")
        # Point the victim's overflow page (its sessions row: LMDB's node
        # lo, hi, flags, ksize, then the 32-byte key and the page number)
        # past the end of the file.
        with open(path, "r+b") as f:
            buf = f.read()
            patched = 0
            at = buf.find(victim_key)
            while at >= 0:
                flags, ksize = struct.unpack_from("<HH", buf, at - 4)
                if ksize == 32 and flags & 1:
                    f.seek(at + 32)
                    f.write(struct.pack("<Q", 0x0FFFFFF0))
                    patched += 1
                at = buf.find(victim_key, at + 1)
        self.assertGreaterEqual(patched, 1)
        d.start()
        others = [i for i in ids if i != victim]
        self.assertStatus(d.get("/readyz"), 200)
        self.assertStatus(d.validate(others[0]), 200)
        self.assertStatus(d.validate(victim), 503)
        self.assertStatus(d.get("/readyz"), 503)
        for sid in others[1:6]:
            self.assertStatus(d.validate(sid), 200)
        self.assertStatus(d.get("/readyz"), 200)


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
