/* The pool under ThreadSanitizer, from C. The library's Rust side is not
 * instrumented; it tells TSan about its own hand-offs, so that a correct C
 * program gets no report and a racy one still does (`make tsan` runs a
 * planted race first). A report fails the run: TSan exits with 66.
 *
 * Each part hands memory between threads only through the pool, as the
 * API promises it may: the caller's writes before a call are seen by the
 * shares, jobs and bodies; theirs are seen by the caller after the call or
 * the wait; the participants' writes before a barrier by all after it.
 * Pools of one sphere (the done word on the go line) and of three (four
 * threads, more than this machine's CPUs) both run every part.
 *
 *   test_tsan_pool [PART]   PART: idle, run_all, barrier, parallel_for,
 *                           dispatch, reduce (default: all of them) */
#define _GNU_SOURCE
#include "check.h"
#include "cllm_threaded.h"

#include <stdlib.h>
#include <string.h>


/* ---- idle: uneven rounds whose waits make the spin policy's idle check
 * sample /proc/stat from several threads; the shares touch nothing. */
static int uneven_share(void *arg, const cllm_participant *self) {
    unsigned round = (unsigned)(size_t)arg;
    busy_us((double)((round * 7u + (unsigned)self->index * 13u) % 4u) * 500.0);
    return 0;
}

static void part_idle(cllm_pool *pool) {
    double end = now_s() + 1.0;
    size_t rounds = 0;
    while (now_s() < end) {
        CHECK_STATUS(cllm_pool_run_all(pool, uneven_share, (void *)rounds), CLLM_OK);
        rounds++;
    }
    CHECK(rounds > 50, "only %zu rounds in 1 s", rounds);
}

/* ---- run_all: the caller fills `in` (fresh heap memory each round), each
 * participant reads all of it and writes its own `out` slot, the caller
 * reads every slot and frees both. */
typedef struct {
    const int *in;
    size_t n;
    long *out;
} round_data;

static int sum_share(void *arg, const cllm_participant *self) {
    round_data *d = arg;
    long sum = 0;
    for (size_t i = 0; i < d->n; i++)
        sum += d->in[i];
    d->out[self->index] = sum + (long)self->index;
    return 0;
}

static void part_run_all(cllm_pool *pool, size_t count) {
    for (int r = 0; r < 200; r++) {
        round_data d = {malloc(64 * sizeof(int)), 64, calloc(count, sizeof(long))};
        for (size_t i = 0; i < d.n; i++)
            ((int *)d.in)[i] = r + (int)i;
        CHECK_STATUS(cllm_pool_run_all(pool, sum_share, &d), CLLM_OK);
        long want = 64L * r + 64L * 63 / 2;
        for (size_t p = 0; p < count; p++)
            CHECK(d.out[p] == want + (long)p, "round %d participant %zu: %ld", r, p, d.out[p]);
        free((void *)d.in);
        free(d.out);
    }
}

/* ---- barrier: each participant writes its slot, passes the barrier,
 * reads its neighbour's, passes again, and overwrites its own. */
typedef struct {
    long *slot;
    long *seen;
} barrier_data;

static int neighbour_share(void *arg, const cllm_participant *self) {
    barrier_data *d = arg;
    size_t me = self->index, next = (me + 1) % self->count;
    for (long step = 1; step <= 20; step++) {
        d->slot[me] = step * 100 + (long)me;
        if (cllm_participant_barrier(self, NULL) != CLLM_OK)
            return 1;
        d->seen[me] += d->slot[next] - step * 100;
        if (cllm_participant_barrier(self, NULL) != CLLM_OK)
            return 1;
    }
    return 0;
}

static void part_barrier(cllm_pool *pool, size_t count) {
    for (int r = 0; r < 20; r++) {
        barrier_data d = {calloc(count, sizeof(long)), calloc(count, sizeof(long))};
        CHECK_STATUS(cllm_pool_run_all(pool, neighbour_share, &d), CLLM_OK);
        for (size_t p = 0; p < count; p++)
            CHECK(d.seen[p] == 20L * (long)((p + 1) % count), "participant %zu saw %ld", p, d.seen[p]);
        free(d.slot);
        free(d.seen);
    }
}

/* ---- parallel_for: the caller fills `in`, the bodies square it into
 * `out`, the caller checks and frees. */
typedef struct {
    const double *in;
    double *out;
} square_data;

static int square_range(void *arg, size_t begin, size_t end, size_t participant) {
    (void)participant;
    square_data *d = arg;
    for (size_t i = begin; i < end; i++)
        d->out[i] = d->in[i] * d->in[i];
    return 0;
}

static void part_parallel_for(cllm_pool *pool) {
    enum { N = 4096 };
    for (int r = 0; r < 100; r++) {
        square_data d = {malloc(N * sizeof(double)), malloc(N * sizeof(double))};
        for (size_t i = 0; i < N; i++)
            ((double *)d.in)[i] = (double)(i + (size_t)r);
        CHECK_STATUS(cllm_pool_parallel_for(pool, 0, N, 64, square_range, &d), CLLM_OK);
        size_t bad = 0;
        for (size_t i = 0; i < N; i++)
            bad += d.out[i] != d.in[i] * d.in[i];
        CHECK(bad == 0, "round %d: %zu wrong squares", r, bad);
        free((void *)d.in);
        free(d.out);
    }
}

/* ---- dispatch: a job gets a buffer the caller filled, writes a result
 * into it and frees the input; the caller reads the result after the wait
 * and frees the buffer. */
typedef struct {
    int *input;
    long result;
} job_data;

static int sum_job(void *arg, size_t sphere) {
    job_data *d = arg;
    long sum = (long)sphere;
    for (int i = 0; i < 32; i++)
        sum += d->input[i];
    free(d->input);
    d->input = NULL;
    d->result = sum;
    return 0;
}

static void part_dispatch(cllm_pool *pool, size_t spheres) {
    for (int r = 0; r < 200; r++) {
        size_t sphere = (size_t)r % spheres;
        job_data *d = malloc(sizeof *d);
        d->input = malloc(32 * sizeof(int));
        for (int i = 0; i < 32; i++)
            d->input[i] = r;
        CHECK_STATUS(cllm_pool_dispatch(pool, sphere, sum_job, d), CLLM_OK);
        CHECK_STATUS(cllm_pool_wait(pool, sphere), CLLM_OK);
        CHECK(d->result == 32L * r + (long)sphere && d->input == NULL, "job %d: %ld", r, d->result);
        free(d);
    }
}

/* ---- reduce: the caller fills the data; the maps read it and write the
 * library's partials, the combines read and write partials, the caller
 * reads the result. */
static int sum_map(void *arg, size_t begin, size_t end, void *partial) {
    const long *data = arg;
    long sum = 0;
    for (size_t i = begin; i < end; i++)
        sum += data[i];
    *(long *)partial += sum;
    return 0;
}

static int sum_combine(void *arg, void *left, const void *right) {
    (void)arg;
    *(long *)left += *(const long *)right;
    return 0;
}

static void part_reduce(cllm_pool *pool) {
    for (int r = 0; r < 50; r++) {
        size_t n = 20000;
        long *data = malloc(n * sizeof(long));
        long want = 0;
        for (size_t i = 0; i < n; i++) {
            data[i] = (long)(i % 7) + r;
            want += data[i];
        }
        _Alignas(16) long identity[2] = {0, 0}, sum[2] = {-1, -1};
        CHECK_STATUS(cllm_pool_reduce(pool, 0, n, 1000, sizeof identity, identity, sum_map,
                                      sum_combine, data, sum),
                     CLLM_OK);
        CHECK(sum[0] == want, "round %d: sum %ld, want %ld", r, sum[0], want);
        free(data);
    }
}

static void run_parts(const char *part, int spheres) {
    cllm_pool_options opts = cllm_pool_options_default();
    opts.num_threads = spheres;
    opts.max_spin_ns = 2000000;
    cllm_pool *pool = NULL;
    CHECK_STATUS(cllm_pool_create(&opts, &pool), CLLM_OK);
    if (pool == NULL)
        return;
    size_t count = (size_t)spheres + 1;
    int all = part == NULL;
    if (all || strcmp(part, "idle") == 0)
        part_idle(pool);
    if (all || strcmp(part, "run_all") == 0)
        part_run_all(pool, count);
    if (all || strcmp(part, "barrier") == 0)
        part_barrier(pool, count);
    if (all || strcmp(part, "parallel_for") == 0)
        part_parallel_for(pool);
    if (all || strcmp(part, "dispatch") == 0)
        part_dispatch(pool, (size_t)spheres);
    if (all || strcmp(part, "reduce") == 0)
        part_reduce(pool);
    cllm_pool_free(pool);
}

int main(int argc, char **argv) {
    const char *part = argc > 1 ? argv[1] : NULL;
    run_parts(part, 1);
    run_parts(part, 3);
    return check_summary();
}
