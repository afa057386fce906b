# Corpus loader: C tests of the cllm_loader_* API, a fast check of the
# benchmark program (files opened once cold, only the cache warm), and the
# benchmark itself (make bench-loader: ~200 MB corpus, not part of make test).
FFI_TESTS += $(BUILD)/loader/test_loader

.PHONY: loader-check bench-loader
loader-check:
	$(CARGO) run --release -q -p corpus-loader --example bench_loader -- --check

TEST_TARGETS += loader-check

# Generates target/loader-bench/corpus once (deterministic, >= 200 MB in ~3000
# files), then prints detail lines and one line
# "loader cold_mb_s=.. warm_mb_s=.. cat_mb_s=.. files_opened=.. files=..".
bench-loader:
	$(CARGO) run --release -q -p corpus-loader --example bench_loader

# The loader's work queue and look-ahead hand-over are model-checked by loom.
LOOM_CRATES += corpus-loader
