# Sphere pools: C tests of the cllm_pool_* API.
FFI_TESTS += $(BUILD)/pool/test_pool
FFI_TESTS += $(BUILD)/pool/test_pool_free_inside
FFI_TESTS += $(BUILD)/pool/test_pool_env
FFI_TESTS += $(BUILD)/pool/test_pool_reduce
