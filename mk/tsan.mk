# make tsan: C programs under ThreadSanitizer (ffi-tests/tsan/: the pool's
# hand-offs, and the lock, the memory pool and the role pools),
# built with -fsanitize=thread against the normal static library. The Rust
# side is not instrumented (stable Rust cannot be); it tells TSan about its
# own locks and hand-offs (thread_support::tsan), and a report in a clean
# program fails the run (TSan exits with 66).
#
# test_tsan_planted runs first: a race between two threads that TSan must
# report, so that the run fails if TSan is not live.
TSAN_DIR      := $(BUILD)/tsan
TSAN_CFLAGS   := -std=c11 -O1 -g -fsanitize=thread -Iinclude -Iffi-tests
TSAN_PROGRAMS := $(TSAN_DIR)/test_tsan_pool $(TSAN_DIR)/test_tsan_objects

$(TSAN_DIR)/%: ffi-tests/tsan/%.c $(LIB_A) $(HEADERS) ffi-tests/check.h
	@mkdir -p $(dir $@)
	$(CC) $(TSAN_CFLAGS) $< -o $@ $(LIB_A) $(NATIVE_LIBS)

.PHONY: tsan
tsan: $(TSAN_DIR)/test_tsan_planted $(TSAN_PROGRAMS)
	ffi-tests/tsan/run.sh $(TSAN_DIR)/test_tsan_planted $(TSAN_PROGRAMS)

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
