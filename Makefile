# pvmem: a thin wrapper around meson + ninja. `make run` and `make check` work on a fresh Debian
# machine: they install missing build dependencies with apt-get when run as root.
BUILD ?= build
ASAN_BUILD ?= build-asan
MESON_OPTS ?=

.PHONY: all deps build run check check-asan bench fuzz install clean

all: build

$(BUILD)/build.ninja:
	@./scripts/install-deps.sh build
	meson setup $(BUILD) $(MESON_OPTS)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

# The main job: a whole machine with the simulated guest, running the default demo.
run:
	@./scripts/install-deps.sh run
	@$(MAKE) --no-print-directory build
	./$(BUILD)/pvmem run

# The whole test suite; ends with "N passed, N failed".
check:
	@./scripts/install-deps.sh check
	@$(MAKE) --no-print-directory build
	@meson test -C $(BUILD) --print-errorlogs --num-processes 2 > $(BUILD)/meson-test.out 2>&1; \
		status=$$?; tail -n 40 $(BUILD)/meson-test.out; \
		python3 scripts/test-summary.py $(BUILD); exit $$status

# The same suite under AddressSanitizer and UndefinedBehaviorSanitizer.
check-asan:
	@./scripts/install-deps.sh check
	@test -f $(ASAN_BUILD)/build.ninja || meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
	ninja -C $(ASAN_BUILD)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C $(ASAN_BUILD) --print-errorlogs --num-processes 2 > $(ASAN_BUILD)/meson-test.out 2>&1; \
		status=$$?; tail -n 40 $(ASAN_BUILD)/meson-test.out; \
		python3 scripts/test-summary.py $(ASAN_BUILD); exit $$status

bench:
	@$(MAKE) --no-print-directory build
	./$(BUILD)/pvmem bench all

# libFuzzer harnesses (clang), each run for FUZZ_SECONDS.
FUZZ_SECONDS ?= 30
fuzz:
	@./scripts/install-deps.sh fuzz
	@test -f build-fuzz/build.ninja || CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C build-fuzz
	@for f in build-fuzz/tests/fuzz/fuzz-*; do \
		name=$${f##*/fuzz-}; echo "== $$name"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=65536 tests/fuzz/corpus/$$name || exit 1; \
	done

install: build
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
