"""test_proxy_configs.py - the proxy examples that cannot run here
(examples/traefik, examples/envoy, examples/istio: not installable on this
machine) are at least well-formed and say what they claim: every YAML/JSON
file parses, the forward-auth and JWKS addresses are sessiond's, and every
identity header the README lists is configured. The nginx and HAProxy
examples also pass their own binaries' syntax checks (they run for real in
test_proxies.py).

YAML is parsed with PyYAML (Debian's python3-yaml, installed by
scripts/install-deps.sh for /usr/bin/python3); when the Python running the
suite lacks it, the file re-runs itself under /usr/bin/python3."""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

try:
    import yaml
except ImportError:
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.normpath(os.path.join(HERE, "..", "..", "examples"))
IDENTITY = ["x-session-user", "x-session-handle", "x-csrf-token", "x-cookie-consent"]


def load_all(path):
    with open(path) as f:
        if path.endswith(".json"):
            return [json.load(f)]
        return [d for d in yaml.safe_load_all(f) if d is not None]


def walk(obj):
    """Every (key, value) pair of nested dicts and lists."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k, v
            yield from walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk(v)


def values(docs, key):
    return [v for d in docs for k, v in walk(d) if k == key]


class ProxyConfigsTest(unittest.TestCase):

    def files(self, name):
        fs = sorted(glob.glob(os.path.join(EXAMPLES, name, "*.y*ml")) +
                    glob.glob(os.path.join(EXAMPLES, name, "*.json")))
        self.assertTrue(fs, "no configuration files in examples/%s" % name)
        return fs

    def docs(self, name):
        out = []
        for f in self.files(name):
            try:
                out += load_all(f)
            except (yaml.YAMLError, ValueError) as e:
                self.fail("%s does not parse: %s" % (f, e))
        return out

    def lower_text(self, name):
        return "\n".join(open(f).read().lower() for f in self.files(name))

    def test_every_file_parses(self):
        for name in ("traefik", "envoy", "istio"):
            self.assertTrue(self.docs(name), name)
            self.assertTrue(os.path.exists(os.path.join(EXAMPLES, name, "README.md")))
            with open(os.path.join(EXAMPLES, name, "README.md")) as f:
                self.assertIn("Not run here", f.read(), "%s/README.md says what was not run" % name)

    def test_traefik(self):
        docs = self.docs("traefik")
        fa = values(docs, "forwardAuth")
        self.assertEqual(len(fa), 1)
        self.assertTrue(fa[0]["address"].endswith("/v1/auth"))
        self.assertIs(fa[0]["trustForwardHeader"], False)
        got = [h.lower() for h in fa[0]["authResponseHeaders"]]
        for h in IDENTITY:
            self.assertIn(h, got)
        self.assertIn("__Host-sessiond", fa[0]["addAuthCookiesToResponse"])

    def test_envoy(self):
        docs = self.docs("envoy")
        filters = [f["name"] for f in values(docs, "http_filters")[0]]
        self.assertEqual(filters[:2], ["envoy.filters.http.jwt_authn",
                                       "envoy.filters.http.ext_authz"])
        http = values(docs, "http_service")[0]
        self.assertEqual(http["path_prefix"], "/v1/auth")
        allowed = [p["exact"] for p in http["authorization_request"]["allowed_headers"]["patterns"]]
        for h in ("cookie", "user-agent", "origin", "x-csrf-token"):
            self.assertIn(h, allowed)
        up = [p["exact"] for p in
              http["authorization_response"]["allowed_upstream_headers"]["patterns"]]
        for h in IDENTITY:
            self.assertIn(h, up)
        jwks = values(docs, "remote_jwks")[0]["http_uri"]["uri"]
        self.assertTrue(jwks.endswith("/.well-known/jwks.json"), jwks)
        self.assertIs(values(docs, "failure_mode_allow")[0], False)

    def test_istio(self):
        docs = self.docs("istio")
        kinds = sorted({d["kind"] for d in docs})
        self.assertEqual(kinds, ["AuthorizationPolicy", "IstioOperator",
                                 "PeerAuthentication", "RequestAuthentication"])
        for d in docs:
            if d["kind"] == "PeerAuthentication":
                self.assertEqual(d["spec"]["mtls"]["mode"], "STRICT")
        custom = [d for d in docs if d["kind"] == "AuthorizationPolicy"
                  and d["spec"].get("action") == "CUSTOM"]
        self.assertEqual(len(custom), 1)
        provider = values(docs, "extensionProviders")[0][0]
        self.assertEqual(custom[0]["spec"]["provider"]["name"], provider["name"])
        ext = provider["envoyExtAuthzHttp"]
        self.assertEqual(ext["pathPrefix"], "/v1/auth")
        for h in IDENTITY:
            self.assertIn(h, ext["headersToUpstreamOnAllow"])
        self.assertIn("set-cookie", ext["headersToDownstreamOnAllow"])
        jwks = values(docs, "jwksUri")[0]
        self.assertTrue(jwks.endswith("/.well-known/jwks.json"))

    def test_nginx_syntax(self):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.assertTrue(os.path.exists(nginx), "nginx is not installed (scripts/install-deps.sh)")
        for conf in ("nginx.conf", "nginx-tls.conf"):
            with tempfile.TemporaryDirectory() as d:
                for f in os.listdir(os.path.join(EXAMPLES, "nginx")):
                    shutil.copy(os.path.join(EXAMPLES, "nginx", f), d)
                os.makedirs(os.path.join(d, "tmp"))
                path = os.path.join(d, conf)
                with open(path) as f:
                    text = f.read()
                if conf == "nginx-tls.conf":
                    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                                    "-keyout", os.path.join(d, "k"), "-out", os.path.join(d, "c"),
                                    "-days", "1", "-subj", "/CN=localhost"],
                                   check=True, capture_output=True, timeout=60)
                    text = text.replace("/etc/sessiond/tls/shop.crt", os.path.join(d, "c"))
                    text = text.replace("/etc/sessiond/tls/shop.key", os.path.join(d, "k"))
                with open(path, "w") as f:
                    f.write(text)
                p = subprocess.run([nginx, "-t", "-p", d, "-c", path, "-e",
                                    os.path.join(d, "err.log")],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(p.returncode, 0, "%s: %s" % (conf, p.stderr))

    def test_haproxy_syntax(self):
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        self.assertTrue(os.path.exists(haproxy), "haproxy is not installed (scripts/install-deps.sh)")
        d = os.path.join(EXAMPLES, "haproxy")
        p = subprocess.run([haproxy, "-c", "-f", "haproxy.cfg"], cwd=d,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


if __name__ == "__main__":
    # harness-style arguments (--sessiond, --sessctl) are not needed here.
    argv = [a for i, a in enumerate(sys.argv)
            if not a.startswith("--sess") and not (i > 0 and sys.argv[i - 1].startswith("--sess"))]
    unittest.main(argv=argv, verbosity=2)
