/* Example (b) of issue 14: two jobs dispatched to any idle sphere and
 * waited for with a timeout.
 *
 * The pool is made with the defaults (one sphere per CPU minus one, or
 * CLLM_NUM_THREADS): on a 2-CPU machine that is one sphere, so the second
 * cllm_pool_dispatch_any finds no idle sphere and returns CLLM_ERR_BUSY at
 * once; the program then waits for the first job (with a timeout) and
 * dispatches the second again. Each job sums a range of integers; the
 * program checks both results and exits non-zero on any failure. */
#include "cllm_threaded.h"

#include <stdio.h>

typedef struct {
    unsigned long long from, to; /* sums [from, to) */
    unsigned long long sum;
    size_t sphere;
} job;

static int sum_range(void *arg, size_t sphere) {
    job *j = arg;
    unsigned long long s = 0;
    for (unsigned long long i = j->from; i < j->to; i++) s += i;
    j->sum = s;
    j->sphere = sphere;
    return 0;
}

static const uint64_t TIMEOUT_NS = 10ull * 1000 * 1000 * 1000; /* 10 s */

int main(void) {
    cllm_pool *pool = NULL;
    if (cllm_pool_create(NULL, &pool) != CLLM_OK) {
        fprintf(stderr, "cllm_pool_create: %s\n", cllm_last_error());
        return 1;
    }
    size_t spheres = 0;
    cllm_pool_num_spheres(pool, &spheres);
    printf("%zu sphere%s\n", spheres, spheres == 1 ? "" : "s");

    job jobs[2] = {{0, 50000000, 0, 0}, {50000000, 100000000, 0, 0}};
    size_t where[2];
    int failed = 0, waited[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        cllm_status rc = cllm_pool_dispatch_any(pool, sum_range, &jobs[k], &where[k]);
        if (rc == CLLM_ERR_BUSY && k == 1) {
            /* No idle sphere: wait for the first job, then try again. */
            printf("job 1: %s; waiting for job 0 first\n", cllm_last_error());
            rc = cllm_pool_wait_timeout(pool, where[0], TIMEOUT_NS);
            if (rc != CLLM_OK) {
                fprintf(stderr, "wait for job 0: %s\n", cllm_last_error());
                cllm_pool_free(pool);
                return 1;
            }
            waited[0] = 1;
            rc = cllm_pool_dispatch_any(pool, sum_range, &jobs[k], &where[k]);
        }
        if (rc != CLLM_OK) {
            fprintf(stderr, "dispatch job %d: %s\n", k, cllm_last_error());
            cllm_pool_free(pool);
            return 1;
        }
        printf("job %d went to sphere %zu\n", k, where[k]);
    }
    for (int k = 0; k < 2; k++) {
        if (waited[k]) continue;
        cllm_status rc = cllm_pool_wait_timeout(pool, where[k], TIMEOUT_NS);
        if (rc == CLLM_ERR_TIMEOUT) {
            fprintf(stderr, "job %d did not end within %llu ns\n", k, (unsigned long long)TIMEOUT_NS);
            failed = 1;
        } else if (rc != CLLM_OK) {
            fprintf(stderr, "job %d: %s\n", k, cllm_last_error());
            failed = 1;
        }
    }
    cllm_pool_free(pool);

    for (int k = 0; k < 2; k++) {
        unsigned long long a = jobs[k].from, b = jobs[k].to;
        unsigned long long expected = (b - a) * (a + b - 1) / 2;
        int ok = jobs[k].sum == expected && jobs[k].sphere == where[k];
        printf("job %d: sum %llu on sphere %zu %s\n", k, jobs[k].sum, jobs[k].sphere, ok ? "ok" : "WRONG");
        if (!ok) failed = 1;
    }
    printf("%s\n", failed ? "FAILED" : "both jobs done");
    return failed;
}
