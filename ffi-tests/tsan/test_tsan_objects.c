/* The library's other objects under ThreadSanitizer, from C (see
 * test_tsan_pool.c for the pool): memory ordered only by a `cllm_lock`, by
 * blocks going round a memory pool, by role-pool tasks and their waits, and
 * by `cllm_roles_parallel_for`. A correct program gets no report; TSan
 * exits with 66 on one.
 *
 *   test_tsan_objects [PART]   PART: lock, objpool, roles (default: all) */
#define _GNU_SOURCE
#include "check.h"
#include "cllm_threaded.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { THREADS = 3 };


/* ---- lock: a plain counter and a heap list, touched only under the lock. */
typedef struct {
    cllm_lock *lock;
    long count;
    long *history; /* reallocated under the lock */
    size_t len;
} locked_data;

static void *lock_worker(void *arg) {
    locked_data *d = arg;
    for (int i = 0; i < 300; i++) {
        if (cllm_lock_lock(d->lock) != CLLM_OK)
            return (void *)1;
        d->count++;
        long *grown = realloc(d->history, (d->len + 1) * sizeof(long));
        if (grown != NULL) {
            d->history = grown;
            d->history[d->len++] = d->count;
        }
        cllm_lock_unlock(d->lock);
    }
    return NULL;
}

static void part_lock(void) {
    locked_data d = {NULL, 0, NULL, 0};
    CHECK_STATUS(cllm_lock_create("tsan", &d.lock), CLLM_OK);
    if (d.lock == NULL)
        return;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, lock_worker, &d);
    for (int i = 0; i < THREADS; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        CHECK(rc == NULL, "lock worker %d failed", i);
    }
    CHECK(d.count == THREADS * 300 && d.len == (size_t)d.count, "count %ld, len %zu", d.count, d.len);
    free(d.history);
    cllm_lock_free(d.lock);
}

/* ---- objpool: blocks written by one thread, released, taken by another
 * and written again. */
static pthread_barrier_t objpool_start;

static void *objpool_worker(void *arg) {
    cllm_objpool *pool = arg;
    pthread_barrier_wait(&objpool_start); /* all at once, so blocks change hands */
    for (int i = 0; i < 3000; i++) {
        void *block[4] = {NULL};
        for (int b = 0; b < 4; b++) {
            if (cllm_objpool_acquire(pool, &block[b]) != CLLM_OK)
                return (void *)1;
            memset(block[b], i & 0xff, 64);
        }
        for (int b = 0; b < 4; b++)
            if (cllm_objpool_release(pool, block[b]) != CLLM_OK)
                return (void *)1;
    }
    return NULL;
}

static void objpool_round(size_t shards, size_t thread_cache) {
    cllm_objpool_options opts = cllm_objpool_options_default();
    opts.shards = shards;
    opts.thread_cache = thread_cache;
    cllm_objpool *pool = NULL;
    CHECK_STATUS(cllm_objpool_create(64, &opts, &pool), CLLM_OK);
    if (pool == NULL)
        return;
    pthread_t t[THREADS];
    pthread_barrier_init(&objpool_start, NULL, THREADS);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, objpool_worker, pool);
    for (int i = 0; i < THREADS; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        CHECK(rc == NULL, "objpool worker %d failed", i);
    }
    pthread_barrier_destroy(&objpool_start);
    cllm_objpool_free(pool);
}

static void part_objpool(void) {
    objpool_round(1, 0); /* every block through the one shared list */
    objpool_round(4, 8); /* the defaults: per-thread caches, four shards */
}

/* ---- roles: a task reads what the caller wrote and frees it, writes its
 * result, the caller reads it after the wait; a parallel-for's calls write
 * the caller's array. */
typedef struct {
    int *input;
    long result;
} role_job;

static int role_sum(void *arg) {
    role_job *j = arg;
    long sum = 0;
    for (int i = 0; i < 16; i++)
        sum += j->input[i];
    free(j->input);
    j->input = NULL;
    j->result = sum;
    return 0;
}

static int square_index(void *arg, size_t index) {
    long *out = arg;
    busy_us(5); /* long enough for the role's workers to join */
    out[index] = (long)index * (long)index;
    return 0;
}

static void part_roles(void) {
    cllm_roles_options opts = cllm_roles_options_default();
    opts.thread_budget = 8;
    opts.threads[CLLM_ROLE_PHYSICS] = 3; /* 4 threads with the caller */
    cllm_roles *roles = NULL;
    CHECK_STATUS(cllm_roles_create(&opts, &roles), CLLM_OK);
    if (roles == NULL)
        return;
    for (int r = 0; r < 100; r++) {
        role_job *j = malloc(sizeof *j);
        j->input = malloc(16 * sizeof(int));
        for (int i = 0; i < 16; i++)
            j->input[i] = r;
        j->result = -1;
        cllm_task *task = NULL;
        CHECK_STATUS(cllm_roles_submit(roles, (cllm_role)(r % CLLM_ROLE_COUNT), role_sum, j, &task), CLLM_OK);
        if (task != NULL) {
            CHECK_STATUS(cllm_task_wait(task), CLLM_OK);
            CHECK(j->result == 16L * r && j->input == NULL, "task %d: %ld", r, j->result);
            cllm_task_free(task);
        }
        free(j);
    }
    for (int r = 0; r < 20; r++) {
        size_t n = 1000;
        long *out = calloc(n, sizeof(long));
        CHECK_STATUS(cllm_roles_parallel_for(roles, CLLM_ROLE_PHYSICS, n, CLLM_PARTITION_DYNAMIC, 16,
                                             square_index, out),
                     CLLM_OK);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += out[i] != (long)(i * i);
        CHECK(bad == 0, "round %d: %zu wrong", r, bad);
        free(out);
    }
    cllm_roles_free(roles);
}

int main(int argc, char **argv) {
    const char *part = argc > 1 ? argv[1] : NULL;
    if (part == NULL || strcmp(part, "lock") == 0)
        part_lock();
    if (part == NULL || strcmp(part, "objpool") == 0)
        part_objpool();
    if (part == NULL || strcmp(part, "roles") == 0)
        part_roles();
    return check_summary();
}
