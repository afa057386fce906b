/* Randomized API stress test (issue 13): several threads make random valid
 * and invalid calls on SHARED objects (a sphere pool, role pools, a loader,
 * a frame guard, a counter, a lock, an object pool) and on private ones
 * they create and free, for a bounded time. Checked as it runs and at the end:
 *   - every job, task and loop item ran exactly once (a counter per job id,
 *     per parallel-for item, per frame-phase record), none that was refused;
 *   - every error status came with a non-empty cllm_last_error() message,
 *     and invalid calls got the status the header documents;
 *   - thread count (/proc/self/task) and fd count (/proc/self/fd) are back to
 *     their start values once everything is freed.
 * usage: stress [--seed N] [--seconds S] [--threads T] (S defaults to
 * $STRESS_SECONDS, else 20). It prints its seed
 * first ("stress seed=N"): the same seed replays each thread's sequence of
 * operations and arguments (the interleaving of the threads, and so the
 * outcomes, are the scheduler's). Closing line:
 * "N passed, N failed", counting invariants (EXPECT sites), not evaluations. */
#define _GNU_SOURCE
#include <cllm_threaded.h>

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- checks (thread-safe; check.h's counters are not) ----
 * The closing line counts invariants, not evaluations: each EXPECT site
 * (source line) is one invariant, passed if it held every time it was
 * evaluated, failed if it ever did not. The evaluations (millions: most
 * sites check every call) are reported on the line before. */
#define MAX_SITE 2048
static atomic_long evaluations, site_evaluated[MAX_SITE], site_failed[MAX_SITE];
static atomic_long failed; /* failed evaluations: the first 30 are printed */
#define EXPECT(cond, ...)                                                      \
    do {                                                                       \
        _Static_assert(__LINE__ < MAX_SITE, "raise MAX_SITE");                 \
        atomic_fetch_add_explicit(&evaluations, 1, memory_order_relaxed);      \
        atomic_fetch_add_explicit(&site_evaluated[__LINE__], 1, memory_order_relaxed); \
        if (!(cond)) {                                                         \
            atomic_fetch_add(&site_failed[__LINE__], 1);                       \
            if (atomic_fetch_add(&failed, 1) < 30) {                           \
                flockfile(stderr);                                             \
                fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
                fprintf(stderr, __VA_ARGS__);                                  \
                fputc('\n', stderr);                                           \
                funlockfile(stderr);                                           \
            }                                                                  \
        }                                                                      \
    } while (0)

/* Prints the evaluations and the closing "N passed, N failed" line (in
 * invariants); returns the number of failed invariants. */
static long report_invariants(void) {
    long held = 0, broken = 0, sites = 0;
    for (int i = 0; i < MAX_SITE; i++) {
        if (!atomic_load(&site_evaluated[i])) continue;
        sites++;
        if (atomic_load(&site_failed[i])) broken++;
        else held++;
    }
    printf("stress: %ld evaluations of %ld invariants (%ld failed evaluations)\n", atomic_load(&evaluations), sites,
           atomic_load(&failed));
    printf("%ld passed, %ld failed\n", held, broken);
    fflush(stdout);
    return broken;
}

/* Calls by status, for the closing report (what the run exercised). */
#define MAX_STATUS 32
static atomic_long by_status[MAX_STATUS];

/* Every status: counted; an error must carry a message. */
static cllm_status seen(cllm_status s, const char *call) {
    atomic_fetch_add(&by_status[(s >= 0 && s < MAX_STATUS) ? s : MAX_STATUS - 1], 1);
    if (s != CLLM_OK) {
        const char *m = cllm_last_error();
        EXPECT(m != NULL && m[0] != '\0', "%s returned %s with an empty message", call,
               cllm_status_str(s));
    }
    return s;
}
#define CALL(expr) seen((expr), #expr)
/* An invalid call: the documented status. */
#define INVALID(expr, want)                                                    \
    do {                                                                       \
        cllm_status got_ = CALL(expr);                                         \
        EXPECT(got_ == (want), "%s returned %s (%s), expected %s", #expr,      \
               cllm_status_str(got_), cllm_last_error(), cllm_status_str(want)); \
    } while (0)

/* ---- random numbers (xorshift64*), one state per thread ---- */
typedef struct { uint64_t s; } rng;
static uint64_t next(rng *r) {
    r->s ^= r->s >> 12; r->s ^= r->s << 25; r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ULL;
}
static uint64_t below(rng *r, uint64_t n) { return n ? next(r) % n : 0; }

/* ---- job ledger: runs[id] counted by the job, expected[id] set by the
 * caller when the library accepted it ---- */
#define MAX_JOBS (1u << 21)
static atomic_int *runs;
static atomic_int *expected;
static atomic_uint next_id;
static uint32_t new_id(void) {
    uint32_t id = atomic_fetch_add(&next_id, 1);
    return id < MAX_JOBS ? id : MAX_JOBS - 1; /* the last slot is a sink (not checked) */
}
static int job_fails(uint32_t id) { return id % 17 == 5; } /* some jobs fail on purpose */

static int pool_job(void *arg, size_t sphere) {
    (void)sphere;
    uint32_t id = (uint32_t)(uintptr_t)arg;
    atomic_fetch_add(&runs[id], 1);
    return job_fails(id) ? 3 : 0;
}
static int role_task(void *arg) {
    uint32_t id = (uint32_t)(uintptr_t)arg;
    atomic_fetch_add(&runs[id], 1);
    return job_fails(id) ? 4 : 0;
}
static atomic_long periodic_runs;
static int periodic_task(void *arg) { (void)arg; atomic_fetch_add(&periodic_runs, 1); return 0; }

/* ---- parallel loops: one counter per item ---- */
typedef struct {
    atomic_int *items;
    size_t base, n, fail_at; /* fail_at == n: no failure */
} loop;
static int range_body(void *arg, size_t b, size_t e, size_t participant) {
    (void)participant;
    loop *l = arg;
    int rc = 0;
    for (size_t i = b; i < e; i++) {
        atomic_fetch_add(&l->items[i - l->base], 1);
        if (i - l->base == l->fail_at) rc = 7;
    }
    return rc;
}
static int index_body(void *arg, size_t i) {
    loop *l = arg;
    atomic_fetch_add(&l->items[i], 1);
    return i == l->fail_at ? 7 : 0;
}
/* After a loop: OK -> every item once; a body failure -> each at most once;
 * any other error -> none. */
static void check_loop(const loop *l, cllm_status s, const char *what, size_t grain) {
    size_t zero = 0, one = 0, more = 0;
    for (size_t i = 0; i < l->n; i++) {
        int c = atomic_load(&l->items[i]);
        if (c == 0) zero++; else if (c == 1) one++; else more++;
    }
    if (s == CLLM_OK)
        EXPECT(one == l->n, "%s n=%zu grain=%zu: OK but %zu items not run, %zu more than once",
               what, l->n, grain, zero, more);
    else if (s == CLLM_ERR_JOB_FAILED)
        EXPECT(more == 0, "%s n=%zu grain=%zu: %zu items run more than once", what, l->n, grain, more);
    else
        EXPECT(one + more == 0, "%s n=%zu grain=%zu: %s but %zu items ran", what, l->n, grain,
               cllm_status_str(s), one + more);
}
static size_t pick_grain(rng *r, size_t n) {
    switch (below(r, 8)) {
    case 0: return 0;
    case 1: return 1;
    case 2: return n;
    case 3: return n + 1;
    case 4: return SIZE_MAX;
    case 5: return (size_t)1 << (sizeof(size_t) * 8 - 1);
    default: return 1 + below(r, 64);
    }
}

/* ---- fork-join: each participant once per round ---- */
typedef struct { atomic_int seen[64]; atomic_int calls; int use_barrier; } round_t;
static int share(void *arg, const cllm_participant *p) {
    round_t *r = arg;
    atomic_fetch_add(&r->calls, 1);
    if (p->index < 64) atomic_fetch_add(&r->seen[p->index], 1);
    if (r->use_barrier) {
        bool leader = false;
        cllm_status s = CALL(cllm_participant_barrier(p, &leader));
        EXPECT(s == CLLM_OK, "barrier: %s", cllm_status_str(s));
    }
    return 0;
}
/* A share that tries to free its own pool: must be refused (issue 13, 3). */
static int share_frees(void *arg, const cllm_participant *p) {
    (void)p;
    cllm_pool_free((cllm_pool *)arg);
    return 0;
}

/* ---- shared objects ---- */
static cllm_pool *pool;          /* 2 spheres + caller */
static size_t spheres;
static cllm_roles *roles;
static cllm_frame *frame;        /* thread 0 is its loop thread */
static cllm_loader *loader;
static cllm_counter *counter;
static atomic_long counter_added;
static cllm_lock *lock;
static long under_lock;           /* changed only while holding `lock` */
static atomic_long lock_taken;    /* successful lock calls */
static cllm_objpool *objpool;     /* 64-byte blocks, at most 16 */
static char corpus_dir[64];
static char cache_path[96]; /* beside corpus_dir: the loaders without a cache would list it */
static atomic_long cached_loads, mapped_loads, truncations;
static atomic_int stop;
static int phase_of[64];          /* thread t records phase_of[t] */
static long phase_records[64];    /* its successful records */
static long frames_recorded;      /* thread 0's successful end/tick */

/* ---- operations ---- */
static void op_dispatch(rng *r) {
    uint32_t id = new_id();
    size_t sphere = below(r, spheres + 2); /* sometimes out of range */
    cllm_status s = CALL(cllm_pool_dispatch(pool, sphere, pool_job, (void *)(uintptr_t)id));
    if (sphere >= spheres)
        EXPECT(s == CLLM_ERR_INVALID_ARGUMENT, "dispatch to sphere %zu of %zu: %s", sphere, spheres,
               cllm_status_str(s));
    if (s == CLLM_OK) {
        atomic_store(&expected[id], 1);
        if (below(r, 5)) { /* usually wait; else leave it for anyone's wait */
            s = CALL(below(r, 2) ? cllm_pool_wait(pool, sphere)
                                 : cllm_pool_wait_timeout(pool, sphere, below(r, 2000000)));
            EXPECT(s == CLLM_OK || s == CLLM_ERR_JOB_FAILED || s == CLLM_ERR_TIMEOUT,
                   "wait: %s", cllm_status_str(s));
        }
    }
}
static void op_dispatch_any(rng *r) {
    uint32_t id = new_id();
    size_t sphere = 0;
    cllm_status s = CALL(cllm_pool_dispatch_any(pool, pool_job, (void *)(uintptr_t)id, &sphere));
    EXPECT(s == CLLM_OK || s == CLLM_ERR_BUSY, "dispatch_any: %s", cllm_status_str(s));
    if (s == CLLM_OK) {
        atomic_store(&expected[id], 1);
        if (below(r, 4)) CALL(cllm_pool_wait(pool, sphere));
    }
}
static void op_pool_misc(rng *r) {
    size_t sphere = below(r, spheres + 2);
    bool busy;
    cllm_sphere_stats st;
    switch (below(r, 6)) {
    case 0: CALL(cllm_pool_wait(pool, sphere)); break;
    case 1: CALL(cllm_pool_is_busy(pool, sphere, &busy)); break;
    case 2: CALL(cllm_pool_sphere_stats(pool, sphere, &st)); break;
    case 3: CALL(cllm_pool_total_stats(pool, &st)); break;
    case 4: INVALID(cllm_pool_dispatch(NULL, 0, pool_job, NULL), CLLM_ERR_NULL); break;
    default: INVALID(cllm_pool_is_busy(pool, 0, NULL), CLLM_ERR_NULL); break;
    }
}
static void op_pool_for(rng *r) {
    size_t n = below(r, 3000);
    loop l = {calloc(n + 1, sizeof(atomic_int)), 0, n, below(r, 10) ? n : below(r, n + 1)};
    /* sometimes a range near the top of size_t (the cursors must not wrap) */
    l.base = below(r, 4) ? below(r, 1000) : SIZE_MAX / 2 - 4096 - n;
    size_t grain = pick_grain(r, n);
    cllm_status s;
    if (below(r, 20) == 0) {
        s = CALL(cllm_pool_parallel_for(pool, l.base + 1, l.base, grain, range_body, &l));
        EXPECT(s == CLLM_ERR_INVALID_ARGUMENT, "begin > end: %s", cllm_status_str(s));
    } else {
        s = CALL(cllm_pool_parallel_for(pool, l.base, l.base + n, grain, range_body, &l));
        EXPECT(s == CLLM_OK || s == CLLM_ERR_JOB_FAILED || s == CLLM_ERR_BUSY,
               "pool parallel_for: %s", cllm_status_str(s));
    }
    check_loop(&l, s, "pool parallel_for", grain);
    free(l.items);
}
static void op_run_all(rng *r) {
    round_t rd;
    memset(&rd, 0, sizeof rd);
    rd.use_barrier = (int)below(r, 2);
    cllm_status s = CALL(cllm_pool_run_all(pool, share, &rd));
    if (s == CLLM_OK) {
        EXPECT(atomic_load(&rd.calls) == (int)spheres + 1, "run_all: %d calls for %zu participants",
               atomic_load(&rd.calls), spheres + 1);
        for (size_t i = 0; i <= spheres; i++)
            EXPECT(atomic_load(&rd.seen[i]) == 1, "run_all: participant %zu ran %d times", i,
                   atomic_load(&rd.seen[i]));
    } else {
        EXPECT(s == CLLM_ERR_BUSY && atomic_load(&rd.calls) == 0, "run_all: %s after %d calls",
               cllm_status_str(s), atomic_load(&rd.calls));
    }
}
/* A private pool: created, used, freed from inside a round (refused), freed. */
static void op_private_pool(rng *r) {
    cllm_pool_options o = cllm_pool_options_default();
    o.num_threads = (int)below(r, 3);
    o.total_threads = o.num_threads == 0 ? 1 + (int)below(r, 2) : 0;
    o.max_spin_ns = below(r, 20000);
    if (below(r, 8) == 0) { /* invalid: both set, or too many */
        o.num_threads = 1; o.total_threads = 2;
        cllm_pool *p = NULL;
        INVALID(cllm_pool_create(&o, &p), CLLM_ERR_INVALID_ARGUMENT);
        EXPECT(p == NULL, "failed create wrote its output");
        return;
    }
    cllm_pool *p = NULL;
    if (CALL(cllm_pool_create(&o, &p)) != CLLM_OK) return;
    cllm_status s = CALL(cllm_pool_run_all(p, share_frees, p));
    EXPECT(s == CLLM_OK, "run_all (free inside): %s", cllm_status_str(s));
    double data[100], sum = 0;
    for (int i = 0; i < 100; i++) data[i] = i;
    s = CALL(cllm_pool_reduce_sum_double(p, data, 100, &sum));
    EXPECT(s == CLLM_OK && sum == 4950.0, "reduce after refused free: %s %g", cllm_status_str(s), sum);
    cllm_pool_free(p);
}

static cllm_role pick_role(rng *r) {
    switch (below(r, 12)) {
    case 0: return CLLM_ROLE_COUNT;   /* invalid */
    case 1: return CLLM_ROLE_NONE;    /* invalid as an argument */
    default: return (cllm_role)below(r, CLLM_ROLE_COUNT);
    }
}
static void op_submit(rng *r) {
    uint32_t id = new_id();
    cllm_role role = pick_role(r);
    cllm_task *t = NULL;
    void *arg = (void *)(uintptr_t)id;
    cllm_status s;
    switch (below(r, 4)) {
    case 0: s = CALL(cllm_roles_submit(roles, role, role_task, arg, &t)); break;
    case 1: s = CALL(cllm_roles_try_submit(roles, role, role_task, arg, &t)); break;
    case 2: s = CALL(cllm_roles_submit_timeout(roles, role, role_task, arg, 1 + below(r, 1000000), &t)); break;
    default: s = CALL(cllm_roles_submit_ex(roles, role, (int32_t)below(r, 5) - 2,
                                           below(r, 2) ? CLLM_WAIT_FOREVER : 0, role_task, arg, &t));
    }
    if (role >= CLLM_ROLE_COUNT)
        EXPECT(s == CLLM_ERR_INVALID_ARGUMENT, "submit to role %u: %s", role, cllm_status_str(s));
    else
        EXPECT(s == CLLM_OK || s == CLLM_ERR_FULL || s == CLLM_ERR_TIMEOUT, "submit: %s",
               cllm_status_str(s));
    if (s != CLLM_OK) {
        EXPECT(t == NULL, "failed submit wrote its output");
        return;
    }
    atomic_store(&expected[id], 1);
    if (below(r, 4)) {
        s = CALL(below(r, 2) ? cllm_task_wait(t) : cllm_task_wait_timeout(t, below(r, 1000000)));
        EXPECT(s == CLLM_OK || s == CLLM_ERR_JOB_FAILED || s == CLLM_ERR_TIMEOUT, "task wait: %s",
               cllm_status_str(s));
        if (s == CLLM_OK || s == CLLM_ERR_JOB_FAILED) {
            EXPECT(atomic_load(&runs[id]) == 1, "task %u waited for, ran %d times", id,
                   atomic_load(&runs[id]));
            EXPECT((s == CLLM_ERR_JOB_FAILED) == job_fails(id), "task %u: %s", id, cllm_status_str(s));
        }
    }
    cllm_task_free(t); /* a pending task goes on running */
}
static void op_roles_for(rng *r) {
    size_t n = below(r, 2000);
    loop l = {calloc(n + 1, sizeof(atomic_int)), 0, n, below(r, 10) ? n : below(r, n + 1)};
    cllm_role role = pick_role(r);
    cllm_partition part = below(r, 10) ? (cllm_partition)below(r, 3) : 3 + (cllm_partition)below(r, 100);
    size_t grain = pick_grain(r, n);
    cllm_status s = CALL(cllm_roles_parallel_for(roles, role, n, part, grain, index_body, &l));
    if (role >= CLLM_ROLE_COUNT || part > CLLM_PARTITION_DYNAMIC)
        EXPECT(s == CLLM_ERR_INVALID_ARGUMENT, "roles parallel_for role %u part %u: %s", role, part,
               cllm_status_str(s));
    else
        EXPECT(s == CLLM_OK || s == CLLM_ERR_JOB_FAILED, "roles parallel_for: %s", cllm_status_str(s));
    check_loop(&l, s, "roles parallel_for", grain);
    free(l.items);
}
static void op_roles_misc(rng *r) {
    cllm_role_metrics m;
    cllm_thread_move mv;
    cllm_stuck_task stuck[2];
    cllm_frame_monitor_inputs in;
    cllm_periodic_stats ps;
    size_t count, budget, threads;
    uint64_t sid;
    switch (below(r, 9)) {
    case 0: CALL(cllm_roles_metrics(roles, pick_role(r), &m)); break;
    case 1: CALL(cllm_roles_rebalance(roles, &mv)); break;
    case 2: CALL(cllm_roles_stuck_tasks(roles, stuck, below(r, 3), &count)); break;
    case 3: CALL(cllm_roles_monitor_inputs(roles, &in)); break;
    case 4: CALL(cllm_roles_threads(roles, &budget, &threads)); break;
    case 5: /* resize within the budget, or an unknown role */
        CALL(cllm_roles_resize(roles, pick_role(r), below(r, 3)));
        break;
    case 6: /* a periodic task added and removed again */
        if (CALL(cllm_roles_sched_add(roles, "stress", 1000000 + below(r, 2000000), 0, periodic_task,
                                      NULL, &sid)) == CLLM_OK) {
            usleep((useconds_t)below(r, 3000));
            CALL(cllm_roles_sched_stats(roles, sid, &ps));
            cllm_status s = CALL(cllm_roles_sched_remove(roles, sid));
            EXPECT(s == CLLM_OK, "sched_remove: %s", cllm_status_str(s));
            INVALID(cllm_roles_sched_remove(roles, sid), CLLM_ERR_NOT_FOUND);
        }
        break;
    case 7: INVALID(cllm_roles_sched_add(roles, "zero", 0, 0, periodic_task, NULL, &sid),
                    CLLM_ERR_INVALID_ARGUMENT); break;
    default: INVALID(cllm_roles_metrics(roles, CLLM_ROLE_AI, NULL), CLLM_ERR_NULL); break;
    }
}

/* Thread 0 is the frame's loop thread; every thread records its own phase
 * and queries. */
static void op_frame_loop(rng *r) {
    if (below(r, 2)) {
        if (CALL(cllm_frame_begin(frame)) == CLLM_OK) {
            INVALID(cllm_frame_begin(frame), CLLM_ERR_BUSY);
            if (CALL(cllm_frame_end(frame)) == CLLM_OK) frames_recorded++;
        }
    } else {
        if (CALL(cllm_frame_tick(frame, below(r, 20000000))) == CLLM_OK) frames_recorded++;
    }
    INVALID(cllm_frame_end(frame), CLLM_ERR_INVALID_ARGUMENT); /* no frame in progress */
    INVALID(cllm_frame_tick(frame, UINT64_MAX), CLLM_ERR_INVALID_ARGUMENT);
    if (below(r, 50) == 0) {
        char row[CLLM_FRAME_ROW_MAX];
        size_t len = 0;
        cllm_frame_monitor_inputs in;
        if (CALL(cllm_roles_monitor_inputs(roles, &in)) == CLLM_OK)
            CALL(cllm_frame_monitor_row(frame, &in, row, sizeof row, &len));
        INVALID(cllm_frame_monitor_row(frame, NULL, row, 10, &len), CLLM_ERR_BUFFER_TOO_SMALL);
        EXPECT(len == CLLM_FRAME_ROW_MAX - 1, "row too small: out_len %zu", len);
    }
}
static void op_frame_query(rng *r, int t) {
    bool b;
    cllm_frame_statistics st;
    cllm_frame_phase_statistics ps;
    char name[CLLM_FRAME_PHASE_NAME_MAX];
    size_t len = 0;
    int n;
    switch (below(r, 7)) {
    case 0: CALL(cllm_frame_is_stopped(frame, &b)); break;
    case 1: CALL(cllm_frame_stats(frame, &st)); break;
    case 2: CALL(cllm_frame_monitor_due(frame, &b)); break;
    case 3:
        if (CALL(cllm_frame_record_phase(frame, phase_of[t], below(r, 1000000))) == CLLM_OK)
            phase_records[t]++;
        break;
    case 4: INVALID(cllm_frame_record_phase(frame, 10000, 1), CLLM_ERR_INVALID_ARGUMENT); break;
    case 5: CALL(cllm_frame_phase_stats(frame, (int)below(r, 80), &ps)); CALL(cllm_frame_phase_count(frame, &n)); break;
    default: {
        size_t cap = below(r, sizeof name);
        cllm_status s = CALL(cllm_frame_phase_name(frame, phase_of[t], name, cap, &len));
        EXPECT(s == CLLM_OK || (s == CLLM_ERR_BUFFER_TOO_SMALL && cap <= len), "phase_name cap %zu: %s",
               cap, cllm_status_str(s));
    }
    }
}
/* A private frame, sometimes with a watchdog thread. */
static void op_private_frame(rng *r) {
    cllm_frame_options o = cllm_frame_options_default();
    o.watchdog_period_ns = below(r, 2) ? 1000000 + below(r, 5000000) : 0;
    o.manual_clock = below(r, 2);
    if (below(r, 6) == 0) o.rules = 1u << 7; /* unknown rule bit */
    cllm_frame *f = NULL;
    cllm_status s = CALL(cllm_frame_create(&o, &f));
    if (o.rules == 1u << 7) {
        EXPECT(s == CLLM_ERR_INVALID_ARGUMENT && f == NULL, "unknown rule: %s", cllm_status_str(s));
        return;
    }
    if (s != CLLM_OK) return;
    for (int i = 0; i < 5; i++) CALL(cllm_frame_tick(f, 1000000));
    if (o.manual_clock) CALL(cllm_frame_advance(f, 5000000));
    else INVALID(cllm_frame_advance(f, 5), CLLM_ERR_INVALID_ARGUMENT);
    CALL(cllm_frame_poll(f));
    cllm_frame_statistics st;
    if (CALL(cllm_frame_stats(f, &st)) == CLLM_OK)
        EXPECT(st.frames == 5, "private frame: %llu frames recorded of 5", (unsigned long long)st.frames);
    cllm_frame_free(f);
}

static void op_loader(rng *r) {
    cllm_loader_iter_options bo = cllm_loader_iter_options_default();
    bo.batch_size = 1 + (uint32_t)below(r, 4);
    bo.seq_len = 1 + (uint32_t)below(r, 16);
    bo.shuffle = below(r, 2);
    bo.seed = next(r);
    bo.prefetch = (uint32_t)below(r, 3);
    uint32_t shards = 1 + (uint32_t)below(r, 3);
    size_t total = 0, want = 0;
    for (uint32_t sh = 0; sh < shards; sh++) {
        cllm_loader_iter *it = NULL;
        if (CALL(cllm_loader_iter_create(loader, &bo, sh, shards, &it)) != CLLM_OK) return;
        size_t nb = 0;
        CALL(cllm_loader_iter_num_batches(it, &nb));
        want += nb;
        cllm_loader_batch *b = NULL;
        while (CALL(cllm_loader_iter_next(it, &b)) == CLLM_OK && b != NULL) {
            total++;
            EXPECT(b->batch_size == bo.batch_size && b->seq_len == bo.seq_len, "batch shape %ux%u",
                   b->batch_size, b->seq_len);
            if (below(r, 8) == 0) {
                char text[64];
                size_t len = 0;
                CALL(cllm_loader_decode(loader, b->input_ids, b->seq_len, text, below(r, sizeof text), &len));
            }
            cllm_loader_batch_free(b);
            b = NULL;
        }
        cllm_loader_iter_free(it);
    }
    EXPECT(total == want, "loader: %zu batches over %u shards, num_batches says %zu", total, shards, want);
    /* invalid iterators and a missing directory */
    cllm_loader_iter *it = NULL;
    INVALID(cllm_loader_iter_create(loader, &bo, shards, shards, &it), CLLM_ERR_INVALID_ARGUMENT);
    bo.batch_size = 0;
    INVALID(cllm_loader_iter_create(loader, &bo, 0, 1, &it), CLLM_ERR_INVALID_ARGUMENT);
    if (below(r, 10) == 0) {
        cllm_loader *l = NULL;
        char missing[96];
        snprintf(missing, sizeof missing, "%s/missing", corpus_dir);
        INVALID(cllm_loader_create(missing, NULL, &l), CLLM_ERR_NOT_FOUND);
        cllm_loader_options lo = cllm_loader_options_default();
        lo.tokenizer = 7;
        INVALID(cllm_loader_create(corpus_dir, &lo, &l), CLLM_ERR_INVALID_ARGUMENT);
        lo = cllm_loader_options_default();
        lo.num_threads = 1 + (int)below(r, 2);
        if (CALL(cllm_loader_create(corpus_dir, &lo, &l)) == CLLM_OK) {
            size_t v1 = 0, v2 = 0;
            CALL(cllm_loader_vocab_size(l, &v1));
            CALL(cllm_loader_vocab_size(loader, &v2));
            EXPECT(v1 == v2, "same corpus, vocab %zu vs %zu", v1, v2);
            cllm_loader_free(l);
        }
    }
    if (below(r, 3) == 0) {
        /* A loader served from the shared cache (its tokens mapped under a
         * read lease) while this and other threads truncate that cache: the
         * truncation waits for the loader's copy, the tokens stay whole. */
        cllm_loader_options lo = cllm_loader_options_default();
        lo.num_threads = 1;
        lo.cache_path = cache_path;
        cllm_loader *l = NULL;
        if (CALL(cllm_loader_create(corpus_dir, &lo, &l)) == CLLM_OK) {
            cllm_loader_report rep;
            if (CALL(cllm_loader_get_report(l, &rep)) == CLLM_OK) {
                atomic_fetch_add(&cached_loads, 1);
                if (rep.cache_mapped) atomic_fetch_add(&mapped_loads, 1);
            }
            if (below(r, 3) == 0 && truncate(cache_path, 0) == 0) atomic_fetch_add(&truncations, 1);
            const uint32_t *t = NULL, *t0 = NULL;
            size_t n = 0, n0 = 0;
            if (CALL(cllm_loader_tokens(l, &t, &n)) == CLLM_OK && CALL(cllm_loader_tokens(loader, &t0, &n0)) == CLLM_OK)
                EXPECT(n == n0 && memcmp(t, t0, n * sizeof *t) == 0,
                       "a cached loader's %zu tokens equal the shared loader's %zu", n, n0);
            cllm_loader_free(l);
        }
    }
}
static void op_counter(rng *r) {
    uint64_t d = below(r, 100);
    if (CALL(cllm_counter_add(counter, d)) == CLLM_OK) atomic_fetch_add(&counter_added, (long)d);
    if (below(r, 10) == 0) INVALID(cllm_counter_add(NULL, 1), CLLM_ERR_NULL);
}

/* A shared lock guarding a plain counter: every successful lock adds 1. */
static void op_lock(rng *r) {
    cllm_status s;
    switch (below(r, 3)) {
    case 0: s = CALL(cllm_lock_lock(lock)); break;
    case 1: s = CALL(cllm_lock_trylock(lock)); break;
    default: s = CALL(cllm_lock_lock_timeout(lock, below(r, 200000))); break;
    }
    EXPECT(s == CLLM_OK || s == CLLM_ERR_BUSY || s == CLLM_ERR_TIMEOUT, "lock: %s", cllm_status_str(s));
    if (s != CLLM_OK) return;
    under_lock++;
    atomic_fetch_add(&lock_taken, 1);
    INVALID(cllm_lock_lock(lock), CLLM_ERR_DEADLOCK); /* held by this thread */
    s = CALL(cllm_lock_unlock(lock));
    EXPECT(s == CLLM_OK, "unlock: %s", cllm_status_str(s));
    INVALID(cllm_lock_unlock(lock), CLLM_ERR_INVALID_ARGUMENT); /* not held */
}
/* Blocks of a shared object pool: each written with the id of its holder
 * (two holders of one block would see each other's id), released once. */
static void op_objpool(rng *r, int t) {
    void *blocks[4] = {0};
    int held = 0;
    for (int i = 0; i < 1 + (int)below(r, 4); i++) {
        cllm_status s = CALL(cllm_objpool_acquire(objpool, &blocks[held]));
        EXPECT(s == CLLM_OK || s == CLLM_ERR_FULL, "acquire: %s", cllm_status_str(s));
        if (s == CLLM_OK) memset(blocks[held++], t + 1, 64);
    }
    usleep((useconds_t)below(r, 200));
    for (int i = 0; i < held; i++) {
        unsigned char *b = blocks[i];
        EXPECT(b[0] == t + 1 && b[63] == t + 1, "block %p held by thread %d holds %d", (void *)b, t, b[0]);
        cllm_status s = CALL(cllm_objpool_release(objpool, b));
        EXPECT(s == CLLM_OK, "release: %s", cllm_status_str(s));
    }
    /* A double release, on a private pool (on the shared one another
     * thread may have taken the block again in between). */
    cllm_objpool *own = NULL;
    void *blk = NULL;
    if (below(r, 8) == 0 && CALL(cllm_objpool_create(32, NULL, &own)) == CLLM_OK) {
        if (CALL(cllm_objpool_acquire(own, &blk)) == CLLM_OK) {
            CALL(cllm_objpool_release(own, blk));
            INVALID(cllm_objpool_release(own, blk), CLLM_ERR_INVALID_ARGUMENT);
        }
        cllm_objpool_free(own);
    }
}

typedef struct { int index; uint64_t seed; long ops; } worker_arg;
static atomic_int workers_done;
static void *worker(void *p) {
    worker_arg *w = p;
    rng r = {w->seed * 0x9E3779B97F4A7C15ULL + (uint64_t)w->index * 0xD1B54A32D192ED03ULL + 1};
    while (!atomic_load(&stop)) {
        /* Each operation draws from its own generator, seeded by one draw
         * of the thread's: the thread's sequence of operations and their
         * arguments is the seed's alone, whatever the calls returned. */
        rng o = {next(&r) | 1};
        if (w->index == 0 && below(&o, 3) == 0) { op_frame_loop(&o); w->ops++; continue; }
        switch (below(&o, 16)) {
        case 0: case 1: op_dispatch(&o); break;
        case 2: op_dispatch_any(&o); break;
        case 3: op_pool_misc(&o); break;
        case 4: op_pool_for(&o); break;
        case 5: op_run_all(&o); break;
        case 6: if (below(&o, 8) == 0) op_private_pool(&o); break;
        case 7: case 8: op_submit(&o); break;
        case 9: op_roles_for(&o); break;
        case 10: op_roles_misc(&o); break;
        case 11: op_frame_query(&o, w->index); if (below(&o, 40) == 0) op_private_frame(&o); break;
        case 12: if (below(&o, 6) == 0) op_loader(&o); break;
        case 13: op_lock(&o); break;
        case 14: op_objpool(&o, w->index); break;
        default: op_counter(&o); break;
        }
        w->ops++;
    }
    atomic_fetch_add(&workers_done, 1);
    return NULL;
}

/* ---- process resources ---- */
static int count_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}
/* Threads end a moment after they are joined (detached helpers, the
 * kernel's bookkeeping): wait up to 2 s for the count to come back. */
static int settle(const char *path, int want) {
    int n = count_dir(path);
    for (int i = 0; i < 200 && n != want; i++) { usleep(10000); n = count_dir(path); }
    return n;
}

static void write_corpus(void) {
    strcpy(corpus_dir, "/tmp/cllm-stress-XXXXXX");
    if (!mkdtemp(corpus_dir)) { perror("mkdtemp"); exit(2); }
    const char *words[] = {"the", "walker", "moves", "north", "and", "south", "agents", "learn", "fast", "slowly"};
    for (int f = 0; f < 6; f++) {
        char path[128];
        snprintf(path, sizeof path, "%s/doc%d.txt", corpus_dir, f);
        FILE *fp = fopen(path, "w");
        if (!fp) { perror(path); exit(2); }
        for (int i = 0; i < 300 + 50 * f; i++) fprintf(fp, "%s%s", words[(i * 7 + f) % 10], i % 12 == 11 ? ".\n" : " ");
        fclose(fp);
    }
    char path[128]; /* a file the loader skips */
    snprintf(path, sizeof path, "%s/binary.bin", corpus_dir);
    FILE *fp = fopen(path, "w");
    fputs("abc", fp); fputc(0, fp); fputs("def", fp);
    fclose(fp);
}
static void remove_corpus(void) {
    DIR *d = opendir(corpus_dir);
    struct dirent *e;
    char path[400];
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", corpus_dir, e->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(corpus_dir);
    unlink(cache_path);
}

static void *nothing(void *arg) { return arg; }

int main(int argc, char **argv) {
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    /* STRESS_SECONDS: for runners that pass no arguments (make tsan). */
    double seconds = getenv("STRESS_SECONDS") ? atof(getenv("STRESS_SECONDS")) : 20;
    int nthreads = 6;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) nthreads = atoi(argv[i + 1]);
        else { fprintf(stderr, "usage: stress [--seed N] [--seconds S] [--threads T]\n"); return 2; }
    }
    if (nthreads < 1 || nthreads > 64) nthreads = 6;
    printf("stress seed=%llu seconds=%g threads=%d\n", (unsigned long long)seed, seconds, nthreads);
    fflush(stdout);

    write_corpus();
    snprintf(cache_path, sizeof cache_path, "%s.cache", corpus_dir);
    /* A thread started and joined first, so that the baseline counts the
     * helper threads a runtime starts with the first thread (ThreadSanitizer
     * does): only the library's threads must be gone at the end. */
    pthread_t first;
    if (pthread_create(&first, NULL, nothing, NULL) == 0) pthread_join(first, NULL);
    const int threads0 = count_dir("/proc/self/task");
    const int fds0 = count_dir("/proc/self/fd");
    runs = calloc(MAX_JOBS, sizeof *runs);
    expected = calloc(MAX_JOBS, sizeof *expected);

    cllm_pool_options po = cllm_pool_options_default();
    po.num_threads = 2;
    po.max_spin_ns = 20000;
    cllm_roles_options ro = cllm_roles_options_default();
    ro.thread_budget = 4;
    int32_t sizes[CLLM_ROLE_COUNT] = {1, 1, 0, 1, 1}; /* stats off: runs inline */
    memcpy(ro.threads, sizes, sizeof sizes);
    ro.queue_capacity = 8; /* small, so FULL and TIMEOUT happen */
    ro.stuck_task_ns = 1000000;
    cllm_frame_options fo = cllm_frame_options_default();
    fo.rules = 0; /* no stop rule: the loop thread's frames are random */
    fo.watchdog_period_ns = 2000000;
    cllm_loader_options lo = cllm_loader_options_default();
    lo.num_threads = 2;
    if (CALL(cllm_pool_create(&po, &pool)) != CLLM_OK || CALL(cllm_pool_num_spheres(pool, &spheres)) != CLLM_OK ||
        CALL(cllm_roles_create(&ro, &roles)) != CLLM_OK || CALL(cllm_frame_create(&fo, &frame)) != CLLM_OK ||
        CALL(cllm_loader_create(corpus_dir, &lo, &loader)) != CLLM_OK ||
        CALL(cllm_counter_create(0, &counter)) != CLLM_OK || CALL(cllm_lock_create("stress", &lock)) != CLLM_OK) {
        fprintf(stderr, "setup failed: %s\n", cllm_last_error());
        return 1;
    }
    cllm_objpool_options oo = cllm_objpool_options_default();
    oo.max_blocks = 16;
    if (CALL(cllm_objpool_create(64, &oo, &objpool)) != CLLM_OK) {
        fprintf(stderr, "setup failed: %s\n", cllm_last_error());
        return 1;
    }
    for (int t = 0; t < nthreads; t++) {
        char name[16];
        snprintf(name, sizeof name, "phase%d", t);
        CALL(cllm_frame_add_phase(frame, name, &phase_of[t]));
    }

    pthread_t th[64];
    worker_arg wa[64];
    for (int t = 0; t < nthreads; t++) {
        wa[t] = (worker_arg){t, seed, 0};
        if (pthread_create(&th[t], NULL, worker, &wa[t]) != 0) { perror("pthread_create"); return 1; }
    }
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&stop, 1);
    /* A call that never returns is a failure, not a hung test: after 30 s,
     * say what the role pools hold and end the run. */
    for (int i = 0; i < 3000 && atomic_load(&workers_done) < nthreads; i++) usleep(10000);
    if (atomic_load(&workers_done) < nthreads) {
        EXPECT(0, "%d of %d threads still inside a call 30 s after the end", nthreads - atomic_load(&workers_done),
               nthreads);
        for (cllm_role role = 0; role < CLLM_ROLE_COUNT; role++) {
            cllm_role_metrics m;
            if (cllm_roles_metrics(roles, role, &m) == CLLM_OK)
                fprintf(stderr, "role %u: enabled %d threads %u target %u host %u queued %llu submitted %llu done %llu failed %llu\n",
                        role, m.enabled, m.threads, m.target_threads, m.host_role,
                        (unsigned long long)m.queue_depth, (unsigned long long)m.tasks_submitted,
                        (unsigned long long)m.tasks_done, (unsigned long long)m.tasks_failed);
        }
        report_invariants();
        _exit(1);
    }
    long ops = 0;
    for (int t = 0; t < nthreads; t++) { pthread_join(th[t], NULL); ops += wa[t].ops; }

    /* Collect what is still pending, then check the ledgers. */
    for (size_t s = 0; s < spheres; s++) CALL(cllm_pool_wait(pool, s));
    cllm_shutdown_report rep;
    cllm_status s = CALL(cllm_roles_shutdown(roles, CLLM_DRAIN_FINISH, 5000000000ULL, &rep));
    EXPECT(s == CLLM_OK && rep.deadline_met && rep.dropped == 0, "shutdown: %s dropped %llu",
           cllm_status_str(s), (unsigned long long)rep.dropped);
    uint32_t used = atomic_load(&next_id);
    if (used > MAX_JOBS - 1) used = MAX_JOBS - 1;
    long wrong = 0, accepted = 0;
    for (uint32_t id = 0; id < used; id++) {
        int got = atomic_load(&runs[id]), want = atomic_load(&expected[id]);
        accepted += want;
        if (got != want && wrong++ < 10)
            EXPECT(got == want, "job %u ran %d times, expected %d", id, got, want);
    }
    EXPECT(wrong == 0, "%ld of %u jobs ran the wrong number of times", wrong, used);
    for (int t = 0; t < nthreads; t++) {
        cllm_frame_phase_statistics ps;
        CALL(cllm_frame_phase_stats(frame, phase_of[t], &ps));
        EXPECT(ps.count == (uint64_t)phase_records[t], "phase %d: %llu records, %ld made", t,
               (unsigned long long)ps.count, phase_records[t]);
    }
    cllm_frame_statistics fs;
    CALL(cllm_frame_stats(frame, &fs));
    EXPECT(fs.frames == (uint64_t)frames_recorded, "frame: %llu frames, %ld recorded",
           (unsigned long long)fs.frames, frames_recorded);
    uint64_t sum = 0;
    CALL(cllm_counter_sum(counter, &sum));
    EXPECT(sum == (uint64_t)atomic_load(&counter_added), "counter %llu, added %ld",
           (unsigned long long)sum, atomic_load(&counter_added));

    EXPECT(under_lock == atomic_load(&lock_taken), "lock: %ld increments under the lock, %ld locks taken",
           under_lock, atomic_load(&lock_taken));
    cllm_lock_contention lc;
    if (CALL(cllm_lock_stats(lock, &lc)) == CLLM_OK)
        EXPECT(lc.acquisitions == (uint64_t)atomic_load(&lock_taken), "lock stats: %llu acquisitions, %ld taken",
               (unsigned long long)lc.acquisitions, atomic_load(&lock_taken));
    cllm_objpool_usage ou;
    if (CALL(cllm_objpool_stats(objpool, &ou)) == CLLM_OK)
        EXPECT(ou.in_use == 0 && ou.live <= 16, "objpool: %llu in use, %llu live (cap 16)",
               (unsigned long long)ou.in_use, (unsigned long long)ou.live);

    cllm_pool_free(pool);
    cllm_roles_free(roles);
    cllm_lock_free(lock);
    cllm_objpool_free(objpool);
    cllm_frame_free(frame);
    cllm_loader_free(loader);
    cllm_counter_free(counter);
    free(runs);
    free(expected);
    remove_corpus();

    int threads1 = settle("/proc/self/task", threads0);
    int fds1 = settle("/proc/self/fd", fds0);
    EXPECT(threads1 == threads0, "threads: %d at the start, %d after everything was freed", threads0, threads1);
    EXPECT(fds1 == fds0, "fds: %d at the start, %d after everything was freed", fds0, fds1);

    printf("stress: %ld loads from the cache, %ld of them mapped, %ld truncations of the cache\n",
           atomic_load(&cached_loads), atomic_load(&mapped_loads), atomic_load(&truncations));
    printf("stress: %ld calls by %d threads, %u job ids (%ld accepted), periodic runs %ld; statuses:", ops,
           nthreads, used, accepted, atomic_load(&periodic_runs));
    for (int i = 0; i < MAX_STATUS; i++)
        if (atomic_load(&by_status[i])) printf(" %s=%ld", cllm_status_str(i), atomic_load(&by_status[i]));
    printf("\n");
    return report_invariants() == 0 ? 0 : 1;
}
