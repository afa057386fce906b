# The drop-in on the real CLLM trainer (issue 11): builds CLLM from
# ../shared/hosts/crystalline-6de8f88 into build/ (never inside ../shared,
# read-only in CI) and links its unmodified tools/train_model.c three ways:
# CLLM's own module, our drop-in, our drop-in plus the replica adapter.
# Scripts and programs: hosts/crystalline/check/.

CLLM_SRC   ?= $(abspath ../shared/hosts/crystalline-6de8f88)
CLLM_BUILD := $(BUILD)/crystalline
CLLM_CHECK := hosts/crystalline/check
CLLM_CHECK_SRC := $(wildcard $(CLLM_CHECK)/*) $(wildcard hosts/crystalline/*.c hosts/crystalline/*.h)

.PHONY: cllm-build

# The three train_model variants and eval_model, plain (CLLM's own flags).
cllm-build: $(DROPIN_A)
	CLLM_SRC=$(CLLM_SRC) $(CLLM_CHECK)/build.sh $(CLLM_BUILD)

.PHONY: cllm-check
# The check line (hosts/crystalline/check/check.sh): losses of the three
# variants, evaluation of the saved models, speed-up, bitwise results.
cllm-check: cllm-build
	$(CLLM_CHECK)/check.sh $(CLLM_BUILD) full
