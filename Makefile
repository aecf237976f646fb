# Thin wrapper over CMake for the README's commands.  Every target installs
# what is missing first (scripts/install-deps), so a fresh Debian 12 machine
# needs nothing but make and this tree.
#
#   make demo            see gnezdo do its main job
#   make check           build and run every test
#   make check-sanitize  the tests again under ASan + UBSan
#   make check-faults    the tests again on a hostile network (GNEZDO_FAULTS)
#   make check-tsan      a threads stress run under ThreadSanitizer
#   make check-valgrind  the event-loop, blocking, datagram and TLS suites
#                        under Valgrind's memcheck (VALGRIND_SUBSET=all|ci)
#   make soak            500 connections of churn per backend and over TLS,
#                        bytes, descriptors and memory checked (SOAK_SECONDS,
#                        SOAK_TLS_SECONDS)
#   make fuzz            every libFuzzer target, FUZZ_SECONDS each (docs/testing.md)
#   make check-abi       the shared library's ABI against abi/libgnezdo.abi
#   make install         install into PREFIX (default /usr/local)
#   make package         a .deb for /usr in $(BUILD)/ (gnezdo_VERSION_ARCH.deb)
#   make check-package   install that .deb, build the consumers against it,
#                        remove it again (needs root; not part of check)
#   make bench           benchmarks: gnezdo vs epoll and io_uring floors, libuv, libev
#   make windows         cross-build for Windows x86-64 into build-windows/
#                        (mingw-w64: gnezdo.dll, its import library, libgnezdo.a,
#                        gnezdo.exe and the tests; docs/windows.md)
#   make check-windows   those tests and the CLI under Wine

PREFIX       ?= /usr/local
JOBS         ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?= endpoint framing conn cli_args http_request tls_server
TSAN_RUNS    ?= 1
BUILD        ?= build
CMAKE_FLAGS  ?=

.PHONY: windows check-windows
.PHONY: all deps build demo check check-sanitize check-faults check-abi abi-baseline fuzz \
	install package check-package bench clean check-valgrind soak

all: build

deps:
	@scripts/install-deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	$(BUILD)/tools/gnezdo demo

check: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

check-sanitize: deps
	cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DGN_SANITIZE=ON >/dev/null
	cmake --build build-sanitize -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --test-dir build-sanitize --output-on-failure -j $(JOBS) \
		$(if $(SANITIZE_EXCLUDE),-E '$(SANITIZE_EXCLUDE)')

# The suite on a hostile network (docs/testing.md): short reads and
# writes, EAGAIN, EINTR and late connects in FAULTS_RATE of socket calls.
# One pass with a fixed seed, one with a random seed printed first (or
# FAULTS_SEED, to replay it); the random pass runs each suite on the
# epoll backend only.  FAULTS_FIXED=no (CI, for time) skips the fixed
# pass, and the random one runs on every backend.  Left out, as they open no socket:
# install_consumer and abi_compat (build programs against the library)
# and man_pages (renders the manuals).
FAULTS_RATE ?= 0.1
FAULTS_SEED ?=
FAULTS_FIXED ?= yes
FAULTS_EXCLUDE ?= # more of the -E regex, e.g. '|_poll$$$$' (CI: epoll and io_uring)
SANITIZE_EXCLUDE ?= # a ctest -E regex of suites the sanitizer run leaves out (CI, for time)
FAULTS_SKIP = ^(install_consumer|abi_compat|man_pages)$$
check-faults: build
	@if [ "$(FAULTS_FIXED)" != no ]; then \
		echo "check-faults: GNEZDO_FAULTS=20261201:$(FAULTS_RATE)"; \
		GNEZDO_FAULTS=20261201:$(FAULTS_RATE) \
			ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) -E '$(FAULTS_SKIP)'; fi
	@seed=$${FAULTS_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	echo "check-faults: GNEZDO_FAULTS=$$seed:$(FAULTS_RATE) (replay: make check-faults FAULTS_FIXED=$(FAULTS_FIXED) FAULTS_SEED=$$seed)"; \
	GNEZDO_FAULTS=$$seed:$(FAULTS_RATE) \
		ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) \
		-E '$(FAULTS_SKIP)$(if $(filter no,$(FAULTS_FIXED)),,|_(poll|uring)$$)$(FAULTS_EXCLUDE)' || \
	{ echo "check-faults: failed under GNEZDO_FAULTS=$$seed:$(FAULTS_RATE)"; exit 1; }

# The ABI only grows within a major version (docs/api.md); abi-baseline
# rewrites the baseline, for a release or a new major version.
check-abi: build
	@scripts/install-deps --abi
	scripts/check-abi $(BUILD)

abi-baseline: build
	@scripts/install-deps --abi
	scripts/check-abi --update $(BUILD)

# Threads under ThreadSanitizer: a plain stress program (Criterion cannot
# start under TSan), TSAN_RUNS times in a row; CI runs three.
check-tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DGN_TSAN_STRESS=ON \
		-DGN_BUILD_TESTS=OFF -DGN_BUILD_EXAMPLES=OFF -DGN_BUILD_BENCH=OFF \
		-DCMAKE_C_FLAGS="-fsanitize=thread -O1" -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread >/dev/null
	cmake --build build-tsan -j $(JOBS) --target tsan_stress
	sh tests/make_certs.sh build-tsan/certs
	for i in $$(seq 1 $(TSAN_RUNS)); do \
		echo "tsan_stress: pass $$i of $(TSAN_RUNS)"; \
		TSAN_OPTIONS=halt_on_error=1 timeout 300 build-tsan/tsan_stress build-tsan/certs || exit 1; \
	done

# Valgrind's memcheck over the event-loop suites (test_dgram and test_tls
# among them) on epoll and poll, and the blocking suites: no error, no
# definite or indirect leak (tests/valgrind.sh says how, and why not
# io_uring).  VALGRIND_SUBSET=ci: epoll only, what CI has time for.
VALGRIND_SUBSET ?= all
check-valgrind: build
	@scripts/install-deps --valgrind
	sh tests/valgrind.sh $(BUILD) $(VALGRIND_SUBSET) $(JOBS)

# tests/soak.c for SOAK_SECONDS on each backend, then SOAK_TLS_SECONDS
# over TLS (the default backend; its handshakes need a longer warm-up);
# a backend this machine lacks is skipped (exit 77).
SOAK_SECONDS ?= 15
SOAK_TLS_SECONDS ?= $(SOAK_SECONDS)
soak: build
	sh tests/make_certs.sh $(BUILD)/soak-certs
	@for conf in "uring $(SOAK_SECONDS)" "epoll $(SOAK_SECONDS)" "poll $(SOAK_SECONDS)" \
		"--tls $(BUILD)/soak-certs default $(SOAK_TLS_SECONDS)"; do \
		$(BUILD)/tests/soak $$conf; rc=$$?; \
		if [ $$rc -eq 77 ]; then echo "soak: $$conf skipped: not available here"; \
		elif [ $$rc -ne 0 ]; then echo "soak: $$conf failed"; exit 1; fi; \
	done

fuzz:
	@scripts/install-deps --fuzz
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DGN_FUZZ=ON \
		-DGN_BUILD_TESTS=OFF -DGN_BUILD_EXAMPLES=OFF >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	@for t in $(FUZZ_TARGETS); do sh fuzz/run.sh $$t $(FUZZ_SECONDS) || exit 1; done

install: build
	cmake --install $(BUILD)

# CPack's DEB generator (CMakeLists.txt); the package lands in $(BUILD)/.
package: build
	rm -f $(BUILD)/gnezdo_*.deb
	cd $(BUILD) && cpack -G DEB

# Installs into /usr, so it is its own target rather than a ctest entry:
# apt-get holds the dpkg lock, and `make check` must not change the system.
# Exit 77 is a skip (not root, not Debian, gnezdo already installed).
check-package: package
	sh tests/package_test.sh $(BUILD) || [ $$? -eq 77 ]

# Not part of check and not run in CI: numbers depend on the machine.  The
# peers (liburing, libuv, libev) are installed before CMake looks for them.
bench:
	@scripts/install-deps --bench
	@$(MAKE) --no-print-directory build
	bench/run $(BUILD)

clean:
	rm -rf build build-sanitize build-fuzz build-tsan

# Windows, cross-built here with mingw-w64 and run under Wine (docs/windows.md).
# Wine keeps its state in a prefix of the build's own, made on first use;
# its server first, kept up 60 s past the last Wine process, so the suites
# and the CLI checks do not each wait for Wine to start again.
WINDOWS_BUILD ?= build-windows
WINE_ENV = WINEDEBUG=-all WINEPREFIX=$(abspath $(WINDOWS_BUILD))/wineprefix
windows:
	@scripts/install-deps --windows
	cmake -S . -B $(WINDOWS_BUILD) -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64-x86_64.cmake >/dev/null
	cmake --build $(WINDOWS_BUILD) -j $(JOBS)

check-windows: windows build
	@mkdir -p $(WINDOWS_BUILD)/wineprefix
	$(WINE_ENV) wineserver -p 60 </dev/null >/dev/null 2>&1 || true
	$(WINE_ENV) wineboot -i >/dev/null 2>&1 || true
	$(WINE_ENV) ctest --test-dir $(WINDOWS_BUILD) --output-on-failure -j $(JOBS)
	$(WINE_ENV) tests/windows/cli_wine.sh $(WINDOWS_BUILD) $(BUILD)
