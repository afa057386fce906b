/* The engine under ThreadSanitizer, from C: a pool's rounds where every
 * thread waits now and then (uneven shares, more threads than CPUs), so
 * that the spin policy's idle check samples /proc/stat from several
 * threads. The shares touch no shared C memory: a report here is about
 * the engine's own memory as TSan sees it through the calls it intercepts
 * (read, sched_getaffinity, malloc and free), and fails the run (TSan exits
 * with 66). */
#define _GNU_SOURCE
#include "check.h"
#include "cllm_threaded.h"

/* Busy for `us` microseconds (nothing shared is touched). */
static void busy_us(double us) {
    double end = now_s() + us * 1e-6;
    while (now_s() < end) {
    }
}

static int uneven_share(void *arg, const cllm_participant *self) {
    unsigned round = (unsigned)(size_t)arg;
    /* 0 to 1.5 ms, differing by participant and round: someone waits. */
    busy_us((double)((round * 7u + (unsigned)self->index * 13u) % 4u) * 500.0);
    return 0;
}

int main(void) {
    cllm_pool_options opts = cllm_pool_options_default();
    opts.num_threads = 3; /* 4 threads with the caller, on this machine's CPUs */
    opts.max_spin_ns = 2000000;
    cllm_pool *pool = NULL;
    CHECK_STATUS(cllm_pool_create(&opts, &pool), CLLM_OK);
    if (pool == NULL)
        return check_summary();
    double end = now_s() + 1.5;
    size_t rounds = 0;
    while (now_s() < end) {
        CHECK_STATUS(cllm_pool_run_all(pool, uneven_share, (void *)rounds), CLLM_OK);
        rounds++;
    }
    CHECK(rounds > 100, "only %zu rounds in 1.5 s", rounds);
    cllm_pool_free(pool);
    return check_summary();
}
