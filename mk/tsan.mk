# make tsan: C programs under ThreadSanitizer, built with -fsanitize=thread
# against the normal static library: ffi-tests/tsan/ (memory handed through
# the pool, the role pools, the lock and the memory pool) and every C test
# program of FFI_TESTS again (built into build/tsan-all/ by a second make,
# as make asan does). The Rust side is not instrumented (stable Rust cannot
# be); it tells TSan about its hand-offs and keeps its own threads out of
# view (thread_support::tsan). A report in any of them fails the run (TSan
# exits with 66). allocator_may_return_null=1: some tests ask for impossible
# allocations on purpose and expect an error, not an abort.
#
# The stress program (ffi-tests/stress) runs last, for TSAN_STRESS_SECONDS:
# six program threads calling into the same pools, locks and loaders at once.
#
# The planted races run first: one between two threads of the program (the
# run fails if TSan is not live), and one in each kind of program code the
# library runs on its own threads, which run with TSan's ignore on except
# around that code: each must be reported.
TSAN_DIR      := $(BUILD)/tsan
TSAN_ALL_DIR  := $(BUILD)/tsan-all
TSAN_CFLAGS   := -std=c11 -O1 -g -fsanitize=thread -Iinclude -Iffi-tests
TSAN_PROGRAMS := $(TSAN_DIR)/test_tsan_pool $(TSAN_DIR)/test_tsan_objects
# Recursive (=) and used in recipes only: areas after this file still add
# to FFI_TESTS.
TSAN_ALL_PROGRAMS = $(patsubst $(BUILD)/%,$(TSAN_ALL_DIR)/%,$(FFI_TESTS)) $(TSAN_ALL_DIR)/stress/stress
TSAN_STRESS_SECONDS ?= 8

$(TSAN_DIR)/%: ffi-tests/tsan/%.c $(LIB_A) $(HEADERS) ffi-tests/check.h
	@mkdir -p $(dir $@)
	$(CC) $(TSAN_CFLAGS) $< -o $@ $(LIB_A) $(NATIVE_LIBS)

# The races planted in program code that the library runs on its threads
# (see test_tsan_planted_callbacks.c).
TSAN_PLANTED_MODES := run_all dispatch parallel_for reduce roles_task roles_parallel_for periodic frame_stop

.PHONY: tsan
tsan: $(TSAN_DIR)/test_tsan_planted $(TSAN_DIR)/test_tsan_planted_callbacks $(TSAN_PROGRAMS)
	$(MAKE) --no-print-directory BUILD=$(TSAN_ALL_DIR) CC="$(CC) -fsanitize=thread -g" $(TSAN_ALL_PROGRAMS)
	STRESS_SECONDS=$(TSAN_STRESS_SECONDS) TSAN_OPTIONS=allocator_may_return_null=1 ffi-tests/tsan/run.sh $(TSAN_DIR)/test_tsan_planted \
	  $(addprefix $(TSAN_DIR)/test_tsan_planted_callbacks:,$(TSAN_PLANTED_MODES)) \
	  -- $(TSAN_PROGRAMS) $(TSAN_ALL_PROGRAMS)

TEST_TARGETS += tsan
