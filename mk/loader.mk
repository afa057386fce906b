# Corpus loader: C tests of the cllm_loader_* API, a fast check of the
# benchmark program (files opened once cold, only the cache warm), and the
# benchmark itself (make bench-loader: ~200 MB corpus, not part of make test).
FFI_TESTS += $(BUILD)/loader/test_loader

.PHONY: loader-check bench-loader
loader-check:
	$(CARGO) run --release -q -p corpus-loader --example bench_loader -- --check

TEST_TARGETS += loader-check

# Generates target/loader-bench/corpus once (deterministic, >= 200 MB in ~3000
# files), then prints the CPU line, detail lines and one line
# "loader cold_mb_s=.. warm_mb_s=.. cat_mb_s=.. tokenize_mb_s_per_core=..
# files_opened=.. files=..". As root it also drops the machine's page cache
# for a second set of figures: BENCH_LOADER_ARGS=--hot-only skips that on a
# shared machine.
bench-loader:
	$(CARGO) run --release -q -p corpus-loader --example bench_loader -- $(BENCH_LOADER_ARGS)

# The loader's work queue and look-ahead hand-over are model-checked by loom.
LOOM_CRATES += corpus-loader
