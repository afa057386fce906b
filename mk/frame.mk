# Frame guard: C tests of the cllm_frame_* API, the loom model of the guard,
# and the monitoring demo on the role pools.
FFI_TESTS += $(BUILD)/frame/test_frame $(BUILD)/frame/test_frame_phases $(BUILD)/frame/test_frame_limits
LOOM_CRATES += frame-guard

MONITOR_DEMO_SECONDS ?= 5

.PHONY: monitor-demo monitor-check
# A few seconds of a frame loop on the role pools with the frame guard; the
# monitoring CSV (header first) goes to standard output, a summary to stderr.
monitor-demo:
	@$(CARGO) run --release -q -p frame-guard --example monitor_demo -- --seconds $(MONITOR_DEMO_SECONDS)

# The demo for 2 s, then its CSV checked: the six plan columns in the header,
# numeric rows with utilisations and rates in [0, 1], a plausible speed-up.
monitor-check:
	@mkdir -p $(BUILD)/frame
	$(CARGO) run --release -q -p frame-guard --example monitor_demo -- --seconds 2 > $(BUILD)/frame/monitor.csv
	ffi-tests/frame/check-monitor-csv.sh $(BUILD)/frame/monitor.csv

TEST_TARGETS += monitor-check

# Example (c) of issue 14, examples/c/roles_frame_monitor.c: role pools and a
# frame guard writing the monitoring CSV through the library's glue; it
# checks its own CSV and exits non-zero on failure. Built here against the
# static library and run plain and under valgrind (the installed-pkg-config
# build is the examples' own target), then its Rust twin
# (crates/pool-manager/examples/roles_frame_monitor.rs).
FRAME_EXAMPLE := $(BUILD)/examples/roles_frame_monitor

$(FRAME_EXAMPLE): examples/c/roles_frame_monitor.c $(LIB_A) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(C_WARN) $(CFLAGS) $< -o $@ $(LIB_A) $(NATIVE_LIBS)

.PHONY: frame-example
frame-example: $(FRAME_EXAMPLE)
	$(FRAME_EXAMPLE) $(BUILD)/examples/roles_frame_monitor.csv 120
	valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
	  --errors-for-leak-kinds=definite,indirect $(FRAME_EXAMPLE) $(BUILD)/examples/roles_frame_monitor.vg.csv 40
	$(CARGO) run --release -q -p pool-manager --example roles_frame_monitor -- $(BUILD)/examples/roles_frame_monitor.rs.csv 120

TEST_TARGETS += frame-example
