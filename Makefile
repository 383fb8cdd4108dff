# Makefile - thin wrapper over CMake for the README's commands.
#
#   make        build build/sessiond, build/sessctl and libsess
#   make test   install missing packages, then run every test: the normal
#               build, the ASan+UBSan build, and a short fuzz run
#   make run    start sessiond in the foreground on 127.0.0.1:7700 with the
#               embedded store under ./var/
#   make fuzz   build the libFuzzer targets (build-fuzz/)
#   make deps   install missing Debian packages (root)
#   make install PREFIX=/usr/local DESTDIR=
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX ?= /usr/local
CTEST  := ctest --output-on-failure -j$(JOBS)

.PHONY: all deps build test test-plain test-asan test-fuzz fuzz run install clean valgrind

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
	cmake --build build-release -j$(JOBS) --target sessiond libbench floor
	python3 bench/run.py --build-dir build-release

# make nginx-module: build/ngx_http_sessiond_module.so for Debian's nginx,
# configured with the packaged nginx's own flags (nginx-dev's conf_flags,
# so the module's ABI signature matches) in a copy of /usr/share/nginx/src
# under build/nginx-src; libsess is linked in statically (PIC objects).
NGINX_SRC ?= /usr/share/nginx/src
.PHONY: nginx-module
nginx-module: SHELL := /bin/bash
nginx-module: build
	rm -rf build/nginx-src && cp -r $(NGINX_SRC) build/nginx-src
	cd build/nginx-src && . ./conf_flags && \
	  SESSIOND_BUILD=$(CURDIR)/build ./configure "$${NGX_CONF_FLAGS[@]}" \
	    --add-dynamic-module=$(CURDIR)/nginx >/dev/null && \
	  $(MAKE) -f objs/Makefile modules
	cp build/nginx-src/objs/ngx_http_sessiond_module.so build/
