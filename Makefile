# cllm-threaded: build, header, tests (Rust + C), benchmarks, demos, install.
# `make demo` and `make test` are the two commands of the README.
# Areas of the project add their own targets in mk/*.mk (included below).

CARGO     ?= cargo
CC        ?= cc
PREFIX    ?= /usr/local
BUILD     := build
RELEASE   := target/release
LIB_A     := $(RELEASE)/libcllm_threaded.a
LIB_SO    := $(RELEASE)/libcllm_threaded.so
DROPIN_A  := $(RELEASE)/libcllm_training_threaded.a
DROPIN_SO := $(RELEASE)/libcllm_training_threaded.so
HEADERS   := include/cllm_threaded.h include/cllm_training_threaded.h include/cllm_training_ext.h
# What `rustc --print native-static-libs` asks for on Linux (checked by `make link-line`).
NATIVE_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
CFLAGS    ?= -O2 -g
C_WARN    := -std=c11 -Wall -Wextra -Werror -Iinclude -Iffi-tests
RUST_SRC  := $(shell find crates -name '*.rs' -o -name Cargo.toml) Cargo.toml Cargo.lock

# Test targets that areas add in mk/*.mk; `make test` runs them all.
TEST_TARGETS :=
# C test programs (binaries under build/) linked against the generic library;
# areas append to it. They run plain and under valgrind.
FFI_TESTS :=

.PHONY: all libs header header-check lint rust-test loom ffi-test valgrind test \
        bench compare demo install install-check link-line clean
all: libs

# The version of the workspace (Cargo.toml); the shared libraries' SONAMEs
# carry its major number (build.rs of each library crate).
VERSION   := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
MAJOR     := $(firstword $(subst ., ,$(VERSION)))

libs: $(LIB_A) $(DROPIN_A) $(LIB_SO).$(MAJOR) $(DROPIN_SO).$(MAJOR)

# A program linked with -L$(RELEASE) -lcllm_threaded records the SONAME,
# libcllm_threaded.so.$(MAJOR): the links let it run from the build tree.
$(LIB_A) $(LIB_SO) $(DROPIN_A) $(DROPIN_SO) &: $(RUST_SRC)
	$(CARGO) build --release -p cllm-threaded -p cllm-training-threaded
	@touch $(LIB_A) $(DROPIN_A)
	@ln -sf $(notdir $(LIB_SO)) $(LIB_SO).$(MAJOR)
	@ln -sf $(notdir $(DROPIN_SO)) $(DROPIN_SO).$(MAJOR)

$(RELEASE)/%.so.$(MAJOR): $(RELEASE)/%.so
	ln -sf $*.so $@

header:
	$(CARGO) run --release -q -p gen-header -- write

header-check:
	$(CARGO) run --release -q -p gen-header -- check

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --release -q

# A hung test fails the run instead of eating CI's time. --no-fail-fast: every
# crate's tests run (and are counted) even after one fails.
rust-test:
	timeout 25m $(CARGO) test --workspace --release --no-fail-fast

# Loom model checks of the hand-off protocols, in their own target directory
# so that --cfg loom does not invalidate the normal build.
LOOM_CRATES := sphere-pool
# 2 keeps `make test` fast (about 35-60 s for sphere-pool on 2 cores); `make loom LOOM_PREEMPTIONS=3` goes deeper.
LOOM_PREEMPTIONS ?= 2
loom:
	RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=$(LOOM_PREEMPTIONS) $(CARGO) test --release \
	  --target-dir target/loom $(addprefix -p ,$(LOOM_CRATES)) --test loom

$(BUILD)/%: ffi-tests/%.c $(LIB_A) $(HEADERS) ffi-tests/check.h
	@mkdir -p $(dir $@)
	$(CC) $(C_WARN) $(CFLAGS) $< -o $@ $(LIB_A) $(NATIVE_LIBS)

# Areas' fragments; the demos last, as they use the other areas' variables
# (make expands prerequisites when it reads a rule).
include $(filter-out mk/demo.mk,$(sort $(wildcard mk/*.mk))) mk/demo.mk

# Rules whose prerequisites name the areas' files come after the fragments.
ffi-test: $(FFI_TESTS)
	ffi-tests/run.sh $(FFI_TESTS)

valgrind: $(FFI_TESTS)
	VALGRIND=1 ffi-tests/run.sh $(FFI_TESTS)


# One line per stage (count, time, log under build/test-logs/), the log's tail
# when a stage fails, every stage run even after a failure, and one closing
# line "N passed, N failed" (tools/test-summary). It installs what a fresh
# machine lacks first (tools/install-deps).
TEST_STAGES = lint header-check rust-test loom ffi-test valgrind $(TEST_TARGETS)
test:
	@tools/install-deps
	@MAKE="$(MAKE)" tools/test-summary $(TEST_STAGES)

demo: $(DEMO_TARGETS)

bench:
	$(CARGO) bench -p cllm-benches

# Prints the native libraries the static library needs, to compare with NATIVE_LIBS.
link-line:
	@$(CARGO) rustc --release -q -p cllm-threaded --crate-type staticlib -- --print native-static-libs 2>&1 \
	  | grep -o 'native-static-libs: .*' || true
	@echo "Makefile uses: $(NATIVE_LIBS)"

# make install, install-check: mk/install.mk.

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
