/* C tests of the block pool (cllm_objpool_*): every function, every bad
 * input (NULL handles, double release, foreign and interior pointers, a
 * block of another pool, the cap), zeroing, statistics, and use from several
 * threads. Runs plain and under valgrind (no leaks, blocks still acquired at
 * free included). */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "cllm_threaded.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int all_bytes(const void *p, size_t n, unsigned char value) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != value) return 0;
    return 1;
}

static void test_options_and_create_errors(void) {
    cllm_objpool_options o = cllm_objpool_options_default();
    CHECK(o.max_blocks == 0 && o.shards == 4 && o.thread_cache == 8, "defaults");
    CHECK(o.shard_choice == CLLM_OBJPOOL_SHARD_CHOICE_ROUND_ROBIN && !o.zero_on_release, "defaults");

    cllm_objpool *pool = (cllm_objpool *)0x1;
    CHECK_STATUS(cllm_objpool_create(64, NULL, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_objpool_create(0, NULL, &pool), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "block_size") != NULL, "%s", cllm_last_error());
    CHECK_STATUS(cllm_objpool_create(SIZE_MAX, NULL, &pool), CLLM_ERR_INVALID_ARGUMENT);
    o.shards = 0;
    CHECK_STATUS(cllm_objpool_create(64, &o, &pool), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "shards") != NULL, "%s", cllm_last_error());
    o.shards = 1025;
    CHECK_STATUS(cllm_objpool_create(64, &o, &pool), CLLM_ERR_INVALID_ARGUMENT);
    o = cllm_objpool_options_default();
    o.thread_cache = 33;
    CHECK_STATUS(cllm_objpool_create(64, &o, &pool), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "thread_cache") != NULL, "%s", cllm_last_error());
    o = cllm_objpool_options_default();
    o.shard_choice = 7;
    CHECK_STATUS(cllm_objpool_create(64, &o, &pool), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "options.shard_choice = 7 is not a cllm_objpool_shard_choice") != NULL, "%s",
          cllm_last_error());
    CHECK(pool == (cllm_objpool *)0x1, "out untouched on failure");

    CHECK_STATUS(cllm_objpool_create(1, NULL, &pool), CLLM_OK); /* NULL: defaults */
    cllm_objpool_free(pool);
    cllm_objpool_free(NULL); /* no-op */
}

static void test_null_handles(void) {
    void *block = NULL;
    cllm_objpool_usage u;
    size_t idle;
    CHECK_STATUS(cllm_objpool_acquire(NULL, &block), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_objpool_release(NULL, &u), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_objpool_stats(NULL, &u), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_objpool_shard_idle(NULL, 0, &idle), CLLM_ERR_NULL);

    cllm_objpool *pool = NULL;
    CHECK_STATUS(cllm_objpool_create(32, NULL, &pool), CLLM_OK);
    CHECK_STATUS(cllm_objpool_acquire(pool, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_objpool_release(pool, NULL), CLLM_ERR_NULL);
    CHECK(strstr(cllm_last_error(), "block") != NULL, "%s", cllm_last_error());
    CHECK_STATUS(cllm_objpool_stats(pool, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_objpool_shard_idle(pool, 0, NULL), CLLM_ERR_NULL);
    cllm_objpool_free(pool);
}

/* A block that cannot be allocated (2^62 bytes) is CLLM_ERR_OUT_OF_MEMORY
 * (it was CLLM_ERR_PANIC), and the pool counts nothing for it. */
static void test_out_of_memory(void) {
    cllm_objpool *pool = NULL;
    CHECK_STATUS(cllm_objpool_create((size_t)1 << 62, NULL, &pool), CLLM_OK);
    if (!pool) return;
    void *block = (void *)0x1;
    CHECK_STATUS(cllm_objpool_acquire(pool, &block), CLLM_ERR_OUT_OF_MEMORY);
    CHECK(block == (void *)0x1, "out untouched on failure");
    CHECK(strstr(cllm_last_error(), "out of memory") != NULL, "%s", cllm_last_error());
    cllm_objpool_usage u;
    CHECK_STATUS(cllm_objpool_stats(pool, &u), CLLM_OK);
    CHECK(u.live == 0 && u.in_use == 0, "live %llu in use %llu", (unsigned long long)u.live,
          (unsigned long long)u.in_use);
    cllm_objpool_free(pool);
}

static void test_reuse_alignment_and_stats(void) {
    enum { SIZE = 3000 };
    cllm_objpool *pool = NULL;
    CHECK_STATUS(cllm_objpool_create(SIZE, NULL, &pool), CLLM_OK);
    void *a = NULL;
    CHECK_STATUS(cllm_objpool_acquire(pool, &a), CLLM_OK);
    CHECK(a != NULL && (uintptr_t)a % CLLM_OBJPOOL_BLOCK_ALIGN == 0, "aligned block %p", a);
    CHECK(all_bytes(a, SIZE, 0), "a new block is zeroed");
    memset(a, 0xAB, SIZE);
    CHECK_STATUS(cllm_objpool_release(pool, a), CLLM_OK);

    void *b = NULL;
    CHECK_STATUS(cllm_objpool_acquire(pool, &b), CLLM_OK);
    CHECK(b == a, "the released block comes back (thread cache)");
    CHECK(all_bytes(b, SIZE, 0xAB), "without zero_on_release the contents are kept");

    cllm_objpool_usage u;
    CHECK_STATUS(cllm_objpool_stats(pool, &u), CLLM_OK);
    CHECK(u.hits == 1 && u.misses == 1 && u.in_use == 1 && u.live == 1, "hits %llu misses %llu in_use %llu live %llu",
          (unsigned long long)u.hits, (unsigned long long)u.misses, (unsigned long long)u.in_use,
          (unsigned long long)u.live);
    CHECK(u.block_size == SIZE && u.shards == 4 && u.max_blocks == 0, "shape");
    CHECK_STATUS(cllm_objpool_release(pool, b), CLLM_OK);
    CHECK_STATUS(cllm_objpool_stats(pool, &u), CLLM_OK);
    CHECK(u.in_use == 0 && u.idle_in_caches == 1 && u.idle_in_shards == 0, "idle in the cache");

    size_t idle = 99, total = 0;
    for (size_t s = 0; s < 4; s++) {
        CHECK_STATUS(cllm_objpool_shard_idle(pool, s, &idle), CLLM_OK);
        total += idle;
    }
    CHECK(total == u.idle_in_shards, "shard sizes add up");
    idle = 99;
    CHECK_STATUS(cllm_objpool_shard_idle(pool, 4, &idle), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(idle == 99, "out untouched on failure");
    cllm_objpool_free(pool);
}

static void test_zero_on_release(void) {
    cllm_objpool_options o = cllm_objpool_options_default();
    o.zero_on_release = true;
    o.thread_cache = 0; /* through the shards */
    o.shards = 1;
    cllm_objpool *pool = NULL;
    CHECK_STATUS(cllm_objpool_create(256, &o, &pool), CLLM_OK);
    void *a = NULL, *b = NULL;
    CHECK_STATUS(cllm_objpool_acquire(pool, &a), CLLM_OK);
    memset(a, 0x5C, 256);
    CHECK_STATUS(cllm_objpool_release(pool, a), CLLM_OK);
    size_t idle = 0;
    CHECK_STATUS(cllm_objpool_shard_idle(pool, 0, &idle), CLLM_OK);
    CHECK(idle == 1, "released into the shard");
    CHECK_STATUS(cllm_objpool_acquire(pool, &b), CLLM_OK);
    CHECK(b == a && all_bytes(b, 256, 0), "reused and zeroed");
    cllm_objpool_free(pool); /* b still acquired: freed with the pool */
}

static void test_bad_releases_leave_the_pool_unchanged(void) {
    cllm_objpool *pool = NULL, *other = NULL;
    CHECK_STATUS(cllm_objpool_create(128, NULL, &pool), CLLM_OK);
    CHECK_STATUS(cllm_objpool_create(128, NULL, &other), CLLM_OK);
    void *a = NULL, *x = NULL;
    CHECK_STATUS(cllm_objpool_acquire(pool, &a), CLLM_OK);
    CHECK_STATUS(cllm_objpool_acquire(other, &x), CLLM_OK);

    int on_stack = 0;
    void *heap = malloc(128);
    CHECK_STATUS(cllm_objpool_release(pool, &on_stack), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "not a block of this pool") != NULL, "%s", cllm_last_error());
    CHECK_STATUS(cllm_objpool_release(pool, heap), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_objpool_release(pool, (char *)a + 1), CLLM_ERR_INVALID_ARGUMENT); /* interior */
    CHECK_STATUS(cllm_objpool_release(pool, x), CLLM_ERR_INVALID_ARGUMENT);             /* other pool's */
    free(heap);

    CHECK_STATUS(cllm_objpool_release(pool, a), CLLM_OK);
    CHECK_STATUS(cllm_objpool_release(pool, a), CLLM_ERR_INVALID_ARGUMENT); /* double release */
    CHECK(strstr(cllm_last_error(), "already released") != NULL, "%s", cllm_last_error());

    cllm_objpool_usage u;
    CHECK_STATUS(cllm_objpool_stats(pool, &u), CLLM_OK);
    CHECK(u.in_use == 0 && u.live == 1 && u.idle_in_caches + u.idle_in_shards == 1, "one idle block, nothing else");
    /* The block is usable again after the refused double release. */
    void *again = NULL;
    CHECK_STATUS(cllm_objpool_acquire(pool, &again), CLLM_OK);
    CHECK(again == a, "same block");
    CHECK_STATUS(cllm_objpool_release(pool, again), CLLM_OK);
    CHECK_STATUS(cllm_objpool_release(other, x), CLLM_OK);
    cllm_objpool_free(pool);
    cllm_objpool_free(other);
}

static void test_cap(void) {
    cllm_objpool_options o = cllm_objpool_options_default();
    o.max_blocks = 3;
    cllm_objpool *pool = NULL;
    CHECK_STATUS(cllm_objpool_create(64, &o, &pool), CLLM_OK);
    void *blocks[3];
    for (int i = 0; i < 3; i++) CHECK_STATUS(cllm_objpool_acquire(pool, &blocks[i]), CLLM_OK);
    void *extra = (void *)0x1;
    CHECK_STATUS(cllm_objpool_acquire(pool, &extra), CLLM_ERR_FULL);
    CHECK(extra == (void *)0x1, "out untouched when full");
    CHECK(strstr(cllm_last_error(), "3") != NULL, "names the cap: %s", cllm_last_error());
    CHECK_STATUS(cllm_objpool_release(pool, blocks[1]), CLLM_OK);
    CHECK_STATUS(cllm_objpool_acquire(pool, &extra), CLLM_OK);
    CHECK(extra == blocks[1], "the released block, not a fourth one");
    cllm_objpool_usage u;
    CHECK_STATUS(cllm_objpool_stats(pool, &u), CLLM_OK);
    CHECK(u.live == 3 && u.misses == 3 && u.max_blocks == 3 && u.in_use == 3, "capped at 3");
    cllm_objpool_free(pool); /* three blocks still acquired */
}

/* ---- threads ---------------------------------------------------------------- */

typedef struct {
    cllm_objpool *pool;
    unsigned char tag;
    int rounds;
    int failures;
    void *handoff[64]; /* blocks left for the main thread to release */
    int handed;
} worker_arg;

static void *worker(void *p) {
    worker_arg *a = p;
    for (int i = 0; i < a->rounds; i++) {
        void *b = NULL;
        int st = cllm_objpool_acquire(a->pool, &b);
        if (st == CLLM_ERR_FULL) continue;
        if (st != CLLM_OK) {
            a->failures++;
            continue;
        }
        memset(b, a->tag, 64);
        if (!all_bytes(b, 64, a->tag)) a->failures++; /* someone else wrote it */
        if (i % 50 == 0 && a->handed < 64) {
            a->handoff[a->handed++] = b; /* released by another thread */
        } else if (cllm_objpool_release(a->pool, b) != CLLM_OK) {
            a->failures++;
        }
    }
    return NULL;
}

static void test_threads(cllm_objpool_shard_choice choice) {
    cllm_objpool_options o = cllm_objpool_options_default();
    o.max_blocks = 256;
    o.thread_cache = 4;
    o.shards = 2;
    o.shard_choice = choice;
    cllm_objpool *pool = NULL;
    CHECK_STATUS(cllm_objpool_create(64, &o, &pool), CLLM_OK);
    enum { T = 4 };
    worker_arg args[T];
    pthread_t threads[T];
    for (int t = 0; t < T; t++) {
        args[t] = (worker_arg){.pool = pool, .tag = (unsigned char)(t + 1), .rounds = 1500};
        pthread_create(&threads[t], NULL, worker, &args[t]);
    }
    for (int t = 0; t < T; t++) pthread_join(threads[t], NULL);
    int handed = 0;
    for (int t = 0; t < T; t++) {
        CHECK(args[t].failures == 0, "thread %d saw %d failures", t, args[t].failures);
        for (int i = 0; i < args[t].handed; i++) CHECK_STATUS(cllm_objpool_release(pool, args[t].handoff[i]), CLLM_OK);
        handed += args[t].handed;
    }
    cllm_objpool_usage u;
    CHECK_STATUS(cllm_objpool_stats(pool, &u), CLLM_OK);
    CHECK(handed > 0, "some blocks crossed threads");
    CHECK(u.in_use == 0, "in use %llu", (unsigned long long)u.in_use);
    CHECK(u.live <= 256 && u.live == u.idle_in_caches + u.idle_in_shards, "live %llu", (unsigned long long)u.live);
    CHECK(u.hits + u.misses == (uint64_t)T * 1500, "every acquisition counted once");
    CHECK(u.hits > u.misses, "hits %llu misses %llu", (unsigned long long)u.hits, (unsigned long long)u.misses);
    cllm_objpool_free(pool);
}

int main(void) {
    test_options_and_create_errors();
    test_null_handles();
    test_reuse_alignment_and_stats();
    test_zero_on_release();
    test_bad_releases_leave_the_pool_unchanged();
    test_cap();
    test_out_of_memory();
    test_threads(CLLM_OBJPOOL_SHARD_CHOICE_ROUND_ROBIN);
    test_threads(CLLM_OBJPOOL_SHARD_CHOICE_THREAD_AFFINE);
    return check_summary();
}
