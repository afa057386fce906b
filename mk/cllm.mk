# The drop-in on the real CLLM trainer (issue 11): builds CLLM from
# ../shared/hosts/crystalline-6de8f88 into build/ (never inside ../shared,
# read-only in CI) and links its unmodified tools/train_model.c three ways:
# CLLM's own module, our drop-in, our drop-in plus the replica adapter.
# Scripts and programs: hosts/crystalline/check/.

CLLM_SRC   ?= $(abspath ../shared/hosts/crystalline-6de8f88)
CLLM_BUILD := $(BUILD)/crystalline
CLLM_CHECK := hosts/crystalline/check
CLLM_ASAN  := $(BUILD)/crystalline-asan
CLLM_TSAN  := $(BUILD)/crystalline-tsan

.PHONY: cllm-build

# The three train_model variants and eval_model, plain (CLLM's own flags).
cllm-build: $(DROPIN_A)
	CLLM_SRC=$(CLLM_SRC) $(CLLM_CHECK)/build.sh $(CLLM_BUILD)

.PHONY: cllm-check
# The check line (hosts/crystalline/check/check.sh): losses of the three
# variants, evaluation of the saved models, speed-up, bitwise results.
cllm-check: cllm-build
	$(CLLM_CHECK)/check.sh $(CLLM_BUILD) full

.PHONY: cllm-memcheck cllm-tsan cllm-test cllm-test-run
# The drop-in (serialised and replica mode) and eval_model under ASan+UBSan
# (CLLM and our C code instrumented) and under valgrind.
cllm-memcheck: $(DROPIN_A)
	CLLM_SRC=$(CLLM_SRC) $(CLLM_CHECK)/build.sh $(CLLM_BUILD)
	CLLM_SRC=$(CLLM_SRC) $(CLLM_CHECK)/build.sh $(CLLM_ASAN) "-fsanitize=address,undefined"
	$(CLLM_CHECK)/memcheck.sh $(CLLM_BUILD) $(CLLM_ASAN)

# ThreadSanitizer: 0 reports in both modes, and a planted race still found.
cllm-tsan: $(DROPIN_A)
	CLLM_SRC=$(CLLM_SRC) $(CLLM_CHECK)/build.sh $(CLLM_TSAN) -fsanitize=thread
	$(CLLM_CHECK)/tsan.sh $(CLLM_TSAN)

# In `make test`: the short check, memcheck and TSan when the real CLLM is
# beside the repository (about 2.5 minutes on 2 cores), else one line.
cllm-test:
	@if [ -d "$(CLLM_SRC)" ]; then $(MAKE) --no-print-directory cllm-test-run; \
	else echo "skipped: cllm-test: no real CLLM trainer at $(CLLM_SRC) (put ../shared/hosts/crystalline-6de8f88 beside the repository or set CLLM_SRC)"; fi

cllm-test-run: cllm-build
	$(CLLM_CHECK)/check.sh $(CLLM_BUILD) short
	$(MAKE) --no-print-directory cllm-memcheck cllm-tsan

TEST_TARGETS += cllm-test
