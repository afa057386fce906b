# make compare: the fork-join round of the seed's pattern, OpenMP and this
# library, in one process (benches/c/compare.c). A benchmark, not a test.
.PHONY: compare
$(BUILD)/compare: benches/c/compare.c $(LIB_A) include/cllm_threaded.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -fopenmp -Iinclude $< -o $@ $(LIB_A) $(NATIVE_LIBS)

compare: $(BUILD)/compare
	$(BUILD)/compare
