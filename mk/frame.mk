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
