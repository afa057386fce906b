# The drop-in (crates/cllm-training-threaded): end-to-end C tests against the
# C host model, the symbol checks of the two libraries (every function the two
# drop-in headers declare is exported, and nothing else), and the header's
# compatibility with CLLM's (header-compat).

DROPIN_HEADERS := include/cllm_training_threaded.h include/cllm_training_ext.h include/cllm_threaded.h \
                  $(HOST_DIR)/cllm_host.h $(HOST_DIR)/cllm_training.h $(HOST_DIR)/cllm_batch.h ffi-tests/check.h
# The seven functions of CLLM's cllm_training_threaded.h (first), and our
# extensions of cllm_training_ext.h.
DROPIN_SYMBOLS := threaded_training_create threaded_training_free threaded_train_epoch \
                  threaded_training_print_stats threaded_training_get_sphere_stats \
                  threaded_training_get_gradient_norm threaded_training_get_num_workers \
                  threaded_training_create_with_replicas threaded_training_create_with_settings \
                  threaded_training_register_replica_ops threaded_training_get_stats
HOST_SYMBOLS   := cllm_batch_iterator_reset cllm_batch_iterator_next cllm_batch_iterator_num_batches \
                  cllm_batch_free cllm_forward_training cllm_compute_loss_training \
                  cllm_backward_training cllm_optimizer_step_adam

# Explicit rule: the drop-in tests link the drop-in library and the host.
$(BUILD)/training/%: ffi-tests/training/%.c $(DROPIN_A) $(HOST_LIB) $(DROPIN_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(C_WARN) $(HOST_INC) $(CFLAGS) $< -o $@ $(DROPIN_A) $(HOST_LIB) $(NATIVE_LIBS)

# One trainer source, linked with and without the host adapter (an object
# whose constructor registers the replica operations).
$(BUILD)/training/test_dropin_adapter: ffi-tests/training/test_dropin_adapter.c ffi-tests/training/host_adapter.c \
                                       $(DROPIN_A) $(HOST_LIB) $(DROPIN_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(C_WARN) $(HOST_INC) $(CFLAGS) -DWITH_ADAPTER $< ffi-tests/training/host_adapter.c -o $@ \
	  $(DROPIN_A) $(HOST_LIB) $(NATIVE_LIBS)
$(BUILD)/training/test_dropin_noadapter: ffi-tests/training/test_dropin_adapter.c $(DROPIN_A) $(HOST_LIB) $(DROPIN_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(C_WARN) $(HOST_INC) $(CFLAGS) $< -o $@ $(DROPIN_A) $(HOST_LIB) $(NATIVE_LIBS)

FFI_TESTS += $(BUILD)/training/test_dropin $(BUILD)/training/test_dropin_settings \
             $(BUILD)/training/test_dropin_adapter $(BUILD)/training/test_dropin_noadapter

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
	@set -e; declared=$$(grep -ho '\bthreaded_[a-z_]*(' include/cllm_training_threaded.h include/cllm_training_ext.h | tr -d '(' | sort -u); \
	exported=$$(nm -g --defined-only $(DROPIN_A) 2>/dev/null | awk '$$2 == "T" && $$3 ~ /^threaded_/ {print $$3}' | sort -u); \
	if [ "$$declared" != "$$exported" ]; then echo "the headers declare: $$declared"; echo "the archive exports: $$exported"; exit 1; fi; \
	seven=$$(grep -ho '\bthreaded_[a-z_]*(' include/cllm_training_threaded.h | tr -d '(' | sort -u | tr '\n' ' '); \
	want=$$(echo $(wordlist 1,7,$(DROPIN_SYMBOLS)) | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ "$$seven" != "$$want" ]; then echo "cllm_training_threaded.h declares $$seven, CLLM's declares $$want"; exit 1; fi
	@set -e; macros=$$(grep -ho '^#define [A-Za-z_0-9]*' include/cllm_training_threaded.h | cut -d' ' -f2 | tr '\n' ' '); \
	if [ "$$macros" != "CLLM_TRAINING_THREADED_H " ]; then echo "cllm_training_threaded.h defines $$macros(only its include guard: it lands in CLLM's sources)"; exit 1; fi; \
	bad=$$(grep -ho '^#define [A-Za-z_0-9]*' include/cllm_training_ext.h | cut -d' ' -f2 | grep -v '^CLLM_TRAINING_' || true); \
	if [ -n "$$bad" ]; then echo "cllm_training_ext.h defines macros outside CLLM_TRAINING_*: $$bad"; exit 1; fi
	@$(BUILD)/generic-only-shared >/dev/null
	@echo "check-symbols: $(words $(DROPIN_SYMBOLS)) drop-in symbols defined; the generic library needs no host symbol; the drop-in header defines no macro but its guard"

TEST_TARGETS += check-symbols

# The drop-in header compiles wherever CLLM's original did (issue 11 item 1):
# alone, before and after the host's headers, in C and C++, against our
# stand-in host; then against the real CLLM headers (ours shadows theirs by
# coming first on the include path), and CLLM's tools/train_model.c, which
# includes "../include/cllm_training_threaded.h", compiled with CLLM's flags
# in a copy of its include/ where our header replaces the original. It must
# add no warning to those of the original.
CXX         ?= g++
CLLM_SHARED ?= ../shared/hosts/crystalline-6de8f88
HEADER_TUS  := $(wildcard ffi-tests/training/header/*.c)
# CLLM's own flags: its Makefile (objects) and tools/Makefile (train_model).
CLLM_CFLAGS       := -Wall -Wextra -g -O0 -fPIC -mavx2 -mfma
CLLM_TOOLS_CFLAGS := -Wall -Wextra -O2

.PHONY: header-compat
header-compat: include/cllm_training_threaded.h include/cllm_training_ext.h $(HEADER_TUS) hosts/crystalline/replica_adapter.c
	@command -v $(CXX) >/dev/null || { echo "header-compat: no C++ compiler ($(CXX)); install g++ or set CXX"; exit 1; }
	@set -e; for f in $(HEADER_TUS); do \
	  $(CC) -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude $(HOST_INC) -fsyntax-only $$f; \
	  $(CXX) -x c++ -std=c++11 -Wall -Wextra -Werror -Iinclude $(HOST_INC) -fsyntax-only $$f; \
	done
	@echo "header-compat: our host: $(words $(HEADER_TUS)) files compile as C11 and C++11"
	@set -e; if [ ! -d "$(CLLM_SHARED)" ]; then \
	  echo "header-compat: skipped: real CLLM headers: $(CLLM_SHARED) is not there"; exit 0; fi; \
	for f in $(HEADER_TUS); do \
	  $(CC) $(CLLM_CFLAGS) -Werror -Iinclude -I$(CLLM_SHARED)/include -fsyntax-only $$f; \
	  $(CXX) -x c++ -Wall -Wextra -Werror -Iinclude -I$(CLLM_SHARED)/include -fsyntax-only $$f; \
	done; \
	d=$(BUILD)/header-compat; rm -rf $$d; mkdir -p $$d/ours/tools $$d/orig/tools; \
	for v in ours orig; do cp -r $(CLLM_SHARED)/include $$d/$$v/; cp $(CLLM_SHARED)/tools/train_model.c $$d/$$v/tools/; done; \
	cp include/cllm_training_threaded.h $$d/ours/include/; \
	for v in ours orig; do \
	  (cd $$d/$$v/tools && $(CC) $(CLLM_TOOLS_CFLAGS) -I../include -c train_model.c -o train_model.o 2> warnings.txt); \
	done; \
	o=$$(grep -c 'warning:' $$d/orig/tools/warnings.txt || true); n=$$(grep -c 'warning:' $$d/ours/tools/warnings.txt || true); \
	if [ "$$n" -gt "$$o" ]; then echo "header-compat: train_model.c: $$n warnings with our header, $$o with CLLM's"; \
	  cat $$d/ours/tools/warnings.txt; exit 1; fi; \
	nm $$d/ours/tools/train_model.o | grep -q ' U threaded_training_create$$'; \
	$(CC) $(CLLM_CFLAGS) -Werror -Iinclude -I$(CLLM_SHARED)/include -c hosts/crystalline/replica_adapter.c -o $$d/replica_adapter.o; \
	nm $$d/replica_adapter.o | grep -q ' U threaded_training_register_replica_ops$$'; \
	echo "header-compat: real CLLM headers: both orders, C and C++; train_model.c compiles with our header ($$n warnings, $$o with CLLM's); the replica adapter compiles with CLLM's flags"

TEST_TARGETS += header-compat
