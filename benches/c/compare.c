/* make compare: one fork-join round four ways, in one process, rounds
 * interleaved so that all of them see the same machine:
 *   seed: the CLLM seed's pattern written plainly: one pthread mutex and two
 *         condition variables (work_ready, work_done) per worker; main hands
 *         work to each worker, then waits on each.
 *   omp:  OpenMP, `#pragma omp parallel` (default wait policy).
 *   pool: this library, cllm_pool_run_all (the caller takes a share).
 *   floor: the smallest correct spin-then-park fork-join we could write
 *         (below): the hardware reference, not our API.
 * N counts the threads that do work: the caller included for omp, pool and
 * floor (N-1 helpers), N workers plus a waiting main for the seed.
 * Prints the report lines of issue 12 on stdout (medians), then a detail
 * section (spreads); pool counters go to stderr. */
#define _GNU_SOURCE
#include "cllm_threaded.h"

#include <dirent.h>
#include <limits.h>
#include <linux/futex.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/* ---- floor: the smallest correct spin-then-park fork-join ------------------
 * The yardstick of issue 12, written once and never tuned afterwards: the
 * caller bumps an epoch, takes a share, and waits until a monotonic count of
 * finished shares reaches epoch * (n - 1). Every wait spins for at most
 * FLOOR_SPIN_NS, then sleeps on the word with a futex.
 *
 * No lost wake-up, oversubscribed or not. A sleeper (1) adds itself to the
 * word's sleeper count, (2) re-reads the word, (3) calls FUTEX_WAIT with the
 * value it read. A waker (a) changes the word, (b) reads the sleeper count,
 * (c) calls FUTEX_WAKE if it is not zero. All of (1), (2), (a), (b) are
 * sequentially consistent, so they fall in one total order: if (b) comes
 * before (1) and misses the sleeper, then (a) < (b) < (1) < (2) and (2) sees
 * the new word, so the sleeper does not sleep; otherwise (b) sees the sleeper
 * and (c) wakes it. The kernel compares the word with the value of (2) under
 * the futex's bucket lock, so a (c) that comes before (3) makes (3) return
 * at once (the word differs), and one that comes after wakes it. The epoch
 * never runs more than one ahead of a worker (each round waits for every
 * worker), so a 32-bit epoch cannot wrap onto the value a worker holds. */

#define FLOOR_SPIN_NS 50000.0

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

typedef struct {
    /* The go line: written by the caller once per round. */
    _Alignas(64) atomic_uint epoch;
    atomic_uint go_sleepers; /* workers asleep, or about to be, on epoch */
    void (*fn)(void *);      /* the round's task, set before the epoch bump */
    void *arg;
    int stop;
    int n; /* participants: n - 1 workers and the caller */
    pthread_t *threads;
    /* The join line: written by each worker once per round. */
    _Alignas(64) atomic_uint done;
    atomic_uint done_sleepers; /* the caller asleep, or about to be, on done */
} floor_pool;

/* Waits until (word == v) == until_equal; returns the word's value then. */
static unsigned floor_wait(atomic_uint *word, unsigned v, int until_equal, atomic_uint *sleepers) {
    unsigned w;
    double t0 = 0;
    for (unsigned i = 1;; i++) {
        w = atomic_load_explicit(word, memory_order_acquire);
        if ((w == v) == until_equal) return w;
        if (i % 64 == 0) { /* the clock only now and then */
            double t = now_ns();
            if (t0 == 0) t0 = t;
            else if (t - t0 > FLOOR_SPIN_NS) break;
        }
        cpu_relax();
    }
    atomic_fetch_add(sleepers, 1);
    while (((w = atomic_load(word)) == v) != until_equal)
        syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, w, NULL, NULL, 0);
    atomic_fetch_sub(sleepers, 1);
    return w;
}

/* Adds one to the word and wakes its sleepers; returns the new value. */
static unsigned floor_signal(atomic_uint *word, atomic_uint *sleepers) {
    unsigned v = atomic_fetch_add(word, 1) + 1;
    if (atomic_load(sleepers)) syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    return v;
}

static void *floor_main(void *arg) {
    floor_pool *p = arg;
    unsigned seen = 0;
    for (;;) {
        seen = floor_wait(&p->epoch, seen, 0, &p->go_sleepers);
        if (p->stop) return NULL;
        p->fn(p->arg);
        floor_signal(&p->done, &p->done_sleepers);
    }
}

static void floor_round(floor_pool *p, void (*fn)(void *), void *arg) {
    p->fn = fn;
    p->arg = arg;
    unsigned e = floor_signal(&p->epoch, &p->go_sleepers);
    fn(arg);
    floor_wait(&p->done, e * (unsigned)(p->n - 1), 1, &p->done_sleepers);
}

static floor_pool *floor_create(int n) {
    floor_pool *p = aligned_alloc(64, sizeof *p);
    memset(p, 0, sizeof *p);
    p->n = n;
    p->threads = calloc((size_t)n, sizeof *p->threads);
    for (int i = 0; i < n - 1; i++) pthread_create(&p->threads[i], NULL, floor_main, p);
    return p;
}

static void floor_free(floor_pool *p) {
    p->stop = 1;
    floor_signal(&p->epoch, &p->go_sleepers);
    for (int i = 0; i < p->n - 1; i++) pthread_join(p->threads[i], NULL);
    free(p->threads);
    free(p);
}

static void floor_work(void *arg) {
    long iters = *(long *)arg;
    if (iters) work(iters);
}

/* The floor must be right before it is a reference: every share of every
 * round runs before its round returns, also when workers have gone to sleep
 * (pauses longer than the spin) and when oversubscribed (8 on 2 cores). */
static atomic_long floor_check_count;
static void floor_count(void *arg) {
    (void)arg;
    atomic_fetch_add(&floor_check_count, 1);
}

static void floor_check(void) {
    const int ns[] = {2, 4, 8};
    for (unsigned k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        floor_pool *p = floor_create(ns[k]);
        for (long r = 1; r <= 2000; r++) {
            if (r % 100 == 0) sleep_ms(1); /* longer than the spin: workers park */
            floor_round(p, floor_count, NULL);
            if (atomic_load(&floor_check_count) != r * ns[k]) {
                fprintf(stderr, "floor: round %ld of N=%d ran %ld shares, expected %ld\n", r, ns[k],
                        atomic_load(&floor_check_count), r * ns[k]);
                exit(1);
            }
        }
        floor_free(p);
        atomic_store(&floor_check_count, 0);
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

/* The argument is the measurement's own `iters`, as the floor's is: a value
 * copied to the stack for each round would move that stack line to the
 * sphere and back every round (the sphere reads it), a transfer the floor
 * does not pay. OpenMP's outlined region gets its data that way by design,
 * so it keeps that cost. (Until 2026-12-06 the pool was handed
 * such a copy: N=2 pool/floor was 1.33 with it, 1.05 without, in 8 quiet
 * measurements each; docs/handoff-cost.md.) */
static void pool_round(cllm_pool *pool, long *iters) {
    if (cllm_pool_run_all(pool, pool_task, iters) != CLLM_OK) {
        fprintf(stderr, "cllm_pool_run_all: %s\n", cllm_last_error());
        exit(1);
    }
}

/* ---- measurements ---------------------------------------------------------- */

enum { POOL, OMP, SEED, FLOOR, METHODS };
static const char *const method_name[METHODS] = {"pool", "omp", "seed", "floor"};

/* Rounds of interleaved batches: in each, every method runs one batch. */
enum { REPS = 21 };
/* Before each batch a pause, so that one method's spinning threads do not
 * run during another's batch: with its default wait policy, libgomp's idle
 * workers spin for about 10-12 ms after a parallel region (measured here),
 * the pool's for at most 200 us.
 *
 * Then an untimed warm-up of WARM_MS. After a pause every thread has slept,
 * and the scheduler often wakes the helpers on the CPU of the thread that
 * woke them (wake-affine): seen on a quiet 2-CPU Xeon VM, caller and helper
 * both running on one CPU for the whole of a 4 ms warm-up and 20 ms batch,
 * which made every spinning method's round a spin budget long (pool 8 us,
 * floor 37-42 us) instead of a hand-off (0.8 us, 0.3 us with a 100 ms
 * warm-up). The load balancer spreads them within tens of milliseconds, so
 * the batches measure the hand-off between threads on separate CPUs, and the
 * first RESUME_MS after the pause is reported apart (the `resume` detail
 * line: what a round costs right after the threads slept). The batch is
 * sized from the warm-up's last BATCH_MS: about BATCH_MS of rounds. */
enum { PAUSE_MS = 30, RESUME_MS = 4, WARM_MS = 100, BATCH_MS = 20 };

typedef struct {
    double med, min, max; /* ns per round, over the REPS batches */
    double resume;        /* median ns per round in the first RESUME_MS after the pause */
} spread;

typedef struct {
    int n;
    long iters;
    cllm_pool *pool;
    seed_worker *ws;
    floor_pool *fl; /* NULL: no floor in this measurement */
} methods;

static void one_round(methods *m, int method) {
    switch (method) {
    case POOL: pool_round(m->pool, &m->iters); break;
    case OMP: omp_round(m->n, m->iters); break;
    case SEED: seed_round(m->ws, m->n, m->iters); break;
    default: floor_round(m->fl, floor_work, &m->iters); break;
    }
}

/* Fills out[] with the spread of the mean round time of each method (the
 * floor's only if with_floor). */
static void measure_rounds(const char *label, int n, long iters, int with_floor, spread out[METHODS]) {
    methods m = {n, iters, pool_create(n), seed_create(n), with_floor ? floor_create(n) : NULL};
    int count = with_floor ? METHODS : FLOOR;
    double t[METHODS][REPS], resume[METHODS][REPS];
    for (int r = -1; r < REPS; r++) { /* r = -1: warm-up, not recorded */
        for (int k = 0; k < count; k++) {
            sleep_ms(PAUSE_MS);
            /* The warm-up: its first RESUME_MS timed apart, its last
             * BATCH_MS counted to size the batch. */
            long warm = 0, resumed = 0, tail = 0;
            double t0 = now_ns(), now, resume_ns = 0, tail_start = 0;
            do {
                one_round(&m, k);
                warm++;
                now = now_ns();
                if (!resumed && now - t0 >= RESUME_MS * 1e6) {
                    resumed = warm;
                    resume_ns = now - t0;
                }
                if (now - t0 >= (WARM_MS - BATCH_MS) * 1e6) {
                    if (!tail_start) tail_start = now;
                    else tail++;
                }
            } while (now - t0 < WARM_MS * 1e6);
            if (!resumed) { /* one round took the whole warm-up */
                resumed = warm;
                resume_ns = now - t0;
            }
            long rounds = tail > 0 ? tail : 1;
            /* A batch ends early past 4 x BATCH_MS (rounds can get far
             * slower than in the warm-up on a loaded machine); the clock is
             * read about 256 times per batch, not every round. */
            long every = rounds / 256 + 1, done = 0;
            double t1;
            t0 = now_ns();
            for (;;) {
                for (long i = 0; i < every && done < rounds; i++, done++) one_round(&m, k);
                t1 = now_ns();
                if (done == rounds || t1 - t0 > 4 * BATCH_MS * 1e6) break;
            }
            if (r >= 0) {
                t[k][r] = (t1 - t0) / (double)done;
                resume[k][r] = resume_ns / (double)resumed;
            }
        }
    }
    for (int k = 0; k < count; k++) {
        out[k].med = median(t[k], REPS); /* sorts */
        out[k].min = t[k][0];
        out[k].max = t[k][REPS - 1];
        out[k].resume = median(resume[k], REPS);
    }
    cllm_sphere_stats st;
    cllm_pool_total_stats(m.pool, &st);
    fprintf(stderr, "%s: pool jobs %llu, woken from sleep %llu, found awake %llu\n", label,
            (unsigned long long)st.jobs, (unsigned long long)st.parks, (unsigned long long)st.spin_hits);
    cllm_pool_free(m.pool);
    seed_free(m.ws, n);
    if (m.fl) floor_free(m.fl);
}

/* ---- the busy process of the contended line --------------------------------
 * A pure spin loop in a child process, unpinned, default priority, started
 * before the contended measurement and killed after it; it must never
 * outlive us: it is killed at exit and on fatal signals, and dies with us if
 * we are killed outright (PR_SET_PDEATHSIG). */

static volatile sig_atomic_t spinner_pid;
static volatile unsigned long spinner_sink;

static void spinner_stop(void) {
    pid_t pid = (pid_t)spinner_pid;
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        spinner_pid = 0;
    }
}

static void on_fatal_signal(int sig) {
    if (spinner_pid > 0) kill((pid_t)spinner_pid, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void spinner_start(void) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(0); /* the parent died before prctl */
        for (;;) spinner_sink++;
    }
    spinner_pid = pid;
    sleep_ms(50); /* let it get going */
}

/* ---- report ------------------------------------------------------------------ */

/* The first CPU's model name, family, model and stepping. */
static void print_cpu(void) {
    char name[256] = "unknown", family[32] = "?", model[32] = "?", stepping[32] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f) && line[0] != '\n') {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        char *key_end = colon;
        while (key_end > line && (key_end[-1] == ' ' || key_end[-1] == '\t')) key_end--;
        *key_end = 0;
        char *value = colon + 1 + (colon[1] == ' ');
        value[strcspn(value, "\n")] = 0;
        if (!strcmp(line, "model name")) snprintf(name, sizeof name, "%s", value);
        else if (!strcmp(line, "cpu family")) snprintf(family, sizeof family, "%s", value);
        else if (!strcmp(line, "model")) snprintf(model, sizeof model, "%s", value);
        else if (!strcmp(line, "stepping")) snprintf(stepping, sizeof stepping, "%s", value);
    }
    if (f) fclose(f);
    printf("cpu model=\"%s family %s model %s stepping %s\" cores=%ld\n", name, family, model, stepping,
           sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);
}

/* Busy and total CPU time of the whole machine so far, in clock ticks. */
static void machine_ticks(double *busy, double *total) {
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    *busy = *total = 0;
    if (!f) return;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
               &v[7]) == 8) {
        for (int i = 0; i < 8; i++) *total += (double)v[i];
        *busy = *total - (double)v[3] - (double)v[4]; /* minus idle and iowait */
    }
    fclose(f);
}

/* CPU seconds used by this process and its waited-for children (the spinner). */
static double own_cpu_s(void) {
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    return (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec + kids.ru_stime.tv_sec) +
           (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec + kids.ru_utime.tv_usec + kids.ru_stime.tv_usec) / 1e6;
}

/* Details printed after the report lines. */
static char details[8192];
static void add_detail(const char *label, const spread s[METHODS], int count) {
    size_t len = strlen(details);
    len += (size_t)snprintf(details + len, sizeof details - len, "# %s ns per round min/median/max:", label);
    for (int k = 0; k < count && len < sizeof details; k++)
        len += (size_t)snprintf(details + len, sizeof details - len, " %s %.0f/%.0f/%.0f", method_name[k], s[k].min,
                                s[k].med, s[k].max);
    if (len < sizeof details)
        len += (size_t)snprintf(details + len, sizeof details - len, "\n#   resume (first %d ms after the pause), median:",
                                RESUME_MS);
    for (int k = 0; k < count && len < sizeof details; k++)
        len += (size_t)snprintf(details + len, sizeof details - len, " %s %.0f", method_name[k], s[k].resume);
    if (len < sizeof details) snprintf(details + len, sizeof details - len, "\n");
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
    atexit(spinner_stop);
    const int fatal[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
    for (unsigned i = 0; i < sizeof fatal / sizeof fatal[0]; i++) signal(fatal[i], on_fatal_signal);

    double busy0, total0;
    machine_ticks(&busy0, &total0);
    double own0 = own_cpu_s();
    floor_check();
    calibrate();
    fprintf(stderr, "machine: %zu cores; work of %d us = %ld iterations; OMP_WAIT_POLICY=%s\n",
            cllm_available_cores(), WORK_US, work_iters, getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "(unset)");
    print_cpu();

    spread s[METHODS];
    const int hand_n[] = {2, 4, 16};
    for (int i = 0; i < 3; i++) {
        int n = hand_n[i], with_floor = n <= 4;
        char label[64];
        snprintf(label, sizeof label, "handoff N=%d", n);
        measure_rounds(label, n, 0, with_floor, s);
        printf("handoff N=%d pool_ns=%.0f omp_ns=%.0f seed_ns=%.0f", n, s[POOL].med, s[OMP].med, s[SEED].med);
        if (with_floor) printf(" floor_ns=%.0f", s[FLOOR].med);
        printf("\n");
        fflush(stdout);
        add_detail(label, s, with_floor ? METHODS : FLOOR);
    }

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
#define EFF(t) (serial_ns / ((t) * n))
    measure_rounds("efficiency N=2", n, work_iters, 1, s);
    printf("efficiency N=%d work_us=%d pool=%.3f omp=%.3f seed=%.3f floor=%.3f\n", n, WORK_US, EFF(s[POOL].med),
           EFF(s[OMP].med), EFF(s[SEED].med), EFF(s[FLOOR].med));
    fflush(stdout);
    add_detail("efficiency N=2 (serial of 2 shares in the detail below)", s, METHODS);

    /* Contended: the same with one busy process of ours spinning. The
     * efficiency divides by the serial time measured above, without it. */
    spread c[METHODS], ce[METHODS];
    spinner_start();
    measure_rounds("contended handoff N=2", n, 0, 1, c);
    measure_rounds("contended efficiency N=2", n, work_iters, 1, ce);
    spinner_stop();
    printf("contended N=2 pool_ns=%.0f omp_ns=%.0f seed_ns=%.0f pool_eff=%.3f omp_eff=%.3f seed_eff=%.3f\n",
           c[POOL].med, c[OMP].med, c[SEED].med, EFF(ce[POOL].med), EFF(ce[OMP].med), EFF(ce[SEED].med));
    fflush(stdout);
    add_detail("contended N=2", c, METHODS);
    add_detail("contended efficiency N=2", ce, METHODS);

    /* Idle CPU: the pool's threads in the second after its last job. */
    sleep_ms(PAUSE_MS);
    cllm_pool *pool = pool_create(2);
    long no_work = 0;
    for (int k = 0; k < 10000; k++) pool_round(pool, &no_work);
    double cpu0 = sphere_cpu_ns(), t0 = now_ns();
    sleep_ms(1000);
    double cpu = sphere_cpu_ns() - cpu0, wall = now_ns() - t0;
    printf("idle_cpu_percent pool=%.3f\n", 100.0 * cpu / wall);
    cllm_pool_free(pool);

    /* How much of the machine other programs took meanwhile: a shared
     * machine's figures are only worth what this says. */
    double busy1, total1;
    machine_ticks(&busy1, &total1);
    double tick = (double)sysconf(_SC_CLK_TCK), cores = (double)sysconf(_SC_NPROCESSORS_ONLN);
    double others = ((busy1 - busy0) / tick - (own_cpu_s() - own0)) / ((total1 - total0) / tick);
    printf("# other processes used %.0f%% of the machine's CPU time during the run (%.1f of %.0f cores)\n",
           100.0 * (others < 0 ? 0 : others), (others < 0 ? 0 : others) * cores, cores);
    printf("# detail: %d rounds of interleaved batches (~%d ms each after a %d ms warm-up, %d ms apart); serial 2 shares %.0f ns; "
           "contended floor eff %.3f\n%s",
           REPS, BATCH_MS, WARM_MS, PAUSE_MS, serial_ns, EFF(ce[FLOOR].med), details);
    return 0;
}
