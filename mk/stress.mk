# make stress: the randomized API stress test (ffi-tests/stress/stress.c,
# issue 13): several threads making random valid and invalid calls on shared
# sphere pools, role pools, a loader, a frame guard, a counter, a lock and an
# object pool; every job ran exactly once, every error has a message, threads
# and fds back to their start. Run plain and with the C side under ASan+UBSan
# (as mk/sanitize.mk builds the C tests), STRESS_SECONDS each (default 20). It
# prints its seed; replay one with `build/stress/stress --seed N [--seconds S]`.
STRESS_SECONDS ?= 20
STRESS_ARGS    ?=

.PHONY: stress
stress: $(BUILD)/stress/stress
	$(MAKE) --no-print-directory BUILD=$(ASAN_DIR) CC="$(CC) $(ASAN_FLAGS)" $(ASAN_DIR)/stress/stress
	rc=0; $(BUILD)/stress/stress --seconds $(STRESS_SECONDS) $(STRESS_ARGS) || rc=1; \
	ASAN_OPTIONS=$(ASAN_OPTIONS_) UBSAN_OPTIONS=$(UBSAN_OPTIONS_) \
	  $(ASAN_DIR)/stress/stress --seconds $(STRESS_SECONDS) $(STRESS_ARGS) || rc=1; exit $$rc

TEST_TARGETS += stress

# The bad-input table, docs/bad-inputs.md: every bad input tried per function
# and its status and message, printed by ffi-tests/badinput/badinput.c.
# badinput-check runs every row again and fails on any difference from the
# file (or on a row that no longer fails, or fails without a message);
# bad-inputs-doc rewrites the file after an intended change.
.PHONY: badinput-check bad-inputs-doc
badinput-check: $(BUILD)/badinput/badinput
	@$(BUILD)/badinput/badinput > $(BUILD)/badinput/bad-inputs.md; rc=$$?; \
	if [ $$rc -eq 0 ] && diff -u docs/bad-inputs.md $(BUILD)/badinput/bad-inputs.md; then \
	  echo "badinput-check: docs/bad-inputs.md matches the library ($$(grep -c '^| `' docs/bad-inputs.md) rows)"; \
	  echo "1 passed, 0 failed"; \
	else \
	  echo "badinput-check: the library's answers differ from docs/bad-inputs.md (above; exit $$rc);" \
	       "make bad-inputs-doc rewrites it if the change is intended"; \
	  echo "0 passed, 1 failed"; exit 1; \
	fi

bad-inputs-doc: $(BUILD)/badinput/badinput
	$(BUILD)/badinput/badinput > docs/bad-inputs.md

TEST_TARGETS += badinput-check
