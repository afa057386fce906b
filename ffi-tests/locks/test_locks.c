/* C tests of the lock tools (cllm_lock_*, cllm_counter_*): every function,
 * every bad input, contention figures, and a real two-thread, two-lock
 * deadlock found and broken. Runs plain and under valgrind. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "cllm_threaded.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define MS 1000000ull /* nanoseconds: every duration of the API */

/* ---- create, free, bad handles ------------------------------------------ */

static void test_create_free_and_null_arguments(void) {
    cllm_lock *lock = (cllm_lock *)0x1;
    CHECK_STATUS(cllm_lock_create(NULL, &lock), CLLM_ERR_NULL);
    CHECK(lock == (cllm_lock *)0x1, "out untouched on failure");
    CHECK(strstr(cllm_last_error(), "name") != NULL, "names the argument: %s", cllm_last_error());
    CHECK_STATUS(cllm_lock_create("x", NULL), CLLM_ERR_NULL);

    CHECK_STATUS(cllm_lock_lock(NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_lock_trylock(NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_lock_lock_timeout(NULL, 10 * MS), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_lock_unlock(NULL), CLLM_ERR_NULL);
    cllm_lock_contention c;
    CHECK_STATUS(cllm_lock_stats(NULL, &c), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_lock_global_stats(NULL), CLLM_ERR_NULL);

    CHECK_STATUS(cllm_lock_create("", &lock), CLLM_OK);
    CHECK_STATUS(cllm_lock_stats(lock, NULL), CLLM_ERR_NULL);
    cllm_lock_free(lock);
    cllm_lock_free(NULL); /* no-op */
}

/* ---- one thread --------------------------------------------------------- */

static void test_lock_unlock_errors_and_stats(void) {
    cllm_lock *lock = NULL;
    CHECK_STATUS(cllm_lock_create("single", &lock), CLLM_OK);

    CHECK_STATUS(cllm_lock_unlock(lock), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "not held") != NULL, "%s", cllm_last_error());

    for (int i = 0; i < 10; i++) {
        CHECK_STATUS(cllm_lock_lock(lock), CLLM_OK);
        CHECK_STATUS(cllm_lock_unlock(lock), CLLM_OK);
    }
    CHECK_STATUS(cllm_lock_trylock(lock), CLLM_OK);
    CHECK_STATUS(cllm_lock_trylock(lock), CLLM_ERR_BUSY); /* held by me: busy */
    CHECK_STATUS(cllm_lock_lock(lock), CLLM_ERR_DEADLOCK); /* relock: error, no hang */
    CHECK(strstr(cllm_last_error(), "single") != NULL, "%s", cllm_last_error());
    CHECK_STATUS(cllm_lock_lock_timeout(lock, 10000 * MS), CLLM_ERR_DEADLOCK); /* at once */
    CHECK_STATUS(cllm_lock_lock_timeout(lock, CLLM_WAIT_FOREVER), CLLM_ERR_DEADLOCK); /* at once */
    CHECK_STATUS(cllm_lock_unlock(lock), CLLM_OK);
    CHECK_STATUS(cllm_lock_unlock(lock), CLLM_ERR_INVALID_ARGUMENT); /* double unlock */
    CHECK_STATUS(cllm_lock_lock_timeout(lock, 0), CLLM_OK);            /* free: at once */
    CHECK_STATUS(cllm_lock_unlock(lock), CLLM_OK);
    CHECK_STATUS(cllm_lock_lock_timeout(lock, CLLM_WAIT_FOREVER), CLLM_OK);
    CHECK_STATUS(cllm_lock_unlock(lock), CLLM_OK);

    cllm_lock_contention c;
    memset(&c, 0xff, sizeof c);
    CHECK_STATUS(cllm_lock_stats(lock, &c), CLLM_OK);
    CHECK(c.acquisitions == 13, "acquisitions %llu", (unsigned long long)c.acquisitions);
    CHECK(c.contended == 0 && c.wait_ns == 0 && c.contention_rate == 0.0, "no contention");
    cllm_lock_free(lock);
}

/* ---- two threads --------------------------------------------------------- */

typedef struct {
    cllm_lock *lock;
    atomic_int step;
    int status;
} holder_arg;

/* Locks, signals step 1, waits for step 2, holds 100 ms more, unlocks. */
static void *hold_until_told(void *p) {
    holder_arg *a = p;
    a->status = cllm_lock_lock(a->lock);
    atomic_store(&a->step, 1);
    while (atomic_load(&a->step) != 2) sleep_ms(1);
    sleep_ms(100);
    if (a->status == CLLM_OK) a->status = cllm_lock_unlock(a->lock);
    return NULL;
}

/* Tries to unlock a lock this thread does not hold. */
static void *unlock_foreign(void *p) {
    holder_arg *a = p;
    a->status = cllm_lock_unlock(a->lock);
    return NULL;
}

static void test_other_threads_cannot_unlock_and_contention_is_counted(void) {
    cllm_lock *lock = NULL;
    CHECK_STATUS(cllm_lock_create("shared", &lock), CLLM_OK);
    holder_arg a = {lock, 0, -1};
    pthread_t holder;
    pthread_create(&holder, NULL, hold_until_told, &a);
    while (atomic_load(&a.step) != 1) sleep_ms(1);

    /* Unlock by a thread that does not hold it: error, and the lock stays held. */
    CHECK_STATUS(cllm_lock_unlock(lock), CLLM_ERR_INVALID_ARGUMENT);
    holder_arg b = {lock, 0, -1};
    pthread_t other;
    pthread_create(&other, NULL, unlock_foreign, &b);
    pthread_join(other, NULL);
    CHECK(b.status == CLLM_ERR_INVALID_ARGUMENT, "foreign unlock gave %s", cllm_status_str(b.status));
    CHECK_STATUS(cllm_lock_trylock(lock), CLLM_ERR_BUSY);
    /* The timeout is in nanoseconds: 30 ms waits 30 ms, not 30 s. */
    double t0 = now_s();
    CHECK_STATUS(cllm_lock_lock_timeout(lock, 30 * MS), CLLM_ERR_TIMEOUT);
    double waited = now_s() - t0;
    CHECK(waited >= 0.029 && waited < 3.0, "a 30 ms timeout waited %.3f s", waited);

    /* The holder lets go 100 ms after step 2: our blocking lock waits. */
    cllm_lock_contention before;
    CHECK_STATUS(cllm_lock_global_stats(&before), CLLM_OK);
    atomic_store(&a.step, 2);
    CHECK_STATUS(cllm_lock_lock(lock), CLLM_OK);
    CHECK_STATUS(cllm_lock_unlock(lock), CLLM_OK);
    pthread_join(holder, NULL);
    CHECK(a.status == CLLM_OK, "holder: %s", cllm_status_str(a.status));

    cllm_lock_contention c, after;
    CHECK_STATUS(cllm_lock_stats(lock, &c), CLLM_OK);
    CHECK(c.acquisitions == 2, "acquisitions %llu", (unsigned long long)c.acquisitions);
    CHECK(c.contended == 1 && c.contention_rate == 0.5, "contended %llu", (unsigned long long)c.contended);
    CHECK(c.wait_ns >= 50000000ull, "waited %llu ns", (unsigned long long)c.wait_ns);
    CHECK_STATUS(cllm_lock_global_stats(&after), CLLM_OK);
    CHECK(after.acquisitions >= before.acquisitions + 1, "global count grows");
    CHECK(after.contended <= after.acquisitions, "contended <= acquisitions");
    cllm_lock_free(lock);
}

typedef struct {
    cllm_lock *lock;
    int rounds;
    long *shared;
} hammer_arg;

static void *hammer(void *p) {
    hammer_arg *a = p;
    for (int i = 0; i < a->rounds; i++) {
        if (cllm_lock_lock(a->lock) != CLLM_OK) return NULL;
        (*a->shared)++;
        cllm_lock_unlock(a->lock);
    }
    return NULL;
}

static void test_mutual_exclusion_under_contention(void) {
    cllm_lock *lock = NULL;
    CHECK_STATUS(cllm_lock_create("hammered", &lock), CLLM_OK);
    long shared = 0;
    enum { T = 4, R = 2000 };
    hammer_arg args[T];
    pthread_t threads[T];
    for (int t = 0; t < T; t++) {
        args[t] = (hammer_arg){lock, R, &shared};
        pthread_create(&threads[t], NULL, hammer, &args[t]);
    }
    for (int t = 0; t < T; t++) pthread_join(threads[t], NULL);
    CHECK(shared == T * R, "shared %ld", shared);
    cllm_lock_contention c;
    CHECK_STATUS(cllm_lock_stats(lock, &c), CLLM_OK);
    CHECK(c.acquisitions == T * R, "acquisitions %llu", (unsigned long long)c.acquisitions);
    CHECK(c.contended <= c.acquisitions, "contended %llu", (unsigned long long)c.contended);
    cllm_lock_free(lock);
}

/* ---- deadlock ------------------------------------------------------------ */

typedef struct {
    cllm_lock *first, *second;
    pthread_barrier_t *barrier;
    uint64_t timeout_ns;
    int status;
    char error[2048];
} crossing_arg;

/* Locks `first`, meets the other thread, then asks for `second` with a
 * timeout; releases what it holds whatever the outcome. */
static void *take_in_order(void *p) {
    crossing_arg *a = p;
    a->status = cllm_lock_lock(a->first);
    pthread_barrier_wait(a->barrier);
    if (a->status != CLLM_OK) return NULL;
    a->status = cllm_lock_lock_timeout(a->second, a->timeout_ns);
    strncpy(a->error, cllm_last_error(), sizeof a->error - 1);
    if (a->status == CLLM_OK) cllm_lock_unlock(a->second);
    cllm_lock_unlock(a->first);
    return NULL;
}

static void run_crossing(const char *n1, const char *n2, uint64_t timeout_ns, crossing_arg out[2],
                         int poll_detector, int *detector_found, char *detector_text, size_t text_len) {
    cllm_lock *l1 = NULL, *l2 = NULL;
    CHECK_STATUS(cllm_lock_create(n1, &l1), CLLM_OK);
    CHECK_STATUS(cllm_lock_create(n2, &l2), CLLM_OK);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    out[0] = (crossing_arg){.first = l1, .second = l2, .barrier = &barrier, .timeout_ns = timeout_ns, .status = -1};
    out[1] = (crossing_arg){.first = l2, .second = l1, .barrier = &barrier, .timeout_ns = timeout_ns, .status = -1};
    pthread_t t[2];
    pthread_create(&t[0], NULL, take_in_order, &out[0]);
    pthread_create(&t[1], NULL, take_in_order, &out[1]);
    if (poll_detector) {
        /* Poll the on-demand detector while both threads are stuck. */
        for (int i = 0; i < 400 && !*detector_found; i++) {
            if (cllm_lock_check_deadlocks() == CLLM_ERR_DEADLOCK) {
                *detector_found = 1;
                strncpy(detector_text, cllm_last_error(), text_len - 1);
            } else {
                sleep_ms(5);
            }
        }
    }
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    pthread_barrier_destroy(&barrier);
    cllm_lock_free(l1);
    cllm_lock_free(l2);
}

static void test_check_deadlocks_finds_a_stuck_pair(void) {
    CHECK_STATUS(cllm_lock_check_deadlocks(), CLLM_OK); /* nothing stuck yet */
    /* Automatic check off: the threads only time out; the test's own call
     * must find the cycle while they wait. */
    CHECK_STATUS(cllm_lock_set_deadlock_check_ns(0), CLLM_OK);
    crossing_arg out[2];
    int found = 0;
    char text[4096] = {0};
    run_crossing("ledger", "journal", 2000 * MS, out, 1, &found, text, sizeof text);
    CHECK(found, "the detector did not see the deadlock");
    CHECK(strstr(text, "\"ledger\"") && strstr(text, "\"journal\""), "names both locks: %s", text);
    CHECK(strstr(text, "2 thread(s)") != NULL, "two threads: %s", text);
    int timeouts = (out[0].status == CLLM_ERR_TIMEOUT) + (out[1].status == CLLM_ERR_TIMEOUT);
    CHECK(timeouts >= 1, "statuses %s %s", cllm_status_str(out[0].status), cllm_status_str(out[1].status));
    CHECK_STATUS(cllm_lock_check_deadlocks(), CLLM_OK); /* gone once they gave up */
}

static void test_lock_timeout_breaks_a_deadlock(void) {
    CHECK_STATUS(cllm_lock_set_deadlock_check_ns(50 * MS), CLLM_OK);
    crossing_arg out[2];
    run_crossing("left-fork", "right-fork", 20000 * MS, out, 0, NULL, NULL, 0);
    int deadlocks = 0;
    for (int i = 0; i < 2; i++) {
        if (out[i].status == CLLM_ERR_DEADLOCK) {
            deadlocks++;
            CHECK(strstr(out[i].error, "left-fork") && strstr(out[i].error, "right-fork"),
                  "the report names both locks: %s", out[i].error);
        } else {
            CHECK(out[i].status == CLLM_OK, "the other side got its lock: %s", cllm_status_str(out[i].status));
        }
    }
    CHECK(deadlocks >= 1, "no side saw the deadlock (%s, %s)", cllm_status_str(out[0].status),
          cllm_status_str(out[1].status));
    CHECK_STATUS(cllm_lock_set_deadlock_check_ns(200 * MS), CLLM_OK);
}

/* ---- sharded counter ------------------------------------------------------ */

typedef struct {
    cllm_counter *counter;
    int rounds;
} adder_arg;

static void *add_ones(void *p) {
    adder_arg *a = p;
    for (int i = 0; i < a->rounds; i++) cllm_counter_add(a->counter, 1);
    return NULL;
}

static void test_counter(void) {
    cllm_counter *counter = (cllm_counter *)0x1;
    CHECK_STATUS(cllm_counter_create(0, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_counter_create(4097, &counter), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(counter == (cllm_counter *)0x1, "out untouched on failure");
    CHECK_STATUS(cllm_counter_add(NULL, 1), CLLM_ERR_NULL);
    uint64_t sum = 7;
    CHECK_STATUS(cllm_counter_sum(NULL, &sum), CLLM_ERR_NULL);
    CHECK(sum == 7, "out untouched on failure");

    CHECK_STATUS(cllm_counter_create(3, &counter), CLLM_OK);
    CHECK_STATUS(cllm_counter_sum(counter, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_counter_sum(counter, &sum), CLLM_OK);
    CHECK(sum == 0, "starts at zero");
    enum { T = 4, R = 5000 };
    adder_arg args[T];
    pthread_t threads[T];
    for (int t = 0; t < T; t++) {
        args[t] = (adder_arg){counter, R};
        pthread_create(&threads[t], NULL, add_ones, &args[t]);
    }
    for (int t = 0; t < T; t++) pthread_join(threads[t], NULL);
    CHECK_STATUS(cllm_counter_add(counter, 100), CLLM_OK);
    CHECK_STATUS(cllm_counter_sum(counter, &sum), CLLM_OK);
    CHECK(sum == (uint64_t)T * R + 100, "sum %llu", (unsigned long long)sum);
    CHECK_STATUS(cllm_counter_add(counter, UINT64_MAX), CLLM_OK); /* wraps: -1 */
    CHECK_STATUS(cllm_counter_sum(counter, &sum), CLLM_OK);
    CHECK(sum == (uint64_t)T * R + 99, "wrapping sum %llu", (unsigned long long)sum);
    cllm_counter_free(counter);
    cllm_counter_free(NULL);

    CHECK_STATUS(cllm_counter_create(0, &counter), CLLM_OK); /* default shards */
    cllm_counter_free(counter);
}

int main(void) {
    test_create_free_and_null_arguments();
    test_lock_unlock_errors_and_stats();
    test_other_threads_cannot_unlock_and_contention_is_counted();
    test_mutual_exclusion_under_contention();
    test_check_deadlocks_finds_a_stuck_pair();
    test_lock_timeout_breaks_a_deadlock();
    test_counter();
    return check_summary();
}
