/* C tests of cllm_roles_options.cpus (issue 14, pinning for role pools): a
 * bad CPU list is refused with a message naming the field, and a pool's
 * threads run on their CPU of the list (read back on each worker with
 * sched_getaffinity). Runs plain and under valgrind. */
#define _GNU_SOURCE
#include "check.h"
#include "cllm_threaded.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define WORKERS 2

struct seen {
    atomic_int arrived;
    atomic_int next;
    char names[WORKERS][16];
    int cpu[WORKERS]; /* the only CPU of the worker's set; -1: not one CPU */
};

/* The only CPU the calling thread may run on, or -1 if it may run on several. */
static int only_cpu(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -2;
    if (CPU_COUNT(&set) != 1) return -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) return c;
    return -2;
}

/* Holds its worker until every worker has one, so each reports once. */
static int report(void *arg) {
    struct seen *s = arg;
    atomic_fetch_add(&s->arrived, 1);
    double deadline = now_s() + 20.0;
    do {
        sleep_ms(1);
    } while (atomic_load(&s->arrived) < WORKERS && now_s() < deadline);
    int k = atomic_fetch_add(&s->next, 1);
    if (k >= WORKERS) return 1;
    pthread_getname_np(pthread_self(), s->names[k], sizeof s->names[k]);
    s->cpu[k] = only_cpu();
    return 0;
}

static cllm_roles_options ai_only(int threads) {
    cllm_roles_options o = cllm_roles_options_default();
    for (int r = 0; r < (int)CLLM_ROLE_COUNT; r++) o.threads[r] = 0;
    o.threads[CLLM_ROLE_AI] = threads;
    o.thread_budget = (uint32_t)threads;
    return o;
}

static void bad_lists_are_refused_by_name(void) {
    struct {
        cllm_role role;
        const char *list;
        const char *words[2];
    } bad[] = {
        {CLLM_ROLE_AI, "3-1", {"cpus[CLLM_ROLE_AI]", "reversed range"}},
        {CLLM_ROLE_AI, "", {"cpus[CLLM_ROLE_AI]", "empty"}},
        {CLLM_ROLE_EVALUATION, "0,0", {"cpus[CLLM_ROLE_EVALUATION]", "second time"}},
        {CLLM_ROLE_AI, "0 1", {"cpus[CLLM_ROLE_AI]", "not a CPU number"}},
        /* Well formed, but not a CPU this process may run on. */
        {CLLM_ROLE_STATS, "1023", {"pools.stats.cpus", "CPU 1023"}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cllm_roles_options o = ai_only(1);
        o.cpus[bad[i].role] = bad[i].list;
        cllm_roles *rt = NULL;
        CHECK_STATUS(cllm_roles_create(&o, &rt), CLLM_ERR_INVALID_ARGUMENT);
        CHECK(rt == NULL, "list %zu left a handle", i);
        for (int w = 0; w < 2; w++)
            CHECK(strstr(cllm_last_error(), bad[i].words[w]) != NULL,
                  "list \"%s\": \"%s\" lacks \"%s\"", bad[i].list, cllm_last_error(),
                  bad[i].words[w]);
    }
}

static void workers_run_on_their_cpu(void) {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    CHECK(sched_getaffinity(0, sizeof allowed, &allowed) == 0, "sched_getaffinity");
    int first = -1, second = -1;
    for (int c = 0; c < CPU_SETSIZE && second < 0; c++) {
        if (!CPU_ISSET(c, &allowed)) continue;
        if (first < 0)
            first = c;
        else
            second = c;
    }
    if (second < 0) {
        printf("skipped: the process may run on one CPU only\n");
        return;
    }
    /* Reversed, so that "worker k on CPU k" would not pass by chance. */
    char list[32];
    snprintf(list, sizeof list, "%d,%d", second, first);
    cllm_roles_options o = ai_only(WORKERS);
    o.cpus[CLLM_ROLE_AI] = list;
    cllm_roles *rt = NULL;
    CHECK_STATUS(cllm_roles_create(&o, &rt), CLLM_OK);
    if (rt == NULL) return;
    struct seen s;
    memset(&s, 0, sizeof s);
    cllm_task *tasks[WORKERS] = {NULL};
    for (int k = 0; k < WORKERS; k++)
        CHECK_STATUS(cllm_roles_submit(rt, CLLM_ROLE_AI, report, &s, &tasks[k]), CLLM_OK);
    for (int k = 0; k < WORKERS; k++) {
        CHECK_STATUS(cllm_task_wait(tasks[k]), CLLM_OK);
        cllm_task_free(tasks[k]);
    }
    int want[WORKERS] = {second, first};
    for (int k = 0; k < WORKERS; k++) {
        int id = -1;
        sscanf(s.names[k], "cllm-ai-%d", &id);
        CHECK(id >= 0 && id < WORKERS && s.cpu[k] == want[id],
              "worker \"%s\" runs on %d (list %s; -1: several CPUs)", s.names[k], s.cpu[k],
              list);
    }
    cllm_roles_free(rt);
}

int main(void) {
    bad_lists_are_refused_by_name();
    workers_run_on_their_cpu();
    return check_summary();
}
