/* A tiny test harness for the C tests: CHECK counts, the program ends with
 * check_summary(), which prints the one closing line "N passed, N failed"
 * and returns the process exit code. ffi-tests/run.sh sums those lines.
 * Below it, the one copy of the helpers several tests use (clocks, sleeps,
 * CSV cells). They are POSIX: include this header before any other. */
#ifndef CLLM_FFI_CHECK_H
#define CLLM_FFI_CHECK_H

#if !defined(_POSIX_C_SOURCE) && !defined(_XOPEN_SOURCE) && !defined(_GNU_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int check_passed_count = 0;
static int check_failed_count = 0;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            check_passed_count++;                                          \
        } else {                                                           \
            check_failed_count++;                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

/* Checks that a cllm_status-returning expression gave `expected`. */
#define CHECK_STATUS(expr, expected)                                               \
    do {                                                                           \
        int check_got_ = (int)(expr);                                              \
        CHECK(check_got_ == (int)(expected), "%s returned %s (%s), expected %s",   \
              #expr, cllm_status_str(check_got_), cllm_last_error(),               \
              cllm_status_str((int)(expected)));                                   \
    } while (0)

static inline int check_summary(void) {
    fflush(stdout);
    printf("%d passed, %d failed\n", check_passed_count, check_failed_count);
    return check_failed_count == 0 ? 0 : 1;
}

/* ---- helpers shared by the tests -------------------------------------- */

/* Sleeps about `ms` milliseconds (a signal may cut it short). */
static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Seconds on the monotonic clock (for durations; the origin means nothing). */
static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Busy for `us` microseconds, touching nothing shared (a share's work). */
static inline void busy_us(double us) {
    double end = now_s() + us * 1e-6;
    while (now_s() < end) {
    }
}

/* Whether a and b differ by at most `tolerance` (false when either is NaN). */
static inline int near(double a, double b, double tolerance) { return fabs(a - b) <= tolerance; }

/* The number in column `name` of a CSV `row` under the `header` line; NaN
 * when there is no such column or the cell is empty. */
static inline double csv_cell(const char *header, const char *row, const char *name) {
    int index = -1, i = 0;
    for (const char *p = header; p && *p && index < 0; i++) {
        size_t n = strcspn(p, ",\n");
        if (strlen(name) == n && strncmp(p, name, n) == 0) index = i;
        p = p[n] == ',' ? p + n + 1 : NULL;
    }
    if (index < 0) return NAN;
    const char *p = row;
    for (i = 0; i < index && p; i++) {
        p = strchr(p, ',');
        if (p) p++;
    }
    if (!p || *p == ',' || *p == '\n' || *p == '\0') return NAN;
    return strtod(p, NULL);
}

#endif
