#!/bin/sh
# install-deps.sh - install the Debian 12 packages sessiond needs to build,
# run and test, when any is missing.  Idempotent and quiet when all are
# present, so `make test` can call it every time.  Needs root (or sudo) only
# when something is missing.
set -eu

PACKAGES="build-essential cmake pkg-config git python3 curl ca-certificates
libssl-dev liblmdb-dev lmdb-utils libhiredis-dev libhttp-parser-dev libjansson-dev
libinih-dev libcurl4-openssl-dev libxml2-dev libcmocka-dev clang libclang-rt-14-dev valgrind
nginx nginx-dev haproxy python3-yaml wrk linux-perf redis-server redis-sentinel redis-tools cppcheck
debhelper dpkg-dev fakeroot lintian
nodejs chromium openssl faketime php-cli python3-flask prometheus"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# npm: Debian's npm package, unless the installed nodejs already brings npm
# (NodeSource's nodejs does, and conflicts with Debian's npm).
command -v npm >/dev/null 2>&1 || missing="$missing npm"

# The node modules of the demo shop, the browser tests, the token
# interoperability test (npm jose) and the webhook signature check (npm
# standardwebhooks), exactly as locked in
# their package-lock.json (npm ci), whenever the lock file is newer than the
# installed tree.  Playwright's own browser download is never used: the
# tests drive Debian's /usr/bin/chromium.
node_modules() {
    here=$(cd "$(dirname "$0")/.." && pwd)
    for d in examples/shop tests/e2e tests/tokens tests/events tests/audit/sites/express; do
        lock="$here/$d/package-lock.json"
        [ -f "$lock" ] || continue
        if [ ! -f "$here/$d/node_modules/.package-lock.json" ] ||
           [ "$lock" -nt "$here/$d/node_modules/.package-lock.json" ]; then
            echo "install-deps: npm ci in $d" >&2
            (cd "$here/$d" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2)
        fi
    done
}

if [ -z "$missing" ]; then node_modules; exit 0; fi

echo "install-deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-deps: run as root (missing:$missing)" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
node_modules
