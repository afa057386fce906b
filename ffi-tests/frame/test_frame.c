/* C tests of the frame-guard API (cllm_frame_*): every function, every bad
 * input. Most tests run on a manual clock (time moves only by tick/advance),
 * so the rules are checked exactly and without sleeping. Runs plain and under
 * valgrind (make ffi-test, make valgrind). */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "cllm_threaded.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MS (UINT64_C(1000000)) /* one millisecond in ns */

/* cllm_frame_is_stopped / cllm_frame_monitor_due through their bool *out. */
static bool stopped(const cllm_frame *f) {
    bool out = false;
    CHECK_STATUS(cllm_frame_is_stopped(f, &out), CLLM_OK);
    return out;
}

static bool due(const cllm_frame *f) {
    bool out = false;
    CHECK_STATUS(cllm_frame_monitor_due(f, &out), CLLM_OK);
    return out;
}

static cllm_frame *manual_guard(cllm_frame_options o) {
    o.manual_clock = true;
    cllm_frame *f = NULL;
    CHECK_STATUS(cllm_frame_create(&o, &f), CLLM_OK);
    return f;
}

/* ---- callbacks ------------------------------------------------------------ */

typedef struct {
    atomic_int calls;
    atomic_ullong frame;
    atomic_int reason;
    int return_code;
} stop_record;

static int record_stop(void *arg, const cllm_frame_stop *info) {
    stop_record *r = arg;
    atomic_store(&r->frame, info->frame);
    atomic_store(&r->reason, (int)info->reason);
    atomic_fetch_add(&r->calls, 1);
    return r->return_code;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_defaults_create_and_free(void) {
    cllm_frame_options o = cllm_frame_options_default();
    CHECK(o.budget_ns == 16700000, "budget %llu ns", (unsigned long long)o.budget_ns);
    CHECK(o.rules == CLLM_FRAME_RULE_CONSECUTIVE, "rules %u", o.rules);
    CHECK(o.slow_frame_count == 10 && o.slow_frame_limit_ns == 2000 * MS, "plan rule");
    CHECK(o.sample_interval_ns == 5000 * MS && o.sample_gap_ns == 500 * MS && o.slow_sample_count == 10,
          "coded rule");
    CHECK(o.memory_limit_bytes == 2000ull << 20 && o.watchdog_period_ns == 0 && !o.manual_clock, "others");
    cllm_frame *f = NULL;
    CHECK_STATUS(cllm_frame_create(NULL, &f), CLLM_OK);
    CHECK(f != NULL, "created with NULL options");
    CHECK(!stopped(f), "not stopped");
    cllm_frame_free(f);
    cllm_frame_free(NULL);
}

static void test_create_rejects_bad_options(void) {
    cllm_frame *f = (cllm_frame *)0x1;
    CHECK_STATUS(cllm_frame_create(NULL, NULL), CLLM_ERR_NULL);
    struct {
        const char *what;
        cllm_frame_options o;
        cllm_status expected;
    } cases[12];
    int n = 0;
    for (int i = 0; i < 12; i++) cases[i].o = cllm_frame_options_default();
    cases[n].what = "budget over 1e18 ns"; cases[n].o.budget_ns = UINT64_MAX; cases[n++].expected = CLLM_ERR_INVALID_ARGUMENT;
    cases[n].what = "limit over 1e18 ns"; cases[n].o.slow_frame_limit_ns = 1000000000000000001ull; cases[n++].expected = CLLM_ERR_INVALID_ARGUMENT;
    cases[n].what = "zero budget"; cases[n].o.budget_ns = 0; cases[n++].expected = CLLM_ERR_INVALID_ARGUMENT;
    cases[n].what = "zero limit"; cases[n].o.slow_frame_limit_ns = 0; cases[n++].expected = CLLM_ERR_INVALID_ARGUMENT;
    cases[n].what = "K = 0"; cases[n].o.slow_frame_count = 0; cases[n++].expected = CLLM_ERR_INVALID_ARGUMENT;
    cases[n].what = "0 slow samples"; cases[n].o.slow_sample_count = 0; cases[n++].expected = CLLM_ERR_INVALID_ARGUMENT;
    cases[n].what = "unknown rule bit"; cases[n].o.rules = 8; cases[n++].expected = CLLM_ERR_INVALID_ARGUMENT;
    cases[n].what = "sample interval under 1 ms"; cases[n].o.sample_interval_ns = MS / 2; cases[n++].expected = CLLM_ERR_INVALID_ARGUMENT;
    cases[n].what = "memory rule without limit"; cases[n].o.rules = CLLM_FRAME_RULE_MEMORY; cases[n].o.memory_limit_bytes = 0;
    cases[n++].expected = CLLM_ERR_INVALID_ARGUMENT;
    cases[n].what = "memory check over 1e18 ns"; cases[n].o.memory_check_interval_ns = UINT64_MAX; cases[n++].expected = CLLM_ERR_INVALID_ARGUMENT;
    cases[n].what = "watchdog under 1 ms"; cases[n].o.watchdog_period_ns = MS / 2; cases[n++].expected = CLLM_ERR_INVALID_ARGUMENT;
    cases[n].what = "monitor interval 0"; cases[n].o.monitor_interval_ns = 0; cases[n++].expected = CLLM_ERR_INVALID_ARGUMENT;
    for (int i = 0; i < n; i++) {
        int got = cllm_frame_create(&cases[i].o, &f);
        CHECK(got == (int)cases[i].expected, "%s: %s (%s)", cases[i].what, cllm_status_str(got), cllm_last_error());
        CHECK(f == (cllm_frame *)0x1, "%s: out written on failure", cases[i].what);
    }
    cllm_frame_options o = cllm_frame_options_default();
    o.slow_frame_count = 0;
    cllm_frame_create(&o, &f);
    CHECK(strstr(cllm_last_error(), "slow_frame_count") != NULL, "message names the field: %s", cllm_last_error());
}

static void test_kth_slow_frame_stops_and_not_before(void) {
    cllm_frame *f = manual_guard(cllm_frame_options_default());
    for (int i = 0; i < 9; i++) CHECK_STATUS(cllm_frame_tick(f, 2001 * MS), CLLM_OK);
    CHECK(!stopped(f), "9 slow frames do not stop");
    cllm_frame_stop info;
    CHECK_STATUS(cllm_frame_stop_info(f, &info), CLLM_OK);
    CHECK(info.reason == CLLM_FRAME_STOP_REASON_NONE && info.message[0] == 0 && info.frame == 0, "no stop yet");
    CHECK_STATUS(cllm_frame_tick(f, 2001 * MS), CLLM_OK);
    CHECK(stopped(f), "the 10th stops");
    CHECK_STATUS(cllm_frame_stop_info(f, &info), CLLM_OK);
    CHECK(info.reason == CLLM_FRAME_STOP_REASON_SLOW_FRAMES, "reason %s", cllm_frame_stop_reason_str(info.reason));
    CHECK(info.frame == 9, "frame %llu", (unsigned long long)info.frame);
    CHECK(info.value_ns == 2001 * MS && info.limit_ns == 2000 * MS && info.count == 10, "figures");
    CHECK(info.memory_bytes == 0 && info.memory_limit_bytes == 0, "no memory figures");
    CHECK(info.at_ns == 20010 * MS && !info.in_progress, "at %llu ns", (unsigned long long)info.at_ns);
    CHECK(strstr(info.message, "10 consecutive frames") != NULL, "message: %s", info.message);
    cllm_frame_statistics s;
    CHECK_STATUS(cllm_frame_stats(f, &s), CLLM_OK);
    CHECK(s.frames == 10 && s.slow_frames == 10 && s.trips_consecutive == 1, "stats");
    cllm_frame_free(f);
}

static void test_fast_frame_resets_the_count(void) {
    cllm_frame_options o = cllm_frame_options_default();
    o.slow_frame_count = 3;
    cllm_frame *f = manual_guard(o);
    CHECK_STATUS(cllm_frame_tick(f, 2500 * MS), CLLM_OK);
    CHECK_STATUS(cllm_frame_tick(f, 2500 * MS), CLLM_OK);
    CHECK_STATUS(cllm_frame_tick(f, 16 * MS), CLLM_OK);
    CHECK_STATUS(cllm_frame_tick(f, 2500 * MS), CLLM_OK);
    CHECK_STATUS(cllm_frame_tick(f, 2500 * MS), CLLM_OK);
    CHECK(!stopped(f), "2 + fast + 2");
    cllm_frame_statistics s;
    CHECK_STATUS(cllm_frame_stats(f, &s), CLLM_OK);
    CHECK(s.consecutive_slow == 2, "run %u", s.consecutive_slow);
    CHECK_STATUS(cllm_frame_tick(f, 2500 * MS), CLLM_OK);
    CHECK(stopped(f), "3 in a row");
    cllm_frame_free(f);
}

static void test_begin_end_and_their_misuse(void) {
    cllm_frame *f = manual_guard(cllm_frame_options_default());
    CHECK_STATUS(cllm_frame_end(f), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_frame_begin(f), CLLM_OK);
    CHECK_STATUS(cllm_frame_begin(f), CLLM_ERR_BUSY);
    CHECK_STATUS(cllm_frame_tick(f, 1 * MS), CLLM_ERR_BUSY);
    CHECK_STATUS(cllm_frame_advance(f, 12500000), CLLM_OK);
    cllm_frame_statistics s;
    CHECK_STATUS(cllm_frame_stats(f, &s), CLLM_OK);
    CHECK(s.frame_in_progress == 0 && s.frames == 0, "in progress");
    CHECK_STATUS(cllm_frame_end(f), CLLM_OK);
    CHECK_STATUS(cllm_frame_stats(f, &s), CLLM_OK);
    CHECK(s.frames == 1 && s.frame_in_progress == -1, "ended");
    CHECK(s.max_ns == 12500000 && near((double)s.p50_ns, 12.5e6, 12.5e6 * 0.016) && s.mean_ns == 12500000,
          "max %llu ns", (unsigned long long)s.max_ns);
    CHECK(s.under_budget_share == 1.0 && s.budget_ns == 16700000, "share %f", s.under_budget_share);
    CHECK_STATUS(cllm_frame_tick(f, 20 * MS), CLLM_OK);
    CHECK_STATUS(cllm_frame_stats(f, &s), CLLM_OK);
    CHECK(s.under_budget_share == 0.5 && s.max_ns == 20 * MS && s.min_ns == 12500000, "two frames");

    CHECK_STATUS(cllm_frame_tick(f, UINT64_MAX), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "duration_ns") != NULL, "named: %s", cllm_last_error());
    CHECK_STATUS(cllm_frame_tick(f, 1000000000000000001ull), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_frame_advance(f, UINT64_MAX), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_frame_advance(f, -5), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_frame_stats(f, &s), CLLM_OK);
    CHECK(s.frames == 2, "refused ticks record nothing");

    CHECK_STATUS(cllm_frame_begin(NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_end(NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_tick(NULL, 1 * MS), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_advance(NULL, 1 * MS), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_poll(NULL), CLLM_ERR_NULL);
    CHECK(strcmp(cllm_last_error(), "frame is NULL") == 0, "named: %s", cllm_last_error());
    CHECK_STATUS(cllm_frame_stats(NULL, &s), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_stats(f, NULL), CLLM_ERR_NULL);
    cllm_frame_stop info;
    CHECK_STATUS(cllm_frame_stop_info(NULL, &info), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_stop_info(f, NULL), CLLM_ERR_NULL);
    bool flag = true;
    CHECK_STATUS(cllm_frame_is_stopped(NULL, &flag), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_is_stopped(f, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_monitor_due(NULL, &flag), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_monitor_due(f, NULL), CLLM_ERR_NULL);
    CHECK(flag, "outputs untouched on failure");
    cllm_frame_free(f);

    cllm_frame *sys = NULL;
    CHECK_STATUS(cllm_frame_create(NULL, &sys), CLLM_OK);
    CHECK_STATUS(cllm_frame_advance(sys, 1 * MS), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_frame_begin(sys), CLLM_OK);
    sleep_ms(2);
    CHECK_STATUS(cllm_frame_end(sys), CLLM_OK);
    CHECK_STATUS(cllm_frame_tick(sys, 3 * MS), CLLM_OK);
    CHECK_STATUS(cllm_frame_stats(sys, &s), CLLM_OK);
    CHECK(s.frames == 2 && s.max_ns >= 2 * MS, "system clock frames, max %llu ns", (unsigned long long)s.max_ns);
    cllm_frame_free(sys);
}

static void test_stop_reason_names(void) {
    CHECK(strcmp(cllm_frame_stop_reason_str(CLLM_FRAME_STOP_REASON_NONE), "CLLM_FRAME_STOP_REASON_NONE") == 0, "none");
    CHECK(strcmp(cllm_frame_stop_reason_str(CLLM_FRAME_STOP_REASON_SLOW_FRAMES), "CLLM_FRAME_STOP_REASON_SLOW_FRAMES") == 0, "frames");
    CHECK(strcmp(cllm_frame_stop_reason_str(CLLM_FRAME_STOP_REASON_SLOW_SAMPLES), "CLLM_FRAME_STOP_REASON_SLOW_SAMPLES") == 0, "samples");
    CHECK(strcmp(cllm_frame_stop_reason_str(CLLM_FRAME_STOP_REASON_MEMORY), "CLLM_FRAME_STOP_REASON_MEMORY") == 0, "memory");
    CHECK(strcmp(cllm_frame_stop_reason_str(UINT32_MAX), "CLLM_FRAME_STOP_REASON_UNKNOWN") == 0, "unknown");
    CHECK(strcmp(cllm_frame_stop_reason_str(99), "CLLM_FRAME_STOP_REASON_UNKNOWN") == 0, "unknown");
}

static void test_stop_callback_runs_once_and_its_failure_is_reported(void) {
    cllm_frame_options o = cllm_frame_options_default();
    o.slow_frame_count = 2;
    cllm_frame *f = manual_guard(o);
    stop_record r = {0};
    r.return_code = 3;
    CHECK_STATUS(cllm_frame_set_stop_callback(NULL, record_stop, &r), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_set_stop_callback(f, record_stop, &r), CLLM_OK);
    CHECK_STATUS(cllm_frame_tick(f, 2100 * MS), CLLM_OK);
    CHECK(atomic_load(&r.calls) == 0, "not yet");
    CHECK_STATUS(cllm_frame_tick(f, 2100 * MS), CLLM_ERR_JOB_FAILED);
    CHECK(strstr(cllm_last_error(), "returned 3") != NULL, "message: %s", cllm_last_error());
    CHECK(atomic_load(&r.calls) == 1 && atomic_load(&r.frame) == 1, "called for frame 1");
    CHECK(atomic_load(&r.reason) == CLLM_FRAME_STOP_REASON_SLOW_FRAMES, "reason");
    for (int i = 0; i < 4; i++) CHECK_STATUS(cllm_frame_tick(f, 2100 * MS), CLLM_OK);
    CHECK(atomic_load(&r.calls) == 1, "once");
    cllm_frame_statistics s;
    CHECK_STATUS(cllm_frame_stats(f, &s), CLLM_OK);
    CHECK(s.frames == 6 && s.callback_failures == 1 && s.trips_consecutive == 3, "frames recorded, trips counted");
    cllm_frame_free(f);

    f = manual_guard(o);
    stop_record quiet = {0};
    CHECK_STATUS(cllm_frame_set_stop_callback(f, record_stop, &quiet), CLLM_OK);
    CHECK_STATUS(cllm_frame_set_stop_callback(f, NULL, NULL), CLLM_OK);
    CHECK_STATUS(cllm_frame_tick(f, 2100 * MS), CLLM_OK);
    CHECK_STATUS(cllm_frame_tick(f, 2100 * MS), CLLM_OK);
    CHECK(stopped(f) && atomic_load(&quiet.calls) == 0, "a removed callback is not called");
    cllm_frame_free(f);
}

static void test_sampled_rule_on_a_frozen_loop(void) {
    cllm_frame_options o = cllm_frame_options_default();
    o.rules = CLLM_FRAME_RULE_SAMPLED;
    cllm_frame *f = manual_guard(o);
    CHECK_STATUS(cllm_frame_tick(f, 10 * MS), CLLM_OK);
    CHECK_STATUS(cllm_frame_begin(f), CLLM_OK);
    CHECK_STATUS(cllm_frame_advance(f, 49000 * MS), CLLM_OK); /* 49.01 s: samples at 5..45 s slow */
    CHECK_STATUS(cllm_frame_poll(f), CLLM_OK);
    CHECK(!stopped(f), "9 slow samples");
    CHECK_STATUS(cllm_frame_advance(f, 1000 * MS), CLLM_OK);
    CHECK_STATUS(cllm_frame_poll(f), CLLM_OK);
    CHECK(stopped(f), "10th sample");
    cllm_frame_stop info;
    CHECK_STATUS(cllm_frame_stop_info(f, &info), CLLM_OK);
    CHECK(info.reason == CLLM_FRAME_STOP_REASON_SLOW_SAMPLES && info.frame == 1 && info.at_ns == 50000 * MS,
          "reason %u frame %llu at %llu", info.reason, (unsigned long long)info.frame, (unsigned long long)info.at_ns);
    CHECK(info.limit_ns == 500 * MS && info.value_ns == 49990 * MS && info.count == 10, "gap %llu",
          (unsigned long long)info.value_ns);
    cllm_frame_statistics s;
    CHECK_STATUS(cllm_frame_stats(f, &s), CLLM_OK);
    CHECK(s.samples == 10 && s.slow_samples == 10 && s.trips_sampled == 1, "samples %llu", (unsigned long long)s.samples);
    CHECK_STATUS(cllm_frame_end(f), CLLM_OK);
    cllm_frame_free(f);
}

static void test_poll_sees_a_stalled_kth_frame(void) {
    cllm_frame_options o = cllm_frame_options_default();
    o.slow_frame_count = 1;
    cllm_frame *f = manual_guard(o);
    CHECK_STATUS(cllm_frame_begin(f), CLLM_OK);
    CHECK_STATUS(cllm_frame_advance(f, 2000 * MS), CLLM_OK);
    CHECK_STATUS(cllm_frame_poll(f), CLLM_OK);
    CHECK(!stopped(f), "at the limit");
    CHECK_STATUS(cllm_frame_advance(f, 1 * MS), CLLM_OK);
    CHECK_STATUS(cllm_frame_poll(f), CLLM_OK);
    cllm_frame_stop info;
    CHECK_STATUS(cllm_frame_stop_info(f, &info), CLLM_OK);
    CHECK(info.reason == CLLM_FRAME_STOP_REASON_SLOW_FRAMES && info.in_progress && info.frame == 0, "stopped in progress");
    cllm_frame_statistics s;
    CHECK_STATUS(cllm_frame_stats(f, &s), CLLM_OK);
    CHECK(s.stalled_frames == 1 && s.frame_in_progress == 0, "stalled");
    CHECK_STATUS(cllm_frame_end(f), CLLM_OK);
    CHECK_STATUS(cllm_frame_stats(f, &s), CLLM_OK);
    CHECK(s.trips_consecutive == 1, "counted once");
    cllm_frame_free(f);
}

static void test_memory_rule_reads_the_resident_size(void) {
    cllm_frame_options o = cllm_frame_options_default();
    o.rules = CLLM_FRAME_RULE_MEMORY;
    o.memory_limit_bytes = 1 << 20;
    cllm_frame *f = manual_guard(o);
    cllm_frame_statistics s;
    CHECK_STATUS(cllm_frame_stats(f, &s), CLLM_OK);
    CHECK(s.resident_bytes == 0, "not read yet");
    CHECK_STATUS(cllm_frame_poll(f), CLLM_OK);
    cllm_frame_stop info;
    CHECK_STATUS(cllm_frame_stop_info(f, &info), CLLM_OK);
    CHECK(info.reason == CLLM_FRAME_STOP_REASON_MEMORY && info.memory_bytes > (1 << 20) &&
              info.memory_limit_bytes == (1 << 20) && info.value_ns == 0 && info.limit_ns == 0,
          "memory %llu bytes", (unsigned long long)info.memory_bytes);
    CHECK_STATUS(cllm_frame_stats(f, &s), CLLM_OK);
    CHECK(s.resident_bytes > (1 << 20) && s.trips_memory == 1, "resident %llu", (unsigned long long)s.resident_bytes);
    cllm_frame_free(f);
}

static void test_watchdog_thread_stops_a_frozen_loop(void) {
    cllm_frame_options o = cllm_frame_options_default();
    o.slow_frame_limit_ns = 20 * MS;
    o.slow_frame_count = 1;
    o.watchdog_period_ns = 2 * MS;
    cllm_frame *f = NULL;
    CHECK_STATUS(cllm_frame_create(&o, &f), CLLM_OK);
    stop_record r = {0};
    CHECK_STATUS(cllm_frame_set_stop_callback(f, record_stop, &r), CLLM_OK);
    CHECK_STATUS(cllm_frame_begin(f), CLLM_OK);
    double deadline = now_s() + 10.0;
    while (atomic_load(&r.calls) == 0 && now_s() < deadline) sleep_ms(1);
    CHECK(atomic_load(&r.calls) == 1, "the watchdog fired while the frame was open");
    CHECK(stopped(f), "stopped");
    cllm_frame_statistics s;
    CHECK_STATUS(cllm_frame_stats(f, &s), CLLM_OK);
    CHECK(s.watchdog_polls > 0 && s.stalled_frames == 1 && s.frames == 0, "polls %llu", (unsigned long long)s.watchdog_polls);
    CHECK_STATUS(cllm_frame_end(f), CLLM_OK);
    cllm_frame_free(f);
}

static void test_monitor_header_and_rows(void) {
    char header[1024], row[CLLM_FRAME_ROW_MAX];
    size_t len = 0;
    CHECK_STATUS(cllm_frame_monitor_header(NULL, sizeof header, &len), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_monitor_header(header, sizeof header, NULL), CLLM_ERR_NULL);
    /* Size query, then a buffer one byte short (no room for the NUL), then the exact size. */
    size_t needed = 0;
    CHECK_STATUS(cllm_frame_monitor_header(NULL, 0, &needed), CLLM_ERR_BUFFER_TOO_SMALL);
    CHECK(needed > 100 && needed < sizeof header, "needed %zu", needed);
    memset(header, 'x', sizeof header);
    CHECK_STATUS(cllm_frame_monitor_header(header, needed, &len), CLLM_ERR_BUFFER_TOO_SMALL);
    CHECK(len == needed && header[0] == 'x' && header[needed - 1] == 'x', "nothing written, length %zu", len);
    CHECK_STATUS(cllm_frame_monitor_header(header, needed + 1, &len), CLLM_OK);
    CHECK(len == needed && len == strlen(header) && header[len - 1] == '\n', "length %zu", len);
    const char *plan[] = {"thread_pool_utilization", "ai_thread_efficiency", "stats_thread_efficiency",
                          "background_thread_efficiency", "lock_contention_rate", "parallel_speedup_ratio",
                          "frames", "fps", "p50_ms", "p99_ms", "max_ms", "under_budget_share", "timestamp"};
    for (size_t i = 0; i < sizeof plan / sizeof *plan; i++)
        CHECK(strstr(header, plan[i]) != NULL, "header has %s", plan[i]);

    cllm_frame *f = manual_guard(cllm_frame_options_default());
    CHECK(!due(f), "not due at start");
    cllm_frame_monitor_inputs in;
    memset(&in, 0, sizeof in);
    for (int i = 0; i < 10; i++) {
        CHECK_STATUS(cllm_frame_tick(f, 100 * MS), CLLM_OK);
        in.ai.busy_ns += 75 * MS; /* one ai thread 75 % busy */
        in.ai.alive_ns += 100 * MS;
        in.stats.busy_ns += 50 * MS; /* one stats thread 50 % busy */
        in.stats.alive_ns += 100 * MS;
        in.background.alive_ns += 100 * MS; /* idle */
    }
    in.lock_acquisitions = 400;
    in.lock_contended = 100;
    in.parallel_work_ns = 1800 * MS;
    in.parallel_wall_ns = 1000 * MS;
    CHECK(due(f), "due after 1 s");

    CHECK_STATUS(cllm_frame_monitor_row(NULL, &in, row, sizeof row, &len), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_monitor_row(f, &in, NULL, sizeof row, &len), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_monitor_row(f, &in, row, sizeof row, NULL), CLLM_ERR_NULL);
    len = 0;
    CHECK_STATUS(cllm_frame_monitor_row(f, &in, row, CLLM_FRAME_ROW_MAX - 1, &len), CLLM_ERR_BUFFER_TOO_SMALL);
    CHECK(len == CLLM_FRAME_ROW_MAX - 1, "the most a row needs: %zu", len);
    CHECK_STATUS(cllm_frame_monitor_row(f, &in, NULL, 0, &len), CLLM_ERR_BUFFER_TOO_SMALL);
    cllm_frame_monitor_inputs bad = in;
    bad.ai.busy_ns = bad.ai.alive_ns + 1;
    CHECK_STATUS(cllm_frame_monitor_row(f, &bad, row, sizeof row, &len), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "ai") != NULL, "message: %s", cllm_last_error());
    bad = in;
    bad.lock_contended = bad.lock_acquisitions + 1;
    CHECK_STATUS(cllm_frame_monitor_row(f, &bad, row, sizeof row, &len), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(due(f), "refused calls do not end the interval");

    CHECK_STATUS(cllm_frame_monitor_row(f, &in, row, sizeof row, &len), CLLM_OK);
    CHECK(len == strlen(row) && row[len - 1] == '\n', "row length");
    CHECK(!due(f), "a row ends the interval");
    CHECK(csv_cell(header, row, "frames") == 10, "frames: %s", row);
    CHECK(near(csv_cell(header, row, "fps"), 10, 1e-9), "fps");
    CHECK(near(csv_cell(header, row, "p50_ms"), 100, 1e-3) && near(csv_cell(header, row, "max_ms"), 100, 1e-3), "times");
    CHECK(near(csv_cell(header, row, "under_budget_share"), 0, 1e-9), "share");
    CHECK(near(csv_cell(header, row, "ai_thread_efficiency"), 0.75, 1e-4), "ai: %s", row);
    CHECK(near(csv_cell(header, row, "stats_thread_efficiency"), 0.5, 1e-4), "stats");
    CHECK(near(csv_cell(header, row, "background_thread_efficiency"), 0, 1e-4), "background");
    CHECK(near(csv_cell(header, row, "thread_pool_utilization"), 1.25 / 3.0, 1e-4), "utilization");
    CHECK(near(csv_cell(header, row, "lock_contention_rate"), 0.25, 1e-4), "contention");
    CHECK(near(csv_cell(header, row, "parallel_speedup_ratio"), 1.8, 1e-4), "speed-up");
    CHECK(isnan(csv_cell(header, row, "physics_thread_efficiency")), "no physics time: empty cell");
    CHECK(csv_cell(header, row, "emergency_stop") == 0, "not stopped");

    /* Next interval: NULL inputs leave the threading columns empty. */
    CHECK_STATUS(cllm_frame_tick(f, 20 * MS), CLLM_OK);
    CHECK_STATUS(cllm_frame_monitor_row(f, NULL, row, sizeof row, &len), CLLM_OK);
    CHECK(csv_cell(header, row, "frames") == 1 && isnan(csv_cell(header, row, "ai_thread_efficiency")), "row %s", row);
    CHECK(near(csv_cell(header, row, "p99_ms"), 20, 1e-3), "p99");

    /* A baseline: the next row's deltas start from it. */
    CHECK_STATUS(cllm_frame_monitor_baseline(f, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_monitor_baseline(NULL, &in), CLLM_ERR_NULL);
    bad = in;
    bad.stats.busy_ns = bad.stats.alive_ns + 1;
    CHECK_STATUS(cllm_frame_monitor_baseline(f, &bad), CLLM_ERR_INVALID_ARGUMENT);
    in.ai.busy_ns = 100000 * MS;
    in.ai.alive_ns = 200000 * MS;
    CHECK_STATUS(cllm_frame_monitor_baseline(f, &in), CLLM_OK);
    in.ai.busy_ns += 250 * MS;
    in.ai.alive_ns += 1000 * MS;
    CHECK_STATUS(cllm_frame_advance(f, 1000 * MS), CLLM_OK);
    CHECK_STATUS(cllm_frame_monitor_row(f, &in, row, sizeof row, &len), CLLM_OK);
    CHECK(near(csv_cell(header, row, "ai_thread_efficiency"), 0.25, 1e-4), "after baseline: %s", row);
    CHECK(csv_cell(header, row, "frames") == 0 && isnan(csv_cell(header, row, "p50_ms")), "no frames: empty times");
    cllm_frame_free(f);
}

static void test_monitor_write_to_a_file_descriptor(void) {
    cllm_frame *f = manual_guard(cllm_frame_options_default());
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    CHECK_STATUS(cllm_frame_monitor_write(NULL, NULL, fds[1]), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_frame_monitor_write(f, NULL, -1), CLLM_ERR_INVALID_ARGUMENT);
    cllm_frame_monitor_inputs bad;
    memset(&bad, 0, sizeof bad);
    bad.evaluation.busy_ns = 1;
    CHECK_STATUS(cllm_frame_monitor_write(f, &bad, fds[1]), CLLM_ERR_INVALID_ARGUMENT);
    cllm_frame_monitor_inputs in;
    memset(&in, 0, sizeof in);
    for (int row = 0; row < 2; row++) {
        for (int i = 0; i < 5; i++) CHECK_STATUS(cllm_frame_tick(f, 10 * MS), CLLM_OK);
        in.background.busy_ns += 10 * MS;
        in.background.alive_ns += 50 * MS;
        CHECK_STATUS(cllm_frame_monitor_write(f, &in, fds[1]), CLLM_OK);
    }
    close(fds[1]);
    char text[4096];
    ssize_t n = 0, got;
    while ((got = read(fds[0], text + n, sizeof text - 1 - (size_t)n)) > 0) n += got;
    text[n] = 0;
    close(fds[0]);
    int lines = 0;
    for (ssize_t i = 0; i < n; i++) lines += text[i] == '\n';
    CHECK(lines == 3, "header and two rows, got %d lines: %s", lines, text);
    CHECK(strncmp(text, "timestamp,", 10) == 0, "the header comes first");
    char *second = strchr(text, '\n') + 1;
    CHECK(near(csv_cell(text, second, "background_thread_efficiency"), 0.2, 1e-4), "row: %s", second);
    CHECK(csv_cell(text, second, "frames") == 5, "frames");

    /* A closed descriptor is an I/O error. */
    int closed[2];
    CHECK(pipe(closed) == 0, "pipe");
    close(closed[0]);
    close(closed[1]);
    CHECK_STATUS(cllm_frame_monitor_write(f, &in, closed[1]), CLLM_ERR_IO);
    cllm_frame_free(f);
}

int main(void) {
    test_defaults_create_and_free();
    test_create_rejects_bad_options();
    test_kth_slow_frame_stops_and_not_before();
    test_fast_frame_resets_the_count();
    test_begin_end_and_their_misuse();
    test_stop_reason_names();
    test_stop_callback_runs_once_and_its_failure_is_reported();
    test_sampled_rule_on_a_frozen_loop();
    test_poll_sees_a_stalled_kth_frame();
    test_memory_rule_reads_the_resident_size();
    test_watchdog_thread_stops_a_frozen_loop();
    test_monitor_header_and_rows();
    test_monitor_write_to_a_file_descriptor();
    return check_summary();
}
