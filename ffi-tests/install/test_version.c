/* The version three ways: the header's CLLM_VERSION_* macros, the library's
 * cllm_version() and EXPECTED_VERSION, the version of the workspace's
 * Cargo.toml passed by make (-DEXPECTED_VERSION="x.y.z"). Built by
 * `make install-check` from the installed files through pkg-config, statically
 * and dynamically, so it also runs a little of the installed library. */
#include "check.h"
#include "cllm_threaded.h"

#include <string.h>

#ifndef EXPECTED_VERSION
#error "build with -DEXPECTED_VERSION=\"x.y.z\" (the version in Cargo.toml)"
#endif

#define STR_(x) #x
#define STR(x) STR_(x)
#define HEADER_VERSION STR(CLLM_VERSION_MAJOR) "." STR(CLLM_VERSION_MINOR) "." STR(CLLM_VERSION_PATCH)

static int add_range(void *arg, size_t begin, size_t end, size_t participant) {
    (void)participant;
    unsigned long long *sums = arg; /* one slot per index: no two writers share one */
    for (size_t i = begin; i < end; i++) sums[i] = i;
    return 0;
}

int main(void) {
    CHECK(strcmp(HEADER_VERSION, EXPECTED_VERSION) == 0, "header %s, Cargo.toml %s", HEADER_VERSION,
          EXPECTED_VERSION);
    CHECK(cllm_version() != NULL && strcmp(cllm_version(), EXPECTED_VERSION) == 0, "cllm_version() %s, Cargo.toml %s",
          cllm_version(), EXPECTED_VERSION);

    static unsigned long long v[10000];
    cllm_pool *pool = NULL;
    CHECK_STATUS(cllm_pool_create(NULL, &pool), CLLM_OK);
    CHECK_STATUS(cllm_pool_parallel_for(pool, 0, 10000, 0, add_range, v), CLLM_OK);
    unsigned long long sum = 0;
    for (size_t i = 0; i < 10000; i++) sum += v[i];
    CHECK(sum == 49995000ULL, "sum %llu", sum);
    cllm_pool_free(pool);
    printf("cllm-threaded %s (header %s)\n", cllm_version(), HEADER_VERSION);
    return check_summary();
}
