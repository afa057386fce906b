/* C tests of the sphere-pool API (cllm_pool_*): every function, every bad
 * input. Runs plain and under valgrind (make ffi-test, make valgrind). */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "cllm_threaded.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- jobs -------------------------------------------------------------- */

static int add_sphere_plus_one(void *arg, size_t sphere) {
    atomic_fetch_add((atomic_size_t *)arg, sphere + 1);
    return 0;
}

static int fail_with_7(void *arg, size_t sphere) {
    (void)arg;
    (void)sphere;
    return 7;
}

/* Blocks until *arg becomes non-zero. */
static int block_until_open(void *arg, size_t sphere) {
    (void)sphere;
    while (!atomic_load((atomic_int *)arg)) sleep_ms(1);
    return 0;
}

static int slow_then_mark(void *arg, size_t sphere) {
    (void)sphere;
    sleep_ms(20);
    atomic_store((atomic_int *)arg, 1);
    return 0;
}

/* ---- tests --------------------------------------------------------------- */

static void test_status_names_and_version(void) {
    CHECK(strcmp(cllm_status_str(CLLM_OK), "CLLM_OK") == 0, "OK name");
    CHECK(strcmp(cllm_status_str(CLLM_ERR_BUSY), "CLLM_ERR_BUSY") == 0, "BUSY name");
    CHECK(strcmp(cllm_status_str(CLLM_ERR_BARRIER_BROKEN), "CLLM_ERR_BARRIER_BROKEN") == 0, "barrier name");
    CHECK(strcmp(cllm_status_str(-1), "CLLM_UNKNOWN_STATUS") == 0, "unknown negative");
    CHECK(strcmp(cllm_status_str(9999), "CLLM_UNKNOWN_STATUS") == 0, "unknown large");
    CHECK(cllm_version() != NULL && strlen(cllm_version()) >= 5, "version %s", cllm_version());
    CHECK(cllm_last_error() != NULL, "last error is never NULL");
    CHECK(cllm_available_cores() >= 1, "cores");
}

static void test_create_and_free(void) {
    cllm_pool_options opts = cllm_pool_options_default();
    CHECK(opts.num_threads == 0 && !opts.pin_threads && opts.max_spin_ns == 200000, "defaults");

    cllm_pool *pool = NULL;
    CHECK_STATUS(cllm_pool_create(NULL, &pool), CLLM_OK);
    CHECK(pool != NULL, "pool made with NULL options");
    size_t n = 0;
    CHECK_STATUS(cllm_pool_num_spheres(pool, &n), CLLM_OK);
    size_t cores = cllm_available_cores();
    CHECK(n == (cores > 1 ? cores - 1 : 1), "auto spheres %zu for %zu cores", n, cores);
    cllm_pool_free(pool);

    opts.num_threads = -3; /* <= 0: automatic */
    pool = NULL;
    CHECK_STATUS(cllm_pool_create(&opts, &pool), CLLM_OK);
    cllm_pool_free(pool);

    cllm_pool *untouched = (cllm_pool *)0x1;
    opts.num_threads = 100000;
    CHECK_STATUS(cllm_pool_create(&opts, &untouched), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(untouched == (cllm_pool *)0x1, "output written on failure");
    CHECK(strstr(cllm_last_error(), "4096") != NULL, "message names the limit: %s", cllm_last_error());
    opts.num_threads = INT_MAX;
    CHECK_STATUS(cllm_pool_create(&opts, &untouched), CLLM_ERR_INVALID_ARGUMENT);

    opts = cllm_pool_options_default();
    opts.max_spin_ns = 1000000001; /* above 1 s */
    CHECK_STATUS(cllm_pool_create(&opts, &untouched), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "max_spin_ns") != NULL, "names the field: %s", cllm_last_error());
    CHECK(untouched == (cllm_pool *)0x1, "output written on failure");

    CHECK_STATUS(cllm_pool_create(NULL, NULL), CLLM_ERR_NULL);
    CHECK(strstr(cllm_last_error(), "out") != NULL, "names the argument: %s", cllm_last_error());

    opts = cllm_pool_options_default();
    opts.num_threads = 4; /* more threads than this machine's cores */
    opts.pin_threads = true;
    CHECK_STATUS(cllm_pool_create(&opts, &pool), CLLM_OK);
    CHECK_STATUS(cllm_pool_num_spheres(pool, &n), CLLM_OK);
    CHECK(n == 4, "4 spheres, got %zu", n);
    cllm_pool_free(pool);
    cllm_pool_free(NULL); /* no-op */
}

static void test_null_handles(void) {
    size_t n;
    bool busy;
    cllm_sphere_stats st;
    atomic_size_t counter = 0;
    CHECK_STATUS(cllm_pool_num_spheres(NULL, &n), CLLM_ERR_NULL);
    CHECK(strstr(cllm_last_error(), "pool") != NULL, "names pool: %s", cllm_last_error());
    CHECK_STATUS(cllm_pool_dispatch(NULL, 0, add_sphere_plus_one, &counter), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_pool_wait(NULL, 0), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_pool_wait_timeout(NULL, 0, 10), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_pool_is_busy(NULL, 0, &busy), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_pool_run_all(NULL, NULL, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_pool_parallel_for(NULL, 0, 10, 1, NULL, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_pool_sphere_stats(NULL, 0, &st), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_pool_total_stats(NULL, &st), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_participant_barrier(NULL, NULL), CLLM_ERR_NULL);
}

static void test_dispatch_and_wait(cllm_pool *pool) {
    atomic_size_t counter = 0;
    for (size_t s = 0; s < 2; s++) CHECK_STATUS(cllm_pool_dispatch(pool, s, add_sphere_plus_one, &counter), CLLM_OK);
    for (size_t s = 0; s < 2; s++) CHECK_STATUS(cllm_pool_wait(pool, s), CLLM_OK);
    CHECK(atomic_load(&counter) == 1 + 2, "both spheres ran: %zu", (size_t)atomic_load(&counter));

    /* Waiting on a sphere that was given nothing returns at once. */
    double t0 = now_s();
    CHECK_STATUS(cllm_pool_wait(pool, 1), CLLM_OK);
    CHECK_STATUS(cllm_pool_wait_timeout(pool, 1, 10ull * 1000 * 1000 * 1000), CLLM_OK);
    CHECK(now_s() - t0 < 1.0, "idle wait was slow");

    CHECK_STATUS(cllm_pool_dispatch(pool, 2, add_sphere_plus_one, &counter), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "out of range") != NULL, "%s", cllm_last_error());
    CHECK_STATUS(cllm_pool_wait(pool, 99), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_pool_dispatch(pool, 0, NULL, &counter), CLLM_ERR_NULL);

    /* A failing job: its code comes back through the wait. */
    CHECK_STATUS(cllm_pool_dispatch(pool, 0, fail_with_7, NULL), CLLM_OK);
    CHECK_STATUS(cllm_pool_wait(pool, 0), CLLM_ERR_JOB_FAILED);
    CHECK(strstr(cllm_last_error(), "7") != NULL, "code in message: %s", cllm_last_error());
    CHECK_STATUS(cllm_pool_wait(pool, 0), CLLM_OK); /* collected once */
}

static void test_busy_and_timeout(cllm_pool *pool) {
    atomic_int open = 0;
    bool busy = false;
    CHECK_STATUS(cllm_pool_dispatch(pool, 1, block_until_open, &open), CLLM_OK);
    CHECK_STATUS(cllm_pool_is_busy(pool, 1, &busy), CLLM_OK);
    CHECK(busy, "sphere 1 is busy");
    CHECK_STATUS(cllm_pool_is_busy(pool, 1, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_pool_dispatch(pool, 1, block_until_open, &open), CLLM_ERR_BUSY);
    CHECK_STATUS(cllm_pool_run_all(pool, NULL, NULL), CLLM_ERR_NULL);

    double t0 = now_s();
    CHECK_STATUS(cllm_pool_wait_timeout(pool, 1, 20ull * 1000 * 1000), CLLM_ERR_TIMEOUT); /* 20 ms */
    double waited = now_s() - t0;
    CHECK(waited >= 0.019 && waited < 5.0, "timed wait took %f s", waited);
    CHECK_STATUS(cllm_pool_dispatch(pool, 1, block_until_open, &open), CLLM_ERR_BUSY);

    atomic_store(&open, 1);
    CHECK_STATUS(cllm_pool_wait(pool, 1), CLLM_OK);
    CHECK_STATUS(cllm_pool_is_busy(pool, 1, &busy), CLLM_OK);
    CHECK(!busy, "sphere 1 is free again");
}

static void test_dispatch_any(cllm_pool *pool) {
    atomic_int open = 0;
    size_t a = 99, b = 99, c = 77;
    CHECK_STATUS(cllm_pool_dispatch_any(pool, block_until_open, &open, &a), CLLM_OK);
    CHECK_STATUS(cllm_pool_dispatch_any(pool, block_until_open, &open, &b), CLLM_OK);
    CHECK(a < 2 && b < 2 && a != b, "two idle spheres picked: %zu %zu", a, b);
    CHECK_STATUS(cllm_pool_dispatch_any(pool, block_until_open, &open, &c), CLLM_ERR_BUSY);
    CHECK(c == 77, "output written on failure");
    CHECK(strstr(cllm_last_error(), "no idle sphere") != NULL, "%s", cllm_last_error());
    CHECK_STATUS(cllm_pool_wait_timeout(pool, a, 1000ull * 1000), CLLM_ERR_TIMEOUT); /* 1 ms */
    atomic_store(&open, 1);
    CHECK_STATUS(cllm_pool_wait_timeout(pool, a, 10ull * 1000 * 1000 * 1000), CLLM_OK);
    CHECK_STATUS(cllm_pool_wait_timeout(pool, b, CLLM_WAIT_FOREVER), CLLM_OK);

    atomic_size_t counter = 0;
    CHECK_STATUS(cllm_pool_dispatch_any(pool, add_sphere_plus_one, &counter, &c), CLLM_OK);
    CHECK_STATUS(cllm_pool_wait(pool, c), CLLM_OK);
    CHECK(atomic_load(&counter) == c + 1, "the job ran on the sphere reported: %zu vs %zu",
          (size_t)atomic_load(&counter), c);
    CHECK_STATUS(cllm_pool_dispatch_any(pool, add_sphere_plus_one, &counter, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_pool_dispatch_any(pool, NULL, &counter, &c), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_pool_dispatch_any(NULL, add_sphere_plus_one, &counter, &c), CLLM_ERR_NULL);
}

/* ---- fork-join ----------------------------------------------------------- */

typedef struct {
    atomic_int seen[8];
    atomic_int phase1;
    atomic_int ordered;
    atomic_int leaders;
    atomic_int broken;
    int fail_index;
} fork_state;

static int fork_task(void *arg, const cllm_participant *self) {
    fork_state *st = arg;
    if (self->index >= 8) return 99;
    atomic_fetch_add(&st->seen[self->index], 1);
    if ((int)self->index == st->fail_index) return 5;
    atomic_fetch_add(&st->phase1, 1);
    bool leader = false;
    int rc = cllm_participant_barrier(self, &leader);
    if (rc == CLLM_ERR_BARRIER_BROKEN) {
        atomic_fetch_add(&st->broken, 1);
        return 0;
    }
    if (rc != CLLM_OK) return 98;
    if (leader) atomic_fetch_add(&st->leaders, 1);
    if (atomic_load(&st->phase1) == (int)self->count) atomic_fetch_add(&st->ordered, 1);
    return 0;
}

static void test_run_all(cllm_pool *pool) {
    fork_state st;
    memset(&st, 0, sizeof st);
    st.fail_index = -1;
    CHECK_STATUS(cllm_pool_run_all(pool, fork_task, &st), CLLM_OK);
    for (int i = 0; i < 3; i++) CHECK(atomic_load(&st.seen[i]) == 1, "participant %d ran %d times", i, atomic_load(&st.seen[i]));
    CHECK(atomic_load(&st.seen[3]) == 0, "only 3 participants");
    CHECK(atomic_load(&st.leaders) == 1, "one leader");
    CHECK(atomic_load(&st.ordered) == 3, "barrier ordered the phases: %d", atomic_load(&st.ordered));

    /* One participant fails: the others get a broken barrier, not a hang. */
    memset(&st, 0, sizeof st);
    st.fail_index = 1;
    CHECK_STATUS(cllm_pool_run_all(pool, fork_task, &st), CLLM_ERR_JOB_FAILED);
    CHECK(strstr(cllm_last_error(), "5") != NULL, "%s", cllm_last_error());
    CHECK(atomic_load(&st.broken) + atomic_load(&st.leaders) >= 1, "others released");

    /* A fabricated participant without its internal pointer is refused. */
    cllm_participant fake = {0, 1, NULL};
    CHECK_STATUS(cllm_participant_barrier(&fake, NULL), CLLM_ERR_NULL);

    /* Busy sphere: run_all refuses and runs nothing. */
    atomic_int open = 0;
    memset(&st, 0, sizeof st);
    st.fail_index = -1;
    CHECK_STATUS(cllm_pool_dispatch(pool, 0, block_until_open, &open), CLLM_OK);
    CHECK_STATUS(cllm_pool_run_all(pool, fork_task, &st), CLLM_ERR_BUSY);
    CHECK(atomic_load(&st.seen[2]) == 0, "nothing ran");
    atomic_store(&open, 1);
    CHECK_STATUS(cllm_pool_wait(pool, 0), CLLM_OK);
}

typedef struct {
    atomic_uchar *hits;
    size_t begin;
    size_t stop_at;
    atomic_int calls;
} range_state;

static int mark_range(void *arg, size_t begin, size_t end, size_t participant) {
    range_state *st = arg;
    atomic_fetch_add(&st->calls, 1);
    if (participant > 2) return 77;
    for (size_t i = begin; i < end; i++) {
        if (i == st->stop_at) return 3;
        atomic_fetch_add(&st->hits[i - st->begin], 1);
    }
    return 0;
}

static void test_parallel_for(cllm_pool *pool) {
    enum { N = 10007 };
    static atomic_uchar hits[N];
    size_t grains[] = {0, 1, 13, 5000, (size_t)-1};
    for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
        memset(hits, 0, sizeof hits);
        range_state st = {hits, 100, (size_t)-1, 0};
        CHECK_STATUS(cllm_pool_parallel_for(pool, 100, 100 + N, grains[g], mark_range, &st), CLLM_OK);
        int bad = 0;
        for (size_t i = 0; i < N; i++) bad += atomic_load(&hits[i]) != 1;
        CHECK(bad == 0, "grain %zu: %d indices not covered exactly once", grains[g], bad);
    }
    range_state st = {hits, 0, 500, 0};
    CHECK_STATUS(cllm_pool_parallel_for(pool, 0, N, 1, mark_range, &st), CLLM_ERR_JOB_FAILED);
    CHECK(atomic_load(&st.calls) < N, "the loop stopped early (%d calls)", atomic_load(&st.calls));
    CHECK_STATUS(cllm_pool_parallel_for(pool, 10, 5, 1, mark_range, &st), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_pool_parallel_for(pool, 0, 10, 1, NULL, &st), CLLM_ERR_NULL);
    st.calls = 0;
    CHECK_STATUS(cllm_pool_parallel_for(pool, 7, 7, 1, mark_range, &st), CLLM_OK);
    CHECK(atomic_load(&st.calls) == 0, "empty range calls nothing");
}

/* ---- nested calls run inline --------------------------------------------- */

typedef struct {
    atomic_int inner_shares;     /* nested run_all shares seen */
    atomic_int bad;              /* nested calls that broke a promise */
    atomic_size_t covered;       /* items covered by nested parallel_fors */
    size_t outer_participant[3]; /* set by each outer participant */
} nested_state;

static int nested_inner_share(void *arg, const cllm_participant *self) {
    nested_state *st = arg;
    bool leader = false;
    if (self->index != 0 || self->count != 1) atomic_fetch_add(&st->bad, 1);
    if (cllm_participant_barrier(self, &leader) != CLLM_OK || !leader) atomic_fetch_add(&st->bad, 1);
    atomic_fetch_add(&st->inner_shares, 1);
    return 0;
}

typedef struct {
    nested_state *st;
    size_t outer;
} nested_body_arg;

static int nested_inner_body(void *arg, size_t begin, size_t end, size_t participant) {
    nested_body_arg *a = arg;
    if (participant != a->outer) atomic_fetch_add(&a->st->bad, 1); /* the caller's own index */
    atomic_fetch_add(&a->st->covered, end - begin);
    return 0;
}

static cllm_pool *nested_pool;

static int nested_outer_share(void *arg, const cllm_participant *self) {
    nested_state *st = arg;
    if (cllm_pool_run_all(nested_pool, nested_inner_share, st) != CLLM_OK) atomic_fetch_add(&st->bad, 1);
    nested_body_arg a = {st, self->index};
    if (cllm_pool_parallel_for(nested_pool, 0, 100, 7, nested_inner_body, &a) != CLLM_OK) atomic_fetch_add(&st->bad, 1);
    /* A dispatch during the round stays refused. */
    if (cllm_pool_dispatch(nested_pool, 0, add_sphere_plus_one, &st->covered) != CLLM_ERR_BUSY) atomic_fetch_add(&st->bad, 1);
    return 0;
}

static int nested_from_job(void *arg, size_t sphere) {
    nested_state *st = arg;
    if (cllm_pool_run_all(nested_pool, nested_inner_share, st) != CLLM_OK) return 1;
    nested_body_arg a = {st, sphere};
    return cllm_pool_parallel_for(nested_pool, 0, 1000, 0, nested_inner_body, &a) == CLLM_OK ? 0 : 2;
}

static void test_nested_calls_run_inline(cllm_pool *pool) {
    nested_pool = pool;
    nested_state st;
    memset(&st, 0, sizeof st);
    CHECK_STATUS(cllm_pool_run_all(pool, nested_outer_share, &st), CLLM_OK);
    CHECK(atomic_load(&st.bad) == 0, "%d nested calls misbehaved", atomic_load(&st.bad));
    CHECK(atomic_load(&st.inner_shares) == 3, "one inline share per participant: %d", atomic_load(&st.inner_shares));
    CHECK(atomic_load(&st.covered) == 300, "each nested parallel_for covered 100 items: %zu",
          (size_t)atomic_load(&st.covered));

    memset(&st, 0, sizeof st);
    CHECK_STATUS(cllm_pool_dispatch(pool, 1, nested_from_job, &st), CLLM_OK);
    CHECK_STATUS(cllm_pool_wait(pool, 1), CLLM_OK);
    CHECK(atomic_load(&st.bad) == 0 && atomic_load(&st.inner_shares) == 1 && atomic_load(&st.covered) == 1000,
          "nested calls from a dispatched job: bad %d shares %d covered %zu", atomic_load(&st.bad),
          atomic_load(&st.inner_shares), (size_t)atomic_load(&st.covered));
}

static void test_stats(cllm_pool *pool) {
    cllm_sphere_stats total, one;
    CHECK_STATUS(cllm_pool_total_stats(pool, &total), CLLM_OK);
    CHECK(total.jobs > 0 && total.failures >= 1, "jobs %llu failures %llu", (unsigned long long)total.jobs,
          (unsigned long long)total.failures);
    CHECK(total.busy_ns > 0, "busy time counted");
    CHECK_STATUS(cllm_pool_sphere_stats(pool, 0, &one), CLLM_OK);
    CHECK(one.jobs <= total.jobs, "one sphere <= total");
    CHECK_STATUS(cllm_pool_sphere_stats(pool, 2, &one), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_pool_sphere_stats(pool, 0, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_pool_total_stats(pool, NULL), CLLM_ERR_NULL);
}

static void test_free_with_work_in_flight(void) {
    cllm_pool_options opts = cllm_pool_options_default();
    opts.num_threads = 2;
    cllm_pool *pool = NULL;
    CHECK_STATUS(cllm_pool_create(&opts, &pool), CLLM_OK);
    atomic_int done0 = 0, done1 = 0;
    CHECK_STATUS(cllm_pool_dispatch(pool, 0, slow_then_mark, &done0), CLLM_OK);
    CHECK_STATUS(cllm_pool_dispatch(pool, 1, slow_then_mark, &done1), CLLM_OK);
    cllm_pool_free(pool); /* finishes both jobs, joins both threads */
    CHECK(atomic_load(&done0) && atomic_load(&done1), "work in flight was finished before free returned");
}

int main(void) {
    /* The sizes checked below are the defaults, not the environment's. */
    unsetenv("CLLM_NUM_THREADS");
    unsetenv("CLLM_CPUS");
    test_status_names_and_version();
    test_create_and_free();
    test_null_handles();

    cllm_pool_options opts = cllm_pool_options_default();
    opts.num_threads = 2;
    cllm_pool *pool = NULL;
    CHECK_STATUS(cllm_pool_create(&opts, &pool), CLLM_OK);
    if (pool) {
        test_dispatch_and_wait(pool);
        test_busy_and_timeout(pool);
        test_dispatch_any(pool);
        test_run_all(pool);
        test_parallel_for(pool);
        test_nested_calls_run_inline(pool);
        test_stats(pool);
        cllm_pool_free(pool);
    }
    test_free_with_work_in_flight();
    return check_summary();
}
