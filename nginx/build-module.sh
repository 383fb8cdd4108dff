#!/bin/bash
# build-module.sh - build ngx_http_sessiond_module.so against Debian's
# nginx-dev, with the packaged nginx's own configure flags (conf_flags,
# --with-compat), so the module's signature matches the nginx binary
# that loads it.  Used by CMake (the nginx_module target, so the tests
# and `make nginx-module` get it) and by bench/run.py; the Debian
# package builds through debhelper's nginx_mod build system instead
# (debian/rules), which does the same.
#
#   nginx/build-module.sh OUT_DIR LIBSESS_A [CC_OPT [LD_OPT]]
#
# OUT_DIR gets a private copy of the nginx sources (nginx-src/; configure
# writes into its tree) and ngx_http_sessiond_module.so.  LIBSESS_A is
# the PIC static libsess the module links (build/libsess.a).  CC_OPT and
# LD_OPT are added to nginx's (the ASan build passes -fsanitize=...).
# CC (default cc): the compiler libsess was built with, so a sanitizer
# build links the runtime libsess expects.
set -euo pipefail
out=$1
libsess=$2
cc_opt=${3:-}
ld_opt=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
src=${NGINX_SRC:-/usr/share/nginx/src}
if [ ! -f "$src/conf_flags" ]; then
    echo "build-module.sh: $src/conf_flags not found (apt-get install nginx-dev)" >&2
    exit 1
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
tree=$out/nginx-src
cc=${CC:-cc}
stamp="$src|$libsess|$cc|$cc_opt|$ld_opt|$(cksum < "$here/config")"
# Configure once per set of inputs (nginx's configure takes a while);
# the module's sources are rebuilt by make whenever they change.
if [ ! -f "$tree/objs/Makefile" ] || [ "$(cat "$tree/.sessiond-stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$tree"
    cp -r "$src" "$tree"
    # shellcheck disable=SC1091
    . "$tree/conf_flags"
    (cd "$tree" && SESSIOND_LIBSESS=$libsess ./configure "${NGX_CONF_FLAGS[@]}" \
        --with-cc="$cc" --with-cc-opt="-fPIC $cc_opt" --with-ld-opt="$ld_opt" \
        --add-dynamic-module="$here" >"$out/nginx-configure.log" 2>&1) || {
        echo "build-module.sh: nginx configure failed; see $out/nginx-configure.log" >&2
        tail -20 "$out/nginx-configure.log" >&2
        exit 1
    }
    printf '%s' "$stamp" > "$tree/.sessiond-stamp"
fi
# The archive is an input the module's make rules do not know about.
if [ "$libsess" -nt "$tree/objs/ngx_http_sessiond_module.so" ] 2>/dev/null; then
    rm -f "$tree/objs/ngx_http_sessiond_module.so"
fi
make -s -C "$tree" -f objs/Makefile modules
cp "$tree/objs/ngx_http_sessiond_module.so" "$out/ngx_http_sessiond_module.so"
