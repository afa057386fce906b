/* C tests of the frame guard's named phases (cllm_frame_add_phase,
 * cllm_frame_record_phase, cllm_frame_phase_count, cllm_frame_phase_stats,
 * cllm_frame_phase_name): every function, every bad input, the recorded
 * times coming back, and phases recorded from several threads. Runs plain
 * and under valgrind (make ffi-test, make valgrind). */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "cllm_threaded.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* The histogram's quantile precision, as documented: within 1/64 (1.6 %). */
#define QUANTILE_TOLERANCE (1.0 / 64.0)
#define MS (UINT64_C(1000000)) /* one millisecond in ns */

static cllm_frame *new_guard(void) {
    cllm_frame_options o = cllm_frame_options_default();
    o.manual_clock = true;
    cllm_frame *f = NULL;
    CHECK_STATUS(cllm_frame_create(&o, &f), CLLM_OK);
    return f;
}

static int phase_count(const cllm_frame *f) {
    int n = -1;
    CHECK_STATUS(cllm_frame_phase_count(f, &n), CLLM_OK);
    return n;
}

static cllm_frame_phase_statistics phase_stats(const cllm_frame *f, int phase) {
    cllm_frame_phase_statistics s;
    memset(&s, 0xff, sizeof s);
    CHECK_STATUS(cllm_frame_phase_stats(f, phase, &s), CLLM_OK);
    return s;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_add_phase_gives_ids_in_order_and_finds_known_names(void) {
    cllm_frame *f = new_guard();
    CHECK(phase_count(f) == 0, "no phase yet");
    int physics = -1, agents = -1, again = -1;
    CHECK_STATUS(cllm_frame_add_phase(f, "physics", &physics), CLLM_OK);
    CHECK_STATUS(cllm_frame_add_phase(f, "agents", &agents), CLLM_OK);
    CHECK_STATUS(cllm_frame_add_phase(f, "physics", &again), CLLM_OK);
    CHECK(physics == 0 && agents == 1, "ids %d %d", physics, agents);
    CHECK(again == physics, "the same name gives the same id: %d", again);
    CHECK(phase_count(f) == 2, "two phases");
    cllm_frame_phase_statistics s = phase_stats(f, agents);
    CHECK(s.count == 0 && s.total_ns == 0 && s.p50_ns == 0 && s.p99_ns == 0 && s.max_ns == 0,
          "an unrecorded phase is all zero: %llu %llu %llu %llu %llu", (unsigned long long)s.count,
          (unsigned long long)s.total_ns, (unsigned long long)s.p50_ns, (unsigned long long)s.p99_ns,
          (unsigned long long)s.max_ns);
    cllm_frame_free(f);
}

static void test_add_phase_rejects_bad_arguments_and_writes_nothing(void) {
    cllm_frame *f = new_guard();
    int id = 12345;
    CHECK_STATUS(cllm_frame_add_phase(NULL, "physics", &id), CLLM_ERR_NULL);
    CHECK(strcmp(cllm_last_error(), "frame is NULL") == 0, "message: %s", cllm_last_error());
    CHECK_STATUS(cllm_frame_add_phase(f, NULL, &id), CLLM_ERR_NULL);
    CHECK(strcmp(cllm_last_error(), "name is NULL") == 0, "message: %s", cllm_last_error());
    CHECK_STATUS(cllm_frame_add_phase(f, "physics", NULL), CLLM_ERR_NULL);
    CHECK(strcmp(cllm_last_error(), "out_phase is NULL") == 0, "message: %s", cllm_last_error());
    CHECK_STATUS(cllm_frame_add_phase(f, "", &id), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "empty") != NULL, "message: %s", cllm_last_error());
    CHECK_STATUS(cllm_frame_add_phase(f, "caf\xe9", &id), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "UTF-8") != NULL, "message: %s", cllm_last_error());

    char longest[CLLM_FRAME_PHASE_NAME_MAX];
    memset(longest, 'n', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    char too_long[4 * CLLM_FRAME_PHASE_NAME_MAX];
    memset(too_long, 'n', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    CHECK_STATUS(cllm_frame_add_phase(f, too_long, &id), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "longer than") != NULL, "message: %s", cllm_last_error());
    too_long[CLLM_FRAME_PHASE_NAME_MAX] = '\0'; /* one byte over the limit */
    CHECK_STATUS(cllm_frame_add_phase(f, too_long, &id), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(id == 12345, "out_phase untouched on error: %d", id);
    CHECK(phase_count(f) == 0, "no phase registered by a refused call");

    CHECK_STATUS(cllm_frame_add_phase(f, longest, &id), CLLM_OK);
    CHECK(id == 0, "the longest name is accepted: %d", id);
    char buf[CLLM_FRAME_PHASE_NAME_MAX];
    size_t len = 0;
    CHECK_STATUS(cllm_frame_phase_name(f, id, buf, sizeof buf, &len), CLLM_OK);
    CHECK(len == CLLM_FRAME_PHASE_NAME_MAX - 1 && strcmp(buf, longest) == 0,
          "a CLLM_FRAME_PHASE_NAME_MAX buffer holds it: %zu", len);
    cllm_frame_free(f);
}

static void test_add_phase_stops_at_the_cap_but_finds_known_names(void) {
    cllm_frame *f = new_guard();
    char name[32];
    int ok = 1;
    for (int i = 0; i < CLLM_FRAME_PHASE_MAX; i++) {
        snprintf(name, sizeof name, "phase %d", i);
        int id = -1;
        ok &= cllm_frame_add_phase(f, name, &id) == CLLM_OK && id == i;
    }
    CHECK(ok, "CLLM_FRAME_PHASE_MAX phases get ids 0 to max-1");
    int id = 12345;
    CHECK_STATUS(cllm_frame_add_phase(f, "one more", &id), CLLM_ERR_FULL);
    CHECK(strstr(cllm_last_error(), "CLLM_FRAME_PHASE_MAX") != NULL, "message: %s", cllm_last_error());
    CHECK(id == 12345 && phase_count(f) == CLLM_FRAME_PHASE_MAX, "nothing added");
    CHECK_STATUS(cllm_frame_add_phase(f, "phase 200", &id), CLLM_OK);
    CHECK(id == 200, "a known name is still found when full: %d", id);
    cllm_frame_free(f);
}

static void test_recorded_durations_come_back(void) {
    cllm_frame *f = new_guard();
    int idle = -1, work = -1;
    CHECK_STATUS(cllm_frame_add_phase(f, "idle", &idle), CLLM_OK);
    CHECK_STATUS(cllm_frame_add_phase(f, "work", &work), CLLM_OK);
    /* 0.25, 0.5, ..., 50 ms, in a scrambled order (73 is prime to 200). */
    int ok = 1;
    for (int k = 0; k < 200; k++) {
        int i = (k * 73) % 200 + 1;
        ok &= cllm_frame_record_phase(f, work, (uint64_t)i * 250000) == CLLM_OK;
    }
    CHECK(ok, "200 records");
    cllm_frame_phase_statistics s = phase_stats(f, work);
    CHECK(s.count == 200, "count %llu", (unsigned long long)s.count);
    CHECK(s.total_ns == 5025 * MS, "total %llu (exact 5025 ms)", (unsigned long long)s.total_ns);
    CHECK(s.max_ns == 50 * MS, "max %llu (exact 50 ms)", (unsigned long long)s.max_ns);
    /* p50: the 100th value, 25 ms; p99: the 198th, 49.5 ms. */
    CHECK(near((double)s.p50_ns, 25e6, 25e6 * QUANTILE_TOLERANCE), "p50 %llu (25 ms within 1.6 %%)",
          (unsigned long long)s.p50_ns);
    CHECK(near((double)s.p99_ns, 49.5e6, 49.5e6 * QUANTILE_TOLERANCE), "p99 %llu (49.5 ms within 1.6 %%)",
          (unsigned long long)s.p99_ns);

    CHECK_STATUS(cllm_frame_record_phase(f, idle, 0), CLLM_OK);
    CHECK_STATUS(cllm_frame_record_phase(f, idle, 1000000000000000000ull), CLLM_OK);
    s = phase_stats(f, idle);
    CHECK(s.count == 2 && s.max_ns == 1000000000000000000ull, "zero and the largest duration: %llu %llu",
          (unsigned long long)s.count, (unsigned long long)s.max_ns);
    CHECK(phase_stats(f, work).count == 200, "phases are kept apart");
    cllm_frame_free(f);
}

static void test_record_phase_rejects_bad_ids_and_durations(void) {
    cllm_frame *f = new_guard();
    int phase = -1;
    CHECK_STATUS(cllm_frame_add_phase(f, "physics", &phase), CLLM_OK);
    CHECK_STATUS(cllm_frame_record_phase(NULL, phase, MS), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_record_phase(f, 1, MS), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "phase 1 is not registered") != NULL, "message: %s", cllm_last_error());
    CHECK_STATUS(cllm_frame_record_phase(f, -1, MS), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_frame_record_phase(f, INT_MAX, MS), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_frame_record_phase(f, INT_MIN, MS), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_frame_record_phase(f, phase, 1000000000000000001ull), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "duration_ns") != NULL, "message: %s", cllm_last_error());
    CHECK_STATUS(cllm_frame_record_phase(f, phase, UINT64_MAX), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(phase_stats(f, phase).count == 0, "a refused record records nothing");
    cllm_frame_free(f);
}

static void test_count_and_stats_reject_bad_arguments(void) {
    cllm_frame *f = new_guard();
    int phase = -1;
    CHECK_STATUS(cllm_frame_add_phase(f, "physics", &phase), CLLM_OK);
    int n = 12345;
    CHECK_STATUS(cllm_frame_phase_count(NULL, &n), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_phase_count(f, NULL), CLLM_ERR_NULL);
    CHECK(strcmp(cllm_last_error(), "out_count is NULL") == 0, "message: %s", cllm_last_error());
    CHECK(n == 12345, "out_count untouched on error");

    cllm_frame_phase_statistics s;
    memset(&s, 0x5a, sizeof s);
    cllm_frame_phase_statistics before = s;
    CHECK_STATUS(cllm_frame_phase_stats(NULL, phase, &s), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_phase_stats(f, phase, NULL), CLLM_ERR_NULL);
    CHECK(strcmp(cllm_last_error(), "out is NULL") == 0, "message: %s", cllm_last_error());
    CHECK_STATUS(cllm_frame_phase_stats(f, 1, &s), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_frame_phase_stats(f, -1, &s), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(memcmp(&s, &before, sizeof s) == 0, "out untouched on error");
    cllm_frame_free(f);
}

static void test_phase_name_copies_into_the_buffer_or_fails_without_writing(void) {
    cllm_frame *f = new_guard();
    int phase = -1;
    CHECK_STATUS(cllm_frame_add_phase(f, "agents", &phase), CLLM_OK);
    char buf[16];
    size_t len = 999;
    CHECK_STATUS(cllm_frame_phase_name(f, phase, buf, sizeof buf, &len), CLLM_OK);
    CHECK(len == 6 && strcmp(buf, "agents") == 0, "name %s (%zu)", buf, len);

    /* Exactly big enough: 6 bytes and the NUL. */
    memset(buf, 'X', sizeof buf);
    CHECK_STATUS(cllm_frame_phase_name(f, phase, buf, 7, &len), CLLM_OK);
    CHECK(strcmp(buf, "agents") == 0 && buf[7] == 'X', "fits in 7 bytes, nothing written past them");

    /* One byte short, and zero bytes: CLLM_ERR_BUFFER_TOO_SMALL, nothing
     * written to the buffer, the length needed (without the NUL) in len. */
    memset(buf, 'X', sizeof buf);
    len = 999;
    CHECK_STATUS(cllm_frame_phase_name(f, phase, buf, 6, &len), CLLM_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 6, "the length needed: %zu", len);
    CHECK(strstr(cllm_last_error(), "buf_len 6") != NULL, "message: %s", cllm_last_error());
    len = 999;
    CHECK_STATUS(cllm_frame_phase_name(f, phase, buf, 0, &len), CLLM_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 6, "the length needed: %zu", len);
    int untouched = 1;
    for (size_t i = 0; i < sizeof buf; i++) untouched &= buf[i] == 'X';
    CHECK(untouched, "a too-small buffer is not written");
    len = 999;
    CHECK_STATUS(cllm_frame_phase_name(f, phase, NULL, 0, &len), CLLM_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 6, "a size query with a NULL buffer: %zu", len);

    CHECK_STATUS(cllm_frame_phase_name(NULL, phase, buf, sizeof buf, &len), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_phase_name(f, phase, NULL, sizeof buf, &len), CLLM_ERR_NULL);
    CHECK(strstr(cllm_last_error(), "buf") != NULL, "message: %s", cllm_last_error());
    CHECK_STATUS(cllm_frame_phase_name(f, phase, buf, sizeof buf, NULL), CLLM_ERR_NULL);
    CHECK(strcmp(cllm_last_error(), "out_len is NULL") == 0, "message: %s", cllm_last_error());
    CHECK_STATUS(cllm_frame_phase_name(f, 1, buf, sizeof buf, &len), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_frame_phase_name(f, -7, buf, sizeof buf, &len), CLLM_ERR_INVALID_ARGUMENT);
    cllm_frame_free(f);
}

/* ---- several threads ------------------------------------------------------ */

#define THREADS 4
#define RECORDS_PER_THREAD 500

typedef struct {
    cllm_frame *frame;
    int own_phase;
    int shared_phase;
    int failures;
} worker;

/* Registers the shared phase (every thread the same name), then records
 * RECORDS_PER_THREAD runs of 0.5 ms in it and of 1 ms in its own phase. */
static void *record_from_a_thread(void *arg) {
    worker *w = arg;
    if (cllm_frame_add_phase(w->frame, "shared", &w->shared_phase) != CLLM_OK) w->failures++;
    for (int i = 0; i < RECORDS_PER_THREAD; i++) {
        if (cllm_frame_record_phase(w->frame, w->shared_phase, MS / 2) != CLLM_OK) w->failures++;
        if (cllm_frame_record_phase(w->frame, w->own_phase, MS) != CLLM_OK) w->failures++;
    }
    return NULL;
}

static void test_phases_recorded_from_several_threads_add_up(void) {
    cllm_frame *f = new_guard();
    worker workers[THREADS];
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        char name[16];
        snprintf(name, sizeof name, "thread %d", t);
        workers[t] = (worker){f, -1, -1, 0};
        CHECK_STATUS(cllm_frame_add_phase(f, name, &workers[t].own_phase), CLLM_OK);
    }
    for (int t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, record_from_a_thread, &workers[t]);
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
    int shared = workers[0].shared_phase;
    for (int t = 0; t < THREADS; t++) {
        CHECK(workers[t].failures == 0, "thread %d: %d failed calls", t, workers[t].failures);
        CHECK(workers[t].shared_phase == shared, "thread %d got shared id %d, not %d", t,
              workers[t].shared_phase, shared);
        cllm_frame_phase_statistics own = phase_stats(f, workers[t].own_phase);
        CHECK(own.count == RECORDS_PER_THREAD && own.total_ns == RECORDS_PER_THREAD * MS,
              "thread %d's phase: %llu runs, %llu ns", t, (unsigned long long)own.count,
              (unsigned long long)own.total_ns);
    }
    CHECK(shared == THREADS && phase_count(f) == THREADS + 1, "one shared phase, id %d", shared);
    cllm_frame_phase_statistics s = phase_stats(f, shared);
    CHECK(s.count == THREADS * RECORDS_PER_THREAD, "shared count %llu", (unsigned long long)s.count);
    CHECK(s.total_ns == THREADS * RECORDS_PER_THREAD * (MS / 2), "shared total %llu", (unsigned long long)s.total_ns);
    CHECK(s.max_ns == MS / 2 && s.p50_ns == MS / 2, "max %llu p50 %llu", (unsigned long long)s.max_ns,
          (unsigned long long)s.p50_ns);
    cllm_frame_free(f);
}

int main(void) {
    test_add_phase_gives_ids_in_order_and_finds_known_names();
    test_add_phase_rejects_bad_arguments_and_writes_nothing();
    test_add_phase_stops_at_the_cap_but_finds_known_names();
    test_recorded_durations_come_back();
    test_record_phase_rejects_bad_ids_and_durations();
    test_count_and_stats_reject_bad_arguments();
    test_phase_name_copies_into_the_buffer_or_fails_without_writing();
    test_phases_recorded_from_several_threads_add_up();
    return check_summary();
}
