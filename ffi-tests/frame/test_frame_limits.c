/* C tests of the frame monitor at its limits (issue 13): writing to a pipe
 * whose reader is gone (defect 4: the process died of SIGPIPE), impossible
 * inputs (defect 8: busy > alive gave a utilisation of 10.0), and the quiet
 * panic boundary (defect 8: a caught internal panic printed "thread
 * panicked at ..." on the host's stderr); and the glue of issue 14: the
 * monitor inputs from the role pools in one call, the FRAME_* environment
 * from C. Runs plain and under valgrind. */
#define _GNU_SOURCE
#include "check.h"
#include "cllm_threaded.h"

#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS (UINT64_C(1000000))    /* one millisecond in ns */
#define S (UINT64_C(1000000000)) /* one second in ns */

static cllm_frame *manual_guard(void) {
    cllm_frame_options o = cllm_frame_options_default();
    o.manual_clock = true;
    cllm_frame *f = NULL;
    CHECK_STATUS(cllm_frame_create(&o, &f), CLLM_OK);
    return f;
}

static int sigpipe_pending(void) {
    sigset_t pending;
    sigpending(&pending);
    return sigismember(&pending, SIGPIPE) == 1;
}

static int sigpipe_blocked(void) {
    sigset_t mask;
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    return sigismember(&mask, SIGPIPE) == 1;
}

/* In a child, so that the old behaviour (death by SIGPIPE) fails one check
 * instead of the whole program. */
static int write_to_closed_pipe_child(void) {
    int failed_before = check_failed_count;
    signal(SIGPIPE, SIG_DFL); /* as a C host has it, whatever ran us */
    cllm_frame *f = manual_guard();
    int fds[2];
    if (pipe(fds) != 0) return 2;
    close(fds[0]);
    cllm_frame_monitor_inputs in;
    memset(&in, 0, sizeof in);
    CHECK_STATUS(cllm_frame_tick(f, 10 * MS), CLLM_OK);
    CHECK_STATUS(cllm_frame_monitor_write(f, &in, fds[1]), CLLM_ERR_IO);
    CHECK(strstr(cllm_last_error(), "Broken pipe") != NULL, "message: %s", cllm_last_error());
    CHECK(!sigpipe_pending() && !sigpipe_blocked(), "no SIGPIPE left pending, the mask restored");
    /* Again: the call is repeatable. */
    CHECK_STATUS(cllm_frame_monitor_write(f, &in, fds[1]), CLLM_ERR_IO);

    /* A caller that blocks SIGPIPE itself and has one pending keeps both. */
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    raise(SIGPIPE);
    CHECK(sigpipe_pending(), "raised");
    CHECK_STATUS(cllm_frame_monitor_write(f, &in, fds[1]), CLLM_ERR_IO);
    CHECK(sigpipe_pending() && sigpipe_blocked(), "the caller's pending SIGPIPE and mask are kept");
    int sig = 0;
    sigwait(&pipe_set, &sig);
    CHECK(!sigpipe_pending(), "one SIGPIPE was pending, not two");
    pthread_sigmask(SIG_UNBLOCK, &pipe_set, NULL);

    /* With SIGPIPE ignored, the same error. */
    signal(SIGPIPE, SIG_IGN);
    CHECK_STATUS(cllm_frame_monitor_write(f, &in, fds[1]), CLLM_ERR_IO);
    close(fds[1]);
    cllm_frame_free(f);
    return check_failed_count == failed_before ? 0 : 1;
}

static void test_write_to_a_pipe_without_reader_is_an_io_error(void) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(write_to_closed_pipe_child());
    CHECK(pid > 0, "fork");
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %s %d",
          WIFSIGNALED(status) ? "killed by signal" : "exit", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

/* The number in column `name` of a monitor row (the header from the API). */
static double cell(const char *name, const char *row) {
    char header[1024];
    size_t len = 0;
    if (cllm_frame_monitor_header(header, sizeof header, &len) != CLLM_OK) return NAN;
    return csv_cell(header, row, name);
}

static void test_impossible_inputs_are_refused_and_shares_stay_at_most_one(void) {
    cllm_frame *f = manual_guard();
    char row[CLLM_FRAME_ROW_MAX];
    size_t len = 0;
    cllm_frame_monitor_inputs in;
    memset(&in, 0, sizeof in);
    in.ai.busy_ns = 10 * S;
    in.ai.alive_ns = 1 * S;
    CHECK_STATUS(cllm_frame_tick(f, 10 * MS), CLLM_OK);
    CHECK_STATUS(cllm_frame_monitor_row(f, &in, row, sizeof row, &len), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "ai.busy") != NULL, "message: %s", cllm_last_error());
    CHECK_STATUS(cllm_frame_monitor_baseline(f, &in), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_frame_monitor_write(f, &in, 1), CLLM_ERR_INVALID_ARGUMENT);
    memset(&in, 0, sizeof in);
    in.evaluation.busy_ns = 2 * S;
    in.evaluation.alive_ns = 3 * S / 2;
    CHECK_STATUS(cllm_frame_monitor_row(f, &in, row, sizeof row, &len), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "evaluation.busy") != NULL, "message: %s", cllm_last_error());
    memset(&in, 0, sizeof in);
    in.lock_acquisitions = 3;
    in.lock_contended = 4;
    CHECK_STATUS(cllm_frame_monitor_row(f, &in, row, sizeof row, &len), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "lock_contended") != NULL, "message: %s", cllm_last_error());

    /* Possible samples whose interval difference shows more busy than alive
     * time (taken a moment apart): the shares are written as 1. */
    memset(&in, 0, sizeof in);
    in.ai.busy_ns = 0;
    in.ai.alive_ns = 10 * S;
    in.lock_acquisitions = 10;
    CHECK_STATUS(cllm_frame_monitor_baseline(f, &in), CLLM_OK);
    in.ai.busy_ns = 5 * S;
    in.ai.alive_ns = 21 * S / 2;
    in.lock_acquisitions = 10;
    CHECK_STATUS(cllm_frame_tick(f, 10 * MS), CLLM_OK);
    CHECK_STATUS(cllm_frame_monitor_row(f, &in, row, sizeof row, &len), CLLM_OK);
    CHECK(cell("ai_thread_efficiency", row) == 1.0 && cell("thread_pool_utilization", row) == 1.0,
          "shares clamped to 1: %s", row);
    /* Equal busy and alive is fine. */
    in.ai.busy_ns = 21 * S / 2;
    in.ai.alive_ns = 21 * S / 2;
    CHECK_STATUS(cllm_frame_monitor_row(f, &in, row, sizeof row, &len), CLLM_OK);
    cllm_frame_free(f);
}

/* A caught internal panic (an allocation the library cannot make panics
 * inside the boundary, which maps it to CLLM_ERR_OUT_OF_MEMORY) must not
 * print on the host's stderr. */
static int panic_child(int out_fd) {
    dup2(out_fd, 2);
    cllm_objpool *pool = NULL;
    /* 2^62 bytes: accepted by create (blocks are made on demand), then the
     * allocation fails inside acquire (more than the address space, so even
     * with memory overcommit). */
    if (cllm_objpool_create((size_t)1 << 62, NULL, &pool) != CLLM_OK) return 3;
    void *block = NULL;
    int st = cllm_objpool_acquire(pool, &block);
    cllm_objpool_free(pool);
    if (st != CLLM_ERR_OUT_OF_MEMORY || strstr(cllm_last_error(), "out of memory") == NULL) return 4;
    return 0;
}

static void test_a_caught_panic_is_quiet(void) {
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        _exit(panic_child(fds[1]));
    }
    close(fds[1]);
    char text[8192];
    size_t n = 0;
    ssize_t got;
    while (n < sizeof text - 1 && (got = read(fds[0], text + n, sizeof text - 1 - n)) > 0) n += (size_t)got;
    text[n] = 0;
    close(fds[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    CHECK(strstr(text, "panicked") == NULL, "the host's stderr got: %s", text);
}

/* ---- glue (issue 14) ------------------------------------------------------ */

static int nothing(void *arg, size_t i) {
    (void)arg;
    (void)i;
    return 0;
}

static void test_monitor_inputs_from_roles(void) {
    cllm_roles_options o = cllm_roles_options_default();
    for (int r = 0; r < (int)CLLM_ROLE_COUNT; r++) o.threads[r] = 0;
    o.threads[CLLM_ROLE_AI] = 1;
    o.threads[CLLM_ROLE_STATS] = 1;
    o.thread_budget = 2;
    cllm_roles *roles = NULL;
    CHECK_STATUS(cllm_roles_create(&o, &roles), CLLM_OK);
    cllm_frame_monitor_inputs in, later;
    memset(&in, 0x5a, sizeof in);
    CHECK_STATUS(cllm_roles_monitor_inputs(NULL, &in), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_roles_monitor_inputs(roles, NULL), CLLM_ERR_NULL);
    CHECK(strstr(cllm_last_error(), "out") != NULL, "message: %s", cllm_last_error());
    CHECK_STATUS(cllm_roles_monitor_inputs(roles, &in), CLLM_OK);
    cllm_lock *lock = NULL;
    CHECK_STATUS(cllm_lock_create("glue", &lock), CLLM_OK);
    for (int i = 0; i < 3; i++) {
        CHECK_STATUS(cllm_lock_lock(lock), CLLM_OK);
        CHECK_STATUS(cllm_lock_unlock(lock), CLLM_OK);
    }
    for (int i = 0; i < 5; i++)
        CHECK_STATUS(cllm_roles_parallel_for(roles, CLLM_ROLE_AI, 1000, CLLM_PARTITION_DYNAMIC, 0, nothing, NULL),
                     CLLM_OK);
    CHECK_STATUS(cllm_roles_monitor_inputs(roles, &later), CLLM_OK);
    cllm_role_metrics m;
    CHECK_STATUS(cllm_roles_metrics(roles, CLLM_ROLE_AI, &m), CLLM_OK);
    const cllm_frame_pool_counters *pools[2][5] = {
        {&in.ai, &in.physics, &in.stats, &in.background, &in.evaluation},
        {&later.ai, &later.physics, &later.stats, &later.background, &later.evaluation}};
    for (int s = 0; s < 2; s++)
        for (int p = 0; p < 5; p++)
            CHECK(pools[s][p]->busy_ns <= pools[s][p]->alive_ns, "sample %d pool %d: %llu > %llu", s, p,
                  (unsigned long long)pools[s][p]->busy_ns, (unsigned long long)pools[s][p]->alive_ns);
    CHECK(later.ai.alive_ns > in.ai.alive_ns && later.stats.alive_ns > 0, "threads were alive: ai %llu -> %llu, stats %llu",
          (unsigned long long)in.ai.alive_ns, (unsigned long long)later.ai.alive_ns,
          (unsigned long long)later.stats.alive_ns);
    CHECK(later.physics.alive_ns == 0 && later.evaluation.alive_ns == 0, "pools without threads: no thread-time");
    /* The same counters as cllm_roles_metrics, both in ns (read later). */
    CHECK(later.ai.alive_ns <= m.alive_ns && later.ai.busy_ns <= m.busy_ns, "ai: %llu/%llu vs %llu/%llu",
          (unsigned long long)later.ai.busy_ns, (unsigned long long)later.ai.alive_ns, (unsigned long long)m.busy_ns,
          (unsigned long long)m.alive_ns);
    CHECK(later.parallel_wall_ns > in.parallel_wall_ns && later.parallel_work_ns > in.parallel_work_ns,
          "the loops counted: wall %llu -> %llu", (unsigned long long)in.parallel_wall_ns,
          (unsigned long long)later.parallel_wall_ns);
    CHECK(later.parallel_wall_ns == m.round_wall_ns, "parallel wall = the pools' loops");
    CHECK(later.lock_acquisitions >= in.lock_acquisitions + 3 && later.lock_contended <= later.lock_acquisitions,
          "locks: %llu -> %llu", (unsigned long long)in.lock_acquisitions, (unsigned long long)later.lock_acquisitions);
    /* They feed a row as they are. */
    cllm_frame *f = manual_guard();
    char row[CLLM_FRAME_ROW_MAX];
    size_t len = 0;
    CHECK_STATUS(cllm_frame_monitor_baseline(f, &in), CLLM_OK);
    CHECK_STATUS(cllm_frame_tick(f, 10 * MS), CLLM_OK);
    CHECK_STATUS(cllm_frame_monitor_row(f, &later, row, sizeof row, &len), CLLM_OK);
    double ai = cell("ai_thread_efficiency", row);
    CHECK(ai >= 0 && ai <= 1, "ai efficiency %g: %s", ai, row);
    cllm_frame_free(f);
    cllm_lock_free(lock);
    cllm_roles_free(roles);
}

static void test_options_from_env(void) {
    cllm_frame_options o;
    CHECK_STATUS(cllm_frame_options_from_env(NULL), CLLM_ERR_NULL);
    unsetenv("FRAME_BUDGET_MS");
    unsetenv("FRAME_STOP_RULES");
    unsetenv("FRAME_WATCHDOG_MS");
    unsetenv("MONITOR_INTERVAL_MS");
    CHECK_STATUS(cllm_frame_options_from_env(&o), CLLM_OK);
    cllm_frame_options d = cllm_frame_options_default();
    CHECK(o.budget_ns == d.budget_ns && o.rules == d.rules && o.slow_frame_count == d.slow_frame_count &&
              o.watchdog_period_ns == d.watchdog_period_ns && o.monitor_interval_ns == d.monitor_interval_ns &&
              o.memory_limit_bytes == d.memory_limit_bytes && o.manual_clock == d.manual_clock,
          "no variables: the defaults");
    setenv("FRAME_BUDGET_MS", "8.5", 1);
    setenv("FRAME_STOP_RULES", "sampled, memory", 1);
    setenv("FRAME_WATCHDOG_MS", "50", 1);
    setenv("MONITOR_INTERVAL_MS", "250", 1);
    CHECK_STATUS(cllm_frame_options_from_env(&o), CLLM_OK);
    CHECK(o.budget_ns == 8500000 && o.rules == (CLLM_FRAME_RULE_SAMPLED | CLLM_FRAME_RULE_MEMORY) &&
              o.watchdog_period_ns == 50 * MS && o.monitor_interval_ns == 250 * MS,
          "budget %llu rules %u watchdog %llu monitor %llu", (unsigned long long)o.budget_ns, o.rules,
          (unsigned long long)o.watchdog_period_ns, (unsigned long long)o.monitor_interval_ns);
    cllm_frame *f = NULL;
    CHECK_STATUS(cllm_frame_create(&o, &f), CLLM_OK);
    cllm_frame_free(f);
    cllm_frame_options before = o;
    setenv("FRAME_BUDGET_MS", "fast", 1);
    CHECK_STATUS(cllm_frame_options_from_env(&o), CLLM_ERR_CONFIG);
    CHECK(strstr(cllm_last_error(), "FRAME_BUDGET_MS") != NULL && strstr(cllm_last_error(), "fast") != NULL,
          "message: %s", cllm_last_error());
    CHECK(o.budget_ns == before.budget_ns && o.rules == before.rules, "written only on success");
    setenv("FRAME_BUDGET_MS", "16.7", 1);
    setenv("FRAME_STOP_RULES", "sometimes", 1);
    CHECK_STATUS(cllm_frame_options_from_env(&o), CLLM_ERR_CONFIG);
    CHECK(strstr(cllm_last_error(), "FRAME_STOP_RULES") != NULL, "message: %s", cllm_last_error());
    unsetenv("FRAME_BUDGET_MS");
    unsetenv("FRAME_STOP_RULES");
    unsetenv("FRAME_WATCHDOG_MS");
    unsetenv("MONITOR_INTERVAL_MS");
}

int main(void) {
    test_monitor_inputs_from_roles();
    test_options_from_env();
    test_write_to_a_pipe_without_reader_is_an_io_error();
    test_impossible_inputs_are_refused_and_shares_stay_at_most_one();
    test_a_caught_panic_is_quiet();
    return check_summary();
}
