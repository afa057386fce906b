# The C host model (ffi-tests/host/): a CLLM-like host (cllm-abi.md section 2)
# built as a static library that the drop-in's C tests and the demo link
# (HOST_LIB), and the host's own test, which links only the host, no Rust.

HOST_DIR     := ffi-tests/host
HOST_LIB     := $(BUILD)/host/libcllm_host.a
HOST_HEADERS := $(HOST_DIR)/cllm_host.h $(HOST_DIR)/cllm_training.h $(HOST_DIR)/cllm_batch.h \
                include/cllm_training_threaded.h include/cllm_training_ext.h
# The drop-in header includes the host's cllm_training.h and cllm_batch.h (as
# CLLM's original does): every program built with the host needs this path.
HOST_INC     := -I$(HOST_DIR)
# -O3 after CFLAGS: the model's loops vectorise (2.5x faster than -O2, same
# results: no fast-math, the order of every sum is fixed in the code).
HOST_CFLAGS  := $(C_WARN) $(HOST_INC) $(CFLAGS) -O3 -pthread

$(BUILD)/host/cllm_host.o: $(HOST_DIR)/cllm_host.c $(HOST_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) -c $< -o $@

$(HOST_LIB): $(BUILD)/host/cllm_host.o
	@rm -f $@
	ar rcs $@ $^

# Explicit rule: overrides the generic $(BUILD)/% rule, which links the Rust library.
$(BUILD)/host/test_host: $(HOST_DIR)/test_host.c $(HOST_LIB) $(HOST_HEADERS) ffi-tests/check.h
	$(CC) $(HOST_CFLAGS) $< -o $@ $(HOST_LIB) -lm

# The training demo (mk/demo.mk) is built with the host too.
$(BUILD)/demo/train_demo: CFLAGS += $(HOST_INC)

.PHONY: host-lib host-test
host-lib: $(HOST_LIB)

# Plain, then under valgrind (no errors, no definite/indirect leaks).
host-test: $(BUILD)/host/test_host
	ffi-tests/run.sh $(BUILD)/host/test_host
	VALGRIND=1 ffi-tests/run.sh $(BUILD)/host/test_host

TEST_TARGETS += host-test
