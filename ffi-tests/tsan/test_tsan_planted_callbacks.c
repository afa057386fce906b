/* Races planted in the program's code that the library runs on its own
 * threads: each mode must be reported by ThreadSanitizer (exit 66). The
 * library's threads run with TSan's ignore on, off around the program's
 * code (`thread_support::tsan::user_code`); a callback kind that ran inside
 * the ignore would hide its races, and its mode here would pass silently.
 *
 *   test_tsan_planted_callbacks MODE
 *   MODE: run_all, dispatch, parallel_for, reduce, roles_task,
 *         roles_parallel_for, periodic, frame_stop */
#define _GNU_SOURCE
#include "check.h"
#include "cllm_threaded.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static long planted; /* written by both sides with nothing between them */

static int share(void *arg, const cllm_participant *self) {
    (void)arg;
    planted += (long)self->index + 1; /* every participant, at once */
    sleep_ms(2);
    return 0;
}

static int job(void *arg, size_t sphere) {
    (void)arg;
    planted += (long)sphere + 1;
    return 0;
}

static int range(void *arg, size_t begin, size_t end, size_t participant) {
    (void)arg;
    (void)participant;
    planted += (long)(end - begin);
    sleep_ms(1);
    return 0;
}

static int map(void *arg, size_t begin, size_t end, void *partial) {
    (void)arg;
    planted += (long)(end - begin);
    *(long *)partial += 1;
    sleep_ms(1);
    return 0;
}

static int combine(void *arg, void *left, const void *right) {
    (void)arg;
    *(long *)left += *(const long *)right;
    return 0;
}

static int task(void *arg) {
    (void)arg;
    planted += 1;
    return 0;
}

static int index_body(void *arg, size_t index) {
    (void)arg;
    planted += (long)index;
    sleep_ms(1);
    return 0;
}

static int pool_modes(const char *mode) {
    cllm_pool_options opts = cllm_pool_options_default();
    opts.num_threads = 1;
    cllm_pool *pool = NULL;
    if (cllm_pool_create(&opts, &pool) != CLLM_OK)
        return 2;
    if (strcmp(mode, "run_all") == 0) {
        cllm_pool_run_all(pool, share, NULL);
    } else if (strcmp(mode, "dispatch") == 0) {
        cllm_pool_dispatch(pool, 0, job, NULL);
        planted += 100; /* while the job may run: not ordered */
        cllm_pool_wait(pool, 0);
    } else if (strcmp(mode, "parallel_for") == 0) {
        cllm_pool_parallel_for(pool, 0, 64, 8, range, NULL);
    } else if (strcmp(mode, "reduce") == 0) {
        _Alignas(16) long identity[2] = {0, 0}, out[2];
        cllm_pool_reduce(pool, 0, 64, 8, sizeof identity, identity, map, combine, NULL, out);
    } else {
        cllm_pool_free(pool);
        return -1;
    }
    cllm_pool_free(pool);
    return 0;
}

static int roles_modes(const char *mode) {
    cllm_roles_options opts = cllm_roles_options_default();
    opts.thread_budget = 8;
    opts.threads[CLLM_ROLE_PHYSICS] = 2;
    cllm_roles *roles = NULL;
    if (cllm_roles_create(&opts, &roles) != CLLM_OK)
        return 2;
    if (strcmp(mode, "roles_task") == 0) {
        cllm_task *t = NULL;
        cllm_roles_submit(roles, CLLM_ROLE_AI, task, NULL, &t);
        planted += 100; /* while the task may run: not ordered */
        if (t != NULL) {
            cllm_task_wait(t);
            cllm_task_free(t);
        }
    } else if (strcmp(mode, "roles_parallel_for") == 0) {
        cllm_roles_parallel_for(roles, CLLM_ROLE_PHYSICS, 64, CLLM_PARTITION_DYNAMIC, 4, index_body,
                                NULL);
    } else if (strcmp(mode, "periodic") == 0) {
        uint64_t id = 0;
        cllm_roles_sched_add(roles, "planted", 1000000, 0, task, NULL, &id);
        for (int i = 0; i < 50; i++) {
            planted += 1; /* while the periodic task runs: not ordered */
            sleep_ms(2);
        }
    } else {
        cllm_roles_free(roles);
        return -1;
    }
    cllm_roles_free(roles);
    return 0;
}

static int on_stop(void *arg, const cllm_frame_stop *info) {
    (void)arg;
    (void)info;
    planted += 1; /* on the watchdog's thread */
    return 0;
}

/* A frame left open past its limit: the watchdog stops it and calls back
 * while the program writes `planted`. */
static int frame_modes(const char *mode) {
    if (strcmp(mode, "frame_stop") != 0)
        return -1;
    cllm_frame_options o = cllm_frame_options_default();
    o.slow_frame_limit_ns = 5000000;
    o.slow_frame_count = 1;
    o.watchdog_period_ns = 1000000;
    cllm_frame *f = NULL;
    if (cllm_frame_create(&o, &f) != CLLM_OK)
        return 2;
    cllm_frame_set_stop_callback(f, on_stop, NULL);
    cllm_frame_begin(f);
    for (int i = 0; i < 100; i++) {
        planted += 1; /* while the watchdog may call back: not ordered */
        sleep_ms(1);
    }
    cllm_frame_free(f);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    int rc = pool_modes(argv[1]);
    if (rc < 0)
        rc = roles_modes(argv[1]);
    if (rc < 0)
        rc = frame_modes(argv[1]);
    if (rc < 0) {
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 2;
    }
    printf("planted=%ld\n", planted);
    return rc;
}
