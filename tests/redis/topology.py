#!/usr/bin/env python3
"""topology.py - start real Redis topologies on loopback for the tests.

Three topologies, each from Debian's packages (redis-server, redis-sentinel,
redis-tools), each in its own temporary directory, on free loopback ports in
20000-29999 (bind-tested first), torn down on exit, on failure and on a
signal (and, through PR_SET_PDEATHSIG, even when this process is SIGKILLed):

  standalone   one redis-server                      redis://127.0.0.1:P
  sentinel     a primary, N replicas (1), three      redis+sentinel://127.0.0.1:S1,
               sentinels (quorum 2, down-after 1 s)      127.0.0.1:S2,127.0.0.1:S3/mymaster
  cluster      3 primaries (+ N replicas each, 0),   redis+cluster://127.0.0.1:P1,
               cluster-enabled, `redis-cli --cluster      127.0.0.1:P2,127.0.0.1:P3
               create ... --cluster-yes`, waited on
               until cluster_state:ok on every node

Every server runs with `--save '' --appendonly no` (unless persistence="aof"
is asked for: appendonly yes, appendfsync always), `--bind 127.0.0.1` and
`--protected-mode no`.

As a library (Python 3 standard library only):

    import topology
    with topology.standalone() as t:          # or sentinel(), cluster()
        t.url                                 # the store URL for sessiond
        t.stop(); t.start()                   # every server of the topology
        t.kill_primary()                      # SIGKILL the current primary
        t.nodes, t.primary(), t.cmd(node, "PING")

    Nodes (RedisNode) have .port, .addr, .pid, .start(), .stop(), .kill(),
    .alive(), .cmd(*args) and .log_tail().  Start nodes from a long-lived
    thread: the parent-death signal is bound to the thread that forks.

As a command (CTest):

    python3 tests/redis/topology.py run --topology standalone|sentinel|cluster \
        [--replicas N] [--persistence aof] -- COMMAND ARGS...

exports SESS_REDIS_URL (and SESS_REDIS_TOPOLOGY), replaces the literal @URL@ in
ARGS by the URL, runs COMMAND and returns its exit code.

    python3 tests/redis/topology.py up --topology cluster

starts a topology, prints its URL and nodes, and waits for Ctrl-C (for poking
at it with redis-cli).  When redis-server (or redis-cli for a cluster) is not
installed, both print "SKIP: ..." and exit 77 (CTest SKIP_RETURN_CODE).

Set SESS_REDIS_KEEP=1 to keep the temporary directory (configs and logs).
"""

import argparse
import atexit
import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SKIP_CODE = 77
HOST = "127.0.0.1"
PORT_MIN, PORT_MAX = 20000, 29999
MASTER_NAME = "mymaster"

REDIS_SERVER = shutil.which("redis-server")
REDIS_SENTINEL = shutil.which("redis-sentinel")
REDIS_CLI = shutil.which("redis-cli")


class Skip(Exception):
    """The servers a topology needs are not installed."""


class RedisError(Exception):
    """An error reply (-ERR ...) from a server."""


class TopologyError(Exception):
    """A topology did not come up (or did not reach the state waited for)."""


def missing(topology="standalone"):
    """None when `topology` can run here, else the reason it cannot."""
    if not REDIS_SERVER:
        return "redis-server not installed"
    if topology == "cluster" and not REDIS_CLI:
        return "redis-cli not installed (redis-tools)"
    return None


# ---- a minimal RESP2 client ----------------------------------------------------

def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def _read(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed mid-reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) != n + 2:
            raise ConnectionError("connection closed mid-reply")
        return data[:-2].decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [_read(f) for _ in range(n)]
    raise ConnectionError("bad reply %r" % line)


def command(port, *args, host=HOST, timeout=2.0):
    """Send one command, return the reply (error replies are raised)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(_encode(args))
        with s.makefile("rb") as f:
            r = _read(f)
    if isinstance(r, RedisError):
        raise r
    return r


def info(port, section=None):
    """INFO [section] as a dict."""
    text = command(port, "INFO", section) if section else command(port, "INFO")
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, _, v = line.partition(":")
            out[k] = v
    return out


def pairs(lst):
    """A flat [k1, v1, k2, v2...] reply as a dict."""
    return dict(zip(lst[0::2], lst[1::2]))


def wait_for(pred, timeout, what, interval=0.05):
    """Poll pred() until it returns something true; raise TopologyError."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except (OSError, RedisError, ConnectionError, ValueError) as e:
            last = e
        if time.monotonic() >= deadline:
            raise TopologyError("timed out after %.1fs waiting for %s%s"
                                % (timeout, what, " (last error: %s)" % last if last else ""))
        time.sleep(interval)


# ---- ports ---------------------------------------------------------------------

_taken = set()
_taken_lock = threading.Lock()


def _bindable(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(bus=False):
    """A port in 20000-29999 that is free now (and port+10000 too when a
    cluster bus port is needed), never handed out twice by this process."""
    for _ in range(2000):
        p = random.randint(PORT_MIN, PORT_MAX)
        with _taken_lock:
            if p in _taken or (bus and p + 10000 in _taken):
                continue
            if _bindable(p) and (not bus or _bindable(p + 10000)):
                _taken.add(p)
                if bus:
                    _taken.add(p + 10000)
                return p
    raise TopologyError("no free port in %d-%d" % (PORT_MIN, PORT_MAX))


# ---- processes -------------------------------------------------------------------

_libc = None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):
    _prctl = None

PR_SET_PDEATHSIG = 1


def _child_setup():
    # Die with the thread that started us, even when it is SIGKILLed.
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_live = set()            # every RedisNode / child process that may be running
_live_lock = threading.Lock()


def _kill_all():
    with _live_lock:
        procs = list(_live)
        _live.clear()
    for p in procs:
        try:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass


atexit.register(_kill_all)


class RedisNode:
    """One redis-server (or sentinel) process with its own config file and
    directory.  stop()/kill() keep the port and directory, so start() brings
    the same server back (with its data when persistence is on)."""

    def __init__(self, root, name, conf_lines, sentinel=False, bus=False):
        self.name = name
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir, exist_ok=True)
        self.sentinel = sentinel
        self.bus = bus
        self.conf_lines = list(conf_lines)
        self.port = free_port(bus=bus)
        self.proc = None
        self.conf = os.path.join(self.dir, "redis.conf")
        self.logfile = os.path.join(self.dir, "redis.log")

    @property
    def addr(self):
        return "%s:%d" % (HOST, self.port)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def __repr__(self):
        return "<RedisNode %s %s pid=%s>" % (self.name, self.addr, self.pid)

    def _write_conf(self):
        lines = ["port %d" % self.port,
                 "bind %s" % HOST,
                 "protected-mode no",
                 "daemonize no",
                 'dir "%s"' % self.dir,
                 'logfile "%s"' % self.logfile]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines + self.conf_lines) + "\n")

    def start(self, timeout=10.0, first=False):
        """Start (or restart) the server and wait until it answers PING."""
        if self.alive():
            return self
        if first or not os.path.exists(self.conf):
            self._write_conf()
        if self.sentinel:
            argv = [REDIS_SENTINEL, self.conf] if REDIS_SENTINEL else \
                   [REDIS_SERVER, self.conf, "--sentinel"]
        else:
            argv = [REDIS_SERVER, self.conf]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     cwd=self.dir, preexec_fn=_child_setup)
        with _live_lock:
            _live.add(self.proc)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise TopologyError("%s exited with %s at start; log:\n%s"
                                    % (self, self.proc.returncode, self.log_tail()))
            try:
                r = command(self.port, "PING", timeout=0.5)
                if r == "PONG":
                    return self
            except RedisError as e:
                if "LOADING" not in str(e):
                    return self          # it answers: started
            except OSError:
                pass
            if time.monotonic() >= deadline:
                self.kill()
                raise TopologyError("%s did not answer PING within %.0fs; log:\n%s"
                                    % (self, timeout, self.log_tail()))
            time.sleep(0.02)

    def _forget(self):
        with _live_lock:
            _live.discard(self.proc)
        self.proc = None

    def stop(self, timeout=10.0):
        """SIGTERM and wait (a clean shutdown)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._forget()

    def kill(self):
        """SIGKILL (a crash: nothing is flushed)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._forget()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cmd(self, *args, timeout=2.0):
        return command(self.port, *args, timeout=timeout)

    def info(self, section=None):
        return info(self.port, section)

    def log_tail(self, n=30):
        try:
            with open(self.logfile, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no log)"


# ---- topologies --------------------------------------------------------------------

def _data_conf(persistence):
    fast = ["repl-diskless-sync-delay 0"]     # replicas sync at once, not after 5 s
    if persistence == "aof":
        return ['save ""', "appendonly yes", "appendfsync always"] + fast
    if persistence in (None, "none"):
        return ['save ""', "appendonly no"] + fast
    raise ValueError("persistence: none or aof, not %r" % (persistence,))


class Topology:
    """Base: a temporary directory, a list of nodes, teardown on exit."""

    kind = "?"

    def __init__(self, persistence=None):
        if missing(self.kind):
            raise Skip(missing(self.kind))
        self.persistence = persistence
        self.root = tempfile.mkdtemp(prefix="sess-redis-%s-" % self.kind)
        self.nodes = []
        self.url = None
        self.closed = False

    def _node(self, name, conf, **kw):
        n = RedisNode(self.root, name, _data_conf(self.persistence) + list(conf), **kw)
        self.nodes.append(n)
        return n

    def __enter__(self):
        try:
            self.up()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def up(self):
        raise NotImplementedError

    def data_nodes(self):
        return [n for n in self.nodes if not n.sentinel]

    def stop(self):
        """Stop every server of the topology (SIGTERM)."""
        for n in reversed(self.nodes):
            n.stop()

    def start(self, timeout=30.0):
        """Start every stopped server again and wait until the topology works."""
        for n in self.nodes:
            if not n.alive():
                n.start()
        self.wait_ready(timeout)

    def wait_ready(self, timeout=30.0):
        pass

    def flushall(self):
        """Empty every primary (between tests)."""
        for n in self.data_nodes():
            if n.alive() and n.info("replication").get("role") == "master":
                n.cmd("FLUSHALL")

    def primary(self):
        raise NotImplementedError

    def kill_primary(self):
        """SIGKILL the (current) primary; return its node."""
        n = self.primary()
        n.kill()
        return n

    def describe(self):
        return "\n".join("  %-12s %s pid %s" % (n.name, n.addr, n.pid) for n in self.nodes)

    def logs(self, n=20):
        return "\n".join("--- %s (%s)\n%s" % (x.name, x.addr, x.log_tail(n)) for x in self.nodes)

    def close(self):
        if self.closed:
            return
        self.closed = True
        for n in self.nodes:
            try:
                n.kill()
            except OSError:
                pass
        if os.environ.get("SESS_REDIS_KEEP"):
            sys.stderr.write("topology: kept %s\n" % self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)


class Standalone(Topology):
    kind = "standalone"

    def __init__(self, persistence=None, db=None):
        super().__init__(persistence)
        self.db = db

    def up(self):
        self.server = self._node("redis", [])
        self.server.start(first=True)
        self.url = "redis://%s" % self.server.addr + ("/%d" % self.db if self.db is not None else "")
        return self

    def primary(self):
        return self.server


class Sentinel(Topology):
    kind = "sentinel"

    def __init__(self, persistence=None, replicas=1, sentinels=3, quorum=2,
                 down_after_ms=1000, failover_timeout_ms=3000, db=None):
        super().__init__(persistence)
        self.n_replicas = replicas
        self.n_sentinels = sentinels
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.db = db

    def up(self):
        self.first_primary = self._node("primary", [])
        self.first_primary.start(first=True)
        self.replicas = []
        for i in range(self.n_replicas):
            r = self._node("replica%d" % (i + 1),
                           ["replicaof %s %d" % (HOST, self.first_primary.port)])
            r.start(first=True)
            self.replicas.append(r)
        self.wait_replication(self.first_primary, self.replicas, 20)
        self.sentinels = []
        for i in range(self.n_sentinels):
            s = self._node("sentinel%d" % (i + 1), [
                "sentinel monitor %s %s %d %d" % (MASTER_NAME, HOST, self.first_primary.port,
                                                  self.quorum),
                "sentinel down-after-milliseconds %s %d" % (MASTER_NAME, self.down_after_ms),
                "sentinel failover-timeout %s %d" % (MASTER_NAME, self.failover_timeout_ms),
                "sentinel parallel-syncs %s 1" % MASTER_NAME,
            ], sentinel=True)
            s.start(first=True)
            self.sentinels.append(s)
        self.url = "redis+sentinel://%s/%s" % (",".join(s.addr for s in self.sentinels),
                                               MASTER_NAME)
        if self.db is not None:
            self.url += "/%d" % self.db
        self.wait_ready(30)
        return self

    @staticmethod
    def replicating(primary, replicas):
        """True when `primary` is a primary and every one of `replicas`
        follows it with its link up."""
        if primary.info("replication").get("role") != "master":
            return False
        for r in replicas:
            i = r.info("replication")
            if i.get("role") != "slave" or i.get("master_link_status") != "up" or \
                    int(i.get("master_port", 0)) != primary.port:
                return False
        return int(primary.info("replication").get("connected_slaves", 0)) >= len(replicas)

    def wait_replication(self, primary, replicas, timeout):
        wait_for(lambda: self.replicating(primary, replicas), timeout,
                 "replication %s -> %s" % (primary.addr, [r.addr for r in replicas]))

    def sentinel_master(self, s):
        return pairs(s.cmd("SENTINEL", "MASTER", MASTER_NAME))

    def primary_addr(self):
        """(host, port) of the primary as the first live sentinel says."""
        for s in self.sentinels:
            if s.alive():
                try:
                    h, p = s.cmd("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
                    return h, int(p)
                except (OSError, RedisError, ConnectionError):
                    continue
        raise TopologyError("no sentinel answers")

    def primary(self):
        _, port = self.primary_addr()
        for n in self.data_nodes():
            if n.port == port:
                return n
        raise TopologyError("the sentinels name an unknown primary port %d" % port)

    def wait_ready(self, timeout=30.0):
        """Every live sentinel agrees on the primary, knows the other sentinels
        and the live replicas, and the replicas replicate."""
        live_data = [n for n in self.data_nodes() if n.alive()]

        def ok():
            addrs = set()
            for s in self.sentinels:
                if not s.alive():
                    continue
                m = self.sentinel_master(s)
                if "s_down" in m["flags"] or "o_down" in m["flags"]:
                    return False
                if int(m["num-other-sentinels"]) < sum(x.alive() for x in self.sentinels) - 1:
                    return False
                good = [r for r in map(pairs, s.cmd("SENTINEL", "REPLICAS", MASTER_NAME))
                        if "s_down" not in r["flags"] and "disconnected" not in r["flags"]]
                if len(good) < len(live_data) - 1:
                    return False
                addrs.add((m["ip"], int(m["port"])))
            if len(addrs) != 1:
                return False
            port = addrs.pop()[1]
            prim = [n for n in live_data if n.port == port]
            if not prim:
                return False
            return self.replicating(prim[0], [n for n in live_data if n is not prim[0]])
        wait_for(ok, timeout, "the sentinel topology to settle", interval=0.1)

    def wait_failover(self, old, timeout=30.0):
        """After `old` (the primary) died: wait until the sentinels name
        another node and that node says role:master; return it."""
        def promoted():
            _, port = self.primary_addr()
            if port == old.port:
                return None
            n = [x for x in self.data_nodes() if x.port == port][0]
            return n if n.info("replication").get("role") == "master" else None
        return wait_for(promoted, timeout, "sentinel failover away from %s" % old.addr,
                        interval=0.05)


class Cluster(Topology):
    kind = "cluster"

    def __init__(self, persistence=None, primaries=3, replicas=0, node_timeout_ms=2000):
        super().__init__(persistence)
        if primaries < 3:
            raise ValueError("a Redis Cluster needs at least 3 primaries")
        self.n_primaries = primaries
        self.n_replicas = replicas
        self.node_timeout_ms = node_timeout_ms

    def up(self):
        conf = ["cluster-enabled yes",
                "cluster-config-file nodes.conf",
                "cluster-node-timeout %d" % self.node_timeout_ms,
                "cluster-require-full-coverage yes"]
        total = self.n_primaries * (1 + self.n_replicas)
        for i in range(total):
            self._node("node%d" % (i + 1), conf, bus=True).start(first=True)
        argv = [REDIS_CLI, "--cluster", "create"] + [n.addr for n in self.nodes] + \
               ["--cluster-replicas", str(self.n_replicas), "--cluster-yes"]
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise TopologyError("redis-cli --cluster create failed (%d):\n%s\n%s"
                                % (r.returncode, r.stdout[-3000:], r.stderr[-2000:]))
        self.wait_ready(60)
        self.primaries = [n for n in self.nodes
                          if n.info("replication").get("role") == "master"]
        self.replicas = [n for n in self.nodes if n not in self.primaries]
        self.url = "redis+cluster://" + ",".join(n.addr for n in self.primaries)
        return self

    def wait_ready(self, timeout=60.0):
        live = [n for n in self.nodes if n.alive()]

        def ok():
            for n in live:
                i = dict(l.split(":", 1) for l in n.cmd("CLUSTER", "INFO").split("\r\n") if ":" in l)
                if i.get("cluster_state") != "ok" or i.get("cluster_slots_ok") != "16384":
                    return False
                if int(i.get("cluster_known_nodes", 0)) < len(self.nodes):
                    return False
            for n in live:
                ri = n.info("replication")
                if ri.get("role") == "slave" and ri.get("master_link_status") != "up":
                    return False
            return True
        wait_for(ok, timeout, "cluster_state:ok on every node", interval=0.1)

    def primary(self, slot=0):
        """The primary that serves `slot` now."""
        for n in self.nodes:
            if not n.alive():
                continue
            for lo, hi, master, *_ in n.cmd("CLUSTER", "SLOTS"):
                if lo <= slot <= hi:
                    port = int(master[1])
                    return [x for x in self.nodes if x.port == port][0]
        raise TopologyError("no node answers CLUSTER SLOTS")

    def flushall(self):
        for n in self.nodes:
            if n.alive() and n.info("replication").get("role") == "master":
                n.cmd("FLUSHALL")


def standalone(**kw):
    return Standalone(**kw)


def sentinel(**kw):
    return Sentinel(**kw)


def cluster(**kw):
    return Cluster(**kw)


TOPOLOGIES = {"standalone": Standalone, "sentinel": Sentinel, "cluster": Cluster}


def make(kind, **kw):
    """A topology by name, not started yet (use it in a with statement)."""
    return TOPOLOGIES[kind](**kw)


# ---- command line ----------------------------------------------------------------------

class _Signalled(BaseException):
    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _raise_on(signum, frame):
    raise _Signalled(signum)


def _topology_args(args):
    kw = {}
    if args.persistence:
        kw["persistence"] = args.persistence
    if args.replicas is not None:
        if args.topology == "standalone":
            raise SystemExit("topology: --replicas needs sentinel or cluster")
        kw["replicas"] = args.replicas
    return kw


def cli(argv=None):
    p = argparse.ArgumentParser(prog="topology.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("run", "up"):
        s = sub.add_parser(name)
        s.add_argument("--topology", required=True, choices=sorted(TOPOLOGIES))
        s.add_argument("--replicas", type=int, default=None)
        s.add_argument("--persistence", choices=("none", "aof"), default=None)
        if name == "run":
            s.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if args.cmd == "run":
        cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not cmd:
            p.error("run: no command after --")
    why = missing(args.topology)
    if why:
        print("SKIP: %s" % why, flush=True)
        return SKIP_CODE
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _raise_on)
    child = None
    t0 = time.monotonic()
    try:
        with make(args.topology, **_topology_args(args)) as t:
            sys.stderr.write("topology: %s up in %.1fs: %s\n%s\n"
                             % (args.topology, time.monotonic() - t0, t.url, t.describe()))
            sys.stderr.flush()
            if args.cmd == "up":
                print(t.url, flush=True)
                while True:
                    time.sleep(3600)
            env = dict(os.environ, SESS_REDIS_URL=t.url, SESS_REDIS_TOPOLOGY=args.topology)
            cmd = [a.replace("@URL@", t.url) for a in cmd]
            child = subprocess.Popen(cmd, env=env, preexec_fn=_child_setup)
            with _live_lock:
                _live.add(child)
            rc = child.wait()
            if rc < 0:
                sys.stderr.write("topology: %s died of signal %d\n" % (cmd[0], -rc))
                sys.stderr.write(t.logs(10) + "\n")
                return 128 - rc
            if rc not in (0, SKIP_CODE):
                sys.stderr.write("topology: %s exited %d; server logs:\n%s\n"
                                 % (cmd[0], rc, t.logs(10)))
            return rc
    except _Signalled as e:
        if child is not None and child.poll() is None:
            child.send_signal(e.signum)
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
        return 128 + e.signum
    except Skip as e:
        print("SKIP: %s" % e, flush=True)
        return SKIP_CODE
    except FileNotFoundError as e:
        sys.stderr.write("topology: %s\n" % e)
        return 127
    except TopologyError as e:
        sys.stderr.write("topology: %s\n" % e)
        return 1
    finally:
        _kill_all()


if __name__ == "__main__":
    sys.exit(cli())
