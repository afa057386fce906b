/* make compare: one fork-join round three ways, in one process, rounds
 * interleaved so that all three see the same machine:
 *   seed: the CLLM seed's pattern written plainly: one pthread mutex and two
 *         condition variables (work_ready, work_done) per worker; main hands
 *         work to each worker, then waits on each.
 *   omp:  OpenMP, `#pragma omp parallel` (default wait policy).
 *   pool: this library, cllm_pool_run_all (the caller takes a share).
 * N counts the threads that do work: the caller included for omp and pool
 * (N-1 helpers), N workers plus a waiting main for the seed.
 * Prints exactly four lines on stdout (medians); details go to stderr. */
#define _GNU_SOURCE
#include "cllm_threaded.h"

#include <dirent.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- the work: a dependent floating-point chain ---------------------------- */

static volatile double sink;
static long work_iters; /* calibrated to WORK_US */
#define WORK_US 20

static void work(long iters) {
    double x = 1.0;
    for (long i = 0; i < iters; i++) x = x * 1.0000001 + 1e-9;
    sink = x;
}

static void calibrate(void) {
    long iters = 100000;
    double samples[15];
    for (int r = 0; r < 15; r++) {
        double t0 = now_ns();
        work(iters);
        samples[r] = now_ns() - t0;
    }
    double ns_per_iter = median(samples, 15) / (double)iters;
    work_iters = (long)(WORK_US * 1000.0 / ns_per_iter);
}

/* ---- seed pattern -------------------------------------------------------- */

typedef struct {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work_ready, work_done;
    int has_work, work_complete, running;
    long iters;
} seed_worker;

static void *seed_main(void *arg) {
    seed_worker *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->has_work && w->running) pthread_cond_wait(&w->work_ready, &w->lock);
        if (!w->running) break;
        if (w->iters) work(w->iters);
        w->work_complete = 1;
        w->has_work = 0;
        pthread_cond_signal(&w->work_done);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static seed_worker *seed_create(int n) {
    seed_worker *ws = calloc((size_t)n, sizeof *ws);
    for (int i = 0; i < n; i++) {
        pthread_mutex_init(&ws[i].lock, NULL);
        pthread_cond_init(&ws[i].work_ready, NULL);
        pthread_cond_init(&ws[i].work_done, NULL);
        ws[i].running = 1;
        pthread_create(&ws[i].thread, NULL, seed_main, &ws[i]);
    }
    return ws;
}

static void seed_round(seed_worker *ws, int n, long iters) {
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&ws[i].lock);
        ws[i].iters = iters;
        ws[i].has_work = 1;
        ws[i].work_complete = 0;
        pthread_cond_signal(&ws[i].work_ready);
        pthread_mutex_unlock(&ws[i].lock);
    }
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&ws[i].lock);
        while (!ws[i].work_complete) pthread_cond_wait(&ws[i].work_done, &ws[i].lock);
        pthread_mutex_unlock(&ws[i].lock);
    }
}

static void seed_free(seed_worker *ws, int n) {
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&ws[i].lock);
        ws[i].running = 0;
        pthread_cond_signal(&ws[i].work_ready);
        pthread_mutex_unlock(&ws[i].lock);
        pthread_join(ws[i].thread, NULL);
        pthread_mutex_destroy(&ws[i].lock);
        pthread_cond_destroy(&ws[i].work_ready);
        pthread_cond_destroy(&ws[i].work_done);
    }
    free(ws);
}

/* ---- OpenMP ----------------------------------------------------------------- */

static void omp_round(int n, long iters) {
#pragma omp parallel num_threads(n)
    {
        if (iters) work(iters);
    }
}

/* ---- this library ---------------------------------------------------------- */

static int pool_task(void *arg, const cllm_participant *self) {
    (void)self;
    long iters = *(long *)arg;
    if (iters) work(iters);
    return 0;
}

static cllm_pool *pool_create(int n) {
    cllm_pool_options opts = cllm_pool_options_default();
    opts.num_threads = n - 1; /* the caller is the n-th participant */
    cllm_pool *pool = NULL;
    if (cllm_pool_create(&opts, &pool) != CLLM_OK) {
        fprintf(stderr, "cllm_pool_create: %s\n", cllm_last_error());
        exit(1);
    }
    return pool;
}

static void pool_round(cllm_pool *pool, long iters) {
    if (cllm_pool_run_all(pool, pool_task, &iters) != CLLM_OK) {
        fprintf(stderr, "cllm_pool_run_all: %s\n", cllm_last_error());
        exit(1);
    }
}

/* ---- measurements ---------------------------------------------------------- */

enum { REPS = 21 };

/* Median over REPS batches of the mean time of one round, in ns; the three
 * methods take turns batch by batch, with a pause between batches so that
 * one method's spinning threads do not run during another's batch: with its
 * default wait policy, libgomp's idle workers spin for about 10-12 ms after
 * a parallel region (measured here), the pool's for at most 50 us. */
enum { PAUSE_MS = 30 };
static void measure_rounds(int n, long iters, int rounds, double out[3]) {
    seed_worker *ws = seed_create(n);
    cllm_pool *pool = pool_create(n);
    double t[3][REPS];
    for (int r = -1; r < REPS; r++) { /* r = -1: warm-up, not recorded */
        for (int m = 0; m < 3; m++) {
            sleep_ms(PAUSE_MS);
            /* An untimed warm-up first: after the pause the CPUs (virtual
             * ones here) need a moment to be fully awake again. */
            double t0 = 0;
            for (int k = -rounds / 4; k < rounds; k++) {
                if (k == 0) t0 = now_ns();
                if (m == 0) pool_round(pool, iters);
                else if (m == 1) omp_round(n, iters);
                else seed_round(ws, n, iters);
            }
            if (r >= 0) t[m][r] = (now_ns() - t0) / rounds;
        }
    }
    for (int m = 0; m < 3; m++) out[m] = median(t[m], REPS);
    cllm_sphere_stats st;
    cllm_pool_total_stats(pool, &st);
    fprintf(stderr, "N=%d work=%ld: pool jobs %llu, woken from sleep %llu, found awake %llu\n", n, iters,
            (unsigned long long)st.jobs, (unsigned long long)st.parks, (unsigned long long)st.spin_hits);
    cllm_pool_free(pool);
    seed_free(ws, n);
}

/* CPU time (ns) of this process's threads named cllm-sphere-*, from
 * /proc/self/task/<tid>/schedstat (nanosecond resolution). */
static double sphere_cpu_ns(void) {
    double total = 0;
    DIR *dir = opendir("/proc/self/task");
    if (!dir) return -1;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[512], comm[64] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
        fclose(f);
        if (strncmp(comm, "cllm-sphere-", 12) != 0) continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", e->d_name);
        f = fopen(path, "r");
        if (!f) continue;
        unsigned long long run_ns = 0;
        if (fscanf(f, "%llu", &run_ns) == 1) total += (double)run_ns;
        fclose(f);
    }
    closedir(dir);
    return total;
}

int main(void) {
    calibrate();
    fprintf(stderr, "machine: %zu cores; work of %d us = %ld iterations; OMP_WAIT_POLICY=%s\n",
            cllm_available_cores(), WORK_US, work_iters, getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "(unset)");

    double h2[3], h4[3];
    /* Batches of about 20 ms each. */
    measure_rounds(2, 0, 40000, h2);
    measure_rounds(4, 0, 1000, h4);
    printf("handoff N=2 pool_ns=%.0f omp_ns=%.0f seed_ns=%.0f\n", h2[0], h2[1], h2[2]);
    printf("handoff N=4 pool_ns=%.0f omp_ns=%.0f seed_ns=%.0f\n", h4[0], h4[1], h4[2]);
    fflush(stdout);

    /* Efficiency: serial time of N shares / (round time x N). */
    const int n = 2;
    double serial[REPS];
    for (int r = 0; r < REPS; r++) {
        double t0 = now_ns();
        for (int k = 0; k < 50; k++)
            for (int i = 0; i < n; i++) work(work_iters);
        serial[r] = (now_ns() - t0) / 50;
    }
    double serial_ns = median(serial, REPS);
    double par[3];
    measure_rounds(n, work_iters, 500, par);
    printf("efficiency N=%d work_us=%d pool=%.3f omp=%.3f seed=%.3f\n", n, WORK_US, serial_ns / (par[0] * n),
           serial_ns / (par[1] * n), serial_ns / (par[2] * n));
    fprintf(stderr, "serial %d shares: %.0f ns; rounds: pool %.0f omp %.0f seed %.0f ns\n", n, serial_ns, par[0], par[1],
            par[2]);
    fflush(stdout);

    /* Idle CPU: the pool's threads in the second after its last job. */
    sleep_ms(PAUSE_MS);
    cllm_pool *pool = pool_create(2);
    for (int k = 0; k < 10000; k++) pool_round(pool, 0);
    double cpu0 = sphere_cpu_ns(), t0 = now_ns();
    sleep_ms(1000);
    double cpu = sphere_cpu_ns() - cpu0, wall = now_ns() - t0;
    printf("idle_cpu_percent pool=%.3f\n", 100.0 * cpu / wall);
    cllm_pool_free(pool);
    return 0;
}
