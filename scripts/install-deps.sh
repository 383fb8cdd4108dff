#!/bin/sh
# install-deps.sh - install the Debian 12 packages sessiond needs to build,
# run and test, when any is missing.  Idempotent and quiet when all are
# present, so `make test` can call it every time.  Needs root (or sudo) only
# when something is missing.
set -eu

PACKAGES="build-essential cmake pkg-config git python3 curl ca-certificates
libssl-dev liblmdb-dev lmdb-utils libhiredis-dev libmicrohttpd-dev libjansson-dev
libinih-dev libcurl4-openssl-dev libxml2-dev libcmocka-dev clang libclang-rt-14-dev valgrind
nginx wrk linux-perf redis-server redis-sentinel redis-tools cppcheck
nodejs"

# npm jose for the token interoperability test (tests/tokens/interop.mjs),
# installed from the committed lock file, once (npm comes with the nodejs
# build on this machine; on stock Debian add the "npm" package).
npm_deps() {
    here=$(cd "$(dirname "$0")/.." && pwd)
    if [ ! -d "$here/tests/tokens/node_modules/jose" ] && command -v npm >/dev/null 2>&1; then
        (cd "$here/tests/tokens" && npm ci --no-audit --no-fund --silent) ||
            echo "install-deps: npm ci in tests/tokens failed (the jose test will skip)" >&2
    fi
}

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && { npm_deps; exit 0; }

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
npm_deps
