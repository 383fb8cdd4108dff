"""test_migration_tools.py - the store tools of sessctl (docs/migration.md,
docs/formats.md): migrate (the backfill), export, import and rekey, against
the real sessiond and real LMDB stores.

  migrate   copies every live session while sessiond serves (LMDB is
            multi-process), records sealed; a session destroyed during the
            copy does not come back; a second run changes nothing; a run
            killed with -9 resumes from its checkpoint; sessiond reports the
            backfill (GET /v1/admin/migration, sessiond_migration_backfill_*).
  export    a versioned, streamed file: header with key fingerprints, one
            line per live session (ID hashes and sealed records, never IDs),
            an end line with count and SHA-256; expired sessions left out.
  import    the file into another store: every session valid there; a
            damaged, truncated, edited or foreign file, or one made for keys
            the importer lacks, is refused with a clear message and the
            store is not even created.
  rekey     re-seals every record under the newest key while sessiond
            serves; the old key can then be retired (restart without it)
            and nobody is logged out; resumable; a keyring without the old
            key re-seals nothing.
No tool output ever holds a session ID."""

import base64
import json
import os
import shutil
import signal
import subprocess
import time

import harness
from harness import SessiondTestCase, sessctl


def lines_of(path):
    with open(path, "rb") as f:
        return f.read().split(b"\n")


class ToolsTest(SessiondTestCase):

    def daemon(self, **kw):
        d = self.make(sets=["session.max_per_user=0"] + kw.pop("sets", []), **kw)
        if not os.path.isdir(d.keys_dir) or not os.listdir(d.keys_dir):
            harness.generate_key(d.keys_dir)
        d.start()
        return d

    def tool(self, d, *args, code=0, timeout=120):
        r = sessctl(*args, timeout=timeout)
        d.assert_no_ids_in(r.stdout + r.stderr, "sessctl %s output" % args[0])
        self.assertEqual(r.returncode, code, "sessctl %s: exit %d, want %d\n%s%s"
                         % (" ".join(map(str, args)), r.returncode, code, r.stdout, r.stderr))
        return r

    def sessions(self, d, n, user="u%d"):
        return [d.create_ok(user % (i % 7))["session_id"] for i in range(n)]

    def on_store(self, d, url):
        """A second daemon on store "url" with the same keys."""
        e = self.make(sets=["session.max_per_user=0"], store=url)
        shutil.copytree(d.keys_dir, e.keys_dir, dirs_exist_ok=True)
        e.start()
        return e

    # ---- migrate ---------------------------------------------------------

    def test_migrate_copies_live_sessions_while_serving(self):
        d = self.daemon()
        live = self.sessions(d, 60)
        dead = live[:10]
        for s in dead:
            self.assertIn(d.destroy(s).status, (200, 204))
        live = live[10:]
        to = "lmdb:" + os.path.join(d.dir, "copy")
        r = self.tool(d, "migrate", "--from", d.store_url, "--to", to, "--batch", "7")
        self.assertIn("done", r.stderr)
        # Run again: idempotent, nothing copied twice.
        r2 = self.tool(d, "migrate", "--from", d.store_url, "--to", to)
        self.assertIn("0 copied", r2.stderr)
        d.stop()
        e = self.on_store(d, to)
        for s in live:
            self.assertStatus(e.validate(s), 200)
        for s in dead:
            self.assertInvalid(e.validate(s), "unknown")

    def test_migrate_resumes_after_kill9(self):
        d = self.daemon()
        live = self.sessions(d, 150)
        to = "lmdb:" + os.path.join(d.dir, "copy")
        p = subprocess.Popen([harness.SESSCTL, "migrate", "--from", d.store_url, "--to", to,
                              "--rate", "60", "--batch", "10"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.2)
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=30)
        r = self.tool(d, "migrate", "--from", d.store_url, "--to", to, "--batch", "10")
        self.assertIn("resuming", r.stderr)
        # The resumed run did not start over: fewer than all were scanned by it.
        d.stop()
        e = self.on_store(d, to)
        for s in live:
            self.assertStatus(e.validate(s), 200)

    def test_migrate_interrupted_saves_and_reports(self):
        """SIGINT ends the batch in hand, saves the checkpoint, exits 1;
        sessiond on the migration pair reports the backfill's progress."""
        d = self.daemon()
        live = self.sessions(d, 80)
        to = os.path.join(d.dir, "copy")
        p = subprocess.Popen([harness.SESSCTL, "migrate", "--from", d.store_url, "--to",
                              "lmdb:" + to, "--rate", "50", "--batch", "5"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.8)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("interrupted", err)
        d.stop()
        m = self.make(sets=["session.max_per_user=0",
                            "migration.from=" + d.store_url, "migration.to=lmdb:" + to,
                            "migration.mode=shadow"], dir=d.dir)
        m.start()
        g = m.get("/v1/admin/migration")
        self.assertStatus(g, 200)
        bf = g.json["backfill"]
        self.assertIsInstance(bf, dict, g.json)
        self.assertFalse(bf["done"])
        self.assertGreater(bf["scanned"], 0)
        self.assertLess(bf["scanned"], 80)
        # Finish it while sessiond runs in shadow, then check the report.
        self.tool(m, "migrate", "--from", d.store_url, "--to", "lmdb:" + to)
        g = m.get("/v1/admin/migration").json["backfill"]
        self.assertTrue(g["done"])
        self.assertEqual(g["total"], 80)
        text = m.get("/metrics").body.decode()
        self.assertIn("sessiond_migration_backfill_done 1", text)
        self.assertIn('sessiond_migration_backfill_entries{outcome="scanned"}', text)
        self.put_mode(m, "new")
        for s in live:
            self.assertStatus(m.validate(s), 200)

    def test_migrate_progress_bar_on_a_terminal(self):
        """On a terminal the progress is a bar redrawn in place ('\\r'); in
        a pipe (every other test) it is plain lines."""
        import pty
        d = self.daemon()
        self.sessions(d, 30)
        master, slave = pty.openpty()
        p = subprocess.Popen([harness.SESSCTL, "migrate", "--from", d.store_url, "--to",
                              "lmdb:" + os.path.join(d.dir, "copy"), "--batch", "5"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        self.assertEqual(p.wait(30), 0, out)
        text = out.decode(errors="replace")
        d.assert_no_ids_in(text, "sessctl migrate on a terminal")
        self.assertIn("\r", text)
        self.assertIn("[##############################] 100%", text)

    def put_mode(self, d, mode):
        r = d.request("PUT", "/v1/admin/migration", {"mode": mode})
        self.assertStatus(r, 200)

    def test_migrate_usage(self):
        d = self.daemon()
        self.tool(d, "migrate", "--from", d.store_url, code=2)
        self.tool(d, "migrate", "--to", "lmdb:/x", "--bogus", code=2)
        self.tool(d, "migrate", "--from", d.store_url, "--to", d.store_url, code=1)
        self.tool(d, "migrate", "--from", "lmdb:" + os.path.join(d.dir, "nope"),
                  "--to", "lmdb:" + os.path.join(d.dir, "x"), code=1)
        self.assertFalse(os.path.exists(os.path.join(d.dir, "nope")))
        self.tool(d, "migrate", "--from", d.store_url, "--to", "lmdb:/tmp/x", "--rate", "0",
                  code=2)
        r = self.tool(d, "migrate", "--help")
        self.assertIn("rekey --store URL", r.stdout)

    # ---- export / import -----------------------------------------------------

    def export(self, d, path, keys=None):
        return self.tool(d, "export", "--from", d.store_url, "--file", path,
                         "--dir", keys or d.keys_dir)

    def test_export_import_round_trip(self):
        # Sessions that expire in 2 s, then long ones: the export carries
        # only what is live when it runs.
        d = self.daemon(sets=["session.idle_timeout=2"])
        short = self.sessions(d, 5, "s%d")
        d.stop()
        d.sets.remove("session.idle_timeout=2")
        d.start()
        live = self.sessions(d, 40)
        time.sleep(3)
        path = os.path.join(d.dir, "sessions.export")
        self.export(d, path)
        self.assertEqual(os.stat(path).st_mode & 0o077, 0, "export readable by others")
        with open(path, "rb") as f:
            raw = f.read()
        # Not replayable: no session ID in it, only hashes and sealed records.
        for s in d.issued_ids | set(live) | set(short):
            self.assertNotIn(s.encode(), raw)
        ls = lines_of(path)
        self.assertEqual(ls[-1], b"", "the file ends with a newline")
        hdr, recs, end = json.loads(ls[0]), [json.loads(x) for x in ls[1:-2]], json.loads(ls[-2])
        self.assertEqual(hdr["format"], "sessiond-export")
        self.assertEqual(hdr["version"], 1)
        self.assertEqual(hdr["source"], "lmdb")
        self.assertTrue(all(len(k["fingerprint"]) == 64 for k in hdr["keys"]))
        self.assertEqual(len(recs), 40, "expired sessions were exported")
        self.assertEqual(end["records"], 40)
        self.assertEqual(sorted(recs[0]), ["b", "c", "e", "f", "h", "k", "u"])
        # A record's "k" (SHA-256 of an ID) presented as a cookie is refused.
        k = base64.b64decode(recs[0]["k"])
        fake = base64.urlsafe_b64encode(k).rstrip(b"=").decode()
        self.assertInvalid(d.validate(fake), "unknown")
        # Import into a new store, then serve from it.
        to = "lmdb:" + os.path.join(d.dir, "imported")
        r = self.tool(d, "import", "--to", to, "--file", path, "--dir", d.keys_dir)
        self.assertIn("40 imported", r.stderr)
        r = self.tool(d, "import", "--to", to, "--file", path, "--dir", d.keys_dir)
        self.assertIn("0 imported", r.stderr)
        d.stop()
        e = self.on_store(d, to)
        for s in live:
            self.assertStatus(e.validate(s), 200)

    def test_export_to_stdout(self):
        d = self.daemon()
        self.sessions(d, 3)
        r = self.tool(d, "export", "--from", d.store_url, "--dir", d.keys_dir)
        ls = r.stdout.split("\n")
        self.assertEqual(json.loads(ls[0])["format"], "sessiond-export")
        self.assertEqual(json.loads(ls[-2])["records"], 3)

    def test_import_refuses_damage_and_foreign_keys(self):
        d = self.daemon()
        self.sessions(d, 12)
        path = os.path.join(d.dir, "good.export")
        self.export(d, path)
        with open(path, "rb") as f:
            good = f.read()
        ls = good.split(b"\n")
        rec = json.loads(ls[1])
        blob = bytearray(base64.b64decode(rec["b"]))
        blob[-1] ^= 1
        flipped = dict(rec, b=base64.b64encode(bytes(blob)).decode())
        hdr = json.loads(ls[0])
        cases = {
            "truncated (no end line)": b"\n".join(ls[:-2]) + b"\n",
            "cut inside a line": good[:len(good) // 2],
            "empty": b"",
            "not JSON": b"hello\n",
            "flipped byte": good.replace(ls[1], json.dumps(flipped).encode()),
            "line dropped": b"\n".join(ls[:1] + ls[2:]),
            "wrong version": good.replace(ls[0], json.dumps(dict(hdr, version=2)).encode()),
            "not an export": good.replace(ls[0], json.dumps(dict(hdr, format="x")).encode()),
            "data after end": good + b"{}\n",
            "bad base64": good.replace(ls[1], json.dumps(dict(rec, k="***")).encode()),
            "short key": good.replace(ls[1], json.dumps(
                dict(rec, k=base64.b64encode(b"abc").decode())).encode()),
            "unknown field": good.replace(ls[1], json.dumps(dict(rec, x=1)).encode()),
            "negative expiry": good.replace(ls[1], json.dumps(dict(rec, e=-5)).encode()),
        }
        want = {
            "truncated (no end line)": "truncated", "cut inside a line": "truncated",
            "empty": "empty", "not JSON": "not a JSON object",
            "flipped byte": "SHA-256", "line dropped": "record count",
            "wrong version": "version", "not an export": "not a sessiond export",
            "data after end": "after the end line", "bad base64": "base64",
            "short key": "wrong length", "unknown field": "field",
            "negative expiry": "out of range",
        }
        for name, data in cases.items():
            bad = os.path.join(d.dir, "bad.export")
            with open(bad, "wb") as f:
                f.write(data)
            store = os.path.join(d.dir, "target-" + name.replace(" ", "_"))
            r = self.tool(d, "import", "--to", "lmdb:" + store, "--file", bad,
                          "--dir", d.keys_dir, code=1)
            self.assertIn(want[name], r.stderr, name)
            self.assertIn("nothing was imported", r.stderr, name)
            self.assertFalse(os.path.exists(store), "%s: the store was touched" % name)
        # Keys: another keyring (the kid is missing), and the same kid with
        # other bytes (a key file re-made under an old name).
        other = os.path.join(d.dir, "other-keys")
        harness.write_key(other)
        r = self.tool(d, "import", "--to", "lmdb:" + os.path.join(d.dir, "t1"), "--file", path,
                      "--dir", other, code=1)
        self.assertIn("does not have", r.stderr)
        same_kid = os.path.join(d.dir, "same-kid")
        kid = os.listdir(d.keys_dir)[0].split(".")[0]
        harness.write_key(same_kid, kid)
        harness.write_key(same_kid)  # a second, newer key beside it
        r = self.tool(d, "import", "--to", "lmdb:" + os.path.join(d.dir, "t2"), "--file", path,
                      "--dir", same_kid, code=1)
        self.assertIn("differ", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(d.dir, "t1")))
        self.assertFalse(os.path.exists(os.path.join(d.dir, "t2")))
        self.tool(d, "import", "--to", "lmdb:/x", code=2)

    # ---- rekey ------------------------------------------------------------------

    def test_rekey_then_retire_old_key(self):
        d = self.daemon()
        live = self.sessions(d, 50)
        old = [f for f in os.listdir(d.keys_dir) if f.endswith(".key")]
        self.assertEqual(len(old), 1)
        time.sleep(1.1)                       # key ids are time-ordered
        r = sessctl("keys", "generate", "--dir", d.keys_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        d.signal(signal.SIGHUP)               # sessiond seals with the new key
        time.sleep(0.5)
        more = self.sessions(d, 10)
        # Online: sessiond keeps serving (and touching records) meanwhile.
        r = self.tool(d, "rekey", "--store", d.store_url, "--dir", d.keys_dir, "--batch", "8")
        self.assertIn("every record is sealed under", r.stderr)
        r = self.tool(d, "rekey", "--store", d.store_url, "--dir", d.keys_dir)
        self.assertIn("0 copied", r.stderr)   # nothing left under the old key
        # Retire the old key: remove it, restart; nobody is logged out.
        for f in os.listdir(d.keys_dir):
            if f.startswith(old[0][:-4]):
                os.unlink(os.path.join(d.keys_dir, f))
        d.restart()
        for s in live + more:
            self.assertStatus(d.validate(s), 200)

    def test_rekey_without_the_old_key_changes_nothing(self):
        d = self.daemon()
        live = self.sessions(d, 10)
        other = os.path.join(d.dir, "other-keys")
        harness.write_key(other)
        r = self.tool(d, "rekey", "--store", d.store_url, "--dir", other, code=1)
        self.assertIn("failed", r.stderr)
        for s in live:
            self.assertStatus(d.validate(s), 200)

    def test_rekey_resumes(self):
        d = self.daemon()
        live = self.sessions(d, 120)
        time.sleep(1.1)
        self.assertEqual(sessctl("keys", "generate", "--dir", d.keys_dir).returncode, 0)
        d.signal(signal.SIGHUP)
        p = subprocess.Popen([harness.SESSCTL, "rekey", "--store", d.store_url, "--dir",
                              d.keys_dir, "--rate", "60", "--batch", "10"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=30)
        r = self.tool(d, "rekey", "--store", d.store_url, "--dir", d.keys_dir)
        self.assertIn("resuming", r.stderr)
        for s in live:
            self.assertStatus(d.validate(s), 200)


if __name__ == "__main__":
    harness.main()
