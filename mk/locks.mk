# Lock tools and object pool (sync-stats, object-pool): loom models of their
# lock-free parts, and the C tests of cllm_lock_* / cllm_counter_* /
# cllm_objpool_* (run plain and under valgrind by `make ffi-test valgrind`).
LOOM_CRATES += sync-stats cllm-object-pool
FFI_TESTS += $(BUILD)/locks/test_locks $(BUILD)/objects/test_objects

.PHONY: locks-bench
# The two benches of this area (each well under 30 s).
locks-bench:
	$(CARGO) bench -p cllm-benches --bench contention --bench object_pool
