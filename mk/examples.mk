# make examples: every examples/c/*.c built the way the README tells a user to,
# from the installed files only (mk/install.mk's install tree) through
# pkg-config, statically (cllm-threaded-static) and dynamically (cllm-threaded,
# with the rpath a non-system PREFIX needs), and each binary run: it must exit 0
# within EXAMPLE_TIMEOUT. The examples check their own results. An empty
# examples/c is a failure, not a pass. The closing line counts one check per
# build-and-run; the programs' own output is prefixed with [name-linkage].
EXAMPLES_C      = $(sort $(wildcard examples/c/*.c))
EXAMPLE_DIR     := $(BUILD)/examples
EXAMPLE_CFLAGS  := -std=c11 -Wall -Wextra -Werror -O2
EXAMPLE_LIBS    := -lm
EXAMPLE_TIMEOUT ?= 300

.PHONY: examples
examples: install-tree
	@mkdir -p $(EXAMPLE_DIR)
	@set -u; srcs="$(EXAMPLES_C)"; passed=0; failed=0; \
	if [ -z "$$srcs" ]; then echo "examples: no examples/c/*.c"; echo "0 passed, 1 failed"; exit 1; fi; \
	for src in $$srcs; do n=$$(basename $$src .c); \
	  for link in static shared; do \
	    if [ $$link = static ]; then pc="--static cllm-threaded-static"; rpath=""; \
	    else pc="cllm-threaded"; rpath="-Wl,-rpath,$(INSTALL_TREE)/lib"; fi; \
	    bin=$(EXAMPLE_DIR)/$$n-$$link; \
	    cmd="$(CC) $(EXAMPLE_CFLAGS) $$src -o $$bin $$($(IC_PC) --cflags --libs $$pc) $$rpath $(EXAMPLE_LIBS)"; \
	    echo "$$cmd"; \
	    if ! $$cmd; then echo "examples: $$n-$$link: build failed"; failed=$$((failed + 1)); continue; fi; \
	    t0=$$(date +%s%N); \
	    timeout $(EXAMPLE_TIMEOUT) $$bin > $$bin.out 2>&1; rc=$$?; \
	    ms=$$(( ($$(date +%s%N) - t0) / 1000000 )); \
	    sed "s|^|[$$n-$$link] |" $$bin.out; \
	    if [ $$rc -eq 0 ]; then passed=$$((passed + 1)); echo "examples: $$n-$$link: ok ($$ms ms)"; \
	    else failed=$$((failed + 1)); echo "examples: $$n-$$link: exit $$rc ($$ms ms)"; fi; \
	  done; \
	done; \
	echo "$$passed passed, $$failed failed"; [ $$failed -eq 0 ]

TEST_TARGETS += examples

# make readme-check: every ```c block of README.md, extracted to
# build/readme/snippet-<n>.c, built from the installed files through pkg-config
# (statically and dynamically, as the README's Linking section says) and run:
# it must exit 0. The README's Rust blocks are doctests of sphere-pool
# (ReadmeDoctests in its lib.rs).
README_DIR := $(BUILD)/readme
README_MD  ?= README.md
.PHONY: readme-check
readme-check: install-tree
	@rm -rf $(README_DIR); mkdir -p $(README_DIR)
	@awk -v dir=$(README_DIR) '/^```c$$/ {n++; f = dir "/snippet-" n ".c"; next} \
	  /^```/ {f = ""} f {print > f}' $(README_MD)
	@set -u; passed=0; failed=0; srcs=$$(ls $(README_DIR)/snippet-*.c 2>/dev/null); \
	if [ -z "$$srcs" ]; then echo "readme-check: no \`\`\`c block in $(README_MD)"; echo "0 passed, 1 failed"; exit 1; fi; \
	for src in $$srcs; do n=$$(basename $$src .c); \
	  for link in static shared; do \
	    if [ $$link = static ]; then pc="cllm-threaded-static"; rpath=""; \
	    else pc="cllm-threaded"; rpath="-Wl,-rpath,$(INSTALL_TREE)/lib"; fi; \
	    bin=$(README_DIR)/$$n-$$link; \
	    if $(CC) $(EXAMPLE_CFLAGS) $$src -o $$bin $$($(IC_PC) --cflags --libs $$pc) $$rpath && \
	       timeout 60 $$bin > $$bin.out 2>&1; then \
	      passed=$$((passed + 1)); echo "readme-check: $$n-$$link: ok: $$(tail -n 1 $$bin.out)"; \
	    else failed=$$((failed + 1)); echo "readme-check: $$n-$$link ($$src): build or run failed"; cat $$bin.out 2>/dev/null; fi; \
	  done; \
	done; \
	echo "$$passed passed, $$failed failed"; [ $$failed -eq 0 ]

TEST_TARGETS += readme-check
