# Issue 13's last items: the bad-input table (and, next, the randomized
# stress test).

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
