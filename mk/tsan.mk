# make tsan: C programs under ThreadSanitizer (ffi-tests/tsan/: the pool's
# hand-offs, and the lock, the memory pool and the role pools),
# built with -fsanitize=thread against the normal static library. The Rust
# side is not instrumented (stable Rust cannot be); it tells TSan about its
# own locks and hand-offs (thread_support::tsan), and a report in a clean
# program fails the run (TSan exits with 66).
#
# The planted races run first: one between two threads of the program (the
# run fails if TSan is not live), and one in each kind of program code the
# library runs on its own threads, which run with TSan's ignore on except
# around that code (thread_support::tsan): each must be reported.
TSAN_DIR      := $(BUILD)/tsan
TSAN_CFLAGS   := -std=c11 -O1 -g -fsanitize=thread -Iinclude -Iffi-tests
TSAN_PROGRAMS := $(TSAN_DIR)/test_tsan_pool $(TSAN_DIR)/test_tsan_objects

$(TSAN_DIR)/%: ffi-tests/tsan/%.c $(LIB_A) $(HEADERS) ffi-tests/check.h
	@mkdir -p $(dir $@)
	$(CC) $(TSAN_CFLAGS) $< -o $@ $(LIB_A) $(NATIVE_LIBS)

# The races planted in program code that the library runs on its threads:
# each must be reported (see test_tsan_planted_callbacks.c).
TSAN_PLANTED_MODES := run_all dispatch parallel_for reduce roles_task roles_parallel_for periodic frame_stop

.PHONY: tsan
tsan: $(TSAN_DIR)/test_tsan_planted $(TSAN_DIR)/test_tsan_planted_callbacks $(TSAN_PROGRAMS)
	ffi-tests/tsan/run.sh $(TSAN_DIR)/test_tsan_planted \
	  $(addprefix $(TSAN_DIR)/test_tsan_planted_callbacks:,$(TSAN_PLANTED_MODES)) -- $(TSAN_PROGRAMS)

TEST_TARGETS += tsan

# make tsan-survey: every C test program of FFI_TESTS built under TSan into
# build/tsan-all/ and run once; prints each program's report count (not
# part of make test: the areas docs/c-api.md lists as not covered yet
# still get reports).
TSAN_ALL_DIR := $(BUILD)/tsan-all
.PHONY: tsan-survey
tsan-survey:
	$(MAKE) --no-print-directory BUILD=$(TSAN_ALL_DIR) CC="$(CC) -fsanitize=thread -g" \
	  $(patsubst $(BUILD)/%,$(TSAN_ALL_DIR)/%,$(FFI_TESTS))
	@noaslr=; setarch "$$(uname -m)" -R true 2>/dev/null && noaslr="setarch $$(uname -m) -R"; \
	for p in $(patsubst $(BUILD)/%,$(TSAN_ALL_DIR)/%,$(FFI_TESTS)); do \
	  $$noaslr timeout 300 $$p >$$p.tsan.log 2>&1; rc=$$?; \
	  echo "$$(basename $$p) exit=$$rc reports=$$(grep -c 'WARNING: ThreadSanitizer' $$p.tsan.log) log=$$p.tsan.log"; \
	done
