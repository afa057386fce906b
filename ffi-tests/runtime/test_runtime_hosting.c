/* C tests that every role pool's queued work has a thread to run it, whatever
 * the resizes did (found by the stress test): a pool resized back up while
 * the other pools hold the whole thread budget had a target, no thread and
 * no host, so its tasks never ran and cllm_roles_submit blocked on the full
 * queue. Now such a pool is a guest of the pool with the most threads until
 * its own threads start. Runs plain and under valgrind. */
#define _DEFAULT_SOURCE
#include "check.h"
#include "cllm_threaded.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#define MS (UINT64_C(1000000)) /* one millisecond in ns */

static int add_one(void *arg) {
    atomic_fetch_add((atomic_long *)arg, 1);
    return 0;
}

static cllm_role_metrics metrics(cllm_roles *rt, cllm_role role) {
    cllm_role_metrics m;
    memset(&m, 0, sizeof m);
    CHECK_STATUS(cllm_roles_metrics(rt, role, &m), CLLM_OK);
    return m;
}

/* Waits up to 5 s for `role` to have `threads` threads of its own. */
static int wait_threads(cllm_roles *rt, cllm_role role, uint32_t threads) {
    for (int i = 0; i < 500; i++) {
        if (metrics(rt, role).threads == threads) return 1;
        sleep_ms(10);
    }
    return 0;
}

/* Submits one task to `role` and waits for it at most 5 s. */
static void check_task_runs(cllm_roles *rt, cllm_role role, const char *what) {
    atomic_long ran = 0;
    cllm_task *t = NULL;
    CHECK_STATUS(cllm_roles_submit_timeout(rt, role, add_one, &ran, 1000 * MS, &t), CLLM_OK);
    if (!t) return;
    cllm_status s = cllm_task_wait_timeout(t, 5000 * MS);
    CHECK(s == CLLM_OK && atomic_load(&ran) == 1, "%s: the task %s (%s)", what,
          s == CLLM_ERR_TIMEOUT ? "never ran" : "failed", cllm_status_str(s));
    if (s == CLLM_ERR_TIMEOUT) {
        /* Let shutdown drop it; the handle must not outlive `ran`. */
        cllm_shutdown_report rep;
        cllm_roles_shutdown(rt, CLLM_DRAIN_DROP, 1000 * MS, &rep);
    }
    cllm_task_free(t);
}

static cllm_roles *make(uint32_t budget, const int32_t threads[CLLM_ROLE_COUNT]) {
    cllm_roles_options o = cllm_roles_options_default();
    o.thread_budget = budget;
    for (int r = 0; r < (int)CLLM_ROLE_COUNT; r++) o.threads[r] = threads[r];
    cllm_roles *rt = NULL;
    CHECK_STATUS(cllm_roles_create(&o, &rt), CLLM_OK);
    return rt;
}

/* The stress test's case: budget 4 taken by the other pools when ai grows. */
static void test_grown_pool_without_tokens_is_hosted(void) {
    const int32_t threads[CLLM_ROLE_COUNT] = {1, 1, 0, 1, 1};
    cllm_roles *rt = make(4, threads);
    if (!rt) return;
    CHECK_STATUS(cllm_roles_resize(rt, CLLM_ROLE_AI, 0), CLLM_OK);
    CHECK(wait_threads(rt, CLLM_ROLE_AI, 0), "ai's thread left");
    CHECK_STATUS(cllm_roles_resize(rt, CLLM_ROLE_PHYSICS, 2), CLLM_OK);
    CHECK(wait_threads(rt, CLLM_ROLE_PHYSICS, 2), "physics took the free token");
    CHECK_STATUS(cllm_roles_resize(rt, CLLM_ROLE_AI, 2), CLLM_OK);
    cllm_role_metrics m = metrics(rt, CLLM_ROLE_AI);
    CHECK(m.threads == 0 && m.target_threads == 2, "ai: %u threads, target %u", m.threads,
          m.target_threads);
    CHECK(m.host_role == CLLM_ROLE_PHYSICS, "ai's host is %u, expected physics", m.host_role);
    check_task_runs(rt, CLLM_ROLE_AI, "ai without a token");
    /* A token given back goes to ai, which then serves its own queue. */
    CHECK_STATUS(cllm_roles_resize(rt, CLLM_ROLE_PHYSICS, 1), CLLM_OK);
    CHECK(wait_threads(rt, CLLM_ROLE_AI, 1), "ai got the token physics gave back");
    check_task_runs(rt, CLLM_ROLE_AI, "ai with its own thread");
    cllm_shutdown_report rep;
    CHECK_STATUS(cllm_roles_shutdown(rt, CLLM_DRAIN_FINISH, 1000 * MS, &rep), CLLM_OK);
    CHECK(rep.dropped == 0 && rep.deadline_met, "dropped %llu", (unsigned long long)rep.dropped);
    cllm_roles_free(rt);
}

/* Every pool at 0: nobody can host, so tasks run inline on the submitter;
 * then one pool back to a thread hosts the others again. */
static void test_all_pools_at_zero_run_inline(void) {
    const int32_t threads[CLLM_ROLE_COUNT] = {1, 1, 0, 1, 1};
    cllm_roles *rt = make(4, threads);
    if (!rt) return;
    const cllm_role on[] = {CLLM_ROLE_AI, CLLM_ROLE_PHYSICS, CLLM_ROLE_BACKGROUND,
                            CLLM_ROLE_EVALUATION};
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++)
        CHECK_STATUS(cllm_roles_resize(rt, on[i], 0), CLLM_OK);
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
        CHECK(metrics(rt, on[i]).host_role == CLLM_ROLE_NONE, "role %u hosted", on[i]);
        check_task_runs(rt, on[i], "a pool at 0 with nobody to host it");
    }
    /* Their tokens must be back before evaluation can take two. */
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++)
        CHECK(wait_threads(rt, on[i], 0), "role %u's threads left", on[i]);
    CHECK_STATUS(cllm_roles_resize(rt, CLLM_ROLE_EVALUATION, 2), CLLM_OK);
    CHECK(wait_threads(rt, CLLM_ROLE_EVALUATION, 2), "evaluation back to 2");
    CHECK(metrics(rt, CLLM_ROLE_AI).host_role == CLLM_ROLE_EVALUATION, "ai hosted again");
    check_task_runs(rt, CLLM_ROLE_AI, "a guest of evaluation");
    cllm_roles_free(rt);
}

/* Resizes to random sizes in [0, 2] while another thread submits tasks to
 * every pool: each task must run (a lost one hangs its wait). */
struct churn {
    cllm_roles *rt;
    atomic_int stop;
    atomic_long ran;
    long submitted;
    int lost;
};

static void *submitter(void *arg) {
    struct churn *c = arg;
    const cllm_role on[] = {CLLM_ROLE_AI, CLLM_ROLE_PHYSICS, CLLM_ROLE_BACKGROUND,
                            CLLM_ROLE_EVALUATION};
    for (unsigned i = 0; !atomic_load(&c->stop); i++) {
        cllm_task *t = NULL;
        if (cllm_roles_submit(c->rt, on[i % 4], add_one, &c->ran, &t) != CLLM_OK) continue;
        c->submitted++;
        if (cllm_task_wait_timeout(t, 5000 * MS) == CLLM_ERR_TIMEOUT) {
            c->lost++;
            cllm_task_free(t);
            return NULL; /* leave it queued: shutdown drops it */
        }
        cllm_task_free(t);
    }
    return NULL;
}

static void test_resizes_never_strand_a_task(void) {
    const int32_t threads[CLLM_ROLE_COUNT] = {1, 1, 0, 1, 1};
    struct churn c = {.rt = make(4, threads), .stop = 0, .ran = 0, .submitted = 0, .lost = 0};
    if (!c.rt) return;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, submitter, &c) == 0, "thread");
    const cllm_role on[] = {CLLM_ROLE_AI, CLLM_ROLE_PHYSICS, CLLM_ROLE_BACKGROUND,
                            CLLM_ROLE_EVALUATION};
    uint32_t x = 12345;
    double end = now_s() + 0.5;
    while (now_s() < end) {
        x = x * 1103515245u + 12345u;
        CHECK_STATUS(cllm_roles_resize(c.rt, on[(x >> 8) % 4], (x >> 16) % 3), CLLM_OK);
        sleep_ms(1);
    }
    atomic_store(&c.stop, 1);
    pthread_join(th, NULL);
    CHECK(c.lost == 0, "a task never ran (%ld submitted before it)", c.submitted);
    CHECK(c.submitted > 0 && atomic_load(&c.ran) == c.submitted, "ran %ld of %ld",
          atomic_load(&c.ran), c.submitted);
    /* Where the resizes stopped, each pool's next task runs too. */
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++)
        check_task_runs(c.rt, on[i], "after the resizes");
    cllm_shutdown_report rep;
    cllm_roles_shutdown(c.rt, CLLM_DRAIN_DROP, 1000 * MS, &rep);
    cllm_roles_free(c.rt);
}

int main(void) {
    test_grown_pool_without_tokens_is_hosted();
    test_all_pools_at_zero_run_inline();
    test_resizes_never_strand_a_task();
    return check_summary();
}
