# make asan: every C test program of FFI_TESTS (and the host's own test)
# built a second time with the C side under ASan+UBSan into build/asan/, and
# run. The Rust archives are linked as they are (stable Rust cannot be
# instrumented); ASan still intercepts their malloc/free, so leaks and bad
# frees of Rust memory are seen too. A separate run from valgrind (the two
# cannot be combined).
#
# The programs are built by a second make with BUILD=build/asan and the
# sanitizer flags in CC: every rule that builds a program of FFI_TESTS (the
# generic $(BUILD)/% rule, the drop-in's and the host's rules, the host
# library itself) is reused as it is, so a program added to FFI_TESTS with a
# rule of its own gets its ASan twin with no change here.
#
# ffi-tests/sanitize/test_planted runs first: a heap overflow, a signed
# overflow and a leak planted in child processes, each of which must be
# reported (and a clean child must not be): the run fails if the sanitizers
# are not live.
ASAN_DIR     := $(BUILD)/asan
ASAN_FLAGS   := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# allocator_may_return_null=1: the tests ask for impossible allocations on
# purpose (test_frame_limits: 2^62 bytes) and expect an error, not a crash.
ASAN_OPTIONS_ := detect_leaks=1:abort_on_error=0:halt_on_error=1:allocator_may_return_null=1
UBSAN_OPTIONS_ := print_stacktrace=1:halt_on_error=1
# Recursive (=) and used in recipes only: the areas after this file
# (alphabetical order) still add to FFI_TESTS.
ASAN_PROGRAMS = $(patsubst $(BUILD)/%,$(ASAN_DIR)/%,$(BUILD)/sanitize/test_planted $(FFI_TESTS) $(BUILD)/host/test_host)

.PHONY: asan
asan:
	$(MAKE) --no-print-directory BUILD=$(ASAN_DIR) CC="$(CC) $(ASAN_FLAGS)" $(ASAN_PROGRAMS)
	ASAN_OPTIONS=$(ASAN_OPTIONS_) UBSAN_OPTIONS=$(UBSAN_OPTIONS_) ffi-tests/run.sh $(ASAN_PROGRAMS)

TEST_TARGETS += asan
