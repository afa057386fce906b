# make compare: the fork-join round of the seed's pattern, OpenMP, this
# library and the floor (the smallest correct spin-then-park fork-join, the
# hardware reference), in one process (benches/c/compare.c); quiet and beside
# one spinning process of its own (the contended line). A benchmark, not a
# test: about two minutes; the report lines of issue 12, then the spreads.
.PHONY: compare
$(BUILD)/compare: benches/c/compare.c $(LIB_A) include/cllm_threaded.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -fopenmp -Iinclude $< -o $@ $(LIB_A) $(NATIVE_LIBS)

compare: $(BUILD)/compare
	$(BUILD)/compare

# make compare-runs [RUNS=5]: make compare RUNS times, every figure's runs
# and median, and issue 12's targets checked on the medians.
.PHONY: compare-runs
RUNS ?= 5
compare-runs: $(BUILD)/compare
	tools/compare-runs $(RUNS) $(BUILD)/compare
