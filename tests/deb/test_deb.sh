#!/bin/sh
# test_deb.sh - the Debian packages on this machine, end to end
# (debian/, docs/deployment.md "Debian packages"): `make deb` (debhelper,
# lintian clean), `apt-get install ./*.deb`, the installed files and modes,
# sessiond started the way its systemd unit starts it (the unit's
# ExecStartPre and ExecStart as the unit's User/Group: systemd is not PID 1
# here), the packaged nginx with the packaged load_module snippet and
# workers as www-data, a login through sessiond's API and a validate
# through the module, then `apt-get purge` of every package.
#
#   sh tests/deb/test_deb.sh SOURCE_DIR WORK_DIR
# Exit 0 pass, 1 fail, 77 skipped (not root, or sessiond already installed).
set -eu
src=$1
work=$2
pkgs="sessiond libsess0 libsess-dev libnginx-mod-http-sessiond"

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: installing packages needs root"
    exit 77
fi
for p in $pkgs; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "installed"; then
        echo "SKIP: $p is already installed on this machine; not touching it"
        exit 77
    fi
done

fail() { echo "FAIL: $*" >&2; exit 1; }
pids=""
cleanup() {
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    sleep 1
    for pid in $pids; do kill -9 "$pid" 2>/dev/null || true; done
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq $pkgs >/dev/null 2>&1 || true
    # The package leaves its system user (Debian practice); the test does
    # not leave one behind.
    if getent passwd sessiond >/dev/null; then deluser --quiet --system sessiond >/dev/null 2>&1 || true; fi
    if getent group sessiond >/dev/null; then delgroup --quiet --system sessiond >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

rm -rf "$work"
mkdir -p "$work"
echo "== make deb"
sh "$src/debian/make-deb.sh" "$work/out" || fail "make deb (build or lintian)"
ls "$work/out"/*.deb

echo "== apt-get install ./*.deb"
(cd "$work/out" && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    ./sessiond_*.deb ./libsess0_*.deb ./libsess-dev_*.deb ./libnginx-mod-http-sessiond_*.deb) \
    >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "apt-get install"; }

echo "== installed files"
for f in /usr/bin/sessiond /usr/bin/sessctl /etc/sessiond/sessiond.ini \
         /lib/systemd/system/sessiond.service /usr/include/sess.h \
         /usr/lib/nginx/modules/ngx_http_sessiond_module.so \
         /usr/share/nginx/modules-available/mod-http-sessiond.conf \
         /etc/nginx/modules-enabled/50-mod-http-sessiond.conf; do
    [ -e "$f" ] || fail "$f not installed"
done
ls /usr/lib/*/libsess.so.0 >/dev/null || fail "libsess.so.0 not installed"
pkg-config --exists libsess || fail "libsess.pc not found by pkg-config"
getent passwd sessiond >/dev/null || fail "no sessiond user"
id -nG www-data | tr ' ' '\n' | grep -qx sessiond || fail "www-data is not in group sessiond"
[ "$(stat -c '%U:%G %a' /var/lib/sessiond)" = "sessiond:sessiond 750" ] ||
    fail "/var/lib/sessiond: $(stat -c '%U:%G %a' /var/lib/sessiond), want sessiond:sessiond 750"
[ "$(stat -c '%U %a' /var/lib/sessiond/keys)" = "sessiond 700" ] || fail "keys dir mode"
ls /var/lib/sessiond/keys/*.key >/dev/null 2>&1 || fail "no record key generated"
dpkg-query -W -f='${Depends}' libnginx-mod-http-sessiond | grep -q "nginx-abi-" ||
    fail "the module does not depend on nginx-abi"
grep -q "load_module modules/ngx_http_sessiond_module.so;" \
    /usr/share/nginx/modules-available/mod-http-sessiond.conf || fail "load_module snippet"

echo "== sessiond, as its unit starts it"
unit=/lib/systemd/system/sessiond.service
user=$(sed -n 's/^User=//p' "$unit")
group=$(sed -n 's/^Group=//p' "$unit")
umask_=$(sed -n 's/^UMask=//p' "$unit")
pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
start=$(sed -n 's/^ExecStart=//p' "$unit")
install -d -o "$user" -g "$group" -m 0755 /run/sessiond    # RuntimeDirectory=
# Run in a subshell of its own: it becomes the unit's process (exec), so
# $! is sessiond itself.
as_unit() { umask "$umask_"; exec setpriv --reuid="$user" --regid="$group" --init-groups "$@"; }
# shellcheck disable=SC2086
(as_unit $pre) >"$work/check.log" 2>&1 || { cat "$work/check.log"; fail "ExecStartPre"; }
# shellcheck disable=SC2086
(as_unit $start) 2>"$work/sessiond.log" &
pids="$pids $!"
i=0
until grep -q "listening on" "$work/sessiond.log"; do
    i=$((i + 1)); [ $i -lt 200 ] || { cat "$work/sessiond.log"; fail "sessiond did not start"; }
    sleep 0.1
done
for f in data.mdb lock.mdb; do
    [ "$(stat -c '%U:%G %a' /var/lib/sessiond/sessions/$f)" = "sessiond:sessiond 660" ] ||
        fail "$f: $(stat -c '%U:%G %a' /var/lib/sessiond/sessions/$f), want sessiond:sessiond 660"
done

echo "== the packaged nginx with the packaged module"
ng=$work/nginx
mkdir -p "$ng/html" "$ng/tmp"
echo "protected page" > "$ng/html/index.html"
chmod -R a+rX "$ng"
chmod a+x "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$ng/nginx.conf" <<CONF
user www-data;
worker_processes 2;
daemon off;
pid $ng/nginx.pid;
error_log $ng/error.log info;
include /etc/nginx/modules-enabled/*.conf;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $ng/tmp/body;
    proxy_temp_path $ng/tmp/proxy;
    fastcgi_temp_path $ng/tmp/fastcgi;
    uwsgi_temp_path $ng/tmp/uwsgi;
    scgi_temp_path $ng/tmp/scgi;
    sessiond_config /etc/sessiond/sessiond.ini;
    server {
        listen 127.0.0.1:$port;
        root $ng/html;
        location / {
            sessiond on;
            add_header X-User \$sessiond_user always;
            add_header X-Outcome \$sessiond_outcome always;
        }
    }
}
CONF
# The packaged prefix (/usr/share/nginx): the snippet's "modules/" is
# relative to it.  Everything else in the file is absolute.
/usr/sbin/nginx -t -c "$ng/nginx.conf" -e "$ng/error.log" >"$work/nginx-t.log" 2>&1 ||
    { cat "$work/nginx-t.log" "$ng/error.log"; fail "nginx -t"; }
/usr/sbin/nginx -c "$ng/nginx.conf" -e "$ng/error.log" 2>"$work/nginx.log" &
pids="$pids $!"
i=0
until curl -s -o /dev/null "http://127.0.0.1:$port/"; do
    i=$((i + 1)); [ $i -lt 200 ] || { cat "$ng/error.log"; fail "nginx did not start"; }
    sleep 0.1
done

echo "== login (sessiond API) and validate (the module)"
ua="deb-test/1.0"
curl -s -o "$work/login.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"user_id\":\"debuser\",\"client\":{\"ip\":\"127.0.0.1\",\"user_agent\":\"$ua\"}}" \
    http://127.0.0.1:7700/v1/sessions > "$work/login.code"
[ "$(cat "$work/login.code")" = 201 ] || { cat "$work/login.json"; fail "login"; }
cookie=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["set_cookie"].split(";")[0])' "$work/login.json")
code=$(curl -s -o "$work/page" -D "$work/headers" -w '%{http_code}' -A "$ua" -H "Cookie: $cookie" "http://127.0.0.1:$port/")
[ "$code" = 200 ] || { cat "$work/headers" "$ng/error.log"; fail "validate through the module: $code"; }
grep -q "protected page" "$work/page" || fail "page body"
grep -qi "^X-User: debuser" "$work/headers" || { cat "$work/headers"; fail "\$sessiond_user"; }
code=$(curl -s -o /dev/null -w '%{http_code}' -A "$ua" "http://127.0.0.1:$port/")
[ "$code" = 401 ] || fail "no cookie: $code, want 401"
code=$(curl -s -o /dev/null -w '%{http_code}' -A "other" -H "Cookie: $cookie" "http://127.0.0.1:$port/")
[ "$code" = 401 ] || fail "another User-Agent (binding): $code, want 401"
# The worker processes run as www-data and still opened the store.
ps -o user= --ppid "$(cat "$ng/nginx.pid")" | grep -qx www-data || fail "workers are not www-data"
if grep -E "\[(alert|emerg|crit)\]" "$ng/error.log"; then fail "nginx error log"; fi

echo "== purge"
for pid in $pids; do kill "$pid" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=""
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq $pkgs >"$work/purge.log" 2>&1 ||
    { cat "$work/purge.log"; fail "apt-get purge"; }
for p in $pkgs; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "installed"; then fail "$p still installed"; fi
done
for f in /var/lib/sessiond /etc/sessiond /usr/bin/sessiond \
         /etc/nginx/modules-enabled/50-mod-http-sessiond.conf; do
    [ ! -e "$f" ] || fail "$f left after purge"
done
if id -nG www-data | tr ' ' '\n' | grep -qx sessiond; then fail "www-data still in group sessiond"; fi
echo "PASS: packages built, lintian clean, installed, served a login and a validate, purged"
