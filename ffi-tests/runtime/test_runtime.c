/* C tests of the role pools API (cllm_roles_*, cllm_task_*,
 * cllm_roles_sched_*): every function and every documented bad input. Runs
 * plain and under valgrind (keep the work small). Durations are ns. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "cllm_threaded.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MS (UINT64_C(1000000)) /* one millisecond in ns */

static int contains(const char *text, const char *part) { return strstr(text, part) != NULL; }

/* ---- tasks used below ---------------------------------------------------- */

static int add_one(void *arg) {
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

static int fail_seven(void *arg) {
    (void)arg;
    return 7;
}

/* Spins (sleeping 1 ms at a time) until *gate is set; marks *started. */
struct gate {
    atomic_int started;
    atomic_int open;
};

static int wait_for_gate(void *arg) {
    struct gate *g = arg;
    atomic_store(&g->started, 1);
    while (!atomic_load(&g->open)) sleep_ms(1);
    return 0;
}

static int record_thread(void *arg) {
    *(pthread_t *)arg = pthread_self();
    return 0;
}

/* A runtime with only the given pool sizes (others off). */
static cllm_roles *make(int ai, int eval, int bg, uint32_t budget, uint32_t queue, uint32_t stuck_ms) {
    cllm_roles_options o = cllm_roles_options_default();
    for (int r = 0; r < (int)CLLM_ROLE_COUNT; r++) o.threads[r] = 0;
    o.threads[CLLM_ROLE_AI] = ai;
    o.threads[CLLM_ROLE_EVALUATION] = eval;
    o.threads[CLLM_ROLE_BACKGROUND] = bg;
    o.thread_budget = budget;
    o.queue_capacity = queue;
    o.stuck_task_ns = stuck_ms * MS;
    o.heartbeat_ns = 50 * MS;
    cllm_roles *rt = NULL;
    CHECK_STATUS(cllm_roles_create(&o, &rt), CLLM_OK);
    return rt;
}

static void test_options_and_create(void) {
    cllm_roles_options o = cllm_roles_options_default();
    CHECK(o.thread_budget == 0 && o.queue_capacity == 0, "defaults are 0 = automatic");
    for (int r = 0; r < (int)CLLM_ROLE_COUNT; r++) CHECK(o.threads[r] < 0, "role %d: plan ratio", r);

    CHECK_STATUS(cllm_roles_create(NULL, NULL), CLLM_ERR_NULL);
    CHECK(contains(cllm_last_error(), "out"), "names the argument: %s", cllm_last_error());

    cllm_roles *rt = NULL;
    CHECK_STATUS(cllm_roles_create(NULL, &rt), CLLM_OK);
    CHECK(rt != NULL, "a handle");
    size_t budget = 0, threads = 99;
    CHECK_STATUS(cllm_roles_threads(rt, &budget, &threads), CLLM_OK);
    CHECK(budget >= 1 && threads <= budget, "budget %zu threads %zu", budget, threads);
    CHECK_STATUS(cllm_roles_threads(NULL, &budget, &threads), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_threads(rt, NULL, &threads), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_threads(rt, &budget, NULL), CLLM_ERR_NULL);
    cllm_roles_free(rt);
    cllm_roles_free(NULL);

    o.threads[CLLM_ROLE_AI] = 5000;
    rt = (cllm_roles *)0x1;
    CHECK_STATUS(cllm_roles_create(&o, &rt), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(rt == (cllm_roles *)0x1, "output untouched on failure");
    CHECK(contains(cllm_last_error(), "ai"), "names the pool: %s", cllm_last_error());
}

static void test_create_from_env(void) {
    cllm_roles *rt = NULL;
    CHECK_STATUS(cllm_roles_create_from_env(NULL), CLLM_ERR_NULL);

    setenv("ENABLE_PARALLEL_AI", "maybe", 1);
    CHECK_STATUS(cllm_roles_create_from_env(&rt), CLLM_ERR_CONFIG);
    CHECK(contains(cllm_last_error(), "ENABLE_PARALLEL_AI") && contains(cllm_last_error(), "maybe"),
          "names the variable and value: %s", cllm_last_error());
    unsetenv("ENABLE_PARALLEL_AI");

    setenv("MAX_STATS_THREADS", "lots", 1);
    CHECK_STATUS(cllm_roles_create_from_env(&rt), CLLM_ERR_CONFIG);
    CHECK(contains(cllm_last_error(), "MAX_STATS_THREADS") && contains(cllm_last_error(), "lots"), "%s",
          cllm_last_error());
    unsetenv("MAX_STATS_THREADS");

    setenv("CLLM_THREAD_BUDGET", "0", 1);
    CHECK_STATUS(cllm_roles_create_from_env(&rt), CLLM_ERR_CONFIG);
    CHECK(contains(cllm_last_error(), "CLLM_THREAD_BUDGET"), "%s", cllm_last_error());

    setenv("CLLM_THREAD_BUDGET", "2", 1);
    setenv("ENABLE_PARALLEL_STATS", "NO", 1);
    setenv("MAX_AI_THREADS", "1", 1);
    CHECK(rt == NULL, "no handle written by the failures");
    CHECK_STATUS(cllm_roles_create_from_env(&rt), CLLM_OK);
    size_t budget = 0, threads = 0;
    CHECK_STATUS(cllm_roles_threads(rt, &budget, &threads), CLLM_OK);
    CHECK(budget == 2 && threads <= 2, "budget %zu threads %zu", budget, threads);
    cllm_role_metrics m;
    CHECK_STATUS(cllm_roles_metrics(rt, CLLM_ROLE_STATS, &m), CLLM_OK);
    CHECK(!m.enabled && m.threads == 0, "stats is off");
    cllm_roles_free(rt);
    unsetenv("CLLM_THREAD_BUDGET");
    unsetenv("ENABLE_PARALLEL_STATS");
    unsetenv("MAX_AI_THREADS");
}

static void test_submit_and_wait(void) {
    cllm_roles *rt = make(0, 1, 0, 2, 0, 0);
    atomic_int count = 0;
    cllm_task *t = NULL;
    CHECK_STATUS(cllm_roles_submit(rt, CLLM_ROLE_EVALUATION, add_one, &count, &t), CLLM_OK);
    CHECK_STATUS(cllm_task_wait(t), CLLM_OK);
    CHECK_STATUS(cllm_task_wait(t), CLLM_OK); /* the same outcome again */
    CHECK(atomic_load(&count) == 1, "ran once: %d", atomic_load(&count));
    cllm_task_free(t);

    CHECK_STATUS(cllm_roles_submit(rt, CLLM_ROLE_EVALUATION, fail_seven, NULL, &t), CLLM_OK);
    CHECK_STATUS(cllm_task_wait(t), CLLM_ERR_JOB_FAILED);
    CHECK(contains(cllm_last_error(), "7"), "the code is in the message: %s", cllm_last_error());
    CHECK_STATUS(cllm_task_wait_timeout(t, 1 * MS), CLLM_ERR_JOB_FAILED);
    CHECK_STATUS(cllm_task_wait_timeout(t, CLLM_WAIT_FOREVER), CLLM_ERR_JOB_FAILED);
    cllm_task_free(t);
    /* Explicit "wait while full" (CLLM_WAIT_FOREVER) with a priority. */
    CHECK_STATUS(cllm_roles_submit_ex(rt, CLLM_ROLE_EVALUATION, 2, CLLM_WAIT_FOREVER, add_one, &count, &t), CLLM_OK);
    CHECK_STATUS(cllm_task_wait_timeout(t, CLLM_WAIT_FOREVER), CLLM_OK);
    cllm_task_free(t);
    CHECK(atomic_load(&count) == 2, "the second task ran: %d", atomic_load(&count));
    cllm_task_free(NULL);

    /* Bad inputs. */
    CHECK_STATUS(cllm_roles_submit(NULL, CLLM_ROLE_EVALUATION, add_one, &count, &t), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_submit(rt, CLLM_ROLE_EVALUATION, NULL, &count, &t), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_submit(rt, CLLM_ROLE_EVALUATION, add_one, &count, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_submit(rt, 5, add_one, &count, &t), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(contains(cllm_last_error(), "role = 5 is not a cllm_role"), "%s", cllm_last_error());
    CHECK_STATUS(cllm_roles_submit(rt, CLLM_ROLE_NONE, add_one, &count, &t), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_roles_try_submit(rt, 9, add_one, &count, &t), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_task_wait(NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_task_wait_timeout(NULL, 5 * MS), CLLM_ERR_NULL);
    CHECK(atomic_load(&count) == 2, "no bad call ran the task");

    cllm_role_metrics m;
    CHECK_STATUS(cllm_roles_metrics(rt, CLLM_ROLE_EVALUATION, &m), CLLM_OK);
    CHECK(m.enabled && m.threads == 1, "one evaluation thread: %u", m.threads);
    CHECK(m.tasks_submitted == 3 && m.tasks_done == 2 && m.tasks_failed == 1, "%llu %llu %llu",
          (unsigned long long)m.tasks_submitted, (unsigned long long)m.tasks_done,
          (unsigned long long)m.tasks_failed);
    CHECK(m.alive_ns > 0 && m.busy_ns <= m.alive_ns && m.queue_capacity == 1024, "thread-time");
    CHECK_STATUS(cllm_roles_metrics(rt, CLLM_ROLE_EVALUATION, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_metrics(NULL, CLLM_ROLE_EVALUATION, &m), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_metrics(rt, 7, &m), CLLM_ERR_INVALID_ARGUMENT);
    cllm_roles_free(rt);
}

static void test_backpressure_and_timeouts(void) {
    cllm_roles *rt = make(0, 1, 0, 1, 1, 0);
    struct gate g = {0, 0};
    cllm_task *blocker = NULL, *queued = NULL, *t = (cllm_task *)0x1;
    atomic_int count = 0;
    CHECK_STATUS(cllm_roles_submit(rt, CLLM_ROLE_EVALUATION, wait_for_gate, &g, &blocker), CLLM_OK);
    while (!atomic_load(&g.started)) sleep_ms(1);
    CHECK_STATUS(cllm_task_wait_timeout(blocker, 10 * MS), CLLM_ERR_TIMEOUT);
    CHECK_STATUS(cllm_roles_try_submit(rt, CLLM_ROLE_EVALUATION, add_one, &count, &queued), CLLM_OK);
    CHECK_STATUS(cllm_roles_try_submit(rt, CLLM_ROLE_EVALUATION, add_one, &count, &t), CLLM_ERR_FULL);
    CHECK(contains(cllm_last_error(), "full"), "%s", cllm_last_error());
    double start = now_s();
    CHECK_STATUS(cllm_roles_submit_timeout(rt, CLLM_ROLE_EVALUATION, add_one, &count, 20 * MS, &t), CLLM_ERR_TIMEOUT);
    CHECK(now_s() - start >= 0.019, "waited the timeout");
    CHECK_STATUS(cllm_roles_submit_ex(rt, CLLM_ROLE_EVALUATION, 3, 0, add_one, &count, &t), CLLM_ERR_FULL);
    CHECK(t == (cllm_task *)0x1, "no handle written on failure");
    cllm_role_metrics m;
    CHECK_STATUS(cllm_roles_metrics(rt, CLLM_ROLE_EVALUATION, &m), CLLM_OK);
    CHECK(m.tasks_rejected == 3 && m.queue_depth == 1, "rejected %llu depth %llu",
          (unsigned long long)m.tasks_rejected, (unsigned long long)m.queue_depth);
    atomic_store(&g.open, 1);
    CHECK_STATUS(cllm_task_wait(blocker), CLLM_OK);
    CHECK_STATUS(cllm_task_wait(queued), CLLM_OK);
    CHECK(atomic_load(&count) == 1, "only the queued task ran");
    cllm_task_free(blocker);
    cllm_task_free(queued);
    cllm_roles_free(rt);
}

static void test_inline_when_off(void) {
    cllm_roles *rt = make(1, 0, 0, 2, 0, 0);
    pthread_t ran_on;
    cllm_task *t = NULL;
    CHECK_STATUS(cllm_roles_submit(rt, CLLM_ROLE_STATS, record_thread, &ran_on, &t), CLLM_OK);
    CHECK(pthread_equal(ran_on, pthread_self()), "an off pool runs the task on the caller");
    CHECK_STATUS(cllm_task_wait_timeout(t, 0), CLLM_OK);
    cllm_task_free(t);
    cllm_role_metrics m;
    CHECK_STATUS(cllm_roles_metrics(rt, CLLM_ROLE_STATS, &m), CLLM_OK);
    CHECK(!m.enabled && m.tasks_inline == 1 && m.tasks_done == 1, "counted as inline");
    cllm_roles_free(rt);
}

static void test_resize_and_rebalance(void) {
    cllm_roles *rt = make(1, 1, 0, 3, 0, 0);
    CHECK_STATUS(cllm_roles_resize(rt, CLLM_ROLE_EVALUATION, 2), CLLM_OK);
    cllm_role_metrics m;
    double start = now_s();
    int st;
    while ((st = cllm_roles_metrics(rt, CLLM_ROLE_EVALUATION, &m)) == CLLM_OK && m.threads != 2 &&
           now_s() - start < 5.0)
        sleep_ms(1);
    CHECK_STATUS(st, CLLM_OK);
    CHECK(m.threads == 2 && m.target_threads == 2, "grew to %u", m.threads);
    CHECK_STATUS(cllm_roles_resize(rt, CLLM_ROLE_EVALUATION, 4), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(contains(cllm_last_error(), "maximum"), "%s", cllm_last_error());
    CHECK_STATUS(cllm_roles_resize(rt, CLLM_ROLE_STATS, 1), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(contains(cllm_last_error(), "off"), "%s", cllm_last_error());
    CHECK_STATUS(cllm_roles_resize(rt, 11, 1), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_roles_resize(NULL, CLLM_ROLE_AI, 1), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_resize(rt, CLLM_ROLE_EVALUATION, 1), CLLM_OK);
    size_t budget = 0, threads = 0;
    CHECK_STATUS(cllm_roles_threads(rt, &budget, &threads), CLLM_OK);
    CHECK(threads <= budget, "%zu threads, budget %zu", threads, budget);

    cllm_thread_move mv = {true, CLLM_ROLE_AI, CLLM_ROLE_AI};
    CHECK_STATUS(cllm_roles_rebalance(rt, &mv), CLLM_OK);
    CHECK(!mv.moved && mv.from_role == CLLM_ROLE_NONE && mv.to_role == CLLM_ROLE_NONE, "idle pools: no move");
    CHECK_STATUS(cllm_roles_rebalance(rt, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_rebalance(NULL, &mv), CLLM_ERR_NULL);
    cllm_roles_free(rt);
}

static void test_stuck_tasks(void) {
    cllm_roles *rt = make(0, 1, 0, 1, 0, 30);
    struct gate g = {0, 0};
    cllm_task *t = NULL;
    size_t count = 99;
    CHECK_STATUS(cllm_roles_stuck_tasks(rt, NULL, 0, &count), CLLM_OK);
    CHECK(count == 0, "healthy at start: %zu", count);
    CHECK_STATUS(cllm_roles_submit(rt, CLLM_ROLE_EVALUATION, wait_for_gate, &g, &t), CLLM_OK);
    while (!atomic_load(&g.started)) sleep_ms(1);
    sleep_ms(80);
    cllm_stuck_task stuck[2];
    memset(stuck, 0, sizeof stuck);
    CHECK_STATUS(cllm_roles_stuck_tasks(rt, stuck, 2, &count), CLLM_OK);
    CHECK(count == 1, "one stuck task: %zu", count);
    CHECK(stuck[0].role == CLLM_ROLE_EVALUATION && stuck[0].worker_role == CLLM_ROLE_EVALUATION, "roles");
    CHECK(stuck[0].running_ns >= 60000000ull && stuck[0].limit_ns == 30000000ull, "running %llu ns",
          (unsigned long long)stuck[0].running_ns);
    CHECK(strncmp(stuck[0].worker, "cllm-eval-", 10) == 0, "worker %s", stuck[0].worker);
    CHECK(!stuck[0].in_parallel_loop, "a queued task");
    CHECK_STATUS(cllm_roles_stuck_tasks(rt, NULL, 0, &count), CLLM_OK);
    CHECK(count == 1, "counted without room to copy");
    CHECK_STATUS(cllm_roles_stuck_tasks(rt, NULL, 1, &count), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_stuck_tasks(rt, stuck, 2, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_stuck_tasks(NULL, stuck, 2, &count), CLLM_ERR_NULL);
    atomic_store(&g.open, 1);
    CHECK_STATUS(cllm_task_wait(t), CLLM_OK);
    cllm_task_free(t);
    cllm_roles_free(rt);
}

static void test_scheduler(void) {
    cllm_roles *rt = make(0, 0, 1, 1, 0, 0);
    atomic_int ticks = 0;
    uint64_t id = 0;
    CHECK_STATUS(cllm_roles_sched_add(rt, "monitoring", 10 * MS, 10, add_one, &ticks, &id), CLLM_OK);
    double start = now_s();
    while (atomic_load(&ticks) < 2 && now_s() - start < 5.0) sleep_ms(2);
    CHECK(atomic_load(&ticks) >= 2, "ran %d times", atomic_load(&ticks));
    cllm_periodic_stats s;
    CHECK_STATUS(cllm_roles_sched_stats(rt, id, &s), CLLM_OK);
    CHECK(s.runs >= 2 && s.failures == 0 && s.interval_ns == 10000000ull && s.priority == 10, "runs %llu",
          (unsigned long long)s.runs);
    size_t ran = 9;
    CHECK_STATUS(cllm_roles_sched_run_due(rt, &ran), CLLM_OK);
    CHECK(ran == 0, "with a background thread nothing runs on the caller");
    CHECK_STATUS(cllm_roles_sched_remove(rt, id), CLLM_OK);
    CHECK_STATUS(cllm_roles_sched_remove(rt, id), CLLM_ERR_NOT_FOUND);
    CHECK_STATUS(cllm_roles_sched_stats(rt, id, &s), CLLM_ERR_NOT_FOUND);

    uint64_t bad = 0;
    CHECK_STATUS(cllm_roles_sched_add(rt, "failing", 5 * MS, 0, fail_seven, NULL, &bad), CLLM_OK);
    start = now_s();
    int st;
    do {
        sleep_ms(5);
        st = cllm_roles_sched_stats(rt, bad, &s);
    } while (st == CLLM_OK && s.failures < 1 && now_s() - start < 5.0);
    CHECK_STATUS(st, CLLM_OK);
    CHECK(s.failures >= 1, "a non-zero return counts as a failure");

    CHECK_STATUS(cllm_roles_sched_add(rt, "zero", 0, 0, add_one, &ticks, &id), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_roles_sched_add(rt, NULL, 10 * MS, 0, add_one, &ticks, &id), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_sched_add(rt, "x", 10 * MS, 0, NULL, &ticks, &id), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_sched_add(rt, "x", 10 * MS, 0, add_one, &ticks, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_sched_add(NULL, "x", 10 * MS, 0, add_one, &ticks, &id), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_sched_stats(rt, bad, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_sched_run_due(rt, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_sched_run_due(NULL, &ran), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_sched_remove(NULL, bad), CLLM_ERR_NULL);
    cllm_roles_free(rt);

    /* Background off: due tasks run only in cllm_roles_sched_run_due, on the caller. */
    rt = make(1, 0, 0, 1, 0, 0);
    atomic_store(&ticks, 0);
    CHECK_STATUS(cllm_roles_sched_add(rt, "cleanup", 5 * MS, 0, add_one, &ticks, &id), CLLM_OK);
    sleep_ms(30);
    CHECK(atomic_load(&ticks) == 0, "nothing runs by itself");
    CHECK_STATUS(cllm_roles_sched_run_due(rt, &ran), CLLM_OK);
    CHECK(ran == 1 && atomic_load(&ticks) == 1, "ran %zu", ran);
    cllm_roles_free(rt);
}

struct loop_arg {
    atomic_int hits[100];
    int fail_at;
};

static int visit(void *arg, size_t i) {
    struct loop_arg *a = arg;
    if ((int)i == a->fail_at) return 3;
    atomic_fetch_add(&a->hits[i], 1);
    return 0;
}

static void test_parallel_for(void) {
    cllm_roles *rt = make(1, 0, 0, 2, 0, 0);
    const cllm_partition parts[3] = {CLLM_PARTITION_INTERLEAVED, CLLM_PARTITION_CONTIGUOUS, CLLM_PARTITION_DYNAMIC};
    for (int p = 0; p < 3; p++) {
        struct loop_arg a;
        for (int i = 0; i < 100; i++) atomic_init(&a.hits[i], 0);
        a.fail_at = -1;
        CHECK_STATUS(cllm_roles_parallel_for(rt, CLLM_ROLE_AI, 100, parts[p], 0, visit, &a), CLLM_OK);
        int once = 1;
        for (int i = 0; i < 100; i++) once &= atomic_load(&a.hits[i]) == 1;
        CHECK(once, "partitioning %d visits each index once", parts[p]);
    }
    struct loop_arg a;
    for (int i = 0; i < 100; i++) atomic_init(&a.hits[i], 0);
    a.fail_at = 42;
    CHECK_STATUS(cllm_roles_parallel_for(rt, CLLM_ROLE_AI, 100, CLLM_PARTITION_DYNAMIC, 4, visit, &a),
                 CLLM_ERR_JOB_FAILED);
    CHECK(contains(cllm_last_error(), "item 42 returned 3"), "%s", cllm_last_error());
    a.fail_at = -1;
    CHECK_STATUS(cllm_roles_parallel_for(rt, CLLM_ROLE_AI, 0, CLLM_PARTITION_DYNAMIC, 0, visit, &a), CLLM_OK);
    CHECK_STATUS(cllm_roles_parallel_for(rt, CLLM_ROLE_AI, 10, 3, 0, visit, &a), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(contains(cllm_last_error(), "partitioning = 3 is not a cllm_partition"), "%s", cllm_last_error());
    CHECK_STATUS(cllm_roles_parallel_for(rt, 8, 10, CLLM_PARTITION_DYNAMIC, 0, visit, &a),
                 CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_roles_parallel_for(rt, CLLM_ROLE_AI, 10, CLLM_PARTITION_DYNAMIC, 0, NULL, &a), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_parallel_for(NULL, CLLM_ROLE_AI, 10, CLLM_PARTITION_DYNAMIC, 0, visit, &a),
                 CLLM_ERR_NULL);
    /* The stats pool is off: the loop runs on the caller alone. */
    for (int i = 0; i < 100; i++) atomic_init(&a.hits[i], 0);
    CHECK_STATUS(cllm_roles_parallel_for(rt, CLLM_ROLE_STATS, 100, CLLM_PARTITION_INTERLEAVED, 0, visit, &a),
                 CLLM_OK);
    int once = 1;
    for (int i = 0; i < 100; i++) once &= atomic_load(&a.hits[i]) == 1;
    CHECK(once, "inline loop visits each index once");
    cllm_role_metrics m;
    CHECK_STATUS(cllm_roles_metrics(rt, CLLM_ROLE_AI, &m), CLLM_OK);
    CHECK(m.rounds >= 4 && m.round_wall_ns > 0, "rounds %llu", (unsigned long long)m.rounds);
    cllm_roles_free(rt);
}

static void test_shutdown(void) {
    cllm_roles *rt = make(0, 1, 0, 1, 0, 0);
    struct gate g = {0, 0};
    cllm_task *blocker = NULL, *queued[3] = {NULL, NULL, NULL};
    atomic_int count = 0;
    CHECK_STATUS(cllm_roles_submit(rt, CLLM_ROLE_EVALUATION, wait_for_gate, &g, &blocker), CLLM_OK);
    while (!atomic_load(&g.started)) sleep_ms(1);
    for (int i = 0; i < 3; i++)
        CHECK_STATUS(cllm_roles_submit(rt, CLLM_ROLE_EVALUATION, add_one, &count, &queued[i]), CLLM_OK);
    cllm_shutdown_report r;
    CHECK_STATUS(cllm_roles_shutdown(rt, 7, 100 * MS, &r), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(contains(cllm_last_error(), "policy = 7 is not a cllm_drain"), "%s", cllm_last_error());
    CHECK_STATUS(cllm_roles_shutdown(rt, CLLM_DRAIN_DROP, 100 * MS, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_shutdown(NULL, CLLM_DRAIN_DROP, 100 * MS, &r), CLLM_ERR_NULL);
    /* Drop the queue; the running task is past the 30 ms deadline. */
    CHECK_STATUS(cllm_roles_shutdown(rt, CLLM_DRAIN_DROP, 30 * MS, &r), CLLM_OK);
    CHECK(r.dropped == 3 && r.dropped_by_role[CLLM_ROLE_EVALUATION] == 3, "dropped %llu",
          (unsigned long long)r.dropped);
    CHECK(!r.deadline_met && r.still_running == 1 && !r.already_shut_down, "the blocker is still running");
    for (int i = 0; i < 3; i++) {
        CHECK_STATUS(cllm_task_wait(queued[i]), CLLM_ERR_CANCELLED);
        cllm_task_free(queued[i]);
    }
    CHECK(atomic_load(&count) == 0, "dropped tasks never ran");
    cllm_task *late = NULL;
    CHECK_STATUS(cllm_roles_submit(rt, CLLM_ROLE_EVALUATION, add_one, &count, &late), CLLM_ERR_SHUTDOWN);
    CHECK_STATUS(cllm_roles_shutdown(rt, CLLM_DRAIN_FINISH, 0, &r), CLLM_OK);
    CHECK(r.already_shut_down, "a second shutdown does nothing");
    atomic_store(&g.open, 1);
    CHECK_STATUS(cllm_task_wait(blocker), CLLM_OK);
    cllm_task_free(blocker);
    /* Let the detached worker leave before the process ends (valgrind). */
    sleep_ms(50);
    cllm_roles_free(rt);

    /* Finish: queued work runs before the workers stop. */
    rt = make(0, 1, 0, 1, 0, 0);
    atomic_store(&count, 0);
    for (int i = 0; i < 3; i++)
        CHECK_STATUS(cllm_roles_submit(rt, CLLM_ROLE_EVALUATION, add_one, &count, &queued[i]), CLLM_OK);
    CHECK_STATUS(cllm_roles_shutdown(rt, CLLM_DRAIN_FINISH, 10000 * MS, &r), CLLM_OK);
    CHECK(r.deadline_met && r.dropped == 0 && atomic_load(&count) == 3, "all ran");
    for (int i = 0; i < 3; i++) {
        CHECK_STATUS(cllm_task_wait(queued[i]), CLLM_OK);
        cllm_task_free(queued[i]);
    }
    cllm_roles_free(rt);
}

int main(void) {
    test_options_and_create();
    test_create_from_env();
    test_submit_and_wait();
    test_backpressure_and_timeouts();
    test_inline_when_off();
    test_resize_and_rebalance();
    test_stuck_tasks();
    test_scheduler();
    test_parallel_for();
    test_shutdown();
    return check_summary();
}
