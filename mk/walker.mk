# The walker workload (apps/walker-sim, docs/walker.md): the benchmark and
# demo of the walker plan's runtime.
#
#   make walker             the loop: sequential baseline, then the parallel
#                           loop (WALKER_ARGS), report + monitoring CSV
#   make walker-check       the issue's comparison, one line
#   make walker-sweep       the scenario sweep of walker.md: CSV + SVG plot
#   make walker-soak        the plan's success criterion: 1 hour, 0 stops
#   make walker-soak-short  a few seconds, in make test: 0 stops and the
#                           fixed final state hash on every partitioning

WALKER      := $(CARGO) run --release -q -p walker-sim --
WALKER_ARGS ?= --agents 60 --frames 1500 --partition all --p 1.0 --substeps 5 --csv $(BUILD)/walker/monitor.csv
# walker-check: 60 agents, p = 1.0, M = 5 on 2 threads (the issue's figures);
# each mode twice, alternating, the faster run of each kept.
WALKER_CHECK_FRAMES ?= 1000
WALKER_CHECK_ROUNDS ?= 2
WALKER_SWEEP_FRAMES ?= 150
WALKER_SOAK_DURATION ?= 1h
# The state after 300 frames of this world, whatever the thread count,
# partitioning, food mode or physics mode (apps/walker-sim/tests/determinism.rs
# checks the same property on smaller worlds).
WALKER_SOAK_SHORT_ARGS := --agents 20 --frames 300 --seed 42 --threads 3 --partition all --no-baseline --food deltas
WALKER_SOAK_SHORT_HASH := 0a86d60acbdd9eb4

.PHONY: walker walker-check walker-sweep walker-soak walker-soak-short

walker:
	@mkdir -p $(BUILD)/walker
	$(WALKER) $(WALKER_ARGS)

walker-check:
	@mkdir -p $(BUILD)/walker
	@$(WALKER) --check --agents 60 --threads 2 --p 1.0 --substeps 5 --frames $(WALKER_CHECK_FRAMES) --rounds $(WALKER_CHECK_ROUNDS)

walker-sweep:
	@mkdir -p $(BUILD)/walker
	$(WALKER) --sweep --sweep-frames $(WALKER_SWEEP_FRAMES) --sweep-csv $(BUILD)/walker/sweep.csv --sweep-svg docs/walker-sweep.svg

walker-soak:
	@mkdir -p $(BUILD)/walker
	$(WALKER) --agents 60 --duration $(WALKER_SOAK_DURATION) --require-no-stops --csv $(BUILD)/walker/soak.csv

walker-soak-short:
	$(WALKER) $(WALKER_SOAK_SHORT_ARGS) --quiet --require-no-stops --expect-hash $(WALKER_SOAK_SHORT_HASH)

TEST_TARGETS += walker-soak-short
