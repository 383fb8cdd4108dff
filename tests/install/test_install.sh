#!/bin/sh
# test_install.sh - `make install PREFIX=...` gives a usable libsess: install
# the build tree into a fresh prefix (not the configured one), check that
# libsess.pc points at that prefix, then build examples/embed.c against the
# installed headers and shared library with pkg-config alone and run it.
#
# Usage: test_install.sh BUILD_DIR SOURCE_DIR
# EXTRA_CFLAGS: flags the library was built with that a program linking it
# needs too (the sanitizer build sets -fsanitize=...).
set -eu
extra=${EXTRA_CFLAGS:-}
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
prefix="$tmp/prefix"

cmake --install "$build" --prefix "$prefix" >/dev/null
pc=$(find "$prefix" -name libsess.pc | head -n1)
[ -n "$pc" ] || { echo "FAIL: no libsess.pc under $prefix"; exit 1; }
export PKG_CONFIG_PATH="$(dirname "$pc")"

# The prefix it reports is the one installed to, whatever was configured.
libdir=$(pkg-config --variable=libdir libsess)
incdir=$(pkg-config --variable=includedir libsess)
real_prefix=$(cd "$prefix" && pwd -P)
for d in "$libdir" "$incdir"; do
  case "$(cd "$d" && pwd -P)" in
    "$real_prefix"/*) ;;
    *) echo "FAIL: libsess.pc names $d, outside $prefix"; exit 1 ;;
  esac
done
[ -e "$libdir/libsess.so" ] || { echo "FAIL: no libsess.so in $libdir"; exit 1; }
[ -e "$incdir/sess.h" ] || { echo "FAIL: no sess.h in $incdir"; exit 1; }

# shellcheck disable=SC2046
# shellcheck disable=SC2086
${CC:-cc} $extra -Wall -Wextra -Werror -o "$tmp/embed" "$src/examples/embed.c" \
  $(pkg-config --cflags --libs libsess)
# The static archive links too, with the private requirements.
# shellcheck disable=SC2046
# shellcheck disable=SC2086
${CC:-cc} $extra -o "$tmp/embed-static" "$src/examples/embed.c" \
  $(pkg-config --cflags libsess) "$libdir/libsess.a" \
  $(pkg-config --libs --static libsess | sed 's/-lsess//')
LD_LIBRARY_PATH="$libdir" "$tmp/embed" >/dev/null
"$tmp/embed-static" >/dev/null
echo "ok: installed to $prefix; embed.c built with pkg-config and ran"
