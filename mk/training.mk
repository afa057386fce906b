# The drop-in (crates/cllm-training-threaded): end-to-end C tests against the
# C host model, and the symbol checks of the two libraries.

DROPIN_HEADERS := include/cllm_training_threaded.h include/cllm_threaded.h $(HOST_DIR)/cllm_host.h ffi-tests/check.h
# The seven functions of CLLM's cllm_training_threaded.h, and our two extras.
DROPIN_SYMBOLS := threaded_training_create threaded_training_free threaded_train_epoch \
                  threaded_training_print_stats threaded_training_get_sphere_stats \
                  threaded_training_get_gradient_norm threaded_training_get_num_workers \
                  threaded_training_create_with_replicas threaded_training_get_stats
HOST_SYMBOLS   := cllm_batch_iterator_reset cllm_batch_iterator_next cllm_batch_iterator_num_batches \
                  cllm_batch_free cllm_forward_training cllm_compute_loss_training \
                  cllm_backward_training cllm_optimizer_step_adam

# Explicit rule: the drop-in tests link the drop-in library and the host.
$(BUILD)/training/%: ffi-tests/training/%.c $(DROPIN_A) $(HOST_LIB) $(DROPIN_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(C_WARN) $(CFLAGS) $< -o $@ $(DROPIN_A) $(HOST_LIB) $(NATIVE_LIBS)

FFI_TESTS += $(BUILD)/training/test_dropin

# A program that uses only the generic API links the generic library, static
# and shared, without any host symbol; the drop-in archive defines its nine.
$(BUILD)/generic-only-shared: ffi-tests/pool/test_pool.c $(LIB_SO) include/cllm_threaded.h
	@mkdir -p $(dir $@)
	$(CC) $(C_WARN) $(CFLAGS) $< -o $@ -L$(RELEASE) -lcllm_threaded -Wl,-rpath,$(abspath $(RELEASE))

.PHONY: check-symbols
check-symbols: $(LIB_A) $(LIB_SO) $(DROPIN_A) $(BUILD)/generic-only-shared
	@set -e; for s in $(DROPIN_SYMBOLS); do \
	  nm -g --defined-only $(DROPIN_A) 2>/dev/null | grep -qw "T $$s" || { echo "missing in $(DROPIN_A): $$s"; exit 1; }; \
	  nm -D --defined-only $(DROPIN_SO) | grep -qw "T $$s" || { echo "missing in $(DROPIN_SO): $$s"; exit 1; }; \
	done
	@set -e; for s in $(HOST_SYMBOLS); do \
	  if nm $(LIB_A) 2>/dev/null | grep -qw "U $$s"; then echo "$(LIB_A) needs host symbol $$s"; exit 1; fi; \
	  if nm -D $(LIB_SO) | grep -qw "U $$s"; then echo "$(LIB_SO) needs host symbol $$s"; exit 1; fi; \
	done
	@$(BUILD)/generic-only-shared >/dev/null
	@echo "check-symbols: $(words $(DROPIN_SYMBOLS)) drop-in symbols defined; the generic library needs no host symbol"

TEST_TARGETS += check-symbols
