/* cllm_pool_free from inside the pool's own work (issue 13, defect 3).
 * Freeing from a run_all share or a parallel_for body used to free the pool
 * under the running round (valgrind: invalid write in RoundGuard::drop). It
 * is refused now: the pool stays as it was and cllm_last_error() says why.
 * Freeing from a dispatched job (no round running) still frees the pool. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "cllm_threaded.h"

#include <stdatomic.h>
#include <string.h>

typedef struct {
    cllm_pool *pool;
    size_t free_on;       /* the participant that calls cllm_pool_free */
    atomic_int tried;     /* calls of cllm_pool_free made */
    atomic_int refused;   /* ... that left a message naming the round */
} free_state;

static void try_free(free_state *st) {
    cllm_pool_free(st->pool);
    atomic_fetch_add(&st->tried, 1);
    if (strstr(cllm_last_error(), "round") != NULL) atomic_fetch_add(&st->refused, 1);
}

static int free_in_share(void *arg, const cllm_participant *self) {
    free_state *st = arg;
    if (self->index == st->free_on) try_free(st);
    return 0;
}

static int free_in_body(void *arg, size_t begin, size_t end, size_t participant) {
    free_state *st = arg;
    (void)end;
    (void)participant;
    if (begin == 0) try_free(st);
    return 0;
}

static int free_in_job(void *arg, size_t sphere) {
    (void)sphere;
    cllm_pool_free(arg);
    return 0;
}

/* A dispatched job whose nested (inline) run_all share tries to free. */
static int nested_free_job(void *arg, size_t sphere) {
    free_state *st = arg;
    (void)sphere;
    return cllm_pool_run_all(st->pool, free_in_share, st) == CLLM_OK ? 0 : 1;
}

static int count_share(void *arg, const cllm_participant *self) {
    (void)self;
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

static cllm_pool *make_pool(int spheres) {
    cllm_pool_options opts = cllm_pool_options_default();
    opts.num_threads = spheres;
    cllm_pool *pool = NULL;
    CHECK_STATUS(cllm_pool_create(&opts, &pool), CLLM_OK);
    return pool;
}

/* The pool still works after a refused free: a full round runs. */
static void check_pool_alive(cllm_pool *pool, int participants) {
    atomic_int ran = 0;
    CHECK_STATUS(cllm_pool_run_all(pool, count_share, &ran), CLLM_OK);
    CHECK(atomic_load(&ran) == participants, "%d shares ran after a refused free", atomic_load(&ran));
}

int main(void) {
    /* From a run_all share: on a sphere (index 0) and on the calling thread. */
    for (size_t who = 0; who < 3; who += 2) {
        free_state st = {make_pool(2), who, 0, 0};
        CHECK_STATUS(cllm_pool_run_all(st.pool, free_in_share, &st), CLLM_OK);
        CHECK(atomic_load(&st.tried) == 1 && atomic_load(&st.refused) == 1,
              "participant %zu: free inside run_all refused (tried %d, refused %d)", who,
              atomic_load(&st.tried), atomic_load(&st.refused));
        check_pool_alive(st.pool, 3);
        cllm_pool_free(st.pool);
    }

    /* From a parallel_for body, whichever participant takes index 0. */
    {
        free_state st = {make_pool(2), 0, 0, 0};
        CHECK_STATUS(cllm_pool_parallel_for(st.pool, 0, 1000, 10, free_in_body, &st), CLLM_OK);
        CHECK(atomic_load(&st.tried) == 1 && atomic_load(&st.refused) == 1,
              "free inside parallel_for refused (tried %d, refused %d)", atomic_load(&st.tried),
              atomic_load(&st.refused));
        check_pool_alive(st.pool, 3);
        cllm_pool_free(st.pool);
    }

    /* From a nested call inside a dispatched job (inline, participant 0). */
    {
        free_state st = {make_pool(2), 0, 0, 0};
        CHECK_STATUS(cllm_pool_dispatch(st.pool, 0, nested_free_job, &st), CLLM_OK);
        CHECK_STATUS(cllm_pool_wait(st.pool, 0), CLLM_OK);
        CHECK(atomic_load(&st.tried) == 1 && atomic_load(&st.refused) == 1,
              "free inside a nested call refused (tried %d, refused %d)", atomic_load(&st.tried),
              atomic_load(&st.refused));
        check_pool_alive(st.pool, 3);
        cllm_pool_free(st.pool);
    }

    /* From a dispatched job, with no round running: the pool is freed (its
     * threads are joined; the job's own thread ends after the job). Nothing
     * may touch the pool afterwards, so only valgrind checks this one. */
    {
        cllm_pool *pool = make_pool(2);
        CHECK_STATUS(cllm_pool_dispatch(pool, 1, free_in_job, pool), CLLM_OK);
        sleep_ms(100);
    }
    return check_summary();
}
