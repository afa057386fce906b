/* Pool size and CPUs from the options and the environment: serial pools
 * (one thread, no sphere), CLLM_NUM_THREADS, CLLM_CPUS, total_threads and
 * cpus, their precedence, and every bad value refused by name. */
#define _GNU_SOURCE
#include "check.h"
#include "cllm_threaded.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static size_t spheres_of(const cllm_pool_options *opts) {
    cllm_pool *pool = NULL;
    size_t n = 9999;
    int rc = cllm_pool_create(opts, &pool);
    CHECK(rc == CLLM_OK, "create: %s", cllm_last_error());
    if (rc == CLLM_OK) {
        CHECK_STATUS(cllm_pool_num_spheres(pool, &n), CLLM_OK);
        cllm_pool_free(pool);
    }
    return n;
}

static void check_refused(const cllm_pool_options *opts, const char *name) {
    cllm_pool *pool = (cllm_pool *)0x1;
    CHECK_STATUS(cllm_pool_create(opts, &pool), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(pool == (cllm_pool *)0x1, "output written on failure");
    CHECK(strstr(cllm_last_error(), name) != NULL, "message names %s: %s", name, cllm_last_error());
}

typedef struct {
    atomic_int shares;
    atomic_size_t items;
    pthread_t caller;
    atomic_int elsewhere; /* calls not on the calling thread */
} serial_state;

static int serial_share(void *arg, const cllm_participant *self) {
    serial_state *st = arg;
    bool leader = false;
    if (self->index != 0 || self->count != 1) return 1;
    if (cllm_participant_barrier(self, &leader) != CLLM_OK || !leader) return 2;
    if (!pthread_equal(pthread_self(), st->caller)) atomic_fetch_add(&st->elsewhere, 1);
    atomic_fetch_add(&st->shares, 1);
    return 0;
}

static int serial_body(void *arg, size_t begin, size_t end, size_t participant) {
    serial_state *st = arg;
    if (participant != 0) return 3;
    if (!pthread_equal(pthread_self(), st->caller)) atomic_fetch_add(&st->elsewhere, 1);
    atomic_fetch_add(&st->items, end - begin);
    return 0;
}

static int noop_job(void *arg, size_t sphere) {
    (void)arg;
    (void)sphere;
    return 0;
}

static void test_serial_pool(void) {
    cllm_pool_options opts = cllm_pool_options_default();
    opts.total_threads = 1;
    cllm_pool *pool = NULL;
    CHECK_STATUS(cllm_pool_create(&opts, &pool), CLLM_OK);
    if (!pool) return;
    size_t n = 99;
    CHECK_STATUS(cllm_pool_num_spheres(pool, &n), CLLM_OK);
    CHECK(n == 0, "a pool of one thread has no sphere: %zu", n);
    serial_state st = {0, 0, pthread_self(), 0};
    CHECK_STATUS(cllm_pool_run_all(pool, serial_share, &st), CLLM_OK);
    CHECK_STATUS(cllm_pool_parallel_for(pool, 5, 100005, 0, serial_body, &st), CLLM_OK);
    CHECK(atomic_load(&st.shares) == 1 && atomic_load(&st.items) == 100000 && atomic_load(&st.elsewhere) == 0,
          "serial: shares %d items %zu elsewhere %d", atomic_load(&st.shares), (size_t)atomic_load(&st.items),
          atomic_load(&st.elsewhere));
    size_t s = 0;
    CHECK_STATUS(cllm_pool_dispatch(pool, 0, noop_job, NULL), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_pool_dispatch_any(pool, noop_job, NULL, &s), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "no sphere") != NULL, "%s", cllm_last_error());
    cllm_pool_free(pool);
}

static int record_cpus(void *arg, size_t sphere) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    ((int *)arg)[sphere] = CPU_COUNT(&set) == 1 && CPU_ISSET(0, &set);
    return 0;
}

static void test_cpu_lists(void) {
    cllm_pool_options opts = cllm_pool_options_default();
    /* Every sphere on CPU 0 (the one CPU every machine has). */
    opts.num_threads = 2;
    opts.cpus = "0";
    cllm_pool *pool = NULL;
    CHECK_STATUS(cllm_pool_create(&opts, &pool), CLLM_OK);
    if (pool) {
        int on0[2] = {0, 0};
        for (size_t s = 0; s < 2; s++) CHECK_STATUS(cllm_pool_dispatch(pool, s, record_cpus, on0), CLLM_OK);
        for (size_t s = 0; s < 2; s++) CHECK_STATUS(cllm_pool_wait(pool, s), CLLM_OK);
        CHECK(on0[0] && on0[1], "spheres pinned to CPU 0: %d %d", on0[0], on0[1]);
        cllm_pool_free(pool);
    }
    const char *bad[] = {"", "0-", "x", "0,0", "3-1", "0, 1", "1023", "0-99999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        opts.cpus = bad[i];
        check_refused(&opts, "cpus");
    }

    /* The same through CLLM_CPUS; the options' list wins over it. */
    opts = cllm_pool_options_default();
    opts.num_threads = 1;
    setenv("CLLM_CPUS", "0-", 1);
    check_refused(&opts, "CLLM_CPUS");
    opts.cpus = "0";
    CHECK(spheres_of(&opts) == 1, "options' cpus win over a bad CLLM_CPUS");
    setenv("CLLM_CPUS", "0", 1);
    opts.cpus = NULL;
    CHECK(spheres_of(&opts) == 1, "CLLM_CPUS=0 accepted");
    unsetenv("CLLM_CPUS");
}

static void test_num_threads(void) {
    cllm_pool_options opts = cllm_pool_options_default();
    size_t cores = cllm_available_cores();
    size_t auto_spheres = cores > 1 ? cores - 1 : 1;
    unsetenv("CLLM_NUM_THREADS");
    CHECK(spheres_of(NULL) == auto_spheres, "auto without the variable");

    setenv("CLLM_NUM_THREADS", "3", 1);
    CHECK(spheres_of(NULL) == 2, "CLLM_NUM_THREADS=3: 2 spheres and the caller");
    CHECK(spheres_of(&opts) == 2, "default options are auto too");
    setenv("CLLM_NUM_THREADS", "1", 1);
    CHECK(spheres_of(NULL) == 0, "CLLM_NUM_THREADS=1: serial");
    /* The options win over the variable. */
    opts.total_threads = 4;
    CHECK(spheres_of(&opts) == 3, "total_threads 4 wins");
    opts.total_threads = 0;
    opts.num_threads = 2;
    CHECK(spheres_of(&opts) == 2, "num_threads 2 wins");
    opts.num_threads = 0;

    const char *bad[] = {"0", "-1", "two", "4098", "2 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("CLLM_NUM_THREADS", bad[i], 1);
        check_refused(NULL, "CLLM_NUM_THREADS");
    }
    setenv("CLLM_NUM_THREADS", "", 1); /* empty: unset */
    CHECK(spheres_of(NULL) == auto_spheres, "empty variable is unset");
    unsetenv("CLLM_NUM_THREADS");

    opts.num_threads = 2;
    opts.total_threads = 3;
    check_refused(&opts, "total_threads");
    opts.num_threads = 0;
    opts.total_threads = 4098;
    check_refused(&opts, "4097");
}

int main(void) {
    cllm_pool_options opts = cllm_pool_options_default();
    CHECK(opts.total_threads == 0 && opts.cpus == NULL, "new defaults");
    test_serial_pool();
    test_cpu_lists();
    test_num_threads();
    return check_summary();
}
