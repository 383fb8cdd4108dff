# Makefile - thin wrapper over CMake for the README's commands.
#
#   make        build build/sessiond, build/sessctl and libsess
#   make test   install missing packages, then run every test: the normal
#               build, the ASan+UBSan build, and a short fuzz run
#   make run    start sessiond in the foreground on 127.0.0.1:7700 with the
#               embedded store under ./var/
#   make fuzz   build the libFuzzer targets (build-fuzz/)
#   make demo   the demo shop (examples/shop/) behind nginx and sessiond on
#               loopback; prints the URL, Ctrl-C stops all three (DEMO_ARGS=--tls)
#   make deps   install missing Debian packages (root)
#   make nginx-module  build/ngx_http_sessiond_module.so (docs/nginx-module.md)
#   make deb    the Debian packages into build-deb/ (debian/)
#   make install PREFIX=/usr/local DESTDIR=
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX ?= /usr/local
CTEST  := ctest --output-on-failure -j$(JOBS)

.PHONY: all deps build test test-plain test-asan test-fuzz fuzz run demo install clean valgrind

all: build

deps:
	@sh scripts/install-deps.sh

build/CMakeCache.txt:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX)

build: build/CMakeCache.txt
	cmake --build build -j$(JOBS)

build-asan/CMakeCache.txt:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSESS_SANITIZE=ON

build-fuzz/CMakeCache.txt:
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSESS_FUZZ=ON

fuzz: build-fuzz/CMakeCache.txt
	cmake --build build-fuzz -j$(JOBS)

test: deps build test-plain test-asan test-fuzz
	@echo "make test: all suites passed (plain, ASan+UBSan, fuzz)"

test-plain: build
	cd build && $(CTEST)

test-asan: build-asan/CMakeCache.txt
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 $(CTEST)

test-fuzz: fuzz
	cd build-fuzz && $(CTEST)

valgrind: build
	cd build && ctest -L valgrind --output-on-failure

run: build
	@mkdir -p var
	./build/sessiond --listen 127.0.0.1:7700 --store lmdb:./var/sessions --keys ./var/keys $(ARGS)

demo: deps build
	node examples/shop/demo.js --build build $(DEMO_ARGS)

install: build
	DESTDIR=$(DESTDIR) cmake --install build --prefix $(PREFIX)

clean:
	rm -rf build build-asan build-fuzz

# make bench: the benchmark suite (bench/run.py) on a Release build in
# build-release/; BENCH_QUICK=1 for a smoke run of a few seconds.  Report
# under bench/results/<date>-<host>.md; see docs/performance.md.
.PHONY: bench
bench:
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DSESS_TESTS=OFF
	cmake --build build-release -j$(JOBS) --target sessiond libbench floor jwtbench nginx_module
	python3 bench/run.py --build-dir build-release

# make nginx-module: build/ngx_http_sessiond_module.so for Debian's nginx
# (CMake's nginx_module target: nginx/build-module.sh configures a copy of
# nginx-dev's /usr/share/nginx/src with the packaged nginx's own flags,
# conf_flags, so the module's signature matches; libsess is linked in
# statically).  docs/nginx-module.md.
.PHONY: nginx-module
nginx-module: build/CMakeCache.txt
	cmake --build build -j$(JOBS) --target nginx_module
	cp build/nginx-module/ngx_http_sessiond_module.so build/

# make deb: the Debian packages (debian/, debhelper) into build-deb/:
# sessiond, libsess0, libsess-dev, libnginx-mod-http-sessiond, then
# lintian on them.  docs/deployment.md, "Debian packages".
.PHONY: deb
deb:
	sh debian/make-deb.sh build-deb
