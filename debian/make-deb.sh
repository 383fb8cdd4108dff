#!/bin/sh
# make-deb.sh - `make deb`: build the Debian packages (debian/) from a
# clean copy of this tree in OUT/src, so no build directory, node_modules
# or stale object leaks into them; the .deb files land in OUT/, then
# lintian checks them (its overrides, each explained, are in debian/).
#
#   sh debian/make-deb.sh OUT
set -eu
out=${1:-build-deb}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/src" "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
mkdir -p "$out/src"
# The tree as it is (uncommitted changes included), without what builds
# and tests leave behind.
(cd "$here" && tar -cf - --exclude=./.git --exclude='./build*' --exclude='./var' \
    --exclude='node_modules' --exclude='./obj-*' --exclude='./debian/.debhelper' \
    --exclude='__pycache__' .) | (cd "$out/src" && tar -xf -)
(cd "$out/src" && dpkg-buildpackage -us -uc -b --no-sign -jauto >"$out/build.log" 2>&1) || {
    echo "make-deb: dpkg-buildpackage failed; the end of $out/build.log:" >&2
    tail -40 "$out/build.log" >&2
    exit 1
}
# dpkg-buildpackage writes next to the source tree: OUT/.
ls "$out"/*.deb
if command -v lintian >/dev/null 2>&1; then
    lintian --fail-on error,warning "$out"/sessiond_*.changes
else
    echo "make-deb: lintian is not installed (scripts/install-deps.sh): not checked" >&2
fi
