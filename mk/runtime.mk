# Role pools (pool-manager): C tests of the cllm_roles_* / cllm_task_* /
# cllm_roles_sched_* API (plain and under valgrind), and the loom
# models of the queue, parker, round and task-cell hand-offs.
FFI_TESTS += $(BUILD)/runtime/test_runtime $(BUILD)/runtime/test_runtime_limits \
	$(BUILD)/runtime/test_runtime_cpus $(BUILD)/runtime/test_runtime_hosting
LOOM_CRATES += pool-manager
